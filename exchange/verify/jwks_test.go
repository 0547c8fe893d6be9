package verify

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

func vtPrefetch(t *testing.T, e *vtEnv) {
	t.Helper()
	if err := e.v.Prefetch(context.Background()); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
}

func vtVerifyOK(t *testing.T, e *vtEnv, raw string) {
	t.Helper()
	if _, err := e.v.Verify(context.Background(), raw, vtAudOrders); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, nil)
	vtPrefetch(t, e)
	k2 := oauthtest.NewSigningKey(t, "ES256", "k2")
	e.idp.SetKeys(e.key, k2)
	rotated := k2.Sign(t, nil, e.claims())

	// Within min_refresh_interval of the last fetch the new kid is unknown...
	_, err := e.v.Verify(context.Background(), rotated, vtAudOrders)
	vtWantReject(t, err, exchange.ReasonUnknownKey, rotated)
	if n := e.idp.JWKSFetches(); n != 1 {
		t.Fatalf("JWKS hits = %d, want 1 (refresh is rate-limited)", n)
	}
	// ...and after it, one refresh makes it known.
	e.clock.Advance(10 * time.Second)
	vtVerifyOK(t, e, e.token(t, nil)) // known kid: no refresh
	vtVerifyOK(t, e, k2.Sign(t, nil, e.claims()))
	if n := e.idp.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS hits = %d, want 2", n)
	}
	// The old key is withdrawn: once refreshed, its fresh tokens are unknown.
	e.idp.SetKeys(k2)
	e.clock.Advance(10 * time.Second)
	k3 := oauthtest.NewSigningKey(t, "ES256", "k3")
	_, err = e.v.Verify(context.Background(), k3.Sign(t, nil, e.claims()), vtAudOrders)
	vtWantReject(t, err, exchange.ReasonUnknownKey, "")
	old := e.token(t, func(c map[string]any) { c["jti"] = "after-withdrawal" })
	_, err = e.v.Verify(context.Background(), old, vtAudOrders)
	vtWantReject(t, err, exchange.ReasonUnknownKey, old)
	if ok := e.refreshes("ok"); ok != 3 {
		t.Errorf("ok refreshes = %v, want 3", ok)
	}
}

func TestJWKSIdPDownAfterStart(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, nil)
	vtPrefetch(t, e)
	e.idp.SetJWKSStatus(http.StatusInternalServerError)
	e.clock.Advance(10 * time.Second)

	vtVerifyOK(t, e, e.token(t, nil))
	if n := e.idp.JWKSFetches(); n != 1 {
		t.Fatalf("a known kid fetched the JWKS: hits = %d", n)
	}
	for i := range 3 {
		raw := oauthtest.NewSigningKey(t, "ES256", fmt.Sprint("new", i)).Sign(t, nil, e.claims())
		_, err := e.v.Verify(context.Background(), raw, vtAudOrders)
		vtWantReject(t, err, exchange.ReasonUnknownKey, raw)
	}
	if n := e.idp.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS hits = %d, want 2 (one attempt for three unknown kids)", n)
	}
	vtVerifyOK(t, e, e.token(t, func(c map[string]any) { c["jti"] = "still-good" }))
	parts, err := e.v.Ready(context.Background())
	if err != nil {
		t.Errorf("Ready with known keys and IdP down: %v", err)
	}
	// Not ready-blocking, but reported at once: the issuer is degraded.
	if perr := parts["issuer "+e.iss.Issuer]; perr == nil || !strings.Contains(perr.Error(), "jwks refresh failed") {
		t.Errorf("Ready parts = %v, want the issuer degraded by its failed refresh", parts)
	}
	// A good refresh clears it.
	e.idp.SetJWKSStatus(http.StatusOK)
	e.clock.Advance(time.Minute)
	if err := e.v.Prefetch(context.Background()); err != nil {
		t.Fatalf("Prefetch after recovery: %v", err)
	}
	if parts, _ := e.v.Ready(context.Background()); parts["issuer "+e.iss.Issuer] != nil {
		t.Errorf("after a good refresh the issuer is still degraded: %v", parts)
	}
	if got, want := e.refreshes("error"), 1.0; got != want {
		t.Errorf("error refreshes = %v, want %v", got, want)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "jwks refresh failed") || !strings.Contains(logs, e.iss.Issuer) {
		t.Errorf("fetch failure not logged with the issuer: %s", logs)
	}
}

func TestJWKSIdPDownFromStart(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, nil)
	e.idp.SetJWKSStatus(http.StatusInternalServerError)
	raw := e.token(t, nil)

	_, err := e.v.Verify(context.Background(), raw, vtAudOrders)
	if !errors.Is(err, exchange.ErrKeysUnavailable) || errors.Is(err, exchange.ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrKeysUnavailable and not ErrInvalidToken", err)
	}
	vtNoTokenIn(t, err.Error(), raw)
	_, err = e.v.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), e.iss.Issuer) {
		t.Fatalf("Ready = %v, want an error naming the issuer", err)
	}
	if err := e.v.Prefetch(context.Background()); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Prefetch = %v, want the fetch error", err)
	}
	if n := e.idp.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS hits = %d, want 2 (Verify, Prefetch; Ready was rate-limited)", n)
	}
	// The IdP recovers: Ready fetches once the interval has passed.
	e.idp.SetJWKSStatus(http.StatusOK)
	if _, err := e.v.Ready(context.Background()); err == nil {
		t.Fatal("Ready fetched within min_refresh_interval")
	}
	e.clock.Advance(10 * time.Second)
	if _, err := e.v.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
	vtVerifyOK(t, e, raw)
	if got := e.refreshes("error"); got != 2 {
		t.Errorf("error refreshes = %v, want 2", got)
	}
}

// TestJWKSReadyNamesEachIssuerWithoutKeys: an issuer whose IdP is down is
// named on its own; the verifier stays ready while any issuer can verify
// (contract section 6: one IdP's outage must not take every replica out),
// and is not ready, naming each issuer, when none can.
func TestJWKSReadyNamesEachIssuerWithoutKeys(t *testing.T) {
	t.Parallel()
	good := vtNewEnv(t, nil)
	bad := oauthtest.NewIdP(t)
	bad.SetJWKSStatus(http.StatusInternalServerError)
	down := []config.Issuer{
		{Issuer: "https://down-1.example", JWKSURI: bad.JWKSURL()},
		{Issuer: "https://down-2.example", JWKSURI: bad.JWKSURL()},
	}
	v, err := NewVerifier(append([]config.Issuer{good.iss}, down...),
		VerifierOptions{HTTPClient: good.idp.Client(), Clock: good.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	parts, err := v.Ready(context.Background())
	if err != nil {
		t.Fatalf("Ready with one usable issuer = %v, want nil", err)
	}
	for _, iss := range down {
		if perr := parts["issuer "+iss.Issuer]; perr == nil || !strings.Contains(perr.Error(), "no usable signing keys") {
			t.Errorf("part of %s = %v, want its missing keys named", iss.Issuer, perr)
		}
	}
	if perr, ok := parts["issuer "+good.iss.Issuer]; !ok || perr != nil {
		t.Errorf("healthy issuer's part = %v (present %v), want nil", perr, ok)
	}

	none, err := NewVerifier(down, VerifierOptions{HTTPClient: good.idp.Client(), Clock: good.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = none.Ready(context.Background())
	if err == nil {
		t.Fatal("Ready with no usable issuer = nil")
	}
	for _, iss := range down {
		if !strings.Contains(err.Error(), iss.Issuer) {
			t.Errorf("Ready error %q does not name %s", err, iss.Issuer)
		}
	}
}

func TestJWKSConcurrentUnknownKidOneFetch(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, nil)
	vtPrefetch(t, e)
	k2 := oauthtest.NewSigningKey(t, "ES256", "k2")
	e.idp.SetKeys(e.key, k2)
	release := e.idp.Hold() // hold the refresh until every caller has started
	e.clock.Advance(10 * time.Second)

	const n = 40
	toks := make([]string, n)
	for i := range toks {
		toks[i] = k2.Sign(t, nil, map[string]any{"iss": e.iss.Issuer, "aud": vtAudOrders,
			"exp": e.clock.Now().Unix() + 60, "jti": fmt.Sprint(i)})
	}
	var started, done sync.WaitGroup
	errs := make([]error, n)
	started.Add(n)
	for i := range n {
		done.Go(func() {
			started.Done()
			_, errs[i] = e.v.Verify(context.Background(), toks[i], vtAudOrders)
		})
	}
	started.Wait()
	<-e.idp.Held()
	release()
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	if got := e.idp.JWKSFetches(); got != 2 {
		t.Fatalf("JWKS hits = %d, want 2 (prefetch + one shared refresh)", got)
	}
}

func TestJWKSRefreshDetachedFromRequest(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, nil)
	vtPrefetch(t, e)
	k2 := oauthtest.NewSigningKey(t, "ES256", "k2")
	e.idp.SetKeys(e.key, k2)
	release := e.idp.Hold()
	e.clock.Advance(10 * time.Second)
	raw := k2.Sign(t, nil, e.claims())

	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := e.v.Verify(ctx, raw, vtAudOrders)
		res <- err
	}()
	<-e.idp.Held()
	cancel() // the client gives up; the refresh must carry on
	vtWantReject(t, <-res, exchange.ReasonUnknownKey, raw)
	release()
	vtVerifyOK(t, e, raw) // joins the still-running flight or sees its keys
	if got := e.idp.JWKSFetches(); got != 2 {
		t.Fatalf("JWKS hits = %d, want 2", got)
	}
}

func TestJWKSRandomKidsBounded(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, nil) // min_refresh_interval 10s
	vtPrefetch(t, e)
	for i := range 100 {
		raw := oauthtest.Key{Alg: "ES256", KID: fmt.Sprintf("rnd-%d", i), Signer: e.key.Signer}.Sign(t, nil, e.claims())
		_, err := e.v.Verify(context.Background(), raw, vtAudOrders)
		vtWantReject(t, err, exchange.ReasonUnknownKey, raw)
		e.clock.Advance(time.Second)
	}
	// Prefetch at t=0, then one refresh at t=10s, 20s, ..., 90s.
	if got := e.idp.JWKSFetches(); got != 10 {
		t.Fatalf("JWKS hits = %d over 100s, want 10", got)
	}
}

func TestJWKSDiscovery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		issPath   string // appended to the IdP URL
		metaPath  string
		metaIss   string // "" = the configured issuer
		metaJWKS  string // "" = the IdP's own JWKS
		wantErr   string // "" = verifies
		wantMetas int32
	}{
		{name: "OIDC", metaPath: "/.well-known/openid-configuration", wantMetas: 1},
		{name: "OIDC with path and trailing slash", issPath: "/tenant/", metaPath: "/tenant/.well-known/openid-configuration", wantMetas: 1},
		{name: "RFC 8414 fallback", issPath: "/tenant", metaPath: "/.well-known/oauth-authorization-server/tenant", wantMetas: 1},
		{name: "issuer mismatch", metaPath: "/.well-known/openid-configuration", metaIss: "https://evil.example", wantErr: "names issuer", wantMetas: 1},
		{name: "no metadata", metaPath: "/elsewhere", wantErr: "404", wantMetas: 0},
		{name: "jwks_uri downgraded to http", metaPath: "/.well-known/openid-configuration", metaJWKS: "http://keys.example.com/jwks", wantErr: "plain http", wantMetas: 1},
		{name: "jwks_uri relative", metaPath: "/.well-known/openid-configuration", metaJWKS: "/jwks.json", wantErr: "absolute", wantMetas: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := vtNewEnv(t, func(ic *config.Issuer) {
				ic.Issuer += tc.issPath
				ic.JWKSURI = ""
				ic.Discovery = true
			})
			e.idp.SetMetadata(tc.metaPath, func(string) (int, any) {
				return http.StatusOK, map[string]any{
					"issuer":   cmp.Or(tc.metaIss, e.iss.Issuer),
					"jwks_uri": cmp.Or(tc.metaJWKS, e.idp.JWKSURL()),
				}
			})
			raw := e.token(t, nil)
			_, err := e.v.Verify(context.Background(), raw, vtAudOrders)
			if got := e.idp.MetadataFetches(); got != tc.wantMetas {
				t.Errorf("metadata hits = %d, want %d", got, tc.wantMetas)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if e.idp.JWKSFetches() != 1 {
					t.Errorf("JWKS hits = %d, want 1", e.idp.JWKSFetches())
				}
				return
			}
			if !errors.Is(err, exchange.ErrKeysUnavailable) {
				t.Fatalf("Verify = %v, want ErrKeysUnavailable", err)
			}
			if e.idp.JWKSFetches() != 0 {
				t.Error("JWKS fetched despite failed discovery")
			}
			if _, rerr := e.v.Ready(context.Background()); rerr == nil || !strings.Contains(rerr.Error(), tc.wantErr) {
				t.Errorf("Ready = %v, want it to mention %q", rerr, tc.wantErr)
			}
		})
	}
}

func TestJWKSFetchFailuresKeepKeys(t *testing.T) {
	t.Parallel()
	privJWKS := func(t *testing.T) []byte {
		k := oauthtest.NewSigningKey(t, "ES256", "priv")
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: k.Signer, KeyID: "priv", Use: "sig"},
			{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct", Algorithm: "HS256"},
			{Key: k.Signer.Public(), KeyID: "enc", Use: "enc"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	huge := []byte(`{"keys":[],"pad":"` + strings.Repeat("a", 2<<20) + `"}`)
	tests := []struct {
		name  string
		setup func(*testing.T, *oauthtest.IdP)
		want  string
	}{
		{name: "status 500", setup: func(_ *testing.T, p *oauthtest.IdP) { p.SetJWKSStatus(http.StatusInternalServerError) }, want: "unexpected status 500"},
		{name: "garbage", setup: func(_ *testing.T, p *oauthtest.IdP) { p.SetJWKS([]byte("<html>not json")) }, want: "parse jwks"},
		{name: "huge", setup: func(_ *testing.T, p *oauthtest.IdP) { p.SetJWKS(huge) }, want: "larger than"},
		{name: "hanging", setup: func(_ *testing.T, p *oauthtest.IdP) { p.Hold() }, want: "deadline exceeded"},
		{name: "no keys member", setup: func(_ *testing.T, p *oauthtest.IdP) { p.SetJWKS([]byte(`{}`)) }, want: "no usable"},
		{name: "only private, symmetric and encryption keys", setup: func(t *testing.T, p *oauthtest.IdP) { p.SetJWKS(privJWKS(t)) }, want: "no usable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Only the hanging IdP needs a short timeout; reading a huge body
			// under -race on a loaded machine can take longer than 300ms.
			timeout := 5 * time.Second
			if tc.name == "hanging" {
				timeout = 300 * time.Millisecond
			}
			e := vtNewEnv(t, func(ic *config.Issuer) { ic.FetchTimeout = config.Duration(timeout) })
			vtPrefetch(t, e)
			tc.setup(t, e.idp)
			e.clock.Advance(10 * time.Second)
			err := e.v.Prefetch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prefetch = %v, want it to mention %q", err, tc.want)
			}
			vtVerifyOK(t, e, e.token(t, nil))
			if _, err := e.v.Ready(context.Background()); err != nil {
				t.Errorf("Ready after a failed refresh with known keys: %v", err)
			}
			if ok, bad := e.refreshes("ok"), e.refreshes("error"); ok != 1 || bad != 1 {
				t.Errorf("refreshes ok=%v error=%v, want 1 and 1", ok, bad)
			}
		})
	}
}

func TestJWKSParse(t *testing.T) {
	t.Parallel()
	ec := oauthtest.NewSigningKey(t, "ES256", "ec")
	ed := oauthtest.NewSigningKey(t, "EdDSA", "ed")
	rs := vtRSAKey(t, "RS256", "rs")
	weak := oauthtest.Keys(t).RSA1024
	jwk := func(k jose.JSONWebKey) json.RawMessage {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withMember := func(k jose.JSONWebKey, name string, v any) json.RawMessage {
		var m map[string]any
		if err := json.Unmarshal(jwk(k), &m); err != nil {
			t.Fatal(err)
		}
		m[name] = v
		b, _ := json.Marshal(m)
		return b
	}
	pub := func(k oauthtest.Key, kid string) jose.JSONWebKey {
		return jose.JSONWebKey{Key: k.Signer.Public(), KeyID: kid}
	}
	set := func(keys ...json.RawMessage) []byte {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	many := make([]json.RawMessage, 70)
	for i := range many {
		many[i] = jwk(pub(ec, fmt.Sprint(i)))
	}
	tests := []struct {
		name    string
		body    []byte
		kids    []string
		wantErr string
	}{
		{name: "usable kinds", body: set(jwk(pub(ec, "ec")), jwk(pub(ed, "ed")), jwk(pub(rs, "rs")),
			withMember(pub(ec, "sig"), "use", "sig"), withMember(pub(ec, "ops"), "key_ops", []string{"verify"})),
			kids: []string{"ec", "ed", "rs", "sig", "ops"}},
		{name: "unusable skipped", body: set(jwk(pub(ec, "ok")),
			jwk(jose.JSONWebKey{Key: ec.Signer, KeyID: "private"}),
			jwk(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct"}),
			withMember(pub(ec, "enc"), "use", "enc"),
			withMember(pub(ec, "use-num"), "use", 1),
			withMember(pub(ec, "ops-enc"), "key_ops", []string{"encrypt"}),
			withMember(pub(ec, "d-only"), "d", "AAAA"),
			jwk(jose.JSONWebKey{Key: &weak.PublicKey, KeyID: "weak-rsa"}),
			json.RawMessage(`{"kty":"XYZ","kid":"unknown"}`),
			json.RawMessage(`{"kty":"EC","kid":"broken","crv":"P-256","x":"AA","y":"AA"}`),
			json.RawMessage(`"not an object"`)),
			kids: []string{"ok"}},
		{name: "bounded", body: set(many...), kids: func() []string {
			var s []string
			for i := range jwksMaxKeys {
				s = append(s, fmt.Sprint(i))
			}
			return s
		}()},
		{name: "nothing usable", body: set(jwk(jose.JSONWebKey{Key: ec.Signer, KeyID: "private"})), wantErr: "no usable"},
		{name: "empty", body: []byte(`{"keys":[]}`), wantErr: "no usable"},
		{name: "keys not an array", body: []byte(`{"keys":"x"}`), wantErr: "parse jwks"},
		{name: "not JSON", body: []byte(`keys`), wantErr: "parse jwks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, _, err := jwksParse(tc.body)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kids []string
			for _, k := range keys {
				if !k.IsPublic() {
					t.Errorf("kept a non-public key %q", k.KeyID)
				}
				kids = append(kids, k.KeyID)
			}
			if !slices.Equal(kids, tc.kids) {
				t.Errorf("kids = %q, want %q", kids, tc.kids)
			}
		})
	}
}

func TestJWKSKeyFits(t *testing.T) {
	t.Parallel()
	keys := map[string]oauthtest.Key{
		"ES256": oauthtest.NewSigningKey(t, "ES256", "a"), "ES384": oauthtest.NewSigningKey(t, "ES384", "b"),
		"ES512": oauthtest.NewSigningKey(t, "ES512", "c"), "RSA": vtRSAKey(t, "RS256", "d"),
		"EdDSA": oauthtest.NewSigningKey(t, "EdDSA", "e"),
	}
	fits := map[string][]string{
		"ES256": {"ES256"}, "ES384": {"ES384"}, "ES512": {"ES512"},
		"RSA":   {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
		"EdDSA": {"EdDSA"},
	}
	for name, k := range keys {
		for _, alg := range verifyAsymmetricAlgs() {
			jwk := jose.JSONWebKey{Key: k.Signer.Public()}
			want := slices.Contains(fits[name], string(alg))
			if got := jwksKeyFits(&jwk, string(alg)); got != want {
				t.Errorf("%s key with %s: fits = %v, want %v", name, alg, got, want)
			}
		}
		withAlg := jose.JSONWebKey{Key: k.Signer.Public(), Algorithm: "PS512"}
		if got := jwksKeyFits(&withAlg, fits[name][0]); got && fits[name][0] != "PS512" {
			t.Errorf("%s key with JWK alg PS512 fits %s", name, fits[name][0])
		}
	}
}

// vtEventually waits until cond holds (a background refresh finished),
// failing after a generous bound.
func vtEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestJWKSStaleKeysRefreshedInBackground(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, func(ic *config.Issuer) { ic.RefreshInterval = config.Duration(time.Hour) })
	vtPrefetch(t, e)
	// The IdP withdraws k1 (compromised, say): no token names an unknown
	// kid, so only the age of the keys can bring the change in.
	k2 := oauthtest.NewSigningKey(t, "ES256", "k2")
	e.idp.SetKeys(k2)

	e.clock.Advance(59 * time.Minute)
	vtVerifyOK(t, e, e.token(t, func(c map[string]any) { c["jti"] = "young-keys" }))
	if n := e.idp.JWKSFetches(); n != 1 {
		t.Fatalf("keys younger than refresh_interval were fetched: hits = %d", n)
	}

	// Stale keys still serve this request; a background refresh starts.
	e.clock.Advance(time.Minute)
	vtVerifyOK(t, e, e.token(t, func(c map[string]any) { c["jti"] = "stale-keys" }))
	vtEventually(t, "the background refresh", func() bool { return e.refreshes("ok") == 2 })
	if n := e.idp.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS hits = %d, want 2", n)
	}
	withdrawn := e.token(t, func(c map[string]any) { c["jti"] = "after-withdrawal" })
	_, err := e.v.Verify(context.Background(), withdrawn, vtAudOrders)
	vtWantReject(t, err, exchange.ReasonUnknownKey, withdrawn)
	vtVerifyOK(t, e, k2.Sign(t, nil, e.claims()))
}

func TestJWKSStaleRefreshFailingIdPRetriesAtMostPerInterval(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, func(ic *config.Issuer) { ic.RefreshInterval = config.Duration(time.Hour) })
	vtPrefetch(t, e)
	e.idp.SetJWKSStatus(http.StatusInternalServerError)
	e.clock.Advance(time.Hour)

	// Many requests on stale keys: one background attempt, and the keys
	// in hand keep serving.
	for i := range 20 {
		vtVerifyOK(t, e, e.token(t, func(c map[string]any) { c["jti"] = fmt.Sprint("req-", i) }))
	}
	// Idle too: the next stale request may only start a refresh once the
	// first one has let go.
	idle := func() bool { return !e.v.order[0].keys.staleRefresh.Load() }
	vtEventually(t, "the failed background refresh", func() bool { return e.refreshes("error") == 1 && idle() })
	for i := range 20 {
		vtVerifyOK(t, e, e.token(t, func(c map[string]any) { c["jti"] = fmt.Sprint("more-", i) }))
	}
	if n := e.idp.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS hits = %d, want 2 (the prefetch and one retry within min_refresh_interval)", n)
	}
	// After min_refresh_interval the stale keys are tried again.
	e.clock.Advance(10 * time.Second)
	vtVerifyOK(t, e, e.token(t, func(c map[string]any) { c["jti"] = "later" }))
	vtEventually(t, "the second attempt", func() bool { return e.refreshes("error") == 2 })
}
