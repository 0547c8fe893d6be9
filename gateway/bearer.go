package gateway

import (
	"net/http"
	"strings"
)

// Authorization header problems. missing ones become 401 with a realm
// challenge, the others 400 invalid_request (RFC 6750 section 3.1).
var (
	errNoBearer         = &bearerError{missing: true, description: "a bearer token is required"}
	errSeveralHeaders   = &bearerError{description: "several Authorization headers"}
	errMalformedHeader  = &bearerError{description: "the Authorization header is malformed"}
	errSeveralCreds     = &bearerError{description: "the Authorization header holds several credentials"}
	errEmptyToken       = &bearerError{description: "the bearer token is empty"}
	errTokenNotToken68  = &bearerError{description: "the bearer token is not a token68 value"}
	errSchemeWithParams = &bearerError{description: "the Authorization header holds a non-Bearer credential with parameters"}
)

// Authorization schemes that carry an access token.
const (
	schemeBearer = "Bearer"
	schemeDPoP   = "DPoP" // RFC 9449 section 7.1
)

// accessToken extracts the one access token of a request (RFC 6750 section
// 2.1, RFC 9449 section 7.1) and its scheme, schemeBearer or schemeDPoP.
// Exactly one Authorization header; the scheme is case-insensitive;
// any run of spaces or tabs may separate it from exactly one token68 value.
// A single credential of another scheme (Basic ...) means no bearer token;
// another scheme with parameters or several credentials is malformed. The
// query parameter access_token is never read.
func accessToken(h http.Header) (scheme, token string, err error) {
	values := h["Authorization"]
	switch len(values) {
	case 0:
		return "", "", errNoBearer
	case 1:
	default:
		return "", "", errSeveralHeaders
	}
	v := strings.Trim(values[0], " \t")
	if v == "" {
		return "", "", errMalformedHeader
	}

	end := strings.IndexAny(v, " \t")
	scheme, rest := v, ""
	if end >= 0 {
		scheme, rest = v[:end], strings.TrimLeft(v[end:], " \t")
	}
	if !isToken(scheme) {
		return "", "", errMalformedHeader
	}
	switch {
	case strings.EqualFold(scheme, schemeBearer):
		scheme = schemeBearer
	case strings.EqualFold(scheme, schemeDPoP):
		scheme = schemeDPoP
	default:
		// Another scheme alone, or with one token68: simply not a bearer token.
		if rest == "" || isToken68(rest) {
			return "", "", errNoBearer
		}
		return "", "", errSchemeWithParams
	}
	switch {
	case rest == "":
		return "", "", errEmptyToken
	case isToken68(rest):
		// One pass over the token on the hot path: a token68 holds no ",",
		// space or tab, so the scan below only runs to name a failure.
		return scheme, rest, nil
	case strings.ContainsAny(rest, ", \t"):
		return "", "", errSeveralCreds
	default:
		return "", "", errTokenNotToken68
	}
}

// isToken68 reports whether s is an RFC 9110 token68:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	i := 0
	for i < len(s) && isToken68Char(s[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(s) && s[i] == '=' {
		i++
	}
	return i == len(s)
}

func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '+', '/':
		return true
	}
	return false
}

// isToken reports whether s is an RFC 9110 token (an auth-scheme).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
