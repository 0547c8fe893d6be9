package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
)

// watching starts the server with the file watcher on and a short debounce.
func watching(o *serverOptions) {
	o.Watch = true
	o.WatchDebounce = 20 * time.Millisecond
}

// lastClaims are the claims of the exchanged token the backend received last.
func lastClaims(t *testing.T, b *e2eBackend) map[string]any {
	t.Helper()
	reqs := b.received()
	if len(reqs) == 0 {
		t.Fatal("the backend received nothing")
	}
	tok, err := jwt.ParseSigned(bearerOf(reqs[len(reqs)-1]), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{}
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func reloadCount(g *e2eGateway, result string) float64 {
	return testutil.ToFloat64(g.srv.proc.reloads.WithLabelValues(result))
}

// jwksKids are the key ids the admin listener publishes.
func jwksKids(t *testing.T, g *e2eGateway) string {
	t.Helper()
	_, body := get(t, g.srv.AdminURL()+"/.well-known/jwks.json")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return strings.Join(kids, ",")
}

func TestWatchReloadsWhenTheFileOrAKeyChanges(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{opts: watching})
	const newAud = "https://orders-v2.example.com"
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": []string{audOrders, newAud}, "scope": "orders:read"})
	if resp, body := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("before: %d %s", resp.StatusCode, body)
	}

	// The same bytes again, saved the way editors do (a new file renamed
	// over the old): the watcher looks, and reloads nothing.
	tmp := g.path + ".swp"
	writeFile(t, tmp, []byte(g.cfgText))
	if err := os.Rename(tmp, g.path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return g.srv.watcher.checks.Load() >= 1 })
	if ok, bad := reloadCount(g, "ok"), reloadCount(g, "error"); ok != 0 || bad != 0 {
		t.Errorf("an unchanged file caused reloads: ok %v, error %v", ok, bad)
	}

	// A rewritten file is reloaded, and no token cached under the old
	// audience is served.
	changed := strings.Replace(g.cfgText, fmt.Sprintf("audience: %q", audOrders), fmt.Sprintf("audience: %q", newAud), 1)
	writeFile(t, g.path, []byte(changed))
	waitFor(t, func() bool { return reloadCount(g, "ok") == 1 })
	if resp, body := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("after: %d %s", resp.StatusCode, body)
	}
	if aud := lastClaims(t, orders)["aud"]; aud != newAud {
		t.Errorf("after the file changed the backend got aud %v, want %s", aud, newAud)
	}

	// A new signing key in the same file name: reloaded, published, used.
	before := jwksKids(t, g)
	writeES256Key(t, filepath.Join(g.dir, "keys", "es256.pem"))
	waitFor(t, func() bool { return reloadCount(g, "ok") == 2 })
	if after := jwksKids(t, g); after == before {
		t.Errorf("the JWKS still publishes %s after the key file changed", after)
	}
}

// kubeSwap does what the kubelet does when a mounted ConfigMap changes: a
// new timestamped folder, a ..data_tmp symlink to it renamed over ..data
// (atomic), then the old folder removed. dir/tokengate.yaml is a symlink to
// ..data/tokengate.yaml throughout.
func kubeSwap(t testing.TB, dir string, n int, text string) {
	t.Helper()
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%09d", n, n)
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ts, "tokengate.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchKubernetesConfigMapSwap(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{
		opts: watching,
		write: func(t testing.TB, dir, text string) string {
			kubeSwap(t, dir, 1, text)
			path := filepath.Join(dir, "tokengate.yaml")
			if err := os.Symlink(filepath.Join("..data", "tokengate.yaml"), path); err != nil {
				t.Fatal(err)
			}
			return path
		},
	})
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read orders:write"})
	if resp, body := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("before: %d %s", resp.StatusCode, body)
	}
	if scope := lastClaims(t, orders)["scope"]; scope != "orders:read orders:write" {
		t.Fatalf("scope = %v before the change", scope)
	}

	// The route's scopes shrink: the next request must not get the token
	// cached under the old scopes.
	narrowed := strings.Replace(g.cfgText, "scopes: [orders:read, orders:write]", "scopes: [orders:read]", 1)
	if narrowed == g.cfgText {
		t.Fatal("the configuration template changed; fix the replacement")
	}
	kubeSwap(t, g.dir, 2, narrowed)
	waitFor(t, func() bool { return reloadCount(g, "ok") == 1 })
	if resp, body := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("after: %d %s", resp.StatusCode, body)
	}
	if scope := lastClaims(t, orders)["scope"]; scope != "orders:read" {
		t.Errorf("scope = %v after the route's scopes changed, want orders:read", scope)
	}

	// An invalid file keeps the running configuration and says so in the metrics.
	kubeSwap(t, g.dir, 3, "routes: [oops")
	waitFor(t, func() bool { return reloadCount(g, "error") == 1 })
	if got := testutil.ToFloat64(g.srv.proc.reloadState.successful); got != 0 {
		t.Errorf("last_reload_successful = %v after a failed reload, want 0", got)
	}
	if resp, body := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("after a failed reload the old configuration must keep serving: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(g.logs.String(), "reload failed; the running configuration is kept") {
		t.Error("the failed reload was not logged")
	}

	// Fixed again: reloaded, and the gauge recovers.
	kubeSwap(t, g.dir, 4, narrowed)
	waitFor(t, func() bool { return reloadCount(g, "ok") == 2 })
	if got := testutil.ToFloat64(g.srv.proc.reloadState.successful); got != 1 {
		t.Errorf("last_reload_successful = %v after a good reload, want 1", got)
	}
}

// TestReloadScopesChange: the same guarantee as for the audience, through an
// explicit reload (SIGHUP).
func TestReloadScopesChange(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read orders:write"})
	g.get(t, "/orders", umbrella)
	first := bearerOf(orders.received()[0])
	writeFile(t, g.path, []byte(strings.Replace(g.cfgText, "scopes: [orders:read, orders:write]", "scopes: [orders:read]", 1)))
	if err := g.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if resp, body := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("after reload: %d %s", resp.StatusCode, body)
	}
	if bearerOf(orders.received()[1]) == first {
		t.Error("the token cached under the old scopes was served after the change")
	}
	if scope := lastClaims(t, orders)["scope"]; scope != "orders:read" {
		t.Errorf("scope = %v, want orders:read", scope)
	}
}

func TestWatchedFiles(t *testing.T) {
	t.Parallel()
	local := &config.Config{Exchange: config.Exchange{Mode: config.ModeLocal, Local: config.Local{
		SigningKeys: []config.SigningKey{{File: "/keys/a.pem"}, {File: "/keys/b.pem"}},
	}}}
	remote := func(method string) *config.Config {
		return &config.Config{Exchange: config.Exchange{Mode: config.ModeRemote, Remote: config.Remote{
			AuthMethod: method, PrivateKey: config.SigningKey{File: "/keys/client.pem"},
			// Signing keys of local mode are not read in remote mode.
		}, Local: config.Local{SigningKeys: []config.SigningKey{{File: "/keys/unused.pem"}}}}}
	}
	tests := []struct {
		name string
		cfg  *config.Config
		want []string
	}{
		{name: "no configuration yet", cfg: nil, want: []string{"/etc/tg.yaml"}},
		{name: "local signing keys", cfg: local, want: []string{"/etc/tg.yaml", "/keys/a.pem", "/keys/b.pem"}},
		{name: "private_key_jwt client key", cfg: remote(config.AuthPrivateKeyJWT), want: []string{"/etc/tg.yaml", "/keys/client.pem"}},
		{name: "client secret reads no key file", cfg: remote("client_secret_basic"), want: []string{"/etc/tg.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := watchedFiles("/etc/tg.yaml", tc.cfg); !slices.Equal(got, tc.want) {
				t.Errorf("watchedFiles = %q, want %q", got, tc.want)
			}
		})
	}
}
