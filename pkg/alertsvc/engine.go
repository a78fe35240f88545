// Package alertsvc runs alerting: the evaluator (rules → observations → alert lifecycle →
// notifications and the live feed, with state kept in SQL and a lease so that exactly one
// instance evaluates) and the service behind the alerting API.
package alertsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// LeaseName is the SQL lease the evaluator holds.
const LeaseName = "alerting-evaluator"

// Notifier hands one notification to the delivery machinery without blocking; false: it was
// dropped (the delivery queue is full).
type Notifier interface {
	Notify(ep alerting.Endpoint, ev alerting.Event, ruleName string) bool
}

// Options configure an Engine.
type Options struct {
	Store    alerting.Store
	Source   alerting.Source
	Notifier Notifier
	Hub      *Hub
	// Holder names this instance in the lease (unique per process).
	Holder string
	// Interval between evaluations (default 30 s); the lease lasts three of them.
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Engine evaluates every park's rules on a fixed interval.
type Engine struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex // one cycle or acknowledgement at a time
	leader bool       // only touched by Run's goroutine
}

// outbox holds what a cycle tells the world; it is sent only once the new state is saved, so a
// failed save never leads to a notification being sent twice.
type outbox struct {
	feed  []FeedEvent
	sends []send
}

type send struct {
	ep       alerting.Endpoint
	ev       alerting.Event
	ruleName string
}

// CycleStats describes one evaluation.
type CycleStats struct {
	Parks, Rules, Observations int
	Changed, Notifications     int
	Duration                   time.Duration
}

// NewEngine checks the options.
func NewEngine(opts Options) (*Engine, error) {
	if opts.Store == nil || opts.Source == nil || opts.Notifier == nil {
		return nil, errors.New("alerting engine: store, source and notifier are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = 30 * time.Second
	}
	if opts.Hub == nil {
		opts.Hub = NewHub()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{opts: opts, log: opts.Logger}, nil
}

// Run evaluates until ctx ends, while this instance holds the lease.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		if err := e.tick(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("alert evaluation failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (e *Engine) tick(ctx context.Context) error {
	now := e.opts.Now()
	ok, err := e.opts.Store.TryLease(ctx, LeaseName, e.opts.Holder, now, 3*e.opts.Interval)
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	if ok != e.leader {
		e.log.Info("alerting lease changed hands", "evaluating", ok, "holder", e.opts.Holder)
		e.leader = ok
	}
	if !ok {
		return nil
	}
	st, err := e.Cycle(ctx, now)
	if err == nil && st.Changed+st.Notifications > 0 {
		e.log.Info("alerts evaluated", "parks", st.Parks, "rules", st.Rules, "observations", st.Observations,
			"changed", st.Changed, "notifications", st.Notifications, "duration", st.Duration)
	}
	return err
}

// Cycle evaluates every enabled rule once at now. The caller must hold the lease (Run does).
func (e *Engine) Cycle(ctx context.Context, now time.Time) (CycleStats, error) {
	start := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var st CycleStats
	// The stored state is the truth, read every cycle: an acknowledgement made through another
	// instance, or by this one between cycles, is never overwritten.
	stored, err := e.opts.Store.LoadAlerts(ctx)
	if err != nil {
		return st, fmt.Errorf("load alert state: %w", err)
	}
	loaded := make(map[string]alerting.Alert, len(stored))
	for _, a := range stored {
		loaded[a.ID] = a
	}
	alerts := maps.Clone(loaded) // stepped during the cycle
	rules, err := e.opts.Store.ListAllRules(ctx)
	if err != nil {
		return st, fmt.Errorf("list rules: %w", err)
	}
	// Only the alerts of the enabled rules are stepped; a deleted rule's went with it.
	byPark := map[string][]alerting.Rule{}
	for _, r := range rules {
		if !r.Disabled {
			byPark[r.ParkID] = append(byPark[r.ParkID], r)
		}
	}
	var changed []alerting.Alert
	var history []alerting.HistoryEntry
	var out outbox
	for park, rs := range byPark {
		st.Parks++
		st.Rules += len(rs)
		c, h, obs, err := e.evaluatePark(ctx, park, rs, now, alerts, &out)
		if err != nil {
			e.log.Warn("park not evaluated", "park", park, "err", err)
			continue
		}
		changed, history = append(changed, c...), append(history, h...)
		st.Observations += obs
	}
	st.Changed = len(changed)
	if len(changed) > 0 || len(history) > 0 {
		acked, err := e.keepAcks(ctx, changed, loaded)
		if err != nil {
			return st, err
		}
		// A repeat (of an alert already firing) decided before an acknowledgement arrived is
		// not sent.
		out.sends = slices.DeleteFunc(out.sends, func(m send) bool {
			return acked[m.ev.Alert.ID] && m.ev.Kind == alerting.EventFiring && loaded[m.ev.Alert.ID].State == alerting.StateFiring
		})
		if err := e.opts.Store.SaveAlerts(ctx, changed, history); err != nil {
			return st, fmt.Errorf("save alert state: %w", err)
		}
	}
	for _, f := range out.feed {
		e.opts.Hub.Publish(f)
	}
	for _, m := range out.sends {
		if e.opts.Notifier.Notify(m.ep, m.ev, m.ruleName) {
			st.Notifications++
		} else {
			e.log.Warn("notification dropped: delivery queue full", "alert", m.ev.Alert.ID, "endpoint", m.ep.ID)
		}
	}
	st.Duration = time.Since(start)
	return st, nil
}

// evaluatePark runs the rules of one park: observations, lifecycle steps, notifications.
func (e *Engine) evaluatePark(ctx context.Context, park string, rules []alerting.Rule, now time.Time, alerts map[string]alerting.Alert, out *outbox) (changed []alerting.Alert, history []alerting.HistoryEntry, observed int, err error) {
	silences, err := e.opts.Store.ListSilences(ctx, park)
	if err != nil {
		return nil, nil, 0, err
	}
	endpoints, err := e.opts.Store.ListEndpoints(ctx, park)
	if err != nil {
		return nil, nil, 0, err
	}
	results := e.opts.Source.Observe(ctx, park, rules, now)
	byRule := map[string][]string{}
	for id, a := range alerts {
		if a.ParkID == park {
			byRule[a.RuleID] = append(byRule[a.RuleID], id)
		}
	}
	for _, r := range rules {
		res, ok := results[r.ID]
		if !ok || res.Err != nil {
			e.log.Warn("rule not evaluated: its alerts keep their state", "park", park, "rule", r.ID, "err", res.Err)
			continue
		}
		seen := map[string]bool{}
		step := func(prev alerting.Alert, o *alerting.Observation) {
			next, events := alerting.Step(r, prev, o, now)
			seen[next.ID] = true
			alerts[next.ID] = next
			// A label set seen for the first time that stays inactive has nothing to store.
			if (prev.ID != "" || next.State != alerting.StateInactive) && significant(prev, r) != significant(next, r) {
				changed = append(changed, next)
			}
			if prev.State != next.State && next.State == alerting.StatePending {
				history = append(history, entry(next, alerting.StatePending, now, ""))
				out.feed = append(out.feed, FeedEvent{Kind: alerting.StatePending, Alert: next, RuleName: r.Name, At: now})
			}
			labels := next.Labels
			muted := alerting.Silenced(silences, labels, now)
			for _, ev := range events {
				detail := ""
				if muted {
					detail = "silenced: not notified"
				}
				history = append(history, entry(next, ev.Kind, now, detail))
				out.feed = append(out.feed, FeedEvent{Kind: ev.Kind, Alert: next, RuleName: r.Name, Silenced: muted, At: now})
				if muted {
					continue
				}
				for _, ep := range route(r, endpoints) {
					out.sends = append(out.sends, send{ep, ev, r.Name})
				}
			}
		}
		for _, o := range res.Observations {
			o.Labels = alerting.AlertLabels(r, o.Labels)
			observed++
			step(alerts[alerting.AlertID(r.ID, o.Labels)], &o)
		}
		// A label set not observed this time counts as clear.
		for _, id := range byRule[r.ID] {
			if a := alerts[id]; !seen[id] && a.State != alerting.StateInactive && a.State != alerting.StateResolved {
				step(a, nil)
			}
		}
	}
	return changed, history, observed, nil
}

// keepAcks carries over acknowledgements stored since the cycle read the state (made through
// another instance), so saving the cycle's alerts does not undo them.
func (e *Engine) keepAcks(ctx context.Context, changed []alerting.Alert, loaded map[string]alerting.Alert) (map[string]bool, error) {
	acked := map[string]bool{}
	for i, a := range changed {
		if a.AckedBy != "" || (a.State != alerting.StateFiring && a.State != alerting.StatePending) {
			continue
		}
		cur, err := e.opts.Store.GetAlert(ctx, a.ID)
		if errors.Is(err, registry.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read alert %s: %w", a.ID, err)
		}
		if cur.AckedBy != "" && cur.AckedAt.After(loaded[a.ID].AckedAt) {
			changed[i].AckedBy, changed[i].AckComment, changed[i].AckedAt = cur.AckedBy, cur.AckComment, cur.AckedAt
			acked[a.ID] = true
		}
	}
	return acked, nil
}

// route picks the endpoints told about a rule's alerts: those it names, else every endpoint
// of the park; each once.
func route(r alerting.Rule, endpoints []alerting.Endpoint) []alerting.Endpoint {
	if len(r.Endpoints) == 0 {
		return endpoints
	}
	var out []alerting.Endpoint
	for _, ep := range endpoints {
		if slices.Contains(r.Endpoints, ep.ID) {
			out = append(out, ep)
		}
	}
	return out
}

func entry(a alerting.Alert, kind string, at time.Time, detail string) alerting.HistoryEntry {
	return alerting.HistoryEntry{AlertID: a.ID, RuleID: a.RuleID, ParkID: a.ParkID, Labels: a.Labels, Kind: kind,
		State: a.State, Value: a.Value, At: at, Detail: detail}
}

// significant is the part of an alert's state worth storing: everything but the value of the
// moment, and the last breach only when keep-firing needs it after a restart.
func significant(a alerting.Alert, r alerting.Rule) string {
	a.Value, a.Summary, a.EvaluatedAt = 0, "", time.Time{}
	if r.KeepFiringFor == 0 {
		a.LastBreach = time.Time{}
	}
	b, _ := json.Marshal(a)
	return string(b)
}

// Ack acknowledges an alert between evaluations, so the next cycle reads it from the store.
func (e *Engine) Ack(ctx context.Context, id, user, comment string) (alerting.Alert, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return ack(ctx, e.opts.Store, e.opts.Hub, id, user, comment, e.opts.Now())
}

// ack stores an acknowledgement and its history entry, and tells the live feed.
func ack(ctx context.Context, store alerting.Store, hub *Hub, id, user, comment string, now time.Time) (alerting.Alert, error) {
	a, err := store.GetAlert(ctx, id)
	if err != nil {
		return alerting.Alert{}, err
	}
	a, err = alerting.Ack(a, user, comment, now)
	if err != nil {
		return alerting.Alert{}, err
	}
	if err := store.SaveAlerts(ctx, []alerting.Alert{a}, []alerting.HistoryEntry{entry(a, "acknowledged", now, user+": "+comment)}); err != nil {
		return alerting.Alert{}, err
	}
	if hub != nil {
		hub.Publish(FeedEvent{Kind: "acknowledged", Alert: a, At: now})
	}
	return a, nil
}
