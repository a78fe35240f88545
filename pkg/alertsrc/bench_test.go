package alertsrc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// BenchmarkObserve measures the CPU cost of Observe itself for a large park: 5,000 meters
// (electricity counters read every minute) of 200 enterprises and 10,000 rules (5,000 no_data
// per meter, 3,000 power per meter over 5 minutes, 1,000 data_quality and 1,000 energy_tce
// thresholds per enterprise over 1 to 24 hours), against fakes that hand back realistic data
// sizes without work of their own: 5,000 last readings, 35,000 readings of the power window,
// 120,000 hourly rollups (their sums by enterprise and flagged hours, as InfluxDB sends them).
func BenchmarkObserve(b *testing.B) {
	const meters, enterprises = 5000, 200
	rec := &recorder{}
	reg := &fakeRegistry{recorder: rec, park: registry.Park{ID: park, Timezone: "Asia/Shanghai"}}
	last := make(map[string]influx.Sample, meters)
	power := make(map[string][]influx.Sample, meters)
	var rollups []influx.RollupPoint
	for i := range meters {
		id := fmt.Sprintf("m%05d", i)
		ent := fmt.Sprintf("e%03d", i%enterprises)
		m := meter(id, ent, registry.Electricity, registry.In, registry.Counter, 60)
		if i%10 == 9 {
			m.Direction = registry.Out
		}
		m.Rollover = 1e6
		reg.meters = append(reg.meters, m)
		last[id] = influx.Sample{TS: now.Add(-time.Duration(i%120) * time.Second), Value: float64(i)}
		for k := -6; k <= 0; k++ {
			power[id] = append(power[id], influx.Sample{TS: now.Add(time.Duration(k) * time.Minute), Value: float64(1000*i + k + 6)})
		}
		for h := -24; h < 0; h++ {
			q := accounting.Quality(0)
			if (i+h)%97 == 0 {
				q = accounting.QualityGap | accounting.QualityEstimated
			}
			rollups = append(rollups, influx.RollupPoint{Park: park, Enterprise: ent, Meter: id, Carrier: "electricity", Direction: string(m.Direction),
				Start: now.Truncate(time.Hour).Add(time.Duration(h) * time.Hour), Quantity: 60, Quality: int64(q), TceEqual: ptr(0.0074), CO2T: ptr(0.034)})
		}
	}
	slices.SortFunc(rollups, func(a, b influx.RollupPoint) int {
		if c := strings.Compare(a.Meter, b.Meter); c != 0 {
			return c
		}
		return a.Start.Compare(b.Start)
	})
	var rules []alerting.Rule
	for i, m := range reg.meters {
		rules = append(rules, alerting.Rule{ID: "nodata-" + m.ID, ParkID: park, Kind: alerting.KindNoData, MeterID: m.ID, Op: ">", Threshold: 3})
		if i < 3000 {
			rules = append(rules, alerting.Rule{ID: "power-" + m.ID, ParkID: park, Kind: alerting.KindThreshold, Metric: alerting.MetricPower,
				MeterID: m.ID, Window: 5 * time.Minute, Op: ">", Threshold: 500})
		}
	}
	windows := []time.Duration{time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	for e := range enterprises {
		ent := fmt.Sprintf("e%03d", e)
		for _, w := range windows {
			rules = append(rules,
				alerting.Rule{ID: fmt.Sprintf("dq-%s-%v", ent, w), ParkID: park, Kind: alerting.KindDataQuality, EnterpriseID: ent, Window: w, Op: ">"},
				alerting.Rule{ID: fmt.Sprintf("tce-%s-%v", ent, w), ParkID: park, Kind: alerting.KindThreshold, Metric: alerting.MetricEnergyTce,
					EnterpriseID: ent, Window: w, Op: ">", Threshold: 1})
		}
	}
	if len(rules) != 10000 {
		b.Fatalf("%d rules", len(rules))
	}
	var quality []influx.QualityHour
	for _, p := range rollups {
		if p.Quality != 0 {
			quality = append(quality, influx.QualityHour{Enterprise: p.Enterprise, Meter: p.Meter, Start: p.Start, Quality: p.Quality})
		}
	}
	src := New(Options{
		Readings: &fakeReadings{recorder: rec, fixedLast: last, fixedPower: power, fixedRollups: rollups, fixedQuality: quality},
		Registry: reg,
	})
	ctx := context.Background()
	got := src.Observe(ctx, park, rules, now)
	obs := 0
	for id, r := range got {
		if r.Err != nil {
			b.Fatalf("%s: %v", id, r.Err)
		}
		obs += len(r.Observations)
	}
	// 5,000 no_data + 3,000 power + 1,000 × 25 meters of data quality + 1,000 energy.
	if obs != 5000+3000+25000+1000 {
		b.Fatalf("%d observations", obs)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		src.Observe(ctx, park, rules, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(rules)), "ns/rule")
}
