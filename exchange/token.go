// Package exchange turns a verified umbrella token into a single-audience
// token. It owns what every part shares: the Exchanger-facing types
// (Token, Claims, Request, Result), the errors and rejection reasons the
// gateway maps to responses, the Upstream interface, the strict JWS syntax
// and revocation identities, the metrics, and the caching decorator
// (Caching: one exchange per key, early refresh, revocation by keyed hash
// through cache.Store).
//
// The jobs live in subpackages that import this one, never the reverse:
// exchange/verify (umbrella verification: JWKS, introspection, the memo),
// exchange/sign (local minting of access tokens and Txn-Tokens),
// exchange/sts (the remote RFC 8693 client and its breaker) and the leaf
// exchange/keys (private keys, the local key set, client authentication).
// This package knows nothing of how a token is verified, signed or fetched,
// and nothing of HTTP routing.
package exchange

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Claims are the claims of a verified umbrella token that policy and exchange
// read. Extra keeps every claim as received, for exchange.local.copy_claims.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expiry    time.Time
	NotBefore time.Time // zero when absent
	IssuedAt  time.Time // zero when absent
	// ClientID is client_id, or azp when client_id is absent.
	ClientID string
	AZP      string
	// Scopes come from "scope" (space-delimited string) or "scp" (array).
	Scopes   []string
	ACR      string
	AMR      []string
	AuthTime time.Time // zero when absent
	ID       string    // jti
	// JKT is cnf.jkt: the RFC 7638 thumbprint of the key the token is bound
	// to (RFC 9449 DPoP); "" for a bearer token.
	JKT   string
	Extra map[string]json.RawMessage
}

// Token is a verified umbrella token. The raw token is unexported and every
// printing path is redacted, so it cannot reach a log line by accident.
type Token struct {
	raw string
	// Hash is SHA-256 of the raw token: it names the spelling, for the
	// verification memo and cache keys. Revocation uses RevocationID.
	Hash   [32]byte
	Claims Claims
	// UmbrellaAudience is the issuer's umbrella_audience ("" when not configured).
	UmbrellaAudience string
	// KeyID is the kid of the issuer's JWKS key that verified the token
	// ("" when that key has none, or the token was introspected): removing
	// the key from the JWKS refuses the token (ByKey).
	KeyID string

	// hashes memoizes the keyed hashes a caching exchanger computed for this
	// token (revocation checks run on every request once anything is revoked).
	hashes atomic.Pointer[tokenHashes]
}

// NewToken builds a Token; the verifier and tests use it.
func NewToken(raw string, hash [32]byte, c Claims, umbrellaAudience string) *Token {
	return &Token{raw: raw, Hash: hash, Claims: c, UmbrellaAudience: umbrellaAudience}
}

// RevocationID is the token's identity for revocation: SHA-256 over
// (iss, jti) when the token has a jti, else over (iss, "header.payload") for
// a JWT, else over the raw value of an opaque token. Every spelling of one
// token (a re-encoded signature) has the same identity, so revoking one
// refuses all; Hash, by contrast, names the spelling (memo and cache keys).
func (t *Token) RevocationID() [32]byte {
	if JWTShaped(t.raw) {
		return jwtIdentity(t.raw, t.Claims.Issuer, t.Claims.ID)
	}
	return revocationIdentity(identityOpaque, t.raw)
}

// SubjectToken returns the raw umbrella token, for an RFC 8693 STS request only.
func (t *Token) SubjectToken() string { return t.raw }

// String redacts the token.
func (t *Token) String() string { return "[umbrella token redacted]" }

// GoString redacts the token in %#v.
func (t *Token) GoString() string { return t.String() }

// LogValue redacts the token in log/slog output.
func (t *Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Errors that callers branch on. The gateway maps each to one response.
var (
	// ErrInvalidToken: the token failed a check; 401 invalid_token.
	ErrInvalidToken = errors.New("invalid token")
	// ErrKeysUnavailable: the issuer's JWKS could not be fetched and no key is
	// known for the token; an outage, not a bad token (503).
	ErrKeysUnavailable = errors.New("issuer keys unavailable")
	// ErrExchangeUnavailable: the exchange could not be performed (503).
	ErrExchangeUnavailable = errors.New("token exchange unavailable")
)

// Rejection reasons: the reason label of tokengate_token_rejections_total.
// The set is closed so the label stays bounded.
const (
	ReasonMalformed   = "malformed"
	ReasonTooLarge    = "too_large"
	ReasonAlgorithm   = "algorithm"
	ReasonSignature   = "signature"
	ReasonUnknownKey  = "unknown_key"
	ReasonIssuer      = "issuer"
	ReasonExpired     = "expired"
	ReasonNotYetValid = "not_yet_valid"
	ReasonAudience    = "audience"
	ReasonCrit        = "crit"
	// ReasonBinding: the token is sender-constrained by a confirmation
	// method tokengate cannot check (cnf without jkt, e.g. mTLS x5t#S256).
	ReasonBinding = "binding"
)

// RejectError says why a token was refused. It matches ErrInvalidToken with
// errors.Is. Description is safe to send to the client: it names the check,
// never the token.
type RejectError struct {
	Reason      string
	Description string
	Err         error
}

func (e *RejectError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("token rejected (%s): %s: %v", e.Reason, e.Description, e.Err)
	}
	return fmt.Sprintf("token rejected (%s): %s", e.Reason, e.Description)
}

// Unwrap lets errors.Is find ErrInvalidToken and the cause.
func (e *RejectError) Unwrap() []error { return []error{ErrInvalidToken, e.Err} }

// Reject returns a *RejectError.
func Reject(reason, description string, cause error) error {
	return &RejectError{Reason: reason, Description: description, Err: cause}
}

// Request asks for a single-audience token derived from Subject.
type Request struct {
	Subject  *Token
	Audience string
	// Scopes the exchanged token carries: already downscoped to the route's
	// scopes, deduplicated and sorted (they are part of the cache key).
	Scopes []string
}

// Result is an exchanged token.
type Result struct {
	AccessToken     string
	IssuedTokenType string // urn:ietf:params:oauth:token-type:access_token or :jwt
	TokenType       string // "Bearer"
	Scope           string // space-delimited, "" when none
	ExpiresAt       time.Time
	// Cached: served from a cache tier (memory or Redis) without an
	// exchange for this request (the access log's cache=hit).
	Cached bool
}

// Token type URIs of RFC 8693 section 3.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)
