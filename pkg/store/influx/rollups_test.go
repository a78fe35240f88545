package influx

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
)

func ptr(v float64) *float64 { return &v }

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// hourlyFixture writes 3 meters × 72 hours from start: meter i consumes i+1 per hour
// (direction out for m3), with tce and CO2 except on m2, which lacks CO2.
func hourlyFixture(t *testing.T, s *Store, start time.Time) []RollupPoint {
	t.Helper()
	var pts []RollupPoint
	for i, m := range []string{"m1", "m2", "m3"} {
		dir, sign := "in", 1.0
		if m == "m3" {
			dir, sign = "out", -1
		}
		for h := range 72 {
			q := float64(i+1) + float64(h)/100
			p := RollupPoint{Park: "p1", Enterprise: "e1", Meter: m, Carrier: "electricity", Direction: dir, GreenClass: "none",
				Start: start.Add(time.Duration(h) * time.Hour), Quantity: q, Estimated: q / 4, Coverage: 1, Quality: int64(h % 3),
				Received: 4, Expected: 4, TceEqual: ptr(sign * q * 0.3 / 1000), TceEquivalent: ptr(sign * q * 0.1229 / 1000)}
			if m != "m2" {
				p.CO2T = ptr(sign * q * 0.8325 / 1000)
			}
			if m == "m1" {
				p.Enterprise = ""
			}
			pts = append(pts, p)
		}
	}
	if err := s.WriteRollups(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
	return pts
}

func TestRollupsRoundTripAndOverwrite(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	pts := hourlyFixture(t, s, start)
	// Overwrite m1's first day with new quantities: same tags and times.
	var again []RollupPoint
	for _, p := range pts[:24] {
		p.Quantity += 1000
		again = append(again, p)
	}
	if err := s.WriteRollups(ctx, again); err != nil {
		t.Fatal(err)
	}
	copy(pts, again)
	got, err := s.HourlyRollups(ctx, "p1", start, start.Add(72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pts) {
		t.Fatalf("read %d hourly points, want %d", len(got), len(pts))
	}
	for i, g := range got {
		w := pts[i]
		g.Start = g.Start.UTC()
		if fmt.Sprint(g.Park, g.Enterprise, g.Meter, g.Carrier, g.Direction, g.GreenClass, g.Start, g.Quantity, g.Estimated, g.Coverage, g.Quality, g.Received, g.Expected) !=
			fmt.Sprint(w.Park, w.Enterprise, w.Meter, w.Carrier, w.Direction, w.GreenClass, w.Start, w.Quantity, w.Estimated, w.Coverage, w.Quality, w.Received, w.Expected) ||
			*g.TceEqual != *w.TceEqual || *g.TceEquivalent != *w.TceEquivalent || (g.CO2T == nil) != (w.CO2T == nil) {
			t.Fatalf("point %d = %+v, want %+v", i, g, w)
		}
	}
	daily, err := s.DailyRollups(ctx, "p1", start, start.Add(72*time.Hour))
	if err != nil || len(daily) != 0 {
		t.Fatalf("daily rollups %v %v, want none", daily, err)
	}
}

// TestMeterTotalsMatchesHourlySums: with daily points that are the sums of the hourly ones,
// MeterTotals over a range with partial days at both ends equals the sum of its hours.
func TestMeterTotalsMatchesHourlySums(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, loc) // 16:00 UTC the day before
	pts := hourlyFixture(t, s, start)
	// Daily points summed from the hours, as the engine does.
	type key struct {
		meter string
		day   time.Time
	}
	days := map[key]*RollupPoint{}
	for _, p := range pts {
		l := p.Start.In(loc)
		k := key{p.Meter, time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)}
		d := days[k]
		if d == nil {
			d = &RollupPoint{Daily: true, Park: p.Park, Enterprise: p.Enterprise, Meter: p.Meter, Carrier: p.Carrier, Direction: p.Direction, GreenClass: p.GreenClass, Start: k.day}
			days[k] = d
		}
		d.Quantity += p.Quantity
		d.Estimated += p.Estimated
		d.Received += p.Received
		d.Expected += p.Expected
		d.TceEqual = addPtr(d.TceEqual, *p.TceEqual)
		d.TceEquivalent = addPtr(d.TceEquivalent, *p.TceEquivalent)
		if p.CO2T != nil {
			d.CO2T = addPtr(d.CO2T, *p.CO2T)
		}
	}
	var daily []RollupPoint
	for _, d := range days {
		daily = append(daily, *d)
	}
	if err := s.WriteRollups(ctx, daily); err != nil {
		t.Fatal(err)
	}
	from := start.Add(5*time.Hour + 20*time.Minute) // rounds down to 05:00 local
	to := start.Add(60*time.Hour + 10*time.Minute)  // rounds up to 61 hours
	got, err := s.MeterTotals(ctx, "p1", from, to, loc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d totals, want 3: %+v", len(got), got)
	}
	for _, g := range got {
		var q, est float64
		var recv int64
		for _, p := range pts {
			if p.Meter != g.Meter || p.Start.Before(start.Add(5*time.Hour)) || !p.Start.Before(start.Add(61*time.Hour)) {
				continue
			}
			q, est, recv = q+p.Quantity, est+p.Estimated, recv+p.Received
		}
		if !near(g.Quantity, q) || !near(g.Estimated, est) || g.Received != recv {
			t.Errorf("meter %s: %+v, want q %v est %v received %d", g.Meter, g, q, est, recv)
		}
		if g.Meter == "m3" && (g.Direction != "out" || g.Enterprise != "e1") || g.Meter == "m1" && g.Enterprise != "" {
			t.Errorf("meter %s tags %+v", g.Meter, g)
		}
	}

	// Series: hourly, daily and monthly steps of the same data.
	hourly, err := s.Series(ctx, "p1", "", MetricEnergyTce, start, start.Add(3*time.Hour), StepHour, loc)
	if err != nil || len(hourly) != 3 {
		t.Fatalf("hourly series %v %v", hourly, err)
	}
	for h, sp := range hourly {
		want := 0.0
		for _, p := range pts {
			if p.Start.Equal(start.Add(time.Duration(h) * time.Hour)) {
				want += *p.TceEqual
			}
		}
		if !sp.Start.Equal(start.Add(time.Duration(h)*time.Hour)) || !near(sp.Value, want) {
			t.Errorf("hour %d: %+v, want %v", h, sp, want)
		}
	}
	power, err := s.Series(ctx, "p1", "", MetricPower, start, start.AddDate(0, 0, 3), StepDay, loc)
	if err != nil || len(power) != 3 {
		t.Fatalf("daily power %v %v", power, err)
	}
	for d, sp := range power {
		want := 0.0
		for _, p := range pts {
			if l := p.Start.In(loc); l.Day() == 1+d {
				if p.Direction == "out" {
					want -= p.Quantity
				} else {
					want += p.Quantity
				}
			}
		}
		if !near(sp.Value, want/24) {
			t.Errorf("day %d power %v kW, want %v", d, sp.Value, want/24)
		}
	}
	monthly, err := s.Series(ctx, "p1", "e1", MetricCO2, start, start.AddDate(0, 1, 0), StepMonth, loc)
	if err != nil || len(monthly) != 1 {
		t.Fatalf("monthly co2 %v %v", monthly, err)
	}
	want := 0.0
	for _, p := range pts {
		if p.Enterprise == "e1" && p.CO2T != nil {
			want += *p.CO2T
		}
	}
	if !monthly[0].Start.Equal(start) || !near(monthly[0].Value, want) {
		t.Errorf("monthly co2 of e1 %+v, want %v at %v", monthly[0], want, start)
	}
}

func TestReadingsContextQueries(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var pts []Point
	for i := range 20 {
		for _, m := range []string{"a", "b", "c"} {
			pts = append(pts, Point{Park: "p1", Meter: m, Carrier: "heat", TS: start.Add(time.Duration(i) * time.Hour), Value: float64(i)})
		}
	}
	pts = append(pts, Point{Park: "p2", Meter: "a", Carrier: "heat", TS: start.Add(5 * time.Hour), Value: 99})
	if err := s.WriteReadings(ctx, pts); err != nil {
		t.Fatal(err)
	}
	values := func(ss []Sample) string {
		var out []float64
		for _, x := range ss {
			out = append(out, x.Value)
		}
		return fmt.Sprint(out)
	}
	win, err := s.ReadingsWindow(ctx, "p1", []string{"a", "b"}, start.Add(5*time.Hour), start.Add(8*time.Hour))
	if err != nil || len(win) != 2 || values(win["a"]) != "[5 6 7]" || values(win["b"]) != "[5 6 7]" {
		t.Fatalf("window %v %v", win, err)
	}
	all, err := s.ReadingsWindow(ctx, "p1", nil, start, start.Add(time.Hour))
	if err != nil || len(all) != 3 {
		t.Fatalf("window of all meters %v %v", all, err)
	}
	before, err := s.ReadingsBefore(ctx, "p1", []string{"a", "c"}, start.Add(10*time.Hour), 3, 24*time.Hour)
	if err != nil || len(before) != 2 || values(before["a"]) != "[7 8 9]" || values(before["c"]) != "[7 8 9]" {
		t.Fatalf("before %v %v", before, err)
	}
	short, err := s.ReadingsBefore(ctx, "p1", []string{"a"}, start.Add(10*time.Hour), 5, 2*time.Hour)
	if err != nil || values(short["a"]) != "[8 9]" {
		t.Fatalf("before within 2h %v %v", short, err)
	}
	after, err := s.ReadingsAfter(ctx, "p1", []string{"b"}, start.Add(18*time.Hour), 5, 24*time.Hour)
	if err != nil || len(after) != 1 || values(after["b"]) != "[18 19]" {
		t.Fatalf("after %v %v", after, err)
	}
}

// BenchmarkMeterTotals sums a park-year of daily rollups of 500 meters (plus partial-day edges
// from hourly ones).
func BenchmarkMeterTotals(b *testing.B) {
	db := localsvc.SharedInfluxDBForTest(b)
	s := New(Options{URL: db.URL, Bucket: db.Bucket})
	b.Cleanup(s.Close)
	ctx := context.Background()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, loc)
	const meters, days = 500, 365
	var pts []RollupPoint
	for m := range meters {
		for d := range days + 1 {
			pts = append(pts, RollupPoint{Daily: true, Park: "p1", Enterprise: fmt.Sprintf("e%d", m%20), Meter: fmt.Sprintf("m%03d", m),
				Carrier: "electricity", Direction: "in", GreenClass: "none", Start: start.AddDate(0, 0, d), Quantity: 24,
				Coverage: 1, Received: 96, Expected: 96, TceEqual: ptr(0.0072), TceEquivalent: ptr(0.003), CO2T: ptr(0.02)})
		}
		for h := range 24 {
			pts = append(pts, RollupPoint{Park: "p1", Enterprise: fmt.Sprintf("e%d", m%20), Meter: fmt.Sprintf("m%03d", m), Carrier: "electricity", Direction: "in", GreenClass: "none",
				Start: start.AddDate(0, 0, days).Add(time.Duration(h) * time.Hour), Quantity: 1, Coverage: 1, Received: 4, Expected: 4})
		}
		for mo := range 12 {
			first := start.AddDate(0, mo, 0)
			n := float64(first.AddDate(0, 1, 0).Sub(first).Hours() / 24)
			pts = append(pts, RollupPoint{Monthly: true, Park: "p1", Enterprise: fmt.Sprintf("e%d", m%20), Meter: fmt.Sprintf("m%03d", m),
				Carrier: "electricity", Direction: "in", GreenClass: "none", Start: first, Quantity: 24 * n,
				Coverage: 1, Received: int64(96 * n), Expected: 96 * n, TceEqual: ptr(0.0072 * n), TceEquivalent: ptr(0.003 * n), CO2T: ptr(0.02 * n)})
		}
	}
	if err := s.WriteRollups(ctx, pts); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		got, err := s.MeterTotals(ctx, "p1", start, start.AddDate(0, 0, days).Add(6*time.Hour), loc)
		if err != nil || len(got) != meters || !near(got[0].Quantity, 24*days+6) {
			b.Fatalf("totals: %d rows, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(meters*12), "monthly_points/op")
}
