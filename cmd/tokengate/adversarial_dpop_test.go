package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// wwwDPoP is the challenge prefix of DPoP refusals.
const wwwDPoP = `DPoP algs="`

// dpopAdversarialCases are hostile DPoP requests (RFC 9449) on /orders/1: a
// token bound to a client key, sent without a valid proof of that key.
func dpopAdversarialCases(t *testing.T, w *adversarialWorld) []advCase {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey}
	jwkJSON, _ := pub.MarshalJSON()
	tp, _ := pub.Thumbprint(crypto.SHA256)
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	privJSON, _ := (&jose.JSONWebKey{Key: key}).MarshalJSON()
	atkJSON, _ := (&jose.JSONWebKey{Key: &w.atk.key.PublicKey}).MarshalJSON()

	es := signES256(w.ecKey)
	bound := craft(t, `{"alg":"ES256","typ":"JWT","kid":"idp-key-1"}`,
		claimsJSON(t, w.idp.URL(), map[string]any{"cnf": map[string]any{"jkt": jkt}}), es)
	unbound := craft(t, `{"alg":"ES256","typ":"JWT","kid":"idp-key-1"}`, claimsJSON(t, w.idp.URL(), nil), es)
	htu := w.g.srv.EdgeURL() + "/orders/1"
	n := 0
	claims := func(over map[string]any) string {
		n++
		sum := sha256.Sum256([]byte(bound))
		c := map[string]any{"jti": "adv-" + time.Now().Format(time.RFC3339Nano) + string(rune('a'+n%26)) + string(rune('a'+n/26)),
			"htm": "GET", "htu": htu, "iat": time.Now().Unix(), "ath": base64.RawURLEncoding.EncodeToString(sum[:])}
		for k, v := range over {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	hdr := func(alg, typ string, jwk []byte) string {
		return `{"alg":"` + alg + `","typ":"` + typ + `","jwk":` + string(jwk) + `}`
	}
	proof := func(over map[string]any) string {
		return craft(t, hdr("ES256", "dpop+jwt", jwkJSON), claims(over), signES256(key))
	}
	dp := func(name, reason string, proofs ...string) advCase {
		return advCase{name: "dpop: " + name, reason: reason, auth: []string{"DPoP " + bound}, dpop: proofs, status: 401, www: wwwDPoP}
	}
	return []advCase{
		{name: "dpop: bound token as Bearer", reason: "a DPoP-bound token is never a bearer token",
			auth: []string{"Bearer " + bound}, dpop: []string{proof(nil)}, status: 401, www: wwwDPoP},
		dp("no proof", "a bound token needs a proof"),
		dp("two proofs", "exactly one DPoP header", proof(nil), proof(nil)),
		dp("alg none", "proofs are signed asymmetrically", craft(t, hdr("none", "dpop+jwt", jwkJSON), claims(nil), nil)),
		dp("HS256 with an oct jwk", "no symmetric proofs",
			craft(t, `{"alg":"HS256","typ":"dpop+jwt","jwk":{"kty":"oct","k":"c2VjcmV0"}}`, claims(nil), signHMAC([]byte("secret"), false))),
		dp("private jwk", "the jwk must be public", craft(t, hdr("ES256", "dpop+jwt", privJSON), claims(nil), signES256(key))),
		dp("typ JWT", "typ must be dpop+jwt", craft(t, hdr("ES256", "JWT", jwkJSON), claims(nil), signES256(key))),
		dp("attacker's key", "the proof key must be the key the token is bound to",
			craft(t, hdr("ES256", "dpop+jwt", atkJSON), claims(nil), signES256(w.atk.key))),
		dp("jwk swapped, signature of the bound key", "the signature must verify with the jwk",
			craft(t, hdr("ES256", "dpop+jwt", atkJSON), claims(nil), signES256(key))),
		dp("htu with query", "htu has no query", proof(map[string]any{"htu": htu + "?a=1"})),
		dp("htu of the token endpoint", "htu must be this request's URL", proof(map[string]any{"htu": w.g.srv.EdgeURL() + "/oauth2/token"})),
		dp("htm POST", "htm must be this request's method", proof(map[string]any{"htm": "POST"})),
		dp("stale iat", "proofs are short-lived", proof(map[string]any{"iat": time.Now().Add(-time.Hour).Unix()})),
		dp("no ath", "ath binds the proof to the token", proof(map[string]any{"ath": nil})),
		dp("ath of another token", "ath binds the proof to the token", proof(map[string]any{"ath": "AAAA"})),
		{name: "dpop: unbound token with the DPoP scheme", reason: "an unbound token is not DPoP",
			auth: []string{"DPoP " + unbound}, dpop: []string{proof(nil)}, status: 401, www: wwwDPoP},
	}
}
