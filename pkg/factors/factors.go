// Package factors holds the conversion and emission coefficients the accounting engine applies:
// versioned, effective-dated factor sets, embedded in the binary (sets/*.yaml) and extended at
// run time by published versions. Every coefficient carries its source; a coefficient the
// reference does not give is present with no value, so asking for it is an error naming it
// (ErrMissingCoefficient), never a silent zero.
//
// The shipped sets (reference/zero-carbon-park.md §3–§5):
//
//	cn-zcp-2025                the national zero-carbon park rule (发改环资〔2025〕910号 att. 4):
//	                           non-green electricity 0.8325 kg/kWh, green 0
//	location-national,         grid-average electricity (location-based Scope 2), one version per
//	location-central-china,    data year 2021, 2022, 2023, effective from 1 January of that year;
//	location-hunan             green instruments are not applied
//	market                     green instruments 0, the rest at the national factor excluding
//	                           market-traded non-fossil power, one version per data year
//
// Quantities are per canonical unit (CanonicalUnit): kgce and kgCO2 per kWh, m3, t, GJ or kg.
package factors

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Errors of this package. They wrap the registry's sentinels, so the API's one error table maps
// them without a new row.
var (
	// ErrMissingCoefficient: the set has no value for a coefficient the accounting needs.
	ErrMissingCoefficient = fmt.Errorf("missing coefficient: %w", registry.ErrConflict)
	// ErrIssued: an issued (id, version) cannot change; publish a new version.
	ErrIssued = fmt.Errorf("factor set version already issued with other content: %w", registry.ErrAlreadyExists)
)

// Method says how a set treats electricity and green instruments.
type Method string

// Methods.
const (
	// MethodPark is the zero-carbon park rule: direct green supply and electricity covered by
	// green trades or certificates at the green factor, all other electricity at the fossil factor.
	MethodPark Method = "park"
	// MethodLocation applies a grid-average factor to grid electricity; green instruments are
	// kept in their ledgers but not applied.
	MethodLocation Method = "location"
	// MethodMarket applies green instruments, the rest at a residual-mix factor.
	MethodMarket Method = "market"
)

// InstrumentsApply reports whether green trades and certificates change the electricity factor.
func (m Method) InstrumentsApply() bool { return m == MethodPark || m == MethodMarket }

// Convention names the standard-coal coefficient of electricity used for the park indicator.
type Convention string

// Conventions (reference §4).
const (
	// ConventionEqual is 等价值: the yearly coal consumption of thermal power supply.
	ConventionEqual Convention = "equal"
	// ConventionEquivalent is 当量值: 0.1229 kgce/kWh, the heat content of a kWh.
	ConventionEquivalent Convention = "equivalent"
)

// Field names one value of a coefficient row.
type Field string

// Fields of a coefficient row.
const (
	KgceEquivalent Field = "kgce_equivalent" // kgce per canonical unit, 当量值
	KgceEqual      Field = "kgce_equal"      // kgce per canonical unit, 等价值
	KgCO2          Field = "kgco2"           // kgCO2 per canonical unit (electricity: non-green)
	KgCO2Green     Field = "kgco2_green"     // electricity only: direct green or instrument-covered
)

// Coefficient is one row of a set: a carrier's coefficients (Carrier set) or a process
// product's emission factor (Product set, KgCO2 per tonne of product). A nil value is a
// coefficient the set does not give.
type Coefficient struct {
	Carrier        string   `json:"carrier,omitempty"`
	Product        string   `json:"product,omitempty"`
	Unit           string   `json:"unit"`
	KgceEquivalent *float64 `json:"kgce_equivalent"`
	KgceEqual      *float64 `json:"kgce_equal"`
	KgCO2          *float64 `json:"kgco2"`
	KgCO2Green     *float64 `json:"kgco2_green,omitempty"`
	// Source names the document, table and strength ([C], [S], [U]) of each value.
	Source string `json:"source"`
	// OperatorSupplied lists the values of this row that the operator supplies rather than a
	// published rule ([U] in the reference); results that use one say so.
	OperatorSupplied []string `json:"operator_supplied,omitempty"`
}

// Name is the carrier or product the row is for.
func (c Coefficient) Name() string {
	if c.Product != "" {
		return c.Product
	}
	return c.Carrier
}

func (c Coefficient) ptr(f Field) *float64 {
	switch f {
	case KgceEquivalent:
		return c.KgceEquivalent
	case KgceEqual:
		return c.KgceEqual
	case KgCO2:
		return c.KgCO2
	case KgCO2Green:
		return c.KgCO2Green
	}
	return nil
}

// Value returns one value of the row, or a *MissingError when the set does not give it.
func (c Coefficient) Value(f Field) (float64, error) {
	p := c.ptr(f)
	if p == nil {
		return 0, &MissingError{Coefficients: []string{c.Name() + "." + string(f)}, Source: c.Source}
	}
	return *p, nil
}

// IsOperatorSupplied reports whether value f of the row is operator-supplied.
func (c Coefficient) IsOperatorSupplied(f Field) bool {
	return slices.Contains(c.OperatorSupplied, string(f))
}

// fields lists the values a row of its kind must give to be complete.
func (c Coefficient) fields() []Field {
	switch {
	case c.Product != "":
		return []Field{KgCO2}
	case c.Carrier == string(registry.Electricity):
		return []Field{KgceEquivalent, KgceEqual, KgCO2, KgCO2Green}
	default:
		return []Field{KgceEquivalent, KgceEqual, KgCO2}
	}
}

func (c Coefficient) missing() error {
	var names []string
	for _, f := range c.fields() {
		if c.ptr(f) == nil {
			names = append(names, c.Name()+"."+string(f))
		}
	}
	if names == nil {
		return nil
	}
	return &MissingError{Coefficients: names, Source: c.Source}
}

func (c Coefficient) clone() Coefficient {
	c.KgceEquivalent = clonePtr(c.KgceEquivalent)
	c.KgceEqual = clonePtr(c.KgceEqual)
	c.KgCO2 = clonePtr(c.KgCO2)
	c.KgCO2Green = clonePtr(c.KgCO2Green)
	c.OperatorSupplied = slices.Clone(c.OperatorSupplied)
	return c
}

func clonePtr(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// MissingError names coefficients the set does not give. It wraps ErrMissingCoefficient.
type MissingError struct {
	Coefficients []string // "steam.kgco2", "clinker.kgco2"
	Source       string   // what the set says about them, e.g. "operator-supplied required"
}

func (e *MissingError) Error() string {
	msg := "missing coefficient " + strings.Join(e.Coefficients, ", ")
	if e.Source != "" {
		msg += " (" + e.Source + ")"
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrMissingCoefficient) hold.
func (e *MissingError) Unwrap() error { return ErrMissingCoefficient }

// Set is one version of a factor set.
type Set struct {
	ID      string `json:"id"`
	Version int    `json:"version"`
	// Base is "id/version" of the set this one was derived from: its rows are the base's rows
	// with this set's rows replacing those of the same carrier or product.
	Base   string `json:"base,omitempty"`
	Rule   string `json:"rule"`
	Method Method `json:"method"`
	// EffectiveFrom is the first day (YYYY-MM-DD, China Standard Time) of the accounting periods
	// the set applies to.
	EffectiveFrom         string        `json:"effective_from"`
	ElectricityConvention Convention    `json:"electricity_convention"`
	Carriers              []Coefficient `json:"carriers"`
	Products              []Coefficient `json:"products"`
}

// Ref is "id/version".
func (s Set) Ref() string { return s.ID + "/" + strconv.Itoa(s.Version) }

// cst is China Standard Time, the zone of effective dates: the rules are Chinese and China
// has kept UTC+8 all year since 1991.
var cst = time.FixedZone("CST", 8*3600)

const dateLayout = "2006-01-02"

// Start is EffectiveFrom as an instant: midnight China Standard Time.
func (s Set) Start() (time.Time, error) {
	t, err := time.ParseInLocation(dateLayout, s.EffectiveFrom, cst)
	if err != nil {
		return time.Time{}, fmt.Errorf("effective_from %q is not a date YYYY-MM-DD", s.EffectiveFrom)
	}
	return t, nil
}

// Carrier returns the row of carrier c. The error names every value the row lacks
// (*MissingError, joined); the row is returned with it when the set has one.
func (s Set) Carrier(c string) (Coefficient, error) {
	for _, r := range s.Carriers {
		if r.Carrier == c {
			return r, r.missing()
		}
	}
	return Coefficient{Carrier: c}, &MissingError{Coefficients: []string{c}, Source: "no row for it in factor set " + s.Ref()}
}

// Product returns the row of process product p; the error names its missing emission factor.
func (s Set) Product(p string) (Coefficient, error) {
	for _, r := range s.Products {
		if r.Product == p {
			return r, r.missing()
		}
	}
	return Coefficient{Product: p}, &MissingError{Coefficients: []string{p + "." + string(KgCO2)}, Source: "no row for it in factor set " + s.Ref()}
}

// Clone returns a deep copy, so a caller cannot change a registry's set through it.
func (s Set) Clone() Set {
	s.Carriers = cloneRows(s.Carriers)
	s.Products = cloneRows(s.Products)
	return s
}

func cloneRows(rs []Coefficient) []Coefficient {
	if rs == nil {
		return nil
	}
	out := make([]Coefficient, len(rs))
	for i, r := range rs {
		out[i] = r.clone()
	}
	return out
}

// splitRef parses "id/version".
func splitRef(ref string) (string, int, error) {
	id, v, ok := strings.Cut(ref, "/")
	n, err := strconv.Atoi(v)
	if !ok || id == "" || err != nil || n < 1 {
		return "", 0, fmt.Errorf("%q is not id/version, e.g. cn-zcp-2025/1", ref)
	}
	return id, n, nil
}
