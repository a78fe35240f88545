package accounting

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Errors of the indicator computation. They wrap the registry's sentinels, which the API's one
// error table already maps.
var (
	// ErrInvalidInput: a flow, instrument, output or value-added record breaks a rule.
	ErrInvalidInput = fmt.Errorf("invalid accounting input: %w", registry.ErrInvalid)
	// ErrMissingValueAdded: a link of the constant-price chain of value added is missing.
	ErrMissingValueAdded = fmt.Errorf("missing value added: %w", registry.ErrConflict)
)

// Flow is one meter's consumption over the period, already in the carrier's canonical unit
// (factors.CanonicalUnit).
type Flow struct {
	Meter      string `json:"meter"`
	Enterprise string `json:"enterprise_id,omitempty"` // empty: park level
	Carrier    string `json:"carrier"`
	Direction  string `json:"direction"`             // "in" or "out" of the park boundary
	GreenClass string `json:"green_class,omitempty"` // "none" (or empty) or "direct" (electricity only)
	// Quantity is in the canonical unit, >= 0; Estimated is the part of it that is estimated.
	Quantity  float64 `json:"quantity"`
	Estimated float64 `json:"estimated"`
	// Expected and Received count readings, for completeness.
	Expected int64 `json:"expected"`
	Received int64 `json:"received"`
}

// ProcessOutput is one month's output of a process product (reference §3 E_process).
type ProcessOutput struct {
	Enterprise string    `json:"enterprise_id,omitempty"`
	Month      time.Time `json:"month"` // its calendar year and month as written, any zone
	Product    string    `json:"product"`
	Tonnes     float64   `json:"tonnes"`
}

// Inputs is everything Indicators needs for one park and one period [From, To).
type Inputs struct {
	From, To time.Time
	// Location is the park's time zone: calendar months and years are counted in it.
	Location       *time.Location
	Flows          []Flow
	Instruments    []Instrument
	ProcessOutputs []ProcessOutput
	ValueAdded     []ValueAdded
	Factors        factors.Set
}

// Result is the park's accounts for a period; JSON names are the API contract. A null number
// is a value that cannot be computed: a coefficient is missing (MissingCoefficients), or the
// denominator is zero or absent.
type Result struct {
	From      time.Time    `json:"from"`
	To        time.Time    `json:"to"`
	FactorSet FactorSetRef `json:"factor_set"`
	// Estimate is true unless [From, To) is exactly one calendar year in the park's zone.
	Estimate bool `json:"estimate"`
	Block
	// AnnualEnergyTceEqual sizes the park for the thresholds: energy at equal value, annualised
	// by days when the period is not a calendar year.
	AnnualEnergyTceEqual *float64               `json:"annual_energy_tce_equal"`
	Thresholds           []Threshold            `json:"thresholds"`
	Instruments          []InstrumentAllocation `json:"instruments"`
	// OperatorSupplied lists the operator-supplied coefficients ([U] in the reference) the
	// result uses.
	OperatorSupplied []OperatorValue `json:"operator_supplied"`
	Notes            []string        `json:"notes"`
	// ParkLevel holds the flows, outputs and instruments of no enterprise; with Enterprises it
	// sums to the park.
	ParkLevel   *Block  `json:"park_level,omitempty"`
	Enterprises []Block `json:"enterprises"`
}

// FactorSetRef names the factor set version a result was computed with.
type FactorSetRef struct {
	ID                    string `json:"id"`
	Version               int    `json:"version"`
	Method                string `json:"method"`
	ElectricityConvention string `json:"electricity_convention"`
}

// OperatorValue is an operator-supplied coefficient a result uses.
type OperatorValue struct {
	Coefficient string  `json:"coefficient"` // "electricity.kgce_equal"
	Value       float64 `json:"value"`
	Source      string  `json:"source"`
}

// Block is the accounts of the park, of one enterprise, or of the park-level meters.
type Block struct {
	Enterprise string `json:"enterprise_id,omitempty"`
	// Energy in tce, inflows minus outflows; electricity at equal value (the park indicator,
	// reference §2) or at the equivalent value 0.1229 kgce/kWh.
	EnergyTceEqual      *float64 `json:"energy_tce_equal"`
	EnergyTceEquivalent *float64 `json:"energy_tce_equivalent"`
	// CO2 in t by the park method (§3): fuel + transform + electricity + heat + process.
	CO2T            *float64            `json:"co2_t"`
	CO2ByComponentT Components          `json:"co2_by_component_t"`
	CO2ByCarrierT   map[string]*float64 `json:"co2_by_carrier_t"`
	CO2ByProductT   map[string]*float64 `json:"co2_by_product_t"`
	// CO2PerTce is CO2 over energy at the set's electricity convention (equal value for the park
	// rule): the national core indicator 单位能耗碳排放.
	CO2PerTce *float64 `json:"co2_per_tce"`
	// ValueAdded10kCNY is industrial value added at constant prices of the base year (§6).
	ValueAdded10kCNY *float64 `json:"value_added_10k_cny"`
	CO2Per10kCNYVA   *float64 `json:"co2_per_10k_cny_va"`
	// Shares of all energy in tce (§7.2): clean counts natural gas, non-fossil does not.
	CleanEnergyShare *float64       `json:"clean_energy_share"`
	NonFossilShare   *float64       `json:"non_fossil_share"`
	ElectricityKWh   ElectricityKWh `json:"electricity_kwh"`
	// DirectGreenShare is net direct green supply over net electricity consumption.
	DirectGreenShare *float64 `json:"direct_green_share"`
	// Completeness is readings received over readings expected.
	Completeness *float64 `json:"completeness"`
	// EstimatedShare is estimated energy over metered energy, in tce, both directions.
	EstimatedShare      *float64 `json:"estimated_share"`
	MissingCoefficients []string `json:"missing_coefficients"`
}

// Components splits CO2 as attachment 4 does (reference §3), in t. Transform is minus the CO2 of
// fuel sent out of the park; electricity and heat are net of exports.
type Components struct {
	Fuel        *float64 `json:"fuel"`
	Transform   *float64 `json:"transform"`
	Electricity *float64 `json:"electricity"`
	Heat        *float64 `json:"heat"`
	Process     *float64 `json:"process"`
}

// ElectricityKWh keeps the three green ledgers apart (reference §7.3). GreenTrade and
// Certificate are grid electricity covered by instruments, as booked (capped, prorated).
type ElectricityKWh struct {
	Grid              float64 `json:"grid"`
	GridExport        float64 `json:"grid_export"`
	DirectGreen       float64 `json:"direct_green"`
	DirectGreenExport float64 `json:"direct_green_export"`
	GreenTrade        float64 `json:"green_trade"`
	Certificate       float64 `json:"certificate"`
}

const (
	indIn  = string(registry.In)
	indOut = string(registry.Out)
)

// indBlock accumulates one block's quantities before coefficients are applied.
type indBlock struct {
	in, out            map[string]float64 // by carrier, canonical unit
	estimated          map[string]float64 // by carrier, both directions
	elec               ElectricityKWh
	expected, received int64
	process            map[string]float64 // tonnes by product
	va                 *float64
}

func newIndBlock() *indBlock {
	return &indBlock{in: map[string]float64{}, out: map[string]float64{}, estimated: map[string]float64{}, process: map[string]float64{}}
}

func (b *indBlock) addFlow(f Flow) {
	if f.Direction == indIn {
		b.in[f.Carrier] += f.Quantity
	} else {
		b.out[f.Carrier] += f.Quantity
	}
	b.estimated[f.Carrier] += f.Estimated
	b.expected += f.Expected
	b.received += min(f.Received, f.Expected)
	if f.Carrier == string(registry.Electricity) {
		direct := f.GreenClass == string(registry.GreenDirect)
		switch {
		case f.Direction == indIn && direct:
			b.elec.DirectGreen += f.Quantity
		case f.Direction == indIn:
			b.elec.Grid += f.Quantity
		case direct:
			b.elec.DirectGreenExport += f.Quantity
		default:
			b.elec.GridExport += f.Quantity
		}
	}
}

// merge adds o into b.
func (b *indBlock) merge(o *indBlock) {
	for _, p := range []struct{ dst, src map[string]float64 }{{b.in, o.in}, {b.out, o.out}, {b.estimated, o.estimated}, {b.process, o.process}} {
		for k, v := range p.src {
			p.dst[k] += v
		}
	}
	b.elec.Grid += o.elec.Grid
	b.elec.GridExport += o.elec.GridExport
	b.elec.DirectGreen += o.elec.DirectGreen
	b.elec.DirectGreenExport += o.elec.DirectGreenExport
	b.elec.GreenTrade += o.elec.GreenTrade
	b.elec.Certificate += o.elec.Certificate
	b.expected += o.expected
	b.received += o.received
	if o.va != nil {
		v := *o.va
		if b.va != nil {
			v += *b.va
		}
		b.va = &v
	}
}

// Indicators computes the park's accounts for [in.From, in.To).
func Indicators(in Inputs) (Result, error) {
	if err := in.validate(); err != nil {
		return Result{}, err
	}
	blocks := map[string]*indBlock{}
	block := func(e string) *indBlock {
		if blocks[e] == nil {
			blocks[e] = newIndBlock()
		}
		return blocks[e]
	}
	for _, f := range in.Flows {
		block(f.Enterprise).addFlow(f)
	}
	for _, p := range in.ProcessOutputs {
		if share := indMonthShare(p.Month, in.From, in.To, in.Location); share > 0 {
			block(p.Enterprise).process[p.Product] += p.Tonnes * share
		}
	}
	va, err := valueAddedByEnterprise(in, slices.Collect(maps.Keys(blocks)))
	if err != nil {
		return Result{}, err
	}
	for e, v := range va {
		block(e).va = &v
	}
	allocs, err := allocateInstruments(in.Instruments, in.From, in.To, blocks)
	if err != nil {
		return Result{}, err
	}

	park := newIndBlock()
	for _, b := range blocks {
		park.merge(b)
	}
	ev := newIndEval(in.Factors)
	res := Result{
		From: in.From, To: in.To,
		FactorSet: FactorSetRef{
			ID: in.Factors.ID, Version: in.Factors.Version,
			Method: string(in.Factors.Method), ElectricityConvention: string(in.Factors.ElectricityConvention),
		},
		Estimate:    !indIsCalendarYear(in.From, in.To, in.Location),
		Block:       ev.block(park),
		Instruments: allocs,
		Enterprises: []Block{},
	}
	for _, e := range slices.Sorted(maps.Keys(blocks)) {
		b := newIndEval(in.Factors).block(blocks[e])
		b.Enterprise = e
		if e == "" {
			res.ParkLevel = &b
		} else {
			res.Enterprises = append(res.Enterprises, b)
		}
	}
	res.OperatorSupplied = ev.operatorValues()
	if res.EnergyTceEqual != nil {
		annual := *res.EnergyTceEqual
		if res.Estimate {
			annual *= indYearDays(in.From, in.Location) / (in.To.Sub(in.From).Hours() / 24)
		}
		res.AnnualEnergyTceEqual = &annual
	}
	res.Thresholds = assessThresholds(thresholdInputs{
		annualTce:   res.AnnualEnergyTceEqual,
		co2PerTce:   res.CO2PerTce,
		clean:       res.CleanEnergyShare,
		direct:      res.DirectGreenShare,
		estimate:    res.Estimate,
		co2Assess:   co2Assessable(in.Factors),
		shareAssess: shareAssessable(in.Factors),
	})
	res.Notes = indNotes(in, res, len(va) > 0)
	return res, nil
}

func indNotes(in Inputs, res Result, haveVA bool) []string {
	ns := []string{}
	if res.Estimate {
		ns = append(ns, fmt.Sprintf("estimate: %s to %s is not one calendar year in %s; official results are annual (reference §7.5)",
			in.From.In(in.Location).Format(time.DateTime), in.To.In(in.Location).Format(time.DateTime), in.Location))
	}
	if len(res.MissingCoefficients) > 0 {
		ns = append(ns, "missing coefficients "+strings.Join(res.MissingCoefficients, ", ")+" in factor set "+in.Factors.Ref()+": the totals that need them are null; publish a version that gives them")
	}
	for _, o := range res.OperatorSupplied {
		ns = append(ns, fmt.Sprintf("uses the operator-supplied value %s = %v, not a published one (source under operator_supplied)", o.Coefficient, o.Value))
	}
	if !in.Factors.Method.InstrumentsApply() && len(res.Instruments) > 0 {
		ns = append(ns, "method "+string(in.Factors.Method)+": green trades and certificates are kept in their ledgers and count as non-fossil energy, but their electricity is booked at the grid factor")
	}
	var over float64
	for _, a := range res.Instruments {
		over += a.OverAllocatedMWh
	}
	if over > 0 {
		ns = append(ns, fmt.Sprintf("green instruments exceed the grid electricity they can cover by %.6g MWh: reported, not booked", over))
	}
	if !haveVA {
		ns = append(ns, "no value added given: co2_per_10k_cny_va is not computed")
	}
	return ns
}

func (in Inputs) validate() error {
	if in.Location == nil {
		return fmt.Errorf("%w: location is required (the park's time zone, e.g. Asia/Shanghai)", ErrInvalidInput)
	}
	if !in.From.Before(in.To) {
		return fmt.Errorf("%w: from %s is not before to %s", ErrInvalidInput, in.From, in.To)
	}
	if err := factors.Validate(in.Factors); err != nil {
		return fmt.Errorf("factor set %s: %w", in.Factors.Ref(), err)
	}
	for i, f := range in.Flows {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: flow %d (meter %q): %s", ErrInvalidInput, i, f.Meter, fmt.Sprintf(format, args...))
		}
		if _, err := factors.CanonicalUnit(f.Carrier); err != nil {
			return bad("carrier %q is not known", f.Carrier)
		}
		if f.Direction != indIn && f.Direction != indOut {
			return bad("direction %q is not in or out", f.Direction)
		}
		switch f.GreenClass {
		case "", string(registry.GreenNone):
		case string(registry.GreenDirect):
			if f.Carrier != string(registry.Electricity) {
				return bad("green_class direct applies to electricity only")
			}
		default:
			return bad("green_class %q is not none or direct", f.GreenClass)
		}
		if !indFinite(f.Quantity) || f.Quantity < 0 {
			return bad("quantity %v is not a finite number >= 0", f.Quantity)
		}
		if !indFinite(f.Estimated) || f.Estimated < 0 || f.Estimated > f.Quantity {
			return bad("estimated %v is not between 0 and the quantity %v", f.Estimated, f.Quantity)
		}
		if f.Expected < 0 || f.Received < 0 {
			return bad("reading counts are negative")
		}
	}
	type outKey struct {
		enterprise, product string
		year                int
		month               time.Month
	}
	seen := map[outKey]bool{}
	for i, p := range in.ProcessOutputs {
		if err := registry.CheckID("product", p.Product); err != nil {
			return fmt.Errorf("%w: process output %d: %w", ErrInvalidInput, i, err)
		}
		if !indFinite(p.Tonnes) || p.Tonnes < 0 {
			return fmt.Errorf("%w: process output %d (%s): tonnes %v is not a finite number >= 0", ErrInvalidInput, i, p.Product, p.Tonnes)
		}
		k := outKey{p.Enterprise, p.Product, p.Month.Year(), p.Month.Month()}
		if seen[k] {
			return fmt.Errorf("%w: process output of %s for enterprise %q in %s given twice", ErrInvalidInput, p.Product, p.Enterprise, p.Month.Format("2006-01"))
		}
		seen[k] = true
	}
	return nil
}

// indEval applies a factor set to blocks, collecting the coefficients it lacks and the
// operator-supplied ones it uses.
type indEval struct {
	set      factors.Set
	conv     factors.Field // the kgce field of the set's electricity convention
	missing  map[string]bool
	operator map[string]OperatorValue
}

func newIndEval(s factors.Set) *indEval {
	conv := factors.KgceEqual
	if s.ElectricityConvention == factors.ConventionEquivalent {
		conv = factors.KgceEquivalent
	}
	return &indEval{set: s, conv: conv, missing: map[string]bool{}, operator: map[string]OperatorValue{}}
}

// coef returns one coefficient of a carrier (or product, when product is set); ok false when
// the set lacks it, which is recorded.
func (e *indEval) coef(name string, product bool, f factors.Field) (float64, bool) {
	var row factors.Coefficient
	if product {
		row, _ = e.set.Product(name) // a missing row comes back empty: Value names the field
	} else {
		row, _ = e.set.Carrier(name)
	}
	v, err := row.Value(f)
	if err != nil {
		var me *factors.MissingError
		if errors.As(err, &me) {
			for _, n := range me.Coefficients {
				e.missing[n] = true
			}
		}
		return 0, false
	}
	if row.IsOperatorSupplied(f) {
		n := name + "." + string(f)
		e.operator[n] = OperatorValue{Coefficient: n, Value: v, Source: row.Source}
	}
	return v, true
}

func (e *indEval) operatorValues() []OperatorValue {
	out := []OperatorValue{}
	for _, k := range slices.Sorted(maps.Keys(e.operator)) {
		out = append(out, e.operator[k])
	}
	return out
}

// indSum is a total that becomes null once one of its terms is unknown.
type indSum struct {
	v  float64
	ok bool
}

func indKnown() indSum                   { return indSum{ok: true} }
func (s *indSum) add(v float64, ok bool) { s.v += v; s.ok = s.ok && ok }
func (s indSum) ptr() *float64 {
	if !s.ok {
		return nil
	}
	v := s.v
	return &v
}

// indRatio is a / b, or null when either is unknown or b is not positive.
func indRatio(a, b indSum) *float64 {
	if !a.ok || !b.ok || !(b.v > 0) {
		return nil
	}
	v := a.v / b.v
	return &v
}

const (
	indElec = string(registry.Electricity)
	indGas  = string(registry.NaturalGas)
)

// indIsHeat reports whether carrier c is booked under E_heat; every other non-electricity carrier
// is a fuel (E_fuel when it comes in, E_transform when it goes out).
func indIsHeat(c string) bool { return c == string(registry.Heat) || c == string(registry.Steam) }

// block applies the set to one accumulated block (reference §3, §2, §7).
func (e *indEval) block(b *indBlock) Block {
	out := Block{
		CO2ByCarrierT:  map[string]*float64{},
		CO2ByProductT:  map[string]*float64{},
		ElectricityKWh: b.elec,
	}
	carriers := slices.Sorted(maps.Keys(b.in))
	for c := range b.out {
		if !slices.Contains(carriers, c) {
			carriers = append(carriers, c)
		}
	}
	slices.Sort(carriers)

	// Energy (§2, §4): inflows minus outflows at the kgce coefficients; zero-factor electricity
	// counts like any other.
	equal, equivalent, conv := indKnown(), indKnown(), indKnown()
	gross, estimated := indKnown(), indKnown()
	for _, c := range carriers {
		in, outQ := b.in[c], b.out[c]
		if in == 0 && outQ == 0 {
			continue
		}
		k, ok := e.coef(c, false, factors.KgceEqual)
		equal.add((in-outQ)*k/1000, ok)
		k, ok = e.coef(c, false, factors.KgceEquivalent)
		equivalent.add((in-outQ)*k/1000, ok)
		k, ok = e.coef(c, false, e.conv)
		conv.add((in-outQ)*k/1000, ok)
		gross.add((in+outQ)*k/1000, ok)
		estimated.add(b.estimated[c]*k/1000, ok)
	}
	out.EnergyTceEqual = equal.ptr()
	out.EnergyTceEquivalent = equivalent.ptr()

	// CO2 (§3): E_fuel + E_transform + E_elec + E_heat + E_process; removals never subtracted.
	fuel, transform, heat, power, process := indKnown(), indKnown(), indKnown(), indKnown(), indKnown()
	for _, c := range carriers {
		in, outQ := b.in[c], b.out[c]
		if c == indElec || in == 0 && outQ == 0 {
			continue
		}
		k, ok := e.coef(c, false, factors.KgCO2)
		byCarrier := indSum{v: (in - outQ) * k / 1000, ok: ok}
		if indIsHeat(c) {
			heat.add(byCarrier.v, ok)
		} else {
			if in > 0 {
				fuel.add(in*k/1000, ok)
			}
			if outQ > 0 {
				transform.add(-outQ*k/1000, ok)
			}
		}
		out.CO2ByCarrierT[c] = byCarrier.ptr()
	}
	if el := b.elec; el.Grid+el.GridExport+el.DirectGreen+el.DirectGreenExport > 0 {
		// E_elec = Σ in × EF − Σ out × EF: grid power not covered by an instrument at the
		// fossil factor, direct green and covered power at the green factor.
		covered := 0.0
		if e.set.Method.InstrumentsApply() {
			covered = el.GreenTrade + el.Certificate
		}
		byCarrier := indKnown()
		if fossil := el.Grid - covered; fossil > 0 || el.GridExport > 0 {
			k, ok := e.coef(indElec, false, factors.KgCO2)
			byCarrier.add((fossil-el.GridExport)*k/1000, ok)
		}
		if green := covered + el.DirectGreen; green > 0 || el.DirectGreenExport > 0 {
			k, ok := e.coef(indElec, false, factors.KgCO2Green)
			byCarrier.add((green-el.DirectGreenExport)*k/1000, ok)
		}
		power = byCarrier
		out.CO2ByCarrierT[indElec] = byCarrier.ptr()
	}
	for _, p := range slices.Sorted(maps.Keys(b.process)) {
		k, ok := e.coef(p, true, factors.KgCO2)
		s := indSum{v: b.process[p] * k / 1000, ok: ok}
		process.add(s.v, ok)
		out.CO2ByProductT[p] = s.ptr()
	}
	out.CO2ByComponentT = Components{Fuel: fuel.ptr(), Transform: transform.ptr(), Electricity: power.ptr(), Heat: heat.ptr(), Process: process.ptr()}
	co2 := indKnown()
	for _, s := range []indSum{fuel, transform, power, heat, process} {
		co2.add(s.v, s.ok)
	}
	out.CO2T = co2.ptr()
	out.CO2PerTce = indRatio(co2, conv)

	// Value added (§6).
	if b.va != nil {
		v := *b.va
		out.ValueAdded10kCNY = &v
		out.CO2Per10kCNYVA = indRatio(co2, indSum{v: v, ok: true})
	}

	// Shares of all energy in tce (§7.2), at the set's convention. Non-fossil: green power of
	// the three ledgers, net of green exports; clean: that and natural gas.
	nonFossil := indKnown()
	if kwh := b.elec.DirectGreen - b.elec.DirectGreenExport + b.elec.GreenTrade + b.elec.Certificate; kwh != 0 {
		k, ok := e.coef(indElec, false, e.conv)
		nonFossil.add(kwh*k/1000, ok)
	}
	clean := nonFossil
	if gas := b.in[indGas] - b.out[indGas]; gas != 0 {
		k, ok := e.coef(indGas, false, e.conv)
		clean.add(gas*k/1000, ok)
	}
	out.NonFossilShare = indRatio(nonFossil, conv)
	out.CleanEnergyShare = indRatio(clean, conv)
	net := indSum{v: b.elec.Grid + b.elec.DirectGreen - b.elec.GridExport - b.elec.DirectGreenExport, ok: true}
	out.DirectGreenShare = indRatio(indSum{v: max(0, b.elec.DirectGreen-b.elec.DirectGreenExport), ok: true}, net)

	// Data quality.
	if b.expected > 0 {
		v := float64(b.received) / float64(b.expected)
		out.Completeness = &v
	}
	out.EstimatedShare = indRatio(estimated, gross)
	out.MissingCoefficients = append([]string{}, slices.Sorted(maps.Keys(e.missing))...)
	return out
}

func indFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// indIsCalendarYear reports whether [from, to) is exactly one calendar year in loc (§7.5, §7.6).
// (pkg/period.IsCalendarYear is the same test; this package imports only the standard library
// and the domain packages factors and registry.)
func indIsCalendarYear(from, to time.Time, loc *time.Location) bool {
	y := time.Date(from.In(loc).Year(), 1, 1, 0, 0, 0, 0, loc)
	return from.Equal(y) && to.Equal(y.AddDate(1, 0, 0))
}

// indYearDays is the length in days of the calendar year containing t in loc.
func indYearDays(t time.Time, loc *time.Location) float64 {
	y := time.Date(t.In(loc).Year(), 1, 1, 0, 0, 0, 0, loc)
	return y.AddDate(1, 0, 0).Sub(y).Hours() / 24
}

// indMonthShare is the part of calendar month m (its year and month as written, in loc) that lies
// in [from, to).
func indMonthShare(m time.Time, from, to time.Time, loc *time.Location) float64 {
	start := time.Date(m.Year(), m.Month(), 1, 0, 0, 0, 0, loc)
	end := start.AddDate(0, 1, 0)
	return float64(indOverlap(start, end, from, to)) / float64(end.Sub(start))
}

// indOverlap is the length of [a0, a1) ∩ [b0, b1).
func indOverlap(a0, a1, b0, b1 time.Time) time.Duration {
	if b0.After(a0) {
		a0 = b0
	}
	if b1.Before(a1) {
		a1 = b1
	}
	if !a1.After(a0) {
		return 0
	}
	return a1.Sub(a0)
}
