package rollup

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := localsvc.StopShared(); err != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// TestEngineAgainstInfluxDB runs the engine on a real InfluxDB: 3 meters over 2 days with a gap
// and a rollover; the totals equal accounting.Intervals over all readings, and a late reading
// inside the gap leaves them unchanged while the estimated part drops.
func TestEngineAgainstInfluxDB(t *testing.T) {
	db := localsvc.SharedInfluxDBForTest(t)
	st := influx.New(influx.Options{URL: db.URL, Bucket: db.Bucket})
	t.Cleanup(st.Close)
	ctx := context.Background()
	fr, err := factors.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	meters := testMeters()[:3] // e-grid (rollover 5000), e-pv, e-export
	reg := &memRegistry{park: registry.Park{ID: testPark, Timezone: "Asia/Shanghai"}, meters: meters, repl: map[string][]accounting.Replacement{}}
	dirty := newMemDirty()
	eng, err := New(Options{Readings: st, Rollups: st, Dirty: dirty, Replacements: reg, Registry: reg, Factors: fr})
	if err != nil {
		t.Fatal(err)
	}

	day0 := time.Date(2026, 4, 1, 0, 0, 0, 0, loc)
	// Two readings missing: 20:00 -> 20:45 is a gap; the late 20:15 leaves 20:15 -> 20:45.
	gapFrom, gapTo := day0.Add(20*time.Hour), day0.Add(20*time.Hour+45*time.Minute)
	var pts, late []influx.Point
	for _, m := range meters {
		step := time.Duration(m.IntervalSeconds) * time.Second
		v := 4800.0
		for ts := day0; ts.Before(day0.AddDate(0, 0, 2)); ts = ts.Add(step) {
			v += 3.5
			if m.Rollover > 0 && v >= m.Rollover {
				v -= m.Rollover
			}
			p := influx.Point{Park: testPark, Enterprise: m.EnterpriseID, Meter: m.ID, Carrier: string(m.Carrier), TS: ts, Value: v}
			if ts.After(gapFrom) && ts.Before(gapTo) {
				if ts.Equal(gapFrom.Add(15*time.Minute)) && m.ID == "e-grid" {
					late = append(late, p)
				}
				continue
			}
			pts = append(pts, p)
		}
	}
	want := map[string][2]float64{} // quantity in canonical units, estimated, from all readings
	for _, m := range meters {
		var rs []accounting.Reading
		for _, p := range pts {
			if p.Meter == m.ID {
				rs = append(rs, accounting.Reading{TS: p.TS, Value: p.Value})
			}
		}
		ivs, _ := accounting.Intervals(accountingMeter(&meterInfo{Meter: m}), rs, nil)
		var q, est float64
		for _, iv := range ivs {
			q += iv.Quantity
			if iv.Quality&accounting.QualityEstimated != 0 {
				est += iv.Quantity
			}
		}
		q, _ = factors.ToCanonical(string(m.Carrier), m.Unit, q)
		est, _ = factors.ToCanonical(string(m.Carrier), m.Unit, est)
		want[m.ID] = [2]float64{q, est}
	}

	ingest := func(batch []influx.Point) Stats {
		t.Helper()
		if err := st.WriteReadings(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := dirty.MarkDirty(ctx, MarkPoints(batch)); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		s, err := eng.Cycle(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("cycle: %d readings read, %d meters, %d hours and %d days written in %v (%.0f readings/s)",
			s.ReadingsRead, s.Meters, s.HoursWritten, s.DaysWritten, time.Since(begin), float64(s.ReadingsRead)/time.Since(begin).Seconds())
		return s
	}
	totals := func() map[string]influx.MeterTotal {
		t.Helper()
		ts, err := st.MeterTotals(ctx, testPark, day0, day0.AddDate(0, 0, 2), loc)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]influx.MeterTotal{}
		for _, x := range ts {
			out[x.Meter] = x
		}
		return out
	}

	ingest(pts)
	before := totals()
	for _, m := range meters {
		g, w := before[m.ID], want[m.ID]
		if !near(g.Quantity, w[0]) || !near(g.Estimated, w[1]) || w[1] == 0 {
			t.Errorf("meter %s: total %v estimated %v, want %v and %v (> 0: the gap)", m.ID, g.Quantity, g.Estimated, w[0], w[1])
		}
	}
	daily, err := st.DailyRollups(ctx, testPark, day0, day0.AddDate(0, 0, 2))
	if err != nil || len(daily) != 2*len(meters) {
		t.Fatalf("daily rollups: %d, %v; want %d", len(daily), err, 2*len(meters))
	}
	for _, d := range daily {
		m := meterByID(meters, d.Meter)
		if d.CO2T == nil || (m.Direction == registry.Out) != (*d.CO2T < 0) || (m.GreenClass == registry.GreenDirect) != (*d.CO2T == 0) {
			t.Errorf("meter %s day %s: co2 %v", m.ID, d.Start, d.CO2T)
		}
	}
	// The month's rollup sums its days.
	monthly, err := st.MonthlyRollups(ctx, testPark, day0.AddDate(0, -1, 0), day0.AddDate(0, 1, 0))
	if err != nil || len(monthly) != len(meters) {
		t.Fatalf("monthly rollups: %d, %v; want %d", len(monthly), err, len(meters))
	}
	for _, mo := range monthly {
		sum := 0.0
		for _, d := range daily {
			if d.Meter == mo.Meter {
				sum += d.Quantity
			}
		}
		if !near(mo.Quantity, sum) {
			t.Errorf("meter %s: month %v, days sum to %v", mo.Meter, mo.Quantity, sum)
		}
	}

	ingest(late)
	after := totals()
	g := after["e-grid"]
	if !near(g.Quantity, before["e-grid"].Quantity) || !(g.Estimated < before["e-grid"].Estimated) || g.Received != before["e-grid"].Received+1 {
		t.Errorf("after the late reading: %+v, want quantity %v, estimated below %v, one more reading", g, before["e-grid"].Quantity, before["e-grid"].Estimated)
	}
}

func meterByID(ms []registry.Meter, id string) registry.Meter {
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	return registry.Meter{}
}
