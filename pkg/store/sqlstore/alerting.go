package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

var _ alerting.Store = (*Store)(nil)

// alertingTables hold a park's alerting rows, children before parents: the order in which a
// park's contents are deleted.
var alertingTables = []string{"deliveries", "alert_history", "alerts", "silences", "notification_endpoints", "alert_rules"}

// Listing bounds of alerts, history and deliveries.
const (
	defaultAlertLimit = 500
	maxAlertLimit     = 5000
)

func alertLimit(n int) int64 {
	switch {
	case n <= 0:
		return defaultAlertLimit
	case n > maxAlertLimit:
		return maxAlertLimit
	}
	return int64(n)
}

// Resource paths of the audit log.
func alertRuleResource(park, id string) string { return parkResource(park) + "/alert-rules/" + id }
func silenceResource(park, id string) string   { return parkResource(park) + "/silences/" + id }
func endpointResource(park, id string) string {
	return parkResource(park) + "/notification-endpoints/" + id
}

// jsonRow scans the JSON body column of a row into a T.
func jsonRow[T any](r rowScanner) (T, error) {
	var (
		v    T
		body string
	)
	if err := r.Scan(&body); err != nil {
		return v, err
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return v, fmt.Errorf("decode stored JSON: %w", err)
	}
	return v, nil
}

// ---- rules

// checkMeter checks inside tx that meter is in park.
func checkMeter(ctx context.Context, tx *sql.Tx, park, meter string) error {
	var got string
	err := tx.QueryRowContext(ctx, `SELECT id FROM meters WHERE park_id = $1 AND id = $2`, park, meter).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("meter %s in park %s: %w", meter, park, registry.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("look up meter %s in park %s: %w", meter, park, err)
	}
	return nil
}

// checkRuleScope checks inside tx that the enterprise or meter a rule watches is in its park.
func checkRuleScope(ctx context.Context, tx *sql.Tx, r alerting.Rule) error {
	if r.EnterpriseID != "" {
		if err := checkEnterprise(ctx, tx, r.ParkID, r.EnterpriseID); err != nil {
			return fmt.Errorf("alert rule %s: %w", r.ID, err)
		}
	}
	if r.MeterID != "" {
		if err := checkMeter(ctx, tx, r.ParkID, r.MeterID); err != nil {
			return fmt.Errorf("alert rule %s: %w", r.ID, err)
		}
	}
	return nil
}

// getRuleTx reads a rule inside tx, locking its row on PostgreSQL; registry.ErrNotFound when
// there is none.
func (s *Store) getRuleTx(ctx context.Context, tx *sql.Tx, park, id string) (alerting.Rule, string, error) {
	var body string
	err := tx.QueryRowContext(ctx, s.q(`SELECT body FROM alert_rules WHERE park_id = $1 AND id = $2{for_update}`), park, id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return alerting.Rule{}, "", fmt.Errorf("alert rule %s in park %s: %w", id, park, registry.ErrNotFound)
	}
	if err != nil {
		return alerting.Rule{}, "", fmt.Errorf("read alert rule %s in park %s: %w", id, park, err)
	}
	var r alerting.Rule
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return alerting.Rule{}, "", fmt.Errorf("decode alert rule %s in park %s: %w", id, park, err)
	}
	return r, body, nil
}

// CreateRule validates and stores a new rule. Its park, and the enterprise or meter it
// watches, must exist (registry.ErrNotFound naming it); an id taken in the park is
// registry.ErrAlreadyExists. The rule is kept whole as JSON.
func (s *Store) CreateRule(ctx context.Context, r alerting.Rule, actor string) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("alert rule %s: %w", r.ID, err)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode alert rule %s: %w", r.ID, err)
	}
	what := fmt.Sprintf("alert rule %s in park %s", r.ID, r.ParkID)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, r.ParkID, "{for_share}"); err != nil {
			return err
		}
		if err := checkRuleScope(ctx, tx, r); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO alert_rules (park_id, id, kind, enterprise_id, meter_id, disabled, body)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			r.ParkID, r.ID, r.Kind, nullIfEmpty(r.EnterpriseID), nullIfEmpty(r.MeterID), r.Disabled, string(body))
		if err != nil {
			return insertErr(what, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "alert_rule.create", resource: alertRuleResource(r.ParkID, r.ID), parkID: r.ParkID, after: r,
		})
	})
}

// GetRule returns a rule of a park; registry.ErrNotFound when there is none.
func (s *Store) GetRule(ctx context.Context, park, id string) (alerting.Rule, error) {
	r, err := jsonRow[alerting.Rule](s.db.QueryRowContext(ctx,
		`SELECT body FROM alert_rules WHERE park_id = $1 AND id = $2`, park, id))
	if errors.Is(err, sql.ErrNoRows) {
		return alerting.Rule{}, fmt.Errorf("alert rule %s in park %s: %w", id, park, registry.ErrNotFound)
	}
	if err != nil {
		return alerting.Rule{}, fmt.Errorf("get alert rule %s in park %s: %w", id, park, err)
	}
	return r, nil
}

// ListRules returns a park's rules, enabled and disabled, ordered by id.
func (s *Store) ListRules(ctx context.Context, park string) ([]alerting.Rule, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT body FROM alert_rules WHERE park_id = $1 ORDER BY id{collate}`), park)
	if err != nil {
		return nil, fmt.Errorf("list alert rules of park %s: %w", park, err)
	}
	return collect(rows, jsonRow[alerting.Rule], "list alert rules of park "+park)
}

// ListAllRules returns the rules of every park, enabled and disabled, ordered by park then id.
func (s *Store) ListAllRules(ctx context.Context) ([]alerting.Rule, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT body FROM alert_rules ORDER BY park_id{collate}, id{collate}`))
	if err != nil {
		return nil, fmt.Errorf("list alert rules: %w", err)
	}
	return collect(rows, jsonRow[alerting.Rule], "list alert rules")
}

// UpdateRule validates r and replaces the stored rule (r.ParkID, r.ID) with it; see
// CreateRule. A missing rule is registry.ErrNotFound; a rule equal to the stored one writes
// nothing. The rule's alerts stay: the evaluator applies the new rule to them.
func (s *Store) UpdateRule(ctx context.Context, r alerting.Rule, actor string) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("alert rule %s: %w", r.ID, err)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode alert rule %s: %w", r.ID, err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, r.ParkID, "{for_share}"); err != nil {
			return err
		}
		before, stored, err := s.getRuleTx(ctx, tx, r.ParkID, r.ID)
		if err != nil {
			return err
		}
		if stored == string(body) {
			return nil
		}
		if err := checkRuleScope(ctx, tx, r); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE alert_rules SET kind = $3, enterprise_id = $4, meter_id = $5, disabled = $6, body = $7
			WHERE park_id = $1 AND id = $2`,
			r.ParkID, r.ID, r.Kind, nullIfEmpty(r.EnterpriseID), nullIfEmpty(r.MeterID), r.Disabled, string(body))
		if err != nil {
			if isForeignKeyViolation(err) {
				return fmt.Errorf("alert rule %s: a referenced row changed concurrently, retry: %w", r.ID, registry.ErrConflict)
			}
			return fmt.Errorf("write alert rule %s in park %s: %w", r.ID, r.ParkID, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "alert_rule.update", resource: alertRuleResource(r.ParkID, r.ID), parkID: r.ParkID, before: before, after: r,
		})
	})
}

// DeleteRule deletes a rule and its alerts; their history stays. A missing rule is
// registry.ErrNotFound.
func (s *Store) DeleteRule(ctx context.Context, park, id, actor string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, park, "{for_share}"); err != nil {
			return err
		}
		before, _, err := s.getRuleTx(ctx, tx, park, id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM alerts WHERE park_id = $1 AND rule_id = $2`, park, id); err != nil {
			return fmt.Errorf("delete alerts of alert rule %s in park %s: %w", id, park, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM alert_rules WHERE park_id = $1 AND id = $2`, park, id); err != nil {
			return fmt.Errorf("delete alert rule %s in park %s: %w", id, park, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "alert_rule.delete", resource: alertRuleResource(park, id), parkID: park, before: before,
		})
	})
}

// ---- alerts and history

// alertChangedAt is the latest of an alert's PendingSince, FiredAt and ResolvedAt in Unix ms;
// 0 when none is set.
func alertChangedAt(a alerting.Alert) int64 {
	var latest time.Time
	for _, t := range []time.Time{a.PendingSince, a.FiredAt, a.ResolvedAt} {
		if t.After(latest) {
			latest = t
		}
	}
	if latest.IsZero() {
		return 0
	}
	return latest.UnixMilli()
}

// ruleKey is a rule as alerts refer to it.
type ruleKey struct{ park, id string }

func compareRuleKeys(a, b ruleKey) int {
	return cmp.Or(strings.Compare(a.park, b.park), strings.Compare(a.id, b.id))
}

// SaveAlerts writes alert states and appends history entries in one transaction, with one
// prepared statement per kind of row. Alerts are upserted by id; inactive ones are deleted
// instead (LoadAlerts returns only the others). Alerts of a rule, and entries of a park, that
// no longer exist (deleted since the evaluator read them) are skipped and logged; so is an
// alert whose id is stored for another rule. A non-finite value or an alert or entry without
// its ids is refused before anything is written. The alerts' JSON keeps every field as
// given, times to the nanosecond; history times are stored to the millisecond.
func (s *Store) SaveAlerts(ctx context.Context, alerts []alerting.Alert, history []alerting.HistoryEntry) error {
	if len(alerts) == 0 && len(history) == 0 {
		return nil
	}
	rows := make([]alertRow, len(alerts))
	parks := map[string]bool{}
	rules := map[ruleKey]bool{}
	for i, a := range alerts {
		if a.ID == "" || a.ParkID == "" || a.RuleID == "" {
			return fmt.Errorf("save alerts: alert %q of rule %q in park %q: %w", a.ID, a.RuleID, a.ParkID,
				&registry.FieldError{Field: "id", Reason: "an alert needs its id, rule_id and park_id"})
		}
		if err := checkFinite("value", a.Value); err != nil {
			return fmt.Errorf("save alerts: alert %s: %w", a.ID, err)
		}
		body, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("save alerts: encode alert %s: %w", a.ID, err)
		}
		rows[i] = alertRow{a: a, body: string(body)}
		parks[a.ParkID] = true
		rules[ruleKey{a.ParkID, a.RuleID}] = true
	}
	labels := make([]string, len(history))
	for i, h := range history {
		if h.ParkID == "" || h.AlertID == "" {
			return fmt.Errorf("save alerts: history entry %d of alert %q in park %q: %w", i, h.AlertID, h.ParkID,
				&registry.FieldError{Field: "alert_id", Reason: "a history entry needs its alert_id and park_id"})
		}
		if err := checkFinite("value", h.Value); err != nil {
			return fmt.Errorf("save alerts: history entry of alert %s: %w", h.AlertID, err)
		}
		b, err := json.Marshal(h.Labels)
		if err != nil {
			return fmt.Errorf("save alerts: encode labels of alert %s: %w", h.AlertID, err)
		}
		if h.Labels == nil {
			b = []byte("{}")
		}
		labels[i] = string(b)
		parks[h.ParkID] = true
	}
	// Rows are locked in one order by every writer: parks, then rules (before the rows under
	// them, as the registry does), then alerts by id; a stable sort keeps the last of several
	// states of one alert last.
	slices.SortStableFunc(rows, func(a, b alertRow) int { return strings.Compare(a.a.ID, b.a.ID) })
	parkIDs := slices.Sorted(maps.Keys(parks))
	ruleKeys := slices.SortedFunc(maps.Keys(rules), compareRuleKeys)

	var skipped, stray int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		skipped, stray = 0, 0
		for _, p := range parkIDs {
			err := s.lockPark(ctx, tx, p, "{for_share}")
			if errors.Is(err, registry.ErrNotFound) {
				parks[p] = false
				continue
			}
			if err != nil {
				return fmt.Errorf("save alerts: %w", err)
			}
		}
		if len(ruleKeys) > 0 {
			stmt, err := tx.PrepareContext(ctx, s.q(`SELECT id FROM alert_rules WHERE park_id = $1 AND id = $2{for_share}`))
			if err != nil {
				return fmt.Errorf("save alerts: %w", err)
			}
			defer stmt.Close()
			for _, k := range ruleKeys {
				if !parks[k.park] {
					rules[k] = false
					continue
				}
				var got string
				err := stmt.QueryRowContext(ctx, k.park, k.id).Scan(&got)
				if errors.Is(err, sql.ErrNoRows) {
					rules[k] = false
					continue
				}
				if err != nil {
					return fmt.Errorf("save alerts: look up alert rule %s in park %s: %w", k.id, k.park, err)
				}
			}
		}
		if err := saveAlertRows(ctx, tx, rows, rules, &skipped, &stray); err != nil {
			return err
		}
		return s.appendHistory(ctx, tx, history, labels, parks, &skipped)
	})
	if err != nil {
		return err
	}
	if skipped > 0 || stray > 0 {
		s.logger.WarnContext(ctx, "alerts of deleted rules or parks not saved", "skipped", skipped, "id_taken", stray)
	}
	return nil
}

// alertRow is an alert with its JSON.
type alertRow struct {
	a    alerting.Alert
	body string
}

// saveAlertRows upserts or deletes rows inside tx; rows of rules that are not live are
// skipped (counted in skipped), as are ids stored for another rule (counted in stray).
func saveAlertRows(ctx context.Context, tx *sql.Tx, rows []alertRow, live map[ruleKey]bool, skipped, stray *int) error {
	if len(rows) == 0 {
		return nil
	}
	upsert, err := tx.PrepareContext(ctx, `INSERT INTO alerts (id, park_id, rule_id, state, severity, enterprise, changed_at, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, severity = excluded.severity,
			enterprise = excluded.enterprise, changed_at = excluded.changed_at, body = excluded.body
		WHERE alerts.park_id = excluded.park_id AND alerts.rule_id = excluded.rule_id`)
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	defer upsert.Close()
	del, err := tx.PrepareContext(ctx, `DELETE FROM alerts WHERE id = $1 AND park_id = $2 AND rule_id = $3`)
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	defer del.Close()
	for _, r := range rows {
		a, body := r.a, r.body
		if !live[ruleKey{a.ParkID, a.RuleID}] {
			*skipped++
			continue
		}
		if a.State == alerting.StateInactive {
			if _, err := del.ExecContext(ctx, a.ID, a.ParkID, a.RuleID); err != nil {
				return fmt.Errorf("save alerts: delete inactive alert %s: %w", a.ID, err)
			}
			continue
		}
		res, err := upsert.ExecContext(ctx, a.ID, a.ParkID, a.RuleID, a.State, a.Severity, a.Labels["enterprise"],
			alertChangedAt(a), body)
		if err != nil {
			if isForeignKeyViolation(err) {
				return fmt.Errorf("save alerts: alert rule %s in park %s changed concurrently, retry: %w", a.RuleID, a.ParkID, registry.ErrConflict)
			}
			return fmt.Errorf("save alerts: write alert %s: %w", a.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("save alerts: write alert %s: %w", a.ID, err)
		} else if n == 0 {
			*stray++
		}
	}
	return nil
}

// appendHistory appends the history entries of live parks inside tx, taking their ids from
// the 'alert_history' sequence.
func (s *Store) appendHistory(ctx context.Context, tx *sql.Tx, history []alerting.HistoryEntry, labels []string, live map[string]bool, skipped *int) error {
	n := 0
	for _, h := range history {
		if live[h.ParkID] {
			n++
		}
	}
	*skipped += len(history) - n
	if n == 0 {
		return nil
	}
	var last int64
	err := tx.QueryRowContext(ctx,
		`UPDATE sequences SET value = value + $1 WHERE name = 'alert_history' RETURNING value`, int64(n)).Scan(&last)
	if err != nil {
		return fmt.Errorf("save alerts: take alert history ids: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO alert_history (id, alert_id, rule_id, park_id, kind, state, value, at, labels, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`)
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	defer stmt.Close()
	id := last - int64(n)
	for i, h := range history {
		if !live[h.ParkID] {
			continue
		}
		id++
		_, err := stmt.ExecContext(ctx, id, h.AlertID, h.RuleID, h.ParkID, h.Kind, h.State, h.Value, h.At.UnixMilli(), labels[i], h.Detail)
		if err != nil {
			return fmt.Errorf("save alerts: append history of alert %s: %w", h.AlertID, err)
		}
	}
	return nil
}

// LoadAlerts returns every stored alert that is not inactive, ordered by id.
func (s *Store) LoadAlerts(ctx context.Context) ([]alerting.Alert, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT body FROM alerts WHERE state <> $1 ORDER BY id{collate}`), alerting.StateInactive)
	if err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	return collect(rows, jsonRow[alerting.Alert], "load alerts")
}

// GetAlert returns an alert by id; registry.ErrNotFound when none is stored (an inactive
// alert is not).
func (s *Store) GetAlert(ctx context.Context, id string) (alerting.Alert, error) {
	a, err := jsonRow[alerting.Alert](s.db.QueryRowContext(ctx, `SELECT body FROM alerts WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return alerting.Alert{}, fmt.Errorf("alert %s: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return alerting.Alert{}, fmt.Errorf("get alert %s: %w", id, err)
	}
	return a, nil
}

// ListAlerts returns the alerts f selects, the latest change first (then by id). f.Since is
// inclusive and f.Until exclusive, both to the millisecond; f.Limit is 500 by default and at
// most 5000.
func (s *Store) ListAlerts(ctx context.Context, f alerting.AlertFilter) ([]alerting.Alert, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.ParkID != "" {
		where = append(where, "park_id = "+arg(f.ParkID))
	}
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, st := range f.States {
			ph[i] = arg(st)
		}
		where = append(where, "state IN ("+strings.Join(ph, ", ")+")")
	}
	if f.Severity != "" {
		where = append(where, "severity = "+arg(f.Severity))
	}
	if f.RuleID != "" {
		where = append(where, "rule_id = "+arg(f.RuleID))
	}
	if f.Enterprise != "" {
		where = append(where, "enterprise = "+arg(f.Enterprise))
	}
	if !f.Since.IsZero() {
		where = append(where, "changed_at >= "+arg(f.Since.UnixMilli()))
	}
	if !f.Until.IsZero() {
		where = append(where, "changed_at < "+arg(f.Until.UnixMilli()))
	}
	query := `SELECT body FROM alerts`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY changed_at DESC, id{collate} LIMIT " + arg(alertLimit(f.Limit))
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return collect(rows, jsonRow[alerting.Alert], "list alerts")
}

// ListHistory returns a park's history entries, of one alert unless alertID is empty, at or
// after since (zero: all), newest first; limit as ListAlerts. Times are UTC milliseconds.
func (s *Store) ListHistory(ctx context.Context, park, alertID string, since time.Time, limit int) ([]alerting.HistoryEntry, error) {
	where, args := []string{"park_id = $1"}, []any{park}
	if alertID != "" {
		args = append(args, alertID)
		where = append(where, fmt.Sprintf("alert_id = $%d", len(args)))
	}
	if !since.IsZero() {
		args = append(args, since.UnixMilli())
		where = append(where, fmt.Sprintf("at >= $%d", len(args)))
	}
	args = append(args, alertLimit(limit))
	query := `SELECT alert_id, rule_id, park_id, kind, state, value, at, labels, detail FROM alert_history WHERE ` + //nolint:gosec // G202: only placeholders are added; values are bound
		strings.Join(where, " AND ") + fmt.Sprintf(" ORDER BY at DESC, id DESC LIMIT $%d", len(args))
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list alert history of park %s: %w", park, err)
	}
	return collect(rows, func(r rowScanner) (alerting.HistoryEntry, error) {
		var (
			h      alerting.HistoryEntry
			at     int64
			labels string
		)
		if err := r.Scan(&h.AlertID, &h.RuleID, &h.ParkID, &h.Kind, &h.State, &h.Value, &at, &labels, &h.Detail); err != nil {
			return h, err
		}
		h.At = time.UnixMilli(at).UTC()
		if err := json.Unmarshal([]byte(labels), &h.Labels); err != nil {
			return h, fmt.Errorf("decode labels of alert %s: %w", h.AlertID, err)
		}
		return h, nil
	}, "list alert history of park "+park)
}

// ---- silences

// CreateSilence validates and stores a new silence, its times to the millisecond in UTC. The
// park must exist (registry.ErrNotFound); an id taken in the park is
// registry.ErrAlreadyExists.
func (s *Store) CreateSilence(ctx context.Context, sl alerting.Silence, actor string) error {
	sl.StartsAt, sl.EndsAt = msUTC(sl.StartsAt), msUTC(sl.EndsAt)
	if err := errors.Join(registry.CheckID("id", sl.ID), sl.Validate()); err != nil {
		return fmt.Errorf("silence %s: %w", sl.ID, err)
	}
	body, err := json.Marshal(sl)
	if err != nil {
		return fmt.Errorf("encode silence %s: %w", sl.ID, err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, sl.ParkID, "{for_share}"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO silences (park_id, id, starts_at, ends_at, body) VALUES ($1, $2, $3, $4, $5)`,
			sl.ParkID, sl.ID, sl.StartsAt.UnixMilli(), sl.EndsAt.UnixMilli(), string(body))
		if err != nil {
			return insertErr(fmt.Sprintf("silence %s in park %s", sl.ID, sl.ParkID), err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "silence.create", resource: silenceResource(sl.ParkID, sl.ID), parkID: sl.ParkID, after: sl,
		})
	})
}

// ListSilences returns every silence of a park, active, pending and expired, the latest
// start first (then by id).
func (s *Store) ListSilences(ctx context.Context, park string) ([]alerting.Silence, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT body FROM silences WHERE park_id = $1
		ORDER BY starts_at DESC, id{collate}`), park)
	if err != nil {
		return nil, fmt.Errorf("list silences of park %s: %w", park, err)
	}
	return collect(rows, jsonRow[alerting.Silence], "list silences of park "+park)
}

// ExpireSilence ends a silence at now (to the millisecond): its end moves to now if it is
// later, and a silence that has not started yet starts at now too. A silence that has ended
// already is left as it is, without an audit row. A missing silence is registry.ErrNotFound.
func (s *Store) ExpireSilence(ctx context.Context, park, id string, now time.Time, actor string) error {
	now = msUTC(now)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, park, "{for_share}"); err != nil {
			return err
		}
		before, err := jsonRow[alerting.Silence](tx.QueryRowContext(ctx,
			s.q(`SELECT body FROM silences WHERE park_id = $1 AND id = $2{for_update}`), park, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("silence %s in park %s: %w", id, park, registry.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read silence %s in park %s: %w", id, park, err)
		}
		if !before.EndsAt.After(now) {
			return nil
		}
		after := before
		after.EndsAt = now
		if after.StartsAt.After(now) {
			after.StartsAt = now
		}
		body, err := json.Marshal(after)
		if err != nil {
			return fmt.Errorf("encode silence %s: %w", id, err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE silences SET starts_at = $3, ends_at = $4, body = $5 WHERE park_id = $1 AND id = $2`,
			park, id, after.StartsAt.UnixMilli(), after.EndsAt.UnixMilli(), string(body))
		if err != nil {
			return fmt.Errorf("expire silence %s in park %s: %w", id, park, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "silence.expire", resource: silenceResource(park, id), parkID: park, before: before, after: after,
		})
	})
}

// ---- notification endpoints

// redactEndpoint is e as the audit log shows it: the secret replaced by "***".
func redactEndpoint(e alerting.Endpoint) alerting.Endpoint {
	if e.Secret != "" {
		e.Secret = "***"
	}
	return e
}

// CreateEndpoint validates and stores a notification endpoint, its secret as given (the
// notifier signs with it); the audit row shows the secret as "***". The park must exist
// (registry.ErrNotFound); an id taken in the park is registry.ErrAlreadyExists.
func (s *Store) CreateEndpoint(ctx context.Context, e alerting.Endpoint, actor string) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("notification endpoint %s: %w", e.ID, err)
	}
	body, err := json.Marshal(e) //nolint:gosec // G117: the secret is stored: the notifier signs with it
	if err != nil {
		return fmt.Errorf("encode notification endpoint %s: %w", e.ID, err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, e.ParkID, "{for_share}"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO notification_endpoints (park_id, id, kind, body) VALUES ($1, $2, $3, $4)`,
			e.ParkID, e.ID, e.Kind, string(body))
		if err != nil {
			return insertErr(fmt.Sprintf("notification endpoint %s in park %s", e.ID, e.ParkID), err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "notification_endpoint.create", resource: endpointResource(e.ParkID, e.ID), parkID: e.ParkID,
			after: redactEndpoint(e),
		})
	})
}

// ListEndpoints returns a park's notification endpoints with their secrets, ordered by id.
func (s *Store) ListEndpoints(ctx context.Context, park string) ([]alerting.Endpoint, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT body FROM notification_endpoints WHERE park_id = $1 ORDER BY id{collate}`), park)
	if err != nil {
		return nil, fmt.Errorf("list notification endpoints of park %s: %w", park, err)
	}
	return collect(rows, jsonRow[alerting.Endpoint], "list notification endpoints of park "+park)
}

// DeleteEndpoint deletes a notification endpoint; a missing one is registry.ErrNotFound. Its
// deliveries stay, and rules naming it are not changed.
func (s *Store) DeleteEndpoint(ctx context.Context, park, id, actor string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, park, "{for_share}"); err != nil {
			return err
		}
		before, err := jsonRow[alerting.Endpoint](tx.QueryRowContext(ctx,
			s.q(`SELECT body FROM notification_endpoints WHERE park_id = $1 AND id = $2{for_update}`), park, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("notification endpoint %s in park %s: %w", id, park, registry.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read notification endpoint %s in park %s: %w", id, park, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM notification_endpoints WHERE park_id = $1 AND id = $2`, park, id); err != nil {
			return fmt.Errorf("delete notification endpoint %s in park %s: %w", id, park, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "notification_endpoint.delete", resource: endpointResource(park, id), parkID: park,
			before: redactEndpoint(before),
		})
	})
}

// ---- deliveries

// RecordDelivery appends a delivery attempt, taking its id from the 'deliveries' sequence
// (d.ID is ignored). At and Duration are stored to the millisecond. The park must exist
// (registry.ErrNotFound).
func (s *Store) RecordDelivery(ctx context.Context, d alerting.Delivery) error {
	if d.ParkID == "" {
		return fmt.Errorf("record delivery: %w", &registry.FieldError{Field: "park_id", Reason: "is required"})
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, d.ParkID, "{for_share}"); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRowContext(ctx, `UPDATE sequences SET value = value + 1 WHERE name = 'deliveries' RETURNING value`).Scan(&id)
		if err != nil {
			return fmt.Errorf("take delivery id: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO deliveries (id, park_id, endpoint_id, alert_id, event, attempt, at, ok, status, error, duration_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			id, d.ParkID, d.EndpointID, d.AlertID, d.Event, int64(d.Attempt), d.At.UnixMilli(), d.OK, d.Status, d.Error,
			d.Duration.Milliseconds())
		if err != nil {
			return insertErr(fmt.Sprintf("delivery to endpoint %s in park %s", d.EndpointID, d.ParkID), err)
		}
		return nil
	})
}

// ListDeliveries returns a park's deliveries, of one alert unless alertID is empty, newest
// first; limit as ListAlerts.
func (s *Store) ListDeliveries(ctx context.Context, park, alertID string, limit int) ([]alerting.Delivery, error) {
	where, args := "park_id = $1", []any{park, alertLimit(limit)}
	if alertID != "" {
		where += " AND alert_id = $3"
		args = append(args, alertID)
	}
	query := `SELECT id, park_id, endpoint_id, alert_id, event, attempt, at, ok, status, error, duration_ms FROM deliveries WHERE ` + //nolint:gosec // G202: where is constant text
		where + ` ORDER BY at DESC, id DESC LIMIT $2`
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of park %s: %w", park, err)
	}
	return collect(rows, func(r rowScanner) (alerting.Delivery, error) {
		var (
			d        alerting.Delivery
			at, dur  int64
			attempts int64
		)
		err := r.Scan(&d.ID, &d.ParkID, &d.EndpointID, &d.AlertID, &d.Event, &attempts, &at, &d.OK, &d.Status, &d.Error, &dur)
		d.Attempt, d.At, d.Duration = int(attempts), time.UnixMilli(at).UTC(), time.Duration(dur)*time.Millisecond
		return d, err
	}, "list deliveries of park "+park)
}

// ---- leases

// TryLease takes the named lease for holder until now+ttl, or renews it, in one statement:
// it inserts the lease if there is none, and otherwise takes it over only if it expired
// before now or holder already holds it. On PostgreSQL the upsert locks the lease row and
// evaluates the condition on its latest version, so of concurrent callers exactly one takes
// an expired lease.
func (s *Store) TryLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	switch {
	case name == "":
		return false, fmt.Errorf("take lease: %w", &registry.FieldError{Field: "name", Reason: "is required"})
	case holder == "":
		return false, fmt.Errorf("take lease %s: %w", name, &registry.FieldError{Field: "holder", Reason: "is required"})
	case ttl <= 0:
		return false, fmt.Errorf("take lease %s: %w", name, &registry.FieldError{Field: "ttl", Reason: fmt.Sprintf("%v is not > 0", ttl)})
	}
	var took bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var got string
		err := tx.QueryRowContext(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE leases.expires_at < $4 OR leases.holder = excluded.holder
			RETURNING holder`, name, holder, now.Add(ttl).UnixMilli(), now.UnixMilli()).Scan(&got)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return fmt.Errorf("take lease %s for %s: %w", name, holder, err)
		}
		took = got == holder
		return nil
	})
	return took, err
}
