package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/tokengate/tokengate/internal/strictjson"

	"github.com/tokengate/tokengate/exchange"
)

// introspectJWTTyp is the typ of an RFC 9701 response (RFC 9701 5).
const introspectJWTTyp = "token-introspection+jwt"

// members decodes a response body into the RFC 7662 members: the JSON
// object itself, or the token_introspection claim of a verified RFC 9701
// JWT. An error is an outage: the server's answer cannot be trusted.
func (it *introspector) members(ctx context.Context, body []byte, now time.Time) (map[string]json.RawMessage, error) {
	if it.jwtResponse {
		return it.verifyJWTResponse(ctx, body, now)
	}
	m, err := strictjson.Object(body)
	if err != nil {
		return nil, fmt.Errorf("response is not a JSON object with unique names: %w", err)
	}
	return m, nil
}

// entry turns the RFC 7662 members into a cache entry: an active token
// with the claims read exactly as a JWT's, or a rejection. A missing
// "active" is an outage (not an RFC 7662 answer); any other value than
// JSON true is an inactive token.
func (it *introspector) entry(m map[string]json.RawMessage, raw string, hash [32]byte, now time.Time) (*introspectEntry, error) {
	active, ok := m["active"]
	if !ok {
		return nil, errors.New("response has no active member: not an RFC 7662 response")
	}
	reject := func(reason, desc string) (*introspectEntry, error) {
		return &introspectEntry{reject: exchange.Reject(reason, desc, nil)}, nil
	}
	if string(active) != "true" {
		return reject(exchange.ReasonInactive, "token is not active")
	}
	tt, _, err := verifyString(m, "token_type")
	if err != nil {
		return reject(exchange.ReasonMalformed, "introspection member token_type is not a string")
	}
	if strings.EqualFold(tt, "refresh_token") {
		return reject(exchange.ReasonInactive, "a refresh token is not an access token")
	}
	iss := it.iss
	name, hasIss, err := verifyString(m, "iss")
	if err != nil || hasIss && name != iss.name {
		return reject(exchange.ReasonIssuer, "issuer not accepted")
	}
	claims, err := verifyClaimsExp(m, false)
	if err != nil {
		return &introspectEntry{reject: err}, nil
	}
	claims.Issuer = iss.name
	if iss.permissions {
		if claims.Scopes, err = verifyPermissions(m, claims.Scopes); err != nil {
			return &introspectEntry{reject: err}, nil
		}
	}
	ceiling := now.Add(it.maxTTL)
	if claims.Expiry.IsZero() {
		// No exp: the token lives as long as the server says it is active;
		// tokengate asks again after max_cache_ttl.
		claims.Expiry = ceiling
	}
	notAfter := claims.Expiry.Add(iss.leeway)
	if !now.Before(notAfter) {
		return reject(exchange.ReasonExpired, "token expired")
	}
	return &introspectEntry{
		token:     exchange.NewToken(raw, hash, claims, iss.umbrella),
		until:     verifyEarlier(notAfter, ceiling),
		notAfter:  notAfter,
		notBefore: verifyLater(claims.NotBefore, claims.IssuedAt).Add(-iss.leeway),
	}, nil
}

func verifyEarlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// verifyJWTResponse checks an RFC 9701 response: a JWS with typ
// token-introspection+jwt, an allowed alg, signed by one of the issuer's
// keys, iss the issuer, aud our client_id, a recent iat; it returns the
// token_introspection claim. Rejections are flattened to plain errors: a
// bad response is an outage, never a verdict on the client's token.
func (it *introspector) verifyJWTResponse(ctx context.Context, body []byte, now time.Time) (map[string]json.RawMessage, error) {
	raw := strings.TrimSpace(string(body))
	fail := func(format string, args ...any) (map[string]json.RawMessage, error) {
		return nil, fmt.Errorf("signed introspection response: "+format, args...)
	}
	p, err := verifyParse(raw)
	if err != nil {
		return fail("%v", err)
	}
	h, _, _ := strings.Cut(raw, ".")
	hb, _ := verifyB64Decode(h) // verifyParse decoded it already
	hm, _ := strictjson.Object(hb)
	typ, _, _ := verifyString(hm, "typ")
	if !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), introspectJWTTyp) {
		return fail("typ is %q, want %s", typ, introspectJWTTyp)
	}
	iss := it.iss
	if !slices.Contains(iss.algs, jose.SignatureAlgorithm(p.Header.Alg)) {
		return fail("algorithm %q is not allowed for issuer %q", p.Header.Alg, iss.name)
	}
	if err := it.verifySignature(ctx, p.Header, raw); err != nil {
		return fail("%v", err)
	}
	pm := p.Payload
	if name, _, err := verifyString(pm, "iss"); err != nil || name != iss.name {
		return fail("iss is not %q", iss.name)
	}
	aud, err := verifyAudienceClaim(pm)
	if err != nil || !slices.Contains(aud, it.clientID) {
		return fail("aud does not name client_id %q", it.clientID)
	}
	iat, ok, err := verifyNumericDate(pm, "iat")
	switch {
	case err != nil || !ok:
		return fail("iat is missing")
	case iat.After(now.Add(iss.leeway)) || iat.Before(now.Add(-iss.leeway-it.timeout)):
		return fail("iat %s is not recent", iat.Format(time.RFC3339))
	}
	ti, ok := pm["token_introspection"]
	if !ok {
		return fail("no token_introspection claim")
	}
	m, err := strictjson.Object(ti)
	if err != nil {
		return fail("token_introspection is not a JSON object with unique names: %v", err)
	}
	return m, nil
}
