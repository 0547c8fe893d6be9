package gateway

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// rdUpstream mints a fixed token: the revocation tests exercise the
// gateway's decision, not exchanges.
type rdUpstream struct{}

func (rdUpstream) Exchange(context.Context, exchange.Request) (*exchange.Result, error) {
	return &exchange.Result{AccessToken: "xt", IssuedTokenType: exchange.TokenTypeAccessToken, TokenType: "Bearer", ExpiresAt: testNow.Add(time.Hour)}, nil
}

func (rdUpstream) Fingerprint() string { return "rd" }

// rdEnv: routes "orders" (access_token), "txn" (txn_token) and "both",
// the token endpoint, and a real caching exchanger as the revocations,
// while the edge's exchanger is the fake (which never refuses anything):
// a revoked token can only be refused by the gateway's own decision.
func rdEnv(t *testing.T) (*testEnv, *exchange.Caching) {
	t.Helper()
	be := newBackend(t, nil)
	orders := testRoute("orders", "/orders", be.URL)
	txn := testRoute("txn", "/txn", be.URL)
	txn.Forward = config.ForwardTxnToken
	both := testRoute("both", "/both", be.URL)
	both.Forward = config.ForwardBoth
	mem, err := cache.NewMemory(100, func() time.Time { return testNow }, nil)
	if err != nil {
		t.Fatal(err)
	}
	caching, err := exchange.NewCaching(rdUpstream{}, exchange.CachingOptions{
		Cache: mem, Clock: func() time.Time { return testNow },
		Denylist: cache.NewDenylist(func() time.Time { return testNow }),
	})
	if err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, []config.Route{orders, txn, both}, func(o *Options) {
		o.TxnMinter = &fakeMinter{}
		o.Revocations = caching
	})
	return env, caching
}

// rdJWT is a JWS with claims payload and signature sig (the fake verifier
// accepts what it is told to: two spellings of one token).
func rdJWT(payload, sig string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	return b64([]byte(`{"alg":"ES256","kid":"k1"}`)) + "." + b64([]byte(payload)) + "." + b64([]byte(sig))
}

// A token revoked by one spelling is refused under another, on edge routes
// of every forward kind and at the token endpoint; other tokens are not.
func TestRevokedRefusedEverywhere(t *testing.T) {
	env, caching := rdEnv(t)
	payload := `{"iss":"https://idp.example.com/","sub":"alice-subject","jti":"j-1"}`
	revoked, respelled := rdJWT(payload, "spelling-1"), rdJWT(payload, "spelling-2")
	other := rdJWT(`{"iss":"https://idp.example.com/","sub":"alice-subject","jti":"j-2"}`, "spelling-1")
	for raw, jti := range map[string]string{revoked: "j-1", respelled: "j-1", other: "j-2"} {
		env.verifier.add(raw, func(c *exchange.Claims) { c.ID = jti })
	}
	// Every spelling is admitted (and memoized by the fake) before.
	for _, raw := range []string{revoked, respelled, other} {
		if resp, body := env.do(t, http.MethodGet, "/orders/1", bearer(raw)); resp.StatusCode != http.StatusOK {
			t.Fatalf("before the revocation: status %d: %s", resp.StatusCode, body)
		}
	}
	if _, err := caching.Revoke(context.Background(), exchange.Revocation{Token: revoked}); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{revoked, respelled} {
		for _, path := range []string{"/orders/1", "/txn/1", "/both/1"} {
			resp, body := env.do(t, http.MethodGet, path, bearer(raw))
			if resp.StatusCode != http.StatusUnauthorized || decodeError(t, body).Error != "invalid_token" ||
				!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) ||
				!strings.Contains(string(body), "revoked") {
				t.Errorf("%s: status %d, WWW-Authenticate %q, body %s; want 401 invalid_token, revoked",
					path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
			}
		}
		resp, body := env.post(t, tokenPath, formType, exchangeForm(raw, audOrders).Encode())
		if resp.StatusCode != http.StatusBadRequest || decodeError(t, body).Error != "invalid_grant" {
			t.Errorf("token endpoint: status %d, body %s; want 400 invalid_grant", resp.StatusCode, body)
		}
	}
	if got := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(exchange.ReasonRevoked)); got != 8 {
		t.Errorf("tokengate_token_rejections_total{reason=revoked} = %v; want 8", got)
	}
	for _, path := range []string{"/orders/1", "/txn/1", "/both/1"} {
		if resp, body := env.do(t, http.MethodGet, path, bearer(other)); resp.StatusCode != http.StatusOK {
			t.Errorf("another token on %s: status %d: %s", path, resp.StatusCode, body)
		}
	}
}
