package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/parkcarbon/parkcarbon/edge/agent"
	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/pkg/notify"
)

// startAlerting runs `parkcarbon serve --roles api,accounting,alerting` evaluating the rules
// every interval, on the same PostgreSQL database and InfluxDB as the collectors, and returns
// the process and its REST base URL.
func (p *park) startAlerting(name, adminToken string, interval time.Duration) (*proc, string) {
	p.t.Helper()
	httpPort := freePort(p.t)
	env := []string{"PARKCARBON_INFLUX_URL=" + p.influx.URL, "PARKCARBON_INFLUX_BUCKET=" + p.influx.Bucket,
		"PARKCARBON_DB_URL=" + p.dsn, "PARKCARBON_MQTT_URL=" + p.mq.URL, "PARKCARBON_MQTT_SERVICE_PASSWORD=e2e",
		"PARKCARBON_DATA_DIR=" + filepath.Join(p.dir, name), "PARKCARBON_ROLES=api,accounting,alerting",
		"PARKCARBON_ALERT_INTERVAL=" + interval.String(),
		"PARKCARBON_ADMIN_TOKEN=" + adminToken, "PARKCARBON_LOG_LEVEL=debug",
		fmt.Sprintf("PARKCARBON_HTTP_ADDR=127.0.0.1:%d", httpPort), fmt.Sprintf("PARKCARBON_GRPC_ADDR=127.0.0.1:%d", freePort(p.t))}
	c := startProc(p.t, name, filepath.Join(p.dir, name+".log"), env, bins.parkcarbon, "serve")
	c.health = fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort)
	waitHTTP(p.t, c.health, time.Minute, c)
	return c, fmt.Sprintf("http://127.0.0.1:%d", httpPort)
}

// startRealTimeAgent runs the edge agent straight against the broker on the wall clock,
// polling devs (the devices of several simulators): readings are stamped with the real time
// of their poll slot, whatever the simulators' clocks show.
func (p *park) startRealTimeAgent(devs []device.Config) {
	p.t.Helper()
	port := freePort(p.t)
	cfg := agent.Config{
		GatewayID: gatewayID, ParkID: parkID,
		Broker:   agent.BrokerConfig{URL: p.mq.URL, Password: p.password, ReconnectMax: 2 * time.Second},
		WAL:      agent.WALConfig{Dir: filepath.Join(p.dir, "wal")},
		Publish:  agent.PublishConfig{Inflight: 10, AckTimeout: 3 * time.Second},
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", port),
		Devices:  devs,
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

// postJSON POSTs body as JSON with a bearer token and wants 201 Created.
func postJSON(url, token, body string) error {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// hookEvent is one webhook POST as received: the parts of the body the test reads (the
// version 1 body documented in pkg/notify), whether its signature was right, and when.
type hookEvent struct {
	Event    string            `json:"event"`
	ParkID   string            `json:"park_id"`
	RuleID   string            `json:"rule_id"`
	AlertID  string            `json:"alert_id"`
	State    string            `json:"state"`
	Labels   map[string]string `json:"labels"`
	Value    *float64          `json:"value"`
	Summary  string            `json:"summary"`
	FiredAt  *string           `json:"fired_at"`
	Resolved *string           `json:"resolved_at"`

	delivery string
	signed   bool
	at       time.Time
}

func (e hookEvent) String() string {
	v := "null"
	if e.Value != nil {
		v = fmt.Sprintf("%.4g", *e.Value)
	}
	return fmt.Sprintf("%s %s %s meter=%q enterprise=%q value=%s signed=%v delivery=%s (%s)",
		e.At(), e.Event, e.RuleID, e.Labels["meter"], e.Labels["enterprise"], v, e.signed, e.delivery, e.Summary)
}

// At is the receive time of the event, for logs.
func (e hookEvent) At() string { return e.at.Format("15:04:05.000") }

// webhook is an httptest receiver of alert notifications that checks each body's
// X-Parkcarbon-Signature with notify.Verify before decoding it, and records every POST.
type webhook struct {
	srv    *httptest.Server
	secret string

	mu     sync.Mutex
	events []hookEvent
	errs   []string
}

func newWebhook(t *testing.T, secret string) *webhook {
	w := &webhook{secret: secret}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve)) // listens on 127.0.0.1
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) URL() string { return w.srv.URL + "/hooks/parkcarbon" }

func (w *webhook) serve(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.fail("read body: %v", err)
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	e := hookEvent{delivery: r.Header.Get(notify.HeaderDelivery), at: time.Now(),
		signed: notify.Verify(w.secret, body, r.Header.Get(notify.HeaderSignature))}
	if err := json.Unmarshal(body, &e); err != nil {
		w.fail("decode %s: %v", body, err)
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	if h := r.Header.Get(notify.HeaderEvent); h != e.Event {
		w.fail("header %s %q, body event %q", notify.HeaderEvent, h, e.Event)
	}
	w.mu.Lock()
	w.events = append(w.events, e)
	w.mu.Unlock()
	if !e.signed {
		http.Error(rw, "bad signature", http.StatusUnauthorized)
		return
	}
	rw.WriteHeader(http.StatusNoContent)
}

func (w *webhook) fail(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, fmt.Sprintf(format, args...))
}

func (w *webhook) received() ([]hookEvent, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]hookEvent(nil), w.events...), append([]string(nil), w.errs...)
}

// feedEvent is one Server-Sent Event of /alerts/stream (a protojson AlertEvent).
type feedEvent struct {
	Kind  string `json:"kind"`
	Alert struct {
		ID     string            `json:"id"`
		RuleID string            `json:"rule_id"`
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
		Value  float64           `json:"value"`
	} `json:"alert"`
	RuleName string `json:"rule_name"`
	At       string `json:"at"`
}

// feed follows a park's live alert feed over Server-Sent Events until the test ends.
type feed struct {
	mu     sync.Mutex
	events []feedEvent
	err    error
	done   chan struct{}
}

// watchFeed subscribes to url and returns once the server confirmed the subscription (the
// "subscribed" event), so that every later alert event reaches it.
func watchFeed(t *testing.T, url, token string, within time.Duration) *feed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{done: make(chan struct{})}
	t.Cleanup(func() { cancel(); <-f.done })
	subscribed := make(chan struct{})
	go func() {
		defer close(f.done)
		f.setErr(f.read(ctx, url, token, subscribed))
	}()
	select {
	case <-subscribed:
	case <-f.done:
		t.Fatalf("alert feed %s ended before the subscription: %v", url, f.error())
	case <-time.After(within):
		t.Fatalf("alert feed %s: no subscribed event within %s", url, within)
	}
	return f
}

func (f *feed) read(ctx context.Context, url, token string, subscribed chan struct{}) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("GET %s: content type %q", url, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var name string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var e feedEvent
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e); err != nil {
				return fmt.Errorf("decode feed event %q: %w", line, err)
			}
			if e.Kind != name {
				return fmt.Errorf("feed event named %q carries kind %q", name, e.Kind)
			}
			if e.Kind == "subscribed" {
				close(subscribed)
				continue
			}
			f.mu.Lock()
			f.events = append(f.events, e)
			f.mu.Unlock()
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

func (f *feed) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *feed) error() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *feed) received() ([]feedEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]feedEvent(nil), f.events...), f.err
}
