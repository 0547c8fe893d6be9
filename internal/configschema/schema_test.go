package configschema

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
)

// chartSchema is the chart's values schema, relative to this package.
var chartSchema = filepath.Join("..", "..", "charts", "tokengate", "values.schema.json")

// TestChartSchemaIsGenerated fails when the committed values.schema.json is
// not what `make chart-schema` generates from package config: a key added to
// a config struct (or removed) must reach the chart's schema.
func TestChartSchemaIsGenerated(t *testing.T) {
	committed, err := os.ReadFile(chartSchema)
	if err != nil {
		t.Fatal(err)
	}
	generated, err := Splice(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, generated) {
		t.Errorf("%s is out of date with package config: run `make chart-schema`", chartSchema)
	}
	again, err := Splice(generated)
	if err != nil || !bytes.Equal(again, generated) {
		t.Errorf("Splice is not idempotent (err %v)", err)
	}
}

// TestSchemaHasEveryKey: every yaml key of every config struct is a property
// at its path, and every struct refuses unknown keys.
func TestSchemaHasEveryKey(t *testing.T) {
	s, err := Config()
	if err != nil {
		t.Fatal(err)
	}
	var walk func(t reflect.Type, s Object, path string)
	walk = func(typ reflect.Type, s Object, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			if typ.Kind() == reflect.Slice {
				s, _ = s.Get("items").(Object)
			}
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == durationType || typ == resourceType {
			return
		}
		if s.Get("additionalProperties") != false {
			t.Errorf("%s does not refuse unknown keys", path)
		}
		props, _ := s.Get("properties").(Object)
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			p, ok := props.Get(name).(Object)
			if !ok {
				t.Errorf("%s.%s is not in the schema", path, name)
				continue
			}
			walk(f.Type, p, path+"."+name)
		}
	}
	walk(reflect.TypeFor[config.Config](), s, "config")
}

// TestScalarForms: the forms of each kind of scalar, as the decoder takes
// them (config/walk.go), and nothing it would refuse for its kind.
func TestScalarForms(t *testing.T) {
	duration := regexp.MustCompile(DurationPattern)
	for _, ok := range []string{"30s", "5m", "1h30m", "0", "1.5h", ".5s", "250ms", "10us", "10µs", "-1s", "+2m"} {
		if !duration.MatchString(ok) {
			t.Errorf("duration %q is refused; time.ParseDuration takes it", ok)
		}
		if _, err := time.ParseDuration(ok); err != nil {
			t.Errorf("the test is wrong: %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"30", "5 m", "s", "1d", "", "1h 30m", "${X}"} {
		if duration.MatchString(bad) {
			t.Errorf("duration %q is accepted by the pattern", bad)
		}
	}
	if !regexp.MustCompile(EnvRefPattern).MatchString("${REDIS_DB}") {
		t.Error("the ${VAR} pattern does not match ${REDIS_DB}")
	}
	defs := definitions()
	for _, name := range []string{"integer", "boolean", "duration", "resource"} {
		b, _ := json.Marshal(defs.Get(name))
		if !strings.Contains(string(b), `"$ref":"`+DefinitionsRef+`envRef"`) || !strings.Contains(string(b), `"null"`) {
			t.Errorf("%s takes no ${VAR} string or no null: %s", name, b)
		}
	}
}

// TestGeneratorRefusesWhatItCannotDescribe: a field type the generator does
// not know (one that decodes itself, a map with other keys) is an error, not
// a silently wrong schema.
func TestGeneratorRefusesWhatItCannotDescribe(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  reflect.Type
		want string
	}{
		{"text unmarshaler", reflect.TypeFor[struct {
			At time.Time `yaml:"at"`
		}](), "decodes itself"},
		{"map with int keys", reflect.TypeFor[struct {
			M map[int]string `yaml:"m"`
		}](), "map keys must be strings"},
		{"channel", reflect.TypeFor[struct {
			C chan int `yaml:"c"`
		}](), "cannot describe"},
		{"inline", reflect.TypeFor[struct {
			config.TLS `yaml:",inline"`
		}](), "inline fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := forType(tc.typ, "x", false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	s, err := forType(reflect.TypeFor[struct {
		Params map[string]string `yaml:"extra_params"`
	}](), "x", false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	if want := `"extra_params":{"type":["object","null"],"additionalProperties":{"$ref":"` + DefinitionsRef + `string"}}`; !strings.Contains(string(b), want) {
		t.Errorf("a map[string]string field: %s\nwant %s", b, want)
	}
}

// TestSpliceKeepsTheRest: only properties.config changes, in place.
func TestSpliceKeepsTheRest(t *testing.T) {
	in := []byte(`{"b": 1.50, "properties": {"z": {"type": "string", "pattern": "<&>"}, "config": {"type": "object"}, "a": []}, "a": {}}`)
	out, err := Splice(in)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{`"b": 1.50,`, `"pattern": "<&>"`, `"a": []`, `"a": {}`, `"description": "The tokengate configuration file`} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	if strings.Index(s, `"z"`) > strings.Index(s, `"config"`) || strings.Index(s, `"config"`) > strings.Index(s, `"a": []`) {
		t.Error("the order of the properties changed")
	}
	if _, err := Splice([]byte(`{"properties": {}}`)); err == nil {
		t.Error("a schema without properties.config was accepted")
	}
}
