package config

import (
	"net"
	"strings"
)

// TokenEndpointURL returns the absolute URL of the RFC 8693 token endpoint as
// clients see it, for discovery: server.public_url + token_endpoint_path.
// Without public_url it is derived from server.listen when that names a
// concrete host and port (https when server.tls is set); otherwise, and when
// the endpoint is disabled, it is "": an address like ":8080" or
// "0.0.0.0:8080" says nothing about how clients reach the gateway, and a
// wrong URL in discovery is worse than none.
func (s Server) TokenEndpointURL() string {
	p := s.TokenEndpoint()
	if p == "" {
		return ""
	}
	if s.PublicURL != "" {
		return strings.TrimRight(s.PublicURL, "/") + p
	}
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil || port == "0" || port == "" || host == "" {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return ""
	}
	scheme := "http://"
	if s.TLS != nil {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + p
}
