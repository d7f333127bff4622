package configs

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decode parses data into a Config with defaults applied. It walks the yaml.Node tree
// itself rather than using yaml.v3's KnownFields, because only the walk knows the path of a
// key ("cameras[0].record") and can report every unknown key, duplicate key and bad value
// in one pass instead of stopping at the first.
func decode(data []byte, source string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, emptyConfig(source)
		}
		return nil, syntaxError(source, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, fmt.Errorf("%s:%d: more than one YAML document (want exactly one; remove the ---)", source, extra.Line)
	case err != io.EOF:
		return nil, syntaxError(source, err)
	}

	root := doc.Content[0]
	if isNull(root) {
		return nil, emptyConfig(source) // "---" or "~" alone
	}
	c := new(Config)
	c.setDefaults()
	w := walker{source: source}
	w.value(root, reflect.ValueOf(c).Elem(), "")
	if len(w.errs) > 0 {
		return nil, errors.Join(w.errs...)
	}
	return c, nil
}

// emptyConfig is an error rather than an all-defaults config: a file that lost its content
// should not start a server that records nothing.
func emptyConfig(source string) error {
	return fmt.Errorf("%s: empty config (want a mapping with storage, http and cameras)", source)
}

// yamlLinePrefix matches the "yaml: line N: " that yaml.v3 puts in front of syntax errors.
var yamlLinePrefix = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError rewrites a yaml.v3 syntax error as "source:line: message" like every other
// error here, so editors can jump to it.
func syntaxError(source string, err error) error {
	msg := err.Error()
	if m := yamlLinePrefix.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s", source, m[1], msg[len(m[0]):])
	}
	return fmt.Errorf("%s: %s", source, strings.TrimPrefix(msg, "yaml: "))
}

// walker decodes a yaml.Node tree into Go values by reflection, collecting every error.
type walker struct {
	source string
	errs   []error
	// problems are errs again by path, for callers that answer with paths (the camera
	// API): the message without the path in front.
	problems []Problem
}

// errorf records a problem at path, found at n's line.
func (w *walker) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.errs = append(w.errs, fmt.Errorf("%s:%d: %s", w.source, n.Line, msg))
	w.problems = append(w.problems, Problem{Path: path, Message: strings.TrimPrefix(msg, path+": ")})
}

// defaulter is implemented by the types whose zero value is not their default.
type defaulter interface{ setDefaults() }

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// value decodes n into v. path is the YAML path of n for messages ("" for the document).
// A null value (an empty "key:" or "~") leaves v as it is, that is, at its default.
//
// Messages never quote a scalar that might be a secret: "main: rtsp://admin:pw@cam" is
// reported as "expected a mapping, got a single value", without the URL.
func (w *walker) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias // the schema has no recursion, so following aliases always ends
	}
	if isNull(n) {
		return
	}
	if v.Addr().Type().Implements(textUnmarshaler) {
		if w.expect(n, yaml.ScalarNode, path) {
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
				w.errorf(n, path, "%s: %v", path, err)
			}
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		w.mapping(n, v, path)
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		if d, ok := elem.Interface().(defaulter); ok {
			d.setDefaults()
		}
		w.value(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Slice:
		if !w.expect(n, yaml.SequenceNode, path) {
			return
		}
		if len(n.Content) == 0 {
			v.SetZero() // "zones: []" means no zones, as an absent key does
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if d, ok := s.Index(i).Addr().Interface().(defaulter); ok {
				d.setDefaults()
			}
			w.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		// Any scalar is accepted as a string: "id: 101" means the id "101".
		if w.expect(n, yaml.ScalarNode, path) {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		if !w.expect(n, yaml.ScalarNode, path) {
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if n.ShortTag() != "!!bool" || err != nil {
			w.errorf(n, path, "%s: expected true or false, got %q", path, n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int:
		if !w.expect(n, yaml.ScalarNode, path) {
			return
		}
		i, err := strconv.ParseInt(n.Value, 10, 0)
		if n.ShortTag() != "!!int" || err != nil {
			w.errorf(n, path, "%s: expected a whole number, got %q", path, n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if !w.expect(n, yaml.ScalarNode, path) {
			return
		}
		tag := n.ShortTag()
		f, err := strconv.ParseFloat(n.Value, 64)
		if (tag != "!!float" && tag != "!!int") || err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			w.errorf(n, path, "%s: expected a number, got %q", path, n.Value)
			return
		}
		v.SetFloat(f)
	default:
		panic("configs: no decoder for " + v.Type().String())
	}
}

// mapping decodes a YAML mapping into the struct v, matching keys to yaml tags.
func (w *walker) mapping(n *yaml.Node, v reflect.Value, path string) {
	if !w.expect(n, yaml.MappingNode, path) {
		return
	}
	seen := make(map[string]int) // key -> line of its first occurrence
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.errorf(k, path, "a list or mapping as a key %s (keys must be plain words)", inPath(path))
			continue
		}
		if k.Value == "<<" {
			// Merge keys would make a key's origin (and so its line) ambiguous; anchors and
			// aliases of whole values (record: *standard) still work.
			w.errorf(k, path, "merge key (<<) %s: merge keys are not supported", inPath(path))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.errorf(k, joinPath(path, k.Value), "duplicate key %q %s (first at line %d)", k.Value, inPath(path), first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fieldByTag(v, k.Value)
		if !ok {
			w.errorf(k, joinPath(path, k.Value), "unknown key %q %s", k.Value, inPath(path))
			continue
		}
		w.value(val, f, joinPath(path, k.Value))
	}
}

// fieldByTag returns the field of struct v whose yaml tag is key.
func fieldByTag(v reflect.Value, key string) (reflect.Value, bool) {
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("yaml") == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// expect reports whether n is of the given kind, and records an error if not.
func (w *walker) expect(n *yaml.Node, kind yaml.Kind, path string) bool {
	if n.Kind == kind {
		return true
	}
	if path == "" {
		w.errorf(n, path, "expected %s at the top level, got %s", kindName(kind), kindName(n.Kind))
	} else {
		w.errorf(n, path, "%s: expected %s, got %s", path, kindName(kind), kindName(n.Kind))
	}
	return false
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping (key: value lines)"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// inPath says where a key is, for messages; the document itself has no path.
func inPath(path string) string {
	if path == "" {
		return "at the top level"
	}
	return "in " + path
}
