package accounting

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file turns the register readings of one counter meter into consecutive intervals of
// consumption, each with quality flags an auditor can follow line by line. The rules, in the
// order they are applied (reference/zero-carbon-park.md §9 lists the peers' mistakes they avoid):
//
//  1. Order. Readings are sorted by time; for one instant the value given last wins. A value that
//     is not a register value (NaN, ±Inf, negative) is dropped with a zero_glitch event and flags
//     the interval across it (when it was the last value given for its instant, the instant has
//     no reading).
//  2. Outliers, before any delta. A reading r_i whose neighbours satisfy r_{i-1} <= r_{i+1} but
//     that lies outside them (r_i < r_{i-1} or r_i > r_{i+1}) is held out. r_{i-1} is the last
//     accepted reading, r_{i+1} the next reading.
//     - A run of consecutive equal readings is tested as one reading: two zeros in a row are
//     two glitches, not a reset followed by a phantom jump.
//     - A downward outlier is QualityZeroGlitch (a 0, or a dip such as 215.3 -> 215.2 ->
//     215.5); an upward one always comes back down and is QualitySpike, its HeldOut the jump
//     to it from the last accepted reading.
//     - An inverted pair: when r_i > r_{i+1} and r_{i+1} in turn qualifies as a dip (r_i <=
//     r_{i+2}), either could be the outlier. The one whose removal leaves the smaller peak
//     consumption rate is held out, the dip on a tie (see dipFollows); otherwise a good
//     reading would be held out in favour of the dip, and the inflated delta after the dip
//     could then be held out as a spike, losing energy.
//     - The first and the last reading are never tested (a neighbour is missing); a trailing
//     jump beyond the rated capacity is caught by rule 3. No test is made across a replacement
//     record: the neighbours belong to different registers.
//  3. Deltas between consecutive accepted readings, d = r_i - r_{i-1}, booked × Multiplier:
//     - a replacement record with At in (t_{i-1}, t_i], whatever the sign of d: (OldFinal -
//     r_{i-1}) + (r_i - NewInitial), each part floored at 0 (several records chain), flag
//     replacement;
//     - d >= 0: booked when within the bound, see below;
//     - d < 0 and Rollover > 0 with r_{i-1} <= Rollover: wrapped = (Rollover - r_{i-1}) + r_i is
//     booked as a rollover when plausible: within the bound when RatedCapacity is set, else
//     wrapped < Rollover/2;
//     - any other drop is a reset: the interval books 0 (never negative, never r_i) and counting
//     continues from r_i.
//     The bound is RatedCapacity (consumption per hour, after the multiplier) × Δt in hours ×
//     1.05. A booked quantity beyond it (a register jump that does not come back, an implausible
//     replacement record) is held out: the interval books 0, flag spike, HeldOut the quantity,
//     and counting continues from r_i, so energy is never invented.
//  4. Gaps. Accepted readings further apart than 1.5 × Interval make a gap|estimated interval:
//     its delta is kept whole and Hourly spreads it linearly over the gap. A held-out reading
//     therefore leaves a gap when its neighbours are more than 1.5 intervals apart.
//  5. Every booked and held-out quantity is in the meter's unit × Multiplier.
//
// Rollovers are normal operation and make no event; resets, replacements, glitches, spikes and
// gaps each make one IntervalEvent for the data-quality alerts.

// IntervalMeter is what the engine needs of a registry meter.
type IntervalMeter struct {
	ID string
	// Multiplier (> 0): interval consumption = register delta × Multiplier. A meter whose
	// multiplier is not a finite number > 0 yields no intervals: its data stays missing rather
	// than booked wrongly.
	Multiplier float64
	// Rollover is the register value at which the counter wraps; 0: it never wraps.
	Rollover float64
	// RatedCapacity is the physical bound on consumption per hour, in the meter's unit after the
	// multiplier (what Quantity is in); 0: not set.
	RatedCapacity float64
	// Interval is the expected reading interval; 0: no gap detection.
	Interval time.Duration
}

// Reading is a counter register value as stored (the wire value, before the multiplier).
type Reading struct {
	TS    time.Time
	Value float64
}

// Replacement is an explicit meter replacement record: the old register's final value and the
// new one's initial value at At.
type Replacement struct {
	At                   time.Time
	OldFinal, NewInitial float64
}

// Quality is a set of bit flags describing how an interval's quantity was obtained.
type Quality uint16

// Quality flags.
const (
	// QualityRollover: a drop the rollover value explains: wrapped, remainder kept.
	QualityRollover Quality = 1 << iota
	// QualityReset: any other drop: new segment, the interval across it books 0.
	QualityReset
	// QualityReplacement: an explicit replacement record was honoured.
	QualityReplacement
	// QualityZeroGlitch: a reading below its neighbours (a 0, or a dip) was ignored, or an
	// invalid value (NaN, ±Inf, negative) was dropped.
	QualityZeroGlitch
	// QualitySpike: a reading or delta beyond the physical bound, or above both neighbours,
	// was held out.
	QualitySpike
	// QualityGap: accepted readings further apart than the interval allows: the delta is
	// spread linearly and estimated.
	QualityGap
	// QualityEstimated: the quantity is (partly) estimated.
	QualityEstimated
)

func intervalQualityName(bit Quality) string {
	switch bit {
	case QualityRollover:
		return "rollover"
	case QualityReset:
		return "reset"
	case QualityReplacement:
		return "replacement"
	case QualityZeroGlitch:
		return "zero_glitch"
	case QualitySpike:
		return "spike"
	case QualityGap:
		return "gap"
	case QualityEstimated:
		return "estimated"
	}
	return "0x" + strconv.FormatUint(uint64(bit), 16)
}

// String names the flags in bit order joined by "|", e.g. "rollover|gap"; "" for none.
func (q Quality) String() string {
	if q == 0 {
		return ""
	}
	var b strings.Builder
	for bit := Quality(1); bit != 0; bit <<= 1 {
		if q&bit == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString(intervalQualityName(bit))
	}
	return b.String()
}

// Interval is the consumption between two consecutive accepted readings.
type Interval struct {
	From, To time.Time
	// Quantity is the consumption in the meter's unit × multiplier, never negative.
	Quantity float64
	Quality  Quality
	// HeldOut, for spikes, is the quantity held out (reported, not booked): the jump to a
	// held-out reading from the last accepted one, or the delta beyond the bound.
	HeldOut float64
}

// IntervalEvent is one reset, replacement, glitch, spike or gap; it feeds data-quality alerts.
type IntervalEvent struct {
	At      time.Time
	Quality Quality
	Detail  string
}

// Tolerances of rules 3 and 4.
const (
	intervalBoundTolerance = 1.05 // a delta may exceed RatedCapacity × Δt by 5 % before it is a spike
	intervalGapFactor      = 1.5  // accepted readings more than 1.5 intervals apart make a gap
)

// Intervals turns readings into consecutive intervals between accepted readings, applying the
// rules at the top of this file. Readings may come in any order and repeat; replacements too.
// Events are in time order.
func Intervals(m IntervalMeter, readings []Reading, repl []Replacement) ([]Interval, []IntervalEvent) {
	if !(m.Multiplier > 0) || math.IsInf(m.Multiplier, 0) {
		return nil, nil
	}
	e := intervalEngine{m: m}
	rs := e.prepare(readings)
	e.reps = intervalSortReplacements(repl)
	if len(rs) == 0 {
		return nil, e.sortedEvents()
	}
	e.intervals = make([]Interval, 0, len(rs)-1)

	// Rule 2: a single pass that holds out outliers and books each accepted reading against the
	// last accepted one (rules 3 and 4).
	var last Reading
	haveLast := false
	for i := 0; i < len(rs); {
		r := rs[i]
		if haveLast && r.Value != last.Value { // a reading equal to the last accepted one is never an outlier
			// The run of readings equal to r, and the reading after it.
			j := intervalRunEnd(rs, i)
			if j < len(rs) && !e.replacedIn(last.TS, rs[j].TS) {
				prev, next := last.Value, rs[j].Value
				if prev <= next && (r.Value < prev || (r.Value > next && !e.dipFollows(last, rs, i, j))) {
					e.holdOut(rs[i:j], prev, next)
					i = j
					continue
				}
			}
		}
		if haveLast {
			e.book(last, r)
		}
		last, haveLast = r, true
		i++
	}
	e.flagInvalid()
	return e.intervals, e.sortedEvents()
}

// intervalEngine holds the state of one Intervals call.
type intervalEngine struct {
	m         IntervalMeter
	reps      []Replacement
	intervals []Interval
	events    []IntervalEvent
	invalid   []time.Time // instants of dropped invalid values, in time order

	// Held out since the last accepted reading; they go to the next interval.
	pendingQuality Quality
	pendingHeldOut float64
}

// prepare applies rule 1: sort, keep the last value given for an instant, drop invalid values.
func (e *intervalEngine) prepare(readings []Reading) []Reading {
	rs := slices.Clone(readings)
	slices.SortStableFunc(rs, func(a, b Reading) int { return a.TS.Compare(b.TS) })
	out := rs[:0]
	for i, r := range rs {
		if i+1 < len(rs) && rs[i+1].TS.Equal(r.TS) {
			continue // a later value for the same instant wins
		}
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || r.Value < 0 {
			e.invalid = append(e.invalid, r.TS)
			e.event(r.TS, QualityZeroGlitch, "invalid register value %s dropped", intervalNum(r.Value))
			continue
		}
		out = append(out, r)
	}
	return out
}

func intervalSortReplacements(repl []Replacement) []Replacement {
	out := make([]Replacement, 0, len(repl))
	for _, r := range repl {
		if intervalFinite(r.OldFinal) && intervalFinite(r.NewInitial) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Replacement) int { return a.At.Compare(b.At) })
	return out
}

// intervalRunEnd returns the index after the run of readings equal to rs[i].
func intervalRunEnd(rs []Reading, i int) int {
	j := i + 1
	for j < len(rs) && rs[j].Value == rs[i].Value {
		j++
	}
	return j
}

// dipFollows settles an inverted pair (rule 2): the run rs[i:j] lies above the next reading
// rs[j] and qualifies as an upward outlier, but rs[j] may instead be a dip below it: rs[i] <=
// rs[k], the reading after rs[j]'s run, and rs[k] is itself confirmed by the reading after its
// own run (or is the last one), so that two spikes around a low reading are not taken for a
// dip between two good ones. Either removal then leaves a monotone series, and the one that
// leaves the smaller peak consumption rate wins; on a tie the dip is held out, as in
// 215.3 -> 215.2 -> 215.5. It reports whether rs[j] is to be held out instead of rs[i:j].
func (e *intervalEngine) dipFollows(last Reading, rs []Reading, i, j int) bool {
	k := intervalRunEnd(rs, j)
	if k >= len(rs) || rs[i].Value > rs[k].Value || e.replacedIn(rs[j-1].TS, rs[k].TS) {
		return false
	}
	if l := intervalRunEnd(rs, k); l < len(rs) && rs[k].Value > rs[l].Value {
		return false
	}
	rate := func(a, b Reading) float64 { return (b.Value - a.Value) / float64(b.TS.Sub(a.TS)) }
	spikeOut := math.Max(rate(last, rs[j]), rate(rs[k-1], rs[k]))
	dipOut := math.Max(rate(last, rs[i]), rate(rs[j-1], rs[k]))
	return dipOut <= spikeOut
}

// replacementsIn returns the replacement records with At in (from, to].
func (e *intervalEngine) replacementsIn(from, to time.Time) []Replacement {
	i, _ := slices.BinarySearchFunc(e.reps, from, func(r Replacement, t time.Time) int {
		if r.At.After(t) {
			return 1
		}
		return -1
	})
	j := i
	for j < len(e.reps) && !e.reps[j].At.After(to) {
		j++
	}
	return e.reps[i:j]
}

func (e *intervalEngine) replacedIn(from, to time.Time) bool {
	return len(e.replacementsIn(from, to)) > 0
}

// holdOut records a run of equal outlier readings between the accepted prev and the next
// reading (rule 2).
func (e *intervalEngine) holdOut(run []Reading, prev, next float64) {
	v := run[0].Value
	what := ""
	if len(run) > 1 {
		what = " in " + strconv.Itoa(len(run)) + " consecutive readings"
	}
	switch {
	case v < prev && v == 0:
		e.pendingQuality |= QualityZeroGlitch
		e.event(run[0].TS, QualityZeroGlitch, "register read 0%s between %s and %s: held out",
			what, intervalNum(prev), intervalNum(next))
	case v < prev:
		e.pendingQuality |= QualityZeroGlitch
		e.event(run[0].TS, QualityZeroGlitch, "register dipped to %s%s between %s and %s: held out",
			intervalNum(v), what, intervalNum(prev), intervalNum(next))
	default:
		jump := (v - prev) * e.m.Multiplier
		e.pendingQuality |= QualitySpike
		e.pendingHeldOut += jump
		e.event(run[0].TS, QualitySpike, "register jumped to %s%s between %s and %s and came back: held out, jump %s",
			intervalNum(v), what, intervalNum(prev), intervalNum(next), intervalNum(jump))
	}
}

// bound is the largest quantity plausible over dt (rule 3); +Inf when RatedCapacity is not set.
func (e *intervalEngine) bound(dt time.Duration) float64 {
	c := e.m.RatedCapacity
	if !(c > 0) || math.IsInf(c, 0) {
		return math.Inf(1)
	}
	return c * dt.Hours() * intervalBoundTolerance
}

func (e *intervalEngine) capacitySet() bool {
	return e.m.RatedCapacity > 0 && !math.IsInf(e.m.RatedCapacity, 0)
}

// book appends the interval from the accepted reading a to the accepted reading b (rules 3–5).
func (e *intervalEngine) book(a, b Reading) {
	mult := e.m.Multiplier
	dt := b.TS.Sub(a.TS)
	bound := e.bound(dt)
	iv := Interval{From: a.TS, To: b.TS, Quality: e.pendingQuality, HeldOut: e.pendingHeldOut}
	e.pendingQuality, e.pendingHeldOut = 0, 0

	// booked takes the register consumption reg, holding reg × mult out when it is beyond the
	// bound; what names reg in the event.
	booked := func(reg float64, what string) {
		q := reg * mult
		if q <= bound { // false for +Inf and NaN too
			iv.Quantity = q
			return
		}
		if !intervalFinite(q) {
			q = math.MaxFloat64
		}
		iv.Quality |= QualitySpike
		iv.HeldOut += q
		e.event(b.TS, QualitySpike, "%s %s × multiplier %s = %s in %s is above the bound %s (rated capacity %s per hour): held out, counting continues from %s",
			what, intervalNum(reg), intervalNum(mult), intervalNum(q), dt, intervalNum(bound), intervalNum(e.m.RatedCapacity), intervalNum(b.Value))
	}

	d := b.Value - a.Value
	switch reps := e.replacementsIn(a.TS, b.TS); {
	case len(reps) > 0:
		base, reg := a.Value, 0.0
		for _, r := range reps {
			reg += math.Max(0, r.OldFinal-base)
			base = r.NewInitial
			e.event(r.At, QualityReplacement, "meter replaced: old register final %s, new register initial %s",
				intervalNum(r.OldFinal), intervalNum(r.NewInitial))
		}
		reg += math.Max(0, b.Value-base)
		iv.Quality |= QualityReplacement
		booked(reg, "register consumption across the replacement")
	case d >= 0:
		booked(d, "register rise")
	default:
		r := e.m.Rollover
		if r > 0 && !math.IsInf(r, 0) && a.Value <= r {
			wrapped := (r - a.Value) + b.Value
			q := wrapped * mult
			plausible := wrapped < r/2
			if e.capacitySet() {
				plausible = q <= bound
			}
			if plausible && intervalFinite(q) {
				iv.Quantity = q
				iv.Quality |= QualityRollover
				break
			}
		}
		iv.Quality |= QualityReset
		e.event(b.TS, QualityReset, "register fell from %s to %s with no replacement record and no plausible rollover: interval booked 0, counting continues from %s",
			intervalNum(a.Value), intervalNum(b.Value), intervalNum(b.Value))
	}

	if e.m.Interval > 0 && float64(dt) > intervalGapFactor*float64(e.m.Interval) {
		iv.Quality |= QualityGap | QualityEstimated
		e.event(a.TS, QualityGap, "no accepted reading for %s (expected every %s): quantity %s spread linearly until %s",
			dt, e.m.Interval, intervalNum(iv.Quantity), b.TS.Format(time.RFC3339))
	}
	e.intervals = append(e.intervals, iv)
}

// flagInvalid marks the intervals across dropped invalid values (rule 1).
func (e *intervalEngine) flagInvalid() {
	k := 0
	for _, t := range e.invalid {
		for k < len(e.intervals) && !e.intervals[k].To.After(t) {
			k++
		}
		if k < len(e.intervals) && e.intervals[k].From.Before(t) {
			e.intervals[k].Quality |= QualityZeroGlitch
		}
	}
}

func (e *intervalEngine) event(at time.Time, q Quality, format string, args ...any) {
	e.events = append(e.events, IntervalEvent{At: at, Quality: q, Detail: fmt.Sprintf(format, args...)})
}

func (e *intervalEngine) sortedEvents() []IntervalEvent {
	slices.SortStableFunc(e.events, func(a, b IntervalEvent) int { return a.At.Compare(b.At) })
	return e.events
}

func intervalFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// intervalNum formats a value for an event detail: 12 significant digits (0.2, not
// 0.19999999999998863), no exponent below 1e21.
func intervalNum(f float64) string {
	if !intervalFinite(f) || math.Abs(f) >= 1e21 {
		return strconv.FormatFloat(f, 'g', 12, 64)
	}
	if r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 12, 64), 64); err == nil {
		f = r
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
