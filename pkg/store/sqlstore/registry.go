package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Resource paths of the audit log.
func parkResource(id string) string { return "parks/" + id }
func enterpriseResource(parkID, id string) string {
	return "parks/" + parkID + "/enterprises/" + id
}
func meterResource(parkID, id string) string { return "parks/" + parkID + "/meters/" + id }
func gatewayResource(parkID, id string) string {
	return "parks/" + parkID + "/gateways/" + id
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// lockPark checks inside tx that park id exists, locking its row on PostgreSQL: {for_share}
// for writes under the park, {for_update} to change or delete the park itself.
func (s *Store) lockPark(ctx context.Context, tx *sql.Tx, id, mode string) error {
	var got string
	err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM parks WHERE id = $1`+mode), id).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("park %s: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("look up park %s: %w", id, err)
	}
	return nil
}

// ---- parks

const parkColumns = `id, name, province, timezone`

func scanPark(r rowScanner) (registry.Park, error) {
	var p registry.Park
	err := r.Scan(&p.ID, &p.Name, &p.Province, &p.Timezone)
	return p, err
}

// CreatePark stores a new park; ErrAlreadyExists when its id is taken.
func (s *Store) CreatePark(ctx context.Context, p registry.Park, actor string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO parks (`+parkColumns+`) VALUES ($1, $2, $3, $4)`,
			p.ID, p.Name, p.Province, p.Timezone)
		if err != nil {
			return insertErr("park "+p.ID, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "park.create", resource: parkResource(p.ID), parkID: p.ID, after: p,
		})
	})
}

// GetPark returns a park; ErrNotFound when there is none.
func (s *Store) GetPark(ctx context.Context, id string) (registry.Park, error) {
	p, err := scanPark(s.db.QueryRowContext(ctx, `SELECT `+parkColumns+` FROM parks WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Park{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Park{}, fmt.Errorf("get park %s: %w", id, err)
	}
	return p, nil
}

// ListParks returns parks ordered by id, page.Size of them after page.After.
func (s *Store) ListParks(ctx context.Context, page registry.Page) ([]registry.Park, error) {
	rows, err := s.db.QueryContext(ctx, s.q(
		`SELECT `+parkColumns+` FROM parks WHERE id{collate} > $1 ORDER BY id{collate} LIMIT $2`),
		page.After, int64(pageSize(page.Size)))
	if err != nil {
		return nil, fmt.Errorf("list parks: %w", err)
	}
	return collect(rows, scanPark, "list parks")
}

// UpdatePark reads the park, applies mutate and writes the result with its audit row, all in
// one transaction. An error of mutate is returned as it is and nothing is written; so is a
// change of nothing.
func (s *Store) UpdatePark(ctx context.Context, id string, mutate func(*registry.Park) error, actor string) (registry.Park, error) {
	var out registry.Park
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		before, err := scanPark(tx.QueryRowContext(ctx,
			s.q(`SELECT `+parkColumns+` FROM parks WHERE id = $1{for_update}`), id))
		if errors.Is(err, sql.ErrNoRows) {
			return registry.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read park %s: %w", id, err)
		}
		p := before
		if err := mutate(&p); err != nil {
			return err
		}
		if p.ID != id {
			return &registry.FieldError{Field: "id", Reason: "cannot be changed"}
		}
		out = p
		if p == before {
			return nil
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE parks SET name = $2, province = $3, timezone = $4 WHERE id = $1`,
			p.ID, p.Name, p.Province, p.Timezone)
		if err != nil {
			return fmt.Errorf("write park %s: %w", id, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "park.update", resource: parkResource(id), parkID: id, before: before, after: p,
		})
	})
	if err != nil {
		return registry.Park{}, err
	}
	return out, nil
}

// DeletePark removes a park. While the park has enterprises, meters or gateways it fails with
// ErrConflict unless cascade is set; cascade deletes them in the same transaction, each with
// its own audit row. Tokens scoped to the park and the audit log stay.
func (s *Store) DeletePark(ctx context.Context, id string, cascade bool, actor string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		before, err := scanPark(tx.QueryRowContext(ctx,
			s.q(`SELECT `+parkColumns+` FROM parks WHERE id = $1{for_update}`), id))
		if errors.Is(err, sql.ErrNoRows) {
			return registry.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read park %s: %w", id, err)
		}
		var nEnterprises, nMeters, nGateways, nInstruments, nRules, nEndpoints int64
		err = tx.QueryRowContext(ctx, `SELECT
			(SELECT COUNT(*) FROM enterprises WHERE park_id = $1),
			(SELECT COUNT(*) FROM meters WHERE park_id = $1),
			(SELECT COUNT(*) FROM gateways WHERE park_id = $1),
			(SELECT COUNT(*) FROM instruments WHERE park_id = $1),
			(SELECT COUNT(*) FROM alert_rules WHERE park_id = $1),
			(SELECT COUNT(*) FROM notification_endpoints WHERE park_id = $1)`, id).Scan(&nEnterprises, &nMeters, &nGateways, &nInstruments, &nRules, &nEndpoints)
		if err != nil {
			return fmt.Errorf("count contents of park %s: %w", id, err)
		}
		var recs []auditRecord
		if nEnterprises+nMeters+nGateways+nInstruments+nRules+nEndpoints > 0 {
			if !cascade {
				return fmt.Errorf("park %s still has %s, %s, %s, %s, %s and %s: delete them first or use ?cascade=true: %w",
					id, plural(nEnterprises, "enterprise"), plural(nMeters, "meter"), plural(nGateways, "gateway"),
					plural(nInstruments, "green instrument"), plural(nRules, "alert rule"), plural(nEndpoints, "notification endpoint"),
					registry.ErrConflict)
			}
			if recs, err = s.deleteParkContents(ctx, tx, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM parks WHERE id = $1`, id); err != nil {
			if isForeignKeyViolation(err) {
				return fmt.Errorf("park %s gained contents while being deleted, retry: %w", id, registry.ErrConflict)
			}
			return fmt.Errorf("delete park %s: %w", id, err)
		}
		recs = append(recs, auditRecord{action: "park.delete", resource: parkResource(id), parkID: id, before: before})
		return s.audit(ctx, tx, actor, recs...)
	})
}

// accountingTables hold a park's accounting inputs, children before parents.
var accountingTables = []string{"instrument_serials", "instruments", "meter_replacements", "process_outputs", "value_added", "rollup_dirty"}

// deleteParkContents deletes the accounting inputs and alerting data, meters, gateways and
// enterprises of a park, in that order (each refers to the ones after it), and returns their
// audit records; the accounting and alerting data get one record with the rows each table held.
func (s *Store) deleteParkContents(ctx context.Context, tx *sql.Tx, parkID string) ([]auditRecord, error) {
	var recs []auditRecord
	inputs := map[string]int64{}
	for _, table := range append(slices.Clone(accountingTables), alertingTables...) {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE park_id = $1`, parkID) //nolint:gosec // G202: table names are constants
		if err != nil {
			return nil, fmt.Errorf("delete %s of park %s: %w", table, parkID, err)
		}
		if n, err := res.RowsAffected(); err == nil && n > 0 {
			inputs[table] = n
		}
	}
	if len(inputs) > 0 {
		recs = append(recs, auditRecord{action: "park_data.delete", resource: parkResource(parkID) + "/data", parkID: parkID, before: inputs})
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT `+meterColumns+` FROM meters WHERE park_id = $1 ORDER BY id{collate}`), parkID)
	if err != nil {
		return nil, fmt.Errorf("read meters of park %s: %w", parkID, err)
	}
	meters, err := collect(rows, scanMeter, "read meters of park "+parkID)
	if err != nil {
		return nil, err
	}
	for _, m := range meters {
		recs = append(recs, auditRecord{action: "meter.delete", resource: meterResource(parkID, m.ID), parkID: parkID, before: m})
	}
	rows, err = tx.QueryContext(ctx, s.q(`SELECT `+gatewayColumns+` FROM gateways WHERE park_id = $1 ORDER BY id{collate}`), parkID)
	if err != nil {
		return nil, fmt.Errorf("read gateways of park %s: %w", parkID, err)
	}
	gateways, err := collect(rows, scanGateway, "read gateways of park "+parkID)
	if err != nil {
		return nil, err
	}
	for _, g := range gateways {
		recs = append(recs, auditRecord{action: "gateway.delete", resource: gatewayResource(parkID, g.ID), parkID: parkID, before: g})
	}
	rows, err = tx.QueryContext(ctx, s.q(`SELECT `+enterpriseColumns+` FROM enterprises WHERE park_id = $1 ORDER BY id{collate}`), parkID)
	if err != nil {
		return nil, fmt.Errorf("read enterprises of park %s: %w", parkID, err)
	}
	enterprises, err := collect(rows, scanEnterprise, "read enterprises of park "+parkID)
	if err != nil {
		return nil, err
	}
	for _, e := range enterprises {
		recs = append(recs, auditRecord{action: "enterprise.delete", resource: enterpriseResource(parkID, e.ID), parkID: parkID, before: e})
	}
	for _, del := range []string{
		`DELETE FROM meters WHERE park_id = $1`,
		`DELETE FROM gateways WHERE park_id = $1`,
		`DELETE FROM enterprises WHERE park_id = $1`,
	} {
		if _, err := tx.ExecContext(ctx, del, parkID); err != nil {
			if isForeignKeyViolation(err) {
				return nil, fmt.Errorf("park %s gained contents while being deleted, retry: %w", parkID, registry.ErrConflict)
			}
			return nil, fmt.Errorf("delete contents of park %s: %w", parkID, err)
		}
	}
	return recs, nil
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// ---- enterprises

const enterpriseColumns = `park_id, id, name, industry_code, credit_code, key_energy_user`

func scanEnterprise(r rowScanner) (registry.Enterprise, error) {
	var e registry.Enterprise
	err := r.Scan(&e.ParkID, &e.ID, &e.Name, &e.IndustryCode, &e.CreditCode, &e.KeyEnergyUser)
	return e, err
}

// CreateEnterprise stores a new enterprise in an existing park.
func (s *Store) CreateEnterprise(ctx context.Context, e registry.Enterprise, actor string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, e.ParkID, "{for_share}"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO enterprises (`+enterpriseColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			e.ParkID, e.ID, e.Name, e.IndustryCode, e.CreditCode, e.KeyEnergyUser)
		if err != nil {
			return insertErr(fmt.Sprintf("enterprise %s in park %s", e.ID, e.ParkID), err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "enterprise.create", resource: enterpriseResource(e.ParkID, e.ID), parkID: e.ParkID, after: e,
		})
	})
}

// GetEnterprise returns an enterprise of a park; ErrNotFound when there is none.
func (s *Store) GetEnterprise(ctx context.Context, parkID, id string) (registry.Enterprise, error) {
	e, err := scanEnterprise(s.db.QueryRowContext(ctx,
		`SELECT `+enterpriseColumns+` FROM enterprises WHERE park_id = $1 AND id = $2`, parkID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Enterprise{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Enterprise{}, fmt.Errorf("get enterprise %s in park %s: %w", id, parkID, err)
	}
	return e, nil
}

// ListEnterprises returns a park's enterprises ordered by id.
func (s *Store) ListEnterprises(ctx context.Context, parkID string, page registry.Page) ([]registry.Enterprise, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+enterpriseColumns+` FROM enterprises
		WHERE park_id = $1 AND id{collate} > $2 ORDER BY id{collate} LIMIT $3`),
		parkID, page.After, int64(pageSize(page.Size)))
	if err != nil {
		return nil, fmt.Errorf("list enterprises of park %s: %w", parkID, err)
	}
	return collect(rows, scanEnterprise, "list enterprises of park "+parkID)
}

// UpdateEnterprise reads the enterprise, applies mutate and writes the result with its audit
// row in one transaction; see UpdatePark.
func (s *Store) UpdateEnterprise(ctx context.Context, parkID, id string, mutate func(*registry.Enterprise) error, actor string) (registry.Enterprise, error) {
	var out registry.Enterprise
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, parkID, "{for_share}"); err != nil {
			return err
		}
		before, err := scanEnterprise(tx.QueryRowContext(ctx, s.q(`SELECT `+enterpriseColumns+` FROM enterprises
			WHERE park_id = $1 AND id = $2{for_update}`), parkID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return registry.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read enterprise %s in park %s: %w", id, parkID, err)
		}
		e := before
		if err := mutate(&e); err != nil {
			return err
		}
		if err := keysUnchanged(id, e.ID, parkID, e.ParkID); err != nil {
			return err
		}
		out = e
		if e == before {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE enterprises
			SET name = $3, industry_code = $4, credit_code = $5, key_energy_user = $6
			WHERE park_id = $1 AND id = $2`,
			parkID, id, e.Name, e.IndustryCode, e.CreditCode, e.KeyEnergyUser)
		if err != nil {
			return fmt.Errorf("write enterprise %s in park %s: %w", id, parkID, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "enterprise.update", resource: enterpriseResource(parkID, id), parkID: parkID, before: before, after: e,
		})
	})
	if err != nil {
		return registry.Enterprise{}, err
	}
	return out, nil
}

func keysUnchanged(id, newID, parkID, newParkID string) error {
	if newID != id {
		return &registry.FieldError{Field: "id", Reason: "cannot be changed"}
	}
	if newParkID != parkID {
		return &registry.FieldError{Field: "park_id", Reason: "cannot be changed"}
	}
	return nil
}

// ---- meters

const meterColumns = `park_id, id, enterprise_id, carrier, direction, kind, unit, multiplier, rollover,
	green_class, gateway_id, interval_seconds, rated_capacity`

func scanMeter(r rowScanner) (registry.Meter, error) {
	var (
		m                     registry.Meter
		enterpriseID, gateway sql.NullString
	)
	err := r.Scan(&m.ParkID, &m.ID, &enterpriseID, &m.Carrier, &m.Direction, &m.Kind, &m.Unit,
		&m.Multiplier, &m.Rollover, &m.GreenClass, &gateway, &m.IntervalSeconds, &m.RatedCapacity)
	m.EnterpriseID, m.GatewayID = enterpriseID.String, gateway.String
	return m, err
}

// meterArgs are the values of meterColumns, in order.
func meterArgs(m registry.Meter) []any {
	return []any{m.ParkID, m.ID, nullIfEmpty(m.EnterpriseID), string(m.Carrier), string(m.Direction),
		string(m.Kind), m.Unit, m.Multiplier, m.Rollover, string(m.GreenClass), nullIfEmpty(m.GatewayID),
		int64(m.IntervalSeconds), m.RatedCapacity}
}

// checkMeterRefs checks inside tx that the meter's enterprise and gateway, if any, are in its
// park.
func (s *Store) checkMeterRefs(ctx context.Context, tx *sql.Tx, m registry.Meter) error {
	if m.EnterpriseID != "" {
		var got string
		err := tx.QueryRowContext(ctx, `SELECT id FROM enterprises WHERE park_id = $1 AND id = $2`,
			m.ParkID, m.EnterpriseID).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return &registry.FieldError{Field: "enterprise_id",
				Reason: fmt.Sprintf("enterprise %s is not in park %s", m.EnterpriseID, m.ParkID)}
		}
		if err != nil {
			return fmt.Errorf("look up enterprise %s: %w", m.EnterpriseID, err)
		}
	}
	if m.GatewayID != "" {
		var park string
		err := tx.QueryRowContext(ctx, `SELECT park_id FROM gateways WHERE id = $1`, m.GatewayID).Scan(&park)
		if errors.Is(err, sql.ErrNoRows) {
			return &registry.FieldError{Field: "gateway_id",
				Reason: fmt.Sprintf("gateway %s is not in park %s: there is no such gateway", m.GatewayID, m.ParkID)}
		}
		if err != nil {
			return fmt.Errorf("look up gateway %s: %w", m.GatewayID, err)
		}
		if park != m.ParkID {
			return &registry.FieldError{Field: "gateway_id",
				Reason: fmt.Sprintf("gateway %s is not in park %s but in park %s", m.GatewayID, m.ParkID, park)}
		}
	}
	return nil
}

// CreateMeter stores a new meter after checking, in the same transaction, that its park
// exists and its enterprise and gateway are in that park.
func (s *Store) CreateMeter(ctx context.Context, m registry.Meter, actor string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, m.ParkID, "{for_share}"); err != nil {
			return err
		}
		if err := s.checkMeterRefs(ctx, tx, m); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meters (`+meterColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, meterArgs(m)...)
		if err != nil {
			return insertErr(fmt.Sprintf("meter %s in park %s", m.ID, m.ParkID), err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "meter.create", resource: meterResource(m.ParkID, m.ID), parkID: m.ParkID, after: m,
		})
	})
}

// GetMeter returns a meter of a park; ErrNotFound when there is none.
func (s *Store) GetMeter(ctx context.Context, parkID, id string) (registry.Meter, error) {
	m, err := scanMeter(s.db.QueryRowContext(ctx,
		`SELECT `+meterColumns+` FROM meters WHERE park_id = $1 AND id = $2`, parkID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Meter{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Meter{}, fmt.Errorf("get meter %s in park %s: %w", id, parkID, err)
	}
	return m, nil
}

// ListMeters returns the meters matching f ordered by id. Meter ids are unique within a park
// only: without f.ParkID the list is ordered by park, then id, and page.After is the
// "park_id/id" of the last meter of the previous page.
func (s *Store) ListMeters(ctx context.Context, f registry.MeterFilter, page registry.Page) ([]registry.Meter, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	order := "id{collate}"
	if f.ParkID != "" {
		where = append(where, "park_id = "+arg(f.ParkID))
		if page.After != "" {
			where = append(where, "id{collate} > "+arg(page.After))
		}
	} else {
		order = "park_id{collate}, id{collate}"
		if page.After != "" {
			park, id, ok := strings.Cut(page.After, "/")
			if !ok {
				return nil, &registry.FieldError{Field: "after",
					Reason: fmt.Sprintf("%q must be park_id/meter_id when the listing spans parks", page.After)}
			}
			p, i := arg(park), arg(id)
			where = append(where, fmt.Sprintf("(park_id{collate} > %s OR (park_id = %s AND id{collate} > %s))", p, p, i))
		}
	}
	if f.EnterpriseID != "" {
		where = append(where, "enterprise_id = "+arg(f.EnterpriseID))
	}
	if f.GatewayID != "" {
		where = append(where, "gateway_id = "+arg(f.GatewayID))
	}
	query := `SELECT ` + meterColumns + ` FROM meters`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY " + order + " LIMIT " + arg(int64(pageSize(page.Size)))
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list meters: %w", err)
	}
	return collect(rows, scanMeter, "list meters")
}

// UpdateMeter reads the meter, applies mutate, checks the result's enterprise and gateway are
// in its park and writes it with its audit row, all in one transaction; see UpdatePark.
func (s *Store) UpdateMeter(ctx context.Context, parkID, id string, mutate func(*registry.Meter) error, actor string) (registry.Meter, error) {
	var out registry.Meter
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, parkID, "{for_share}"); err != nil {
			return err
		}
		before, err := scanMeter(tx.QueryRowContext(ctx, s.q(`SELECT `+meterColumns+` FROM meters
			WHERE park_id = $1 AND id = $2{for_update}`), parkID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return registry.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read meter %s in park %s: %w", id, parkID, err)
		}
		m := before
		if err := mutate(&m); err != nil {
			return err
		}
		if err := keysUnchanged(id, m.ID, parkID, m.ParkID); err != nil {
			return err
		}
		out = m
		if m == before {
			return nil
		}
		if err := s.checkMeterRefs(ctx, tx, m); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE meters SET enterprise_id = $3, carrier = $4, direction = $5,
			kind = $6, unit = $7, multiplier = $8, rollover = $9, green_class = $10, gateway_id = $11,
			interval_seconds = $12, rated_capacity = $13
			WHERE park_id = $1 AND id = $2`, meterArgs(m)...)
		if err != nil {
			if isForeignKeyViolation(err) {
				return fmt.Errorf("meter %s: a referenced row changed concurrently, retry: %w", id, registry.ErrConflict)
			}
			return fmt.Errorf("write meter %s in park %s: %w", id, parkID, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "meter.update", resource: meterResource(parkID, id), parkID: parkID, before: before, after: m,
		})
	})
	if err != nil {
		return registry.Meter{}, err
	}
	return out, nil
}

// ---- gateways

const gatewayColumns = `id, park_id, name, password_hash`

func scanGateway(r rowScanner) (registry.Gateway, error) {
	var g registry.Gateway
	err := r.Scan(&g.ID, &g.ParkID, &g.Name, &g.PasswordHash)
	return g, err
}

// CreateGateway stores a new gateway in an existing park; ErrAlreadyExists when its id is
// taken in any park. The audit row leaves out the password hash.
func (s *Store) CreateGateway(ctx context.Context, g registry.Gateway, actor string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockPark(ctx, tx, g.ParkID, "{for_share}"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO gateways (`+gatewayColumns+`) VALUES ($1, $2, $3, $4)`,
			g.ID, g.ParkID, g.Name, g.PasswordHash)
		if err != nil {
			return insertErr("gateway "+g.ID, err)
		}
		return s.audit(ctx, tx, actor, auditRecord{
			action: "gateway.create", resource: gatewayResource(g.ParkID, g.ID), parkID: g.ParkID, after: g,
		})
	})
}

// GetGateway returns a gateway by its id, unique across parks; ErrNotFound when there is none.
func (s *Store) GetGateway(ctx context.Context, id string) (registry.Gateway, error) {
	g, err := scanGateway(s.db.QueryRowContext(ctx, `SELECT `+gatewayColumns+` FROM gateways WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Gateway{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Gateway{}, fmt.Errorf("get gateway %s: %w", id, err)
	}
	return g, nil
}

// ListGateways returns a park's gateways ordered by id.
func (s *Store) ListGateways(ctx context.Context, parkID string, page registry.Page) ([]registry.Gateway, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+gatewayColumns+` FROM gateways
		WHERE park_id = $1 AND id{collate} > $2 ORDER BY id{collate} LIMIT $3`),
		parkID, page.After, int64(pageSize(page.Size)))
	if err != nil {
		return nil, fmt.Errorf("list gateways of park %s: %w", parkID, err)
	}
	return collect(rows, scanGateway, "list gateways of park "+parkID)
}

// collect scans every row with scan and closes rows.
func collect[T any](rows *sql.Rows, scan func(rowScanner) (T, error), what string) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
