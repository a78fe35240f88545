package alertsrc

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// rollupIndex holds a park's hourly rollups by meter (oldest first) and the meters of each
// enterprise as the rollups are tagged.
type rollupIndex struct {
	byMeter map[string][]influx.RollupPoint
	meters  []string            // sorted
	byEnt   map[string][]string // sorted
}

func indexRollups(points []influx.RollupPoint) *rollupIndex {
	x := &rollupIndex{byMeter: map[string][]influx.RollupPoint{}, byEnt: map[string][]string{}}
	sorted := slices.IsSortedFunc(points, func(a, b influx.RollupPoint) int {
		if c := strings.Compare(a.Meter, b.Meter); c != 0 {
			return c
		}
		return a.Start.Compare(b.Start)
	})
	if sorted {
		// The store's order: take each meter's run without copying.
		for i := 0; i < len(points); {
			j := i + 1
			for j < len(points) && points[j].Meter == points[i].Meter {
				j++
			}
			x.byMeter[points[i].Meter] = points[i:j:j]
			i = j
		}
	} else {
		for _, p := range points {
			x.byMeter[p.Meter] = append(x.byMeter[p.Meter], p)
		}
		for _, ps := range x.byMeter {
			slices.SortFunc(ps, func(a, b influx.RollupPoint) int { return a.Start.Compare(b.Start) })
		}
	}
	x.meters = make([]string, 0, len(x.byMeter))
	var ents []string
	for m, ps := range x.byMeter {
		x.meters = append(x.meters, m)
		ents = ents[:0]
		for i := range ps {
			if e := ps[i].Enterprise; e != "" && !slices.Contains(ents, e) {
				ents = append(ents, e)
				x.byEnt[e] = append(x.byEnt[e], m)
			}
		}
	}
	sort.Strings(x.meters)
	for _, ms := range x.byEnt {
		sort.Strings(ms)
	}
	return x
}

// between is a meter's points with Start in [from, to).
func (x *rollupIndex) between(meter string, from, to time.Time) []influx.RollupPoint {
	ps := x.byMeter[meter]
	i := sort.Search(len(ps), func(i int) bool { return !ps[i].Start.Before(from) })
	j := sort.Search(len(ps), func(i int) bool { return !ps[i].Start.Before(to) })
	if j < i {
		return nil
	}
	return ps[i:j]
}

// Rollup fields summed by rules.
const (
	fieldTce = "tce"
	fieldCO2 = "co2"
)

// sumKey names one rollup sum: a field over a scope and a span.
type sumKey struct {
	field, meter, enterprise string
	sp                       span
}

// rollupSum sums a field of the rollups of the rule's scope with Start in sp: nil when no
// point there carries the field.
func (e *eval) rollupSum(r alerting.Rule, field string, sp span) *float64 {
	key := sumKey{field, r.MeterID, r.EnterpriseID, sp}
	if v, ok := e.sumMemo[key]; ok {
		return v
	}
	x := e.rollups.v
	var meters []string
	switch {
	case r.MeterID != "":
		meters = []string{r.MeterID}
	case r.EnterpriseID != "":
		meters = x.byEnt[r.EnterpriseID]
	default:
		meters = x.meters
	}
	var sum float64
	var found bool
	for _, m := range meters {
		ps := x.between(m, sp.from, sp.to)
		for i := range ps {
			p := &ps[i]
			if r.EnterpriseID != "" && p.Enterprise != r.EnterpriseID {
				continue
			}
			v := p.TceEqual
			if field == fieldCO2 {
				v = p.CO2T
			}
			if v != nil {
				sum += *v
				found = true
			}
		}
	}
	var out *float64
	if found {
		out = &sum
	}
	e.sumMemo[key] = out
	return out
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
		overlap := minTime(iv.To, e.now).Sub(maxTime(iv.From, from))
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
		summary += fmt.Sprintf(" (in minus out, %d of %d electricity meters reporting)", reporting, total)
	}
	return one(e.scopeLabels(r), kw, summary), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
