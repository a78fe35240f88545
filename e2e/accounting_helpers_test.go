package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/parkcarbon/parkcarbon/edge/agent"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
	"github.com/parkcarbon/parkcarbon/simulators/meters"
)

// registerPark creates the park (time zone tz), its enterprises, the gateway and the given
// meters in PostgreSQL, and returns the meters as stored (defaults applied).
func (p *park) registerPark(tz string, enterprises []string, ms []registry.Meter) []registry.Meter {
	p.t.Helper()
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{TokenID: "e2e", Role: auth.RoleAdmin})
	st, err := sqlstore.Open(ctx, p.dsn, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		p.t.Fatal(err)
	}
	reg := &registry.Service{Store: st}
	if _, err := reg.CreatePark(ctx, registry.Park{ID: parkID, Name: "e2e", Timezone: tz}); err != nil {
		p.t.Fatal(err)
	}
	for _, e := range enterprises {
		if _, err := reg.CreateEnterprise(ctx, registry.Enterprise{ID: e, ParkID: parkID, Name: e}); err != nil {
			p.t.Fatal(err)
		}
	}
	_, pass, err := reg.CreateGateway(ctx, registry.Gateway{ID: gatewayID, ParkID: parkID})
	if err != nil {
		p.t.Fatal(err)
	}
	p.password = pass
	out := make([]registry.Meter, 0, len(ms))
	for _, m := range ms {
		m.ParkID, m.GatewayID = parkID, gatewayID
		got, err := reg.CreateMeter(ctx, m)
		if err != nil {
			p.t.Fatalf("create meter %s: %v", m.ID, err)
		}
		out = append(out, got)
	}
	return out
}

// startAccounting runs `parkcarbon serve --roles api,accounting` on the same PostgreSQL
// database and InfluxDB as the collectors, with adminToken as the bootstrap admin token, and
// returns the process and its REST base URL.
func (p *park) startAccounting(name, adminToken string) (*proc, string) {
	p.t.Helper()
	httpPort := freePort(p.t)
	env := []string{"PARKCARBON_INFLUX_URL=" + p.influx.URL, "PARKCARBON_INFLUX_BUCKET=" + p.influx.Bucket,
		"PARKCARBON_DB_URL=" + p.dsn, "PARKCARBON_MQTT_URL=" + p.mq.URL, "PARKCARBON_MQTT_SERVICE_PASSWORD=e2e",
		"PARKCARBON_DATA_DIR=" + filepath.Join(p.dir, name), "PARKCARBON_ROLES=api,accounting",
		"PARKCARBON_ADMIN_TOKEN=" + adminToken, "PARKCARBON_LOG_LEVEL=debug",
		fmt.Sprintf("PARKCARBON_HTTP_ADDR=127.0.0.1:%d", httpPort), fmt.Sprintf("PARKCARBON_GRPC_ADDR=127.0.0.1:%d", freePort(p.t))}
	c := startProc(p.t, name, filepath.Join(p.dir, name+".log"), env, bins.parkcarbon, "serve")
	c.health = fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort)
	waitHTTP(p.t, c.health, time.Minute, c)
	return c, fmt.Sprintf("http://127.0.0.1:%d", httpPort)
}

// startSimulatedAgent runs the edge agent straight against the broker on the simulator's
// clock, so that it polls and stamps readings on the simulated grid.
func (p *park) startSimulatedAgent(clk meters.Clock) {
	p.t.Helper()
	port := freePort(p.t)
	cfg := agent.Config{
		GatewayID: gatewayID, ParkID: parkID,
		Broker:   agent.BrokerConfig{URL: p.mq.URL, Password: p.password, ReconnectMax: 2 * time.Second},
		WAL:      agent.WALConfig{Dir: filepath.Join(p.dir, "wal")},
		Publish:  agent.PublishConfig{Inflight: 10, AckTimeout: 3 * time.Second},
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", port),
		Clock:    agent.ClockConfig{SimStart: clk.SimStart, RealStart: clk.RealStart, Speed: clk.Speed},
		Devices:  p.sim.DeviceConfigs(),
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(p.dir, "agent.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		p.t.Fatal(err)
	}
	p.agent = startProc(p.t, "agent", filepath.Join(p.dir, "agent.log"), nil, bins.agent, "--config", path)
	p.agent.health = fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
}

// getJSON GETs url with a bearer token and decodes a 200 answer into out; otherwise it returns
// the status and body as an error.
func getJSON(url, token string, out any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: decode %s: %w", url, body, err)
	}
	return nil
}

// relDiff is |a − b| relative to the larger magnitude; 0 when both are 0.
func relDiff(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

func ceilHour(t time.Time) time.Time {
	f := t.Truncate(time.Hour)
	if f.Before(t) {
		return f.Add(time.Hour)
	}
	return f
}
