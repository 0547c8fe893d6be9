package config

import (
	"path/filepath"
	"testing"
)

// TestValidateUpstreamSchemesAndTLS: h2c:// upstreams take the http://
// form; routes[].tls applies to https:// upstreams only, a client
// certificate needs both files, and every file must exist.
func TestValidateUpstreamSchemesAndTLS(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config, dir string)
		want   []string
	}{
		{"h2c upstream", func(c *Config, _ string) { c.Routes[0].Upstream = "h2c://127.0.0.1:50051" }, nil},
		{"h2c upstream with a path", func(c *Config, _ string) { c.Routes[0].Upstream = "h2c://grpc.internal:50051/base" }, nil},
		{"h2c upstream without a host", func(c *Config, _ string) { c.Routes[0].Upstream = "h2c:///x" },
			[]string{`routes[0].upstream: "h2c:///x" has no host`}},
		{"h2c upstream with a query", func(c *Config, _ string) { c.Routes[0].Upstream = "h2c://h:1?a=b" },
			[]string{`routes[0].upstream: "h2c://h:1?a=b" has a query`}},
		{"https upstream with full tls", func(c *Config, dir string) {
			key := filepath.Join(dir, "keys/es256.pem")
			c.Routes[0].Upstream = "https://orders.internal:8443"
			c.Routes[0].TLS = &UpstreamTLS{CAFile: key, CertFile: key, KeyFile: key, ServerName: "orders.internal"}
		}, nil},
		{"tls on an http upstream", func(c *Config, _ string) {
			c.Routes[0].Upstream = "http://orders.internal"
			c.Routes[0].TLS = &UpstreamTLS{InsecureSkipVerify: true}
		}, []string{"routes[0].tls: is set but the upstream is not https://"}},
		{"tls on an h2c upstream", func(c *Config, _ string) {
			c.Routes[0].Upstream = "h2c://orders.internal:50051"
			c.Routes[0].TLS = &UpstreamTLS{ServerName: "orders.internal"}
		}, []string{"routes[0].tls: is set but the upstream is not https://"}},
		{"only cert_file", func(c *Config, dir string) {
			c.Routes[0].Upstream = "https://orders.internal"
			c.Routes[0].TLS = &UpstreamTLS{CertFile: filepath.Join(dir, "keys/es256.pem")}
		}, []string{"routes[0].tls: has only one of cert_file and key_file"}},
		{"missing files and a bad server_name", func(c *Config, dir string) {
			c.Routes[0].Upstream = "https://orders.internal"
			c.Routes[0].TLS = &UpstreamTLS{
				CAFile:     filepath.Join(dir, "nope/ca.pem"),
				CertFile:   filepath.Join(dir, "nope/c.pem"),
				KeyFile:    filepath.Join(dir, "nope/k.pem"),
				ServerName: "orders internal",
			}
		}, []string{
			"routes[0].tls.ca_file:", "routes[0].tls.cert_file:", "routes[0].tls.key_file:",
			"routes[0].tls.server_name: contains whitespace",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseInDir(t, baseYAML)
			c.src = nil
			tt.change(c, c.Dir)
			assertProblems(t, c.Validate(), tt.want)
		})
	}
}
