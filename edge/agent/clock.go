package agent

import (
	"math"
	"time"
)

// clock is the agent's time: real, or simulated as sim = simStart + (now − realStart) × speed.
type clock struct {
	now       func() time.Time
	sim       bool
	simStart  time.Time
	realStart time.Time
	speed     float64
}

func newClock(c ClockConfig, now func() time.Time) clock {
	if c.SimStart.IsZero() {
		return clock{now: now}
	}
	k := clock{now: now, sim: true, simStart: c.SimStart, realStart: c.RealStart, speed: c.Speed}
	if k.realStart.IsZero() {
		k.realStart = now()
	}
	if k.speed == 0 {
		k.speed = 1
	}
	return k
}

// Now is the current (possibly simulated) time.
func (c clock) Now() time.Time {
	n := c.now()
	if !c.sim {
		return n
	}
	return c.simStart.Add(time.Duration(float64(n.Sub(c.realStart)) * c.speed))
}

// real converts a span of the clock's time into real time, rounding up so that a wait of
// real(d) lasts at least d on the clock.
func (c clock) real(d time.Duration) time.Duration {
	if !c.sim {
		return d
	}
	return time.Duration(math.Ceil(float64(d) / c.speed))
}

// slot is the start of the grid slot of interval that t falls in: floor(t/interval)·interval
// counted from the Unix epoch.
func slot(t time.Time, interval time.Duration) time.Time {
	ns, iv := t.UnixNano(), interval.Nanoseconds()
	r := ns % iv
	if r < 0 {
		r += iv
	}
	return time.Unix(0, ns-r).In(t.Location())
}
