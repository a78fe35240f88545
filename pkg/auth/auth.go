// Package auth authenticates bearer tokens and decides what a principal may do. gRPC and REST
// both call it, so there is one authorizer for both transports.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Errors of authentication and authorization.
var (
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrPermissionDenied = errors.New("permission denied")
)

// Role is what a token may do; scope (parks, enterprise, gateway) narrows it.
type Role string

// Roles.
const (
	RoleAdmin      Role = "admin"
	RoleOperator   Role = "operator"
	RoleAuditor    Role = "auditor"
	RoleEnterprise Role = "enterprise"
	RoleGateway    Role = "gateway"
)

// Roles lists every role.
func Roles() []Role {
	return []Role{RoleAdmin, RoleOperator, RoleAuditor, RoleEnterprise, RoleGateway}
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Principal is the authenticated caller.
type Principal struct {
	TokenID      string
	Name         string
	Role         Role
	ParkIDs      []string
	EnterpriseID string
	GatewayID    string
}

// Actor names the principal in the audit log.
func (p *Principal) Actor() string {
	if p == nil {
		return "system"
	}
	if p.Name != "" {
		return fmt.Sprintf("%s:%s(%s)", p.Role, p.TokenID, p.Name)
	}
	return fmt.Sprintf("%s:%s", p.Role, p.TokenID)
}

// Validate checks the scope fits the role: operators and auditors need parks, an enterprise
// token one park and one enterprise, a gateway token one park and one gateway.
func (p *Principal) Validate() error {
	if !p.Role.Valid() {
		return fmt.Errorf("role %q is not one of admin, operator, auditor, enterprise, gateway", p.Role)
	}
	switch p.Role {
	case RoleAdmin:
		if len(p.ParkIDs) > 0 || p.EnterpriseID != "" || p.GatewayID != "" {
			return errors.New("an admin token is not scoped: leave park_ids, enterprise_id and gateway_id empty")
		}
	case RoleOperator, RoleAuditor:
		if len(p.ParkIDs) == 0 {
			return fmt.Errorf("an %s token needs at least one park in park_ids", p.Role)
		}
		if p.EnterpriseID != "" || p.GatewayID != "" {
			return fmt.Errorf("an %s token is scoped to parks only", p.Role)
		}
	case RoleEnterprise:
		if len(p.ParkIDs) != 1 || p.EnterpriseID == "" {
			return errors.New("an enterprise token needs exactly one park in park_ids and an enterprise_id")
		}
	case RoleGateway:
		if len(p.ParkIDs) != 1 || p.GatewayID == "" {
			return errors.New("a gateway token needs exactly one park in park_ids and a gateway_id")
		}
	}
	return nil
}

// Access is the kind of operation.
type Access int

// Accesses, from least to most privileged.
const (
	Read  Access = iota // look at a resource
	Write               // change a resource inside a park
	Admin               // create or delete parks, issue tokens, publish factor sets
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	default:
		return "admin"
	}
}

// Kind is the kind of resource an operation touches.
type Kind string

// Resource kinds the authorizer distinguishes.
const (
	KindPark       Kind = "park"
	KindEnterprise Kind = "enterprise"
	KindMeter      Kind = "meter"
	KindGateway    Kind = "gateway"
	// KindParkData covers park-wide data: indicators, series, alerts, reports, dead letters.
	KindParkData Kind = "park_data"
	KindToken    Kind = "token"
	// KindGlobal is data shared by every park, such as factor sets.
	KindGlobal Kind = "global"
)

// Resource is what an operation touches: its kind, park, and owning enterprise if any.
type Resource struct {
	Kind         Kind
	ParkID       string
	EnterpriseID string
}

// Authorize returns nil when p may perform access on r, ErrUnauthenticated for no principal,
// and an ErrPermissionDenied wrap otherwise.
func (p *Principal) Authorize(a Access, r Resource) error {
	if p == nil {
		return ErrUnauthenticated
	}
	if p.allowed(a, r) {
		return nil
	}
	what := string(r.Kind)
	if r.ParkID != "" {
		what += " in park " + r.ParkID
	}
	return fmt.Errorf("%w: %s token may not %s %s", ErrPermissionDenied, p.Role, a, what)
}

func (p *Principal) allowed(a Access, r Resource) bool {
	if p.Role == RoleAdmin {
		return true
	}
	if a == Admin {
		return false
	}
	if r.Kind == KindGlobal {
		return a == Read
	}
	if r.Kind == KindToken || !slices.Contains(p.ParkIDs, r.ParkID) {
		return false
	}
	switch p.Role {
	case RoleOperator:
		return true
	case RoleAuditor:
		return a == Read
	case RoleEnterprise:
		if a != Read {
			return false
		}
		switch r.Kind {
		case KindPark:
			return true
		case KindEnterprise, KindMeter:
			return r.EnterpriseID == p.EnterpriseID
		}
		return false
	}
	return false
}

// SeesPark reports whether p may see park parkID at all; list operations filter with it.
func (p *Principal) SeesPark(parkID string) bool {
	return p.Authorize(Read, Resource{Kind: KindPark, ParkID: parkID}) == nil
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// tokenPrefix marks parkcarbon bearer tokens so secret scanners can find leaked ones.
const tokenPrefix = "pct_"

// NewSecret returns a random 256-bit secret, printable, with prefix.
func NewSecret(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// NewToken returns a new bearer token secret.
func NewToken() (string, error) { return NewSecret(tokenPrefix) }

// Hash returns the stored form of a high-entropy secret (token or gateway password). The
// secrets carry 256 random bits, so a plain SHA-256 is as strong as a slow password hash here.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// HashEqual compares a secret with a stored hash in constant time.
func HashEqual(secret, hash string) bool {
	h := Hash(secret)
	return subtle.ConstantTimeCompare([]byte(h), []byte(hash)) == 1
}

// TokenLookup finds the principal of a stored token hash; ErrUnauthenticated when none.
type TokenLookup interface {
	LookupToken(ctx context.Context, hash string) (*Principal, error)
}

// Authenticator turns an Authorization header into a principal.
type Authenticator struct {
	Tokens TokenLookup
}

// Authenticate parses "Bearer <token>" and looks the token up.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (*Principal, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if header == "" {
		return nil, fmt.Errorf("%w: missing Authorization: Bearer <token> header", ErrUnauthenticated)
	}
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return nil, fmt.Errorf("%w: Authorization header is not Bearer <token>", ErrUnauthenticated)
	}
	p, err := a.Tokens.LookupToken(ctx, Hash(strings.TrimSpace(token)))
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			return nil, fmt.Errorf("%w: unknown or revoked token", ErrUnauthenticated)
		}
		return nil, fmt.Errorf("look up token: %w", err)
	}
	return p, nil
}

// TokenRecord is a stored token: its principal and the hash of its secret.
type TokenRecord struct {
	Principal
	Hash      string
	CreatedAt time.Time
}
