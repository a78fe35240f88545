package factors

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The factor-set file is a strict subset of YAML, read here with the standard library alone so
// the domain package imports nothing else; any YAML tool reads the same file the same way:
//
//	# comment
//	id: cn-zcp-2025              top-level "key: value" lines, in any order
//	version: 1
//	rule: "..."                  plain, "double-quoted" (Go escapes) or 'single-quoted' strings
//	carriers:                    a block sequence of flat mappings, items start with "- "
//	  - carrier: electricity
//	    kgce_equal: 0.3          numbers are plain; null, ~ or nothing: no value
//	    operator_supplied: [kgce_equal]   a flow sequence of scalars
//	products: []                 an empty sequence
//
// Anything else (tabs for indentation, anchors, tags, nested or flow mappings, block scalars,
// several documents, repeated keys, unknown keys) is an error naming the line.

// maxSetBytes bounds a factor-set file; the shipped ones are a few kB.
const maxSetBytes = 1 << 20

var (
	keyPattern = regexp.MustCompile(`^[a-z0-9_]+$`)
	// decimal is a YAML 1.2 core-schema float without .inf and .nan.
	decimal = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

	topKeys     = []string{"id", "version", "base", "rule", "method", "effective_from", "electricity_convention", "carriers", "products"}
	carrierKeys = []string{"carrier", "unit", "kgce_equivalent", "kgce_equal", "kgco2", "kgco2_green", "source", "operator_supplied"}
	productKeys = []string{"product", "unit", "kgco2", "source", "operator_supplied"}
)

// scalar is one parsed value.
type scalar struct {
	line   int
	null   bool
	plain  bool // unquoted: may be a number
	text   string
	isList bool
	list   []string
	items  []map[string]scalar // a block sequence of mappings
}

// ParseSet decodes one factor-set file. It checks the syntax and the types of values; Validate
// checks the content.
func ParseSet(data []byte) (Set, error) {
	if len(data) > maxSetBytes {
		return Set{}, fmt.Errorf("factor set file is %d bytes, more than %d", len(data), maxSetBytes)
	}
	top, err := parseDoc(string(data))
	if err != nil {
		return Set{}, err
	}
	var s Set
	d := decoder{m: top, where: "factor set"}
	d.known(topKeys)
	s.ID = d.str("id")
	s.Version = d.integer("version")
	s.Base = d.str("base")
	s.Rule = d.str("rule")
	s.Method = Method(d.str("method"))
	s.EffectiveFrom = d.str("effective_from")
	s.ElectricityConvention = Convention(d.str("electricity_convention"))
	s.Carriers = d.rows("carriers", carrierKeys)
	s.Products = d.rows("products", productKeys)
	if d.err != nil {
		return Set{}, d.err
	}
	return s, nil
}

// parseDoc reads the top-level mapping.
func parseDoc(doc string) (map[string]*scalar, error) {
	top := map[string]*scalar{}
	var seq *scalar            // the top-level value whose block sequence is being read
	var item map[string]scalar // its current item
	itemIndent, seqIndent := -1, -1
	ended := false
	for i, line := range strings.Split(doc, "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		if i == 0 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		body := strings.TrimLeft(line, " ")
		indent := len(line) - len(body)
		if strings.HasPrefix(body, "\t") {
			return nil, fmt.Errorf("line %d: indent with spaces, not tabs", n)
		}
		body, err := stripComment(body, n)
		if err != nil {
			return nil, err
		}
		switch {
		case body == "":
			continue
		case ended:
			return nil, fmt.Errorf("line %d: content after the document end marker", n)
		case indent == 0 && body == "...":
			ended = true
		case indent == 0 && body == "---":
			if len(top) > 0 {
				return nil, fmt.Errorf("line %d: one factor set per file", n)
			}
		case seq != nil && (body == "-" || strings.HasPrefix(body, "- ")):
			if seqIndent >= 0 && indent != seqIndent {
				return nil, fmt.Errorf("line %d: the items of a sequence start in the same column", n)
			}
			seqIndent = indent
			rest := strings.TrimLeft(body[1:], " ")
			if rest == "" {
				return nil, fmt.Errorf("line %d: put an item's first key on its dash line (- carrier: ...)", n)
			}
			item = map[string]scalar{}
			seq.null = false
			seq.items = append(seq.items, item)
			itemIndent = indent + len(body) - len(rest)
			if err := addItemKey(item, rest, n); err != nil {
				return nil, err
			}
		case indent == 0:
			k, v, err := keyValue(body, n)
			if err != nil {
				return nil, err
			}
			if _, dup := top[k]; dup {
				return nil, fmt.Errorf("line %d: key %q repeated", n, k)
			}
			sc, err := parseValue(v, n)
			if err != nil {
				return nil, err
			}
			top[k] = &sc
			seq, item, itemIndent, seqIndent = nil, nil, -1, -1
			if sc.null {
				seq = &sc // a block sequence may follow
			}
		case seq == nil:
			return nil, fmt.Errorf("line %d: unexpected indentation (only the items of a top-level sequence are indented)", n)
		case item == nil || indent != itemIndent:
			return nil, fmt.Errorf("line %d: indentation does not line up with the first key of the item above", n)
		default:
			if err := addItemKey(item, body, n); err != nil {
				return nil, err
			}
		}
	}
	return top, nil
}

func addItemKey(item map[string]scalar, body string, n int) error {
	k, v, err := keyValue(body, n)
	if err != nil {
		return err
	}
	if _, dup := item[k]; dup {
		return fmt.Errorf("line %d: key %q repeated in one item", n, k)
	}
	sc, err := parseValue(v, n)
	if err != nil {
		return err
	}
	item[k] = sc
	return nil
}

// keyValue splits "key: value" (or "key:"); keys are plain lower-case words.
func keyValue(body string, n int) (string, string, error) {
	k, v, ok := strings.Cut(body, ":")
	if !ok || !keyPattern.MatchString(k) {
		return "", "", fmt.Errorf("line %d: expected \"key: value\" with a lower-case key, got %q", n, body)
	}
	if v != "" && v[0] != ' ' {
		return "", "", fmt.Errorf("line %d: put a space after %q", n, k+":")
	}
	return k, strings.TrimSpace(v), nil
}

// stripComment removes a comment: "#" at the start or after a space, outside quotes.
func stripComment(body string, n int) (string, error) {
	var quote byte
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || body[i-1] == ' '):
			return strings.TrimRight(body[:i], " "), nil
		}
	}
	if quote != 0 {
		return "", fmt.Errorf("line %d: unterminated quoted string (put a value that contains ' or \" in double quotes)", n)
	}
	return strings.TrimRight(body, " "), nil
}

// parseValue reads a scalar or a flow sequence of scalars.
func parseValue(v string, n int) (scalar, error) {
	switch {
	case v == "" || v == "null" || v == "~" || v == "Null" || v == "NULL":
		return scalar{line: n, null: true}, nil
	case v[0] == '[':
		if !strings.HasSuffix(v, "]") {
			return scalar{}, fmt.Errorf("line %d: a flow sequence ends with ] on the same line", n)
		}
		sc := scalar{line: n, isList: true}
		inner := strings.TrimSpace(v[1 : len(v)-1])
		for inner != "" {
			elem, rest, err := nextElem(inner, n)
			if err != nil {
				return scalar{}, err
			}
			if elem.null || elem.isList {
				return scalar{}, fmt.Errorf("line %d: flow sequence items are strings", n)
			}
			sc.list = append(sc.list, elem.text)
			inner = rest
		}
		return sc, nil
	case v[0] == '"':
		s, err := strconv.Unquote(v)
		if err != nil {
			return scalar{}, fmt.Errorf("line %d: bad double-quoted string %s (Go escapes only)", n, v)
		}
		return scalar{line: n, text: s}, nil
	case v[0] == '\'':
		if len(v) < 2 || v[len(v)-1] != '\'' || strings.Contains(strings.ReplaceAll(v[1:len(v)-1], "''", ""), "'") {
			return scalar{}, fmt.Errorf("line %d: bad single-quoted string %s", n, v)
		}
		return scalar{line: n, text: strings.ReplaceAll(v[1:len(v)-1], "''", "'")}, nil
	case strings.ContainsRune("{}&*!|>%@`],?", rune(v[0])) || strings.HasPrefix(v, "- ") || v == "-":
		return scalar{}, fmt.Errorf("line %d: %q uses YAML this format does not accept (quote strings that start with %c)", n, v, v[0])
	case strings.Contains(v, ": ") || strings.HasSuffix(v, ":"):
		return scalar{}, fmt.Errorf("line %d: nested mappings are not accepted; quote a string that contains \": \"", n)
	}
	return scalar{line: n, plain: true, text: v}, nil
}

// nextElem reads one element of a flow sequence and the text after its comma.
func nextElem(s string, n int) (scalar, string, error) {
	end := len(s)
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quote == '"' && c == '\\' {
			i++
			continue
		}
		if quote != 0 {
			if c == quote {
				quote = 0
			}
			continue
		}
		if c == '"' || c == '\'' {
			quote = c
		} else if c == ',' {
			end = i
			break
		} else if c == '[' || c == ']' || c == '{' || c == '}' {
			return scalar{}, "", fmt.Errorf("line %d: nested flow collections are not accepted", n)
		}
	}
	elem := strings.TrimSpace(s[:end])
	rest := ""
	if end < len(s) {
		rest = strings.TrimSpace(s[end+1:])
		if rest == "" {
			return scalar{}, "", fmt.Errorf("line %d: trailing comma in a flow sequence", n)
		}
	}
	if elem == "" {
		return scalar{}, "", fmt.Errorf("line %d: empty item in a flow sequence", n)
	}
	sc, err := parseValue(elem, n)
	return sc, rest, err
}

// decoder turns parsed values into typed fields, keeping the first error.
type decoder struct {
	m     map[string]*scalar
	where string
	err   error
}

func (d *decoder) fail(line int, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("line %d: %s: %s", line, d.where, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) get(k string) *scalar { return d.m[k] }

func (d *decoder) str(k string) string {
	sc := d.get(k)
	if sc == nil || sc.null {
		return ""
	}
	if sc.isList || sc.items != nil {
		d.fail(sc.line, "%s is a string", k)
		return ""
	}
	return sc.text
}

func (d *decoder) integer(k string) int {
	sc := d.get(k)
	if sc == nil || sc.null {
		return 0
	}
	v, err := strconv.Atoi(sc.text)
	if err != nil || !sc.plain || sc.isList || sc.items != nil {
		d.fail(sc.line, "%s is a whole number, got %q", k, sc.text)
	}
	return v
}

func (d *decoder) number(k string) *float64 {
	sc := d.get(k)
	if sc == nil || sc.null {
		return nil
	}
	v, err := strconv.ParseFloat(sc.text, 64)
	if err != nil || !sc.plain || !decimal.MatchString(sc.text) || math.IsInf(v, 0) {
		d.fail(sc.line, "%s is a finite decimal number or null, got %q", k, sc.text)
		return nil
	}
	return &v
}

func (d *decoder) list(k string) []string {
	sc := d.get(k)
	if sc == nil || sc.null {
		return nil
	}
	if !sc.isList {
		d.fail(sc.line, "%s is a flow sequence such as [kgce_equal]", k)
		return nil
	}
	return sc.list
}

// known fails on a key not in keys, the one on the first line when there are several.
func (d *decoder) known(keys []string) {
	var bad *scalar
	var name string
	for k, sc := range d.m {
		if !slices.Contains(keys, k) && (bad == nil || sc.line < bad.line) {
			bad, name = sc, k
		}
	}
	if bad != nil {
		d.fail(bad.line, "unknown key %q (known: %s)", name, strings.Join(keys, ", "))
	}
}

// rows reads a block sequence of carrier or product rows.
func (d *decoder) rows(k string, keys []string) []Coefficient {
	sc := d.get(k)
	if sc == nil || sc.null || d.err != nil {
		return nil
	}
	if sc.isList && len(sc.list) == 0 {
		return nil
	}
	if sc.items == nil {
		d.fail(sc.line, "%s is a sequence of mappings (- %s: ...)", k, keys[0])
		return nil
	}
	out := make([]Coefficient, 0, len(sc.items))
	for i, item := range sc.items {
		m := make(map[string]*scalar, len(item))
		for key, v := range item {
			m[key] = &v
		}
		id := decoder{m: m, where: fmt.Sprintf("%s[%d]", k, i)}
		id.known(keys)
		c := Coefficient{
			Carrier:          id.strIf(keys[0] == "carrier", "carrier"),
			Product:          id.strIf(keys[0] == "product", "product"),
			Unit:             id.str("unit"),
			KgceEquivalent:   id.number("kgce_equivalent"),
			KgceEqual:        id.number("kgce_equal"),
			KgCO2:            id.number("kgco2"),
			KgCO2Green:       id.number("kgco2_green"),
			Source:           id.str("source"),
			OperatorSupplied: id.list("operator_supplied"),
		}
		if id.err != nil {
			d.err = id.err
			return nil
		}
		out = append(out, c)
	}
	return out
}

func (d *decoder) strIf(ok bool, k string) string {
	if !ok {
		return ""
	}
	return d.str(k)
}

// FormatSet writes s in the file format ParseSet reads; ParseSet(FormatSet(s)) equals s.
// Operators start a new version from it.
func FormatSet(s Set) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "id: %s\n", strconv.Quote(s.ID))
	fmt.Fprintf(&b, "version: %d\n", s.Version)
	if s.Base != "" {
		fmt.Fprintf(&b, "base: %s\n", strconv.Quote(s.Base))
	}
	fmt.Fprintf(&b, "rule: %s\n", strconv.Quote(s.Rule))
	fmt.Fprintf(&b, "method: %s\n", strconv.Quote(string(s.Method)))
	fmt.Fprintf(&b, "effective_from: %s\n", strconv.Quote(s.EffectiveFrom))
	fmt.Fprintf(&b, "electricity_convention: %s\n", strconv.Quote(string(s.ElectricityConvention)))
	formatRows(&b, "carriers", s.Carriers)
	formatRows(&b, "products", s.Products)
	return []byte(b.String())
}

func formatRows(b *strings.Builder, k string, rows []Coefficient) {
	if len(rows) == 0 {
		fmt.Fprintf(b, "%s: []\n", k)
		return
	}
	fmt.Fprintf(b, "%s:\n", k)
	for _, r := range rows {
		if k == "products" {
			fmt.Fprintf(b, "  - product: %s\n", strconv.Quote(r.Product))
		} else {
			fmt.Fprintf(b, "  - carrier: %s\n", strconv.Quote(r.Carrier))
		}
		fmt.Fprintf(b, "    unit: %s\n", strconv.Quote(r.Unit))
		if k != "products" {
			fmt.Fprintf(b, "    kgce_equivalent: %s\n", formatNumber(r.KgceEquivalent))
			fmt.Fprintf(b, "    kgce_equal: %s\n", formatNumber(r.KgceEqual))
		}
		fmt.Fprintf(b, "    kgco2: %s\n", formatNumber(r.KgCO2))
		if k != "products" && r.KgCO2Green != nil {
			fmt.Fprintf(b, "    kgco2_green: %s\n", formatNumber(r.KgCO2Green))
		}
		fmt.Fprintf(b, "    source: %s\n", strconv.Quote(r.Source))
		if len(r.OperatorSupplied) > 0 {
			q := make([]string, len(r.OperatorSupplied))
			for i, f := range r.OperatorSupplied {
				q[i] = strconv.Quote(f)
			}
			fmt.Fprintf(b, "    operator_supplied: [%s]\n", strings.Join(q, ", "))
		}
	}
}

func formatNumber(p *float64) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatFloat(*p, 'g', -1, 64)
}
