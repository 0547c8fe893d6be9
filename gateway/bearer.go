package gateway

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// Authorization header problems. missing ones become 401 with a realm
// challenge, the others 400 invalid_request (RFC 6750 section 3.1).
var (
	errNoBearer         = &bearerError{missing: true, reason: ReasonMissing, description: "a bearer token is required"}
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
// query parameter access_token is never read here: requestCredentials
// refuses it.
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

func isToken68Char(c byte) bool { return token68Chars[c] }

// token68Chars marks the bytes a token68 is made of: a table, because
// every request's token (hundreds of bytes) is scanned with it.
var token68Chars = func() (t [256]bool) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
			t[c] = true
		}
	}
	return t
}()

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

// Tokens sent another way than the Authorization header (RFC 6750 section
// 3.1: a request must not use more than one method). A query token alone
// is no credential at all: 401 with the realm challenge, so the client
// learns where the token belongs.
var (
	errTokenInQueryAndHeader = &bearerError{reason: ReasonCredentials,
		description: "the request sends a token both in the Authorization header and as the access_token query parameter: use the header only"}
	errTokenInQueryOnly = &bearerError{missing: true, reason: ReasonCredentials,
		description: "an access_token query parameter is not accepted: send the token in the Authorization header"}
	errTokenInSubprotocol = &bearerError{reason: ReasonCredentials,
		description: "Sec-WebSocket-Protocol holds a token: send it only in the Authorization header"}
)

// requestCredentials is the one access token of an edge request, with
// every other place a token could travel checked: an access_token query
// parameter (beside the header: 400; alone: 401, never used, never
// forwarded) and the WebSocket subprotocols (a token there would reach the
// upstream: 400). A form-body access_token is never read; the gateway does
// not buffer proxied bodies.
func requestCredentials(r *http.Request) (scheme, token string, err error) {
	inQuery := queryHasAccessToken(r.URL.RawQuery)
	if inQuery && len(r.Header["Authorization"]) > 0 {
		return "", "", errTokenInQueryAndHeader
	}
	scheme, token, err = accessToken(r.Header)
	if err != nil {
		if inQuery && err == errNoBearer {
			err = errTokenInQueryOnly
		}
		return scheme, token, err
	}
	if subprotocolHoldsToken(r.Header, token) {
		return scheme, "", errTokenInSubprotocol
	}
	return scheme, token, nil
}

// queryHasAccessToken reports whether a raw query names access_token. Keys
// are compared after unescaping and case-insensitively (some frameworks
// read query keys so), and a key that cannot be unescaped counts: it
// cannot be checked.
func queryHasAccessToken(q string) bool {
	if q == "" {
		return false
	}
	for pair := range strings.SplitSeq(q, "&") {
		key, _, _ := strings.Cut(pair, "=")
		if isAccessTokenKey(key) {
			return true
		}
	}
	return false
}

// isAccessTokenKey reports whether a raw query key names access_token (see
// queryHasAccessToken); stripAccessToken drops the same keys.
func isAccessTokenKey(raw string) bool {
	k, err := url.QueryUnescape(raw)
	return err != nil || strings.EqualFold(k, "access_token")
}

// subprotocolHoldsToken reports whether a Sec-WebSocket-Protocol entry
// carries a token: the presented one (as it is, or base64-encoded inside
// an entry, as Kubernetes' "base64url.bearer.authorization.k8s.io." does)
// or any JWT. Browsers cannot set Authorization on a WebSocket, so apps
// put tokens there, and ReverseProxy forwards the header as it is: an
// umbrella token there would reach the upstream.
func subprotocolHoldsToken(h http.Header, token string) bool {
	values := h["Sec-Websocket-Protocol"]
	if len(values) == 0 {
		return false
	}
	var encoded []string
	if len(token) >= minRedactLen { // a shorter "token" would match by chance
		encoded = []string{
			token,
			base64.RawURLEncoding.EncodeToString([]byte(token)),
			base64.RawStdEncoding.EncodeToString([]byte(token)),
		}
	}
	for _, v := range values {
		for entry := range strings.SplitSeq(v, ",") {
			entry = strings.Trim(entry, " \t")
			if entry == token || looksLikeJWT(entry) {
				return true
			}
			for _, e := range encoded {
				if strings.Contains(entry, e) {
					return true
				}
			}
		}
	}
	return false
}

// looksLikeJWT reports whether s holds a compact JWS or JWE: a base64url
// JSON header ("eyJ" is `{"`) followed by at least two more dot-separated
// parts, anywhere in s (an entry may prefix it, "access_token.eyJ...").
func looksLikeJWT(s string) bool {
	i := strings.Index(s, "eyJ")
	return i >= 0 && strings.Count(s[i:], ".") >= 2
}
