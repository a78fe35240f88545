package alertsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
)

// TestLifecycle drives one threshold alert with For = 2 cycles through pending, firing and
// resolved: one notification when it fires, none while it stays firing, one when it resolves,
// and the history and live feed tell the same story with the values of the moment.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	r := powerRule("p1", "power")
	r.For = 2 * time.Minute
	r.Endpoints = []string{"ops"}
	must(t, store.CreateRule(ctx, r, testActor))
	src, rec, hub := newSource(), &recorder{}, NewHub()
	feed, stop := hub.Subscribe("p1")
	defer stop()
	now := t0
	e := newEngine(t, store, src, rec, hub, &now)
	id := alertID(r, "m1")

	steps := []struct {
		value  float64
		state  string
		notify []string
	}{
		{600, alerting.StatePending, nil},
		{610, alerting.StatePending, nil},
		{620, alerting.StateFiring, []string{"firing@p1/ops"}},
		{630, alerting.StateFiring, nil},
		{640, alerting.StateFiring, nil},
		{300, alerting.StateResolved, []string{"resolved@p1/ops"}},
		{310, alerting.StateResolved, nil},
	}
	for i, s := range steps {
		now = at(i)
		src.set(r.ID, s.value)
		st := cycle(t, e, now)
		got := rec.take()
		if !slices.Equal(kinds(got), s.notify) {
			t.Errorf("cycle %d (value %v): notifications %v, want %v", i, s.value, kinds(got), s.notify)
		}
		if st.Notifications != len(s.notify) {
			t.Errorf("cycle %d: stats count %d notifications, want %d", i, st.Notifications, len(s.notify))
		}
		for _, n := range got {
			if n.AlertID != id || n.Value != s.value || n.Rule != r.Name {
				t.Errorf("cycle %d: notification %+v, want alert %s value %v rule %q", i, n, id, s.value, r.Name)
			}
		}
		a, err := store.GetAlert(ctx, id)
		must(t, err)
		if a.State != s.state {
			t.Errorf("cycle %d (value %v): stored state %s, want %s", i, s.value, a.State, s.state)
		}
	}

	hist, err := store.ListHistory(ctx, "p1", id, time.Time{}, 0)
	must(t, err)
	slices.Reverse(hist) // oldest first
	type h struct {
		Kind, State string
		Value       float64
		At          time.Time
	}
	var gotHist []h
	for _, e := range hist {
		gotHist = append(gotHist, h{e.Kind, e.State, e.Value, e.At})
	}
	wantHist := []h{
		{alerting.StatePending, alerting.StatePending, 600, at(0)},
		{alerting.EventFiring, alerting.StateFiring, 620, at(2)},
		{alerting.EventResolved, alerting.StateResolved, 300, at(5)},
	}
	if !slices.Equal(gotHist, wantHist) {
		t.Errorf("history =\n%v\nwant\n%v", gotHist, wantHist)
	}

	var gotFeed []string
	for _, ev := range drain(feed) {
		gotFeed = append(gotFeed, fmt.Sprintf("%s %s %v %s", ev.Kind, ev.Alert.State, ev.Alert.Value, ev.RuleName))
	}
	wantFeed := []string{"pending pending 600 Power power", "firing firing 620 Power power", "resolved resolved 300 Power power"}
	if !slices.Equal(gotFeed, wantFeed) {
		t.Errorf("feed = %q, want %q", gotFeed, wantFeed)
	}
}

// TestPendingThatClearsNeverNotifies: a breach shorter than For leaves a pending entry and
// no notification, and the alert is no longer stored as pending.
func TestPendingThatClearsNeverNotifies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	r := powerRule("p1", "power")
	r.For = 2 * time.Minute
	must(t, store.CreateRule(ctx, r, testActor))
	src, rec := newSource(), &recorder{}
	now := t0
	e := newEngine(t, store, src, rec, nil, &now)
	for i, v := range []float64{600, 610, 300, 300} {
		src.set(r.ID, v)
		cycle(t, e, at(i))
	}
	if got := rec.all(); len(got) != 0 {
		t.Errorf("notifications %v, want none", kinds(got))
	}
	alerts, err := store.LoadAlerts(ctx)
	must(t, err)
	if len(alerts) != 0 {
		t.Errorf("stored alerts %+v, want none (pending went back to inactive)", alerts)
	}
}

// restartStep is one evaluation of the restart script: the observations of rule "hyst" for
// meters m1 and m2 (unobserved: not observed) and of rule "flap", and the notifications
// expected ("kind@endpoint rule/meter", sorted).
type restartStep struct {
	min    int
	m1, m2 float64
	flap   float64
	ack    bool // acknowledge hyst/m2 just before the cycle
	want   []string
}

const unobserved = -1

// TestRestartInEveryState runs one script twice on two stores: once with one engine, once
// with a new engine (a restarted process) for every cycle. Notifications, stored alerts and
// history must be the same, and must be what the script expects, through pending, firing,
// keep-firing, hysteresis, repeats, acknowledgement, flapping and resolution.
func TestRestartInEveryState(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	hyst := powerRule("p1", "hyst")
	hyst.For = 2 * time.Minute
	hyst.Clear = new(400.0)
	hyst.KeepFiringFor = 3 * time.Minute
	hyst.RepeatInterval = 10 * time.Minute
	hyst.Endpoints = []string{"ops"}
	flap := powerRule("p1", "flap")
	flap.Endpoints = []string{"mail"}
	names := map[string]string{alertID(hyst, "m1"): "hyst/m1", alertID(hyst, "m2"): "hyst/m2", alertID(flap, "m1"): "flap"}

	type run struct {
		store *sqlstore.Store
		src   *fakeSource
		rec   *recorder
		eng   *Engine
		now   time.Time
	}
	var runs [2]*run
	for i := range runs {
		s, _ := newStore(t)
		must(t, s.CreateRule(ctx, hyst, testActor))
		must(t, s.CreateRule(ctx, flap, testActor))
		r := &run{store: s, src: newSource(), rec: &recorder{}, now: t0}
		r.eng = newEngine(t, s, r.src, r.rec, nil, &r.now)
		runs[i] = r
	}
	restarted := runs[1] // runs[0] keeps its engine

	x := float64(unobserved)
	script := []restartStep{
		{min: 0, m1: 600, m2: 600, flap: 0}, // hyst m1, m2 pending
		{min: 1, m1: 610, m2: x, flap: 0},   // m2 unobserved: back to inactive
		{min: 2, m1: 620, m2: 620, flap: 600, want: []string{"firing@p1/mail flap", "firing@p1/ops hyst/m1"}},
		{min: 3, m1: 450, m2: 630, flap: 300, want: []string{"resolved@p1/mail flap"}},                        // m1 in the band: holds
		{min: 4, m1: 300, m2: 640, flap: 600, want: []string{"firing@p1/mail flap", "firing@p1/ops hyst/m2"}}, // m1 kept firing
		{min: 5, m1: 300, m2: 650, flap: 300, want: []string{"resolved@p1/mail flap", "resolved@p1/ops hyst/m1"}},
		{min: 6, m1: 300, m2: 660, flap: 600, want: []string{"firing@p1/mail flap"}},
		{min: 7, m1: 300, m2: 670, flap: 300, want: []string{"flapping@p1/mail flap"}},  // a fourth flip: held firing
		{min: 8, m1: 600, m2: 680, flap: 300, ack: true},                                // m1 pending again; m2 acknowledged
		{min: 14, m1: 610, m2: 690, flap: 300, want: []string{"firing@p1/ops hyst/m1"}}, // m2's repeat is muted by the ack
		{min: 24, m1: 620, m2: 700, flap: 300, want: []string{"firing@p1/ops hyst/m1"}}, // m1 repeats
		{min: 30, m1: x, m2: 300, flap: 300, want: []string{"resolved@p1/ops hyst/m1", "resolved@p1/ops hyst/m2"}},
		{min: 66, m1: x, m2: x, flap: 300},                                          // flapping: clear 59 minutes
		{min: 67, m1: x, m2: x, flap: 300, want: []string{"resolved@p1/mail flap"}}, // clear a whole FlapWindow
		{min: 68, m1: x, m2: x, flap: 600, want: []string{"firing@p1/mail flap"}},
		{min: 69, m1: x, m2: x, flap: 300, want: []string{"resolved@p1/mail flap"}},
	}
	seen := map[string]bool{} // states and conditions the script went through
	for _, s := range script {
		for _, r := range runs {
			r.now = at(s.min)
			if r == restarted {
				r.eng = newEngine(t, r.store, r.src, r.rec, nil, &r.now)
			}
			var obs []alerting.Observation
			for _, m := range []struct {
				name string
				v    float64
			}{{"m1", s.m1}, {"m2", s.m2}} {
				if m.v != unobserved {
					obs = append(obs, alerting.Observation{Labels: map[string]string{"meter": m.name}, Value: m.v})
				}
			}
			r.src.setResult(hyst.ID, alerting.Result{Observations: obs})
			r.src.set(flap.ID, s.flap)
			if s.ack {
				svc := &Service{Store: r.store, Engine: r.eng, Now: func() time.Time { return r.now }}
				if _, err := svc.Ack(withUser(ctx), alertID(hyst, "m2"), "looking"); err != nil {
					t.Fatalf("minute %d: ack: %v", s.min, err)
				}
			}
			cycle(t, r.eng, r.now)
		}
		var got [2][]string
		for i, r := range runs {
			for _, n := range r.rec.take() {
				got[i] = append(got[i], n.Kind+"@"+n.Endpoint+" "+names[n.AlertID])
			}
			slices.Sort(got[i])
		}
		if !slices.Equal(got[0], s.want) {
			t.Errorf("minute %d: notifications %q, want %q", s.min, got[0], s.want)
		}
		if !slices.Equal(got[1], got[0]) {
			t.Errorf("minute %d: restarted engine notified %q, the steady one %q", s.min, got[1], got[0])
		}
		var state [2]string
		for i, r := range runs {
			alerts, err := r.store.LoadAlerts(ctx)
			must(t, err)
			b, err := json.Marshal(alerts)
			must(t, err)
			state[i] = string(b)
			if i == 0 {
				for _, a := range alerts {
					seen[a.State] = true
					seen["flapping"] = seen["flapping"] || a.Flapping
					seen["acked"] = seen["acked"] || a.AckedBy != ""
					seen["kept"] = seen["kept"] || (a.State == alerting.StateFiring && a.Value <= 400 && names[a.ID] == "hyst/m1")
				}
			}
		}
		if state[0] != state[1] {
			t.Errorf("minute %d: stored alerts differ:\nsteady    %s\nrestarted %s", s.min, state[0], state[1])
		}
	}
	for _, k := range []string{alerting.StatePending, alerting.StateFiring, alerting.StateResolved, "flapping", "acked", "kept"} {
		if !seen[k] {
			t.Errorf("the script never reached %s", k)
		}
	}
	var hist [2][]alerting.HistoryEntry
	for i, r := range runs {
		h, err := r.store.ListHistory(ctx, "p1", "", time.Time{}, 0)
		must(t, err)
		hist[i] = h
	}
	if a, b := fmt.Sprint(hist[0]), fmt.Sprint(hist[1]); a != b {
		t.Errorf("history differs:\nsteady    %s\nrestarted %s", a, b)
	}
}

// TestSilence: an active silence matching an alert's labels mutes its notifications, not its
// state: the history says it was silenced and the live feed marks it; an alert the silence
// does not match still notifies; once the silence has ended the next event notifies again.
func TestSilence(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	r := powerRule("p1", "power")
	r.Labels = map[string]string{"team": "energy"}
	r.Endpoints = []string{"ops"}
	must(t, store.CreateRule(ctx, r, testActor))
	must(t, store.CreateSilence(ctx, alerting.Silence{ID: "maint", ParkID: "p1", StartsAt: at(0), EndsAt: at(10),
		Matchers: []alerting.Matcher{{Name: "team", Value: "energy"}, {Name: "meter", Value: "m1"}},
		Comment:  "transformer maintenance", CreatedBy: testActor}, testActor))
	src, rec, hub := newSource(), &recorder{}, NewHub()
	feed, stop := hub.Subscribe("p1")
	defer stop()
	now := t0
	e := newEngine(t, store, src, rec, hub, &now)
	m1, m2 := alertID(r, "m1"), alertID(r, "m2")

	src.set(r.ID, 600, 600) // m1 (silenced) and m2 (not) fire
	cycle(t, e, at(1))
	if got := rec.take(); len(got) != 1 || got[0].AlertID != m2 || got[0].Kind != alerting.EventFiring {
		t.Errorf("notifications while m1 is silenced: %+v, want one firing of m2 only", got)
	}
	if a, err := store.GetAlert(ctx, m1); err != nil || a.State != alerting.StateFiring {
		t.Errorf("silenced alert: %+v, %v; want it firing (a silence mutes, it does not change state)", a, err)
	}
	hist, err := store.ListHistory(ctx, "p1", m1, time.Time{}, 0)
	must(t, err)
	if len(hist) == 0 || hist[0].Kind != alerting.EventFiring || !strings.HasPrefix(hist[0].Detail, "silenced") {
		t.Errorf("history of the silenced alert %+v, want a firing entry with detail silenced…", hist)
	}
	if h2, err := store.ListHistory(ctx, "p1", m2, time.Time{}, 0); err != nil || len(h2) == 0 || h2[0].Detail != "" {
		t.Errorf("history of the alert not silenced: %+v, %v; want no silenced detail", h2, err)
	}
	var silenced, loud int
	for _, ev := range drain(feed) {
		if ev.Kind != alerting.EventFiring {
			continue
		}
		switch {
		case ev.Alert.ID == m1 && ev.Silenced:
			silenced++
		case ev.Alert.ID == m2 && !ev.Silenced:
			loud++
		default:
			t.Errorf("feed event %s of %s Silenced=%v", ev.Kind, ev.Alert.ID, ev.Silenced)
		}
	}
	if silenced != 1 || loud != 1 {
		t.Errorf("feed: %d silenced firing events of m1, %d loud of m2; want 1 and 1", silenced, loud)
	}

	src.set(r.ID, 300, 600) // m1 resolves inside the silence
	cycle(t, e, at(5))
	if got := rec.take(); len(got) != 0 {
		t.Errorf("notifications at minute 5: %v, want none (m1's resolution is silenced)", kinds(got))
	}
	src.set(r.ID, 600, 600) // m1 fires again inside the silence
	cycle(t, e, at(9))
	if got := rec.take(); len(got) != 0 {
		t.Errorf("notifications at minute 9: %v, want none", kinds(got))
	}
	drain(feed)
	// The silence ended at minute 10: m1's resolution is the next event, and it is told.
	src.set(r.ID, 300, 600)
	cycle(t, e, at(10))
	got := rec.take()
	if len(got) != 1 || got[0].AlertID != m1 || got[0].Kind != alerting.EventResolved {
		t.Errorf("notifications after the silence: %+v, want m1 resolved", got)
	}
	for _, ev := range drain(feed) {
		if ev.Silenced {
			t.Errorf("feed event %s of %s after the silence ended is marked silenced", ev.Kind, ev.Alert.ID)
		}
	}
}

// TestAckStoreOnly acknowledges a firing alert straight in the store (an instance without
// the evaluator): the engine's next cycles keep the acknowledgement although they save the
// alert, its repeat notifications stop, and the resolution clears it; a new firing repeats
// again.
func TestAckStoreOnly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	r := powerRule("p1", "power")
	r.RepeatInterval = 5 * time.Minute
	r.KeepFiringFor = time.Minute // the alert is saved every breaching cycle (its last breach)
	r.Endpoints = []string{"ops"}
	must(t, store.CreateRule(ctx, r, testActor))
	src, rec := newSource(), &recorder{}
	now := t0
	e := newEngine(t, store, src, rec, nil, &now)
	id := alertID(r, "m1")

	src.set(r.ID, 600)
	cycle(t, e, at(0))
	cycle(t, e, at(5))
	if got := kinds(rec.take()); !slices.Equal(got, []string{"firing@p1/ops", "firing@p1/ops"}) {
		t.Fatalf("before the ack: %v, want a firing and its repeat", got)
	}
	hub := NewHub()
	feed, stop := hub.Subscribe("p1")
	defer stop()
	svc := &Service{Store: store, Hub: hub, Now: func() time.Time { return at(6) }}
	acked, err := svc.Ack(withUser(ctx), id, "on it")
	must(t, err)
	if acked.AckedBy == "" || !acked.AckedAt.Equal(at(6)) {
		t.Fatalf("Ack returned %+v", acked)
	}
	if evs := drain(feed); len(evs) != 1 || evs[0].Kind != "acknowledged" || evs[0].Alert.ID != id {
		t.Errorf("feed after the ack: %+v, want one acknowledged event", evs)
	}
	for _, m := range []int{10, 15, 20, 25} {
		src.set(r.ID, 600+float64(m))
		cycle(t, e, at(m))
		a, err := store.GetAlert(ctx, id)
		must(t, err)
		if a.AckedBy != acked.AckedBy || a.AckComment != "on it" || !a.AckedAt.Equal(at(6)) {
			t.Errorf("minute %d: stored acknowledgement %q %q %v, want %q \"on it\" %v", m, a.AckedBy, a.AckComment, a.AckedAt, acked.AckedBy, at(6))
		}
		if !a.LastBreach.Equal(at(m)) {
			t.Errorf("minute %d: last breach %v not saved: the cycle did not write the alert, so the test proves nothing", m, a.LastBreach)
		}
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("repeats while acknowledged: %v, want none", kinds(got))
	}
	src.set(r.ID, 300)
	cycle(t, e, at(30))
	if got := kinds(rec.take()); !slices.Equal(got, []string{"resolved@p1/ops"}) {
		t.Errorf("at resolution: %v, want resolved (an acknowledgement does not mute it)", got)
	}
	a, err := store.GetAlert(ctx, id)
	must(t, err)
	if a.State != alerting.StateResolved || a.AckedBy != "" || a.AckComment != "" || !a.AckedAt.IsZero() {
		t.Errorf("after resolution: %+v, want resolved with the acknowledgement cleared", a)
	}
	hist, err := store.ListHistory(ctx, "p1", id, time.Time{}, 0)
	must(t, err)
	if !slices.ContainsFunc(hist, func(h alerting.HistoryEntry) bool {
		return h.Kind == "acknowledged" && h.Detail == acked.AckedBy+": on it" && h.At.Equal(at(6))
	}) {
		t.Errorf("history %+v has no acknowledged entry", hist)
	}
	src.set(r.ID, 600)
	cycle(t, e, at(31))
	cycle(t, e, at(36))
	if got := kinds(rec.take()); !slices.Equal(got, []string{"firing@p1/ops", "firing@p1/ops"}) {
		t.Errorf("firing again after resolution: %v, want a firing and its repeat", got)
	}
	if _, err := svc.Ack(withUser(ctx), "al_missing", "x"); err == nil {
		t.Error("acknowledging a missing alert succeeded")
	}
}

// TestRepeatInterval: a firing, unacknowledged alert is notified again every RepeatInterval,
// not every cycle after the first repeat (the time of the last notification is stored).
func TestRepeatInterval(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	r := powerRule("p1", "power")
	r.RepeatInterval = 5 * time.Minute
	r.Endpoints = []string{"ops"}
	must(t, store.CreateRule(ctx, r, testActor))
	src, rec := newSource(), &recorder{}
	now := t0
	e := newEngine(t, store, src, rec, nil, &now)
	src.set(r.ID, 600)
	var firedAt []int
	for m := range 13 {
		cycle(t, e, at(m))
		if len(rec.take()) > 0 {
			firedAt = append(firedAt, m)
		}
	}
	if want := []int{0, 5, 10}; !slices.Equal(firedAt, want) {
		t.Errorf("notified at minutes %v, want %v", firedAt, want)
	}
}

// TestEngineAck acknowledges through the engine (Options.Now is the time of the ack).
func TestEngineAck(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	r := powerRule("p1", "power")
	r.RepeatInterval = 5 * time.Minute
	must(t, store.CreateRule(ctx, r, testActor))
	src, rec := newSource(), &recorder{}
	now := t0
	e := newEngine(t, store, src, rec, nil, &now)
	src.set(r.ID, 600)
	cycle(t, e, at(0))
	now = at(2)
	svc := &Service{Store: store, Engine: e}
	a, err := svc.Ack(withUser(ctx), alertID(r, "m1"), "mine")
	must(t, err)
	if !a.AckedAt.Equal(at(2)) || a.AckedBy == "" {
		t.Errorf("engine ack: %+v, want acknowledged at minute 2", a)
	}
	cycle(t, e, at(5))
	cycle(t, e, at(10))
	if got := kinds(rec.all()); len(got) != 2 {
		t.Errorf("notifications %v, want the first firing only (on both endpoints)", got)
	}
	src.set(r.ID, 300)
	cycle(t, e, at(11))
	if _, err := svc.Ack(withUser(ctx), alertID(r, "m1"), "late"); err == nil {
		t.Error("acknowledging a resolved alert succeeded")
	}
}

// TestAckDuringCycleIsKept acknowledges, straight in the store (another instance), while a
// cycle is between reading and saving state, in a cycle that saves the alert (a repeat is
// due). The cycle's comment promises an acknowledgement made through another instance is
// never overwritten.
func TestAckDuringCycleIsKept(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	r := powerRule("p1", "power")
	r.RepeatInterval = 5 * time.Minute
	must(t, store.CreateRule(ctx, r, testActor))
	src, rec := newSource(), &recorder{}
	now := t0
	e := newEngine(t, store, src, rec, nil, &now)
	id := alertID(r, "m1")
	src.set(r.ID, 600)
	cycle(t, e, at(0))

	other := &Service{Store: store, Now: func() time.Time { return at(5) }}
	src.during = func() {
		if _, err := other.Ack(withUser(ctx), id, "on it"); err != nil {
			t.Errorf("ack: %v", err)
		}
	}
	cycle(t, e, at(5))
	src.during = nil
	a, err := store.GetAlert(ctx, id)
	must(t, err)
	if a.AckedBy == "" {
		t.Fatal("an acknowledgement stored between LoadAlerts and SaveAlerts was overwritten by the cycle")
	}
	cycle(t, e, at(10))
	if got := rec.all(); len(got) > 2 {
		t.Errorf("notifications %v: repeats continued after the acknowledgement", kinds(got))
	}
}

// TestRouting: a rule naming an endpoint notifies only it; a rule naming none notifies every
// endpoint of its park; another park's endpoints (even one with the same id) never.
func TestRouting(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	named := powerRule("p1", "named")
	named.Endpoints = []string{"ops"}
	all := powerRule("p1", "all")
	other := powerRule("p2", "other")
	for _, r := range []alerting.Rule{named, all, other} {
		must(t, store.CreateRule(ctx, r, testActor))
	}
	src, rec := newSource(), &recorder{}
	now := t0
	e := newEngine(t, store, src, rec, nil, &now)
	for _, r := range []alerting.Rule{named, all, other} {
		src.set(r.ID, 600)
	}
	st := cycle(t, e, at(0))
	got := map[string][]string{}
	for _, n := range rec.take() {
		got[n.Rule] = append(got[n.Rule], n.Endpoint)
	}
	for _, eps := range got {
		slices.Sort(eps)
	}
	want := map[string][]string{
		named.Name: {"p1/ops"},
		all.Name:   {"p1/mail", "p1/ops"},
		other.Name: {"p2/ops", "p2/p2hook"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	if st.Parks != 2 || st.Rules != 3 || st.Notifications != 5 || st.Observations != 3 {
		t.Errorf("stats %+v, want 2 parks, 3 rules, 3 observations, 5 notifications", st)
	}
}

// TestRouteDuplicateEndpoint: a rule naming an endpoint twice (validation lets it) still
// notifies that endpoint once per event.
func TestRouteDuplicateEndpoint(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	r := powerRule("p1", "power")
	r.Endpoints = []string{"ops", "ops"}
	if err := store.CreateRule(t.Context(), r, testActor); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("a rule naming an endpoint twice was stored: %v", err)
	}
	eps := []alerting.Endpoint{{ID: "ops", ParkID: "p1"}, {ID: "mail", ParkID: "p1"}}
	if got := route(r, eps); len(got) != 1 || got[0].ID != "ops" {
		t.Fatalf("route = %v, want ops once", got)
	}
}

// TestSourceErrorKeepsState: a rule the source could not look at (an error, or missing from
// its answer) keeps its alerts as they are: no resolution, no notification; the park's other
// rules are evaluated.
func TestSourceErrorKeepsState(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	broken, fine := powerRule("p1", "broken"), powerRule("p1", "fine")
	must(t, store.CreateRule(ctx, broken, testActor))
	must(t, store.CreateRule(ctx, fine, testActor))
	src, rec := newSource(), &recorder{}
	now := t0
	e := newEngine(t, store, src, rec, nil, &now)
	src.set(broken.ID, 600)
	src.set(fine.ID, 600)
	cycle(t, e, at(0))
	rec.take()

	src.setResult(broken.ID, alerting.Result{Err: errors.New("influx: timeout")})
	src.set(fine.ID, 300)
	cycle(t, e, at(1))
	got := rec.take()
	if len(got) != 2 || got[0].Rule != fine.Name || got[0].Kind != alerting.EventResolved {
		t.Errorf("notifications with the source failing for %s: %+v, want only %s resolved", broken.ID, got, fine.ID)
	}
	for _, m := range []int{2, 3} {
		src.setResult(broken.ID, alerting.Result{Err: errors.New("influx: timeout")})
		cycle(t, e, at(m))
	}
	a, err := store.GetAlert(ctx, alertID(broken, "m1"))
	must(t, err)
	if a.State != alerting.StateFiring {
		t.Errorf("alert of the failing rule is %s, want firing", a.State)
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("notifications while the source fails: %v, want none", kinds(got))
	}
	hist, err := store.ListHistory(ctx, "p1", a.ID, time.Time{}, 0)
	must(t, err)
	if len(hist) != 1 {
		t.Errorf("history of the failing rule's alert %+v, want the firing only", hist)
	}
	// A source that leaves the rule out of its answer is no different from one that fails.
	e2, err := NewEngine(Options{Store: store, Source: sourceFunc(func(context.Context, string, []alerting.Rule, time.Time) map[string]alerting.Result {
		return map[string]alerting.Result{}
	}), Notifier: rec})
	must(t, err)
	cycle(t, e2, at(4))
	if got := rec.take(); len(got) != 0 {
		t.Errorf("notifications with the rule missing from the source's answer: %v, want none", kinds(got))
	}
	if a, err := store.GetAlert(ctx, a.ID); err != nil || a.State != alerting.StateFiring {
		t.Errorf("alert with the rule missing from the source's answer: %+v, %v; want firing", a, err)
	}
	// Once the source answers again, the alert resolves normally.
	src.set(broken.ID, 300)
	cycle(t, e, at(5))
	if got := rec.take(); len(got) != 2 || got[0].Kind != alerting.EventResolved {
		t.Errorf("notifications after the source recovered: %v, want resolved", kinds(got))
	}
}

type sourceFunc func(ctx context.Context, park string, rules []alerting.Rule, now time.Time) map[string]alerting.Result

func (f sourceFunc) Observe(ctx context.Context, park string, rules []alerting.Rule, now time.Time) map[string]alerting.Result {
	return f(ctx, park, rules, now)
}

// deletingStore deletes a rule when the engine lists the rules: after the engine read the
// alerts, as a deletion through the API racing a cycle would.
type deletingStore struct {
	*sqlstore.Store
	once       sync.Once
	park, rule string
}

func (s *deletingStore) ListAllRules(ctx context.Context) ([]alerting.Rule, error) {
	var err error
	s.once.Do(func() { err = s.DeleteRule(ctx, s.park, s.rule, testActor) })
	if err != nil {
		return nil, err
	}
	return s.Store.ListAllRules(ctx)
}

// TestDeletedRule: the alerts of a deleted rule disappear without a resolved notification,
// whether the rule went between cycles or during one; a disabled rule is not evaluated.
func TestDeletedRule(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	gone, racing, kept := powerRule("p1", "gone"), powerRule("p1", "racing"), powerRule("p1", "kept")
	for _, r := range []alerting.Rule{gone, racing, kept} {
		must(t, store.CreateRule(ctx, r, testActor))
	}
	src, rec, hub := newSource(), &recorder{}, NewHub()
	feed, stop := hub.Subscribe("p1")
	defer stop()
	now := t0
	e := newEngine(t, store, src, rec, hub, &now)
	for _, r := range []alerting.Rule{gone, racing, kept} {
		src.set(r.ID, 600)
	}
	cycle(t, e, at(0))
	rec.take()
	drain(feed)

	must(t, store.DeleteRule(ctx, "p1", gone.ID, testActor))
	ds := &deletingStore{Store: store, park: "p1", rule: racing.ID}
	e2, err := NewEngine(Options{Store: ds, Source: src, Notifier: rec, Hub: hub})
	must(t, err)
	for _, r := range []alerting.Rule{gone, racing, kept} {
		src.set(r.ID, 300) // would resolve them all
	}
	cycle(t, e2, at(1))
	got := rec.take()
	for _, n := range got {
		if n.Rule != kept.Name {
			t.Errorf("notification %+v of a deleted rule", n)
		}
	}
	if len(got) != 2 {
		t.Errorf("notifications %+v, want the resolution of %s on both endpoints", got, kept.ID)
	}
	for _, ev := range drain(feed) {
		if ev.Alert.RuleID != kept.ID {
			t.Errorf("feed event %s of deleted rule %s", ev.Kind, ev.Alert.RuleID)
		}
	}
	alerts, err := store.LoadAlerts(ctx)
	must(t, err)
	for _, a := range alerts {
		if a.RuleID != kept.ID {
			t.Errorf("alert %s of deleted rule %s still stored (%s)", a.ID, a.RuleID, a.State)
		}
	}
	for _, r := range []alerting.Rule{gone, racing} {
		hist, err := store.ListHistory(ctx, "p1", alertID(r, "m1"), time.Time{}, 0)
		must(t, err)
		if len(hist) != 1 || hist[0].Kind != alerting.EventFiring {
			t.Errorf("history of deleted rule %s: %+v, want its firing only (kept, nothing added)", r.ID, hist)
		}
	}
}

// TestDisabledRule: a disabled rule is not given to the source, gets no alerts and notifies
// nothing; its firing alert is left as it was.
func TestDisabledRule(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	r, on := powerRule("p1", "off"), powerRule("p1", "on")
	must(t, store.CreateRule(ctx, r, testActor))
	must(t, store.CreateRule(ctx, on, testActor))
	src, rec := newSource(), &recorder{}
	now := t0
	e := newEngine(t, store, src, rec, nil, &now)
	src.set(r.ID, 600)
	src.set(on.ID, 300)
	cycle(t, e, at(0))
	rec.take()
	r.Disabled = true
	must(t, store.UpdateRule(ctx, r, testActor))
	src.set(r.ID, 300)
	calls := len(src.Calls())
	cycle(t, e, at(1))
	cycle(t, e, at(2))
	for _, c := range src.Calls()[calls:] {
		if slices.Contains(c.Rules, r.ID) {
			t.Errorf("the disabled rule was given to the source at %v: %v", c.At, c.Rules)
		}
		if !slices.Contains(c.Rules, on.ID) {
			t.Errorf("the enabled rule was not evaluated at %v", c.At)
		}
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("notifications of a disabled rule: %v", kinds(got))
	}
	if a, err := store.GetAlert(ctx, alertID(r, "m1")); err != nil || a.State != alerting.StateFiring {
		t.Errorf("the disabled rule's alert: %+v, %v; want it left firing", a, err)
	}

	// A rule disabled from the start never gets an alert.
	never := powerRule("p2", "never")
	never.Disabled = true
	must(t, store.CreateRule(ctx, never, testActor))
	src.set(never.ID, 600)
	st := cycle(t, e, at(3))
	if st.Parks != 1 || st.Rules != 1 {
		t.Errorf("stats %+v: want 1 park and 1 rule evaluated (p2 has only a disabled rule)", st)
	}
	if _, err := store.GetAlert(ctx, alertID(never, "m1")); err == nil {
		t.Error("a disabled rule got an alert")
	}
}

// TestNotifierFullQueue: a notifier that drops (queue full) does not stop the cycle: other
// endpoints and rules are notified, state is saved, and the stats count what was taken.
func TestNotifierFullQueue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	a, b := powerRule("p1", "a"), powerRule("p1", "b")
	must(t, store.CreateRule(ctx, a, testActor))
	must(t, store.CreateRule(ctx, b, testActor))
	src := newSource()
	rec := &recorder{refuse: func(ep alerting.Endpoint) bool { return ep.ID == "mail" }}
	now := t0
	e := newEngine(t, store, src, rec, nil, &now)
	src.set(a.ID, 600, 600)
	src.set(b.ID, 600)
	st, err := e.Cycle(ctx, at(0))
	if err != nil {
		t.Fatalf("cycle with a full queue: %v", err)
	}
	if got := rec.take(); len(got) != 3 {
		t.Errorf("notifications %v, want 3 to p1/ops (one per alert)", kinds(got))
	}
	if st.Notifications != 3 || st.Changed != 3 {
		t.Errorf("stats %+v, want 3 notifications and 3 changed alerts", st)
	}
	alerts, err := store.LoadAlerts(ctx)
	must(t, err)
	if len(alerts) != 3 {
		t.Errorf("%d alerts stored, want 3", len(alerts))
	}
	for _, al := range alerts {
		if al.State != alerting.StateFiring {
			t.Errorf("alert %s is %s, want firing", al.ID, al.State)
		}
	}
	// Everything refused: still no error, state still moves on.
	rec.refuse = func(alerting.Endpoint) bool { return true }
	src.set(a.ID)
	st, err = e.Cycle(ctx, at(1))
	if err != nil || st.Notifications != 0 || st.Changed != 2 {
		t.Errorf("cycle with every notification dropped: %+v, %v; want no error, 0 notifications, 2 changed", st, err)
	}
}

// leaseTry is one TryLease call.
type leaseTry struct {
	holder string
	now    time.Time
	ok     bool
}

// leaseLog records the lease calls of every engine.
type leaseLog struct {
	mu    sync.Mutex
	tries []leaseTry
}

func (l *leaseLog) add(t leaseTry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tries = append(l.tries, t)
}

func (l *leaseLog) of(holder string) []leaseTry {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []leaseTry
	for _, t := range l.tries {
		if t.holder == holder {
			out = append(out, t)
		}
	}
	return out
}

// leaseStore records TryLease calls.
type leaseStore struct {
	*sqlstore.Store
	log *leaseLog
}

func (s leaseStore) TryLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	ok, err := s.Store.TryLease(ctx, name, holder, now, ttl)
	if err == nil {
		s.log.add(leaseTry{holder, now, ok})
	}
	return ok, err
}

// waitFor polls cond until it holds; the test fails after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLeaseHandover (not parallel: it runs on the wall clock) runs two engines (two processes
// on one database) with Run: only the
// lease holder observes; when it stops, the other takes over once the lease has expired and
// carries on from the stored state, so no event is notified twice.
func TestLeaseHandover(t *testing.T) {
	ctx := t.Context()
	store, path := newStore(t)
	r := powerRule("p1", "power")
	r.Endpoints = []string{"ops"}
	must(t, store.CreateRule(ctx, r, testActor))
	id := alertID(r, "m1")
	const interval = 50 * time.Millisecond
	log := &leaseLog{}
	type node struct {
		src    *fakeSource
		rec    *recorder
		cancel context.CancelFunc
		done   chan struct{} // closed when Run returned err
		err    error
	}
	start := func(holder string, s *sqlstore.Store) *node {
		n := &node{src: newSource(), rec: &recorder{}, done: make(chan struct{})}
		n.src.set(r.ID, 600)
		e, err := NewEngine(Options{Store: leaseStore{s, log}, Source: n.src, Notifier: n.rec, Holder: holder, Interval: interval})
		must(t, err)
		runCtx, cancel := context.WithCancel(ctx)
		n.cancel = cancel
		go func() {
			defer close(n.done)
			n.err = e.Run(runCtx)
		}()
		t.Cleanup(func() { cancel(); <-n.done })
		return n
	}
	a := start("A", store)
	waitFor(t, "A to fire the alert", func() bool {
		al, err := store.GetAlert(ctx, id)
		return err == nil && al.State == alerting.StateFiring
	})
	b := start("B", openStore(t, path))
	waitFor(t, "B to try the lease 5 times", func() bool { return len(log.of("B")) >= 5 })
	for _, tr := range log.of("B") {
		if tr.ok {
			t.Fatalf("B took the lease at %v while A held it", tr.now)
		}
	}
	if n := len(b.src.Calls()); n != 0 {
		t.Fatalf("B observed %d times while A held the lease", n)
	}

	a.cancel()
	<-a.done
	if !errors.Is(a.err, context.Canceled) {
		t.Errorf("A's Run returned %v, want context.Canceled", a.err)
	}
	aCalls := a.src.Calls()
	waitFor(t, "B to take over", func() bool { return len(b.src.Calls()) > 0 })
	b.src.set(r.ID, 300) // B resolves what A fired
	waitFor(t, "B to notify the resolution", func() bool { return len(b.rec.all()) > 0 })
	n := len(b.src.Calls())
	waitFor(t, "B to evaluate 3 more times", func() bool { return len(b.src.Calls()) >= n+3 })
	b.cancel()
	<-b.done

	var lastA, firstB time.Time
	for _, tr := range log.of("A") {
		if tr.ok {
			lastA = tr.now
		}
	}
	for _, tr := range log.of("B") {
		if tr.ok {
			firstB = tr.now
			break
		}
	}
	if got, ttl := firstB.Sub(lastA), 3*interval; got <= ttl-time.Millisecond {
		t.Errorf("B took the lease %v after A last renewed it, before the lease (%v) expired", got, ttl)
	}
	bCalls := b.src.Calls()
	if last, first := aCalls[len(aCalls)-1].Wall, bCalls[0].Wall; !last.Before(first) {
		t.Errorf("A observed at %v, after B started observing at %v", last, first)
	}
	if got := kinds(a.rec.all()); !slices.Equal(got, []string{"firing@p1/ops"}) {
		t.Errorf("A notified %v, want one firing", got)
	}
	if got := kinds(b.rec.all()); !slices.Equal(got, []string{"resolved@p1/ops"}) {
		t.Errorf("B notified %v, want one resolution (the firing was A's, stored)", got)
	}
	t.Logf("A observed %d times, B %d; B took over %v after A's last renewal", len(aCalls), len(bCalls), firstB.Sub(lastA))
}
