package exchange

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// UnverifiedExpiry reads exp from a compact JWS WITHOUT verifying it. It is
// only ever used to bound a lifetime, never to trust a token: how long an STS
// token is cached (capped by the umbrella's exp as well), and how long a
// revoked token stays refused (a forged exp can only make that longer). ok is
// false when there is no positive, plausible numeric exp.
func UnverifiedExpiry(raw string) (time.Time, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil || *claims.Exp <= 0 || *claims.Exp > math.MaxInt32*4 {
		return time.Time{}, false
	}
	return time.Unix(int64(*claims.Exp), 0), true
}

// revocationIdentityDomain separates revocation identities from any other
// SHA-256 of token material and versions their encoding.
const revocationIdentityDomain = "tokengate/exchange/revocation-identity/v1"

// Kinds of revocation identity: what the identity of a token is made of.
const (
	identityJTI    byte = 'j' // iss and jti
	identityJWS    byte = 's' // iss and the JWS signing input (header.payload)
	identityOpaque byte = 'o' // the raw value of an opaque (introspected) token
)

// revocationIdentity is what a revocation by token is keyed on: the token,
// not its spelling. A JWS has more than one spelling that verifies (an ECDSA
// signature (r, s) is as valid as (r, n−s); other signature encodings may
// verify too), so a JWT is identified by its issuer and jti, or, without a
// jti, by its issuer and its signing input "header.payload", which the
// signature covers byte for byte. An opaque token has no signature to
// re-encode: its raw value is its identity. Fields are length-prefixed so
// no two inputs share an encoding.
func revocationIdentity(kind byte, fields ...string) [32]byte {
	h := sha256.New()
	h.Write([]byte(revocationIdentityDomain))
	h.Write([]byte{kind})
	for _, f := range fields {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		h.Write([]byte(f))
	}
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// jwtIdentity is the revocation identity of a JWS raw whose iss and jti
// claims are iss and jti ("" when absent).
func jwtIdentity(raw, iss, jti string) [32]byte {
	if jti != "" {
		return revocationIdentity(identityJTI, iss, jti)
	}
	input := raw[:max(strings.LastIndexByte(raw, '.'), 0)]
	return revocationIdentity(identityJWS, iss, input)
}

// errRevokeNotJWT and errRevokeOpaque say why a token value cannot be revoked.
var (
	errRevokeNotJWT = &BadRevocationError{Description: "token is not a JWT (a compact JWS with a JSON header and payload)"}
	errRevokeOpaque = &BadRevocationError{Description: "token is not a JWT, and no issuer introspects opaque tokens"}
	errRevokeBlank  = &BadRevocationError{Description: "token is empty or blank"}
)

// unverifiedIdentity computes, WITHOUT verifying raw, the revocation
// identity that Token.RevocationID gives raw once verified: the same parser
// as the verifier reads iss and jti, so both agree on every token that could
// ever verify. A value that is not JWT-shaped is an opaque token: accepted
// only when opaque is true (an issuer introspects), and only when it is a
// token68 (RFC 6750's b64token), as a bearer token must be. It never trusts
// raw for anything but naming what to refuse: a forged token can only get
// itself refused.
func unverifiedIdentity(raw string, opaque bool) ([32]byte, error) {
	raw = revocationSpelling(raw, opaque)
	switch {
	case strings.TrimSpace(raw) == "":
		return [32]byte{}, errRevokeBlank
	case !JWTShaped(raw):
		if !opaque {
			return [32]byte{}, errRevokeOpaque
		}
		if !token68(raw) {
			return [32]byte{}, &BadRevocationError{Description: "token is neither a JWT nor an opaque bearer token (RFC 6750 b64token)"}
		}
		return revocationIdentity(identityOpaque, raw), nil
	}
	p, err := ParseJWS(raw)
	if err != nil {
		return [32]byte{}, errRevokeNotJWT
	}
	iss, _, err := JSONString(p.Payload, "iss")
	if err != nil {
		return [32]byte{}, &BadRevocationError{Description: "token claim iss is not a string"}
	}
	jti, _, err := JSONString(p.Payload, "jti")
	if err != nil {
		return [32]byte{}, &BadRevocationError{Description: "token claim jti is not a string"}
	}
	return jwtIdentity(raw, iss, jti), nil
}

// token68 reports an RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." /
// "_" / "~" / "+" / "/" ) *"=".
func token68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// revocationSpelling is the spelling of raw that a revocation reads: a
// padded or standard-base64 copy of a JWS is read as the JWS, unless an
// issuer introspects: then, like the verifier, a value that is not
// JWT-shaped as written is an opaque token, keyed on its value.
func revocationSpelling(raw string, opaque bool) string {
	if c, ok := canonicalJWS(raw); ok && !opaque {
		return c
	}
	return raw
}

// canonicalJWS rewrites a three-segment value whose segments are base64 in
// any common spelling (padded, standard alphabet) as unpadded base64url, the
// only spelling the verifier accepts, so an operator who pastes a padded
// copy of a token revokes the token. ok is false when raw is not such a
// value; the result is only ever used to name what to refuse.
func canonicalJWS(raw string) (string, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", false
	}
	for i, p := range parts {
		p = strings.TrimRight(p, "=")
		p = strings.NewReplacer("+", "-", "/", "_").Replace(p)
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil || len(b) == 0 {
			return "", false
		}
		parts[i] = base64.RawURLEncoding.EncodeToString(b)
	}
	c := strings.Join(parts, ".")
	return c, JWTShaped(c)
}

// RevocationIDOf is the identity Revoke keys a token value under (see
// Token.RevocationID): opaque says whether an issuer introspects, so a
// value that is not JWT-shaped is an opaque token. The verifier's tests
// check it agrees with every verified spelling.
func RevocationIDOf(raw string, opaque bool) ([32]byte, error) {
	return unverifiedIdentity(raw, opaque)
}
