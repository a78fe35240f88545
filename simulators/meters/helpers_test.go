package meters

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

// simStart is a Monday midnight in the park's zone.
var simStart = time.Date(2026, 11, 2, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))

// realStart is the fake real clock's start.
var realStart = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeClock is a real clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: realStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// setSim moves the clock so the simulator (speed 1 from simStart) shows sim.
func (c *fakeClock) setSim(sim time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = realStart.Add(sim.Sub(simStart))
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// baseConfig is a park clocked at simStart, speed 1, 15 s steps, with two profiles.
func baseConfig() Config {
	weekend := 0.5
	return Config{
		Seed:     7,
		Interval: 15 * time.Second,
		Clock:    Clock{SimStart: simStart, RealStart: realStart, Speed: 1},
		Profiles: map[string]Profile{
			"plant":  {Base: 50, Peak: 200, Pattern: "day_shift", Weekend: &weekend, Noise: 0.1},
			"export": {Base: -20, Peak: -30, Pattern: "solar", Noise: 0.1},
			"flat":   {Base: 36, Pattern: "flat"},
		},
	}
}

// newSim builds cfg on a fake clock set to simStart.
func newSim(t *testing.T, cfg Config) (*Sim, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	s, err := New(cfg, Options{Logger: testLogger(t), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

// startSim also listens, and closes at the end of the test.
func startSim(t *testing.T, cfg Config) (*Sim, *fakeClock) {
	t.Helper()
	s, clk := newSim(t, cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, clk
}

// drivers builds the agent's drivers for the simulator's devices, with short timeouts.
func drivers(t *testing.T, s *Sim, timeout time.Duration, retries int) []device.Device {
	t.Helper()
	var out []device.Device
	for _, c := range s.DeviceConfigs() {
		c.Timeout, c.Retries = timeout, retries
		var d device.Device
		var err error
		switch c.Protocol {
		case device.ModbusTCP:
			d, err = modbus.NewDevice(c, testLogger(t))
		default:
			d, err = dlt645.NewDevice(c, testLogger(t))
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		out = append(out, d)
	}
	return out
}

// pollAll polls every driver and returns the values by meter; a device error fails the test.
func pollAll(t *testing.T, ds []device.Device) map[string]device.Value {
	t.Helper()
	out := map[string]device.Value{}
	for _, d := range ds {
		values, err := d.Poll(context.Background())
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		for _, v := range values {
			out[v.Meter] = v
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
