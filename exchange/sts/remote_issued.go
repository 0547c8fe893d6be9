package sts

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/oauthclient"
)

// errIssuedTokenMismatch: the STS answered 200 with a token that is not for
// what was asked (another audience, or already expired). It is an unusable
// answer (503), never forwarded: the backend would refuse it at best, and at
// worst accept a token meant for another API.
var errIssuedTokenMismatch = errors.New("the issued token does not fit the request")

// checkIssuedJWT checks a JWT-shaped token the STS issued, WITHOUT verifying
// its signature (the STS is trusted for that, and the backend verifies it):
// its aud must name audience (a string, or an array holding it), and its
// exp, when present, must be after now. A token that is not a JWS compact
// serialization (an opaque token, a JWE) is not inspected: only the STS and
// the backend can read it. The error never quotes the token.
func checkIssuedJWT(token, audience string, now time.Time) error {
	claims, isJWT, err := unverifiedJWSClaims(token)
	if !isJWT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: a JWS whose payload is not a JSON object of claims: %w", errIssuedTokenMismatch, err)
	}
	auds, err := audienceList(claims["aud"])
	switch {
	case err != nil:
		return fmt.Errorf("%w: aud: %w", errIssuedTokenMismatch, err)
	case len(auds) == 0:
		return fmt.Errorf("%w: it has no aud; want %q", errIssuedTokenMismatch, oauthclient.Sanitize(audience))
	case !slices.Contains(auds, audience):
		return fmt.Errorf("%w: its aud %s does not name %q", errIssuedTokenMismatch, showAudiences(auds), oauthclient.Sanitize(audience))
	}
	if raw, ok := claims["exp"]; ok {
		var exp float64
		if err := json.Unmarshal(raw, &exp); err != nil || math.IsNaN(exp) {
			return fmt.Errorf("%w: exp is not a number", errIssuedTokenMismatch)
		}
		if exp <= float64(now.Unix()) {
			return fmt.Errorf("%w: it expired at %s", errIssuedTokenMismatch, time.Unix(int64(exp), 0).UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// unverifiedJWSClaims reads the claims of a JWS compact serialization
// without verifying it. isJWT is false for anything that is not three
// base64url parts whose first is a JSON header with an alg: such a token is
// opaque to tokengate. err is set for a JWS whose payload is not a JSON
// object.
func unverifiedJWSClaims(token string) (claims map[string]json.RawMessage, isJWT bool, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false, nil
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, false, nil
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hb, &header) != nil || header.Alg == "" {
		return nil, false, nil
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, true, errors.New("the payload is not base64url")
	}
	if err := json.Unmarshal(pb, &claims); err != nil || claims == nil {
		return nil, true, errors.New("the payload is not a JSON object")
	}
	return claims, true, nil
}

// audienceList reads an aud claim: absent, a string, or an array of strings
// (RFC 7519 4.1.3).
func audienceList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("not a string or an array of strings")
	}
	return many, nil
}

// showAudiences writes an aud for a log line: sanitized and bounded (the
// STS's text), at most four values.
func showAudiences(auds []string) string {
	shown := make([]string, 0, 4)
	for i, a := range auds {
		if i == 4 {
			shown = append(shown, fmt.Sprintf("... (%d more)", len(auds)-4))
			break
		}
		shown = append(shown, fmt.Sprintf("%q", oauthclient.Sanitize(a)))
	}
	return "[" + strings.Join(shown, ", ") + "]"
}
