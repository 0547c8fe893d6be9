package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDocsCoverEveryKey: docs/configuration.md names every key of the schema.
func TestDocsCoverEveryKey(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var collect func(t reflect.Type, path string)
	collect = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == durationType {
			return
		}
		fs := yamlFields(t)
		for _, name := range fs.names {
			keys = append(keys, keyPath(path, name))
			collect(fs.byName[name], keyPath(path, name))
		}
	}
	collect(reflect.TypeFor[Config](), "")
	if len(keys) < 60 {
		t.Fatalf("found only %d keys: %q", len(keys), keys)
	}
	for _, k := range keys {
		name := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(doc), "`"+name+"`") && !strings.Contains(string(doc), "."+name+"`") {
			t.Errorf("docs/configuration.md does not mention `%s` (%s)", name, k)
		}
	}
}

// TestDocsExamplesParse: every yaml example in docs/configuration.md decodes
// (its keys exist, its values have the right types).
func TestDocsExamplesParse(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) < 4 {
		t.Fatalf("found %d yaml examples", len(blocks))
	}
	for i, b := range blocks {
		text, _, _ := strings.Cut(b, "```")
		// Examples use ${VAR} for secrets, as users should: any variable is set.
		anyVar := func(string) (string, bool) { return "from-the-environment", true }
		if _, err := Parse([]byte(text), t.TempDir(), anyVar); err != nil {
			t.Errorf("example %d:\n%s\n%v", i, text, err)
		}
	}
}
