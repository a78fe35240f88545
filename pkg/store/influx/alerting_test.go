package influx

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestLastReadings(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	start := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	var pts []Point
	for i := range 10 {
		ts := start.Add(time.Duration(i) * time.Minute)
		pts = append(pts,
			Point{Park: "p1", Enterprise: "e1", Meter: "a", Carrier: "electricity", TS: ts, Value: float64(i)},
			Point{Park: "p1", Meter: "b", Carrier: "heat", TS: ts, Value: float64(100 + i)})
	}
	// Meter a moved to enterprise e2 at minute 10: a second stored series of the same meter.
	pts = append(pts,
		Point{Park: "p1", Enterprise: "e2", Meter: "a", Carrier: "electricity", TS: start.Add(12 * time.Minute), Value: 12},
		Point{Park: "p2", Meter: "a", Carrier: "electricity", TS: start.Add(20 * time.Minute), Value: 999})
	if err := s.WriteReadings(ctx, pts); err != nil {
		t.Fatal(err)
	}
	got, err := s.LastReadings(ctx, "p1", nil, start, start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Sample{"a": {start.Add(12 * time.Minute), 12}, "b": {start.Add(9 * time.Minute), 109}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("last readings %v, want %v", got, want)
	}
	// to is exclusive; a meter filter narrows.
	got, err = s.LastReadings(ctx, "p1", []string{"b"}, start, start.Add(5*time.Minute))
	if err != nil || len(got) != 1 || got["b"].Value != 104 {
		t.Fatalf("last readings of b before minute 5: %v %v", got, err)
	}
	got, err = s.LastReadings(ctx, "p1", nil, start.Add(time.Hour), start.Add(2*time.Hour))
	if err != nil || len(got) != 0 {
		t.Fatalf("last readings of an empty range: %v %v", got, err)
	}
}

func TestCarrierReadings(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	start := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	var pts []Point
	for i := range 10 {
		ts := start.Add(time.Duration(i) * time.Minute)
		pts = append(pts,
			Point{Park: "p1", Enterprise: "e1", Meter: "a", Carrier: "electricity", TS: ts, Value: float64(i)},
			Point{Park: "p1", Meter: "gas", Carrier: "natural_gas", TS: ts, Value: float64(i)})
	}
	// Meter c reported long before the window only; meter d only inside it.
	pts = append(pts,
		Point{Park: "p1", Meter: "c", Carrier: "electricity", TS: start.Add(-50 * time.Minute), Value: 7},
		Point{Park: "p1", Meter: "c", Carrier: "electricity", TS: start.Add(-40 * time.Minute), Value: 8},
		Point{Park: "p1", Meter: "d", Carrier: "electricity", TS: start.Add(8 * time.Minute), Value: 1},
		Point{Park: "p2", Meter: "a", Carrier: "electricity", TS: start.Add(7 * time.Minute), Value: 1})
	if err := s.WriteReadings(ctx, pts); err != nil {
		t.Fatal(err)
	}
	got, err := s.CarrierReadings(ctx, "p1", "electricity", start.Add(5*time.Minute), start.Add(9*time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	values := func(ss []Sample) string {
		out := ""
		for _, x := range ss {
			out += fmt.Sprintf("%s=%v ", x.TS.Sub(start), x.Value)
		}
		return out
	}
	if len(got) != 3 || values(got["a"]) != "4m0s=4 5m0s=5 6m0s=6 7m0s=7 8m0s=8 " ||
		values(got["c"]) != "-40m0s=8 " || values(got["d"]) != "8m0s=1 " {
		t.Fatalf("electricity readings: a %s c %s d %s (%d meters)", values(got["a"]), values(got["c"]), values(got["d"]), len(got))
	}
	// Without lookback, only the window.
	got, err = s.CarrierReadings(ctx, "p1", "electricity", start.Add(5*time.Minute), start.Add(7*time.Minute), 0)
	if err != nil || len(got) != 1 || values(got["a"]) != "5m0s=5 6m0s=6 " {
		t.Fatalf("window only: %v %v", got, err)
	}
}
