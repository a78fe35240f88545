package sqlstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// opener returns a new, migrated, empty store that the test's cleanup closes.
type opener func(t *testing.T) *Store

// testStore is the suite every database runs.
func testStore(t *testing.T, open opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *Store)
	}{
		{"MigrateTwice", testMigrateTwice},
		{"Parks", testParks},
		{"Enterprises", testEnterprises},
		{"Meters", testMeters},
		{"MeterReferences", testMeterReferences},
		{"Gateways", testGateways},
		{"Pagination", testPagination},
		{"ListMetersAcrossParks", testListMetersAcrossParks},
		{"DeletePark", testDeletePark},
		{"FailedMutateWritesNothing", testFailedMutate},
		{"UnchangedUpdateWritesNothing", testUnchangedUpdate},
		{"Audit", testAudit},
		{"Tokens", testTokens},
		{"ConcurrentWrites", testConcurrentWrites},
		{"Service", testService},
		{"ForeignKeys", testForeignKeys},
		{"DeadLetters", testDeadLetters},
		{"CountDeadLetters", testCountDeadLetters},
		{"GatewaySequences", testGatewaySequences},
		{"ValueAdded", testValueAdded},
		{"ProcessOutput", testProcessOutput},
		{"Instruments", testInstruments},
		{"InstrumentSerials", testInstrumentSerials},
		{"ConcurrentSerials", testConcurrentSerials},
		{"Replacements", testReplacements},
		{"FactorSets", testFactorSets},
		{"DirtyHours", testDirtyHours},
		{"ConcurrentMarkDirty", testConcurrentMarkDirty},
		{"DeleteParkWithInputs", testDeleteParkWithInputs},
		{"AlertRules", testAlertRules},
		{"SaveAlerts", testSaveAlerts},
		{"ListAlerts", testListAlerts},
		{"AlertHistory", testAlertHistory},
		{"Silences", testSilences},
		{"NotificationEndpoints", testEndpoints},
		{"Deliveries", testDeliveries},
		{"Leases", testLeases},
		{"ConcurrentLease", testConcurrentLease},
		{"AlertingTablesDeleteOrder", testAlertingTablesDeleteOrder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			s.now = func() time.Time { return time.Date(2026, 11, 22, 8, 0, 0, 123e6, time.UTC) }
			tc.fn(t, s)
		})
	}
}

const actor = "admin:t1(test)"

// fixture: park p1 with enterprise e1 and gateway g1; park p2 with enterprise e2 and gateway g2.
func seed(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	for _, p := range []string{"p1", "p2"} {
		must(t, s.CreatePark(ctx, park(p), actor))
	}
	must(t, s.CreateEnterprise(ctx, enterprise("p1", "e1"), actor))
	must(t, s.CreateEnterprise(ctx, enterprise("p2", "e2"), actor))
	must(t, s.CreateGateway(ctx, registry.Gateway{ID: "g1", ParkID: "p1", Name: "gw 1", PasswordHash: "$7$hash-g1"}, actor))
	must(t, s.CreateGateway(ctx, registry.Gateway{ID: "g2", ParkID: "p2", Name: "gw 2", PasswordHash: "$7$hash-g2"}, actor))
}

func park(id string) registry.Park {
	return registry.Park{ID: id, Name: "Park " + id, Province: "Jiangsu", Timezone: "Asia/Shanghai"}
}

func enterprise(parkID, id string) registry.Enterprise {
	return registry.Enterprise{ID: id, ParkID: parkID, Name: "Enterprise " + id, IndustryCode: "C3011",
		CreditCode: "91320500MA1XXXXX0X", KeyEnergyUser: true}
}

func meter(parkID, id, enterpriseID, gatewayID string) registry.Meter {
	return registry.Meter{ID: id, ParkID: parkID, EnterpriseID: enterpriseID, Carrier: registry.Electricity,
		Direction: registry.In, Kind: registry.Counter, Unit: "kWh", Multiplier: 0.1, Rollover: 99999999.99,
		GreenClass: registry.GreenNone, GatewayID: gatewayID, IntervalSeconds: 900, RatedCapacity: 1250.5}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func wantFieldError(t *testing.T, err error, field, reasonPart string) {
	t.Helper()
	var fe *registry.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want a *registry.FieldError on %s", err, field)
	}
	if fe.Field != field || !strings.Contains(fe.Reason, reasonPart) {
		t.Fatalf("field error = %q: %q, want %q containing %q", fe.Field, fe.Reason, field, reasonPart)
	}
}

func audit(t *testing.T, s *Store, f AuditFilter) []AuditEntry {
	t.Helper()
	entries, err := s.ListAudit(t.Context(), f)
	must(t, err)
	return entries
}

func count(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	must(t, s.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+table).Scan(&n))
	return n
}

func testMigrateTwice(t *testing.T, s *Store) {
	ctx := t.Context()
	must(t, s.CreatePark(ctx, park("p1"), actor))
	versions := count(t, s, "goose_db_version")
	must(t, s.Migrate(ctx))
	must(t, s.Migrate(ctx))
	if got := count(t, s, "goose_db_version"); got != versions {
		t.Errorf("goose_db_version has %d rows after migrating again, want %d", got, versions)
	}
	if _, err := s.GetPark(ctx, "p1"); err != nil {
		t.Errorf("park lost after migrating again: %v", err)
	}
	must(t, s.Ping(ctx))
}

func testParks(t *testing.T, s *Store) {
	ctx := t.Context()
	p := park("p1")
	must(t, s.CreatePark(ctx, p, actor))
	wantErr(t, s.CreatePark(ctx, park("p1"), actor), registry.ErrAlreadyExists)

	got, err := s.GetPark(ctx, "p1")
	must(t, err)
	if got != p {
		t.Errorf("GetPark = %+v, want %+v", got, p)
	}
	_, err = s.GetPark(ctx, "nope")
	wantErr(t, err, registry.ErrNotFound)

	updated, err := s.UpdatePark(ctx, "p1", func(p *registry.Park) error {
		p.Name, p.Timezone = "Renamed", "Asia/Urumqi"
		return nil
	}, actor)
	must(t, err)
	want := registry.Park{ID: "p1", Name: "Renamed", Province: "Jiangsu", Timezone: "Asia/Urumqi"}
	if updated != want {
		t.Errorf("UpdatePark = %+v, want %+v", updated, want)
	}
	if got, _ := s.GetPark(ctx, "p1"); got != want {
		t.Errorf("GetPark after update = %+v, want %+v", got, want)
	}
	_, err = s.UpdatePark(ctx, "nope", func(*registry.Park) error { return nil }, actor)
	wantErr(t, err, registry.ErrNotFound)
	_, err = s.UpdatePark(ctx, "p1", func(p *registry.Park) error { p.ID = "p9"; return nil }, actor)
	wantFieldError(t, err, "id", "cannot be changed")

	must(t, s.CreatePark(ctx, park("p2"), actor))
	list, err := s.ListParks(ctx, registry.Page{})
	must(t, err)
	if ids := parkIDs(list); !slices.Equal(ids, []string{"p1", "p2"}) {
		t.Errorf("ListParks = %v", ids)
	}

	must(t, s.DeletePark(ctx, "p1", false, actor))
	_, err = s.GetPark(ctx, "p1")
	wantErr(t, err, registry.ErrNotFound)
	wantErr(t, s.DeletePark(ctx, "p1", false, actor), registry.ErrNotFound)
	wantErr(t, s.DeletePark(ctx, "p1", true, actor), registry.ErrNotFound)
}

func testEnterprises(t *testing.T, s *Store) {
	ctx := t.Context()
	must(t, s.CreatePark(ctx, park("p1"), actor))
	must(t, s.CreatePark(ctx, park("p2"), actor))

	err := s.CreateEnterprise(ctx, enterprise("p9", "e1"), actor)
	wantErr(t, err, registry.ErrNotFound)
	if !strings.Contains(err.Error(), "park p9") {
		t.Errorf("error %q does not name the missing park", err)
	}

	e := enterprise("p1", "e1")
	e.KeyEnergyUser = false
	must(t, s.CreateEnterprise(ctx, e, actor))
	wantErr(t, s.CreateEnterprise(ctx, enterprise("p1", "e1"), actor), registry.ErrAlreadyExists)
	// Enterprise ids are scoped to their park.
	must(t, s.CreateEnterprise(ctx, enterprise("p2", "e1"), actor))

	got, err := s.GetEnterprise(ctx, "p1", "e1")
	must(t, err)
	if got != e {
		t.Errorf("GetEnterprise = %+v, want %+v", got, e)
	}
	_, err = s.GetEnterprise(ctx, "p1", "e2")
	wantErr(t, err, registry.ErrNotFound)

	updated, err := s.UpdateEnterprise(ctx, "p1", "e1", func(e *registry.Enterprise) error {
		e.Name, e.KeyEnergyUser = "Steelworks", true
		return nil
	}, actor)
	must(t, err)
	if !updated.KeyEnergyUser || updated.Name != "Steelworks" {
		t.Errorf("UpdateEnterprise = %+v", updated)
	}
	if got, _ := s.GetEnterprise(ctx, "p1", "e1"); got != updated {
		t.Errorf("GetEnterprise after update = %+v, want %+v", got, updated)
	}
	if other, _ := s.GetEnterprise(ctx, "p2", "e1"); other.Name != "Enterprise e1" {
		t.Errorf("update of p1/e1 changed p2/e1: %+v", other)
	}
	_, err = s.UpdateEnterprise(ctx, "p1", "e1", func(e *registry.Enterprise) error { e.ParkID = "p2"; return nil }, actor)
	wantFieldError(t, err, "park_id", "cannot be changed")
	_, err = s.UpdateEnterprise(ctx, "p1", "e9", func(*registry.Enterprise) error { return nil }, actor)
	wantErr(t, err, registry.ErrNotFound)
	_, err = s.UpdateEnterprise(ctx, "p9", "e1", func(*registry.Enterprise) error { return nil }, actor)
	wantErr(t, err, registry.ErrNotFound)

	list, err := s.ListEnterprises(ctx, "p1", registry.Page{})
	must(t, err)
	if len(list) != 1 || list[0] != updated {
		t.Errorf("ListEnterprises(p1) = %+v", list)
	}
	list, err = s.ListEnterprises(ctx, "p9", registry.Page{})
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListEnterprises(p9) = %+v, want none", list)
	}
}

func testMeters(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)

	err := s.CreateMeter(ctx, meter("p9", "m1", "", ""), actor)
	wantErr(t, err, registry.ErrNotFound)
	if !strings.Contains(err.Error(), "park p9") {
		t.Errorf("error %q does not name the missing park", err)
	}

	full := meter("p1", "m1", "e1", "g1")
	full.GreenClass = registry.GreenDirect
	bare := meter("p1", "m2", "", "")
	bare.Carrier, bare.Unit, bare.Kind, bare.Rollover, bare.RatedCapacity = registry.NaturalGas, "m3/h", registry.Gauge, 0, 0
	for _, m := range []registry.Meter{full, bare} {
		must(t, s.CreateMeter(ctx, m, actor))
		got, err := s.GetMeter(ctx, m.ParkID, m.ID)
		must(t, err)
		if got != m {
			t.Errorf("GetMeter = %+v, want %+v", got, m)
		}
	}
	wantErr(t, s.CreateMeter(ctx, meter("p1", "m1", "", ""), actor), registry.ErrAlreadyExists)
	// Meter ids are scoped to their park.
	must(t, s.CreateMeter(ctx, meter("p2", "m1", "e2", "g2"), actor))

	var n int
	must(t, s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM meters WHERE enterprise_id IS NULL AND gateway_id IS NULL`).Scan(&n))
	if n != 1 {
		t.Errorf("%d meters with NULL enterprise and gateway, want 1 (empty references are stored as NULL)", n)
	}

	_, err = s.GetMeter(ctx, "p2", "m2")
	wantErr(t, err, registry.ErrNotFound)

	updated, err := s.UpdateMeter(ctx, "p1", "m1", func(m *registry.Meter) error {
		m.EnterpriseID, m.GatewayID, m.Multiplier = "", "", 2.5
		return nil
	}, actor)
	must(t, err)
	if updated.EnterpriseID != "" || updated.GatewayID != "" || updated.Multiplier != 2.5 {
		t.Errorf("UpdateMeter = %+v", updated)
	}
	if got, _ := s.GetMeter(ctx, "p1", "m1"); got != updated {
		t.Errorf("GetMeter after update = %+v, want %+v", got, updated)
	}
	_, err = s.UpdateMeter(ctx, "p1", "m9", func(*registry.Meter) error { return nil }, actor)
	wantErr(t, err, registry.ErrNotFound)
	_, err = s.UpdateMeter(ctx, "p1", "m1", func(m *registry.Meter) error { m.ID = "m3"; return nil }, actor)
	wantFieldError(t, err, "id", "cannot be changed")

	must(t, s.CreateMeter(ctx, meter("p1", "m3", "e1", "g1"), actor))
	must(t, s.CreateMeter(ctx, meter("p1", "m4", "e1", ""), actor))
	tests := []struct {
		name string
		f    registry.MeterFilter
		want []string
	}{
		{"park", registry.MeterFilter{ParkID: "p1"}, []string{"m1", "m2", "m3", "m4"}},
		{"enterprise", registry.MeterFilter{ParkID: "p1", EnterpriseID: "e1"}, []string{"m3", "m4"}},
		{"gateway", registry.MeterFilter{ParkID: "p1", GatewayID: "g1"}, []string{"m3"}},
		{"enterprise and gateway", registry.MeterFilter{ParkID: "p1", EnterpriseID: "e1", GatewayID: "g1"}, []string{"m3"}},
		{"gateway across parks", registry.MeterFilter{GatewayID: "g2"}, []string{"m1"}},
		{"other park", registry.MeterFilter{ParkID: "p2"}, []string{"m1"}},
		{"unknown park", registry.MeterFilter{ParkID: "p9"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListMeters(ctx, tc.f, registry.Page{})
			must(t, err)
			if ids := meterIDs(got); !slices.Equal(ids, tc.want) {
				t.Errorf("ListMeters(%+v) = %v, want %v", tc.f, ids, tc.want)
			}
		})
	}
}

func testMeterReferences(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	tests := []struct {
		name          string
		m             registry.Meter
		field, reason string
	}{
		{"enterprise of another park", meter("p1", "m1", "e2", ""), "enterprise_id", "enterprise e2 is not in park p1"},
		{"missing enterprise", meter("p1", "m1", "e9", ""), "enterprise_id", "enterprise e9 is not in park p1"},
		{"gateway of another park", meter("p1", "m1", "", "g2"), "gateway_id", "gateway g2 is not in park p1"},
		{"missing gateway", meter("p1", "m1", "", "g9"), "gateway_id", "gateway g9 is not in park p1"},
	}
	for _, tc := range tests {
		t.Run("create/"+tc.name, func(t *testing.T) {
			wantFieldError(t, s.CreateMeter(ctx, tc.m, actor), tc.field, tc.reason)
			_, err := s.GetMeter(ctx, "p1", "m1")
			wantErr(t, err, registry.ErrNotFound)
		})
	}

	must(t, s.CreateMeter(ctx, meter("p1", "m1", "e1", "g1"), actor))
	auditRows := len(audit(t, s, AuditFilter{}))
	for _, tc := range tests {
		t.Run("update/"+tc.name, func(t *testing.T) {
			_, err := s.UpdateMeter(ctx, "p1", "m1", func(m *registry.Meter) error {
				m.EnterpriseID, m.GatewayID = tc.m.EnterpriseID, tc.m.GatewayID
				return nil
			}, actor)
			wantFieldError(t, err, tc.field, tc.reason)
			got, err := s.GetMeter(ctx, "p1", "m1")
			must(t, err)
			if got.EnterpriseID != "e1" || got.GatewayID != "g1" {
				t.Errorf("meter changed by a refused update: %+v", got)
			}
		})
	}
	if got := len(audit(t, s, AuditFilter{})); got != auditRows {
		t.Errorf("refused updates wrote %d audit rows", got-auditRows)
	}
}

func testGateways(t *testing.T, s *Store) {
	ctx := t.Context()
	must(t, s.CreatePark(ctx, park("p1"), actor))
	must(t, s.CreatePark(ctx, park("p2"), actor))
	err := s.CreateGateway(ctx, registry.Gateway{ID: "g1", ParkID: "p9"}, actor)
	wantErr(t, err, registry.ErrNotFound)
	if !strings.Contains(err.Error(), "park p9") {
		t.Errorf("error %q does not name the missing park", err)
	}

	g := registry.Gateway{ID: "g1", ParkID: "p1", Name: "roof", PasswordHash: "$7$101$salt$hash"}
	must(t, s.CreateGateway(ctx, g, actor))
	got, err := s.GetGateway(ctx, "g1")
	must(t, err)
	if got != g {
		t.Errorf("GetGateway = %+v, want %+v", got, g)
	}
	// A gateway id is its MQTT user name: unique across parks.
	wantErr(t, s.CreateGateway(ctx, registry.Gateway{ID: "g1", ParkID: "p2"}, actor), registry.ErrAlreadyExists)
	_, err = s.GetGateway(ctx, "g9")
	wantErr(t, err, registry.ErrNotFound)

	must(t, s.CreateGateway(ctx, registry.Gateway{ID: "g2", ParkID: "p2"}, actor))
	list, err := s.ListGateways(ctx, "p1", registry.Page{})
	must(t, err)
	if len(list) != 1 || list[0] != g {
		t.Errorf("ListGateways(p1) = %+v", list)
	}

	for _, e := range audit(t, s, AuditFilter{ResourcePrefix: "parks/p1/gateways/"}) {
		if strings.Contains(string(e.After), "hash") || strings.Contains(string(e.After), "$7$") {
			t.Errorf("audit row %s leaks the password hash: %s", e.Action, e.After)
		}
	}
}

func testPagination(t *testing.T, s *Store) {
	ctx := t.Context()
	// Bytewise order: '-' < '.' < digits < '_' < letters. PostgreSQL sorts this way whatever
	// its locale.
	ids := []string{"a-1", "a.1", "a1", "a_1", "ab"}
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("x%02d", i))
	}
	slices.Reverse(ids)
	must(t, s.CreatePark(ctx, park("p1"), actor))
	for _, id := range ids {
		must(t, s.CreatePark(ctx, park(id), actor))
		must(t, s.CreateEnterprise(ctx, enterprise("p1", id), actor))
		must(t, s.CreateGateway(ctx, registry.Gateway{ID: id, ParkID: "p1"}, actor))
		must(t, s.CreateMeter(ctx, meter("p1", id, "", ""), actor))
	}
	want := slices.Sorted(slices.Values(ids))

	type lister func(page registry.Page) ([]string, error)
	tests := []struct {
		name string
		want []string
		list lister
	}{
		{"parks", slices.Sorted(slices.Values(append(slices.Clone(ids), "p1"))), func(p registry.Page) ([]string, error) {
			l, err := s.ListParks(ctx, p)
			return parkIDs(l), err
		}},
		{"enterprises", want, func(p registry.Page) ([]string, error) {
			l, err := s.ListEnterprises(ctx, "p1", p)
			ids := make([]string, len(l))
			for i, e := range l {
				ids[i] = e.ID
			}
			return ids, err
		}},
		{"gateways", want, func(p registry.Page) ([]string, error) {
			l, err := s.ListGateways(ctx, "p1", p)
			ids := make([]string, len(l))
			for i, g := range l {
				ids[i] = g.ID
			}
			return ids, err
		}},
		{"meters", want, func(p registry.Page) ([]string, error) {
			l, err := s.ListMeters(ctx, registry.MeterFilter{ParkID: "p1"}, p)
			return meterIDs(l), err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			all, err := tc.list(registry.Page{})
			must(t, err)
			if !slices.Equal(all, tc.want) {
				t.Fatalf("one page = %v, want %v", all, tc.want)
			}
			var got []string
			page := registry.Page{Size: 7}
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("pagination does not end")
				}
				ids, err := tc.list(page)
				must(t, err)
				if len(ids) > 7 {
					t.Fatalf("page of %d, want at most 7", len(ids))
				}
				if len(ids) == 0 {
					break
				}
				got = append(got, ids...)
				page.After = ids[len(ids)-1]
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("paged = %v, want %v", got, tc.want)
			}
		})
	}
}

func testListMetersAcrossParks(t *testing.T, s *Store) {
	ctx := t.Context()
	for _, p := range []string{"p1", "p2"} {
		must(t, s.CreatePark(ctx, park(p), actor))
		for _, m := range []string{"m1", "m2", "m3"} {
			must(t, s.CreateMeter(ctx, meter(p, m, "", ""), actor))
		}
	}
	var got []string
	page := registry.Page{Size: 2}
	for {
		l, err := s.ListMeters(ctx, registry.MeterFilter{}, page)
		must(t, err)
		if len(l) == 0 {
			break
		}
		for _, m := range l {
			got = append(got, m.ParkID+"/"+m.ID)
		}
		page.After = got[len(got)-1]
	}
	want := []string{"p1/m1", "p1/m2", "p1/m3", "p2/m1", "p2/m2", "p2/m3"}
	if !slices.Equal(got, want) {
		t.Errorf("paged across parks = %v, want %v", got, want)
	}
	_, err := s.ListMeters(ctx, registry.MeterFilter{}, registry.Page{After: "m1"})
	wantFieldError(t, err, "after", "park_id/meter_id")
}

func testDeletePark(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.CreateEnterprise(ctx, enterprise("p1", "e3"), actor))
	for _, id := range []string{"m1", "m2", "m3"} {
		must(t, s.CreateMeter(ctx, meter("p1", id, "e1", "g1"), actor))
	}
	must(t, s.CreateMeter(ctx, meter("p2", "m1", "e2", "g2"), actor))
	must(t, s.CreateToken(ctx, tokenRecord("t-op", "hash-op", auth.RoleOperator, "p1"), actor))
	auditBefore := audit(t, s, AuditFilter{})

	err := s.DeletePark(ctx, "p1", false, actor)
	wantErr(t, err, registry.ErrConflict)
	for _, part := range []string{"2 enterprises", "3 meters", "1 gateway", "cascade=true"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("conflict %q does not say %q", err, part)
		}
	}
	if got := audit(t, s, AuditFilter{}); len(got) != len(auditBefore) {
		t.Errorf("refused delete wrote %d audit rows", len(got)-len(auditBefore))
	}
	if l, _ := s.ListMeters(ctx, registry.MeterFilter{ParkID: "p1"}, registry.Page{}); len(l) != 3 {
		t.Errorf("refused delete left %d of 3 meters", len(l))
	}

	must(t, s.DeletePark(ctx, "p1", true, actor))
	_, err = s.GetPark(ctx, "p1")
	wantErr(t, err, registry.ErrNotFound)
	for table, want := range map[string]int{"parks": 1, "enterprises": 1, "gateways": 1, "meters": 1, "tokens": 1} {
		if got := count(t, s, table); got != want {
			t.Errorf("%d rows in %s after the cascade, want %d (those of p2, and the token)", got, table, want)
		}
	}
	if _, err := s.GetMeter(ctx, "p2", "m1"); err != nil {
		t.Errorf("cascade of p1 touched p2: %v", err)
	}
	if p, err := s.LookupToken(ctx, "hash-op"); err != nil || !slices.Equal(p.ParkIDs, []string{"p1"}) {
		t.Errorf("token of the deleted park: %+v, %v; want it kept", p, err)
	}

	entries := audit(t, s, AuditFilter{ParkID: "p1"})
	var actions []string
	for _, e := range entries {
		if e.ID > auditBefore[0].ID {
			actions = append(actions, e.Action+" "+e.Resource)
		}
	}
	wantActions := []string{
		"park.delete parks/p1",
		"enterprise.delete parks/p1/enterprises/e3",
		"enterprise.delete parks/p1/enterprises/e1",
		"gateway.delete parks/p1/gateways/g1",
		"meter.delete parks/p1/meters/m3",
		"meter.delete parks/p1/meters/m2",
		"meter.delete parks/p1/meters/m1",
	}
	if !slices.Equal(actions, wantActions) {
		t.Errorf("cascade audit rows, newest first:\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(wantActions, "\n"))
	}
	if got := len(entries) - len(actions); got != 7 {
		t.Errorf("%d audit rows of p1 from before the delete, want 7 kept", got)
	}

	// The id is free again, and the new park starts empty.
	must(t, s.CreatePark(ctx, park("p1"), actor))
	if l, _ := s.ListMeters(ctx, registry.MeterFilter{ParkID: "p1"}, registry.Page{}); len(l) != 0 {
		t.Errorf("recreated park has meters: %+v", l)
	}
}

func testFailedMutate(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.CreateMeter(ctx, meter("p1", "m1", "e1", "g1"), actor))
	refusal := &registry.FieldError{Field: "name", Reason: "is required"}
	tests := []struct {
		name   string
		update func() error
		read   func() (any, error)
	}{
		{"park", func() error {
			_, err := s.UpdatePark(ctx, "p1", func(p *registry.Park) error { p.Name = ""; return refusal }, actor)
			return err
		}, func() (any, error) { return s.GetPark(ctx, "p1") }},
		{"enterprise", func() error {
			_, err := s.UpdateEnterprise(ctx, "p1", "e1", func(e *registry.Enterprise) error { e.Name = ""; return refusal }, actor)
			return err
		}, func() (any, error) { return s.GetEnterprise(ctx, "p1", "e1") }},
		{"meter", func() error {
			_, err := s.UpdateMeter(ctx, "p1", "m1", func(m *registry.Meter) error { m.Unit = ""; return refusal }, actor)
			return err
		}, func() (any, error) { return s.GetMeter(ctx, "p1", "m1") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := tc.read()
			must(t, err)
			auditBefore := audit(t, s, AuditFilter{})
			err = tc.update()
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe != refusal {
				t.Fatalf("err = %v, want the mutate's own *FieldError", err)
			}
			wantErr(t, err, registry.ErrInvalid)
			after, err := tc.read()
			must(t, err)
			if after != before {
				t.Errorf("row changed by a failed mutate: %+v, was %+v", after, before)
			}
			if got := audit(t, s, AuditFilter{}); len(got) != len(auditBefore) {
				t.Errorf("failed mutate wrote %d audit rows", len(got)-len(auditBefore))
			}
		})
	}
}

func testUnchangedUpdate(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.CreateMeter(ctx, meter("p1", "m1", "e1", "g1"), actor))
	n := len(audit(t, s, AuditFilter{}))
	_, err := s.UpdatePark(ctx, "p1", func(*registry.Park) error { return nil }, actor)
	must(t, err)
	_, err = s.UpdateEnterprise(ctx, "p1", "e1", func(*registry.Enterprise) error { return nil }, actor)
	must(t, err)
	m, err := s.UpdateMeter(ctx, "p1", "m1", func(*registry.Meter) error { return nil }, actor)
	must(t, err)
	if m != meter("p1", "m1", "e1", "g1") {
		t.Errorf("UpdateMeter without change = %+v", m)
	}
	if got := len(audit(t, s, AuditFilter{})); got != n {
		t.Errorf("updates that change nothing wrote %d audit rows", got-n)
	}
}

func testAudit(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	m := meter("p1", "m1", "e1", "g1")
	must(t, s.CreateMeter(ctx, m, "operator:t2"))
	m2, err := s.UpdateMeter(ctx, "p1", "m1", func(m *registry.Meter) error { m.Multiplier = 40; return nil }, "operator:t3")
	must(t, err)
	p, err := s.UpdatePark(ctx, "p2", func(p *registry.Park) error { p.Province = "Zhejiang"; return nil }, actor)
	must(t, err)
	e, err := s.UpdateEnterprise(ctx, "p1", "e1", func(e *registry.Enterprise) error { e.IndustryCode = "C2511"; return nil }, actor)
	must(t, err)

	all := audit(t, s, AuditFilter{})
	if len(all) != 10 {
		t.Fatalf("%d audit rows, want 10", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("audit not newest first: id %d after %d", all[i].ID, all[i-1].ID)
		}
	}
	wantAt := time.Date(2026, 11, 22, 8, 0, 0, 123e6, time.UTC)
	tests := []struct {
		action, resource, park, actor string
		before, after                 any
	}{
		{"enterprise.update", "parks/p1/enterprises/e1", "p1", actor, enterprise("p1", "e1"), e},
		{"park.update", "parks/p2", "p2", actor, park("p2"), p},
		{"meter.update", "parks/p1/meters/m1", "p1", "operator:t3", m, m2},
		{"meter.create", "parks/p1/meters/m1", "p1", "operator:t2", nil, m},
		{"gateway.create", "parks/p2/gateways/g2", "p2", actor, nil, registry.Gateway{ID: "g2", ParkID: "p2", Name: "gw 2"}},
		{"gateway.create", "parks/p1/gateways/g1", "p1", actor, nil, registry.Gateway{ID: "g1", ParkID: "p1", Name: "gw 1"}},
		{"enterprise.create", "parks/p2/enterprises/e2", "p2", actor, nil, enterprise("p2", "e2")},
		{"enterprise.create", "parks/p1/enterprises/e1", "p1", actor, nil, enterprise("p1", "e1")},
		{"park.create", "parks/p2", "p2", actor, nil, park("p2")},
		{"park.create", "parks/p1", "p1", actor, nil, park("p1")},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d_%s", i, tc.action), func(t *testing.T) {
			got := all[i]
			if got.Action != tc.action || got.Resource != tc.resource || got.ParkID != tc.park || got.Actor != tc.actor {
				t.Errorf("entry = %s %s park %s by %s, want %s %s park %s by %s",
					got.Action, got.Resource, got.ParkID, got.Actor, tc.action, tc.resource, tc.park, tc.actor)
			}
			if !got.At.Equal(wantAt) {
				t.Errorf("at = %v, want %v", got.At, wantAt)
			}
			wantJSON(t, "before", got.Before, tc.before)
			wantJSON(t, "after", got.After, tc.after)
		})
	}

	filters := []struct {
		name string
		f    AuditFilter
		want int
	}{
		{"park", AuditFilter{ParkID: "p1"}, 6},
		{"prefix", AuditFilter{ResourcePrefix: "parks/p1/meters/"}, 2},
		{"prefix is case sensitive", AuditFilter{ResourcePrefix: "PARKS/"}, 0},
		{"prefix and park", AuditFilter{ParkID: "p2", ResourcePrefix: "parks/p2/gateways/"}, 1},
		{"limit", AuditFilter{Limit: 3}, 3},
		{"before", AuditFilter{Before: all[2].ID}, 7},
		{"before and limit", AuditFilter{Before: all[2].ID, Limit: 2}, 2},
	}
	for _, tc := range filters {
		t.Run(tc.name, func(t *testing.T) {
			got := audit(t, s, tc.f)
			if len(got) != tc.want {
				t.Errorf("ListAudit(%+v) = %d entries, want %d", tc.f, len(got), tc.want)
			}
			for _, e := range got {
				if tc.f.ParkID != "" && e.ParkID != tc.f.ParkID ||
					!strings.HasPrefix(e.Resource, tc.f.ResourcePrefix) ||
					tc.f.Before > 0 && e.ID >= tc.f.Before {
					t.Errorf("entry %+v does not match %+v", e, tc.f)
				}
			}
		})
	}
	page := audit(t, s, AuditFilter{Before: all[2].ID, Limit: 2})
	if page[0].ID != all[3].ID || page[1].ID != all[4].ID {
		t.Errorf("page after id %d = %d, %d; want %d, %d", all[2].ID, page[0].ID, page[1].ID, all[3].ID, all[4].ID)
	}
}

// wantJSON checks that raw is the JSON of want, or absent when want is nil.
func wantJSON(t *testing.T, name string, raw json.RawMessage, want any) {
	t.Helper()
	if want == nil {
		if raw != nil {
			t.Errorf("%s = %s, want none", name, raw)
		}
		return
	}
	b, err := json.Marshal(want)
	must(t, err)
	var g, w any
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s = %q: %v", name, raw, err)
	}
	must(t, json.Unmarshal(b, &w))
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("%s = %s, want %s", name, gb, wb)
	}
}

func tokenRecord(id, hash string, role auth.Role, parks ...string) auth.TokenRecord {
	return auth.TokenRecord{
		Principal: auth.Principal{TokenID: id, Name: "token " + id, Role: role, ParkIDs: parks},
		Hash:      hash,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func testTokens(t *testing.T, s *Store) {
	ctx := t.Context()
	records := []auth.TokenRecord{
		tokenRecord("t-admin", auth.Hash("pct_admin-secret"), auth.RoleAdmin),
		tokenRecord("t-op", auth.Hash("pct_op-secret"), auth.RoleOperator, "p1", "p2"),
		func() auth.TokenRecord {
			r := tokenRecord("t-ent", auth.Hash("pct_ent-secret"), auth.RoleEnterprise, "p1")
			r.EnterpriseID = "e1"
			return r
		}(),
		func() auth.TokenRecord {
			r := tokenRecord("t-gw", auth.Hash("pct_gw-secret"), auth.RoleGateway, "p1")
			r.GatewayID, r.Name = "g1", ""
			return r
		}(),
	}
	for _, rec := range records {
		t.Run("create/"+rec.TokenID, func(t *testing.T) {
			must(t, s.CreateToken(ctx, rec, actor))
			got, err := s.LookupToken(ctx, rec.Hash)
			must(t, err)
			want := rec.Principal
			if got.TokenID != want.TokenID || got.Name != want.Name || got.Role != want.Role ||
				!slices.Equal(got.ParkIDs, want.ParkIDs) || got.EnterpriseID != want.EnterpriseID || got.GatewayID != want.GatewayID {
				t.Errorf("LookupToken = %+v, want %+v", *got, want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("looked-up principal is invalid: %v", err)
			}
		})
	}

	_, err := s.LookupToken(ctx, auth.Hash("pct_unknown"))
	wantErr(t, err, auth.ErrUnauthenticated)
	authn := auth.Authenticator{Tokens: s}
	p, err := authn.Authenticate(ctx, "Bearer pct_op-secret")
	must(t, err)
	if p.TokenID != "t-op" {
		t.Errorf("Authenticate = %+v", p)
	}

	dupID := tokenRecord("t-op", auth.Hash("pct_other"), auth.RoleAdmin)
	wantErr(t, s.CreateToken(ctx, dupID, actor), registry.ErrAlreadyExists)
	dupHash := tokenRecord("t-new", auth.Hash("pct_op-secret"), auth.RoleAdmin)
	err = s.CreateToken(ctx, dupHash, actor)
	wantErr(t, err, registry.ErrAlreadyExists)
	if strings.Contains(err.Error(), dupHash.Hash) {
		t.Errorf("error leaks the hash: %v", err)
	}

	boot := tokenRecord("bootstrap-admin", auth.Hash("pct_bootstrap"), auth.RoleAdmin)
	boot.CreatedAt = time.Time{}
	for i, want := range []bool{true, false, false} {
		created, err := s.EnsureToken(ctx, boot, "system")
		must(t, err)
		if created != want {
			t.Errorf("EnsureToken #%d created = %v, want %v", i+1, created, want)
		}
	}
	// Idempotent by hash, whatever the rest of the record says; a taken id is still refused.
	renamed := boot
	renamed.TokenID = "other-id"
	created, err := s.EnsureToken(ctx, renamed, "system")
	must(t, err)
	if created {
		t.Error("EnsureToken created a second token for the same hash")
	}
	_, err = s.EnsureToken(ctx, tokenRecord("bootstrap-admin", auth.Hash("pct_else"), auth.RoleAdmin), "system")
	wantErr(t, err, registry.ErrAlreadyExists)

	entries := audit(t, s, AuditFilter{ResourcePrefix: "tokens/"})
	if len(entries) != 5 {
		t.Fatalf("%d token audit rows, want 5 (4 created, 1 ensured)", len(entries))
	}
	if e := entries[0]; e.Action != "token.create" || e.Resource != "tokens/bootstrap-admin" || e.Actor != "system" || e.Before != nil {
		t.Errorf("ensure audit row = %+v", e)
	}
	var ensured struct {
		CreatedAt time.Time `json:"created_at"`
	}
	must(t, json.Unmarshal(entries[0].After, &ensured))
	if !ensured.CreatedAt.Equal(s.now()) {
		t.Errorf("token created without a time got %v, want the store clock's %v", ensured.CreatedAt, s.now())
	}
	for _, e := range entries {
		for _, rec := range append(records, boot) {
			if strings.Contains(string(e.After), rec.Hash) {
				t.Errorf("audit row %s contains a token hash: %s", e.Resource, e.After)
			}
		}
		if strings.Contains(string(e.After), `"hash"`) {
			t.Errorf("audit row %s has a hash field: %s", e.Resource, e.After)
		}
	}
	wantJSON(t, "operator token audit", entries[3].After, map[string]any{
		"id": "t-op", "name": "token t-op", "role": "operator", "park_ids": []string{"p1", "p2"},
		"created_at": "2026-01-02T03:04:05Z",
	})
}

func testConcurrentWrites(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("m%02d", i)
			if errs[i] = s.CreateMeter(ctx, meter("p1", id, "e1", "g1"), actor); errs[i] != nil {
				return
			}
			_, errs[i] = s.UpdateMeter(ctx, "p1", id, func(m *registry.Meter) error { m.Multiplier = float64(i + 1); return nil }, actor)
		})
	}
	// Concurrent updates of one row must not lose any of them.
	for range n {
		wg.Go(func() {
			_, err := s.UpdatePark(ctx, "p2", func(p *registry.Park) error { p.Name += "+"; return nil }, actor)
			if err != nil {
				t.Errorf("concurrent park update: %v", err)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	meters, err := s.ListMeters(ctx, registry.MeterFilter{ParkID: "p1"}, registry.Page{})
	must(t, err)
	if len(meters) != n {
		t.Errorf("%d meters, want %d", len(meters), n)
	}
	p, err := s.GetPark(ctx, "p2")
	must(t, err)
	if want := "Park p2" + strings.Repeat("+", n); p.Name != want {
		t.Errorf("park name after %d concurrent appends = %q, want %q", n, p.Name, want)
	}
	entries := audit(t, s, AuditFilter{})
	if len(entries) != 6+3*n {
		t.Errorf("%d audit rows, want %d", len(entries), 6+3*n)
	}
	seen := map[int64]bool{}
	for _, e := range entries {
		if seen[e.ID] {
			t.Errorf("audit id %d used twice", e.ID)
		}
		seen[e.ID] = true
	}
}

// testService runs the registry service over the store: its validation inside the update
// transaction, and its error wrapping.
func testService(t *testing.T, s *Store) {
	ctx := auth.WithPrincipal(t.Context(), &auth.Principal{TokenID: "t9", Role: auth.RoleAdmin})
	svc := &registry.Service{Store: s}
	_, err := svc.CreatePark(ctx, registry.Park{ID: "p1", Name: "Park"})
	must(t, err)
	if p, _ := s.GetPark(ctx, "p1"); p.Timezone != registry.DefaultTimezone {
		t.Errorf("service default time zone not stored: %+v", p)
	}
	_, err = svc.CreateMeter(ctx, registry.Meter{ID: "m1", ParkID: "p1", Carrier: registry.Electricity, Unit: "kWh", Multiplier: 1})
	must(t, err)
	_, err = svc.UpdateMeter(ctx, "p1", "m1", func(m *registry.Meter) error { m.Unit = "GJ"; return nil })
	wantFieldError(t, err, "unit", "does not fit")
	_, err = svc.UpdateMeter(ctx, "p1", "m1", func(m *registry.Meter) error { m.EnterpriseID = "e9"; return nil })
	wantFieldError(t, err, "enterprise_id", "enterprise e9 is not in park p1")
	g, password, err := svc.CreateGateway(ctx, registry.Gateway{ID: "g1", ParkID: "p1"})
	must(t, err)
	stored, err := svc.GetGateway(ctx, "g1")
	must(t, err)
	if stored.PasswordHash != g.PasswordHash || password == "" {
		t.Errorf("gateway credential not kept: stored %q, created %q", stored.PasswordHash, g.PasswordHash)
	}
	if !auth.VerifyPassword(password, stored.PasswordHash) {
		t.Error("stored hash does not verify the returned password")
	}
	_, err = svc.GetMeter(ctx, "p1", "m9")
	wantErr(t, err, registry.ErrNotFound)
	if e := audit(t, s, AuditFilter{Limit: 1})[0]; e.Actor != "admin:t9" {
		t.Errorf("service write audited as %q, want the context's principal", e.Actor)
	}
}

// testForeignKeys checks the schema itself refuses what the store's checks refuse, and that
// the store recognises each driver's constraint errors.
func testForeignKeys(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	insert := `INSERT INTO meters (park_id, id, enterprise_id, carrier, direction, kind, unit, multiplier,
		rollover, green_class, gateway_id, interval_seconds, rated_capacity)
		VALUES ($1, $2, $3, 'electricity', 'in', 'counter', 'kWh', 1, 0, 'none', $4, 900, 0)`
	tests := []struct {
		name                   string
		park, enterprise, gate any
		check                  func(error) bool
	}{
		{"enterprise of another park", "p1", "e2", nil, isForeignKeyViolation},
		{"gateway of another park", "p1", nil, "g2", isForeignKeyViolation},
		{"missing park", "p9", nil, nil, isForeignKeyViolation},
		{"duplicate", "p1", nil, nil, isUniqueViolation},
	}
	_, err := s.DB().ExecContext(ctx, insert, "p1", "dup", nil, nil)
	must(t, err)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "m1"
			if tc.name == "duplicate" {
				id = "dup"
			}
			_, err := s.DB().ExecContext(ctx, insert, tc.park, id, tc.enterprise, tc.gate)
			if err == nil || !tc.check(err) {
				t.Errorf("insert = %v, want a constraint violation", err)
			}
		})
	}
	_, err = s.DB().ExecContext(ctx, `DELETE FROM enterprises WHERE park_id = 'p1'`)
	must(t, err) // nothing refers to e1 yet
	_, err = s.DB().ExecContext(ctx, `DELETE FROM parks WHERE id = 'p1'`)
	if !isForeignKeyViolation(err) {
		t.Errorf("deleting a park with a gateway = %v, want a foreign key violation", err)
	}
}

func parkIDs(ps []registry.Park) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

func meterIDs(ms []registry.Meter) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}
