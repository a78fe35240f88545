// Package rollup keeps the hourly and daily rollups of every counter meter up to date: it
// claims the (park, hour) marks the collectors leave when they store readings, recomputes the
// hours those readings can change with the accounting engine (accounting.Intervals and
// accounting.Hourly), converts them to the carrier's canonical unit, tce and CO2, writes them
// to InfluxDB (rollups_1h) and recomputes the local days they touch (rollups_1d).
//
// Gauge meters are skipped: an instantaneous value gives no energy without integrating power
// over time, which is not implemented yet.
package rollup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// ReadingSource reads raw readings; *influx.Store is one.
type ReadingSource interface {
	ReadingsWindow(ctx context.Context, park string, meters []string, from, to time.Time) (map[string][]influx.Sample, error)
	ReadingsBefore(ctx context.Context, park string, meters []string, before time.Time, n int, lookback time.Duration) (map[string][]influx.Sample, error)
	ReadingsAfter(ctx context.Context, park string, meters []string, after time.Time, n int, lookahead time.Duration) (map[string][]influx.Sample, error)
}

// RollupStore writes rollups and reads hourly and daily ones back; *influx.Store is one.
type RollupStore interface {
	WriteRollups(ctx context.Context, points []influx.RollupPoint) error
	HourlyRollups(ctx context.Context, park string, from, to time.Time) ([]influx.RollupPoint, error)
	DailyRollups(ctx context.Context, park string, from, to time.Time) ([]influx.RollupPoint, error)
}

// ReplacementSource lists a meter's replacement records; accounting.InputStore is one.
type ReplacementSource interface {
	ListReplacements(ctx context.Context, park, meter string) ([]accounting.Replacement, error)
}

// Registry gives a park's time zone and meters; *registry.Service is one.
type Registry interface {
	GetPark(ctx context.Context, id string) (registry.Park, error)
	ListMeters(ctx context.Context, f registry.MeterFilter, page registry.Page) ([]registry.Meter, error)
}

// FactorSource gives the factor set in effect at an instant; *factors.Registry is one.
type FactorSource interface {
	Latest(id string, at time.Time) (factors.Set, error)
}

// Options configure an Engine. Readings, Rollups, Dirty, Replacements, Registry and Factors are
// required.
type Options struct {
	Readings     ReadingSource
	Rollups      RollupStore
	Dirty        accounting.DirtyStore
	Replacements ReplacementSource
	Registry     Registry
	Factors      FactorSource
	// FactorSet is the id of the set tce and CO2 are computed with; default cn-zcp-2025.
	FactorSet string
	// Interval between cycles of Run; default 5s.
	Interval time.Duration
	// ClaimLimit is the most dirty hours one cycle claims; default 10000.
	ClaimLimit int
	Logger     *slog.Logger
	// Now is the clock of Stats.Duration; default time.Now.
	Now func() time.Time
}

// DefaultFactorSet is the set of the national zero-carbon park rule.
const DefaultFactorSet = "cn-zcp-2025"

// Engine computes rollups.
type Engine struct {
	opts Options
	log  *slog.Logger

	mu            sync.Mutex
	loggedMissing map[string]bool // carrier.field already logged as missing
}

// New returns an Engine.
func New(opts Options) (*Engine, error) {
	if opts.Readings == nil || opts.Rollups == nil || opts.Dirty == nil || opts.Replacements == nil ||
		opts.Registry == nil || opts.Factors == nil {
		return nil, errors.New("rollup: Readings, Rollups, Dirty, Replacements, Registry and Factors are required")
	}
	if opts.FactorSet == "" {
		opts.FactorSet = DefaultFactorSet
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.ClaimLimit <= 0 {
		opts.ClaimLimit = DefaultClaimLimit
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Engine{opts: opts, log: opts.Logger, loggedMissing: map[string]bool{}}, nil
}

// Stats describe one cycle.
type Stats struct {
	Claimed      int // dirty hours taken
	Parks        int
	Meters       int // counter meters computed, summed over the parks' windows
	ReadingsRead int
	HoursWritten int
	DaysWritten  int
	Duration     time.Duration
}

func (s *Stats) add(o Stats) {
	s.Claimed += o.Claimed
	s.Parks += o.Parks
	s.Meters += o.Meters
	s.ReadingsRead += o.ReadingsRead
	s.HoursWritten += o.HoursWritten
	s.DaysWritten += o.DaysWritten
}

// Run runs a cycle at once and then every Interval until ctx ends. Errors are logged; the marks
// of a park that failed stay for the next cycle.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		st, err := e.Cycle(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Error("rollup cycle", "err", err)
		} else if st.HoursWritten > 0 {
			e.log.Debug("rollup cycle", "parks", st.Parks, "meters", st.Meters, "readings", st.ReadingsRead,
				"hours", st.HoursWritten, "days", st.DaysWritten, "duration", st.Duration)
		}
		if err == nil && st.Claimed == e.opts.ClaimLimit {
			continue // a backlog: keep going
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Cycle claims dirty hours, recomputes them park by park and clears the marks of the parks
// that succeeded. The error joins the failures of the parks.
func (e *Engine) Cycle(ctx context.Context) (Stats, error) {
	begin := e.opts.Now()
	var st Stats
	hours, versions, err := e.opts.Dirty.ClaimDirty(ctx, e.opts.ClaimLimit)
	if err != nil {
		return st, fmt.Errorf("claim dirty hours: %w", err)
	}
	st.Claimed = len(hours)
	type claimed struct {
		hours    []accounting.DirtyHour
		versions []int64
	}
	byPark := map[string]*claimed{}
	var parks []string
	for i, h := range hours {
		c := byPark[h.Park]
		if c == nil {
			c = &claimed{}
			byPark[h.Park] = c
			parks = append(parks, h.Park)
		}
		c.hours = append(c.hours, h)
		c.versions = append(c.versions, versions[i])
	}
	slices.Sort(parks)
	var errs []error
	var doneHours []accounting.DirtyHour
	var doneVersions []int64
	for _, park := range parks {
		c := byPark[park]
		hs := make([]time.Time, len(c.hours))
		for i, h := range c.hours {
			hs[i] = h.Hour
		}
		pst, err := e.park(ctx, park, hs)
		st.add(pst)
		if err != nil {
			errs = append(errs, fmt.Errorf("park %s: %w", park, err))
			continue
		}
		doneHours = append(doneHours, c.hours...)
		doneVersions = append(doneVersions, c.versions...)
	}
	if len(doneHours) > 0 {
		if err := e.opts.Dirty.ClearDirty(ctx, doneHours, doneVersions); err != nil {
			errs = append(errs, fmt.Errorf("clear dirty hours: %w", err))
		}
	}
	st.Duration = e.opts.Now().Sub(begin)
	return st, errors.Join(errs...)
}

// MarkPoints returns the dirty (park, UTC hour) set of a batch of stored readings, without
// duplicates, in the order first seen.
func MarkPoints(points []influx.Point) []accounting.DirtyHour {
	seen := map[accounting.DirtyHour]bool{}
	var out []accounting.DirtyHour
	for _, p := range points {
		h := accounting.DirtyHour{Park: p.Park, Hour: p.TS.UTC().Truncate(time.Hour)}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// park recomputes the hours of one park around its dirty hours, then the local days they touch.
func (e *Engine) park(ctx context.Context, park string, dirty []time.Time) (Stats, error) {
	st := Stats{Parks: 1}
	p, err := e.opts.Registry.GetPark(ctx, park)
	if errors.Is(err, registry.ErrNotFound) {
		e.log.Warn("dirty hours of an unknown park dropped", "park", park, "hours", len(dirty))
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("get park: %w", err)
	}
	loc, err := time.LoadLocation(p.Timezone)
	if p.Timezone == "" || err != nil {
		loc, _ = time.LoadLocation(registry.DefaultTimezone)
	}
	all, err := registry.All(func(pg registry.Page) ([]registry.Meter, error) {
		return e.opts.Registry.ListMeters(ctx, registry.MeterFilter{ParkID: park}, pg)
	}, func(m registry.Meter) string { return m.ID })
	if err != nil {
		return st, fmt.Errorf("list meters: %w", err)
	}
	var meters []meterInfo
	for _, m := range all {
		if m.Kind == registry.Gauge { // no energy from instantaneous values yet
			continue
		}
		repl, err := e.opts.Replacements.ListReplacements(ctx, park, m.ID)
		if err != nil {
			return st, fmt.Errorf("list replacements of meter %s: %w", m.ID, err)
		}
		meters = append(meters, meterInfo{Meter: m, repl: repl})
	}
	if len(meters) == 0 {
		return st, nil
	}

	// The windows of a park are independent: two at a time keep InfluxDB busy while this
	// process computes. Their hours are merged in run order, as one after another would.
	runs := dirtyRuns(dirty, runLength(meters))
	parts := make([]map[hourKey]influx.RollupPoint, len(runs))
	wstats := make([]Stats, len(runs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(windowWorkers)
	for i, r := range runs {
		g.Go(func() error {
			parts[i] = map[hourKey]influx.RollupPoint{}
			var err error
			wstats[i], err = e.window(gctx, park, meters, r, newFactorCache(e), parts[i])
			return err
		})
	}
	err = g.Wait()
	for _, w := range wstats {
		st.add(w)
	}
	if err != nil {
		return st, err
	}
	hours := map[hourKey]influx.RollupPoint{}
	for _, part := range parts {
		maps.Copy(hours, part)
	}
	points := make([]influx.RollupPoint, 0, len(hours))
	for _, p := range hours {
		points = append(points, p)
	}
	if err := e.opts.Rollups.WriteRollups(ctx, points); err != nil {
		return st, err
	}
	st.HoursWritten = len(points)
	days, err := e.days(ctx, park, points, loc)
	st.DaysWritten = days
	return st, err
}

type meterInfo struct {
	registry.Meter
	repl []accounting.Replacement
}

type hourKey struct {
	meter string
	start time.Time
}

// span is a half-open range of UTC hours.
type span struct{ from, to time.Time }

// windowReadings is about how many readings one window query should return: a backfill of
// months is read in pieces InfluxDB answers in a few seconds, each big enough that the
// per-window context queries stay few.
const windowReadings = 300_000

// runLength is how many hours one window covers for meters: windowReadings at their reading
// rate, from 2 h to a week.
func runLength(meters []meterInfo) time.Duration {
	perHour := 0.0
	for _, m := range meters {
		if m.IntervalSeconds > 0 {
			perHour += 3600 / float64(m.IntervalSeconds)
		} else {
			perHour += 60 // unknown interval: assume one a minute
		}
	}
	h := 168.0
	if perHour > 0 {
		h = min(168, max(2, windowReadings/perHour))
	}
	return time.Duration(h) * time.Hour
}

// windowWorkers is how many windows of a park are computed at once.
const windowWorkers = 2

// DefaultClaimLimit is how many dirty hours a cycle takes: a week of one park, or the current
// hours of many. Run starts the next cycle at once while cycles come back full.
const DefaultClaimLimit = 168

// dirtyRuns turns dirty hours into sorted runs of contiguous hours of at most maxRun; runs
// closer than twice the context margin are merged, since their windows overlap anyway.
func dirtyRuns(hours []time.Time, maxRun time.Duration) []span {
	hs := make([]time.Time, len(hours))
	for i, h := range hours {
		hs[i] = h.UTC().Truncate(time.Hour)
	}
	slices.SortFunc(hs, func(a, b time.Time) int { return a.Compare(b) })
	var out []span
	for _, h := range hs {
		if n := len(out); n > 0 && !h.After(out[n-1].to.Add(2*contextMargin)) && h.Add(time.Hour).Sub(out[n-1].from) <= maxRun {
			if h.Add(time.Hour).After(out[n-1].to) {
				out[n-1].to = h.Add(time.Hour)
			}
			continue
		}
		out = append(out, span{h, h.Add(time.Hour)})
	}
	return out
}
