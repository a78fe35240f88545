package period

import (
	"testing"
	"time"
)

func TestParseBound(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	for _, tt := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-11-22", time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC), true},
		{"2026-11-22T08:00:00+08:00", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), true},
		{"2026-11-22T00:00:00Z", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), true},
		{"2026-11-22T08:00:00", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, err := ParseBound("from", tt.in, sh)
		if (err == nil) != tt.ok || tt.ok && !got.Equal(tt.want) {
			t.Errorf("ParseBound(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if _, _, err := Range("2026-11-22", "2026-11-22", sh, 0); err == nil {
		t.Error("empty range accepted")
	}
	if _, _, err := Range("2025-01-01", "2026-11-22", sh, 366*24*time.Hour); err == nil {
		t.Error("range over the maximum span accepted")
	}
}

func TestCalendarPeriods(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	// 2026-12-31T20:00Z is already 2027-01-01 04:00 in Shanghai.
	ts := time.Date(2026, 12, 31, 20, 0, 0, 0, time.UTC)
	if got := Day(ts, sh); !got.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, sh)) {
		t.Errorf("Day = %v", got)
	}
	if got := Month(ts, sh); !got.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, sh)) {
		t.Errorf("Month = %v", got)
	}
	if got := Year(ts, sh); !got.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, sh)) {
		t.Errorf("Year = %v", got)
	}
	days := Days(time.Date(2026, 2, 27, 12, 0, 0, 0, sh), time.Date(2026, 3, 2, 0, 0, 0, 0, sh), sh)
	if len(days) != 3 || days[2].Day() != 1 || days[2].Month() != 3 {
		t.Errorf("Days = %v", days)
	}
	y := time.Date(2026, 1, 1, 0, 0, 0, 0, sh)
	if !IsCalendarYear(y, y.AddDate(1, 0, 0), sh) || IsCalendarYear(y, y.AddDate(0, 11, 0), sh) || IsCalendarYear(y.UTC().Truncate(24*time.Hour), y.AddDate(1, 0, 0), sh) {
		t.Error("IsCalendarYear is wrong")
	}
}

func TestEarlierLater(t *testing.T) {
	a := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := a.Add(time.Hour)
	if Earlier(a, b) != a || Earlier(b, a) != a || Later(a, b) != b || Later(b, a) != b || Later(a, a) != a {
		t.Fatal("Earlier/Later pick the wrong instant")
	}
}
