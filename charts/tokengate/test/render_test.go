package charttest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// chartDir is the chart, relative to this test's folder.
const chartDir = ".."

// namespace is the release namespace of every render.
const namespace = "shop"

// tool returns the path of a binary: $env, else bin/name at the repository root.
func tool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", "..", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found (%v): run `make chart-test`, which builds it, or set %s", name, err, env)
	}
	return p
}

// valuesCase is one way of installing the chart.
type valuesCase struct {
	name     string
	files    []string // -f, relative to the chart
	sets     []string // --set
	fullname string
}

// cases are rendered by every test: the defaults, every feature on, a
// minimal install that brings its own keys and turns extras off, a GitOps
// install (existing Secrets only), and the signing key from cert-manager.
var cases = []valuesCase{
	{name: "default", fullname: "tg-tokengate"},
	{name: "all-features", files: []string{"ci/all-features-values.yaml"}, fullname: "gateway"},
	{name: "own-keys", files: []string{"test/testdata/own-keys-values.yaml"}, fullname: "tg-tokengate"},
	{name: "gitops", files: []string{"ci/gitops-values.yaml"}, fullname: "edge-gateway"},
	{name: "cert-manager", files: []string{"test/testdata/cert-manager-values.yaml"}, fullname: "tg-tokengate"},
}

// caseNamed returns the case of that name.
func caseNamed(t *testing.T, name string) valuesCase {
	t.Helper()
	for _, c := range cases {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no case %q", name)
	return valuesCase{}
}

// manifest is one rendered document.
type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	raw []byte
}

// helmRun runs helm with args in the chart folder and returns its stdout, or
// its stderr as the error.
func helmRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, "HELM", "helm"), args...)
	cmd.Dir = chartDir
	// No cluster: lookup returns nothing, as in `helm template`.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(t.TempDir(), "none"), "HELM_CACHE_HOME="+t.TempDir(),
		"HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &helmError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.stderr }

// templateArgs are the `helm template` arguments of a case plus extra ones.
func (c valuesCase) templateArgs(extra ...string) []string {
	args := []string{"template", "tg", ".", "--namespace", namespace}
	for _, f := range c.files {
		args = append(args, "-f", f)
	}
	for _, s := range c.sets {
		args = append(args, "--set", s)
	}
	return append(args, extra...)
}

// render renders the chart for c and splits the output into manifests.
func render(t *testing.T, c valuesCase) []manifest {
	t.Helper()
	out, err := helmRun(t, c.templateArgs()...)
	if err != nil {
		t.Fatalf("helm template (%s): %v", c.name, err)
	}
	return splitManifests(t, out)
}

func splitManifests(t *testing.T, out string) []manifest {
	t.Helper()
	var ms []manifest
	for doc := range strings.SplitSeq(out, "\n---\n") {
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---\n")
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var m manifest
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("a rendered document is not YAML: %v\n%s", err, doc)
		}
		if m.Kind == "" || m.APIVersion == "" || m.Metadata.Name == "" {
			t.Fatalf("a rendered document lacks kind, apiVersion or name:\n%s", doc)
		}
		m.raw = []byte(doc)
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		t.Fatal("helm rendered nothing")
	}
	return ms
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// find returns the one manifest of kind and name, failing when there is none.
func find(t *testing.T, ms []manifest, kind, name string) manifest {
	t.Helper()
	for _, m := range ms {
		if m.Kind == kind && m.Metadata.Name == name {
			return m
		}
	}
	t.Fatalf("no %s %q was rendered", kind, name)
	return manifest{}
}

// decodeInto decodes m strictly into v: an unknown or misspelled field, or a
// duplicate key, is an error.
func decodeInto(t *testing.T, m manifest, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(m.raw, v); err != nil {
		t.Fatalf("%s %s does not decode strictly: %v", m.Kind, m.Metadata.Name, err)
	}
}

// strictErr is decodeInto's error, for tests of the decoding itself.
func strictErr(m manifest, v any) error { return yaml.UnmarshalStrict(m.raw, v) }
