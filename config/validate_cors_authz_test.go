package config

import (
	"strings"
	"testing"
)

// TestValidateCORSAndAuthz: cors blocks and authz listeners, each problem
// at its key path.
func TestValidateCORSAndAuthz(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"global and route cors", func(c *Config) {
			c.CORS = &CORS{AllowedOrigins: []string{"https://www.example.com", "http://localhost:3000"}}
			c.Routes[0].CORS = &CORS{AllowedOrigins: []string{}}
		}, nil},
		{"wildcard with credentials", func(c *Config) {
			c.CORS = &CORS{AllowedOrigins: []string{"*"}, AllowCredentials: true}
		}, []string{`cors.allow_credentials: is true while allowed_origins holds "*"`}},
		{"wildcard with credentials on a route", func(c *Config) {
			c.Routes[0].CORS = &CORS{AllowedOrigins: []string{"*"}, AllowCredentials: true}
		}, []string{`routes[0].cors.allow_credentials: is true while allowed_origins holds "*"`}},
		{"bad origins, methods and headers", func(c *Config) {
			c.CORS = &CORS{
				AllowedOrigins: []string{"https://www.example.com/", "www.example.com", "https://WWW.example.com"},
				AllowedMethods: []string{"GET", "GE T"},
				AllowedHeaders: []string{"X-Ok", "X:Bad"},
				MaxAge:         -1,
			}
		}, []string{
			`cors.allowed_origins[0]: "https://www.example.com/" is not an origin`,
			`cors.allowed_origins[1]: "www.example.com" is not an origin`,
			`cors.allowed_origins[2]: "https://WWW.example.com" has upper-case letters`,
			`cors.allowed_methods[1]: "GE T" is not an HTTP method`,
			`cors.allowed_headers[1]: "X:Bad" is not a header name`,
			`cors.max_age: -1ns is negative`,
		}},
		{"authz listeners", func(c *Config) {
			c.Authz = Authz{Listen: "127.0.0.1:8081", GRPCListen: "127.0.0.1:8082", PathPrefix: "/ext-authz"}
		}, nil},
		{"authz on the edge and admin addresses", func(c *Config) {
			c.Server.Listen, c.Server.AdminListen = "127.0.0.1:8080", "127.0.0.1:9090"
			c.Authz = Authz{Listen: "127.0.0.1:8080", GRPCListen: "0.0.0.0:9090", PathPrefix: "ext/"}
		}, []string{
			`authz.listen: "127.0.0.1:8080" is the same address as server.listen`,
			`authz.grpc_listen: "0.0.0.0:9090" is the same address as server.admin_listen`,
			`authz.path_prefix: "ext/" must start with "/"`,
		}},
		{"route without upstream needs authz", func(c *Config) {
			c.Routes[0].Upstream = ""
		}, []string{"routes[0].upstream: is empty"}},
		{"route without upstream with authz", func(c *Config) {
			c.Routes[0].Upstream = ""
			c.Authz.GRPCListen = "127.0.0.1:8082"
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

// TestCORSDefaults: a block's omitted keys take the defaults; a route's
// block replaces the global one as a whole.
func TestCORSDefaults(t *testing.T) {
	text := strings.Replace(baseYAML, "routes:\n", "cors:\n  allowed_origins: [\"https://www.example.com\"]\n  allow_credentials: true\n  allowed_methods: [GET]\nroutes:\n", 1)
	c := parseInDir(t, text)
	if c.CORS == nil || c.CORS.MaxAge.D().String() != "10m0s" || len(c.CORS.AllowedHeaders) != 4 || len(c.CORS.AllowedMethods) != 1 {
		t.Fatalf("global cors %+v", c.CORS)
	}
	if c.CORSFor(0) != c.CORS {
		t.Error("a route without cors does not use the global block")
	}
}
