package factors

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

func newRegistry(t *testing.T, extra ...Set) *Registry {
	t.Helper()
	r, err := NewRegistry(extra...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func value(t *testing.T, s Set, carrier string, f Field) float64 {
	t.Helper()
	c, _ := s.Carrier(carrier)
	v, err := c.Value(f)
	if err != nil {
		t.Fatalf("%s: %v", s.Ref(), err)
	}
	return v
}

func TestShippedSetsCoverEveryCarrier(t *testing.T) {
	r := newRegistry(t)
	sets := r.List()
	if len(sets) != 13 {
		t.Fatalf("%d shipped sets, want 13 (cn-zcp-2025, 3 location regions x 3 data years, market x 3)", len(sets))
	}
	for _, s := range sets {
		if err := Validate(s); err != nil {
			t.Errorf("%s: %v", s.Ref(), err)
		}
		for _, c := range registry.Carriers() {
			row, err := s.Carrier(string(c))
			if row.Unit == "" {
				t.Errorf("%s has no row for carrier %s", s.Ref(), c)
			}
			withValues := c != registry.Steam && c != registry.Hydrogen
			if withValues != (err == nil) {
				t.Errorf("%s %s: err = %v", s.Ref(), c, err)
			}
		}
		if s.ElectricityConvention != ConventionEqual {
			t.Errorf("%s: convention %s, the park indicator counts electricity at equal value (reference §2)", s.Ref(), s.ElectricityConvention)
		}
	}
}

// The fuel CO2 factors follow from NCV x carbon content x oxidation x 44/12 (reference §5), the
// kgce coefficients from the GB/T 2589 per-kg values x 1000 (§4).
func TestFuelCoefficientsFollowTheReference(t *testing.T) {
	s, err := newRegistry(t).Get("cn-zcp-2025", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		carrier     string
		kgce        float64 // per canonical unit: GB/T 2589 per kg x 1000, natural gas per m3
		ncv         float64 // GJ per canonical unit
		kgCPerGJ    float64 // = tC/TJ
		oxidation   float64
		printed     float64 // the reference's factor, kgCO2 per canonical unit
		printedStep float64 // its rounding
	}{
		{"raw_coal", 714.3, 20.908, 26.37, 0.94, 1900.3, 0.1},
		{"coke", 971.4, 28.435, 29.5, 0.93, 2860.4, 0.1},
		{"crude_oil", 1428.6, 41.816, 20.1, 0.98, 3020.2, 0.1},
		{"fuel_oil", 1428.6, 41.816, 21.1, 0.98, 3170.5, 0.1},
		{"gasoline", 1471.4, 43.070, 18.9, 0.98, 2925.1, 0.1},
		{"kerosene", 1471.4, 43.070, 19.5, 0.98, 3017.9, 0.1},
		{"diesel", 1457.1, 42.652, 20.2, 0.98, 3095.9, 0.1},
		{"lpg", 1714.3, 50.179, 17.2, 0.98, 3101.3, 0.1},
		{"natural_gas", 1.2143, 389.31 / 1e4, 15.3, 0.99, 2.1622, 0.0001},
	} {
		t.Run(tt.carrier, func(t *testing.T) {
			formula := tt.ncv * tt.kgCPerGJ * tt.oxidation * 44 / 12
			if math.Abs(formula-tt.printed) > tt.printedStep/2 {
				t.Fatalf("the reference's factor %v does not follow from its formula (%v)", tt.printed, formula)
			}
			if got := value(t, s, tt.carrier, KgCO2); math.Abs(got-tt.printed) > 1e-9 {
				t.Errorf("kgco2 = %v, want %v", got, tt.printed)
			}
			for _, f := range []Field{KgceEquivalent, KgceEqual} {
				if got := value(t, s, tt.carrier, f); math.Abs(got-tt.kgce) > 1e-9 {
					t.Errorf("%s = %v, want %v", f, got, tt.kgce)
				}
			}
		})
	}
	if got := value(t, s, "heat", KgceEquivalent); got != 34.12 {
		t.Errorf("heat kgce = %v, want 34.12 per GJ", got)
	}
	if got := value(t, s, "heat", KgCO2); got != 110 {
		t.Errorf("heat kgco2 = %v, want 110 per GJ (0.11 t/GJ)", got)
	}
}

func TestElectricityFactors(t *testing.T) {
	r := newRegistry(t)
	for _, tt := range []struct {
		id      string
		version int
		year    int
		kgco2   float64
		method  Method
	}{
		{"cn-zcp-2025", 1, 2025, 0.8325, MethodPark},
		{"location-national", 1, 2021, 0.5568, MethodLocation},
		{"location-national", 2, 2022, 0.5366, MethodLocation},
		{"location-national", 3, 2023, 0.5306, MethodLocation},
		{"location-central-china", 1, 2021, 0.5354, MethodLocation},
		{"location-central-china", 2, 2022, 0.5395, MethodLocation},
		{"location-central-china", 3, 2023, 0.5271, MethodLocation},
		{"location-hunan", 1, 2021, 0.5138, MethodLocation},
		{"location-hunan", 2, 2022, 0.4900, MethodLocation},
		{"location-hunan", 3, 2023, 0.4976, MethodLocation},
		{"market", 1, 2021, 0.5942, MethodMarket},
		{"market", 2, 2022, 0.5856, MethodMarket},
		{"market", 3, 2023, 0.6096, MethodMarket},
	} {
		s, err := r.Get(tt.id, tt.version)
		if err != nil {
			t.Fatal(err)
		}
		if got := value(t, s, "electricity", KgCO2); got != tt.kgco2 {
			t.Errorf("%s: kgco2 = %v, want %v", s.Ref(), got, tt.kgco2)
		}
		if got := value(t, s, "electricity", KgCO2Green); got != 0 {
			t.Errorf("%s: kgco2_green = %v, want 0", s.Ref(), got)
		}
		if got := value(t, s, "electricity", KgceEquivalent); got != 0.1229 {
			t.Errorf("%s: kgce_equivalent = %v, want 0.1229", s.Ref(), got)
		}
		row, _ := s.Carrier("electricity")
		if !row.IsOperatorSupplied(KgceEqual) || !strings.Contains(row.Source, "OPERATOR-SUPPLIED") {
			t.Errorf("%s: the equal value of electricity is [U] and must be marked operator-supplied: %+v", s.Ref(), row)
		}
		if start, _ := s.Start(); start.Year() != tt.year || start.YearDay() != 1 {
			t.Errorf("%s: effective from %s, want 1 January %d", s.Ref(), s.EffectiveFrom, tt.year)
		}
		if s.Method != tt.method {
			t.Errorf("%s: method %s, want %s", s.Ref(), s.Method, tt.method)
		}
		if tt.id != "cn-zcp-2025" {
			base, _ := r.Get("cn-zcp-2025", 1)
			if value(t, s, "coke", KgCO2) != value(t, base, "coke", KgCO2) || len(s.Products) != len(base.Products) {
				t.Errorf("%s does not carry cn-zcp-2025/1's other rows", s.Ref())
			}
		}
	}
}

func TestMissingCoefficients(t *testing.T) {
	s, _ := newRegistry(t).Get("cn-zcp-2025", 1)
	_, err := s.Carrier("steam")
	if !errors.Is(err, ErrMissingCoefficient) || !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("steam: %v", err)
	}
	for _, name := range []string{"steam.kgce_equivalent", "steam.kgce_equal", "steam.kgco2", "operator-supplied required"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("steam error %q does not name %s", err, name)
		}
	}
	for _, p := range []string{"clinker", "lime", "ammonia", "methanol", "primary_aluminium", "crude_steel", "ferro_alloy", "silicon", "silicon_carbide", "calcium_carbide"} {
		if _, err := s.Product(p); !errors.Is(err, ErrMissingCoefficient) || !strings.Contains(err.Error(), p+".kgco2") {
			t.Errorf("product %s: %v", p, err)
		}
	}
	var me *MissingError
	if _, err := s.Product("glass"); !errors.As(err, &me) || me.Coefficients[0] != "glass.kgco2" {
		t.Errorf("unknown product: %v", err)
	}
	if _, err := s.Carrier("electricity"); err != nil {
		t.Errorf("electricity: %v", err)
	}
}

func TestLatestIsEffectiveDated(t *testing.T) {
	r := newRegistry(t)
	cstDay := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, cst) }
	for _, tt := range []struct {
		id   string
		at   time.Time
		want int // 0: none in effect
	}{
		{"location-hunan", cstDay(2021, 6, 1), 1},
		{"location-hunan", cstDay(2022, 1, 1).Add(-time.Second), 1},
		{"location-hunan", cstDay(2022, 1, 1), 2},
		{"location-hunan", cstDay(2023, 1, 1), 3},
		{"location-hunan", cstDay(2030, 1, 1), 3}, // latest published data year
		{"location-hunan", cstDay(2020, 12, 31), 0},
		{"cn-zcp-2025", time.Date(2024, 12, 31, 16, 0, 0, 0, time.UTC), 1}, // 2025-01-01 00:00 CST
		{"cn-zcp-2025", time.Date(2024, 12, 31, 15, 59, 59, 0, time.UTC), 0},
		{"no-such-set", cstDay(2026, 1, 1), 0},
	} {
		s, err := r.Latest(tt.id, tt.at)
		if tt.want == 0 {
			if !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("Latest(%s, %s) = %s, %v; want not found", tt.id, tt.at, s.Ref(), err)
			}
			continue
		}
		if err != nil || s.Version != tt.want {
			t.Errorf("Latest(%s, %s) = %s, %v; want version %d", tt.id, tt.at, s.Ref(), err, tt.want)
		}
	}
}

// correction is cn-zcp-2025/2: the operator's equal value for electricity, nothing else.
func correction(kgceEqual float64) Set {
	return Set{
		ID: "cn-zcp-2025", Version: 2, Base: "cn-zcp-2025/1",
		Rule:   "cn-zcp-2025/1 with the 2025 coal consumption of thermal power supply",
		Method: MethodPark, EffectiveFrom: "2025-01-01", ElectricityConvention: ConventionEqual,
		Carriers: []Coefficient{{
			Carrier: "electricity", Unit: "kWh",
			KgceEquivalent: ptr(0.1229), KgceEqual: ptr(kgceEqual), KgCO2: ptr(0.8325), KgCO2Green: ptr(0),
			Source:           "kgce_equal: operator-supplied, park energy audit 2025",
			OperatorSupplied: []string{"kgce_equal"},
		}},
	}
}

func ptr(f float64) *float64 { return &f }

func TestPublish(t *testing.T) {
	r := newRegistry(t)
	got, err := r.Publish(correction(0.3027))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Carriers) != 13 || len(got.Products) != 10 || value(t, got, "electricity", KgceEqual) != 0.3027 || value(t, got, "coke", KgCO2) != 2860.4 {
		t.Errorf("published set not resolved against its base: %d carriers, %d products", len(got.Carriers), len(got.Products))
	}
	latest, err := r.Latest("cn-zcp-2025", time.Date(2025, 7, 1, 0, 0, 0, 0, cst))
	if err != nil || latest.Version != 2 {
		t.Errorf("Latest after a correction for the same date = %s, %v; want version 2", latest.Ref(), err)
	}

	// The same content again is a no-op (a retried request); other content is refused.
	if _, err := r.Publish(correction(0.3027)); err != nil {
		t.Errorf("republishing identical content: %v", err)
	}
	if _, err := r.Publish(got); err != nil {
		t.Errorf("republishing the resolved set: %v", err)
	}
	_, err = r.Publish(correction(0.31))
	if !errors.Is(err, ErrIssued) || !errors.Is(err, registry.ErrAlreadyExists) || !strings.Contains(err.Error(), "version 3") {
		t.Errorf("changing an issued version: %v", err)
	}
	if v1, _ := r.Get("cn-zcp-2025", 1); value(t, v1, "electricity", KgceEqual) != 0.3 {
		t.Error("version 1 changed")
	}

	// A caller cannot change the registry through a returned set.
	*got.Carriers[0].KgceEqual = 99
	got.Carriers[1].Source = "changed"
	again, _ := r.Get("cn-zcp-2025", 2)
	if value(t, again, "electricity", KgceEqual) != 0.3027 || again.Carriers[1].Source == "changed" {
		t.Error("registry state changed through a returned set")
	}

	bad := correction(-1)
	bad.Version = 3
	if _, err := r.Publish(bad); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "kgce_equal") {
		t.Errorf("negative coefficient: %v", err)
	}
	orphan := correction(0.3)
	orphan.Version, orphan.Base = 3, "cn-zcp-2025/9"
	if _, err := r.Publish(orphan); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown base: %v", err)
	}
	if _, err := r.Get("cn-zcp-2025", 3); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("a refused set was stored: %v", err)
	}
}

func TestNewRegistryExtra(t *testing.T) {
	// Published versions read back in any order: a derived set before its base.
	v3 := correction(0.31)
	v3.Version, v3.Base = 3, "cn-zcp-2025/2"
	r := newRegistry(t, v3, correction(0.3027))
	if s, err := r.Get("cn-zcp-2025", 3); err != nil || value(t, s, "electricity", KgceEqual) != 0.31 || len(s.Carriers) != 13 {
		t.Errorf("Get 3 = %v", err)
	}

	clash := correction(0.3)
	clash.Version = 1 // shipped version 1 differs
	if _, err := NewRegistry(clash); !errors.Is(err, ErrIssued) {
		t.Errorf("extra set changing a shipped version: %v", err)
	}
	a, b := correction(0.3), correction(0.3)
	a.ID, a.Version, a.Base = "loop", 1, "loop/2"
	b.ID, b.Version, b.Base = "loop", 2, "loop/1"
	if _, err := NewRegistry(a, b); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("sets that are each other's base: %v", err)
	}
}

func TestToCanonical(t *testing.T) {
	for _, tt := range []struct {
		carrier, unit string
		q, want       float64
	}{
		{"raw_coal", "kg", 2500, 2.5},
		{"diesel", "t", 3, 3},
		{"lpg", "kg", 1, 0.001},
		{"hydrogen", "t", 0.5, 500},
		{"hydrogen", "kg", 7, 7},
		{"electricity", "MWh", 1.5, 1500},
		{"heat", "MJ", 2000, 2},
		{"natural_gas", "m3", 10, 10},
		{"steam", "t", 4, 4},
	} {
		got, err := ToCanonical(tt.carrier, tt.unit, tt.q)
		if err != nil || math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("ToCanonical(%s, %s, %v) = %v, %v; want %v", tt.carrier, tt.unit, tt.q, got, err, tt.want)
		}
	}
	// Every unit the registry lets a counter meter use converts.
	for _, c := range registry.Carriers() {
		for _, u := range registry.Units(c, registry.Counter) {
			if _, err := ToCanonical(string(c), u, 1); err != nil {
				t.Errorf("registry unit %s of %s: %v", u, c, err)
			}
		}
	}
	for _, tt := range []struct{ carrier, unit, names string }{
		{"biogas", "m3", `"biogas"`},
		{"electricity", "kg", `"kg" is not a unit of electricity`},
		{"natural_gas", "t", `"t" is not a unit of natural_gas`},
	} {
		_, err := ToCanonical(tt.carrier, tt.unit, 1)
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), tt.names) {
			t.Errorf("ToCanonical(%s, %s) error %v does not name %s", tt.carrier, tt.unit, err, tt.names)
		}
	}
	if _, err := ToCanonical("coke", "kg", math.NaN()); err == nil {
		t.Error("NaN accepted")
	}
}

// The API carries sets as JSON; a set survives the trip and still validates.
func TestSetJSON(t *testing.T) {
	s, _ := newRegistry(t).Get("location-hunan", 2)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"id":"location-hunan"`, `"version":2`, `"rule":`, `"effective_from":"2022-01-01"`, `"carriers":[{"carrier":"electricity","unit":"kWh","kgce_equivalent":0.1229,"kgce_equal":0.3,"kgco2":0.49,"kgco2_green":0,"source":`, `"kgco2":null`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON lacks %s", k)
		}
	}
	var back Set
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, s) || Validate(back) != nil {
		t.Errorf("JSON round trip: %v", err)
	}
}
