// Package configschema generates the JSON Schema of tokengate's configuration
// file from the structs of package config, for the Helm chart's
// values.schema.json (the `config` value). Generating it means the chart's
// schema cannot drift from the decoder: a new key in a config struct is a new
// property at the next `make chart-schema`, and a test fails until it is run.
//
// The schema is never stricter than the decoder (config/walk.go), only as
// strict where it can be:
//   - unknown keys are refused (additionalProperties: false), as the strict
//     decoder refuses them;
//   - null is allowed everywhere: the decoder treats it as an absent key;
//   - a string field takes any scalar (yaml.v3 decodes 5 or true into a string);
//   - an integer, boolean or duration field also takes a string holding a
//     ${VAR} reference, which the decoder expands before reading the value;
//   - a duration is a Go duration string with a unit (30s, 1h30m) or 0.
package configschema

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tokengate/tokengate/config"
)

// Patterns of the scalar forms the decoder accepts.
const (
	// EnvRefPattern matches a string holding a ${VAR} reference.
	EnvRefPattern = `\$\{`
	// DurationPattern matches what time.ParseDuration accepts: a signed
	// sequence of decimal numbers with units, or a bare 0.
	DurationPattern = `^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`
)

// Object is a JSON object whose keys keep their order, so that the generated
// schema is byte-for-byte stable and reads in the structs' field order.
type Object []Member

// Member is one key of an Object.
type Member struct {
	Key   string
	Value any
}

// Get returns the value of key, or nil.
func (o Object) Get(key string) any {
	for _, m := range o {
		if m.Key == key {
			return m.Value
		}
	}
	return nil
}

var (
	durationType = reflect.TypeFor[config.Duration]()
	resourceType = reflect.TypeFor[config.Resource]()
	yamlUnmarsh  = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarsh  = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// DefinitionsRef is where the shared scalar forms live, as a JSON pointer
// from the root of the chart's values.schema.json.
const DefinitionsRef = "#/properties/config/definitions/"

// definitions are the scalar forms every field of that kind refers to
// ($ref), so that the schema states each once. Each allows null: below the
// root, a null value is an absent key.
func definitions() Object {
	null := Object{{"type", "null"}}
	return Object{
		{"string", Object{
			{"description", "A string: yaml.v3 also decodes a number or a boolean into a string field."},
			{"type", []string{"string", "number", "boolean", "null"}},
		}},
		{"integer", Object{
			{"description", "An integer, or a string with a ${VAR} reference expanded before decoding."},
			{"anyOf", []any{Object{{"type", "integer"}}, ref("envRef"), null}},
		}},
		{"number", Object{
			{"description", "A number, or a string with a ${VAR} reference expanded before decoding."},
			{"anyOf", []any{Object{{"type", "number"}}, ref("envRef"), null}},
		}},
		{"boolean", Object{
			{"description", "true or false, or a string with a ${VAR} reference expanded before decoding."},
			{"anyOf", []any{Object{{"type", "boolean"}}, ref("envRef"), null}},
		}},
		{"duration", Object{
			{"description", "A Go duration with a unit (30s, 5m, 1h30m) or 0, or a string with a ${VAR} reference."},
			{"anyOf", []any{Object{{"type", "string"}, {"pattern", DurationPattern}}, ref("envRef"), Object{{"const", 0}}, null}},
		}},
		{"resource", Object{
			{"description", "true (every exchange), false (never) or a list of audiences."},
			{"anyOf", []any{Object{{"type", "boolean"}}, ref("envRef"), Object{{"type", "array"}, {"items", ref("string")}}, null}},
		}},
		{"envRef", Object{
			{"description", "A string holding a ${VAR} reference: tokengate expands it from the environment before decoding."},
			{"type", "string"},
			{"pattern", EnvRefPattern},
		}},
	}
}

func ref(name string) Object { return Object{{"$ref", DefinitionsRef + name}} }

// Config returns the schema of the whole configuration file (config.Config),
// with the shared definitions.
func Config() (Object, error) {
	s, err := forType(reflect.TypeFor[config.Config](), "config", false)
	if err != nil {
		return nil, err
	}
	return append(s, Member{"definitions", definitions()}), nil
}

// forType is the schema of a value of type t at path (for errors). nullable
// adds null to an object's or a list's types: every value below the root
// may be null.
func forType(t reflect.Type, path string, nullable bool) (Object, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return ref("duration"), nil
	case t == resourceType:
		return ref("resource"), nil
	case reflect.PointerTo(t).Implements(yamlUnmarsh) || reflect.PointerTo(t).Implements(textUnmarsh):
		// A type that reads itself: only the generator can be taught its shape.
		return nil, fmt.Errorf("%s: %s decodes itself; describe its YAML forms in configschema.forType", path, t)
	}
	switch t.Kind() {
	case reflect.Struct:
		return structSchema(t, path, nullable)
	case reflect.Slice:
		items, err := forType(t.Elem(), path+"[]", true)
		if err != nil {
			return nil, err
		}
		return Object{{"type", types("array", nullable)}, {"items", items}}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("%s: map keys must be strings, not %s", path, t.Key())
		}
		values, err := forType(t.Elem(), path+".*", true)
		if err != nil {
			return nil, err
		}
		return Object{{"type", types("object", nullable)}, {"additionalProperties", values}}, nil
	case reflect.String:
		return ref("string"), nil
	case reflect.Bool:
		return ref("boolean"), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return ref("integer"), nil
	case reflect.Float32, reflect.Float64:
		return ref("number"), nil
	}
	return nil, fmt.Errorf("%s: cannot describe a %s field; teach configschema.forType", path, t)
}

// structSchema describes a struct by its yaml keys, in field order. Unknown
// keys are refused, as the strict decoder refuses them.
func structSchema(t reflect.Type, path string, nullable bool) (Object, error) {
	props := Object{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if opts != "" && strings.Contains(","+opts+",", ",inline,") {
			return nil, fmt.Errorf("%s.%s: inline fields are not supported; teach configschema.structSchema", path, f.Name)
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		s, err := forType(f.Type, path+"."+name, true)
		if err != nil {
			return nil, err
		}
		props = append(props, Member{name, s})
	}
	return Object{
		{"type", types("object", nullable)},
		{"additionalProperties", false},
		{"properties", props},
	}, nil
}

// types is a JSON Schema "type" value with null added when nullable.
func types(t any, nullable bool) any {
	var list []string
	switch v := t.(type) {
	case string:
		if !nullable {
			return v
		}
		list = []string{v}
	case []string:
		list = v
	}
	if nullable {
		list = append(list, "null")
	}
	return list
}
