package alertsrc

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/period"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// Rollup fields summed by rules.
const (
	fieldTce = "tce_equal"
	fieldCO2 = "co2_t"
)

func sumField(metric string) string {
	if metric == alerting.MetricCO2 {
		return fieldCO2
	}
	return fieldTce
}

// totalsKey names one sum of the hourly rollups: a field over the hours starting in a span.
type totalsKey struct {
	field string
	sp    span
}

// totals are the sums of one field over one span for the park, by enterprise (the enterprise
// the points are tagged with) and, when some rule is per meter, by meter. A scope absent from
// them has no point carrying the field.
type totals struct {
	park    *float64
	byEnt   map[string]float64
	byMeter map[string]float64
}

func newTotals(rows []influx.HourlyTotal) *totals {
	t := &totals{byEnt: map[string]float64{}, byMeter: map[string]float64{}}
	for _, r := range rows {
		t.add(r.Enterprise, r.Meter, r.Value)
	}
	return t
}

func (t *totals) add(ent, meter string, v float64) {
	if t.park == nil {
		t.park = new(float64)
	}
	*t.park += v
	t.byEnt[ent] += v
	if meter != "" {
		t.byMeter[meter] += v
	}
}

// of is the sum of the rule's scope; nil when no point of it carries the field.
func (t *totals) of(r alerting.Rule) *float64 {
	var v float64
	var ok bool
	switch {
	case r.MeterID != "":
		v, ok = t.byMeter[r.MeterID]
	case r.EnterpriseID != "":
		v, ok = t.byEnt[r.EnterpriseID]
	default:
		return t.park
	}
	if !ok {
		return nil
	}
	return &v
}

// sum is the sum of a field over the rollups of the rule's scope with Start in sp: nil when
// no point there carries the field.
func (e *eval) sum(r alerting.Rule, field string, sp span) (*float64, error) {
	f := e.totals[totalsKey{field, sp}]
	if f.err != nil {
		return nil, f.err
	}
	return f.v.of(r), nil
}

// fetchRollups starts the planned sums and the flagged hours of the hourly rollups, both
// aggregated by the store.
func (e *eval) fetchRollups(wg *sync.WaitGroup) {
	e.totals = make(map[totalsKey]*fetched[*totals], len(e.totalsPlan))
	for k := range e.totalsPlan {
		e.totals[k] = &fetched[*totals]{}
	}
	if len(e.totals) == 0 && e.qualityFrom.IsZero() {
		return
	}
	fail := func(err error) {
		e.quality.err = err
		for _, f := range e.totals {
			f.err = err
		}
	}
	if e.s.opts.Readings == nil {
		fail(errors.New("no readings source configured"))
		return
	}
	rt := e.s.opts.Readings
	thisHour := e.now.UTC().Truncate(time.Hour)
	for k, f := range e.totals {
		groupBy := []string{influx.GroupEnterprise}
		if e.totalsPlan[k] {
			groupBy = append(groupBy, influx.GroupMeter)
		}
		// Whole past hours change only with late data: their sums are kept for the TTL.
		past := !k.sp.to.After(thisHour)
		ck := pastTotalsKey{park: e.park, key: k, byMeter: e.totalsPlan[k]}
		if past {
			if v, ok := e.s.cachedPastTotals(ck, e.now); ok {
				f.v = v
				continue
			}
		}
		wg.Go(func() {
			rows, err := rt.HourlyTotals(e.ctx, e.park, k.field, k.sp.from, k.sp.to, groupBy)
			f.v, f.err = newTotals(rows), err
			if past && err == nil {
				e.s.storePastTotals(ck, e.now, f.v)
			}
		})
	}
	if !e.qualityFrom.IsZero() {
		wg.Go(func() {
			hours, err := rt.QualityHours(e.ctx, e.park, e.qualityFrom, e.now)
			e.quality.v, e.quality.err = qualityByMeter(hours), err
		})
	}
}

// qualityByMeter splits flagged hours by meter, oldest first.
func qualityByMeter(hours []influx.QualityHour) map[string][]influx.QualityHour {
	out := map[string][]influx.QualityHour{}
	for _, h := range hours {
		out[h.Meter] = append(out[h.Meter], h)
	}
	for _, hs := range out {
		if !slices.IsSortedFunc(hs, compareStart) {
			slices.SortStableFunc(hs, compareStart)
		}
	}
	return out
}

func compareStart(a, b influx.QualityHour) int { return a.Start.Compare(b.Start) }

// qualityBetween is the hours of hs with Start in [from, to).
func qualityBetween(hs []influx.QualityHour, from, to time.Time) []influx.QualityHour {
	i := sort.Search(len(hs), func(i int) bool { return !hs[i].Start.Before(from) })
	j := sort.Search(len(hs), func(i int) bool { return !hs[i].Start.Before(to) })
	if j < i {
		return nil
	}
	return hs[i:j]
}

// powerKey names one meter's mean power over one window.
type powerKey struct {
	meter  string
	window time.Duration
}

// meterPower is a meter's mean power over a window; ok false when no interval of its readings
// overlaps the window.
type meterPower struct {
	kw float64
	ok bool
}

// meterMeanKW is the mean power of an electricity counter over [now − window, now]: the
// consumption of the intervals of its readings (accounting.Intervals, rollover-aware, × the
// multiplier), each prorated by its overlap with the window, over the time they cover.
func (e *eval) meterMeanKW(m *registry.Meter, window time.Duration) meterPower {
	k := powerKey{m.ID, window}
	if p, ok := e.powerMemo[k]; ok {
		return p
	}
	var p meterPower
	defer func() { e.powerMemo[k] = p }()
	samples := e.power.v[m.ID]
	from := e.now.Add(-window)
	i := sort.Search(len(samples), func(i int) bool { return !samples[i].TS.Before(from) })
	j := sort.Search(len(samples), func(i int) bool { return samples[i].TS.After(e.now) })
	if i > 0 {
		i-- // the last reading before the window
	}
	if j-i < 2 {
		return p
	}
	readings := make([]accounting.Reading, j-i)
	for n, s := range samples[i:j] {
		readings[n] = accounting.Reading{TS: s.TS, Value: s.Value}
	}
	intervals, _ := accounting.Intervals(accounting.IntervalMeter{
		ID: m.ID, Multiplier: m.Multiplier, Rollover: m.Rollover, RatedCapacity: m.RatedCapacity,
		Interval: time.Duration(m.IntervalSeconds) * time.Second,
	}, readings, nil)
	var kwh float64
	var covered time.Duration
	for _, iv := range intervals {
		d := iv.To.Sub(iv.From)
		if d <= 0 {
			continue
		}
		overlap := period.Earlier(iv.To, e.now).Sub(period.Later(iv.From, from))
		if overlap <= 0 {
			continue
		}
		kwh += iv.Quantity * float64(overlap) / float64(d)
		covered += overlap
	}
	if covered <= 0 {
		return p
	}
	p = meterPower{kw: kwh / covered.Hours(), ok: true}
	return p
}

func (e *eval) powerRule(r alerting.Rule) ([]alerting.Observation, error) {
	if e.power.err != nil {
		return nil, e.power.err
	}
	window := powerWindow(r)
	var kw float64
	var reporting, total int
	for _, m := range e.scopeMeters(r) {
		if m.Carrier != registry.Electricity || m.Kind != registry.Counter {
			continue
		}
		// An enterprise's or the park's power is what the grid connection carries (what a
		// contracted demand limits): on-site direct green supply is behind it and left out.
		if r.MeterID == "" && m.GreenClass == registry.GreenDirect {
			continue
		}
		total++
		p := e.meterMeanKW(m, window)
		if !p.ok {
			continue
		}
		reporting++
		if m.Direction == registry.Out && r.MeterID == "" {
			kw -= p.kw
		} else {
			kw += p.kw
		}
	}
	if reporting == 0 {
		return nil, nil
	}
	summary := fmt.Sprintf("mean power of %s over the last %v: %.4g kW", scopeName(r), window, kw)
	if r.MeterID == "" {
		summary += fmt.Sprintf(" (grid electricity in minus out, %d of %d meters reporting)", reporting, total)
	}
	return one(e.scopeLabels(r), kw, summary), nil
}
