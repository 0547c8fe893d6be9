package sts

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// newRTMetadataServer is oauthtest's STS serving meta's answer at path
// (the issuer being its URL + a suffix) and good token responses at /token.
func newRTMetadataServer(t *testing.T, path string, meta func(base string) (int, any)) *oauthtest.STS {
	t.Helper()
	m := oauthtest.NewSTS(t, rtOK(60))
	m.SetMetadata(path, meta)
	return m
}

func TestRemoteDiscovery(t *testing.T) {
	good := func(issuerSuffix string) func(base string) (int, any) {
		return func(base string) (int, any) {
			return 200, map[string]any{
				"issuer":                base + issuerSuffix,
				"token_endpoint":        base + "/token",
				"grant_types_supported": []string{"client_credentials", grantTokenExchange},
			}
		}
	}
	tests := []struct {
		name    string
		path    string // where the server serves metadata
		suffix  string // issuer path
		meta    func(base string) (int, any)
		wantErr string
	}{
		{"OIDC discovery", "/realms/apis/.well-known/openid-configuration", "/realms/apis", good("/realms/apis"), ""},
		{"RFC 8414 fallback", "/.well-known/oauth-authorization-server/tenant", "/tenant", good("/tenant"), ""},
		{"issuer mismatch", "/.well-known/openid-configuration", "", func(base string) (int, any) {
			return 200, map[string]any{"issuer": base + "/other", "token_endpoint": base + "/token"}
		}, `names issuer`},
		{"no token endpoint", "/.well-known/openid-configuration", "", func(base string) (int, any) {
			return 200, map[string]any{"issuer": base}
		}, "has no token_endpoint"},
		{"token endpoint downgraded to plain http off loopback", "/.well-known/openid-configuration", "", func(base string) (int, any) {
			return 200, map[string]any{"issuer": base, "token_endpoint": "http://sts.example.com/token"}
		}, "plain http on a non-loopback host"},
		{"no metadata", "/nowhere", "", good(""), "status 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newRTMetadataServer(t, tt.path, tt.meta)
			cfg := rtConfig("")
			cfg.Issuer = m.URL() + tt.suffix
			env := newRTEnv(t, cfg)
			err := env.remote.Prefetch(context.Background())
			_, xerr := env.remote.Exchange(context.Background(), rtRequest())
			rerr := env.remote.Ready(context.Background())
			if tt.wantErr == "" {
				if err != nil || xerr != nil || rerr != nil {
					t.Fatalf("Prefetch %v, Exchange %v, Ready %v", err, xerr, rerr)
				}
				if len(m.Calls()) != 1 {
					t.Errorf("%d calls at the discovered token endpoint", len(m.Calls()))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Prefetch error %v, want %q", err, tt.wantErr)
			}
			if kindOf(xerr) != kindUnavailable {
				t.Errorf("Exchange error %v, want unavailable", xerr)
			}
			if rerr == nil {
				t.Error("Ready with no token endpoint")
			}
			if len(m.Calls()) != 0 {
				t.Error("an exchange reached a token endpoint that was not validly discovered")
			}
		})
	}
}

func TestRemoteDiscoveryCachedAndRateLimited(t *testing.T) {
	m := newRTMetadataServer(t, "/.well-known/openid-configuration", func(string) (int, any) {
		return 503, map[string]string{"error": "down"}
	})
	cfg := rtConfig("")
	cfg.Issuer = m.URL()
	env := newRTEnv(t, cfg)
	ctx := context.Background()
	for range 5 {
		if env.remote.Ready(ctx) == nil {
			t.Fatal("ready without metadata")
		}
	}
	// Both locations were tried once; the failures within the interval reuse the error.
	if n := m.MetadataFetches(); n != 1 {
		t.Fatalf("%d metadata fetches within the retry interval, want 1", n)
	}
	m.SetMetadata("/.well-known/openid-configuration", func(base string) (int, any) {
		return 200, map[string]any{"issuer": base, "token_endpoint": base + "/token"}
	})
	env.clock.Set(rtNow.Add(stsDiscoveryMinInterval))
	if err := env.remote.Ready(ctx); err != nil {
		t.Fatalf("Ready after the STS came back: %v", err)
	}
	for range 3 {
		if _, err := env.remote.Exchange(ctx, rtRequest()); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.MetadataFetches(); n != 2 {
		t.Errorf("%d metadata fetches, want 2: a found endpoint is kept", n)
	}
}

func TestRemoteStaticEndpointIsAlwaysReady(t *testing.T) {
	env := newRTEnv(t, rtConfig("https://sts.invalid/token"))
	if err := env.remote.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

// FuzzSTSParseSuccess: no response body makes the parser panic, accept a
// token that could break a header, or yield an expiry past the caps.
func FuzzSTSParseSuccess(f *testing.F) {
	for _, seed := range []string{
		`{"access_token":"a","token_type":"Bearer","expires_in":60}`,
		`{"access_token":"a","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","expires_in":"60"}`,
		`{"access_token":"a.eyJleHAiOjE5MDAwMDAwMDB9.c","token_type":"bearer"}`,
		`{"access_token":"a","token_type":"Bearer","expires_in":1e308}`,
		`{"access_token":"a","token_type":"Bearer","expires_in":-1}`,
		`{"access_token":"a\n","token_type":"Bearer"}`,
		`{"access_token":null}`,
		`[]`, `"x"`, ``, `{`, `{"access_token":"a","token_type":"Bearer"}garbage`,
	} {
		f.Add([]byte(seed))
	}
	notAfter := rtNow.Add(time.Hour)
	f.Fuzz(func(t *testing.T, body []byte) {
		resp := &oauthclient.Response{Status: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Body: body, Sent: rtNow}
		res, err := stsParseSuccess(resp, rtNow, rtTTL, notAfter)
		if err != nil {
			return
		}
		if res.AccessToken == "" || !stsValidToken(res.AccessToken) {
			t.Fatalf("accepted access_token %q", res.AccessToken)
		}
		if !res.ExpiresAt.After(rtNow) || res.ExpiresAt.After(rtNow.Add(rtTTL)) {
			t.Fatalf("ExpiresAt %s outside (now, now+ttl]", res.ExpiresAt)
		}
		var m map[string]any
		if json.Unmarshal(body, &m) != nil {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
	})
}
