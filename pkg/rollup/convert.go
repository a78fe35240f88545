package rollup

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// coefs are the values of one carrier row a rollup uses, per canonical unit; nil: missing.
type coefs struct {
	kgceEqual, kgceEquivalent, kgco2 *float64
}

// factorCache memoises, for one park computation, the set in effect at each hour and the rows
// of each set.
type factorCache struct {
	e      *Engine
	byHour map[time.Time]string // hour -> set ref, "" when none is in effect
	sets   map[string]factors.Set
	rows   map[string]coefs // ref + "/" + carrier
}

func newFactorCache(e *Engine) *factorCache {
	return &factorCache{e: e, byHour: map[time.Time]string{}, sets: map[string]factors.Set{}, rows: map[string]coefs{}}
}

func (c *factorCache) coefs(carrier string, hour time.Time) coefs {
	ref, ok := c.byHour[hour]
	if !ok {
		s, err := c.e.opts.Factors.Latest(c.e.opts.FactorSet, hour)
		if err != nil {
			if c.e.firstTime("set:" + c.e.opts.FactorSet) {
				c.e.log.Warn("no factor set in effect: tce and co2 omitted", "factor_set", c.e.opts.FactorSet, "hour", hour, "err", err)
			}
		} else {
			ref = s.Ref()
			c.sets[ref] = s
		}
		c.byHour[hour] = ref
	}
	if ref == "" {
		return coefs{}
	}
	key := ref + "/" + carrier
	if v, ok := c.rows[key]; ok {
		return v
	}
	row, _ := c.sets[ref].Carrier(carrier) // the error repeats what Value reports below
	var v coefs
	for _, f := range []struct {
		field factors.Field
		dst   **float64
	}{{factors.KgceEqual, &v.kgceEqual}, {factors.KgceEquivalent, &v.kgceEquivalent}, {factors.KgCO2, &v.kgco2}} {
		x, err := row.Value(f.field)
		if err != nil {
			if c.e.firstTime(carrier + "." + string(f.field)) {
				c.e.log.Warn("missing coefficient: field omitted from rollups", "factor_set", ref, "carrier", carrier, "coefficient", string(f.field))
			}
			continue
		}
		*f.dst = &x
	}
	c.rows[key] = v
	return v
}

// firstTime reports whether this engine sees key for the first time: what is logged once.
func (e *Engine) firstTime(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := e.loggedMissing[key]
	e.loggedMissing[key] = true
	return !seen
}

// hourPoint converts one hour of a meter to a rollup point: canonical unit, tce and CO2 signed
// by direction (out negative), no CO2 for direct green electricity.
func (e *Engine) hourPoint(park string, m *meterInfo, h accounting.Hour, received int64, fc *factorCache) influx.RollupPoint {
	carrier := string(m.Carrier)
	q, err := factors.ToCanonical(carrier, m.Unit, h.Quantity)
	est, _ := factors.ToCanonical(carrier, m.Unit, h.Estimated)
	if err != nil { // the registry validates units, so this is a registry bug: keep the raw value
		if e.firstTime("unit:" + m.ID) {
			e.log.Warn("meter unit not convertible: quantity kept in the meter's unit", "park", park, "meter", m.ID, "err", err)
		}
		q, est = h.Quantity, h.Estimated
	}
	p := influx.RollupPoint{
		Park: park, Enterprise: m.EnterpriseID, Meter: m.ID, Carrier: carrier,
		Direction: string(m.Direction), GreenClass: string(m.GreenClass),
		Start: h.Start, Quantity: q, Estimated: est, Coverage: h.Coverage,
		Quality: int64(h.Quality), Received: received,
	}
	if m.IntervalSeconds > 0 {
		p.Expected = 3600 / float64(m.IntervalSeconds)
	}
	sign := 1.0
	if m.Direction == registry.Out {
		sign = -1
	}
	c := fc.coefs(carrier, h.Start)
	scale := func(k *float64) *float64 {
		if k == nil {
			return nil
		}
		v := sign * q * *k / 1000
		return &v
	}
	p.TceEqual, p.TceEquivalent, p.CO2T = scale(c.kgceEqual), scale(c.kgceEquivalent), scale(c.kgco2)
	if m.Carrier == registry.Electricity && m.GreenClass == registry.GreenDirect {
		zero := 0.0
		p.CO2T = &zero
	}
	return p
}

// days recomputes the daily rollups of the local days the hourly points touch, from the
// hourly rollups stored, and returns how many daily points it wrote.
func (e *Engine) days(ctx context.Context, park string, hours []influx.RollupPoint, loc *time.Location) (int, error) {
	touched := map[time.Time]bool{}
	for _, p := range hours {
		touched[localMidnight(p.Start, loc)] = true
	}
	var days []time.Time
	for d := range touched {
		days = append(days, d)
	}
	slices.SortFunc(days, func(a, b time.Time) int { return a.Compare(b) })
	written := 0
	for i := 0; i < len(days); {
		// A run of consecutive days, read back in one query.
		j := i + 1
		for j < len(days) && days[j].Equal(nextDay(days[j-1], loc)) {
			j++
		}
		from, to := days[i], nextDay(days[j-1], loc)
		i = j
		hs, err := e.opts.Rollups.HourlyRollups(ctx, park, from, to)
		if err != nil {
			return written, fmt.Errorf("read hourly rollups back: %w", err)
		}
		daily := dailyPoints(hs, loc)
		if err := e.opts.Rollups.WriteRollups(ctx, daily); err != nil {
			return written, err
		}
		written += len(daily)
	}
	return written, e.months(ctx, park, days, loc)
}

// months recomputes the monthly rollups of the local months the days fall in, from the daily
// rollups stored: a park-year of indicators then sums 12 points per meter.
func (e *Engine) months(ctx context.Context, park string, days []time.Time, loc *time.Location) error {
	var months []time.Time
	for _, d := range days {
		l := d.In(loc)
		if m := time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc); !slices.ContainsFunc(months, m.Equal) {
			months = append(months, m)
		}
	}
	for _, m := range months {
		ds, err := e.opts.Rollups.DailyRollups(ctx, park, m, m.AddDate(0, 1, 0))
		if err != nil {
			return fmt.Errorf("read daily rollups back: %w", err)
		}
		monthly := monthlyPoints(ds, m, loc)
		if err := e.opts.Rollups.WriteRollups(ctx, monthly); err != nil {
			return err
		}
	}
	return nil
}

// monthlyPoints sums one local month's daily points per meter: coverage is the mean over the
// month's days (a missing day counts 0), quality the OR, the rest sums.
func monthlyPoints(days []influx.RollupPoint, month time.Time, loc *time.Location) []influx.RollupPoint {
	acc := map[string]*influx.RollupPoint{}
	var order []string
	for _, h := range days {
		d := acc[h.Meter]
		if d == nil {
			d = &influx.RollupPoint{Monthly: true, Park: h.Park, Enterprise: h.Enterprise, Meter: h.Meter, Carrier: h.Carrier,
				Direction: h.Direction, GreenClass: h.GreenClass, Start: month}
			acc[h.Meter] = d
			order = append(order, h.Meter)
		}
		addInto(d, h)
	}
	l := month.In(loc)
	nDays := float64(time.Date(l.Year(), l.Month()+1, 0, 0, 0, 0, 0, loc).Day())
	out := make([]influx.RollupPoint, 0, len(order))
	for _, k := range order {
		d := acc[k]
		d.Coverage /= nDays
		out = append(out, *d)
	}
	return out
}

// addInto adds h's sums into d; coverage too (the caller turns it into a mean).
func addInto(d *influx.RollupPoint, h influx.RollupPoint) {
	d.Quantity += h.Quantity
	d.Estimated += h.Estimated
	d.Coverage += h.Coverage
	d.Quality |= h.Quality
	d.Received += h.Received
	d.Expected += h.Expected
	d.TceEqual = addPtr(d.TceEqual, h.TceEqual)
	d.TceEquivalent = addPtr(d.TceEquivalent, h.TceEquivalent)
	d.CO2T = addPtr(d.CO2T, h.CO2T)
}

// dailyPoints sums hourly points per meter and local day: coverage is the mean over the day's
// hours (a missing hour counts 0), quality the OR, the rest sums (nil when no hour has it).
func dailyPoints(hours []influx.RollupPoint, loc *time.Location) []influx.RollupPoint {
	type key struct {
		meter string
		day   time.Time
	}
	acc := map[key]*influx.RollupPoint{}
	var order []key
	for _, h := range hours {
		k := key{h.Meter, localMidnight(h.Start, loc)}
		d := acc[k]
		if d == nil {
			d = &influx.RollupPoint{Daily: true, Park: h.Park, Enterprise: h.Enterprise, Meter: h.Meter, Carrier: h.Carrier,
				Direction: h.Direction, GreenClass: h.GreenClass, Start: k.day}
			acc[k] = d
			order = append(order, k)
		}
		addInto(d, h)
	}
	out := make([]influx.RollupPoint, 0, len(order))
	for _, k := range order {
		d := acc[k]
		d.Coverage /= nextDay(k.day, loc).Sub(k.day).Hours()
		out = append(out, *d)
	}
	return out
}

func addPtr(sum, v *float64) *float64 {
	if v == nil {
		return sum
	}
	if sum == nil {
		x := *v
		return &x
	}
	x := *sum + *v
	return &x
}

func localMidnight(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
}

func nextDay(d time.Time, loc *time.Location) time.Time {
	l := d.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
}
