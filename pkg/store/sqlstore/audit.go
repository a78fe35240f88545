package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// AuditEntry is one row of the audit log: who did what to which resource, with the resource
// as JSON before and after (nil for none: a create has no before, a delete no after).
type AuditEntry struct {
	ID int64     `json:"id"`
	At time.Time `json:"at"`
	// Actor names the principal (auth.Principal.Actor), "system" for the server itself.
	Actor string `json:"actor"`
	// Action is "<kind>.<verb>": park.create, meter.update, token.create …
	Action string `json:"action"`
	// Resource is the path of the resource: parks/p1, parks/p1/meters/m1, tokens/t1.
	Resource string `json:"resource"`
	// ParkID is the park the resource belongs to; empty for tokens.
	ParkID string          `json:"park_id"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// AuditFilter selects audit entries; empty fields match everything.
type AuditFilter struct {
	ParkID string
	// ResourcePrefix matches resources starting with it; end it with "/" to stop
	// "parks/p1" from also matching "parks/p10".
	ResourcePrefix string
	// Before, when > 0, returns only entries older than the entry with this id: pass the last
	// ID of a page to get the next one.
	Before int64
	// Limit bounds the number of entries, at most and by default 1000.
	Limit int
}

// auditRecord is an audit row about to be written.
type auditRecord struct {
	action, resource, parkID string
	before, after            any // marshalled to JSON; nil for none
}

// audit appends recs to the audit log inside tx. Callers write their audit rows last, after
// every other statement of the transaction: taking ids locks the audit sequence row on
// PostgreSQL until commit, and a constant lock order keeps writers from deadlocking.
func (s *Store) audit(ctx context.Context, tx *sql.Tx, actor string, recs ...auditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	var last int64
	err := tx.QueryRowContext(ctx,
		`UPDATE sequences SET value = value + $1 WHERE name = 'audit_log' RETURNING value`,
		int64(len(recs))).Scan(&last)
	if err != nil {
		return fmt.Errorf("take audit log ids: %w", err)
	}
	at := s.now().UnixMilli()
	id := last - int64(len(recs))
	for _, r := range recs {
		id++
		before, err := marshalOrNull(r.before)
		if err != nil {
			return fmt.Errorf("audit %s %s: %w", r.action, r.resource, err)
		}
		after, err := marshalOrNull(r.after)
		if err != nil {
			return fmt.Errorf("audit %s %s: %w", r.action, r.resource, err)
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO audit_log (id, at, actor, action, resource, park_id, before_json, after_json)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			id, at, actor, r.action, r.resource, r.parkID, before, after)
		if err != nil {
			return fmt.Errorf("write audit row %s %s: %w", r.action, r.resource, err)
		}
	}
	return nil
}

func marshalOrNull(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// ListAudit returns the audit entries matching f, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
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
	if f.ResourcePrefix != "" {
		// substr rather than LIKE: SQLite's LIKE ignores case and both need escaping.
		n := arg(int64(utf8.RuneCountInString(f.ResourcePrefix)))
		where = append(where, fmt.Sprintf("substr(resource, 1, %s) = %s", n, arg(f.ResourcePrefix)))
	}
	if f.Before > 0 {
		where = append(where, "id < "+arg(f.Before))
	}
	query := `SELECT id, at, actor, action, resource, park_id, before_json, after_json FROM audit_log`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT " + arg(int64(pageSize(f.Limit))) //nolint:gosec // G202: only placeholders are added; values are bound
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var (
			e             AuditEntry
			at            int64
			before, after sql.NullString
		)
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Resource, &e.ParkID, &before, &after); err != nil {
			return nil, fmt.Errorf("list audit log: %w", err)
		}
		e.At = time.UnixMilli(at).UTC()
		if before.Valid {
			e.Before = json.RawMessage(before.String)
		}
		if after.Valid {
			e.After = json.RawMessage(after.String)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	return out, nil
}
