package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decodeYAML decodes the YAML document data over c, strictly: an unknown key
// or a value of the wrong type is an error naming the key and its line. A key
// with a null value (`mqtt_addr:`) sets a string setting to "", as an empty
// string would. name starts every error message, e.g. "config file x.yaml".
// decodeYAML reports whether the file sets mqtt_addr. On error c may be
// partly written.
func decodeYAML(c *Config, data []byte, name string) (mqttAddrSet bool, err error) {
	// First the node tree: syntax errors, the document count, and the lines
	// of keys and values for the messages below.
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil // empty, or only comments
		}
		return false, fmt.Errorf("%s: %w", name, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		return false, fmt.Errorf("%s: line %d: a second YAML document; put all settings in one", name, next.Line)
	}

	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		idx := indexNodes(&doc)
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, fmt.Errorf("%s: %s", name, idx.explain(msg)))
		}
		return false, errors.Join(errs...)
	}

	root := rootOf(&doc)
	if root == nil {
		return false, nil
	}
	emptyNulls(root, reflect.ValueOf(c).Elem())
	if root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "mqtt_addr" {
				mqttAddrSet = true
			}
		}
	}
	return mqttAddrSet, nil
}

// rootOf returns the top node of a document, following an alias.
func rootOf(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	return deref(doc.Content[0])
}

func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// emptyNulls sets to "" every string field of v whose key in the mapping n
// has a null value; yaml.v3 leaves such fields (here: their defaults)
// untouched.
func emptyNulls(n *yaml.Node, v reflect.Value) {
	n = deref(n)
	if n.Kind != yaml.MappingNode || v.Kind() != reflect.Struct {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f, ok := fieldByKey(v, n.Content[i].Value)
		if !ok {
			continue
		}
		val := deref(n.Content[i+1])
		if val.Kind == yaml.ScalarNode && val.ShortTag() == "!!null" && f.Kind() == reflect.String {
			f.SetString("")
			continue
		}
		emptyNulls(val, f)
	}
}

// yamlKey returns the YAML key of a struct field.
func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return k
}

func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if yamlKey(t.Field(i)) == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// nodeIndex maps lines of the file to the dotted keys found on them.
type nodeIndex struct {
	keys   map[int][]keyAt  // key nodes by line
	values map[int][]string // paths of value nodes (and list items) by line
}

type keyAt struct{ name, path string }

func indexNodes(doc *yaml.Node) nodeIndex {
	idx := nodeIndex{keys: map[int][]keyAt{}, values: map[int][]string{}}
	if root := rootOf(doc); root != nil {
		idx.add(root, "", 0)
	}
	return idx
}

func (idx nodeIndex) add(n *yaml.Node, prefix string, depth int) {
	if depth > 8 { // Config nests two levels; deeper is wrong anyway
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			idx.keys[k.Line] = append(idx.keys[k.Line], keyAt{k.Value, path})
			idx.value(v.Line, path)
			idx.add(v, path, depth+1)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			idx.value(item.Line, prefix)
			idx.add(item, prefix, depth+1)
		}
	}
}

func (idx nodeIndex) value(line int, path string) {
	if path != "" && !slices.Contains(idx.values[line], path) {
		idx.values[line] = append(idx.values[line], path)
	}
}

// explain rewrites one of yaml.v3's "line N: …" messages to name the key
// and, for an unknown key, the keys that are known there.
func (idx nodeIndex) explain(msg string) string {
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return msg
	}
	num, body, ok := strings.Cut(rest, ": ")
	line, err := strconv.Atoi(num)
	if !ok || err != nil {
		return msg
	}

	after, isField := strings.CutPrefix(body, "field ")
	if field, typ, ok := strings.Cut(after, " not found in type "); isField && ok {
		path := field
		keys := idx.keys[line]
		for _, k := range keys {
			if k.name == field {
				path = k.path
			}
		}
		if path == field && len(keys) == 1 {
			path = keys[0].path
		}
		known := "known keys"
		if section, _, nested := cutLast(path, "."); nested {
			known += " under " + section
		}
		return fmt.Sprintf("line %d: unknown key %q; %s: %s", line, path, known, strings.Join(keysOfType(typ), ", "))
	}

	if strings.HasPrefix(body, "cannot unmarshal ") {
		// A wrong root (a list, a scalar) names no key.
		if strings.HasSuffix(body, " into "+reflect.TypeFor[Config]().String()) {
			return fmt.Sprintf("line %d: %s", line, readableTypes(body))
		}
		if path, ok := deepest(idx.values[line]); ok {
			return fmt.Sprintf("line %d: %s: %s", line, path, readableTypes(body))
		}
		return fmt.Sprintf("line %d: %s", line, readableTypes(body))
	}
	return msg
}

// deepest returns the longest of paths if each of the others is a section
// containing it ("influx", "influx.bucket"), so that the value on the line
// is unambiguous; several keys on one line (a flow mapping) are not.
func deepest(paths []string) (string, bool) {
	if len(paths) == 0 {
		return "", false
	}
	long := slices.MaxFunc(paths, func(a, b string) int { return len(a) - len(b) })
	for _, p := range paths {
		if p != long && !strings.HasPrefix(long, p+".") {
			return "", false
		}
	}
	return long, true
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// keysOfType returns the YAML keys of the Config struct type (or nested
// struct type) that yaml.v3 names typ, e.g. "config.Influx".
func keysOfType(typ string) []string {
	var find func(t reflect.Type) []string
	find = func(t reflect.Type) []string {
		if t.String() == typ {
			keys := make([]string, 0, t.NumField())
			for i := range t.NumField() {
				keys = append(keys, yamlKey(t.Field(i)))
			}
			return keys
		}
		for i := range t.NumField() {
			if ft := t.Field(i).Type; ft.Kind() == reflect.Struct {
				if keys := find(ft); keys != nil {
					return keys
				}
			}
		}
		return nil
	}
	return find(reflect.TypeFor[Config]())
}

// readableTypes replaces Go type names in a yaml.v3 message by what a person
// writes in YAML.
func readableTypes(msg string) string {
	influx, log := reflect.TypeFor[Influx]().String(), reflect.TypeFor[Log]().String()
	return strings.NewReplacer(
		" into "+reflect.TypeFor[Config]().String(), " into a mapping of settings (key: value)",
		" into "+influx, " into a mapping ("+strings.Join(keysOfType(influx), ", ")+")",
		" into "+log, " into a mapping ("+strings.Join(keysOfType(log), ", ")+")",
		" into []string", " into a list of strings",
		" into string", " into a string",
	).Replace(msg)
}
