package oauthtest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// getJSON GETs u and decodes a 200 answer into v.
func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	status, body := getBody(t, u)
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatal(err)
		}
	}
	return status
}

// TestIdP: metadata names the IdP; minted tokens verify with the published
// keys; rotation, removal, a down JWKS and a held one behave as documented.
func TestIdP(t *testing.T) {
	idp := oauthtest.NewIdP(t)
	var meta map[string]string
	if getJSON(t, idp.URL()+"/.well-known/openid-configuration", &meta); meta["issuer"] != idp.URL() || meta["jwks_uri"] != idp.JWKSURL() {
		t.Fatalf("metadata %v", meta)
	}
	verify := func(tok string) map[string]any {
		t.Helper()
		var set jose.JSONWebKeySet
		getJSON(t, idp.JWKSURL(), &set)
		p, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA})
		if err != nil {
			t.Fatal(err)
		}
		keys := set.Key(p.Headers[0].KeyID)
		if len(keys) != 1 {
			t.Fatalf("kid %q published %d times", p.Headers[0].KeyID, len(keys))
		}
		var c map[string]any
		if err := p.Claims(keys[0].Key, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := verify(idp.MintWith(t, map[string]any{"typ": "at+jwt"}, map[string]any{"sub": "u"})); c["sub"] != "u" || c["iss"] != idp.URL() {
		t.Errorf("claims %v", c)
	}
	for _, alg := range []string{"RS256", "PS256", "EdDSA"} {
		idp.AddKey(t, alg, "k-"+alg)
		verify(idp.Mint(t, nil))
	}
	idp.RemoveKey("k-EdDSA")
	if idp.PrivateKey("k-EdDSA") != nil || idp.PrivateKey("k-PS256") == nil {
		t.Error("RemoveKey removed the wrong key")
	}
	verify(idp.Mint(t, nil)) // the PS256 key signs again
	idp.SetDown(true)
	var set jose.JSONWebKeySet
	if status := getJSON(t, idp.JWKSURL(), &set); status != http.StatusServiceUnavailable {
		t.Errorf("down JWKS answered %d", status)
	}
	idp.SetDown(false)
	before := idp.JWKSFetches()
	release := idp.Hold()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, idp.JWKSURL(), nil)
	done := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case <-idp.Held():
	case s := <-done:
		t.Fatalf("a held JWKS answered %d", s)
	}
	if n := idp.JWKSFetches() - before; n != 1 {
		t.Errorf("JWKS fetches while held = %d, want 1", n)
	}
	release()
	if s := <-done; s != http.StatusOK {
		t.Errorf("released JWKS answered %d", s)
	}
}

// getBody GETs u.
func getBody(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestIdPScripted: SetKeys publishes exactly its keys, and the JWKS can
// answer a raw body or an error status; metadata moves and is rewritten.
func TestIdPScripted(t *testing.T) {
	idp := oauthtest.NewIdP(t)
	k1, k2 := oauthtest.NewSigningKey(t, "ES384", "k1"), oauthtest.NewSigningKey(t, "ES512", "k2")
	idp.SetKeys(k1, k2)
	var set jose.JSONWebKeySet
	getJSON(t, idp.JWKSURL(), &set)
	if len(set.Keys) != 2 || set.Keys[0].KeyID != "k1" || set.Keys[1].KeyID != "k2" || !set.Keys[0].IsPublic() {
		t.Fatalf("JWKS %+v, want the public k1 and k2", set.Keys)
	}
	if p, err := jwt.ParseSigned(idp.Mint(t, nil), []jose.SignatureAlgorithm{jose.ES384}); err != nil || p.Headers[0].KeyID != "k1" {
		t.Errorf("Mint does not sign with the first key: %v", err)
	}
	idp.SetJWKS([]byte("<html>not json"))
	if status, body := getBody(t, idp.JWKSURL()); status != http.StatusOK || body != "<html>not json" {
		t.Errorf("raw JWKS answered %d %q", status, body)
	}
	idp.SetJWKSStatus(http.StatusInternalServerError)
	if status, _ := getBody(t, idp.JWKSURL()); status != http.StatusInternalServerError {
		t.Errorf("failing JWKS answered %d", status)
	}
	idp.SetJWKSStatus(http.StatusOK)
	idp.SetJWKS(nil)
	if status, body := getBody(t, idp.JWKSURL()); status != http.StatusOK || body != string(oauthtest.JWKS(t, k1, k2)) {
		t.Errorf("restored JWKS answered %d %s", status, body)
	}

	idp.SetMetadata("/.well-known/oauth-authorization-server/tenant", func(base string) (int, any) {
		return http.StatusOK, map[string]any{"issuer": base + "/tenant", "jwks_uri": "https://keys.example.com"}
	})
	var meta map[string]string
	if status := getJSON(t, idp.URL()+"/.well-known/openid-configuration", &meta); status != http.StatusNotFound {
		t.Errorf("moved metadata still at the OIDC path: %d", status)
	}
	if getJSON(t, idp.URL()+"/.well-known/oauth-authorization-server/tenant", &meta); meta["issuer"] != idp.URL()+"/tenant" || meta["jwks_uri"] != "https://keys.example.com" {
		t.Errorf("metadata %v", meta)
	}
	if n := idp.MetadataFetches(); n != 1 {
		t.Errorf("metadata fetches = %d, want 1 (the 404 does not count)", n)
	}
}

// TestKeySign: Sign signs exactly the claims and headers given, and leaves
// kid out for a key without one.
func TestKeySign(t *testing.T) {
	for alg, kid := range map[string]string{"ES256": "", "ES384": "b", "ES512": "c", "RS256": "d", "PS256": "e", "EdDSA": "f"} {
		k := oauthtest.NewSigningKey(t, alg, kid)
		p, err := jwt.ParseSigned(k.Sign(t, map[string]any{"x-h": "v"}, map[string]any{"sub": "u"}),
			[]jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		h := p.Headers[0]
		if h.KeyID != kid || h.ExtraHeaders["typ"] != nil || h.ExtraHeaders["x-h"] != "v" {
			t.Errorf("%s: header %+v", alg, h)
		}
		var c map[string]any
		if err := p.Claims(k.JWK().Key, &c); err != nil || len(c) != 1 || c["sub"] != "u" {
			t.Errorf("%s: claims %v, %v", alg, c, err)
		}
	}
}

func TestSTSRecordsAndScripts(t *testing.T) {
	sts := oauthtest.NewSTS(t, oauthtest.Answer(200, oauthtest.TokenResponse("tok", 60)))
	var meta map[string]any
	if getJSON(t, sts.URL()+"/.well-known/openid-configuration", &meta); meta["token_endpoint"] != sts.TokenURL() {
		t.Fatalf("metadata %v", meta)
	}
	resp, err := http.PostForm(sts.TokenURL(), url.Values{"grant_type": {oauthtest.GrantTokenExchange}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) == 0 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	sts.SetHandler(oauthtest.Answer(400, map[string]string{"error": "invalid_grant"}))
	resp, err = http.PostForm(sts.TokenURL(), url.Values{"n": {"2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if calls := sts.Calls(); resp.StatusCode != 400 || len(calls) != 2 || calls[1].Form.Get("n") != "2" {
		t.Errorf("status %d, calls %+v", resp.StatusCode, calls)
	}
	sts.SetMetadataDown(true)
	if status := getJSON(t, sts.URL()+"/.well-known/openid-configuration", &meta); status != http.StatusServiceUnavailable {
		t.Errorf("down metadata answered %d", status)
	}
}

func TestWriteKey(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "PS256", "EdDSA"} {
		k, pemBytes := oauthtest.WriteKey(t, filepath.Join(t.TempDir(), "sub", alg+".pem"), alg)
		if k == nil || len(pemBytes) == 0 {
			t.Errorf("%s: no key", alg)
		}
	}
}
