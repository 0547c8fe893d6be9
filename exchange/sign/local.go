package sign

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/keys"
)

// localMode is the mode label of local exchanges in metrics.
const localMode = "local"

// localReservedClaim says whether Local sets the claim itself, or the claim
// would change the exchanged token's meaning (config.ReservedCopyClaim), so
// copy_claims never copies it.
func localReservedClaim(name string) bool {
	switch name {
	case "sub", "client_id":
		return true
	}
	return config.ReservedCopyClaim(name)
}

// LocalOptions configure a Local signer.
type LocalOptions struct {
	// Issuer is the iss of exchanged tokens (exchange.local.issuer).
	Issuer string
	// TokenTTL bounds an exchanged token's lifetime (exchange.token_ttl).
	TokenTTL time.Duration
	// CopyClaims are umbrella claims copied verbatim when present, except the
	// claims Local sets itself.
	CopyClaims []string
	// Keys sign: the active key signs every token.
	Keys *keys.KeySet
	// Clock is nil for time.Now.
	Clock func() time.Time
	// Random is the source of jti values; nil for crypto/rand. It must be
	// safe for concurrent use.
	Random io.Reader
	// Metrics may be nil (tests).
	Metrics *exchange.Metrics
	// Logger is nil for no logging.
	Logger *slog.Logger
}

// Local mints RFC 9068 access tokens signed with the active local key. It is
// immutable after NewLocal and safe for concurrent use.
type Local struct {
	issuer      string
	ttl         time.Duration
	copyClaims  []string // without reserved claims, deduplicated, in config order
	keys        *keys.KeySet
	active      *keys.SigningKey
	act         json.RawMessage // {"sub": issuer}, marshalled once
	clock       func() time.Time
	random      io.Reader
	metrics     *exchange.Metrics
	logger      *slog.Logger
	fingerprint string
}

// NewLocal checks opts and pre-computes what every exchange reuses.
func NewLocal(opts LocalOptions) (*Local, error) {
	var problems []error
	if opts.Issuer == "" {
		problems = append(problems, errors.New("issuer is empty: set exchange.local.issuer to the URL backends expect in iss"))
	}
	if opts.TokenTTL <= 0 {
		problems = append(problems, fmt.Errorf("token_ttl is %v: set exchange.token_ttl to a positive duration such as 5m", opts.TokenTTL))
	}
	if opts.Keys == nil {
		problems = append(problems, errors.New("no signing keys: set exchange.local.signing_keys"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("local signer: %w", errors.Join(problems...))
	}

	act, err := json.Marshal(map[string]string{"sub": opts.Issuer})
	if err != nil {
		return nil, fmt.Errorf("local signer: marshal act claim: %w", err)
	}
	l := &Local{
		issuer:  opts.Issuer,
		ttl:     opts.TokenTTL,
		keys:    opts.Keys,
		active:  opts.Keys.Active(),
		act:     act,
		clock:   opts.Clock,
		random:  opts.Random,
		metrics: opts.Metrics,
		logger:  opts.Logger,
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	if l.random == nil {
		l.random = rand.Reader
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	for _, name := range opts.CopyClaims {
		if name == "" || localReservedClaim(name) || slices.Contains(l.copyClaims, name) {
			continue
		}
		l.copyClaims = append(l.copyClaims, name)
	}
	l.fingerprint = l.localFingerprint()
	return l, nil
}

// localFingerprint hashes everything that shapes the minted tokens. Fields
// are length-prefixed so no two configurations hash the same input.
func (l *Local) localFingerprint() string {
	h := sha256.New()
	h.Write(l.active.Fingerprint())
	claims := slices.Sorted(slices.Values(l.copyClaims)) // order does not change the token
	for _, s := range append([]string{l.issuer, l.ttl.String()}, claims...) {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return "local:" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// Fingerprint identifies everything that changes the tokens Local mints: the
// active key (kid, alg, key material), the issuer, the TTL and copy_claims.
// Cache keys include it, so a change of any of them never serves an old token.
func (l *Local) Fingerprint() string { return l.fingerprint }

// Keys returns the key set Local signs with.
func (l *Local) Keys() *keys.KeySet { return l.keys }

// Exchange signs a token for req.Audience carrying req.Scopes (CONTRACT.md
// section 4). A subject token that cannot yield a valid token (no subject,
// already expired) is a *RejectError.
func (l *Local) Exchange(ctx context.Context, req exchange.Request) (*exchange.Result, error) {
	start := time.Now()
	res, err := l.localExchange(ctx, req)
	if m := l.metrics; m != nil {
		result := "ok"
		if err != nil {
			result = "error"
		}
		m.Exchanges.WithLabelValues(req.Audience, localMode, result).Inc()
		m.ExchangeDuration.WithLabelValues(localMode).Observe(time.Since(start).Seconds())
	}
	return res, err
}

func (l *Local) localExchange(ctx context.Context, req exchange.Request) (*exchange.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local exchange: %w", err)
	}
	if req.Subject == nil {
		return nil, exchange.Reject(exchange.ReasonMalformed, "no subject token", nil)
	}
	if req.Audience == "" {
		// A programming error upstream; an audience-less token must never exist.
		return nil, errors.New("local exchange: empty audience")
	}
	c := &req.Subject.Claims
	sub, err := tokenSubject(c)
	if err != nil {
		return nil, err
	}
	iat, expUnix, err := tokenLifetime(l.clock(), l.ttl, c, "an exchanged token")
	if err != nil {
		return nil, err
	}

	var jti [16]byte // 128 bits: collisions are out of reach
	if _, err := io.ReadFull(l.random, jti[:]); err != nil {
		return nil, fmt.Errorf("local exchange: jti: %w", err)
	}

	claims := make(map[string]any, 10+len(l.copyClaims))
	for _, name := range l.copyClaims {
		raw, ok := c.Extra[name]
		if !ok {
			continue
		}
		if !json.Valid(raw) {
			return nil, exchange.Reject(exchange.ReasonMalformed, fmt.Sprintf("claim %q is not valid JSON", name), nil)
		}
		claims[name] = raw
	}
	claims["iss"] = l.issuer
	claims["aud"] = req.Audience // one string, never an array (RFC 9068 2.2)
	claims["sub"] = sub
	if c.ClientID != "" {
		claims["client_id"] = c.ClientID
	}
	scope := strings.Join(req.Scopes, " ")
	if scope != "" {
		claims["scope"] = scope
	}
	claims["iat"] = iat
	claims["nbf"] = iat
	claims["exp"] = expUnix
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti[:])
	claims["act"] = l.act

	token, err := signJWT(l.active.Signer(), claims)
	if err != nil {
		l.logger.ErrorContext(ctx, "local exchange: signing failed", "kid", l.active.Kid, "alg", l.active.Alg, "error", err)
		return nil, fmt.Errorf("local exchange: sign with %s key %q: %w", l.active.Alg, l.active.Kid, err)
	}
	return &exchange.Result{
		AccessToken:     token,
		IssuedTokenType: exchange.TokenTypeAccessToken,
		TokenType:       "Bearer",
		Scope:           scope,
		ExpiresAt:       time.Unix(expUnix, 0),
	}, nil
}
