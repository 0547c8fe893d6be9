package oauthtest

import (
	"crypto"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// IdP is a fake identity provider over real HTTP: a JWKS at /jwks.json and
// OpenID Connect metadata naming it (SetMetadata moves or rewrites it), with
// signing keys that can be rotated and removed while a test runs, a JWKS
// that can fail (SetDown, SetJWKSStatus, SetJWKS) or be held (slow), and
// Mint to sign tokens with any claims and headers.
type IdP struct {
	metadata
	srv     *httptest.Server
	fetches atomic.Int32
	held    chan struct{} // a signal for each JWKS request Hold holds

	mu            sync.Mutex
	keys          []Key         // the first signs
	body          []byte        // non-nil: served instead of the keys
	status        int           // 0 or 200: serve; else answer this error
	hold          chan struct{} // non-nil: JWKS answers wait for it to close
	introspection string
}

// NewIdP starts an IdP with one ES256 key, "idp-key-1".
func NewIdP(t testing.TB) *IdP {
	t.Helper()
	idp := &IdP{held: make(chan struct{}, 64)}
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

// Client is an HTTP client for the IdP.
func (i *IdP) Client() *http.Client { return i.srv.Client() }

func (i *IdP) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/jwks.json" {
		i.serveJWKS(w, r)
		return
	}
	if !i.metadata.serve(w, r, i.srv.URL, i.defaultMetadata) {
		http.NotFound(w, r)
	}
}

func (i *IdP) defaultMetadata() any {
	i.mu.Lock()
	defer i.mu.Unlock()
	meta := map[string]any{"issuer": i.srv.URL, "jwks_uri": i.JWKSURL()}
	if i.introspection != "" {
		meta["introspection_endpoint"] = i.introspection
	}
	return meta
}

func (i *IdP) serveJWKS(w http.ResponseWriter, r *http.Request) {
	i.fetches.Add(1)
	i.mu.Lock()
	hold := i.hold
	i.mu.Unlock()
	if hold != nil {
		select {
		case i.held <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	i.mu.Lock()
	status, body := i.status, i.body
	i.mu.Unlock()
	if status != 0 && status != http.StatusOK {
		http.Error(w, "oauthtest: the JWKS is failing", status)
		return
	}
	if body == nil {
		var err error
		if body, err = i.jwks(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// AddKey puts a new alg key first (it signs from now on); older keys stay
// published until RemoveKey.
func (i *IdP) AddKey(t testing.TB, alg, kid string) {
	t.Helper()
	k := NewSigningKey(t, alg, kid)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append([]Key{k}, i.keys...)
}

// PublishKey publishes a new alg key after the signing keys (Mint keeps
// signing with the current one) and returns it, for tests that sign by hand.
func (i *IdP) PublishKey(t testing.TB, alg, kid string) crypto.Signer {
	t.Helper()
	k := NewSigningKey(t, alg, kid)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append(i.keys, k)
	return k.Signer
}

// SetKeys publishes exactly keys from now on (the first signs Mint's
// tokens): a rotation, a withdrawal, or keys the test signs with itself.
func (i *IdP) SetKeys(keys ...Key) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = slices.Clone(keys)
}

// PrivateKey is the key kid, nil when the IdP has none.
func (i *IdP) PrivateKey(kid string) crypto.Signer {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range i.keys {
		if k.KID == kid {
			return k.Signer
		}
	}
	return nil
}

// JWKS is the public JWK Set of the IdP's keys.
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
	keys := slices.Clone(i.keys)
	i.mu.Unlock()
	return jwkSet(keys)
}

// RemoveKey stops publishing (and signing with) the key kid.
func (i *IdP) RemoveKey(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = slices.DeleteFunc(i.keys, func(k Key) bool { return k.KID == kid })
}

// SetJWKS makes the JWKS answer body as it is (not JSON, too large, a set
// of unusable keys); nil serves the keys again.
func (i *IdP) SetJWKS(body []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.body = body
}

// SetJWKSStatus makes the JWKS answer status with an error page; 0 or 200
// serves it again.
func (i *IdP) SetJWKSStatus(status int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.status = status
}

// SetDown makes the JWKS answer 503 (down) or serve the keys again.
func (i *IdP) SetDown(down bool) {
	status := 0
	if down {
		status = http.StatusServiceUnavailable
	}
	i.SetJWKSStatus(status)
}

// Hold makes JWKS answers wait (a slow IdP, or one that hangs) until the
// returned release is called; the test's end releases them too. Held
// tells when a request is waiting.
func (i *IdP) Hold() (release func()) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.hold == nil {
		i.hold = make(chan struct{})
	}
	return i.release
}

// Held receives once for each JWKS request that Hold makes wait (up to 64
// not yet received).
func (i *IdP) Held() <-chan struct{} { return i.held }

func (i *IdP) release() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.hold != nil {
		close(i.hold)
		i.hold = nil
	}
}

// SetIntrospectionEndpoint makes the default metadata name an
// introspection endpoint.
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
	h := map[string]any{"typ": "JWT"}
	maps.Copy(h, headers)
	now := time.Now()
	c := map[string]any{"iss": i.URL(), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	maps.Copy(c, claims)
	return key.Sign(t, h, c)
}
