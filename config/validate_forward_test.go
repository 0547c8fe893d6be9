package config

import "testing"

// TestValidateTrustedProxiesAndDPoPURL: server.trusted_proxies entries are
// CIDRs or single addresses, each problem at its key path; a require_dpop
// route where no DPoP htu can be built is refused.
func TestValidateTrustedProxiesAndDPoPURL(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"CIDRs and addresses", func(c *Config) {
			c.Server.TrustedProxies = []string{"10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1", "127.0.0.1/32"}
		}, nil},
		{"bad entries", func(c *Config) {
			c.Server.TrustedProxies = []string{"10.0.0.0/8", "lb.internal", "10.0.0.1/8", "10.0.0.0/33", "0.0.0.0/0", "10.0.0.0/8", "fe80::1%eth0"}
		}, []string{
			`server.trusted_proxies[1]: "lb.internal" is not an IP address or a CIDR`,
			`server.trusted_proxies[2]: "10.0.0.1/8" has host bits set: write the network, 10.0.0.0/8`,
			`server.trusted_proxies[3]: "10.0.0.0/33" is not a CIDR`,
			`server.trusted_proxies[4]: "0.0.0.0/0" trusts every address`,
			`server.trusted_proxies[5]: "10.0.0.0/8" is also trusted_proxies[0]`,
			`server.trusted_proxies[6]: "fe80::1%eth0" is not an IP address or a CIDR`,
		}},
		{"require_dpop with listen on every interface", func(c *Config) {
			c.Server.Listen = ":8080"
			c.Routes[0].RequireDPoP = true
		}, []string{"routes[0].require_dpop: DPoP proofs cannot be checked on this route: the gateway does not know the URL clients use (htu)"}},
		{"require_dpop with a route host", func(c *Config) {
			c.Server.Listen = "0.0.0.0:8080"
			c.Routes[0].RequireDPoP = true
			c.Routes[0].Host = "api.example.com"
		}, nil},
		{"require_dpop with public_url", func(c *Config) {
			c.Server.Listen = ":8080"
			c.Server.PublicURL = "https://api.example.com"
			c.Routes[0].RequireDPoP = true
		}, nil},
		{"require_dpop with trusted_proxies", func(c *Config) {
			c.Server.Listen = ":8080"
			c.Server.TrustedProxies = []string{"10.0.0.0/8"}
			c.Routes[0].RequireDPoP = true
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseInDir(t, baseYAML)
			c.src = nil
			tt.change(c)
			assertProblems(t, c.Validate(), tt.want)
		})
	}
}
