package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsRemoteSTSExamples: every complete configuration with
// extra_params in docs/remote-sts.md (a yaml block with routes) decodes and
// validates as `tokengate check` would (key files aside), one per STS kind.
func TestDocsRemoteSTSExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "remote-sts.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"### Dex", "### Keycloak: extra parameters", "### Ory Hydra", "### Auth0 Custom Token Exchange"} {
		if !strings.Contains(string(doc), section) {
			t.Errorf("docs/remote-sts.md has no %q section", section)
		}
	}
	anyVar := func(string) (string, bool) { return "from-the-environment", true }
	withExtra := 0
	for i, b := range strings.Split(string(doc), "```yaml\n")[1:] {
		text, _, _ := strings.Cut(b, "```")
		if !strings.Contains(text, "routes:") || !strings.Contains(text, "extra_params:") {
			continue
		}
		cfg, err := Parse([]byte(text), t.TempDir(), anyVar)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			t.Errorf("example %d:\n%s\n%v", i, text, err)
			continue
		}
		if len(cfg.Exchange.Remote.ExtraParams) > 0 {
			withExtra++
		}
	}
	if withExtra < 4 {
		t.Errorf("%d complete examples with extra_params, want one per STS kind (4)", withExtra)
	}
}
