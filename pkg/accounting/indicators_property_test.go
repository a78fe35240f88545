package accounting

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/factors"
)

// indPropertySet is cn-zcp-2025/1 with test-only factors for two process products, so the
// properties cover E_process too.
func indPropertySet(t *testing.T) factors.Set {
	t.Helper()
	r, err := factors.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	ef := func(v float64) *float64 { return &v }
	s, err := r.Publish(factors.Set{
		ID: "test-products", Version: 1, Base: "cn-zcp-2025/1", Rule: "test: cn-zcp-2025/1 with product factors",
		Method: factors.MethodPark, EffectiveFrom: "2025-01-01", ElectricityConvention: factors.ConventionEqual,
		Products: []factors.Coefficient{
			{Product: "clinker", Unit: "t", KgCO2: ef(520), Source: "test value", OperatorSupplied: []string{"kgco2"}},
			{Product: "lime", Unit: "t", KgCO2: ef(750), Source: "test value", OperatorSupplied: []string{"kgco2"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var indPropCarriers = []string{"electricity", "natural_gas", "raw_coal", "coke", "diesel", "lpg", "heat"}

type indPropCase struct {
	flows   []Flow
	ins     []Instrument
	outputs []ProcessOutput
	va      []ValueAdded
}

// indPropGenerate makes random inputs for 2026. Instruments: none, over the whole year
// (aligned), or over a year starting up to three months before or after 2026.
func indPropGenerate(rng *rand.Rand, loc *time.Location, withInstruments, aligned bool) indPropCase {
	var c indPropCase
	enterprises := []string{"", "e1", "e2", "e3"}
	for i := range 3 + rng.IntN(15) {
		carrier := indPropCarriers[rng.IntN(len(indPropCarriers))]
		f := Flow{
			Meter: fmt.Sprintf("m%d", i), Enterprise: enterprises[rng.IntN(len(enterprises))], Carrier: carrier,
			Direction: "in", Quantity: math.Round(rng.Float64() * 1e6), Expected: int64(rng.IntN(1000)),
		}
		f.Received = f.Expected - int64(rng.IntN(int(f.Expected)+1))
		f.Estimated = math.Round(f.Quantity * rng.Float64() * 0.2)
		if rng.IntN(5) == 0 {
			f.Direction = "out"
		}
		if carrier == "electricity" && rng.IntN(3) == 0 {
			f.GreenClass = "direct"
		}
		c.flows = append(c.flows, f)
	}
	year := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	if withInstruments {
		for i := range rng.IntN(5) {
			from := year
			if !aligned {
				from = year.AddDate(0, rng.IntN(7)-3, 0)
			}
			c.ins = append(c.ins, Instrument{
				ID: fmt.Sprintf("gi%d", i), Enterprise: enterprises[rng.IntN(len(enterprises))],
				Kind: []string{KindCertificate, KindGreenTrade}[rng.IntN(2)],
				MWh:  math.Round(rng.Float64() * 800), From: from, To: from.AddDate(1, 0, 0),
			})
		}
	}
	for _, e := range enterprises[1:] {
		for m := range 12 {
			if rng.IntN(3) == 0 {
				c.outputs = append(c.outputs, ProcessOutput{Enterprise: e, Month: year.AddDate(0, m, 0), Product: []string{"clinker", "lime"}[rng.IntN(2)], Tonnes: math.Round(rng.Float64() * 1000)})
			}
			// Base year 2025: March 2025 nominal, March 2026 index.
			c.va = append(c.va,
				ValueAdded{Enterprise: e, Month: year.AddDate(-1, m, 0), Nominal10kCNY: 100 + math.Round(rng.Float64()*900), RealGrowthIndex: 1, BaseYear: 2025},
				ValueAdded{Enterprise: e, Month: year.AddDate(0, m, 0), Nominal10kCNY: 1, RealGrowthIndex: 0.9 + rng.Float64()*0.3, BaseYear: 2025})
		}
	}
	return c
}

// split returns the flows of a sub-period: each flow's share of quantity, estimate and
// readings is share(i).
func (c indPropCase) split(share func(i int) float64) []Flow {
	out := make([]Flow, len(c.flows))
	for i, f := range c.flows {
		s := share(i)
		f.Quantity *= s
		f.Estimated *= s
		out[i] = f
	}
	return out
}

func indPropClose(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(a)+math.Abs(b))
}

// Splitting the period and the flows never changes the additive totals: the park's energy, CO2
// and its components, the electricity ledgers, value added. Instruments are prorated by time,
// so with instruments (covering the whole year) the flows are split in proportion to time too
// and the caps scale the same way; without instruments any split of each flow holds. (When a
// cap binds in one sub-period and not in the other, the halves book less than the whole: the
// instruments are then over-allocated in one half, which is reported.)
func TestIndicatorsSplitPeriodIsAdditive(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	set := indPropertySet(t)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	to := from.AddDate(1, 0, 0)
	rng := rand.New(rand.NewPCG(7, 2026))
	for trial := range 300 {
		withInstruments := trial%2 == 1
		c := indPropGenerate(rng, loc, withInstruments, true)
		mid := from.AddDate(0, 1+rng.IntN(11), 0)
		timeShare := float64(mid.Sub(from)) / float64(to.Sub(from))
		shares := make([]float64, len(c.flows))
		for i := range shares {
			shares[i] = rng.Float64()
			if withInstruments {
				shares[i] = timeShare
			}
		}
		run := func(a, b time.Time, flows []Flow) Result {
			t.Helper()
			res, err := Indicators(Inputs{From: a, To: b, Location: loc, Flows: flows, Instruments: c.ins, ProcessOutputs: c.outputs, ValueAdded: c.va, Factors: set})
			if err != nil {
				t.Fatalf("trial %d: %v", trial, err)
			}
			indCheckSums(t, res)
			return res
		}
		whole := run(from, to, c.flows)
		first := run(from, mid, c.split(func(i int) float64 { return shares[i] }))
		second := run(mid, to, c.split(func(i int) float64 { return 1 - shares[i] }))
		for _, f := range []struct {
			name string
			get  func(Result) *float64
		}{
			{"energy_tce_equal", func(r Result) *float64 { return r.EnergyTceEqual }},
			{"energy_tce_equivalent", func(r Result) *float64 { return r.EnergyTceEquivalent }},
			{"co2_t", func(r Result) *float64 { return r.CO2T }},
			{"fuel", func(r Result) *float64 { return r.CO2ByComponentT.Fuel }},
			{"transform", func(r Result) *float64 { return r.CO2ByComponentT.Transform }},
			{"electricity", func(r Result) *float64 { return r.CO2ByComponentT.Electricity }},
			{"heat", func(r Result) *float64 { return r.CO2ByComponentT.Heat }},
			{"process", func(r Result) *float64 { return r.CO2ByComponentT.Process }},
			{"value_added", func(r Result) *float64 { return r.ValueAdded10kCNY }},
			{"green_trade", func(r Result) *float64 { return &r.ElectricityKWh.GreenTrade }},
			{"certificate", func(r Result) *float64 { return &r.ElectricityKWh.Certificate }},
			{"direct_green", func(r Result) *float64 { return &r.ElectricityKWh.DirectGreen }},
		} {
			w, a, b := f.get(whole), f.get(first), f.get(second)
			if w == nil || a == nil || b == nil {
				t.Fatalf("trial %d: %s is null", trial, f.name)
			}
			if !indPropClose(*w, *a+*b) {
				t.Errorf("trial %d (split %s, instruments %v): %s whole %v, halves %v + %v", trial, mid.Format("2006-01"), withInstruments, f.name, *w, *a, *b)
			}
		}
		if whole.Estimate || !first.Estimate || !second.Estimate {
			t.Errorf("trial %d: estimate flags %v %v %v; only the calendar year is official", trial, whole.Estimate, first.Estimate, second.Estimate)
		}
	}
}

// CO2 is never below what the fossil inputs and the uncovered grid power emit minus what is
// sent out: instruments never turn into a credit beyond the grid power they cover.
func TestIndicatorsInstrumentsNeverCreateCredit(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	set := indPropertySet(t)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	rng := rand.New(rand.NewPCG(11, 3))
	for trial := range 300 {
		c := indPropGenerate(rng, loc, true, false)
		for i := range c.ins {
			c.ins[i].MWh *= 100 // far more than the park uses
		}
		with, err := Indicators(Inputs{From: from, To: from.AddDate(1, 0, 0), Location: loc, Flows: c.flows, Instruments: c.ins, Factors: set})
		if err != nil {
			t.Fatal(err)
		}
		blocks := with.Enterprises
		if with.ParkLevel != nil {
			blocks = append(blocks, *with.ParkLevel)
		}
		for _, b := range blocks {
			el := b.ElectricityKWh
			covered := el.GreenTrade + el.Certificate
			if net := max(0, el.Grid-el.GridExport); covered > net*(1+1e-12)+1e-9 {
				t.Fatalf("trial %d %q: instruments cover %v kWh of %v kWh net grid power", trial, b.Enterprise, covered, net)
			}
			if e := b.CO2ByComponentT.Electricity; e != nil && *e < -1e-9 && el.GridExport == 0 {
				t.Fatalf("trial %d %q: electricity CO2 %v < 0 without exports", trial, b.Enterprise, *e)
			}
		}
	}
}
