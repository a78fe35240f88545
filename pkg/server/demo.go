package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/config"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Demo runs the platform on cfg with a demonstration park registered, prints where to reach it
// and an admin token, and serves until ctx is done.
func Demo(ctx context.Context, cfg config.Config, out io.Writer, logger *slog.Logger) error {
	if cfg.AdminToken == "" {
		tok, err := auth.NewToken()
		if err != nil {
			return err
		}
		cfg.AdminToken = tok
	}
	s, err := New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		_ = s.Close()
		return err
	}
	sys := auth.WithPrincipal(ctx, &auth.Principal{TokenID: "demo", Name: "parkcarbon demo", Role: auth.RoleAdmin})
	pass, err := SeedDemo(sys, s.Registry)
	if err != nil {
		_ = s.Close()
		return fmt.Errorf("seed demo park: %w", err)
	}
	fmt.Fprintf(out, `parkcarbon demo is running.
  REST API:     http://%[1]s/api/v1/parks
  health:       http://%[1]s/healthz   readiness: http://%[1]s/readyz   metrics: http://%[1]s/metrics
  gRPC:         %[2]s
  MQTT broker:  %[3]s
  admin token:  %[4]s
  try:          curl -s -H "Authorization: Bearer %[4]s" http://%[1]s/api/v1/parks/demo-park/meters
`, s.HTTPAddr(), s.GRPCAddr(), s.MQTTAddr(), cfg.AdminToken)
	if pass != "" {
		fmt.Fprintf(out, "  gateway gw-demo MQTT password: %s\n", pass)
	}
	<-ctx.Done()
	return s.Close()
}

// SeedDemo registers the demonstration park (a small Hunan park) unless it exists, and
// returns the demo gateway's MQTT password when it created the gateway.
func SeedDemo(ctx context.Context, reg *registry.Service) (string, error) {
	if _, err := reg.GetPark(ctx, "demo-park"); err == nil {
		return "", nil
	} else if !errors.Is(err, registry.ErrNotFound) {
		return "", err
	}
	if _, err := reg.CreatePark(ctx, registry.Park{ID: "demo-park", Name: "湘潭经开区 示范园区", Province: "Hunan"}); err != nil {
		return "", err
	}
	_, pass, err := reg.CreateGateway(ctx, registry.Gateway{ID: "gw-demo", ParkID: "demo-park", Name: "demo gateway"})
	if err != nil {
		return "", err
	}
	for _, e := range []registry.Enterprise{
		{ID: "e1", ParkID: "demo-park", Name: "湘潭电机装备有限公司", IndustryCode: "C38", KeyEnergyUser: true},
		{ID: "e2", ParkID: "demo-park", Name: "湘潭新材料科技有限公司", IndustryCode: "C26"},
	} {
		if _, err := reg.CreateEnterprise(ctx, e); err != nil {
			return "", err
		}
	}
	for _, m := range []registry.Meter{
		{ID: "e1-grid", EnterpriseID: "e1", Carrier: registry.Electricity, Unit: "kWh", Rollover: 100000000},
		{ID: "e1-pv", EnterpriseID: "e1", Carrier: registry.Electricity, Unit: "kWh", GreenClass: registry.GreenDirect},
		{ID: "e1-gas", EnterpriseID: "e1", Carrier: registry.NaturalGas, Unit: "m3"},
		{ID: "e2-grid", EnterpriseID: "e2", Carrier: registry.Electricity, Unit: "kWh"},
		{ID: "e2-heat", EnterpriseID: "e2", Carrier: registry.Heat, Unit: "GJ"},
		{ID: "park-export", Carrier: registry.Electricity, Unit: "kWh", Direction: registry.Out},
	} {
		m.ParkID, m.GatewayID, m.Multiplier, m.IntervalSeconds = "demo-park", "gw-demo", 1, 60
		if _, err := reg.CreateMeter(ctx, m); err != nil {
			return "", err
		}
	}
	return pass, nil
}
