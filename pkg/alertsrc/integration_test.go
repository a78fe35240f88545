package alertsrc

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := localsvc.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop shared services:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// TestIntegration evaluates power, no_data and dead letter rules against a real InfluxDB and
// a real SQLite registry and ledger.
func TestIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts InfluxDB")
	}
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{TokenID: "test", Role: auth.RoleAdmin})
	db := localsvc.SharedInfluxDBForTest(t)
	ts := influx.New(influx.Options{URL: db.URL, Bucket: db.Bucket})
	t.Cleanup(ts.Close)
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "pc.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	reg := &registry.Service{Store: st}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = reg.CreatePark(ctx, registry.Park{ID: park, Name: "Park", Timezone: "Asia/Shanghai"})
	must(err)
	_, err = reg.CreateEnterprise(ctx, registry.Enterprise{ID: "e1", ParkID: park, Name: "E1"})
	must(err)
	_, _, err = reg.CreateGateway(ctx, registry.Gateway{ID: "g1", ParkID: park})
	must(err)
	for _, m := range []registry.Meter{
		{ID: "m1", EnterpriseID: "e1", Carrier: registry.Electricity, Direction: registry.In, Unit: "kWh", Multiplier: 2, Rollover: 10000, IntervalSeconds: 60},
		{ID: "m2", Carrier: registry.Electricity, Direction: registry.Out, Unit: "kWh", Multiplier: 1, IntervalSeconds: 60},
		{ID: "m3", EnterpriseID: "e1", Carrier: registry.NaturalGas, Direction: registry.In, Unit: "m3", Multiplier: 1, IntervalSeconds: 300},
		{ID: "m4", Carrier: registry.Heat, Direction: registry.In, Unit: "GJ", Multiplier: 1, IntervalSeconds: 3600},
	} {
		m.ParkID, m.GatewayID, m.Kind = park, "g1", registry.Counter
		_, err = reg.CreateMeter(ctx, m)
		must(err)
	}

	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var pts []influx.Point
	for k := 0; k <= 20; k++ {
		at := now.Add(time.Duration(k-20) * time.Minute)
		pts = append(pts,
			// m1 wraps at 10000 two minutes before now: 2 kWh a minute throughout (120 kW).
			influx.Point{Park: park, Enterprise: "e1", Meter: "m1", Carrier: "electricity", TS: at, Value: math.Mod(9982+float64(k), 10000)},
			influx.Point{Park: park, Meter: "m2", Carrier: "electricity", TS: at, Value: 100 + 0.5*float64(k)})
	}
	pts = append(pts, influx.Point{Park: park, Meter: "m4", Carrier: "heat", TS: now.Add(-48 * time.Hour), Value: 3})
	must(ts.WriteReadings(ctx, pts))

	var dead []telemetry.DeadLetter
	for _, ago := range []time.Duration{2 * time.Hour, 59 * time.Minute, 30 * time.Minute, time.Second} {
		dead = append(dead, telemetry.DeadLetter{Park: park, Gateway: "g1", Reason: "bad JSON", ReceivedAt: now.Add(-ago)})
	}
	dead = append(dead, telemetry.DeadLetter{Park: "p2", Reason: "bad JSON", ReceivedAt: now})
	must(st.RecordBatches(ctx, dead, []telemetry.SeqMark{}))

	src := New(Options{Readings: ts, Registry: reg, Ledger: st})
	rules := []alerting.Rule{
		{ID: "power-m1", Kind: alerting.KindThreshold, Metric: alerting.MetricPower, MeterID: "m1", Window: 5 * time.Minute},
		{ID: "power-park", Kind: alerting.KindThreshold, Metric: alerting.MetricPower},
		{ID: "nodata", Kind: alerting.KindNoData, Threshold: 3},
		{ID: "dead", Kind: alerting.KindDeadLetters, Threshold: 2},
		{ID: "gap", Kind: alerting.KindSeqGap},
		{ID: "unknown", Kind: alerting.KindNoData, MeterID: "m9", Threshold: 3},
	}
	got := src.Observe(ctx, park, rules, now)
	check(t, got["power-m1"], want{"enterprise=e1,meter=m1", 120, ""})
	check(t, got["power-park"], want{"", 90, "2 of 2 meters"})
	check(t, got["nodata"],
		want{"enterprise=e1,meter=m1", 0, ""},
		want{"meter=m2", 0, ""},
		want{"enterprise=e1,meter=m3", float64(NoDataLookback / (300 * time.Second)), "no reading in the last"},
		want{"meter=m4", 48, ""},
	)
	check(t, got["dead"], want{"", 3, ""})
	check(t, got["gap"])
	if got["unknown"].Err == nil {
		t.Error("a rule on an unknown meter gave no error")
	}
}
