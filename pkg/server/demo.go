package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/alertsvc"
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
                curl -s -H "Authorization: Bearer %[4]s" "http://%[1]s/api/v1/parks/demo-park/indicators?from=%[5]s&to=%[6]s"
                curl -s -H "Authorization: Bearer %[4]s" "http://%[1]s/api/v1/parks/demo-park/series?metric=power&step=1h&from=%[5]s&to=%[6]s"
                curl -s -H "Authorization: Bearer %[4]s" "http://%[1]s/api/v1/parks/demo-park/alerts?state=firing,pending"
                curl -sN -H "Authorization: Bearer %[4]s" http://%[1]s/api/v1/parks/demo-park/alerts/stream
`, s.HTTPAddr(), s.GRPCAddr(), s.MQTTAddr(), cfg.AdminToken,
		time.Now().In(cst).AddDate(0, 0, -7).Format(time.DateOnly), time.Now().In(cst).AddDate(0, 0, 1).Format(time.DateOnly))
	if pass == "" {
		fmt.Fprintln(out, "  (the demo park existed already: no simulated readings this time; remove the data directory for a fresh demo)")
	} else {
		if err := seedDemoAlerts(sys, s.alertSvc); err != nil {
			_ = s.Close()
			return fmt.Errorf("seed demo alert rules: %w", err)
		}
		fmt.Fprintln(out, "  a simulated gateway sends seven days of readings of the demo park, then one per minute")
		go func() {
			if err := feedDemo(ctx, s.MQTTAddr(), pass, logger.With("component", "demo")); err != nil {
				logger.Error("demo feed stopped", "err", err)
			}
		}()
	}
	<-ctx.Done()
	return s.Close()
}

// seedDemoAlerts adds rules that the demo load trips: e1 above 800 kW during its day shift,
// and any meter silent for three intervals.
func seedDemoAlerts(ctx context.Context, svc *alertsvc.Service) error {
	clear := 700.0
	for _, r := range []alerting.Rule{
		{ID: "e1-demand", ParkID: "demo-park", Name: "e1 above 800 kW", Kind: alerting.KindThreshold, Metric: alerting.MetricPower,
			EnterpriseID: "e1", Op: ">", Threshold: 800, Clear: &clear, Window: 5 * time.Minute, For: 5 * time.Minute, Severity: alerting.SeverityWarning},
		{ID: "silent-meter", ParkID: "demo-park", Name: "meter silent for 3 intervals", Kind: alerting.KindNoData, Op: ">", Threshold: 3,
			Severity: alerting.SeverityCritical},
	} {
		if _, err := svc.CreateRule(ctx, r); err != nil {
			return err
		}
	}
	return nil
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
