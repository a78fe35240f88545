package registry

import (
	"context"
	"fmt"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
)

// Page selects a slice of a list ordered by id: the first Size items after id After.
type Page struct {
	After string
	Size  int
}

// MeterFilter narrows a meter listing; empty fields match everything.
type MeterFilter struct {
	ParkID       string
	EnterpriseID string
	GatewayID    string
}

// Store keeps the registry. Each write runs in one transaction together with its audit-log row
// (actor, action, before and after), and checks references (a meter's enterprise and gateway
// are in its park) inside that transaction. Update methods read the row, call mutate on it,
// validate and write it back in the same transaction.
type Store interface {
	CreatePark(ctx context.Context, p Park, actor string) error
	GetPark(ctx context.Context, id string) (Park, error)
	ListParks(ctx context.Context, page Page) ([]Park, error)
	UpdatePark(ctx context.Context, id string, mutate func(*Park) error, actor string) (Park, error)
	// DeletePark fails with ErrConflict while the park has enterprises, meters or gateways,
	// unless cascade deletes them in the same transaction.
	DeletePark(ctx context.Context, id string, cascade bool, actor string) error

	CreateEnterprise(ctx context.Context, e Enterprise, actor string) error
	GetEnterprise(ctx context.Context, parkID, id string) (Enterprise, error)
	ListEnterprises(ctx context.Context, parkID string, page Page) ([]Enterprise, error)
	UpdateEnterprise(ctx context.Context, parkID, id string, mutate func(*Enterprise) error, actor string) (Enterprise, error)

	CreateMeter(ctx context.Context, m Meter, actor string) error
	GetMeter(ctx context.Context, parkID, id string) (Meter, error)
	ListMeters(ctx context.Context, f MeterFilter, page Page) ([]Meter, error)
	UpdateMeter(ctx context.Context, parkID, id string, mutate func(*Meter) error, actor string) (Meter, error)

	CreateGateway(ctx context.Context, g Gateway, actor string) error
	// GetGateway finds a gateway by its id, which is unique across parks (it is the MQTT user).
	GetGateway(ctx context.Context, id string) (Gateway, error)
	ListGateways(ctx context.Context, parkID string, page Page) ([]Gateway, error)
}

// Service applies the registry's rules (defaults, validation, credentials) over a Store.
// Authorization is the caller's: the API layer checks the principal before calling.
type Service struct {
	Store Store
	// DefaultTimezone is given to parks created without one.
	DefaultTimezone string
}

// MaxPageSize bounds list pages.
const MaxPageSize = 1000

func normPage(p Page) Page {
	if p.Size <= 0 || p.Size > MaxPageSize {
		p.Size = MaxPageSize
	}
	return p
}

func actor(ctx context.Context) string { return auth.PrincipalFrom(ctx).Actor() }

// CreatePark validates and stores a new park.
func (s *Service) CreatePark(ctx context.Context, p Park) (Park, error) {
	if p.Timezone == "" {
		p.Timezone = s.DefaultTimezone
		if p.Timezone == "" {
			p.Timezone = DefaultTimezone
		}
	}
	if err := p.Validate(); err != nil {
		return Park{}, err
	}
	if err := s.Store.CreatePark(ctx, p, actor(ctx)); err != nil {
		return Park{}, fmt.Errorf("create park %s: %w", p.ID, err)
	}
	return p, nil
}

// GetPark returns one park.
func (s *Service) GetPark(ctx context.Context, id string) (Park, error) {
	p, err := s.Store.GetPark(ctx, id)
	if err != nil {
		return Park{}, fmt.Errorf("park %s: %w", id, err)
	}
	return p, nil
}

// ListParks returns a page of parks ordered by id.
func (s *Service) ListParks(ctx context.Context, page Page) ([]Park, error) {
	return s.Store.ListParks(ctx, normPage(page))
}

// UpdatePark applies mutate to the stored park and stores the result if it is still valid.
func (s *Service) UpdatePark(ctx context.Context, id string, mutate func(*Park) error) (Park, error) {
	p, err := s.Store.UpdatePark(ctx, id, func(p *Park) error {
		if err := mutate(p); err != nil {
			return err
		}
		if p.ID != id {
			return invalid("id", "cannot be changed")
		}
		return p.Validate()
	}, actor(ctx))
	if err != nil {
		return Park{}, fmt.Errorf("update park %s: %w", id, err)
	}
	return p, nil
}

// DeletePark removes a park; see Store.DeletePark for cascade.
func (s *Service) DeletePark(ctx context.Context, id string, cascade bool) error {
	if err := s.Store.DeletePark(ctx, id, cascade, actor(ctx)); err != nil {
		return fmt.Errorf("delete park %s: %w", id, err)
	}
	return nil
}

// CreateEnterprise validates and stores a new enterprise of an existing park.
func (s *Service) CreateEnterprise(ctx context.Context, e Enterprise) (Enterprise, error) {
	if err := e.Validate(); err != nil {
		return Enterprise{}, err
	}
	if err := s.Store.CreateEnterprise(ctx, e, actor(ctx)); err != nil {
		return Enterprise{}, fmt.Errorf("create enterprise %s: %w", e.ID, err)
	}
	return e, nil
}

// GetEnterprise returns one enterprise of a park.
func (s *Service) GetEnterprise(ctx context.Context, parkID, id string) (Enterprise, error) {
	e, err := s.Store.GetEnterprise(ctx, parkID, id)
	if err != nil {
		return Enterprise{}, fmt.Errorf("enterprise %s in park %s: %w", id, parkID, err)
	}
	return e, nil
}

// ListEnterprises returns a page of a park's enterprises.
func (s *Service) ListEnterprises(ctx context.Context, parkID string, page Page) ([]Enterprise, error) {
	if _, err := s.GetPark(ctx, parkID); err != nil {
		return nil, err
	}
	return s.Store.ListEnterprises(ctx, parkID, normPage(page))
}

// UpdateEnterprise applies mutate to a stored enterprise.
func (s *Service) UpdateEnterprise(ctx context.Context, parkID, id string, mutate func(*Enterprise) error) (Enterprise, error) {
	e, err := s.Store.UpdateEnterprise(ctx, parkID, id, func(e *Enterprise) error {
		if err := mutate(e); err != nil {
			return err
		}
		if e.ID != id {
			return invalid("id", "cannot be changed")
		}
		if e.ParkID != parkID {
			return invalid("park_id", "cannot be changed")
		}
		return e.Validate()
	}, actor(ctx))
	if err != nil {
		return Enterprise{}, fmt.Errorf("update enterprise %s: %w", id, err)
	}
	return e, nil
}

// CreateMeter fills defaults, validates and stores a new meter. The store checks that its
// enterprise and gateway belong to the same park.
func (s *Service) CreateMeter(ctx context.Context, m Meter) (Meter, error) {
	m.MeterDefaults()
	if err := m.Validate(); err != nil {
		return Meter{}, err
	}
	if err := s.Store.CreateMeter(ctx, m, actor(ctx)); err != nil {
		return Meter{}, fmt.Errorf("create meter %s: %w", m.ID, err)
	}
	return m, nil
}

// GetMeter returns one meter of a park.
func (s *Service) GetMeter(ctx context.Context, parkID, id string) (Meter, error) {
	m, err := s.Store.GetMeter(ctx, parkID, id)
	if err != nil {
		return Meter{}, fmt.Errorf("meter %s in park %s: %w", id, parkID, err)
	}
	return m, nil
}

// ListMeters returns a page of meters matching f.
func (s *Service) ListMeters(ctx context.Context, f MeterFilter, page Page) ([]Meter, error) {
	if _, err := s.GetPark(ctx, f.ParkID); err != nil {
		return nil, err
	}
	return s.Store.ListMeters(ctx, f, normPage(page))
}

// UpdateMeter applies mutate to a stored meter.
func (s *Service) UpdateMeter(ctx context.Context, parkID, id string, mutate func(*Meter) error) (Meter, error) {
	m, err := s.Store.UpdateMeter(ctx, parkID, id, func(m *Meter) error {
		if err := mutate(m); err != nil {
			return err
		}
		if m.ID != id {
			return invalid("id", "cannot be changed")
		}
		if m.ParkID != parkID {
			return invalid("park_id", "cannot be changed")
		}
		m.MeterDefaults()
		return m.Validate()
	}, actor(ctx))
	if err != nil {
		return Meter{}, fmt.Errorf("update meter %s: %w", id, err)
	}
	return m, nil
}

// CreateGateway stores a new gateway with a fresh random MQTT password and returns that
// password; only its hash is kept.
func (s *Service) CreateGateway(ctx context.Context, g Gateway) (Gateway, string, error) {
	if err := g.Validate(); err != nil {
		return Gateway{}, "", err
	}
	password, err := auth.NewSecret("")
	if err != nil {
		return Gateway{}, "", err
	}
	if g.PasswordHash, err = auth.HashPassword(password); err != nil {
		return Gateway{}, "", err
	}
	if err := s.Store.CreateGateway(ctx, g, actor(ctx)); err != nil {
		return Gateway{}, "", fmt.Errorf("create gateway %s: %w", g.ID, err)
	}
	return g, password, nil
}

// GetGateway returns a gateway by its id.
func (s *Service) GetGateway(ctx context.Context, id string) (Gateway, error) {
	g, err := s.Store.GetGateway(ctx, id)
	if err != nil {
		return Gateway{}, fmt.Errorf("gateway %s: %w", id, err)
	}
	return g, nil
}

// ListGateways returns a page of a park's gateways.
func (s *Service) ListGateways(ctx context.Context, parkID string, page Page) ([]Gateway, error) {
	if _, err := s.GetPark(ctx, parkID); err != nil {
		return nil, err
	}
	return s.Store.ListGateways(ctx, parkID, normPage(page))
}

// All reads every page of a keyset-paginated list.
func All[T any](list func(Page) ([]T, error), id func(T) string) ([]T, error) {
	var out []T
	page := Page{Size: MaxPageSize}
	for {
		items, err := list(page)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if len(items) < page.Size {
			return out, nil
		}
		page.After = id(items[len(items)-1])
	}
}

// AllMeters returns every meter matching f.
func (s *Service) AllMeters(ctx context.Context, f MeterFilter) ([]Meter, error) {
	return All(func(p Page) ([]Meter, error) { return s.ListMeters(ctx, f, p) }, func(m Meter) string { return m.ID })
}
