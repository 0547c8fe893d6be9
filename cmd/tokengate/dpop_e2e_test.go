package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/internal/dpop/dpoptest"
	"github.com/tokengate/tokengate/internal/redistest"
)

// dpopClient is a client holding a DPoP key (RFC 9449).
type dpopClient struct {
	*dpoptest.Key
	jkt string
}

func newDPoPClient(t testing.TB) *dpopClient {
	k := dpoptest.NewKey(t)
	return &dpopClient{Key: k, jkt: k.JKT}
}

// proof makes a fresh proof (new jti) for one request, with nonce when not "".
func (c *dpopClient) proof(t testing.TB, method, htu, token, nonce string) string {
	t.Helper()
	return c.Proof(t, method, htu, token, time.Now(), func(claims map[string]any) {
		if nonce != "" {
			claims["nonce"] = nonce
		}
	})
}

// dpopGet sends GET path to base with Authorization scheme+token and the proofs.
func dpopGet(t *testing.T, base, path, scheme, token string, proofs ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", scheme+" "+token)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// mintFor mints an umbrella token for both APIs, bound to jkt when not "".
func mintFor(t *testing.T, idp *e2eIdP, jkt string) string {
	t.Helper()
	c := map[string]any{
		"sub": "user-dpop", "client_id": "spa",
		"aud":   []string{audOrders, audInventory},
		"scope": "orders:read inventory:read",
	}
	if jkt != "" {
		c["cnf"] = map[string]any{"jkt": jkt}
	}
	return idp.mint(t, c)
}

// requireDPoPOnInventory makes the inventory route require DPoP-bound tokens.
func requireDPoPOnInventory(text, _ string) string {
	return strings.Replace(text, "    scopes: [inventory:read]\n", "    scopes: [inventory:read]\n    require_dpop: true\n", 1)
}

func TestE2EDPoP(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: requireDPoPOnInventory})
	base := g.srv.EdgeURL()
	client := newDPoPClient(t)
	bound, unbound := mintFor(t, idp, client.jkt), mintFor(t, idp, "")

	// A valid proof: the backend gets the exchanged token as a plain
	// bearer token, and no DPoP header.
	proof := client.proof(t, "GET", base+"/orders/1", bound, "")
	resp, body := dpopGet(t, base, "/orders/1", "DPoP", bound, proof)
	if resp.StatusCode != 200 {
		t.Fatalf("bound token with a proof: %d %s", resp.StatusCode, body)
	}
	got := orders.received()
	if len(got) != 1 {
		t.Fatalf("orders received %d requests, want 1", len(got))
	}
	fwd := got[0].Header.Get("Authorization")
	if !strings.HasPrefix(fwd, "Bearer ") || strings.Contains(fwd, bound) {
		t.Errorf("orders Authorization = %q, want the exchanged bearer token", fwd)
	}
	if got[0].Header.Get("DPoP") != "" {
		t.Error("the DPoP proof reached the backend")
	}
	var ex jwt.Claims
	if parsed, err := jwt.ParseSigned(bearerOf(got[0]), []jose.SignatureAlgorithm{jose.ES256}); err != nil {
		t.Errorf("exchanged token: %v", err)
	} else if err := parsed.UnsafeClaimsWithoutVerification(&ex); err != nil || len(ex.Audience) != 1 || ex.Audience[0] != audOrders {
		t.Errorf("exchanged token aud = %v (%v), want only %s", ex.Audience, err, audOrders)
	}

	steps := []struct {
		name   string
		path   string
		scheme string
		token  string
		proofs []string
		status int
		www    string // WWW-Authenticate must contain this
	}{
		{"replayed proof", "/orders/1", "DPoP", bound, []string{proof}, 401, `error="invalid_dpop_proof"`},
		{"bound token as Bearer", "/orders/1", "Bearer", bound, nil, 401, `DPoP algs="ES256`},
		{"bound token without a proof", "/orders/1", "DPoP", bound, nil, 401, `error="invalid_dpop_proof"`},
		{"proof for another URL", "/orders/1", "DPoP", bound, []string{client.proof(t, "GET", base+"/orders/2", bound, "")}, 401, `error="invalid_dpop_proof"`},
		{"unbound token on a require_dpop route", "/inventory/w", "Bearer", unbound, nil, 401, `error="invalid_token"`},
		{"unbound token on a plain route", "/orders/2", "Bearer", unbound, nil, 200, ""},
		{"bound token on a require_dpop route (htu before strip_prefix)", "/inventory/w", "DPoP", bound,
			[]string{client.proof(t, "GET", base+"/inventory/w", bound, "")}, 200, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			resp, body := dpopGet(t, base, s.path, s.scheme, s.token, s.proofs...)
			if resp.StatusCode != s.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, s.status)
			}
			if s.www != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), s.www) {
				t.Errorf("WWW-Authenticate = %q, want %q in it", resp.Header.Get("WWW-Authenticate"), s.www)
			}
		})
	}
	if n := len(orders.received()); n != 2 {
		t.Errorf("orders received %d requests, want 2 (the refused ones never reach it)", n)
	}
	if n := len(inventory.received()); n != 1 {
		t.Errorf("inventory received %d requests, want 1", n)
	}
	assertNoUmbrella(t, bound, g, orders, inventory)
	for _, p := range []string{proof} {
		if strings.Contains(g.logs.String(), p[strings.LastIndex(p, ".")+1:]) {
			t.Error("a DPoP proof appears in the logs")
		}
	}
}

func TestE2EDPoPNonce(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: func(text, _ string) string {
		return strings.Replace(text, "  shutdown_grace: 10s\n", "  shutdown_grace: 10s\n  dpop:\n    nonce: true\n", 1)
	}})
	base := g.srv.EdgeURL()
	client := newDPoPClient(t)
	bound := mintFor(t, idp, client.jkt)

	resp, body := dpopGet(t, base, "/orders/1", "DPoP", bound, client.proof(t, "GET", base+"/orders/1", bound, ""))
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != 401 || nonce == "" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("without a nonce: %d %q nonce %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nonce, body)
	}
	resp, body = dpopGet(t, base, "/orders/1", "DPoP", bound, client.proof(t, "GET", base+"/orders/1", bound, nonce))
	if resp.StatusCode != 200 {
		t.Fatalf("with the nonce: %d %s", resp.StatusCode, body)
	}
	if len(orders.received()) != 1 {
		t.Errorf("orders received %d requests, want 1", len(orders.received()))
	}
}

// TestE2EDPoPReplicasShareRedis: two instances sharing one real
// redis-server (and server.public_url, as behind one load balancer): a proof
// accepted by A is refused by B, and B accepts A's nonce.
func TestE2EDPoPReplicasShareRedis(t *testing.T) {
	srv := redistest.Start(t)
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	pemBytes, key := replicaSecrets(t)
	const public = "https://api.example.test"
	start := func() *e2eGateway {
		return startE2EWith(t, idp, orders, inventory, e2eOptions{
			keyPEM: pemBytes, issuer: "https://tokengate.test", cacheYAML: redisCacheYAML(srv.Addr(), key),
			edit: func(text, _ string) string {
				return strings.Replace(text, "  shutdown_grace: 10s\n",
					"  shutdown_grace: 10s\n  public_url: \""+public+"\"\n  dpop:\n    nonce: true\n", 1)
			},
		})
	}
	a, b := start(), start()
	client := newDPoPClient(t)
	bound := mintFor(t, idp, client.jkt)
	htu := public + "/orders/1"

	resp, _ := dpopGet(t, a.srv.EdgeURL(), "/orders/1", "DPoP", bound, client.proof(t, "GET", htu, bound, ""))
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != 401 || nonce == "" {
		t.Fatalf("A without a nonce: %d, nonce %q", resp.StatusCode, nonce)
	}
	proof := client.proof(t, "GET", htu, bound, nonce)
	if resp, body := dpopGet(t, a.srv.EdgeURL(), "/orders/1", "DPoP", bound, proof); resp.StatusCode != 200 {
		t.Fatalf("A with a valid proof: %d %s", resp.StatusCode, body)
	}
	resp, body := dpopGet(t, b.srv.EdgeURL(), "/orders/1", "DPoP", bound, proof)
	if resp.StatusCode != 401 || !strings.Contains(body, "already used") {
		t.Fatalf("B replaying A's proof: %d %s, want 401 already used", resp.StatusCode, body)
	}
	// A's nonce is valid at B: the nonce secret comes from the shared hash key.
	if resp, body := dpopGet(t, b.srv.EdgeURL(), "/orders/1", "DPoP", bound, client.proof(t, "GET", htu, bound, nonce)); resp.StatusCode != 200 {
		t.Fatalf("B with a fresh proof and A's nonce: %d %s", resp.StatusCode, body)
	}
	if n := len(orders.received()); n != 2 {
		t.Errorf("orders received %d requests, want 2", n)
	}
	keys, err := srv.Client(t).Keys(t.Context(), "tokengate:dpop:*").Result()
	if err != nil || len(keys) != 2 {
		t.Errorf("Redis holds %d replay keys (%v), want 2", len(keys), err)
	}
	for _, k := range keys {
		if strings.Contains(k, "e2e-") {
			t.Errorf("a replay key holds the raw jti: %s", k)
		}
	}
}
