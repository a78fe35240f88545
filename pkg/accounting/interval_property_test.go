package accounting

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// intervalGenMode says which faults a generated series carries.
type intervalGenMode int

const (
	// intervalGenClean: gaps, duplicates, disorder, rollovers and invalid values, none of which
	// may change the total.
	intervalGenClean intervalGenMode = iota
	// intervalGenLossless adds isolated zero glitches, dips and spikes that come back: held out,
	// they may not change the total either.
	intervalGenLossless
	// intervalGenLossy adds resets and register jumps beyond the rated capacity: the total may
	// only fall short of the physical consumption, never exceed it.
	intervalGenLossy
)

func (m intervalGenMode) String() string {
	return [...]string{"clean", "lossless", "lossy"}[m]
}

type intervalGenerated struct {
	m        IntervalMeter
	readings []Reading
	// physical is the consumption between the first and the last valid reading, × multiplier.
	physical float64
}

// intervalDyadic rounds to a multiple of 1/1024. Register values and increments are dyadic so
// that every sum and difference in the test's own arithmetic is exact: the 1e-9 tolerance then
// measures the engine, not the rounding of the expected value.
func intervalDyadic(x float64) float64 { return math.Round(x*1024) / 1024 }

// intervalGenerate makes a random monotone counter series for one meter, with the faults of mode.
func intervalGenerate(rng *rand.Rand, mode intervalGenMode) intervalGenerated {
	m := IntervalMeter{
		ID:         "prop",
		Multiplier: []float64{1, 0.5, 1.25, 80, 1000}[rng.IntN(5)],
		Interval:   []time.Duration{5 * time.Minute, 15 * time.Minute, 15 * time.Minute, time.Hour}[rng.IntN(4)],
	}
	maxStep := intervalDyadic(math.Pow(10, -2+4*rng.Float64())) + 1.0/1024 // register units per interval
	stepHours := m.Interval.Hours()
	if mode == intervalGenLossy || rng.IntN(2) == 0 {
		m.RatedCapacity = maxStep * m.Multiplier / stepHours
	}
	if rng.IntN(3) == 0 {
		m.Rollover = []float64{1e4, 1e5, 1e6, 1e8}[rng.IntN(4)]
	}
	top := m.Rollover
	if top == 0 {
		top = 1e6
	}
	// A wrap must stay plausible even across the longest gap (40 intervals): 40 x 100 < 1e4/2.
	// Rollover meters start close enough below the wrap to reach it.
	n := 3 + rng.IntN(300)
	offset := intervalDyadic(rng.Float64() * top)
	if m.Rollover > 0 {
		offset = m.Rollover - intervalDyadic(rng.Float64()*math.Min(maxStep*float64(n)/2, m.Rollover/2))
	}
	register := func(cum float64) float64 {
		v := offset + cum
		if m.Rollover > 0 {
			v = math.Mod(v, m.Rollover)
		}
		return v
	}

	// Walk the physical series step by step; gaps drop readings, resets and jumps (lossy mode)
	// move the register's offset.
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(86400)) * time.Second)
	var (
		clean    []Reading
		cums     []float64
		cum      float64
		gapLeft  int
		lastSpec = -10 // index in clean of the last reset, jump or wrap
		special  []bool
	)
	for k := range n {
		if k > 0 {
			cum += intervalDyadic(rng.Float64() * maxStep)
		}
		if k > 0 && k < n-1 {
			if gapLeft > 0 {
				gapLeft--
				continue
			}
			if rng.IntN(40) == 0 {
				gapLeft = 1 + rng.IntN(39)
				continue
			}
		}
		spec := false
		if mode == intervalGenLossy && len(clean) > 2 && len(clean)-lastSpec > 4 && k < n-1 {
			cur := register(cum)
			switch rng.IntN(30) {
			case 0: // reset to a small value; only where no wrap could explain the drop
				if cur > 2 && (m.Rollover == 0 || cur < m.Rollover/2-2) {
					offset += intervalDyadic(rng.Float64()) - cur
					spec = true
				}
			case 1: // register jump far beyond any bound (40 intervals of gap), not coming back
				// On a wrapping register (r + J) mod Rollover may land within the bound, where
				// no rule can tell it from consumption: jumps are injected where detectable.
				if m.Rollover == 0 {
					offset += intervalDyadic(maxStep * (200 + rng.Float64()*1e4))
					spec = true
				}
			}
		}
		v := register(cum)
		if len(clean) > 0 && v < clean[len(clean)-1].Value {
			spec = true // a wrap (or a reset)
		}
		clean = append(clean, Reading{TS: t0.Add(time.Duration(k) * m.Interval), Value: v})
		cums = append(cums, cum)
		special = append(special, spec)
		if spec {
			lastSpec = len(clean) - 1
		}
	}
	g := intervalGenerated{m: m, physical: (cums[len(cums)-1] - cums[0]) * m.Multiplier}

	// Isolated outliers: never the first two or last two readings, never within two readings of
	// a wrap, reset, jump or another outlier.
	readings := slices.Clone(clean)
	if mode != intervalGenClean {
		last := -10
		for i := 2; i < len(readings)-2; i++ {
			if i-last < 3 || slices.Contains(special[i-2:i+3], true) || rng.IntN(8) != 0 {
				continue
			}
			prev, next := clean[i-1].Value, clean[i+1].Value
			switch rng.IntN(3) {
			case 0:
				if prev == 0 {
					continue
				}
				readings[i].Value = 0
			case 1:
				if prev == 0 {
					continue
				}
				readings[i].Value = intervalDyadic(prev * (1 - 0.5*rng.Float64()))
				if readings[i].Value >= prev {
					readings[i].Value = prev - 1.0/1024
				}
				if readings[i].Value < 0 {
					continue
				}
			case 2:
				readings[i].Value = next + intervalDyadic(maxStep*(1+rng.Float64()*1e4)) + 1
			}
			last = i
		}
	}
	// Invalid values between readings.
	for i := range len(clean) - 1 {
		if rng.IntN(50) == 0 {
			bad := []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1}[rng.IntN(4)]
			readings = append(readings, Reading{TS: clean[i].TS.Add(m.Interval / 3), Value: bad})
		}
	}
	// Disorder, then duplicates placed before the value that must win.
	rng.Shuffle(len(readings), func(i, j int) { readings[i], readings[j] = readings[j], readings[i] })
	var dups []Reading
	for _, r := range clean {
		if rng.IntN(20) == 0 {
			dups = append(dups, Reading{TS: r.TS, Value: r.Value + 1e6})
		}
	}
	g.readings = append(dups, readings...)
	return g
}

func intervalRelClose(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Abs(want)+1e-12
}

// intervalCheckHourly checks properties (a), (b) and (c) on the hours of ivs.
func intervalCheckHourly(t *testing.T, rng *rand.Rand, ivs []Interval) {
	t.Helper()
	if len(ivs) == 0 {
		return
	}
	from := ivs[0].From.Add(-time.Duration(rng.IntN(3)) * time.Hour)
	to := ivs[len(ivs)-1].To.Add(time.Duration(rng.IntN(3)) * time.Hour).Add(time.Nanosecond)
	hours := Hourly(ivs, from, to)

	var total, estimated float64
	var span time.Duration
	for _, iv := range ivs {
		total += iv.Quantity
		if iv.Quality&QualityEstimated != 0 {
			estimated += iv.Quantity
		}
		span += iv.To.Sub(iv.From)
	}
	var hTotal, hEstimated, hCovered float64
	for _, h := range hours {
		if h.Quantity < 0 || h.Estimated < 0 || h.Estimated > h.Quantity*(1+1e-9)+1e-12 ||
			!(h.Coverage >= 0 && h.Coverage <= 1) {
			t.Fatalf("(c) hour %v: %+v", h.Start, h)
		}
		hTotal += h.Quantity
		hEstimated += h.Estimated
		hCovered += h.Coverage
	}
	// (a) hourly sums equal the interval total.
	if !intervalRelClose(hTotal, total) || !intervalRelClose(hEstimated, estimated) {
		t.Fatalf("(a) hourly sum %v (estimated %v), interval sum %v (estimated %v)", hTotal, hEstimated, total, estimated)
	}
	if !intervalRelClose(hCovered, span.Hours()) {
		t.Fatalf("coverage sums to %v h, intervals span %v h", hCovered, span.Hours())
	}
	// (b) splitting [from, to) at any hour and joining the halves gives the whole.
	if len(hours) < 2 {
		return
	}
	cut := hours[1+rng.IntN(len(hours)-1)].Start
	joined := append(Hourly(ivs, from, cut), Hourly(ivs, cut, to)...)
	if !slices.Equal(joined, hours) {
		t.Fatalf("(b) hours of [from, %v) + [%v, to) differ from the hours of [from, to)", cut, cut)
	}
	var a, b float64
	for _, h := range Hourly(ivs, from, cut) {
		a += h.Quantity
	}
	for _, h := range Hourly(ivs, cut, to) {
		b += h.Quantity
	}
	if !intervalRelClose(a+b, hTotal) {
		t.Fatalf("(b) halves sum to %v + %v, whole %v", a, b, hTotal)
	}
}

func TestIntervalsProperties(t *testing.T) {
	for _, mode := range []intervalGenMode{intervalGenClean, intervalGenLossless, intervalGenLossy} {
		t.Run(mode.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(20260105, uint64(mode)))
			seen := map[Quality]int{}
			for trial := range 400 {
				intervalCheckTrial(t, rng, mode, trial, seen)
			}
			// The generator must have produced what the mode is about.
			want := []Quality{QualityRollover, QualityGap, QualityZeroGlitch}
			switch mode {
			case intervalGenLossless:
				want = append(want, QualitySpike)
			case intervalGenLossy:
				want = append(want, QualitySpike, QualityReset)
			}
			for _, q := range want {
				if seen[q] < 20 {
					t.Errorf("only %d intervals flagged %v: the generator does not exercise it", seen[q], q)
				}
			}
			t.Logf("flags seen: %v", seen)
		})
	}
}

// intervalCheckTrial generates one series and checks properties (a) to (d) on it, counting
// the flags it saw.
func intervalCheckTrial(t *testing.T, rng *rand.Rand, mode intervalGenMode, trial int, seen map[Quality]int) {
	t.Helper()
	g := intervalGenerate(rng, mode)
	ivs, evs := Intervals(g.m, g.readings, nil)

	var total float64
	for k, iv := range ivs {
		// (c) never negative.
		if !(iv.Quantity >= 0) || !(iv.HeldOut >= 0) || math.IsInf(iv.Quantity, 0) {
			t.Fatalf("trial %d: interval %d: %+v", trial, k, iv)
		}
		if k > 0 && !ivs[k-1].To.Equal(iv.From) {
			t.Fatalf("trial %d: intervals %d and %d are not consecutive", trial, k-1, k)
		}
		total += iv.Quantity
		for q := Quality(1); q <= QualityEstimated; q <<= 1 {
			if iv.Quality&q != 0 {
				seen[q]++
			}
		}
		// Clean series may show rollovers, gaps and dropped invalid values (zero_glitch);
		// held-out outliers add zero_glitch and spike; only lossy ones may reset.
		forbidden := QualityReset | QualityReplacement
		if mode == intervalGenClean {
			forbidden |= QualitySpike
		}
		if mode != intervalGenLossy && iv.Quality&forbidden != 0 {
			t.Fatalf("trial %d (%+v): interval %d flagged %v", trial, g.m, k, iv.Quality)
		}
	}
	if !slices.IsSortedFunc(evs, func(a, b IntervalEvent) int { return a.At.Compare(b.At) }) {
		t.Fatalf("trial %d: events out of order", trial)
	}
	switch mode {
	case intervalGenClean, intervalGenLossless:
		// (d) without faults (or with faults that are held out) the total equals
		// (last - first) x multiplier, wraps unrolled.
		if !intervalRelClose(total, g.physical) {
			t.Fatalf("trial %d (%+v): total %v, want %v", trial, g.m, total, g.physical)
		}
	case intervalGenLossy:
		if total > g.physical*(1+1e-9)+1e-12 {
			t.Fatalf("trial %d (%+v): total %v exceeds the physical consumption %v", trial, g.m, total, g.physical)
		}
	}
	intervalCheckHourly(t, rng, ivs)
}

// FuzzIntervals: whatever the readings, Intervals never panics, never books a negative or
// infinite quantity, and Hourly keeps the interval total.
func FuzzIntervals(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 100, 0, 0, 15, 0, 0, 200, 0, 0, 15, 0, 0, 0})
	f.Add([]byte{3, 2, 1, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0, 0, 3, 0x10, 0, 1, 4, 0, 3, 0x10, 0, 0, 0})
	f.Add([]byte{1, 1, 3, 1, 7, 0, 10, 1, 2, 3, 0, 1, 0, 0, 0, 0, 6, 0xf0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{2, 0, 2, 3, 5, 0, 0, 0, 0, 0, 0, 0x80, 0, 5, 0, 0, 0, 0x00, 0, 9, 0, 0, 0})
	f.Fuzz(intervalFuzzOne)
}

// intervalFuzzOne decodes a meter, readings and replacement records from data and checks them.
func intervalFuzzOne(t *testing.T, data []byte) {
	{
		if len(data) < 4 {
			return
		}
		m := IntervalMeter{
			ID:            "fuzz",
			Multiplier:    []float64{1, 0.5, 80, 1000, 1e-3, 1.25, 3, 1e6}[data[0]%8],
			Rollover:      []float64{0, 10, 1e4, 65536, 1e8, 0, 0, 1e4}[data[1]%8],
			RatedCapacity: []float64{0, 1, 40, 1e4, 0, 0, 0.5, 1e9}[data[2]%8],
			Interval:      []time.Duration{0, time.Minute, 15 * time.Minute, time.Hour}[data[3]%4],
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		at := t0
		var readings []Reading
		var repl []Replacement
		// At most 500 records of up to ±22 days each keep Hourly's range (one Hour per hour) small.
		for p := data[4:min(len(data), 4+6*500)]; len(p) >= 6; p = p[6:] {
			kind := p[0]
			dt := time.Duration(int16(binary.BigEndian.Uint16(p[1:3]))) * time.Minute
			at = at.Add(dt)
			v := float64(uint32(p[3])<<16|uint32(p[4])<<8|uint32(p[5])) / 100
			switch kind % 8 {
			case 4:
				v = 0
			case 5:
				v = []float64{math.NaN(), math.Inf(1), math.Inf(-1), -v}[kind/8%4]
			case 6:
				v *= 1e9
			case 7:
				repl = append(repl, Replacement{At: at, OldFinal: v, NewInitial: float64(p[4]) / 10})
				continue
			}
			readings = append(readings, Reading{TS: at, Value: v})
		}
		ivs, evs := Intervals(m, readings, repl)
		var total float64
		for _, iv := range ivs {
			if !(iv.Quantity >= 0) || math.IsInf(iv.Quantity, 0) || !(iv.HeldOut >= 0) || !iv.From.Before(iv.To) {
				t.Fatalf("bad interval %+v", iv)
			}
			total += iv.Quantity
		}
		if !slices.IsSortedFunc(evs, func(a, b IntervalEvent) int { return a.At.Compare(b.At) }) {
			t.Fatal("events out of order")
		}
		if len(ivs) == 0 {
			return
		}
		hours := Hourly(ivs, ivs[0].From, ivs[len(ivs)-1].To)
		var hTotal float64
		for _, h := range hours {
			if !(h.Quantity >= 0) || !(h.Coverage >= 0 && h.Coverage <= 1) {
				t.Fatalf("bad hour %+v", h)
			}
			hTotal += h.Quantity
		}
		if !intervalRelClose(hTotal, total) {
			t.Fatalf("hourly sum %v, interval sum %v", hTotal, total)
		}
	}
}

// intervalYear is one meter's year of 15-minute readings with a few faults of each kind.
func intervalYear() (IntervalMeter, []Reading) {
	m := IntervalMeter{ID: "bench", Multiplier: 80, Rollover: 1e6, RatedCapacity: 4000, Interval: 15 * time.Minute}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rs := make([]Reading, 35040)
	v := 990000.0
	for i := range rs {
		v = math.Mod(v+rng.Float64()*10, 1e6)
		rs[i] = Reading{TS: t0.Add(time.Duration(i) * 15 * time.Minute), Value: math.Round(v*100) / 100}
		switch rng.IntN(2000) {
		case 0:
			rs[i].Value = 0
		case 1:
			rs[i].Value += 5e4
		}
	}
	return m, rs
}

func BenchmarkIntervalsYear(b *testing.B) {
	m, rs := intervalYear()
	b.ReportAllocs()
	for b.Loop() {
		Intervals(m, rs, nil)
	}
}

func BenchmarkHourlyYear(b *testing.B) {
	m, rs := intervalYear()
	ivs, _ := Intervals(m, rs, nil)
	from, to := rs[0].TS, rs[len(rs)-1].TS
	b.ReportAllocs()
	for b.Loop() {
		Hourly(ivs, from, to)
	}
}
