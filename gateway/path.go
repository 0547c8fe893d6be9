package gateway

import (
	"net/http"
	"strings"
)

// pathError is a request path refused before any route is matched (400
// invalid_request). Its description names the rule, never the path: a path
// is attacker input.
type pathError struct {
	description string
	reason      string // ReasonPath when ""
}

func (e *pathError) Error() string { return "request path: " + e.description }

func (e *pathError) response() response {
	reason := e.reason
	if reason == "" {
		reason = ReasonPath
	}
	return response{status: http.StatusBadRequest, code: "invalid_request", description: e.description, reason: reason}
}

// Path problems: backends disagree on what these mean, so a path holding
// one could reach another API there than the one tokengate matched.
var (
	errPathParam     = &pathError{description: "the path holds \";\": path parameters are not accepted"}
	errPathBackslash = &pathError{description: "the path holds a backslash (\"\\\" or %5C)"}
	errPathSlash     = &pathError{description: "the path holds an encoded slash (%2F)"}
	errPathDouble    = &pathError{description: "the path holds a double percent-encoding (an escape left after decoding it once, like %252F)"}
	errPathControl   = &pathError{description: "the path holds a control character or an unencoded space"}
	errPathEscape    = &pathError{description: "the path holds a malformed percent-encoding"}
	errPathStart     = &pathError{description: "the path does not start with \"/\""}
	errPathFold      = &pathError{description: "the path reaches a stricter route once letters are lower-cased or trailing dots removed from its segments: " +
		"spell the path as the route is configured"}
)

// checkPath applies the path rules to a request path as the client sent it
// (escaped, without the query): every entry point calls it before any
// route is matched, so the answer is 400 even where no route would match.
// Refused: ";" (path parameters, decoded or not), "\" and %5C, an encoded
// "/" (%2F), a double encoding (an escape still there once the path is
// decoded, like %252F: a backend that decodes twice would turn it into any
// of these, or a "."),
// control characters (encoded or not; a C backend stops at %00), a raw
// space, and a malformed escape. Hex digits are
// matched in any case.
func checkPath(rawPath string) error {
	if rawPath == "*" {
		return nil // OPTIONS *: no path, and never a route
	}
	if !strings.HasPrefix(rawPath, "/") {
		return errPathStart
	}
	decoded := make([]byte, 0, len(rawPath))
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		if c == ' ' {
			return errPathControl // raw; an encoded space (%20) is fine
		}
		if c == '%' {
			if i+2 >= len(rawPath) || !isHex(rawPath[i+1]) || !isHex(rawPath[i+2]) {
				return errPathEscape
			}
			c = unhex(rawPath[i+1])<<4 | unhex(rawPath[i+2])
			if c == '/' {
				return errPathSlash
			}
			i += 2
		}
		switch {
		case c == ';':
			return errPathParam
		case c == '\\':
			return errPathBackslash
		case c < ' ' || c == 0x7f:
			return errPathControl
		}
		decoded = append(decoded, c)
	}
	// Decoded once, the path must hold no escape left for a second decoding
	// ("%252F", "%25%32%46" are "%2F" once decoded).
	for i := 0; i+2 < len(decoded); i++ {
		if decoded[i] == '%' && isHex(decoded[i+1]) && isHex(decoded[i+2]) {
			return errPathDouble
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// requestPath is the path of r as the client sent it, still escaped:
// the request-target of HTTP/1.x or HTTP/2's :path (rawPathOf). r.URL.Path
// is decoded and RawPath is kept only when it is a valid encoding, so
// neither can show every spelling.
func requestPath(r *http.Request) string {
	if r.RequestURI == "" { // a request made in process (tests): its URL is all there is
		return r.URL.EscapedPath()
	}
	return rawPathOf(r.RequestURI)
}

// rawPathOf is the escaped path of a request-target, for checkPath: an
// origin-form target ("/a/b?q") less its query; an absolute-form one
// ("http://host/a/b?q", as in X-Original-URL) less its scheme, authority
// and query ("/" when it has no path). "*" and a CONNECT's authority-form
// target have no path: "*", which checkPath accepts (no route matches them).
func rawPathOf(target string) string {
	switch {
	case strings.HasPrefix(target, "/"):
	case strings.Contains(target, "://"):
		rest := target[strings.Index(target, "://")+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 && rest[j] == '/' {
			target = rest[j:]
		} else {
			return "/"
		}
	default:
		return "*"
	}
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	return target
}

// foldPath is p as a backend that folds case and trims trailing dots (and
// spaces, as IIS does) from segments would read it.
func foldPath(p string) string {
	if alreadyFolded(p) {
		return p // the common case: no copy
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = strings.TrimRight(strings.ToLower(s), ". ")
	}
	return strings.Join(segs, "/")
}

// alreadyFolded reports whether foldPath(p) == p without building it: ASCII
// without upper case, and no segment ending in a dot or a space.
func alreadyFolded(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c >= 0x80 || 'A' <= c && c <= 'Z':
			return false
		case (c == '.' || c == ' ') && (i+1 == len(p) || p[i+1] == '/'):
			return false
		}
	}
	return true
}

// checkFold enforces the fold rule on a matched request: the path matched
// route rt as written; if, once folded (foldPath), it would match a route
// with a longer path_prefix (or the token endpoint) that it does not
// match as written, it is refused. A backend that folds case or trims dots
// must never serve a stricter API through a looser route. rt may be nil:
// a path that matches no route as written but one once folded ("/API/admin"
// with routes /api and /api/admin) is refused too, not answered 404.
func (g *Gateway) checkFold(host, p string, rt *route) error {
	folded := foldPath(p)
	if g.tokenPath != "" && p != g.tokenPath && folded == g.tokenFold {
		return errPathFold
	}
	if folded == p && g.prefixesFolded {
		return nil // nothing can change: the common case costs one pass
	}
	matched := -1 // no route as written: any route the fold reaches is longer
	if rt != nil {
		matched = len(rt.match.prefix)
	}
	for _, other := range g.routes {
		if len(other.match.prefix) <= matched || (other.match.host != "" && !hostEqual(host, other.match.host)) {
			continue
		}
		if hasSegmentPrefix(folded, other.match.foldedPrefix) && !hasSegmentPrefix(p, other.match.prefix) {
			return errPathFold
		}
	}
	return nil
}
