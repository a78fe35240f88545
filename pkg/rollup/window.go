package rollup

import (
	"context"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// Which hours a dirty run recomputes, and why that is enough.
//
// accounting.Intervals is a left-to-right scan over a meter's valid readings (rule 1 drops NaN,
// ±Inf and negative values) whose only state is the last accepted reading (and what was held
// out since, which only decorates the next interval). Readings of equal value in a row form a
// run and are decided together; the decision on a run looks at the last accepted reading and
// at most at the next three runs (the next run, and dipFollows' runs k and l), and at the
// replacement records between them. An interval joins two consecutive accepted readings, and
// Hourly gives an hour the shares of the intervals overlapping it, each share depending only
// on its interval and the hour. So:
//
//  1. Exact right edge. Let the fetched readings form runs 0..M-1. Every run i <= M-4 has its
//     three following runs fetched (a run cut off by the end of the fetch still starts where it
//     starts), so its decision is the one the scan over all readings makes, provided the scan
//     entered the window in the same state (2). Let b' be the last accepted reading in a run
//     <= M-4: every interval ending at or before b' is exact, and the hours before
//     floorHour(b') only overlap such intervals. When nothing follows the fetch (the live
//     head), the scan over all readings ends where ours does, and every hour up to
//     ceilHour(last accepted reading) is exact; the last one is provisional and is rewritten
//     when the next readings arrive and mark their hour.
//  2. Exact left edge. Our scan starts by accepting the first fetched reading; the full scan
//     may have held it out or have a different last accepted reading. Once both accept the
//     same reading they are in the same state and stay so. We assume they have met by run
//     syncRuns: an outlier is held out only against good neighbours, so after an isolated
//     glitch, spike, reset or rollover the next good reading is accepted by both scans. (The
//     assumption fails only for pathological data such as several outliers in a row, or an
//     alternation 10, 0, 10, 0 that no finite context settles.) The hours from ceilHour(x), x
//     the first accepted reading in a run >= syncRuns, are then exact. When nothing precedes
//     the fetch (the meter's first data, or nothing within contextLookback), the scans start
//     alike and every hour from floorHour(first accepted reading) is exact.
//  3. Coverage. New readings (and replacement records) in the dirty run [H0, H1) change the
//     decisions of their own runs and of the three runs before the first of them (run T0,
//     the run of the first reading at or after H0), and, through the last accepted reading,
//     the decisions after the last of them (run P, of the last reading before H1) until the
//     scans with and without them meet again, by run P+1+syncRuns as in (2). Let a be the last
//     accepted reading in a run < T0-3 and b the first accepted reading in a run >=
//     P+1+syncRuns: intervals ending at or before a, and starting at or after b, are unchanged,
//     so only hours in [floorHour(a), ceilHour(b)) can change.
//
// The engine therefore writes [ceilHour(x), floorHour(b')) (or the open ends of 1 and 2) and
// fetches more context, in runs rather than readings, until that range contains
// [floorHour(a), ceilHour(b)): a meter that reads the same value for a day needs a day of
// context, one that changes at every reading only a few readings. Each dirty run fetches
// [H0-contextMargin, H1+contextMargin) in one query, then, for the meters whose range is still
// short, their last (first) n readings before (after) it, n growing 8, 64, 512, ... Hours no
// interval touches are not written: a missing hour stays absent. Readings older than
// contextLookback before the window count as absent, so a meter silent for longer restarts.
// The property test TestIncrementalEqualsBatch checks the whole argument.
const (
	contextMargin   = 2 * time.Hour
	contextLookback = 35 * 24 * time.Hour
	syncRuns        = 3
	lookaheadRuns   = 3
	firstContext    = 8
	maxRounds       = 5
)

// series is one meter's readings around a dirty run.
type series struct {
	m                  *meterInfo
	before, win, after []influx.Sample
	// leftDone: before holds every reading within the lookback; rightDone: likewise after.
	leftDone, rightDone bool

	stale bool // the fields below need computing
	all   []influx.Sample
	ivs   []accounting.Interval
	start time.Time // hours [start, end) are exact
	end   time.Time
	ok    [2]bool // the exact range covers the changed range on the left, on the right
}

// window recomputes the hours of all counter meters of a park around the dirty run r, adding
// them to out.
func (e *Engine) window(ctx context.Context, park string, meters []meterInfo, r span, fc *factorCache, out map[hourKey]influx.RollupPoint) (Stats, error) {
	var st Stats
	lo, hi := r.from.Add(-contextMargin), r.to.Add(contextMargin)
	// Every meter of the park: a filter naming hundreds of meters costs InfluxDB more than the
	// readings of the few gauges it would leave out.
	win, err := e.opts.Readings.ReadingsWindow(ctx, park, nil, lo, hi)
	if err != nil {
		return st, err
	}
	ss := make([]*series, len(meters))
	for i := range meters {
		ss[i] = &series{m: &meters[i], win: win[meters[i].ID], stale: true}
	}
	for round := 0; ; round++ {
		var needL, needR []string
		for _, s := range ss {
			s.compute(r)
			if !s.ok[0] {
				needL = append(needL, s.m.ID)
			}
			if !s.ok[1] {
				needR = append(needR, s.m.ID)
			}
		}
		if len(needL)+len(needR) == 0 {
			break
		}
		if round == maxRounds {
			e.log.Warn("rollup context too short: hours near the edges may be stale", "park", park,
				"from", r.from, "to", r.to, "meters_left", len(needL), "meters_right", len(needR))
			break
		}
		n := firstContext << (3 * round)
		if len(needL) > 0 {
			got, err := e.opts.Readings.ReadingsBefore(ctx, park, needL, lo, n, contextLookback)
			if err != nil {
				return st, err
			}
			for _, s := range ss {
				if slices.Contains(needL, s.m.ID) {
					s.before, s.leftDone, s.stale = got[s.m.ID], len(got[s.m.ID]) < n, true
				}
			}
		}
		if len(needR) > 0 {
			got, err := e.opts.Readings.ReadingsAfter(ctx, park, needR, hi, n, contextLookback)
			if err != nil {
				return st, err
			}
			for _, s := range ss {
				if slices.Contains(needR, s.m.ID) {
					s.after, s.rightDone, s.stale = got[s.m.ID], len(got[s.m.ID]) < n, true
				}
			}
		}
	}
	for _, s := range ss {
		st.ReadingsRead += len(s.all)
		if len(s.ivs) == 0 || s.start.IsZero() || s.end.IsZero() || !s.start.Before(s.end) {
			continue
		}
		st.Meters++
		ts := make([]time.Time, len(s.all))
		for i, x := range s.all {
			ts[i] = x.TS
		}
		for _, h := range accounting.Hourly(s.ivs, s.start, s.end) {
			if h.Coverage == 0 {
				continue // no interval touches it
			}
			received := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(h.Start.Add(time.Hour)) }) -
				sort.Search(len(ts), func(i int) bool { return !ts[i].Before(h.Start) })
			out[hourKey{s.m.ID, h.Start}] = e.hourPoint(park, s.m, h, int64(received), fc)
		}
	}
	return st, nil
}

// compute runs Intervals over the fetched readings and finds the exact range and whether it
// covers the changed range of the dirty run r (see the comment above).
func (s *series) compute(r span) {
	if !s.stale {
		return
	}
	s.stale = false
	s.all = slices.Concat(s.before, s.win, s.after)
	rs := make([]accounting.Reading, len(s.all))
	for i, x := range s.all {
		rs[i] = accounting.Reading{TS: x.TS, Value: x.Value}
	}
	s.ivs, _ = accounting.Intervals(accountingMeter(s.m), rs, s.m.repl)
	s.start, s.end, s.ok = time.Time{}, time.Time{}, [2]bool{s.leftDone, s.rightDone}

	// Runs of equal valid values, as Intervals sees them.
	var valid []influx.Sample
	var runOf []int
	for _, x := range s.all {
		if math.IsNaN(x.Value) || math.IsInf(x.Value, 0) || x.Value < 0 {
			continue
		}
		k := 0
		if n := len(valid); n > 0 {
			k = runOf[n-1]
			if x.Value != valid[n-1].Value {
				k++
			}
		}
		valid = append(valid, x)
		runOf = append(runOf, k)
	}
	if len(s.ivs) == 0 {
		return
	}
	runAt := func(t time.Time) int { // the run of the valid reading at t
		i := sort.Search(len(valid), func(i int) bool { return !valid[i].TS.Before(t) })
		return runOf[i]
	}
	accepted := make([]time.Time, 0, len(s.ivs)+1)
	accepted = append(accepted, s.ivs[0].From)
	for _, iv := range s.ivs {
		accepted = append(accepted, iv.To)
	}
	accRun := make([]int, len(accepted))
	for i, t := range accepted {
		accRun[i] = runAt(t)
	}
	first := func(minRun int) (time.Time, bool) { // first accepted reading in a run >= minRun
		i := sort.SearchInts(accRun, minRun)
		if i == len(accRun) {
			return time.Time{}, false
		}
		return accepted[i], true
	}
	last := func(maxRun int) (time.Time, bool) { // last accepted reading in a run <= maxRun
		i := sort.SearchInts(accRun, maxRun+1) - 1
		if i < 0 {
			return time.Time{}, false
		}
		return accepted[i], true
	}
	M := runOf[len(runOf)-1] + 1
	t0 := M // run of the first valid reading at or after r.from
	if i := sort.Search(len(valid), func(i int) bool { return !valid[i].TS.Before(r.from) }); i < len(valid) {
		t0 = runOf[i]
	}
	p := -1 // run of the last valid reading before r.to
	if i := sort.Search(len(valid), func(i int) bool { return !valid[i].TS.Before(r.to) }) - 1; i >= 0 {
		p = runOf[i]
	}

	if s.leftDone {
		s.start = floorHour(accepted[0])
	} else if x, ok := first(syncRuns); ok {
		s.start = ceilHour(x)
		a, ok := last(t0 - 4)
		s.ok[0] = ok && !s.start.After(floorHour(a))
	}
	if s.rightDone {
		s.end = ceilHour(accepted[len(accepted)-1])
	} else if b2, ok := last(M - 1 - lookaheadRuns); ok {
		s.end = floorHour(b2)
		b, ok := first(p + 1 + syncRuns)
		s.ok[1] = ok && !ceilHour(b).After(s.end)
	}
}

func accountingMeter(m *meterInfo) accounting.IntervalMeter {
	return accounting.IntervalMeter{
		ID:            m.ID,
		Multiplier:    m.Multiplier,
		Rollover:      m.Rollover,
		RatedCapacity: m.RatedCapacity,
		Interval:      time.Duration(m.IntervalSeconds) * time.Second,
	}
}

func floorHour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

func ceilHour(t time.Time) time.Time {
	f := floorHour(t)
	if f.Before(t) {
		return f.Add(time.Hour)
	}
	return f
}
