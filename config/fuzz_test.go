package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse and Validate. Neither may panic;
// a file the walker accepts must also pass the strict yaml.v3 decoding (the
// walker is at least as strict as the backstop); and every problem must be
// a *FieldError.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	examples, _ := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	for _, file := range append(seeds, examples...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(baseYAML))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("x: &x {a: 1}\nlog: {<<: [*x, *x]}\n"))
	f.Add([]byte("log: {level: \"${SET}$${N}${N\"}\n"))
	f.Add([]byte("routes: [{<<: {name: a}, name: b}]\n"))
	dir := filepath.Join("testdata", "invalid")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, dir, lookupTestEnv)
		if err != nil {
			msgs := messages(t, err)
			for _, m := range msgs {
				if strings.Contains(m, "decode configuration:") || strings.Contains(m, "this is a bug") {
					t.Fatalf("the walker accepted what yaml.v3 refuses: %s", m)
				}
			}
			return
		}
		if c == nil || c.Dir != dir {
			t.Fatalf("Parse returned %v without an error", c)
		}
		if err := c.Validate(); err != nil {
			_ = messages(t, err)
		}
	})
}
