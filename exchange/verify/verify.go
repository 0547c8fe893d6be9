package verify

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
	"unsafe"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

// Verifier defaults for zero-valued options and issuer settings.
const (
	verifyDefaultMaxTokenBytes    = config.DefaultMaxTokenBytes
	verifyDefaultMemoSize         = config.DefaultMemoSize
	jwksDefaultMinRefreshInterval = config.DefaultMinRefreshInterval
	jwksDefaultFetchTimeout       = config.DefaultFetchTimeout
)

// VerifierOptions are the Verifier's dependencies and limits.
type VerifierOptions struct {
	// HTTPClient fetches JWKS and discovery documents. Required.
	HTTPClient *http.Client
	// Logger receives JWKS fetch failures; nil discards. Tokens are never logged.
	Logger *slog.Logger
	// Metrics counts JWKS fetches; nil counts nothing.
	Metrics *exchange.Metrics
	// Clock is the time source for exp/nbf/iat and refresh intervals; nil is time.Now.
	Clock func() time.Time
	// MaxTokenBytes bounds a token before any parsing; <= 0 means 8192.
	MaxTokenBytes int
	// MemoSize bounds the verified-token memo; 0 means 10000, < 0 disables it.
	MemoSize int
	// OnKeyRemoved, when set, is told each key (issuer, kid) a JWKS refresh
	// found removed, after the memo entries verified with it were dropped:
	// the caching exchanger refuses the tokens signed with it and drops
	// their exchanged tokens on every replica (Caching.KeyRemoved).
	OnKeyRemoved func(issuer, kid string)
	// Purged, when set, counts memo entries dropped by cause and tier
	// (tokengate_purged_entries_total; tier "memo").
	Purged *prometheus.CounterVec
}

// Verifier verifies umbrella tokens against the configured issuers. It is
// safe for concurrent use; build a new one on configuration reload.
type Verifier struct {
	issuers map[string]*verifyIssuer
	order   []*verifyIssuer
	memo    *verifyMemo // nil when disabled
	// introspector handles opaque tokens (introspect.go); nil when no issuer introspects.
	introspector  *introspector
	maxTokenBytes int
	now           func() time.Time

	// onSignatureCheck, when set (tests only), runs before each signature check.
	onSignatureCheck func()
}

// verifyIssuer is one configured issuer with its defaults applied.
type verifyIssuer struct {
	name     string
	algs     []jose.SignatureAlgorithm
	leeway   time.Duration
	umbrella string
	// permissions: the "permissions" claim adds to the scopes (permissions_as_scopes).
	permissions bool
	keys        *jwksKeySet
}

// verifyAsymmetricAlgs is the default allowlist and the only algorithms a
// configuration may name (config.AsymmetricAlgorithms): none and HS* are
// never accepted.
func verifyAsymmetricAlgs() []jose.SignatureAlgorithm {
	names := config.AsymmetricAlgorithms()
	algs := make([]jose.SignatureAlgorithm, len(names))
	for i, n := range names {
		algs[i] = jose.SignatureAlgorithm(n)
	}
	return algs
}

func verifyAsymmetricAlg(alg string) bool { return config.IsAsymmetricAlgorithm(alg) }

// NewVerifier builds a Verifier for issuers. It fetches nothing: call
// Prefetch at startup, and keys are otherwise fetched on first use.
func NewVerifier(issuers []config.Issuer, opts VerifierOptions) (*Verifier, error) {
	if opts.HTTPClient == nil {
		return nil, errors.New("new verifier: an HTTP client is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Clock
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		issuers:       make(map[string]*verifyIssuer, len(issuers)),
		maxTokenBytes: opts.MaxTokenBytes,
		now:           now,
	}
	if v.maxTokenBytes <= 0 {
		v.maxTokenBytes = verifyDefaultMaxTokenBytes
	}
	switch {
	case opts.MemoSize == 0:
		opts.MemoSize = verifyDefaultMemoSize
		fallthrough
	case opts.MemoSize > 0:
		memo, err := newVerifyMemo(opts.MemoSize)
		if err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
		v.memo = memo
	}
	var errs []error
	for i, ic := range issuers {
		iss, err := newVerifyIssuer(ic, opts.HTTPClient, log, opts.Metrics, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d]: %w", i, err))
			continue
		}
		if iss.keys != nil {
			iss.keys.onRemoved = v.keysRemoved(iss.name, opts)
		}
		if _, dup := v.issuers[iss.name]; dup {
			errs = append(errs, fmt.Errorf("issuers[%d]: issuer %q is configured twice", i, iss.name))
			continue
		}
		v.issuers[iss.name] = iss
		v.order = append(v.order, iss)
		if err := v.addIntrospector(ic, iss, opts, log, now); err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d]: %w", i, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new verifier: %w", err)
	}
	return v, nil
}

func newVerifyIssuer(ic config.Issuer, client *http.Client, log *slog.Logger, m *exchange.Metrics, now func() time.Time) (*verifyIssuer, error) {
	if ic.Issuer == "" {
		return nil, errors.New("issuer is empty")
	}
	iss := &verifyIssuer{
		name:        ic.Issuer,
		leeway:      max(ic.Leeway.D(), 0),
		umbrella:    ic.UmbrellaAudience,
		permissions: ic.PermissionsAsScopes,
	}
	if len(ic.Algorithms) == 0 {
		iss.algs = verifyAsymmetricAlgs()
	}
	for _, a := range ic.Algorithms {
		if !verifyAsymmetricAlg(a) {
			return nil, fmt.Errorf("algorithm %q is not accepted: use RS256..RS512, PS256..PS512, ES256..ES512 or EdDSA", a)
		}
		iss.algs = append(iss.algs, jose.SignatureAlgorithm(a))
	}
	ks := &jwksKeySet{
		issuer:        ic.Issuer,
		jwksURI:       ic.JWKSURI,
		allowInsecure: ic.AllowInsecureHTTP,
		client:        client,
		timeout:       ic.FetchTimeout.D(),
		minInterval:   ic.MinRefreshInterval.D(),
		maxAge:        ic.RefreshInterval.D(),
		now:           now,
		log:           log,
		metrics:       m,
	}
	if ks.timeout <= 0 {
		ks.timeout = jwksDefaultFetchTimeout
	}
	if ks.minInterval <= 0 {
		ks.minInterval = jwksDefaultMinRefreshInterval
	}
	switch {
	case ic.JWKSURI != "":
		if err := oauthclient.CheckEndpointURL(ic.JWKSURI, ic.AllowInsecureHTTP); err != nil {
			return nil, fmt.Errorf("jwks_uri: %w", err)
		}
	case ic.Discovery:
		if err := oauthclient.CheckEndpointURL(ic.Issuer, ic.AllowInsecureHTTP); err != nil {
			return nil, fmt.Errorf("discovery needs an http(s) issuer URL: %w", err)
		}
	case ic.IntrospectionOnly():
		return iss, nil // no keys: its tokens are only introspected
	default:
		return nil, fmt.Errorf("issuer %q has no key source: set jwks_uri or discovery: true", ic.Issuer)
	}
	iss.keys = ks
	return iss, nil
}

// keysRemoved returns the issuer's key-removal handler: drop the memo
// entries verified with each removed kid (so the next presentation is
// verified again and refused as unknown_key), count them, and tell
// opts.OnKeyRemoved.
func (v *Verifier) keysRemoved(issuer string, opts VerifierOptions) func(kids []string) {
	return func(kids []string) {
		for _, kid := range kids {
			if v.memo != nil {
				n := v.memo.purgeKey(issuer, kid)
				if opts.Purged != nil && n > 0 {
					opts.Purged.WithLabelValues("key_removed", "memo").Add(float64(n))
				}
			}
			if opts.OnKeyRemoved != nil {
				opts.OnKeyRemoved(issuer, kid)
			}
		}
	}
}

// Verify checks raw for a route whose audience is audience and returns the
// verified token. A token seen before is answered from the memo without a
// signature check; the returned *Token is then shared and must be treated as
// read-only. Failures are a *RejectError (errors.Is ErrInvalidToken) or, when
// the issuer's keys could never be obtained, an error wrapping
// ErrKeysUnavailable. No error contains the token.
func (v *Verifier) Verify(ctx context.Context, raw, audience string) (*exchange.Token, error) {
	if len(raw) > v.maxTokenBytes {
		return nil, exchange.Reject(exchange.ReasonTooLarge, "token too large", nil)
	}
	hash := verifyHash(raw)
	now := v.now()
	if v.memo != nil {
		if e, ok := v.memo.get(hash); ok {
			return v.verifyMemoHit(hash, e, now, audience)
		}
	}
	if v.introspector != nil && !jwtShaped(raw) {
		return v.introspector.verify(ctx, raw, hash, audience)
	}
	return v.verifyFull(ctx, raw, hash, now, audience)
}

// verifyHash is SHA-256 of raw without copying it: []byte(raw) would cost an
// allocation on every memo hit. The bytes are only read, never retained.
func verifyHash(raw string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

// verifyMemoHit re-checks only what changes with time and route.
func (v *Verifier) verifyMemoHit(hash [32]byte, e *verifyMemoEntry, now time.Time, audience string) (*exchange.Token, error) {
	if !now.Before(e.notAfter) {
		v.memo.remove(hash)
		return nil, exchange.Reject(exchange.ReasonExpired, "token expired", nil)
	}
	if now.Before(e.notBefore) {
		return nil, exchange.Reject(exchange.ReasonNotYetValid, "token not yet valid", nil)
	}
	if !verifyAudienceOK(e.token.Claims.Audience, audience, e.token.UmbrellaAudience) {
		return nil, verifyAudienceReject(audience)
	}
	if e.iss != nil && e.iss.keys != nil {
		// A steady stream of memo hits must not keep the keys from being
		// refreshed: a key the issuer removed stops working within one
		// refresh_interval even for tokens never verified again.
		e.iss.keys.refreshIfStale()
	}
	return e.token, nil
}

// verifyChecked is a token that passed every check that needs no key.
type verifyChecked struct {
	parsed    *verifyParsed
	iss       *verifyIssuer
	claims    exchange.Claims
	notBefore time.Time
}

// verifyUnsigned runs every check that needs no key, cheapest first: form,
// iss, alg, claim types, time, audience. Time and audience come before any
// key lookup: an expired or misdirected token must not be able to trigger a
// JWKS refresh.
func (v *Verifier) verifyUnsigned(raw string, now time.Time, audience string, anyAudience bool) (*verifyChecked, error) {
	p, err := verifyParse(raw)
	if err != nil {
		return nil, err
	}
	issName, _, err := verifyString(p.Payload, "iss")
	iss := v.issuers[issName]
	if err != nil || iss == nil || iss.keys == nil {
		return nil, exchange.Reject(exchange.ReasonIssuer, "issuer not accepted", nil)
	}
	if !slices.Contains(iss.algs, jose.SignatureAlgorithm(p.Header.Alg)) {
		return nil, exchange.Reject(exchange.ReasonAlgorithm, "algorithm not allowed", nil)
	}
	claims, err := verifyClaims(p.Payload)
	if err != nil {
		return nil, err
	}
	if iss.permissions {
		if claims.Scopes, err = verifyPermissions(p.Payload, claims.Scopes); err != nil {
			return nil, err
		}
	}
	if !now.Before(claims.Expiry.Add(iss.leeway)) {
		return nil, exchange.Reject(exchange.ReasonExpired, "token expired", nil)
	}
	notBefore := verifyLater(claims.NotBefore, claims.IssuedAt).Add(-iss.leeway)
	if now.Before(notBefore) {
		return nil, exchange.Reject(exchange.ReasonNotYetValid, "token not yet valid", nil)
	}
	if !anyAudience && !verifyAudienceOK(claims.Audience, audience, iss.umbrella) {
		return nil, verifyAudienceReject(audience)
	}
	return &verifyChecked{parsed: p, iss: iss, claims: claims, notBefore: notBefore}, nil
}

// InspectUnverified runs every check of Verify except the key lookup and
// the signature, for `tokengate check --explain`: it tells what a token's
// claims would allow IF the token were genuine. audience "" skips the
// audience check (to describe the token before any route). Its result
// proves nothing about who made the token: never use it to authorize
// anything. Nothing is memoized and nothing is fetched.
func (v *Verifier) InspectUnverified(raw, audience string) (*exchange.Token, error) {
	if len(raw) > v.maxTokenBytes {
		return nil, exchange.Reject(exchange.ReasonTooLarge, "token too large", nil)
	}
	c, err := v.verifyUnsigned(raw, v.now(), audience, audience == "")
	if err != nil {
		return nil, err
	}
	return exchange.NewToken(raw, verifyHash(raw), c.claims, c.iss.umbrella), nil
}

// verifyFull runs every check, cheapest first, and memoizes a success.
func (v *Verifier) verifyFull(ctx context.Context, raw string, hash [32]byte, now time.Time, audience string) (*exchange.Token, error) {
	c, err := v.verifyUnsigned(raw, now, audience, false)
	if err != nil {
		return nil, err
	}
	p, iss, claims, notBefore := c.parsed, c.iss, c.claims, c.notBefore
	kid, err := v.verifySignatureKey(ctx, iss, p.Header, raw)
	if err != nil {
		return nil, err
	}
	tok := exchange.NewToken(raw, hash, claims, iss.umbrella)
	tok.KeyID = kid
	if v.memo != nil {
		v.memo.add(hash, &verifyMemoEntry{
			token:     tok,
			notAfter:  claims.Expiry.Add(iss.leeway),
			notBefore: notBefore,
			iss:       iss,
		})
	}
	return tok, nil
}

// verifySignature checks the JWS raw (header h, already parsed strictly)
// with the issuer's keys that fit h. Errors as for Verify: a *RejectError,
// or ErrKeysUnavailable.
func (v *Verifier) verifySignature(ctx context.Context, iss *verifyIssuer, h verifyHeader, raw string) error {
	_, err := v.verifySignatureKey(ctx, iss, h, raw)
	return err
}

// verifySignatureKey is verifySignature that also returns the kid of the
// key that verified ("" when it has none): the token is refused once the
// issuer removes that key.
func (v *Verifier) verifySignatureKey(ctx context.Context, iss *verifyIssuer, h verifyHeader, raw string) (string, error) {
	keys, err := v.verifyKeys(ctx, iss, h)
	if err != nil {
		return "", err
	}
	// raw was read by exchange.ParseJWS (every caller parses it first): its
	// signature is checked without parsing it again (signature.go).
	signingInput, sig, err := signatureParts(raw)
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if v.onSignatureCheck != nil {
			v.onSignatureCheck()
		}
		if checkSignature(h.Alg, k.Key, signingInput, sig) == nil {
			return k.KeyID, nil
		}
	}
	return "", exchange.Reject(exchange.ReasonSignature, "signature verification failed", nil)
}

// verifyKeys finds the keys that may have signed a token with header h,
// refreshing the issuer's JWKS once (rate-limited, shared) when none fits.
func (v *Verifier) verifyKeys(ctx context.Context, iss *verifyIssuer, h verifyHeader) ([]*jose.JSONWebKey, error) {
	keys, kidKnown := iss.keys.match(h)
	if len(keys) > 0 {
		iss.keys.refreshIfStale()
		return keys, nil
	}
	if kidKnown {
		return nil, exchange.Reject(exchange.ReasonAlgorithm, "algorithm does not match the signing key", nil)
	}
	refreshErr := iss.keys.refresh(ctx, false)
	keys, kidKnown = iss.keys.match(h)
	switch {
	case len(keys) > 0:
		return keys, nil
	case kidKnown:
		return nil, exchange.Reject(exchange.ReasonAlgorithm, "algorithm does not match the signing key", nil)
	case !iss.keys.keysLoaded():
		if refreshErr == nil {
			refreshErr = iss.keys.lastError()
		}
		if refreshErr == nil {
			return nil, fmt.Errorf("verify token: keys of issuer %q: %w", iss.name, exchange.ErrKeysUnavailable)
		}
		return nil, fmt.Errorf("verify token: keys of issuer %q: %w: %w", iss.name, exchange.ErrKeysUnavailable, refreshErr)
	}
	return nil, exchange.Reject(exchange.ReasonUnknownKey, "token signed with an unknown key", nil)
}

// verifyAudienceOK reports whether aud holds the route's audience or the
// issuer's umbrella audience. Empty values never match.
func verifyAudienceOK(aud []string, audience, umbrella string) bool {
	for _, a := range aud {
		if a == "" {
			continue
		}
		if a == audience || a == umbrella {
			return true
		}
	}
	return false
}

// verifyAudienceReject names the expected audience (from configuration,
// never from the token).
func verifyAudienceReject(audience string) error {
	if audience == "" {
		return exchange.Reject(exchange.ReasonAudience, "audience not accepted", nil)
	}
	return exchange.Reject(exchange.ReasonAudience, "audience not accepted: expected "+audience, nil)
}

func verifyLater(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// DropIntrospected drops the cached introspection answers (active ones)
// whose token matches, so the next presentation asks the endpoint again,
// and returns how many it dropped. /admin/revoke by token uses it, here
// and on every replica, for an opaque token the authorization server
// revoked. It walks the cache (bounded by max_cache_entries): revocations
// are rare.
func (v *Verifier) DropIntrospected(match func(*exchange.Token) bool) int {
	if v.introspector == nil {
		return 0
	}
	c := v.introspector.cache
	n := 0
	for _, h := range c.Keys() {
		if e, ok := c.Peek(h); ok && e.token != nil && match(e.token) {
			c.Remove(h)
			n++
		}
	}
	return n
}

// Prefetch fetches every issuer's keys once, concurrently, ignoring the
// refresh interval. Failures are logged and returned joined; they are not
// fatal, since keys are fetched again on demand.
func (v *Verifier) Prefetch(ctx context.Context) error {
	errs := make([]error, len(v.order))
	var wg sync.WaitGroup
	for i, iss := range v.order {
		if iss.keys == nil {
			continue
		}
		wg.Go(func() {
			if err := iss.keys.refresh(ctx, true); err != nil {
				errs[i] = fmt.Errorf("prefetch keys of issuer %q: %w", iss.name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// issuerProblem is why one issuer cannot verify tokens as it should. Usable
// says whether it still can: its keys from an earlier fetch are kept when a
// refresh fails (degraded), but an issuer that never had keys, or whose
// introspection endpoint is unknown, cannot verify anything.
type issuerProblem struct {
	Err    error
	Usable bool
}

// readiness reports every issuer, keyed "issuer <iss>" as /readyz names
// it, with its problem (Err nil when it has none). An issuer without keys
// gets one fetch attempt first (rate-limited like any refresh); an issuer
// whose last refresh failed is reported at once, and cleared by the next
// good one.
func (v *Verifier) readiness(ctx context.Context) map[string]issuerProblem {
	problems := make([]*issuerProblem, len(v.order))
	var wg sync.WaitGroup
	for i, iss := range v.order {
		if iss.keys == nil {
			continue
		}
		wg.Go(func() { problems[i] = iss.readiness(ctx) })
	}
	wg.Wait()
	out := make(map[string]issuerProblem, len(v.order))
	for i, iss := range v.order {
		p := issuerProblem{Usable: true}
		if problems[i] != nil {
			p = *problems[i]
		}
		out["issuer "+iss.name] = p
	}
	if v.introspector != nil {
		if err := v.introspector.ready(ctx); err != nil {
			// An opaque token has no iss: only the introspecting issuer can
			// take it, so without its endpoint it takes none (its JWTs, if it
			// has keys, still verify).
			iss := v.introspector.iss
			out["issuer "+iss.name] = issuerProblem{Err: err, Usable: iss.keys != nil && iss.keys.keysLoaded()}
		}
	}
	return out
}

// readiness is one issuer's key set problem, nil when it has none.
func (iss *verifyIssuer) readiness(ctx context.Context) *issuerProblem {
	if !iss.keys.keysLoaded() {
		_ = iss.keys.refresh(ctx, false)
	}
	last := iss.keys.lastError()
	switch {
	case iss.keys.keysLoaded() && last == nil:
		return nil
	case iss.keys.keysLoaded():
		return &issuerProblem{Err: fmt.Errorf("jwks refresh failed (keys from the last good fetch are in use): %w", last), Usable: true}
	case last != nil:
		return &issuerProblem{Err: fmt.Errorf("jwks fetch failed, no usable signing keys: %w", last)}
	default:
		return &issuerProblem{Err: errors.New("no usable signing keys yet")}
	}
}

// Ready reports every issuer as a part (nil when healthy, keyed "issuer
// <iss>"), and an error only when the verifier can verify the tokens of no
// issuer at all: one IdP's outage must never take every replica out of the
// Service, since the other issuers' tokens still verify. The error names
// every issuer's problem.
func (v *Verifier) Ready(ctx context.Context) (parts map[string]error, err error) {
	problems := v.readiness(ctx)
	parts = make(map[string]error, len(problems))
	names := make([]string, 0, len(problems))
	usable := false
	for name, p := range problems {
		parts[name] = p.Err
		usable = usable || p.Usable
		names = append(names, name)
	}
	if usable {
		return parts, nil
	}
	slices.Sort(names)
	errs := make([]error, 0, len(names))
	for _, name := range names {
		errs = append(errs, fmt.Errorf("%s: %w", name, problems[name].Err))
	}
	return parts, errors.Join(errs...)
}
