package accounting

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/factors"
)

// The golden cases under testdata/indicators/ are computed by hand: each case's "worked" lines
// give the arithmetic, and "want" lists the result fields the case is about (a subset of the
// result's JSON; numbers to a relative 1e-6). `go test ./pkg/accounting -run TestIndicatorsGolden
// -update` rewrites the values of the keys "want" already lists from the code's output; review
// the diff against the worked arithmetic before committing it.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

func indUpdating() bool {
	g, ok := flag.Lookup("update").Value.(flag.Getter)
	if !ok {
		return false
	}
	b, _ := g.Get().(bool)
	return b
}

type indCase struct {
	Description string   `json:"description"`
	Worked      []string `json:"worked"`
	FactorSet   string   `json:"factor_set"` // id/version of a shipped set
	Input       struct {
		From           time.Time       `json:"from"`
		To             time.Time       `json:"to"`
		Location       string          `json:"location"`
		Flows          []Flow          `json:"flows"`
		Instruments    []Instrument    `json:"instruments"`
		ProcessOutputs []ProcessOutput `json:"process_outputs"`
		ValueAdded     []ValueAdded    `json:"value_added"`
	} `json:"input"`
	WantError string `json:"want_error"`
	Want      any    `json:"want"`
}

func indFactorSet(t testing.TB, ref string) factors.Set {
	t.Helper()
	r, err := factors.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	id, v, _ := strings.Cut(ref, "/")
	n, _ := strconv.Atoi(v)
	s, err := r.Get(id, n)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (c *indCase) inputs(t *testing.T) Inputs {
	loc, err := time.LoadLocation(c.Input.Location)
	if err != nil {
		t.Fatal(err)
	}
	return Inputs{
		From: c.Input.From, To: c.Input.To, Location: loc,
		Flows: c.Input.Flows, Instruments: c.Input.Instruments,
		ProcessOutputs: c.Input.ProcessOutputs, ValueAdded: c.Input.ValueAdded,
		Factors: indFactorSet(t, c.FactorSet),
	}
}

func TestIndicatorsGolden(t *testing.T) {
	paths, _ := filepath.Glob("testdata/indicators/*.json")
	if len(paths) == 0 {
		t.Fatalf("no golden cases (%d)", len(paths))
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var c indCase
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if len(c.Worked) == 0 {
				t.Fatal("a golden case shows its arithmetic under \"worked\"")
			}
			res, err := Indicators(c.inputs(t))
			if c.WantError != "" {
				if err == nil || !strings.Contains(err.Error(), c.WantError) {
					t.Fatalf("error %v, want one containing %q", err, c.WantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			indCheckSums(t, res)
			got := indJSON(t, res)
			if indUpdating() {
				indRewriteWant(t, path, raw, got)
				return
			}
			for _, d := range indDiff("want", c.Want, got) {
				t.Error(d)
			}
		})
	}
}

func indJSON(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// indDiff compares want, a subset of got's JSON, with got.
func indDiff(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %v, want an object", path, got)}
		}
		var ds []string
		for _, k := range slices.Sorted(maps.Keys(w)) {
			gv, ok := g[k]
			if !ok {
				ds = append(ds, fmt.Sprintf("%s.%s: missing from the result", path, k))
				continue
			}
			ds = append(ds, indDiff(path+"."+k, w[k], gv)...)
		}
		return ds
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %s, want %d items", path, indCompact(got), len(w))}
		}
		var ds []string
		for i := range w {
			ds = append(ds, indDiff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return ds
	case float64:
		g, ok := got.(float64)
		if !ok || math.Abs(g-w) > 1e-6*math.Max(1e-3, math.Abs(w)) {
			return []string{fmt.Sprintf("%s: got %v, want %v", path, got, w)}
		}
		return nil
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return []string{fmt.Sprintf("%s: got %v, want %v", path, indCompact(got), indCompact(want))}
		}
		return nil
	}
}

// indNode is a JSON value that keeps the order of its object keys, so -update rewrites "want"
// in the layout it was written in.
type indNode struct {
	keys  []string // object keys in order; nil for a non-object
	obj   map[string]*indNode
	arr   []*indNode
	isArr bool
	val   any
}

func indParse(dec *json.Decoder) (*indNode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		n := &indNode{keys: []string{}, obj: map[string]*indNode{}}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := indParse(dec)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, k.(string))
			n.obj[k.(string)] = v
		}
		_, err := dec.Token()
		return n, err
	case json.Delim('['):
		n := &indNode{isArr: true}
		for dec.More() {
			v, err := indParse(dec)
			if err != nil {
				return nil, err
			}
			n.arr = append(n.arr, v)
		}
		_, err := dec.Token()
		return n, err
	}
	return &indNode{val: tok}, nil
}

// indProject keeps the keys and order of want and takes the values from got (numbers to 10
// significant digits).
func indProject(want *indNode, got any) *indNode {
	switch {
	case want.keys != nil:
		g, ok := got.(map[string]any)
		if !ok {
			return &indNode{val: got}
		}
		out := &indNode{keys: want.keys, obj: map[string]*indNode{}}
		for _, k := range want.keys {
			out.obj[k] = indProject(want.obj[k], g[k])
		}
		return out
	case want.isArr:
		g, ok := got.([]any)
		if !ok || len(g) != len(want.arr) {
			return &indNode{val: got}
		}
		out := &indNode{isArr: true}
		for i := range want.arr {
			out.arr = append(out.arr, indProject(want.arr[i], g[i]))
		}
		return out
	}
	if f, ok := got.(float64); ok {
		r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 10, 64), 64)
		return &indNode{val: r}
	}
	return &indNode{val: got}
}

// indRewriteWant replaces the case's "want" (its last key) from got and keeps the rest of the
// file as written.
func indRewriteWant(t *testing.T, path string, raw []byte, got any) {
	i := bytes.LastIndex(raw, []byte(`  "want": `))
	if i < 0 {
		t.Fatalf("%s: \"want\" must be the last key", path)
	}
	var c struct {
		Want json.RawMessage `json:"want"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	want, err := indParse(json.NewDecoder(bytes.NewReader(c.Want)))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.Write(raw[:i])
	b.WriteString(`  "want": `)
	indPretty(&b, indProject(want, got), "  ")
	b.WriteString("\n}\n")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func indCompact(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// indOneLine writes n on one line in the files' style.
func indOneLine(n *indNode) string {
	switch {
	case n.keys != nil:
		parts := make([]string, len(n.keys))
		for i, k := range n.keys {
			parts[i] = indCompact(k) + ": " + indOneLine(n.obj[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case n.isArr:
		parts := make([]string, len(n.arr))
		for i, e := range n.arr {
			parts[i] = indOneLine(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return indCompact(n.val)
}

// indPretty writes n in the layout of the hand-written files: an array of objects or arrays
// one item per line, anything else on one line when it fits in 200 characters.
func indPretty(b *bytes.Buffer, n *indNode, indent string) {
	nested := n.isArr && slices.ContainsFunc(n.arr, func(e *indNode) bool { return e.keys != nil || e.isArr })
	if s := indOneLine(n); !nested && len(indent)+len(s) <= 200 || n.keys == nil && !n.isArr {
		b.WriteString(s)
		return
	}
	if n.isArr {
		b.WriteString("[\n")
		for i, e := range n.arr {
			b.WriteString(indent + "  ")
			indPretty(b, e, indent+"  ")
			if i < len(n.arr)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString(indent + "]")
		return
	}
	b.WriteString("{\n")
	for i, k := range n.keys {
		b.WriteString(indent + "  " + indCompact(k) + ": ")
		indPretty(b, n.obj[k], indent+"  ")
		if i < len(n.keys)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(indent + "}")
}

// indCheckSums checks that the enterprise blocks and the park-level block add up to the park
// for every additive figure.
func indCheckSums(t *testing.T, res Result) {
	t.Helper()
	parts := slices.Clone(res.Enterprises)
	if res.ParkLevel != nil {
		parts = append(parts, *res.ParkLevel)
	}
	type fig struct {
		name string
		get  func(Block) *float64
	}
	figs := []fig{
		{"energy_tce_equal", func(b Block) *float64 { return b.EnergyTceEqual }},
		{"energy_tce_equivalent", func(b Block) *float64 { return b.EnergyTceEquivalent }},
		{"co2_t", func(b Block) *float64 { return b.CO2T }},
		{"fuel", func(b Block) *float64 { return b.CO2ByComponentT.Fuel }},
		{"transform", func(b Block) *float64 { return b.CO2ByComponentT.Transform }},
		{"electricity", func(b Block) *float64 { return b.CO2ByComponentT.Electricity }},
		{"heat", func(b Block) *float64 { return b.CO2ByComponentT.Heat }},
		{"process", func(b Block) *float64 { return b.CO2ByComponentT.Process }},
		{"value_added", func(b Block) *float64 { return b.ValueAdded10kCNY }},
		{"grid", func(b Block) *float64 { return &b.ElectricityKWh.Grid }},
		{"grid_export", func(b Block) *float64 { return &b.ElectricityKWh.GridExport }},
		{"direct_green", func(b Block) *float64 { return &b.ElectricityKWh.DirectGreen }},
		{"direct_green_export", func(b Block) *float64 { return &b.ElectricityKWh.DirectGreenExport }},
		{"green_trade", func(b Block) *float64 { return &b.ElectricityKWh.GreenTrade }},
		{"certificate", func(b Block) *float64 { return &b.ElectricityKWh.Certificate }},
	}
	for _, f := range figs {
		park := f.get(res.Block)
		total, null := 0.0, false
		for _, p := range parts {
			switch v := f.get(p); {
			case v != nil:
				total += *v
			case f.name != "value_added": // park-level meters have no value added of their own
				null = true
			}
		}
		switch {
		case park == nil && f.name == "value_added":
			if total != 0 {
				t.Errorf("value_added: park null, blocks sum to %v", total)
			}
		case park == nil:
			if !null {
				t.Errorf("%s: park null, but every block has a value", f.name)
			}
		case null:
			t.Errorf("%s: park %v, but a block is null", f.name, *park)
		case math.Abs(*park-total) > 1e-9*math.Max(1, math.Abs(total)):
			t.Errorf("%s: park %v, blocks sum to %v", f.name, *park, total)
		}
	}
}

func TestIndicatorsInvalidInput(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	good := func() Inputs {
		return Inputs{From: from, To: from.AddDate(1, 0, 0), Location: loc, Factors: indFactorSet(t, "cn-zcp-2025/1"),
			Flows: []Flow{{Meter: "m1", Carrier: "electricity", Direction: "in", Quantity: 10}}}
	}
	if _, err := Indicators(good()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		edit  func(in *Inputs)
		names string
	}{
		{"no location", func(in *Inputs) { in.Location = nil }, "location is required"},
		{"empty period", func(in *Inputs) { in.To = in.From }, "is not before"},
		{"no factor set", func(in *Inputs) { in.Factors = factors.Set{} }, "factor set"},
		{"carrier", func(in *Inputs) { in.Flows[0].Carrier = "biogas" }, `meter "m1"): carrier "biogas"`},
		{"direction", func(in *Inputs) { in.Flows[0].Direction = "both" }, `direction "both"`},
		{"green gas", func(in *Inputs) { in.Flows[0].Carrier, in.Flows[0].GreenClass = "natural_gas", "direct" }, "electricity only"},
		{"green class", func(in *Inputs) { in.Flows[0].GreenClass = "wind" }, `green_class "wind"`},
		{"negative", func(in *Inputs) { in.Flows[0].Quantity = -1 }, "quantity -1"},
		{"nan", func(in *Inputs) { in.Flows[0].Quantity = math.NaN() }, "quantity NaN"},
		{"estimated", func(in *Inputs) { in.Flows[0].Estimated = 11 }, "estimated 11"},
		{"readings", func(in *Inputs) { in.Flows[0].Expected = -1 }, "reading counts"},
		{"product", func(in *Inputs) {
			in.ProcessOutputs = []ProcessOutput{{Month: from, Product: "Clinker!", Tonnes: 1}}
		}, "product"},
		{"output twice", func(in *Inputs) {
			in.ProcessOutputs = []ProcessOutput{{Month: from, Product: "lime", Tonnes: 1}, {Month: from, Product: "lime", Tonnes: 2}}
		}, "given twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := good()
			tt.edit(&in)
			_, err := Indicators(in)
			if err == nil || !strings.Contains(err.Error(), tt.names) {
				t.Errorf("error %v, want one naming %q", err, tt.names)
			}
		})
	}
}

// The JSON names of the result are the API contract.
func TestIndicatorsJSONContract(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	res, err := Indicators(Inputs{From: from, To: from.AddDate(1, 0, 0), Location: loc, Factors: indFactorSet(t, "cn-zcp-2025/1"),
		Flows: []Flow{{Meter: "m1", Enterprise: "e1", Carrier: "electricity", Direction: "in", Quantity: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	got := indJSON(t, res).(map[string]any)
	for _, k := range []string{
		"from", "to", "factor_set", "estimate", "energy_tce_equal", "energy_tce_equivalent", "co2_t", "co2_by_component_t",
		"co2_by_carrier_t", "co2_by_product_t", "co2_per_tce", "value_added_10k_cny", "co2_per_10k_cny_va", "clean_energy_share",
		"non_fossil_share", "electricity_kwh", "direct_green_share", "thresholds", "completeness", "estimated_share",
		"missing_coefficients", "operator_supplied", "annual_energy_tce_equal", "instruments", "notes", "enterprises",
	} {
		if _, ok := got[k]; !ok {
			t.Errorf("result has no %q", k)
		}
	}
	for parent, keys := range map[string][]string{
		"co2_by_component_t": {"fuel", "transform", "electricity", "heat", "process"},
		"electricity_kwh":    {"grid", "grid_export", "direct_green", "direct_green_export", "green_trade", "certificate"},
		"factor_set":         {"id", "version", "method", "electricity_convention"},
	} {
		for _, k := range keys {
			if _, ok := got[parent].(map[string]any)[k]; !ok {
				t.Errorf("%s has no %q", parent, k)
			}
		}
	}
	th := got["thresholds"].([]any)[0].(map[string]any)
	for _, k := range []string{"scheme", "indicator", "milestone_year", "limit", "value", "pass", "note", "op", "estimate"} {
		if _, ok := th[k]; !ok {
			t.Errorf("threshold has no %q", k)
		}
	}
	if e := got["enterprises"].([]any)[0].(map[string]any); e["enterprise_id"] != "e1" || e["co2_t"] == nil {
		t.Errorf("enterprise block %v", e)
	}
}
