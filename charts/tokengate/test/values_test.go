package charttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaRejectsBadValues: values.schema.json refuses wrong types and
// unknown keys, and the templates refuse values that contradict the chart.
func TestSchemaRejectsBadValues(t *testing.T) {
	tests := []struct {
		name string
		set  string
		want string // in helm's error
	}{
		{"unknown top-level key", "replicas=3", "additional properties 'replicas' not allowed"},
		{"unknown nested key", "serviceMonitor.intervall=1m", "additional properties 'intervall' not allowed"},
		{"unknown config section", "config.listeners.edge=x", "additional properties 'listeners' not allowed"},
		{"string for integer", "replicaCount=two", "/replicaCount"},
		{"number for string", "image.tag=5", "/image/tag"},
		{"string for boolean", "ingress.enabled=yes", "/ingress/enabled"},
		{"port out of range", "ports.admin=70000", "/ports/admin"},
		{"enum", "service.type=Internal", "/service/type"},
		{"env name", "secretEnv.values.bad-name=x", "'bad-name' does not match pattern"},
		{"relative mount path", "signingKeys.mountPath=keys", "/signingKeys/mountPath"},
		{"duration", "serviceMonitor.interval=30", "/serviceMonitor/interval"},
		{"listen set by hand", "config.server.listen=:1234", "config.server.listen is set by the chart from ports.edge"},
		{"admin listen set by hand", "config.server.admin_listen=:1234", "set ports.admin instead"},
		{"no keys at all", "signingKeys.generate=false", "config.exchange.local.signing_keys is empty and neither signingKeys.generate nor signingKeys.certManager.enabled is set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmRun(t, cases[0].templateArgs("--set", tc.set)...)
			if err == nil {
				t.Fatalf("--set %s was accepted", tc.set)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("--set %s failed without %q:\n%v", tc.set, tc.want, err)
			}
		})
	}
}

// TestNotes renders NOTES.txt (helm template skips it) by wrapping it in a
// manifest in a copy of the chart.
func TestNotes(t *testing.T) {
	tests := []struct {
		c       valuesCase
		want    []string
		wantNot []string
	}{
		{cases[0], []string{
			"http://tg-tokengate.shop.svc:80", "http://tg-tokengate.shop.svc:9090", "helm test tg -n shop",
			"WARNING: config.issuers still holds the chart's placeholder issuer", "Signing key: generated once by the pre-install hook Job",
			"Secret tg-tokengate-signing-key",
			"the pods roll (checksum/config)",
		}, nil},
		{cases[1], []string{
			"https://api.example.org/", "https://tokengate-keys.example.org", "reload it in place",
		}, []string{"WARNING", "replicaCount is"}},
		{cases[2], []string{"NOTE: replicaCount is 1"}, []string{"WARNING", "Signing key: generated"}},
		{caseNamed(t, "cert-manager"), []string{"Signing key: made by cert-manager", "Secret tg-tokengate-signing-cert"}, []string{"Signing key: generated"}},
		{caseNamed(t, "gitops"), nil, []string{"WARNING", "Signing key:"}},
	}
	dir := copyChart(t)
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.Remove(filepath.Join(dir, "templates", "NOTES.txt")))
	must(t, os.WriteFile(filepath.Join(dir, "templates", "_notes.tpl"),
		[]byte(`{{- define "test.notes" -}}`+string(notes)+`{{- end -}}`), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "templates", "notes.yaml"), []byte(
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ include \"test.notes\" . | quote }}\n"), 0o600))
	for _, tc := range tests {
		t.Run(tc.c.name, func(t *testing.T) {
			args := tc.c.templateArgs("--show-only", "templates/notes.yaml")
			for i, a := range args {
				if a == "." {
					args[i] = dir
				}
			}
			out, err := helmRun(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("NOTES lack %q:\n%s", w, out)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("NOTES hold %q:\n%s", w, out)
				}
			}
		})
	}
}

// copyChart copies the chart (without this test folder) to a temporary folder.
func copyChart(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "tokengate")
	err := filepath.WalkDir(chartDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		if d.IsDir() {
			if rel == "test" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	must(t, err)
	// -f paths of the cases are relative to the chart: keep the test values too.
	must(t, os.MkdirAll(filepath.Join(dst, "test", "testdata"), 0o755))
	entries, err := os.ReadDir("testdata")
	must(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", e.Name()))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dst, "test", "testdata", e.Name()), b, 0o600))
	}
	return dst
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
