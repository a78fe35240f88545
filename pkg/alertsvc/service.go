package alertsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Service is the alerting API's logic; authorization is the caller's.
type Service struct {
	Store    alerting.Store
	Registry *registry.Service
	// Engine is this instance's evaluator, nil when it runs elsewhere.
	Engine *Engine
	Hub    *Hub
	Now    func() time.Time
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

// checkRule validates a rule and its references: the park, its enterprise or meter (in the
// park), and its endpoints.
func (s *Service) checkRule(ctx context.Context, r alerting.Rule) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if _, err := s.Registry.GetPark(ctx, r.ParkID); err != nil {
		return err
	}
	if r.EnterpriseID != "" {
		if _, err := s.Registry.GetEnterprise(ctx, r.ParkID, r.EnterpriseID); err != nil {
			return fmt.Errorf("enterprise_id: %w", err)
		}
	}
	if r.MeterID != "" {
		m, err := s.Registry.GetMeter(ctx, r.ParkID, r.MeterID)
		if err != nil {
			return invalid("meter_id", "meter %s is not a meter of park %s", r.MeterID, r.ParkID)
		}
		if r.Kind == alerting.KindThreshold && r.Metric == alerting.MetricPower && m.Carrier != registry.Electricity {
			return invalid("meter_id", "power is watched on electricity meters; %s meters %s", m.ID, m.Carrier)
		}
	}
	if len(r.Endpoints) > 0 {
		eps, err := s.Store.ListEndpoints(ctx, r.ParkID)
		if err != nil {
			return err
		}
		for _, id := range r.Endpoints {
			if !slices.ContainsFunc(eps, func(e alerting.Endpoint) bool { return e.ID == id }) {
				return invalid("endpoints", "no notification endpoint %q in park %s", id, r.ParkID)
			}
		}
	}
	return nil
}

// CreateRule stores a new rule.
func (s *Service) CreateRule(ctx context.Context, r alerting.Rule) (alerting.Rule, error) {
	if err := s.checkRule(ctx, r); err != nil {
		return alerting.Rule{}, err
	}
	return r, s.Store.CreateRule(ctx, r, actor(ctx))
}

// UpdateRule replaces a rule.
func (s *Service) UpdateRule(ctx context.Context, r alerting.Rule) (alerting.Rule, error) {
	if err := s.checkRule(ctx, r); err != nil {
		return alerting.Rule{}, err
	}
	return r, s.Store.UpdateRule(ctx, r, actor(ctx))
}

// CreateSilence stores a silence made by the caller.
func (s *Service) CreateSilence(ctx context.Context, sl alerting.Silence) (alerting.Silence, error) {
	if _, err := s.Registry.GetPark(ctx, sl.ParkID); err != nil {
		return alerting.Silence{}, err
	}
	sl.CreatedBy = actor(ctx)
	if sl.StartsAt.IsZero() {
		sl.StartsAt = s.now()
	}
	if sl.ID == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return alerting.Silence{}, err
		}
		sl.ID = "sil-" + hex.EncodeToString(b)
	}
	if err := sl.Validate(); err != nil {
		return alerting.Silence{}, err
	}
	return sl, s.Store.CreateSilence(ctx, sl, actor(ctx))
}

// CreateEndpoint stores a notification endpoint.
func (s *Service) CreateEndpoint(ctx context.Context, e alerting.Endpoint) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if _, err := s.Registry.GetPark(ctx, e.ParkID); err != nil {
		return err
	}
	return s.Store.CreateEndpoint(ctx, e, actor(ctx))
}

// Ack acknowledges an alert as the caller: through the evaluator when this instance runs
// it (never in the middle of a cycle), else straight in the store, which the evaluating
// instance reads every cycle.
func (s *Service) Ack(ctx context.Context, id, comment string) (alerting.Alert, error) {
	if s.Engine != nil {
		return s.Engine.Ack(ctx, id, actor(ctx), comment)
	}
	return ack(ctx, s.Store, s.Hub, id, actor(ctx), comment, s.now())
}

// IsSilenced reports whether an alert is muted now.
func (s *Service) IsSilenced(ctx context.Context, a alerting.Alert) (bool, error) {
	sils, err := s.Store.ListSilences(ctx, a.ParkID)
	if err != nil {
		return false, err
	}
	return alerting.Silenced(sils, a.Labels, s.now()), nil
}
