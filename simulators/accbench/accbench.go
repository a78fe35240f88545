// Package accbench benchmarks parkcarbon's accounting path against a real InfluxDB on this
// machine: it writes a park's register readings for a period (a calendar year of 500 meters
// at 15-minute readings by default), runs the rollup engine until no dirty hour is left, then
// times the park's indicators for the period from the rollups and checks them against the
// generated ground truth.
package accbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/accountsvc"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/rollup"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
	"github.com/parkcarbon/parkcarbon/simulators/calltime"
	"github.com/parkcarbon/parkcarbon/simulators/procstat"
)

// ErrMismatch is returned when the indicators disagree with the generated ground truth.
var ErrMismatch = errors.New("indicators differ from the ground truth")

// Targets of the issue: indicators of a park-year from rollups within IndicatorsTarget, and
// rollups at least as fast as the raw write rate.
const IndicatorsTarget = 2 * time.Second

// Tolerance is the relative error allowed between an electricity ledger and the ground truth.
const Tolerance = 1e-9

// Options configure the benchmark; zero values take the defaults.
type Options struct {
	// Quick is a small run for tests: 50 meters and one month unless set otherwise.
	Quick bool
	// Meters in the park; default 500 (Quick: 50).
	Meters int
	// Year whose readings are generated, from January 1 in Timezone; default 2025.
	Year int
	// Months of the year generated; default 12 (Quick: 1).
	Months int
	// Interval between two readings of a meter; default 15 minutes.
	Interval time.Duration
	// Timezone of the park; default Asia/Shanghai.
	Timezone string
	// Batch is the readings per write request; default 5,000. Writers write concurrently;
	// default 2.
	Batch, Writers int
	// ClaimLimit is the rollup engine's dirty hours per cycle; default 168 (a week). A negative
	// value keeps the engine's own default.
	ClaimLimit int
	// Runs of the indicators; default 5 (the first is cold).
	Runs int
	// Dir holds the services' data; default a temporary directory, removed afterwards.
	Dir    string
	Logger *slog.Logger
}

func (o *Options) defaults() {
	small := func(quick, full int) int {
		if o.Quick {
			return quick
		}
		return full
	}
	if o.Meters <= 0 {
		o.Meters = small(50, 500)
	}
	if o.Year <= 0 {
		o.Year = 2025
	}
	if o.Months <= 0 {
		o.Months = small(1, 12)
	}
	if o.Interval <= 0 {
		o.Interval = 15 * time.Minute
	}
	if o.Timezone == "" {
		o.Timezone = registry.DefaultTimezone
	}
	if o.Batch <= 0 {
		o.Batch = 5000
	}
	if o.Writers <= 0 {
		o.Writers = 2
	}
	if o.ClaimLimit == 0 {
		o.ClaimLimit = 168
	}
	if o.ClaimLimit < 0 {
		o.ClaimLimit = 0 // rollup.New applies its default
	}
	if o.Runs <= 0 {
		o.Runs = 5
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Report holds the figures of one run.
type Report struct {
	Meters   int
	Readings int
	From, To time.Time
	Interval time.Duration

	// Writing the readings and marking their hours dirty.
	WriteTime     time.Duration
	MarkTime      time.Duration // summed over the writers
	WriteSelf     procstat.Usage
	WriteInflux   procstat.Usage
	DirtyHours    int
	WritePerSec   float64
	WriteBatch    int
	Writers       int
	WriteRequests int

	// The rollup engine, cycles until no dirty hour is left.
	ClaimLimit   int  // 0: the engine's default
	RollupsDone  bool // the cycles ran until none claimed a dirty hour
	Cycles       int
	RollupTime   time.Duration
	SlowestCycle time.Duration
	ReadingsRead int
	HoursWritten int
	DaysWritten  int
	RollupSelf   procstat.Usage
	RollupInflux procstat.Usage
	// RollupCalls is where the engine's time went, by store method.
	RollupCalls   []calltime.CallTime
	DirtyLeft     int
	ReadPerSec    float64 // ReadingsRead over RollupTime
	RollupPerSec  float64 // the distinct readings generated over RollupTime
	RollupOfWrite float64 // RollupPerSec over WritePerSec

	// Indicators of the whole period, Runs times.
	Indicators []time.Duration
	Checks     []Check
	// Completeness of the park block: readings received over readings expected.
	Completeness *float64
}

// Check compares one electricity ledger of the indicators with the ground truth.
type Check struct {
	Name      string
	Want, Got float64
}

// RelErr is the relative error of the check.
func (c Check) RelErr() float64 {
	if c.Want == 0 {
		return math.Abs(c.Got)
	}
	return math.Abs(c.Got-c.Want) / math.Abs(c.Want)
}

// OK reports whether the check holds within Tolerance.
func (c Check) OK() bool { return c.RelErr() <= Tolerance }

// Correct reports whether every check ran and holds.
func (r Report) Correct() bool {
	if len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.OK() {
			return false
		}
	}
	return true
}

// IndicatorsMedian is the median time of the indicator runs.
func (r Report) IndicatorsMedian() time.Duration {
	if len(r.Indicators) == 0 {
		return 0
	}
	s := slices.Clone(r.Indicators)
	slices.Sort(s)
	return s[len(s)/2]
}

// Run starts InfluxDB and a SQLite store, registers the park, writes the readings, computes
// the rollups and times the indicators. The error is ErrMismatch (wrapped) when the
// indicators disagree with the ground truth; the report holds what was measured until then.
func Run(ctx context.Context, o Options) (Report, error) {
	o.defaults()
	log := o.Logger
	loc, err := time.LoadLocation(o.Timezone)
	if err != nil {
		return Report{}, fmt.Errorf("time zone: %w", err)
	}
	from := time.Date(o.Year, 1, 1, 0, 0, 0, 0, loc)
	to := time.Date(o.Year, time.Month(1+o.Months), 1, 0, 0, 0, 0, loc)
	rep := Report{Meters: o.Meters, From: from, To: to, Interval: o.Interval, WriteBatch: o.Batch, Writers: o.Writers, ClaimLimit: o.ClaimLimit}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "parkcarbon-accbench-")
		if err != nil {
			return rep, err
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}

	port, err := localsvc.FreePort()
	if err != nil {
		return rep, err
	}
	log.Info("starting influxdb")
	db, err := localsvc.StartInfluxDB(ctx, filepath.Join(o.Dir, "influxdb"), port)
	if err != nil {
		return rep, err
	}
	defer func() { _ = db.Stop() }()
	influxPID, err := procstat.PidFile(db.Dir, "influxd")
	if err != nil {
		return rep, fmt.Errorf("influxd pid: %w", err)
	}
	sql, err := sqlstore.Open(ctx, filepath.Join(o.Dir, "parkcarbon.db"), nil)
	if err != nil {
		return rep, err
	}
	defer sql.Close()
	if err := sql.Migrate(ctx); err != nil {
		return rep, err
	}
	ts := influx.New(influx.Options{URL: db.URL, Bucket: db.Bucket})
	defer ts.Close()
	reg := &registry.Service{Store: sql}
	fr, err := factors.NewRegistry()
	if err != nil {
		return rep, err
	}

	meters := parkMeters(o.Meters, o.Interval, to.Sub(from).Hours())
	if err := register(ctx, reg, meters, o.Timezone); err != nil {
		return rep, fmt.Errorf("register the park: %w", err)
	}
	gen := newGenerator(meters, loc, from, to, o.Interval)
	rep.Readings = gen.steps * len(meters)

	// 1. Readings, with their hours marked dirty as the collector does.
	log.Info("writing readings", "meters", len(meters), "readings", rep.Readings, "from", from, "to", to)
	self := os.Getpid()
	// phase samples both processes now and returns what they used until it is called.
	phase := func() func() (procstat.Usage, procstat.Usage) {
		procstat.ResetPeak(self)
		procstat.ResetPeak(influxPID)
		s0, i0 := procstat.Read(self), procstat.Read(influxPID)
		return func() (procstat.Usage, procstat.Usage) {
			return procstat.Used(s0, procstat.Read(self)), procstat.Used(i0, procstat.Read(influxPID))
		}
	}
	end := phase()
	mw := &markingWriter{w: ts, dirty: sql}
	start := time.Now()
	requests, err := writeAll(ctx, mw, gen, o.Batch, o.Writers)
	rep.WriteTime = time.Since(start)
	rep.WriteSelf, rep.WriteInflux = end()
	rep.MarkTime, rep.WriteRequests = time.Duration(mw.marking.Load()), requests
	if err != nil {
		return rep, fmt.Errorf("write readings: %w", err)
	}
	rep.WritePerSec = float64(rep.Readings) / rep.WriteTime.Seconds()
	if rep.DirtyHours, err = countDirty(ctx, sql); err != nil {
		return rep, err
	}
	log.Info("readings written", "seconds", rep.WriteTime.Seconds(), "per_second", rep.WritePerSec, "dirty_hours", rep.DirtyHours)

	// 2. Rollups until no dirty hour is left.
	// The engine's stores are timed, so the report can say where a cycle's time goes.
	var calls calltime.Clock
	tr, tq := timedReadings{s: ts, c: &calls}, timedSQL{dirty: sql, repl: sql, reg: reg, c: &calls}
	eng, err := rollup.New(rollup.Options{Readings: tr, Rollups: tr, Dirty: tq, Replacements: tq, Registry: tq,
		Factors: fr, ClaimLimit: o.ClaimLimit, Logger: log.With("component", "rollup")})
	if err != nil {
		return rep, err
	}
	log.Info("computing rollups", "dirty_hours", rep.DirtyHours, "claim_limit", o.ClaimLimit)
	end = phase()
	start = time.Now()
	err = cycleUntilClean(ctx, eng, &rep, log)
	rep.RollupTime = time.Since(start)
	rep.RollupSelf, rep.RollupInflux = end()
	rep.RollupCalls = calls.Times()
	if err != nil {
		return rep, err
	}
	rep.RollupsDone = true
	rep.ReadPerSec = float64(rep.ReadingsRead) / rep.RollupTime.Seconds()
	rep.RollupPerSec = float64(rep.Readings) / rep.RollupTime.Seconds()
	rep.RollupOfWrite = rep.RollupPerSec / rep.WritePerSec
	if rep.DirtyLeft, err = countDirty(ctx, sql); err != nil {
		return rep, err
	}

	// 3. Indicators of the period from the rollups.
	svc := &accountsvc.Service{Registry: reg, Inputs: sql, Dirty: sql, Totals: ts, Factors: fr}
	var res accounting.Result
	for i := range o.Runs {
		start := time.Now()
		res, err = svc.Indicators(ctx, ParkID, from, to, "", "")
		rep.Indicators = append(rep.Indicators, time.Since(start))
		if err != nil {
			return rep, fmt.Errorf("indicators, run %d: %w", i+1, err)
		}
		log.Info("indicators", "run", i+1, "seconds", rep.Indicators[i].Seconds())
	}
	want := gen.truth()
	got := res.ElectricityKWh
	rep.Checks = []Check{
		{"electricity grid in, kWh", want.grid, got.Grid},
		{"electricity grid export, kWh", want.gridExport, got.GridExport},
		{"electricity direct green, kWh", want.directGreen, got.DirectGreen},
		{"electricity all ledgers, kWh", want.grid + want.gridExport + want.directGreen,
			got.Grid + got.GridExport + got.DirectGreen + got.DirectGreenExport},
	}
	rep.Completeness = res.Completeness
	if !rep.Correct() {
		return rep, fmt.Errorf("%w beyond a relative %g", ErrMismatch, Tolerance)
	}
	return rep, nil
}

// cycleUntilClean runs engine cycles until one claims nothing, adding their stats to rep.
func cycleUntilClean(ctx context.Context, eng *rollup.Engine, rep *Report, log *slog.Logger) error {
	lastLog := time.Now()
	for {
		st, err := eng.Cycle(ctx)
		rep.Cycles++
		rep.ReadingsRead += st.ReadingsRead
		rep.HoursWritten += st.HoursWritten
		rep.DaysWritten += st.DaysWritten
		rep.SlowestCycle = max(rep.SlowestCycle, st.Duration)
		if err != nil {
			return fmt.Errorf("rollup cycle %d: %w", rep.Cycles, err)
		}
		if st.Parks == 0 {
			return nil
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			log.Info("rollup progress", "cycles", rep.Cycles, "readings_read", rep.ReadingsRead,
				"hours_written", rep.HoursWritten, "last_cycle_seconds", st.Duration.Seconds())
		}
	}
}

// countDirty counts the dirty hours left.
func countDirty(ctx context.Context, d accounting.DirtyStore) (int, error) {
	hours, _, err := d.ClaimDirty(ctx, math.MaxInt32)
	if err != nil {
		return 0, err
	}
	return len(hours), nil
}

// readingWriter stores readings; *influx.Store is one.
type readingWriter interface {
	WriteReadings(ctx context.Context, points []influx.Point) error
}

// markingWriter stores readings, then marks their hours dirty, as the platform's collector
// does; it adds up the time spent marking.
type markingWriter struct {
	w       readingWriter
	dirty   accounting.DirtyStore
	marking atomic.Int64 // ns
}

func (m *markingWriter) WriteReadings(ctx context.Context, points []influx.Point) error {
	if err := m.w.WriteReadings(ctx, points); err != nil {
		return err
	}
	start := time.Now()
	err := m.dirty.MarkDirty(ctx, rollup.MarkPoints(points))
	m.marking.Add(int64(time.Since(start)))
	if err != nil {
		return fmt.Errorf("mark rollup hours: %w", err)
	}
	return nil
}

// writeAll generates the readings step by step into batches of at least batch points and
// writes them with writers concurrent writers; it returns the number of requests.
func writeAll(ctx context.Context, w readingWriter, g *generator, batch, writers int) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan []influx.Point, writers)
	free := make(chan []influx.Point, writers+2)
	for range writers + 2 {
		free <- make([]influx.Point, 0, batch+len(g.meters))
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range writers {
		wg.Go(func() {
			for b := range full {
				if err := w.WriteReadings(ctx, b); err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
					cancel()
					return
				}
				free <- b[:0]
			}
		})
	}
	requests := 0
	var buf []influx.Point
	send := func() bool {
		select {
		case full <- buf:
			requests++
			buf = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
loop:
	for k := range g.steps {
		if buf == nil {
			select {
			case buf = <-free:
			case <-ctx.Done():
				break loop
			}
		}
		buf = g.step(k, buf)
		if len(buf) >= batch && !send() {
			break
		}
	}
	if len(buf) > 0 {
		send()
	}
	close(full)
	wg.Wait()
	if firstErr != nil {
		return requests, firstErr
	}
	return requests, ctx.Err()
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
