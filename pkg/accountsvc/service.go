// Package accountsvc is the accounting service behind the API: it checks and stores what
// operators enter (value added, process output, green instruments, meter replacements, factor
// set versions) and computes a park's indicators by feeding the hourly and daily rollups and
// those inputs to the accounting engine.
package accountsvc

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// DefaultRule is the factor set indicators use unless the request names another: the national
// zero-carbon park rule.
const DefaultRule = "cn-zcp-2025"

// Totals reads the rollups.
type Totals interface {
	MeterTotals(ctx context.Context, park string, from, to time.Time, loc *time.Location) ([]influx.MeterTotal, error)
	Series(ctx context.Context, park, enterprise, metric string, from, to time.Time, step string, loc *time.Location) ([]influx.SeriesPoint, error)
}

// Service is the accounting service. Authorization is the caller's (the API layer's) job.
type Service struct {
	Registry *registry.Service
	Inputs   accounting.InputStore
	Dirty    accounting.DirtyStore
	Totals   Totals
	Factors  *factors.Registry
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu     sync.Mutex
	loaded int // published versions read from the store into Factors
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func actor(ctx context.Context) string { return auth.PrincipalFrom(ctx).Actor() }

func invalid(field, format string, args ...any) error {
	return &registry.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Location returns a park's time zone.
func (s *Service) Location(ctx context.Context, park string) (*time.Location, error) {
	p, err := s.Registry.GetPark(ctx, park)
	if err != nil {
		return nil, err
	}
	return time.LoadLocation(p.Timezone)
}

// ---- factor sets ----

// SyncFactorSets loads the versions published through the store (by this instance before a
// restart, or by another) that the factor registry does not have yet. The API calls it on
// each use; the server at start, so the rollups use them from the first cycle.
func (s *Service) SyncFactorSets(ctx context.Context) error {
	data, err := s.Inputs.ListFactorSets(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(data) == s.loaded {
		return nil
	}
	for _, d := range data {
		set, err := factors.ParseSet(d)
		if err != nil {
			return fmt.Errorf("stored factor set: %w", err)
		}
		if _, err := s.Factors.Publish(set); err != nil {
			return fmt.Errorf("stored factor set %s: %w", set.Ref(), err)
		}
	}
	s.loaded = len(data)
	return nil
}

// FactorSets lists every version of every set.
func (s *Service) FactorSets(ctx context.Context) ([]factors.Set, error) {
	if err := s.SyncFactorSets(ctx); err != nil {
		return nil, err
	}
	return s.Factors.List(), nil
}

// FactorSet returns one version; version 0 is the latest version of the set.
func (s *Service) FactorSet(ctx context.Context, id string, version int) (factors.Set, error) {
	if err := s.SyncFactorSets(ctx); err != nil {
		return factors.Set{}, err
	}
	if version == 0 {
		var latest *factors.Set
		for _, set := range s.Factors.List() {
			if set.ID == id {
				latest = &set
			}
		}
		if latest == nil {
			return factors.Set{}, fmt.Errorf("factor set %q: %w", id, registry.ErrNotFound)
		}
		return *latest, nil
	}
	return s.Factors.Get(id, version)
}

// PublishFactorSet issues a new version and stores it, so every instance and every restart
// sees it. A version that exists with other content is refused.
func (s *Service) PublishFactorSet(ctx context.Context, set factors.Set) (factors.Set, error) {
	if err := s.SyncFactorSets(ctx); err != nil {
		return factors.Set{}, err
	}
	_, err := s.Factors.Get(set.ID, set.Version)
	existed := err == nil
	// Publish into a scratch registry first: the shared one changes only after the store has
	// the version.
	scratch, err := factors.NewRegistry(s.Factors.List()...)
	if err != nil {
		return factors.Set{}, err
	}
	stored, err := scratch.Publish(set)
	if err != nil || existed {
		return stored, err // an issued version again: the same content is a no-op, other content refused
	}
	if err := s.Inputs.SaveFactorSet(ctx, stored.ID, stored.Version, factors.FormatSet(stored), actor(ctx)); err != nil {
		return factors.Set{}, err
	}
	if err := s.SyncFactorSets(ctx); err != nil {
		return factors.Set{}, err
	}
	return s.Factors.Get(stored.ID, stored.Version)
}

// ---- inputs ----

// ParseMonth parses "YYYY-MM".
func ParseMonth(field, s string) (time.Time, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return time.Time{}, invalid(field, "%q is not a month YYYY-MM", s)
	}
	return t, nil
}

// checkMonth refuses a month that has not started yet in the park's zone.
func (s *Service) checkMonth(ctx context.Context, park string, m time.Time) error {
	loc, err := s.Location(ctx, park)
	if err != nil {
		return err
	}
	start := time.Date(m.Year(), m.Month(), 1, 0, 0, 0, 0, loc)
	if start.After(s.now()) {
		return invalid("month", "%s has not started yet", m.Format("2006-01"))
	}
	if m.Year() < 2000 {
		return invalid("month", "%s is before 2000", m.Format("2006-01"))
	}
	return nil
}

func (s *Service) checkEnterprise(ctx context.Context, park, enterprise string) error {
	if enterprise == "" {
		return invalid("enterprise_id", "is required")
	}
	_, err := s.Registry.GetEnterprise(ctx, park, enterprise)
	return err
}

// ValidateValueAdded checks one value-added record of park.
func (s *Service) ValidateValueAdded(ctx context.Context, park string, v accounting.ValueAdded) error {
	switch {
	case !finite(v.Nominal10kCNY) || v.Nominal10kCNY < 0:
		return invalid("nominal_10k_cny", "%v is not an amount >= 0", v.Nominal10kCNY)
	case !finite(v.RealGrowthIndex) || v.RealGrowthIndex <= 0 || v.RealGrowthIndex > 10:
		return invalid("real_growth_index", "%v is not an index in (0, 10] (1.0 = no real change)", v.RealGrowthIndex)
	case v.BaseYear < 2000 || v.BaseYear > v.Month.Year():
		return invalid("base_year", "%d is not a year from 2000 to the month's year %d", v.BaseYear, v.Month.Year())
	}
	if err := s.checkMonth(ctx, park, v.Month); err != nil {
		return err
	}
	return s.checkEnterprise(ctx, park, v.Enterprise)
}

// PutValueAdded stores the value added of one enterprise-month.
func (s *Service) PutValueAdded(ctx context.Context, park string, v accounting.ValueAdded) error {
	if err := s.ValidateValueAdded(ctx, park, v); err != nil {
		return err
	}
	return s.Inputs.PutValueAdded(ctx, park, v, actor(ctx))
}

// ImportValueAdded stores the rows of a CSV document (see ParseValueAddedCSV). Every row is
// checked before any is stored; storing is an idempotent upsert per row, so a failure part-way
// is repaired by importing the same file again.
func (s *Service) ImportValueAdded(ctx context.Context, park string, csv []byte) (int, error) {
	rows, err := ParseValueAddedCSV(csv)
	if err != nil {
		return 0, err
	}
	for i, v := range rows {
		if err := s.ValidateValueAdded(ctx, park, v); err != nil {
			return 0, fmt.Errorf("row %d: %w", i+2, err)
		}
	}
	for i, v := range rows {
		if err := s.Inputs.PutValueAdded(ctx, park, v, actor(ctx)); err != nil {
			return i, fmt.Errorf("row %d: %w", i+2, err)
		}
	}
	return len(rows), nil
}

// PutProcessOutput stores one month's output of a process product.
func (s *Service) PutProcessOutput(ctx context.Context, park string, p accounting.ProcessOutput) error {
	if !finite(p.Tonnes) || p.Tonnes < 0 {
		return invalid("tonnes", "%v is not a quantity >= 0", p.Tonnes)
	}
	set, err := s.FactorSet(ctx, DefaultRule, 0)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(set.Products, func(c factors.Coefficient) bool { return c.Product == p.Product }) {
		known := make([]string, 0, len(set.Products))
		for _, c := range set.Products {
			known = append(known, c.Product)
		}
		return invalid("product", "%q is not a process product of %s (%s)", p.Product, set.Ref(), strings.Join(known, ", "))
	}
	if err := s.checkMonth(ctx, park, p.Month); err != nil {
		return err
	}
	if err := s.checkEnterprise(ctx, park, p.Enterprise); err != nil {
		return err
	}
	return s.Inputs.PutProcessOutput(ctx, park, p, actor(ctx))
}

// AddReplacement records a meter replacement and marks the hour dirty, so the rollups around
// it are computed again with the record.
func (s *Service) AddReplacement(ctx context.Context, park, meter string, r accounting.Replacement) error {
	m, err := s.Registry.GetMeter(ctx, park, meter)
	if err != nil {
		return err
	}
	switch {
	case m.Kind != registry.Counter:
		return invalid("meter_id", "meter %s is a %s; only counters have registers to replace", meter, m.Kind)
	case !finite(r.OldFinal) || r.OldFinal < 0:
		return invalid("old_final", "%v is not a register value >= 0", r.OldFinal)
	case !finite(r.NewInitial) || r.NewInitial < 0:
		return invalid("new_initial", "%v is not a register value >= 0", r.NewInitial)
	case r.At.IsZero() || r.At.After(s.now().Add(10*time.Minute)):
		return invalid("at", "must be a time not in the future")
	}
	if err := s.Inputs.AddReplacement(ctx, park, meter, r, actor(ctx)); err != nil {
		return err
	}
	return s.Dirty.MarkDirty(ctx, []accounting.DirtyHour{{Park: park, Hour: r.At.UTC().Truncate(time.Hour)}})
}
