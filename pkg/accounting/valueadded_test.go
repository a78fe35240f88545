package accounting

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

func TestDecline(t *testing.T) {
	for _, tt := range []struct{ base, current, want float64 }{
		{0.5, 0.4, 0.2},
		{2, 2, 0},
		{1, 1.1, -0.1},
		{1, 0, 1},
	} {
		got, err := Decline(tt.base, tt.current)
		if err != nil || math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("Decline(%v, %v) = %v, %v; want %v", tt.base, tt.current, got, err, tt.want)
		}
	}
	for _, bad := range [][2]float64{{0, 1}, {-1, 1}, {1, -1}, {math.NaN(), 1}, {1, math.Inf(1)}} {
		if _, err := Decline(bad[0], bad[1]); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Decline(%v, %v): %v", bad[0], bad[1], err)
		}
	}
}

func vaMonth(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }

func vaInputs(t *testing.T, from, to time.Time, flows []Flow, va []ValueAdded) Inputs {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	return Inputs{From: from, To: to, Location: loc, Flows: flows, ValueAdded: va, Factors: indFactorSet(t, "cn-zcp-2025/1")}
}

func TestValueAddedChainErrors(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	from, to := time.Date(2026, 3, 1, 0, 0, 0, 0, loc), time.Date(2026, 4, 1, 0, 0, 0, 0, loc)
	e1 := []Flow{{Meter: "m", Enterprise: "e1", Carrier: "electricity", Direction: "in", Quantity: 1000}}
	both := append(e1, Flow{Meter: "m2", Enterprise: "e2", Carrier: "electricity", Direction: "in", Quantity: 1000})
	rec := func(e string, y int, nominal, index float64, base int) ValueAdded {
		return ValueAdded{Enterprise: e, Month: vaMonth(y, time.March), Nominal10kCNY: nominal, RealGrowthIndex: index, BaseYear: base}
	}
	for _, tt := range []struct {
		name  string
		flows []Flow
		va    []ValueAdded
		want  error
		names string
	}{
		{"base year record missing", e1, []ValueAdded{rec("e1", 2026, 10, 1.1, 2024), rec("e1", 2025, 10, 1.1, 2024)}, ErrMissingValueAdded, `enterprise "e1", 2024-03, the base year of`},
		{"month missing", e1, []ValueAdded{rec("e1", 2025, 10, 1.1, 2025)}, ErrMissingValueAdded, `no value added for enterprise "e1", 2026-03`},
		{"active enterprise without records", both, []ValueAdded{rec("e1", 2026, 10, 1.1, 2026)}, ErrMissingValueAdded, `enterprise "e2", 2026-03`},
		{"base after month", e1, []ValueAdded{rec("e1", 2026, 10, 1.1, 2027)}, ErrInvalidInput, "base year 2027"},
		{"twice", e1, []ValueAdded{rec("e1", 2026, 10, 1.1, 2026), rec("e1", 2026, 11, 1.1, 2026)}, ErrInvalidInput, "given twice"},
		{"zero index", e1, []ValueAdded{rec("e1", 2026, 10, 0, 2026)}, ErrInvalidInput, "real_growth_index"},
		{"negative nominal", e1, []ValueAdded{rec("e1", 2026, -1, 1, 2026)}, ErrInvalidInput, "nominal_10k_cny"},
		{"no enterprise", e1, []ValueAdded{rec("", 2026, 1, 1, 2026)}, ErrInvalidInput, "enterprise_id is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Indicators(vaInputs(t, from, to, tt.flows, tt.va))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.names) {
				t.Errorf("error %v, want %v naming %q", err, tt.want, tt.names)
			}
		})
	}
	_, err := Indicators(vaInputs(t, from, to, e1, []ValueAdded{rec("e1", 2025, 10, 1.1, 2025)}))
	if !errors.Is(err, registry.ErrConflict) {
		t.Errorf("a missing link maps to %v, want the registry's ErrConflict (FailedPrecondition)", err)
	}
}

func TestValueAddedPartialMonthsAndInactiveEnterprises(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	// 2026-03-16 to 2026-05-01: 16 of March's 31 days, and all of April.
	from, to := time.Date(2026, 3, 16, 0, 0, 0, 0, loc), time.Date(2026, 5, 1, 0, 0, 0, 0, loc)
	flows := []Flow{{Meter: "m", Enterprise: "e1", Carrier: "electricity", Direction: "in", Quantity: 1000}}
	va := []ValueAdded{
		{Enterprise: "e1", Month: vaMonth(2026, time.March), Nominal10kCNY: 310, RealGrowthIndex: 1.2, BaseYear: 2026},
		{Enterprise: "e1", Month: vaMonth(2026, time.April), Nominal10kCNY: 200, RealGrowthIndex: 1.2, BaseYear: 2026},
		// An enterprise that left the park: records for other months only.
		{Enterprise: "gone", Month: vaMonth(2024, time.March), Nominal10kCNY: 999, RealGrowthIndex: 1, BaseYear: 2024},
	}
	res, err := Indicators(vaInputs(t, from, to, flows, va))
	if err != nil {
		t.Fatal(err)
	}
	// 310 x 16/31 + 200 = 160 + 200 = 360.
	if res.ValueAdded10kCNY == nil || math.Abs(*res.ValueAdded10kCNY-360) > 1e-9 {
		t.Errorf("value added %v, want 360", res.ValueAdded10kCNY)
	}
	if len(res.Enterprises) != 1 {
		t.Errorf("enterprises %+v: the inactive enterprise got a block", res.Enterprises)
	}
	// co2 1000 kWh x 0.8325 / 1000 = 0.8325 t over 360.
	if v := res.CO2Per10kCNYVA; v == nil || math.Abs(*v-0.8325/360) > 1e-12 {
		t.Errorf("co2 per 10^4 CNY %v", v)
	}

	res, err = Indicators(vaInputs(t, from, to, flows, nil))
	if err != nil || res.ValueAdded10kCNY != nil || res.CO2Per10kCNYVA != nil {
		t.Errorf("no value added: %v, %v, %v; want null", res.ValueAdded10kCNY, res.CO2Per10kCNYVA, err)
	}
}
