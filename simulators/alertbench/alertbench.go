// Package alertbench benchmarks parkcarbon's alert evaluator against a real InfluxDB and a
// SQLite store on this machine: one park of 5,000 electricity counters read every minute and
// 10,000 rules by default, evaluated by alertsvc.Engine.Cycle at T, T+30 s, T+60 s, … with
// the clock passed in. It reports each cycle's wall time against the 2 s target, where the
// time goes (Source.Observe, SaveAlerts, the rest), and the evaluator's share of a CPU when
// it runs every 30 s, next to InfluxDB's.
package alertbench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accountsvc"
	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/alertsrc"
	"github.com/parkcarbon/parkcarbon/pkg/alertsvc"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/notify"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
	"github.com/parkcarbon/parkcarbon/simulators/calltime"
	"github.com/parkcarbon/parkcarbon/simulators/procstat"
)

// ErrInsane is returned when the run's sanity checks fail: a cycle or rule failed, or the
// silent meters did not fire exactly their no_data alerts.
var ErrInsane = errors.New("alerting benchmark sanity check failed")

// CycleTarget is the target for one evaluation of every rule.
const CycleTarget = 2 * time.Second

// Interval is the evaluator's period the CPU share is computed against.
const Interval = 30 * time.Second

// Options configure the benchmark; zero values take the defaults.
type Options struct {
	// Quick is a small run for tests: 500 meters, 20 enterprises, 1,000 rules and 3 cycles
	// unless set otherwise.
	Quick bool
	// Meters of the park (electricity counters read every minute); default 5,000.
	Meters int
	// Enterprises the meters are spread over; default 200.
	Enterprises int
	// Rules in all, split as in the issue; default 10,000.
	Rules int
	// Cycles of the evaluator, 30 s apart on the clock; default 10.
	Cycles int
	// At is the clock of the first cycle; default 2026-11-20 10:00 in Timezone.
	At time.Time
	// Timezone of the park; default Asia/Shanghai.
	Timezone string
	// Batch is the points per write request; default 5,000.
	Batch int
	// DeliveryWait bounds the wait after each cycle for its notifications to reach the webhook
	// (the 30 s between two cycles in production); default 30 s.
	DeliveryWait time.Duration
	// Dir holds the services' data; default a temporary directory, removed afterwards.
	Dir    string
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	small := func(quick, full int) int {
		if o.Quick {
			return quick
		}
		return full
	}
	if o.Meters <= 0 {
		o.Meters = small(500, 5000)
	}
	if o.Enterprises <= 0 {
		o.Enterprises = small(20, 200)
	}
	if o.Rules <= 0 {
		o.Rules = small(1000, 10000)
	}
	if o.Cycles <= 0 {
		o.Cycles = small(3, 10)
	}
	if o.Timezone == "" {
		o.Timezone = registry.DefaultTimezone
	}
	loc, err := time.LoadLocation(o.Timezone)
	if err != nil {
		return fmt.Errorf("time zone: %w", err)
	}
	if o.At.IsZero() {
		o.At = time.Date(2026, 11, 20, 10, 0, 0, 0, loc)
	}
	o.At = o.At.In(loc)
	if o.Batch <= 0 {
		o.Batch = 5000
	}
	if o.DeliveryWait <= 0 {
		o.DeliveryWait = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Report holds the figures of one run.
type Report struct {
	Meters, Enterprises int
	At                  time.Time
	Silent, Dropouts    int
	// Rules by report kind, in the mix's order.
	Rules []KindCount

	// Setup.
	RegisterTime time.Duration
	RulesTime    time.Duration
	Readings     int
	ReadingsFrom time.Time
	ReadingsTo   time.Time
	ReadingsTime time.Duration
	Hourly       int
	Older        int // daily and monthly rollups
	RollupsTime  time.Duration

	// The run.
	Cycles []Cycle
	// Self and Influx are the CPU of this process and of influxd from the first cycle's start
	// to the last cycle's end, deliveries between cycles included; Excluded the benchmark's own
	// check after the first cycle, taken out of Self.
	Self, Influx procstat.Usage
	Excluded     time.Duration
	Span         time.Duration
	Calls        []calltime.CallTime
	// Kinds: Observe of each kind's rules alone, at the last cycle's clock, after the run.
	Kinds []KindRun

	// Notifications.
	Notified          int
	Delivered         int64
	ByEvent           map[string]int64
	UndeliveredCycles int

	// Sanity.
	NoDataFiring, NoDataWant int
	RuleErrors               int64
	LastRuleError            string
	Err                      string // the first cycle error
}

// KindCount is the number of rules of one report kind.
type KindCount struct {
	Kind  string
	Rules int
}

// Cycle is one evaluation.
type Cycle struct {
	At                                   time.Time
	Wall, Observe, Save, Load, Lease     time.Duration
	Observations, Changed, Notifications int
	// Rows given to SaveAlerts: alerts stored, inactive alerts (deleted), history entries.
	Upserts, Inactive, History int64
	Delivered                  int64
	DeliveryWait               time.Duration
}

// KindRun is one kind's rules observed alone, and its alerts at the end of the run.
type KindRun struct {
	Kind                string
	Rules, Observations int
	Errors              int
	Wall                time.Duration
	Pending, Firing     int
}

// CycleTimes returns the cycles' wall times.
func (r Report) CycleTimes() []time.Duration {
	out := make([]time.Duration, len(r.Cycles))
	for i, c := range r.Cycles {
		out[i] = c.Wall
	}
	return out
}

// Median is the median cycle time (0 without cycles).
func (r Report) Median() time.Duration {
	s := r.CycleTimes()
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return s[len(s)/2]
}

// Max is the slowest cycle.
func (r Report) Max() time.Duration {
	s := r.CycleTimes()
	if len(s) == 0 {
		return 0
	}
	return slices.Max(s)
}

// CPUShare is the evaluator's process CPU over the run divided by cycles × Interval: the
// share of one core it takes when evaluating every 30 s.
func (r Report) CPUShare() float64 {
	if len(r.Cycles) == 0 {
		return 0
	}
	return float64(r.Self.CPU-r.Excluded) / float64(time.Duration(len(r.Cycles))*Interval)
}

// InfluxShare is influxd's CPU over the run divided by cycles × Interval.
func (r Report) InfluxShare() float64 {
	if len(r.Cycles) == 0 {
		return 0
	}
	return float64(r.Influx.CPU) / float64(time.Duration(len(r.Cycles))*Interval)
}

// Problems lists what the sanity checks found; empty: the run is sane.
func (r Report) Problems() []string {
	var out []string
	if r.Err != "" {
		out = append(out, "cycle failed: "+r.Err)
	}
	if len(r.Cycles) == 0 {
		return append(out, "no cycle ran")
	}
	if r.NoDataFiring != r.NoDataWant {
		out = append(out, fmt.Sprintf("%d no_data alerts firing after the first cycle, want %d (the silent meters)", r.NoDataFiring, r.NoDataWant))
	}
	if r.RuleErrors > 0 {
		out = append(out, fmt.Sprintf("%d rule evaluations failed; last: %s", r.RuleErrors, r.LastRuleError))
	}
	for i, c := range r.Cycles {
		if c.Observations == 0 {
			out = append(out, fmt.Sprintf("cycle %d observed nothing", i+1))
		}
	}
	if r.Notified == 0 {
		out = append(out, "no notification was sent")
	}
	return out
}

// Run starts InfluxDB and a SQLite store, registers the park, writes its recent readings and
// rollups, creates the rules and a webhook endpoint, then runs the evaluator's cycles. The
// error is ErrInsane (wrapped) when the sanity checks fail; the report holds what was
// measured until then.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.defaults(); err != nil {
		return Report{}, err
	}
	log := o.Logger
	p := newPark(o.Meters, o.Enterprises, o.At)
	rep := Report{Meters: o.Meters, Enterprises: p.enterprises, At: o.At, Silent: len(p.silent), Dropouts: len(p.dropouts)}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "parkcarbon-alertbench-")
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

	// 1. The park, its rules and a webhook endpoint.
	log.Info("registering the park", "meters", len(p.meters), "enterprises", p.enterprises)
	start := time.Now()
	if err := p.register(ctx, reg); err != nil {
		return rep, fmt.Errorf("register the park: %w", err)
	}
	rep.RegisterTime = time.Since(start)
	hook, err := startReceiver()
	if err != nil {
		return rep, fmt.Errorf("webhook receiver: %w", err)
	}
	defer hook.close()
	if err := sql.CreateEndpoint(ctx, alerting.Endpoint{ID: "bench-hook", ParkID: ParkID, Kind: alerting.EndpointWebhook,
		URL: hook.URL, Secret: rand.Text()}, "alertbench"); err != nil {
		return rep, err
	}
	rules := p.buildRules(o.Rules)
	kindOf := make(map[string]string, len(rules))
	counts := map[string]int{}
	log.Info("creating rules", "rules", len(rules))
	start = time.Now()
	for _, r := range rules {
		if err := sql.CreateRule(ctx, r.Rule, "alertbench"); err != nil {
			return rep, err
		}
		kindOf[r.ID] = r.kind
		counts[r.kind]++
	}
	rep.RulesTime = time.Since(start)
	for _, k := range ruleMix {
		rep.Rules = append(rep.Rules, KindCount{k.kind, counts[k.kind]})
	}
	for _, r := range rules {
		if r.kind == KindNoData && slices.Contains(p.silent, r.MeterID) {
			rep.NoDataWant++
		}
	}

	// 2. Recent data relative to T: an hour of minute readings up to the last cycle, hourly
	// rollups of the 8 days before, daily and monthly ones of the year before.
	rep.ReadingsFrom, rep.ReadingsTo = readingsSpan(o.At, o.Cycles)
	log.Info("writing readings", "from", rep.ReadingsFrom, "to", rep.ReadingsTo)
	start = time.Now()
	rep.Readings, err = writeBatches(ctx, len(p.meters), o.Batch, func(j int, dst []influx.Point) []influx.Point {
		return p.readings(j, rep.ReadingsFrom, rep.ReadingsTo, dst)
	}, ts.WriteReadings)
	rep.ReadingsTime = time.Since(start)
	if err != nil {
		return rep, fmt.Errorf("write readings: %w", err)
	}
	log.Info("writing rollups", "hours", RollupHours)
	start = time.Now()
	rep.Hourly, err = writeBatches(ctx, len(p.meters), o.Batch, p.hourly, ts.WriteRollups)
	if err == nil {
		rep.Older, err = writeBatches(ctx, len(p.meters), o.Batch, p.older, ts.WriteRollups)
	}
	rep.RollupsTime = time.Since(start)
	if err != nil {
		return rep, fmt.Errorf("write rollups: %w", err)
	}

	// 3. The evaluator as the server wires it, its stores and sources timed.
	var calls calltime.Clock
	accounts := &accountsvc.Service{Registry: reg, Inputs: sql, Dirty: sql, Totals: ts, Factors: fr}
	src := &timedSource{c: &calls, s: alertsrc.New(alertsrc.Options{
		Readings: timedReadings{s: ts, c: &calls}, Registry: timedRegistry{r: reg, c: &calls}, Ledger: sql,
		Accounts: timedAccounts{a: accounts, c: &calls}, Logger: log.With("component", "alertsrc"),
	})}
	notifier := notify.New(notify.Options{Log: sql, Logger: log.With("component", "notify")})
	nctx, stopNotify := context.WithCancel(ctx)
	defer stopNotify()
	notifier.Start(nctx)
	defer notifier.Close()
	saved := &saveCounts{}
	store := timedStore{Store: sql, c: &calls, saved: saved}
	eng, err := alertsvc.NewEngine(alertsvc.Options{Store: store, Source: src, Notifier: notifier, Holder: "alertbench",
		Interval: Interval, Logger: log.With("component", "alerting"), Now: func() time.Time { return o.At }})
	if err != nil {
		return rep, err
	}

	// 4. The cycles.
	self := os.Getpid()
	procstat.ResetPeak(self)
	procstat.ResetPeak(influxPID)
	s0, i0 := procstat.Read(self), procstat.Read(influxPID)
	notified := 0
	var last time.Time
	for i := range o.Cycles {
		now := o.At.Add(time.Duration(i) * Interval)
		last = now
		c := Cycle{At: now}
		obs0, save0 := calls.Total(callObserve), calls.Total(callSave)
		load0 := calls.Total(callLoad) + calls.Total(callListRules)
		up0, in0, h0 := saved.upserts.Load(), saved.inactive.Load(), saved.history.Load()
		leaseStart := time.Now()
		ok, err := sql.TryLease(ctx, alertsvc.LeaseName, "alertbench", now, 3*Interval)
		c.Lease = time.Since(leaseStart)
		if err == nil && !ok {
			err = errors.New("the evaluator's lease is held by another holder")
		}
		var st alertsvc.CycleStats
		if err == nil {
			st, err = eng.Cycle(ctx, now)
		}
		c.Wall, c.Observations, c.Changed, c.Notifications = st.Duration, st.Observations, st.Changed, st.Notifications
		c.Observe, c.Save = calls.Total(callObserve)-obs0, calls.Total(callSave)-save0
		c.Load = calls.Total(callLoad) + calls.Total(callListRules) - load0
		c.Upserts, c.Inactive, c.History = saved.upserts.Load()-up0, saved.inactive.Load()-in0, saved.history.Load()-h0
		if err != nil {
			rep.Err = fmt.Sprintf("cycle %d at %s: %v", i+1, now.Format(time.RFC3339), err)
			rep.Cycles = append(rep.Cycles, c)
			break
		}
		notified += st.Notifications
		if i == 0 {
			// The check is the benchmark's, not the evaluator's: its CPU is taken out.
			before := procstat.Read(self)
			rep.NoDataFiring, err = firingNoData(ctx, sql, kindOf)
			rep.Excluded += procstat.Read(self).CPU - before.CPU
			if err != nil {
				return rep, err
			}
		}
		// Production has 30 s until the next cycle: let this one's notifications arrive.
		waitStart := time.Now()
		if !hook.waitFor(ctx, int64(notified), o.DeliveryWait) {
			rep.UndeliveredCycles++
		}
		c.DeliveryWait = time.Since(waitStart)
		c.Delivered = hook.received()
		rep.Cycles = append(rep.Cycles, c)
		log.Info("cycle", "n", i+1, "at", now, "seconds", c.Wall.Seconds(), "observations", c.Observations,
			"changed", c.Changed, "notifications", c.Notifications)
	}
	s1, i1 := procstat.Read(self), procstat.Read(influxPID)
	rep.Self, rep.Influx, rep.Span = procstat.Used(s0, s1), procstat.Used(i0, i1), s1.Taken.Sub(s0.Taken)
	rep.Calls = calls.Times()
	rep.Notified, rep.Delivered = notified, hook.received()
	rep.ByEvent = map[string]int64{"firing": hook.firing.Load(), "resolved": hook.resolved.Load(), "flapping": hook.flapping.Load()}
	rep.RuleErrors = src.errors.Load()
	if e, ok := src.last.Load().(error); ok {
		rep.LastRuleError = e.Error()
	}

	// 5. Each kind alone, and the alerts by kind at the end.
	if rep.Err == "" {
		if rep.Kinds, err = byKind(ctx, sql, src.s, rules, last); err != nil {
			return rep, err
		}
	}
	if problems := rep.Problems(); len(problems) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrInsane, strings.Join(problems, "; "))
	}
	return rep, nil
}

// firingNoData counts the firing alerts of no_data rules in the store.
func firingNoData(ctx context.Context, s alerting.Store, kindOf map[string]string) (int, error) {
	alerts, err := s.LoadAlerts(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range alerts {
		if a.State == alerting.StateFiring && kindOf[a.RuleID] == KindNoData {
			n++
		}
	}
	return n, nil
}

// byKind observes each kind's rules alone at now, and counts the stored alerts by kind.
func byKind(ctx context.Context, s alerting.Store, src alerting.Source, rules []benchRule, now time.Time) ([]KindRun, error) {
	alerts, err := s.LoadAlerts(ctx)
	if err != nil {
		return nil, err
	}
	kindOf := map[string]string{}
	for _, r := range rules {
		kindOf[r.ID] = r.kind
	}
	var out []KindRun
	for _, k := range ruleMix {
		var rs []alerting.Rule
		for _, r := range rules {
			if r.kind == k.kind {
				rs = append(rs, r.Rule)
			}
		}
		run := KindRun{Kind: k.kind, Rules: len(rs)}
		if len(rs) > 0 {
			start := time.Now()
			res := src.Observe(ctx, ParkID, rs, now)
			run.Wall = time.Since(start)
			for _, r := range res {
				run.Observations += len(r.Observations)
				if r.Err != nil {
					run.Errors++
				}
			}
		}
		for _, a := range alerts {
			if kindOf[a.RuleID] != k.kind {
				continue
			}
			switch a.State {
			case alerting.StateFiring:
				run.Firing++
			case alerting.StatePending:
				run.Pending++
			}
		}
		out = append(out, run)
	}
	return out, nil
}

// writeBatches generates the points of meters 0 … n−1 into batches of at least batch points
// and writes them with two concurrent writers; it returns the number of points.
func writeBatches[P any](ctx context.Context, n, batch int, gen func(j int, dst []P) []P, write func(context.Context, []P) error) (int, error) {
	const writers = 2
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan []P, writers)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range writers {
		wg.Go(func() {
			for b := range full {
				if err := write(ctx, b); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		})
	}
	total := 0
	var buf []P
	send := func() bool {
		total += len(buf)
		select {
		case full <- buf:
			buf = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	for j := range n {
		buf = gen(j, buf)
		if len(buf) >= batch && !send() {
			break
		}
	}
	if len(buf) > 0 && ctx.Err() == nil {
		send()
	}
	close(full)
	wg.Wait()
	if firstErr != nil {
		return total, firstErr
	}
	return total, ctx.Err()
}
