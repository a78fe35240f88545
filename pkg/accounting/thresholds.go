package accounting

import (
	"fmt"

	"github.com/parkcarbon/parkcarbon/pkg/factors"
)

// Threshold is one target of the national indicator system or of the Hunan scheme (reference
// §2) with the park's value against it. Pass is null when there is no threshold for the park's
// size, or the value cannot be computed or assessed; Note says which.
type Threshold struct {
	Scheme        string   `json:"scheme"`         // national | hunan
	Indicator     string   `json:"indicator"`      // co2_per_tce | clean_energy_share | direct_green_share
	Kind          string   `json:"kind"`           // core | guiding | milestone
	MilestoneYear int      `json:"milestone_year"` // 0 for the national scheme (no milestones)
	SizeClass     string   `json:"size_class,omitempty"`
	Op            string   `json:"op"` // "<=" or ">="
	Limit         *float64 `json:"limit"`
	Value         *float64 `json:"value"`
	Pass          *bool    `json:"pass"`
	// Estimate: the period is not a calendar year, so the size class comes from energy
	// annualised by days and the value is not the official annual one.
	Estimate bool   `json:"estimate"`
	Note     string `json:"note"`
}

// Schemes and indicators.
const (
	SchemeNational = "national"
	SchemeHunan    = "hunan"

	IndicatorCO2PerTce        = "co2_per_tce"
	IndicatorCleanEnergyShare = "clean_energy_share"
	IndicatorDirectGreenShare = "direct_green_share"
)

type thresholdInputs struct {
	annualTce *float64 // energy at equal value, annualised when estimate
	co2PerTce *float64
	clean     *float64
	direct    *float64
	estimate  bool
	// co2Assess and shareAssess are "" when the set's values can be held against the
	// thresholds, else the reason they cannot.
	co2Assess, shareAssess string
}

// thresholdSizeBand is one size class of a scheme: parks of annual energy >= minTce (tce at equal value)
// up to the next band, with a limit per milestone (one for the national scheme).
type thresholdSizeBand struct {
	minTce float64
	name   string
	limits []float64 // nil: no threshold
}

var (
	// National core indicator 单位能耗碳排放 (attachment 3, reference §2) [C].
	nationalCO2Bands = []thresholdSizeBand{
		{0, "below 200k tce/yr", nil},
		{200_000, "200k-1M tce/yr", []float64{0.2}},
		{1_000_000, "1M tce/yr and above", []float64{0.3}},
	}
	hunanMilestones = []int{2027, 2030, 2035}
	// Hunan provincial table (reference §2) [S]: the size classes start at 20k tce.
	hunanCO2Bands = []thresholdSizeBand{
		{0, "below 20k tce/yr", nil},
		{20_000, "20k-1M tce/yr", []float64{1.0, 0.7, 0.3}},
		{1_000_000, "1M tce/yr and above", []float64{1.1, 0.8, 0.5}},
	}
	hunanCleanShare = []float64{0.60, 0.70, 0.90}
)

const (
	thresholdNationalClean = 0.90 // guiding indicator, attachment 3
	thresholdDirectGreen   = 0.50 // attachment 4: "in principle" at least half of park electricity
	// passTolerance absorbs floating-point noise at the limit (0.2 computed as 0.20000000000000004).
	thresholdTolerance = 1e-9
)

func thresholdBand(bands []thresholdSizeBand, annual float64) thresholdSizeBand {
	b := bands[0]
	for _, c := range bands {
		if annual >= c.minTce {
			b = c
		}
	}
	return b
}

// assessThresholds holds the park's values against every threshold of reference §2.
func assessThresholds(in thresholdInputs) []Threshold {
	out := []Threshold{
		co2Threshold(in, SchemeNational, "core", 0, nationalCO2Bands, 0),
		shareThreshold(in, SchemeNational, IndicatorCleanEnergyShare, "guiding", 0, in.clean, thresholdNationalClean, ""),
		shareThreshold(in, SchemeNational, IndicatorDirectGreenShare, "guiding", 0, in.direct, thresholdDirectGreen,
			"attachment 4: direct green supply should in principle be at least 50 % of park electricity"),
	}
	for i, y := range hunanMilestones {
		out = append(out, co2Threshold(in, SchemeHunan, "milestone", y, hunanCO2Bands, i))
	}
	for i, y := range hunanMilestones {
		out = append(out, shareThreshold(in, SchemeHunan, IndicatorCleanEnergyShare, "milestone", y, in.clean, hunanCleanShare[i], ""))
	}
	return out
}

func co2Threshold(in thresholdInputs, scheme, kind string, year int, bands []thresholdSizeBand, milestone int) Threshold {
	t := Threshold{Scheme: scheme, Indicator: IndicatorCO2PerTce, Kind: kind, MilestoneYear: year, Op: "<=", Value: in.co2PerTce, Estimate: in.estimate}
	if in.annualTce == nil {
		t.Note = thresholdEstimateNote("size class unknown: the park's energy needs a missing coefficient", in.estimate, true)
		return t
	}
	b := thresholdBand(bands, *in.annualTce)
	t.SizeClass = b.name
	switch {
	case b.limits == nil:
		t.Note = fmt.Sprintf("no threshold: %s has no %s threshold for parks %s (annual energy %.6g tce at equal value)", thresholdSchemeName(scheme), IndicatorCO2PerTce, b.name, *in.annualTce)
	case in.co2Assess != "":
		t.Limit = indPtr(b.limits[milestone])
		t.Note = "not assessed: " + in.co2Assess
	default:
		t.Limit = indPtr(b.limits[milestone])
		t.Pass = thresholdPass(t.Op, t.Value, *t.Limit)
		if t.Value == nil {
			t.Note = "value unknown: CO2 or energy needs a missing coefficient, or energy is zero"
		}
	}
	t.Note = thresholdEstimateNote(t.Note, in.estimate, true)
	return t
}

func shareThreshold(in thresholdInputs, scheme, indicator, kind string, year int, value *float64, limit float64, note string) Threshold {
	t := Threshold{Scheme: scheme, Indicator: indicator, Kind: kind, MilestoneYear: year, Op: ">=", Limit: indPtr(limit), Value: value, Estimate: in.estimate, Note: note}
	switch {
	case in.shareAssess != "" && indicator != IndicatorDirectGreenShare:
		t.Note = thresholdJoin(t.Note, "not assessed: "+in.shareAssess)
	case value == nil:
		t.Note = thresholdJoin(t.Note, "value unknown: no energy to share, or a missing coefficient")
	default:
		t.Pass = thresholdPass(t.Op, value, limit)
	}
	t.Note = thresholdEstimateNote(t.Note, in.estimate, false)
	return t
}

func thresholdPass(op string, value *float64, limit float64) *bool {
	if value == nil {
		return nil
	}
	p := *value >= limit-thresholdTolerance
	if op == "<=" {
		p = *value <= limit+thresholdTolerance
	}
	return &p
}

// co2Assessable says why a set's CO2 per tce cannot be held against the thresholds, or "".
func co2Assessable(s factors.Set) string {
	switch {
	case s.Method != factors.MethodPark:
		return "the thresholds are defined on the park rule's CO2 (green 0, other electricity at the fossil factor); factor set " + s.Ref() + " uses the " + string(s.Method) + " method"
	case s.ElectricityConvention != factors.ConventionEqual:
		return "the thresholds count electricity at equal value; factor set " + s.Ref() + " uses the " + string(s.ElectricityConvention) + " value"
	}
	return ""
}

// shareAssessable says why a set's energy shares cannot be held against the thresholds, or "".
func shareAssessable(s factors.Set) string {
	if s.ElectricityConvention != factors.ConventionEqual {
		return "the thresholds count electricity at equal value; factor set " + s.Ref() + " uses the " + string(s.ElectricityConvention) + " value"
	}
	return ""
}

func thresholdSchemeName(s string) string {
	if s == SchemeHunan {
		return "the Hunan scheme"
	}
	return "the national indicator system"
}

func thresholdEstimateNote(note string, estimate, sized bool) string {
	switch {
	case !estimate:
		return note
	case sized:
		return thresholdJoin(note, "estimate: the period is not one calendar year; size class from energy annualised by days")
	}
	return thresholdJoin(note, "estimate: the period is not one calendar year")
}

func thresholdJoin(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func indPtr(v float64) *float64 { return &v }
