package factors

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

const minimal = `# a comment
id: park-a   # trailing comment
version: 2
base: cn-zcp-2025/1
rule: 'it''s the park''s own rule: #1'
method: park
effective_from: 2026-01-01
electricity_convention: equal
carriers:
  - carrier: electricity
    unit: kWh
    kgce_equivalent: 0.1229
    kgce_equal: 3.027e-1
    kgco2: .8325
    kgco2_green: 0
    source: "audit \"2026\" # not a comment"
    operator_supplied: [kgce_equal]
- carrier: steam
  unit: t
  kgce_equivalent: ~
  kgce_equal:
  kgco2: null
  source: operator-supplied required
products: []
`

func TestParseSet(t *testing.T) {
	if _, err := ParseSet([]byte(minimal)); err == nil {
		t.Fatal("sequence items in two columns accepted")
	}
	fixed := strings.Replace(minimal, "- carrier: steam\n  unit: t\n  kgce_equivalent: ~\n  kgce_equal:\n  kgco2: null\n  source:", "  - carrier: steam\n    unit: t\n    kgce_equivalent: ~\n    kgce_equal:\n    kgco2: null\n    source:", 1)
	s, err := ParseSet([]byte(fixed))
	if err != nil {
		t.Fatal(err)
	}
	want := Set{
		ID: "park-a", Version: 2, Base: "cn-zcp-2025/1", Rule: "it's the park's own rule: #1",
		Method: MethodPark, EffectiveFrom: "2026-01-01", ElectricityConvention: ConventionEqual,
		Carriers: []Coefficient{
			{Carrier: "electricity", Unit: "kWh", KgceEquivalent: ptr(0.1229), KgceEqual: ptr(0.3027), KgCO2: ptr(0.8325), KgCO2Green: ptr(0),
				Source: `audit "2026" # not a comment`, OperatorSupplied: []string{"kgce_equal"}},
			{Carrier: "steam", Unit: "t", Source: "operator-supplied required"},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("ParseSet =\n%+v\nwant\n%+v", s, want)
	}
	again, err := ParseSet(FormatSet(s))
	if err != nil || !reflect.DeepEqual(again, s) {
		t.Errorf("round trip: %v\n%s", err, FormatSet(s))
	}
}

func TestParseSetErrors(t *testing.T) {
	for _, tt := range []struct {
		name, doc, want string
	}{
		{"unknown top key", "id: a\nvesion: 1\n", `line 2: factor set: unknown key "vesion"`},
		{"unknown row key", "carriers:\n  - carrier: coke\n    kgco: 1\n", `line 3: carriers[0]: unknown key "kgco"`},
		{"repeated key", "id: a\nid: b\n", `line 2: key "id" repeated`},
		{"repeated row key", "carriers:\n  - carrier: coke\n    carrier: coal\n", `line 3: key "carrier" repeated`},
		{"tab", "carriers:\n\t- carrier: coke\n", "line 2: indent with spaces"},
		{"text number", "carriers:\n  - carrier: coke\n    kgco2: \"2860.4\"\n", "line 3: carriers[0]: kgco2 is a finite decimal number"},
		{"nan", "carriers:\n  - carrier: coke\n    kgco2: .nan\n", "kgco2 is a finite decimal number"},
		{"inf", "carriers:\n  - carrier: coke\n    kgco2: 1e999\n", "kgco2 is a finite decimal number"},
		{"hex", "carriers:\n  - carrier: coke\n    kgco2: 0x10\n", "kgco2 is a finite decimal number"},
		{"version", "version: 1.5\n", "line 1: factor set: version is a whole number"},
		{"anchor", "id: &a x\n", "line 1: \"&a x\" uses YAML this format does not accept"},
		{"flow mapping", "id: {a: 1}\n", "line 1:"},
		{"nested mapping", "id: a: b\n", "line 1: nested mappings"},
		{"block scalar", "rule: |\n  text\n", "line 1:"},
		{"continuation", "rule: a\n  b\n", "line 2: unexpected indentation"},
		{"misaligned", "carriers:\n  - carrier: coke\n     unit: t\n", "line 3: indentation"},
		{"two documents", "id: a\n---\nid: b\n", "line 2: one factor set per file"},
		{"after end", "id: a\n...\nid: b\n", "line 3: content after the document end"},
		{"unterminated", "rule: \"abc\n", "line 1: unterminated"},
		{"bad escape", "rule: \"\\e\"\n", "line 1: bad double-quoted string"},
		{"dash alone", "carriers:\n  -\n    carrier: coke\n", "line 2: put an item's first key on its dash line"},
		{"list of lists", "carriers:\n  - carrier: coke\n    operator_supplied: [[a]]\n", "nested flow"},
		{"trailing comma", "carriers:\n  - carrier: coke\n    operator_supplied: [a,]\n", "trailing comma"},
		{"scalar for list", "carriers:\n  - carrier: coke\n    operator_supplied: kgco2\n", "operator_supplied is a flow sequence"},
		{"scalar for rows", "carriers: coke\n", "carriers is a sequence of mappings"},
		{"rows for scalar", "id:\n  - carrier: coke\n", "line 1: factor set: id is a string"},
		{"no space", "id:a\n", `line 1: put a space after "id:"`},
		{"upper-case key", "ID: a\n", `line 1: expected "key: value"`},
		{"too big", "rule: \"" + strings.Repeat("x", maxSetBytes) + "\"\n", "more than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSet([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSet error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestShippedFilesRoundTrip(t *testing.T) {
	names, _ := fs.Glob(shipped, "sets/*.yaml")
	for _, name := range names {
		data, _ := shipped.ReadFile(name)
		s, err := ParseSet(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, err := ParseSet(FormatSet(s))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Errorf("%s: round trip: %v", name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	r := newRegistry(t)
	good, _ := r.Get("cn-zcp-2025", 1)
	if err := Validate(good); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		edit  func(s *Set)
		field string
	}{
		{"id", func(s *Set) { s.ID = "CN ZCP" }, "id"},
		{"version", func(s *Set) { s.Version = 0 }, "version"},
		{"base", func(s *Set) { s.Base = "cn-zcp-2025" }, "base"},
		{"rule", func(s *Set) { s.Rule = " " }, "rule"},
		{"method", func(s *Set) { s.Method = "gross" }, "method"},
		{"date", func(s *Set) { s.EffectiveFrom = "2025-13-01" }, "effective_from"},
		{"convention", func(s *Set) { s.ElectricityConvention = "coal" }, "electricity_convention"},
		{"no carriers", func(s *Set) { s.Carriers = nil }, "carriers"},
		{"unknown carrier", func(s *Set) { s.Carriers[1].Carrier = "biogas" }, "carriers[1].carrier"},
		{"duplicate carrier", func(s *Set) { s.Carriers[2].Carrier = "natural_gas" }, "carriers[2] (natural_gas)"},
		{"unit", func(s *Set) { s.Carriers[2].Unit = "kg" }, "carriers[2] (raw_coal).unit"},
		{"negative", func(s *Set) { s.Carriers[3].KgCO2 = ptr(-1) }, "carriers[3] (coke).kgco2"},
		{"green on fuel", func(s *Set) { s.Carriers[3].KgCO2Green = ptr(0) }, "carriers[3] (coke).kgco2_green"},
		{"no source", func(s *Set) { s.Carriers[4].Source = "" }, "carriers[4] (crude_oil).source"},
		{"equal value not marked", func(s *Set) { s.Carriers[0].OperatorSupplied = nil }, "carriers[0] (electricity).operator_supplied"},
		{"operator value unknown", func(s *Set) { s.Carriers[4].OperatorSupplied = []string{"kgco2_green"} }, "carriers[4] (crude_oil).operator_supplied"},
		{"operator value null", func(s *Set) { s.Carriers[11].OperatorSupplied = []string{"kgco2"} }, "carriers[11] (steam).operator_supplied"},
		{"product in carriers", func(s *Set) { s.Carriers[4].Product = "lime" }, "carriers[4].carrier"},
		{"product id", func(s *Set) { s.Products[0].Product = "Clinker" }, "products[0].product"},
		{"product unit", func(s *Set) { s.Products[0].Unit = "kg" }, "products[0] (clinker).unit"},
		{"product kgce", func(s *Set) { s.Products[0].KgceEqual = ptr(1) }, "products[0] (clinker)"},
		{"product twice", func(s *Set) { s.Products[1].Product = "clinker" }, "products[1] (clinker)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := good.Clone()
			tt.edit(&s)
			err := Validate(s)
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("Validate error %v, want field %q", err, tt.field)
			}
		})
	}
}

// FuzzParseSet: the decoder never panics, and whatever it accepts FormatSet writes back to the
// same set.
func FuzzParseSet(f *testing.F) {
	names, _ := fs.Glob(shipped, "sets/*.yaml")
	for _, name := range names {
		data, _ := shipped.ReadFile(name)
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Add([]byte("carriers:\n- carrier: 'a''b'\n  operator_supplied: [\"x,y\", 'z']\n...\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSet(data)
		if err != nil {
			return
		}
		out := FormatSet(s)
		again, err := ParseSet(out)
		if err != nil {
			t.Fatalf("FormatSet output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip changed the set:\n%+v\n%+v", s, again)
		}
	})
}
