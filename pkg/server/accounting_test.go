package server

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// accMeter is a counter meter of the accounting test and its readings: value(h) at hour h of
// [day0, day0+48h], except the hours in missing (sent late, or never).
type accMeter struct {
	id, enterprise, carrier, unit, direction, green string
	multiplier, rollover                            float64
	value                                           func(h int) float64
	missing                                         map[int]bool
	quantity                                        float64 // ground truth over the 48 hours, canonical unit
}

func accMeters() []accMeter {
	return []accMeter{
		{id: "e1-elec", enterprise: "e1", carrier: "electricity", unit: "kWh", direction: "in", multiplier: 2, rollover: 10000,
			value: func(h int) float64 { return math.Mod(9800+10*float64(h), 10000) }, quantity: 48 * 10 * 2},
		{id: "e1-gas", enterprise: "e1", carrier: "natural_gas", unit: "m3", direction: "in", multiplier: 1,
			value: func(h int) float64 { return 500 + 3*float64(h) }, quantity: 48 * 3},
		{id: "e2-elec", enterprise: "e2", carrier: "electricity", unit: "kWh", direction: "in", multiplier: 1,
			value: func(h int) float64 { return 1000 + 50*float64(h) }, quantity: 48 * 50,
			missing: map[int]bool{10: true, 11: true, 12: true, 13: true, 14: true}},
		{id: "pv", carrier: "electricity", unit: "kWh", direction: "in", green: "direct", multiplier: 1,
			value: func(h int) float64 { return 5 * float64(h) }, quantity: 48 * 5},
		{id: "export", carrier: "electricity", unit: "kWh", direction: "out", multiplier: 1,
			value: func(h int) float64 { return 100 + float64(h) }, quantity: 48},
	}
}

func relEqual(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// num reads a JSON number (protojson writes doubles as numbers).
func num(t *testing.T, m map[string]any, path ...string) float64 {
	t.Helper()
	var v any = m
	for _, p := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: not an object at %q in %v", strings.Join(path, "."), p, m)
		}
		v = obj[p]
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%s = %v (%T), want a number", strings.Join(path, "."), v, v)
	}
	return f
}

// TestAccountingThroughTheServer sends meter readings through the embedded broker and the
// collector into a real InfluxDB, lets the accounting role roll them up, enters value added,
// process output and green instruments over REST, and checks the indicators against the
// engine applied to the ground-truth quantities (1e-9 relative).
func TestAccountingThroughTheServer(t *testing.T) {
	db := localsvc.SharedInfluxDBForTest(t)
	cfg := testConfig(t)
	cfg.Influx.URL, cfg.Influx.Bucket = db.URL, db.Bucket
	ts := startServer(t, cfg)
	a := testAdminToken
	ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": "acc", "name": "Accounting park"})
	for _, e := range []string{"e1", "e2"} {
		ts.must(201, "POST", "/api/v1/parks/acc/enterprises", a, map[string]any{"id": e, "name": e})
	}
	gw := ts.must(201, "POST", "/api/v1/parks/acc/gateways", a, map[string]any{"id": "accgw"})
	meters := accMeters()
	for _, m := range meters {
		body := map[string]any{"id": m.id, "enterprise_id": m.enterprise, "gateway_id": "accgw", "carrier": m.carrier, "unit": m.unit,
			"direction": m.direction, "multiplier": m.multiplier, "rollover": m.rollover, "interval_seconds": 3600}
		if m.green != "" {
			body["green_class"] = m.green
		}
		ts.must(201, "POST", "/api/v1/parks/acc/meters", a, body)
	}
	c, err := dialGateway(t, ts.MQTTAddr(), "accgw", gw["password"].(string))
	if err != nil {
		t.Fatal(err)
	}
	day0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	seq := uint64(0)
	publish := func(late bool) {
		seq++
		b := telemetry.Batch{Gateway: "accgw", Seq: seq}
		for _, m := range meters {
			for h := 0; h <= 48; h++ {
				if m.missing[h] == late {
					b.Readings = append(b.Readings, telemetry.Reading{Meter: m.id, TS: day0.Add(time.Duration(h) * time.Hour), Value: m.value(h)})
				}
			}
		}
		payload, err := telemetry.EncodeJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		if tok := c.Publish(telemetry.ReadingsTopic("acc", "accgw"), 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	publish(false)

	// Inputs: value added for both enterprises (one by PUT, one by CSV), process output.
	ts.must(200, "PUT", "/api/v1/parks/acc/enterprises/e1/value-added/2026-11", a,
		map[string]any{"nominal_10k_cny": 3000, "real_growth_index": 1.0, "base_year": 2026})
	ts.must(200, "POST", "/api/v1/parks/acc/value-added", a,
		csvBody("enterprise_id,month,nominal_10k_cny,real_growth_index,base_year\ne2,2026-11,1500,1.0,2026\n"))
	ts.must(200, "PUT", "/api/v1/parks/acc/enterprises/e2/process-output/2026-11", a, map[string]any{"product": "clinker", "tonnes": 30})

	// Wait until the rollups hold every reading.
	const period = "from=2026-11-20&to=2026-11-22"
	var got map[string]any
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, out, _ := ts.do("GET", "/api/v1/parks/acc/indicators?"+period, a, nil)
		if code == 200 {
			if e, ok := out["electricity_kwh"].(map[string]any); ok && e["grid"] == 48*10*2.0+48*50 && e["direct_green"] == 240.0 {
				got = out
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollups did not catch up: %d %v", code, out)
		}
	}

	// Clinker has no process factor in the shipped rule: the response names the missing
	// coefficient and leaves the CO2 that needs it null, never zero.
	if miss := fmt.Sprint(got["missing_coefficients"]); !strings.Contains(miss, "clinker.kgco2") {
		t.Fatalf("missing coefficient not named: %v", miss)
	}
	if v, ok := got["co2_t"]; ok {
		t.Fatalf("co2_t = %v with a missing coefficient, want null", v)
	}
	// The operator publishes the park's clinker factor as version 2 of the rule.
	v2 := factors.Set{ID: "cn-zcp-2025", Version: 2, Base: "cn-zcp-2025/1", EffectiveFrom: "2025-01-01", Rule: "cn-zcp-2025 with the park's clinker factor",
		Method: factors.MethodPark, ElectricityConvention: factors.ConventionEqual,
		Products: []factors.Coefficient{{Product: "clinker", Unit: "t", KgCO2: ptr(538.0), Source: "plant measurement 2026 (operator-supplied)", OperatorSupplied: []string{"kgco2"}}}}
	ts.must(201, "POST", "/api/v1/factor-sets", a, map[string]any{"id": v2.ID, "version": v2.Version, "base": v2.Base, "effective_from": v2.EffectiveFrom,
		"rule": v2.Rule, "method": "park", "electricity_convention": "equal",
		"products": []map[string]any{{"product": "clinker", "unit": "t", "kgco2": 538.0, "source": v2.Products[0].Source, "operator_supplied": []string{"kgco2"}}}})

	// Green instruments need the metered electricity they cover.
	ts.must(201, "POST", "/api/v1/parks/acc/green-instruments", a, map[string]any{"id": "trade1", "enterprise_id": "e1",
		"kind": "green_trade", "mwh": 0.5, "from": "2026-11-20", "to": "2026-11-22"})
	ts.must(201, "POST", "/api/v1/parks/acc/green-instruments", a, map[string]any{"id": "gec1", "enterprise_id": "e2",
		"kind": "certificate", "mwh": 1, "from": "2026-11-20", "to": "2026-11-22", "serials": []string{"GEC2026000001"}})
	over := ts.must(409, "POST", "/api/v1/parks/acc/green-instruments", a, map[string]any{"id": "trade2", "enterprise_id": "e1",
		"kind": "green_trade", "mwh": 0.5, "from": "2026-11-20", "to": "2026-11-22"})
	if !strings.Contains(fmt.Sprint(over["detail"]), "more than the grid electricity") {
		t.Fatalf("over-allocation refused without saying why: %v", over)
	}
	dup := ts.must(409, "POST", "/api/v1/parks/acc/green-instruments", a, map[string]any{"id": "gec2", "enterprise_id": "e2",
		"kind": "certificate", "mwh": 1, "from": "2026-11-20", "to": "2026-11-22", "serials": []string{"GEC2026000001..GEC2026000001"}})
	if !strings.Contains(fmt.Sprint(dup["detail"]), "GEC2026000001") {
		t.Fatalf("overlapping serial refused without naming it: %v", dup)
	}
	got = ts.must(200, "GET", "/api/v1/parks/acc/indicators?"+period, a, nil)
	if testing.Verbose() { // the worked example of the README and the closing note
		example, _ := json.MarshalIndent(got, "", "  ")
		t.Logf("GET /api/v1/parks/acc/indicators?%s\n%s", period, example)
	}

	// The engine applied to the ground truth is the expected result.
	set, err := factors.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	cn, err := set.Publish(v2)
	if err != nil {
		t.Fatal(err)
	}
	in := accounting.Inputs{From: day0, To: day0.Add(48 * time.Hour), Location: mustLoc(t, "Asia/Shanghai"), Factors: cn,
		ValueAdded: []accounting.ValueAdded{
			{Enterprise: "e1", Month: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Nominal10kCNY: 3000, RealGrowthIndex: 1, BaseYear: 2026},
			{Enterprise: "e2", Month: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Nominal10kCNY: 1500, RealGrowthIndex: 1, BaseYear: 2026},
		},
		ProcessOutputs: []accounting.ProcessOutput{{Enterprise: "e2", Month: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Product: "clinker", Tonnes: 30}},
		Instruments: []accounting.Instrument{
			{ID: "gec1", Enterprise: "e2", Kind: accounting.KindCertificate, MWh: 1, From: day0, To: day0.Add(48 * time.Hour), Serials: []string{"GEC2026000001"}},
			{ID: "trade1", Enterprise: "e1", Kind: accounting.KindGreenTrade, MWh: 0.5, From: day0, To: day0.Add(48 * time.Hour)},
		},
	}
	for _, m := range meters {
		f := accounting.Flow{Meter: m.id, Enterprise: m.enterprise, Carrier: m.carrier, Direction: m.direction, GreenClass: m.green,
			Quantity: m.quantity, Expected: 48, Received: 48 - int64(len(m.missing))}
		if m.id == "e2-elec" {
			f.Estimated = 6 * 50 // readings 9 and 15 are 6 hours apart: spread and estimated
		}
		in.Flows = append(in.Flows, f)
	}
	want, err := accounting.Indicators(in)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got float64, want *float64) {
		t.Helper()
		if want == nil || !relEqual(got, *want) {
			t.Errorf("%s = %v, want %v", name, got, fmtPtr(want))
		}
	}
	check("energy_tce_equal", num(t, got, "energy_tce_equal"), want.EnergyTceEqual)
	check("energy_tce_equivalent", num(t, got, "energy_tce_equivalent"), want.EnergyTceEquivalent)
	check("co2_t", num(t, got, "co2_t"), want.CO2T)
	check("co2_per_tce", num(t, got, "co2_per_tce"), want.CO2PerTce)
	check("co2_per_10k_cny_va", num(t, got, "co2_per_10k_cny_va"), want.CO2Per10kCNYVA)
	check("value_added_10k_cny", num(t, got, "value_added_10k_cny"), want.ValueAdded10kCNY)
	check("clean_energy_share", num(t, got, "clean_energy_share"), want.CleanEnergyShare)
	check("completeness", num(t, got, "completeness"), want.Completeness)
	check("estimated_share", num(t, got, "estimated_share"), want.EstimatedShare)
	check("co2 process", num(t, got, "co2_by_component_t", "process"), want.CO2ByComponentT.Process)
	check("certificate kWh", num(t, got, "electricity_kwh", "certificate"), &want.ElectricityKWh.Certificate)
	check("green_trade kWh", num(t, got, "electricity_kwh", "green_trade"), &want.ElectricityKWh.GreenTrade)
	check("grid_export kWh", num(t, got, "electricity_kwh", "grid_export"), &want.ElectricityKWh.GridExport)
	// One figure by hand: natural gas 144 m3 at 2.1622 kgCO2/m3.
	if g := num(t, got, "co2_by_carrier_t", "natural_gas"); !relEqual(g, 144*2.1622/1000) {
		t.Errorf("natural gas CO2 %v t, want %v", g, 144*2.1622/1000)
	}
	if got["estimate"] != true || len(got["enterprises"].([]any)) != 2 {
		t.Errorf("estimate %v, enterprises %v", got["estimate"], got["enterprises"])
	}
	if fs := got["factor_set"].(map[string]any); fs["id"] != "cn-zcp-2025" || fs["version"] != 2.0 {
		t.Errorf("factor_set %v", fs)
	}

	// A chart series sums to the same energy.
	series := ts.must(200, "GET", "/api/v1/parks/acc/series?metric=energy_tce&step=1h&"+period, a, nil)
	pts := series["points"].([]any)
	sum := 0.0
	for _, p := range pts {
		sum += p.(map[string]any)["value"].(float64)
	}
	wantTce := 0.0
	for _, m := range meters {
		k := 0.3 // electricity at equal value
		if m.carrier == "natural_gas" {
			k = 1.2143
		}
		if m.direction == "out" {
			k = -k
		}
		wantTce += m.quantity * k / 1000
	}
	if len(pts) != 48 || !relEqual(sum, wantTce) {
		t.Errorf("series: %d points summing to %v tce, want 48 summing to %v", len(pts), sum, wantTce)
	}

	// Late readings fill the gap: the totals stay, the estimate goes.
	publish(true)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out := ts.must(200, "GET", "/api/v1/parks/acc/indicators?"+period, a, nil)
		if es, ok := out["estimated_share"].(float64); ok && es == 0 {
			check("energy after backfill", num(t, out, "energy_tce_equal"), want.EnergyTceEqual)
			if c := num(t, out, "completeness"); c != 1 {
				t.Errorf("completeness after backfill %v, want 1", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("late readings not rolled up: %v", out)
		}
	}

	// An enterprise sees its own block only.
	tok := ts.must(201, "POST", "/api/v1/tokens", a, map[string]any{"role": "enterprise", "park_ids": []string{"acc"}, "enterprise_id": "e1"})["token"].(string)
	own := ts.must(200, "GET", "/api/v1/parks/acc/indicators?enterprise=e1&"+period, tok, nil)
	if ents := own["enterprises"].([]any); len(ents) != 1 || ents[0].(map[string]any)["enterprise_id"] != "e1" || len(own["thresholds"].([]any)) != 0 {
		t.Errorf("enterprise view: %v", own)
	}
	ts.must(403, "GET", "/api/v1/parks/acc/indicators?"+period, tok, nil)
	ts.must(403, "GET", "/api/v1/parks/acc/indicators?enterprise=e2&"+period, tok, nil)
	ts.must(403, "PUT", "/api/v1/parks/acc/enterprises/e1/value-added/2026-11", tok, map[string]any{"nominal_10k_cny": 1, "real_growth_index": 1, "base_year": 2026})
}

func ptr(v float64) *float64 { return &v }

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// TestAccountingInputsRefused covers bad input: each is refused with the field named, and
// nothing is stored.
func TestAccountingInputsRefused(t *testing.T) {
	db := localsvc.SharedInfluxDBForTest(t)
	cfg := testConfig(t)
	cfg.Influx.URL, cfg.Influx.Bucket = db.URL, db.Bucket
	ts := startServer(t, cfg)
	a := testAdminToken
	ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": "p", "name": "P"})
	ts.must(201, "POST", "/api/v1/parks/p/enterprises", a, map[string]any{"id": "e", "name": "E"})
	va := func(nominal, growth float64, base int) map[string]any {
		return map[string]any{"nominal_10k_cny": nominal, "real_growth_index": growth, "base_year": base}
	}
	for _, c := range []struct {
		name, method, path string
		body               any
		code               int
		field              string
	}{
		{"future month", "PUT", "/api/v1/parks/p/enterprises/e/value-added/2099-01", va(1, 1, 2099), 400, "month"},
		{"not a month", "PUT", "/api/v1/parks/p/enterprises/e/value-added/2026-13", va(1, 1, 2026), 400, "month"},
		{"negative amount", "PUT", "/api/v1/parks/p/enterprises/e/value-added/2026-01", va(-1, 1, 2026), 400, "nominal_10k_cny"},
		{"zero growth index", "PUT", "/api/v1/parks/p/enterprises/e/value-added/2026-01", va(1, 0, 2026), 400, "real_growth_index"},
		{"base year after month", "PUT", "/api/v1/parks/p/enterprises/e/value-added/2026-01", va(1, 1, 2027), 400, "base_year"},
		{"unknown enterprise", "PUT", "/api/v1/parks/p/enterprises/nope/value-added/2026-01", va(1, 1, 2026), 404, ""},
		{"unknown field", "PUT", "/api/v1/parks/p/enterprises/e/value-added/2026-01", map[string]any{"nominal": 1}, 400, "nominal"},
		{"month differs from path", "PUT", "/api/v1/parks/p/enterprises/e/value-added/2026-01",
			map[string]any{"month": "2026-02", "nominal_10k_cny": 1, "real_growth_index": 1, "base_year": 2026}, 400, "month"},
		{"csv bad row", "POST", "/api/v1/parks/p/value-added",
			csvBody("enterprise_id,month,nominal_10k_cny,real_growth_index,base_year\ne,2026-01,1,1,2026\ne,2026-02,x,1,2026\n"), 400, "csv"},
		{"csv as json", "POST", "/api/v1/parks/p/value-added", map[string]any{}, 400, "body"},
		{"unknown product", "PUT", "/api/v1/parks/p/enterprises/e/process-output/2026-01", map[string]any{"product": "unobtainium", "tonnes": 1}, 400, "product"},
		{"negative tonnes", "PUT", "/api/v1/parks/p/enterprises/e/process-output/2026-01", map[string]any{"product": "clinker", "tonnes": -1}, 400, "tonnes"},
		{"instrument kind", "POST", "/api/v1/parks/p/green-instruments", map[string]any{"id": "i", "kind": "coupon", "mwh": 1, "from": "2026-01-01", "to": "2026-02-01"}, 400, "kind"},
		{"instrument negative", "POST", "/api/v1/parks/p/green-instruments", map[string]any{"id": "i", "kind": "green_trade", "mwh": -1, "from": "2026-01-01", "to": "2026-02-01"}, 400, "mwh"},
		{"instrument empty period", "POST", "/api/v1/parks/p/green-instruments", map[string]any{"id": "i", "kind": "green_trade", "mwh": 1, "from": "2026-02-01", "to": "2026-01-01"}, 400, "to"},
		{"instrument bad serial", "POST", "/api/v1/parks/p/green-instruments", map[string]any{"id": "i", "kind": "certificate", "mwh": 1, "from": "2026-01-01", "to": "2026-02-01", "serials": []string{"A9..B1"}}, 400, "serials"},
		{"serial count", "POST", "/api/v1/parks/p/green-instruments", map[string]any{"id": "i", "kind": "certificate", "mwh": 3, "from": "2026-01-01", "to": "2026-02-01", "serials": []string{"G01..G02"}}, 400, "serials"},
		{"nothing to cover", "POST", "/api/v1/parks/p/green-instruments", map[string]any{"id": "i", "kind": "green_trade", "mwh": 1, "from": "2026-01-01", "to": "2026-02-01"}, 409, ""},
		{"series metric", "GET", "/api/v1/parks/p/series?metric=money&step=1h&from=2026-01-01&to=2026-01-02", nil, 400, "metric"},
		{"series step", "GET", "/api/v1/parks/p/series?metric=co2&step=1w&from=2026-01-01&to=2026-01-02", nil, 400, "step"},
		{"indicators rule", "GET", "/api/v1/parks/p/indicators?from=2026-01-01&to=2026-01-02&rule=nope", nil, 400, "rule"},
		{"indicators range", "GET", "/api/v1/parks/p/indicators?from=2026-01-02&to=2026-01-01", nil, 400, "from"},
		{"factor set unknown", "GET", "/api/v1/factor-sets/nope", nil, 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := ts.do(c.method, c.path, a, c.body)
			if code != c.code {
				t.Fatalf("status %d, want %d: %v", code, c.code, out)
			}
			if c.field != "" && !strings.Contains(fmt.Sprint(out), c.field) {
				t.Fatalf("problem does not name %q: %v", c.field, out)
			}
		})
	}
	if out := ts.must(200, "GET", "/api/v1/parks/p/value-added", a, nil); len(out["value_added"].([]any)) != 0 {
		t.Fatalf("refused input was stored: %v", out)
	}
	if out := ts.must(200, "GET", "/api/v1/parks/p/green-instruments", a, nil); out["instruments"] != nil && len(out["instruments"].([]any)) != 0 {
		t.Fatalf("refused instrument was stored: %v", out)
	}
}

// TestFactorSetsAPI reads the shipped rule and publishes a new version of it.
func TestFactorSetsAPI(t *testing.T) {
	ts := startServer(t, testConfig(t))
	a := testAdminToken
	ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": "p", "name": "P"})
	op := ts.must(201, "POST", "/api/v1/tokens", a, map[string]any{"role": "operator", "park_ids": []string{"p"}})["token"].(string)
	set := ts.must(200, "GET", "/api/v1/factor-sets/cn-zcp-2025", op, nil)
	if set["id"] != "cn-zcp-2025" || set["version"] != 1.0 || set["effective_from"] != "2025-01-01" || set["rule"] == "" {
		t.Fatalf("factor set: %v", set)
	}
	var elec map[string]any
	for _, c := range set["carriers"].([]any) {
		if row := c.(map[string]any); row["carrier"] == "electricity" {
			elec = row
		}
	}
	if elec == nil || elec["unit"] != "kWh" || elec["kgco2"] != 0.8325 || elec["kgce_equivalent"] != 0.1229 || elec["kgce_equal"] != 0.3 || elec["source"] == "" {
		t.Fatalf("electricity row: %v", elec)
	}
	all := ts.must(200, "GET", "/api/v1/factor-sets", op, nil)
	if n := len(all["factor_sets"].([]any)); n < 5 {
		t.Fatalf("%d factor sets listed", n)
	}
	v2 := map[string]any{"id": "cn-zcp-2025", "version": 2, "base": "cn-zcp-2025/1", "effective_from": "2026-01-01",
		"rule": "cn-zcp-2025 with the 2026 equal-value coefficient", "method": "park", "electricity_convention": "equal",
		"carriers": []map[string]any{{"carrier": "electricity", "unit": "kWh", "kgce_equivalent": 0.1229, "kgce_equal": 0.2950,
			"kgco2": 0.8325, "kgco2_green": 0, "source": "2026 thermal power supply coal consumption", "operator_supplied": []string{"kgce_equal"}}}}
	ts.must(403, "POST", "/api/v1/factor-sets", op, v2)
	ts.must(201, "POST", "/api/v1/factor-sets", a, v2)
	got := ts.must(200, "GET", "/api/v1/factor-sets/cn-zcp-2025", op, nil)
	if got["version"] != 2.0 {
		t.Fatalf("latest after publishing: %v", got["version"])
	}
	v2["carriers"].([]map[string]any)[0]["kgce_equal"] = 0.2960
	ts.must(409, "POST", "/api/v1/factor-sets", a, v2) // an issued version never changes
	if v1 := ts.must(200, "GET", "/api/v1/factor-sets/cn-zcp-2025?version=1", op, nil); v1["version"] != 1.0 {
		t.Fatalf("version 1: %v", v1)
	}
	// A restart keeps the published version.
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	ts2 := startServer(t, ts.cfg)
	// The rollups of the accounting role use it from the start, before any API call.
	if _, err := ts2.Factors.Get("cn-zcp-2025", 2); err != nil {
		t.Fatalf("published version not loaded at start: %v", err)
	}
	if got := ts2.must(200, "GET", "/api/v1/factor-sets/cn-zcp-2025", a, nil); got["version"] != 2.0 {
		t.Fatalf("after restart, latest is version %v", got["version"])
	}
}
