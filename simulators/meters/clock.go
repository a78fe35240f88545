package meters

import (
	"math"
	"time"
)

// Clock maps real time to simulated time: Sim(t) = SimStart + (t − RealStart) × Speed. The
// agent is configured with the same three values to stamp readings in simulated time.
type Clock struct {
	SimStart  time.Time `json:"sim_start" yaml:"sim_start"`
	RealStart time.Time `json:"real_start" yaml:"real_start"`
	// Speed is simulated seconds per real second; 0 counts as 1.
	Speed float64 `json:"speed" yaml:"speed"`
}

// Sim is the simulated time at real time t.
func (c Clock) Sim(t time.Time) time.Time {
	return c.SimStart.Add(scaleDuration(t.Sub(c.RealStart), c.speed()))
}

// Real is the real time at which the simulated clock shows sim.
func (c Clock) Real(sim time.Time) time.Time {
	return c.RealStart.Add(scaleDuration(sim.Sub(c.SimStart), 1/c.speed()))
}

func (c Clock) speed() float64 {
	if c.Speed == 0 {
		return 1
	}
	return c.Speed
}

// scaleDuration multiplies d by s, exactly when s is a whole number and the product fits.
func scaleDuration(d time.Duration, s float64) time.Duration {
	if s == math.Trunc(s) && math.Abs(s) < 1<<31 {
		n := int64(s)
		if p := int64(d) * n; n == 0 || p/n == int64(d) {
			return time.Duration(p)
		}
	}
	return time.Duration(math.Round(float64(d) * s))
}
