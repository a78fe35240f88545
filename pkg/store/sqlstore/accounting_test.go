package sqlstore

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// shanghai is the park zone of the tests: its midnight of the 1st is the previous month in UTC.
var shanghai = time.FixedZone("CST", 8*3600)

func month(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, shanghai) }

// lastAudit returns the newest audit entry.
func lastAudit(t *testing.T, s *Store) AuditEntry {
	t.Helper()
	entries := audit(t, s, AuditFilter{Limit: 1})
	if len(entries) == 0 {
		t.Fatal("no audit entries")
	}
	return entries[0]
}

// wantAudit checks the newest audit entry.
func wantAudit(t *testing.T, s *Store, action, resource, park string, before, after any) {
	t.Helper()
	e := lastAudit(t, s)
	if e.Action != action || e.Resource != resource || e.ParkID != park || e.Actor != actor {
		t.Errorf("audit entry = %s %s park %q by %s, want %s %s park %q by %s",
			e.Action, e.Resource, e.ParkID, e.Actor, action, resource, park, actor)
	}
	wantJSON(t, action+" before", e.Before, before)
	wantJSON(t, action+" after", e.After, after)
}

func wantErrContains(t *testing.T, err, target error, parts ...string) {
	t.Helper()
	wantErr(t, err, target)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

func testValueAdded(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.CreateEnterprise(ctx, enterprise("p1", "e3"), actor))

	va := func(e string, m time.Time, nominal float64) accounting.ValueAdded {
		return accounting.ValueAdded{Enterprise: e, Month: m, Nominal10kCNY: nominal, RealGrowthIndex: 1.05, BaseYear: 2020}
	}
	// March in Shanghai starts on 28 February in UTC: the month is taken in its own zone.
	march := va("e1", month(2026, 3), 1200.5)
	must(t, s.PutValueAdded(ctx, "p1", march, actor))
	stored := march
	stored.Month = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	wantAudit(t, s, "value_added.create", "parks/p1/enterprises/e1/value-added/2026-03", "p1", nil, stored)

	got, err := s.ListValueAdded(ctx, "p1", "e1", "2026-03", "2026-03")
	must(t, err)
	if len(got) != 1 || got[0] != stored {
		t.Fatalf("ListValueAdded = %+v, want [%+v]", got, stored)
	}

	// A put of the same values writes nothing; other values replace the record.
	auditRows := len(audit(t, s, AuditFilter{}))
	must(t, s.PutValueAdded(ctx, "p1", march, actor))
	if n := len(audit(t, s, AuditFilter{})); n != auditRows {
		t.Errorf("an unchanged put wrote %d audit rows", n-auditRows)
	}
	replaced := va("e1", time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC), 1300) // still March in UTC
	replaced.RealGrowthIndex, replaced.BaseYear = 0.98, 2025
	must(t, s.PutValueAdded(ctx, "p1", replaced, actor))
	replaced.Month = stored.Month
	wantAudit(t, s, "value_added.update", "parks/p1/enterprises/e1/value-added/2026-03", "p1", stored, replaced)
	got, err = s.ListValueAdded(ctx, "p1", "e1", "2026-03", "2026-03")
	must(t, err)
	if len(got) != 1 || got[0] != replaced {
		t.Fatalf("after the replacing put ListValueAdded = %+v, want [%+v]", got, replaced)
	}

	for _, v := range []accounting.ValueAdded{
		va("e1", month(2026, 1), 1), va("e1", month(2026, 2), 2), va("e3", month(2026, 2), 3), va("e1", month(2025, 12), 4),
	} {
		must(t, s.PutValueAdded(ctx, "p1", v, actor))
	}
	must(t, s.PutValueAdded(ctx, "p2", va("e2", month(2026, 2), 5), actor))

	lists := []struct {
		name, enterprise, from, to string
		want                       []string
	}{
		{"park, all months", "", "", "", []string{"e1/2025-12", "e1/2026-01", "e1/2026-02", "e1/2026-03", "e3/2026-02"}},
		{"enterprise, months inclusive", "e1", "2026-01", "2026-02", []string{"e1/2026-01", "e1/2026-02"}},
		{"park, one month", "", "2026-02", "2026-02", []string{"e1/2026-02", "e3/2026-02"}},
		{"open start", "", "", "2025-12", []string{"e1/2025-12"}},
		{"open end", "e1", "2026-03", "", []string{"e1/2026-03"}},
		{"across a year", "e1", "2025-12", "2026-01", []string{"e1/2025-12", "e1/2026-01"}},
		{"empty range", "", "2026-04", "2026-12", nil},
		{"enterprise of another park", "e2", "", "", nil},
	}
	for _, tc := range lists {
		t.Run("list/"+tc.name, func(t *testing.T) {
			got, err := s.ListValueAdded(ctx, "p1", tc.enterprise, tc.from, tc.to)
			must(t, err)
			var keys []string
			for _, v := range got {
				keys = append(keys, v.Enterprise+"/"+v.Month.Format("2006-01"))
				if v.Month.Location() != time.UTC || v.Month.Day() != 1 || v.Month.Hour() != 0 {
					t.Errorf("month %v is not midnight UTC of the 1st", v.Month)
				}
			}
			if !slices.Equal(keys, tc.want) {
				t.Errorf("ListValueAdded(%q, %q..%q) = %v, want %v", tc.enterprise, tc.from, tc.to, keys, tc.want)
			}
		})
	}
	_, err = s.ListValueAdded(ctx, "p1", "", "2026-3", "")
	wantFieldError(t, err, "from", "not a month")

	auditRows = len(audit(t, s, AuditFilter{}))
	refused := []struct {
		name   string
		park   string
		v      accounting.ValueAdded
		target error
		says   string
	}{
		{"unknown enterprise", "p1", va("e9", month(2026, 1), 1), registry.ErrNotFound, "enterprise e9"},
		{"enterprise of another park", "p1", va("e2", month(2026, 1), 1), registry.ErrNotFound, "enterprise e2"},
		{"unknown park", "p9", va("e1", month(2026, 1), 1), registry.ErrNotFound, "park p9"},
		{"no enterprise", "p1", va("", month(2026, 1), 1), registry.ErrInvalid, "enterprise_id"},
		{"no month", "p1", va("e1", time.Time{}, 1), registry.ErrInvalid, "month"},
		{"not a number", "p1", va("e1", month(2026, 1), math.NaN()), registry.ErrInvalid, "nominal_10k_cny"},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			wantErrContains(t, s.PutValueAdded(ctx, tc.park, tc.v, actor), tc.target, tc.says)
		})
	}
	if n := len(audit(t, s, AuditFilter{})); n != auditRows {
		t.Errorf("refused puts wrote %d audit rows", n-auditRows)
	}
	if n := count(t, s, "value_added"); n != 6 {
		t.Errorf("%d value added rows, want 6", n)
	}
	// The schema keeps value added attached to its enterprise.
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM enterprises WHERE park_id = 'p1' AND id = 'e3'`); !isForeignKeyViolation(err) {
		t.Errorf("deleting an enterprise with value added = %v, want a foreign key violation", err)
	}
}

func testProcessOutput(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	out := func(e string, m time.Time, product string, tonnes float64) accounting.ProcessOutput {
		return accounting.ProcessOutput{Enterprise: e, Month: m, Product: product, Tonnes: tonnes}
	}
	clinker := out("e1", month(2026, 3), "clinker", 1500)
	must(t, s.PutProcessOutput(ctx, "p1", clinker, actor))
	stored := clinker
	stored.Month = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	wantAudit(t, s, "process_output.create", "parks/p1/enterprises/e1/process-output/2026-03/clinker", "p1", nil, stored)

	lime := out("e1", month(2026, 3), "quick lime/burnt", 80)
	must(t, s.PutProcessOutput(ctx, "p1", lime, actor))
	if e := lastAudit(t, s); e.Resource != "parks/p1/enterprises/e1/process-output/2026-03/quick%20lime%2Fburnt" {
		t.Errorf("resource of a product with a slash = %q", e.Resource)
	}
	must(t, s.PutProcessOutput(ctx, "p1", out("e1", month(2026, 4), "clinker", 1600), actor))

	replaced := stored
	replaced.Tonnes = 1450.25
	must(t, s.PutProcessOutput(ctx, "p1", replaced, actor))
	wantAudit(t, s, "process_output.update", "parks/p1/enterprises/e1/process-output/2026-03/clinker", "p1", stored, replaced)

	got, err := s.ListProcessOutputs(ctx, "p1", "", "2026-03", "2026-03")
	must(t, err)
	lime.Month = stored.Month
	if want := []accounting.ProcessOutput{replaced, lime}; !slices.Equal(got, want) {
		t.Errorf("ListProcessOutputs(2026-03) = %+v, want %+v", got, want)
	}
	got, err = s.ListProcessOutputs(ctx, "p1", "e1", "2026-04", "")
	must(t, err)
	if len(got) != 1 || got[0].Tonnes != 1600 {
		t.Errorf("ListProcessOutputs(2026-04..) = %+v", got)
	}
	if got, _ := s.ListProcessOutputs(ctx, "p2", "", "", ""); len(got) != 0 {
		t.Errorf("ListProcessOutputs(p2) = %+v, want none", got)
	}

	wantErrContains(t, s.PutProcessOutput(ctx, "p1", out("e9", month(2026, 3), "clinker", 1), actor), registry.ErrNotFound, "enterprise e9")
	wantErrContains(t, s.PutProcessOutput(ctx, "p1", out("e2", month(2026, 3), "clinker", 1), actor), registry.ErrNotFound, "enterprise e2")
	wantFieldError(t, (s.PutProcessOutput(ctx, "p1", out("", month(2026, 3), "clinker", 1), actor)), "enterprise_id", "required")
	wantFieldError(t, (s.PutProcessOutput(ctx, "p1", out("e1", month(2026, 3), "", 1), actor)), "product", "required")
	if n := count(t, s, "process_outputs"); n != 3 {
		t.Errorf("%d process output rows, want 3", n)
	}
}

// sameInstruments compares instruments with times by instant.
func sameInstruments(t *testing.T, got, want []accounting.Instrument) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d instruments %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Enterprise != w.Enterprise || g.Kind != w.Kind || g.MWh != w.MWh ||
			!g.From.Equal(w.From) || !g.To.Equal(w.To) || !slices.Equal(g.Serials, w.Serials) {
			t.Errorf("instrument %d = %+v, want %+v", i, g, w)
		}
		if g.From.Location() != time.UTC || g.To.Location() != time.UTC {
			t.Errorf("instrument %s period not in UTC: %v, %v", g.ID, g.From, g.To)
		}
	}
}

func instrument(id, enterprise string, from, to time.Time, mwh float64, serials ...string) accounting.Instrument {
	kind := accounting.KindGreenTrade
	if len(serials) > 0 {
		kind = accounting.KindCertificate
	}
	return accounting.Instrument{ID: id, Enterprise: enterprise, Kind: kind, MWh: mwh, From: from, To: to, Serials: serials}
}

func testInstruments(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	jan, feb, apr, jun, jul := month(2026, 1), month(2026, 2), month(2026, 4), month(2026, 6), month(2026, 7)
	a := instrument("a-trade", "e1", jan, feb, 120.5)
	b := instrument("b-gec", "", feb, apr, 101, "GEC2025000100..GEC2025000199", "GEC2025000500..GEC2025000500")
	c := instrument("c-trade", "", jun, jul.Add(1500*time.Microsecond), 7)
	for _, in := range []accounting.Instrument{c, a, b} {
		must(t, s.CreateInstrument(ctx, "p1", in, actor))
	}
	b.Serials = []string{"GEC2025000100..GEC2025000199", "GEC2025000500"} // canonical
	bStored := b
	bStored.From, bStored.To = b.From.UTC(), b.To.UTC()
	wantAudit(t, s, "instrument.create", "parks/p1/green-instruments/b-gec", "p1", nil, bStored)
	c.To = jul.Add(time.Millisecond) // stored to the millisecond

	all, err := s.ListInstruments(ctx, "p1", time.Time{}, time.Time{})
	must(t, err)
	sameInstruments(t, all, []accounting.Instrument{a, b, c})
	var parkLevel int
	must(t, s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM instruments WHERE enterprise_id IS NULL`).Scan(&parkLevel))
	if parkLevel != 2 {
		t.Errorf("%d park-level instruments with a NULL enterprise, want 2", parkLevel)
	}

	periods := []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"open", time.Time{}, time.Time{}, []string{"a-trade", "b-gec", "c-trade"}},
		{"end is exclusive", feb, month(2026, 3), []string{"b-gec"}},
		{"start is exclusive", time.Time{}, feb, []string{"a-trade"}},
		{"open end", month(2026, 3), time.Time{}, []string{"b-gec", "c-trade"}},
		{"between", apr, jun, nil},
		{"inside one", month(2026, 6).Add(time.Hour), month(2026, 6).Add(2 * time.Hour), []string{"c-trade"}},
		{"last millisecond", jul, jul.Add(time.Hour), []string{"c-trade"}},
	}
	for _, tc := range periods {
		t.Run("period/"+tc.name, func(t *testing.T) {
			got, err := s.ListInstruments(ctx, "p1", tc.from, tc.to)
			must(t, err)
			var ids []string
			for _, in := range got {
				ids = append(ids, in.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("ListInstruments(%v, %v) = %v, want %v", tc.from, tc.to, ids, tc.want)
			}
		})
	}

	auditRows := len(audit(t, s, AuditFilter{}))
	refused := []struct {
		name   string
		park   string
		in     accounting.Instrument
		target error
		says   []string
	}{
		{"duplicate id", "p1", instrument("a-trade", "", jan, feb, 1), registry.ErrConflict, []string{"a-trade", "exists"}},
		{"unknown enterprise", "p1", instrument("x", "e9", jan, feb, 1), registry.ErrNotFound, []string{"enterprise e9"}},
		{"enterprise of another park", "p1", instrument("x", "e2", jan, feb, 1), registry.ErrNotFound, []string{"enterprise e2"}},
		{"unknown park", "p9", instrument("x", "", jan, feb, 1), registry.ErrNotFound, []string{"park p9"}},
		{"no id", "p1", instrument("", "", jan, feb, 1), registry.ErrInvalid, []string{"id"}},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			wantErrContains(t, s.CreateInstrument(ctx, tc.park, tc.in, actor), tc.target, tc.says...)
		})
	}
	if n := len(audit(t, s, AuditFilter{})); n != auditRows {
		t.Errorf("refused creates wrote %d audit rows", n-auditRows)
	}
	// Ids are scoped to their park.
	must(t, s.CreateInstrument(ctx, "p2", instrument("a-trade", "e2", jan, feb, 3), actor))
	if got, _ := s.ListInstruments(ctx, "p2", time.Time{}, time.Time{}); len(got) != 1 || got[0].Enterprise != "e2" {
		t.Errorf("ListInstruments(p2) = %+v", got)
	}
}

func testInstrumentSerials(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	jan, feb := month(2026, 1), month(2026, 2)
	must(t, s.CreateInstrument(ctx, "p1", instrument("base", "e1", jan, feb, 101,
		"GEC2025000100..GEC2025000199", "GEC2025000500"), actor))

	tests := []struct {
		name    string
		park    string
		serials []string
		target  error    // nil: accepted
		says    []string // parts of the error
	}{
		{"same park, inside", "p1", []string{"GEC2025000150..GEC2025000160"}, registry.ErrConflict,
			[]string{"certificate GEC2025000150", "instrument base of park p1", "GEC2025000100..GEC2025000199"}},
		{"other park, last serial", "p2", []string{"GEC2025000199..GEC2025000300"}, registry.ErrConflict,
			[]string{"certificate GEC2025000199", "instrument base of park p1"}},
		{"other park, first serial", "p2", []string{"GEC2025000050..GEC2025000100"}, registry.ErrConflict,
			[]string{"certificate GEC2025000100", "instrument base"}},
		{"single serial", "p2", []string{"GEC2025000500"}, registry.ErrConflict, []string{"certificate GEC2025000500"}},
		{"covers stored ones", "p2", []string{"GEC2025000000..GEC2025000999"}, registry.ErrConflict, []string{"instrument base"}},
		{"second entry", "p1", []string{"GEC2025000600", "GEC2025000120"}, registry.ErrConflict, []string{"certificate GEC2025000120"}},
		{"overlap inside the request", "p1", []string{"GEC2025009000..GEC2025009010", "GEC2025009010..GEC2025009020"},
			registry.ErrConflict, []string{"certificate GEC2025009010"}},
		{"repeat inside the request", "p2", []string{"GEC2025009100", "GEC2025008000", "GEC2025009100"},
			registry.ErrConflict, []string{"certificate GEC2025009100"}},
		{"adjacent below", "p1", []string{"GEC2025000000..GEC2025000099"}, nil, nil},
		{"adjacent above, other park", "p2", []string{"GEC2025000200..GEC2025000299"}, nil, nil},
		{"between", "p1", []string{"GEC2025000300..GEC2025000499", "GEC2025000501"}, nil, nil},
		{"other prefix", "p1", []string{"GEX2025000150"}, nil, nil},
		{"other width", "p2", []string{"GEC02025000150..GEC02025000160"}, nil, nil},
		{"no prefix", "p2", []string{"2025000150"}, nil, nil},
		{"malformed", "p1", []string{"GEC2025000700", "GEC2025000800..GEC202500090"}, registry.ErrInvalid, []string{"serials", "digits"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("gec-%02d", i)
			in := instrument(id, "", jan, feb, 1, tc.serials...)
			err := s.CreateInstrument(ctx, tc.park, in, actor)
			list, lerr := s.ListInstruments(ctx, tc.park, time.Time{}, time.Time{})
			must(t, lerr)
			stored := slices.ContainsFunc(list, func(in accounting.Instrument) bool { return in.ID == id })
			if tc.target == nil {
				must(t, err)
				if !stored {
					t.Errorf("accepted instrument %s not listed", id)
				}
				return
			}
			wantErrContains(t, err, tc.target, tc.says...)
			if stored {
				t.Errorf("refused instrument %s stored", id)
			}
		})
	}
	var serials int
	must(t, s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM instrument_serials`).Scan(&serials))
	if serials != 9 { // base 2, accepted 1+1+2+1+1+1
		t.Errorf("%d serial entries stored, want 9: refused instruments must leave none", serials)
	}
	var malformed *registry.FieldError
	if err := s.CreateInstrument(ctx, "p1", instrument("bad", "", jan, feb, 1, "GEC"), actor); !errors.As(err, &malformed) || malformed.Field != "serials" {
		t.Errorf("malformed serial = %v, want a field error on serials", err)
	}
}

// testConcurrentSerials creates instruments sharing a serial from many writers in two parks,
// round after round: exactly one of each round may get it.
func testConcurrentSerials(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	const rounds, n = 10, 8
	s.DB().SetMaxIdleConns(n) // writers start together instead of waiting for new connections
	for round := range rounds {
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				p := []string{"p1", "p2"}[i%2]
				// Every range of the round contains serial 10 of the round.
				lo := int64(1_000_000*(round+1) + 1 + i)
				serials := fmt.Sprintf("GEC%07d..GEC%07d", lo, lo+9)
				in := instrument(fmt.Sprintf("c%d-%d", round, i), "", month(2026, 1), month(2026, 2), 10, serials)
				<-start
				errs[i] = s.CreateInstrument(ctx, p, in, actor)
			})
		}
		close(start)
		wg.Wait()
		var ok int
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, registry.ErrConflict):
				t.Errorf("round %d writer %d: %v, want success or a conflict", round, i, err)
			}
		}
		if ok != 1 {
			t.Errorf("round %d: %d of %d overlapping instruments stored, want exactly 1", round, ok, n)
		}
	}
	if got := count(t, s, "instrument_serials"); got != rounds {
		t.Errorf("%d serial entries stored, want %d", got, rounds)
	}
}

func testReplacements(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.CreateMeter(ctx, meter("p1", "m1", "e1", "g1"), actor))
	must(t, s.CreateMeter(ctx, meter("p2", "m2", "e2", "g2"), actor))
	at := func(h int) time.Time { return time.Date(2026, 3, 1, h, 0, 0, 0, shanghai) }
	recs := []accounting.Replacement{
		{At: at(10), OldFinal: 5000.5, NewInitial: 0},
		{At: at(8).Add(1500 * time.Microsecond), OldFinal: 4000, NewInitial: 12.25},
		{At: at(12), OldFinal: 99999999.99, NewInitial: 3},
	}
	for _, r := range recs {
		must(t, s.AddReplacement(ctx, "p1", "m1", r, actor))
	}
	wantAudit(t, s, "meter_replacement.create", "parks/p1/meters/m1/replacements/2026-03-01T04:00:00Z", "p1", nil,
		map[string]any{"meter_id": "m1", "at": "2026-03-01T04:00:00Z", "old_final": 99999999.99, "new_initial": 3})

	got, err := s.ListReplacements(ctx, "p1", "m1")
	must(t, err)
	want := []accounting.Replacement{recs[1], recs[0], recs[2]}
	want[0].At = at(8).Add(time.Millisecond) // stored to the millisecond
	if len(got) != len(want) {
		t.Fatalf("ListReplacements = %+v, want %+v", got, want)
	}
	for i := range got {
		if !got[i].At.Equal(want[i].At) || got[i].At.Location() != time.UTC ||
			got[i].OldFinal != want[i].OldFinal || got[i].NewInitial != want[i].NewInitial {
			t.Errorf("replacement %d = %+v, want %+v in UTC", i, got[i], want[i])
		}
	}
	if e := audit(t, s, AuditFilter{Limit: 2})[1]; e.Resource != "parks/p1/meters/m1/replacements/2026-03-01T00:00:00.001Z" {
		t.Errorf("resource of a replacement at a millisecond = %q", e.Resource)
	}

	auditRows := len(audit(t, s, AuditFilter{}))
	wantErr(t, s.AddReplacement(ctx, "p1", "m1", accounting.Replacement{At: at(10), OldFinal: 1}, actor), registry.ErrAlreadyExists)
	wantErrContains(t, s.AddReplacement(ctx, "p1", "m9", recs[0], actor), registry.ErrNotFound, "meter m9")
	wantErrContains(t, s.AddReplacement(ctx, "p1", "m2", recs[0], actor), registry.ErrNotFound, "meter m2")
	wantErrContains(t, s.AddReplacement(ctx, "p9", "m1", recs[0], actor), registry.ErrNotFound, "park p9")
	if n := len(audit(t, s, AuditFilter{})); n != auditRows {
		t.Errorf("refused replacements wrote %d audit rows", n-auditRows)
	}
	// The same time on another meter is another record.
	must(t, s.AddReplacement(ctx, "p2", "m2", recs[0], actor))
	if got, _ := s.ListReplacements(ctx, "p2", "m2"); len(got) != 1 {
		t.Errorf("ListReplacements(p2/m2) = %+v", got)
	}
	if got, _ := s.ListReplacements(ctx, "p1", "m9"); len(got) != 0 {
		t.Errorf("ListReplacements of an unknown meter = %+v, want none", got)
	}
}

func testFactorSets(t *testing.T, s *Store) {
	ctx := t.Context()
	text := func(id string, v int) []byte {
		return fmt.Appendf(nil, "id: %s\nversion: %d\nname: 华中区域电网 %d\n", id, v, v)
	}
	for _, k := range []struct {
		id string
		v  int
	}{{"location-hunan", 10}, {"cn-zcp-2025", 1}, {"location-hunan", 2}, {"location-Hunan", 1}, {"location-hunan", 1}} {
		must(t, s.SaveFactorSet(ctx, k.id, k.v, text(k.id, k.v), actor))
	}
	wantAudit(t, s, "factor_set.create", "factor-sets/location-hunan/1", "", nil,
		map[string]any{"id": "location-hunan", "version": 1, "data": string(text("location-hunan", 1))})

	got, err := s.ListFactorSets(ctx)
	must(t, err)
	// By id bytewise, then version numerically.
	want := [][]byte{text("cn-zcp-2025", 1), text("location-Hunan", 1), text("location-hunan", 1),
		text("location-hunan", 2), text("location-hunan", 10)}
	if !slices.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("ListFactorSets = %q, want %q", got, want)
	}

	auditRows := len(audit(t, s, AuditFilter{}))
	wantErrContains(t, s.SaveFactorSet(ctx, "location-hunan", 2, []byte("other"), actor), registry.ErrConflict, "location-hunan version 2")
	wantFieldError(t, (s.SaveFactorSet(ctx, "x", 1, []byte("a\x00b"), actor)), "data", "UTF-8")
	wantFieldError(t, (s.SaveFactorSet(ctx, "x", 1, []byte{0xff, 'a'}, actor)), "data", "UTF-8")
	if n := len(audit(t, s, AuditFilter{})); n != auditRows {
		t.Errorf("refused saves wrote %d audit rows", n-auditRows)
	}
	if got, _ := s.ListFactorSets(ctx); len(got) != 5 || string(got[3]) != string(text("location-hunan", 2)) {
		t.Errorf("a refused save changed the stored sets: %q", got)
	}
}

func testDirtyHours(t *testing.T, s *Store) {
	ctx := t.Context()
	h := func(hour, minute int) time.Time { return time.Date(2026, 3, 1, hour, minute, 0, 0, time.UTC) }
	claim := func(limit int) ([]string, []int64) {
		t.Helper()
		hours, versions, err := s.ClaimDirty(ctx, limit)
		must(t, err)
		keys := make([]string, len(hours))
		for i, d := range hours {
			if d.Hour.Location() != time.UTC {
				t.Errorf("claimed hour %v not in UTC", d.Hour)
			}
			keys[i] = d.Park + "@" + d.Hour.Format("15:04")
		}
		return keys, versions
	}

	must(t, s.MarkDirty(ctx, nil))
	must(t, s.MarkDirty(ctx, []accounting.DirtyHour{
		{Park: "p1", Hour: h(10, 15)}, {Park: "p1", Hour: h(10, 45)}, // one hour, twice
		{Park: "p2", Hour: h(10, 0)},
		{Park: "p1", Hour: time.Date(2026, 3, 1, 17, 0, 0, 0, shanghai)}, // 09:00 UTC
	}))
	keys, v1 := claim(10)
	if want := []string{"p1@09:00", "p1@10:00", "p2@10:00"}; !slices.Equal(keys, want) {
		t.Fatalf("claimed %v, want %v", keys, want)
	}
	if v1[0] != v1[1] || v1[1] != v1[2] || v1[0] <= 0 {
		t.Errorf("versions of one mark = %v, want one version > 0", v1)
	}
	if keys, _ := claim(2); !slices.Equal(keys, []string{"p1@09:00", "p1@10:00"}) {
		t.Errorf("claim of 2 = %v, want the 2 oldest", keys)
	}
	hours, _, err := s.ClaimDirty(ctx, 10)
	must(t, err)

	// Marked again during the computation: clearing with the claimed versions keeps it.
	must(t, s.MarkDirty(ctx, []accounting.DirtyHour{{Park: "p1", Hour: h(10, 59)}}))
	must(t, s.ClearDirty(ctx, hours, v1))
	keys, v2 := claim(10)
	if !slices.Equal(keys, []string{"p1@10:00"}) {
		t.Fatalf("after the clear claimed %v, want the hour marked again", keys)
	}
	if v2[0] <= v1[1] {
		t.Errorf("version after marking again = %d, want > %d", v2[0], v1[1])
	}
	hours, _, err = s.ClaimDirty(ctx, 10)
	must(t, err)
	must(t, s.ClearDirty(ctx, hours, v2))
	if keys, _ := claim(10); len(keys) != 0 {
		t.Errorf("after clearing the current version claimed %v, want none", keys)
	}

	// Two claimers read the same mark; one clears, the hour is marked again, then the other
	// clears with the version it read: the new mark must stay.
	mark := []accounting.DirtyHour{{Park: "p3", Hour: h(11, 0)}}
	must(t, s.MarkDirty(ctx, mark))
	hoursA, versionsA, err := s.ClaimDirty(ctx, 10)
	must(t, err)
	hoursB, versionsB, err := s.ClaimDirty(ctx, 10)
	must(t, err)
	must(t, s.ClearDirty(ctx, hoursA, versionsA))
	must(t, s.MarkDirty(ctx, mark))
	must(t, s.ClearDirty(ctx, hoursB, versionsB))
	if keys, _ := claim(10); !slices.Equal(keys, []string{"p3@11:00"}) {
		t.Errorf("after a stale clear claimed %v, want the new mark kept", keys)
	}

	if _, _, err := s.ClaimDirty(ctx, 0); err == nil {
		t.Error("ClaimDirty(0) succeeded, want an error")
	}
	if err := s.ClearDirty(ctx, hours, nil); err == nil {
		t.Error("ClearDirty with fewer versions than hours succeeded, want an error")
	}
	if n := len(audit(t, s, AuditFilter{})); n != 0 {
		t.Errorf("dirty marks wrote %d audit rows, want none", n)
	}
}

// testConcurrentMarkDirty marks from 8 writers while a claimer claims and clears: no mark is
// lost.
func testConcurrentMarkDirty(t *testing.T, s *Store) {
	ctx := t.Context()
	const writers, calls = 8, 25
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	shared := accounting.DirtyHour{Park: "p1", Hour: base}
	own := func(w, i int) accounting.DirtyHour {
		return accounting.DirtyHour{Park: "p1", Hour: base.Add(time.Duration(1+w*calls+i) * time.Hour)}
	}

	var (
		markers sync.WaitGroup
		claimer sync.WaitGroup
		done    = make(chan struct{})
		cleared = map[time.Time]int64{} // last version cleared, by hour
	)
	for w := range writers {
		markers.Go(func() {
			for i := range calls {
				if err := s.MarkDirty(ctx, []accounting.DirtyHour{own(w, i), shared}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	claimer.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			hours, versions, err := s.ClaimDirty(ctx, 50)
			if err == nil {
				err = s.ClearDirty(ctx, hours, versions)
			}
			if err != nil {
				t.Errorf("claimer: %v", err)
				return
			}
			for i, h := range hours {
				cleared[h.Hour] = versions[i]
			}
		}
	})
	markers.Wait()
	close(done)
	claimer.Wait()

	var last int64
	must(t, s.DB().QueryRowContext(ctx, `SELECT value FROM sequences WHERE name = 'rollup_dirty'`).Scan(&last))
	if last != writers*calls {
		t.Errorf("mark version sequence at %d after %d marks", last, writers*calls)
	}
	hours, versions, err := s.ClaimDirty(ctx, 10*writers*calls)
	must(t, err)
	remaining := map[time.Time]int64{}
	for i, h := range hours {
		remaining[h.Hour] = versions[i]
	}
	for w := range writers {
		for i := range calls {
			h := own(w, i).Hour
			if _, ok := remaining[h]; !ok && cleared[h] == 0 {
				t.Errorf("mark of hour %v lost", h)
			}
		}
	}
	// Every call marked the shared hour, so its last mark has the last version: it is either
	// still there with it, or the claimer cleared that very mark.
	if v, ok := remaining[shared.Hour]; (ok && v != last) || (!ok && cleared[shared.Hour] != last) {
		t.Errorf("shared hour: remaining version %d (%v), cleared version %d, want the last version %d",
			v, ok, cleared[shared.Hour], last)
	}
}

// testDeleteParkWithInputs: a park's accounting inputs count as contents: kept without
// cascade, deleted with it (one audit row naming what went), and a deleted certificate's
// serials are free again.
func testDeleteParkWithInputs(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	must(t, s.CreateMeter(ctx, meter("p1", "m1", "e1", "g1"), actor))
	must(t, s.PutValueAdded(ctx, "p1", accounting.ValueAdded{Enterprise: "e1", Month: month(2026, 1), Nominal10kCNY: 10, RealGrowthIndex: 1, BaseYear: 2026}, actor))
	must(t, s.AddReplacement(ctx, "p1", "m1", accounting.Replacement{At: month(2026, 1), OldFinal: 10}, actor))
	cert := instrument("c1", "", month(2026, 1), month(2026, 2), 2, "GEC01..GEC02")
	cert.Kind = accounting.KindCertificate
	must(t, s.CreateInstrument(ctx, "p1", cert, actor))
	must(t, s.MarkDirty(ctx, []accounting.DirtyHour{{Park: "p1", Hour: month(2026, 1).UTC()}}))

	wantErrContains(t, s.DeletePark(ctx, "p1", false, actor), registry.ErrConflict, "1 green instrument")
	must(t, s.DeletePark(ctx, "p1", true, actor))
	for _, table := range accountingTables {
		if n := count(t, s, table); n != 0 {
			t.Errorf("%s keeps %d rows of the deleted park", table, n)
		}
	}
	var found bool
	for _, e := range audit(t, s, AuditFilter{}) {
		found = found || e.Action == "park_data.delete" && e.Resource == "parks/p1/data"
	}
	if !found {
		t.Error("no audit row for the deleted accounting inputs")
	}
	must(t, s.CreateInstrument(ctx, "p2", cert, actor)) // its serials are free again
}
