package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/api/grpcapi"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/broker"
	"github.com/parkcarbon/parkcarbon/pkg/config"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// NewLogger returns the process logger configured by cfg.
func NewLogger(cfg config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Migrate applies pending migrations to the configured database.
func Migrate(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	st, err := OpenStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("database migrated")
	return st.Close()
}

// TokenRequest describes a token to issue from the command line.
type TokenRequest struct {
	Role         string
	ParkIDs      []string
	EnterpriseID string
	GatewayID    string
	Name         string
}

// CreateToken issues a token directly in the database (as the local operator of the host) and
// returns its secret; the same scope checks as the API apply.
func CreateToken(ctx context.Context, cfg config.Config, req TokenRequest, logger *slog.Logger) (string, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	st, err := OpenStore(ctx, cfg, logger)
	if err != nil {
		return "", err
	}
	defer st.Close()
	svc := &grpcapi.Auth{Tokens: st, Registry: &registry.Service{Store: st}, Now: time.Now}
	local := &auth.Principal{TokenID: "cli", Name: "parkcarbon token create", Role: auth.RoleAdmin}
	tok, err := svc.CreateToken(auth.WithPrincipal(ctx, local), tokenRequestPB(req))
	if err != nil {
		return "", err
	}
	return tok.GetToken(), nil
}

// WriteMosquittoFiles writes dir/passwd and dir/acl for an external Mosquitto from the registry.
func WriteMosquittoFiles(ctx context.Context, cfg config.Config, dir string, logger *slog.Logger) error {
	st, err := OpenStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	svc := &registry.Service{Store: st}
	var gws []registry.Gateway
	parks, err := registry.All(func(p registry.Page) ([]registry.Park, error) { return svc.ListParks(ctx, p) },
		func(p registry.Park) string { return p.ID })
	if err != nil {
		return err
	}
	for _, p := range parks {
		g, err := registry.All(func(pg registry.Page) ([]registry.Gateway, error) { return svc.ListGateways(ctx, p.ID, pg) },
			func(g registry.Gateway) string { return g.ID })
		if err != nil {
			return err
		}
		gws = append(gws, g...)
	}
	pass := cfg.MQTTServicePassword
	if pass == "" {
		return fmt.Errorf("mqtt_service_password (PARKCARBON_MQTT_SERVICE_PASSWORD) is required: the collector logs in to the external broker with it")
	}
	hash, err := auth.HashPassword(pass)
	if err != nil {
		return err
	}
	passwd, acl := broker.MosquittoFiles(gws, map[string]string{ServiceUser: hash})
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), passwd, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "acl"), acl, 0o644); err != nil {
		return err
	}
	logger.Info("mosquitto files written", "dir", dir, "gateways", len(gws))
	return nil
}

func tokenRequestPB(r TokenRequest) *pb.CreateTokenRequest {
	return &pb.CreateTokenRequest{Role: r.Role, ParkIds: r.ParkIDs, EnterpriseId: r.EnterpriseID, GatewayId: r.GatewayID, Name: r.Name}
}
