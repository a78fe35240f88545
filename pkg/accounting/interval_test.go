package accounting

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The golden cases under testdata/intervals/ are written by hand, each with its arithmetic.
// `go test ./pkg/accounting -run TestIntervalsGolden -update` rewrites their "want" part from the
// code's output (inputs and arithmetic are kept); review the diff before committing it.
//
// The -update flag is registered in init, after every package-level variable of the test binary
// is initialised, so a `var update = flag.Bool("update", ...)` in another test file of this
// package is reused instead of colliding with this one.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

func intervalUpdating() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	b, _ := g.Get().(bool)
	return b
}

type intervalCase struct {
	Description  string                `json:"description"`
	Arithmetic   []string              `json:"arithmetic"`
	Meter        intervalCaseMeter     `json:"meter"`
	Readings     []intervalCaseReading `json:"readings"`
	Replacements []intervalCaseReplace `json:"replacements,omitempty"`
	Hours        intervalCaseRange     `json:"hours"`
	Want         intervalCaseWant      `json:"want"`
}

type intervalCaseMeter struct {
	ID            string  `json:"id"`
	Multiplier    float64 `json:"multiplier"`
	Rollover      float64 `json:"rollover"`
	RatedCapacity float64 `json:"rated_capacity"`
	Interval      string  `json:"interval"`
}

type intervalCaseReading struct {
	TS    time.Time `json:"ts"`
	Value float64   `json:"value"`
}

type intervalCaseReplace struct {
	At         time.Time `json:"at"`
	OldFinal   float64   `json:"old_final"`
	NewInitial float64   `json:"new_initial"`
}

type intervalCaseRange struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

type intervalCaseWant struct {
	Intervals []intervalCaseWantInterval `json:"intervals"`
	Events    []intervalCaseWantEvent    `json:"events"`
	Hours     []intervalCaseWantHour     `json:"hours"`
}

type intervalCaseWantInterval struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Quantity float64   `json:"quantity"`
	Quality  string    `json:"quality"`
	HeldOut  float64   `json:"held_out,omitempty"`
}

type intervalCaseWantEvent struct {
	At      time.Time `json:"at"`
	Quality string    `json:"quality"`
	Detail  string    `json:"detail,omitempty"`
}

type intervalCaseWantHour struct {
	Start     time.Time `json:"start"`
	Quantity  float64   `json:"quantity"`
	Estimated float64   `json:"estimated"`
	Coverage  float64   `json:"coverage"`
	Quality   string    `json:"quality"`
}

func (c *intervalCase) meter(t *testing.T) IntervalMeter {
	t.Helper()
	d, err := time.ParseDuration(c.Meter.Interval)
	if err != nil {
		t.Fatalf("meter.interval: %v", err)
	}
	return IntervalMeter{
		ID:            c.Meter.ID,
		Multiplier:    c.Meter.Multiplier,
		Rollover:      c.Meter.Rollover,
		RatedCapacity: c.Meter.RatedCapacity,
		Interval:      d,
	}
}

func (c *intervalCase) inputs() ([]Reading, []Replacement) {
	rs := make([]Reading, len(c.Readings))
	for i, r := range c.Readings {
		rs[i] = Reading(r)
	}
	var reps []Replacement
	for _, r := range c.Replacements {
		reps = append(reps, Replacement(r))
	}
	return rs, reps
}

func intervalLoadCase(t *testing.T, path string) *intervalCase {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c intervalCase
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if c.Description == "" || len(c.Arithmetic) == 0 {
		t.Fatalf("%s: a golden case needs a description and its arithmetic", path)
	}
	return &c
}

func intervalClose(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func TestIntervalsGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "intervals", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 13 {
		t.Fatalf("found %d golden cases, want at least 13", len(paths))
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			c := intervalLoadCase(t, path)
			m := c.meter(t)
			rs, reps := c.inputs()
			ivs, evs := Intervals(m, rs, reps)
			hours := Hourly(ivs, c.Hours.From, c.Hours.To)

			if intervalUpdating() {
				c.Want = intervalWantFrom(ivs, evs, hours)
				if err := os.WriteFile(path, intervalEncodeCase(c), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			intervalCompare(t, c.Want, ivs, evs, hours)
		})
	}
}

func intervalCompare(t *testing.T, want intervalCaseWant, ivs []Interval, evs []IntervalEvent, hours []Hour) {
	t.Helper()
	if len(ivs) != len(want.Intervals) {
		t.Errorf("got %d intervals, want %d:\n%s", len(ivs), len(want.Intervals), intervalDump(ivs))
	} else {
		for i, w := range want.Intervals {
			g := ivs[i]
			if !g.From.Equal(w.From) || !g.To.Equal(w.To) || !intervalClose(g.Quantity, w.Quantity) ||
				g.Quality.String() != w.Quality || !intervalClose(g.HeldOut, w.HeldOut) {
				t.Errorf("interval %d:\n got  %s %s q=%v quality=%q held_out=%v\n want %s %s q=%v quality=%q held_out=%v",
					i, g.From.Format(time.RFC3339), g.To.Format(time.RFC3339), g.Quantity, g.Quality, g.HeldOut,
					w.From.Format(time.RFC3339), w.To.Format(time.RFC3339), w.Quantity, w.Quality, w.HeldOut)
			}
		}
	}
	if len(evs) != len(want.Events) {
		t.Errorf("got %d events, want %d: %+v", len(evs), len(want.Events), evs)
	} else {
		for i, w := range want.Events {
			g := evs[i]
			if !g.At.Equal(w.At) || g.Quality.String() != w.Quality || (w.Detail != "" && g.Detail != w.Detail) {
				t.Errorf("event %d:\n got  %s %q %q\n want %s %q %q", i,
					g.At.Format(time.RFC3339), g.Quality, g.Detail, w.At.Format(time.RFC3339), w.Quality, w.Detail)
			}
		}
	}
	if len(hours) != len(want.Hours) {
		t.Errorf("got %d hours, want %d: %+v", len(hours), len(want.Hours), hours)
		return
	}
	for i, w := range want.Hours {
		g := hours[i]
		if !g.Start.Equal(w.Start) || !intervalClose(g.Quantity, w.Quantity) || !intervalClose(g.Estimated, w.Estimated) ||
			!intervalClose(g.Coverage, w.Coverage) || g.Quality.String() != w.Quality {
			t.Errorf("hour %d:\n got  %s q=%v est=%v cov=%v quality=%q\n want %s q=%v est=%v cov=%v quality=%q", i,
				g.Start.Format(time.RFC3339), g.Quantity, g.Estimated, g.Coverage, g.Quality,
				w.Start.Format(time.RFC3339), w.Quantity, w.Estimated, w.Coverage, w.Quality)
		}
	}
}

func intervalDump(ivs []Interval) string {
	var b strings.Builder
	for _, iv := range ivs {
		b.WriteString(iv.From.Format(time.RFC3339) + " " + iv.To.Format(time.RFC3339) + " q=" +
			strconv.FormatFloat(iv.Quantity, 'g', -1, 64) + " " + iv.Quality.String() + "\n")
	}
	return b.String()
}

// intervalRound keeps 12 significant digits, so rewritten files read 0.2 rather than
// 0.19999999999998863; the comparison tolerance (1e-9 relative) is far wider.
func intervalRound(x float64) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 12, 64), 64)
	if err != nil {
		return x
	}
	return v
}

func intervalWantFrom(ivs []Interval, evs []IntervalEvent, hours []Hour) intervalCaseWant {
	w := intervalCaseWant{
		Intervals: []intervalCaseWantInterval{},
		Events:    []intervalCaseWantEvent{},
		Hours:     []intervalCaseWantHour{},
	}
	for _, iv := range ivs {
		w.Intervals = append(w.Intervals, intervalCaseWantInterval{
			From: iv.From, To: iv.To, Quantity: intervalRound(iv.Quantity),
			Quality: iv.Quality.String(), HeldOut: intervalRound(iv.HeldOut),
		})
	}
	for _, e := range evs {
		w.Events = append(w.Events, intervalCaseWantEvent{At: e.At, Quality: e.Quality.String(), Detail: e.Detail})
	}
	for _, h := range hours {
		w.Hours = append(w.Hours, intervalCaseWantHour{
			Start: h.Start, Quantity: intervalRound(h.Quantity), Estimated: intervalRound(h.Estimated),
			Coverage: intervalRound(h.Coverage), Quality: h.Quality.String(),
		})
	}
	return w
}

// intervalEncodeCase writes a case in the layout of the hand-written files: one reading,
// interval, event or hour per line.
func intervalEncodeCase(c *intervalCase) []byte {
	var b bytes.Buffer
	one := func(v any) string {
		var j bytes.Buffer
		enc := json.NewEncoder(&j)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			panic(err)
		}
		s := strings.TrimSuffix(j.String(), "\n")
		return strings.ReplaceAll(strings.ReplaceAll(s, `":`, `": `), `,"`, `, "`)
	}
	list := func(indent, key string, items []string, last bool) {
		b.WriteString(indent + `"` + key + `": [`)
		if len(items) > 0 {
			b.WriteString("\n")
			for i, it := range items {
				b.WriteString(indent + "  " + it)
				if i < len(items)-1 {
					b.WriteString(",")
				}
				b.WriteString("\n")
			}
			b.WriteString(indent)
		}
		b.WriteString("]")
		if !last {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	strs := func(n int, f func(i int) any) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = one(f(i))
		}
		return out
	}
	b.WriteString("{\n")
	b.WriteString(`  "description": ` + one(c.Description) + ",\n")
	list("  ", "arithmetic", strs(len(c.Arithmetic), func(i int) any { return c.Arithmetic[i] }), false)
	b.WriteString(`  "meter": ` + one(c.Meter) + ",\n")
	list("  ", "readings", strs(len(c.Readings), func(i int) any { return c.Readings[i] }), false)
	if len(c.Replacements) > 0 {
		list("  ", "replacements", strs(len(c.Replacements), func(i int) any { return c.Replacements[i] }), false)
	}
	b.WriteString(`  "hours": ` + one(c.Hours) + ",\n")
	b.WriteString("  \"want\": {\n")
	list("    ", "intervals", strs(len(c.Want.Intervals), func(i int) any { return c.Want.Intervals[i] }), false)
	list("    ", "events", strs(len(c.Want.Events), func(i int) any { return c.Want.Events[i] }), false)
	list("    ", "hours", strs(len(c.Want.Hours), func(i int) any { return c.Want.Hours[i] }), true)
	b.WriteString("  }\n}\n")
	return b.Bytes()
}

// intervalT0 is the start of the hand-built series below.
var intervalT0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func intervalAt(min int) time.Time { return intervalT0.Add(time.Duration(min) * time.Minute) }

// intervalSeries builds readings every 15 minutes from intervalT0.
func intervalSeries(values ...float64) []Reading {
	rs := make([]Reading, len(values))
	for i, v := range values {
		rs[i] = Reading{TS: intervalAt(15 * i), Value: v}
	}
	return rs
}

func intervalTotal(ivs []Interval) float64 {
	var s float64
	for _, iv := range ivs {
		s += iv.Quantity
	}
	return s
}

func intervalQualities(ivs []Interval) []string {
	out := make([]string, len(ivs))
	for i, iv := range ivs {
		out[i] = iv.Quality.String()
	}
	return out
}

func TestQualityString(t *testing.T) {
	for _, tc := range []struct {
		q    Quality
		want string
	}{
		{0, ""},
		{QualityRollover | QualityGap, "rollover|gap"},
		{QualityGap | QualityRollover, "rollover|gap"},
		{QualityReset, "reset"},
		{QualityReplacement | QualityZeroGlitch | QualitySpike | QualityEstimated, "replacement|zero_glitch|spike|estimated"},
		{QualityEstimated << 1, "0x80"},
	} {
		if got := tc.q.String(); got != tc.want {
			t.Errorf("Quality(%d).String() = %q, want %q", uint16(tc.q), got, tc.want)
		}
	}
}

func TestIntervalsUnusableMeter(t *testing.T) {
	rs := intervalSeries(1, 2, 3)
	for _, mult := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		ivs, evs := Intervals(IntervalMeter{ID: "m", Multiplier: mult, Interval: 15 * time.Minute}, rs, nil)
		if ivs != nil || evs != nil {
			t.Errorf("multiplier %v: got %v %v, want no intervals (data stays missing)", mult, ivs, evs)
		}
	}
}

func TestIntervalsFewReadings(t *testing.T) {
	m := IntervalMeter{ID: "m", Multiplier: 1, Interval: 15 * time.Minute}
	if ivs, evs := Intervals(m, nil, nil); len(ivs) != 0 || len(evs) != 0 {
		t.Errorf("no readings: got %v %v", ivs, evs)
	}
	if ivs, _ := Intervals(m, intervalSeries(42), nil); len(ivs) != 0 {
		t.Errorf("one reading: got %v, want no interval", ivs)
	}
	// Two readings of one instant are one reading.
	rs := []Reading{{TS: intervalT0, Value: 1}, {TS: intervalT0, Value: 2}}
	if ivs, _ := Intervals(m, rs, nil); len(ivs) != 0 {
		t.Errorf("one instant twice: got %v, want no interval", ivs)
	}
}

func TestIntervalsDoesNotReorderInput(t *testing.T) {
	rs := []Reading{{TS: intervalAt(30), Value: 3}, {TS: intervalAt(0), Value: 1}, {TS: intervalAt(15), Value: 2}}
	orig := slices.Clone(rs)
	Intervals(IntervalMeter{ID: "m", Multiplier: 1}, rs, nil)
	if !slices.Equal(rs, orig) {
		t.Errorf("input changed: %v", rs)
	}
}

func TestIntervalsInvalidValues(t *testing.T) {
	m := IntervalMeter{ID: "m", Multiplier: 2, Interval: 15 * time.Minute}
	rs := intervalSeries(10, 11, 12, 13)
	rs = append(rs,
		Reading{TS: intervalAt(5), Value: math.NaN()},
		Reading{TS: intervalAt(20), Value: math.Inf(1)},
		Reading{TS: intervalAt(50), Value: -3}, // after the last reading: event only
	)
	ivs, evs := Intervals(m, rs, nil)
	if got, want := intervalQualities(ivs), []string{"zero_glitch", "zero_glitch", ""}; !slices.Equal(got, want) {
		t.Errorf("qualities %q, want %q", got, want)
	}
	if got := intervalTotal(ivs); !intervalClose(got, 6) {
		t.Errorf("total %v, want (13-10) x 2 = 6", got)
	}
	if len(evs) != 3 {
		t.Fatalf("got %d events, want one per invalid value: %+v", len(evs), evs)
	}
	for _, e := range evs {
		if e.Quality != QualityZeroGlitch || !strings.Contains(e.Detail, "invalid register value") {
			t.Errorf("event %+v", e)
		}
	}
}

func TestIntervalsReplacements(t *testing.T) {
	m := IntervalMeter{ID: "m", Multiplier: 10, Interval: 15 * time.Minute}
	for _, tc := range []struct {
		name      string
		m         IntervalMeter
		readings  []Reading
		repl      []Replacement
		want      []float64
		qualities []string
		heldOut   float64
	}{
		{
			// Two meters swapped within one interval: (5.5-5) + (3-2) + (0.4-0) = 1.9, x 10.
			name:     "chained",
			m:        m,
			readings: intervalSeries(4, 5, 0.4, 0.9),
			repl: []Replacement{
				{At: intervalAt(25), OldFinal: 3, NewInitial: 0},
				{At: intervalAt(20), OldFinal: 5.5, NewInitial: 2},
			},
			want:      []float64{10, 19, 5},
			qualities: []string{"", "replacement", ""},
		},
		{
			// Parts are floored at 0: an old final below the last reading books nothing for
			// the old register (4.9 - 5 < 0), the new one 0.4 - 0.
			name:      "floored",
			m:         m,
			readings:  intervalSeries(4, 5, 0.4),
			repl:      []Replacement{{At: intervalAt(30), OldFinal: 4.9, NewInitial: 0}},
			want:      []float64{10, 4},
			qualities: []string{"", "replacement"},
		},
		{
			// A record whose At is exactly a reading's instant belongs to the interval that
			// ends there, (t_{i-1}, t_i]: that reading is the new register's.
			// (5 - 4) + (0 - 0) = 1, x 10; then 0.4 - 0 = 0.4, x 10.
			name:      "at reading",
			m:         m,
			readings:  intervalSeries(4, 0, 0.4),
			repl:      []Replacement{{At: intervalAt(15), OldFinal: 5, NewInitial: 0}},
			want:      []float64{10, 4},
			qualities: []string{"replacement", ""},
		},
		{
			// A mistyped old final (5000 instead of 5.0) beyond the rated capacity is held
			// out like any spike: energy is never invented by a record either.
			name:      "implausible record",
			m:         IntervalMeter{ID: "m", Multiplier: 10, RatedCapacity: 40, Interval: 15 * time.Minute},
			readings:  intervalSeries(4, 5, 0.4),
			repl:      []Replacement{{At: intervalAt(20), OldFinal: 5000, NewInitial: 0}},
			want:      []float64{10, 0},
			qualities: []string{"", "replacement|spike"},
			heldOut:   (4995 + 0.4) * 10,
		},
		{
			// Records outside the readings have nothing to split; a record with a NaN value
			// cannot be honoured.
			name:     "ignored records",
			m:        m,
			readings: intervalSeries(4, 5, 6),
			repl: []Replacement{
				{At: intervalAt(-10), OldFinal: 100, NewInitial: 0},
				{At: intervalAt(40), OldFinal: 100, NewInitial: 0},
				{At: intervalAt(20), OldFinal: math.NaN(), NewInitial: 0},
			},
			want:      []float64{10, 10},
			qualities: []string{"", ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ivs, _ := Intervals(tc.m, tc.readings, tc.repl)
			if got := intervalQualities(ivs); !slices.Equal(got, tc.qualities) {
				t.Fatalf("qualities %q, want %q", got, tc.qualities)
			}
			var held float64
			for i, iv := range ivs {
				if !intervalClose(iv.Quantity, tc.want[i]) {
					t.Errorf("interval %d: quantity %v, want %v", i, iv.Quantity, tc.want[i])
				}
				held += iv.HeldOut
			}
			if !intervalClose(held, tc.heldOut) {
				t.Errorf("held out %v, want %v", held, tc.heldOut)
			}
		})
	}
}

func TestIntervalsBoundScalesWithGap(t *testing.T) {
	// 16 hours without readings allow 40 x 16 x 1.05 = 672: 640 is booked (estimated), 673 is not.
	m := IntervalMeter{ID: "m", Multiplier: 1, RatedCapacity: 40, Interval: 8 * time.Hour}
	for _, tc := range []struct {
		v       float64
		want    float64
		quality string
	}{
		{640, 640, "gap|estimated"},
		{673, 0, "spike|gap|estimated"},
	} {
		rs := []Reading{{TS: intervalT0, Value: 0}, {TS: intervalT0.Add(16 * time.Hour), Value: tc.v}}
		ivs, _ := Intervals(m, rs, nil)
		if len(ivs) != 1 || ivs[0].Quantity != tc.want || ivs[0].Quality.String() != tc.quality {
			t.Errorf("0 -> %v over 16 h: got %+v, want quantity %v %q", tc.v, ivs, tc.want, tc.quality)
		}
	}
}

func TestIntervalsInvertedPair(t *testing.T) {
	m := IntervalMeter{ID: "m", Multiplier: 1}
	for _, tc := range []struct {
		name      string
		values    []float64
		want      []float64
		qualities []string
	}{
		{
			// Hold out 104: peak rate max(2/30 min, 4/15 min) = 4 per 15 min; hold out 102:
			// max(4/15 min, 2/30 min), the same: on a tie the dip is held out.
			name:      "tie holds out the dip",
			values:    []float64{100, 104, 102, 106},
			want:      []float64{4, 2},
			qualities: []string{"", "zero_glitch"},
		},
		{
			// Hold out 100.6: max(0.5/30 min, 0.25/15 min) = 1/h; hold out 100.5: max(0.6/15 min,
			// 0.15/30 min) = 2.4/h: the small spike is held out.
			name:      "spike wins",
			values:    []float64{100, 100.6, 100.5, 100.75},
			want:      []float64{0.5, 0.25},
			qualities: []string{"spike", ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ivs, _ := Intervals(m, intervalSeries(tc.values...), nil)
			if got := intervalQualities(ivs); !slices.Equal(got, tc.qualities) {
				t.Fatalf("qualities %q, want %q", got, tc.qualities)
			}
			for i, iv := range ivs {
				if !intervalClose(iv.Quantity, tc.want[i]) {
					t.Errorf("interval %d: quantity %v, want %v", i, iv.Quantity, tc.want[i])
				}
			}
		})
	}
}

func TestIntervalsDrops(t *testing.T) {
	q15 := 15 * time.Minute
	for _, tc := range []struct {
		name      string
		m         IntervalMeter
		values    []float64
		want      []float64
		qualities []string
	}{
		{
			// Without rated capacity a wrap must be below half the register: 6,000 → 100 of
			// 10,000 wraps by 4,000 + 100 = 4,100 < 5,000: rollover; 2,100 → 100 would wrap by
			// 7,900 + 100 = 8,000 >= 5,000: a reset.
			name:      "rollover half register",
			m:         IntervalMeter{ID: "m", Multiplier: 1, Rollover: 10000, Interval: q15},
			values:    []float64{6000, 100, 2000, 2100, 100},
			want:      []float64{4100, 1900, 100, 0},
			qualities: []string{"rollover", "", "", "reset"},
		},
		{
			// A previous value above the rollover value cannot have wrapped there.
			name:      "above rollover",
			m:         IntervalMeter{ID: "m", Multiplier: 1, Rollover: 10000, Interval: q15},
			values:    []float64{10001, 10002, 5},
			want:      []float64{1, 0},
			qualities: []string{"", "reset"},
		},
		{
			// Rollover exactly at the register value: (10000 - 10000) + 3 = 3.
			name:      "at rollover",
			m:         IntervalMeter{ID: "m", Multiplier: 1, Rollover: 10000, Interval: q15},
			values:    []float64{9999, 10000, 3},
			want:      []float64{1, 3},
			qualities: []string{"", "rollover"},
		},
		{
			// The last reading cannot be an outlier: a drop there is a reset until later
			// readings show otherwise.
			name:      "trailing drop",
			m:         IntervalMeter{ID: "m", Multiplier: 1, Interval: q15},
			values:    []float64{100, 101, 0},
			want:      []float64{1, 0},
			qualities: []string{"", "reset"},
		},
		{
			// Without rated capacity a jump that does not come back cannot be told from
			// consumption and is booked; the first reading is never an outlier either.
			name:      "jump without capacity",
			m:         IntervalMeter{ID: "m", Multiplier: 1, Interval: q15},
			values:    []float64{100, 101, 5000, 5001},
			want:      []float64{1, 4899, 1},
			qualities: []string{"", "", ""},
		},
		{
			// A delta up to 5 % above RatedCapacity x hours is still booked: 40 x 0.25 x 1.05
			// = 10.5.
			name:      "bound tolerance",
			m:         IntervalMeter{ID: "m", Multiplier: 1, RatedCapacity: 40, Interval: q15},
			values:    []float64{0, 10.5, 21.0001},
			want:      []float64{10.5, 0},
			qualities: []string{"", "spike"},
		},
		{
			// Interval 0: no gap detection (the glitch leaves 30 minutes between accepted
			// readings, unflagged).
			name:      "no interval",
			m:         IntervalMeter{ID: "m", Multiplier: 1},
			values:    []float64{3, 5, 0, 7},
			want:      []float64{2, 2},
			qualities: []string{"", "zero_glitch"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ivs, _ := Intervals(tc.m, intervalSeries(tc.values...), nil)
			if got := intervalQualities(ivs); !slices.Equal(got, tc.qualities) {
				t.Fatalf("qualities %q, want %q", got, tc.qualities)
			}
			for i, iv := range ivs {
				if !intervalClose(iv.Quantity, tc.want[i]) {
					t.Errorf("interval %d: quantity %v, want %v", i, iv.Quantity, tc.want[i])
				}
			}
		})
	}
}
