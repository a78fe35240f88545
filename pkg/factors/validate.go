package factors

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Validate checks a set before it is published or loaded: identity, method, date, and every
// coefficient (canonical unit, finite and non-negative, a source, operator-supplied values named).
// A row may leave a value out (null): using it is then a missing-coefficient error. Errors are
// *registry.FieldError (errors.Is(err, registry.ErrInvalid)) naming the field.
func Validate(s Set) error {
	if err := registry.CheckID("id", s.ID); err != nil {
		return err
	}
	if s.Version < 1 {
		return invalid("version", "must be a whole number >= 1, got %d", s.Version)
	}
	if s.Base != "" {
		if _, _, err := splitRef(s.Base); err != nil {
			return invalid("base", "%v", err)
		}
	}
	if strings.TrimSpace(s.Rule) == "" {
		return invalid("rule", "is required: name the rule or document the set implements")
	}
	if len(s.Rule) > 2000 {
		return invalid("rule", "is longer than 2000 bytes")
	}
	if s.Method != MethodPark && s.Method != MethodLocation && s.Method != MethodMarket {
		return invalid("method", "%q is not park, location or market", s.Method)
	}
	if _, err := s.Start(); err != nil {
		return invalid("effective_from", "%q is not a date YYYY-MM-DD", s.EffectiveFrom)
	}
	if s.ElectricityConvention != ConventionEqual && s.ElectricityConvention != ConventionEquivalent {
		return invalid("electricity_convention", "%q is not equal or equivalent", s.ElectricityConvention)
	}
	if len(s.Carriers) == 0 {
		return invalid("carriers", "is empty: a set gives at least one carrier")
	}
	seen := map[string]bool{}
	for i, r := range s.Carriers {
		where := fmt.Sprintf("carriers[%d]", i)
		if r.Product != "" || r.Carrier == "" {
			return invalid(where+".carrier", "is required (and product is not: process products go under products)")
		}
		unit, err := CanonicalUnit(r.Carrier)
		if err != nil {
			return invalid(where+".carrier", "%q is not a known carrier", r.Carrier)
		}
		where = fmt.Sprintf("carriers[%d] (%s)", i, r.Carrier)
		if seen[r.Carrier] {
			return invalid(where, "carrier %s appears twice", r.Carrier)
		}
		seen[r.Carrier] = true
		if r.Unit != unit {
			return invalid(where+".unit", "%q is not the canonical unit of %s: use %s", r.Unit, r.Carrier, unit)
		}
		if r.KgCO2Green != nil && r.Carrier != string(registry.Electricity) {
			return invalid(where+".kgco2_green", "applies to electricity only")
		}
		if err := validateRow(where, r); err != nil {
			return err
		}
		if r.Carrier == string(registry.Electricity) && r.KgceEqual != nil && !r.IsOperatorSupplied(KgceEqual) {
			return invalid(where+".operator_supplied", "must list kgce_equal: the equal value of electricity is the year's coal consumption of thermal power supply, not fixed by GB/T 2589 (reference §4 [U]); say where the value comes from in source")
		}
	}
	seen = map[string]bool{}
	for i, r := range s.Products {
		where := fmt.Sprintf("products[%d]", i)
		if r.Carrier != "" {
			return invalid(where+".carrier", "is not allowed: a product row names its product")
		}
		if err := registry.CheckID(where+".product", r.Product); err != nil {
			return err
		}
		where = fmt.Sprintf("products[%d] (%s)", i, r.Product)
		if seen[r.Product] {
			return invalid(where, "product %s appears twice", r.Product)
		}
		seen[r.Product] = true
		if r.Unit != ProductUnit {
			return invalid(where+".unit", "%q: product emission factors are kgCO2 per %s of product", r.Unit, ProductUnit)
		}
		if r.KgceEquivalent != nil || r.KgceEqual != nil || r.KgCO2Green != nil {
			return invalid(where, "a product row gives kgco2 only")
		}
		if err := validateRow(where, r); err != nil {
			return err
		}
	}
	return nil
}

// validateRow checks the values, the source and the operator-supplied list of one row.
func validateRow(where string, r Coefficient) error {
	for _, f := range []Field{KgceEquivalent, KgceEqual, KgCO2, KgCO2Green} {
		if p := r.ptr(f); p != nil && (!(*p >= 0) || math.IsInf(*p, 0)) {
			return invalid(where+"."+string(f), "must be a finite number >= 0 or null, got %v (carbon removals are never subtracted)", *p)
		}
	}
	if strings.TrimSpace(r.Source) == "" {
		return invalid(where+".source", "is required: document, table and strength ([C], [S], [U]), or \"operator-supplied required\" for a value left null")
	}
	if len(r.Source) > 2000 {
		return invalid(where+".source", "is longer than 2000 bytes")
	}
	for j, f := range r.OperatorSupplied {
		if !slices.Contains(r.fields(), Field(f)) {
			return invalid(where+".operator_supplied", "%q is not a value of this row (%s)", f, fieldList(r.fields()))
		}
		if slices.Contains(r.OperatorSupplied[:j], f) {
			return invalid(where+".operator_supplied", "%q is listed twice", f)
		}
		if _, err := r.Value(Field(f)); err != nil {
			return invalid(where+".operator_supplied", "%q has no value: list only values the operator gives", f)
		}
	}
	return nil
}

func fieldList(fs []Field) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

func invalid(field, format string, args ...any) error {
	return &registry.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
