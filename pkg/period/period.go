// Package period turns the API's time bounds into instants and splits time into the calendar
// periods (day, month, year) of a park's time zone, which is how Chinese statistics count.
package period

import (
	"fmt"
	"time"
)

// ParseBound reads an API time bound: RFC 3339, or YYYY-MM-DD meaning local midnight in loc.
func ParseBound(field, s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%s is required (RFC 3339 or YYYY-MM-DD)", field)
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is neither RFC 3339 nor YYYY-MM-DD", field, s)
	}
	return t, nil
}

// Range parses from and to and checks from < to and the span is at most maxSpan (0: any).
func Range(from, to string, loc *time.Location, maxSpan time.Duration) (time.Time, time.Time, error) {
	f, err := ParseBound("from", from, loc)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	t, err := ParseBound("to", to, loc)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if !f.Before(t) {
		return time.Time{}, time.Time{}, fmt.Errorf("from %s is not before to %s (to is exclusive)", from, to)
	}
	if maxSpan > 0 && t.Sub(f) > maxSpan {
		return time.Time{}, time.Time{}, fmt.Errorf("the range from %s to %s is longer than %s", from, to, maxSpan)
	}
	return f, t, nil
}

// Day returns the local midnight starting the calendar day of t in loc.
func Day(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
}

// Days returns the local midnights of the calendar days overlapping [from, to).
func Days(from, to time.Time, loc *time.Location) []time.Time {
	var out []time.Time
	for d := Day(from, loc); d.Before(to); d = d.AddDate(0, 0, 1) {
		out = append(out, d)
	}
	return out
}

// Month returns the local midnight starting the calendar month of t in loc.
func Month(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)
}

// Year returns the local midnight starting the calendar year of t in loc.
func Year(t time.Time, loc *time.Location) time.Time {
	return time.Date(t.In(loc).Year(), 1, 1, 0, 0, 0, 0, loc)
}

// IsCalendarYear reports whether [from, to) is exactly one calendar year in loc: the only
// period whose results are official rather than estimates.
func IsCalendarYear(from, to time.Time, loc *time.Location) bool {
	y := Year(from, loc)
	return from.Equal(y) && to.Equal(y.AddDate(1, 0, 0))
}

// Earlier returns the earlier of a and b.
func Earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Later returns the later of a and b.
func Later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
