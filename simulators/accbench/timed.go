package accbench

import (
	"context"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/rollup"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// CallTime is the time the rollup engine spent in one method of its stores.
type CallTime struct {
	Method string
	Calls  int
	Time   time.Duration
	Rows   int // readings or points returned or written, where that applies
}

// clock adds up call times by method.
type clock struct {
	mu    sync.Mutex
	order []string
	by    map[string]*CallTime
}

func (c *clock) add(method string, start time.Time, rows int) {
	d := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]*CallTime{}
	}
	t := c.by[method]
	if t == nil {
		t = &CallTime{Method: method}
		c.by[method] = t
		c.order = append(c.order, method)
	}
	t.Calls++
	t.Time += d
	t.Rows += rows
}

func (c *clock) times() []CallTime {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]CallTime, 0, len(c.order))
	for _, m := range c.order {
		out = append(out, *c.by[m])
	}
	return out
}

func samples(m map[string][]influx.Sample) int {
	n := 0
	for _, s := range m {
		n += len(s)
	}
	return n
}

// timedReadings times the engine's reading and rollup queries.
type timedReadings struct {
	s *influx.Store
	c *clock
}

var (
	_ rollup.ReadingSource = timedReadings{}
	_ rollup.RollupStore   = timedReadings{}
)

func (t timedReadings) ReadingsWindow(ctx context.Context, park string, meters []string, from, to time.Time) (map[string][]influx.Sample, error) {
	start := time.Now()
	out, err := t.s.ReadingsWindow(ctx, park, meters, from, to)
	t.c.add("influx ReadingsWindow", start, samples(out))
	return out, err
}

func (t timedReadings) ReadingsBefore(ctx context.Context, park string, meters []string, before time.Time, n int, lookback time.Duration) (map[string][]influx.Sample, error) {
	start := time.Now()
	out, err := t.s.ReadingsBefore(ctx, park, meters, before, n, lookback)
	t.c.add("influx ReadingsBefore", start, samples(out))
	return out, err
}

func (t timedReadings) ReadingsAfter(ctx context.Context, park string, meters []string, after time.Time, n int, lookahead time.Duration) (map[string][]influx.Sample, error) {
	start := time.Now()
	out, err := t.s.ReadingsAfter(ctx, park, meters, after, n, lookahead)
	t.c.add("influx ReadingsAfter", start, samples(out))
	return out, err
}

func (t timedReadings) WriteRollups(ctx context.Context, points []influx.RollupPoint) error {
	start := time.Now()
	err := t.s.WriteRollups(ctx, points)
	t.c.add("influx WriteRollups", start, len(points))
	return err
}

func (t timedReadings) HourlyRollups(ctx context.Context, park string, from, to time.Time) ([]influx.RollupPoint, error) {
	start := time.Now()
	out, err := t.s.HourlyRollups(ctx, park, from, to)
	t.c.add("influx HourlyRollups", start, len(out))
	return out, err
}

// timedSQL times the engine's SQL calls.
type timedSQL struct {
	dirty accounting.DirtyStore
	repl  rollup.ReplacementSource
	reg   rollup.Registry
	c     *clock
}

var (
	_ accounting.DirtyStore    = timedSQL{}
	_ rollup.ReplacementSource = timedSQL{}
	_ rollup.Registry          = timedSQL{}
)

func (t timedSQL) MarkDirty(ctx context.Context, hours []accounting.DirtyHour) error {
	start := time.Now()
	err := t.dirty.MarkDirty(ctx, hours)
	t.c.add("sql MarkDirty", start, len(hours))
	return err
}

func (t timedSQL) ClaimDirty(ctx context.Context, limit int) ([]accounting.DirtyHour, []int64, error) {
	start := time.Now()
	h, v, err := t.dirty.ClaimDirty(ctx, limit)
	t.c.add("sql ClaimDirty", start, len(h))
	return h, v, err
}

func (t timedSQL) ClearDirty(ctx context.Context, hours []accounting.DirtyHour, versions []int64) error {
	start := time.Now()
	err := t.dirty.ClearDirty(ctx, hours, versions)
	t.c.add("sql ClearDirty", start, len(hours))
	return err
}

func (t timedSQL) ListReplacements(ctx context.Context, park, meter string) ([]accounting.Replacement, error) {
	start := time.Now()
	out, err := t.repl.ListReplacements(ctx, park, meter)
	t.c.add("sql ListReplacements", start, len(out))
	return out, err
}

func (t timedSQL) GetPark(ctx context.Context, id string) (registry.Park, error) {
	start := time.Now()
	p, err := t.reg.GetPark(ctx, id)
	t.c.add("sql GetPark", start, 1)
	return p, err
}

func (t timedSQL) ListMeters(ctx context.Context, f registry.MeterFilter, page registry.Page) ([]registry.Meter, error) {
	start := time.Now()
	out, err := t.reg.ListMeters(ctx, f, page)
	t.c.add("sql ListMeters", start, len(out))
	return out, err
}

func (t timedReadings) DailyRollups(ctx context.Context, park string, from, to time.Time) ([]influx.RollupPoint, error) {
	start := time.Now()
	out, err := t.s.DailyRollups(ctx, park, from, to)
	t.c.add("influx DailyRollups", start, len(out))
	return out, err
}
