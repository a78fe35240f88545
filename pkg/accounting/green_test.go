package accounting

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func greenRun(t *testing.T, flows []Flow, ins []Instrument) (Result, error) {
	t.Helper()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	return Indicators(Inputs{From: from, To: from.AddDate(1, 0, 0), Location: loc, Flows: flows, Instruments: ins, Factors: indFactorSet(t, "cn-zcp-2025/1")})
}

func greenYear(id, enterprise, kind string, mwh float64, serials ...string) Instrument {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	return Instrument{ID: id, Enterprise: enterprise, Kind: kind, MWh: mwh, From: from, To: from.AddDate(1, 0, 0), Serials: serials}
}

func TestInstrumentsInvalid(t *testing.T) {
	flows := []Flow{{Meter: "m", Enterprise: "e1", Carrier: "electricity", Direction: "in", Quantity: 1000}}
	backwards := greenYear("b", "e1", KindCertificate, 1)
	backwards.From, backwards.To = backwards.To, backwards.From
	for _, tt := range []struct {
		name  string
		ins   []Instrument
		names string
	}{
		{"serial claimed twice", []Instrument{greenYear("a", "e1", KindCertificate, 1, "S1", "S2"), greenYear("b", "", KindCertificate, 1, "S2")}, `serial "S2" is also claimed by instrument "a"`},
		{"serial twice in one", []Instrument{greenYear("a", "e1", KindCertificate, 1, "S1", "S1")}, `serial "S1"`},
		{"id twice", []Instrument{greenYear("a", "e1", KindCertificate, 1), greenYear("a", "e1", KindGreenTrade, 1)}, "id given twice"},
		{"no id", []Instrument{greenYear("", "e1", KindCertificate, 1)}, "id is required"},
		{"kind", []Instrument{greenYear("a", "e1", "offset", 1)}, `kind "offset"`},
		{"negative", []Instrument{greenYear("a", "e1", KindCertificate, -1)}, "mwh -1"},
		{"backwards", []Instrument{backwards}, "is not before"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := greenRun(t, flows, tt.ins)
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.names) {
				t.Errorf("error %v, want one naming %q", err, tt.names)
			}
		})
	}
}

// Instruments cover net grid consumption: an enterprise's certificates never exceed its grid
// power minus its grid exports, and the park's never exceed the park's.
func TestInstrumentsCoverNetGridOnly(t *testing.T) {
	res, err := greenRun(t, []Flow{
		{Meter: "in", Enterprise: "e1", Carrier: "electricity", Direction: "in", Quantity: 100_000},
		{Meter: "out", Enterprise: "e1", Carrier: "electricity", Direction: "out", Quantity: 40_000},
	}, []Instrument{greenYear("a", "e1", KindCertificate, 100)})
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Instruments[0]; a.BookedMWh != 60 || a.OverAllocatedMWh != 40 {
		t.Errorf("allocation %+v, want 60 booked, 40 over", a)
	}
	// (100 000 - 60 000) x 0.8325 - 40 000 x 0.8325 = 0: no export credit from a certificate.
	if e := res.CO2ByComponentT.Electricity; e == nil || math.Abs(*e) > 1e-9 {
		t.Errorf("electricity CO2 %v, want 0", e)
	}

	// e1 draws 100 000 kWh, the park-level meter exports 100 000: the park's net grid use is 0,
	// so a park-level certificate finds nothing to cover.
	res, err = greenRun(t, []Flow{
		{Meter: "in", Enterprise: "e1", Carrier: "electricity", Direction: "in", Quantity: 100_000},
		{Meter: "out", Carrier: "electricity", Direction: "out", Quantity: 100_000},
	}, []Instrument{greenYear("p", "", KindCertificate, 50)})
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Instruments[0]; a.BookedMWh != 0 || a.OverAllocatedMWh != 50 {
		t.Errorf("park allocation %+v, want all 50 MWh over-allocated", a)
	}
}
