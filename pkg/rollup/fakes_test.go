package rollup

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// memStore is an in-memory ReadingSource and RollupStore of one park.
type memStore struct {
	mu       sync.Mutex
	readings map[string][]influx.Sample // by meter, sorted, one per instant
	hourly   map[hourKey]influx.RollupPoint
	daily    map[hourKey]influx.RollupPoint
	monthly  map[hourKey]influx.RollupPoint
	fail     error // returned by every call while set
}

var (
	_ ReadingSource = (*memStore)(nil)
	_ RollupStore   = (*memStore)(nil)
)

func newMemStore() *memStore {
	return &memStore{readings: map[string][]influx.Sample{}, hourly: map[hourKey]influx.RollupPoint{}, daily: map[hourKey]influx.RollupPoint{}, monthly: map[hourKey]influx.RollupPoint{}}
}

func (s *memStore) write(points []influx.Point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range points {
		rs := s.readings[p.Meter]
		i := sort.Search(len(rs), func(i int) bool { return !rs[i].TS.Before(p.TS) })
		if i < len(rs) && rs[i].TS.Equal(p.TS) {
			rs[i].Value = p.Value
			continue
		}
		s.readings[p.Meter] = slices.Insert(rs, i, influx.Sample{TS: p.TS, Value: p.Value})
	}
}

func (s *memStore) selectSamples(meters []string, from, to time.Time, pick func([]influx.Sample) []influx.Sample) (map[string][]influx.Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	out := map[string][]influx.Sample{}
	for m, rs := range s.readings {
		if meters != nil && !slices.Contains(meters, m) {
			continue
		}
		i := sort.Search(len(rs), func(i int) bool { return !rs[i].TS.Before(from) })
		j := sort.Search(len(rs), func(i int) bool { return !rs[i].TS.Before(to) })
		if sel := pick(rs[i:j]); len(sel) > 0 {
			out[m] = slices.Clone(sel)
		}
	}
	return out, nil
}

func (s *memStore) ReadingsWindow(_ context.Context, _ string, meters []string, from, to time.Time) (map[string][]influx.Sample, error) {
	return s.selectSamples(meters, from, to, func(x []influx.Sample) []influx.Sample { return x })
}

func (s *memStore) ReadingsBefore(_ context.Context, _ string, meters []string, before time.Time, n int, lookback time.Duration) (map[string][]influx.Sample, error) {
	return s.selectSamples(meters, before.Add(-lookback), before, func(x []influx.Sample) []influx.Sample { return x[max(0, len(x)-n):] })
}

func (s *memStore) ReadingsAfter(_ context.Context, _ string, meters []string, after time.Time, n int, lookahead time.Duration) (map[string][]influx.Sample, error) {
	return s.selectSamples(meters, after, after.Add(lookahead), func(x []influx.Sample) []influx.Sample { return x[:min(n, len(x))] })
}

func (s *memStore) WriteRollups(_ context.Context, points []influx.RollupPoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	for _, p := range points {
		k := hourKey{p.Meter, p.Start.UTC()}
		switch {
		case p.Monthly:
			s.monthly[k] = p
		case p.Daily:
			s.daily[k] = p
		default:
			s.hourly[k] = p
		}
	}
	return nil
}

func (s *memStore) DailyRollups(_ context.Context, _ string, from, to time.Time) ([]influx.RollupPoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	var out []influx.RollupPoint
	for k, p := range s.daily {
		if !k.start.Before(from) && k.start.Before(to) {
			out = append(out, p)
		}
	}
	sortPoints(out)
	return out, nil
}

func (s *memStore) HourlyRollups(_ context.Context, _ string, from, to time.Time) ([]influx.RollupPoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	var out []influx.RollupPoint
	for k, p := range s.hourly {
		if !k.start.Before(from) && k.start.Before(to) {
			out = append(out, p)
		}
	}
	sortPoints(out)
	return out, nil
}

func sortPoints(ps []influx.RollupPoint) {
	slices.SortFunc(ps, func(a, b influx.RollupPoint) int {
		if c := strings.Compare(a.Meter, b.Meter); c != 0 {
			return c
		}
		return a.Start.Compare(b.Start)
	})
}

// memDirty is an in-memory accounting.DirtyStore.
type memDirty struct {
	mu      sync.Mutex
	marks   map[accounting.DirtyHour]int64
	version int64
}

var _ accounting.DirtyStore = (*memDirty)(nil)

func newMemDirty() *memDirty { return &memDirty{marks: map[accounting.DirtyHour]int64{}} }

func (d *memDirty) MarkDirty(_ context.Context, hours []accounting.DirtyHour) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range hours {
		d.version++
		d.marks[accounting.DirtyHour{Park: h.Park, Hour: h.Hour.UTC()}] = d.version
	}
	return nil
}

func (d *memDirty) ClaimDirty(_ context.Context, limit int) ([]accounting.DirtyHour, []int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var hs []accounting.DirtyHour
	for h := range d.marks {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, b accounting.DirtyHour) int { return a.Hour.Compare(b.Hour) })
	hs = hs[:min(limit, len(hs))]
	vs := make([]int64, len(hs))
	for i, h := range hs {
		vs[i] = d.marks[h]
	}
	return hs, vs, nil
}

func (d *memDirty) ClearDirty(_ context.Context, hours []accounting.DirtyHour, versions []int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, h := range hours {
		if d.marks[h] == versions[i] {
			delete(d.marks, h)
		}
	}
	return nil
}

func (d *memDirty) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.marks)
}

// memRegistry is one park with its meters and their replacement records.
type memRegistry struct {
	park   registry.Park
	meters []registry.Meter
	repl   map[string][]accounting.Replacement
}

var (
	_ Registry          = (*memRegistry)(nil)
	_ ReplacementSource = (*memRegistry)(nil)
)

func (r *memRegistry) GetPark(_ context.Context, id string) (registry.Park, error) {
	if id != r.park.ID {
		return registry.Park{}, registry.ErrNotFound
	}
	return r.park, nil
}

func (r *memRegistry) ListMeters(_ context.Context, f registry.MeterFilter, page registry.Page) ([]registry.Meter, error) {
	if f.ParkID != r.park.ID {
		return nil, registry.ErrNotFound
	}
	ms := slices.Clone(r.meters)
	slices.SortFunc(ms, func(a, b registry.Meter) int { return strings.Compare(a.ID, b.ID) })
	var out []registry.Meter
	for _, m := range ms {
		if m.ID > page.After && len(out) < page.Size {
			out = append(out, m)
		}
	}
	return out, nil
}

func (r *memRegistry) ListReplacements(_ context.Context, _, meter string) ([]accounting.Replacement, error) {
	return r.repl[meter], nil
}
