package grpcapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/parkcarbon/parkcarbon/pkg/api/apierr"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// TokenStore keeps issued tokens.
type TokenStore interface {
	CreateToken(ctx context.Context, rec auth.TokenRecord, actor string) error
}

// Auth serves AuthService.
type Auth struct {
	pb.UnimplementedAuthServiceServer
	Tokens   TokenStore
	Registry *registry.Service
	Now      func() time.Time
}

var _ pb.AuthServiceServer = (*Auth)(nil)

// CreateToken issues a bearer token (admin only); the secret is in this response alone.
func (s *Auth) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.Token, error) {
	if err := authorize(ctx, auth.Admin, auth.Resource{Kind: auth.KindToken}); err != nil {
		return nil, apierr.Status(err)
	}
	p := auth.Principal{
		Name: req.GetName(), Role: auth.Role(req.GetRole()), ParkIDs: req.GetParkIds(),
		EnterpriseID: req.GetEnterpriseId(), GatewayID: req.GetGatewayId(),
	}
	if err := s.checkScope(ctx, &p); err != nil {
		return nil, apierr.Status(err)
	}
	rec, secret, err := NewTokenRecord(p, s.Now())
	if err != nil {
		return nil, apierr.Status(err)
	}
	if err := s.Tokens.CreateToken(ctx, rec, auth.PrincipalFrom(ctx).Actor()); err != nil {
		return nil, apierr.Status(fmt.Errorf("create token: %w", err))
	}
	return &pb.Token{
		Id: rec.TokenID, Role: string(p.Role), ParkIds: p.ParkIDs, EnterpriseId: p.EnterpriseID,
		Name: p.Name, GatewayId: p.GatewayID, Token: secret, CreatedAt: rec.CreatedAt.UTC().Format(time.RFC3339),
	}, nil
}

// checkScope validates a new token's role and scope and that the parks, enterprise and gateway
// it names exist.
func (s *Auth) checkScope(ctx context.Context, p *auth.Principal) error {
	if len(p.Name) > 200 {
		return &registry.FieldError{Field: "name", Reason: "is longer than 200 bytes"}
	}
	if err := p.Validate(); err != nil {
		return &registry.FieldError{Field: "role", Reason: err.Error()}
	}
	for _, id := range p.ParkIDs {
		if _, err := s.Registry.GetPark(ctx, id); err != nil {
			return &registry.FieldError{Field: "park_ids", Reason: err.Error()}
		}
	}
	if p.EnterpriseID != "" {
		if _, err := s.Registry.GetEnterprise(ctx, p.ParkIDs[0], p.EnterpriseID); err != nil {
			return &registry.FieldError{Field: "enterprise_id", Reason: err.Error()}
		}
	}
	if p.GatewayID != "" {
		g, err := s.Registry.GetGateway(ctx, p.GatewayID)
		if err != nil {
			return &registry.FieldError{Field: "gateway_id", Reason: err.Error()}
		}
		if g.ParkID != p.ParkIDs[0] {
			return &registry.FieldError{Field: "gateway_id", Reason: "gateway " + g.ID + " is not in park " + p.ParkIDs[0]}
		}
	}
	return nil
}

// NewTokenRecord makes a token for p: a fresh id, a random secret and its hash.
func NewTokenRecord(p auth.Principal, now time.Time) (auth.TokenRecord, string, error) {
	secret, err := auth.NewToken()
	if err != nil {
		return auth.TokenRecord{}, "", err
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return auth.TokenRecord{}, "", fmt.Errorf("read random: %w", err)
	}
	p.TokenID = "tok_" + hex.EncodeToString(id)
	return auth.TokenRecord{Principal: p, Hash: auth.Hash(secret), CreatedAt: now}, secret, nil
}

// Authenticate returns ctx with the principal of the request's bearer token. Errors are gRPC
// status errors.
func authenticate(ctx context.Context, a *auth.Authenticator) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	header := strings.Join(md.Get("authorization"), ",")
	p, err := a.Authenticate(ctx, header)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return auth.WithPrincipal(ctx, p), nil
}

// UnaryInterceptor authenticates and logs every unary call except those of public services
// (health, reflection).
func UnaryInterceptor(a *auth.Authenticator, logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if isPublic(info.FullMethod) {
			return handler(ctx, req)
		}
		start := time.Now()
		actx, err := authenticate(ctx, a)
		if err != nil {
			apierr.LogCall(ctx, logger, "grpc", info.FullMethod, err, time.Since(start))
			return nil, err
		}
		resp, err := handler(actx, req)
		apierr.LogCall(actx, logger, "grpc", info.FullMethod, err, time.Since(start))
		return resp, err
	}
}

// StreamAuth authenticates every streaming call except those of public services.
func StreamAuth(a *auth.Authenticator) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if isPublic(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx, err := authenticate(ss.Context(), a)
		if err != nil {
			return err
		}
		return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
	}
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }

func isPublic(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}
