package meters

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Profile is a load shape: the rate (kW for electricity, m³/h for gas …) at time t is
//
//	(Base + Peak × Hours[hour of day] × Weekend on Saturday and Sunday) × (1 + Noise × u)
//
// with u uniform in [−1, 1) drawn from (seed, meter, step). A meter multiplies it by its
// factor. Counters never run backwards: their rate is clamped at zero.
type Profile struct {
	// Base is the load that never stops.
	Base float64 `yaml:"base"`
	// Peak is the shift load at hour factor 1.
	Peak float64 `yaml:"peak"`
	// Pattern names the hour factors: flat, day_shift, two_shift, three_shift, office or
	// solar. Hours overrides it.
	Pattern string `yaml:"pattern"`
	// Hours are 24 factors for the hours 00–23 of the park's local day.
	Hours []float64 `yaml:"hours"`
	// Weekend multiplies the shift load on Saturday and Sunday; default 1.
	Weekend *float64 `yaml:"weekend"`
	// Noise is the relative amplitude of the random variation, 0 ≤ Noise < 1.
	Noise float64 `yaml:"noise"`
}

// Patterns lists the named hour patterns.
func Patterns() []string {
	return []string{"flat", "day_shift", "two_shift", "three_shift", "office", "solar"}
}

func pattern(name string) []float64 {
	h := make([]float64, 24)
	switch name {
	case "", "flat":
		for i := range h {
			h[i] = 1
		}
	case "day_shift": // one shift 08–17 with a lunch dip
		for i := range h {
			switch {
			case i == 7 || i == 17:
				h[i] = 0.4
			case i == 12:
				h[i] = 0.6
			case i >= 8 && i < 17:
				h[i] = 1
			default:
				h[i] = 0.05
			}
		}
	case "two_shift": // 06–22
		for i := range h {
			if i >= 6 && i < 22 {
				h[i] = 1
			} else {
				h[i] = 0.1
			}
		}
	case "three_shift": // around the clock, dips at shift changes
		for i := range h {
			h[i] = 0.9
			if i%8 == 0 {
				h[i] = 0.7
			}
		}
	case "office":
		for i := range h {
			switch {
			case i >= 8 && i < 18:
				h[i] = 1
			case i == 7 || i == 18:
				h[i] = 0.5
			default:
				h[i] = 0.1
			}
		}
	case "solar": // generation, 06–18, highest at noon
		for i := 6; i < 18; i++ {
			h[i] = math.Sin(math.Pi * (float64(i) + 0.5 - 6) / 12)
		}
	default:
		return nil
	}
	return h
}

func (p Profile) validate() error {
	var errs []error
	for _, v := range []struct {
		name string
		v    float64
	}{{"base", p.Base}, {"peak", p.Peak}, {"noise", p.Noise}} {
		if math.IsNaN(v.v) || math.IsInf(v.v, 0) {
			errs = append(errs, fmt.Errorf("%s is not a finite number", v.name))
		}
	}
	if p.Noise < 0 || p.Noise >= 1 {
		errs = append(errs, fmt.Errorf("noise %v: want 0 ≤ noise < 1", p.Noise))
	}
	if p.Hours != nil {
		if p.Pattern != "" {
			errs = append(errs, fmt.Errorf("both pattern and hours: give one"))
		}
		if len(p.Hours) != 24 {
			errs = append(errs, fmt.Errorf("hours has %d factors, want 24", len(p.Hours)))
		}
		for i, h := range p.Hours {
			if math.IsNaN(h) || math.IsInf(h, 0) {
				errs = append(errs, fmt.Errorf("hours[%d] is not a finite number", i))
			}
		}
	} else if pattern(p.Pattern) == nil {
		errs = append(errs, fmt.Errorf("unknown pattern %q (want one of %v)", p.Pattern, Patterns()))
	}
	if p.Weekend != nil && (*p.Weekend < 0 || math.IsNaN(*p.Weekend) || math.IsInf(*p.Weekend, 0)) {
		errs = append(errs, fmt.Errorf("weekend %v: want a factor ≥ 0", *p.Weekend))
	}
	return errors.Join(errs...)
}

// shape is a validated profile ready to evaluate.
type shape struct {
	base, peak, weekend, noise float64
	hours                      []float64
	loc                        *time.Location
}

func newShape(p Profile, loc *time.Location) *shape {
	s := &shape{base: p.Base, peak: p.Peak, noise: p.Noise, weekend: 1, loc: loc, hours: slices.Clone(p.Hours)}
	if s.hours == nil {
		s.hours = pattern(p.Pattern)
	}
	if p.Weekend != nil {
		s.weekend = *p.Weekend
	}
	return s
}

// rate is the load at t with noise draw u in [−1, 1).
func (s *shape) rate(t time.Time, u float64) float64 {
	t = t.In(s.loc)
	shift := s.peak * s.hours[t.Hour()]
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		shift *= s.weekend
	}
	return (s.base + shift) * (1 + s.noise*u)
}

// noise is a uniform draw in [−1, 1) determined by (seed, key, step) alone.
func noise(seed, key uint64, step int64) float64 {
	x := splitmix(seed ^ splitmix(key^splitmix(uint64(step))))
	return float64(x>>11)/(1<<52) - 1
}

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

// hashName is FNV-1a of a meter name, the key of its noise.
func hashName(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
