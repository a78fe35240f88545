package accounting

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Bounds of a certificate serial.
const (
	// MaxSerialDigits bounds the trailing number of a serial: it is stored as a BIGINT.
	MaxSerialDigits = 18
	// MaxSerialLen bounds one serial, prefix and number.
	MaxSerialLen = 64
)

// SerialRange is one entry of a green instrument's certificate serials: the serials Prefix
// followed by every number Lo..Hi (both inclusive) written with Width digits, leading zeros
// kept. A single serial has Lo == Hi.
type SerialRange struct {
	Prefix string
	Width  int
	Lo, Hi int64
}

// Count is the number of serials (certificates) in the range.
func (r SerialRange) Count() int64 { return r.Hi - r.Lo + 1 }

// String is the canonical form: "GEC2025000123" for one serial,
// "GEC2025000100..GEC2025000199" for a range. ParseSerials accepts it back unchanged.
func (r SerialRange) String() string {
	if r.Lo == r.Hi {
		return r.Serial(r.Lo)
	}
	return r.Serial(r.Lo) + ".." + r.Serial(r.Hi)
}

// Serial writes the serial of number n with the range's prefix and width.
func (r SerialRange) Serial(n int64) string {
	return fmt.Sprintf("%s%0*d", r.Prefix, r.Width, n)
}

// Overlaps reports whether r and o share a serial: same prefix, same width and intersecting
// numbers.
func (r SerialRange) Overlaps(o SerialRange) bool {
	return r.Prefix == o.Prefix && r.Width == o.Width && r.Lo <= o.Hi && o.Lo <= r.Hi
}

// ParseSerials parses certificate serial entries: a single serial ("GEC2025000123") or a
// range ("GEC2025000100..GEC2025000199"). A serial is a prefix followed by its number, the
// longest trailing run of ASCII digits (at most MaxSerialDigits); both ends of a range have
// the same prefix and the same number of digits, the first no greater than the second. A
// malformed entry is a *registry.FieldError on "serials". Overlaps between entries are not
// checked here.
func ParseSerials(serials []string) ([]SerialRange, error) {
	if len(serials) == 0 {
		return nil, nil
	}
	out := make([]SerialRange, 0, len(serials))
	for i, s := range serials {
		r, err := parseSerialEntry(s)
		if err != nil {
			return nil, &registry.FieldError{Field: "serials", Reason: fmt.Sprintf("entry %d %q: %s", i+1, s, err)}
		}
		out = append(out, r)
	}
	return out, nil
}

// SerialCount is the number of certificates the entries name (ParseSerials), counting a
// serial named twice twice.
func SerialCount(serials []string) (int64, error) {
	ranges, err := ParseSerials(serials)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range ranges {
		if n > math.MaxInt64-r.Count() {
			return 0, &registry.FieldError{Field: "serials", Reason: "name more certificates than can be counted"}
		}
		n += r.Count()
	}
	return n, nil
}

// parseSerialEntry parses one entry; its error is the reason, without the entry.
func parseSerialEntry(entry string) (SerialRange, error) {
	loText, hiText, isRange := strings.Cut(entry, "..")
	lo, loDigits, err := splitSerial(loText)
	if err != nil {
		if isRange {
			return SerialRange{}, fmt.Errorf("first serial: %w", err)
		}
		return SerialRange{}, err
	}
	r := SerialRange{Prefix: lo, Width: len(loDigits)}
	if r.Lo, err = strconv.ParseInt(loDigits, 10, 64); err != nil {
		return SerialRange{}, err // unreachable: at most MaxSerialDigits digits
	}
	r.Hi = r.Lo
	if !isRange {
		return r, nil
	}
	hi, hiDigits, err := splitSerial(hiText)
	if err != nil {
		return SerialRange{}, fmt.Errorf("last serial: %w", err)
	}
	switch {
	case hi != lo:
		return SerialRange{}, fmt.Errorf("both ends of a range need the same prefix, not %q and %q", lo, hi)
	case len(hiDigits) != len(loDigits):
		return SerialRange{}, fmt.Errorf("both ends of a range need the same number of digits, not %d and %d", len(loDigits), len(hiDigits))
	}
	if r.Hi, err = strconv.ParseInt(hiDigits, 10, 64); err != nil {
		return SerialRange{}, err // unreachable, as above
	}
	if r.Hi < r.Lo {
		return SerialRange{}, fmt.Errorf("the range runs backwards: %s is before %s", hiText, loText)
	}
	return r, nil
}

// splitSerial splits one serial into its prefix and its number's digits.
func splitSerial(s string) (prefix, digits string, err error) {
	switch {
	case s == "":
		return "", "", fmt.Errorf("empty serial")
	case len(s) > MaxSerialLen:
		return "", "", fmt.Errorf("a serial is at most %d characters", MaxSerialLen)
	case strings.Contains(s, ".."):
		return "", "", fmt.Errorf(`".." separates the two ends of one range only`)
	}
	for i := range len(s) {
		if c := s[i]; c <= ' ' || c > '~' {
			return "", "", fmt.Errorf("a serial is printable ASCII without spaces, not %q", c)
		}
	}
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	prefix, digits = s[:i], s[i:]
	switch {
	case digits == "":
		return "", "", fmt.Errorf("a serial ends in its number, %q does not", s)
	case len(digits) > MaxSerialDigits:
		return "", "", fmt.Errorf("a serial number has at most %d digits, %q has %d", MaxSerialDigits, s, len(digits))
	}
	return prefix, digits, nil
}

// FirstOverlap returns two entries of ranges that share a serial, if any.
func FirstOverlap(ranges []SerialRange) (a, b SerialRange, ok bool) {
	sorted := slices.Clone(ranges)
	slices.SortFunc(sorted, func(x, y SerialRange) int {
		return cmp.Or(strings.Compare(x.Prefix, y.Prefix), cmp.Compare(x.Width, y.Width), cmp.Compare(x.Lo, y.Lo))
	})
	// Sorted by start, disjoint ranges each end before the next starts.
	for i := 1; i < len(sorted); i++ {
		if sorted[i-1].Overlaps(sorted[i]) {
			return sorted[i-1], sorted[i], true
		}
	}
	return SerialRange{}, SerialRange{}, false
}

// FirstShared is the first serial that overlapping ranges a and b share.
func FirstShared(a, b SerialRange) string { return a.Serial(max(a.Lo, b.Lo)) }
