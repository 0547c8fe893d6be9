package oauthclient

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// MetadataURLs are where an issuer's metadata may be read, in order: OpenID
// Connect discovery ({issuer}/.well-known/openid-configuration), then
// RFC 8414 (the well-known path inserted between host and the issuer's
// path).
func MetadataURLs(issuer string) []string {
	urls := []string{strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"}
	if u, err := url.Parse(issuer); err == nil {
		u.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		urls = append(urls, u.String())
	}
	return urls
}

// CheckEndpointURL accepts absolute https URLs, and http ones on loopback
// or when allowInsecure: keys fetched without TLS can be forged in transit,
// credentials and tokens sent without it can be read, and metadata must not
// downgrade an endpoint to http.
func CheckEndpointURL(s string, allowInsecure bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.Scheme == "http" && !allowInsecure && !loopback(u.Hostname()) {
		return fmt.Errorf("%q uses plain http on a non-loopback host (allow_insecure_http is off)", s)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
