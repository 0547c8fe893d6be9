package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nginxBinary is Debian's nginx (make nginx installs it).
const nginxBinary = "/usr/sbin/nginx"

// startAuthzE2E is the e2e gateway with both authz listeners on, and a
// second issuer whose keys cannot be fetched (its tokens are a 503).
func startAuthzE2E(t *testing.T, idp, downIdP *e2eIdP, orders, inventory *e2eBackend) *e2eGateway {
	t.Helper()
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startE2EWith(t, idp, orders, inventory, e2eOptions{
		edit: func(text, _ string) string {
			text += fmt.Sprintf("authz:\n  listen: %q\n  grpc_listen: %q\n", httpLn.Addr().String(), grpcLn.Addr().String())
			return strings.Replace(text, "    min_refresh_interval: 1s\n", fmt.Sprintf(
				"    min_refresh_interval: 1s\n  - issuer: %q\n    jwks_uri: %q\n    algorithms: [ES256]\n",
				downIdP.URL(), downIdP.URL()+"/jwks.json"), 1)
		},
		opts: func(o *serverOptions) {
			o.AuthzListener, o.AuthzGRPCListener = httpLn, grpcLn
		},
	})
}

// nginxSnippet is the nginx server block of docs/ingress.md, verbatim.
func nginxSnippet(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "ingress.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```nginx\n")
	if !ok {
		t.Fatal("docs/ingress.md has no nginx block")
	}
	block, _, _ := strings.Cut(rest, "```")
	return block
}

// startNginx runs nginx as the test user in front of authz (forward-auth)
// and backend, with the documented server block; it returns nginx's URL.
// Without nginx the test skips, unless TOKENGATE_E2E_NGINX=require.
func startNginx(t *testing.T, authzAddr, backendAddr string) string {
	t.Helper()
	if _, err := os.Stat(nginxBinary); err != nil {
		if os.Getenv("TOKENGATE_E2E_NGINX") == "require" {
			t.Fatalf("nginx is required (TOKENGATE_E2E_NGINX=require) but %s is missing: run make nginx", nginxBinary)
		}
		t.Skipf("%s not installed (make nginx)", nginxBinary)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	server := nginxSnippet(t)
	for old, repl := range map[string]string{
		"listen 8000;":         "listen " + addr + ";",
		"tokengate-authz:8081": authzAddr,
		"orders-backend:9001":  backendAddr,
	} {
		if !strings.Contains(server, old) {
			t.Fatalf("the documented nginx block lacks %q", old)
		}
		server = strings.ReplaceAll(server, old, repl)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, server)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, nginxBinary, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output: %s\nerror.log:\n%s", out.String(), log)
		}
	})
	waitFor(t, func() bool {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", err, out.String(), log)
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "http://" + addr
}

// TestE2ENginxForwardAuth: a real nginx, configured as docs/ingress.md
// shows, asks authz.listen about every request (auth_request) and proxies:
// the backend gets the exchanged token and never the umbrella token; 401
// and 403 keep tokengate's challenge; a 503 decision stays a 503.
func TestE2ENginxForwardAuth(t *testing.T) {
	idp, downIdP := newE2EIdP(t), newE2EIdP(t)
	downIdP.SetDown(true)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startAuthzE2E(t, idp, downIdP, orders, inventory)
	base := startNginx(t, strings.TrimPrefix(g.srv.AuthzURL(), "http://"), strings.TrimPrefix(orders.srv.URL, "http://"))

	umbrella := idp.mint(t, map[string]any{"sub": "alice", "aud": []string{audOrders, audInventory}, "scope": "orders:read inventory:read"})
	noScope := idp.mint(t, map[string]any{"sub": "bob", "aud": audOrders, "scope": "inventory:read"})
	outage := downIdP.mint(t, map[string]any{"sub": "carol", "aud": audOrders, "scope": "orders:read"})

	send := func(t *testing.T, path, token string) (*http.Response, string) {
		t.Helper()
		return sendWith(t, http.MethodGet, base+path, token, map[string]string{
			"DPoP": "not-for-the-backend",
			// A Txn-Token of the client's own: the decision mints none for
			// this route, and the empty value copied from it (as
			// ingress-nginx's auth-response-headers does) must drop it.
			"Txn-Token": "forged",
		})
	}

	tests := []struct {
		name       string
		path       string
		token      string
		status     int
		challenge  string // prefix of WWW-Authenticate; "" for none
		forwarded  bool
		retryAfter bool
	}{
		{name: "allowed", path: "/orders/1?x=1", token: umbrella, status: 200, forwarded: true},
		{name: "no token", path: "/orders/1", status: 401, challenge: `Bearer realm="tokengate"`},
		{name: "bad token", path: "/orders/1", token: umbrella + "x", status: 401, challenge: `Bearer error="invalid_token"`},
		{name: "missing scope", path: "/orders/1", token: noScope, status: 403, challenge: `Bearer error="insufficient_scope"`},
		{name: "issuer keys unreachable", path: "/orders/1", token: outage, status: 503, retryAfter: true},
		{name: "path confusion", path: "/orders/a%2F..%2F..%2Finventory", token: umbrella, status: 400},
		{name: "no route", path: "/nowhere", token: umbrella, status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(orders.received())
			resp, body := send(t, tc.path, tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			challenges := resp.Header.Values("WWW-Authenticate")
			switch {
			case tc.challenge == "" && len(challenges) > 0:
				t.Errorf("WWW-Authenticate %q, want none", challenges)
			case tc.challenge != "" && (len(challenges) != 1 || !strings.HasPrefix(challenges[0], tc.challenge)):
				t.Errorf("WWW-Authenticate %q, want one starting %q", challenges, tc.challenge)
			}
			if tc.retryAfter && resp.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After on the 503")
			}
			reqs := orders.received()
			if !tc.forwarded {
				if len(reqs) != before {
					t.Fatal("a refused request reached the backend")
				}
				return
			}
			if len(reqs) != before+1 {
				t.Fatalf("the backend got %d requests, want 1", len(reqs)-before)
			}
			got := reqs[len(reqs)-1]
			if tok := bearerOf(got); tok == "" || tok == umbrella || strings.Count(tok, ".") != 2 {
				t.Errorf("the backend got Authorization %q, want the exchanged token", got.Header.Get("Authorization"))
			}
			if got.Header.Get("DPoP") != "" {
				t.Error("the client's DPoP header reached the backend")
			}
			if v, ok := got.Header["Txn-Token"]; ok {
				t.Errorf("the client's Txn-Token reached the backend: %q", v)
			}
			if got.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id reached the backend")
			}
			if got.URL.RequestURI() != "/orders/1?x=1" {
				t.Errorf("the backend got %q", got.URL.RequestURI())
			}
		})
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory)
}

// TestE2ENginxForwardAuthSpoofedOriginal: nginx (and ingress-nginx) pass
// the client's own headers to auth_request, so a client can add the
// original-request headers another proxy would set (Traefik's
// X-Forwarded-Uri and -Method, ingress-nginx's X-Original-URL, a second
// host). Were the first present believed, tokengate would decide about a
// request the client is not making, and nginx would forward the real one
// with a token minted for the other: here, a path that has no route at all.
// Sources that disagree are refused (400), so nothing reaches the backend.
func TestE2ENginxForwardAuthSpoofedOriginal(t *testing.T) {
	idp, downIdP := newE2EIdP(t), newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startAuthzE2E(t, idp, downIdP, orders, inventory)
	base := startNginx(t, strings.TrimPrefix(g.srv.AuthzURL(), "http://"), strings.TrimPrefix(orders.srv.URL, "http://"))
	umbrella := idp.mint(t, map[string]any{"sub": "mallory", "aud": []string{audOrders, audInventory}, "scope": "orders:read inventory:read"})

	for _, tc := range []struct {
		name   string
		method string
		header map[string]string
	}{
		{"X-Forwarded-Uri names a routed path", http.MethodGet, map[string]string{"X-Forwarded-Uri": "/orders/1"}},
		{"X-Original-URL names a routed path", http.MethodGet, map[string]string{"X-Original-Url": "http://" + strings.TrimPrefix(base, "http://") + "/orders/1"}},
		{"X-Forwarded-Method names another method", http.MethodDelete, map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/nowhere/1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(orders.received())
			resp, body := sendWith(t, tc.method, base+"/nowhere/1", umbrella, tc.header)
			if got := len(orders.received()) - before; got != 0 {
				t.Fatalf("a request tokengate never decided reached the backend (%d requests; status %d)", got, resp.StatusCode)
			}
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
				t.Errorf("status %d, want 400 (or 404, /nowhere has no route): %s", resp.StatusCode, body)
			}
		})
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory)
}
