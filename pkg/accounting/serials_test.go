package accounting

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

func TestParseSerials(t *testing.T) {
	tests := []struct {
		in   string
		want SerialRange
		err  string // part of the reason; empty: accepted
	}{
		{"GEC2025000123", SerialRange{"GEC", 10, 2025000123, 2025000123}, ""},
		{"GEC2025000100..GEC2025000199", SerialRange{"GEC", 10, 2025000100, 2025000199}, ""},
		{"GEC2025000100..GEC2025000100", SerialRange{"GEC", 10, 2025000100, 2025000100}, ""},
		{"0007", SerialRange{"", 4, 7, 7}, ""},
		{"A-1.B7..A-1.B9", SerialRange{"A-1.B", 1, 7, 9}, ""},
		{"X" + strings.Repeat("9", 18), SerialRange{"X", 18, 999999999999999999, 999999999999999999}, ""},
		{"", SerialRange{}, "empty"},
		{"GEC", SerialRange{}, "ends in its number"},
		{"GEC12A", SerialRange{}, "ends in its number"},
		{"GEC1 2", SerialRange{}, "printable ASCII"},
		{"GEC\u00e912", SerialRange{}, "printable ASCII"},
		{"X" + strings.Repeat("1", 19), SerialRange{}, "at most 18 digits"},
		{strings.Repeat("X", 64) + "1", SerialRange{}, "at most 64 characters"},
		{"GEC100..GEC099", SerialRange{}, "backwards"},
		{"GEC100..GEX199", SerialRange{}, "same prefix"},
		{"GEC100..GEC1000", SerialRange{}, "same number of digits"},
		{"GEC100..", SerialRange{}, "last serial: empty"},
		{"..GEC100", SerialRange{}, "first serial: empty"},
		{"GEC1..GEC2..GEC3", SerialRange{}, `".."`},
		{"GEC..1", SerialRange{}, "first serial"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSerials([]string{"OK1", tc.in})
			if tc.err != "" {
				wantFieldError(t, err, "serials", tc.err)
				wantFieldError(t, err, "serials", "entry 2")
				return
			}
			must(t, err)
			if len(got) != 2 || got[1] != tc.want {
				t.Fatalf("ParseSerials(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if again, err := ParseSerials([]string{got[1].String()}); err != nil || again[0] != tc.want {
				t.Errorf("canonical %q parses to %+v, %v", got[1].String(), again, err)
			}
		})
	}
	if got := (SerialRange{"GEC", 10, 2025000100, 2025000100}).String(); got != "GEC2025000100" {
		t.Errorf("canonical single serial = %q", got)
	}
	if got, err := ParseSerials(nil); got != nil || err != nil {
		t.Errorf("ParseSerials(nil) = %v, %v", got, err)
	}
}

func TestSerialCount(t *testing.T) {
	n, err := SerialCount([]string{"GEC2025000100..GEC2025000199", "GEC2025000500", "X01..X10"})
	must(t, err)
	if n != 111 {
		t.Errorf("SerialCount = %d, want 111", n)
	}
	big := "A000000000000000000..A999999999999999999"
	if _, err := SerialCount(slices.Repeat([]string{big}, 10)); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("SerialCount beyond int64 = %v, want an invalid argument", err)
	}
	_, err = SerialCount([]string{"GEC"})
	wantFieldError(t, err, "serials", "entry 1")
}

func TestFirstOverlap(t *testing.T) {
	r := func(prefix string, width int, lo, hi int64) SerialRange { return SerialRange{prefix, width, lo, hi} }
	tests := []struct {
		name   string
		ranges []SerialRange
		want   string // first shared serial; empty: none
	}{
		{"disjoint", []SerialRange{r("A", 3, 10, 19), r("A", 3, 0, 9), r("A", 3, 20, 20)}, ""},
		{"other prefix and width", []SerialRange{r("A", 3, 0, 9), r("B", 3, 0, 9), r("A", 4, 0, 9)}, ""},
		{"nested", []SerialRange{r("A", 3, 0, 100), r("A", 3, 200, 300), r("A", 3, 50, 60)}, "A050"},
		{"touching", []SerialRange{r("A", 3, 5, 9), r("A", 3, 0, 5)}, "A005"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b, ok := FirstOverlap(tc.ranges)
			got := ""
			if ok {
				got = FirstShared(a, b)
			}
			if got != tc.want {
				t.Errorf("FirstOverlap = %q (%v, %v), want %q", got, a, b, tc.want)
			}
		})
	}
}

func FuzzParseSerials(f *testing.F) {
	for _, seed := range []string{"GEC2025000123", "GEC2025000100..GEC2025000199", "0..9", "A.1..A.2",
		"GEC..1", "x..y..z", "GEC1000000000000000000", "..", "A1..A01", "A9..A1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		got, err := ParseSerials([]string{entry})
		if err != nil {
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field != "serials" {
				t.Fatalf("ParseSerials(%q) error %v is not a field error on serials", entry, err)
			}
			return
		}
		r := got[0]
		if r.Lo < 0 || r.Hi < r.Lo || r.Width < 1 || r.Width > MaxSerialDigits || r.Count() < 1 {
			t.Fatalf("ParseSerials(%q) = %+v: not a range", entry, r)
		}
		canonical := r.String()
		again, err := ParseSerials([]string{canonical})
		if err != nil || len(again) != 1 || again[0] != r {
			t.Fatalf("canonical %q of %q parses to %+v, %v; want %+v", canonical, entry, again, err, r)
		}
		if again[0].String() != canonical {
			t.Fatalf("canonical form not stable: %q then %q", canonical, again[0].String())
		}
		if !r.Overlaps(r) {
			t.Fatalf("%+v does not overlap itself", r)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantFieldError(t *testing.T, err error, field, reasonPart string) {
	t.Helper()
	var fe *registry.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want a *registry.FieldError on %s", err, field)
	}
	if fe.Field != field || !strings.Contains(fe.Reason, reasonPart) {
		t.Fatalf("field error = %q: %q, want %q containing %q", fe.Field, fe.Reason, field, reasonPart)
	}
}
