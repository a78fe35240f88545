package alertbench

import (
	"fmt"
	"math"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
)

// Rule mix of the issue for 10,000 rules, scaled to Options.Rules: no_data per meter, power
// per meter, power per enterprise, day-on-day rate of change per enterprise, data quality per
// meter, energy per enterprise, and the accounts' carbon budget and indicator at risk per
// enterprise. Per-meter kinds are capped at the number of meters. The counts add up
// to 9,950 of its 10,000 rules; they are kept as given.
var ruleMix = []struct {
	kind  string
	share float64
}{
	{KindNoData, 0.5},
	{KindPowerMeter, 0.3},
	{KindPowerEnterprise, 0.1},
	{KindRateOfChange, 0.05},
	{KindDataQuality, 0.03},
	{KindEnergyTce, 0.01},
	{KindAccounts, 0.005},
}

// Rule kinds of the report: the alerting kinds, with threshold rules split by metric and
// scope and the two kinds computed from the accounts taken together.
const (
	KindNoData          = "no_data"
	KindPowerMeter      = "threshold power/meter"
	KindPowerEnterprise = "threshold power/enterprise"
	KindRateOfChange    = "rate_of_change day"
	KindDataQuality     = "data_quality 24h"
	KindEnergyTce       = "threshold energy_tce 1h"
	KindAccounts        = "carbon_budget, indicator_at_risk"
)

// benchRule is a rule with its report kind.
type benchRule struct {
	alerting.Rule
	kind string
}

// ruleCounts splits total rules over the mix.
func ruleCounts(total, meters int) []int {
	out := make([]int, len(ruleMix))
	for i, k := range ruleMix {
		n := int(math.Round(k.share * float64(total)))
		if k.kind == KindNoData || k.kind == KindPowerMeter || k.kind == KindDataQuality {
			n = min(n, meters)
		}
		out[i] = n
	}
	return out
}

// rules builds the rule set of the park: thresholds are set against each meter's or
// enterprise's nominal load at T, so heavy and surging enterprises (and their meters) fire,
// as do the silent meters, the meters with gap hours and, late in a long run, the dropouts.
func (p *park) buildRules(total int) []benchRule {
	counts := ruleCounts(total, len(p.meters))
	var out []benchRule
	add := func(kind string, r alerting.Rule) {
		r.ParkID = ParkID
		if r.Op == "" {
			r.Op = ">"
		}
		if r.Severity == "" {
			r.Severity = alerting.SeverityWarning
		}
		r.Name = fmt.Sprintf("%s %s", kind, r.ID)
		out = append(out, benchRule{Rule: r, kind: kind})
	}
	clear := func(v float64) *float64 { return &v }
	ents := p.enterprises
	for i, k := range ruleMix {
		n := counts[i]
		for r := range n {
			e := r % ents
			switch k.kind {
			case KindNoData:
				add(k.kind, alerting.Rule{ID: "nodata-" + meterID(r), Kind: alerting.KindNoData, MeterID: meterID(r),
					Threshold: 3, Severity: alerting.SeverityCritical})
			case KindPowerMeter:
				th := math.Round(1.4 * p.nominalKW(r, p.at))
				if th <= 0 {
					th = 50 // PV at night: any output fires
				}
				add(k.kind, alerting.Rule{ID: "power-" + meterID(r), Kind: alerting.KindThreshold, Metric: alerting.MetricPower,
					MeterID: meterID(r), Window: 5 * time.Minute, For: time.Minute, Threshold: th, Clear: clear(0.9 * th)})
			case KindPowerEnterprise:
				// Five rules an enterprise: 1.1, 1.3, 1.6, 2.2 times the nominal load, and a drop
				// below 0.3 times it.
				nominal := 0.0
				for _, j := range p.byEnt[e] {
					nominal += p.nominalKW(j, p.at)
				}
				level := r / ents
				f := []float64{1.1, 1.3, 1.6, 2.2, 0.3}[level%5]
				rule := alerting.Rule{ID: fmt.Sprintf("epower-%s-%d", enterpriseID(e), level), Kind: alerting.KindThreshold,
					Metric: alerting.MetricPower, EnterpriseID: enterpriseID(e), Window: 5 * time.Minute, For: time.Minute,
					Threshold: math.Round(f * nominal), Severity: []string{alerting.SeverityInfo, alerting.SeverityWarning,
						alerting.SeverityCritical, alerting.SeverityCritical, alerting.SeverityWarning}[level%5]}
				if f < 1 {
					rule.Op = "<"
				}
				add(k.kind, rule)
			case KindRateOfChange:
				level := r / ents
				add(k.kind, alerting.Rule{ID: fmt.Sprintf("roc-%s-%d", enterpriseID(e), level), Kind: alerting.KindRateOfChange,
					EnterpriseID: enterpriseID(e), Compare: "day", Threshold: float64(10 * (1 + level%3))})
			case KindDataQuality:
				// Every 16th meter from the first; those with three gap hours (every 37th) fire.
				j := (r*16 + r*16/len(p.meters)) % len(p.meters)
				add(k.kind, alerting.Rule{ID: fmt.Sprintf("dq-%d-%s", r, meterID(j)), Kind: alerting.KindDataQuality,
					MeterID: meterID(j), Window: 24 * time.Hour, Threshold: 2, Severity: alerting.SeverityInfo})
			case KindEnergyTce:
				hour := p.at.Add(-30 * time.Minute)
				nominal := 0.0
				for _, j := range p.byEnt[e] {
					nominal += p.nominalKW(j, hour) * tceEqualPerKWh
				}
				add(k.kind, alerting.Rule{ID: fmt.Sprintf("tce-%s-%d", enterpriseID(e), r/ents), Kind: alerting.KindThreshold,
					Metric: alerting.MetricEnergyTce, EnterpriseID: enterpriseID(e), Window: time.Hour,
					Threshold: 1.3 * nominal})
			case KindAccounts:
				if r%2 == 0 {
					// A budget of the enterprise's nominal year: its heavy enterprises overrun it.
					annual := 0.0
					for _, j := range p.byEnt[e] {
						annual += p.nominalKW(j, p.at) * 0.7 * 24 * 365 * co2PerKWh
					}
					add(k.kind, alerting.Rule{ID: fmt.Sprintf("budget-%s-%d", enterpriseID(e), r/ents), Kind: alerting.KindCarbonBudget,
						EnterpriseID: enterpriseID(e), Threshold: 1, BudgetT: math.Round(annual), Trajectory: alerting.TrajectoryLinear})
					continue
				}
				rule := alerting.Rule{ID: fmt.Sprintf("risk-%s-%d", enterpriseID(e), r/ents), Kind: alerting.KindIndicatorAtRisk,
					EnterpriseID: enterpriseID(e), Metric: alerting.MetricCO2PerTce, Threshold: 5}
				if r%4 == 3 {
					rule.Metric, rule.Op, rule.Threshold = alerting.MetricCleanEnergyShare, "<", 0.05
				}
				add(k.kind, rule)
			}
		}
	}
	return out
}
