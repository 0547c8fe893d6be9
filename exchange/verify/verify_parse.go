package verify

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/exchange"
)

// NumericDate bounds. A value outside them still fits int64 seconds and is
// accepted, but is clamped so that time arithmetic (exp + leeway) cannot
// overflow and turn a far-future nbf into a past one.
const (
	verifyMinUnix = -62135596800 // 0001-01-01T00:00:00Z
	verifyMaxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

// verifyStrings reads an optional array of strings.
func verifyStrings(m map[string]json.RawMessage, name string) ([]string, bool, error) {
	raw, ok := m[name]
	if !ok {
		return nil, false, nil
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil, true, errVerifyClaimType
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, true, errVerifyClaimType
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		if len(it) == 0 || it[0] != '"' {
			return nil, true, errVerifyClaimType
		}
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, true, errVerifyClaimType
		}
		out = append(out, s)
	}
	return out, true, nil
}

var errVerifyClaimType = exchange.ErrClaimType

// verifyNumericDate reads an optional NumericDate: a JSON number (integral or
// fractional) that fits int64 seconds. Strings, booleans, null and numbers out
// of range are errors.
func verifyNumericDate(m map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := m[name]
	if !ok {
		return time.Time{}, false, nil
	}
	if len(raw) == 0 || !(raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9') {
		return time.Time{}, true, errVerifyClaimType
	}
	s := string(raw)
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return verifyUnix(sec, 0), true, nil
	}
	if !strings.ContainsAny(s, ".eE") {
		return time.Time{}, true, errVerifyClaimType // an integer beyond int64
	}
	f, err := strconv.ParseFloat(s, 64)
	// -2^63 is exactly representable; 2^63 is the first value beyond int64.
	if err != nil || math.IsNaN(f) || f < -9223372036854775808.0 || f >= 9223372036854775808.0 {
		return time.Time{}, true, errVerifyClaimType
	}
	sec, frac := math.Modf(f)
	return verifyUnix(int64(sec), int64(frac*1e9)), true, nil
}

// verifyUnix converts seconds to a time, clamped to years 1..9999.
func verifyUnix(sec, nsec int64) time.Time {
	switch {
	case sec < verifyMinUnix:
		sec, nsec = verifyMinUnix, 0
	case sec > verifyMaxUnix:
		sec, nsec = verifyMaxUnix, 0
	}
	return time.Unix(sec, nsec).UTC()
}

// verifyClaims types the payload's claims. iss has already been matched.
func verifyClaims(m map[string]json.RawMessage) (exchange.Claims, error) {
	return verifyClaimsExp(m, true)
}

// verifyClaimsExp is verifyClaims where exp may be optional (an RFC 7662
// response need not carry it): then Claims.Expiry is zero.
func verifyClaimsExp(m map[string]json.RawMessage, requireExp bool) (exchange.Claims, error) {
	c := exchange.Claims{Extra: m}
	malformed := func(desc string) (exchange.Claims, error) {
		return exchange.Claims{}, exchange.Reject(exchange.ReasonMalformed, desc, nil)
	}
	var err error
	var ok bool
	c.Issuer, _, _ = verifyString(m, "iss")
	if c.Expiry, ok, err = verifyNumericDate(m, "exp"); err != nil {
		return malformed("claim exp is not a NumericDate")
	} else if !ok && requireExp {
		return malformed("claim exp is required")
	}
	if c.NotBefore, _, err = verifyNumericDate(m, "nbf"); err != nil {
		return malformed("claim nbf is not a NumericDate")
	}
	if c.IssuedAt, _, err = verifyNumericDate(m, "iat"); err != nil {
		return malformed("claim iat is not a NumericDate")
	}
	if c.AuthTime, _, err = verifyNumericDate(m, "auth_time"); err != nil {
		return malformed("claim auth_time is not a NumericDate")
	}
	if c.Audience, err = verifyAudienceClaim(m); err != nil {
		return malformed("claim aud is not a string or an array of strings")
	}
	for _, sc := range []struct {
		name string
		dst  *string
	}{
		{"sub", &c.Subject}, {"client_id", &c.ClientID}, {"azp", &c.AZP},
		{"acr", &c.ACR}, {"jti", &c.ID},
	} {
		if *sc.dst, _, err = verifyString(m, sc.name); err != nil {
			return malformed("claim " + sc.name + " is not a string")
		}
	}
	if c.ClientID == "" {
		c.ClientID = c.AZP
	}
	scope, hasScope, err := verifyString(m, "scope")
	if err != nil {
		return malformed("claim scope is not a string")
	}
	scp, _, err := verifyStrings(m, "scp")
	if err != nil {
		return malformed("claim scp is not an array of strings")
	}
	if hasScope {
		c.Scopes = verifySplitScope(scope)
	} else {
		c.Scopes = scp
	}
	if c.AMR, _, err = verifyStrings(m, "amr"); err != nil {
		return malformed("claim amr is not an array of strings")
	}
	if c.JKT, err = verifyConfirmation(m); err != nil {
		return exchange.Claims{}, err
	}
	return c, nil
}

// verifyConfirmation reads cnf (RFC 7800) and returns its jkt (RFC 9449).
// A token bound any other way (x5t#S256 for mTLS, jwk, kid) cannot be
// checked here, so it is refused rather than accepted as a bearer token:
// fail closed.
func verifyConfirmation(m map[string]json.RawMessage) (string, error) {
	raw, ok := m["cnf"]
	if !ok {
		return "", nil
	}
	var cnf map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cnf); err != nil || cnf == nil {
		return "", exchange.Reject(exchange.ReasonMalformed, "claim cnf is not an object", nil)
	}
	jkt, hasJKT, err := verifyString(cnf, "jkt")
	switch {
	case err != nil:
		return "", exchange.Reject(exchange.ReasonMalformed, "claim cnf.jkt is not a string", nil)
	case !hasJKT || jkt == "":
		return "", exchange.Reject(exchange.ReasonBinding, "the token is bound by a confirmation method other than DPoP (cnf.jkt)", nil)
	}
	return jkt, nil
}

// verifyPermissions adds the entries of the "permissions" claim (Auth0 RBAC:
// an array of strings) that scopes lacks. Absent is fine; another type is a
// malformed token, as a scope claim of the wrong type is.
func verifyPermissions(m map[string]json.RawMessage, scopes []string) ([]string, error) {
	perms, _, err := verifyStrings(m, "permissions")
	if err != nil {
		return nil, exchange.Reject(exchange.ReasonMalformed, "claim permissions is not an array of strings", nil)
	}
	for _, p := range perms {
		if p != "" && !strings.ContainsAny(p, " \t") && !slices.Contains(scopes, p) {
			scopes = append(scopes, p)
		}
	}
	return scopes, nil
}

// verifyAudienceClaim reads aud as a string or an array of strings; absent
// yields nil (rejected later as an audience failure, not as malformed).
func verifyAudienceClaim(m map[string]json.RawMessage) ([]string, error) {
	raw, ok := m["aud"]
	if !ok {
		return nil, nil
	}
	if len(raw) > 0 && raw[0] == '"' {
		s, _, err := verifyString(m, "aud")
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	aud, _, err := verifyStrings(m, "aud")
	return aud, err
}

// verifySplitScope splits an RFC 6749 scope string on spaces, dropping empty items.
func verifySplitScope(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, " ") {
		if item != "" {
			out = append(out, item)
		}
	}
	return out
}
