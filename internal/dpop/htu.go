package dpop

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// NormalizeURL returns the RFC 3986 syntax-normalized form of an htu value
// (section 6.2.2): scheme and host lowercased, the scheme's default port
// removed, percent-encodings uppercased and those of unreserved characters
// decoded, an empty path made "/". It refuses anything that is not an
// absolute http(s) URL, and any query or fragment (RFC 9449 section 4.2:
// htu carries neither).
func NormalizeURL(s string) (string, error) {
	if strings.ContainsAny(s, "?#") {
		return "", errors.New("htu has a query or a fragment")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("htu is not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("htu is not an absolute http or https URL")
	}
	if u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", errors.New("htu has no host, or has user information")
	}
	host := strings.ToLower(u.Host)
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	host = strings.TrimSuffix(host, ":") // an empty port is the default port
	path := normalizePercent(u.EscapedPath())
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePercent uppercases the hex digits of percent-encodings and
// decodes those of unreserved characters (RFC 3986 section 6.2.2.1-2).
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			c := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(c) {
				b.WriteByte(c)
			} else {
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(p[i+1 : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// Origin returns the normalized "scheme://authority" of a scheme and an
// authority (host[:port]) that a trusted proxy reported (X-Forwarded-Proto,
// X-Forwarded-Host), for building the htu a proof must name. It refuses a
// scheme other than http(s) and an authority that is not a bare host and
// port (a path, user information, a query, spaces).
func Origin(scheme, authority string) (string, error) {
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("the forwarded scheme is not http or https")
	}
	if authority == "" || strings.ContainsAny(authority, "/\\?#@ \t") {
		return "", errors.New("the forwarded host is not a host and port")
	}
	u, err := NormalizeURL(scheme + "://" + authority + "/")
	if err != nil {
		return "", fmt.Errorf("the forwarded host is not a host and port: %w", err)
	}
	return strings.TrimSuffix(u, "/"), nil
}
