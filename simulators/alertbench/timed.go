package alertbench

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/alertsrc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/simulators/calltime"
)

// Method names of the time split.
const (
	callObserve    = "Source.Observe"
	callSave       = "Store.SaveAlerts"
	callLoad       = "Store.LoadAlerts"
	callListRules  = "Store.ListAllRules"
	callSilences   = "Store.ListSilences"
	callEndpoints  = "Store.ListEndpoints"
	callIndicators = "accountsvc Indicators"
)

// timedSource times Observe and counts the rules it could not evaluate.
type timedSource struct {
	s      alerting.Source
	c      *calltime.Clock
	errors atomic.Int64
	last   atomic.Value // error: the last rule error
}

var _ alerting.Source = (*timedSource)(nil)

func (t *timedSource) Observe(ctx context.Context, park string, rules []alerting.Rule, now time.Time) map[string]alerting.Result {
	start := time.Now()
	out := t.s.Observe(ctx, park, rules, now)
	t.c.Add(callObserve, start, len(rules))
	for _, r := range out {
		if r.Err != nil {
			t.errors.Add(1)
			t.last.Store(r.Err)
		}
	}
	return out
}

// timedStore times the evaluator's store calls, the others go straight through, and counts
// what SaveAlerts was given.
type timedStore struct {
	alerting.Store
	c     *calltime.Clock
	saved *saveCounts
}

// saveCounts adds up the rows handed to SaveAlerts: alerts stored (not inactive), inactive
// alerts (deleted from the store) and history entries.
type saveCounts struct {
	upserts, inactive, history atomic.Int64
}

func (t timedStore) SaveAlerts(ctx context.Context, alerts []alerting.Alert, history []alerting.HistoryEntry) error {
	start := time.Now()
	err := t.Store.SaveAlerts(ctx, alerts, history)
	t.c.Add(callSave, start, len(alerts)+len(history))
	for _, a := range alerts {
		if a.State == alerting.StateInactive {
			t.saved.inactive.Add(1)
		} else {
			t.saved.upserts.Add(1)
		}
	}
	t.saved.history.Add(int64(len(history)))
	return err
}

func (t timedStore) LoadAlerts(ctx context.Context) ([]alerting.Alert, error) {
	start := time.Now()
	out, err := t.Store.LoadAlerts(ctx)
	t.c.Add(callLoad, start, len(out))
	return out, err
}

func (t timedStore) ListAllRules(ctx context.Context) ([]alerting.Rule, error) {
	start := time.Now()
	out, err := t.Store.ListAllRules(ctx)
	t.c.Add(callListRules, start, len(out))
	return out, err
}

func (t timedStore) ListSilences(ctx context.Context, park string) ([]alerting.Silence, error) {
	start := time.Now()
	out, err := t.Store.ListSilences(ctx, park)
	t.c.Add(callSilences, start, len(out))
	return out, err
}

func (t timedStore) ListEndpoints(ctx context.Context, park string) ([]alerting.Endpoint, error) {
	start := time.Now()
	out, err := t.Store.ListEndpoints(ctx, park)
	t.c.Add(callEndpoints, start, len(out))
	return out, err
}

// timedReadings times the source's InfluxDB queries; they run concurrently inside Observe.
type timedReadings struct {
	s *influx.Store
	c *calltime.Clock
}

var _ alertsrc.Readings = timedReadings{}

func (t timedReadings) LastReadings(ctx context.Context, park string, meters []string, from, to time.Time) (map[string]influx.Sample, error) {
	start := time.Now()
	out, err := t.s.LastReadings(ctx, park, meters, from, to)
	t.c.Add("influx LastReadings", start, len(out))
	return out, err
}

func (t timedReadings) CarrierReadings(ctx context.Context, park, carrier string, from, to time.Time, lookback time.Duration) (map[string][]influx.Sample, error) {
	start := time.Now()
	out, err := t.s.CarrierReadings(ctx, park, carrier, from, to, lookback)
	n := 0
	for _, s := range out {
		n += len(s)
	}
	t.c.Add("influx CarrierReadings", start, n)
	return out, err
}

// registryReader is what the source reads of *registry.Service, GetEnterprise included.
type registryReader interface {
	AllMeters(ctx context.Context, f registry.MeterFilter) ([]registry.Meter, error)
	GetPark(ctx context.Context, id string) (registry.Park, error)
	GetEnterprise(ctx context.Context, parkID, id string) (registry.Enterprise, error)
}

// timedRegistry times the source's registry reads.
type timedRegistry struct {
	r registryReader
	c *calltime.Clock
}

var _ alertsrc.Registry = timedRegistry{}

func (t timedRegistry) AllMeters(ctx context.Context, f registry.MeterFilter) ([]registry.Meter, error) {
	start := time.Now()
	out, err := t.r.AllMeters(ctx, f)
	t.c.Add("registry AllMeters", start, len(out))
	return out, err
}

func (t timedRegistry) GetPark(ctx context.Context, id string) (registry.Park, error) {
	start := time.Now()
	out, err := t.r.GetPark(ctx, id)
	t.c.Add("registry GetPark", start, 1)
	return out, err
}

func (t timedRegistry) GetEnterprise(ctx context.Context, parkID, id string) (registry.Enterprise, error) {
	start := time.Now()
	out, err := t.r.GetEnterprise(ctx, parkID, id)
	t.c.Add("registry GetEnterprise", start, 1)
	return out, err
}

// timedAccounts times the accounts the carbon_budget and indicator_at_risk rules read.
type timedAccounts struct {
	a alertsrc.Accounts
	c *calltime.Clock
}

func (t timedAccounts) Indicators(ctx context.Context, park string, from, to time.Time, rule, enterprise string) (accounting.Result, error) {
	start := time.Now()
	out, err := t.a.Indicators(ctx, park, from, to, rule, enterprise)
	t.c.Add(callIndicators, start, len(out.Enterprises))
	return out, err
}

func (t timedReadings) HourlyTotals(ctx context.Context, park, field string, from, to time.Time, groupBy []string) ([]influx.HourlyTotal, error) {
	start := time.Now()
	out, err := t.s.HourlyTotals(ctx, park, field, from, to, groupBy)
	t.c.Add("influx HourlyTotals", start, len(out))
	return out, err
}

func (t timedReadings) QualityHours(ctx context.Context, park string, from, to time.Time) ([]influx.QualityHour, error) {
	start := time.Now()
	out, err := t.s.QualityHours(ctx, park, from, to)
	t.c.Add("influx QualityHours", start, len(out))
	return out, err
}
