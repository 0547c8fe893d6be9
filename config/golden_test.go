package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden from the current output")

// TestGolden loads every testdata/invalid/*.yaml and compares the whole
// error with the .golden file beside it: what `tokengate check` prints.
// Run `go test ./config -update` after an intended change, and review the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden cases in testdata/invalid")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			_, err := load(file, lookupTestEnv)
			if err != nil {
				// Every problem must be a FieldError, one per line.
				_ = messages(t, err)
			}
			if err == nil {
				t.Fatalf("%s loaded without error; golden cases must be invalid", file)
			}
			got := err.Error() + "\n"
			for _, secret := range []string{testEnv["REDIS_PASSWORD"], testEnv["STS_SECRET"], "hunter2"} {
				if strings.Contains(got, secret) {
					t.Errorf("the error repeats a secret value %q", secret)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error for %s differs from %s:\n--- got\n%s--- want\n%s", file, golden, got, want)
			}
		})
	}
}
