package influx

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// alertRollups writes 48 hours of rollups of park p1 from start, and one of park p2: a and b
// of enterprise e1, b moving to e2 after 24 hours (a second stored series), c of no
// enterprise and without CO2; quality flags on some hours.
func alertRollups(t *testing.T, s *Store, start time.Time) []RollupPoint {
	t.Helper()
	var pts []RollupPoint
	for h := range 48 {
		at := start.Add(time.Duration(h) * time.Hour)
		bEnt := "e1"
		if h >= 24 {
			bEnt = "e2"
		}
		for i, m := range []struct{ meter, ent string }{{"a", "e1"}, {"b", bEnt}, {"c", ""}} {
			v := float64(h+1) * float64(i+1)
			p := RollupPoint{Park: "p1", Enterprise: m.ent, Meter: m.meter, Carrier: "electricity", Direction: "in",
				GreenClass: "none", Start: at, Quantity: v, Coverage: 1, TceEqual: ptr(v / 1000), CO2T: ptr(v / 100)}
			if m.meter == "c" {
				p.CO2T = nil
			}
			if (h+i)%7 == 0 {
				p.Quality = int64(1 << (h % 5))
			}
			pts = append(pts, p)
		}
	}
	pts = append(pts, RollupPoint{Park: "p2", Enterprise: "e1", Meter: "a", Start: start, TceEqual: ptr(1e6), CO2T: ptr(1e6), Quality: 4})
	if err := s.WriteRollups(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
	return pts
}

func TestHourlyTotals(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	pts := alertRollups(t, s, start)
	// want sums the points in Go, independently of the query.
	want := func(field string, from, to time.Time, groupBy []string) string {
		sums := map[string]float64{}
		for _, p := range pts {
			v := p.TceEqual
			if field == "co2_t" {
				v = p.CO2T
			}
			if p.Park != "p1" || v == nil || p.Start.Before(from) || !p.Start.Before(to) {
				continue
			}
			var k []string
			if slices.Contains(groupBy, GroupEnterprise) {
				k = append(k, p.Enterprise)
			}
			if slices.Contains(groupBy, GroupMeter) {
				k = append(k, p.Meter)
			}
			sums[strings.Join(k, "/")] += *v
		}
		var out []string
		for k, v := range sums {
			out = append(out, fmt.Sprintf("%s=%.6f", k, v))
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		field    string
		from, to int // hours from start
		groupBy  []string
		rows     int
	}{
		{"tce_equal", 0, 48, []string{GroupEnterprise}, 3},
		{"tce_equal", 20, 30, []string{GroupEnterprise, GroupMeter}, 4},
		{"co2_t", 20, 30, []string{GroupEnterprise}, 2}, // c has no CO2: no group without enterprise
		{"co2_t", 0, 12, nil, 1},
		{"tce_equal", 47, 48, []string{GroupMeter}, 3},
		{"tce_equal", 48, 60, []string{GroupEnterprise}, 0},
	} {
		name := fmt.Sprintf("%s %d..%d by %v", tc.field, tc.from, tc.to, tc.groupBy)
		from, to := start.Add(time.Duration(tc.from)*time.Hour), start.Add(time.Duration(tc.to)*time.Hour)
		got, err := s.HourlyTotals(ctx, "p1", tc.field, from, to, tc.groupBy)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var parts []string
		for _, r := range got {
			var k []string
			if slices.Contains(tc.groupBy, GroupEnterprise) {
				k = append(k, r.Enterprise)
			} else if r.Enterprise != "" {
				t.Errorf("%s: enterprise %q in totals not grouped by it", name, r.Enterprise)
			}
			if slices.Contains(tc.groupBy, GroupMeter) {
				k = append(k, r.Meter)
			} else if r.Meter != "" {
				t.Errorf("%s: meter %q in totals not grouped by it", name, r.Meter)
			}
			parts = append(parts, fmt.Sprintf("%s=%.6f", strings.Join(k, "/"), r.Value))
		}
		slices.Sort(parts)
		if g, w := strings.Join(parts, " "), want(tc.field, from, to, tc.groupBy); g != w || len(got) != tc.rows {
			t.Errorf("%s:\n got %s\nwant %s (%d rows)", name, g, w, tc.rows)
		}
	}
	if _, err := s.HourlyTotals(ctx, "p1", "tce_equal", start, start.Add(time.Hour), []string{"carrier"}); err == nil {
		t.Error("grouping by carrier accepted")
	}
}

func TestQualityHours(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	pts := alertRollups(t, s, start)
	from, to := start.Add(10*time.Hour), start.Add(40*time.Hour)
	var want []string
	for _, p := range pts {
		if p.Park == "p1" && p.Quality != 0 && !p.Start.Before(from) && p.Start.Before(to) {
			want = append(want, fmt.Sprintf("%s/%s %s q%d", p.Meter, p.Enterprise, p.Start.Sub(start), p.Quality))
		}
	}
	slices.Sort(want) // by meter, then time for these hours' two-digit offsets
	got, err := s.QualityHours(ctx, "p1", from, to)
	if err != nil {
		t.Fatal(err)
	}
	var gs []string
	for i, h := range got {
		gs = append(gs, fmt.Sprintf("%s/%s %s q%d", h.Meter, h.Enterprise, h.Start.Sub(start), h.Quality))
		if i > 0 && (got[i-1].Meter > h.Meter || got[i-1].Meter == h.Meter && !got[i-1].Start.Before(h.Start)) {
			t.Errorf("not by meter then time at %d: %v", i, gs)
		}
	}
	slices.Sort(gs)
	if len(want) < 5 || fmt.Sprint(gs) != fmt.Sprint(want) {
		t.Fatalf("quality hours\n got %v\nwant %v", gs, want)
	}
	if got, err := s.QualityHours(ctx, "p1", to, to); err != nil || len(got) != 0 {
		t.Fatalf("empty range: %v %v", got, err)
	}
}
