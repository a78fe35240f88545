package rollup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

const testPark = "p1"

var testStart = time.Date(2026, 3, 2, 0, 7, 0, 0, time.UTC)

func testMeters() []registry.Meter {
	return []registry.Meter{
		{ID: "e-grid", ParkID: testPark, EnterpriseID: "ent1", Carrier: registry.Electricity, Direction: registry.In, Kind: registry.Counter,
			Unit: "kWh", Multiplier: 2, Rollover: 5000, GreenClass: registry.GreenNone, IntervalSeconds: 900},
		{ID: "e-pv", ParkID: testPark, Carrier: registry.Electricity, Direction: registry.In, Kind: registry.Counter,
			Unit: "kWh", Multiplier: 1, GreenClass: registry.GreenDirect, IntervalSeconds: 900, RatedCapacity: 400},
		{ID: "e-export", ParkID: testPark, Carrier: registry.Electricity, Direction: registry.Out, Kind: registry.Counter,
			Unit: "MWh", Multiplier: 1, GreenClass: registry.GreenNone, IntervalSeconds: 1800},
		{ID: "gas", ParkID: testPark, EnterpriseID: "ent2", Carrier: registry.NaturalGas, Direction: registry.In, Kind: registry.Counter,
			Unit: "m3", Multiplier: 1, GreenClass: registry.GreenNone},
		{ID: "power", ParkID: testPark, Carrier: registry.Electricity, Direction: registry.In, Kind: registry.Gauge,
			Unit: "kW", Multiplier: 1, GreenClass: registry.GreenNone, IntervalSeconds: 60},
	}
}

// genReadings makes a meter's register readings: jittered timestamps, gaps, flat stretches,
// rollovers, resets, invalid values and isolated glitches and spikes.
func genReadings(rng *rand.Rand, m registry.Meter, n int) []influx.Point {
	interval := time.Duration(m.IntervalSeconds) * time.Second
	if interval == 0 {
		interval = 20 * time.Minute
	}
	t := testStart.Add(time.Duration(rng.IntN(3600)) * time.Second)
	v := 100 + rng.Float64()*1000
	sinceOutlier := 0
	var out []influx.Point
	for range n {
		t = t.Add(interval + time.Duration(rng.IntN(121)-60)*time.Second)
		if rng.Float64() < 0.04 {
			t = t.Add(time.Duration(2+rng.IntN(12)) * interval)
		}
		switch x := rng.Float64(); {
		case x < 0.25: // flat
		case x < 0.26: // reset
			v = rng.Float64() * 5
		default:
			v += rng.Float64() * 20
		}
		if m.Rollover > 0 && v >= m.Rollover {
			v -= m.Rollover
		}
		value := v
		sinceOutlier++
		if sinceOutlier > 10 {
			switch x := rng.Float64(); {
			case x < 0.02:
				value, sinceOutlier = 0, 0
			case x < 0.04:
				value, sinceOutlier = v*3+1000, 0
			case x < 0.05:
				value, sinceOutlier = math.Max(0, v-0.5), 0
			case x < 0.055:
				value, sinceOutlier = -1, 0
			}
		}
		out = append(out, influx.Point{Park: testPark, Enterprise: m.EnterpriseID, Meter: m.ID, Carrier: string(m.Carrier), TS: t.Truncate(time.Millisecond), Value: value})
	}
	return out
}

type testEnv struct {
	store *memStore
	dirty *memDirty
	reg   *memRegistry
	eng   *Engine
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	fr, err := factors.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{store: newMemStore(), dirty: newMemDirty(),
		reg: &memRegistry{park: registry.Park{ID: testPark, Timezone: "Asia/Shanghai"}, meters: testMeters(), repl: map[string][]accounting.Replacement{}}}
	env.eng, err = New(Options{Readings: env.store, Rollups: env.store, Dirty: env.dirty, Replacements: env.reg, Registry: env.reg, Factors: fr})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// ingest stores a batch, marks it and runs one cycle.
func (env *testEnv) ingest(t *testing.T, batch []influx.Point) Stats {
	t.Helper()
	env.store.write(batch)
	if err := env.dirty.MarkDirty(context.Background(), MarkPoints(batch)); err != nil {
		t.Fatal(err)
	}
	// Cycles until the backlog is gone, as Run does.
	var st Stats
	for {
		c, err := env.eng.Cycle(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		st.add(c)
		if c.Claimed < DefaultClaimLimit {
			break
		}
	}
	if env.dirty.len() != 0 {
		t.Fatalf("%d marks left after the cycles", env.dirty.len())
	}
	return st
}

// wantHours is accounting.Hourly over all of a meter's readings at once: the reference the
// incremental rollups must equal.
func wantHours(m registry.Meter, pts []influx.Point, repl []accounting.Replacement) map[time.Time]accounting.Hour {
	var rs []accounting.Reading
	for _, p := range pts {
		rs = append(rs, accounting.Reading{TS: p.TS, Value: p.Value})
	}
	ivs, _ := accounting.Intervals(accountingMeter(&meterInfo{Meter: m}), rs, repl)
	out := map[time.Time]accounting.Hour{}
	if len(ivs) == 0 {
		return out
	}
	for _, h := range accounting.Hourly(ivs, ivs[0].From, ivs[len(ivs)-1].To) {
		if h.Coverage > 0 {
			out[h.Start] = h
		}
	}
	return out
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// checkAgainstBatch compares the stored hourly rollups with Hourly over all readings, and the
// daily rollups with the sums of the hourly ones.
func (env *testEnv) checkAgainstBatch(t *testing.T, all map[string][]influx.Point) {
	t.Helper()
	got := map[string]map[time.Time]influx.RollupPoint{}
	for k, p := range env.store.hourly {
		if got[k.meter] == nil {
			got[k.meter] = map[time.Time]influx.RollupPoint{}
		}
		got[k.meter][k.start] = p
	}
	for _, m := range env.reg.meters {
		want := map[time.Time]accounting.Hour{}
		if m.Kind == registry.Counter {
			want = wantHours(m, all[m.ID], env.reg.repl[m.ID])
		}
		if len(got[m.ID]) != len(want) {
			t.Errorf("meter %s: %d hourly rollups, want %d", m.ID, len(got[m.ID]), len(want))
		}
		for start, w := range want {
			g, ok := got[m.ID][start]
			if !ok {
				t.Errorf("meter %s hour %s missing", m.ID, start)
				continue
			}
			wq, _ := factors.ToCanonical(string(m.Carrier), m.Unit, w.Quantity)
			we, _ := factors.ToCanonical(string(m.Carrier), m.Unit, w.Estimated)
			received := 0
			for _, p := range all[m.ID] {
				if floorHour(p.TS).Equal(start) {
					received++
				}
			}
			if !near(g.Quantity, wq) || !near(g.Estimated, we) || !near(g.Coverage, w.Coverage) ||
				g.Quality != int64(w.Quality) || g.Received != int64(received) {
				t.Errorf("meter %s hour %s: got q=%v est=%v cov=%v quality=%v received=%d, want q=%v est=%v cov=%v quality=%v received=%d",
					m.ID, start, g.Quantity, g.Estimated, g.Coverage, accounting.Quality(g.Quality), g.Received,
					wq, we, w.Coverage, w.Quality, received)
			}
		}
	}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	var hours []influx.RollupPoint
	for _, p := range env.store.hourly {
		hours = append(hours, p)
	}
	sortPoints(hours)
	want := dailyPoints(hours, loc)
	if len(want) != len(env.store.daily) {
		t.Errorf("%d daily rollups, want %d", len(env.store.daily), len(want))
	}
	for _, w := range want {
		g := env.store.daily[hourKey{w.Meter, w.Start.UTC()}]
		if !near(g.Quantity, w.Quantity) || !near(g.Coverage, w.Coverage) || g.Received != w.Received || g.Quality != w.Quality ||
			!nearPtr(g.CO2T, w.CO2T) || !nearPtr(g.TceEqual, w.TceEqual) {
			t.Errorf("daily %s %s = %+v, want the sum of its hours %+v", w.Meter, w.Start, g, w)
		}
	}
}

func nearPtr(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return near(*a, *b)
}

// TestIncrementalEqualsBatch is the property behind the written range (window.go): readings
// arriving in random batches, each followed by a cycle, leave exactly the rollups of Hourly
// over all readings at once.
func TestIncrementalEqualsBatch(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			env := newTestEnv(t)
			all := map[string][]influx.Point{}
			var pts []influx.Point
			for _, m := range env.reg.meters {
				all[m.ID] = genReadings(rng, m, 150+rng.IntN(150))
				pts = append(pts, all[m.ID]...)
			}
			// A replacement of the grid meter: the register restarts near 7 after 2000.
			g := all["e-grid"]
			at := g[len(g)/2].TS.Add(-time.Minute)
			env.reg.repl["e-grid"] = []accounting.Replacement{{At: at, OldFinal: g[len(g)/2-1].Value + 3, NewInitial: 7}}

			rng.Shuffle(len(pts), func(i, j int) { pts[i], pts[j] = pts[j], pts[i] })
			for len(pts) > 0 {
				n := 1 + rng.IntN(len(pts))
				if rng.IntN(3) == 0 {
					n = 1 + rng.IntN(20) // small late batches too
				}
				n = min(n, len(pts))
				env.ingest(t, pts[:n])
				pts = pts[n:]
			}
			env.checkAgainstBatch(t, all)
		})
	}
}

// TestInOrderArrival feeds readings in time order, a few at a time, as a live park does.
func TestInOrderArrival(t *testing.T) {
	rng := rand.New(rand.NewPCG(99, 1))
	env := newTestEnv(t)
	all := map[string][]influx.Point{}
	var pts []influx.Point
	for _, m := range env.reg.meters {
		all[m.ID] = genReadings(rng, m, 300)
		pts = append(pts, all[m.ID]...)
	}
	slicesSortByTime(pts)
	for i := 0; i < len(pts); i += 7 {
		env.ingest(t, pts[i:min(i+7, len(pts))])
	}
	env.checkAgainstBatch(t, all)
}

func slicesSortByTime(pts []influx.Point) {
	for i := 1; i < len(pts); i++ {
		for j := i; j > 0 && pts[j].TS.Before(pts[j-1].TS); j-- {
			pts[j], pts[j-1] = pts[j-1], pts[j]
		}
	}
}

// TestStoreErrorKeepsMarks: with the store down nothing is cleared; the next cycle catches up.
func TestStoreErrorKeepsMarks(t *testing.T) {
	env := newTestEnv(t)
	rng := rand.New(rand.NewPCG(1, 2))
	m := env.reg.meters[1]
	pts := genReadings(rng, m, 50)
	env.store.write(pts)
	ctx := context.Background()
	if err := env.dirty.MarkDirty(ctx, MarkPoints(pts)); err != nil {
		t.Fatal(err)
	}
	marks := env.dirty.len()
	down := errors.New("connection refused")
	env.store.fail = down
	if _, err := env.eng.Cycle(ctx); !errors.Is(err, down) {
		t.Fatalf("cycle with the store down = %v, want %v", err, down)
	}
	if env.dirty.len() != marks {
		t.Fatalf("%d marks after a failed cycle, want %d", env.dirty.len(), marks)
	}
	env.store.fail = nil
	if _, err := env.eng.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	if env.dirty.len() != 0 {
		t.Fatalf("%d marks left", env.dirty.len())
	}
	env.checkAgainstBatch(t, map[string][]influx.Point{m.ID: pts})
}

// TestReplacementHonoured: a replacement record books the old register's end and the new
// register's start instead of a reset.
func TestReplacementHonoured(t *testing.T) {
	env := newTestEnv(t)
	m := env.reg.meters[1] // e-pv, multiplier 1, rated 400 kWh/h
	var pts []influx.Point
	for i := range 8 {
		v := 1000 + float64(i)*10
		if i >= 4 {
			v = 5 + float64(i-4)*10 // new register from 5
		}
		pts = append(pts, influx.Point{Park: testPark, Meter: m.ID, Carrier: "electricity", TS: testStart.Add(time.Duration(i) * 15 * time.Minute), Value: v})
	}
	// Old register ended at 1034, new started at 5: the interval across books 4 + 0 = 4.
	env.reg.repl[m.ID] = []accounting.Replacement{{At: pts[4].TS.Add(-time.Minute), OldFinal: 1034, NewInitial: 5}}
	env.ingest(t, pts)
	total, quality := 0.0, int64(0)
	for k, p := range env.store.hourly {
		if k.meter == m.ID {
			total += p.Quantity
			quality |= p.Quality
		}
	}
	if want := 30 + 4 + 30.0; !near(total, want) || accounting.Quality(quality)&accounting.QualityReplacement == 0 {
		t.Fatalf("total %v quality %v, want %v with the replacement flag", total, accounting.Quality(quality), want)
	}
}

// TestHourPointSignsAndFactors checks the conversion to canonical units, tce and CO2.
func TestHourPointSignsAndFactors(t *testing.T) {
	env := newTestEnv(t)
	fc := newFactorCache(env.eng)
	h := accounting.Hour{Start: testStart.Truncate(time.Hour), Quantity: 2, Coverage: 1}
	for _, tc := range []struct {
		meter           int
		q, tce, co2     float64
		wantNilCO2, nil bool
	}{
		{meter: 0, q: 2, tce: 2 * 0.3 / 1000, co2: 2 * 0.8325 / 1000},
		{meter: 1, q: 2, tce: 2 * 0.3 / 1000, co2: 0}, // direct green
		{meter: 2, q: 2000, tce: -2000 * 0.3 / 1000, co2: -2000 * 0.8325 / 1000},
		{meter: 3, q: 2, tce: 2 * 1.2143 / 1000, co2: 2 * 2.1622 / 1000},
	} {
		m := &meterInfo{Meter: env.reg.meters[tc.meter]}
		p := env.eng.hourPoint(testPark, m, h, 4, fc)
		if !near(p.Quantity, tc.q) || p.TceEqual == nil || !near(*p.TceEqual, tc.tce) || p.CO2T == nil || !near(*p.CO2T, tc.co2) {
			t.Errorf("meter %s: %+v, want q %v tce %v co2 %v", m.ID, p, tc.q, tc.tce, tc.co2)
		}
		if p.Received != 4 || (m.IntervalSeconds == 900 && p.Expected != 4) {
			t.Errorf("meter %s: received %d expected %v", m.ID, p.Received, p.Expected)
		}
	}
}

func TestMarkPoints(t *testing.T) {
	h := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)
	got := MarkPoints([]influx.Point{
		{Park: "a", TS: h.Add(time.Minute)}, {Park: "a", TS: h.Add(59 * time.Minute)}, {Park: "b", TS: h},
		{Park: "a", TS: h.Add(time.Hour).In(time.FixedZone("x", 3600*8))},
	})
	want := []accounting.DirtyHour{{Park: "a", Hour: h}, {Park: "b", Hour: h}, {Park: "a", Hour: h.Add(time.Hour)}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("MarkPoints = %v, want %v", got, want)
	}
}

func TestDirtyRuns(t *testing.T) {
	h := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	got := dirtyRuns([]time.Time{h.Add(10 * time.Hour), h, h.Add(time.Hour), h.Add(3 * time.Hour), h.Add(time.Hour)}, 48*time.Hour)
	want := []span{{h, h.Add(4 * time.Hour)}, {h.Add(10 * time.Hour), h.Add(11 * time.Hour)}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dirtyRuns = %v, want %v", got, want)
	}
}

func TestDirtyRunsAreCutAtMaxRun(t *testing.T) {
	h := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var hours []time.Time
	for i := range 100 {
		hours = append(hours, h.Add(time.Duration(i)*time.Hour))
	}
	got := dirtyRuns(hours, 48*time.Hour)
	want := []span{{h, h.Add(48 * time.Hour)}, {h.Add(48 * time.Hour), h.Add(96 * time.Hour)}, {h.Add(96 * time.Hour), h.Add(100 * time.Hour)}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dirtyRuns = %v, want %v", got, want)
	}
}

func TestRunLengthFollowsTheReadingRate(t *testing.T) {
	meters := func(n int, interval int32) []meterInfo {
		out := make([]meterInfo, n)
		for i := range out {
			out[i].IntervalSeconds = interval
		}
		return out
	}
	for _, c := range []struct {
		meters []meterInfo
		want   time.Duration
	}{
		{meters(500, 900), 150 * time.Hour}, // 2,000 readings an hour
		{meters(10000, 60), 2 * time.Hour},  // 600,000 an hour: the floor
		{meters(10, 900), 168 * time.Hour},  // a small park: a week
		{nil, 168 * time.Hour},
	} {
		if got := runLength(c.meters); got != c.want {
			t.Errorf("%d meters: %v, want %v", len(c.meters), got, c.want)
		}
	}
}
