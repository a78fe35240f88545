package factors

import (
	"fmt"
	"math"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// canonicalUnits is the unit every coefficient of a carrier is per (DESIGN.md §5).
var canonicalUnits = map[registry.Carrier]string{
	registry.Electricity: "kWh",
	registry.NaturalGas:  "m3",
	registry.RawCoal:     "t",
	registry.Coke:        "t",
	registry.CrudeOil:    "t",
	registry.FuelOil:     "t",
	registry.Gasoline:    "t",
	registry.Kerosene:    "t",
	registry.Diesel:      "t",
	registry.LPG:         "t",
	registry.Heat:        "GJ",
	registry.Steam:       "t",
	registry.Hydrogen:    "kg",
}

// unitScale gives, per canonical unit, the size of each unit accepted for it in canonical units.
var unitScale = map[string]map[string]float64{
	"kWh": {"kWh": 1, "MWh": 1000},
	"m3":  {"m3": 1},
	"t":   {"t": 1, "kg": 0.001},
	"kg":  {"kg": 1, "t": 1000},
	"GJ":  {"GJ": 1, "MJ": 0.001},
}

// ProductUnit is the unit of process output; product emission factors are kgCO2 per tonne.
const ProductUnit = "t"

// CanonicalUnit returns the unit carrier's coefficients and accounting quantities are in.
func CanonicalUnit(carrier string) (string, error) {
	u, ok := canonicalUnits[registry.Carrier(carrier)]
	if !ok {
		return "", &registry.FieldError{Field: "carrier", Reason: fmt.Sprintf("%q is not a known carrier", carrier)}
	}
	return u, nil
}

// ToCanonical converts q in unit to carrier's canonical unit: kg of a solid or liquid fuel to t,
// t of hydrogen to kg, MWh to kWh, MJ to GJ. An unknown carrier or a unit that does not fit it is
// an error naming both.
func ToCanonical(carrier, unit string, q float64) (float64, error) {
	cu, err := CanonicalUnit(carrier)
	if err != nil {
		return 0, err
	}
	k, ok := unitScale[cu][unit]
	if !ok {
		return 0, &registry.FieldError{Field: "unit", Reason: fmt.Sprintf("%q is not a unit of %s (canonical unit %s)", unit, carrier, cu)}
	}
	if math.IsNaN(q) || math.IsInf(q, 0) {
		return 0, &registry.FieldError{Field: "quantity", Reason: fmt.Sprintf("%v %s of %s is not a finite number", q, unit, carrier)}
	}
	return q * k, nil
}
