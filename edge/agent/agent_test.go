package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkcarbon/parkcarbon/edge/agent"
	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/wal"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

const (
	park        = "p1"
	gateway     = "gw-01"
	fakeProto   = "fake"
	gridSim     = 15 * time.Second
	simSpeed    = 150 // 15 s of simulated grid every 100 ms
	testTimeout = 30 * time.Second
)

// truth is what the fake meters produced: meter → values in poll order.
type truth struct {
	mu     sync.Mutex
	values map[string][]float64
}

func newTruth() *truth { return &truth{values: map[string][]float64{}} }

func (t *truth) record(meter string, v float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.values[meter] = append(t.values[meter], v)
}

func (t *truth) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, vs := range t.values {
		n += len(vs)
	}
	return n
}

func (t *truth) snapshot() map[string][]float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string][]float64, len(t.values))
	for m, vs := range t.values {
		out[m] = slices.Clone(vs)
	}
	return out
}

// fakeDevice reads the meters listed as its points: poll n gives every meter the value
// n (a counter), until limit polls (0: no limit), after which it answers with no values.
type fakeDevice struct {
	meters []string
	limit  int
	truth  *truth

	mu    sync.Mutex
	polls int
}

func (d *fakeDevice) Poll(context.Context) ([]device.Value, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.limit > 0 && d.polls >= d.limit {
		return nil, nil
	}
	d.polls++
	vs := make([]device.Value, len(d.meters))
	for i, m := range d.meters {
		vs[i] = device.Value{Meter: m, Value: float64(d.polls)}
		if d.truth != nil {
			d.truth.record(m, float64(d.polls))
		}
	}
	return vs, nil
}

func (d *fakeDevice) Close() error { return nil }

// fakeDrivers returns the "fake" protocol; every device polls at most limit times.
func fakeDrivers(tr *truth, limit int) map[string]agent.Driver {
	return map[string]agent.Driver{fakeProto: func(c device.Config, _ *slog.Logger) (device.Device, error) {
		d := &fakeDevice{limit: limit, truth: tr}
		for _, p := range c.Points {
			d.meters = append(d.meters, p.Meter)
		}
		return d, nil
	}}
}

// fakeDevices configures n devices of m meters each.
func fakeDevices(n, m int) []device.Config {
	out := make([]device.Config, n)
	for i := range out {
		out[i] = device.Config{Name: fmt.Sprintf("dev-%d", i), Protocol: fakeProto, PollInterval: gridSim}
		for j := range m {
			out[i].Points = append(out[i].Points, device.ModbusPoint{Meter: fmt.Sprintf("m-%d-%d", i, j)})
		}
	}
	return out
}

func testConfig(t testing.TB, brokerURL string, devices []device.Config) agent.Config {
	t.Helper()
	return agent.Config{
		GatewayID: gateway,
		ParkID:    park,
		Broker:    agent.BrokerConfig{URL: brokerURL, ReconnectMax: 200 * time.Millisecond, KeepAlive: 5 * time.Second},
		WAL:       agent.WALConfig{Dir: t.TempDir()},
		Batch:     agent.BatchConfig{MaxReadings: 50, MaxDelay: 50 * time.Millisecond},
		Publish:   agent.PublishConfig{Inflight: 4, AckTimeout: 5 * time.Second},
		HTTPAddr:  "127.0.0.1:0",
		Clock:     agent.ClockConfig{SimStart: time.Date(2026, 11, 22, 8, 0, 0, 0, time.FixedZone("CST", 8*3600)), Speed: simSpeed},
		Devices:   devices,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// running is an agent started by startAgent.
type running struct {
	*agent.Agent
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t testing.TB, cfg agent.Config, drivers map[string]agent.Driver) *running {
	t.Helper()
	a, err := agent.New(agent.Options{Config: cfg, Drivers: drivers, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the agent and waits for Run to return (idempotent).
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if !ok {
			return
		}
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		close(r.done)
	case <-time.After(testTimeout):
		t.Fatal("agent did not stop")
	}
}

// metric scrapes /metrics and returns the sum of the samples of name whose labels contain
// every one of labels (e.g. `result="ok"`).
func metric(t testing.TB, a *agent.Agent, name string, labels ...string) float64 {
	t.Helper()
	return metricAt(t, a.Addr().String(), name, labels...)
}

// metricAt is metric for the agent serving on addr.
func metricAt(t testing.TB, addr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		matches := true
		for _, l := range labels {
			matches = matches && strings.Contains(line, l)
		}
		if !matches {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		t.Fatalf("metric %s%v not found", name, labels)
	}
	return sum
}

func healthz(t testing.TB, a *agent.Agent) agent.Health {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h agent.Health
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/healthz: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type readingKey struct {
	meter string
	ts    int64
}

// collector plays the platform's collector: a shared subscription that records batches and
// acks each one (unless ack says not to) with telemetry.EncodeAck on the gateway's acks topic.
type collector struct {
	t      testing.TB
	client mqtt.Client
	// ack decides whether to ack the n-th delivery (from 1) of seq; nil acks all.
	ack func(seq uint64, n int) bool

	mu         sync.Mutex
	readings   map[readingKey]float64
	deliveries map[uint64][]time.Time // seq → arrival times
	sizes      map[uint64]int
	firsts     []uint64 // seqs in order of first arrival
	problems   []string
}

// newCollector connects a collector; userPass are an optional username and password.
func newCollector(t testing.TB, brokerURL string, ack func(seq uint64, n int) bool, userPass ...string) *collector {
	t.Helper()
	c := &collector{t: t, ack: ack, readings: map[readingKey]float64{}, deliveries: map[uint64][]time.Time{}, sizes: map[uint64]int{}}
	o := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID("collector-" + strconv.FormatInt(time.Now().UnixNano(), 36)).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(cl mqtt.Client) {
			cl.Subscribe(telemetry.SharedSubscription, 1, c.onBatch).Wait()
		})
	if len(userPass) == 2 {
		o.SetUsername(userPass[0]).SetPassword(userPass[1])
	}
	c.client = mqtt.NewClient(o)
	if tok := c.client.Connect(); !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
		t.Fatalf("collector connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.client.Disconnect(100) })
	return c
}

func (c *collector) onBatch(cl mqtt.Client, m mqtt.Message) {
	tp, err := telemetry.ParseTopic(m.Topic())
	if err != nil {
		c.problem("topic %s: %v", m.Topic(), err)
		return
	}
	b, bad, err := telemetry.DecodeJSON(m.Payload())
	if err != nil || len(bad) > 0 {
		c.problem("batch on %s: %v %v", m.Topic(), err, bad)
		return
	}
	c.mu.Lock()
	if b.Gateway != tp.Gateway || tp.Park != park {
		c.problems = append(c.problems, fmt.Sprintf("batch of %s on %s", b.Gateway, m.Topic()))
	}
	if b.SentAt.IsZero() {
		c.problems = append(c.problems, fmt.Sprintf("batch %d without sent_at", b.Seq))
	}
	if n, ok := c.sizes[b.Seq]; ok && n != len(b.Readings) {
		c.problems = append(c.problems, fmt.Sprintf("batch %d redelivered with %d readings, first %d", b.Seq, len(b.Readings), n))
	}
	c.sizes[b.Seq] = len(b.Readings)
	if len(c.deliveries[b.Seq]) == 0 {
		c.firsts = append(c.firsts, b.Seq)
	}
	c.deliveries[b.Seq] = append(c.deliveries[b.Seq], time.Now())
	n := len(c.deliveries[b.Seq])
	for _, r := range b.Readings {
		k := readingKey{r.Meter, r.TS.UnixMilli()}
		if v, ok := c.readings[k]; ok && v != r.Value {
			c.problems = append(c.problems, fmt.Sprintf("reading %v: value %v then %v", k, v, r.Value))
		}
		c.readings[k] = r.Value // idempotent on (meter, ts), like the real collector
	}
	ack := c.ack == nil || c.ack(b.Seq, n)
	c.mu.Unlock()
	if ack {
		cl.Publish(telemetry.AcksTopic(tp.Park, tp.Gateway), 1, false, telemetry.EncodeAck(telemetry.Ack{Seq: b.Seq}))
	}
}

func (c *collector) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// has reports whether every value of want arrived.
func (c *collector) has(want map[string][]float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := map[string]int{}
	for k := range c.readings {
		got[k.meter]++
	}
	for m, vs := range want {
		if got[m] < len(vs) {
			return false
		}
	}
	return true
}

// check compares what arrived with what the meters produced, exactly: every value once per
// meter on the 15 s grid in poll order, every sequence number, and (if inOrder) batches first
// seen in sequence order.
func (c *collector) check(t testing.TB, want map[string][]float64, inOrder bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		t.Error(p)
	}
	byMeter := map[string][]readingKey{}
	for k := range c.readings {
		byMeter[k.meter] = append(byMeter[k.meter], k)
	}
	total := 0
	for m, vs := range want {
		keys := byMeter[m]
		slices.SortFunc(keys, func(a, b readingKey) int { return int(a.ts - b.ts) })
		var got []float64
		for i, k := range keys {
			got = append(got, c.readings[k])
			if k.ts%gridSim.Milliseconds() != 0 {
				t.Errorf("meter %s: ts %d is not on the 15 s grid", m, k.ts)
			}
			if i > 0 && k.ts <= keys[i-1].ts {
				t.Errorf("meter %s: ts not increasing", m)
			}
		}
		if !slices.Equal(got, vs) {
			t.Errorf("meter %s: received %d values %v, produced %d %v", m, len(got), abbreviate(got), len(vs), abbreviate(vs))
		}
		total += len(vs)
		delete(byMeter, m)
	}
	for m := range byMeter {
		t.Errorf("received readings of unknown meter %s", m)
	}
	if len(c.readings) != total {
		t.Errorf("received %d distinct readings, produced %d", len(c.readings), total)
	}
	if !slices.IsSorted(c.firsts) {
		if inOrder {
			t.Errorf("batches first arrived out of sequence order: %v", abbreviateU(c.firsts))
		} else {
			t.Logf("batches first arrived out of sequence order (allowed here): %v", abbreviateU(c.firsts))
		}
	}
	firsts := slices.Sorted(slices.Values(c.firsts))
	if n := len(firsts); n > 0 && (firsts[0] != 1 || firsts[n-1] != uint64(n)) {
		t.Errorf("sequence numbers of %d batches run from %d to %d: gaps", n, firsts[0], firsts[n-1])
	}
	t.Logf("collector: %d readings in %d batches, %d deliveries", len(c.readings), len(c.firsts), c.deliveryCount())
}

func (c *collector) deliveryCount() int {
	n := 0
	for _, d := range c.deliveries {
		n += len(d)
	}
	return n
}

func abbreviate(v []float64) string {
	if len(v) <= 12 {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%v … %v", v[:6], v[len(v)-6:])
}

func abbreviateU(v []uint64) string {
	if len(v) <= 12 {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%v … %v", v[:6], v[len(v)-6:])
}

// walPending reopens a stopped agent's WAL and returns what it holds unacknowledged.
func walPending(t testing.TB, dir string) []wal.Entry {
	t.Helper()
	w, err := wal.Open(wal.Options{Dir: dir, MaxBytes: agent.DefaultWALMaxBytes, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.Pending()
}

func TestHappyPath(t *testing.T) {
	t.Parallel()
	mq := localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{})
	col := newCollector(t, mq.URL, nil)
	tr := newTruth()
	const polls = 10
	cfg := testConfig(t, mq.URL, fakeDevices(3, 7))
	a := startAgent(t, cfg, fakeDrivers(tr, polls))

	waitFor(t, "every reading at the collector and the wal empty", testTimeout, func() bool {
		return tr.count() == 3*7*polls && col.has(tr.snapshot()) && a.Health().WAL.PendingBatches == 0
	})
	h := healthz(t, a.Agent)
	if !h.Connected || h.Gateway != gateway || len(h.Devices) != 3 || !h.Devices[0].OK || h.Devices[0].LastSlot.IsZero() {
		t.Errorf("healthz %+v", h)
	}
	for name, want := range map[string]float64{
		"parkcarbon_edge_readings_polled_total": 3 * 7 * polls,
		"parkcarbon_edge_wal_pending_batches":   0,
		"parkcarbon_edge_wal_pending_readings":  0,
		"parkcarbon_edge_batches_resent_total":  0,
		"parkcarbon_edge_connected":             1,
	} {
		if got := metric(t, a.Agent, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// After its last value a fake device keeps answering, with no values.
	if got := metric(t, a.Agent, "parkcarbon_edge_polls_total", `result="ok"`, `device="dev-1"`); got < polls {
		t.Errorf("ok polls of dev-1 = %v, want at least %d", got, polls)
	}
	if got := metric(t, a.Agent, "parkcarbon_edge_polls_total", `result="failed"`); got != 0 {
		t.Errorf("failed polls = %v", got)
	}
	appended := metric(t, a.Agent, "parkcarbon_edge_batches_appended_total")
	if acked := metric(t, a.Agent, "parkcarbon_edge_batches_acked_total"); acked != appended || appended == 0 {
		t.Errorf("acked %v of %v appended batches", acked, appended)
	}
	a.stop(t)
	if p := walPending(t, cfg.WAL.Dir); len(p) != 0 {
		t.Errorf("wal holds %d batches after every ack", len(p))
	}
	col.check(t, tr.snapshot(), true)
}

func TestResendWithoutAck(t *testing.T) {
	t.Parallel()
	mq := localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{})
	// The collector "crashes" before acking the first delivery of every batch.
	col := newCollector(t, mq.URL, func(_ uint64, n int) bool { return n > 1 })
	tr := newTruth()
	cfg := testConfig(t, mq.URL, fakeDevices(1, 3))
	cfg.Publish.AckTimeout = 300 * time.Millisecond
	a := startAgent(t, cfg, fakeDrivers(tr, 4))

	waitFor(t, "every batch acked after its resend", testTimeout, func() bool {
		return tr.count() == 12 && col.has(tr.snapshot()) && a.Health().WAL.PendingBatches == 0
	})
	col.mu.Lock()
	for seq, at := range col.deliveries {
		if len(at) < 2 {
			t.Errorf("batch %d delivered %d times, want a resend", seq, len(at))
		} else if gap := at[1].Sub(at[0]); gap < cfg.Publish.AckTimeout-100*time.Millisecond {
			t.Errorf("batch %d resent after %v, before the ack timeout %v", seq, gap, cfg.Publish.AckTimeout)
		}
	}
	batches := len(col.firsts)
	col.mu.Unlock()
	if got := metric(t, a.Agent, "parkcarbon_edge_batches_resent_total"); got < float64(batches) {
		t.Errorf("resent %v, want at least %d", got, batches)
	}
	if got := metric(t, a.Agent, "parkcarbon_edge_batches_acked_total"); got != float64(batches) {
		t.Errorf("acked %v, want %d", got, batches)
	}
	a.stop(t)
	col.check(t, tr.snapshot(), true)
}

// TestBrokerOutage stops the broker while the meters keep being polled, starts it again, and
// counts every reading at the collector.
func TestBrokerOutage(t *testing.T) {
	t.Parallel()
	mq := localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{})
	col := newCollector(t, mq.URL, nil)
	tr := newTruth()
	const polls = 40 // 4 s
	cfg := testConfig(t, mq.URL, fakeDevices(2, 10))
	// Mosquitto 2.0 does not restore shared subscriptions after a restart: what the agent
	// publishes before the collector has resubscribed is dropped by the broker, and only the
	// agent's ack timeout brings it back (out of order). The collector reconnects every
	// 100 ms; the agent waits about a second, so it usually comes back second.
	cfg.Broker.ReconnectMax = time.Second
	cfg.Publish.AckTimeout = time.Second
	a := startAgent(t, cfg, fakeDrivers(tr, polls))

	waitFor(t, "first readings at the collector", testTimeout, func() bool { return tr.count() > 0 && col.has(tr.snapshot()) })
	if err := mq.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent to notice the outage", testTimeout, func() bool { return !a.Health().Connected })
	before := tr.count()
	backlog := a.Health().WAL.PendingReadings
	time.Sleep(1500 * time.Millisecond)
	if tr.count() <= before {
		t.Fatal("polling stopped during the outage")
	}
	if got := a.Health().WAL.PendingReadings; got <= backlog {
		t.Fatalf("wal backlog did not grow during the outage: %d then %d", backlog, got)
	}
	if got := metric(t, a.Agent, "parkcarbon_edge_connected"); got != 0 {
		t.Errorf("connected gauge %v during the outage", got)
	}
	t.Logf("outage: %d readings polled, %d pending in the wal", tr.count(), a.Health().WAL.PendingReadings)
	if err := mq.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every reading at the collector and the wal empty", testTimeout, func() bool {
		return tr.count() == 2*10*polls && col.has(tr.snapshot()) && a.Health().WAL.PendingBatches == 0
	})
	resent := metric(t, a.Agent, "parkcarbon_edge_batches_resent_total")
	if resent > 0 {
		t.Logf("%v batches resent after the ack timeout: the broker dropped them before the collector resubscribed", resent)
	}
	a.stop(t)
	col.check(t, tr.snapshot(), resent == 0)
}

// TestWALFull runs with the broker unreachable until the WAL drops, and accounts for every
// reading: polled = still in the WAL + dropped (and counted).
func TestWALFull(t *testing.T) {
	t.Parallel()
	port, err := localsvc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tr := newTruth()
	cfg := testConfig(t, fmt.Sprintf("tcp://127.0.0.1:%d", port), fakeDevices(1, 500))
	cfg.WAL.MaxBytes = agent.MinWALMaxBytes
	cfg.Batch.MaxReadings = 500
	cfg.Clock.Speed = 1500 // a poll of 500 readings every 10 ms
	a := startAgent(t, cfg, fakeDrivers(tr, 0))

	waitFor(t, "the wal to drop readings", testTimeout, func() bool {
		return metric(t, a.Agent, "parkcarbon_edge_wal_dropped_readings_total") > 0
	})
	if got := metric(t, a.Agent, "parkcarbon_edge_wal_bytes"); got > float64(cfg.WAL.MaxBytes) {
		t.Errorf("wal holds %v bytes, bound %d", got, cfg.WAL.MaxBytes)
	}
	if got := metric(t, a.Agent, "parkcarbon_edge_wal_dropped_batches_total"); got == 0 {
		t.Error("dropped readings but no dropped batches")
	}
	a.stop(t)
	h := a.Health()
	if polled := int64(tr.count()); polled != h.WAL.PendingReadings+int64(h.WAL.DroppedReadings) {
		t.Errorf("polled %d readings, wal holds %d and dropped %d", polled, h.WAL.PendingReadings, h.WAL.DroppedReadings)
	}
	var kept int64
	pending := walPending(t, cfg.WAL.Dir)
	for _, e := range pending {
		kept += int64(e.Readings)
	}
	if kept != h.WAL.PendingReadings {
		t.Errorf("reopened wal holds %d readings, agent reported %d", kept, h.WAL.PendingReadings)
	}
	// The newest are kept: pending ends with the last sequence number.
	if n := len(pending); n == 0 || pending[n-1].Seq != h.WAL.NextSeq-1 {
		t.Errorf("pending batches do not end at the newest one")
	}
	t.Logf("polled %d readings: %d kept, %d dropped", tr.count(), kept, h.WAL.DroppedReadings)
}

// TestAuthenticated runs against a broker that requires passwords and restricts topics, the
// agent reading its password from password_file; a wrong password keeps it disconnected with
// its readings in the WAL.
func TestAuthenticated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	passwd, acl := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	for user, pass := range map[string]string{gateway: "gw-secret", "collector": "col-secret"} {
		if out, err := exec.Command("mosquitto_passwd", "-b", passwd, user, pass).CombinedOutput(); err != nil {
			if _, serr := os.Stat(passwd); os.IsNotExist(serr) {
				out, err = exec.Command("mosquitto_passwd", "-b", "-c", passwd, user, pass).CombinedOutput()
			}
			if err != nil {
				t.Fatalf("mosquitto_passwd: %v %s", err, out)
			}
		}
	}
	writeFile(t, acl, "user "+gateway+"\ntopic write parks/p1/gateways/"+gateway+"/readings\ntopic read parks/p1/gateways/"+gateway+"/acks\n\n"+
		"user collector\ntopic read parks/+/gateways/+/readings\ntopic write parks/+/gateways/+/acks\n")
	if err := os.Chmod(passwd, 0o644); err != nil {
		t.Fatal(err)
	}
	mq := localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{PasswordFile: passwd, ACLFile: acl})
	col := newCollector(t, mq.URL, nil, "collector", "col-secret")

	t.Run("right password", func(t *testing.T) {
		tr := newTruth()
		cfg := testConfig(t, mq.URL, fakeDevices(1, 4))
		cfg.Broker.PasswordFile = filepath.Join(t.TempDir(), "password")
		writeFile(t, cfg.Broker.PasswordFile, "gw-secret\n")
		a := startAgent(t, cfg, fakeDrivers(tr, 5))
		waitFor(t, "every reading acked", testTimeout, func() bool {
			return tr.count() == 20 && col.has(tr.snapshot()) && a.Health().WAL.PendingBatches == 0
		})
		a.stop(t)
		col.check(t, tr.snapshot(), true)
	})
	t.Run("wrong password", func(t *testing.T) {
		tr := newTruth()
		cfg := testConfig(t, mq.URL, fakeDevices(1, 4))
		cfg.Broker.ClientID = "gw-01-wrong"
		cfg.Broker.Password = "guess"
		a := startAgent(t, cfg, fakeDrivers(tr, 5))
		waitFor(t, "every reading in the wal", testTimeout, func() bool {
			return tr.count() == 20 && a.Health().WAL.PendingReadings == 20
		})
		if a.Health().Connected {
			t.Fatal("connected with a wrong password")
		}
		if got := metric(t, a.Agent, "parkcarbon_edge_connect_failures_total"); got == 0 {
			t.Error("failed connection attempts not counted")
		}
	})
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "tcp://127.0.0.1:1", fakeDevices(1, 1))
	for name, tc := range map[string]struct {
		edit    func(c *agent.Config)
		drivers map[string]agent.Driver
		want    string
	}{
		"unknown protocol": {func(c *agent.Config) { c.Devices[0].Protocol = "bacnet" }, fakeDrivers(nil, 0), `protocol "bacnet" has no driver; known: fake`},
		"invalid config":   {func(c *agent.Config) { c.GatewayID = "" }, fakeDrivers(nil, 0), "gateway_id is required"},
		"password file":    {func(c *agent.Config) { c.Broker.PasswordFile = "/nonexistent" }, fakeDrivers(nil, 0), "broker.password_file"},
		"driver refuses": {func(*agent.Config) {}, map[string]agent.Driver{fakeProto: func(device.Config, *slog.Logger) (device.Device, error) {
			return nil, fmt.Errorf("no points")
		}}, `device "dev-0": no points`},
	} {
		t.Run(name, func(t *testing.T) {
			c := cfg
			c.Devices = slices.Clone(cfg.Devices)
			tc.edit(&c)
			_, err := agent.New(agent.Options{Config: c, Drivers: tc.drivers, Logger: testLogger(t)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestWALOfAnotherGateway: a WAL dir that holds another gateway's batches is refused rather
// than published under the wrong id.
func TestWALOfAnotherGateway(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "tcp://127.0.0.1:1", fakeDevices(1, 1))
	w, err := wal.Open(wal.Options{Dir: cfg.WAL.Dir, MaxBytes: agent.DefaultWALMaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(telemetry.Batch{Gateway: "gw-02", Readings: []telemetry.Reading{{Meter: "m", TS: time.Now(), Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.New(agent.Options{Config: cfg, Drivers: fakeDrivers(nil, 0), Logger: testLogger(t)}); err == nil || !strings.Contains(err.Error(), `batches of gateway "gw-02"`) {
		t.Fatalf("New = %v", err)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}
