package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestExplainOpaqueToken: an opaque token is described as introspected at
// the configured endpoint, and nothing is sent to it.
func TestExplainOpaqueToken(t *testing.T) {
	idp, as := newE2EIdP(t), newE2EAS(t)
	path, now := explainSetup(t, idp)
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := as.Endpoint()
	withIntrospection := strings.Replace(string(text), "    permissions_as_scopes: true\n",
		"    permissions_as_scopes: true\n    introspection_endpoint: \""+endpoint+"\"\n"+
			"    introspection: {client_id: gw, client_secret: s}\n", 1)
	writeFile(t, path, []byte(withIntrospection))
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	const raw = "opaque-explained-token-1234567890abcdef"
	var out bytes.Buffer
	err = explain(context.Background(), explainOptions{cfg: cfg, raw: raw, now: now,
		httpClient: &http.Client{Timeout: 5 * time.Second}, out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "opaque (not a JWT)") || !strings.Contains(out.String(), "at "+endpoint) {
		t.Errorf("output:\n%s", out.String())
	}
	if as.calls.Load() != 0 {
		t.Errorf("check called the AS %d times", as.calls.Load())
	}
	assertNoToken(t, out.String(), raw)
}
