package alertsvc

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
)

// t0 is the start of every scripted clock.
var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// at is t0 plus minutes.
func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

const testActor = "test"

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// openStore opens (and migrates) the SQLite database at path; several stores may share it.
func openStore(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), path, nil)
	must(t, err)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	must(t, s.Migrate(t.Context()))
	return s
}

// newStore returns a store in a fresh database with parks p1 and p2, enterprise e1 and
// electricity meter m1 in p1, and endpoints: p1 "ops" (webhook) and "mail" (email), p2 "ops"
// and "p2hook" (webhooks).
func newStore(t *testing.T) (*sqlstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parkcarbon.db")
	s := openStore(t, path)
	ctx := t.Context()
	for _, p := range []string{"p1", "p2"} {
		must(t, s.CreatePark(ctx, registry.Park{ID: p, Name: "Park " + p, Province: "Jiangsu", Timezone: "Asia/Shanghai"}, testActor))
	}
	must(t, s.CreateEnterprise(ctx, registry.Enterprise{ID: "e1", ParkID: "p1", Name: "Enterprise e1", IndustryCode: "C3011",
		CreditCode: "91320500MA1XXXXX0X"}, testActor))
	must(t, s.CreateMeter(ctx, registry.Meter{ID: "m1", ParkID: "p1", EnterpriseID: "e1", Carrier: registry.Electricity,
		Direction: registry.In, Kind: registry.Counter, Unit: "kWh", Multiplier: 1, Rollover: 99999999,
		GreenClass: registry.GreenNone, IntervalSeconds: 900}, testActor))
	for _, ep := range []alerting.Endpoint{
		{ID: "ops", ParkID: "p1", Kind: alerting.EndpointWebhook, URL: "https://ops.example/hook", Secret: "0123456789abcdef"},
		{ID: "mail", ParkID: "p1", Kind: alerting.EndpointEmail, To: []string{"energy@example.com"}},
		{ID: "ops", ParkID: "p2", Kind: alerting.EndpointWebhook, URL: "https://p2.example/ops", Secret: "0123456789abcdef"},
		{ID: "p2hook", ParkID: "p2", Kind: alerting.EndpointWebhook, URL: "https://p2.example/hook", Secret: "0123456789abcdef"},
	} {
		must(t, s.CreateEndpoint(ctx, ep, testActor))
	}
	return s, path
}

// powerRule is a park-wide power threshold rule: fires above 500 kW.
func powerRule(park, id string) alerting.Rule {
	return alerting.Rule{ID: id, ParkID: park, Name: "Power " + id, Kind: alerting.KindThreshold,
		Metric: alerting.MetricPower, Op: ">", Threshold: 500, Severity: alerting.SeverityWarning}
}

// sourceCall is one Observe call.
type sourceCall struct {
	Park  string
	Rules []string
	At    time.Time
	Wall  time.Time
}

// fakeSource returns scripted results per rule; a rule without a script has no observations
// (everything clear).
type fakeSource struct {
	mu      sync.Mutex
	results map[string]alerting.Result
	calls   []sourceCall
	// during, if set, runs inside Observe: between the engine's reading and saving of state.
	during func()
}

var _ alerting.Source = (*fakeSource)(nil)

func newSource() *fakeSource { return &fakeSource{results: map[string]alerting.Result{}} }

// set scripts rule's observations: one per value, labelled meter=mK for the k-th (from 1).
func (f *fakeSource) set(rule string, values ...float64) {
	obs := make([]alerting.Observation, len(values))
	for i, v := range values {
		obs[i] = alerting.Observation{Labels: map[string]string{"meter": meterLabel(i)}, Value: v}
	}
	f.setResult(rule, alerting.Result{Observations: obs})
}

func meterLabel(i int) string { return "m" + string(rune('1'+i)) }

func (f *fakeSource) setResult(rule string, r alerting.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[rule] = r
}

func (f *fakeSource) Observe(_ context.Context, park string, rules []alerting.Rule, now time.Time) map[string]alerting.Result {
	f.mu.Lock()
	call := sourceCall{Park: park, At: now, Wall: time.Now()}
	out := map[string]alerting.Result{}
	for _, r := range rules {
		call.Rules = append(call.Rules, r.ID)
		res := f.results[r.ID]
		res.Observations = slices.Clone(res.Observations)
		out[r.ID] = res
	}
	f.calls = append(f.calls, call)
	during := f.during
	f.mu.Unlock()
	if during != nil {
		during()
	}
	return out
}

func (f *fakeSource) Calls() []sourceCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// sent is one notification handed to the notifier.
type sent struct {
	Endpoint string // park/id
	Kind     string
	AlertID  string
	State    string
	Rule     string
	Value    float64
}

// recorder is a Notifier that records what it is given; refuse makes it report a full queue.
type recorder struct {
	mu     sync.Mutex
	got    []sent
	refuse func(ep alerting.Endpoint) bool
}

var _ Notifier = (*recorder)(nil)

func (r *recorder) Notify(ep alerting.Endpoint, ev alerting.Event, ruleName string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil && r.refuse(ep) {
		return false
	}
	r.got = append(r.got, sent{Endpoint: ep.ParkID + "/" + ep.ID, Kind: ev.Kind, AlertID: ev.Alert.ID, State: ev.Alert.State,
		Rule: ruleName, Value: ev.Alert.Value})
	return true
}

// take returns and forgets what was recorded.
func (r *recorder) take() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

func (r *recorder) all() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// newEngine builds an engine over store with the scripted clock *now.
func newEngine(t *testing.T, store alerting.Store, src alerting.Source, n Notifier, hub *Hub, now *time.Time) *Engine {
	t.Helper()
	e, err := NewEngine(Options{Store: store, Source: src, Notifier: n, Hub: hub, Holder: "test",
		Interval: time.Minute, Now: func() time.Time { return *now }})
	must(t, err)
	return e
}

// cycle runs one evaluation at now and fails the test on error.
func cycle(t *testing.T, e *Engine, now time.Time) CycleStats {
	t.Helper()
	st, err := e.Cycle(t.Context(), now)
	if err != nil {
		t.Fatalf("cycle at %v: %v", now, err)
	}
	return st
}

// kinds lists the kinds and endpoints of notifications as "kind@park/endpoint".
func kinds(ns []sent) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Kind + "@" + n.Endpoint
	}
	return out
}

// drain returns the feed events buffered in ch.
func drain(ch <-chan FeedEvent) []FeedEvent {
	var out []FeedEvent
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

// withUser is a context whose principal acknowledges alerts.
func withUser(ctx context.Context) context.Context {
	return auth.WithPrincipal(ctx, &auth.Principal{TokenID: "tok1", Name: "alice", Role: auth.RoleOperator, ParkIDs: []string{"p1"}})
}

// alertID is the id of the alert of rule r (in park p1 unless r says otherwise) for meter.
func alertID(r alerting.Rule, meter string) string {
	return alerting.AlertID(r.ID, alerting.AlertLabels(r, map[string]string{"meter": meter}))
}
