package accounting

import (
	"math"
	"testing"
	"time"
)

func hourlyAt(h, m int) time.Time { return time.Date(2026, 3, 2, h, m, 0, 0, time.UTC) }

func TestHourlyRange(t *testing.T) {
	ivs := []Interval{{From: hourlyAt(1, 0), To: hourlyAt(1, 30), Quantity: 3}}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		starts   []time.Time
	}{
		{"aligned", hourlyAt(0, 0), hourlyAt(2, 0), []time.Time{hourlyAt(0, 0), hourlyAt(1, 0)}},
		{"rounded out", hourlyAt(0, 40), hourlyAt(1, 10), []time.Time{hourlyAt(0, 0), hourlyAt(1, 0)}},
		{"one instant", hourlyAt(1, 10), hourlyAt(1, 10), nil},
		{"reversed", hourlyAt(2, 0), hourlyAt(1, 0), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hours := Hourly(ivs, tc.from, tc.to)
			if len(hours) != len(tc.starts) {
				t.Fatalf("got %d hours, want %d", len(hours), len(tc.starts))
			}
			for i, h := range hours {
				if !h.Start.Equal(tc.starts[i]) || h.Start.Location() != time.UTC {
					t.Errorf("hour %d starts %v, want %v in UTC", i, h.Start, tc.starts[i])
				}
			}
		})
	}
}

func TestHourlyShanghai(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	// Local midnight is 16:00 UTC: a whole hour in both.
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, sh)
	ivs := []Interval{{From: from.Add(-30 * time.Minute), To: from.Add(30 * time.Minute), Quantity: 2}}
	hours := Hourly(ivs, from.Add(-time.Hour), from.Add(time.Hour))
	if len(hours) != 2 || !hours[1].Start.Equal(from) || hours[0].Quantity != 1 || hours[1].Quantity != 1 {
		t.Errorf("got %+v, want 1 in each hour, the second starting at local midnight", hours)
	}
}

func TestHourlyClipsToRange(t *testing.T) {
	// 6 over 00:00-03:00 is 2 per hour; only hour 01 is asked for.
	ivs := []Interval{{From: hourlyAt(0, 0), To: hourlyAt(3, 0), Quantity: 6, Quality: QualityGap | QualityEstimated}}
	hours := Hourly(ivs, hourlyAt(1, 0), hourlyAt(2, 0))
	if len(hours) != 1 {
		t.Fatalf("got %d hours", len(hours))
	}
	h := hours[0]
	if !intervalClose(h.Quantity, 2) || !intervalClose(h.Estimated, 2) || h.Coverage != 1 || h.Quality != QualityGap|QualityEstimated {
		t.Errorf("got %+v, want 2 estimated, full coverage, gap|estimated", h)
	}
}

func TestHourlyTouchingIsNotOverlapping(t *testing.T) {
	// An interval ending at 01:00 does not touch hour 01: no quality, no coverage there.
	ivs := []Interval{{From: hourlyAt(0, 30), To: hourlyAt(1, 0), Quantity: 1, Quality: QualityReset}}
	hours := Hourly(ivs, hourlyAt(0, 0), hourlyAt(2, 0))
	if hours[1].Quality != 0 || hours[1].Coverage != 0 || hours[0].Quality != QualityReset || hours[0].Coverage != 0.5 {
		t.Errorf("got %+v", hours)
	}
}

func TestHourlyZeroLengthInterval(t *testing.T) {
	ivs := []Interval{{From: hourlyAt(1, 20), To: hourlyAt(1, 20), Quantity: 5, Quality: QualityEstimated}}
	hours := Hourly(ivs, hourlyAt(0, 0), hourlyAt(2, 0))
	if hours[1].Quantity != 5 || hours[1].Estimated != 5 || hours[1].Coverage != 0 || hours[0].Quantity != 0 {
		t.Errorf("got %+v, want 5 in hour 01 with no coverage", hours)
	}
}

func TestHourlyOverlappingIntervalsCapCoverage(t *testing.T) {
	// Intervals from two sources may overlap; coverage never exceeds 1, quantities add.
	ivs := []Interval{
		{From: hourlyAt(0, 0), To: hourlyAt(1, 0), Quantity: 1},
		{From: hourlyAt(0, 0), To: hourlyAt(1, 0), Quantity: 2},
	}
	h := Hourly(ivs, hourlyAt(0, 0), hourlyAt(1, 0))[0]
	if h.Coverage != 1 || h.Quantity != 3 {
		t.Errorf("got %+v", h)
	}
}

func TestHourlyMissingIsNotZero(t *testing.T) {
	// A measured zero hour has coverage 1; a missing hour has coverage 0.
	ivs := []Interval{{From: hourlyAt(0, 0), To: hourlyAt(1, 0), Quantity: 0}}
	hours := Hourly(ivs, hourlyAt(0, 0), hourlyAt(2, 0))
	if hours[0].Coverage != 1 || hours[1].Coverage != 0 {
		t.Errorf("got %+v", hours)
	}
	for _, h := range hours {
		if h.Quantity != 0 || math.Signbit(h.Quantity) {
			t.Errorf("hour %v: quantity %v", h.Start, h.Quantity)
		}
	}
}

func TestHourlyLongerThanDuration(t *testing.T) {
	// time.Duration ends at 292 years; an interval of 1000 years still spreads linearly.
	from := time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC)
	total := to.Sub(from).Hours() // saturated: only a scale here
	ivs := []Interval{{From: from, To: to, Quantity: total}}
	perHour := total / (float64(to.Unix()-from.Unix()) / 3600)
	hours := Hourly(ivs, hourlyAt(0, 0), hourlyAt(3, 0))
	if len(hours) != 3 {
		t.Fatalf("got %d hours", len(hours))
	}
	for _, h := range hours {
		if !intervalClose(h.Quantity, perHour) || h.Coverage != 1 {
			t.Errorf("hour %v: %+v, want %v", h.Start, h, perHour)
		}
	}
	// The interval's first and last hours, far apart.
	edge := Hourly(ivs, to.Add(-time.Hour), to.Add(time.Hour))
	if !intervalClose(edge[0].Quantity, perHour) || edge[1].Coverage != 0 {
		t.Errorf("last hours: %+v", edge)
	}
}
