package oauthclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

func TestMetadataURLs(t *testing.T) {
	tests := []struct {
		issuer string
		want   []string
	}{
		{"https://idp.example.com", []string{
			"https://idp.example.com/.well-known/openid-configuration",
			"https://idp.example.com/.well-known/oauth-authorization-server"}},
		{"https://idp.example.com/", []string{
			"https://idp.example.com/.well-known/openid-configuration",
			"https://idp.example.com/.well-known/oauth-authorization-server"}},
		{"https://idp.example.com/realms/a/", []string{
			"https://idp.example.com/realms/a/.well-known/openid-configuration",
			"https://idp.example.com/.well-known/oauth-authorization-server/realms/a"}},
	}
	for _, tc := range tests {
		if got := oauthclient.MetadataURLs(tc.issuer); !slices.Equal(got, tc.want) {
			t.Errorf("MetadataURLs(%q) = %q, want %q", tc.issuer, got, tc.want)
		}
	}
}

func TestCheckEndpointURL(t *testing.T) {
	tests := []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://as.example.com/token", false, true},
		{"http://127.0.0.1:8080/token", false, true},
		{"http://localhost/token", false, true},
		{"http://as.example.com/token", false, false},
		{"http://as.example.com/token", true, true},
		{"/token", false, false},
		{"ftp://as.example.com/token", false, false},
	}
	for _, tc := range tests {
		if err := oauthclient.CheckEndpointURL(tc.url, tc.insecure); (err == nil) != tc.ok {
			t.Errorf("CheckEndpointURL(%q, %v) = %v, want ok %v", tc.url, tc.insecure, err, tc.ok)
		}
	}
}

// metaServer serves status and body at path, counting requests.
func metaServer(t *testing.T, answers map[string]func(base string) (int, string)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		a, ok := answers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		status, body := a(srv.URL)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestFetchMetadata(t *testing.T) {
	doc := func(iss string) func(string) (int, string) {
		return func(base string) (int, string) {
			return 200, `{"issuer":"` + base + iss + `","token_endpoint":"` + base + `/token","jwks_uri":"` + base + `/jwks"}`
		}
	}
	tests := []struct {
		name    string
		answers map[string]func(string) (int, string)
		path    string // issuer path
		wantErr string
	}{
		{"oidc", map[string]func(string) (int, string){"/.well-known/openid-configuration": doc("")}, "", ""},
		{"rfc 8414 fallback", map[string]func(string) (int, string){"/.well-known/oauth-authorization-server/t1": doc("/t1")}, "/t1", ""},
		{"issuer mismatch", map[string]func(string) (int, string){"/.well-known/openid-configuration": doc("/other")}, "", "want exactly"},
		{"not found at either", nil, "", "unexpected status 404"},
		{"not JSON", map[string]func(string) (int, string){"/.well-known/openid-configuration": func(string) (int, string) { return 200, "<html>" }}, "", "parse"},
		{"too large", map[string]func(string) (int, string){"/.well-known/openid-configuration": func(string) (int, string) {
			return 200, strings.Repeat(" ", oauthclient.MaxMetadata+1)
		}}, "", "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := metaServer(t, tc.answers)
			meta, err := oauthclient.FetchMetadata(context.Background(), srv.Client(), srv.URL+tc.path, time.Second)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if meta.Issuer != srv.URL+tc.path || meta.TokenEndpoint != srv.URL+"/token" || meta.JWKSURI != srv.URL+"/jwks" {
				t.Errorf("metadata %+v", meta)
			}
		})
	}
}

// TestDiscoveryCachedAndRateLimited: a good document is read once; after a
// failure, callers get the last error without a fetch until MinInterval
// has passed.
func TestDiscoveryCachedAndRateLimited(t *testing.T) {
	var up atomic.Bool
	srv, hits := metaServer(t, map[string]func(string) (int, string){
		"/.well-known/openid-configuration": func(base string) (int, string) {
			if !up.Load() {
				return 503, `{}`
			}
			return 200, `{"issuer":"` + base + `","token_endpoint":"` + base + `/token"}`
		},
	})
	now := time.Unix(1_700_000_000, 0)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	d := oauthclient.NewDiscovery(oauthclient.DiscoveryOptions{
		Issuer: srv.URL, Client: srv.Client(), Timeout: time.Second, MinInterval: 5 * time.Second,
		Clock: func() time.Time { return time.Unix(0, clock.Load()) },
	})
	ctx := context.Background()
	if _, err := d.Metadata(ctx); err == nil {
		t.Fatal("metadata read from a down server")
	}
	first := hits.Load()
	up.Store(true)
	if _, err := d.Metadata(ctx); err == nil || hits.Load() != first {
		t.Fatalf("refetched within MinInterval: err %v, %d fetches", err, hits.Load()-first)
	}
	clock.Add(int64(5 * time.Second))
	meta, err := d.Metadata(ctx)
	if err != nil || meta.TokenEndpoint != srv.URL+"/token" {
		t.Fatalf("Metadata = %+v, %v", meta, err)
	}
	n := hits.Load()
	for range 3 {
		if _, err := d.Metadata(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != n {
		t.Errorf("a good document was fetched again")
	}
}

func TestClientAuth(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	const endpoint = "https://sts.example.com/token"
	t.Run("client_secret_basic form-encodes id and secret", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, endpoint, nil)
		a := &oauthclient.ClientSecretBasic{ID: "a:b", Secret: "p w%"}
		if err := a.Apply(req, url.Values{}, endpoint, now); err != nil {
			t.Fatal(err)
		}
		id, secret, ok := req.BasicAuth()
		if !ok || id != "a%3Ab" || secret != "p+w%25" {
			t.Errorf("basic auth %q %q", id, secret)
		}
	})
	t.Run("client_secret_post", func(t *testing.T) {
		form := url.Values{}
		if err := (&oauthclient.ClientSecretPost{ID: "c", Secret: "s"}).Apply(nil, form, endpoint, now); err != nil {
			t.Fatal(err)
		}
		if form.Get("client_id") != "c" || form.Get("client_secret") != "s" {
			t.Errorf("form %v", form)
		}
	})
	for _, aud := range []string{"", "https://sts.example.com"} {
		t.Run("private_key_jwt audience "+aud, func(t *testing.T) {
			a := &oauthclient.PrivateKeyJWT{ID: "gw", Signer: signer, KeyID: "k", Audience: aud, Random: rand.Reader}
			jtis := map[string]bool{}
			for range 2 {
				form := url.Values{}
				if err := a.Apply(nil, form, endpoint, now); err != nil {
					t.Fatal(err)
				}
				if form.Get("client_assertion_type") != oauthclient.ClientAssertionType || form.Get("client_id") != "gw" {
					t.Fatalf("form %v", form)
				}
				tok, err := jwt.ParseSigned(form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256})
				if err != nil {
					t.Fatal(err)
				}
				var c jwt.Claims
				if err := tok.Claims(&key.PublicKey, &c); err != nil {
					t.Fatal(err)
				}
				want := aud
				if want == "" {
					want = endpoint
				}
				if c.Issuer != "gw" || c.Subject != "gw" || !slices.Equal([]string(c.Audience), []string{want}) || c.ID == "" ||
					!c.Expiry.Time().After(now) {
					t.Errorf("claims %+v", c)
				}
				jtis[c.ID] = true
			}
			if len(jtis) != 2 {
				t.Error("two assertions share a jti")
			}
		})
	}
	if (&oauthclient.ClientSecretBasic{ID: "c", Secret: "1"}).Fingerprint() == (&oauthclient.ClientSecretBasic{ID: "c", Secret: "2"}).Fingerprint() {
		t.Error("rotating the secret keeps the fingerprint")
	}
	if fp := (&oauthclient.ClientSecretBasic{ID: "c", Secret: "hunter2"}).Fingerprint(); strings.Contains(fp, "hunter2") {
		t.Error("the fingerprint shows the secret")
	}
}

// TestPostForm: the form and credentials arrive; errors carry the server's
// answer; redirects are not followed; bodies are bounded.
func TestPostForm(t *testing.T) {
	tests := []struct {
		name       string
		handle     oauthtest.Handler
		status     int
		code       string
		retryable  bool
		retryAfter time.Duration
		inErr      string
	}{
		{"200", oauthtest.Answer(200, map[string]string{"ok": "yes"}), 200, "", false, 0, ""},
		{"400 invalid_grant", oauthtest.Answer(400, map[string]string{"error": "invalid_grant", "error_description": "bad\x01token"}), 400, "invalid_grant", false, 0, "bad token"},
		{"503 with Retry-After", func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(503)
		}, 503, "", true, 7 * time.Second, "no RFC 6749 error"},
		{"429", oauthtest.Answer(429, map[string]string{"error": "slow_down"}), 429, "slow_down", true, 0, ""},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request, _ int) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, 302, "", false, 0, ""},
		{"200 too large", func(w http.ResponseWriter, _ *http.Request, _ int) {
			_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
		}, 200, "", false, 0, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := oauthtest.NewSTS(t, tc.handle)
			c := oauthclient.NewClient(oauthclient.ClientOptions{
				HTTP: srv.Client(), Auth: &oauthclient.ClientSecretBasic{ID: "gw", Secret: "s"}, Server: "sts", MaxBody: 1024,
			})
			resp, retryAfter, err := c.PostForm(context.Background(), srv.TokenURL(), url.Values{"a": {"b"}}, "application/json")
			calls := srv.Calls()
			if len(calls) != 1 || calls[0].Form.Get("a") != "b" || calls[0].Header.Get("Authorization") == "" ||
				calls[0].Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
				t.Fatalf("calls %+v", calls)
			}
			if tc.status == 200 && tc.inErr == "" {
				if err != nil || resp.Status != 200 || !strings.Contains(string(resp.Body), "yes") {
					t.Fatalf("PostForm = %+v, %v", resp, err)
				}
				return
			}
			var oe *oauthclient.Error
			if !errors.As(err, &oe) {
				t.Fatalf("err %v is no *oauthclient.Error", err)
			}
			if oe.Status != tc.status || oe.Code != tc.code || oe.Retryable() != tc.retryable || retryAfter != tc.retryAfter {
				t.Errorf("error %+v retryable %v retryAfter %v", oe, oe.Retryable(), retryAfter)
			}
			if !strings.Contains(err.Error(), tc.inErr) || !strings.HasPrefix(err.Error(), "sts ") {
				t.Errorf("error text %q, want %q", err, tc.inErr)
			}
		})
	}
	t.Run("no answer is retryable, a cancelled caller is not", func(t *testing.T) {
		srv := oauthtest.NewSTS(t, oauthtest.Answer(200, nil))
		u := srv.TokenURL()
		srv.Close()
		c := oauthclient.NewClient(oauthclient.ClientOptions{HTTP: &http.Client{}, Auth: &oauthclient.ClientSecretPost{ID: "gw", Secret: "s"}})
		_, _, err := c.PostForm(context.Background(), u, url.Values{}, "application/json")
		var oe *oauthclient.Error
		if !errors.As(err, &oe) || oe.Status != 0 || !oe.Retryable() {
			t.Errorf("err %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _, err = c.PostForm(ctx, u, url.Values{}, "application/json")
		if !errors.As(err, &oe) || oe.Retryable() {
			t.Errorf("cancelled: err %v retryable", err)
		}
	})
}

func TestPublicDescription(t *testing.T) {
	for d, want := range map[string]string{
		"audience not allowed":              "audience not allowed",
		"token eyJhbGciOi is bad":           "",
		strings.Repeat("A", 40) + " leaked": "",
		strings.Repeat("word ", 40):         "",
		"[redacted] was refused":            "",
	} {
		if got := (&oauthclient.Error{Description: d}).PublicDescription(); got != want {
			t.Errorf("PublicDescription(%q) = %q, want %q", d, got, want)
		}
	}
}
