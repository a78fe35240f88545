package alertbench

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

func TestQuickRunIsSane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Quick: true, Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// 500 meters: every 16th from the sixth is silent, each with a no_data rule.
	if rep.Silent != 31 || rep.NoDataWant != 31 || rep.NoDataFiring != 31 {
		t.Errorf("silent meters %d, no_data alerts expected %d, firing after the first cycle %d; want 31 each",
			rep.Silent, rep.NoDataWant, rep.NoDataFiring)
	}
	if len(rep.Cycles) != 3 {
		t.Fatalf("%d cycles, want 3", len(rep.Cycles))
	}
	total := 0
	for _, k := range rep.Rules {
		total += k.Rules
	}
	// The mix sums to 99.5 % of the rules asked for.
	if total != 995 {
		t.Errorf("%d rules, want 995: %+v", total, rep.Rules)
	}
	for i, c := range rep.Cycles {
		if c.Wall <= 0 || c.Observe <= 0 || c.Observations < 500 {
			t.Errorf("cycle %d: %+v", i+1, c)
		}
	}
	if rep.Cycles[0].Changed < 31 || rep.Cycles[0].Notifications < 31 {
		t.Errorf("first cycle changed %d alerts and sent %d notifications; want at least the 31 silent meters'",
			rep.Cycles[0].Changed, rep.Cycles[0].Notifications)
	}
	if rep.Delivered != int64(rep.Notified) {
		t.Errorf("webhook received %d of %d notifications", rep.Delivered, rep.Notified)
	}
	if rep.Self.CPU <= 0 || rep.Influx.CPU <= 0 {
		t.Errorf("CPU not measured: self %v, influxd %v", rep.Self.CPU, rep.Influx.CPU)
	}
	// The heavy and surging enterprises breach their power thresholds for the minute the rules
	// ask, the meters with gap hours their data quality rules.
	firing := map[string]int{}
	for _, k := range rep.Kinds {
		if k.Errors > 0 {
			t.Errorf("%s: %d rules failed when observed alone", k.Kind, k.Errors)
		}
		firing[k.Kind] = k.Firing
	}
	for _, k := range []string{KindNoData, KindPowerEnterprise, KindPowerMeter, KindDataQuality, KindRateOfChange} {
		if firing[k] == 0 {
			t.Errorf("no %s alert firing at the end: %+v", k, rep.Kinds)
		}
	}
}

func TestRuleCounts(t *testing.T) {
	for _, tc := range []struct {
		rules, meters int
		want          []int
	}{
		{10000, 5000, []int{5000, 3000, 1000, 500, 300, 100, 50}},
		{1000, 500, []int{500, 300, 100, 50, 30, 10, 5}},
		{10000, 1000, []int{1000, 1000, 1000, 500, 300, 100, 50}},
	} {
		got := ruleCounts(tc.rules, tc.meters)
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ruleCounts(%d, %d) = %v, want %v", tc.rules, tc.meters, got, tc.want)
				break
			}
		}
	}
}
