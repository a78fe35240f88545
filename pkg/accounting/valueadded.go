package accounting

import (
	"fmt"
	"slices"
	"time"
)

// ValueAdded is one enterprise's industrial value added for one month (DESIGN.md §5): nominal,
// in 10^4 CNY, and the real growth index against the same month of the previous year
// (1.0 = no change) published by the statistics bureau, with the base year of the chain.
type ValueAdded struct {
	Enterprise      string    `json:"enterprise_id"`
	Month           time.Time `json:"month"` // its calendar year and month as written, any zone
	Nominal10kCNY   float64   `json:"nominal_10k_cny"`
	RealGrowthIndex float64   `json:"real_growth_index"`
	BaseYear        int       `json:"base_year"`
}

type vaKey struct {
	enterprise string
	year       int
	month      time.Month
}

func (k vaKey) String() string {
	return fmt.Sprintf("enterprise %q, %04d-%02d", k.enterprise, k.year, int(k.month))
}

// constantVA is the value added of month (year, month) at the prices of its record's base year b
// (reference §6): the nominal value added of the same month of b, times the real growth index
// of that month in every year after b up to year. Current-price value added is never divided
// across years.
func constantVA(recs map[vaKey]ValueAdded, k vaKey) (float64, error) {
	rec, ok := recs[k]
	if !ok {
		return 0, fmt.Errorf("%w: no value added for %s", ErrMissingValueAdded, k)
	}
	if rec.BaseYear > k.year {
		return 0, fmt.Errorf("%w: value added for %s has base year %d, after the month", ErrInvalidInput, k, rec.BaseYear)
	}
	base := vaKey{k.enterprise, rec.BaseYear, k.month}
	b, ok := recs[base]
	if !ok {
		return 0, fmt.Errorf("%w: no value added for %s, the base year of %s", ErrMissingValueAdded, base, k)
	}
	va := b.Nominal10kCNY
	for y := rec.BaseYear + 1; y <= k.year; y++ {
		link := vaKey{k.enterprise, y, k.month}
		r, ok := recs[link]
		if !ok {
			return 0, fmt.Errorf("%w: no real growth index for %s, a link of the chain from base year %d to %s", ErrMissingValueAdded, link, rec.BaseYear, k)
		}
		va *= r.RealGrowthIndex
	}
	return va, nil
}

// valueAddedByEnterprise is each enterprise's constant-price value added over [From, To): the
// months overlapping the period, a partial month by the share of its time in the period. The
// enterprises are those active in the period (enterprises) and those with a record for one of
// its months. No records at all: nil (value added not given).
func valueAddedByEnterprise(in Inputs, enterprises []string) (map[string]float64, error) {
	if len(in.ValueAdded) == 0 {
		return nil, nil
	}
	recs := map[vaKey]ValueAdded{}
	var months []time.Time
	for m := time.Date(in.From.In(in.Location).Year(), in.From.In(in.Location).Month(), 1, 0, 0, 0, 0, in.Location); m.Before(in.To); m = m.AddDate(0, 1, 0) {
		months = append(months, m)
	}
	for i, r := range in.ValueAdded {
		k := vaKey{r.Enterprise, r.Month.Year(), r.Month.Month()}
		switch {
		case r.Enterprise == "":
			return nil, fmt.Errorf("%w: value added %d: enterprise_id is required", ErrInvalidInput, i)
		case !indFinite(r.Nominal10kCNY) || r.Nominal10kCNY < 0:
			return nil, fmt.Errorf("%w: value added for %s: nominal_10k_cny %v is not a finite number >= 0", ErrInvalidInput, k, r.Nominal10kCNY)
		case !indFinite(r.RealGrowthIndex) || r.RealGrowthIndex <= 0:
			return nil, fmt.Errorf("%w: value added for %s: real_growth_index %v is not a finite number > 0 (1.0 = no change)", ErrInvalidInput, k, r.RealGrowthIndex)
		case r.BaseYear < 1900:
			return nil, fmt.Errorf("%w: value added for %s: base_year %d is not a year", ErrInvalidInput, k, r.BaseYear)
		}
		if _, dup := recs[k]; dup {
			return nil, fmt.Errorf("%w: value added for %s given twice", ErrInvalidInput, k)
		}
		recs[k] = r
		if slices.ContainsFunc(months, func(m time.Time) bool { return m.Year() == k.year && m.Month() == k.month }) && !slices.Contains(enterprises, r.Enterprise) {
			enterprises = append(enterprises, r.Enterprise)
		}
	}
	out := map[string]float64{}
	for _, e := range enterprises {
		if e == "" {
			continue // park-level meters have no value added of their own
		}
		total := 0.0
		for _, m := range months {
			va, err := constantVA(recs, vaKey{e, m.Year(), m.Month()})
			if err != nil {
				return nil, err
			}
			total += va * indMonthShare(m, in.From, in.To, in.Location)
		}
		out[e] = total
	}
	return out, nil
}

// Decline is the decline of an intensity from base to current, 1 − I_t / I_base (reference §6):
// 0.2 is a 20 % decline; negative is a rise.
func Decline(base, current float64) (float64, error) {
	if !indFinite(base) || !(base > 0) || !indFinite(current) || current < 0 {
		return 0, fmt.Errorf("%w: decline from %v to %v: the base intensity must be > 0 and both finite", ErrInvalidInput, base, current)
	}
	return 1 - current/base, nil
}
