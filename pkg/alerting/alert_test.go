package alerting

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

var t0 = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

func rule() Rule {
	clear := 90.0
	return Rule{ID: "demand", ParkID: "p1", Name: "e1 above contracted demand", Kind: KindThreshold, EnterpriseID: "e1",
		Metric: MetricPower, Op: ">", Threshold: 100, Clear: &clear, Window: 5 * time.Minute, For: 5 * time.Minute,
		Severity: SeverityCritical}
}

func obs(v float64) *Observation {
	return &Observation{Labels: map[string]string{"enterprise": "e1"}, Value: v}
}

// run feeds values one minute apart (NaN: not observed) and returns the states and events.
type step struct {
	at     time.Duration
	value  *Observation
	state  string
	events string // event kinds joined by ","
}

func play(t *testing.T, r Rule, steps []step) Alert {
	t.Helper()
	var a Alert
	for i, s := range steps {
		var evs []Event
		a, evs = Step(r, a, s.value, t0.Add(s.at))
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, e.Kind)
			if e.Alert.State != a.State {
				t.Errorf("step %d: event carries state %s, alert is %s", i, e.Alert.State, a.State)
			}
		}
		if a.State != s.state || strings.Join(kinds, ",") != s.events {
			t.Fatalf("step %d at +%v (value %v): state %s events %q, want %s %q", i, s.at, s.value, a.State, strings.Join(kinds, ","), s.state, s.events)
		}
	}
	return a
}

func TestPendingThenFiringThenResolved(t *testing.T) {
	a := play(t, rule(), []step{
		{0, obs(50), StateInactive, ""},
		{1 * time.Minute, obs(120), StatePending, ""},
		{3 * time.Minute, obs(130), StatePending, ""},
		{6 * time.Minute, obs(125), StateFiring, "firing"}, // held for 5 minutes
		{7 * time.Minute, obs(95), StateFiring, ""},        // between clear (90) and threshold: holds
		{8 * time.Minute, obs(89), StateResolved, "resolved"},
		{9 * time.Minute, obs(50), StateResolved, ""},
	})
	if !a.FiredAt.Equal(t0.Add(6*time.Minute)) || !a.ResolvedAt.Equal(t0.Add(8*time.Minute)) || a.ID != AlertID("demand", map[string]string{"enterprise": "e1"}) {
		t.Fatalf("alert %+v", a)
	}
}

func TestPendingThatDoesNotHoldNeverFires(t *testing.T) {
	play(t, rule(), []step{
		{0, obs(120), StatePending, ""},
		{4 * time.Minute, obs(80), StateInactive, ""},
		{5 * time.Minute, obs(120), StatePending, ""}, // the clock starts again
		{9 * time.Minute, obs(120), StatePending, ""},
		{10 * time.Minute, obs(120), StateFiring, "firing"},
	})
}

func TestHysteresisBandHoldsEitherWay(t *testing.T) {
	r := rule()
	r.For = 0
	play(t, r, []step{
		{0, obs(95), StateInactive, ""}, // in the band, never fired: nothing
		{1 * time.Minute, obs(101), StateFiring, "firing"},
		{2 * time.Minute, obs(91), StateFiring, ""},
		{3 * time.Minute, obs(100), StateFiring, ""},          // at the threshold: not a breach, not clear
		{4 * time.Minute, obs(90), StateResolved, "resolved"}, // at the clear value: clear
	})
}

func TestBelowThresholdRule(t *testing.T) {
	clear := 0.65
	r := Rule{ID: "share", ParkID: "p1", Name: "clean share", Kind: KindThreshold, Metric: MetricCleanEnergyShare, Op: "<",
		Threshold: 0.6, Clear: &clear, Window: 24 * time.Hour, Severity: SeverityWarning}
	play(t, r, []step{
		{0, obs(0.59), StateFiring, "firing"},
		{time.Minute, obs(0.62), StateFiring, ""},
		{2 * time.Minute, obs(0.66), StateResolved, "resolved"},
	})
}

func TestKeepFiringFor(t *testing.T) {
	r := rule()
	r.For, r.KeepFiringFor = 0, 10*time.Minute
	play(t, r, []step{
		{0, obs(120), StateFiring, "firing"},
		{2 * time.Minute, obs(50), StateFiring, ""},
		{9 * time.Minute, obs(50), StateFiring, ""},
		{10 * time.Minute, obs(50), StateResolved, "resolved"}, // 10 minutes after the last breach
	})
}

func TestMissingObservationClears(t *testing.T) {
	r := rule()
	r.For = 0
	play(t, r, []step{
		{0, obs(120), StateFiring, "firing"},
		{time.Minute, nil, StateResolved, "resolved"},
	})
}

// A value bouncing across the threshold gives a few notifications, then one held alert,
// resolved once it has stayed clear for FlapWindow.
func TestFlappingHoldsOneAlert(t *testing.T) {
	r := rule()
	r.For = 0
	var steps []step
	at := time.Duration(0)
	add := func(v float64, state, events string) {
		steps = append(steps, step{at, obs(v), state, events})
		at += time.Minute
	}
	add(120, StateFiring, "firing")
	add(50, StateResolved, "resolved")
	add(120, StateFiring, "firing")
	add(50, StateResolved, "resolved")
	add(120, StateFiring, "firing")
	add(50, StateFiring, "flapping") // a fourth change within the hour: held
	for range 20 {
		add(120, StateFiring, "")
		add(50, StateFiring, "")
	}
	a := play(t, r, steps)
	if !a.Flapping {
		t.Fatal("not marked flapping")
	}
	// Clear for a whole FlapWindow: resolved, once.
	a2, evs := Step(r, a, obs(50), a.ClearSince.Add(FlapWindow-time.Second))
	if a2.State != StateFiring || len(evs) != 0 {
		t.Fatalf("resolved before a whole flap window: %s %v", a2.State, evs)
	}
	a3, evs := Step(r, a2, obs(50), a.ClearSince.Add(FlapWindow))
	if a3.State != StateResolved || len(evs) != 1 || evs[0].Kind != EventResolved || a3.Flapping {
		t.Fatalf("after a clear flap window: %s %v flapping %v", a3.State, evs, a3.Flapping)
	}
}

func TestAckAndRepeat(t *testing.T) {
	r := rule()
	r.For, r.RepeatInterval = 0, 30*time.Minute
	a, evs := Step(r, Alert{}, obs(120), t0)
	if len(evs) != 1 {
		t.Fatal(evs)
	}
	a, evs = Step(r, a, obs(120), t0.Add(30*time.Minute))
	if len(evs) != 1 || evs[0].Kind != EventFiring {
		t.Fatalf("no repeat after the repeat interval: %v", evs)
	}
	if _, err := Ack(a, "", "", t0); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("ack without a user: %v", err)
	}
	a, err := Ack(a, "operator:tok1", "crew on site", t0.Add(31*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	a, evs = Step(r, a, obs(120), t0.Add(90*time.Minute))
	if len(evs) != 0 || a.AckedBy != "operator:tok1" {
		t.Fatalf("an acknowledged alert repeats: %v", evs)
	}
	a, _ = Step(r, a, obs(50), t0.Add(91*time.Minute))
	if a.State != StateResolved || a.AckedBy != "" || a.AckComment != "" {
		t.Fatalf("resolution keeps the acknowledgement: %+v", a)
	}
	if _, err := Ack(a, "operator:tok1", "", t0); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("a resolved alert was acknowledged: %v", err)
	}
}

// Restart in every state: an alert that went through JSON (how the store keeps it) continues
// exactly as the one that did not.
func TestRestartInEveryState(t *testing.T) {
	r := rule()
	r.KeepFiringFor, r.RepeatInterval = 2*time.Minute, 10*time.Minute
	values := []float64{50, 120, 130, 125, 125, 125, 125, 95, 85, 85, 85, 120, 50, 120, 50, 120, 50, 120, 50, 50}
	var live Alert
	for i, v := range values {
		now := t0.Add(time.Duration(i) * time.Minute)
		// Restart: the state goes through its stored form before this step.
		raw, err := json.Marshal(live)
		if err != nil {
			t.Fatal(err)
		}
		var restored Alert
		if err := json.Unmarshal(raw, &restored); err != nil {
			t.Fatal(err)
		}
		a1, e1 := Step(r, live, obs(v), now)
		a2, e2 := Step(r, restored, obs(v), now)
		j1, _ := json.Marshal(a1)
		j2, _ := json.Marshal(a2)
		if string(j1) != string(j2) || len(e1) != len(e2) {
			t.Fatalf("step %d (state %s): restored alert diverges:\n%s\n%s", i, live.State, j1, j2)
		}
		live = a1
	}
}

func TestRuleValidation(t *testing.T) {
	ptr := func(v float64) *float64 { return &v }
	for name, c := range map[string]struct {
		mutate func(*Rule)
		field  string
	}{
		"kind":             {func(r *Rule) { r.Kind = "magic" }, "kind"},
		"metric":           {func(r *Rule) { r.Metric = "happiness" }, "metric"},
		"negative for":     {func(r *Rule) { r.For = -time.Minute }, "for"},
		"negative keep":    {func(r *Rule) { r.KeepFiringFor = -time.Second }, "keep_firing_for"},
		"clear wrong side": {func(r *Rule) { r.Clear = ptr(110) }, "clear"},
		"below clear":      {func(r *Rule) { r.Op, r.Clear = "<", ptr(90) }, "clear"},
		"op":               {func(r *Rule) { r.Op = ">=" }, "op"},
		"severity":         {func(r *Rule) { r.Severity = "meh" }, "severity"},
		"id":               {func(r *Rule) { r.ID = "Bad Id" }, "id"},
		"label":            {func(r *Rule) { r.Labels = map[string]string{"Team-X": "a"} }, "labels"},
		"both scopes":      {func(r *Rule) { r.MeterID = "m1" }, "meter_id"},
		"no window":        {func(r *Rule) { r.Window = 0 }, "window"},
		"compare":          {func(r *Rule) { r.Kind, r.Compare = KindRateOfChange, "month" }, "compare"},
		"budget":           {func(r *Rule) { r.Kind, r.BudgetT = KindCarbonBudget, 0 }, "budget_t"},
		"monthly budget": {func(r *Rule) {
			r.Kind, r.BudgetT, r.Trajectory, r.MonthlyBudgetT = KindCarbonBudget, 1200, TrajectoryMonthly, []float64{100, 100}
		}, "monthly_budget_t"},
		"quality":     {func(r *Rule) { r.Kind, r.Qualities = KindDataQuality, []string{"bad vibes"} }, "qualities"},
		"no_data ent": {func(r *Rule) { r.Kind = KindNoData }, "enterprise_id"},
	} {
		t.Run(name, func(t *testing.T) {
			r := rule()
			c.mutate(&r)
			err := r.Validate()
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("Validate = %v, want a field error on %s", err, c.field)
			}
		})
	}
	if err := rule().Validate(); err != nil {
		t.Fatalf("valid rule refused: %v", err)
	}
}

func TestSilences(t *testing.T) {
	s := Silence{ID: "s1", ParkID: "p1", StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "op", Comment: "maintenance",
		Matchers: []Matcher{{Name: "enterprise", Value: "e1"}, {Name: "severity", Value: "crit.*", Regex: true}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	labels := AlertLabels(rule(), map[string]string{"enterprise": "e1"})
	if !Silenced([]Silence{s}, labels, t0.Add(time.Minute)) {
		t.Fatal("matching active silence does not silence")
	}
	if Silenced([]Silence{s}, labels, t0.Add(time.Hour)) || Silenced([]Silence{s}, labels, t0.Add(-time.Second)) {
		t.Fatal("silence active outside its window")
	}
	labels["enterprise"] = "e2"
	if Silenced([]Silence{s}, labels, t0.Add(time.Minute)) {
		t.Fatal("silence matches another enterprise")
	}
	for name, mutate := range map[string]func(*Silence){
		"no matchers": func(s *Silence) { s.Matchers = nil },
		"bad regex":   func(s *Silence) { s.Matchers = []Matcher{{Name: "a", Value: "(", Regex: true}} },
		"backwards":   func(s *Silence) { s.EndsAt = s.StartsAt.Add(-time.Minute) },
		"too long":    func(s *Silence) { s.EndsAt = s.StartsAt.Add(100 * 24 * time.Hour) },
		"no comment":  func(s *Silence) { s.Comment = " " },
	} {
		c := s
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}

func TestEndpointValidation(t *testing.T) {
	good := Endpoint{ID: "ops", ParkID: "p1", Kind: EndpointWebhook, URL: "https://ops.example/hook", Secret: "0123456789abcdef"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"ftp://x/y", "javascript:alert(1)", "http://", "not a url"} {
		e := good
		e.URL = u
		var fe *registry.FieldError
		if err := e.Validate(); !errors.As(err, &fe) || fe.Field != "url" {
			t.Errorf("url %q: %v", u, err)
		}
	}
	mail := Endpoint{ID: "mail", Kind: EndpointEmail, To: []string{"ops@park.example", "bad address"}}
	if err := mail.Validate(); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("bad address accepted: %v", err)
	}
}
