package zones

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// structure checks a YAML node tree against the shape of the file* types
// before anything is decoded. The YAML decoder would reject the same
// documents, but its messages name Go types ("field consul_htp not found in
// type zones.fileRegion"); these name the key path an operator wrote.
type structure struct {
	errs []error
	// seen holds the anchored nodes already checked as a given type, so that
	// aliases cost one walk each (no billion laughs) and report once.
	seen map[visit]bool
}

type visit struct {
	node *yaml.Node
	typ  reflect.Type
}

// checkStructure reports every unknown or duplicate key and every value of
// the wrong kind under root, in document order.
func checkStructure(root *yaml.Node) []error {
	s := &structure{seen: map[visit]bool{}}
	s.check(root, reflect.TypeFor[fileConfig](), "")
	return s.errs
}

func (s *structure) addf(line int, format string, args ...any) {
	s.errs = append(s.errs, invalidf("line %d: "+format, append([]any{line}, args...)...))
}

// check walks n as the YAML of a value of type t found at path.
func (s *structure) check(n *yaml.Node, t reflect.Type, path string) {
	n = s.resolve(n, t)
	if n == nil || n.ShortTag() == "!!null" {
		return // absent: defaults or validation deal with it
	}
	switch t.Kind() {
	case reflect.Pointer:
		s.check(n, t.Elem(), path)
	case reflect.Struct, reflect.Map:
		s.mapping(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			s.addf(n.Line, "%s: %s is not valid; want a list", where(path), describeNode(n))
			return
		}
		for i, e := range n.Content {
			s.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		s.scalar(n, t, path)
	}
}

// resolve follows an alias, returning nil if its target was already checked
// as type t. The target comes back with the alias's line, so that a problem
// with it is reported where the alias is used.
func (s *structure) resolve(n *yaml.Node, t reflect.Type) *yaml.Node {
	if n.Kind != yaml.AliasNode {
		return n
	}
	if n.Alias == nil {
		return nil
	}
	v := visit{n.Alias, t}
	if s.seen[v] {
		return nil
	}
	s.seen[v] = true
	target := *n.Alias
	target.Line, target.Column = n.Line, n.Column
	return &target
}

// mapping checks a YAML mapping that becomes a struct (fixed keys) or a map
// (any scalar key).
func (s *structure) mapping(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		s.addf(n.Line, "%s: %s is not valid; want a mapping", where(path), describeNode(n))
		return
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			s.merge(v, t, path)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			s.addf(k.Line, "%s as a key %s is not valid; want %s", describeNode(k), in(path), wantKeys(t))
			continue
		}
		var vt reflect.Type
		if t.Kind() == reflect.Map {
			vt = t.Elem()
		} else if f, ok := fieldByKey(t, k.Value); ok {
			vt = f.Type
		} else {
			s.addf(k.Line, "unknown key %q %s; want %s", k.Value, in(path), wantKeys(t))
			continue
		}
		if line, dup := first[k.Value]; dup {
			s.addf(k.Line, "duplicate key %q %s; first set at line %d", k.Value, in(path), line)
			continue
		}
		first[k.Value] = k.Line
		s.check(v, vt, join(path, k.Value))
	}
}

// merge checks the value of a "<<" merge key: a mapping, or a list of them,
// usually aliases.
func (s *structure) merge(v *yaml.Node, t reflect.Type, path string) {
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
	}
	for _, item := range items {
		target := item
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			target = item.Alias
		}
		if target.Kind != yaml.MappingNode {
			s.addf(item.Line, "%s to merge %s is not valid; want a mapping or a list of mappings", describeNode(target), in(path))
			continue
		}
		s.check(item, t, path)
	}
}

// scalar checks that n decodes as a t, by decoding it.
func (s *structure) scalar(n *yaml.Node, t reflect.Type, path string) {
	want := "a string"
	switch t.Kind() {
	case reflect.Bool:
		want = "true or false"
	case reflect.Int64:
		want = "a whole number"
	}
	if t == reflect.TypeFor[fileBytes]() {
		want = "a number of bytes, such as 16MB"
	}
	if n.Kind != yaml.ScalarNode {
		s.addf(n.Line, "%s: %s is not valid; want %s", where(path), describeNode(n), want)
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		s.addf(n.Line, "%s: %q is not valid; want %s", where(path), n.Value, want)
	}
}

// fieldByKey returns the field of struct t whose yaml tag is key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for f := range fieldsOf(t) {
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func fieldsOf(t reflect.Type) func(yield func(reflect.StructField) bool) {
	return func(yield func(reflect.StructField) bool) {
		for i := range t.NumField() {
			if !yield(t.Field(i)) {
				return
			}
		}
	}
}

func yamlKey(f reflect.StructField) string {
	key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return key
}

// wantKeys says which keys a mapping of type t accepts.
func wantKeys(t reflect.Type) string {
	if t.Kind() == reflect.Map {
		return "a string"
	}
	var keys []string
	for f := range fieldsOf(t) {
		keys = append(keys, yamlKey(f))
	}
	return "one of " + strings.Join(keys, ", ")
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// where names path in a message; the document itself has an empty path.
func where(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func in(path string) string {
	if path == "" {
		return "at the top level"
	}
	return "in " + path
}
