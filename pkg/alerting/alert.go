package alerting

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// States of an alert.
const (
	StateInactive = "inactive"
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Flap damping: an alert that changed between firing and resolved FlapTransitions times within
// FlapWindow is flapping: it stays firing (one alert, not many) until it has been clear for a
// whole FlapWindow.
const (
	FlapWindow      = time.Hour
	FlapTransitions = 4
)

// Observation is a rule's value for one label set at one evaluation.
type Observation struct {
	Labels map[string]string
	Value  float64
	// Summary says what was seen, for people ("meter m1 silent for 7 intervals").
	Summary string
}

// Alert is the state of one (rule, label set).
type Alert struct {
	// ID is derived from the fingerprint: stable across restarts.
	ID       string            `json:"id"`
	RuleID   string            `json:"rule_id"`
	ParkID   string            `json:"park_id"`
	Labels   map[string]string `json:"labels"`
	Severity string            `json:"severity"`
	State    string            `json:"state"`
	Value    float64           `json:"value"`
	Summary  string            `json:"summary"`
	// PendingSince is when the current breach began; FiredAt when the alert last fired;
	// ResolvedAt when it last resolved.
	PendingSince time.Time `json:"pending_since"`
	FiredAt      time.Time `json:"fired_at"`
	ResolvedAt   time.Time `json:"resolved_at"`
	// LastBreach is the last evaluation that breached the threshold; ClearSince when the
	// value last went to the safe side of the clear value.
	LastBreach time.Time `json:"last_breach"`
	ClearSince time.Time `json:"clear_since"`
	// Flips are the times of recent firing/resolved changes (within FlapWindow).
	Flips    []time.Time `json:"flips,omitempty"`
	Flapping bool        `json:"flapping"`
	// Acknowledgement, cleared when the alert resolves.
	AckedBy    string    `json:"acked_by,omitempty"`
	AckComment string    `json:"ack_comment,omitempty"`
	AckedAt    time.Time `json:"acked_at"`
	// LastNotified is when a firing notification was last sent (for the repeat interval).
	LastNotified time.Time `json:"last_notified"`
	EvaluatedAt  time.Time `json:"evaluated_at"`
}

// AlertID derives an alert's id from its fingerprint.
func AlertID(ruleID string, labels map[string]string) string {
	sum := sha256.Sum256([]byte(Fingerprint(ruleID, labels)))
	return "al_" + hex.EncodeToString(sum[:10])
}

// Event is a change operators are told about.
type Event struct {
	// Kind is "firing" (the alert fired, or repeats), "resolved", or "flapping" (it started
	// flapping and is held firing).
	Kind  string
	Alert Alert
}

// Event kinds.
const (
	EventFiring   = "firing"
	EventResolved = "resolved"
	EventFlapping = "flapping"
)

func breaches(op string, v, limit float64) bool {
	if op == ">" {
		return v > limit
	}
	return v < limit
}

// Step moves alert a of rule r to its state at now given the observation (nil: the label set
// was not observed this time, which counts as clear). It returns the new alert and the events
// to notify; a is not changed. A new alert starts from the zero Alert.
func Step(r Rule, a Alert, obs *Observation, now time.Time) (Alert, []Event) {
	a.Flips = append([]time.Time(nil), a.Flips...)
	if a.ID == "" {
		var labels map[string]string
		if obs != nil {
			labels = obs.Labels
		}
		a = Alert{ID: AlertID(r.ID, labels), RuleID: r.ID, ParkID: r.ParkID, Labels: labels, State: StateInactive}
	}
	a.Severity = r.Severity
	a.EvaluatedAt = now
	breach, clear := false, true
	if obs != nil {
		a.Value, a.Summary = obs.Value, obs.Summary
		breach = breaches(r.Op, obs.Value, r.Threshold)
		// In the band between the clear value and the threshold an alert holds its state.
		clear = !breach && (obs.Value == r.ClearValue() || !breaches(r.Op, obs.Value, r.ClearValue()))
	}
	if breach {
		a.LastBreach = now
	}
	if clear {
		if a.ClearSince.IsZero() {
			a.ClearSince = now
		}
	} else {
		a.ClearSince = time.Time{}
	}
	a.Flips = recent(a.Flips, now)

	var events []Event
	switch a.State {
	case StateInactive, StateResolved, "":
		if breach {
			a.State, a.PendingSince = StatePending, now
			if r.For == 0 {
				events = a.fire(now, events)
			}
		}
	case StatePending:
		switch {
		case !breach:
			a.State, a.PendingSince = StateInactive, time.Time{}
			if !a.ResolvedAt.IsZero() {
				a.State = StateResolved
			}
		case now.Sub(a.PendingSince) >= r.For:
			events = a.fire(now, events)
		}
	case StateFiring:
		if !clear || now.Sub(a.LastBreach) < r.KeepFiringFor {
			break
		}
		if a.Flapping {
			if now.Sub(a.ClearSince) >= FlapWindow {
				a.Flapping = false
				events = a.resolve(now, events)
			}
			break
		}
		if len(a.Flips) >= FlapTransitions-1 {
			// This resolution would be one flip too many: hold the alert firing instead.
			a.Flapping = true
			events = append(events, Event{Kind: EventFlapping, Alert: a})
			break
		}
		events = a.resolve(now, events)
	}
	// Repeat a firing, unacknowledged alert.
	if a.State == StateFiring && len(events) == 0 && r.RepeatInterval > 0 && a.AckedBy == "" &&
		!a.LastNotified.IsZero() && now.Sub(a.LastNotified) >= r.RepeatInterval {
		a.LastNotified = now
		events = append(events, Event{Kind: EventFiring, Alert: a})
	}
	for i := range events {
		events[i].Alert = a
	}
	return a, events
}

func (a *Alert) fire(now time.Time, events []Event) []Event {
	a.State, a.FiredAt, a.LastNotified = StateFiring, now, now
	if !a.ResolvedAt.IsZero() {
		a.Flips = append(a.Flips, now)
	}
	return append(events, Event{Kind: EventFiring})
}

func (a *Alert) resolve(now time.Time, events []Event) []Event {
	a.State, a.ResolvedAt, a.PendingSince = StateResolved, now, time.Time{}
	a.AckedBy, a.AckComment, a.AckedAt = "", "", time.Time{}
	a.Flips = append(a.Flips, now)
	return append(events, Event{Kind: EventResolved})
}

// recent keeps the flips within FlapWindow of now.
func recent(flips []time.Time, now time.Time) []time.Time {
	out := flips[:0]
	for _, f := range flips {
		if now.Sub(f) < FlapWindow {
			out = append(out, f)
		}
	}
	return out
}

// Ack acknowledges a firing or pending alert; it is cleared when the alert resolves.
func Ack(a Alert, user, comment string, now time.Time) (Alert, error) {
	if a.State != StateFiring && a.State != StatePending {
		return a, invalid("state", "alert %s is %s: only pending or firing alerts are acknowledged", a.ID, a.State)
	}
	if user == "" {
		return a, invalid("user", "is required")
	}
	a.AckedBy, a.AckComment, a.AckedAt = user, comment, now
	return a, nil
}
