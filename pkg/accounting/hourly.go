package accounting

import (
	"math"
	"time"
)

// Hour is the consumption of one clock hour.
type Hour struct {
	// Start is the hour's start in UTC. Hours are whole UTC hours, which are whole hours of
	// Asia/Shanghai and of every zone with a whole-hour offset too.
	Start    time.Time
	Quantity float64
	// Estimated is the part of Quantity that comes from estimated (gap-spread) intervals.
	Estimated float64
	// Coverage is the fraction of the hour covered by intervals (0..1). Coverage 0 means the
	// hour is MISSING, not that nothing was consumed.
	Coverage float64
	// Quality is the union of the qualities of the intervals overlapping the hour.
	Quality Quality
}

// Hourly spreads intervals over the hours of [from, to) in proportion to time: an interval
// crossing hour boundaries is split linearly, so the hourly sums equal the interval totals.
//
// from is rounded down and to up to whole hours; an empty range gives no hours. Only the part of an interval inside the
// range is counted, and each hour's share depends only on the interval and the hour, so the
// hours of [a, b) and [b, c) are exactly those of [a, c). An interval of zero length (not made
// by Intervals) books its quantity in the hour that contains it without covering it.
func Hourly(intervals []Interval, from, to time.Time) []Hour {
	if !from.Before(to) {
		return nil
	}
	// Hours are indexed in Unix seconds: time.Duration saturates at 292 years.
	start := from.UTC().Truncate(time.Hour).Unix()
	end := to.UTC()
	if t := end.Truncate(time.Hour); t.Before(end) {
		end = t.Add(time.Hour)
	}
	n := int((end.Unix() - start) / 3600)
	hourStart := func(k int) time.Time { return time.Unix(start+int64(k)*3600, 0).UTC() }
	index := func(t time.Time) int { return int((t.Unix() - start) / 3600) } // t >= start
	hours := make([]Hour, n)
	for k := range hours {
		hours[k].Start = hourStart(k)
	}
	first, last := hourStart(0), hourStart(n)
	covered := make([]time.Duration, n)

	for _, iv := range intervals {
		if !iv.From.Before(iv.To) {
			if !iv.From.Before(first) && iv.From.Before(last) {
				hourlyAdd(&hours[index(iv.From)], iv, iv.Quantity)
			}
			continue
		}
		lo, hi := iv.From, iv.To
		if lo.Before(first) {
			lo = first
		}
		if hi.After(last) {
			hi = last
		}
		if !lo.Before(hi) {
			continue
		}
		// share(a, b) = Q·f(b) − Q·f(a), f(t) = (t − From)/(To − From): the shares telescope to
		// Q over the whole interval and none is negative (f is monotone).
		dur := hourlySeconds(iv.From, iv.To)
		at := func(t time.Time) float64 { return iv.Quantity * (hourlySeconds(iv.From, t) / dur) }
		k0, k1 := index(lo), index(hi)
		if hourStart(k1).Equal(hi) {
			k1-- // hi is exclusive
		}
		for k := k0; k <= k1; k++ {
			a, b := hours[k].Start, hours[k].Start.Add(time.Hour)
			if a.Before(iv.From) {
				a = iv.From
			}
			if b.After(iv.To) {
				b = iv.To
			}
			hourlyAdd(&hours[k], iv, at(b)-at(a))
			covered[k] += b.Sub(a)
		}
	}
	for k := range hours {
		hours[k].Coverage = math.Min(1, float64(covered[k])/float64(time.Hour))
	}
	return hours
}

// hourlySeconds is b − a in seconds, without the 292-year limit of time.Duration.
func hourlySeconds(a, b time.Time) float64 {
	return float64(b.Unix()-a.Unix()) + float64(b.Nanosecond()-a.Nanosecond())/1e9
}

func hourlyAdd(h *Hour, iv Interval, share float64) {
	h.Quantity += share
	if iv.Quality&QualityEstimated != 0 {
		h.Estimated += share
	}
	h.Quality |= iv.Quality
}
