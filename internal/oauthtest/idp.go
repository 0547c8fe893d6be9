package oauthtest

import (
	"crypto"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// IdP is a fake identity provider over real HTTP: a JWKS at /jwks.json and
// OpenID Connect metadata naming it, with signing keys that can be rotated
// and removed while a test runs, a JWKS that can be taken down (503) or
// held (slow), and Mint to sign tokens with any claims and headers.
type IdP struct {
	srv     *httptest.Server
	fetches atomic.Int32
	down    atomic.Bool

	mu            sync.Mutex
	keys          []jose.JSONWebKey // the first signs
	hold          chan struct{}     // non-nil: JWKS answers wait for it to close
	introspection string
}

// NewIdP starts an IdP with one ES256 key, "idp-key-1".
func NewIdP(t testing.TB) *IdP {
	t.Helper()
	idp := &IdP{}
	idp.AddKey(t, "ES256", "idp-key-1")
	idp.srv = httptest.NewServer(http.HandlerFunc(idp.serve))
	t.Cleanup(func() {
		idp.release()
		idp.srv.Close()
	})
	return idp
}

// URL is the IdP's base URL, which is also its issuer.
func (i *IdP) URL() string { return i.srv.URL }

// JWKSURL is the JWKS endpoint.
func (i *IdP) JWKSURL() string { return i.srv.URL + "/jwks.json" }

func (i *IdP) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		i.mu.Lock()
		meta := map[string]any{"issuer": i.srv.URL, "jwks_uri": i.JWKSURL()}
		if i.introspection != "" {
			meta["introspection_endpoint"] = i.introspection
		}
		i.mu.Unlock()
		JSON(w, http.StatusOK, meta)
	case "/jwks.json":
		i.serveJWKS(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (i *IdP) serveJWKS(w http.ResponseWriter, r *http.Request) {
	i.fetches.Add(1)
	i.mu.Lock()
	hold := i.hold
	i.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if i.down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	b, err := i.jwks()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// AddKey puts a new alg key first (it signs from now on); older keys stay
// published until RemoveKey.
func (i *IdP) AddKey(t testing.TB, alg, kid string) {
	t.Helper()
	k := jose.JSONWebKey{Key: NewKey(t, alg), KeyID: kid, Algorithm: alg, Use: "sig"}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append([]jose.JSONWebKey{k}, i.keys...)
}

// PublishKey publishes a new alg key after the signing keys (Mint keeps
// signing with the current one) and returns it, for tests that sign by hand.
func (i *IdP) PublishKey(t testing.TB, alg, kid string) crypto.Signer {
	t.Helper()
	k := NewKey(t, alg)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append(i.keys, jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: alg, Use: "sig"})
	return k
}

// PublishJWK publishes a key the test holds (its public part) after the
// signing keys, for responses the test signs itself.
func (i *IdP) PublishJWK(k jose.JSONWebKey) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append(i.keys, k)
}

// PrivateKey is the key kid, nil when the IdP has none.
func (i *IdP) PrivateKey(kid string) crypto.Signer {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range i.keys {
		if k.KeyID == kid {
			s, _ := k.Key.(crypto.Signer)
			return s
		}
	}
	return nil
}

// JWKS is the public JWK Set the IdP serves.
func (i *IdP) JWKS(t testing.TB) []byte {
	t.Helper()
	b, err := i.jwks()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (i *IdP) jwks() ([]byte, error) {
	i.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, k.Public())
	}
	i.mu.Unlock()
	return json.Marshal(set)
}

// RemoveKey stops publishing (and signing with) the key kid.
func (i *IdP) RemoveKey(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = slices.DeleteFunc(i.keys, func(k jose.JSONWebKey) bool { return k.KeyID == kid })
}

// SetDown makes the JWKS answer 503 (down) or serve the keys again.
func (i *IdP) SetDown(down bool) { i.down.Store(down) }

// Hold makes JWKS answers wait (a slow IdP) until the returned release is
// called; the test's end releases them too.
func (i *IdP) Hold() (release func()) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.hold == nil {
		i.hold = make(chan struct{})
	}
	return i.release
}

func (i *IdP) release() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.hold != nil {
		close(i.hold)
		i.hold = nil
	}
}

// SetIntrospectionEndpoint makes the metadata name an introspection endpoint.
func (i *IdP) SetIntrospectionEndpoint(u string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.introspection = u
}

// JWKSFetches counts the JWKS requests so far.
func (i *IdP) JWKSFetches() int32 { return i.fetches.Load() }

// Mint signs claims with the current key (typ JWT); iss, iat and exp
// default to the IdP, now and an hour from now.
func (i *IdP) Mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	return i.MintWith(t, nil, claims)
}

// MintWith is Mint with extra protected headers (typ, cnf hints, ...).
func (i *IdP) MintWith(t testing.TB, headers map[string]any, claims map[string]any) string {
	t.Helper()
	i.mu.Lock()
	if len(i.keys) == 0 {
		i.mu.Unlock()
		t.Fatal("oauthtest: the IdP has no key to sign with")
	}
	key := i.keys[0]
	i.mu.Unlock()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for k, v := range headers {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := map[string]any{"iss": i.URL(), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
