package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/dpop/dpoptest"
)

// dpopAlgs is the algs challenge parameter of the default configuration.
const dpopAlgs = `algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA"`

// Bound tokens of the tests (cnf.jkt set by the fake verifier).
const (
	tokBound     = "tok-dpop-bound-0123456789"
	tokBoundBad  = "tok-dpop-bound-expired-0123"
	tokUnbound   = "tok-dpop-unbound-0123456789"
	tokOtherBind = "tok-dpop-other-key-01234567"
)

// dpopKey is a client's proof key.
type dpopKey struct {
	*dpoptest.Key
	jkt string
}

func newDPoPKey(t testing.TB) *dpopKey {
	k := dpoptest.NewKey(t)
	return &dpopKey{Key: k, jkt: k.JKT}
}

// proof signs a DPoP proof for method, htu and the access token tok,
// issued at the tests' now.
func (k *dpopKey) proof(t testing.TB, method, htu, tok string, edit func(map[string]any)) string {
	t.Helper()
	return k.Proof(t, method, htu, tok, testNow, edit)
}

// dpopEnv is an edge with a plain route, a require_dpop route and bound tokens.
func dpopEnv(t *testing.T, key *dpopKey, edit func(*Options)) (*testEnv, *backend) {
	t.Helper()
	be := newBackend(t, nil)
	orders := testRoute("orders", "/orders", be.URL)
	strict := testRoute("strict", "/strict", be.URL)
	strict.RequireDPoP = true
	env := newEnv(t, []config.Route{orders, strict}, edit)
	env.verifier.add(tokBound, func(c *exchange.Claims) { c.JKT = key.jkt })
	env.verifier.add(tokOtherBind, func(c *exchange.Claims) { c.JKT = newDPoPKey(t).jkt })
	env.verifier.add(tokUnbound, nil)
	env.verifier.fail(tokBoundBad, exchange.Reject(exchange.ReasonExpired, "the token has expired", nil))
	return env, be
}

func TestDPoPEdge(t *testing.T) {
	key := newDPoPKey(t)
	env, be := dpopEnv(t, key, nil)
	url := func(p string) string { return env.edge.URL + p }
	replayed := key.proof(t, "GET", url("/orders/1"), tokBound, nil)
	env.do(t, "GET", "/orders/1", func(r *http.Request) {
		r.Header.Set("Authorization", "DPoP "+tokBound)
		r.Header.Set("DPoP", replayed)
	})

	tests := []struct {
		name       string
		path       string
		auth       string
		proofs     []string
		header     http.Header // extra request headers
		status     int
		challenges []string // every WWW-Authenticate value, in order
		code       string
		desc       string
		reason     string
	}{
		{name: "bound token, valid proof", path: "/orders/1", auth: "DPoP " + tokBound,
			proofs: []string{key.proof(t, "GET", url("/orders/1"), tokBound, nil)}, status: 200},
		{name: "scheme is case-insensitive", path: "/strict/1", auth: "dpop " + tokBound,
			proofs: []string{key.proof(t, "GET", url("/strict/1"), tokBound, nil)}, status: 200},
		{name: "replayed proof", path: "/orders/1", auth: "DPoP " + tokBound, proofs: []string{replayed}, status: 401,
			challenges: []string{`DPoP ` + dpopAlgs + `, error="invalid_dpop_proof", error_description="the DPoP proof was already used: make a new proof (a new jti) for every request"`},
			code:       "invalid_dpop_proof", desc: "already used", reason: ReasonDPoPReplay},
		{name: "bound token as Bearer", path: "/orders/1", auth: "Bearer " + tokBound,
			proofs: []string{key.proof(t, "GET", url("/orders/1"), tokBound, nil)}, status: 401,
			challenges: []string{`DPoP ` + dpopAlgs + `, error="invalid_token", error_description="the access token is DPoP-bound: send it with Authorization: DPoP and a DPoP proof"`},
			code:       "invalid_token", desc: "DPoP-bound", reason: ReasonDPoPRequired},
		{name: "bound token without proof", path: "/orders/1", auth: "DPoP " + tokBound, status: 401,
			challenges: []string{`DPoP ` + dpopAlgs + `, error="invalid_dpop_proof", error_description="a DPoP proof is required"`},
			code:       "invalid_dpop_proof", desc: "required", reason: ReasonDPoPProof},
		{name: "two proofs", path: "/orders/1", auth: "DPoP " + tokBound, status: 401,
			proofs: []string{key.proof(t, "GET", url("/orders/1"), tokBound, nil), key.proof(t, "GET", url("/orders/1"), tokBound, nil)},
			code:   "invalid_dpop_proof", desc: "several", reason: ReasonDPoPProof},
		{name: "proof for another path", path: "/orders/1", auth: "DPoP " + tokBound, status: 401,
			proofs: []string{key.proof(t, "GET", url("/orders/2"), tokBound, nil)},
			code:   "invalid_dpop_proof", desc: "htu", reason: ReasonDPoPProof},
		{name: "proof for another method", path: "/orders/1", auth: "DPoP " + tokBound, status: 401,
			proofs: []string{key.proof(t, "POST", url("/orders/1"), tokBound, nil)},
			code:   "invalid_dpop_proof", desc: "htm", reason: ReasonDPoPProof},
		{name: "proof key is not the bound key", path: "/orders/1", auth: "DPoP " + tokOtherBind, status: 401,
			proofs: []string{key.proof(t, "GET", url("/orders/1"), tokOtherBind, nil)},
			code:   "invalid_dpop_proof", desc: "bound", reason: ReasonDPoPProof},
		{name: "proof for another token", path: "/orders/1", auth: "DPoP " + tokBound, status: 401,
			proofs: []string{key.proof(t, "GET", url("/orders/1"), tokOtherBind, nil)},
			code:   "invalid_dpop_proof", desc: "ath", reason: ReasonDPoPProof},
		{name: "X-Forwarded-* is not trusted for htu", path: "/orders/1", auth: "DPoP " + tokBound, status: 401,
			header: http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"api.example.com"}},
			proofs: []string{key.proof(t, "GET", "https://api.example.com/orders/1", tokBound, nil)},
			code:   "invalid_dpop_proof", desc: "htu", reason: ReasonDPoPProof},
		{name: "unbound token with the DPoP scheme", path: "/orders/1", auth: "DPoP " + tokUnbound, status: 401,
			proofs:     []string{key.proof(t, "GET", url("/orders/1"), tokUnbound, nil)},
			challenges: []string{`DPoP ` + dpopAlgs + `, error="invalid_token", error_description="the access token is not DPoP-bound: send it with Authorization: Bearer"`},
			code:       "invalid_token", desc: "not DPoP-bound", reason: ReasonDPoPUnbound},
		{name: "unbound token as Bearer on a plain route", path: "/orders/1", auth: "Bearer " + tokUnbound, status: 200},
		{name: "unbound token on a require_dpop route", path: "/strict/1", auth: "Bearer " + tokUnbound, status: 401,
			challenges: []string{`DPoP ` + dpopAlgs + `, error="invalid_token", error_description="this API accepts only DPoP-bound access tokens (cnf.jkt): request one from the authorization server with a DPoP proof"`},
			code:       "invalid_token", desc: "only DPoP-bound", reason: ReasonDPoPRequired},
		{name: "no credentials on a require_dpop route", path: "/strict/1", status: 401,
			challenges: []string{`DPoP ` + dpopAlgs}, code: "unauthorized"},
		{name: "no credentials elsewhere: Bearer and DPoP challenges", path: "/orders/1", status: 401,
			challenges: []string{`Bearer realm="tokengate"`, `DPoP ` + dpopAlgs}, code: "unauthorized"},
		{name: "bad token with the DPoP scheme", path: "/orders/1", auth: "DPoP " + tokBoundBad, status: 401,
			challenges: []string{`DPoP ` + dpopAlgs + `, error="invalid_token", error_description="the token has expired"`},
			code:       "invalid_token", reason: "expired"},
		{name: "bad token as Bearer keeps the Bearer challenge", path: "/orders/1", auth: "Bearer " + tokBoundBad, status: 401,
			challenges: []string{`Bearer error="invalid_token", error_description="the token has expired"`, `DPoP ` + dpopAlgs},
			code:       "invalid_token", reason: "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(be.requests())
			var rej float64
			if tc.reason != "" {
				rej = testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason))
			}
			resp, body := env.do(t, "GET", tc.path, func(r *http.Request) {
				if tc.auth != "" {
					r.Header.Set("Authorization", tc.auth)
				}
				for _, p := range tc.proofs {
					r.Header.Add("DPoP", p)
				}
				for k, v := range tc.header {
					r.Header[k] = v
				}
			})
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				got := be.requests()
				if len(got) != before+1 {
					t.Fatal("the backend did not get the request")
				}
				h := got[len(got)-1].Header
				if a := h.Get("Authorization"); !strings.HasPrefix(a, "Bearer xt.") {
					t.Errorf("backend Authorization = %q, want the exchanged bearer token", a)
				}
				if h.Get("DPoP") != "" {
					t.Error("the DPoP proof was forwarded upstream")
				}
				return
			}
			if len(be.requests()) != before {
				t.Error("a refused request reached the backend")
			}
			if tc.challenges != nil {
				if got := resp.Header.Values("WWW-Authenticate"); strings.Join(got, "\n") != strings.Join(tc.challenges, "\n") {
					t.Errorf("WWW-Authenticate = %q\n want %q", got, tc.challenges)
				}
			}
			e := decodeError(t, body)
			if e.Error != tc.code || !strings.Contains(e.Description, tc.desc) {
				t.Errorf("body = %+v, want error %q with %q", e, tc.code, tc.desc)
			}
			if tc.reason != "" {
				if got := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason)); got != rej+1 {
					t.Errorf("rejections{reason=%q} moved by %v, want 1", tc.reason, got-rej)
				}
			}
			if strings.Contains(string(body), tokBound) || strings.Contains(env.logs.String(), tokBound) {
				t.Error("the access token leaked into the body or the logs")
			}
		})
	}
}

func TestDPoPNonce(t *testing.T) {
	key := newDPoPKey(t)
	env, be := dpopEnv(t, key, func(o *Options) { o.Config.Server.DPoP.Nonce = true })
	htu := env.edge.URL + "/orders/1"
	send := func(proof string) *http.Response {
		resp, _ := env.do(t, "GET", "/orders/1", func(r *http.Request) {
			r.Header.Set("Authorization", "DPoP "+tokBound)
			r.Header.Set("DPoP", proof)
		})
		return resp
	}
	resp := send(key.proof(t, "GET", htu, tokBound, nil))
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != 401 || nonce == "" ||
		resp.Header.Get("WWW-Authenticate") != `DPoP error="use_dpop_nonce", error_description="a DPoP nonce is required"` {
		t.Fatalf("without a nonce: %d %q nonce %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nonce)
	}
	if got := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(ReasonDPoPNonce)); got != 1 {
		t.Errorf("dpop_nonce rejections = %v, want 1", got)
	}
	if resp := send(key.proof(t, "GET", htu, tokBound, func(c map[string]any) { c["nonce"] = "bogus" })); resp.StatusCode != 401 {
		t.Errorf("bogus nonce: %d, want 401", resp.StatusCode)
	}
	if resp := send(key.proof(t, "GET", htu, tokBound, func(c map[string]any) { c["nonce"] = nonce })); resp.StatusCode != 200 {
		t.Fatalf("with the server's nonce: %d, want 200", resp.StatusCode)
	}
	if len(be.requests()) != 1 {
		t.Errorf("backend got %d requests, want 1", len(be.requests()))
	}
}

func TestDPoPPublicURL(t *testing.T) {
	key := newDPoPKey(t)
	env, _ := dpopEnv(t, key, func(o *Options) { o.Config.Server.PublicURL = "https://API.example.com/" })
	for _, tc := range []struct {
		htu  string
		want int
	}{
		{"https://api.example.com/orders/1", 200},
		{"https://api.example.com:443/orders/1", 200},
		{env.edge.URL + "/orders/1", 401}, // the listener's own URL is not what clients see
	} {
		resp, body := env.do(t, "GET", "/orders/1", func(r *http.Request) {
			r.Header.Set("Authorization", "DPoP "+tokBound)
			r.Header.Set("DPoP", key.proof(t, "GET", tc.htu, tokBound, nil))
		})
		if resp.StatusCode != tc.want {
			t.Errorf("htu %s: %d, want %d (%s)", tc.htu, resp.StatusCode, tc.want, body)
		}
	}
}

// failingReplay is a replay store that cannot answer (Redis down, required).
type failingReplay struct{}

func (failingReplay) Fresh(context.Context, string, time.Duration) (bool, error) {
	return false, errors.New("redis: connection refused")
}

func TestDPoPReplayStoreDown(t *testing.T) {
	key := newDPoPKey(t)
	env, be := dpopEnv(t, key, func(o *Options) { o.DPoP.Replay = failingReplay{} })
	resp, body := env.do(t, "GET", "/orders/1", func(r *http.Request) {
		r.Header.Set("Authorization", "DPoP "+tokBound)
		r.Header.Set("DPoP", key.proof(t, "GET", env.edge.URL+"/orders/1", tokBound, nil))
	})
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || decodeError(t, body).Error != "temporarily_unavailable" {
		t.Fatalf("status %d, Retry-After %q, body %s; want 503 temporarily_unavailable", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if len(be.requests()) != 0 {
		t.Error("forwarded without a replay check")
	}
}

func TestDPoPTokenEndpoint(t *testing.T) {
	key := newDPoPKey(t)
	env, _ := dpopEnv(t, key, nil)
	endpoint := env.edge.URL + tokenPath
	post := func(tok, aud, proof string) (*http.Response, errorBody) {
		body := exchangeForm(tok, aud).Encode()
		resp, b := env.do(t, http.MethodPost, tokenPath, func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(body))
			r.ContentLength = int64(len(body))
			r.Header.Set("Content-Type", formType)
			if proof != "" {
				r.Header.Set("DPoP", proof)
			}
		})
		var e errorBody
		_ = json.Unmarshal(b, &e)
		return resp, e
	}
	tests := []struct {
		name   string
		tok    string
		aud    string
		proof  string
		status int
		code   string
	}{
		{"bound subject with a proof", tokBound, audOrders, key.proof(t, "POST", endpoint, tokBound, nil), 200, ""},
		{"bound subject without a proof", tokBound, audOrders, "", 400, "invalid_dpop_proof"},
		{"bound subject, proof for GET", tokBound, audOrders, key.proof(t, "GET", endpoint, tokBound, nil), 400, "invalid_dpop_proof"},
		{"bound subject, proof for the edge route", tokBound, audOrders, key.proof(t, "POST", env.edge.URL+"/orders", tokBound, nil), 400, "invalid_dpop_proof"},
		{"unbound subject for a require_dpop audience", tokUnbound, "https://strict.example.com", "", 400, "invalid_grant"},
		{"unbound subject elsewhere", tokUnbound, audOrders, "", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, e := post(tc.tok, tc.aud, tc.proof)
			if resp.StatusCode != tc.status || e.Error != tc.code {
				t.Fatalf("status %d error %q (%s), want %d %q", resp.StatusCode, e.Error, e.Description, tc.status, tc.code)
			}
			if resp.Header.Get("WWW-Authenticate") != "" {
				t.Error("a token endpoint error carries a challenge")
			}
		})
	}
}

func TestDPoPExplain(t *testing.T) {
	key := newDPoPKey(t)
	env, _ := dpopEnv(t, key, nil)
	ex := env.gw.Explain(context.Background(), tokUnbound)
	if ex.Routes[1].Allowed || ex.Routes[1].Reason != ReasonDPoPRequired {
		t.Errorf("require_dpop route for an unbound token: %+v", ex.Routes[1])
	}
	ex = env.gw.Explain(context.Background(), tokBound)
	if !ex.Routes[1].Allowed || ex.JKT != key.jkt {
		t.Errorf("bound token: allowed %v, JKT %q; want allowed and %q", ex.Routes[1].Allowed, ex.JKT, key.jkt)
	}
}

func TestDPoPNonceRolls(t *testing.T) {
	key := newDPoPKey(t)
	now := testNow
	env, _ := dpopEnv(t, key, func(o *Options) {
		o.Config.Server.DPoP.Nonce = true
		o.Clock = func() time.Time { return now }
	})
	htu := env.edge.URL + "/orders/1"
	send := func(nonce string) *http.Response {
		resp, _ := env.do(t, "GET", "/orders/1", func(r *http.Request) {
			r.Header.Set("Authorization", "DPoP "+tokBound)
			r.Header.Set("DPoP", key.proof(t, "GET", htu, tokBound, func(c map[string]any) {
				c["nonce"], c["iat"] = nonce, now.Unix()
			}))
		})
		return resp
	}
	first := send("").Header.Get("DPoP-Nonce")
	resp := send(first)
	if resp.StatusCode != 200 || resp.Header.Get("DPoP-Nonce") != "" {
		t.Fatalf("current nonce: %d, DPoP-Nonce %q; want 200 and no new nonce", resp.StatusCode, resp.Header.Get("DPoP-Nonce"))
	}
	now = now.Add(5 * time.Minute) // the next window: the old nonce still passes, a new one is handed out
	resp = send(first)
	next := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != 200 || next == "" || next == first {
		t.Fatalf("previous window's nonce: %d, DPoP-Nonce %q; want 200 and a fresh nonce", resp.StatusCode, next)
	}
	now = now.Add(5 * time.Minute)
	if resp := send(first); resp.StatusCode != 401 {
		t.Errorf("a nonce two windows old: %d, want 401", resp.StatusCode)
	}
}

func TestAccessTokenSchemes(t *testing.T) {
	tests := []struct {
		header, scheme, token string
		err                   error
	}{
		{"Bearer abc", schemeBearer, "abc", nil},
		{"DPoP abc", schemeDPoP, "abc", nil},
		{"dpop\tabc", schemeDPoP, "abc", nil},
		{"DPOP abc", schemeDPoP, "abc", nil},
		{"DPoP", "", "", errEmptyToken},
		{"DPoP a b", "", "", errSeveralCreds},
		{"DPoPx abc", "", "", errNoBearer},
	}
	for _, tc := range tests {
		scheme, tok, err := accessToken(http.Header{"Authorization": {tc.header}})
		if scheme != tc.scheme || tok != tc.token || !errors.Is(err, tc.err) {
			t.Errorf("accessToken(%q) = %q, %q, %v; want %q, %q, %v", tc.header, scheme, tok, err, tc.scheme, tc.token, tc.err)
		}
	}
}

// The proof is checked before any policy: a bound token sent without its
// key learns nothing of what the route would require (403, step-up).
func TestDPoPProofBeforePolicy(t *testing.T) {
	key := newDPoPKey(t)
	be := newBackend(t, nil)
	rt := testRoute("admin", "/admin", be.URL)
	rt.RequiredScopes = []string{"admin:write"}
	rt.ACRValues = []string{"phr"}
	env := newEnv(t, []config.Route{rt}, nil)
	env.verifier.add(tokBound, func(c *exchange.Claims) { c.JKT = key.jkt })

	tests := []struct {
		name   string
		auth   string
		proof  bool
		status int
		reason string
	}{
		{name: "no proof", auth: "DPoP " + tokBound, status: http.StatusUnauthorized, reason: ReasonDPoPProof},
		{name: "as Bearer", auth: "Bearer " + tokBound, status: http.StatusUnauthorized, reason: ReasonDPoPRequired},
		{name: "with its proof, policy answers", auth: "DPoP " + tokBound, proof: true, status: http.StatusForbidden, reason: reasonPolicy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := env.do(t, http.MethodGet, "/admin/x", func(r *http.Request) {
				r.Header.Set("Authorization", tc.auth)
				if tc.proof {
					r.Header.Set("DPoP", key.proof(t, http.MethodGet, env.edge.URL+"/admin/x", tokBound, nil))
				}
			})
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusUnauthorized && strings.Contains(string(body), "admin:write") {
				t.Errorf("a refused proof revealed the policy: %s", body)
			}
			if n := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason)); n != 1 {
				t.Errorf("rejections{reason=%q} = %v, want 1", tc.reason, n)
			}
		})
	}
	if n := len(be.requests()); n != 0 {
		t.Errorf("%d requests forwarded", n)
	}
}
