package accbench

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

func TestQuickRunMatchesGroundTruth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Quick: true, Runs: 2, Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Correct() {
		t.Errorf("checks failed: %+v", rep.Checks)
	}
	// 50 meters, January at 15-minute readings.
	if want := 50 * 31 * 96; rep.Readings != want {
		t.Errorf("readings = %d, want %d", rep.Readings, want)
	}
	if rep.DirtyHours != 31*24 || rep.DirtyLeft != 0 {
		t.Errorf("dirty hours: %d marked, %d left; want %d, 0", rep.DirtyHours, rep.DirtyLeft, 31*24)
	}
	if rep.ReadingsRead < rep.Readings || rep.HoursWritten < 50*31*24 || rep.DaysWritten < 50*31 {
		t.Errorf("rollups read %d readings, wrote %d hours and %d days; want at least %d, %d, %d",
			rep.ReadingsRead, rep.HoursWritten, rep.DaysWritten, rep.Readings, 50*31*24, 50*31)
	}
	if rep.Completeness == nil || *rep.Completeness < 0.999 {
		t.Errorf("completeness = %v, want about 1", rep.Completeness)
	}
	if len(rep.Indicators) != 2 {
		t.Errorf("%d indicator runs, want 2", len(rep.Indicators))
	}
}

func TestGeneratorTruth(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, loc)
	to := from.AddDate(0, 1, 0)
	meters := parkMeters(30, 15*time.Minute, to.Sub(from).Hours())
	g := newGenerator(meters, loc, from, to, 15*time.Minute)
	// The ground truth is the sum of the register deltas times the multiplier, with wraps
	// counted from the rollover value, as an auditor would add them up.
	prev := make([]float64, len(meters))
	sum := make([]float64, len(meters))
	wraps := map[string]int{}
	for k := range g.steps {
		for j, p := range g.step(k, nil) {
			if k > 0 {
				d := p.Value - prev[j]
				if d < 0 {
					if meters[j].Rollover == 0 {
						t.Fatalf("meter %s went down from %v to %v without a rollover", p.Meter, prev[j], p.Value)
					}
					d += meters[j].Rollover
					wraps[p.Meter]++
				}
				sum[j] += d * meters[j].Multiplier
			}
			prev[j] = p.Value
		}
	}
	if wraps["m0011"] != 1 || wraps["m0023"] != 1 || len(wraps) != 2 {
		t.Errorf("wraps = %v, want one each of m0011 and m0023", wraps)
	}
	want := g.truth()
	var grid, export, green float64
	for j, m := range meters {
		switch {
		case m.Carrier != "electricity":
		case m.Direction == "out":
			export += sum[j]
		case m.GreenClass == "direct":
			green += sum[j]
		default:
			grid += sum[j]
		}
	}
	for _, c := range []Check{{"grid", want.grid, grid}, {"export", want.gridExport, export}, {"green", want.directGreen, green}} {
		if c.Want <= 0 || !c.OK() {
			t.Errorf("%s: truth %v, summed deltas %v", c.Name, c.Want, c.Got)
		}
	}
}
