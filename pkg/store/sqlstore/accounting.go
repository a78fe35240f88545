package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

var (
	_ accounting.InputStore = (*Store)(nil)
	_ accounting.DirtyStore = (*Store)(nil)
)

// monthLayout is the "YYYY-MM" of the month columns.
const monthLayout = "2006-01"

// Resource paths of the audit log.
func valueAddedResource(park, enterprise, month string) string {
	return enterpriseResource(park, enterprise) + "/value-added/" + month
}

func processOutputResource(park, enterprise, month, product string) string {
	return enterpriseResource(park, enterprise) + "/process-output/" + month + "/" + url.PathEscape(product)
}

func instrumentResource(park, id string) string {
	return parkResource(park) + "/green-instruments/" + id
}

func replacementResource(park, meter string, at time.Time) string {
	return meterResource(park, meter) + "/replacements/" + at.Format(time.RFC3339Nano)
}

func factorSetResource(id string, version int) string {
	return "factor-sets/" + id + "/" + strconv.Itoa(version)
}

// monthKey is the "YYYY-MM" of t's calendar year and month, in t's own zone.
func monthKey(t time.Time) (string, error) {
	if y := t.Year(); y < 1000 || y > 9999 {
		return "", &registry.FieldError{Field: "month", Reason: fmt.Sprintf("year %d is not a year of four digits", y)}
	}
	return t.Format(monthLayout), nil
}

// firstOfMonth is midnight UTC of the first day of the month "YYYY-MM".
func firstOfMonth(month string) (time.Time, error) {
	t, err := time.Parse(monthLayout, month)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored month %q: %w", month, err)
	}
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC), nil
}

// checkFinite refuses NaN and infinities, which SQLite would store as NULL.
func checkFinite(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return &registry.FieldError{Field: field, Reason: fmt.Sprintf("%v is not a number", v)}
	}
	return nil
}

// msUTC is t as stored: whole milliseconds, UTC.
func msUTC(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// checkEnterprise checks inside tx that enterprise is in park.
func checkEnterprise(ctx context.Context, tx *sql.Tx, park, enterprise string) error {
	var got string
	err := tx.QueryRowContext(ctx, `SELECT id FROM enterprises WHERE park_id = $1 AND id = $2`, park, enterprise).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("enterprise %s in park %s: %w", enterprise, park, registry.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("look up enterprise %s in park %s: %w", enterprise, park, err)
	}
	return nil
}

// monthFilter is the WHERE clause of a listing by park, enterprise (empty: all) and months
// fromMonth..toMonth (both inclusive; empty: open), with its arguments. Months compare as
// text: "YYYY-MM" sorts the same bytewise and in any locale.
func monthFilter(park, enterprise, fromMonth, toMonth string) (string, []any, error) {
	where, args := []string{"park_id = $1"}, []any{park}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if enterprise != "" {
		where = append(where, "enterprise_id = "+arg(enterprise))
	}
	for _, m := range []struct{ field, month, op string }{{"from", fromMonth, ">="}, {"to", toMonth, "<="}} {
		if m.month == "" {
			continue
		}
		if _, err := time.Parse(monthLayout, m.month); err != nil {
			return "", nil, &registry.FieldError{Field: m.field, Reason: fmt.Sprintf("%q is not a month YYYY-MM", m.month)}
		}
		where = append(where, "month "+m.op+" "+arg(m.month))
	}
	return strings.Join(where, " AND "), args, nil
}

// ---- value added

const valueAddedColumns = `enterprise_id, month, nominal_10k_cny, real_growth_index, base_year`

func scanValueAdded(r rowScanner) (accounting.ValueAdded, error) {
	var (
		v     accounting.ValueAdded
		month string
	)
	if err := r.Scan(&v.Enterprise, &month, &v.Nominal10kCNY, &v.RealGrowthIndex, &v.BaseYear); err != nil {
		return v, err
	}
	var err error
	v.Month, err = firstOfMonth(month)
	return v, err
}

func sameValueAdded(a, b accounting.ValueAdded) bool {
	return a.Enterprise == b.Enterprise && a.Month.Equal(b.Month) && a.Nominal10kCNY == b.Nominal10kCNY &&
		a.RealGrowthIndex == b.RealGrowthIndex && a.BaseYear == b.BaseYear
}

// PutValueAdded creates or replaces the value added of (v.Enterprise, v.Month), whose calendar
// month is taken in v.Month's own zone. The park and the enterprise must exist
// (registry.ErrNotFound). Replacing a record with the same values writes nothing.
func (s *Store) PutValueAdded(ctx context.Context, park string, v accounting.ValueAdded, actor string) error {
	month, err := monthKey(v.Month)
	if err != nil {
		return fmt.Errorf("value added: %w", err)
	}
	if v.Enterprise == "" {
		return fmt.Errorf("value added: %w", &registry.FieldError{Field: "enterprise_id", Reason: "is required"})
	}
	if err := errors.Join(checkFinite("nominal_10k_cny", v.Nominal10kCNY),
		checkFinite("real_growth_index", v.RealGrowthIndex)); err != nil {
		return fmt.Errorf("value added: %w", err)
	}
	v.Month, _ = firstOfMonth(month)
	what := fmt.Sprintf("value added of enterprise %s in park %s for %s", v.Enterprise, park, month)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, park, "{for_share}"); err != nil {
			return err
		}
		if err := checkEnterprise(ctx, tx, park, v.Enterprise); err != nil {
			return err
		}
		rec := auditRecord{action: "value_added.create", resource: valueAddedResource(park, v.Enterprise, month),
			parkID: park, after: v}
		// Insert if absent; otherwise read the stored record under its lock and replace it, so
		// the audit row's before is the record this write replaced.
		res, err := tx.ExecContext(ctx, `INSERT INTO value_added (park_id, `+valueAddedColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (park_id, enterprise_id, month) DO NOTHING`,
			park, v.Enterprise, month, v.Nominal10kCNY, v.RealGrowthIndex, int64(v.BaseYear))
		if err != nil {
			return insertErr(what, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("write %s: %w", what, err)
		} else if n == 0 {
			before, err := scanValueAdded(tx.QueryRowContext(ctx, s.q(`SELECT `+valueAddedColumns+` FROM value_added
				WHERE park_id = $1 AND enterprise_id = $2 AND month = $3{for_update}`), park, v.Enterprise, month))
			if err != nil {
				return fmt.Errorf("read %s: %w", what, err)
			}
			if sameValueAdded(before, v) {
				return nil
			}
			_, err = tx.ExecContext(ctx, `UPDATE value_added SET nominal_10k_cny = $4, real_growth_index = $5, base_year = $6
				WHERE park_id = $1 AND enterprise_id = $2 AND month = $3`,
				park, v.Enterprise, month, v.Nominal10kCNY, v.RealGrowthIndex, int64(v.BaseYear))
			if err != nil {
				return fmt.Errorf("write %s: %w", what, err)
			}
			rec.action, rec.before = "value_added.update", before
		}
		return s.audit(ctx, tx, actor, rec)
	})
}

// ListValueAdded returns the value added of the months fromMonth..toMonth ("YYYY-MM", both
// inclusive; empty leaves that end open) of one enterprise, or of every enterprise of the park
// when enterprise is empty, ordered by enterprise then month. Month is midnight UTC of the
// month's first day.
func (s *Store) ListValueAdded(ctx context.Context, park, enterprise, fromMonth, toMonth string) ([]accounting.ValueAdded, error) {
	where, args, err := monthFilter(park, enterprise, fromMonth, toMonth)
	if err != nil {
		return nil, fmt.Errorf("list value added: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+valueAddedColumns+` FROM value_added WHERE `+where+
		` ORDER BY enterprise_id{collate}, month`), args...)
	if err != nil {
		return nil, fmt.Errorf("list value added of park %s: %w", park, err)
	}
	return collect(rows, scanValueAdded, "list value added of park "+park)
}

// ---- process output

const processOutputColumns = `enterprise_id, month, product, tonnes`

func scanProcessOutput(r rowScanner) (accounting.ProcessOutput, error) {
	var (
		p     accounting.ProcessOutput
		month string
	)
	if err := r.Scan(&p.Enterprise, &month, &p.Product, &p.Tonnes); err != nil {
		return p, err
	}
	var err error
	p.Month, err = firstOfMonth(month)
	return p, err
}

// PutProcessOutput creates or replaces the output of (p.Enterprise, p.Month, p.Product); see
// PutValueAdded. Process output belongs to an enterprise: p.Enterprise is required.
func (s *Store) PutProcessOutput(ctx context.Context, park string, p accounting.ProcessOutput, actor string) error {
	month, err := monthKey(p.Month)
	if err != nil {
		return fmt.Errorf("process output: %w", err)
	}
	switch {
	case p.Enterprise == "":
		return fmt.Errorf("process output: %w", &registry.FieldError{Field: "enterprise_id", Reason: "is required"})
	case p.Product == "":
		return fmt.Errorf("process output: %w", &registry.FieldError{Field: "product", Reason: "is required"})
	}
	if err := checkFinite("tonnes", p.Tonnes); err != nil {
		return fmt.Errorf("process output: %w", err)
	}
	p.Month, _ = firstOfMonth(month)
	what := fmt.Sprintf("output of %s of enterprise %s in park %s for %s", p.Product, p.Enterprise, park, month)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, park, "{for_share}"); err != nil {
			return err
		}
		if err := checkEnterprise(ctx, tx, park, p.Enterprise); err != nil {
			return err
		}
		rec := auditRecord{action: "process_output.create",
			resource: processOutputResource(park, p.Enterprise, month, p.Product), parkID: park, after: p}
		res, err := tx.ExecContext(ctx, `INSERT INTO process_outputs (park_id, `+processOutputColumns+`)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (park_id, enterprise_id, month, product) DO NOTHING`,
			park, p.Enterprise, month, p.Product, p.Tonnes)
		if err != nil {
			return insertErr(what, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("write %s: %w", what, err)
		} else if n == 0 {
			before, err := scanProcessOutput(tx.QueryRowContext(ctx, s.q(`SELECT `+processOutputColumns+` FROM process_outputs
				WHERE park_id = $1 AND enterprise_id = $2 AND month = $3 AND product = $4{for_update}`),
				park, p.Enterprise, month, p.Product))
			if err != nil {
				return fmt.Errorf("read %s: %w", what, err)
			}
			if before.Tonnes == p.Tonnes {
				return nil
			}
			_, err = tx.ExecContext(ctx, `UPDATE process_outputs SET tonnes = $5
				WHERE park_id = $1 AND enterprise_id = $2 AND month = $3 AND product = $4`,
				park, p.Enterprise, month, p.Product, p.Tonnes)
			if err != nil {
				return fmt.Errorf("write %s: %w", what, err)
			}
			rec.action, rec.before = "process_output.update", before
		}
		return s.audit(ctx, tx, actor, rec)
	})
}

// ListProcessOutputs returns the process output of the months fromMonth..toMonth; see
// ListValueAdded. It is ordered by enterprise, month, then product.
func (s *Store) ListProcessOutputs(ctx context.Context, park, enterprise, fromMonth, toMonth string) ([]accounting.ProcessOutput, error) {
	where, args, err := monthFilter(park, enterprise, fromMonth, toMonth)
	if err != nil {
		return nil, fmt.Errorf("list process output: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+processOutputColumns+` FROM process_outputs WHERE `+where+
		` ORDER BY enterprise_id{collate}, month, product{collate}`), args...)
	if err != nil {
		return nil, fmt.Errorf("list process output of park %s: %w", park, err)
	}
	return collect(rows, scanProcessOutput, "list process output of park "+park)
}

// ---- green instruments

// CreateInstrument stores a green instrument with its certificate serials (ParseSerials),
// which are kept in their canonical form. The park and the enterprise, if any, must exist
// (registry.ErrNotFound); a malformed serial is a *registry.FieldError. A duplicate id in the
// park, two entries naming the same serial, or a serial that an instrument of any park
// already holds is a registry.ErrConflict naming the serial and the instrument. Period ends
// are stored to the millisecond.
func (s *Store) CreateInstrument(ctx context.Context, park string, in accounting.Instrument, actor string) error {
	if in.ID == "" {
		return fmt.Errorf("instrument: %w", &registry.FieldError{Field: "id", Reason: "is required"})
	}
	if err := checkFinite("mwh", in.MWh); err != nil {
		return fmt.Errorf("instrument %s: %w", in.ID, err)
	}
	ranges, err := accounting.ParseSerials(in.Serials)
	if err != nil {
		return fmt.Errorf("instrument %s: %w", in.ID, err)
	}
	if a, b, ok := accounting.FirstOverlap(ranges); ok {
		return fmt.Errorf("instrument %s: serials %s and %s both name certificate %s: %w",
			in.ID, a, b, accounting.FirstShared(a, b), registry.ErrConflict)
	}
	in.From, in.To = msUTC(in.From), msUTC(in.To)
	in.Serials = nil
	for _, r := range ranges {
		in.Serials = append(in.Serials, r.String())
	}
	what := fmt.Sprintf("instrument %s in park %s", in.ID, park)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, park, "{for_share}"); err != nil {
			return err
		}
		if in.Enterprise != "" {
			if err := checkEnterprise(ctx, tx, park, in.Enterprise); err != nil {
				return err
			}
		}
		var got string
		err := tx.QueryRowContext(ctx, `SELECT id FROM instruments WHERE park_id = $1 AND id = $2`, park, in.ID).Scan(&got)
		if err == nil {
			return fmt.Errorf("%s exists already: %w", what, registry.ErrConflict)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("look up %s: %w", what, err)
		}
		if len(ranges) > 0 {
			if err := s.checkSerialsFree(ctx, tx, in.ID, ranges); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO instruments (park_id, id, enterprise_id, kind, mwh, period_from, period_to)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			park, in.ID, nullIfEmpty(in.Enterprise), in.Kind, in.MWh, in.From.UnixMilli(), in.To.UnixMilli())
		if err != nil {
			if isUniqueViolation(err) { // created concurrently
				return fmt.Errorf("%s exists already: %w", what, registry.ErrConflict)
			}
			return insertErr(what, err)
		}
		if err := insertSerials(ctx, tx, park, in.ID, ranges); err != nil {
			return fmt.Errorf("store serials of %s: %w", what, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "instrument.create", resource: instrumentResource(park, in.ID), parkID: park, after: in,
		})
	})
}

// checkSerialsFree checks inside tx that no stored instrument of any park holds a serial of
// ranges. It first locks the 'instrument_serials' sequence row, which serialises every writer
// of serials until commit, so two instruments cannot take the same serial concurrently.
func (s *Store) checkSerialsFree(ctx context.Context, tx *sql.Tx, id string, ranges []accounting.SerialRange) error {
	var n int64
	err := tx.QueryRowContext(ctx,
		`UPDATE sequences SET value = value + 1 WHERE name = 'instrument_serials' RETURNING value`).Scan(&n)
	if err != nil {
		return fmt.Errorf("lock certificate serials: %w", err)
	}
	for _, r := range ranges {
		// Stored ranges of one prefix and width are disjoint, so the one starting last at or
		// before r.Hi is the only one that can reach r.Lo.
		var (
			park, holder string
			stored       = accounting.SerialRange{Prefix: r.Prefix, Width: r.Width}
		)
		err := tx.QueryRowContext(ctx, `SELECT park_id, instrument_id, lo, hi FROM instrument_serials
			WHERE prefix = $1 AND width = $2 AND lo <= $3 ORDER BY lo DESC LIMIT 1`,
			r.Prefix, int64(r.Width), r.Hi).Scan(&park, &holder, &stored.Lo, &stored.Hi)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("look up certificate serials %s: %w", r, err)
		}
		if stored.Hi >= r.Lo {
			return fmt.Errorf("instrument %s: certificate %s is already held by instrument %s of park %s (serials %s): %w",
				id, accounting.FirstShared(r, stored), holder, park, stored, registry.ErrConflict)
		}
	}
	return nil
}

// insertSerials stores the serial entries of an instrument, in order.
func insertSerials(ctx context.Context, tx *sql.Tx, park, id string, ranges []accounting.SerialRange) error {
	if len(ranges) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO instrument_serials (park_id, instrument_id, position, prefix, width, lo, hi)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i, r := range ranges {
		if _, err := stmt.ExecContext(ctx, park, id, int64(i), r.Prefix, int64(r.Width), r.Lo, r.Hi); err != nil {
			return err
		}
	}
	return nil
}

// serialsOfInstruments starts the query of the serials of the instruments (aliased i) that
// the condition appended to it selects.
const serialsOfInstruments = `SELECT s.instrument_id, s.prefix, s.width, s.lo, s.hi
	FROM instrument_serials s JOIN instruments i ON i.park_id = s.park_id AND i.id = s.instrument_id
	WHERE `

// ListInstruments returns the park's instruments whose period overlaps [from, to) (a zero
// time leaves that end open), ordered by id, with their serials in canonical form and in the
// order given. Times are UTC.
func (s *Store) ListInstruments(ctx context.Context, park string, from, to time.Time) ([]accounting.Instrument, error) {
	where, args := []string{"i.park_id = $1"}, []any{park}
	if !from.IsZero() {
		args = append(args, from.UnixMilli())
		where = append(where, fmt.Sprintf("i.period_to > $%d", len(args)))
	}
	if !to.IsZero() {
		args = append(args, to.UnixMilli())
		where = append(where, fmt.Sprintf("i.period_from < $%d", len(args)))
	}
	cond := strings.Join(where, " AND ")
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT i.id, i.enterprise_id, i.kind, i.mwh, i.period_from, i.period_to
		FROM instruments i WHERE `+cond+` ORDER BY i.id{collate}`), args...)
	if err != nil {
		return nil, fmt.Errorf("list instruments of park %s: %w", park, err)
	}
	list, err := collect(rows, scanInstrument, "list instruments of park "+park)
	if err != nil || len(list) == 0 {
		return list, err
	}
	// Instruments never change once created, so a second query sees the same ones' serials.
	query := serialsOfInstruments + cond + ` ORDER BY s.instrument_id, s.position` //nolint:gosec // G202: only placeholders are added; values are bound
	rows, err = s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list serials of park %s: %w", park, err)
	}
	type serial struct {
		id string
		r  accounting.SerialRange
	}
	serials, err := collect(rows, func(r rowScanner) (serial, error) {
		var v serial
		err := r.Scan(&v.id, &v.r.Prefix, &v.r.Width, &v.r.Lo, &v.r.Hi)
		return v, err
	}, "list serials of park "+park)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]int, len(list))
	for i, in := range list {
		byID[in.ID] = i
	}
	for _, v := range serials {
		if i, ok := byID[v.id]; ok {
			list[i].Serials = append(list[i].Serials, v.r.String())
		}
	}
	return list, nil
}

func scanInstrument(r rowScanner) (accounting.Instrument, error) {
	var (
		in         accounting.Instrument
		enterprise sql.NullString
		from, to   int64
	)
	err := r.Scan(&in.ID, &enterprise, &in.Kind, &in.MWh, &from, &to)
	in.Enterprise, in.From, in.To = enterprise.String, time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC()
	return in, err
}

// ---- meter replacements

// replacementAudit is what the audit log records of a replacement.
type replacementAudit struct {
	Meter      string    `json:"meter_id"`
	At         time.Time `json:"at"`
	OldFinal   float64   `json:"old_final"`
	NewInitial float64   `json:"new_initial"`
}

// AddReplacement records that meter was replaced at r.At (stored to the millisecond). The park
// and the meter must exist (registry.ErrNotFound); a second record for the same meter and
// time is registry.ErrAlreadyExists.
func (s *Store) AddReplacement(ctx context.Context, park, meter string, r accounting.Replacement, actor string) error {
	if err := errors.Join(checkFinite("old_final", r.OldFinal), checkFinite("new_initial", r.NewInitial)); err != nil {
		return fmt.Errorf("replacement of meter %s: %w", meter, err)
	}
	at := msUTC(r.At)
	what := fmt.Sprintf("replacement of meter %s in park %s at %s", meter, park, at.Format(time.RFC3339Nano))
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, park, "{for_share}"); err != nil {
			return err
		}
		var got string
		err := tx.QueryRowContext(ctx, `SELECT id FROM meters WHERE park_id = $1 AND id = $2`, park, meter).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("meter %s in park %s: %w", meter, park, registry.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up meter %s in park %s: %w", meter, park, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO meter_replacements (park_id, meter_id, at, old_final, new_initial)
			VALUES ($1, $2, $3, $4, $5)`, park, meter, at.UnixMilli(), r.OldFinal, r.NewInitial)
		if err != nil {
			return insertErr(what, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "meter_replacement.create", resource: replacementResource(park, meter, at), parkID: park,
			after: replacementAudit{Meter: meter, At: at, OldFinal: r.OldFinal, NewInitial: r.NewInitial},
		})
	})
}

// ListReplacements returns a meter's replacement records, oldest first; none for a meter
// that does not exist.
func (s *Store) ListReplacements(ctx context.Context, park, meter string) ([]accounting.Replacement, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, old_final, new_initial FROM meter_replacements
		WHERE park_id = $1 AND meter_id = $2 ORDER BY at`, park, meter)
	if err != nil {
		return nil, fmt.Errorf("list replacements of meter %s in park %s: %w", meter, park, err)
	}
	return collect(rows, func(r rowScanner) (accounting.Replacement, error) {
		var (
			rep accounting.Replacement
			at  int64
		)
		err := r.Scan(&at, &rep.OldFinal, &rep.NewInitial)
		rep.At = time.UnixMilli(at).UTC()
		return rep, err
	}, fmt.Sprintf("list replacements of meter %s in park %s", meter, park))
}

// ---- factor sets

// factorSetAudit is what the audit log records of a published factor set: its whole text.
type factorSetAudit struct {
	ID      string `json:"id"`
	Version int    `json:"version"`
	Data    string `json:"data"`
}

// SaveFactorSet stores a published factor-set version's file text, which must be UTF-8
// without NUL bytes. An (id, version) that exists is a registry.ErrConflict.
func (s *Store) SaveFactorSet(ctx context.Context, id string, version int, data []byte, actor string) error {
	switch {
	case id == "":
		return fmt.Errorf("factor set: %w", &registry.FieldError{Field: "id", Reason: "is required"})
	case !utf8.Valid(data) || slices.Contains(data, 0):
		return fmt.Errorf("factor set %s version %d: %w", id, version,
			&registry.FieldError{Field: "data", Reason: "is not UTF-8 text without NUL bytes"})
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO factor_sets (id, version, data, created_at) VALUES ($1, $2, $3, $4)`,
			id, int64(version), string(data), s.now().UnixMilli())
		if isUniqueViolation(err) {
			return fmt.Errorf("factor set %s version %d is issued already and never changes: %w", id, version, registry.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("store factor set %s version %d: %w", id, version, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "factor_set.create", resource: factorSetResource(id, version),
			after: factorSetAudit{ID: id, Version: version, Data: string(data)},
		})
	})
}

// ListFactorSets returns every published version's file text, by id then version.
func (s *Store) ListFactorSets(ctx context.Context) ([][]byte, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT data FROM factor_sets ORDER BY id{collate}, version`))
	if err != nil {
		return nil, fmt.Errorf("list factor sets: %w", err)
	}
	return collect(rows, func(r rowScanner) ([]byte, error) {
		var data string
		err := r.Scan(&data)
		return []byte(data), err
	}, "list factor sets")
}

// ---- dirty hours

// dirtyKey is a dirty hour as stored.
type dirtyKey struct {
	park string
	hour int64 // Unix ms of the hour's start
}

func compareDirtyKeys(a, b dirtyKey) int {
	return cmp.Or(strings.Compare(a.park, b.park), cmp.Compare(a.hour, b.hour))
}

// MarkDirty marks the clock hours (UTC) containing each DirtyHour.Hour of its park, in one
// transaction. Each mark gets the next value of the 'rollup_dirty' sequence as its version;
// taking it locks the sequence row until commit, so versions grow in commit order and never
// repeat, and a mark made after a claim always has a version the claim did not read.
func (s *Store) MarkDirty(ctx context.Context, hours []accounting.DirtyHour) error {
	keys := make([]dirtyKey, 0, len(hours))
	for _, h := range hours {
		if h.Park == "" {
			return errors.New("mark dirty hours: a dirty hour without a park")
		}
		keys = append(keys, dirtyKey{park: h.Park, hour: h.Hour.UTC().Truncate(time.Hour).UnixMilli()})
	}
	// Sorted and without repeats: an upsert touches each row once, always in the same order.
	slices.SortFunc(keys, compareDirtyKeys)
	keys = slices.Compact(keys)
	if len(keys) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var version int64
		err := tx.QueryRowContext(ctx,
			`UPDATE sequences SET value = value + 1 WHERE name = 'rollup_dirty' RETURNING value`).Scan(&version)
		if err != nil {
			return fmt.Errorf("take dirty mark version: %w", err)
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO rollup_dirty (park_id, hour, version) VALUES ($1, $2, $3)
			ON CONFLICT (park_id, hour) DO UPDATE SET version = excluded.version`)
		if err != nil {
			return fmt.Errorf("mark dirty hours: %w", err)
		}
		defer stmt.Close()
		for _, k := range keys {
			if _, err := stmt.ExecContext(ctx, k.park, k.hour, version); err != nil {
				return fmt.Errorf("mark hour %s of park %s dirty: %w",
					time.UnixMilli(k.hour).UTC().Format(time.RFC3339), k.park, err)
			}
		}
		return nil
	})
}

// ClaimDirty returns up to limit (> 0) dirty hours, oldest first, with the version of the
// mark each was read at. Claiming removes nothing: ClearDirty does once the hours are
// computed.
func (s *Store) ClaimDirty(ctx context.Context, limit int) ([]accounting.DirtyHour, []int64, error) {
	if limit <= 0 {
		return nil, nil, fmt.Errorf("claim dirty hours: limit %d is not > 0", limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT park_id, hour, version FROM rollup_dirty
		ORDER BY hour, park_id{collate} LIMIT $1`), int64(limit))
	if err != nil {
		return nil, nil, fmt.Errorf("claim dirty hours: %w", err)
	}
	type mark struct {
		h accounting.DirtyHour
		v int64
	}
	marks, err := collect(rows, func(r rowScanner) (mark, error) {
		var (
			m    mark
			hour int64
		)
		err := r.Scan(&m.h.Park, &hour, &m.v)
		m.h.Hour = time.UnixMilli(hour).UTC()
		return m, err
	}, "claim dirty hours")
	if err != nil {
		return nil, nil, err
	}
	hours, versions := make([]accounting.DirtyHour, len(marks)), make([]int64, len(marks))
	for i, m := range marks {
		hours[i], versions[i] = m.h, m.v
	}
	return hours, versions, nil
}

// ClearDirty removes the marks of hours whose version is still versions[i] (what ClaimDirty
// returned), in one transaction; an hour marked again since keeps its newer mark.
func (s *Store) ClearDirty(ctx context.Context, hours []accounting.DirtyHour, versions []int64) error {
	if len(hours) != len(versions) {
		return fmt.Errorf("clear dirty hours: %d hours but %d versions", len(hours), len(versions))
	}
	if len(hours) == 0 {
		return nil
	}
	type mark struct {
		dirtyKey
		version int64
	}
	marks := make([]mark, len(hours))
	for i, h := range hours {
		marks[i] = mark{dirtyKey{park: h.Park, hour: h.Hour.UTC().Truncate(time.Hour).UnixMilli()}, versions[i]}
	}
	// In MarkDirty's order, so a clear and a mark never wait for each other's rows crosswise.
	slices.SortFunc(marks, func(a, b mark) int { return compareDirtyKeys(a.dirtyKey, b.dirtyKey) })
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `DELETE FROM rollup_dirty WHERE park_id = $1 AND hour = $2 AND version = $3`)
		if err != nil {
			return fmt.Errorf("clear dirty hours: %w", err)
		}
		defer stmt.Close()
		for _, m := range marks {
			if _, err := stmt.ExecContext(ctx, m.park, m.hour, m.version); err != nil {
				return fmt.Errorf("clear dirty hour %s of park %s: %w",
					time.UnixMilli(m.hour).UTC().Format(time.RFC3339), m.park, err)
			}
		}
		return nil
	})
}
