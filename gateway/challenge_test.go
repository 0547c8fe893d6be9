package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
)

// TestDPoPChallengeOnlyWhereAccepted: a Bearer 401 adds a DPoP challenge
// (RFC 9449 section 7.1) only where the gateway can check DPoP proofs,
// i.e. where it knows the URL a proof must name; a request without any
// token counts as a rejection (reason missing) either way.
func TestDPoPChallengeOnlyWhereAccepted(t *testing.T) {
	be := newBackend(t, nil)
	tests := []struct {
		name       string
		server     config.Server
		challenges []string
	}{
		{name: "concrete listen: DPoP accepted",
			server:     config.Server{MaxTokenBytes: 8192, Listen: "127.0.0.1:0"},
			challenges: []string{challengeRealm, "DPoP algs="}},
		{name: "public_url: DPoP accepted",
			server:     config.Server{MaxTokenBytes: 8192, Listen: ":0", PublicURL: "https://api.example.com"},
			challenges: []string{challengeRealm, "DPoP algs="}},
		{name: "no URL for proofs: Bearer only",
			server:     config.Server{MaxTokenBytes: 8192, Listen: ":0"},
			challenges: []string{challengeRealm}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, func(o *Options) {
				o.Config.Server = tc.server
			})
			before := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(ReasonMissing))
			resp, _ := env.do(t, http.MethodGet, "/orders", nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			got := resp.Header.Values("WWW-Authenticate")
			if len(got) != len(tc.challenges) {
				t.Fatalf("WWW-Authenticate = %q, want %d challenges %q", got, len(tc.challenges), tc.challenges)
			}
			for i, want := range tc.challenges {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("challenge %d = %q, want prefix %q", i, got[i], want)
				}
			}
			if n := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(ReasonMissing)) - before; n != 1 {
				t.Errorf("rejections{reason=missing} moved by %v, want 1", n)
			}
		})
	}
}
