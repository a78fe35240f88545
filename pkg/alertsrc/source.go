// Package alertsrc computes the observations of a park's alert rules (alerting.Source) from
// the platform's stores: raw readings and hourly rollups in InfluxDB, the registry, gateway
// sequences and dead letters in SQL, and the accounts.
//
// Observe batches per park: every data need (the last reading of each meter, the electricity
// readings of the power windows, the sums and flagged hours of the hourly rollups, gateway
// sequences, dead letters, the accounts of a period) is fetched once per evaluation and
// shared by every rule that needs it; the fetches run concurrently. A failed fetch fails only
// the rules that need it.
//
// The rollup kinds let InfluxDB aggregate: one sum per distinct field and span, grouped by enterprise (and
// meter, when a rule is per meter), and only the hours whose quality has a flag set.
//
// The year-to-date accounts of carbon_budget and indicator_at_risk change slowly and cost
// seconds to compute: they are kept for Options.IndicatorsTTL and then refreshed in the
// background while the previous ones stay in use, so those rules' values are up to about a
// TTL old (the accounts up to an earlier now, against the elapsed fraction of the year at the
// current one) and only the first evaluation after a start waits for them.
package alertsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// Spans of the rules whose span is not configurable.
const (
	// NoDataLookback is how far back the last reading of a meter is looked for; a meter silent
	// for longer is counted from this limit.
	NoDataLookback = 35 * 24 * time.Hour
	// DefaultPowerWindow is the window of a power rule without one (the park's net import).
	DefaultPowerWindow = 15 * time.Minute
	// DeadLetterWindow is the span dead letters are counted over.
	DeadLetterWindow = time.Hour
	// DefaultIndicatorsTTL is how long the year-to-date accounts of a park are reused.
	DefaultIndicatorsTTL = 5 * time.Minute
	// The first, cheap step of the last-reading search covers four of the longest interval of
	// the park's watched meters, within [minRecentSpan, maxRecentSpan]: only meters silent for
	// longer are looked for again, back to NoDataLookback.
	minRecentSpan = 10 * time.Minute
	maxRecentSpan = 24 * time.Hour
	// maxMeterFilter bounds the meters named in one query; above it the query reads every
	// meter of the park and the source keeps those it needs.
	maxMeterFilter = 200
)

// ErrUnsupported: a rule asks for something its kind does not compute (a power rule on a gas
// meter, an indicator of one meter).
var ErrUnsupported = errors.New("unsupported rule scope")

// Readings is what the source reads from the time-series store (*influx.Store).
type Readings interface {
	// LastReadings returns each meter's last reading in [from, to) (meters nil: every meter).
	LastReadings(ctx context.Context, park string, meters []string, from, to time.Time) (map[string]influx.Sample, error)
	// CarrierReadings returns the readings of the carrier's meters in [from, to), each
	// preceded by its last reading in [from − lookback, from), by meter, oldest first.
	CarrierReadings(ctx context.Context, park, carrier string, from, to time.Time, lookback time.Duration) (map[string][]influx.Sample, error)
	// HourlyTotals sums a field of the hourly rollups with Start in [from, to) per group of
	// the groupBy tags (influx.GroupEnterprise, influx.GroupMeter); a group without a point
	// carrying the field is absent.
	HourlyTotals(ctx context.Context, park, field string, from, to time.Time, groupBy []string) ([]influx.HourlyTotal, error)
	// QualityHours returns the hourly rollups with Start in [from, to) whose quality is not 0,
	// by meter then time.
	QualityHours(ctx context.Context, park string, from, to time.Time) ([]influx.QualityHour, error)
}

// Registry is what the source reads of the registry (*registry.Service). When it also has
// GetEnterprise(ctx, park, id) (registry.Enterprise, error), an enterprise without meters is
// looked up there before a rule naming it is refused.
type Registry interface {
	AllMeters(ctx context.Context, f registry.MeterFilter) ([]registry.Meter, error)
	GetPark(ctx context.Context, id string) (registry.Park, error)
}

type enterpriseGetter interface {
	GetEnterprise(ctx context.Context, parkID, id string) (registry.Enterprise, error)
}

// Ledger is what the source reads of the telemetry bookkeeping (*sqlstore.Store).
type Ledger interface {
	GatewaySeqs(ctx context.Context, park string) ([]telemetry.GatewaySeq, error)
	CountDeadLetters(ctx context.Context, park string, since time.Time) (int64, error)
}

// Accounts computes a park's accounts for a period (*accountsvc.Service).
type Accounts interface {
	Indicators(ctx context.Context, park string, from, to time.Time, rule, enterprise string) (accounting.Result, error)
}

// Options configure a Source. A nil data source fails the rules that need it.
type Options struct {
	Readings Readings
	Registry Registry
	Ledger   Ledger
	Accounts Accounts
	Logger   *slog.Logger
	// IndicatorsTTL is how long the year-to-date accounts of a park (carbon_budget,
	// indicator_at_risk) are reused, measured on the evaluations' clock: 0 takes
	// DefaultIndicatorsTTL, a negative value computes them at every evaluation. Those rules'
	// values are up to this old.
	IndicatorsTTL time.Duration
}

// Source computes observations of alert rules. Between evaluations it keeps only the
// year-to-date accounts of each park, for Options.IndicatorsTTL. It is safe for concurrent
// use.
type Source struct {
	opts Options
	log  *slog.Logger
	ttl  time.Duration

	mu         sync.Mutex
	ytd        map[ytdKey]ytdEntry
	refreshing map[ytdKey]bool
	bg         sync.WaitGroup
	// pastTotals keeps the sums over spans of whole past hours (rate_of_change), which change
	// only when late data rewrites a past hour, for the TTL.
	pastTotals map[pastTotalsKey]pastTotalsEntry
	// lastSeen keeps, per park and meter, the last reading found by the long search, so a
	// meter that stays silent is not searched for back 35 days at every evaluation.
	lastSeen map[string]map[string]lastSeenEntry
}

type pastTotalsKey struct {
	park    string
	key     totalsKey
	byMeter bool
}

type pastTotalsEntry struct {
	at time.Time
	v  *totals
}

type lastSeenEntry struct {
	at     time.Time // when the long search found it
	sample influx.Sample
	found  bool // false: no reading in the whole lookback
}

// ytdKey names the year-to-date accounts of a park (scope "": the park with its
// enterprises) from a year start, so a new year or another period never reuses them.
type ytdKey struct {
	park, scope string
	yearStart   int64 // Unix nanoseconds
}

// ytdEntry is year-to-date accounts computed up to at.
type ytdEntry struct {
	at  time.Time
	res accounting.Result
}

var _ alerting.Source = (*Source)(nil)

// New returns a Source.
func New(opts Options) *Source {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ttl := opts.IndicatorsTTL
	if ttl == 0 {
		ttl = DefaultIndicatorsTTL
	}
	return &Source{opts: opts, log: log, ttl: ttl, ytd: map[ytdKey]ytdEntry{}, refreshing: map[ytdKey]bool{},
		pastTotals: map[pastTotalsKey]pastTotalsEntry{}, lastSeen: map[string]map[string]lastSeenEntry{}}
}

// maxStale bounds how old (in TTLs) year-to-date accounts may be served while a fresh copy is
// computed in the background; older ones are computed again before use.
const maxStale = 4

// cachedYTD returns the year-to-date accounts of key and whether they are fresh (computed
// less than the TTL before now, and not after it). Stale accounts, up to maxStale TTLs old,
// are returned too: the caller serves them and refreshes them in the background, so an
// evaluation never waits for the seconds a year of accounts takes except the first time.
func (s *Source) cachedYTD(key ytdKey, now time.Time) (res accounting.Result, fresh, ok bool) {
	if s.ttl < 0 {
		return accounting.Result{}, false, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, have := s.ytd[key]
	if !have || now.Sub(e.at) >= maxStale*s.ttl {
		return accounting.Result{}, false, false
	}
	return e.res, s.fresh(e.at, now), true
}

// refreshYTD computes the year-to-date accounts of key in the background, once at a time per
// key, and keeps them.
func (s *Source) refreshYTD(key ytdKey, park string, sp span, now time.Time) {
	s.mu.Lock()
	if s.refreshing[key] || s.opts.Accounts == nil {
		s.mu.Unlock()
		return
	}
	s.refreshing[key] = true
	s.mu.Unlock()
	s.bg.Go(func() {
		defer func() {
			s.mu.Lock()
			delete(s.refreshing, key)
			s.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		res, err := s.opts.Accounts.Indicators(ctx, park, sp.from, sp.to, "", "")
		if err != nil {
			s.log.Warn("year-to-date accounts not refreshed: the previous ones stay in use", "park", park, "err", err)
			return
		}
		s.storeYTD(key, now, res)
	})
}

// refreshTimeout bounds a background refresh of year-to-date accounts.
const refreshTimeout = 2 * time.Minute

// Wait waits for background refreshes (tests, shutdown).
func (s *Source) Wait() { s.bg.Wait() }

// storeYTD keeps year-to-date accounts computed at now, and drops the expired ones.
func (s *Source) storeYTD(key ytdKey, now time.Time, res accounting.Result) {
	if s.ttl < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.ytd {
		if now.Sub(e.at) >= maxStale*s.ttl || k.park == key.park && k.scope == key.scope && k.yearStart != key.yearStart {
			delete(s.ytd, k)
		}
	}
	s.ytd[key] = ytdEntry{at: now, res: res}
}

// fresh reports whether something computed at `at` may still be used at now.
func (s *Source) fresh(at, now time.Time) bool {
	return s.ttl >= 0 && !now.Before(at) && now.Sub(at) < s.ttl
}

// cachedPastTotals returns sums over whole past hours computed less than the TTL ago.
func (s *Source) cachedPastTotals(k pastTotalsKey, now time.Time) (*totals, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.pastTotals[k]
	if !ok || !s.fresh(e.at, now) {
		return nil, false
	}
	return e.v, true
}

func (s *Source) storePastTotals(k pastTotalsKey, now time.Time, v *totals) {
	if s.ttl < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for old, e := range s.pastTotals {
		if !s.fresh(e.at, now) {
			delete(s.pastTotals, old)
		}
	}
	s.pastTotals[k] = pastTotalsEntry{at: now, v: v}
}

// fetched is the outcome of one data need.
type fetched[T any] struct {
	v   T
	err error
}

type span struct{ from, to time.Time }

// eval is one park's evaluation: its data, fetched once, and the values computed from it,
// memoised across rules.
type eval struct {
	s    *Source
	ctx  context.Context
	park string
	now  time.Time

	meters   fetched[[]registry.Meter]
	byID     map[string]*registry.Meter
	byEnt    map[string][]*registry.Meter
	extraEnt map[string]error // enterprises without meters, looked up one by one
	zone     fetched[*time.Location]

	// Plan of the data needs.
	needLast, needSeqs, needDead bool
	powerFrom                    time.Time          // zero: no power rule
	totalsPlan                   map[totalsKey]bool // true: some rule of the sum is per meter
	qualityFrom                  time.Time          // zero: no data_quality rule
	accountSpans                 map[span]bool
	ytdSpan                      span // the year to date, when accountSpans holds it

	last     fetched[map[string]influx.Sample]
	power    fetched[map[string][]influx.Sample]
	totals   map[totalsKey]*fetched[*totals]
	quality  fetched[map[string][]influx.QualityHour] // by meter, oldest first
	seqs     fetched[[]telemetry.GatewaySeq]
	dead     fetched[int64]
	accounts map[span]*fetched[accounting.Result]

	powerMemo map[powerKey]meterPower
}

// Observe computes the observations of rules of park at now.
func (s *Source) Observe(ctx context.Context, park string, rules []alerting.Rule, now time.Time) map[string]alerting.Result {
	e := &eval{s: s, ctx: ctx, park: park, now: now, accountSpans: map[span]bool{},
		totalsPlan: map[totalsKey]bool{}, powerMemo: map[powerKey]meterPower{}}
	out := make(map[string]alerting.Result, len(rules))
	e.loadRegistry(rules)
	// Check each rule against the registry and plan what it needs.
	ok := make([]bool, len(rules))
	for i, r := range rules {
		if err := e.plan(r); err != nil {
			out[r.ID] = alerting.Result{Err: fmt.Errorf("rule %s: %w", r.ID, err)}
			continue
		}
		ok[i] = true
	}
	e.fetch()
	for i, r := range rules {
		if !ok[i] {
			continue
		}
		obs, err := e.observe(r)
		if err != nil {
			out[r.ID] = alerting.Result{Err: fmt.Errorf("rule %s: %w", r.ID, err)}
			continue
		}
		out[r.ID] = alerting.Result{Observations: obs}
	}
	return out
}

func needsMeters(r alerting.Rule) bool {
	return r.Kind != alerting.KindSeqGap && r.Kind != alerting.KindDeadLetters
}

func needsZone(r alerting.Rule) bool {
	return r.Kind == alerting.KindCarbonBudget || r.Kind == alerting.KindIndicatorAtRisk
}

// loadRegistry reads the park's meters and zone, when some rule needs them.
func (e *eval) loadRegistry(rules []alerting.Rule) {
	meters, zone := slices.ContainsFunc(rules, needsMeters), slices.ContainsFunc(rules, needsZone)
	if e.s.opts.Registry == nil {
		e.meters.err = errors.New("no registry configured")
		e.zone.err = e.meters.err
		return
	}
	var wg sync.WaitGroup
	if meters {
		wg.Go(func() {
			e.meters.v, e.meters.err = e.s.opts.Registry.AllMeters(e.ctx, registry.MeterFilter{ParkID: e.park})
			if e.meters.err != nil {
				e.meters.err = fmt.Errorf("list meters of park %s: %w", e.park, e.meters.err)
			}
		})
	}
	if zone {
		wg.Go(func() {
			p, err := e.s.opts.Registry.GetPark(e.ctx, e.park)
			if err != nil {
				e.zone.err = fmt.Errorf("get park %s: %w", e.park, err)
				return
			}
			tz := p.Timezone
			if tz == "" {
				tz = registry.DefaultTimezone
			}
			if e.zone.v, err = time.LoadLocation(tz); err != nil {
				e.zone.err = fmt.Errorf("time zone of park %s: %w", e.park, err)
			}
		})
	}
	wg.Wait()
	e.byID = make(map[string]*registry.Meter, len(e.meters.v))
	e.byEnt = map[string][]*registry.Meter{}
	e.extraEnt = map[string]error{}
	for i := range e.meters.v {
		m := &e.meters.v[i]
		e.byID[m.ID] = m
		if m.EnterpriseID != "" {
			e.byEnt[m.EnterpriseID] = append(e.byEnt[m.EnterpriseID], m)
		}
	}
	for _, err := range []error{e.meters.err, e.zone.err} {
		if err != nil {
			e.s.log.Warn("alert data unavailable", "park", e.park, "err", err)
		}
	}
}

// checkScope reports whether the rule's meter or enterprise is in the park.
func (e *eval) checkScope(r alerting.Rule) error {
	if e.meters.err != nil {
		return e.meters.err
	}
	switch {
	case r.MeterID != "":
		if e.byID[r.MeterID] == nil {
			return fmt.Errorf("meter %s of park %s: %w", r.MeterID, e.park, registry.ErrNotFound)
		}
	case r.EnterpriseID != "":
		if len(e.byEnt[r.EnterpriseID]) > 0 {
			return nil
		}
		err, seen := e.extraEnt[r.EnterpriseID]
		if !seen {
			err = fmt.Errorf("enterprise %s of park %s: %w", r.EnterpriseID, e.park, registry.ErrNotFound)
			if g, ok := e.s.opts.Registry.(enterpriseGetter); ok {
				if _, gerr := g.GetEnterprise(e.ctx, e.park, r.EnterpriseID); gerr == nil {
					err = nil
				} else if !errors.Is(gerr, registry.ErrNotFound) {
					err = fmt.Errorf("get enterprise %s: %w", r.EnterpriseID, gerr)
				}
			}
			e.extraEnt[r.EnterpriseID] = err
		}
		return err
	}
	return nil
}

// plan checks a rule against the registry and records the data it needs.
func (e *eval) plan(r alerting.Rule) error {
	if needsMeters(r) {
		if err := e.checkScope(r); err != nil {
			return err
		}
	}
	if needsZone(r) && e.zone.err != nil {
		return e.zone.err
	}
	hour := e.now.Truncate(time.Hour)
	sum := func(field string, sp span) {
		k := totalsKey{field, sp}
		e.totalsPlan[k] = e.totalsPlan[k] || r.MeterID != ""
	}
	switch r.Kind {
	case alerting.KindThreshold:
		switch r.Metric {
		case alerting.MetricPower:
			if r.MeterID != "" {
				if m := e.byID[r.MeterID]; m.Carrier != registry.Electricity || m.Kind != registry.Counter {
					return fmt.Errorf("power of meter %s: %w: power comes from electricity counters, it is %s %s", m.ID, ErrUnsupported, m.Carrier, m.Kind)
				}
			}
			from := e.now.Add(-powerWindow(r))
			if e.powerFrom.IsZero() || from.Before(e.powerFrom) {
				e.powerFrom = from
			}
		case alerting.MetricEnergyTce, alerting.MetricCO2:
			if r.Window <= 0 {
				return fmt.Errorf("%s needs a window: %w", r.Metric, registry.ErrInvalid)
			}
			sum(sumField(r.Metric), overlappingHours(e.now, r.Window))
		case alerting.MetricCO2PerTce, alerting.MetricCleanEnergyShare:
			if r.MeterID != "" {
				return fmt.Errorf("%s of meter %s: %w: indicators are computed for the park or an enterprise", r.Metric, r.MeterID, ErrUnsupported)
			}
			if r.Window <= 0 {
				return fmt.Errorf("%s needs a window: %w", r.Metric, registry.ErrInvalid)
			}
			e.accountSpans[span{e.now.Add(-r.Window), e.now}] = true
		default:
			return fmt.Errorf("metric %q: %w", r.Metric, ErrUnsupported)
		}
	case alerting.KindRateOfChange:
		p, err := comparePeriod(r)
		if err != nil {
			return err
		}
		sum(fieldTce, span{hour.Add(-p), hour})
		sum(fieldTce, span{hour.Add(-2 * p), hour.Add(-p)})
	case alerting.KindNoData:
		e.needLast = true
	case alerting.KindSeqGap:
		e.needSeqs = true
	case alerting.KindDeadLetters:
		e.needDead = true
	case alerting.KindDataQuality:
		if r.Window <= 0 {
			return fmt.Errorf("data_quality needs a window: %w", registry.ErrInvalid)
		}
		if _, err := qualityMask(r.Qualities); err != nil {
			return err
		}
		if from := e.now.Add(-r.Window); e.qualityFrom.IsZero() || from.Before(e.qualityFrom) {
			e.qualityFrom = from
		}
	case alerting.KindCarbonBudget, alerting.KindIndicatorAtRisk:
		if r.MeterID != "" {
			return fmt.Errorf("%s of meter %s: %w: the accounts are kept for the park or an enterprise", r.Kind, r.MeterID, ErrUnsupported)
		}
		if r.Kind == alerting.KindCarbonBudget && r.BudgetT <= 0 {
			return fmt.Errorf("carbon budget %v t: %w", r.BudgetT, registry.ErrInvalid)
		}
		if r.Kind == alerting.KindIndicatorAtRisk && r.Metric != alerting.MetricCO2PerTce && r.Metric != alerting.MetricCleanEnergyShare {
			return fmt.Errorf("metric %q: %w", r.Metric, ErrUnsupported)
		}
		e.ytdSpan = span{yearStart(e.now, e.zone.v), e.now}
		e.accountSpans[e.ytdSpan] = true
	default:
		return fmt.Errorf("kind %q: %w", r.Kind, ErrUnsupported)
	}
	return nil
}

func powerWindow(r alerting.Rule) time.Duration {
	if r.Window > 0 {
		return r.Window
	}
	return DefaultPowerWindow
}

func comparePeriod(r alerting.Rule) (time.Duration, error) {
	switch r.Compare {
	case "day":
		return 24 * time.Hour, nil
	case "week":
		return 168 * time.Hour, nil
	}
	return 0, fmt.Errorf("compare %q is not day or week: %w", r.Compare, registry.ErrInvalid)
}

// overlappingHours is the span of the starts of the UTC hours overlapping [now − window,
// now): from the hour holding now − window to now, so the current hour counts with what its
// rollup holds so far. A window of one hour thus always holds a finished hour, and a rule
// over it does not lose its observation at each hour's start.
func overlappingHours(now time.Time, window time.Duration) span {
	return span{now.Add(-window).Truncate(time.Hour), now}
}

func yearStart(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	return time.Date(l.Year(), 1, 1, 0, 0, 0, 0, loc)
}

// fetch runs the planned data needs concurrently.
func (e *eval) fetch() {
	o := e.s.opts
	var wg sync.WaitGroup
	missing := func(what string) error { return fmt.Errorf("no %s source configured", what) }
	if e.needLast {
		wg.Go(func() {
			if o.Readings == nil {
				e.last.err = missing("readings")
				return
			}
			e.last.v, e.last.err = e.lastReadings()
		})
	}
	if !e.powerFrom.IsZero() {
		wg.Go(func() {
			if o.Readings == nil {
				e.power.err = missing("readings")
				return
			}
			e.power.v, e.power.err = o.Readings.CarrierReadings(e.ctx, e.park, string(registry.Electricity),
				e.powerFrom, e.now.Add(time.Nanosecond), e.lookback())
		})
	}
	e.fetchRollups(&wg)
	if e.needSeqs {
		wg.Go(func() {
			if o.Ledger == nil {
				e.seqs.err = missing("ledger")
				return
			}
			e.seqs.v, e.seqs.err = o.Ledger.GatewaySeqs(e.ctx, e.park)
		})
	}
	if e.needDead {
		wg.Go(func() {
			if o.Ledger == nil {
				e.dead.err = missing("ledger")
				return
			}
			e.dead.v, e.dead.err = o.Ledger.CountDeadLetters(e.ctx, e.park, e.now.Add(-DeadLetterWindow))
		})
	}
	e.accounts = make(map[span]*fetched[accounting.Result], len(e.accountSpans))
	for sp := range e.accountSpans {
		f := &fetched[accounting.Result]{}
		e.accounts[sp] = f
		ytd := sp == e.ytdSpan
		key := ytdKey{park: e.park, yearStart: sp.from.UnixNano()}
		if ytd {
			if res, fresh, ok := e.s.cachedYTD(key, e.now); ok {
				f.v = res
				if !fresh {
					e.s.refreshYTD(key, e.park, sp, e.now)
				}
				continue
			}
		}
		wg.Go(func() {
			if o.Accounts == nil {
				f.err = missing("accounts")
				return
			}
			f.v, f.err = o.Accounts.Indicators(e.ctx, e.park, sp.from, sp.to, "", "")
			if ytd && f.err == nil {
				e.s.storeYTD(key, e.now, f.v)
			}
		})
	}
	wg.Wait()
	for what, err := range map[string]error{"last readings": e.last.err, "power readings": e.power.err,
		"quality hours": e.quality.err, "gateway sequences": e.seqs.err, "dead letters": e.dead.err} {
		if err != nil {
			e.s.log.Warn("alert data unavailable", "park", e.park, "data", what, "err", err)
		}
	}
	for k, f := range e.totals {
		if f.err != nil {
			e.s.log.Warn("alert data unavailable", "park", e.park, "data", "hourly totals", "field", k.field,
				"from", k.sp.from, "to", k.sp.to, "err", f.err)
		}
	}
	for sp, f := range e.accounts {
		if f.err != nil {
			e.s.log.Warn("alert data unavailable", "park", e.park, "data", "indicators", "from", sp.from, "to", sp.to, "err", f.err)
		}
	}
}

// lastReadings finds each meter's last reading: first over recentSpan, then, for the meters
// silent that long, back to NoDataLookback.
func (e *eval) lastReadings() (map[string]influx.Sample, error) {
	to := e.now.Add(time.Nanosecond)
	recent := e.now.Add(-e.recentSpan())
	last, err := e.s.opts.Readings.LastReadings(e.ctx, e.park, nil, recent, to)
	if err != nil {
		return nil, err
	}
	var silent []string
	e.s.mu.Lock()
	seen := e.s.lastSeen[e.park]
	for _, m := range e.meters.v {
		if _, ok := last[m.ID]; ok || !watchesNoData(&m) {
			continue
		}
		// Silent in the recent span: its last reading is the one the long search found before,
		// unless that search is older than the TTL.
		if memo, ok := seen[m.ID]; ok && e.s.fresh(memo.at, e.now) {
			if memo.found {
				last[m.ID] = memo.sample
			}
			continue
		}
		silent = append(silent, m.ID)
	}
	e.s.mu.Unlock()
	if len(silent) == 0 {
		return last, nil
	}
	filter := silent
	if len(filter) > maxMeterFilter {
		filter = nil
	}
	older, err := e.s.opts.Readings.LastReadings(e.ctx, e.park, filter, e.now.Add(-NoDataLookback), recent)
	if err != nil {
		return nil, err
	}
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	if e.s.lastSeen[e.park] == nil {
		e.s.lastSeen[e.park] = map[string]lastSeenEntry{}
	}
	for _, id := range silent {
		smp, found := older[id]
		if e.s.ttl >= 0 {
			e.s.lastSeen[e.park][id] = lastSeenEntry{at: e.now, sample: smp, found: found}
		}
		if found {
			last[id] = smp
		}
	}
	return last, nil
}

// recentSpan is the first step of the last-reading search: four of the longest interval of
// the park's watched meters, within [minRecentSpan, maxRecentSpan]. A meter that reports
// finds its last reading there; only the others are looked for again.
func (e *eval) recentSpan() time.Duration {
	var d time.Duration
	for i := range e.meters.v {
		if m := &e.meters.v[i]; watchesNoData(m) {
			d = max(d, 4*time.Duration(m.IntervalSeconds)*time.Second)
		}
	}
	return min(max(d, minRecentSpan), maxRecentSpan)
}

// lookback is how far before the power windows the last reading of a meter is looked for:
// two of the longest interval of the park's electricity counters, within [15 min, 1 day].
func (e *eval) lookback() time.Duration {
	var d time.Duration
	for _, m := range e.meters.v {
		if m.Carrier == registry.Electricity && m.Kind == registry.Counter {
			d = max(d, 2*time.Duration(m.IntervalSeconds)*time.Second)
		}
	}
	return min(max(d, 15*time.Minute), 24*time.Hour)
}

// scopeLabels are the labels of a rule's one observation.
func (e *eval) scopeLabels(r alerting.Rule) map[string]string {
	switch {
	case r.MeterID != "":
		return e.meterLabels(e.byID[r.MeterID])
	case r.EnterpriseID != "":
		return map[string]string{"enterprise": r.EnterpriseID}
	}
	return map[string]string{}
}

func (e *eval) meterLabels(m *registry.Meter) map[string]string {
	if m.EnterpriseID != "" {
		return map[string]string{"meter": m.ID, "enterprise": m.EnterpriseID}
	}
	return map[string]string{"meter": m.ID}
}

// scopeMeters are the registry meters a rule covers.
func (e *eval) scopeMeters(r alerting.Rule) []*registry.Meter {
	switch {
	case r.MeterID != "":
		return []*registry.Meter{e.byID[r.MeterID]}
	case r.EnterpriseID != "":
		return e.byEnt[r.EnterpriseID]
	}
	out := make([]*registry.Meter, len(e.meters.v))
	for i := range e.meters.v {
		out[i] = &e.meters.v[i]
	}
	return out
}

func scopeName(r alerting.Rule) string {
	switch {
	case r.MeterID != "":
		return "meter " + r.MeterID
	case r.EnterpriseID != "":
		return "enterprise " + r.EnterpriseID
	}
	return "park"
}

// observe computes one planned rule's observations from the fetched data.
func (e *eval) observe(r alerting.Rule) ([]alerting.Observation, error) {
	switch r.Kind {
	case alerting.KindThreshold:
		return e.threshold(r)
	case alerting.KindRateOfChange:
		return e.rateOfChange(r)
	case alerting.KindNoData:
		return e.noData(r)
	case alerting.KindSeqGap:
		return e.seqGap()
	case alerting.KindDeadLetters:
		if e.dead.err != nil {
			return nil, e.dead.err
		}
		return []alerting.Observation{{Labels: map[string]string{}, Value: float64(e.dead.v),
			Summary: fmt.Sprintf("%d dead letters in the last %v", e.dead.v, DeadLetterWindow)}}, nil
	case alerting.KindDataQuality:
		return e.dataQuality(r)
	case alerting.KindCarbonBudget:
		return e.carbonBudget(r)
	case alerting.KindIndicatorAtRisk:
		return e.indicatorAtRisk(r)
	}
	return nil, fmt.Errorf("kind %q: %w", r.Kind, ErrUnsupported)
}

func one(labels map[string]string, v float64, summary string) []alerting.Observation {
	return []alerting.Observation{{Labels: labels, Value: v, Summary: summary}}
}

// block is the accounts of the rule's scope over sp; nil when the enterprise has none.
func (e *eval) block(r alerting.Rule, sp span) (*accounting.Block, error) {
	f := e.accounts[sp]
	if f.err != nil {
		return nil, f.err
	}
	if r.EnterpriseID == "" {
		return &f.v.Block, nil
	}
	for i := range f.v.Enterprises {
		if f.v.Enterprises[i].Enterprise == r.EnterpriseID {
			return &f.v.Enterprises[i], nil
		}
	}
	return nil, nil
}

func indicator(b *accounting.Block, metric string) *float64 {
	if b == nil {
		return nil
	}
	if metric == alerting.MetricCO2PerTce {
		return b.CO2PerTce
	}
	return b.CleanEnergyShare
}

func (e *eval) threshold(r alerting.Rule) ([]alerting.Observation, error) {
	switch r.Metric {
	case alerting.MetricPower:
		return e.powerRule(r)
	case alerting.MetricEnergyTce, alerting.MetricCO2:
		sp := overlappingHours(e.now, r.Window)
		unit := "tce"
		if r.Metric == alerting.MetricCO2 {
			unit = "t CO2"
		}
		v, err := e.sum(r, sumField(r.Metric), sp)
		if err != nil || v == nil {
			return nil, err
		}
		hours := int((sp.to.Sub(sp.from) + time.Hour - 1) / time.Hour)
		return one(e.scopeLabels(r), *v, fmt.Sprintf("%s of %s: %.4g %s in the %d hours from %s (the current one so far)",
			r.Metric, scopeName(r), *v, unit, hours, sp.from.UTC().Format(time.RFC3339))), nil
	default: // co2_per_tce, clean_energy_share
		b, err := e.block(r, span{e.now.Add(-r.Window), e.now})
		if err != nil {
			return nil, err
		}
		v := indicator(b, r.Metric)
		if v == nil {
			return nil, nil
		}
		return one(e.scopeLabels(r), *v, fmt.Sprintf("%s of %s over the last %v: %.4g", r.Metric, scopeName(r), r.Window, *v)), nil
	}
}

func (e *eval) rateOfChange(r alerting.Rule) ([]alerting.Observation, error) {
	p, _ := comparePeriod(r)
	h := e.now.Truncate(time.Hour)
	cur, err := e.sum(r, fieldTce, span{h.Add(-p), h})
	if err != nil {
		return nil, err
	}
	prev, err := e.sum(r, fieldTce, span{h.Add(-2 * p), h.Add(-p)})
	if err != nil {
		return nil, err
	}
	if cur == nil || prev == nil || *prev == 0 {
		return nil, nil
	}
	// Against the magnitude of the previous period, so a rise is positive for a net exporter
	// too (the same as (cur − prev) / prev for consumption).
	v := (*cur - *prev) / abs(*prev) * 100
	return one(e.scopeLabels(r), v, fmt.Sprintf("energy of %s: %.4g tce in the last %s, %.4g tce in the %s before (%+.1f %%)",
		scopeName(r), *cur, r.Compare, *prev, r.Compare, v)), nil
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// watchesNoData reports whether a meter is expected to report at an interval.
func watchesNoData(m *registry.Meter) bool {
	return (m.Kind == registry.Counter || m.Kind == registry.Gauge) && m.IntervalSeconds > 0
}

func (e *eval) noData(r alerting.Rule) ([]alerting.Observation, error) {
	if e.last.err != nil {
		return nil, e.last.err
	}
	var out []alerting.Observation
	for _, m := range e.scopeMeters(r) {
		if !watchesNoData(m) {
			continue
		}
		interval := time.Duration(m.IntervalSeconds) * time.Second
		var summary string
		var silent time.Duration
		if s, ok := e.last.v[m.ID]; ok {
			silent = max(e.now.Sub(s.TS), 0)
			summary = fmt.Sprintf("meter %s silent for %.1f intervals of %v (last reading %s)",
				m.ID, float64(silent)/float64(interval), interval, s.TS.UTC().Format(time.RFC3339))
		} else {
			silent = NoDataLookback
			summary = fmt.Sprintf("meter %s has sent no reading in the last %v: counted from that limit, %.0f intervals of %v",
				m.ID, NoDataLookback, float64(silent)/float64(interval), interval)
		}
		out = append(out, alerting.Observation{Labels: e.meterLabels(m), Value: float64(silent) / float64(interval), Summary: summary})
	}
	return out, nil
}

func (e *eval) seqGap() ([]alerting.Observation, error) {
	if e.seqs.err != nil {
		return nil, e.seqs.err
	}
	out := make([]alerting.Observation, 0, len(e.seqs.v))
	for _, g := range e.seqs.v {
		o := alerting.Observation{Labels: map[string]string{"gateway": g.Gateway},
			Summary: fmt.Sprintf("gateway %s: no sequence gap (contiguous to %d)", g.Gateway, g.Contiguous)}
		if !g.GapSince.IsZero() {
			open := max(e.now.Sub(g.GapSince), 0)
			o.Value = open.Seconds()
			o.Summary = fmt.Sprintf("gateway %s: sequence gap open for %v since %s, %d batches missing after %d",
				g.Gateway, open.Truncate(time.Second), g.GapSince.UTC().Format(time.RFC3339), g.Missing, g.Contiguous)
		}
		out = append(out, o)
	}
	return out, nil
}

// qualityNames maps the data_quality event names to the accounting flags.
var qualityNames = map[string]accounting.Quality{
	"reset":       accounting.QualityReset,
	"replacement": accounting.QualityReplacement,
	"spike":       accounting.QualitySpike,
	"gap":         accounting.QualityGap,
}

func qualityMask(names []string) (accounting.Quality, error) {
	if len(names) == 0 {
		names = alerting.QualityEvents
	}
	var q accounting.Quality
	for _, n := range names {
		b, ok := qualityNames[n]
		if !ok {
			return 0, fmt.Errorf("quality %q: %w", n, registry.ErrInvalid)
		}
		q |= b
	}
	return q, nil
}

func (e *eval) dataQuality(r alerting.Rule) ([]alerting.Observation, error) {
	if e.quality.err != nil {
		return nil, e.quality.err
	}
	mask, _ := qualityMask(r.Qualities)
	from := e.now.Add(-r.Window)
	what := fmt.Sprintf("%s in the last %v", mask, r.Window)
	var out []alerting.Observation
	for _, m := range e.scopeMeters(r) {
		if m.Kind != registry.Counter && r.MeterID == "" {
			continue // gauges have no rollups
		}
		var hours []string
		for _, p := range qualityBetween(e.quality.v[m.ID], from, e.now) {
			if q := accounting.Quality(p.Quality) & mask; q != 0 {
				hours = append(hours, p.Start.UTC().Format("2006-01-02T15:04Z")+" "+q.String())
			}
		}
		summary := "meter " + m.ID + ": no " + what
		if len(hours) > 0 {
			summary = fmt.Sprintf("meter %s: %d hours with %s: %s", m.ID, len(hours), what, listHours(hours))
		}
		out = append(out, alerting.Observation{Labels: e.meterLabels(m), Value: float64(len(hours)), Summary: summary})
	}
	return out, nil
}

func listHours(hours []string) string {
	const shown = 12
	if len(hours) <= shown {
		return strings.Join(hours, ", ")
	}
	return strings.Join(hours[:shown], ", ") + fmt.Sprintf(" and %d more", len(hours)-shown)
}

func (e *eval) carbonBudget(r alerting.Rule) ([]alerting.Observation, error) {
	loc := e.zone.v
	ys := yearStart(e.now, loc)
	b, err := e.block(r, span{ys, e.now})
	if err != nil {
		return nil, err
	}
	if b == nil || b.CO2T == nil {
		return nil, nil
	}
	ye := ys.AddDate(1, 0, 0)
	f := float64(e.now.Sub(ys)) / float64(ye.Sub(ys))
	if f <= 0 {
		return nil, nil
	}
	ytd := *b.CO2T
	toDate := budgetToDate(r, e.now, loc, f)
	projected := ytd / f
	v := projected / r.BudgetT
	return one(e.scopeLabels(r), v, fmt.Sprintf("CO2 of %s: %.1f t year to date against %.1f t budgeted to date; projected %.1f t for the year against %.1f t (overrun %.1f t)",
		scopeName(r), ytd, toDate, projected, r.BudgetT, projected-r.BudgetT)), nil
}

// budgetToDate is the budget of the year up to now: the annual budget × the elapsed fraction
// f of the year, or with a monthly trajectory the months passed plus the current month's
// budget prorated by time.
func budgetToDate(r alerting.Rule, now time.Time, loc *time.Location, f float64) float64 {
	if r.Trajectory != alerting.TrajectoryMonthly || len(r.MonthlyBudgetT) != 12 {
		return r.BudgetT * f
	}
	l := now.In(loc)
	ms := time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)
	me := ms.AddDate(0, 1, 0)
	sum := 0.0
	for i := range int(l.Month()) - 1 {
		sum += r.MonthlyBudgetT[i]
	}
	return sum + r.MonthlyBudgetT[l.Month()-1]*float64(now.Sub(ms))/float64(me.Sub(ms))
}

func (e *eval) indicatorAtRisk(r alerting.Rule) ([]alerting.Observation, error) {
	ys := yearStart(e.now, e.zone.v)
	b, err := e.block(r, span{ys, e.now})
	if err != nil {
		return nil, err
	}
	v := indicator(b, r.Metric)
	if v == nil {
		return nil, nil
	}
	return one(e.scopeLabels(r), *v, fmt.Sprintf("%s of %s year to date (the projected annual value): %.4g", r.Metric, scopeName(r), *v)), nil
}
