package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"x","y":"y","alg":"ES256","use":"sig"}]}`

func adminGet(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), method, "http://admin.test"+path, nil))
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.Requests.WithLabelValues("orders", "200").Inc()
	admin := NewAdmin(AdminOptions{
		Gatherer:      reg,
		Checks:        []ReadinessCheck{{Name: "ok", Check: func(context.Context) error { return nil }}},
		JWKS:          []byte(testJWKS),
		Issuer:        "http://127.0.0.1:9090/tenant/",
		TokenEndpoint: "http://127.0.0.1:8080/oauth2/token",
		Algorithms:    []string{"ES256"},
	})
	tests := []struct {
		name, method, path string
		status             int
		contentType        string
		cacheControl       string
		body               string // substring
	}{
		{name: "metrics", path: "/metrics", status: 200, body: `tokengate_requests_total{code="200",route="orders"} 1`},
		{name: "healthz", path: "/healthz", status: 200, body: "ok"},
		{name: "healthz HEAD", method: http.MethodHead, path: "/healthz", status: 200},
		{name: "readyz", path: "/readyz", status: 200, contentType: "application/json", body: `{"status":"ready"}`},
		{name: "jwks", path: "/.well-known/jwks.json", status: 200, contentType: "application/jwk-set+json", cacheControl: "public, max-age=300", body: testJWKS},
		{name: "jwks under the issuer path", path: "/tenant/.well-known/jwks.json", status: 200, body: testJWKS},
		{name: "discovery", path: "/.well-known/openid-configuration", status: 200, contentType: "application/json", cacheControl: "public, max-age=300", body: `"issuer":"http://127.0.0.1:9090/tenant/"`},
		{name: "discovery under the issuer path", path: "/tenant/.well-known/openid-configuration", status: 200, body: `"jwks_uri":"http://127.0.0.1:9090/tenant/.well-known/jwks.json"`},
		{name: "nothing else", path: "/orders", status: 404},
		{name: "no proxying of the root", path: "/", status: 404},
		{name: "POST refused", method: http.MethodPost, path: "/healthz", status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			resp, body := adminGet(t, admin, method, tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.contentType)
			}
			if tc.cacheControl != "" && resp.Header.Get("Cache-Control") != tc.cacheControl {
				t.Errorf("Cache-Control %q, want %q", resp.Header.Get("Cache-Control"), tc.cacheControl)
			}
			if !strings.Contains(body, tc.body) {
				t.Errorf("body %q, want it to contain %q", body, tc.body)
			}
		})
	}
}

func TestAdminDiscovery(t *testing.T) {
	tests := []struct {
		name          string
		tokenEndpoint string
		wantGrants    []string
		wantAuth      []string
	}{
		{name: "with token endpoint", tokenEndpoint: "http://127.0.0.1:8080/oauth2/token",
			wantGrants: []string{"urn:ietf:params:oauth:grant-type:token-exchange"}, wantAuth: []string{"none"}},
		{name: "without token endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			admin := NewAdmin(AdminOptions{JWKS: []byte(testJWKS), Issuer: "http://127.0.0.1:9090", TokenEndpoint: tc.tokenEndpoint, Algorithms: []string{"ES256", "EdDSA"}})
			_, body := adminGet(t, admin, http.MethodGet, "/.well-known/openid-configuration")
			var d struct {
				Issuer        string   `json:"issuer"`
				JWKSURI       string   `json:"jwks_uri"`
				TokenEndpoint *string  `json:"token_endpoint"`
				Algs          []string `json:"id_token_signing_alg_values_supported"`
				Auth          []string `json:"token_endpoint_auth_methods_supported"`
				Grants        []string `json:"grant_types_supported"`
			}
			if err := json.Unmarshal([]byte(body), &d); err != nil {
				t.Fatal(err)
			}
			if d.Issuer != "http://127.0.0.1:9090" || d.JWKSURI != "http://127.0.0.1:9090/.well-known/jwks.json" {
				t.Errorf("issuer %q jwks_uri %q", d.Issuer, d.JWKSURI)
			}
			if !slices.Equal(d.Algs, []string{"ES256", "EdDSA"}) {
				t.Errorf("algs %q", d.Algs)
			}
			if (d.TokenEndpoint != nil) != (tc.tokenEndpoint != "") || (d.TokenEndpoint != nil && *d.TokenEndpoint != tc.tokenEndpoint) {
				t.Errorf("token_endpoint %v, want %q", d.TokenEndpoint, tc.tokenEndpoint)
			}
			if !slices.Equal(d.Grants, tc.wantGrants) || !slices.Equal(d.Auth, tc.wantAuth) {
				t.Errorf("grants %q auth %q", d.Grants, d.Auth)
			}
		})
	}
}

func TestAdminWithoutJWKS(t *testing.T) {
	admin := NewAdmin(AdminOptions{Issuer: "http://127.0.0.1:9090"})
	for _, p := range []string{"/.well-known/jwks.json", "/.well-known/openid-configuration"} {
		if resp, _ := adminGet(t, admin, http.MethodGet, p); resp.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestReadyz(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	tests := []struct {
		name   string
		checks []ReadinessCheck
		status int
		want   map[string]string
	}{
		{name: "no checks", status: 200},
		{name: "all pass", checks: []ReadinessCheck{{Name: "a", Check: func(context.Context) error { return nil }}}, status: 200},
		{name: "one fails", status: 503,
			checks: []ReadinessCheck{
				{Name: "a", Check: func(context.Context) error { return nil }},
				{Name: "issuer_keys", Check: func(context.Context) error { return errors.New("no keys for https://idp") }},
			},
			want: map[string]string{"issuer_keys": "no keys for https://idp"}},
		{name: "one hangs", status: 503,
			checks: []ReadinessCheck{{Name: "redis", Check: func(context.Context) error { <-hang; return nil }}},
			want:   map[string]string{"redis": "check timed out"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			admin := NewAdmin(AdminOptions{Checks: tc.checks, ReadyTimeout: 50 * time.Millisecond})
			resp, body := adminGet(t, admin, http.MethodGet, "/readyz")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var got readyBody
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			wantStatus := "ready"
			if tc.status != 200 {
				wantStatus = "not ready"
			}
			if got.Status != wantStatus || len(got.Checks) != len(tc.want) {
				t.Fatalf("body %s", body)
			}
			for k, v := range tc.want {
				if got.Checks[k] != v {
					t.Errorf("checks[%s] = %q, want %q", k, got.Checks[k], v)
				}
			}
		})
	}
}
