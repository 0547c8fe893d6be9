package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Forwarding headers by class (SECURITY.md, "Forwarding headers and
// trusted proxies").
var (
	// fwdProxyOnly: kept from a trusted proxy, removed from any other peer.
	fwdProxyOnly = []string{
		"Forwarded", "X-Real-IP", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
		"X-Forwarded-Scheme", "X-Forwarded-Ssl", "True-Client-IP", "X-Client-IP",
		"X-Cluster-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP",
	}
	// fwdAlwaysRemoved: removed whoever sent them.
	fwdAlwaysRemoved = []string{
		"X-Original-URL", "X-Original-URI", "X-Original-Method", "X-Rewrite-URL",
		"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-User", "Txn-Token", "DPoP",
	}
)

// trustLoopback makes the test client (127.0.0.1) a trusted proxy.
func trustLoopback(text, _ string) string {
	return strings.Replace(text, "  shutdown_grace: 10s\n", "  shutdown_grace: 10s\n  trusted_proxies: [\"127.0.0.1/32\"]\n", 1)
}

// sendRaw sends GET path to the edge with the headers as given (several
// lines per name, any spelling), bypassing Go's canonicalisation.
func sendRaw(t *testing.T, edgeURL, path string, header map[string][]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, edgeURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdversarialForwardHeaders: through the real server, what a client
// or a trusted proxy sends in forwarding headers reaches the backend only
// as section 3 of the contract allows, and the access log's client_ip
// follows the same trust decision.
func TestAdversarialForwardHeaders(t *testing.T) {
	idp := newE2EIdP(t)
	token := idp.mint(t, map[string]any{"sub": "u1", "client_id": "spa", "aud": audOrders, "scope": "orders:read"})
	spoofed := func() map[string][]string {
		h := map[string][]string{
			"Authorization":     {"Bearer " + token},
			"X-Forwarded-For":   {"198.51.100.7", "6.6.6.6"}, // two lines
			"X-Forwarded-Proto": {"https"},
			"X-Forwarded-Host":  {"evil.example"},
			// Non-canonical spellings: Go canonicalises the dashed one,
			// CGI backends read the underscored one as X-Real-IP.
			"x-real-ip": {"6.6.6.6"}, "X_Real_IP": {"6.6.6.6"}, "x_forwarded_for": {"6.6.6.6"},
		}
		for _, n := range append(append([]string(nil), fwdProxyOnly...), fwdAlwaysRemoved...) {
			if _, ok := h[strings.ToLower(n)]; !ok {
				h[n] = []string{"client-" + strings.ToLower(n)}
			}
		}
		return h
	}
	tests := []struct {
		name     string
		edit     func(string, string) string
		keep     bool              // proxy-only headers pass
		want     map[string]string // exact header values at the backend
		clientIP string
	}{
		{name: "untrusted peer", want: map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "", // Host, checked below
		}, clientIP: "127.0.0.1"},
		{name: "trusted proxy", edit: trustLoopback, keep: true, want: map[string]string{
			"X-Forwarded-For": "198.51.100.7, 6.6.6.6, 127.0.0.1", "X-Forwarded-Proto": "https",
			"X-Forwarded-Host": "evil.example", "X-Real-Ip": "6.6.6.6",
			"True-Client-Ip": "client-true-client-ip", "Forwarded": "client-forwarded",
		}, clientIP: "6.6.6.6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
			g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: tc.edit})
			edge, _ := url.Parse(g.srv.EdgeURL())
			if code := sendRaw(t, g.srv.EdgeURL(), "/orders/1", spoofed()); code != 200 {
				t.Fatalf("status %d, want 200", code)
			}
			got := orders.received()
			if len(got) != 1 {
				t.Fatalf("orders received %d requests, want 1", len(got))
			}
			h := got[0].Header
			for name, want := range tc.want {
				if name == "X-Forwarded-Host" && want == "" {
					want = edge.Host
				}
				if v := h.Values(name); len(v) != 1 || v[0] != want {
					t.Errorf("%s = %q, want only %q", name, v, want)
				}
			}
			for _, n := range fwdProxyOnly {
				if v, ok := h[http.CanonicalHeaderKey(n)]; ok != tc.keep {
					t.Errorf("%s = %q at the backend; want present=%v", n, v, tc.keep)
				}
			}
			for _, n := range fwdAlwaysRemoved {
				if v := h.Values(n); len(v) != 0 {
					t.Errorf("%s = %q reached the backend", n, v)
				}
			}
			for name := range h {
				if strings.Contains(name, "_") || name != http.CanonicalHeaderKey(name) {
					t.Errorf("non-canonical header %s reached the backend", name)
				}
			}
			lines := accessLines(t, g)
			if len(lines) != 1 || lines[0]["client_ip"] != tc.clientIP {
				t.Errorf("access log client_ip: %v, want %q", lines, tc.clientIP)
			}
			assertNoUmbrella(t, token, g, orders)
		})
	}
}

// sendDPoP sends GET path to the edge with a Host header of its own, the
// DPoP scheme and one proof; it returns the status and the body.
func sendDPoP(t *testing.T, edgeURL, path, host, token, proof string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, edgeURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestAdversarialDPoPForeignHost: a DPoP proof made for another server is
// refused although the request names that server in Host; with
// server.public_url only proofs for the public URL are accepted; a
// gateway that cannot know its URL refuses DPoP-bound tokens.
func TestAdversarialDPoPForeignHost(t *testing.T) {
	idp := newE2EIdP(t)
	client := newDPoPClient(t)
	bound := mintFor(t, idp, client.jkt)
	const foreign = "https://other.example/orders/1"

	type attempt struct {
		name   string
		htu    string // "" = the edge's own URL
		host   string
		status int
		desc   string // in the body when not 200
	}
	tests := []struct {
		name     string
		edit     func(string, string) string
		attempts []attempt
	}{
		{name: "listen 127.0.0.1", attempts: []attempt{
			{name: "foreign proof with foreign Host", htu: foreign, host: "other.example", status: 401, desc: "htu"},
			{name: "http foreign proof with foreign Host", htu: "http://other.example/orders/1", host: "other.example", status: 401, desc: "htu"},
			{name: "own URL", status: 200},
		}},
		{name: "public_url", edit: func(text, _ string) string {
			return strings.Replace(text, "  shutdown_grace: 10s\n", "  shutdown_grace: 10s\n  public_url: \"https://api.example.com\"\n", 1)
		}, attempts: []attempt{
			{name: "public URL", htu: "https://api.example.com/orders/1", status: 200},
			{name: "public URL with foreign Host", htu: "https://api.example.com/orders/1", host: "other.example", status: 200},
			{name: "foreign proof with foreign Host", htu: foreign, host: "other.example", status: 401, desc: "htu"},
			{name: "the listener's URL", status: 401, desc: "htu"},
		}},
		{name: "listen on every interface, no public_url", edit: func(text, _ string) string {
			return strings.Replace(text, `listen: "127.0.0.1:0"`, `listen: ":0"`, 1)
		}, attempts: []attempt{
			{name: "foreign proof with foreign Host", htu: foreign, host: "other.example", status: 401, desc: "server.public_url"},
			{name: "own URL", status: 401, desc: "server.public_url"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
			g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: tc.edit})
			want200 := 0
			for _, a := range tc.attempts {
				htu := a.htu
				if htu == "" {
					htu = g.srv.EdgeURL() + "/orders/1"
				}
				code, body := sendDPoP(t, g.srv.EdgeURL(), "/orders/1", a.host, bound, client.proof(t, "GET", htu, bound, ""))
				if code != a.status || (code != 200 && !strings.Contains(body, a.desc)) {
					t.Errorf("%s: %d %s; want %d with %q", a.name, code, body, a.status, a.desc)
				}
				if a.status == 200 {
					want200++
				}
			}
			if n := len(orders.received()); n != want200 {
				t.Errorf("orders received %d requests, want %d", n, want200)
			}
		})
	}
}

// TestCheckWarnsWhenDPoPCannotBeChecked: `tokengate check` names the key
// and the fix when no DPoP htu can be built, and refuses require_dpop
// routes there.
func TestCheckWarnsWhenDPoPCannotBeChecked(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	open := strings.Replace(g.cfgText, `listen: "127.0.0.1:0"`, `listen: ":8080"`, 1)
	tests := []struct {
		name     string
		text     string
		exitCode int    // 0 or 1
		stderr   string // must contain; "" = no warning at all
	}{
		{name: "concrete listen", text: g.cfgText},
		{name: "listen :8080", text: open, stderr: "warning: routes[0]: route \"orders\": DPoP-bound tokens will be refused"},
		{name: "listen :8080 with public_url", text: strings.Replace(open, "  shutdown_grace: 10s\n",
			"  shutdown_grace: 10s\n  public_url: \"https://api.example.com\"\n", 1)},
		{name: "listen :8080 with trusted_proxies", text: trustLoopback(open, "")},
		{name: "listen :8080 and require_dpop", text: requireDPoPOnInventory(open, ""), exitCode: 1,
			stderr: "routes[1].require_dpop: DPoP proofs cannot be checked on this route"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(g.dir, "check.yaml")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err := runCheck(context.Background(), []string{"--config", path}, nil, &stdout, &stderr)
			code := 0
			if err != nil {
				code = 1
			}
			if code != tc.exitCode {
				t.Fatalf("exit %d (%v), want %d; stderr:\n%s", code, err, tc.exitCode, stderr.String())
			}
			switch {
			case tc.stderr == "" && strings.Contains(stderr.String(), "warning"):
				t.Errorf("unexpected warning:\n%s", stderr.String())
			case tc.stderr != "" && !strings.Contains(stderr.String(), tc.stderr):
				t.Errorf("stderr:\n%s\nwant %q", stderr.String(), tc.stderr)
			case tc.stderr != "" && tc.exitCode == 0 && !strings.Contains(stderr.String(), "server.public_url"):
				t.Errorf("the warning does not name the fix (server.public_url):\n%s", stderr.String())
			}
		})
	}
}

// TestAdversarialDPoPReplayAcrossReload: a reload that changes
// server.dpop.replay_max_entries keeps the replay memory, so a proof used
// before the reload is still refused after it (no Redis: memory is the only
// replay store).
func TestAdversarialDPoPReplayAcrossReload(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	client := newDPoPClient(t)
	bound := mintFor(t, idp, client.jkt)
	htu := g.srv.EdgeURL() + "/orders/1"
	proof := client.proof(t, "GET", htu, bound, "")
	if code, body := sendDPoP(t, g.srv.EdgeURL(), "/orders/1", "", bound, proof); code != 200 {
		t.Fatalf("first use: %d %s", code, body)
	}
	for _, entries := range []int{50000, 200000} {
		text := strings.Replace(g.cfgText, "  shutdown_grace: 10s\n",
			fmt.Sprintf("  shutdown_grace: 10s\n  dpop: {replay_max_entries: %d}\n", entries), 1)
		writeFile(t, g.path, []byte(text))
		if err := g.srv.Reload(context.Background()); err != nil {
			t.Fatalf("reload: %v", err)
		}
		if code, body := sendDPoP(t, g.srv.EdgeURL(), "/orders/1", "", bound, proof); code != 401 || !strings.Contains(body, "already used") {
			t.Errorf("replay after a reload to replay_max_entries %d: %d %s; want 401 already used", entries, code, body)
		}
	}
	if n := len(orders.received()); n != 1 {
		t.Errorf("orders received %d requests, want 1", n)
	}
}
