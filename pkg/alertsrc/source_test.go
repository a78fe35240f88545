package alertsrc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

const park = "p1"

// now is 2026-07-02 12:00 in Asia/Shanghai: exactly half of the year 2026 has passed.
var now = time.Date(2026, 7, 2, 4, 0, 0, 0, time.UTC)

func ptr(v float64) *float64 { return &v }

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

type fixture struct {
	rec      *recorder
	readings *fakeReadings
	reg      *fakeRegistry
	ledger   *fakeLedger
	accounts *fakeAccounts
	src      *Source
}

func meter(id, ent string, c registry.Carrier, dir registry.Direction, k registry.Kind, interval int32) registry.Meter {
	return registry.Meter{ID: id, ParkID: park, EnterpriseID: ent, Carrier: c, Direction: dir, Kind: k,
		Multiplier: 1, GreenClass: registry.GreenNone, IntervalSeconds: interval}
}

// newFixture: enterprise e1 with m1 (electricity in, ×2, rollover 10000, every minute), m3
// (electricity out, every minute) and gas; park-level m2 (electricity in, every 5 minutes) and
// m4 (electricity in, silent for a day); m5 a gauge of e2; m6 never reported; m7 without an
// interval; m8 hourly, silent for 3 days.
func newFixture() *fixture {
	rec := &recorder{}
	m1 := meter("m1", "e1", registry.Electricity, registry.In, registry.Counter, 60)
	m1.Multiplier, m1.Rollover = 2, 10000
	meters := []registry.Meter{
		m1,
		meter("m2", "", registry.Electricity, registry.In, registry.Counter, 300),
		meter("m3", "e1", registry.Electricity, registry.Out, registry.Counter, 60),
		meter("m4", "", registry.Electricity, registry.In, registry.Counter, 60),
		meter("m5", "e2", registry.Electricity, registry.In, registry.Gauge, 60),
		meter("m6", "e2", registry.NaturalGas, registry.In, registry.Counter, 300),
		meter("m7", "", registry.Heat, registry.In, registry.Counter, 0),
		meter("m8", "", registry.Heat, registry.In, registry.Counter, 3600),
		meter("gas", "e1", registry.NaturalGas, registry.In, registry.Counter, 60),
	}
	samples := map[string][]influx.Sample{}
	carrier := map[string]string{}
	for _, m := range meters {
		carrier[m.ID] = string(m.Carrier)
	}
	// m1: one register unit a minute (2 kWh: 120 kW), wrapping at 10000 one minute before now.
	for k := 0; k <= 30; k++ {
		samples["m1"] = append(samples["m1"], influx.Sample{TS: now.Add(time.Duration(k-30) * time.Minute), Value: math.Mod(9971+float64(k), 10000)})
	}
	// m2: 10 kWh every 5 minutes (120 kW), last reading 3 minutes before now.
	for k, v := range []float64{70, 80, 90, 100, 110} {
		samples["m2"] = append(samples["m2"], influx.Sample{TS: now.Add(-23*time.Minute + time.Duration(k)*5*time.Minute), Value: v})
	}
	// m3: 0.5 kWh a minute out (30 kW).
	for k := 0; k <= 30; k++ {
		samples["m3"] = append(samples["m3"], influx.Sample{TS: now.Add(time.Duration(k-30) * time.Minute), Value: 500 + 0.5*float64(k)})
	}
	samples["gas"] = []influx.Sample{{TS: now.Add(-2 * time.Minute), Value: 1}, {TS: now, Value: 1000}}
	samples["m4"] = []influx.Sample{{TS: now.Add(-25 * time.Hour), Value: 1}}
	samples["m5"] = []influx.Sample{{TS: now.Add(-10 * time.Minute), Value: 42}}
	samples["m8"] = []influx.Sample{{TS: now.Add(-72 * time.Hour), Value: 5}}
	samples["gone"] = []influx.Sample{{TS: now.Add(-time.Minute), Value: 5}}

	f := &fixture{
		rec:      rec,
		readings: &fakeReadings{recorder: rec, samples: samples, carrier: carrier, err: map[string]error{}},
		reg: &fakeRegistry{recorder: rec, meters: meters, enterprises: []string{"e1", "e2", "e3"},
			park: registry.Park{ID: park, Timezone: "Asia/Shanghai"}},
		ledger:   &fakeLedger{recorder: rec},
		accounts: &fakeAccounts{recorder: rec, results: map[string]accounting.Result{}},
	}
	f.src = New(Options{Readings: f.readings, Registry: f.reg, Ledger: f.ledger, Accounts: f.accounts})
	return f
}

func (f *fixture) observe(t *testing.T, rules ...alerting.Rule) map[string]alerting.Result {
	t.Helper()
	for i := range rules {
		if rules[i].ID == "" {
			rules[i].ID = fmt.Sprintf("r%d", i)
		}
		rules[i].ParkID = park
	}
	got := f.src.Observe(context.Background(), park, rules, now)
	if len(got) != len(rules) {
		t.Fatalf("%d results for %d rules", len(got), len(rules))
	}
	return got
}

// want is one expected observation: labels as "k=v,k=v" and the value.
type want struct {
	labels  string
	value   float64
	summary string // a substring of the summary
}

func labelString(l map[string]string) string {
	var parts []string
	for _, k := range []string{"enterprise", "gateway", "meter"} {
		if v, ok := l[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	if len(parts) != len(l) {
		return fmt.Sprintf("unexpected labels %v", l)
	}
	return strings.Join(parts, ",")
}

func check(t *testing.T, res alerting.Result, wants ...want) {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("error: %v", res.Err)
	}
	if len(res.Observations) != len(wants) {
		var got []string
		for _, o := range res.Observations {
			got = append(got, fmt.Sprintf("%s=%v", labelString(o.Labels), o.Value))
		}
		t.Fatalf("%d observations %v, want %d %v", len(res.Observations), got, len(wants), wants)
	}
	for i, w := range wants {
		o := res.Observations[i]
		if o.Labels == nil {
			t.Errorf("observation %d has nil labels", i)
		}
		if got := labelString(o.Labels); got != w.labels || !near(o.Value, w.value) {
			t.Errorf("observation %d: %s = %v, want %s = %v", i, got, o.Value, w.labels, w.value)
		}
		if !strings.Contains(o.Summary, w.summary) {
			t.Errorf("observation %d summary %q lacks %q", i, o.Summary, w.summary)
		}
	}
}

func TestPower(t *testing.T) {
	f := newFixture()
	got := f.observe(t,
		alerting.Rule{ID: "meter", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, MeterID: "m1", Window: 5 * time.Minute},
		alerting.Rule{ID: "prorated", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, MeterID: "m2", Window: 5 * time.Minute},
		alerting.Rule{ID: "out", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, MeterID: "m3", Window: 5 * time.Minute},
		alerting.Rule{ID: "enterprise", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, EnterpriseID: "e1", Window: 10 * time.Minute},
		alerting.Rule{ID: "park", Kind: alerting.KindThreshold, Metric: alerting.MetricPower},
		alerting.Rule{ID: "silent", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, MeterID: "m4", Window: 5 * time.Minute},
		alerting.Rule{ID: "gas", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, MeterID: "gas", Window: 5 * time.Minute},
		alerting.Rule{ID: "gauge", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, MeterID: "m5", Window: 5 * time.Minute},
	)
	// The rollover 9999 -> 0 one minute before now books 1 unit like every other minute.
	check(t, got["meter"], want{"enterprise=e1,meter=m1", 120, "120 kW"})
	// m2's interval from -8 to -3 minutes is 2/5 inside the window: 4 kWh over 2 minutes.
	check(t, got["prorated"], want{"meter=m2", 120, ""})
	// A meter alone is its consumption, whatever its direction.
	check(t, got["out"], want{"enterprise=e1,meter=m3", 30, ""})
	check(t, got["enterprise"], want{"enterprise=e1", 90, "2 of 2 meters"})
	// The park over the default 15 minutes: m1 + m2 − m3; m4 reports nothing in the window.
	check(t, got["park"], want{"", 210, "3 of 4 meters"})
	check(t, got["silent"])
	for _, id := range []string{"gas", "gauge"} {
		if !errors.Is(got[id].Err, ErrUnsupported) {
			t.Errorf("power of %s: %v, want ErrUnsupported", id, got[id].Err)
		}
	}
	// One query for every power rule, over the longest window (the park's 15 minutes).
	calls := f.rec.of("CarrierReadings")
	if len(calls) != 1 || !calls[0].from.Equal(now.Add(-15*time.Minute)) || calls[0].to.Before(now) || calls[0].lookback < 10*time.Minute {
		t.Fatalf("power queries %+v", calls)
	}
	if n := f.rec.count("LastReadings") + f.rec.count("HourlyRollups") + f.rec.count("HourlyTotals") + f.rec.count("QualityHours") +
		f.rec.count("Indicators") + f.rec.count("GetPark"); n != 0 {
		t.Errorf("%d queries the power rules do not need", n)
	}
}

func TestNoData(t *testing.T) {
	f := newFixture()
	got := f.observe(t,
		alerting.Rule{ID: "park", Kind: alerting.KindNoData, Threshold: 3},
		alerting.Rule{ID: "m5", Kind: alerting.KindNoData, MeterID: "m5", Threshold: 3},
		alerting.Rule{ID: "m7", Kind: alerting.KindNoData, MeterID: "m7", Threshold: 3},
		alerting.Rule{ID: "unknown", Kind: alerting.KindNoData, MeterID: "nope", Threshold: 3},
	)
	check(t, got["park"],
		want{"enterprise=e1,meter=m1", 0, "silent for 0.0 intervals"},
		want{"meter=m2", 0.6, "silent for 0.6 intervals"},
		want{"enterprise=e1,meter=m3", 0, ""},
		want{"meter=m4", 25 * 60, ""},
		want{"enterprise=e2,meter=m5", 10, ""},
		// Never reported: counted from the 35-day lookback limit, and the summary says so.
		want{"enterprise=e2,meter=m6", 35 * 24 * 12, "no reading in the last 840h0m0s"},
		// m7 has no interval; m8 reported 3 days ago, found by the second, older search.
		want{"meter=m8", 72, "last reading 2026-06-29T04:00:00Z"},
		want{"enterprise=e1,meter=gas", 0, ""},
	)
	check(t, got["m5"], want{"enterprise=e2,meter=m5", 10, ""})
	check(t, got["m7"])
	if !errors.Is(got["unknown"].Err, registry.ErrNotFound) {
		t.Errorf("unknown meter: %v", got["unknown"].Err)
	}
	// Four of the longest interval (m8's hour) for every meter, then back to 35 days for the
	// silent ones only.
	calls := f.rec.of("LastReadings")
	if len(calls) != 2 || calls[0].meters != nil || !calls[0].from.Equal(now.Add(-4*time.Hour)) ||
		fmt.Sprint(calls[1].meters) != "[m4 m6 m8]" || !calls[1].from.Equal(now.Add(-NoDataLookback)) || !calls[1].to.Equal(now.Add(-4*time.Hour)) {
		t.Fatalf("last reading queries %+v", calls)
	}
}

func TestNoDataOneQueryWhenAllReport(t *testing.T) {
	f := newFixture()
	f.reg.meters = f.reg.meters[:3]
	got := f.observe(t, alerting.Rule{Kind: alerting.KindNoData, Threshold: 3})
	if len(got["r0"].Observations) != 3 || f.rec.count("LastReadings") != 1 {
		t.Fatalf("%+v, %d queries", got, f.rec.count("LastReadings"))
	}
}

func TestSeqGapAndDeadLetters(t *testing.T) {
	f := newFixture()
	f.ledger.seqs = []telemetry.GatewaySeq{
		{Park: park, Gateway: "g1", Contiguous: 10, MaxSeen: 14, Missing: 2, GapSince: now.Add(-90 * time.Second)},
		{Park: park, Gateway: "g2", Contiguous: 20, MaxSeen: 20},
	}
	f.ledger.dead = 7
	got := f.observe(t,
		alerting.Rule{ID: "gap", Kind: alerting.KindSeqGap, Threshold: 60},
		alerting.Rule{ID: "dead", Kind: alerting.KindDeadLetters, Threshold: 5},
	)
	check(t, got["gap"], want{"gateway=g1", 90, "2 batches missing after 10"}, want{"gateway=g2", 0, "no sequence gap"})
	check(t, got["dead"], want{"", 7, "7 dead letters"})
	if c := f.rec.of("CountDeadLetters"); len(c) != 1 || !c[0].from.Equal(now.Add(-time.Hour)) {
		t.Fatalf("dead letter counts %+v", c)
	}
	if f.rec.count("AllMeters") != 0 {
		t.Errorf("the registry was read for gateway rules")
	}
}

func hour(h int) time.Time { return now.Truncate(time.Hour).Add(time.Duration(h) * time.Hour) }

func rollup(m, ent, dir string, start time.Time, q accounting.Quality, tce, co2 *float64) influx.RollupPoint {
	return influx.RollupPoint{Park: park, Enterprise: ent, Meter: m, Carrier: "electricity", Direction: dir,
		Start: start, Quality: int64(q), TceEqual: tce, CO2T: co2}
}

func TestDataQuality(t *testing.T) {
	f := newFixture()
	f.readings.rollups = []influx.RollupPoint{
		rollup("m1", "e1", "in", hour(-5), accounting.QualitySpike, nil, nil), // before the window
		rollup("m1", "e1", "in", hour(-3), accounting.QualityReset, nil, nil),
		rollup("m1", "e1", "in", hour(-2), accounting.QualityGap|accounting.QualityEstimated, nil, nil),
		rollup("m1", "e1", "in", hour(-1), accounting.QualityRollover|accounting.QualityZeroGlitch, nil, nil),
		rollup("m3", "e1", "out", hour(-1), 0, nil, nil),
	}
	got := f.observe(t,
		alerting.Rule{ID: "all", Kind: alerting.KindDataQuality, EnterpriseID: "e1", Window: 4 * time.Hour},
		alerting.Rule{ID: "gap", Kind: alerting.KindDataQuality, MeterID: "m1", Window: 4 * time.Hour, Qualities: []string{"gap"}},
		alerting.Rule{ID: "long", Kind: alerting.KindDataQuality, MeterID: "m1", Window: 6 * time.Hour, Qualities: []string{"spike", "replacement"}},
	)
	check(t, got["all"],
		want{"enterprise=e1,meter=m1", 2, "2026-07-02T01:00Z reset, 2026-07-02T02:00Z gap"},
		want{"enterprise=e1,meter=m3", 0, "no reset|replacement|spike|gap in the last 4h0m0s"},
		want{"enterprise=e1,meter=gas", 0, ""},
	)
	check(t, got["gap"], want{"enterprise=e1,meter=m1", 1, "2026-07-02T02:00Z gap"})
	check(t, got["long"], want{"enterprise=e1,meter=m1", 1, "spike"})
	// One read over the longest window: the flagged hours only.
	method := "QualityHours"
	if c := f.rec.of(method); len(c) != 1 || !c[0].from.Equal(now.Add(-6*time.Hour)) || !c[0].to.Equal(now) {
		t.Fatalf("rollup reads %+v", c)
	}
	if n := f.rec.count("HourlyTotals") + f.rec.count("QualityHours") + f.rec.count("HourlyRollups"); n != 1 {
		t.Errorf("%d rollup queries, want 1", n)
	}
}

func TestEnergyAndCO2Thresholds(t *testing.T) {
	f := newFixture()
	var points []influx.RollupPoint
	for h := -4; h <= 0; h++ {
		points = append(points,
			rollup("m1", "e1", "in", hour(h), 0, ptr(1), ptr(2)),
			rollup("m3", "e1", "out", hour(h), 0, ptr(-0.25), ptr(-0.5)),
			rollup("m2", "", "in", hour(h), 0, ptr(10), ptr(20)))
	}
	points = append(points,
		rollup("m4", "", "in", hour(-1), 0, nil, nil), // no factors
		// m5 moved from e2 to e1 in the last hour: each hour counts for the enterprise
		// it is tagged with, the meter's both.
		rollup("m5", "e2", "in", hour(-1), 0, ptr(100), nil),
		rollup("m5", "e1", "in", hour(0), 0, ptr(1000), nil))
	f.readings.rollups = points
	mid := now.Add(30 * time.Minute)
	rules := []alerting.Rule{
		{ID: "e1", Kind: alerting.KindThreshold, Metric: alerting.MetricEnergyTce, EnterpriseID: "e1", Window: 3 * time.Hour},
		{ID: "park", Kind: alerting.KindThreshold, Metric: alerting.MetricCO2, Window: 2 * time.Hour},
		{ID: "m3", Kind: alerting.KindThreshold, Metric: alerting.MetricCO2, MeterID: "m3", Window: 2 * time.Hour},
		{ID: "nofactor", Kind: alerting.KindThreshold, Metric: alerting.MetricEnergyTce, MeterID: "m4", Window: 2 * time.Hour},
		{ID: "hour", Kind: alerting.KindThreshold, Metric: alerting.MetricEnergyTce, EnterpriseID: "e1", Window: time.Hour},
		{ID: "moved", Kind: alerting.KindThreshold, Metric: alerting.MetricEnergyTce, MeterID: "m5", Window: 2 * time.Hour},
		{ID: "e2", Kind: alerting.KindThreshold, Metric: alerting.MetricEnergyTce, EnterpriseID: "e2", Window: 2 * time.Hour},
		{ID: "nowindow", Kind: alerting.KindThreshold, Metric: alerting.MetricEnergyTce, EnterpriseID: "e1"},
	}
	for i := range rules {
		rules[i].ParkID = park
	}
	got := f.src.Observe(context.Background(), park, rules, mid)
	// At 04:30, 3 hours back is 01:30: the hours 01:00, 02:00, 03:00 and the current
	// 04:00 so far overlap the window. Out meters count negative, as stored.
	check(t, got["e1"], want{"enterprise=e1", 4*0.75 + 1000, "4 hours from 2026-07-02T01:00:00Z (the current one so far)"})
	// 2 hours back is 02:30: 02:00, 03:00, 04:00.
	check(t, got["park"], want{"", 3 * (2 + 20 - 0.5), ""})
	check(t, got["m3"], want{"enterprise=e1,meter=m3", -1.5, ""})
	check(t, got["nofactor"])
	// An hour back is 03:30: 03:00, whole, and 04:00 so far: the rule keeps its
	// observation across the hour's start.
	check(t, got["hour"], want{"enterprise=e1", 2*0.75 + 1000, "2 hours from 2026-07-02T03:00:00Z"})
	check(t, got["moved"], want{"enterprise=e2,meter=m5", 1100, ""})
	check(t, got["e2"], want{"enterprise=e2", 100, ""})
	if !errors.Is(got["nowindow"].Err, registry.ErrInvalid) {
		t.Errorf("energy without a window: %+v", got["nowindow"])
	}
	// One sum per field and span, by enterprise, and by meter when a rule is per meter.
	var sums []string
	for _, c := range f.rec.of("HourlyTotals") {
		sums = append(sums, fmt.Sprintf("%s %s..%s %v", c.field, c.from.Sub(hour(0)), c.to.Sub(hour(0)), c.groupBy))
	}
	slices.Sort(sums)
	if fmt.Sprint(sums) != "[co2_t -2h0m0s..30m0s [enterprise meter] tce_equal -1h0m0s..30m0s [enterprise] "+
		"tce_equal -2h0m0s..30m0s [enterprise meter] tce_equal -3h0m0s..30m0s [enterprise]]" ||
		f.rec.count("HourlyRollups")+f.rec.count("QualityHours") != 0 {
		t.Fatalf("rollup sums %v", sums)
	}
}

// TestEnergyAtTheHour: a window ending on the hour holds whole hours only.
func TestEnergyAtTheHour(t *testing.T) {
	f := newFixture()
	f.readings.rollups = []influx.RollupPoint{
		rollup("m1", "e1", "in", hour(-2), 0, ptr(1), nil),
		rollup("m1", "e1", "in", hour(-1), 0, ptr(2), nil),
		rollup("m1", "e1", "in", hour(0), 0, ptr(4), nil), // starts at now: not in the window
	}
	got := f.observe(t, alerting.Rule{Kind: alerting.KindThreshold, Metric: alerting.MetricEnergyTce, MeterID: "m1", Window: time.Hour})
	check(t, got["r0"], want{"enterprise=e1,meter=m1", 2, "1 hours from 2026-07-02T03:00:00Z"})
}

func TestRateOfChange(t *testing.T) {
	f := newFixture()
	var points []influx.RollupPoint
	for h := -2 * 168; h <= 0; h++ {
		// e1: 1 tce an hour the day before, 1.2 in the last day; flat before the last week.
		v := 1.0
		if h >= -24 {
			v = 1.2
		}
		points = append(points, rollup("m1", "e1", "in", hour(h), 0, ptr(v), nil))
		// m2: nothing the day before yesterday, then 1 tce an hour.
		w := 0.0
		if h >= -24 {
			w = 1
		}
		points = append(points, rollup("m2", "", "in", hour(h), 0, ptr(w), nil))
	}
	f.readings.rollups = points
	got := f.observe(t,
		alerting.Rule{ID: "day", Kind: alerting.KindRateOfChange, Compare: "day", EnterpriseID: "e1", Threshold: 10},
		alerting.Rule{ID: "week", Kind: alerting.KindRateOfChange, Compare: "week", MeterID: "m1", Threshold: 10},
		alerting.Rule{ID: "zero", Kind: alerting.KindRateOfChange, Compare: "day", MeterID: "m2", Threshold: 10},
		alerting.Rule{ID: "nodata", Kind: alerting.KindRateOfChange, Compare: "day", MeterID: "m3", Threshold: 10},
		alerting.Rule{ID: "park", Kind: alerting.KindRateOfChange, Compare: "day", Threshold: 10},
	)
	check(t, got["day"], want{"enterprise=e1", 20, "+20.0 %"})
	// The last week: 24 hours at 1.2 and 144 at 1 against 168 at 1.
	check(t, got["week"], want{"enterprise=e1,meter=m1", (24*1.2 + 144 - 168) / 168 * 100, ""})
	check(t, got["zero"]) // the previous day is 0: no percentage
	check(t, got["nodata"])
	check(t, got["park"], want{"", (24*2.2 - 24) / 24 * 100, ""})
	// The two days and the two weeks, one sum each.
	calls := f.rec.of("HourlyTotals")
	var spans []string
	for _, c := range calls {
		spans = append(spans, fmt.Sprintf("%v..%v", c.from.Sub(hour(0)), c.to.Sub(hour(0))))
	}
	slices.Sort(spans)
	if fmt.Sprint(spans) != "[-168h0m0s..0s -24h0m0s..0s -336h0m0s..-168h0m0s -48h0m0s..-24h0m0s]" {
		t.Fatalf("rollup sums %v", spans)
	}
}

func block(ent string, co2, perTce, clean *float64) accounting.Block {
	return accounting.Block{Enterprise: ent, CO2T: co2, CO2PerTce: perTce, CleanEnergyShare: clean}
}

func TestCarbonBudgetAndIndicators(t *testing.T) {
	f := newFixture()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	ys := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	f.accounts.results[spanKey(ys, now)] = accounting.Result{
		Block:       block("", ptr(600), ptr(2.5), ptr(0.4)),
		Enterprises: []accounting.Block{block("e1", ptr(300), ptr(1.5), ptr(0.7)), block("e2", nil, nil, nil)},
	}
	f.accounts.results[spanKey(now.Add(-24*time.Hour), now)] = accounting.Result{
		Block: block("", ptr(10), ptr(2.1), ptr(0.3)), Enterprises: []accounting.Block{block("e1", ptr(5), ptr(1.9), ptr(0.8))},
	}
	monthly := []float64{80, 80, 80, 80, 80, 80, 80, 80, 80, 80, 80, 120}
	got := f.observe(t,
		alerting.Rule{ID: "linear", Kind: alerting.KindCarbonBudget, BudgetT: 1000, Threshold: 1},
		alerting.Rule{ID: "monthly", Kind: alerting.KindCarbonBudget, BudgetT: 1000, Trajectory: alerting.TrajectoryMonthly, MonthlyBudgetT: monthly, Threshold: 1},
		alerting.Rule{ID: "e1", Kind: alerting.KindCarbonBudget, EnterpriseID: "e1", BudgetT: 1000, Threshold: 1},
		alerting.Rule{ID: "e2", Kind: alerting.KindCarbonBudget, EnterpriseID: "e2", BudgetT: 1000, Threshold: 1},
		alerting.Rule{ID: "e3", Kind: alerting.KindCarbonBudget, EnterpriseID: "e3", BudgetT: 1000, Threshold: 1}, // known, no meters, no accounts
		alerting.Rule{ID: "risk", Kind: alerting.KindIndicatorAtRisk, Metric: alerting.MetricCO2PerTce, Threshold: 2},
		alerting.Rule{ID: "risk-e1", Kind: alerting.KindIndicatorAtRisk, Metric: alerting.MetricCleanEnergyShare, EnterpriseID: "e1", Op: "<", Threshold: 0.5},
		alerting.Rule{ID: "daily", Kind: alerting.KindThreshold, Metric: alerting.MetricCO2PerTce, Window: 24 * time.Hour},
		alerting.Rule{ID: "daily-e1", Kind: alerting.KindThreshold, Metric: alerting.MetricCleanEnergyShare, EnterpriseID: "e1", Window: 24 * time.Hour},
		alerting.Rule{ID: "unknown", Kind: alerting.KindCarbonBudget, EnterpriseID: "e9", BudgetT: 1000},
		alerting.Rule{ID: "meter", Kind: alerting.KindIndicatorAtRisk, Metric: alerting.MetricCO2PerTce, MeterID: "m1"},
	)
	// Half the year gone, 600 t emitted: 1200 t projected against 1000 t.
	check(t, got["linear"], want{"", 1.2, "600.0 t year to date against 500.0 t budgeted to date; projected 1200.0 t for the year against 1000.0 t (overrun 200.0 t)"})
	// January to June 480 t, plus 36 of July's 744 hours of 80 t.
	toDate := 480 + 80*36.0/744
	check(t, got["monthly"], want{"", 1.2, fmt.Sprintf("against %.1f t budgeted to date", toDate)})
	check(t, got["e1"], want{"enterprise=e1", 0.6, "overrun -400.0 t"})
	check(t, got["e2"]) // CO2 not computable
	check(t, got["e3"])
	check(t, got["risk"], want{"", 2.5, "year to date"})
	check(t, got["risk-e1"], want{"enterprise=e1", 0.7, ""})
	check(t, got["daily"], want{"", 2.1, ""})
	check(t, got["daily-e1"], want{"enterprise=e1", 0.8, ""})
	if !errors.Is(got["unknown"].Err, registry.ErrNotFound) {
		t.Errorf("unknown enterprise: %v", got["unknown"].Err)
	}
	if !errors.Is(got["meter"].Err, ErrUnsupported) {
		t.Errorf("indicator of a meter: %v", got["meter"].Err)
	}
	// One computation per period, for the park with its enterprises.
	calls := f.rec.of("Indicators")
	if len(calls) != 2 || calls[0].ent != "" || calls[1].ent != "" {
		t.Fatalf("indicator computations %+v", calls)
	}
}

func TestBudgetToDateMonthly(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	monthly := []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 340}
	r := alerting.Rule{BudgetT: 1000, Trajectory: alerting.TrajectoryMonthly, MonthlyBudgetT: monthly}
	for _, tc := range []struct {
		at   time.Time
		want float64
	}{
		{time.Date(2026, 1, 1, 0, 0, 0, 0, loc), 0},
		{time.Date(2026, 1, 16, 12, 0, 0, 0, loc), 5},                  // half of January
		{time.Date(2026, 3, 1, 0, 0, 0, 0, loc), 30},                   // January and February
		{time.Date(2026, 2, 15, 0, 0, 0, 0, loc), 10 + 10},             // 14 of February's 28 days
		{time.Date(2026, 12, 31, 12, 0, 0, 0, loc), 660 + 340*30.5/31}, // 30.5 of December's 31 days
	} {
		ys := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
		f := float64(tc.at.Sub(ys)) / float64(ys.AddDate(1, 0, 0).Sub(ys))
		if got := budgetToDate(r, tc.at, loc, f); !near(got, tc.want) {
			t.Errorf("budget to date at %v = %v, want %v", tc.at, got, tc.want)
		}
	}
}

// TestSourceErrors: a failing data source fails only the rules that need it.
func TestSourceErrors(t *testing.T) {
	boom := errors.New("boom")
	f := newFixture()
	f.readings.err["HourlyTotals"] = boom
	f.readings.err["QualityHours"] = boom
	f.ledger.deadErr = boom
	f.accounts.err = boom
	f.ledger.seqs = []telemetry.GatewaySeq{{Gateway: "g1"}}
	rules := []alerting.Rule{
		{ID: "quality", Kind: alerting.KindDataQuality, Window: time.Hour},
		{ID: "energy", Kind: alerting.KindThreshold, Metric: alerting.MetricEnergyTce, Window: time.Hour},
		{ID: "dead", Kind: alerting.KindDeadLetters},
		{ID: "budget", Kind: alerting.KindCarbonBudget, BudgetT: 1},
		{ID: "power", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, MeterID: "m1", Window: 5 * time.Minute},
		{ID: "nodata", Kind: alerting.KindNoData, MeterID: "m1", Threshold: 3},
		{ID: "gap", Kind: alerting.KindSeqGap},
	}
	got := f.observe(t, rules...)
	for _, id := range []string{"quality", "energy", "dead", "budget"} {
		if !errors.Is(got[id].Err, boom) || !strings.Contains(got[id].Err.Error(), "rule "+id) {
			t.Errorf("%s: %v, want boom", id, got[id].Err)
		}
	}
	for _, id := range []string{"power", "nodata", "gap"} {
		if got[id].Err != nil || len(got[id].Observations) != 1 {
			t.Errorf("%s: %+v", id, got[id])
		}
	}

	// Without the registry, only the gateway and dead letter rules stand.
	f = newFixture()
	f.reg.err = boom
	f.ledger.seqs = []telemetry.GatewaySeq{{Gateway: "g1"}}
	got = f.observe(t, rules...)
	for id, res := range maps.All(got) {
		if (id == "gap" || id == "dead") != (res.Err == nil) || (res.Err != nil && !errors.Is(res.Err, boom)) {
			t.Errorf("registry down: %s: %+v", id, res)
		}
	}
}

func TestUnknownKindAndNilSources(t *testing.T) {
	src := New(Options{Registry: &fakeRegistry{recorder: &recorder{}, park: registry.Park{ID: park}}})
	got := src.Observe(context.Background(), park, []alerting.Rule{
		{ID: "odd", Kind: "odd"},
		{ID: "dead", Kind: alerting.KindDeadLetters},
		{ID: "nodata", Kind: alerting.KindNoData},
	}, now)
	if !errors.Is(got["odd"].Err, ErrUnsupported) || got["dead"].Err == nil || got["nodata"].Err == nil {
		t.Fatalf("%+v", got)
	}
}

// TestIndicatorsCache: the year-to-date accounts are reused for the TTL on the evaluations'
// clock, per park and year start; the accounts of a window are not.
func TestIndicatorsCache(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	rules := []alerting.Rule{
		{ID: "budget", ParkID: park, Kind: alerting.KindCarbonBudget, BudgetT: 1000, Threshold: 1},
		{ID: "risk", ParkID: park, Kind: alerting.KindIndicatorAtRisk, Metric: alerting.MetricCO2PerTce, Threshold: 2},
		{ID: "daily", ParkID: park, Kind: alerting.KindThreshold, Metric: alerting.MetricCO2PerTce, Window: 24 * time.Hour},
	}
	ytdCalls := func(f *fixture) []string {
		var out []string
		for _, c := range f.rec.of("Indicators") {
			if c.to.Sub(c.from) != 24*time.Hour {
				out = append(out, c.from.In(loc).Format("2006-01-02")+".."+c.to.In(loc).Format("01-02T15:04"))
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		at   []time.Time
		want string // year-to-date computations
	}{
		{"reused within the TTL", 0, []time.Time{now, now.Add(time.Minute), now.Add(4 * time.Minute)},
			"[2026-01-01..07-02T12:00]"},
		{"computed again after it", 0, []time.Time{now, now.Add(time.Minute), now.Add(5 * time.Minute), now.Add(6 * time.Minute)},
			"[2026-01-01..07-02T12:00 2026-01-01..07-02T12:05]"},
		{"a clock going back", 0, []time.Time{now, now.Add(-time.Minute)},
			"[2026-01-01..07-02T12:00 2026-01-01..07-02T11:59]"},
		{"a new year", time.Hour, []time.Time{time.Date(2026, 12, 31, 23, 58, 0, 0, loc), time.Date(2027, 1, 1, 0, 1, 0, 0, loc)},
			"[2026-01-01..12-31T23:58 2027-01-01..01-01T00:01]"},
		{"a TTL of its own", 10 * time.Minute, []time.Time{now, now.Add(9 * time.Minute)}, "[2026-01-01..07-02T12:00]"},
		{"no cache", -1, []time.Time{now, now.Add(time.Second)}, "[2026-01-01..07-02T12:00 2026-01-01..07-02T12:00]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.accounts.any = &accounting.Result{Block: block("", ptr(600), ptr(2.5), ptr(0.4))}
			f.src = New(Options{Readings: f.readings, Registry: f.reg, Accounts: f.accounts, IndicatorsTTL: tc.ttl})
			for _, at := range tc.at {
				got := f.src.Observe(context.Background(), park, rules, at)
				check(t, got["risk"], want{"", 2.5, ""})
				check(t, got["daily"], want{"", 2.5, ""})
				f.src.Wait()
			}
			if s := fmt.Sprint(ytdCalls(f)); s != tc.want {
				t.Errorf("year-to-date computations %s, want %s", s, tc.want)
			}
			// The window's accounts at every evaluation.
			if n := f.rec.count("Indicators") - len(ytdCalls(f)); n != len(tc.at) {
				t.Errorf("%d computations of the daily window for %d evaluations", n, len(tc.at))
			}
		})
	}

	// A failed computation is not kept; another park has its own.
	f := newFixture()
	f.accounts.err = errors.New("boom")
	ctx := context.Background()
	if got := f.src.Observe(ctx, park, rules[:1], now); got["budget"].Err == nil {
		t.Fatal("no error")
	}
	f.accounts.err = nil
	f.accounts.any = &accounting.Result{Block: block("", ptr(600), ptr(2.5), ptr(0.4))}
	if got := f.src.Observe(ctx, park, rules[:1], now.Add(time.Second))["budget"]; got.Err != nil || len(got.Observations) != 1 {
		t.Fatalf("after a failure: %+v", got)
	}
	f.reg.park.ID = "p2"
	for i := range f.reg.meters {
		f.reg.meters[i].ParkID = "p2"
	}
	f.src.Observe(ctx, "p2", []alerting.Rule{{ID: "budget", ParkID: "p2", Kind: alerting.KindCarbonBudget, BudgetT: 1000}}, now.Add(2*time.Second))
	if n := f.rec.count("Indicators"); n != 3 {
		t.Errorf("%d computations, want 3", n)
	}
}

// TestIndicatorsCacheConcurrent: evaluations of several parks at once share the cache
// safely (run with -race).
func TestIndicatorsCacheConcurrent(t *testing.T) {
	f := newFixture()
	f.accounts.any = &accounting.Result{Block: block("", ptr(600), ptr(2.5), ptr(0.4))}
	rules := []alerting.Rule{{ID: "budget", ParkID: park, Kind: alerting.KindCarbonBudget, BudgetT: 1000, Threshold: 1}}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for k := range 20 {
				got := f.src.Observe(context.Background(), park, rules, now.Add(time.Duration(i*20+k)*time.Minute))
				if got["budget"].Err != nil || len(got["budget"].Observations) != 1 {
					t.Errorf("%+v", got["budget"])
				}
			}
		})
	}
	wg.Wait()
}

func TestRecentSpan(t *testing.T) {
	for _, tc := range []struct {
		intervals []int32
		want      time.Duration
	}{
		{[]int32{60, 60}, 10 * time.Minute},
		{[]int32{60, 300}, 20 * time.Minute},
		{[]int32{60, 0, 3600}, 4 * time.Hour},
		{[]int32{86400}, 24 * time.Hour},
		{nil, 10 * time.Minute},
	} {
		e := &eval{}
		for _, iv := range tc.intervals {
			e.meters.v = append(e.meters.v, meter("m", "", registry.Electricity, registry.In, registry.Counter, iv))
		}
		if got := e.recentSpan(); got != tc.want {
			t.Errorf("recent span of intervals %v = %v, want %v", tc.intervals, got, tc.want)
		}
	}
}

// TestPastHoursAndSilentMetersAreRemembered: within the TTL a second evaluation neither sums
// the whole past hours of a rate_of_change again nor searches 35 days back for meters that
// were silent, and it gives the same values; past the TTL it asks again.
func TestPastHoursAndSilentMetersAreRemembered(t *testing.T) {
	f := newFixture()
	var points []influx.RollupPoint
	for h := -48; h <= 0; h++ {
		points = append(points, rollup("m1", "e1", "in", hour(h), 0, ptr(1.0), nil))
	}
	f.readings.rollups = points
	rules := []alerting.Rule{
		{ID: "day", ParkID: park, Kind: alerting.KindRateOfChange, Compare: "day", EnterpriseID: "e1", Threshold: 10},
		{ID: "silent", ParkID: park, Kind: alerting.KindNoData, Threshold: 3},
	}
	first := f.src.Observe(context.Background(), park, rules, now)
	totals, long := f.rec.count("HourlyTotals"), len(f.rec.of("LastReadings"))
	second := f.src.Observe(context.Background(), park, rules, now.Add(time.Minute))
	if f.rec.count("HourlyTotals") != totals || len(f.rec.of("LastReadings")) != long+1 {
		t.Fatalf("second evaluation queried again: %d → %d totals, %d → %d last-reading queries",
			totals, f.rec.count("HourlyTotals"), long, len(f.rec.of("LastReadings")))
	}
	if fmt.Sprint(first["day"].Observations) != fmt.Sprint(second["day"].Observations) {
		t.Fatalf("cached rate differs: %v then %v", first["day"].Observations, second["day"].Observations)
	}
	for i, o := range first["silent"].Observations {
		if s := second["silent"].Observations[i]; s.Labels["meter"] != o.Labels["meter"] || s.Value < o.Value {
			t.Fatalf("silent meter %v: %v then %v", o.Labels, o.Value, s.Value)
		}
	}
	f.src.Observe(context.Background(), park, rules, now.Add(DefaultIndicatorsTTL+time.Minute))
	if f.rec.count("HourlyTotals") == totals || len(f.rec.of("LastReadings")) != long+3 {
		t.Fatal("nothing asked again after the TTL")
	}
}

// TestPowerLeavesOutOnSitePV: an enterprise's power is its grid connection's: a direct-green
// PV meter of the enterprise does not raise it, while a rule on the PV meter alone sees it.
func TestPowerLeavesOutOnSitePV(t *testing.T) {
	f := newFixture()
	pv := meter("pv", "e1", registry.Electricity, registry.In, registry.Counter, 60)
	pv.GreenClass = registry.GreenDirect
	f.reg.meters = append(f.reg.meters, pv)
	f.readings.carrier["pv"] = string(registry.Electricity)
	for k := 0; k <= 30; k++ { // 5 kWh a minute: 300 kW
		f.readings.samples["pv"] = append(f.readings.samples["pv"], influx.Sample{TS: now.Add(time.Duration(k-30) * time.Minute), Value: 5 * float64(k)})
	}
	got := f.observe(t,
		alerting.Rule{ID: "enterprise", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, EnterpriseID: "e1", Window: 10 * time.Minute},
		alerting.Rule{ID: "pv", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, MeterID: "pv", Window: 10 * time.Minute},
	)
	check(t, got["enterprise"], want{"enterprise=e1", 90, "2 of 2 meters"})
	check(t, got["pv"], want{"enterprise=e1,meter=pv", 300, ""})
}

// gatedAccounts blocks every computation after the first until released.
type gatedAccounts struct {
	calls atomic.Int32
	gate  chan struct{}
	res   accounting.Result
}

func (g *gatedAccounts) Indicators(ctx context.Context, _ string, _, _ time.Time, _, _ string) (accounting.Result, error) {
	if g.calls.Add(1) > 1 {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return accounting.Result{}, ctx.Err()
		}
	}
	return g.res, nil
}

// TestStaleAccountsServedWhileRefreshed: past the TTL an evaluation does not wait for the
// year-to-date accounts: it uses the previous ones and a background refresh replaces them.
func TestStaleAccountsServedWhileRefreshed(t *testing.T) {
	f := newFixture()
	acc := &gatedAccounts{gate: make(chan struct{}), res: accounting.Result{Block: block("", ptr(600), ptr(2.5), ptr(0.4))}}
	f.src = New(Options{Readings: f.readings, Registry: f.reg, Accounts: acc})
	rule := alerting.Rule{ID: "risk", ParkID: park, Kind: alerting.KindIndicatorAtRisk, Metric: alerting.MetricCO2PerTce, Threshold: 2}
	f.src.Observe(context.Background(), park, []alerting.Rule{rule}, now)
	done := make(chan map[string]alerting.Result, 1)
	go func() {
		done <- f.src.Observe(context.Background(), park, []alerting.Rule{rule}, now.Add(DefaultIndicatorsTTL+time.Minute))
	}()
	select {
	case got := <-done:
		check(t, got["risk"], want{"", 2.5, ""})
	case <-time.After(5 * time.Second):
		t.Fatal("the evaluation waited for the refresh")
	}
	acc.res = accounting.Result{Block: block("", ptr(600), ptr(3.5), ptr(0.4))}
	close(acc.gate)
	f.src.Wait()
	got := f.src.Observe(context.Background(), park, []alerting.Rule{rule}, now.Add(DefaultIndicatorsTTL+2*time.Minute))
	check(t, got["risk"], want{"", 3.5, ""})
	if n := acc.calls.Load(); n != 2 {
		t.Fatalf("%d computations, want 2 (the first and one refresh)", n)
	}
}
