package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/config"
)

// TestRouting: longest prefix on whole segments, host matching, path
// cleaning, strip_prefix; the route is identified by the audience of the
// exchanged token the backend received.
func TestRouting(t *testing.T) {
	be := newBackend(t, nil)
	orders := testRoute("orders", "/orders", be.URL)
	ordersAdmin := testRoute("ordersadmin", "/orders/admin/", be.URL) // trailing "/" is the same segment
	admin := testRoute("admin", "/admin", be.URL)
	api := testRoute("api", "/api", be.URL)
	api.Host = "API.Example.com"
	apiAny := testRoute("apiany", "/api", be.URL)
	strip := testRoute("strip", "/strip", be.URL+"/base")
	strip.StripPrefix = true
	env := newEnv(t, []config.Route{orders, ordersAdmin, admin, api, apiAny, strip}, nil)
	const refused = "400" // refused by the path rules, before any route

	tests := []struct {
		name      string
		target    string
		host      string
		wantRoute string // "" means 404
		wantURI   string // RequestURI the backend received
	}{
		{name: "exact prefix", target: "/orders", wantRoute: "orders", wantURI: "/orders"},
		{name: "trailing slash", target: "/orders/", wantRoute: "orders", wantURI: "/orders/"},
		{name: "below prefix", target: "/orders/1?x=1", wantRoute: "orders", wantURI: "/orders/1?x=1"},
		{name: "not a segment", target: "/ordersx", wantRoute: ""},
		{name: "longest prefix", target: "/orders/admin/users", wantRoute: "ordersadmin", wantURI: "/orders/admin/users"},
		{name: "longest prefix exact, normalised", target: "/orders/admin", wantRoute: "ordersadmin", wantURI: "/orders/admin"},
		{name: "segment, not string prefix", target: "/orders/administrator", wantRoute: "orders", wantURI: "/orders/administrator"},
		{name: "dot-dot leaves the route", target: "/orders/../admin/x", wantRoute: "admin", wantURI: "/admin/x"},
		{name: "encoded dot-dot", target: "/orders/%2e%2e/admin", wantRoute: "admin", wantURI: "/admin"},
		// An encoded slash is refused outright (path rules, gateway/path.go).
		{name: "encoded slash hides dot-dot", target: "/orders/x/..%2Fadmin/delete", wantRoute: refused},
		{name: "dot-dot to nowhere", target: "/orders/../nothing", wantRoute: ""},
		{name: "double slash", target: "/orders//1", wantRoute: "orders", wantURI: "/orders/1"},
		{name: "dot segment", target: "/orders/./1", wantRoute: "orders", wantURI: "/orders/1"},
		{name: "encoded slash refused", target: "/orders/a%2Fb", wantRoute: refused},
		{name: "encoding kept when clean", target: "/orders/a%20b", wantRoute: "orders", wantURI: "/orders/a%20b"},
		{name: "host-specific wins", target: "/api/v1", host: "api.example.com", wantRoute: "api", wantURI: "/api/v1"},
		{name: "host case and port ignored", target: "/api/v1", host: "API.EXAMPLE.COM:8443", wantRoute: "api", wantURI: "/api/v1"},
		{name: "other host falls back", target: "/api/v1", host: "other.example.com", wantRoute: "apiany", wantURI: "/api/v1"},
		{name: "strip prefix", target: "/strip/a/b?q=1", wantRoute: "strip", wantURI: "/base/a/b?q=1"},
		{name: "strip exact prefix", target: "/strip", wantRoute: "strip", wantURI: "/base/"},
		{name: "strip keeps encoding", target: "/strip/a%20b", wantRoute: "strip", wantURI: "/base/a%20b"},
		{name: "strip refuses an encoded slash", target: "/strip/a%2Fb", wantRoute: refused},
		{name: "strip is on segments", target: "/stripped", wantRoute: ""},
		{name: "root without a root route", target: "/", wantRoute: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(be.requests())
			calls := env.verifier.calls.Load()
			resp, body := env.do(t, http.MethodGet, tc.target, func(r *http.Request) {
				bearer(umbrella)(r)
				if tc.host != "" {
					r.Host = tc.host
				}
			})
			got := be.requests()[before:]
			if tc.wantRoute == refused {
				if resp.StatusCode != http.StatusBadRequest || len(got) != 0 || env.verifier.calls.Load() != calls {
					t.Fatalf("status = %d, backend got %d requests, want 400 and nothing read (body %s)", resp.StatusCode, len(got), body)
				}
				return
			}
			if tc.wantRoute == "" {
				if resp.StatusCode != http.StatusNotFound {
					t.Fatalf("status = %d, want 404 (body %s)", resp.StatusCode, body)
				}
				if len(got) != 0 || env.verifier.calls.Load() != calls {
					t.Error("a request without a route reached the verifier or the backend")
				}
				return
			}
			if resp.StatusCode != http.StatusOK || len(got) != 1 {
				t.Fatalf("status = %d, backend got %d requests (body %s)", resp.StatusCode, len(got), body)
			}
			wantAuth := "Bearer " + exchangedToken("https://"+tc.wantRoute+".example.com", nil)
			if a := got[0].Header.Get("Authorization"); !strings.HasPrefix(a, wantAuth) {
				t.Errorf("routed with %q, want %q", a, wantAuth)
			}
			if got[0].RequestURI != tc.wantURI {
				t.Errorf("upstream RequestURI = %q, want %q", got[0].RequestURI, tc.wantURI)
			}
		})
	}
}

func TestRootRouteMatchesEverything(t *testing.T) {
	be := newBackend(t, nil)
	env := newEnv(t, []config.Route{testRoute("root", "/", be.URL), testRoute("orders", "/orders", be.URL)}, nil)
	for target, want := range map[string]string{"/": "root", "/ordersx": "root", "/x/y": "root", "/orders/1": "orders"} {
		resp, _ := env.do(t, http.MethodGet, target, bearer(umbrella))
		reqs := be.requests()
		if resp.StatusCode != 200 || !strings.Contains(reqs[len(reqs)-1].Header.Get("Authorization"), want+".example.com") {
			t.Errorf("%s: status %d, routed to %q, want %s", target, resp.StatusCode, reqs[len(reqs)-1].Header.Get("Authorization"), want)
		}
	}
}

func TestNewRejectsBadRoutes(t *testing.T) {
	ok := testRoute("a", "/a", "http://127.0.0.1:1")
	tests := []struct {
		name  string
		edit  func(*config.Route)
		extra bool // add a duplicate of ok
		want  string
	}{
		{name: "relative upstream", edit: func(r *config.Route) { r.Upstream = "/x" }, want: "routes[0].upstream"},
		{name: "ftp upstream", edit: func(r *config.Route) { r.Upstream = "ftp://x" }, want: "routes[0].upstream"},
		{name: "prefix without slash", edit: func(r *config.Route) { r.PathPrefix = "a" }, want: "routes[0].path_prefix"},
		{name: "no audience", edit: func(r *config.Route) { r.Audience = "" }, want: "routes[0].audience"},
		{name: "duplicate", extra: true, want: "routes[1].path_prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			if tc.edit != nil {
				tc.edit(&r)
			}
			routes := []config.Route{r}
			if tc.extra {
				dup := ok
				dup.PathPrefix = "/a/"
				routes = append(routes, dup)
			}
			_, err := New(Options{Config: &config.Config{Routes: routes}, Verifier: newFakeVerifier(), Exchanger: newFakeExchanger()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to name %s", err, tc.want)
			}
		})
	}
}
