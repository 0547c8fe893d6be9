package exchange

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
)

// Upstream is the exchanger being cached: sign.Local or sts.Remote.
type Upstream interface {
	Exchange(ctx context.Context, req Request) (*Result, error)
	// Fingerprint changes whenever the tokens it mints would change (active
	// signing key, STS settings). It is part of every cache key, so a change
	// makes every older entry unreachable. It is called on every request and
	// must be cheap (return a precomputed string).
	Fingerprint() string
}

// CachingOptions configure NewCaching.
type CachingOptions struct {
	// Cache stores exchanged tokens (cache.Memory, cache.Redis or
	// cache.Tiered). Required.
	Cache cache.Store
	// RefreshBefore: an entry is never served once now >= ExpiresAt-RefreshBefore
	// (unless Capped). In the window of the same length before that, a hit
	// also starts one background refresh.
	RefreshBefore time.Duration
	// KeySecret is the HMAC key of cache keys (at least 16 bytes). Nil means
	// 32 random bytes for this process; replicas sharing a cache tier must
	// share it.
	KeySecret []byte
	// ExchangeTimeout bounds one upstream exchange; 0 means 10s.
	ExchangeTimeout time.Duration
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Logger reports background refresh failures; nil discards.
	Logger *slog.Logger
	// Denylist, when set, refuses revoked umbrella tokens (Exchange returns
	// a *RejectError with ReasonRevoked) and receives Revoke's revocations.
	Denylist Denylist
	// RevocationTTL is how long a subject or session revocation refuses the
	// tokens issued before it; 0 means 24h.
	RevocationTTL time.Duration
	// Revocations, when set, counts Revoke calls by (by, source="admin").
	Revocations *prometheus.CounterVec
	// OnRevoked, when set, sees each revocation this exchanger applies
	// (admin, key removal, reload), after the denylist has it.
	OnRevoked func(cache.Revocation)
	// OnJoin, when set, runs after a caller joined (or started) the
	// exchange for its key, before it waits: tests of an upstream use it
	// to have every caller in flight before the upstream answers.
	OnJoin func()
	// OpaqueTokens: an issuer introspects opaque tokens, so Revoke accepts
	// a token value that is not a JWT (keyed on its raw value). Without it
	// such a value is a *BadRevocationError: it could never be presented.
	OpaqueTokens bool
}

const (
	defaultExchangeTimeout = config.DefaultExchangeTimeout
	minKeySecret           = 16
	// cacheKeyDomain separates these MACs from any other use of KeySecret and
	// versions the encoding: changing the encoding must change it.
	cacheKeyDomain = "tokengate/exchange-cache-key/v1"
	// cacheKeyMaxPooledBuf keeps one odd request with huge scopes from
	// pinning a large buffer in the pool.
	cacheKeyMaxPooledBuf = 4 << 10
)

// Caching is an exchanger that reuses exchanged tokens, in the manner of
// x/oauth2's ReuseTokenSource: a decorator over an Upstream with one cache
// entry per (umbrella token, audience, scopes, upstream fingerprint).
//
// A cached token is served while now < ExpiresAt-RefreshBefore; a hit in the
// RefreshBefore-long window before that also starts one background refresh,
// so busy keys rarely wait for an exchange. A miss runs one upstream exchange
// per key at a time, shared by every concurrent caller.
//
// Every call returns a new *Result that shares no mutable state with other
// callers or with the cache: callers may modify it.
type Caching struct {
	up            Upstream
	cache         cache.Store
	refreshBefore time.Duration
	timeout       time.Duration
	now           func() time.Time
	log           *slog.Logger

	keys   sync.Pool // of *cacheKeyer
	flight singleflight.Group

	deny      Denylist
	revokeKey []byte // HMAC key of revocation hashes, derived from KeySecret
	// revocationMACs pools HMACs keyed with revokeKey (*revocationMAC).
	revocationMACs sync.Pool
	revocationTTL  time.Duration
	revocations    *prometheus.CounterVec
	opaqueTokens   bool
	onRevoked      func(cache.Revocation)

	refreshMu  sync.Mutex
	refreshing map[string]struct{} // keys with a background refresh under way

	// testHookJoined, when set, runs after a caller joined (or started) the
	// exchange for its key, before it waits: tests use it to have every
	// caller in flight before the upstream answers.
	testHookJoined func()
}

// NewCaching returns a caching exchanger over up.
func NewCaching(up Upstream, opts CachingOptions) (*Caching, error) {
	if up == nil {
		return nil, errors.New("new caching exchanger: no upstream exchanger")
	}
	if opts.Cache == nil {
		return nil, errors.New("new caching exchanger: no cache")
	}
	if opts.RefreshBefore < 0 {
		return nil, fmt.Errorf("new caching exchanger: refresh before must not be negative, got %s", opts.RefreshBefore)
	}
	if opts.RevocationTTL < 0 {
		return nil, fmt.Errorf("new caching exchanger: revocation ttl must not be negative, got %s", opts.RevocationTTL)
	}
	if opts.ExchangeTimeout < 0 {
		return nil, fmt.Errorf("new caching exchanger: exchange timeout must not be negative, got %s", opts.ExchangeTimeout)
	}
	secret := opts.KeySecret
	switch {
	case len(secret) == 0:
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("new caching exchanger: cache key secret: %w", err)
		}
	case len(secret) < minKeySecret:
		return nil, fmt.Errorf("new caching exchanger: cache key secret is %d bytes, need at least %d", len(secret), minKeySecret)
	default:
		secret = append([]byte(nil), secret...) // the caller may reuse its slice
	}
	c := &Caching{
		up:            up,
		cache:         opts.Cache,
		refreshBefore: opts.RefreshBefore,
		timeout:       opts.ExchangeTimeout,
		now:           opts.Clock,
		log:           opts.Logger,
		refreshing:    map[string]struct{}{},
		deny:          opts.Denylist,
		revocationTTL: opts.RevocationTTL,
		revocations:   opts.Revocations,
		opaqueTokens:  opts.OpaqueTokens,
		onRevoked:     opts.OnRevoked,

		testHookJoined: opts.OnJoin,
	}
	if c.revocationTTL == 0 {
		c.revocationTTL = defaultRevocationTTL
	}
	rk := hmac.New(sha256.New, secret)
	rk.Write([]byte(revocationHashDomain))
	c.revokeKey = rk.Sum(nil)
	if c.timeout == 0 {
		c.timeout = defaultExchangeTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.keys.New = func() any { return &cacheKeyer{mac: hmac.New(sha256.New, secret)} }
	return c, nil
}

// Fingerprint is the upstream's fingerprint: caching does not change the
// tokens minted, so a Caching can itself be wrapped or compared like its upstream.
func (c *Caching) Fingerprint() string { return c.up.Fingerprint() }

// Exchange returns a token for req: the cached one while it is fresh, else
// the result of one upstream exchange shared by every concurrent caller with
// the same key. Upstream errors are returned wrapped and never cached. If ctx
// ends while waiting, Exchange returns ctx's error but the exchange goes on
// for the other callers and the cache.
func (c *Caching) Exchange(ctx context.Context, req Request) (*Result, error) {
	if req.Subject == nil {
		return nil, fmt.Errorf("caching exchange: %w: no subject token", ErrInvalidToken)
	}
	if c.revoked(req.Subject) {
		return nil, fmt.Errorf("caching exchange: %w", errRevoked)
	}
	key := c.cacheKey(req)
	now := c.now()
	if e, ok := c.cache.Find(ctx, key, cache.LookupLocal); ok {
		switch c.cachingState(e, now) {
		case cachingFresh:
			return cachingResult(e, true), nil
		case cachingRefresh:
			c.cachingRefreshAsync(ctx, key, req)
			return cachingResult(e, true), nil
		}
	}

	return c.exchangeShared(ctx, key, req)
}

// exchangeShared is Exchange's miss: join (or start) the key's one flight.
// It is a function of its own so that the hit path above keeps a small
// stack frame (the flight's select and closures need a large one, and a
// gRPC stream's fresh goroutine would grow its stack on every call).
func (c *Caching) exchangeShared(ctx context.Context, key string, req Request) (*Result, error) {
	ch := c.flight.DoChan(key, c.cachingFetch(ctx, key, req, cachingRefresh))
	if c.testHookJoined != nil {
		c.testHookJoined()
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, fmt.Errorf("caching exchange for audience %q: %w", req.Audience, r.Err)
		}
		f := r.Val.(fetched)
		return cachingResult(f.entry, f.cached), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("caching exchange for audience %q: waiting for the exchange: %w", req.Audience, ctx.Err())
	}
}

// Invalidate drops the cached token for req, e.g. because the route's
// upstream answered 401 to it; the next Exchange for req exchanges anew.
func (c *Caching) Invalidate(ctx context.Context, req Request) {
	if req.Subject == nil {
		return
	}
	c.cache.Delete(ctx, c.cacheKey(req))
}

// cachingState says what a cached entry is good for at now.
type cachingState int

const (
	cachingStale   cachingState = iota // do not serve: exchange
	cachingRefresh                     // serve, and refresh in the background
	cachingFresh                       // serve
)

func (c *Caching) cachingState(e cache.Entry, now time.Time) cachingState {
	if e.Capped {
		// ExpiresAt is the umbrella token's own exp: an exchange now would
		// be capped at the same instant, so it cannot buy a longer life.
		// Serve the entry to the end rather than exchanging on every
		// request during the umbrella's last RefreshBefore.
		if now.Before(e.ExpiresAt) {
			return cachingFresh
		}
		return cachingStale
	}
	staleAt := e.ExpiresAt.Add(-c.refreshBefore)
	switch {
	case !now.Before(staleAt):
		return cachingStale
	case !now.Before(staleAt.Add(-c.refreshBefore)):
		return cachingRefresh
	default:
		return cachingFresh
	}
}

// cachingRefreshAsync starts one background exchange for key unless one is
// already under way. It shares the miss path's flight, so a caller that
// finds the entry stale meanwhile joins it instead of exchanging again.
func (c *Caching) cachingRefreshAsync(ctx context.Context, key string, req Request) {
	c.refreshMu.Lock()
	_, busy := c.refreshing[key]
	if !busy {
		c.refreshing[key] = struct{}{}
	}
	c.refreshMu.Unlock()
	if busy {
		return
	}
	ch := c.flight.DoChan(key, c.cachingFetch(ctx, key, req, cachingFresh))
	go func() {
		r := <-ch
		c.refreshMu.Lock()
		delete(c.refreshing, key)
		c.refreshMu.Unlock()
		if r.Err != nil {
			// The entry stays: it is still valid, and the next request in
			// the window tries again.
			c.log.LogAttrs(context.WithoutCancel(ctx), slog.LevelWarn, "background token refresh failed; serving the cached token",
				slog.String("audience", req.Audience), slog.Any("error", r.Err))
		}
	}()
}

// cachingFetch returns the flight for key: exchange upstream and store the
// result, unless the cache already holds an entry in state enough or better
// (servable for a miss, fresh for a refresh). It runs detached from the
// caller's cancellation (keeping its values, e.g. a request id for logs) and
// bounded by the exchange timeout, so one impatient caller cannot fail the
// others.
func (c *Caching) cachingFetch(ctx context.Context, key string, req Request, enough cachingState) func() (any, error) {
	parent := context.WithoutCancel(ctx)
	return func() (any, error) {
		ctx, cancel := context.WithTimeout(parent, c.timeout)
		defer cancel()
		// A caller that missed just before the previous flight stored its
		// entry starts a new flight: the stored entry answers it.
		if e, ok := c.cache.Find(ctx, key, cache.LookupRecheck); ok && c.cachingState(e, c.now()) >= enough {
			return fetched{entry: e, cached: true}, nil
		}
		res, err := c.up.Exchange(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: upstream exchange did not finish within %s: %w", ErrExchangeUnavailable, c.timeout, err)
			}
			return nil, err
		}
		if res == nil {
			return nil, fmt.Errorf("%w: upstream exchange returned no token", ErrExchangeUnavailable)
		}
		h := c.hashesOf(req.Subject)
		e := cache.Entry{
			Token:       res.AccessToken,
			TokenType:   res.IssuedTokenType,
			Scope:       res.Scope,
			IssuedAt:    c.now(),
			ExpiresAt:   res.ExpiresAt,
			Capped:      !res.ExpiresAt.Before(req.Subject.Claims.Expiry),
			SubjectHash: h.sub,
			SessionHash: h.sid,
			TokenHash:   h.tok,
			ClientHash:  h.client,
			IssuerHash:  h.iss,
			KeyHash:     h.key,
		}
		if kid := jwsKeyID(res.AccessToken); kid != "" {
			e.SigningKeyHash = c.signingKeyHash(kid)
		}
		// A revocation made while this exchange ran must not be undone by
		// storing its token: the denylist is updated before entries are dropped.
		if c.revoked(req.Subject) {
			return nil, errRevoked
		}
		c.cache.Set(ctx, key, e)
		return fetched{entry: e}, nil
	}
}

// jwsKeyID is the kid in the protected header of a compact JWS, "" when
// token is not one or names none: removing that signing key purges the
// entry (BySigningKey).
func jwsKeyID(token string) string {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.Kid
}

// cachingResult builds a new Result from an entry: strings are immutable, so
// callers share nothing mutable.
func cachingResult(e cache.Entry, cached bool) *Result {
	return &Result{
		AccessToken:     e.Token,
		IssuedTokenType: e.TokenType,
		TokenType:       "Bearer",
		Scope:           e.Scope,
		ExpiresAt:       e.ExpiresAt,
		Cached:          cached,
	}
}

// fetched is what one flight yields: the entry, and whether it was found in
// a tier (a Redis hit, or a store that raced the flight) rather than exchanged.
type fetched struct {
	entry  cache.Entry
	cached bool
}

// cacheKeyer is a pooled HMAC and its input buffer: building a key then
// costs one Write, one Sum and the 32-byte key string.
type cacheKeyer struct {
	mac hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// cacheKey is HMAC-SHA-256(KeySecret) over a length-prefixed encoding of the
// umbrella token's hash, the audience, each scope and the upstream's
// fingerprint, as a raw 32-byte string. Length prefixes make the encoding
// unambiguous (scopes ["a b"] and ["a", "b"] differ); the umbrella token
// itself never enters it, and the MAC keeps a shared tier from confirming
// guesses of (token hash, audience) pairs.
func (c *Caching) cacheKey(req Request) string {
	k := c.keys.Get().(*cacheKeyer)
	b := append(k.buf[:0], cacheKeyDomain...)
	b = cacheKeyAppend(b, req.Subject.Hash[:])
	b = cacheKeyAppendString(b, req.Audience)
	b = binary.BigEndian.AppendUint64(b, uint64(len(req.Scopes)))
	for _, s := range req.Scopes {
		b = cacheKeyAppendString(b, s)
	}
	b = cacheKeyAppendString(b, c.up.Fingerprint())
	// The token hash already covers its binding (cnf.jkt is inside the
	// token); the thumbprint is written in too so the key states it: a
	// DPoP-bound token's entry is never one an unbound token could hit.
	b = cacheKeyAppendString(b, req.Subject.Claims.JKT)
	k.mac.Reset()
	k.mac.Write(b)
	key := string(k.mac.Sum(k.sum[:0]))
	if cap(b) <= cacheKeyMaxPooledBuf {
		k.buf = b
		c.keys.Put(k)
	}
	return key
}

func cacheKeyAppend(b, field []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(field)))
	return append(b, field...)
}

func cacheKeyAppendString(b []byte, field string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(field)))
	return append(b, field...)
}
