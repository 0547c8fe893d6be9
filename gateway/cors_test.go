package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
)

const appOrigin = "https://www.example.com"

// corsBlock is a cors block with the defaults filled in, as config.Load
// leaves it.
func corsBlock(origins ...string) *config.CORS {
	return &config.CORS{
		AllowedOrigins: origins,
		AllowedMethods: config.DefaultCORSMethods(),
		AllowedHeaders: config.DefaultCORSHeaders(),
		ExposedHeaders: config.DefaultCORSExposed(),
		MaxAge:         config.Duration(10 * time.Minute),
	}
}

// corsEnv: orders uses the global block, admin its own, plain turns CORS
// off; the backend sends its own CORS headers.
func corsEnv(t *testing.T) (*testEnv, *backend) {
	t.Helper()
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://evil.example")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Access-Control-Expose-Headers", "X-Secret")
		_, _ = w.Write([]byte("upstream ok"))
	})
	orders := testRoute("orders", "/orders", be.URL)
	admin := testRoute("admin", "/admin", be.URL)
	admin.CORS = corsBlock("https://admin.example.com")
	admin.CORS.AllowCredentials = true
	plain := testRoute("plain", "/plain", be.URL)
	plain.CORS = &config.CORS{AllowedOrigins: []string{}}
	secure := testRoute("secure", "/secure", be.URL)
	secure.ACRValues = []string{"gold"}
	env := newEnv(t, []config.Route{orders, admin, plain, secure}, func(o *Options) {
		o.Config.CORS = corsBlock(appOrigin)
	})
	return env, be
}

func preflight(origin, method, headers string) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", method)
		if headers != "" {
			r.Header.Set("Access-Control-Request-Headers", headers)
		}
	}
}

func accessControl(h http.Header) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out = append(out, k)
		}
	}
	return out
}

func TestCORSPreflight(t *testing.T) {
	env, be := corsEnv(t)
	tests := []struct {
		name    string
		path    string
		mod     func(*http.Request)
		status  int
		origin  string // Access-Control-Allow-Origin; "" for no CORS header at all
		creds   bool
		forward bool
	}{
		{"allowed", "/orders/1", preflight(appOrigin, "PUT", "authorization, content-type, dpop"), 204, appOrigin, false, false},
		{"route override", "/admin/1", preflight("https://admin.example.com", "DELETE", "Authorization"), 204, "https://admin.example.com", true, false},
		{"global origin on overriding route", "/admin/1", preflight(appOrigin, "GET", ""), 403, "", false, false},
		{"origin not allowed", "/orders/1", preflight("https://evil.example", "GET", ""), 403, "", false, false},
		{"method not allowed", "/orders/1", preflight(appOrigin, "TRACE", ""), 403, "", false, false},
		{"header not allowed", "/orders/1", preflight(appOrigin, "GET", "Authorization, X-Evil"), 403, "", false, false},
		{"route with CORS off: an ordinary request", "/plain/1", preflight(appOrigin, "GET", ""), 401, "", false, false},
		{"no route", "/nowhere", preflight(appOrigin, "GET", ""), 404, "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(be.requests())
			resp, _ := env.do(t, http.MethodOptions, tc.path, tc.mod)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if len(be.requests()) != before {
				t.Error("a preflight was forwarded")
			}
			if tc.origin == "" {
				if ac := accessControl(resp.Header); len(ac) > 0 {
					t.Errorf("Access-Control headers %v, want none", ac)
				}
				return
			}
			h := resp.Header
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.origin {
				t.Errorf("Allow-Origin %q, want %q", got, tc.origin)
			}
			if h.Get("Access-Control-Allow-Methods") != "GET, HEAD, POST, PUT, PATCH, DELETE" ||
				h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type, DPoP, X-Request-Id" ||
				h.Get("Access-Control-Max-Age") != "600" {
				t.Errorf("preflight headers %v", h)
			}
			if got := h.Get("Access-Control-Allow-Credentials") == "true"; got != tc.creds {
				t.Errorf("Allow-Credentials %v, want %v", got, tc.creds)
			}
			if v := strings.Join(h.Values("Vary"), ", "); v != "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" {
				t.Errorf("Vary %q", v)
			}
		})
	}
}

// TestCORSResponses: every response to an allowed origin carries the CORS
// headers, the gateway's own errors included; the upstream's are replaced.
func TestCORSResponses(t *testing.T) {
	env, _ := corsEnv(t)
	origin := func(o string, tok string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("Origin", o)
			if tok != "" {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
		}
	}
	tests := []struct {
		name      string
		path      string
		mod       func(*http.Request)
		status    int
		labelled  bool
		creds     bool
		challenge bool
	}{
		{"proxied", "/orders/1", origin(appOrigin, umbrella), 200, true, false, false},
		{"401 with a challenge", "/orders/1", origin(appOrigin, ""), 401, true, false, true},
		{"step-up 401", "/secure/1", origin(appOrigin, umbrella), 401, true, false, true},
		{"credentials on the route that allows them", "/admin/1", origin("https://admin.example.com", umbrella), 200, true, true, false},
		{"disallowed origin: no CORS, upstream's dropped", "/orders/1", origin("https://evil.example", umbrella), 200, false, false, false},
		{"CORS off: the upstream's headers pass", "/plain/1", origin(appOrigin, umbrella), 200, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := env.do(t, http.MethodGet, tc.path, tc.mod)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			h := resp.Header
			if tc.challenge && h.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate")
			}
			if strings.HasPrefix(tc.path, "/plain") {
				if h.Get("Access-Control-Allow-Origin") != "https://evil.example" {
					t.Errorf("on a route without CORS the upstream's headers must pass: %v", h)
				}
				return
			}
			if !tc.labelled {
				if ac := accessControl(h); len(ac) > 0 {
					t.Errorf("Access-Control headers %v, want none", ac)
				}
				return
			}
			if v := h.Values("Access-Control-Allow-Origin"); len(v) != 1 || v[0] != resp.Request.Header.Get("Origin") {
				t.Errorf("Allow-Origin %q, want the origin once", v)
			}
			if v := h.Values("Access-Control-Expose-Headers"); len(v) != 1 || v[0] != "WWW-Authenticate, X-Request-Id, DPoP-Nonce" {
				t.Errorf("Expose-Headers %q", v)
			}
			if got := h.Values("Access-Control-Allow-Credentials"); (len(got) == 1 && got[0] == "true") != tc.creds || len(got) > 1 {
				t.Errorf("Allow-Credentials %q, want %v", got, tc.creds)
			}
			if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary %q lacks Origin", h.Values("Vary"))
			}
		})
	}
}

// TestCORSAuthz: through forward-auth an allowed preflight is 200 without
// Authorization, and no decision answer carries Access-Control headers.
func TestCORSAuthz(t *testing.T) {
	env, _ := corsEnv(t)
	authz := httptest.NewServer(http.HandlerFunc(env.gw.ServeAuthz))
	t.Cleanup(authz.Close)
	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"allowed preflight", http.Header{"X-Original-Method": {"OPTIONS"}, "Origin": {appOrigin}, "Access-Control-Request-Method": {"PUT"}}, 200},
		{"refused preflight", http.Header{"X-Original-Method": {"OPTIONS"}, "Origin": {"https://evil.example"}, "Access-Control-Request-Method": {"PUT"}}, 403},
		{"allowed origin, no token", http.Header{"Origin": {appOrigin}}, 401},
		{"allowed origin", http.Header{"Origin": {appOrigin}, "Authorization": {"Bearer " + umbrella}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.header.Set("X-Original-Uri", "/orders/1")
			resp, _ := rawDo(t, authz.URL, http.MethodGet, "/", tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if ac := accessControl(resp.Header); len(ac) > 0 {
				t.Errorf("Access-Control headers %v on a decision answer", ac)
			}
			if tc.name == "allowed preflight" && resp.Header.Get("Authorization") != "" {
				t.Error("a preflight got an Authorization")
			}
		})
	}
}
