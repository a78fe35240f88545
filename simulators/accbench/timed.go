package accbench

import (
	"context"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/rollup"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/simulators/calltime"
)

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
	c *calltime.Clock
}

var (
	_ rollup.ReadingSource = timedReadings{}
	_ rollup.RollupStore   = timedReadings{}
)

func (t timedReadings) ReadingsWindow(ctx context.Context, park string, meters []string, from, to time.Time) (map[string][]influx.Sample, error) {
	start := time.Now()
	out, err := t.s.ReadingsWindow(ctx, park, meters, from, to)
	t.c.Add("influx ReadingsWindow", start, samples(out))
	return out, err
}

func (t timedReadings) ReadingsBefore(ctx context.Context, park string, meters []string, before time.Time, n int, lookback time.Duration) (map[string][]influx.Sample, error) {
	start := time.Now()
	out, err := t.s.ReadingsBefore(ctx, park, meters, before, n, lookback)
	t.c.Add("influx ReadingsBefore", start, samples(out))
	return out, err
}

func (t timedReadings) ReadingsAfter(ctx context.Context, park string, meters []string, after time.Time, n int, lookahead time.Duration) (map[string][]influx.Sample, error) {
	start := time.Now()
	out, err := t.s.ReadingsAfter(ctx, park, meters, after, n, lookahead)
	t.c.Add("influx ReadingsAfter", start, samples(out))
	return out, err
}

func (t timedReadings) WriteRollups(ctx context.Context, points []influx.RollupPoint) error {
	start := time.Now()
	err := t.s.WriteRollups(ctx, points)
	t.c.Add("influx WriteRollups", start, len(points))
	return err
}

func (t timedReadings) HourlyRollups(ctx context.Context, park string, from, to time.Time) ([]influx.RollupPoint, error) {
	start := time.Now()
	out, err := t.s.HourlyRollups(ctx, park, from, to)
	t.c.Add("influx HourlyRollups", start, len(out))
	return out, err
}

// timedSQL times the engine's SQL calls.
type timedSQL struct {
	dirty accounting.DirtyStore
	repl  rollup.ReplacementSource
	reg   rollup.Registry
	c     *calltime.Clock
}

var (
	_ accounting.DirtyStore    = timedSQL{}
	_ rollup.ReplacementSource = timedSQL{}
	_ rollup.Registry          = timedSQL{}
)

func (t timedSQL) MarkDirty(ctx context.Context, hours []accounting.DirtyHour) error {
	start := time.Now()
	err := t.dirty.MarkDirty(ctx, hours)
	t.c.Add("sql MarkDirty", start, len(hours))
	return err
}

func (t timedSQL) ClaimDirty(ctx context.Context, limit int) ([]accounting.DirtyHour, []int64, error) {
	start := time.Now()
	h, v, err := t.dirty.ClaimDirty(ctx, limit)
	t.c.Add("sql ClaimDirty", start, len(h))
	return h, v, err
}

func (t timedSQL) ClearDirty(ctx context.Context, hours []accounting.DirtyHour, versions []int64) error {
	start := time.Now()
	err := t.dirty.ClearDirty(ctx, hours, versions)
	t.c.Add("sql ClearDirty", start, len(hours))
	return err
}

func (t timedSQL) ListReplacements(ctx context.Context, park, meter string) ([]accounting.Replacement, error) {
	start := time.Now()
	out, err := t.repl.ListReplacements(ctx, park, meter)
	t.c.Add("sql ListReplacements", start, len(out))
	return out, err
}

func (t timedSQL) GetPark(ctx context.Context, id string) (registry.Park, error) {
	start := time.Now()
	p, err := t.reg.GetPark(ctx, id)
	t.c.Add("sql GetPark", start, 1)
	return p, err
}

func (t timedSQL) ListMeters(ctx context.Context, f registry.MeterFilter, page registry.Page) ([]registry.Meter, error) {
	start := time.Now()
	out, err := t.reg.ListMeters(ctx, f, page)
	t.c.Add("sql ListMeters", start, len(out))
	return out, err
}

func (t timedReadings) DailyRollups(ctx context.Context, park string, from, to time.Time) ([]influx.RollupPoint, error) {
	start := time.Now()
	out, err := t.s.DailyRollups(ctx, park, from, to)
	t.c.Add("influx DailyRollups", start, len(out))
	return out, err
}
