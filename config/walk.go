package config

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The walker is the first step of decoding (see decode.go): it checks the
// node tree against the Config struct types, key by key, so that every
// problem carries its key path, and expands ${VAR} on the way.

var durationType = reflect.TypeFor[Duration]()

// maxVisits bounds the nodes the walker visits, following aliases, so that a
// small file of nested aliases ("billion laughs") cannot make it run for
// long. A configuration with a thousand routes visits about 20000.
const maxVisits = 1 << 17

// expansion is the outcome of expanding one scalar node.
type expansion struct {
	ok      bool // no problem was found
	changed bool // the value came (in part) from the environment or an escape
}

// walker checks a node tree against the config structs; see the top of this file.
type walker struct {
	lookup lookupFunc
	probs  problems
	// spans is the key path → lines of every non-null value (see source).
	spans map[string]span
	// done remembers expanded scalars: an alias shares its anchor's node,
	// which must be expanded once ("$${" twice would become a variable).
	done map[*yaml.Node]expansion
	// bad holds values with a problem and drop the keys of entries with a
	// problem: prune removes both before a best-effort decode, which would
	// otherwise stop at the first of them.
	bad, drop map[*yaml.Node]bool
	// suggested holds the paths proposed by "did you mean", whose own
	// validation errors would only repeat the unknown key.
	suggested map[string]bool
	fieldSets map[reflect.Type]fieldSet
	visits    int
	tooBig    bool
}

func newWalker(lookup lookupFunc) *walker {
	return &walker{
		lookup:    lookup,
		spans:     map[string]span{},
		done:      map[*yaml.Node]expansion{},
		bad:       map[*yaml.Node]bool{},
		drop:      map[*yaml.Node]bool{},
		suggested: map[string]bool{},
		fieldSets: map[reflect.Type]fieldSet{},
	}
}

func (w *walker) problem(n *yaml.Node, path, msg string) {
	w.probs.add(lineOrder(n.Line), path, msg)
}

func (w *walker) problemf(n *yaml.Node, path, format string, args ...any) {
	w.problem(n, path, fmt.Sprintf(format, args...))
}

// visit counts a node against maxVisits.
func (w *walker) visit(n *yaml.Node) bool {
	if w.tooBig {
		return false
	}
	w.visits++
	if w.visits > maxVisits {
		w.tooBig = true
		w.problem(n, "", errTooManyAliases.Error())
		return false
	}
	return true
}

// value checks node n, to be decoded into a value of type t at path.
func (w *walker) value(n *yaml.Node, t reflect.Type, path string) {
	n = resolveAlias(n)
	if n == nil || !w.visit(n) || isNull(n) {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		w.scalar(n, t, path)
	case t == resourceType:
		w.resource(n, path)
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.problemf(n, path, "must be a mapping (key: value lines), not %s", kindName(n))
			w.bad[n] = true
			return
		}
		w.mapping(n, t, path, newMergeTarget())
	case t.Kind() == reflect.Map:
		w.stringMap(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.problemf(n, path, `must be a list, not %s: write [a, b] or one "- item" per line`, kindName(n))
			w.bad[n] = true
			return
		}
		for i, item := range n.Content {
			p := indexPath(path, i)
			w.setSpan(p, item, item)
			w.value(item, t.Elem(), p)
		}
	default:
		w.scalar(n, t, path)
	}
}

// stringMap checks a mapping of free-form names to values (a map[string]T
// field, like exchange.remote.extra_params): every key is a plain scalar set
// once, and every value is checked (and ${VAR}-expanded) as a T. Keys are
// never expanded: they are names, not values. Merge keys are refused, so what
// the map holds is what the file shows.
func (w *walker) stringMap(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		w.problemf(n, path, "must be a mapping (name: value lines), not %s", kindName(n))
		w.bad[n] = true
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, v := n.Content[i], n.Content[i+1]
		k := resolveAlias(key)
		if k == nil || !w.visit(k) {
			return
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			w.problem(k, path, `"<<" merges are not supported here: write each name: value`)
			w.drop[key] = true
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.problemf(k, path, "a key must be a plain name, not %s", kindName(k))
			w.drop[key] = true
			continue
		}
		kp := keyPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			w.problemf(k, kp, "is set twice (first on line %d): keep one", first)
			w.drop[key] = true
			continue
		}
		seen[k.Value] = k.Line
		w.setSpan(kp, k, v)
		w.value(v, t.Elem(), kp)
	}
}

// setSpan records that the file sets path, unless the value is null.
func (w *walker) setSpan(path string, key, value *yaml.Node) {
	if r := resolveAlias(value); r != nil && !isNull(r) {
		w.spans[path] = span{first: key.Line, last: lastLine(value)}
	}
}

// mergeTarget is one mapping in the file and what the mappings merged into
// it (<<: *anchor) have contributed so far.
type mergeTarget struct {
	// taken holds the keys already set: by the mapping itself, which
	// overrides what it merges, or by an earlier merge, which overrides a
	// later one.
	taken map[string]bool
	// merged holds the mappings merged in already: merging one twice adds
	// nothing, and skipping it keeps nested merges from growing exponentially.
	merged map[*yaml.Node]bool
}

func newMergeTarget() *mergeTarget {
	return &mergeTarget{taken: map[string]bool{}, merged: map[*yaml.Node]bool{}}
}

// mapping checks the keys of n against the yaml tags of struct type t, for
// the mapping into, which is n itself or one that merges n.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string, into *mergeTarget) {
	if into.merged[n] {
		return
	}
	into.merged[n] = true
	fields := w.fields(t)
	local := map[string]int{}
	merge := -1 // index of the "<<" key, merged after the keys beside it
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, v := n.Content[i], n.Content[i+1]
		k := resolveAlias(key)
		if k == nil || !w.visit(k) {
			return
		}
		if k.Kind != yaml.ScalarNode {
			w.problemf(k, path, "a key must be a plain name, not %s", kindName(k))
			w.drop[key] = true
			continue
		}
		if k.ShortTag() == "!!merge" {
			if merge >= 0 {
				w.problemf(k, keyPath(path, k.Value), "is set twice (first on line %d): merge several mappings with <<: [*a, *b]",
					n.Content[merge].Line)
				w.drop[key] = true
				continue
			}
			merge = i
			continue
		}
		kp := keyPath(path, k.Value)
		if first, dup := local[k.Value]; dup {
			w.problemf(k, kp, "is set twice (first on line %d): keep one", first)
			w.drop[key] = true
			continue
		}
		local[k.Value] = k.Line
		if into.taken[k.Value] {
			continue
		}
		into.taken[k.Value] = true
		f, known := fields.byName[k.Value]
		if !known {
			w.unknownKey(k, path, kp, fields.names)
			continue
		}
		w.setSpan(kp, k, v)
		w.value(v, f, kp)
	}
	if merge >= 0 && !w.merge(n.Content[merge+1], t, path, into) {
		w.drop[n.Content[merge]] = true
	}
}

// merge checks the mapping (or list of mappings) that a "<<" key merges in,
// after the keys beside it (which override it). It reports whether the
// value can be merged at all.
func (w *walker) merge(m *yaml.Node, t reflect.Type, path string, into *mergeTarget) bool {
	m = resolveAlias(m)
	if m == nil || !w.visit(m) {
		return false
	}
	switch m.Kind {
	case yaml.MappingNode:
		w.mapping(m, t, path, into)
		return true
	case yaml.SequenceNode:
		for _, item := range m.Content {
			if r := resolveAlias(item); r == nil || r.Kind != yaml.MappingNode {
				w.problem(item, path, `"<<" merges mappings only: list aliases of mappings, like <<: [*a, *b]`)
				return false
			}
		}
		for _, item := range m.Content {
			w.mapping(resolveAlias(item), t, path, into)
		}
		return true
	default:
		w.problem(m, path, `"<<" merges mappings only: write <<: *anchor where the anchor is a mapping`)
		return false
	}
}

func (w *walker) unknownKey(k *yaml.Node, parent, kp string, names []string) {
	if s := suggest(k.Value, names); s != "" {
		w.suggested[keyPath(parent, s)] = true
		w.problemf(k, kp, "unknown key; did you mean %q?", s)
		return
	}
	w.problemf(k, kp, "unknown key; valid keys here are %s", strings.Join(names, ", "))
}

// scalar expands a scalar value and checks that it decodes into type t.
// Values that came from the environment are never repeated in a message.
func (w *walker) scalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		w.problemf(n, path, "must be a single value, not %s", kindName(n))
		w.bad[n] = true
		return
	}
	exp := w.expand(n, t, path)
	if !exp.ok {
		// A string keeps its unexpanded text, so validation does not also
		// call it empty; anything else might not decode at all.
		if t.Kind() != reflect.String {
			w.bad[n] = true
		}
		return
	}
	if msg := scalarProblem(n, t, exp.changed); msg != "" {
		w.problem(n, path, msg)
		w.bad[n] = true
	}
}

// scalarProblem returns what keeps scalar n from decoding into type t, or "".
func scalarProblem(n *yaml.Node, t reflect.Type, fromEnv bool) string {
	shown := quote(n.Value)
	if fromEnv {
		shown = "the value from the environment"
	}
	switch {
	case t == durationType:
		var d Duration
		if err := d.UnmarshalText([]byte(n.Value)); err != nil {
			return shown + " is not a duration: write it with a unit, like 30s or 5m"
		}
	case t.Kind() == reflect.Int:
		if n.ShortTag() != "!!int" {
			return shown + " is not an integer"
		}
	case t.Kind() == reflect.Float64:
		if tag := n.ShortTag(); tag != "!!float" && tag != "!!int" {
			return shown + " is not a number"
		}
	case t.Kind() == reflect.Bool:
		if n.ShortTag() != "!!bool" {
			return shown + " is not a boolean: write true or false"
		}
	case t.Kind() == reflect.String:
	default:
		return fmt.Sprintf("cannot be configured (a %s field): this is a bug in tokengate", t)
	}
	// What remains is what yaml.v3 refuses beyond the kind: an int out of
	// range, a malformed explicit tag (!!binary, !!int on text).
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		if t.Kind() == reflect.Int {
			return shown + " is out of range"
		}
		return fmt.Sprintf("%s cannot be read with its tag %s: remove the tag", shown, n.Tag)
	}
	return ""
}

// expand replaces ${VAR} in a scalar, once per node. A changed value is
// retagged for its target: a string stays a string whatever it holds
// ("null", "true", "a\nb: c"), anything else is resolved afresh, so that
// max_entries: ${N} decodes into an int.
func (w *walker) expand(n *yaml.Node, t reflect.Type, path string) expansion {
	if e, seen := w.done[n]; seen {
		return e
	}
	out, changed, msgs := expandEnv(n.Value, w.lookup)
	for _, m := range msgs {
		w.problem(n, path, m)
	}
	e := expansion{ok: len(msgs) == 0, changed: changed}
	w.done[n] = e
	if changed {
		n.Value = out
		if t.Kind() == reflect.String {
			n.Tag = "!!str"
		} else {
			n.Tag, n.Style = "", 0
		}
	}
	return e
}

// prune removes what the walker found wrong from the tree, so that a
// best-effort decode can set everything else: bad values become null (in
// place, so aliases of them too), and entries with bad keys are dropped.
func (w *walker) prune(n *yaml.Node) {
	seen := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		if w.bad[n] {
			*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
			return
		}
		if n.Kind == yaml.MappingNode {
			kept := n.Content[:0]
			for i := 0; i+1 < len(n.Content); i += 2 {
				if !w.drop[n.Content[i]] {
					kept = append(kept, n.Content[i], n.Content[i+1])
				}
			}
			n.Content = kept
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
}

// fieldSet is the yaml keys of a struct type, in declaration order.
type fieldSet struct {
	names  []string
	byName map[string]reflect.Type
}

// fields returns the yaml keys of struct type t, computed once per type.
func (w *walker) fields(t reflect.Type) fieldSet {
	if fs, ok := w.fieldSets[t]; ok {
		return fs
	}
	fs := yamlFields(t)
	w.fieldSets[t] = fs
	return fs
}

func yamlFields(t reflect.Type) fieldSet {
	fs := fieldSet{byName: map[string]reflect.Type{}}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.names = append(fs.names, name)
		fs.byName[name] = f.Type
	}
	return fs
}
