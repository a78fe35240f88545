package alertsrc

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// call records one call of a fake, for the batching assertions.
type call struct {
	method   string
	meters   []string
	from, to time.Time
	lookback time.Duration
	ent      string
	field    string
	groupBy  []string
}

type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) record(c call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

func (r *recorder) count(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.method == method {
			n++
		}
	}
	return n
}

func (r *recorder) of(method string) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if c.method == method {
			out = append(out, c)
		}
	}
	return out
}

// fakeReadings answers like *influx.Store from readings and rollups in memory.
type fakeReadings struct {
	*recorder
	samples map[string][]influx.Sample // by meter, oldest first
	carrier map[string]string          // carrier tag of each meter's readings
	rollups []influx.RollupPoint
	err     map[string]error // by method
	// fixed answers, when set, are returned as they are (benchmarks).
	fixedLast    map[string]influx.Sample
	fixedPower   map[string][]influx.Sample
	fixedRollups []influx.RollupPoint
	fixedQuality []influx.QualityHour
	// memo keeps the sums of fixedRollups, so the benchmarks time the source, not the fake.
	memoMu sync.Mutex
	memo   map[string][]influx.HourlyTotal
}

func (f *fakeReadings) LastReadings(_ context.Context, _ string, meters []string, from, to time.Time) (map[string]influx.Sample, error) {
	f.record(call{method: "LastReadings", meters: meters, from: from, to: to})
	if err := f.err["LastReadings"]; err != nil {
		return nil, err
	}
	if f.fixedLast != nil {
		return f.fixedLast, nil
	}
	out := map[string]influx.Sample{}
	for m, ss := range f.samples {
		if meters != nil && !slices.Contains(meters, m) {
			continue
		}
		for _, s := range ss {
			if !s.TS.Before(from) && s.TS.Before(to) {
				out[m] = s
			}
		}
	}
	return out, nil
}

func (f *fakeReadings) CarrierReadings(_ context.Context, _ string, carrier string, from, to time.Time, lookback time.Duration) (map[string][]influx.Sample, error) {
	f.record(call{method: "CarrierReadings", from: from, to: to, lookback: lookback})
	if err := f.err["CarrierReadings"]; err != nil {
		return nil, err
	}
	if f.fixedPower != nil {
		return f.fixedPower, nil
	}
	out := map[string][]influx.Sample{}
	for m, ss := range f.samples {
		if f.carrier[m] != carrier {
			continue
		}
		var before *influx.Sample
		var in []influx.Sample
		for i, s := range ss {
			switch {
			case !s.TS.Before(from.Add(-lookback)) && s.TS.Before(from):
				before = &ss[i]
			case !s.TS.Before(from) && s.TS.Before(to):
				in = append(in, s)
			}
		}
		if before != nil {
			in = append([]influx.Sample{*before}, in...)
		}
		if len(in) > 0 {
			out[m] = in
		}
	}
	return out, nil
}

// HourlyTotals sums the rollups in memory (fixedRollups when set, else rollups).
func (f *fakeReadings) HourlyTotals(_ context.Context, _ string, field string, from, to time.Time, groupBy []string) ([]influx.HourlyTotal, error) {
	f.record(call{method: "HourlyTotals", from: from, to: to, field: field, groupBy: groupBy})
	if err := f.err["HourlyTotals"]; err != nil {
		return nil, err
	}
	key := fmt.Sprint(field, from.UnixNano(), to.UnixNano(), groupBy)
	if f.fixedRollups != nil {
		f.memoMu.Lock()
		defer f.memoMu.Unlock()
		if out, ok := f.memo[key]; ok {
			return out, nil
		}
	}
	type group struct{ ent, meter string }
	sums := map[group]float64{}
	for _, p := range f.points() {
		if p.Start.Before(from) || !p.Start.Before(to) {
			continue
		}
		v := map[string]*float64{"tce_equal": p.TceEqual, "co2_t": p.CO2T}[field]
		if v == nil {
			continue
		}
		var g group
		if slices.Contains(groupBy, influx.GroupEnterprise) {
			g.ent = p.Enterprise
		}
		if slices.Contains(groupBy, influx.GroupMeter) {
			g.meter = p.Meter
		}
		sums[g] += *v
	}
	out := make([]influx.HourlyTotal, 0, len(sums))
	for g, v := range sums {
		out = append(out, influx.HourlyTotal{Enterprise: g.ent, Meter: g.meter, Value: v})
	}
	if f.fixedRollups != nil {
		if f.memo == nil {
			f.memo = map[string][]influx.HourlyTotal{}
		}
		f.memo[key] = out
	}
	return out, nil
}

// QualityHours returns the flagged rollups in memory.
func (f *fakeReadings) QualityHours(_ context.Context, _ string, from, to time.Time) ([]influx.QualityHour, error) {
	f.record(call{method: "QualityHours", from: from, to: to})
	if err := f.err["QualityHours"]; err != nil {
		return nil, err
	}
	if f.fixedQuality != nil {
		return f.fixedQuality, nil
	}
	var out []influx.QualityHour
	for _, p := range f.points() {
		if p.Quality != 0 && !p.Start.Before(from) && p.Start.Before(to) {
			out = append(out, influx.QualityHour{Enterprise: p.Enterprise, Meter: p.Meter, Start: p.Start, Quality: p.Quality})
		}
	}
	return out, nil
}

func (f *fakeReadings) points() []influx.RollupPoint {
	if f.fixedRollups != nil {
		return f.fixedRollups
	}
	return f.rollups
}

type fakeRegistry struct {
	*recorder
	meters      []registry.Meter
	park        registry.Park
	enterprises []string // known enterprises, for GetEnterprise
	err         error
}

func (f *fakeRegistry) AllMeters(_ context.Context, mf registry.MeterFilter) ([]registry.Meter, error) {
	f.record(call{method: "AllMeters"})
	if f.err != nil {
		return nil, f.err
	}
	var out []registry.Meter
	for _, m := range f.meters {
		if mf.ParkID == "" || m.ParkID == mf.ParkID {
			out = append(out, m)
		}
	}
	return out, nil
}

func (f *fakeRegistry) GetPark(_ context.Context, id string) (registry.Park, error) {
	f.record(call{method: "GetPark"})
	if f.err != nil {
		return registry.Park{}, f.err
	}
	if id != f.park.ID {
		return registry.Park{}, fmt.Errorf("park %s: %w", id, registry.ErrNotFound)
	}
	return f.park, nil
}

func (f *fakeRegistry) GetEnterprise(_ context.Context, park, id string) (registry.Enterprise, error) {
	f.record(call{method: "GetEnterprise", ent: id})
	if slices.Contains(f.enterprises, id) {
		return registry.Enterprise{ID: id, ParkID: park}, nil
	}
	return registry.Enterprise{}, fmt.Errorf("enterprise %s: %w", id, registry.ErrNotFound)
}

type fakeLedger struct {
	*recorder
	seqs    []telemetry.GatewaySeq
	dead    int64
	seqErr  error
	deadErr error
}

func (f *fakeLedger) GatewaySeqs(context.Context, string) ([]telemetry.GatewaySeq, error) {
	f.record(call{method: "GatewaySeqs"})
	return f.seqs, f.seqErr
}

func (f *fakeLedger) CountDeadLetters(_ context.Context, _ string, since time.Time) (int64, error) {
	f.record(call{method: "CountDeadLetters", from: since})
	return f.dead, f.deadErr
}

type fakeAccounts struct {
	*recorder
	// results by "from|to" in RFC 3339 UTC; any answers the other periods when set.
	results map[string]accounting.Result
	any     *accounting.Result
	err     error
}

func spanKey(from, to time.Time) string {
	return from.UTC().Format(time.RFC3339) + "|" + to.UTC().Format(time.RFC3339)
}

func (f *fakeAccounts) Indicators(_ context.Context, _ string, from, to time.Time, _, enterprise string) (accounting.Result, error) {
	f.record(call{method: "Indicators", from: from, to: to, ent: enterprise})
	if f.err != nil {
		return accounting.Result{}, f.err
	}
	r, ok := f.results[spanKey(from, to)]
	if !ok && f.any != nil {
		return *f.any, nil
	}
	if !ok {
		return accounting.Result{}, fmt.Errorf("no fake result for %s", spanKey(from, to))
	}
	return r, nil
}
