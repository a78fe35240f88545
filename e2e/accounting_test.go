package e2e

import (
	"fmt"
	"math"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/simulators/meters"
)

// accSimConfig is a park of two enterprises on a simulated clock 720 times faster than real
// time (a 5 min step every 0.42 s, an hour every 5 s), every meter on a 5 min grid:
//
//   - e1: grid electricity over Modbus (uint32, 0.1 kWh, wrapping at 100 000 kWh, placed to wrap
//     at step 20) and natural gas in m³ on a second unit of the same gateway;
//   - e2: grid electricity over DL/T 645 behind a 40:1 current transformer (the register counts
//     1/40 of the energy; it wraps at the register's 1 000 000 kWh at step 35) and process heat
//     in GJ over Modbus;
//   - the park: rooftop PV (direct green, float32 register) and the export to the grid
//     (reverse active energy over DL/T 645).
//
// The clock starts at 10:50 local time on a Monday so that the solar meters produce.
const accSimConfig = `
seed: 20261102
timezone: Asia/Shanghai
interval: 5m
clock:
  sim_start: 2026-11-02T10:50:00+08:00
  speed: 720
profiles:
  motor_plant: {base: 300, peak: 500, pattern: three_shift, noise: 0.05}
  rooftop_pv: {peak: 250, pattern: solar, noise: 0.1}
  boilers: {base: 5, peak: 40, pattern: two_shift, noise: 0.05}
  materials_line: {base: 40, peak: 160, pattern: day_shift, noise: 0.08}
  process_heat: {base: 0.2, peak: 1.5, pattern: day_shift, noise: 0.05}
  pv_surplus: {peak: 60, pattern: solar, noise: 0.2}
devices:
  - name: e1-plc
    protocol: modbus-tcp
    unit_id: 1
    meters:
      - {name: e1-grid, kind: counter, profile: motor_plant, register: 0, type: uint32, word_order: high, scale: 0.1,
         rollover: 100000, faults: [{kind: rollover, step: 20}]}
      - {name: pv, kind: counter, profile: rooftop_pv, table: input, register: 100, type: float32, word_order: low, initial: 36000}
      - {name: e1-gas, kind: counter, profile: boilers, unit_id: 2, register: 0, type: uint32, scale: 0.01, initial: 84210.5}
  - name: e2-bus
    protocol: dlt645-tcp
    meters:
      - {name: e2-grid, profile: materials_line, factor: 0.025, address: "000000000001", data: total_active_energy,
         faults: [{kind: rollover, step: 35}]}
      - {name: park-export, profile: pv_surplus, address: "000000000002", data: reverse_active_energy, initial: 512.5}
  - name: e2-heat-meter
    protocol: modbus-tcp
    meters:
      - {name: e2-heat, kind: counter, profile: process_heat, register: 0, type: uint32, word_order: low, scale: 0.001, initial: 1024}
`

// accStep is the meters' interval; accHours the length of the accounted period.
const (
	accStep  = 5 * time.Minute
	accHours = 4
)

// accRegistry is how the platform knows the simulated meters: enterprise, carrier, unit,
// direction, green class, multiplier and rollover (the value the register wraps at).
func accRegistry() []registry.Meter {
	iv := int32(accStep / time.Second)
	return []registry.Meter{
		{ID: "e1-grid", EnterpriseID: "e1", Carrier: registry.Electricity, Unit: "kWh", Multiplier: 1, Rollover: 100000, IntervalSeconds: iv},
		{ID: "pv", Carrier: registry.Electricity, Unit: "kWh", Multiplier: 1, GreenClass: registry.GreenDirect, IntervalSeconds: iv},
		{ID: "e1-gas", EnterpriseID: "e1", Carrier: registry.NaturalGas, Unit: "m3", Multiplier: 1, IntervalSeconds: iv},
		{ID: "e2-grid", EnterpriseID: "e2", Carrier: registry.Electricity, Unit: "kWh", Multiplier: 40, Rollover: 1000000, IntervalSeconds: iv},
		{ID: "park-export", Carrier: registry.Electricity, Unit: "kWh", Direction: registry.Out, Multiplier: 1, IntervalSeconds: iv},
		{ID: "e2-heat", EnterpriseID: "e2", Carrier: registry.Heat, Unit: "GJ", Multiplier: 1, IntervalSeconds: iv},
	}
}

// wantWraps are the meters whose register must wrap inside the accounted period.
var wantWraps = []string{"e1-grid", "e2-grid"}

// indicatorsDoc is the part of GET /indicators the test reads (protojson, proto names).
type indicatorsDoc struct {
	blockDoc
	Enterprises []blockDoc `json:"enterprises"`
}

type blockDoc struct {
	Enterprise          string   `json:"enterprise_id"`
	EnergyTceEqual      *float64 `json:"energy_tce_equal"`
	EnergyTceEquivalent *float64 `json:"energy_tce_equivalent"`
	CO2T                *float64 `json:"co2_t"`
	Completeness        *float64 `json:"completeness"`
	EstimatedShare      *float64 `json:"estimated_share"`
	ElectricityKWh      struct {
		Grid        float64 `json:"grid"`
		GridExport  float64 `json:"grid_export"`
		DirectGreen float64 `json:"direct_green"`
	} `json:"electricity_kwh"`
	MissingCoefficients []string `json:"missing_coefficients"`
}

type seriesDoc struct {
	Points []struct {
		TS    string  `json:"ts"`
		Value float64 `json:"value"`
	} `json:"points"`
}

// TestIndicatorsMatchGroundTruth runs simulated meters of two enterprises and the park
// (electricity over Modbus and DL/T 645, natural gas, heat, direct green PV, export; two
// counter rollovers; a 40:1 multiplier) through the edge agent, Mosquitto, a collector process
// and InfluxDB to an accounting process, in accelerated time, and checks the indicators it
// serves over REST against accounting.Indicators applied to what the meters really counted:
// the ground-truth register deltas × multiplier, unwrapped at the rollover. Energy, CO2 and each
// enterprise's figures must match to 1e-9 relative, completeness must be 1 and the hourly
// energy series must sum to the period's energy.
func TestIndicatorsMatchGroundTruth(t *testing.T) {
	t.Parallel()
	const adminToken = "e2e-accounting-admin-token-0123456789abcdef"
	p := &park{t: t, dir: t.TempDir()}
	p.influx = localsvc.InfluxDBForTest(t)
	p.mq = localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{})
	p.dsn = localsvc.PostgresForTest(t)
	p.ts = influx.New(influx.Options{URL: p.influx.URL, Bucket: p.influx.Bucket})
	t.Cleanup(p.ts.Close)

	cfg, err := meters.ParseConfig([]byte(accSimConfig), "accounting")
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		t.Fatal(err)
	}
	reg := p.registerPark(cfg.Timezone, []string{"e1", "e2"}, accRegistry())
	p.startCollector("collector")
	acct, base := p.startAccounting("accounting", adminToken)

	// The simulated clock starts now, with the agent right behind it.
	p.sim, err = meters.New(cfg, meters.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.sim.Close() })
	p.startSimulatedAgent(p.sim.Clock())

	// The period: whole hours from the first hour boundary every meter has a reading at or
	// after its first one; run until every meter has served the reading that closes it.
	from, to := p.waitForPeriod(accHours, 60*time.Second)
	p.verify(60 * time.Second) // stops the meters; every reading served is stored, once
	t.Logf("period %s to %s (simulated)", from.In(loc).Format(time.RFC3339), to.In(loc).Format(time.RFC3339))

	want, received, maxPhysDiff := expectedIndicators(t, p.sim, reg, from, to, loc)

	// Wait until the rollups are complete and stable for longer than a rollup cycle (5 s).
	q := url.Values{"from": {from.In(loc).Format(time.RFC3339)}, "to": {to.In(loc).Format(time.RFC3339)}}
	var got indicatorsDoc
	began := time.Now()
	var last indicatorsDoc
	stableSince := time.Time{}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var doc indicatorsDoc
		err := getJSON(base+"/api/v1/parks/"+parkID+"/indicators?"+q.Encode(), adminToken, &doc)
		switch {
		case err != nil:
			stableSince = time.Time{}
		case doc.Completeness == nil || *doc.Completeness != 1 || !reflect.DeepEqual(doc, last):
			stableSince = time.Time{}
			last = doc
		case stableSince.IsZero():
			stableSince = time.Now()
		}
		if !stableSince.IsZero() && time.Since(stableSince) > 6*time.Second {
			got = doc
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("indicators did not reach completeness 1 and stay put within 60 s: last error %v, last answer %+v\naccounting log:\n%s",
				err, last, acct.logTail())
		}
	}
	t.Logf("rollups complete and stable %s after the last reading was acknowledged", time.Since(began).Round(100*time.Millisecond))

	maxDiff := 0.0
	check := func(name string, got, want *float64) {
		t.Helper()
		switch {
		case want == nil || got == nil:
			t.Errorf("%s = %s, want %s", name, fmtFloat(got), fmtFloat(want))
		default:
			d := relDiff(*got, *want)
			maxDiff = max(maxDiff, d)
			if d > 1e-9 {
				t.Errorf("%s = %v, want %v (relative difference %.3g)", name, *got, *want, d)
			}
		}
	}
	ptr := func(v float64) *float64 { return &v }
	check("energy_tce_equal", got.EnergyTceEqual, want.EnergyTceEqual)
	check("energy_tce_equivalent", got.EnergyTceEquivalent, want.EnergyTceEquivalent)
	check("co2_t", got.CO2T, want.CO2T)
	check("electricity_kwh.grid", &got.ElectricityKWh.Grid, &want.ElectricityKWh.Grid)
	check("electricity_kwh.grid_export", &got.ElectricityKWh.GridExport, &want.ElectricityKWh.GridExport)
	check("electricity_kwh.direct_green", &got.ElectricityKWh.DirectGreen, &want.ElectricityKWh.DirectGreen)
	if got.Completeness == nil || *got.Completeness != 1 || want.Completeness == nil || *want.Completeness != 1 {
		t.Errorf("completeness %s, want 1 (ground truth gives %s)", fmtFloat(got.Completeness), fmtFloat(want.Completeness))
	}
	if got.EstimatedShare == nil || *got.EstimatedShare != 0 {
		t.Errorf("estimated_share %s, want 0: every reading arrived", fmtFloat(got.EstimatedShare))
	}
	if len(got.MissingCoefficients) != 0 {
		t.Errorf("missing coefficients %v", got.MissingCoefficients)
	}
	if len(got.Enterprises) != len(want.Enterprises) {
		t.Errorf("%d enterprise blocks, want %d", len(got.Enterprises), len(want.Enterprises))
	}
	for _, w := range want.Enterprises {
		i := slices.IndexFunc(got.Enterprises, func(b blockDoc) bool { return b.Enterprise == w.Enterprise })
		if i < 0 {
			t.Errorf("no block for enterprise %s", w.Enterprise)
			continue
		}
		g := got.Enterprises[i]
		check(w.Enterprise+".energy_tce_equal", g.EnergyTceEqual, w.EnergyTceEqual)
		check(w.Enterprise+".energy_tce_equivalent", g.EnergyTceEquivalent, w.EnergyTceEquivalent)
		check(w.Enterprise+".co2_t", g.CO2T, w.CO2T)
		if g.Completeness == nil || *g.Completeness != 1 {
			t.Errorf("%s completeness %s, want 1", w.Enterprise, fmtFloat(g.Completeness))
		}
	}

	// The hourly chart sums to the period's energy.
	q.Set("metric", "energy_tce")
	q.Set("step", "1h")
	var series seriesDoc
	if err := getJSON(base+"/api/v1/parks/"+parkID+"/series?"+q.Encode(), adminToken, &series); err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, pt := range series.Points {
		sum += pt.Value
	}
	if len(series.Points) != accHours {
		t.Errorf("series has %d hourly points, want %d: %+v", len(series.Points), accHours, series.Points)
	}
	check("series energy_tce sum vs indicators", ptr(sum), got.EnergyTceEqual)
	check("series energy_tce sum vs ground truth", ptr(sum), want.EnergyTceEqual)

	t.Logf("%d meters, %d readings in the period; energy %.6f tce (equal value), %.6f tce (equivalent), CO2 %.6f t; "+
		"grid %.3f kWh, direct green %.3f kWh, export %.3f kWh; max relative difference %.3g; register vs physical energy within %.3g",
		len(reg), received, deref(want.EnergyTceEqual), deref(want.EnergyTceEquivalent), deref(want.CO2T),
		want.ElectricityKWh.Grid, want.ElectricityKWh.DirectGreen, want.ElectricityKWh.GridExport, maxDiff, maxPhysDiff)
}

// waitForPeriod waits until every meter has served a reading, picks [from, from+hours) with from
// the first whole hour at or after the latest first reading, and waits until every meter has
// served the reading at the period's end.
func (p *park) waitForPeriod(hours int, within time.Duration) (from, to time.Time) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for ; ; time.Sleep(100 * time.Millisecond) {
		done := true
		for _, m := range p.sim.Meters() {
			truth := p.sim.GroundTruth(m)
			if len(truth) == 0 {
				done = false
				break
			}
			if first := ceilHour(truth[0].Time); first.After(from) {
				from = first
			}
			if !to.IsZero() && truth[len(truth)-1].Time.Before(to) {
				done = false
			}
		}
		if done && !from.IsZero() {
			if to.IsZero() {
				to = from.Add(time.Duration(hours) * time.Hour)
				continue
			}
			return from, to
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the meters did not serve readings up to %s within %s (simulated now %s)\nagent log:\n%s",
				to, within, p.sim.SimNow(), p.agent.logTail())
		}
	}
}

// expectedIndicators applies accounting.Indicators, with the factor set the service uses, to
// what every meter really counted in [from, to) according to the simulator's ground truth: the
// register deltas × multiplier, unwrapped at the registered rollover, in the carrier's canonical
// unit. It also returns the readings in the period and the largest difference between the
// register deltas and the simulator's physical energy (a check of the ground truth itself).
func expectedIndicators(t *testing.T, sim *meters.Sim, reg []registry.Meter, from, to time.Time, loc *time.Location) (accounting.Result, int64, float64) {
	t.Helper()
	perHour := int64(time.Hour / accStep)
	hours := int64(to.Sub(from) / time.Hour)
	var flows []accounting.Flow
	var received int64
	maxPhys := 0.0
	for _, m := range reg {
		var in []meters.Sample
		for _, s := range sim.GroundTruth(m.ID) {
			if !s.Time.Before(from) && !s.Time.After(to) {
				in = append(in, s)
			}
		}
		if n := int64(len(in)); n != hours*perHour+1 || !in[0].Time.Equal(from) || !in[n-1].Time.Equal(to) {
			t.Fatalf("meter %s served %d readings in [%s, %s], want %d on the %s grid: the agent missed polls",
				m.ID, n, from, to, hours*perHour+1, accStep)
		}
		delta, wraps := 0.0, 0
		for i := 1; i < len(in); i++ {
			d := in[i].Value - in[i-1].Value
			if d < 0 {
				if m.Rollover == 0 {
					t.Fatalf("meter %s dropped from %v to %v at %s without a rollover", m.ID, in[i-1].Value, in[i].Value, in[i].Time)
				}
				d += m.Rollover
				wraps++
			}
			delta += d
		}
		if slices.Contains(wantWraps, m.ID) && wraps != 1 {
			t.Fatalf("meter %s wrapped %d times in the period, want once", m.ID, wraps)
		}
		phys, err := sim.Consumption(m.ID, from, to)
		if err != nil {
			t.Fatal(err)
		}
		// The register floors to its resolution (float32 rounds): a few hundredths at most.
		if d := math.Abs(delta - phys); d > 0.02+1e-6*phys {
			t.Fatalf("meter %s: register deltas %v, physical energy %v", m.ID, delta, phys)
		} else {
			maxPhys = max(maxPhys, d)
		}
		q, err := factors.ToCanonical(string(m.Carrier), m.Unit, delta*m.Multiplier)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(len(in) - 1) // readings in [from, to)
		received += n
		flows = append(flows, accounting.Flow{Meter: m.ID, Enterprise: m.EnterpriseID, Carrier: string(m.Carrier),
			Direction: string(m.Direction), GreenClass: string(m.GreenClass), Quantity: q,
			Expected: hours * perHour, Received: n})
	}
	fr, err := factors.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	set, err := fr.Latest("cn-zcp-2025", from)
	if err != nil {
		t.Fatal(err)
	}
	res, err := accounting.Indicators(accounting.Inputs{From: from, To: to, Location: loc, Factors: set, Flows: flows})
	if err != nil {
		t.Fatal(err)
	}
	return res, received, maxPhys
}

func fmtFloat(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
