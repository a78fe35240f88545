package alerting

import (
	"context"
	"time"
)

// AlertFilter narrows an alert listing; empty fields match everything.
type AlertFilter struct {
	ParkID string
	// States, e.g. firing and pending; empty: all.
	States     []string
	Severity   string
	RuleID     string
	Enterprise string // the alert's "enterprise" label
	// Since and Until bound the time the alert last changed state (the latest of
	// PendingSince, FiredAt and ResolvedAt).
	Since, Until time.Time
	Limit        int
}

// HistoryEntry is one state change of an alert, kept for ever (the alert history).
type HistoryEntry struct {
	AlertID string            `json:"alert_id"`
	RuleID  string            `json:"rule_id"`
	ParkID  string            `json:"park_id"`
	Labels  map[string]string `json:"labels"`
	// Kind is an event kind (firing, resolved, flapping), "pending", "acknowledged" or
	// "silenced".
	Kind   string    `json:"kind"`
	State  string    `json:"state"`
	Value  float64   `json:"value"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

// Delivery is one attempt to notify an endpoint.
type Delivery struct {
	ID         int64     `json:"id"`
	ParkID     string    `json:"park_id"`
	EndpointID string    `json:"endpoint_id"`
	AlertID    string    `json:"alert_id"`
	Event      string    `json:"event"`
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	OK         bool      `json:"ok"`
	// Status is the HTTP status or SMTP reply; Error what went wrong.
	Status   string        `json:"status,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Store keeps rules, alert state, history, silences, endpoints and deliveries (SQL). Writes by
// people (rules, silences, endpoints, acknowledgements) leave audit-log rows with actor.
type Store interface {
	CreateRule(ctx context.Context, r Rule, actor string) error
	GetRule(ctx context.Context, park, id string) (Rule, error)
	ListRules(ctx context.Context, park string) ([]Rule, error)
	// ListAllRules returns the enabled and disabled rules of every park (the evaluator's view).
	ListAllRules(ctx context.Context) ([]Rule, error)
	UpdateRule(ctx context.Context, r Rule, actor string) error
	// DeleteRule deletes a rule and its alerts (their history stays).
	DeleteRule(ctx context.Context, park, id, actor string) error

	// SaveAlerts writes alert states and their history entries in one transaction.
	SaveAlerts(ctx context.Context, alerts []Alert, history []HistoryEntry) error
	// LoadAlerts returns every stored alert that is not inactive (the evaluator's state).
	LoadAlerts(ctx context.Context) ([]Alert, error)
	GetAlert(ctx context.Context, id string) (Alert, error)
	ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	ListHistory(ctx context.Context, park, alertID string, since time.Time, limit int) ([]HistoryEntry, error)

	CreateSilence(ctx context.Context, s Silence, actor string) error
	ListSilences(ctx context.Context, park string) ([]Silence, error)
	// ExpireSilence ends a silence now.
	ExpireSilence(ctx context.Context, park, id string, now time.Time, actor string) error

	CreateEndpoint(ctx context.Context, e Endpoint, actor string) error
	ListEndpoints(ctx context.Context, park string) ([]Endpoint, error)
	DeleteEndpoint(ctx context.Context, park, id, actor string) error

	RecordDelivery(ctx context.Context, d Delivery) error
	ListDeliveries(ctx context.Context, park, alertID string, limit int) ([]Delivery, error)

	// TryLease takes or renews the named lease for holder until now+ttl; false when another
	// holder's lease has not expired. With several API instances exactly one evaluates.
	TryLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
}
