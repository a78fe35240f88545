// Package e2e runs the whole telemetry path as separate processes (simulated meters → edge
// agent → broker → collector → InfluxDB) and injects faults into it, then compares what
// InfluxDB holds with the simulator's ground truth: zero lost, zero duplicated.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/parkcarbon/parkcarbon/edge/agent"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
	"github.com/parkcarbon/parkcarbon/simulators/meters"
)

var bins struct{ parkcarbon, agent string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parkcarbon-e2e-bin")
	if err != nil {
		panic(err)
	}
	bins.parkcarbon = filepath.Join(dir, "parkcarbon")
	bins.agent = filepath.Join(dir, "edge-agent")
	for out, pkg := range map[string]string{bins.parkcarbon: "../cmd/parkcarbon", bins.agent: "../cmd/edge-agent"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	if err := localsvc.StopShared(); err != nil && code == 0 {
		code = 1
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// simConfig is a small park in real time: a Modbus unit with three registers of different
// types and word orders, and a DL/T 645 bus with two meters, every meter on a 1 s grid.
const simConfig = `
seed: 7
timezone: Asia/Shanghai
interval: 1s
profiles:
  plant: {base: 300, peak: 500, pattern: three_shift, noise: 0.05}
devices:
  - name: plc
    protocol: modbus-tcp
    listen: 127.0.0.1:0
    unit_id: 1
    meters:
      - {name: m-u32, kind: counter, profile: plant, register: 0, type: uint32, word_order: high, scale: 0.01, initial: 1000}
      - {name: m-f64, kind: counter, profile: plant, factor: 0.5, register: 10, type: float64, word_order: low, initial: 2000}
      - {name: m-i32, kind: counter, profile: plant, factor: 0.2, table: input, register: 20, type: int32, word_order: low, scale: 0.1, initial: 300}
  - name: bus
    protocol: dlt645-tcp
    listen: 127.0.0.1:0
    meters:
      - {name: m-dlt1, profile: plant, address: "000000000001", data: total_active_energy, initial: 5000}
      - {name: m-dlt2, profile: plant, factor: 0.3, address: "000000000002", data: total_active_energy, initial: 7000}
`

// park is one isolated end-to-end rig; every test gets its own.
type park struct {
	t        *testing.T
	dir      string
	dsn      string
	influx   *localsvc.InfluxDB
	mq       *localsvc.Mosquitto
	proxy    *proxy
	sim      *meters.Sim
	password string
	agent    *proc
	colls    []*proc
	ts       *influx.Store
}

const (
	parkID    = "e2e"
	gatewayID = "gw-e2e"
)

func newPark(t *testing.T) *park {
	t.Helper()
	p := &park{t: t, dir: t.TempDir()}
	p.influx = localsvc.InfluxDBForTest(t)
	p.mq = localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{})
	p.dsn = localsvc.PostgresForTest(t)
	p.ts = influx.New(influx.Options{URL: p.influx.URL, Bucket: p.influx.Bucket})
	t.Cleanup(p.ts.Close)

	cfg, err := meters.ParseConfig([]byte(simConfig), "e2e")
	if err != nil {
		t.Fatal(err)
	}
	p.sim, err = meters.New(cfg, meters.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.sim.Close() })
	p.register()
	return p
}

// register creates the park, the gateway and the simulator's meters in PostgreSQL.
func (p *park) register() {
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
	if _, err := reg.CreatePark(ctx, registry.Park{ID: parkID, Name: "e2e"}); err != nil {
		p.t.Fatal(err)
	}
	_, pass, err := reg.CreateGateway(ctx, registry.Gateway{ID: gatewayID, ParkID: parkID})
	if err != nil {
		p.t.Fatal(err)
	}
	p.password = pass
	for _, m := range p.sim.Meters() {
		_, err := reg.CreateMeter(ctx, registry.Meter{ID: m, ParkID: parkID, GatewayID: gatewayID,
			Carrier: registry.Electricity, Unit: "kWh", Multiplier: 1, IntervalSeconds: 1})
		if err != nil {
			p.t.Fatal(err)
		}
	}
}

// startAgent runs the edge agent against brokerURL (through a cuttable proxy when viaProxy).
func (p *park) startAgent(brokerURL string, viaProxy bool) {
	if viaProxy {
		p.proxy = newProxy(p.t, hostPort(brokerURL))
		brokerURL = "tcp://" + p.proxy.Addr()
	}
	port := freePort(p.t)
	cfg := agent.Config{
		GatewayID: gatewayID, ParkID: parkID,
		Broker:   agent.BrokerConfig{URL: brokerURL, Password: p.password, ReconnectMax: 2 * time.Second},
		WAL:      agent.WALConfig{Dir: filepath.Join(p.dir, "wal")},
		Publish:  agent.PublishConfig{Inflight: 10, AckTimeout: 3 * time.Second},
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", port),
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

// startCollector runs `parkcarbon serve --roles collector` with data directory name.
func (p *park) startCollector(name string) *proc {
	dataDir := filepath.Join(p.dir, name)
	httpPort := freePort(p.t)
	env := []string{"PARKCARBON_INFLUX_URL=" + p.influx.URL, "PARKCARBON_INFLUX_BUCKET=" + p.influx.Bucket,
		"PARKCARBON_DB_URL=" + p.dsn, "PARKCARBON_MQTT_URL=" + p.mq.URL, "PARKCARBON_MQTT_SERVICE_PASSWORD=e2e",
		"PARKCARBON_DATA_DIR=" + dataDir, "PARKCARBON_ROLES=collector", "PARKCARBON_LOG_LEVEL=info",
		fmt.Sprintf("PARKCARBON_HTTP_ADDR=127.0.0.1:%d", httpPort), fmt.Sprintf("PARKCARBON_GRPC_ADDR=127.0.0.1:%d", freePort(p.t))}
	c := startProc(p.t, name, filepath.Join(p.dir, name+".log"), env, bins.parkcarbon, "serve")
	c.health = fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort)
	waitHTTP(p.t, c.health, time.Minute, c)
	p.colls = append(p.colls, c)
	return c
}

// run lets the pipeline work for d.
func (p *park) run(d time.Duration) { time.Sleep(d) }

// verify stops the meters, waits until the agent has every batch acknowledged, and compares,
// meter by meter, the readings in InfluxDB with what the simulator served: the same
// timestamps with the same values, none missing and none extra.
func (p *park) verify(within time.Duration) {
	p.t.Helper()
	if err := p.sim.Close(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	var h agent.Health
	for {
		h = p.agent.healthz()
		if h.WAL.PendingBatches == 0 && h.WAL.NextSeq > 1 {
			break
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("agent still holds %d unacknowledged batches after %s: %+v", h.WAL.PendingBatches, within, h)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if h.WAL.DroppedReadings != 0 {
		p.t.Fatalf("agent dropped %d readings", h.WAL.DroppedReadings)
	}
	total, served := 0, 0
	for _, m := range p.sim.Meters() {
		truth := p.sim.GroundTruth(m)
		served += len(truth)
		if len(truth) == 0 {
			p.t.Fatalf("meter %s served nothing", m)
		}
		from := truth[0].Time.Add(-time.Hour)
		stored, err := p.ts.Readings(context.Background(), parkID, m, from, time.Now().Add(time.Hour))
		if err != nil {
			p.t.Fatal(err)
		}
		total += len(stored)
		got := map[int64]float64{}
		for _, s := range stored {
			got[s.TS.UnixMilli()] = s.Value
		}
		missing, wrong := 0, 0
		for _, s := range truth {
			v, ok := got[s.Time.UnixMilli()]
			switch {
			case !ok:
				missing++
			case v != s.Value && math.Abs(v-s.Value) > 1e-9*math.Abs(s.Value):
				wrong++
			}
			delete(got, s.Time.UnixMilli())
		}
		if missing > 0 || wrong > 0 || len(got) > 0 {
			p.t.Errorf("meter %s: %d served, %d stored: %d missing, %d with another value, %d never served",
				m, len(truth), len(stored), missing, wrong, len(got))
		}
	}
	p.t.Logf("verified: %d readings served by the meters, %d stored, agent published %d batches", served, total, h.WAL.NextSeq-1)
}

// proc is a child process that can be killed and restarted.
type proc struct {
	t      *testing.T
	name   string
	args   []string
	env    []string
	log    string
	cmd    *exec.Cmd
	done   chan struct{}
	health string
	mu     sync.Mutex
}

func startProc(t *testing.T, name, log string, env []string, args ...string) *proc {
	p := &proc{t: t, name: name, args: args, env: env, log: log}
	p.start()
	t.Cleanup(func() { p.kill(syscall.SIGTERM) })
	return p
}

func (p *proc) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); _ = f.Close(); close(p.done) }()
}

// kill sends sig (SIGKILL for a crash) and waits for the exit.
func (p *proc) kill(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *proc) healthz() agent.Health {
	var h agent.Health
	resp, err := http.Get(p.health)
	if err != nil {
		return h
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h
}

// logTail returns the end of the process's log, for failure messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// proxy forwards TCP to a target and can cut every connection and refuse new ones: a network
// outage between the agent and the broker.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.setCut(true) })
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go pipe(c, up)
		go pipe(up, c)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// setCut breaks every connection (true) or lets new ones through again (false).
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			_ = c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

func hostPort(u string) string {
	for i := 0; i+3 <= len(u); i++ {
		if u[i:i+3] == "://" {
			return u[i+3:]
		}
	}
	return u
}

func freePort(t *testing.T) int {
	port, err := localsvc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, url string, within time.Duration, what *proc) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s %s\n%s", url, resp.Status, bytes.TrimSpace(body), what.logTail())
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: %v\n%s", url, err, what.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// envDuration reads a duration from the environment, for the long fault runs.
func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}
