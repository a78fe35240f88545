package accountsvc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/period"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// allMonths spans every month value added can be entered for.
const firstMonth, lastMonth = "2000-01", "9999-12"

// flows turns the rollup totals of [from, to) into the engine's flows: one per counter meter
// of the park, including meters that sent nothing (their expected readings still count
// against completeness).
func (s *Service) flows(ctx context.Context, park string, from, to time.Time, loc *time.Location) ([]accounting.Flow, error) {
	meters, err := s.Registry.AllMeters(ctx, registry.MeterFilter{ParkID: park})
	if err != nil {
		return nil, err
	}
	totals, err := s.Totals.MeterTotals(ctx, park, from, to, loc)
	if err != nil {
		return nil, err
	}
	byMeter := make(map[string]influx.MeterTotal, len(totals))
	for _, t := range totals {
		byMeter[t.Meter] = t
	}
	hours := to.Sub(from).Hours()
	var out []accounting.Flow
	for _, m := range meters {
		if m.Kind != registry.Counter {
			continue
		}
		t := byMeter[m.ID]
		f := accounting.Flow{
			Meter: m.ID, Enterprise: m.EnterpriseID, Carrier: string(m.Carrier),
			Direction: string(m.Direction), GreenClass: string(m.GreenClass),
			Quantity: t.Quantity, Estimated: t.Estimated, Received: t.Received,
		}
		if m.IntervalSeconds > 0 {
			f.Expected = int64(hours * 3600 / float64(m.IntervalSeconds))
		}
		out = append(out, f)
	}
	return out, nil
}

// Indicators computes the accounts of park for [from, to) under the factor set rule (default
// DefaultRule, the version in effect at from). With enterprise set, the result holds that
// enterprise's block only, at the top and in Enterprises, without the park's thresholds.
func (s *Service) Indicators(ctx context.Context, park string, from, to time.Time, rule, enterprise string) (accounting.Result, error) {
	loc, err := s.Location(ctx, park)
	if err != nil {
		return accounting.Result{}, err
	}
	if rule == "" {
		rule = DefaultRule
	}
	if err := s.SyncFactorSets(ctx); err != nil {
		return accounting.Result{}, err
	}
	set, err := s.Factors.Latest(rule, from)
	if err != nil {
		return accounting.Result{}, invalid("rule", "%v", err)
	}
	if enterprise != "" {
		if _, err := s.Registry.GetEnterprise(ctx, park, enterprise); err != nil {
			return accounting.Result{}, err
		}
	}
	in := accounting.Inputs{From: from, To: to, Location: loc, Factors: set}
	if in.Flows, err = s.flows(ctx, park, from, to, loc); err != nil {
		return accounting.Result{}, err
	}
	if in.Instruments, err = s.Inputs.ListInstruments(ctx, park, from, to); err != nil {
		return accounting.Result{}, err
	}
	fromMonth, toMonth := from.In(loc).Format("2006-01"), to.Add(-time.Nanosecond).In(loc).Format("2006-01")
	if in.ProcessOutputs, err = s.Inputs.ListProcessOutputs(ctx, park, "", fromMonth, toMonth); err != nil {
		return accounting.Result{}, err
	}
	// The constant-price chain reaches back to each record's base year: read them all.
	if in.ValueAdded, err = s.Inputs.ListValueAdded(ctx, park, "", firstMonth, lastMonth); err != nil {
		return accounting.Result{}, err
	}
	res, err := accounting.Indicators(in)
	if errors.Is(err, accounting.ErrMissingValueAdded) {
		// Energy and CO2 stand without value added; say why the intensity per value added is
		// missing instead of refusing the whole result.
		vaErr := err
		in.ValueAdded = nil
		if res, err = accounting.Indicators(in); err == nil {
			res.Notes = append(res.Notes, fmt.Sprintf("value added not used: %v; co2_per_10k_cny_va needs every month of the period and its constant-price chain", vaErr))
		}
	}
	if err != nil {
		return accounting.Result{}, err
	}
	if enterprise != "" {
		res = onlyEnterprise(res, enterprise)
	}
	return res, nil
}

// onlyEnterprise keeps one enterprise's block of a park result.
func onlyEnterprise(res accounting.Result, enterprise string) accounting.Result {
	i := slices.IndexFunc(res.Enterprises, func(b accounting.Block) bool { return b.Enterprise == enterprise })
	var b accounting.Block
	if i >= 0 {
		b = res.Enterprises[i]
	} else {
		b = accounting.Block{Enterprise: enterprise, CO2ByCarrierT: map[string]*float64{}, CO2ByProductT: map[string]*float64{}}
	}
	var own []accounting.InstrumentAllocation
	for _, a := range res.Instruments {
		if a.Enterprise == enterprise {
			own = append(own, a)
		}
	}
	return accounting.Result{
		From: res.From, To: res.To, FactorSet: res.FactorSet, Estimate: res.Estimate,
		Block: b, Instruments: own, OperatorSupplied: res.OperatorSupplied,
		Notes:       append(res.Notes, "enterprise "+enterprise+" only: the park thresholds apply to the whole park"),
		Enterprises: []accounting.Block{b},
	}
}

// Series metrics and steps.
var (
	SeriesMetrics = []string{"power", "energy_tce", "co2"}
	SeriesSteps   = map[string]time.Duration{"1h": time.Hour, "1d": 24 * time.Hour, "1mo": 31 * 24 * time.Hour}
	seriesUnits   = map[string]string{"power": "kW", "energy_tce": "tce", "co2": "tCO2"}
	// maxSeriesPoints bounds one response.
	maxSeriesPoints = 10000
)

// SeriesUnit is the unit of a series metric.
func SeriesUnit(metric string) string { return seriesUnits[metric] }

// Series returns a chart series of park (or of one enterprise) from the rollups.
func (s *Service) Series(ctx context.Context, park, enterprise, metric string, from, to time.Time, step string) ([]influx.SeriesPoint, error) {
	if !slices.Contains(SeriesMetrics, metric) {
		return nil, invalid("metric", "%q is not one of power, energy_tce, co2", metric)
	}
	d, ok := SeriesSteps[step]
	if !ok {
		return nil, invalid("step", "%q is not one of 1h, 1d, 1mo", step)
	}
	if n := to.Sub(from) / d; n > time.Duration(maxSeriesPoints) {
		return nil, invalid("step", "%d points of %s: more than %d; choose a longer step or a shorter range", n, step, maxSeriesPoints)
	}
	loc, err := s.Location(ctx, park)
	if err != nil {
		return nil, err
	}
	if enterprise != "" {
		if _, err := s.Registry.GetEnterprise(ctx, park, enterprise); err != nil {
			return nil, err
		}
	}
	return s.Totals.Series(ctx, park, enterprise, metric, from, to, step, loc)
}

// ---- green instruments ----

// CreateInstrument checks and stores a green instrument. The API refuses an allocation larger
// than the grid electricity it would cover: the net grid electricity metered in its period
// (for its enterprise, or the whole park) less what other instruments of the same holder
// already cover in that period, prorated by time.
func (s *Service) CreateInstrument(ctx context.Context, park string, in accounting.Instrument) error {
	switch {
	case in.ID == "":
		return invalid("id", "is required")
	case in.Kind != accounting.KindCertificate && in.Kind != accounting.KindGreenTrade:
		return invalid("kind", "%q is not certificate or green_trade", in.Kind)
	case !finite(in.MWh) || in.MWh <= 0:
		return invalid("mwh", "%v is not an amount > 0", in.MWh)
	case in.From.IsZero() || !in.To.After(in.From):
		return invalid("to", "the period [from, to) is empty")
	case in.Kind == accounting.KindGreenTrade && len(in.Serials) > 0:
		return invalid("serials", "only certificates carry serials")
	}
	if err := registry.CheckID("id", in.ID); err != nil {
		return err
	}
	if in.Kind == accounting.KindCertificate && len(in.Serials) > 0 {
		n, err := accounting.SerialCount(in.Serials)
		if err != nil {
			return err
		}
		if float64(n) != in.MWh {
			return invalid("serials", "%d certificates cover %d MWh, not %v (one certificate is 1 MWh)", n, n, in.MWh)
		}
	}
	if in.Enterprise != "" {
		if err := s.checkEnterprise(ctx, park, in.Enterprise); err != nil {
			return err
		}
	}
	if err := s.checkCoverage(ctx, park, in); err != nil {
		return err
	}
	return s.Inputs.CreateInstrument(ctx, park, in, actor(ctx))
}

func (s *Service) checkCoverage(ctx context.Context, park string, in accounting.Instrument) error {
	loc, err := s.Location(ctx, park)
	if err != nil {
		return err
	}
	flows, err := s.flows(ctx, park, in.From, in.To, loc)
	if err != nil {
		return err
	}
	grid := 0.0 // kWh
	for _, f := range flows {
		if f.Carrier != string(registry.Electricity) || f.GreenClass == string(registry.GreenDirect) {
			continue
		}
		if in.Enterprise != "" && f.Enterprise != in.Enterprise {
			continue
		}
		if f.Direction == string(registry.Out) {
			grid -= f.Quantity
		} else {
			grid += f.Quantity
		}
	}
	others, err := s.Inputs.ListInstruments(ctx, park, in.From, in.To)
	if err != nil {
		return err
	}
	covered := 0.0 // MWh
	for _, o := range others {
		if o.Enterprise != in.Enterprise || !o.To.After(o.From) {
			continue
		}
		lo, hi := period.Later(o.From, in.From), period.Earlier(o.To, in.To)
		if hi.After(lo) {
			covered += o.MWh * hi.Sub(lo).Hours() / o.To.Sub(o.From).Hours()
		}
	}
	left := grid/1000 - covered
	if in.MWh > left+1e-9 {
		holder := "the park"
		if in.Enterprise != "" {
			holder = "enterprise " + in.Enterprise
		}
		return fmt.Errorf("%w: mwh: %v MWh is more than the grid electricity it would cover: %s metered %.6f MWh of grid electricity from %s to %s, of which other instruments already cover %.6f MWh",
			registry.ErrConflict, in.MWh, holder, grid/1000, in.From.In(loc).Format(time.RFC3339), in.To.In(loc).Format(time.RFC3339), covered)
	}
	return nil
}
