package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/exchange"
)

const testAdminToken = "admin-token-0123456789abcdef"

// fakeRevoker records revocations and answers with res and err.
type fakeRevoker struct {
	mu    sync.Mutex
	calls []exchange.Revocation
	res   exchange.RevokeResult
	err   error
}

func (f *fakeRevoker) Revoke(_ context.Context, r exchange.Revocation) (exchange.RevokeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r)
	if f.err != nil && !errors.Is(f.err, exchange.ErrBadRevocation) {
		return f.res, f.err
	}
	if f.err != nil {
		return exchange.RevokeResult{}, f.err
	}
	return f.res, nil
}

func adminDo(t *testing.T, h http.Handler, method, auth, contentType, body string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequestWithContext(context.Background(), method, "http://admin.test/admin/revoke", strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAdminRevoke(t *testing.T) {
	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const bearer = "Bearer " + testAdminToken
	const secretValue = "alice@example.com"
	tests := []struct {
		name, method, auth, ct, body string
		revErr                       error
		status                       int
		want                         *exchange.Revocation
		bodyHas                      string
	}{
		{"json sub", "POST", bearer, "application/json", `{"sub":"` + secretValue + `"}`, nil, 200,
			&exchange.Revocation{Subject: secretValue}, `"revoked":"sub","entries_dropped":3`},
		{"form sid", "POST", bearer, "application/x-www-form-urlencoded", "sid=" + secretValue, nil, 200,
			&exchange.Revocation{Session: secretValue}, `"revoked":"sub"`},
		{"json token", "POST", bearer, "application/json; charset=utf-8", `{"token":"a.b.c"}`, nil, 200,
			&exchange.Revocation{Token: "a.b.c"}, `"refused_until":"2030-01-01T00:00:00Z"`},
		{"no token", "POST", "", "application/json", `{"sub":"x"}`, nil, 401, nil, `"error":"unauthorized"`},
		{"wrong token", "POST", "Bearer " + testAdminToken + "x", "application/json", `{"sub":"x"}`, nil, 401, nil, "unauthorized"},
		{"wrong scheme", "POST", "Basic " + testAdminToken, "application/json", `{"sub":"x"}`, nil, 401, nil, "unauthorized"},
		{"GET", "GET", bearer, "", "", nil, 405, nil, "use POST"},
		{"two fields", "POST", bearer, "application/json", `{"sub":"x","sid":"y"}`, nil, 400, nil, "exactly one"},
		{"no field", "POST", bearer, "application/json", `{}`, nil, 400, nil, "exactly one"},
		{"unknown field", "POST", bearer, "application/json", `{"user":"x"}`, nil, 400, nil, "invalid_request"},
		{"not json", "POST", bearer, "application/json", `sub=x`, nil, 400, nil, "invalid_request"},
		{"form field twice", "POST", bearer, "application/x-www-form-urlencoded", "sub=a&sub=b", nil, 400, nil, "once"},
		{"form unknown field", "POST", bearer, "application/x-www-form-urlencoded", "user=a", nil, 400, nil, "unknown"},
		{"no content type", "POST", bearer, "", `{"sub":"x"}`, nil, 400, nil, "application/json"},
		{"redis down: applied here only", "POST", bearer, "application/json", `{"sub":"` + secretValue + `"}`,
			errors.New("redis revoke: dial tcp: refused"), 503, &exchange.Revocation{Subject: secretValue}, "this replica only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rv := &fakeRevoker{res: exchange.RevokeResult{By: cache.BySubject, Dropped: 3, Until: until}, err: tc.revErr}
			logs := &strings.Builder{}
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logs.Write(p)
			}), nil))
			h := NewAdmin(AdminOptions{AdminToken: testAdminToken, Revoker: rv, Logger: logger})
			resp, body := adminDo(t, h, tc.method, tc.auth, tc.ct, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if !strings.Contains(body, tc.bodyHas) {
				t.Errorf("body %s; want it to contain %s", body, tc.bodyHas)
			}
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") != adminChallenge {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			if tc.want == nil && len(rv.calls) != 0 {
				t.Errorf("revoker called %d times; want 0", len(rv.calls))
			}
			if tc.want != nil && (len(rv.calls) != 1 || rv.calls[0] != *tc.want) {
				t.Errorf("revoker calls = %+v; want [%+v]", rv.calls, *tc.want)
			}
			var js map[string]any
			if err := json.Unmarshal([]byte(body), &js); err != nil {
				t.Errorf("body is not JSON: %s", body)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(body, secretValue) || strings.Contains(logs.String(), secretValue) {
				t.Error("the revoked value is echoed or logged")
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestAdminRevokeDisabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts AdminOptions
	}{
		{"no admin token", AdminOptions{Revoker: &fakeRevoker{}}},
		{"no revoker", AdminOptions{AdminToken: testAdminToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := adminDo(t, NewAdmin(tc.opts), "POST", "Bearer "+testAdminToken, "application/json", `{"sub":"x"}`)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("status %d; want 404 (disabled)", resp.StatusCode)
			}
		})
	}
}

func TestReadyzOptionalCheck(t *testing.T) {
	down := func(context.Context) error { return errors.New("redis ping: connection refused") }
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name   string
		checks []ReadinessCheck
		status int
		body   string
	}{
		{"optional down: degraded, still ready", []ReadinessCheck{{Name: "issuer_keys", Check: ok}, {Name: "redis", Check: down, Optional: true}},
			200, `{"status":"degraded","degraded":{"redis":"redis ping: connection refused"}}`},
		{"required down: not ready", []ReadinessCheck{{Name: "redis", Check: down}},
			503, `{"status":"not ready","checks":{"redis":"redis ping: connection refused"}}`},
		{"both", []ReadinessCheck{{Name: "issuer_keys", Check: down}, {Name: "redis", Check: down, Optional: true}},
			503, `"degraded":{"redis"`},
		{"optional up", []ReadinessCheck{{Name: "redis", Check: ok, Optional: true}}, 200, `{"status":"ready"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := adminGet(t, NewAdmin(AdminOptions{Checks: tc.checks}), http.MethodGet, "/readyz")
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
				t.Errorf("readyz = %d %s; want %d with %s", resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}
