package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange/keys"
)

const (
	// ioOpaqueUmbrella is the resource whose access tokens the provider
	// issues opaque; it is also their aud (tokengate's umbrella_audience).
	ioOpaqueUmbrella = "urn:tokengate:opaque"
	// ioIntrospectClient is tokengate's client at the introspection
	// endpoint; it asks for RS256-signed RFC 9701 responses when it sends
	// Accept: application/token-introspection+jwt.
	ioIntrospectClient = "tokengate-introspect"
)

// ioIntrospectionProviderConfig is ioProviderConfig with opaque umbrella
// tokens and tokengate's introspection client.
func ioIntrospectionProviderConfig(t *testing.T) []byte {
	t.Helper()
	keyPath := filepath.Join(t.TempDir(), "unused-client.pem")
	writeES256Key(t, keyPath)
	unused, err := keys.LoadClientKey(config.SigningKey{File: keyPath, Alg: "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(ioProviderConfig(t, unused.Public), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["opaqueUmbrella"] = ioOpaqueUmbrella
	cfg["clients"] = append(cfg["clients"].([]any), map[string]any{
		"client_id": ioIntrospectClient, "client_secret": ioBasicSecret,
		"grant_types": []string{}, "response_types": []string{}, "redirect_uris": []string{},
		"token_endpoint_auth_method":        "client_secret_basic",
		"introspection_signed_response_alg": "RS256",
	})
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInteropIntrospectionNodeOIDCProvider: node-oidc-provider issues an
// OPAQUE umbrella token; tokengate finds the provider's introspection
// endpoint through discovery, introspects the token there with
// client_secret_basic (plain JSON, then RFC 9701 signed responses), and
// exchanges it for single-audience tokens that go-oidc and jose backends
// accept for their own API only.
func TestInteropIntrospectionNodeOIDCProvider(t *testing.T) {
	node := requireNode(t)
	issuer := startProvider(t, node, ioIntrospectionProviderConfig(t))
	umbrella := clientCredentials(t, issuer, ioOpaqueUmbrella, "orders:read inventory:read")
	if strings.Count(umbrella, ".") == 2 {
		t.Fatalf("the provider issued a JWT, want an opaque token")
	}

	for _, tc := range []struct {
		name        string
		jwtResponse bool
	}{{"json response", false}, {"RFC 9701 JWT response", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TOKENGATE_IO_SECRET", ioBasicSecret)
			gwDir, adminLn, iss, goLocal, nodeLocal := ioLocalSide(t, node)
			text := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
log:
  level: debug
issuers:
  - issuer: %q
    discovery: true
    algorithms: [RS256]
    umbrella_audience: %q
    introspection:
      client_id: %s
      client_secret: ${TOKENGATE_IO_SECRET}
      auth_method: client_secret_basic
      jwt_response: %t
      timeout: 5s
exchange:
  local:
    issuer: %q
    signing_keys: [{file: es256.pem, alg: ES256}]
`, issuer, ioOpaqueUmbrella, ioIntrospectClient, tc.jwtResponse, iss) + ioRoutes(goLocal.srv.URL, nodeLocal)
			gw := startIOGateway(t, gwDir, text, adminLn)
			ioCheckFlows(t, gw, goLocal, umbrella, issuer, ioCheck{wantIss: iss, wantAct: iss})

			// A token the provider never issued is inactive: 401, nothing forwarded.
			before := len(goLocal.received())
			status, _, body := edgeGet(t, gw.srv.EdgeURL(), "/orders/1", "never-issued-"+strings.Repeat("x", 30))
			if status != http.StatusUnauthorized {
				t.Errorf("unknown opaque token: %d %s, want 401", status, body)
			}
			if len(goLocal.received()) != before {
				t.Error("a request with an inactive token reached a backend")
			}
			_, metrics := get(t, gw.srv.AdminURL()+"/metrics")
			if !strings.Contains(metrics, `tokengate_introspections_total{result="active"} 1`) {
				t.Errorf("want exactly one active introspection (then the cache): %s",
					grepLines(metrics, "tokengate_introspection"))
			}
		})
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
