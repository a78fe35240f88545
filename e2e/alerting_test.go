package e2e

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/simulators/meters"
)

// The simulated meters change load only with their profile's hour of the day (and the
// weekend), so a load step at a chosen moment is an hour boundary of the simulated clock
// placed there: each simulator runs in real time (speed 1) from a sim_start that many seconds
// before 10:00 of a Wednesday. One simulator's clock cannot place two steps less than an
// hour apart, so enterprise e1 has two meters on two simulators: its production line starts
// (10 → 190 kW) at alertLineStarts and its compressors stop (190 → 10 kW) at
// alertCompressorsStop, taking e1 from 200 kW to 380 kW and back to 200 kW. Enterprise e2's
// meter drops off (Modbus exception 0x0B, the simulator's offline fault) for
// [alertOfflineFrom, alertOfflineTo). All times are from the simulators' common real start.
const (
	alertPoll            = 2 * time.Second
	alertOfflineFrom     = 10 * time.Second
	alertOfflineTo       = 30 * time.Second
	alertLineStarts      = 36 * time.Second
	alertCompressorsStop = 66 * time.Second
	alertEvalInterval    = time.Second
	// e1's power rule: mean over alertPowerWindow above alertPowerThreshold kW fires, at or
	// below alertPowerClear kW resolves.
	alertPowerWindow    = 30 * time.Second
	alertPowerThreshold = 300.0
	alertPowerClear     = 250.0
	alertNoDataLimit    = 3.0 // poll intervals
)

// alertLineSim serves e1's production line (Modbus) and e2's grid meter (Modbus, offline
// for a while) on a clock that reaches 10:00 at alertLineStarts.
func alertLineSim() string {
	return fmt.Sprintf(`
seed: 41
timezone: Asia/Shanghai
interval: %s
profiles:
  line: {base: 10, peak: 180, hours: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}
  e2_plant: {base: 60, pattern: flat}
devices:
  - name: e1-plc
    protocol: modbus-tcp
    meters:
      - {name: e1-line, kind: counter, profile: line, register: 0, type: uint32, word_order: high, scale: 0.001, initial: 1000}
  - name: e2-plc
    protocol: modbus-tcp
    meters:
      - {name: e2-grid, kind: counter, profile: e2_plant, register: 0, type: uint32, scale: 0.01, initial: 5000,
         faults: [{kind: offline, from_step: %d, to_step: %d}]}
`, alertPoll, alertOfflineFrom/alertPoll, alertOfflineTo/alertPoll)
}

// alertCompressorSim serves e1's compressors (DL/T 645) on a clock that reaches 10:00 at
// alertCompressorsStop.
func alertCompressorSim() string {
	return fmt.Sprintf(`
seed: 42
timezone: Asia/Shanghai
interval: %s
profiles:
  compressors: {base: 10, peak: 180, hours: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}
devices:
  - name: e1-bus
    protocol: dlt645-tcp
    meters:
      - {name: e1-compressors, profile: compressors, address: "000000000001", data: total_active_energy, initial: 20000}
`, alertPoll)
}

// TestAlertsFromSimulatedMeters runs simulated Modbus and DL/T 645 meters in real time through
// the edge agent, Mosquitto, a collector and InfluxDB to a `serve --roles
// api,accounting,alerting` process evaluating every second, with rules and a webhook endpoint
// created over REST: a threshold on enterprise e1's mean power over 30 s, and no_data over the
// park (3 poll intervals). e1's load rises above the threshold and falls back; e2's meter goes
// offline and comes back. The webhook (an httptest server checking every signature) must get
// exactly one firing and one resolved notification of each alert, the no_data one for the
// offline meter alone, each delivered once; the alert list, the history and the delivery log
// over REST and the live feed over Server-Sent Events must tell the same story.
//
// It is not parallel: its timing (a meter counts as silent after 6 s) should not compete with
// the fault tests' processes.
func TestAlertsFromSimulatedMeters(t *testing.T) {
	const (
		adminToken = "e2e-alerting-admin-token-0123456789abcdef"
		secret     = "e2e-webhook-secret-0123456789"
	)
	began := time.Now()
	p := &park{t: t, dir: t.TempDir()}
	p.influx = localsvc.InfluxDBForTest(t)
	p.mq = localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{})
	p.dsn = localsvc.PostgresForTest(t)
	p.ts = influx.New(influx.Options{URL: p.influx.URL, Bucket: p.influx.Bucket})
	t.Cleanup(p.ts.Close)

	iv := int32(alertPoll / time.Second)
	p.registerPark("Asia/Shanghai", []string{"e1", "e2"}, []registry.Meter{
		{ID: "e1-line", EnterpriseID: "e1", Carrier: registry.Electricity, Unit: "kWh", Multiplier: 1, IntervalSeconds: iv},
		{ID: "e1-compressors", EnterpriseID: "e1", Carrier: registry.Electricity, Unit: "kWh", Multiplier: 1, IntervalSeconds: iv},
		{ID: "e2-grid", EnterpriseID: "e2", Carrier: registry.Electricity, Unit: "kWh", Multiplier: 1, IntervalSeconds: iv},
	})
	coll := p.startCollector("collector")
	srv, base := p.startAlerting("alerting", adminToken, alertEvalInterval)
	hook := newWebhook(t, secret)
	api := base + "/api/v1/parks/" + parkID
	tails := func() string {
		return fmt.Sprintf("\nalerting log:\n%s\ncollector log:\n%s\nagent log:\n%s", srv.logTail(), coll.logTail(), p.agent.logTail())
	}

	// Both simulators start their real-time clocks at start, a whole poll interval, so that
	// their steps fall on the agent's poll slots; the load profiles step at 10:00 (a Wednesday)
	// of the simulated day.
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	stepHour := time.Date(2026, 11, 4, 10, 0, 0, 0, loc)
	start := time.Now().Truncate(alertPoll)
	var devs []device.Config
	for _, s := range []struct {
		name, yaml string
		step       time.Duration
	}{{"line", alertLineSim(), alertLineStarts}, {"compressors", alertCompressorSim(), alertCompressorsStop}} {
		cfg, err := meters.ParseConfig([]byte(s.yaml), s.name)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Clock = meters.Clock{SimStart: stepHour.Add(-s.step), RealStart: start, Speed: 1}
		sim, err := meters.New(cfg, meters.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sim.Close() })
		devs = append(devs, sim.DeviceConfigs()...)
	}
	p.startRealTimeAgent(devs)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	since := func(tm time.Time) string { return tm.Sub(start).Round(100 * time.Millisecond).String() }

	// Rules go in once every meter has a reading in InfluxDB: before that, no_data would rightly
	// fire for a meter that never reported.
	for deadline := at(alertOfflineFrom - alertPoll); ; time.Sleep(200 * time.Millisecond) {
		last, err := p.ts.LastReadings(t.Context(), parkID, nil, start.Add(-time.Minute), time.Now().Add(time.Minute))
		if err == nil && len(last) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every meter had a reading in InfluxDB %s after the simulators started (before e2-grid goes offline): %v, %v%s",
				since(time.Now()), last, err, tails())
		}
	}
	live := watchFeed(t, api+"/alerts/stream", adminToken, 10*time.Second)
	for _, c := range []struct{ path, body string }{
		{"/notification-endpoints", fmt.Sprintf(`{"id": "ops-hook", "kind": "webhook", "url": %q, "secret": %q}`, hook.URL(), secret)},
		{"/alert-rules", fmt.Sprintf(`{"id": "e1-power", "name": "e1 above %v kW", "kind": "threshold", "metric": "power",
			"enterprise_id": "e1", "op": ">", "threshold": %v, "clear": %v, "window": %q, "severity": "warning", "endpoints": ["ops-hook"]}`,
			alertPowerThreshold, alertPowerThreshold, alertPowerClear, alertPowerWindow.String())},
		{"/alert-rules", fmt.Sprintf(`{"id": "silent-meter", "name": "meter silent for %v intervals", "kind": "no_data",
			"op": ">", "threshold": %v, "severity": "critical", "endpoints": ["ops-hook"]}`, alertNoDataLimit, alertNoDataLimit)},
	} {
		if err := postJSON(api+c.path, adminToken, c.body); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("rules and webhook created %s after the simulators started (setup took %s)", since(time.Now()), time.Since(began).Round(100*time.Millisecond))

	// Each notification is awaited until a deadline well after it is due.
	wait := func(what, rule, meter, event string, deadline time.Time) hookEvent {
		t.Helper()
		for ; ; time.Sleep(100 * time.Millisecond) {
			got, _ := hook.received()
			for _, e := range got {
				if e.RuleID == rule && e.Labels["meter"] == meter && e.Event == event {
					t.Logf("%s: %s after start: %s", what, since(e.at), e)
					return e
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %s notification of rule %s by %s after start; the webhook got:\n%s%s",
					what, event, rule, since(deadline), list(got), tails())
			}
		}
	}
	noDataFiring := wait("e2-grid silent", "silent-meter", "e2-grid", "firing", at(alertOfflineFrom+15*time.Second))
	noDataResolved := wait("e2-grid back", "silent-meter", "e2-grid", "resolved", at(alertOfflineTo+12*time.Second))
	powerFiring := wait("e1 above threshold", "e1-power", "", "firing", at(alertLineStarts+30*time.Second))
	powerResolved := wait("e1 back below clear", "e1-power", "", "resolved", at(alertCompressorsStop+40*time.Second))
	// A few more evaluations: nothing else may come.
	time.Sleep(5 * alertEvalInterval)

	got, hookErrs := hook.received()
	for _, e := range hookErrs {
		t.Errorf("webhook: %s", e)
	}
	want := []hookEvent{noDataFiring, noDataResolved, powerFiring, powerResolved}
	if len(got) != len(want) {
		t.Errorf("the webhook got %d notifications, want %d (a firing and a resolved of each alert, once):\n%s", len(got), len(want), list(got))
	}
	deliveries := map[string]bool{}
	for _, e := range got {
		if !e.signed {
			t.Errorf("notification with a bad %s: %s", "X-Parkcarbon-Signature", e)
		}
		if e.delivery == "" || deliveries[e.delivery] {
			t.Errorf("delivery id %q missing or seen twice: %s", e.delivery, e)
		}
		deliveries[e.delivery] = true
		if e.ParkID != parkID {
			t.Errorf("park %q: %s", e.ParkID, e)
		}
	}
	checkValue := func(e hookEvent, ok func(float64) bool, want string) {
		t.Helper()
		if e.Value == nil || !ok(*e.Value) {
			t.Errorf("%s value, want %s: %s", e.Event, want, e)
		}
	}
	// The power alert is e1's, fired after the line started while both machines ran, and
	// resolved after the compressors stopped.
	for _, e := range []hookEvent{powerFiring, powerResolved} {
		if e.Labels["enterprise"] != "e1" || e.Labels["rule"] != "e1-power" || e.AlertID != powerFiring.AlertID {
			t.Errorf("power alert labels %v id %s, want enterprise e1, alert %s", e.Labels, e.AlertID, powerFiring.AlertID)
		}
	}
	checkValue(powerFiring, func(v float64) bool { return v > alertPowerThreshold && v < 380+1 }, "in (300, 381] kW")
	checkValue(powerResolved, func(v float64) bool { return v <= alertPowerClear && v > 200-1 }, "in [199, 250] kW")
	if !powerFiring.at.After(at(alertLineStarts)) || !powerFiring.at.Before(at(alertCompressorsStop+alertPowerWindow)) {
		t.Errorf("power alert fired %s after start, want between the line starting (%s) and the compressors' stop leaving the window (%s)",
			since(powerFiring.at), alertLineStarts, alertCompressorsStop+alertPowerWindow)
	}
	if !powerResolved.at.After(at(alertCompressorsStop)) {
		t.Errorf("power alert resolved %s after start, before the compressors stopped (%s)", since(powerResolved.at), alertCompressorsStop)
	}
	// The no_data alert is e2-grid's, between its going offline and its return.
	for _, e := range []hookEvent{noDataFiring, noDataResolved} {
		if e.Labels["meter"] != "e2-grid" || e.Labels["enterprise"] != "e2" || e.AlertID != noDataFiring.AlertID {
			t.Errorf("no_data alert labels %v id %s, want meter e2-grid of e2, alert %s", e.Labels, e.AlertID, noDataFiring.AlertID)
		}
	}
	checkValue(noDataFiring, func(v float64) bool { return v > alertNoDataLimit && v < 15 }, "in (3, 15) intervals")
	checkValue(noDataResolved, func(v float64) bool { return v <= alertNoDataLimit }, "at most 3 intervals")
	// Its last reading before the outage is the poll slot before alertOfflineFrom.
	silentFrom := alertOfflineFrom - alertPoll + time.Duration(alertNoDataLimit)*alertPoll
	if !noDataFiring.at.After(at(silentFrom)) || !noDataResolved.at.After(at(alertOfflineTo)) {
		t.Errorf("no_data fired %s and resolved %s after start, want after %s and after %s",
			since(noDataFiring.at), since(noDataResolved.at), silentFrom, alertOfflineTo)
	}
	for _, e := range []hookEvent{noDataResolved, powerResolved} {
		if e.State != "resolved" || e.FiredAt == nil || e.Resolved == nil {
			t.Errorf("resolved notification with state %q fired_at %v resolved_at %v: %s", e.State, e.FiredAt, e.Resolved, e)
		}
	}

	// The alerts over REST: these two, resolved; nothing else was ever pending or firing.
	var alerts struct {
		Alerts []struct {
			ID         string            `json:"id"`
			RuleID     string            `json:"rule_id"`
			Labels     map[string]string `json:"labels"`
			State      string            `json:"state"`
			FiredAt    string            `json:"fired_at"`
			ResolvedAt string            `json:"resolved_at"`
		} `json:"alerts"`
	}
	if err := getJSON(api+"/alerts", adminToken, &alerts); err != nil {
		t.Fatal(err)
	}
	ids := []string{noDataFiring.AlertID, powerFiring.AlertID}
	if len(alerts.Alerts) != len(ids) {
		t.Errorf("GET /alerts lists %d alerts, want %d: %+v", len(alerts.Alerts), len(ids), alerts.Alerts)
	}
	for _, a := range alerts.Alerts {
		if !slices.Contains(ids, a.ID) || a.State != "resolved" || a.FiredAt == "" || a.ResolvedAt == "" {
			t.Errorf("GET /alerts: %+v, want alert %v resolved with fired_at and resolved_at", a, ids)
		}
	}

	// The history over REST: a firing then a resolution of each, at the times they were sent.
	var history struct {
		Entries []struct {
			AlertID string  `json:"alert_id"`
			Kind    string  `json:"kind"`
			State   string  `json:"state"`
			Value   float64 `json:"value"`
			At      string  `json:"at"`
		} `json:"entries"`
	}
	if err := getJSON(api+"/alert-history", adminToken, &history); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(history.Entries) // oldest first
	var hist []string
	for _, h := range history.Entries {
		hist = append(hist, h.AlertID+" "+h.Kind+" "+h.State)
	}
	var wantHist []string
	for _, e := range want {
		wantHist = append(wantHist, e.AlertID+" "+e.Event+" "+e.State)
	}
	if !slices.Equal(hist, wantHist) {
		t.Errorf("alert history, oldest first:\n  %s\nwant:\n  %s", strings.Join(hist, "\n  "), strings.Join(wantHist, "\n  "))
	}
	for _, id := range ids {
		var one struct {
			Entries []struct {
				Kind string `json:"kind"`
			} `json:"entries"`
		}
		if err := getJSON(api+"/alert-history?"+url.Values{"alert_id": {id}}.Encode(), adminToken, &one); err != nil {
			t.Fatal(err)
		}
		if len(one.Entries) != 2 || one.Entries[0].Kind != "resolved" || one.Entries[1].Kind != "firing" {
			t.Errorf("history of alert %s, newest first: %+v, want resolved, firing", id, one.Entries)
		}
	}

	// The delivery log: each notification delivered at the first attempt.
	var dlog struct {
		Deliveries []struct {
			AlertID string `json:"alert_id"`
			Event   string `json:"event"`
			Attempt int    `json:"attempt"`
			OK      bool   `json:"ok"`
			Status  string `json:"status"`
			Error   string `json:"error"`
		} `json:"deliveries"`
	}
	if err := getJSON(api+"/deliveries", adminToken, &dlog); err != nil {
		t.Fatal(err)
	}
	if len(dlog.Deliveries) != len(want) {
		t.Errorf("delivery log has %d entries, want %d: %+v", len(dlog.Deliveries), len(want), dlog.Deliveries)
	}
	for _, d := range dlog.Deliveries {
		if !d.OK || d.Attempt != 1 || d.Status != "204" {
			t.Errorf("delivery %+v, want ok at attempt 1 with status 204", d)
		}
	}

	// The live feed saw the same events, in the same order.
	events, feedErr := live.received()
	if feedErr != nil {
		t.Errorf("alert feed: %v", feedErr)
	}
	var seen []string
	for _, e := range events {
		seen = append(seen, e.Alert.ID+" "+e.Kind+" "+e.Alert.State+" meter="+e.Alert.Labels["meter"])
	}
	var wantSeen []string
	for _, e := range want {
		wantSeen = append(wantSeen, e.AlertID+" "+e.Event+" "+e.State+" meter="+e.Labels["meter"])
	}
	if !slices.Equal(seen, wantSeen) {
		t.Errorf("live feed:\n  %s\nwant:\n  %s", strings.Join(seen, "\n  "), strings.Join(wantSeen, "\n  "))
	}

	t.Logf("e2-grid offline %s–%s: no_data fired %s, resolved %s after start (%.1f, %.1f intervals); "+
		"e1 line start %s, compressors stop %s: power fired %s (%.1f kW), resolved %s (%.1f kW); "+
		"%d webhook posts, %d history entries, %d deliveries, %d feed events; %s in all",
		alertOfflineFrom, alertOfflineTo, since(noDataFiring.at), since(noDataResolved.at), deref(noDataFiring.Value), deref(noDataResolved.Value),
		alertLineStarts, alertCompressorsStop, since(powerFiring.at), deref(powerFiring.Value), since(powerResolved.at), deref(powerResolved.Value),
		len(got), len(history.Entries), len(dlog.Deliveries), len(events), time.Since(began).Round(100*time.Millisecond))
	if t.Failed() {
		t.Log(tails())
	}
}

// list formats webhook notifications one a line.
func list(es []hookEvent) string {
	if len(es) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for _, e := range es {
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}
