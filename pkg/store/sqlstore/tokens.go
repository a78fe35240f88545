package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

var _ auth.TokenLookup = (*Store)(nil)

// tokenAudit is what the audit log records of a token: never its hash.
type tokenAudit struct {
	ID           string    `json:"id"`
	Name         string    `json:"name,omitempty"`
	Role         auth.Role `json:"role"`
	ParkIDs      []string  `json:"park_ids,omitempty"`
	EnterpriseID string    `json:"enterprise_id,omitempty"`
	GatewayID    string    `json:"gateway_id,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

func tokenResource(id string) string { return "tokens/" + id }

// CreateToken stores a token by the hash of its secret (the secret itself never reaches the
// store) with a token.create audit row. ErrAlreadyExists when its id or hash is taken.
func (s *Store) CreateToken(ctx context.Context, rec auth.TokenRecord, actor string) error {
	_, err := s.insertToken(ctx, rec, actor, false)
	return err
}

// EnsureToken stores the token unless one with the same hash exists already, and reports
// whether it did: the bootstrap admin token is ensured at every start.
func (s *Store) EnsureToken(ctx context.Context, rec auth.TokenRecord, actor string) (created bool, err error) {
	return s.insertToken(ctx, rec, actor, true)
}

func (s *Store) insertToken(ctx context.Context, rec auth.TokenRecord, actor string, ifAbsent bool) (bool, error) {
	if rec.TokenID == "" {
		return false, fmt.Errorf("token: %w", &registry.FieldError{Field: "id", Reason: "is required"})
	}
	if rec.Hash == "" {
		return false, fmt.Errorf("token %s: %w", rec.TokenID, &registry.FieldError{Field: "hash", Reason: "is required"})
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = s.now()
	}
	parks := rec.ParkIDs
	if parks == nil {
		parks = []string{}
	}
	parkJSON, err := json.Marshal(parks)
	if err != nil {
		return false, fmt.Errorf("token %s: %w", rec.TokenID, err)
	}
	query := `INSERT INTO tokens (id, hash, name, role, park_ids, enterprise_id, gateway_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	if ifAbsent {
		query += ` ON CONFLICT (hash) DO NOTHING`
	}
	var created bool
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, rec.TokenID, rec.Hash, rec.Name, string(rec.Role), string(parkJSON),
			rec.EnterpriseID, rec.GatewayID, rec.CreatedAt.UnixMilli())
		if err != nil {
			if isUniqueViolation(err) {
				// The message must not echo the hash.
				return fmt.Errorf("token %s: a token with this id or secret exists: %w", rec.TokenID, registry.ErrAlreadyExists)
			}
			return fmt.Errorf("insert token %s: %w", rec.TokenID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("insert token %s: %w", rec.TokenID, err)
		}
		if n == 0 {
			return nil
		}
		created = true
		return s.audit(ctx, tx, actor, auditRecord{
			action: "token.create", resource: tokenResource(rec.TokenID),
			after: tokenAudit{
				ID: rec.TokenID, Name: rec.Name, Role: rec.Role, ParkIDs: rec.ParkIDs,
				EnterpriseID: rec.EnterpriseID, GatewayID: rec.GatewayID, CreatedAt: rec.CreatedAt.UTC(),
			},
		})
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// LookupToken returns the principal of the token whose secret hashes to hash; an
// auth.ErrUnauthenticated wrap when there is none.
func (s *Store) LookupToken(ctx context.Context, hash string) (*auth.Principal, error) {
	var (
		p        auth.Principal
		role     string
		parkJSON string
	)
	err := s.db.QueryRowContext(ctx,
		`SELECT id, name, role, park_ids, enterprise_id, gateway_id FROM tokens WHERE hash = $1`, hash).
		Scan(&p.TokenID, &p.Name, &role, &parkJSON, &p.EnterpriseID, &p.GatewayID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("look up token: %w", auth.ErrUnauthenticated)
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	p.Role = auth.Role(role)
	if err := json.Unmarshal([]byte(parkJSON), &p.ParkIDs); err != nil {
		return nil, fmt.Errorf("look up token %s: park_ids: %w", p.TokenID, err)
	}
	if len(p.ParkIDs) == 0 {
		p.ParkIDs = nil
	}
	return &p, nil
}
