package meters

import (
	"math"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

const step = 15 * time.Second

// at is the start of step n since simStart, plus offset.
func at(n int, offset time.Duration) time.Time { return simStart.Add(time.Duration(n)*step + offset) }

// modelConfig has a DL/T 645 bus (energy and the power following it) and a Modbus unit (a
// uint32 energy counter and a float32 power gauge).
func modelConfig() Config {
	c := baseConfig()
	c.Devices = []DeviceConfig{
		{Name: "bus", Protocol: device.DLT645TCP, Meters: []MeterConfig{
			{Name: "e", Profile: "plant", Address: "000000000001", Data: dlt645.DataTotalActiveEnergy, Initial: 1000},
			{Name: "p", Follows: "e", Factor: 0.1, Address: "000000000001", Data: dlt645.DataActivePower},
		}},
		{Name: "plc", Protocol: device.ModbusTCP, Meters: []MeterConfig{
			{Name: "m", Kind: Counter, Profile: "plant", Register: 0, Type: modbus.TypeUint32, Scale: 0.01},
			{Name: "g", Kind: Gauge, Profile: "plant", Register: 2, Type: modbus.TypeFloat32},
		}},
	}
	return c
}

func peek(t *testing.T, s *Sim, meter string, when time.Time) (Sample, bool) {
	t.Helper()
	smp, ok, err := s.Peek(meter, when)
	if err != nil {
		t.Fatal(err)
	}
	return smp, ok
}

func TestDeterministic(t *testing.T) {
	a, _ := newSim(t, modelConfig())
	b, _ := newSim(t, modelConfig())
	other := modelConfig()
	other.Seed++
	c, _ := newSim(t, other)
	differs := map[string]bool{}
	// Read b backwards and a forwards: the counters' sums must not depend on the order.
	for n := 2999; n >= 0; n -= 7 {
		for _, m := range a.Meters() {
			sb, _ := peek(t, b, m, at(n, 0))
			sa, _ := peek(t, a, m, at(n, 3*time.Second))
			sc, _ := peek(t, c, m, at(n, 0))
			if !sameSample(sa, sb) {
				t.Fatalf("%s step %d: %+v and %+v from the same seed", m, n, sa, sb)
			}
			differs[m] = differs[m] || sc.Value != sa.Value
		}
	}
	for _, m := range a.Meters() {
		if !differs[m] {
			t.Errorf("%s: another seed gives the same values", m)
		}
	}
}

func sameSample(a, b Sample) bool {
	return a.Time.Equal(b.Time) && a.Step == b.Step && a.Value == b.Value && a.Physical == b.Physical
}

func TestStepsOnTheGrid(t *testing.T) {
	s, _ := newSim(t, modelConfig())
	for _, m := range s.Meters() {
		var prev Sample
		for n := range 200 {
			first, _ := peek(t, s, m, at(n, 0))
			for _, off := range []time.Duration{time.Nanosecond, 7 * time.Second, step - time.Nanosecond} {
				if got, _ := peek(t, s, m, at(n, off)); !sameSample(got, first) {
					t.Fatalf("%s step %d at +%s: %+v, at the start %+v", m, n, off, got, first)
				}
			}
			if !first.Time.Equal(at(n, 0)) || first.Step != int64(n) {
				t.Fatalf("%s step %d: time %s step %d", m, n, first.Time, first.Step)
			}
			if m == "e" || m == "m" {
				if n > 0 && first.Value <= prev.Value {
					t.Fatalf("%s: counter went from %v to %v at step %d", m, prev.Value, first.Value, n)
				}
				if n > 0 && first.Physical <= prev.Physical {
					t.Fatalf("%s: physical energy went from %v to %v", m, prev.Physical, first.Physical)
				}
			}
			prev = first
		}
	}
}

func TestServedValues(t *testing.T) {
	s, _ := newSim(t, modelConfig())
	for n := range 100 {
		e, _ := peek(t, s, "e", at(n, 0))
		// DL/T 645 energy: initial + physical, cut to hundredths.
		if want := math.Floor((1000+e.Physical)*100) / 100; math.Abs(e.Value-want) > 1e-9 {
			t.Fatalf("e step %d: %v, want %v", n, e.Value, want)
		}
		p, _ := peek(t, s, "p", at(n, 0))
		if math.Abs(p.Value-p.Physical) > 0.00005+1e-12 {
			t.Fatalf("p step %d: %v for a load of %v", n, p.Value, p.Physical)
		}
		// The gauge follows the counter's load: 0.1 × its rate.
		next, _ := peek(t, s, "e", at(n+1, 0))
		if rate := (next.Physical - e.Physical) * 3600 / step.Seconds(); math.Abs(p.Physical-0.1*rate) > 1e-9 {
			t.Fatalf("p step %d: load %v, counter rate %v", n, p.Physical, rate)
		}
		// float32 keeps 24 bits: the truth is the decoded float32, not the float64.
		g, _ := peek(t, s, "g", at(n, 0))
		if g.Value != float64(float32(g.Physical)) {
			t.Fatalf("g step %d: %v, want float32(%v)", n, g.Value, g.Physical)
		}
	}
}

func TestWeekendAndShape(t *testing.T) {
	c := baseConfig()
	c.Devices = []DeviceConfig{{Name: "plc", Protocol: device.ModbusTCP, Meters: []MeterConfig{
		{Name: "g", Kind: Gauge, Profile: "flat", Type: modbus.TypeFloat64},
		{Name: "w", Kind: Gauge, Profile: "plant", Register: 4, Type: modbus.TypeFloat64},
	}}}
	s, _ := newSim(t, c)
	// flat, no noise: 36 at every step.
	for _, when := range []time.Time{simStart, simStart.Add(13 * time.Hour), simStart.Add(5 * 24 * time.Hour)} {
		if g, _ := peek(t, s, "g", when); g.Value != 36 {
			t.Errorf("flat gauge at %s = %v, want 36", when, g.Value)
		}
	}
	// plant: 50 + 200 × hour factor × (0.5 on weekends), ±10% noise.
	for _, tc := range []struct {
		when     time.Time
		lo, high float64
	}{
		{simStart.Add(3 * time.Hour), (50 + 200*0.05) * 0.9, (50 + 200*0.05) * 1.1},       // Monday night
		{simStart.Add(10 * time.Hour), 250 * 0.9, 250 * 1.1},                              // Monday 10:00
		{simStart.Add(5*24*time.Hour + 10*time.Hour), (50 + 100) * 0.9, (50 + 100) * 1.1}, // Saturday 10:00
		{simStart.Add(12 * time.Hour), (50 + 200*0.6) * 0.9, (50 + 200*0.6) * 1.1},        // lunch
	} {
		w, _ := peek(t, s, "w", tc.when)
		if w.Value < tc.lo || w.Value > tc.high {
			t.Errorf("plant at %s = %v, want within [%v, %v]", tc.when, w.Value, tc.lo, tc.high)
		}
	}
}

// faultConfig is one meter, Modbus uint32/0.01 or DL/T 645 energy, with faults.
func faultConfig(protocol string, mc MeterConfig) Config {
	c := baseConfig()
	mc.Name, mc.Profile = "x", "plant"
	if protocol == device.ModbusTCP {
		mc.Kind, mc.Type, mc.Scale = Counter, modbus.TypeUint32, 0.01
	} else {
		mc.Address, mc.Data = "000000000001", dlt645.DataTotalActiveEnergy
	}
	c.Devices = []DeviceConfig{{Name: "d", Protocol: protocol, Meters: []MeterConfig{mc}}}
	return c
}

func TestFaults(t *testing.T) {
	for _, protocol := range []string{device.ModbusTCP, device.DLT645TCP} {
		maxValue := 999999.99
		if protocol == device.ModbusTCP {
			maxValue = 42949672.95
		}
		for _, tc := range []struct {
			name   string
			meter  MeterConfig
			device []Fault
			check  func(t *testing.T, v func(n int) (Sample, bool), clean func(n int) Sample)
		}{
			{"offline steps", MeterConfig{Faults: []Fault{{Kind: FaultOffline, FromStep: ptr[int64](3), ToStep: ptr[int64](5)}}},
				nil, func(t *testing.T, v func(int) (Sample, bool), _ func(int) Sample) {
					for n, want := range []bool{true, true, true, false, false, true} {
						if _, ok := v(n); ok != want {
							t.Errorf("step %d: answers %v, want %v", n, ok, want)
						}
					}
				}},
			{"offline window", MeterConfig{Faults: []Fault{{Kind: FaultOffline, From: at(2, 5*time.Second), To: at(4, 0)}}},
				nil, func(t *testing.T, v func(int) (Sample, bool), _ func(int) Sample) {
					// Steps starting in [from, to): only step 3.
					for n, want := range []bool{true, true, true, false, true} {
						if _, ok := v(n); ok != want {
							t.Errorf("step %d: answers %v, want %v", n, ok, want)
						}
					}
				}},
			{"device offline", MeterConfig{}, []Fault{{Kind: FaultOffline, Step: ptr[int64](2)}},
				func(t *testing.T, v func(int) (Sample, bool), _ func(int) Sample) {
					for n, want := range []bool{true, true, false, true} {
						if _, ok := v(n); ok != want {
							t.Errorf("step %d: answers %v, want %v", n, ok, want)
						}
					}
				}},
			{"stuck", MeterConfig{Faults: []Fault{{Kind: FaultStuck, FromStep: ptr[int64](3), ToStep: ptr[int64](6)}}},
				nil, func(t *testing.T, v func(int) (Sample, bool), clean func(int) Sample) {
					s3, _ := v(3)
					for n := 3; n < 6; n++ {
						if s, _ := v(n); s.Value != s3.Value {
							t.Errorf("step %d: %v, frozen at %v", n, s.Value, s3.Value)
						}
					}
					if s6, _ := v(6); s6.Value != clean(6).Value || s6.Value <= s3.Value {
						t.Errorf("after the window: %v, want %v", s6.Value, clean(6).Value)
					}
				}},
			{"spike", MeterConfig{Faults: []Fault{{Kind: FaultSpike, Step: ptr[int64](4)}}},
				nil, func(t *testing.T, v func(int) (Sample, bool), clean func(int) Sample) {
					for n := 2; n < 7; n++ {
						want := clean(n).Value
						if n == 4 {
							want = maxValue
						}
						if s, _ := v(n); s.Value != want {
							t.Errorf("step %d: %v, want %v", n, s.Value, want)
						}
					}
				}},
			{"spike with value at an instant", MeterConfig{Faults: []Fault{{Kind: FaultSpike, At: at(4, 7*time.Second), Value: ptr(5000.0)}}},
				nil, func(t *testing.T, v func(int) (Sample, bool), clean func(int) Sample) {
					if s, _ := v(4); s.Value != 5000 {
						t.Errorf("step 4: %v, want 5000", s.Value)
					}
					if s, _ := v(5); s.Value != clean(5).Value {
						t.Errorf("step 5: %v, want %v", s.Value, clean(5).Value)
					}
				}},
			{"zero", MeterConfig{Faults: []Fault{{Kind: FaultZero, Step: ptr[int64](4)}}},
				nil, func(t *testing.T, v func(int) (Sample, bool), clean func(int) Sample) {
					for n := 3; n < 6; n++ {
						want := clean(n).Value
						if n == 4 {
							want = 0
						}
						if s, _ := v(n); s.Value != want {
							t.Errorf("step %d: %v, want %v", n, s.Value, want)
						}
					}
				}},
			{"reset", MeterConfig{Initial: 5000, Faults: []Fault{{Kind: FaultReset, Step: ptr[int64](4)}}},
				nil, func(t *testing.T, v func(int) (Sample, bool), clean func(int) Sample) {
					if s, _ := v(3); s.Value != clean(3).Value || s.Value < 5000 {
						t.Errorf("before: %v, want %v", s.Value, clean(3).Value)
					}
					s4, _ := v(4)
					s6, _ := v(6)
					if s4.Value != 0 {
						t.Errorf("at the reset: %v, want 0", s4.Value)
					}
					if want := s6.Physical - s4.Physical; math.Abs(s6.Value-want) > 0.01 {
						t.Errorf("two steps later: %v, want %v consumed since", s6.Value, want)
					}
				}},
			{"replace", MeterConfig{Initial: 5000, Faults: []Fault{{Kind: FaultReplace, Step: ptr[int64](4), Value: ptr(10.0)}}},
				nil, func(t *testing.T, v func(int) (Sample, bool), _ func(int) Sample) {
					s4, _ := v(4)
					s5, _ := v(5)
					if s4.Value != 10 {
						t.Errorf("at the replacement: %v, want 10", s4.Value)
					}
					if want := 10 + s5.Physical - s4.Physical; math.Abs(s5.Value-want) > 0.01 {
						t.Errorf("next step: %v, want %v", s5.Value, want)
					}
				}},
			{"rollover", MeterConfig{Rollover: 1000, Faults: []Fault{{Kind: FaultRollover, Step: ptr[int64](4)}}},
				nil, func(t *testing.T, v func(int) (Sample, bool), _ func(int) Sample) {
					s2, _ := v(2)
					s3, _ := v(3)
					s4, _ := v(4)
					s5, _ := v(5)
					if !(s2.Value < s3.Value && s3.Value < 1000 && s4.Value < s3.Value && s4.Value < s5.Value) {
						t.Errorf("values %v %v %v %v: want a wrap between steps 3 and 4", s2.Value, s3.Value, s4.Value, s5.Value)
					}
					// The remainder is kept: the delta across the wrap is the energy of the step.
					if got, want := s4.Value+1000-s3.Value, s4.Physical-s3.Physical; math.Abs(got-want) > 0.01 {
						t.Errorf("delta across the wrap %v, consumed %v", got, want)
					}
				}},
			{"natural rollover", MeterConfig{Initial: math.Floor(maxValue)},
				nil, func(t *testing.T, v func(int) (Sample, bool), _ func(int) Sample) {
					// The register wraps at what it can hold: 1 000 000 kWh for DL/T 645
					// energy, 2^32 hundredths for uint32 × 0.01.
					top := maxValue + 0.01
					s0, _ := v(0)
					s9, _ := v(9)
					if s0.Value != math.Floor(maxValue) || s9.Value >= s0.Value {
						t.Errorf("values %v then %v: want a wrap at %v", s0.Value, s9.Value, top)
					}
					if got, want := s9.Value+top-s0.Value, s9.Physical-s0.Physical; math.Abs(got-want) > 0.01 {
						t.Errorf("delta across the wrap %v, consumed %v", got, want)
					}
				}},
		} {
			t.Run(protocol+"/"+tc.name, func(t *testing.T) {
				cfg := faultConfig(protocol, tc.meter)
				cfg.Devices[0].Faults = tc.device
				s, _ := newSim(t, cfg)
				cleanCfg := tc.meter
				cleanCfg.Faults = nil
				clean, _ := newSim(t, faultConfig(protocol, cleanCfg))
				tc.check(t,
					func(n int) (Sample, bool) { return peek(t, s, "x", at(n, time.Second)) },
					func(n int) Sample { smp, _ := peek(t, clean, "x", at(n, 0)); return smp })
			})
		}
	}
}

// TestConsumptionRecovered plays the accounting engine's part: from the served register
// alone (knowing the rollover and the replacement's new reading, as the registry would) it
// recovers the physical consumption the ground truth reports.
func TestConsumptionRecovered(t *testing.T) {
	cfg := faultConfig(device.DLT645TCP, MeterConfig{Rollover: 500, Faults: []Fault{
		{Kind: FaultRollover, Step: ptr[int64](40)},
		{Kind: FaultReset, Step: ptr[int64](100)},
		{Kind: FaultReplace, Step: ptr[int64](150), Value: ptr(5.0)},
	}})
	s, _ := newSim(t, cfg)
	var sum float64
	prev, _ := peek(t, s, "x", at(0, 0))
	for n := 1; n <= 200; n++ {
		cur, _ := peek(t, s, "x", at(n, 0))
		d := cur.Value - prev.Value
		switch n {
		case 100:
			d = cur.Value // reset: the new register counts from 0
		case 150:
			d = cur.Value - 5 // replacement: from its first reading
		default:
			if d < 0 {
				d += 500 // rollover, remainder kept
			}
		}
		sum += d
		prev = cur
	}
	want, err := s.Consumption("x", at(0, 0), at(200, 0))
	if err != nil {
		t.Fatal(err)
	}
	// Each reset and replacement loses the part of a step the register did not show.
	lost := 0.0
	for _, n := range []int{100, 150} {
		a, _ := peek(t, s, "x", at(n-1, 0))
		b, _ := peek(t, s, "x", at(n, 0))
		lost += b.Physical - a.Physical
	}
	if math.Abs(sum+lost-want) > 0.05 {
		t.Errorf("recovered %v (+%v lost at the reset and replacement), physical %v", sum, lost, want)
	}
}

func TestClock(t *testing.T) {
	real0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		speed float64
		after time.Duration
		want  time.Duration
	}{
		{0, time.Hour, time.Hour},
		{1, 90 * time.Second, 90 * time.Second},
		{60, time.Second, time.Minute},
		{3600, 1500 * time.Millisecond, 90 * time.Minute},
		{0.5, time.Minute, 30 * time.Second},
		{2.5, time.Second, 2500 * time.Millisecond},
		{1e6, 123456789 * time.Nanosecond, 123456789 * time.Millisecond},
	} {
		c := Clock{SimStart: simStart, RealStart: real0, Speed: tc.speed}
		got := c.Sim(real0.Add(tc.after))
		if !got.Equal(simStart.Add(tc.want)) {
			t.Errorf("speed %v, %s later: %s, want %s", tc.speed, tc.after, got, simStart.Add(tc.want))
		}
		if back := c.Real(got); !back.Equal(real0.Add(tc.after)) {
			t.Errorf("speed %v: Real(Sim(t)) = %s, want %s", tc.speed, back, real0.Add(tc.after))
		}
	}
}

func TestAcceleratedClockAdvancesSteps(t *testing.T) {
	cfg := modelConfig()
	cfg.Clock = Clock{SimStart: simStart, Speed: 600} // RealStart: now
	s, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Clock()
	if c.RealStart.IsZero() || !c.SimStart.Equal(simStart) {
		t.Fatalf("clock %+v", c)
	}
	before := s.SimNow()
	time.Sleep(50 * time.Millisecond)
	after := s.SimNow()
	// 50ms real at speed 600 is 30s simulated: two steps of 15s.
	if d := after.Sub(before); d < 30*time.Second || d > 5*time.Minute {
		t.Errorf("50ms of real time moved the simulation by %s, want about 30s", d)
	}
}
