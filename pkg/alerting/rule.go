// Package alerting decides when park operators are warned. A Rule names what to watch (a
// series metric against a threshold, a rate of change, silent meters, sequence gaps, dead
// letters, data quality events, a carbon budget, an indicator at risk); an evaluation turns
// the rule's data into Observations, one per label set; Step moves each alert through its
// lifecycle (inactive → pending → firing → resolved) with hysteresis, keep-firing and flap
// damping, so operators get one alert per problem rather than a storm. Silences and
// acknowledgements change who is told, never what is true.
//
// The package is pure: storage, data sources and notification transports live elsewhere and
// the clock is always passed in.
package alerting

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Rule kinds.
const (
	// KindThreshold: a series metric beyond Threshold, held for For.
	KindThreshold = "threshold"
	// KindRateOfChange: energy of the last day (Compare "day") or week ("week") up more than
	// Threshold percent on the one before.
	KindRateOfChange = "rate_of_change"
	// KindNoData: a meter silent for more than Threshold of its poll intervals.
	KindNoData = "no_data"
	// KindSeqGap: a gateway sequence gap open longer than Threshold seconds.
	KindSeqGap = "seq_gap"
	// KindDeadLetters: more than Threshold dead letters in the last hour.
	KindDeadLetters = "dead_letters"
	// KindDataQuality: more than Threshold (default 0) reset, replacement, spike or gap events
	// (Qualities) in the last Window.
	KindDataQuality = "data_quality"
	// KindCarbonBudget: year-to-date CO2 against the budget trajectory; the value is the
	// projected year-end CO2 over the annual budget (1 = exactly on budget).
	KindCarbonBudget = "carbon_budget"
	// KindIndicatorAtRisk: the projected annual value of Metric (co2_per_tce or
	// clean_energy_share) against Threshold.
	KindIndicatorAtRisk = "indicator_at_risk"
)

// Kinds lists the rule kinds in documentation order.
func Kinds() []string {
	return []string{KindThreshold, KindRateOfChange, KindNoData, KindSeqGap, KindDeadLetters, KindDataQuality, KindCarbonBudget, KindIndicatorAtRisk}
}

// Metrics a threshold rule can watch.
const (
	MetricPower            = "power"              // kW, mean over Window, from registers; scope: grid import minus export
	MetricEnergyTce        = "energy_tce"         // tce at equal value over Window
	MetricCO2              = "co2"                // t over Window
	MetricCO2PerTce        = "co2_per_tce"        // over Window (daily: Window 24h)
	MetricCleanEnergyShare = "clean_energy_share" // over Window
)

// ThresholdMetrics are the metrics of KindThreshold.
var ThresholdMetrics = []string{MetricPower, MetricEnergyTce, MetricCO2, MetricCO2PerTce, MetricCleanEnergyShare}

// Severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Budget trajectories.
const (
	TrajectoryLinear  = "linear"  // the annual budget spread evenly over the year
	TrajectoryMonthly = "monthly" // MonthlyBudgetT month by month
)

// Data quality events a KindDataQuality rule counts.
var QualityEvents = []string{"reset", "replacement", "spike", "gap"}

// Rule is one alerting rule of a park.
type Rule struct {
	ID     string `json:"id"`
	ParkID string `json:"park_id"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	// Scope: the whole park (both empty), one enterprise, or one meter.
	EnterpriseID string `json:"enterprise_id,omitempty"`
	MeterID      string `json:"meter_id,omitempty"`
	// Metric of a threshold or indicator_at_risk rule.
	Metric string `json:"metric,omitempty"`
	// Op is ">" (fire above Threshold) or "<" (fire below).
	Op        string  `json:"op"`
	Threshold float64 `json:"threshold"`
	// Clear is where a firing alert resolves: past Threshold on the safe side (hysteresis).
	// Nil: Threshold itself.
	Clear *float64 `json:"clear,omitempty"`
	// Window is the span a threshold, data_quality or rate metric is computed over.
	Window time.Duration `json:"window,omitempty"`
	// For is how long a breach must hold before the alert fires.
	For time.Duration `json:"for,omitempty"`
	// KeepFiringFor keeps a firing alert firing that long after its last breach.
	KeepFiringFor time.Duration `json:"keep_firing_for,omitempty"`
	// Compare is "day" or "week" for rate_of_change.
	Compare string `json:"compare,omitempty"`
	// Qualities are the data_quality events counted (default all).
	Qualities []string `json:"qualities,omitempty"`
	// BudgetT is the annual CO2 budget of a carbon_budget rule, in t; MonthlyBudgetT the 12
	// monthly budgets of a monthly trajectory (they sum to the annual budget).
	BudgetT        float64   `json:"budget_t,omitempty"`
	Trajectory     string    `json:"trajectory,omitempty"`
	MonthlyBudgetT []float64 `json:"monthly_budget_t,omitempty"`
	Severity       string    `json:"severity"`
	// Labels are added to every alert of the rule (routing, silences).
	Labels map[string]string `json:"labels,omitempty"`
	// Endpoints are the notification endpoints told about this rule's alerts.
	Endpoints []string `json:"endpoints,omitempty"`
	// RepeatInterval re-sends a firing, unacknowledged alert; 0: never.
	RepeatInterval time.Duration `json:"repeat_interval,omitempty"`
	Disabled       bool          `json:"disabled,omitempty"`
}

var labelName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)

func invalid(field, format string, args ...any) error {
	return &registry.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ClearValue is where a firing alert of r resolves.
func (r Rule) ClearValue() float64 {
	if r.Clear != nil {
		return *r.Clear
	}
	return r.Threshold
}

// Validate checks a rule on its own; references (enterprise and meter in the park, endpoints)
// are the caller's to check.
func (r Rule) Validate() error {
	if err := registry.CheckID("id", r.ID); err != nil {
		return err
	}
	if strings.TrimSpace(r.Name) == "" {
		return invalid("name", "is required")
	}
	if !slices.Contains(Kinds(), r.Kind) {
		return invalid("kind", "%q is not one of %s", r.Kind, strings.Join(Kinds(), ", "))
	}
	if r.MeterID != "" && r.EnterpriseID != "" {
		return invalid("meter_id", "a rule watches a meter or an enterprise, not both")
	}
	if r.Op != ">" && r.Op != "<" {
		return invalid("op", "%q is not > or <", r.Op)
	}
	if math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0) {
		return invalid("threshold", "is not a number")
	}
	if r.Clear != nil {
		c := *r.Clear
		switch {
		case math.IsNaN(c) || math.IsInf(c, 0):
			return invalid("clear", "is not a number")
		case r.Op == ">" && c > r.Threshold:
			return invalid("clear", "%v is above the firing threshold %v: a rule firing above its threshold clears at or below it", c, r.Threshold)
		case r.Op == "<" && c < r.Threshold:
			return invalid("clear", "%v is below the firing threshold %v: a rule firing below its threshold clears at or above it", c, r.Threshold)
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"window", r.Window}, {"for", r.For}, {"keep_firing_for", r.KeepFiringFor}, {"repeat_interval", r.RepeatInterval}} {
		if d.v < 0 {
			return invalid(d.field, "%v is negative", d.v)
		}
	}
	switch r.Severity {
	case SeverityInfo, SeverityWarning, SeverityCritical:
	default:
		return invalid("severity", "%q is not info, warning or critical", r.Severity)
	}
	for i, ep := range r.Endpoints {
		if slices.Contains(r.Endpoints[:i], ep) {
			return invalid("endpoints", "%q is named twice", ep)
		}
	}
	for k := range r.Labels {
		if !labelName.MatchString(k) {
			return invalid("labels", "label name %q does not match %s", k, labelName)
		}
	}
	return r.validateKind()
}

func (r Rule) validateKind() error {
	positive := func(field string, v float64) error {
		if v <= 0 {
			return invalid(field, "must be > 0")
		}
		return nil
	}
	switch r.Kind {
	case KindThreshold:
		if !slices.Contains(ThresholdMetrics, r.Metric) {
			return invalid("metric", "%q is not one of %s", r.Metric, strings.Join(ThresholdMetrics, ", "))
		}
		if r.Metric == MetricPower && r.EnterpriseID == "" && r.MeterID == "" {
			return nil // the park's net import
		}
		return positive("window", r.Window.Seconds())
	case KindRateOfChange:
		if r.Compare != "day" && r.Compare != "week" {
			return invalid("compare", "%q is not day or week", r.Compare)
		}
	case KindNoData:
		if r.EnterpriseID != "" {
			return invalid("enterprise_id", "no_data watches meters: a park or one meter")
		}
		return positive("threshold", r.Threshold)
	case KindSeqGap, KindDeadLetters:
		if r.EnterpriseID != "" || r.MeterID != "" {
			return invalid("enterprise_id", "%s watches the park's gateways", r.Kind)
		}
		if r.Threshold < 0 {
			return invalid("threshold", "must be >= 0")
		}
	case KindDataQuality:
		for _, q := range r.Qualities {
			if !slices.Contains(QualityEvents, q) {
				return invalid("qualities", "%q is not one of %s", q, strings.Join(QualityEvents, ", "))
			}
		}
		return positive("window", r.Window.Seconds())
	case KindCarbonBudget:
		switch r.Trajectory {
		case TrajectoryLinear, "":
		case TrajectoryMonthly:
			if len(r.MonthlyBudgetT) != 12 {
				return invalid("monthly_budget_t", "a monthly trajectory needs 12 monthly budgets, got %d", len(r.MonthlyBudgetT))
			}
			sum := 0.0
			for _, v := range r.MonthlyBudgetT {
				if v < 0 || math.IsNaN(v) {
					return invalid("monthly_budget_t", "budgets must be >= 0")
				}
				sum += v
			}
			if math.Abs(sum-r.BudgetT) > 1e-6*math.Max(1, r.BudgetT) {
				return invalid("monthly_budget_t", "monthly budgets sum to %v, not the annual budget %v", sum, r.BudgetT)
			}
		default:
			return invalid("trajectory", "%q is not linear or monthly", r.Trajectory)
		}
		return positive("budget_t", r.BudgetT)
	case KindIndicatorAtRisk:
		if r.Metric != MetricCO2PerTce && r.Metric != MetricCleanEnergyShare {
			return invalid("metric", "%q is not co2_per_tce or clean_energy_share", r.Metric)
		}
	}
	return nil
}

// Fingerprint identifies an alert of a rule by its labels: the deduplication key.
func Fingerprint(ruleID string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(ruleID)
	for _, k := range keys {
		b.WriteString("|" + k + "=" + labels[k])
	}
	return b.String()
}
