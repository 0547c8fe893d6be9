package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

const (
	// jwksMaxBody bounds a JWKS or discovery response.
	jwksMaxBody = 1 << 20
	// jwksMaxKeys bounds the usable keys kept per issuer, so a token without
	// kid cannot make us try an unbounded number of signature checks.
	jwksMaxKeys = 64
	// jwksMinRSABits refuses weak RSA keys outright.
	jwksMinRSABits = 2048
)

// errJWKSRefreshLimited: a refresh was skipped because the issuer's keys were
// fetched (or tried) less than min_refresh_interval ago.
var errJWKSRefreshLimited = errors.New("jwks refresh skipped: the last attempt was less than min_refresh_interval ago")

// jwksSnapshot is an immutable set of an issuer's usable keys.
type jwksSnapshot struct {
	keys    []jose.JSONWebKey
	fetched time.Time
}

// jwksKeySet holds one issuer's public keys, like go-oidc's RemoteKeySet:
// readers use the current snapshot; an unknown kid triggers one shared,
// detached refresh; a failed refresh keeps the old keys. Unlike go-oidc it
// refuses to refresh more often than minInterval.
type jwksKeySet struct {
	issuer  string
	jwksURI string // "" means discover it from the issuer's metadata
	// allowInsecure permits a discovered plain-http jwks_uri off loopback.
	allowInsecure bool
	client        *http.Client
	timeout       time.Duration
	minInterval   time.Duration
	// maxAge is refresh_interval: older keys are fetched again in the
	// background (0 never, for tests that count fetches).
	maxAge  time.Duration
	now     func() time.Time
	log     *slog.Logger
	metrics *exchange.Metrics
	// onRemoved, when set, is told the kids a successful refresh no longer
	// finds (the issuer removed those keys). It runs inside the refresh, so
	// the callers waiting for the new keys see the removal applied.
	onRemoved func(kids []string)

	flight  singleflight.Group
	current atomic.Pointer[jwksSnapshot]
	// staleRefresh is set while a background refresh of stale keys runs.
	staleRefresh atomic.Bool
	// introspection is the metadata's introspection_endpoint (discovery only).
	introspection atomic.Pointer[string]

	mu          sync.Mutex
	attempted   bool
	inFlight    bool // a fetch is running; callers should join it
	lastAttempt time.Time
	lastErr     error
}

// keysLoaded reports whether the issuer has ever obtained usable keys.
func (s *jwksKeySet) keysLoaded() bool {
	snap := s.current.Load()
	return snap != nil && len(snap.keys) > 0
}

// lastError is the error of the latest failed refresh (nil after a success).
func (s *jwksKeySet) lastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// match returns the keys that may verify a token with this header: those
// with the token's kid (any key when it has none) whose type and alg fit.
// kidKnown reports a kid that exists but fits no key for alg.
func (s *jwksKeySet) match(h verifyHeader) (fit []*jose.JSONWebKey, kidKnown bool) {
	snap := s.current.Load()
	if snap == nil {
		return nil, false
	}
	for i := range snap.keys {
		k := &snap.keys[i]
		if h.HasKid && k.KeyID != h.Kid {
			continue
		}
		if jwksKeyFits(k, h.Alg) {
			fit = append(fit, k)
		} else if h.HasKid {
			kidKnown = true
		}
	}
	return fit, kidKnown && len(fit) == 0
}

// jwksKeyFits reports whether k may verify a signature made with alg: the
// JWK's own alg (when set) must be alg, and its type and curve must suit it.
func jwksKeyFits(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case string(jose.ES256):
			return pub.Curve == elliptic.P256()
		case string(jose.ES384):
			return pub.Curve == elliptic.P384()
		case string(jose.ES512):
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// refreshIfStale starts a background refresh when the keys are older than
// maxAge, so a key the issuer removed stops verifying without a restart.
// The caller goes on with the current keys: a slow or failing IdP never
// delays a request that the keys it has can serve.
func (s *jwksKeySet) refreshIfStale() {
	snap := s.current.Load()
	if s.maxAge <= 0 || snap == nil || s.now().Sub(snap.fetched) < s.maxAge {
		return
	}
	// A failing IdP leaves the keys stale: retry at most once per
	// min_refresh_interval, and from one goroutine at a time.
	if !s.refreshWorthwhile() || !s.staleRefresh.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.staleRefresh.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		_ = s.refresh(ctx, false) // logged and counted by refreshNow
	}()
}

// refreshWorthwhile reports whether a caller should enter the flight: a
// fetch is running (join it and wait for its keys) or one may start now.
func (s *jwksKeySet) refreshWorthwhile() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight || !s.attempted || s.now().Sub(s.lastAttempt) >= s.minInterval
}

// claimAttempt records the start of a fetch, or refuses it when one started
// less than minInterval ago (unless forced).
func (s *jwksKeySet) claimAttempt(force bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !force && s.attempted && now.Sub(s.lastAttempt) < s.minInterval {
		return false
	}
	s.attempted, s.inFlight, s.lastAttempt = true, true, now
	return true
}

// refresh fetches the keys in one flight shared by every caller. The fetch
// is detached from ctx (a client that gives up must not abort it for the
// others); ctx only bounds how long this caller waits.
func (s *jwksKeySet) refresh(ctx context.Context, force bool) error {
	if !force && !s.refreshWorthwhile() {
		return errJWKSRefreshLimited
	}
	ch := s.flight.DoChan("refresh", func() (any, error) {
		return nil, s.refreshNow(context.WithoutCancel(ctx), force)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return fmt.Errorf("wait for keys of issuer %q: %w", s.issuer, ctx.Err())
	}
}

// refreshNow runs inside the flight: it re-checks the interval (a caller may
// have passed the check just before the previous flight finished), fetches,
// and swaps in the new keys only on success. The new keys are stored before
// the flight ends, so a caller turned away by the interval right after it
// already sees them.
func (s *jwksKeySet) refreshNow(ctx context.Context, force bool) error {
	if !s.claimAttempt(force) {
		return errJWKSRefreshLimited
	}
	keys, err := s.fetch(ctx)
	var removed []string
	if err == nil {
		old := s.current.Swap(&jwksSnapshot{keys: keys, fetched: s.now()})
		removed = jwksRemovedKids(old, keys)
	}
	s.mu.Lock()
	s.lastErr, s.inFlight = err, false
	s.mu.Unlock()
	if err != nil {
		s.count("error")
		s.log.Warn("jwks refresh failed; keeping the last known keys",
			"issuer", s.issuer, "error", err)
		return err
	}
	s.count("ok")
	s.log.Debug("jwks refreshed", "issuer", s.issuer, "keys", len(keys))
	if len(removed) > 0 {
		s.log.Warn("jwks refresh removed keys: tokens signed with them are refused from now on",
			"event", "jwks_key_removed", "issuer", s.issuer, "kids", removed)
		if s.metrics != nil && s.metrics.JWKSKeysRemoved != nil {
			s.metrics.JWKSKeysRemoved.WithLabelValues(s.issuer).Add(float64(len(removed)))
		}
		if s.onRemoved != nil {
			s.onRemoved(removed)
		}
	}
	return nil
}

// jwksRemovedKids are the kids of old's keys that keys no longer holds
// (none on the first fetch). Keys without a kid cannot be named and are
// not reported: their tokens stop verifying at once, but tokens already
// memoized or exchanged live on until they expire.
func jwksRemovedKids(old *jwksSnapshot, keys []jose.JSONWebKey) []string {
	if old == nil {
		return nil
	}
	kept := make(map[string]bool, len(keys))
	for i := range keys {
		kept[keys[i].KeyID] = true
	}
	var removed []string
	for i := range old.keys {
		kid := old.keys[i].KeyID
		if kid != "" && !kept[kid] && !slices.Contains(removed, kid) {
			removed = append(removed, kid)
		}
	}
	return removed
}

func (s *jwksKeySet) count(result string) {
	if s.metrics != nil && s.metrics.JWKSRefreshes != nil {
		s.metrics.JWKSRefreshes.WithLabelValues(s.issuer, result).Inc()
	}
}

// fetch resolves the JWKS URI (by discovery when configured) and loads the keys.
func (s *jwksKeySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	uri := s.jwksURI
	if uri == "" {
		var err error
		if uri, err = s.discover(ctx); err != nil {
			return nil, err
		}
	}
	body, err := oauthclient.Get(ctx, s.client, uri, jwksMaxBody, s.timeout)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	keys, skipped, err := jwksParse(body)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks from %s: %w", uri, err)
	}
	if skipped > 0 {
		s.log.Debug("jwks keys skipped (not public signing keys, or beyond the limit)",
			"issuer", s.issuer, "skipped", skipped)
	}
	return keys, nil
}

// discover reads jwks_uri from the issuer's metadata (oauthclient:
// OpenID Connect discovery, else RFC 8414; the issuer must match exactly).
func (s *jwksKeySet) discover(ctx context.Context) (string, error) {
	meta, err := oauthclient.FetchMetadata(ctx, s.client, s.issuer, s.timeout)
	if err != nil {
		return "", fmt.Errorf("discover keys: %w", err)
	}
	s.storeIntrospectionEndpoint(meta.IntrospectionEndpoint)
	if err := oauthclient.CheckEndpointURL(meta.JWKSURI, s.allowInsecure); err != nil {
		return "", fmt.Errorf("discover keys: jwks_uri: %w", err)
	}
	return meta.JWKSURI, nil
}

// jwksParse keeps the usable public signing keys of a JWK Set. A set without
// any is an error, so a broken answer never replaces working keys.
func jwksParse(body []byte) (keys []jose.JSONWebKey, skipped int, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, fmt.Errorf("parse jwks: %w", err)
	}
	for _, raw := range doc.Keys {
		k, ok := jwksPublicSigningKey(raw)
		if !ok || len(keys) == jwksMaxKeys {
			skipped++
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("jwks holds no usable public signing key")
	}
	return keys, skipped, nil
}

// jwksPrivateMembers are JWK members that only private or symmetric keys carry.
var jwksPrivateMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// jwksPublicSigningKey parses one JWK and accepts it only as an asymmetric
// public key meant for signatures (use absent or "sig"; key_ops, when
// present, allowing "verify").
func jwksPublicSigningKey(raw json.RawMessage) (jose.JSONWebKey, bool) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return jose.JSONWebKey{}, false
	}
	for _, name := range jwksPrivateMembers {
		if _, ok := members[name]; ok {
			return jose.JSONWebKey{}, false
		}
	}
	if use, ok, err := verifyString(members, "use"); err != nil || ok && use != "sig" {
		return jose.JSONWebKey{}, false
	}
	if ops, ok, err := verifyStrings(members, "key_ops"); err != nil || ok && !slices.Contains(ops, "verify") {
		return jose.JSONWebKey{}, false
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil || !k.Valid() || !k.IsPublic() {
		return jose.JSONWebKey{}, false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < jwksMinRSABits {
			return jose.JSONWebKey{}, false
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return jose.JSONWebKey{}, false
	}
	return k, true
}
