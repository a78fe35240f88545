package sqlstore

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

func ptr[T any](v T) *T { return &v }

// t0 is a time with nanoseconds in a zone other than UTC: alert JSON keeps both.
var t0 = time.Date(2026, 11, 22, 8, 0, 0, 123456789, shanghai)

// fullRule sets every field of a rule.
func fullRule(parkID, id string) alerting.Rule {
	return alerting.Rule{
		ID: id, ParkID: parkID, Name: "Budget " + id, Kind: alerting.KindCarbonBudget,
		EnterpriseID: "e1", Op: ">", Threshold: 1.1, Clear: ptr(0.0),
		Window: 90 * time.Minute, For: 15 * time.Minute, KeepFiringFor: 2*time.Hour + 1,
		Qualities: []string{"reset", "gap"}, BudgetT: 1200, Trajectory: alerting.TrajectoryMonthly,
		MonthlyBudgetT: []float64{100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 99.5, 100.5},
		Severity:       alerting.SeverityCritical, Labels: map[string]string{"team": "energy", "site": "north"},
		Endpoints: []string{"hook", "mail"}, RepeatInterval: 4 * time.Hour, Disabled: true,
	}
}

func thresholdRule(parkID, id, meterID string) alerting.Rule {
	return alerting.Rule{ID: id, ParkID: parkID, Name: "Power " + id, Kind: alerting.KindThreshold, MeterID: meterID,
		Metric: alerting.MetricPower, Op: ">", Threshold: 500, Window: 15 * time.Minute, Severity: alerting.SeverityWarning}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return string(b)
}

func wantSameJSON(t *testing.T, name string, got, want any) {
	t.Helper()
	if g, w := jsonOf(t, got), jsonOf(t, want); g != w {
		t.Errorf("%s =\n%s\nwant\n%s", name, g, w)
	}
}

func ruleIDs(rules []alerting.Rule) []string {
	var ids []string
	for _, r := range rules {
		ids = append(ids, r.ParkID+"/"+r.ID)
	}
	return ids
}

func testAlertRules(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.CreateMeter(ctx, meter("p1", "m1", "e1", "g1"), actor))

	r := fullRule("p1", "budget")
	must(t, s.CreateRule(ctx, r, actor))
	wantAudit(t, s, "alert_rule.create", "parks/p1/alert-rules/budget", "p1", nil, r)
	got, err := s.GetRule(ctx, "p1", "budget")
	must(t, err)
	wantSameJSON(t, "GetRule", got, r)
	if got.Clear == nil || *got.Clear != 0 {
		t.Errorf("Clear = %v, want a pointer to 0", got.Clear)
	}
	if got.KeepFiringFor != 2*time.Hour+1 || got.MonthlyBudgetT[11] != 100.5 || got.Labels["site"] != "north" {
		t.Errorf("GetRule lost fields: %+v", got)
	}

	// References.
	bad := thresholdRule("p1", "x", "m9")
	wantErrContains(t, s.CreateRule(ctx, bad, actor), registry.ErrNotFound, "meter m9")
	bad = fullRule("p1", "x")
	bad.EnterpriseID = "e2" // of park p2
	wantErrContains(t, s.CreateRule(ctx, bad, actor), registry.ErrNotFound, "enterprise e2")
	wantErrContains(t, s.CreateRule(ctx, thresholdRule("p9", "x", ""), actor), registry.ErrNotFound, "park p9")
	wantErr(t, s.CreateRule(ctx, r, actor), registry.ErrAlreadyExists)
	bad = thresholdRule("p1", "x", "")
	bad.Severity = "loud"
	wantFieldError(t, s.CreateRule(ctx, bad, actor), "severity", "loud")
	if _, err := s.GetRule(ctx, "p1", "x"); err == nil {
		t.Error("a refused rule was stored")
	}

	must(t, s.CreateRule(ctx, thresholdRule("p1", "power", "m1"), actor))
	must(t, s.CreateRule(ctx, thresholdRule("p2", "power", ""), actor))
	list, err := s.ListRules(ctx, "p1")
	must(t, err)
	if ids := ruleIDs(list); !slices.Equal(ids, []string{"p1/budget", "p1/power"}) {
		t.Errorf("ListRules = %v", ids)
	}
	all, err := s.ListAllRules(ctx)
	must(t, err)
	if ids := ruleIDs(all); !slices.Equal(ids, []string{"p1/budget", "p1/power", "p2/power"}) {
		t.Errorf("ListAllRules = %v (disabled rules included)", ids)
	}

	// Update.
	updated := r
	updated.Threshold, updated.Disabled, updated.Labels = 1.2, false, map[string]string{"team": "ops"}
	must(t, s.UpdateRule(ctx, updated, actor))
	wantAudit(t, s, "alert_rule.update", "parks/p1/alert-rules/budget", "p1", r, updated)
	got, err = s.GetRule(ctx, "p1", "budget")
	must(t, err)
	wantSameJSON(t, "GetRule after update", got, updated)
	rows := len(audit(t, s, AuditFilter{}))
	must(t, s.UpdateRule(ctx, updated, actor))
	if n := len(audit(t, s, AuditFilter{})); n != rows {
		t.Errorf("an unchanged update wrote %d audit rows", n-rows)
	}
	wantErr(t, s.UpdateRule(ctx, thresholdRule("p1", "nope", ""), actor), registry.ErrNotFound)
	wantErrContains(t, s.UpdateRule(ctx, thresholdRule("p1", "power", "m9"), actor), registry.ErrNotFound, "meter m9")

	// Delete: the rule's alerts go, their history stays.
	a := testAlert("p1", "power", 1, alerting.StateFiring)
	other := testAlert("p1", "budget", 1, alerting.StateFiring)
	must(t, s.SaveAlerts(ctx, []alerting.Alert{a, other}, []alerting.HistoryEntry{historyOf(a, alerting.EventFiring)}))
	must(t, s.DeleteRule(ctx, "p1", "power", actor))
	wantAudit(t, s, "alert_rule.delete", "parks/p1/alert-rules/power", "p1", thresholdRule("p1", "power", "m1"), nil)
	_, err = s.GetRule(ctx, "p1", "power")
	wantErr(t, err, registry.ErrNotFound)
	_, err = s.GetAlert(ctx, a.ID)
	wantErr(t, err, registry.ErrNotFound)
	if _, err := s.GetAlert(ctx, other.ID); err != nil {
		t.Errorf("the alert of another rule went too: %v", err)
	}
	h, err := s.ListHistory(ctx, "p1", a.ID, time.Time{}, 0)
	must(t, err)
	if len(h) != 1 {
		t.Errorf("history of the deleted rule's alert: %d entries, want 1", len(h))
	}
	wantErr(t, s.DeleteRule(ctx, "p1", "power", actor), registry.ErrNotFound)
	if got, _ := s.GetRule(ctx, "p2", "power"); got.ID != "power" {
		t.Error("DeleteRule deleted the rule of the same id in another park")
	}
}

// testAlert is alert i of a rule, with labels naming meter i and, for odd i, enterprise e1.
func testAlert(parkID, ruleID string, i int, state string) alerting.Alert {
	labels := map[string]string{"meter": fmt.Sprintf("m%d", i), "park": parkID, "rule": ruleID}
	if i%2 == 1 {
		labels["enterprise"] = "e1"
	}
	at := t0.Add(time.Duration(i) * time.Second)
	a := alerting.Alert{
		ID: alerting.AlertID(ruleID, labels), RuleID: ruleID, ParkID: parkID, Labels: labels,
		Severity: alerting.SeverityWarning, State: state, Value: 500 + float64(i) + 0.25,
		Summary: fmt.Sprintf("power of m%d above 500 kW", i), LastBreach: at, EvaluatedAt: at.Add(time.Millisecond),
	}
	switch state {
	case alerting.StatePending:
		a.PendingSince = at
	case alerting.StateFiring:
		a.PendingSince, a.FiredAt, a.LastNotified = at.Add(-time.Minute), at, at
		a.Flips = []time.Time{at.Add(-10 * time.Minute), at}
		a.Flapping, a.AckedBy, a.AckComment, a.AckedAt = i%3 == 0, "ops", "looking", at.Add(time.Second)
	case alerting.StateResolved:
		a.FiredAt, a.ResolvedAt, a.ClearSince = at.Add(-time.Hour), at, at
	}
	return a
}

func historyOf(a alerting.Alert, kind string) alerting.HistoryEntry {
	return alerting.HistoryEntry{AlertID: a.ID, RuleID: a.RuleID, ParkID: a.ParkID, Labels: a.Labels, Kind: kind,
		State: a.State, Value: a.Value, At: a.EvaluatedAt, Detail: a.Summary}
}

func sortAlerts(alerts []alerting.Alert) {
	slices.SortFunc(alerts, func(a, b alerting.Alert) int { return strings.Compare(a.ID, b.ID) })
}

func testSaveAlerts(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	for _, r := range []alerting.Rule{thresholdRule("p1", "r1", ""), thresholdRule("p1", "r2", ""), thresholdRule("p2", "r1", "")} {
		must(t, s.CreateRule(ctx, r, actor))
	}
	states := []string{alerting.StatePending, alerting.StateFiring, alerting.StateResolved}
	const n = 2000
	var (
		alerts  []alerting.Alert
		history []alerting.HistoryEntry
	)
	for i := range n {
		park, rule := "p1", []string{"r1", "r2"}[i%2]
		if i%5 == 0 {
			park = "p2"
			rule = "r1"
		}
		a := testAlert(park, rule, i, states[i%3])
		alerts = append(alerts, a)
		history = append(history, historyOf(a, a.State))
	}
	must(t, s.SaveAlerts(ctx, alerts, history))
	if got := count(t, s, "alert_history"); got != n {
		t.Errorf("alert_history has %d rows, want %d", got, n)
	}
	loaded, err := s.LoadAlerts(ctx)
	must(t, err)
	want := slices.Clone(alerts)
	sortAlerts(want)
	sortAlerts(loaded)
	if len(loaded) != n {
		t.Fatalf("LoadAlerts returned %d alerts, want %d", len(loaded), n)
	}
	for i := range want {
		if g, w := jsonOf(t, loaded[i]), jsonOf(t, want[i]); g != w {
			t.Fatalf("LoadAlerts[%d] =\n%s\nwant\n%s", i, g, w)
		}
	}
	got, err := s.GetAlert(ctx, alerts[7].ID)
	must(t, err)
	wantSameJSON(t, "GetAlert", got, alerts[7])

	// The next cycle: alert 0 changes state, alert 1 goes inactive, alert 2 of a deleted
	// rule is skipped; the inactive alert is no longer loaded.
	changed := alerts[0]
	changed.State, changed.FiredAt = alerting.StateFiring, t0.Add(time.Hour)
	inactive := alerts[1]
	inactive.State, inactive.PendingSince, inactive.FiredAt, inactive.ResolvedAt = alerting.StateInactive, time.Time{}, time.Time{}, time.Time{}
	orphan := testAlert("p1", "gone", 1, alerting.StateFiring)
	must(t, s.SaveAlerts(ctx, []alerting.Alert{changed, inactive, orphan}, []alerting.HistoryEntry{historyOf(changed, alerting.EventFiring)}))
	got, err = s.GetAlert(ctx, changed.ID)
	must(t, err)
	wantSameJSON(t, "GetAlert after upsert", got, changed)
	_, err = s.GetAlert(ctx, inactive.ID)
	wantErr(t, err, registry.ErrNotFound)
	_, err = s.GetAlert(ctx, orphan.ID)
	wantErr(t, err, registry.ErrNotFound)
	loaded, err = s.LoadAlerts(ctx)
	must(t, err)
	if len(loaded) != n-1 {
		t.Errorf("LoadAlerts returned %d alerts after one went inactive, want %d", len(loaded), n-1)
	}
	for _, a := range loaded {
		if a.State == alerting.StateInactive || a.ID == inactive.ID {
			t.Errorf("LoadAlerts returned inactive alert %s", a.ID)
		}
	}
	if got := count(t, s, "alert_history"); got != n+1 {
		t.Errorf("alert_history has %d rows, want %d", got, n+1)
	}

	// An id stored for another rule is not taken over.
	clash := alerts[3]
	clash.RuleID = "r1"
	if alerts[3].RuleID == clash.RuleID {
		t.Fatal("fixture: alert 3 is of rule r1")
	}
	must(t, s.SaveAlerts(ctx, []alerting.Alert{clash}, nil))
	got, err = s.GetAlert(ctx, clash.ID)
	must(t, err)
	wantSameJSON(t, "GetAlert after a clashing save", got, alerts[3])

	// A value JSON and SQLite cannot store is refused before anything is written.
	nan := changed
	nan.Value = math.NaN()
	wantFieldError(t, s.SaveAlerts(ctx, []alerting.Alert{alerts[3], nan}, nil), "value", "not a number")
	if got := count(t, s, "alert_history"); got != n+1 {
		t.Errorf("a refused save wrote history")
	}
}

func testListAlerts(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	for _, r := range []alerting.Rule{thresholdRule("p1", "r1", ""), thresholdRule("p1", "r2", ""), thresholdRule("p2", "r1", "")} {
		must(t, s.CreateRule(ctx, r, actor))
	}
	a1 := testAlert("p1", "r1", 1, alerting.StateFiring) // enterprise e1, changed t0+1s
	a2 := testAlert("p1", "r1", 2, alerting.StatePending)
	a3 := testAlert("p1", "r2", 3, alerting.StateResolved) // enterprise e1
	a3.Severity = alerting.SeverityCritical
	a4 := testAlert("p2", "r1", 4, alerting.StateFiring)
	must(t, s.SaveAlerts(ctx, []alerting.Alert{a1, a2, a3, a4}, nil))
	name := map[string]string{a1.ID: "a1", a2.ID: "a2", a3.ID: "a3", a4.ID: "a4"}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

	for _, tc := range []struct {
		name string
		f    alerting.AlertFilter
		want []string
	}{
		{"all, latest change first", alerting.AlertFilter{}, []string{"a4", "a3", "a2", "a1"}},
		{"park", alerting.AlertFilter{ParkID: "p1"}, []string{"a3", "a2", "a1"}},
		{"states", alerting.AlertFilter{ParkID: "p1", States: []string{alerting.StateFiring, alerting.StatePending}}, []string{"a2", "a1"}},
		{"one state", alerting.AlertFilter{States: []string{alerting.StateFiring}}, []string{"a4", "a1"}},
		{"severity", alerting.AlertFilter{Severity: alerting.SeverityCritical}, []string{"a3"}},
		{"rule", alerting.AlertFilter{ParkID: "p1", RuleID: "r1"}, []string{"a2", "a1"}},
		{"enterprise", alerting.AlertFilter{ParkID: "p1", Enterprise: "e1"}, []string{"a3", "a1"}},
		{"since inclusive", alerting.AlertFilter{Since: at(2)}, []string{"a4", "a3", "a2"}},
		{"until exclusive", alerting.AlertFilter{Until: at(3)}, []string{"a2", "a1"}},
		{"since and until", alerting.AlertFilter{Since: at(2), Until: at(4)}, []string{"a3", "a2"}},
		{"limit", alerting.AlertFilter{Limit: 2}, []string{"a4", "a3"}},
		{"nothing", alerting.AlertFilter{ParkID: "p2", Severity: alerting.SeverityCritical}, nil},
	} {
		got, err := s.ListAlerts(ctx, tc.f)
		must(t, err)
		var names []string
		for _, a := range got {
			names = append(names, name[a.ID])
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("%s: ListAlerts = %v, want %v", tc.name, names, tc.want)
		}
	}
	got, err := s.ListAlerts(ctx, alerting.AlertFilter{RuleID: "r2"})
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("ListAlerts by rule r2 = %d alerts", len(got))
	}
	wantSameJSON(t, "ListAlerts", got[0], a3)

	// The default limit is 500, the largest 5000.
	var many []alerting.Alert
	for i := range 5010 {
		many = append(many, testAlert("p2", "r1", 100+i, alerting.StateFiring))
	}
	must(t, s.SaveAlerts(ctx, many, nil))
	for _, tc := range []struct{ limit, want int }{{0, 500}, {5001, 5000}, {1234, 1234}} {
		got, err := s.ListAlerts(ctx, alerting.AlertFilter{ParkID: "p2", Limit: tc.limit})
		must(t, err)
		if len(got) != tc.want {
			t.Errorf("ListAlerts with limit %d returned %d alerts, want %d", tc.limit, len(got), tc.want)
		}
	}
}

func testAlertHistory(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.CreateRule(ctx, thresholdRule("p1", "r1", ""), actor))
	a := testAlert("p1", "r1", 1, alerting.StateFiring)
	b := testAlert("p1", "r1", 2, alerting.StatePending)
	entry := func(al alerting.Alert, kind string, sec int) alerting.HistoryEntry {
		h := historyOf(al, kind)
		h.At = t0.Add(time.Duration(sec)*time.Second + 999*time.Microsecond)
		return h
	}
	// Appended out of time order, and two at the same time: newest first, then last appended.
	entries := []alerting.HistoryEntry{
		entry(a, "pending", 10), entry(a, alerting.EventFiring, 30), entry(b, "pending", 20),
		entry(a, "acknowledged", 40), entry(a, "silenced", 40),
	}
	entries[2].Labels = nil
	must(t, s.SaveAlerts(ctx, nil, entries[:2]))
	must(t, s.SaveAlerts(ctx, []alerting.Alert{a, b}, entries[2:]))
	// A park that is gone: the entry is skipped, the others kept.
	must(t, s.SaveAlerts(ctx, nil, []alerting.HistoryEntry{{AlertID: "al_x", ParkID: "p9", Kind: "pending", At: t0}}))

	kinds := func(hs []alerting.HistoryEntry) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Kind)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		park    string
		alertID string
		since   time.Time
		limit   int
		want    []string
	}{
		{"park", "p1", "", time.Time{}, 0, []string{"silenced", "acknowledged", "firing", "pending", "pending"}},
		{"alert", "p1", a.ID, time.Time{}, 0, []string{"silenced", "acknowledged", "firing", "pending"}},
		{"since", "p1", "", t0.Add(20 * time.Second), 0, []string{"silenced", "acknowledged", "firing", "pending"}},
		{"limit", "p1", a.ID, time.Time{}, 3, []string{"silenced", "acknowledged", "firing"}},
		{"other park", "p2", "", time.Time{}, 0, nil},
	} {
		got, err := s.ListHistory(ctx, tc.park, tc.alertID, tc.since, tc.limit)
		must(t, err)
		if k := kinds(got); !slices.Equal(k, tc.want) {
			t.Errorf("%s: ListHistory = %v, want %v", tc.name, k, tc.want)
		}
	}
	got, err := s.ListHistory(ctx, "p1", b.ID, time.Time{}, 0)
	must(t, err)
	want := entries[2]
	want.At, want.Labels = msUTC(want.At), map[string]string{}
	if len(got) != 1 {
		t.Fatalf("ListHistory of b = %d entries", len(got))
	}
	wantSameJSON(t, "history entry", got[0], want)
	got, err = s.ListHistory(ctx, "p1", a.ID, time.Time{}, 1)
	must(t, err)
	want = entries[4]
	want.At = msUTC(want.At)
	wantSameJSON(t, "history entry", got[0], want)
	if got[0].At.Location() != time.UTC {
		t.Errorf("history time in %v, want UTC", got[0].At.Location())
	}
	if n := count(t, s, "alert_history"); n != len(entries) {
		t.Errorf("alert_history has %d rows, want %d", n, len(entries))
	}
}

func testSilences(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	silence := func(id string, start, end time.Duration) alerting.Silence {
		return alerting.Silence{ID: id, ParkID: "p1", Matchers: []alerting.Matcher{{Name: "meter", Value: "m.*", Regex: true}},
			StartsAt: now.Add(start), EndsAt: now.Add(end), CreatedBy: "ops", Comment: "maintenance"}
	}
	old := silence("old", -3*time.Hour, -time.Hour)
	active := silence("active", -time.Hour, time.Hour)
	active.StartsAt = active.StartsAt.In(shanghai).Add(999 * time.Microsecond) // stored to the ms, in UTC
	future := silence("future", time.Hour, 2*time.Hour)
	for _, sl := range []alerting.Silence{old, active, future} {
		must(t, s.CreateSilence(ctx, sl, actor))
	}
	active.StartsAt = msUTC(active.StartsAt)
	wantAudit(t, s, "silence.create", "parks/p1/silences/future", "p1", nil, future)
	wantErr(t, s.CreateSilence(ctx, old, actor), registry.ErrAlreadyExists)
	bad := silence("bad", 0, time.Hour)
	bad.Comment = ""
	wantFieldError(t, s.CreateSilence(ctx, bad, actor), "comment", "why")
	bad = silence("", 0, time.Hour)
	wantFieldError(t, s.CreateSilence(ctx, bad, actor), "id", "required")
	other := silence("x", 0, time.Hour)
	other.ParkID = "p9"
	wantErr(t, s.CreateSilence(ctx, other, actor), registry.ErrNotFound)

	list, err := s.ListSilences(ctx, "p1")
	must(t, err)
	wantSameJSON(t, "ListSilences", list, []alerting.Silence{future, active, old})

	// Expire: the active one ends now, the future one starts and ends now, the old one stays.
	expireAt := now.Add(time.Minute)
	must(t, s.ExpireSilence(ctx, "p1", "active", expireAt, actor))
	expired := active
	expired.EndsAt = expireAt
	wantAudit(t, s, "silence.expire", "parks/p1/silences/active", "p1", active, expired)
	must(t, s.ExpireSilence(ctx, "p1", "future", expireAt, actor))
	expiredFuture := future
	expiredFuture.StartsAt, expiredFuture.EndsAt = expireAt, expireAt
	rows := len(audit(t, s, AuditFilter{}))
	must(t, s.ExpireSilence(ctx, "p1", "old", expireAt, actor))
	if n := len(audit(t, s, AuditFilter{})); n != rows {
		t.Errorf("expiring an ended silence wrote %d audit rows", n-rows)
	}
	wantErr(t, s.ExpireSilence(ctx, "p1", "nope", expireAt, actor), registry.ErrNotFound)
	wantErr(t, s.ExpireSilence(ctx, "p2", "active", expireAt, actor), registry.ErrNotFound)

	list, err = s.ListSilences(ctx, "p1")
	must(t, err)
	wantSameJSON(t, "ListSilences after expiry", list, []alerting.Silence{expiredFuture, expired, old})
	for _, sl := range list {
		if sl.Active(expireAt) {
			t.Errorf("silence %s still active after expiry", sl.ID)
		}
	}
	if list, _ := s.ListSilences(ctx, "p2"); len(list) != 0 {
		t.Errorf("ListSilences of p2 = %v", list)
	}
}

func testEndpoints(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	const secret = "s3cret-signing-key-0123456789"
	hook := alerting.Endpoint{ID: "hook", ParkID: "p1", Kind: alerting.EndpointWebhook, URL: "https://ops.example/hook", Secret: secret}
	mail := alerting.Endpoint{ID: "mail", ParkID: "p1", Kind: alerting.EndpointEmail, To: []string{"ops@example.com"}}
	must(t, s.CreateEndpoint(ctx, hook, actor))
	redacted := hook
	redacted.Secret = "***"
	wantAudit(t, s, "notification_endpoint.create", "parks/p1/notification-endpoints/hook", "p1", nil, redacted)
	must(t, s.CreateEndpoint(ctx, mail, actor))
	wantErr(t, s.CreateEndpoint(ctx, hook, actor), registry.ErrAlreadyExists)
	short := hook
	short.ID, short.Secret = "short", "x"
	wantFieldError(t, s.CreateEndpoint(ctx, short, actor), "secret", "16")
	other := mail
	other.ParkID = "p9"
	wantErr(t, s.CreateEndpoint(ctx, other, actor), registry.ErrNotFound)

	list, err := s.ListEndpoints(ctx, "p1")
	must(t, err)
	wantSameJSON(t, "ListEndpoints", list, []alerting.Endpoint{hook, mail})

	must(t, s.DeleteEndpoint(ctx, "p1", "hook", actor))
	wantAudit(t, s, "notification_endpoint.delete", "parks/p1/notification-endpoints/hook", "p1", redacted, nil)
	wantErr(t, s.DeleteEndpoint(ctx, "p1", "hook", actor), registry.ErrNotFound)
	list, err = s.ListEndpoints(ctx, "p1")
	must(t, err)
	wantSameJSON(t, "ListEndpoints after delete", list, []alerting.Endpoint{mail})
	for _, e := range audit(t, s, AuditFilter{}) {
		if strings.Contains(string(e.Before)+string(e.After), secret) {
			t.Errorf("audit row %s %s shows the secret", e.Action, e.Resource)
		}
	}
}

func testDeliveries(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	d := func(alertID string, attempt int, sec int, ok bool) alerting.Delivery {
		dl := alerting.Delivery{ParkID: "p1", EndpointID: "hook", AlertID: alertID, Event: alerting.EventFiring,
			Attempt: attempt, At: at.Add(time.Duration(sec) * time.Second), OK: ok, Duration: 250 * time.Millisecond}
		if ok {
			dl.Status = "200 OK"
		} else {
			dl.Status, dl.Error = "503 Service Unavailable", "endpoint unavailable"
		}
		return dl
	}
	for _, dl := range []alerting.Delivery{d("a1", 1, 0, false), d("a2", 1, 5, true), d("a1", 2, 10, true)} {
		must(t, s.RecordDelivery(ctx, dl))
	}
	other := d("a1", 1, 20, true)
	other.ParkID = "p2"
	must(t, s.RecordDelivery(ctx, other))
	missing := d("a1", 1, 20, true)
	missing.ParkID = "p9"
	wantErr(t, s.RecordDelivery(ctx, missing), registry.ErrNotFound)

	list, err := s.ListDeliveries(ctx, "p1", "", 0)
	must(t, err)
	want := []alerting.Delivery{d("a1", 2, 10, true), d("a2", 1, 5, true), d("a1", 1, 0, false)}
	want[0].ID, want[1].ID, want[2].ID = 3, 2, 1
	wantSameJSON(t, "ListDeliveries", list, want)
	list, err = s.ListDeliveries(ctx, "p1", "a1", 0)
	must(t, err)
	wantSameJSON(t, "ListDeliveries of a1", list, []alerting.Delivery{want[0], want[2]})
	list, err = s.ListDeliveries(ctx, "p1", "", 1)
	must(t, err)
	wantSameJSON(t, "ListDeliveries limited", list, want[:1])
}

func testLeases(t *testing.T, s *Store) {
	ctx := t.Context()
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	try := func(holder string, at time.Duration, want bool) {
		t.Helper()
		got, err := s.TryLease(ctx, "evaluator", holder, now.Add(at), time.Minute)
		must(t, err)
		if got != want {
			t.Errorf("TryLease(%s, now+%v) = %v, want %v", holder, at, got, want)
		}
	}
	try("a", 0, true)
	try("b", 30*time.Second, false)
	try("a", 50*time.Second, true)   // renewed until now+110s
	try("b", 100*time.Second, false) // past the first expiry, within the renewal
	try("b", 111*time.Second, true)
	try("a", 112*time.Second, false)
	got, err := s.TryLease(ctx, "other", "a", now, time.Minute)
	must(t, err)
	if !got {
		t.Error("a lease of another name was refused")
	}
	_, err = s.TryLease(ctx, "evaluator", "a", now, 0)
	wantFieldError(t, err, "ttl", "not > 0")
}

func testConcurrentLease(t *testing.T, s *Store) {
	ctx := t.Context()
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	for round := range 5 {
		// An expired lease (or none, in round 0) and 8 contenders.
		at := now.Add(time.Duration(round) * time.Hour)
		var (
			wg      sync.WaitGroup
			winners atomic.Int32
		)
		for i := range 8 {
			wg.Go(func() {
				ok, err := s.TryLease(ctx, "evaluator", fmt.Sprintf("r%d-h%d", round, i), at, time.Minute)
				if err != nil {
					t.Errorf("round %d holder %d: %v", round, i, err)
				}
				if ok {
					winners.Add(1)
				}
			})
		}
		wg.Wait()
		if n := winners.Load(); n != 1 {
			t.Errorf("round %d: %d holders took the lease, want 1", round, n)
		}
	}
}

// testAlertingTablesDeleteOrder checks that a park with alerting rows of every table is kept
// without cascade and deleted with it, alerting rows included.
func testAlertingTablesDeleteOrder(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.CreateMeter(ctx, meter("p1", "m1", "e1", "g1"), actor))
	must(t, s.CreateRule(ctx, thresholdRule("p1", "r1", "m1"), actor))
	must(t, s.CreateRule(ctx, fullRule("p1", "r2"), actor))
	a := testAlert("p1", "r1", 1, alerting.StateFiring)
	must(t, s.SaveAlerts(ctx, []alerting.Alert{a}, []alerting.HistoryEntry{historyOf(a, alerting.EventFiring)}))
	must(t, s.CreateSilence(ctx, alerting.Silence{ID: "s1", ParkID: "p1", Matchers: []alerting.Matcher{{Name: "rule", Value: "r1"}},
		StartsAt: t0, EndsAt: t0.Add(time.Hour), Comment: "test"}, actor))
	must(t, s.CreateEndpoint(ctx, alerting.Endpoint{ID: "mail", ParkID: "p1", Kind: alerting.EndpointEmail, To: []string{"a@b.c"}}, actor))
	must(t, s.RecordDelivery(ctx, alerting.Delivery{ParkID: "p1", EndpointID: "mail", AlertID: a.ID, At: t0, OK: true}))

	wantErrContains(t, s.DeletePark(ctx, "p1", false, actor), registry.ErrConflict, "2 alert rules", "1 notification endpoint")
	for _, table := range alertingTables {
		if n := count(t, s, table); n == 0 {
			t.Errorf("the fixture has no %s", table)
		}
	}
	must(t, s.DeletePark(ctx, "p1", true, actor))
	for _, table := range alertingTables {
		if n := count(t, s, table); n != 0 {
			t.Errorf("%s keeps %d rows of the deleted park", table, n)
		}
	}
}
