package verify

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/keys"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

// Introspection defaults for zero-valued settings: config's, which config.Load applies.
const (
	introspectDefaultTimeout  = config.DefaultIntrospectionTimeout
	introspectDefaultEntries  = config.DefaultIntrospectionCacheMaxEntries
	introspectDefaultMaxTTL   = config.DefaultIntrospectionMaxCacheTTL
	introspectDefaultNegative = config.DefaultIntrospectionNegativeCacheTTL
)

// introspector sends opaque umbrella tokens to one issuer's RFC 7662
// endpoint (the phantom token pattern) and caches what it learns, keyed by
// the token's SHA-256, never by the token.
type introspector struct {
	iss           *verifyIssuer
	endpoint      string // "" means the issuer's metadata names it
	allowInsecure bool
	clientID      string
	oauth         *oauthclient.Client
	jwtResponse   bool
	timeout       time.Duration
	maxTTL        time.Duration
	negativeTTL   time.Duration
	now           func() time.Time
	log           *slog.Logger
	metrics       *exchange.IntrospectionMetrics
	// verifySignature checks a signed (RFC 9701) response with the
	// issuer's keys, as the verifier checks the issuer's tokens.
	verifySignature func(ctx context.Context, h verifyHeader, raw string) error

	cache  *expirable.LRU[[32]byte, *introspectEntry]
	flight singleflight.Group
}

// introspectEntry is one cached introspection: an active token, or the
// rejection of an inactive one.
type introspectEntry struct {
	token  *exchange.Token // nil for a negative entry
	reject error           // the *RejectError of a negative entry
	// until: the entry is not served at or after it.
	until time.Time
	// notAfter is exp + leeway; notBefore the later of nbf and iat, minus leeway.
	notAfter, notBefore time.Time
}

// newIntrospector builds the introspector of issuer ic (which has an
// introspection block).
func newIntrospector(ic config.Issuer, iss *verifyIssuer, client *http.Client, log *slog.Logger, m *exchange.Metrics, now func() time.Time) (*introspector, error) {
	in := ic.Introspection
	if ic.IntrospectionEndpoint == "" && !ic.Discovery {
		return nil, errors.New("introspection needs introspection_endpoint or discovery: true")
	}
	if ic.IntrospectionEndpoint != "" {
		if err := oauthclient.CheckEndpointURL(ic.IntrospectionEndpoint, ic.AllowInsecureHTTP); err != nil {
			return nil, fmt.Errorf("introspection_endpoint: %w", err)
		}
	}
	if in.JWTResponse && iss.keys == nil {
		return nil, errors.New("introspection.jwt_response needs the issuer's keys: set jwks_uri or discovery: true")
	}
	auth, err := keys.NewClientAuth("introspection", in.AuthMethod, in.ClientID, in.ClientSecret, in.PrivateKey, "", rand.Reader)
	if err != nil {
		return nil, err
	}
	it := &introspector{
		iss:           iss,
		endpoint:      ic.IntrospectionEndpoint,
		allowInsecure: ic.AllowInsecureHTTP,
		clientID:      in.ClientID,
		// oauthclient never follows a redirect: it would carry the token
		// somewhere else.
		oauth: oauthclient.NewClient(oauthclient.ClientOptions{
			HTTP: client, Auth: auth, Server: "introspection endpoint", MaxBody: introspectMaxBody, Clock: now,
		}),
		jwtResponse: in.JWTResponse,
		timeout:     positiveOr(in.Timeout.D(), introspectDefaultTimeout),
		maxTTL:      positiveOr(in.MaxCacheTTL.D(), introspectDefaultMaxTTL),
		negativeTTL: max(in.NegativeCacheTTL.D(), 0),
		now:         now,
		log:         log,
	}
	if m != nil {
		it.metrics = m.Introspection
	}
	entries := in.CacheMaxEntries
	if entries <= 0 {
		entries = introspectDefaultEntries
	}
	// The LRU's own TTL only evicts; every entry also carries its own
	// deadline, checked against the injected clock.
	it.cache = expirable.NewLRU[[32]byte, *introspectEntry](entries, nil, max(it.maxTTL, it.negativeTTL))
	return it, nil
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// verify answers an opaque token from the cache or the endpoint, then
// checks what changes with time and route.
func (it *introspector) verify(ctx context.Context, raw string, hash [32]byte, audience string) (*exchange.Token, error) {
	if e, ok := it.cached(hash, it.now()); ok {
		it.countHit(e)
		return it.check(e, it.now(), audience)
	}
	ch := it.flight.DoChan(string(hash[:]), func() (any, error) {
		// A caller that missed the cache just before the previous flight
		// stored its answer must not call the endpoint again.
		if e, ok := it.cached(hash, it.now()); ok {
			return e, nil
		}
		// Detached: one client giving up must not fail the others waiting
		// on the same call; the timeout still bounds it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), it.timeout)
		defer cancel()
		return it.call(cctx, raw, hash)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return it.check(r.Val.(*introspectEntry), it.now(), audience)
	case <-ctx.Done():
		return nil, fmt.Errorf("introspect token: %w: %w", exchange.ErrIntrospectionUnavailable, ctx.Err())
	}
}

// cached returns an entry that may still be served at now.
func (it *introspector) cached(hash [32]byte, now time.Time) (*introspectEntry, bool) {
	e, ok := it.cache.Get(hash)
	if !ok {
		return nil, false
	}
	if !now.Before(e.until) {
		it.cache.Remove(hash)
		return nil, false
	}
	return e, true
}

// check applies an entry to one request: time and audience, as the
// verifier's memo does for JWTs.
func (it *introspector) check(e *introspectEntry, now time.Time, audience string) (*exchange.Token, error) {
	switch {
	case e.reject != nil:
		return nil, e.reject
	case !now.Before(e.notAfter):
		return nil, exchange.Reject(exchange.ReasonExpired, "token expired", nil)
	case now.Before(e.notBefore):
		return nil, exchange.Reject(exchange.ReasonNotYetValid, "token not yet valid", nil)
	case !verifyAudienceOK(e.token.Claims.Audience, audience, e.token.UmbrellaAudience):
		return nil, verifyAudienceReject(audience)
	}
	return e.token, nil
}

func (it *introspector) countHit(e *introspectEntry) {
	if it.metrics == nil {
		return
	}
	result := exchange.IntrospectionActive
	if e.token == nil {
		result = exchange.IntrospectionInactive
	}
	it.metrics.CacheHits.WithLabelValues(result).Inc()
}

// call asks the endpoint about one token and caches a definite answer.
// Outages are returned as errors wrapping ErrIntrospectionUnavailable and
// never cached.
func (it *introspector) call(ctx context.Context, raw string, hash [32]byte) (*introspectEntry, error) {
	start := time.Now()
	e, err := it.ask(ctx, raw, hash)
	result := exchange.IntrospectionActive
	switch {
	case err != nil:
		result = exchange.IntrospectionError
		it.log.Warn("token introspection failed", "issuer", it.iss.name, "error", err)
		err = fmt.Errorf("introspect token at issuer %q: %w: %w", it.iss.name, exchange.ErrIntrospectionUnavailable, err)
	case e.token == nil:
		result = exchange.IntrospectionInactive
		if it.negativeTTL > 0 {
			e.until = it.now().Add(it.negativeTTL)
			it.cache.Add(hash, e)
		}
	default:
		it.cache.Add(hash, e)
	}
	if it.metrics != nil {
		it.metrics.Calls.WithLabelValues(result).Inc()
		it.metrics.Duration.Observe(time.Since(start).Seconds())
	}
	return e, err
}

// endpointURL is the configured endpoint, or the one the issuer's
// metadata names (read with the issuer's keys; fetched once more here if
// it is not known yet).
func (it *introspector) endpointURL(ctx context.Context) (string, error) {
	if it.endpoint != "" {
		return it.endpoint, nil
	}
	if ep := it.iss.keys.introspectionEndpoint(); ep != "" {
		return ep, nil
	}
	_ = it.iss.keys.refresh(ctx, false)
	if ep := it.iss.keys.introspectionEndpoint(); ep != "" {
		return ep, nil
	}
	if err := it.iss.keys.lastError(); err != nil {
		return "", fmt.Errorf("the issuer's metadata could not be read: %w", err)
	}
	return "", errors.New("the issuer's metadata names no introspection_endpoint: set issuers[].introspection_endpoint")
}

// ready reports whether the endpoint is known.
func (it *introspector) ready(ctx context.Context) error {
	if _, err := it.endpointURL(ctx); err != nil {
		return fmt.Errorf("issuer %q: introspection endpoint: %w", it.iss.name, err)
	}
	return nil
}

// storeIntrospectionEndpoint keeps a discovered introspection_endpoint that
// tokengate may send tokens to (https, or http on loopback or where allowed).
func (s *jwksKeySet) storeIntrospectionEndpoint(ep string) {
	if ep == "" {
		return
	}
	if err := oauthclient.CheckEndpointURL(ep, s.allowInsecure); err != nil {
		s.log.Warn("ignoring the metadata's introspection_endpoint", "issuer", s.issuer, "error", err)
		return
	}
	s.introspection.Store(&ep)
}

// introspectionEndpoint is the discovered introspection_endpoint, "" when unknown.
func (s *jwksKeySet) introspectionEndpoint() string {
	if p := s.introspection.Load(); p != nil {
		return *p
	}
	return ""
}
