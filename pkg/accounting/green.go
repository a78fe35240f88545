package accounting

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Instrument kinds (DESIGN.md §5).
const (
	KindCertificate = "certificate" // 绿证 only
	KindGreenTrade  = "green_trade" // 绿电交易
)

// Instrument is a green-power trade or a batch of green certificates: MWh of renewable power for
// the period [From, To), held by an enterprise or (Enterprise empty) by the park.
type Instrument struct {
	ID         string    `json:"id"`
	Enterprise string    `json:"enterprise_id,omitempty"`
	Kind       string    `json:"kind"`
	MWh        float64   `json:"mwh"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Serials    []string  `json:"serials,omitempty"`
}

// InstrumentAllocation is what an instrument covers in the accounting period, in MWh.
type InstrumentAllocation struct {
	ID         string  `json:"id"`
	Enterprise string  `json:"enterprise_id,omitempty"`
	Kind       string  `json:"kind"`
	MWh        float64 `json:"mwh"`
	// PeriodMWh is MWh prorated by the time its period overlaps the accounting period.
	PeriodMWh float64 `json:"period_mwh"`
	// BookedMWh covers grid electricity; OverAllocatedMWh found none left to cover and is
	// reported, not booked.
	BookedMWh        float64 `json:"booked_mwh"`
	OverAllocatedMWh float64 `json:"over_allocated_mwh"`
}

// allocateInstruments books green trades and certificates against grid electricity
// (reference §3, §7.3) and returns what each instrument covers. Rules:
//
//   - An instrument counts for the share of its MWh that its period overlaps [from, to).
//   - It covers grid-mix electricity only, never more than what is left uncovered of its scope:
//     the enterprise's net grid consumption (grid in − grid out, so a certificate never turns
//     into an export credit), or for a park-level instrument what is left across the park,
//     bounded by the park's net grid consumption, shared among the blocks in proportion to
//     what each has left.
//   - Enterprise instruments go first, then the park's; in each, green trades before
//     certificates, then by start and id.
//
// The booked kWh land in the blocks' GreenTrade and Certificate ledgers; whether they change
// the CO2 factor is the factor set's method.
func allocateInstruments(ins []Instrument, from, to time.Time, blocks map[string]*indBlock) ([]InstrumentAllocation, error) {
	if err := validateInstruments(ins); err != nil {
		return nil, err
	}
	left := map[string]float64{} // uncovered net grid kWh by block
	parkLeft := 0.0
	for e, b := range blocks {
		net := b.elec.Grid - b.elec.GridExport
		left[e] = max(0, net)
		parkLeft += net
	}
	parkLeft = max(0, parkLeft)

	order := slices.Clone(ins)
	slices.SortFunc(order, func(a, b Instrument) int {
		return cmp.Or(
			cmp.Compare(greenBoolInt(a.Enterprise == ""), greenBoolInt(b.Enterprise == "")),
			cmp.Compare(greenBoolInt(a.Kind == KindCertificate), greenBoolInt(b.Kind == KindCertificate)),
			a.From.Compare(b.From),
			cmp.Compare(a.ID, b.ID),
		)
	})
	blockIDs := slices.Sorted(maps.Keys(blocks))
	out := []InstrumentAllocation{}
	for _, in := range order {
		ov := indOverlap(in.From, in.To, from, to)
		if ov <= 0 {
			continue
		}
		kwh := in.MWh * 1000 * float64(ov) / float64(in.To.Sub(in.From))
		var booked float64
		if in.Enterprise != "" {
			booked = min(kwh, left[in.Enterprise])
			if booked > 0 {
				blocks[in.Enterprise].cover(in.Kind, booked)
				left[in.Enterprise] -= booked
			}
		} else {
			total := 0.0
			for _, e := range blockIDs {
				total += left[e]
			}
			booked = min(kwh, total, parkLeft)
			if booked > 0 {
				for _, e := range blockIDs {
					share := booked * left[e] / total
					blocks[e].cover(in.Kind, share)
					left[e] -= share
				}
			}
		}
		parkLeft = max(0, parkLeft-booked)
		out = append(out, InstrumentAllocation{
			ID: in.ID, Enterprise: in.Enterprise, Kind: in.Kind, MWh: in.MWh,
			PeriodMWh: kwh / 1000, BookedMWh: booked / 1000, OverAllocatedMWh: (kwh - booked) / 1000,
		})
	}
	return out, nil
}

func (b *indBlock) cover(kind string, kwh float64) {
	if kind == KindGreenTrade {
		b.elec.GreenTrade += kwh
	} else {
		b.elec.Certificate += kwh
	}
}

func greenBoolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validateInstruments checks each instrument, and that no id or certificate serial is claimed
// twice (a double count).
func validateInstruments(ins []Instrument) error {
	ids := map[string]bool{}
	serials := map[string]string{}
	for i, in := range ins {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: instrument %d (%q): %s", ErrInvalidInput, i, in.ID, fmt.Sprintf(format, args...))
		}
		if in.ID == "" {
			return bad("id is required")
		}
		if ids[in.ID] {
			return bad("id given twice")
		}
		ids[in.ID] = true
		if in.Kind != KindCertificate && in.Kind != KindGreenTrade {
			return bad("kind %q is not %s or %s", in.Kind, KindCertificate, KindGreenTrade)
		}
		if !indFinite(in.MWh) || in.MWh < 0 {
			return bad("mwh %v is not a finite number >= 0", in.MWh)
		}
		if !in.From.Before(in.To) {
			return bad("from %s is not before to %s", in.From, in.To)
		}
		for _, s := range in.Serials {
			if other, dup := serials[s]; dup {
				return bad("serial %q is also claimed by instrument %q", s, other)
			}
			serials[s] = in.ID
		}
	}
	return nil
}
