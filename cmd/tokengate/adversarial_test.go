package main

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

const (
	wwwRealm        = `Bearer realm="tokengate"`
	wwwInvalidReq   = `Bearer error="invalid_request"`
	wwwInvalidToken = `Bearer error="invalid_token", error_description="`
)

// audienceRefused names the cases whose token is well-formed but whose aud
// does not name the route's audience: invalid_target at the token endpoint.
var audienceRefused = map[string]bool{
	"aud missing": true, "aud empty string": true, "aud empty array": true,
	"aud another API": true, "aud other APIs only": true, "aud with a trailing slash": true,
}

// advCase is one hostile request and why tokengate must refuse it.
type advCase struct {
	name   string
	reason string   // why it must fail
	token  string   // sent as "Bearer <token>" unless auth is set
	auth   []string // raw Authorization header values
	query  string   // raw query string
	status int
	www    string   // WWW-Authenticate prefix; "" means none
	dpop   []string // DPoP proof header values
}

// adversarialWorld is a running gateway with two configured issuers (the
// first also publishes an RS256 key for the confusion cases), an attacker
// server, and a recording orders backend that must never be reached.
type adversarialWorld struct {
	idp, idp2           *e2eIdP
	atk                 *attacker
	orders, inventory   *e2eBackend
	g                   *e2eGateway
	ecKey, idp2Key      *ecdsa.PrivateKey
	rsaPEM, rsaDER, set []byte
	rsaKey              *rsa.PrivateKey // the IdP's published RS256 key
}

func startAdversarial(t *testing.T) *adversarialWorld {
	t.Helper()
	w := &adversarialWorld{idp: newE2EIdP(t), idp2: newE2EIdP(t), atk: newAttacker(t)}
	rsaKey := w.idp.addRSAKey(t, "idp-rsa")
	w.rsaKey = rsaKey
	w.idp2.addKey(t, "idp2-key")
	w.ecKey, w.idp2Key = w.idp.ecKey(t, "idp-key-1"), w.idp2.ecKey(t, "idp2-key")
	w.rsaPEM, w.rsaDER, w.set = rsaPublicPEM(t, rsaKey), rsaPublicDER(t, rsaKey), w.idp.publicJWKS(t)
	w.orders, w.inventory = newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	second := fmt.Sprintf("  - issuer: %q\n    jwks_uri: %q\n    algorithms: [ES256]\n    leeway: 5s\n    min_refresh_interval: 1s\n",
		w.idp2.URL(), w.idp2.URL()+"/jwks.json")
	w.g = startE2EWith(t, w.idp, w.orders, w.inventory, e2eOptions{edit: func(text, _ string) string {
		text = strings.Replace(text, "algorithms: [ES256]", "algorithms: [ES256, RS256]", 1)
		return strings.Replace(text, "exchange:\n", second+"exchange:\n", 1)
	}})
	return w
}

// adversarialCases is the corpus. Every token case is signed so that only
// the named defect makes it invalid.
func adversarialCases(t *testing.T, w *adversarialWorld) []advCase {
	iss, iss2 := w.idp.URL(), w.idp2.URL()
	es := signES256(w.ecKey)
	atkSign := signES256(w.atk.key)
	valid := claimsJSON(t, iss, nil)
	hdr := `{"alg":"ES256","typ":"JWT","kid":"idp-key-1"}`
	good := craft(t, hdr, valid, es)
	other := craft(t, hdr, claimsJSON(t, iss, map[string]any{"sub": "someone-else"}), es)
	goodSig := good[strings.LastIndex(good, ".")+1:]
	otherSig := other[strings.LastIndex(other, ".")+1:]
	body := good[:strings.LastIndex(good, ".")]
	now := time.Now()
	bad := func(name, reason, token string) advCase {
		return advCase{name: name, reason: reason, token: token, status: 401, www: wwwInvalidToken}
	}
	withClaims := func(over map[string]any) string { return craft(t, hdr, claimsJSON(t, iss, over), es) }
	rawPayload := func(payload string) string { return craft(t, hdr, payload, es) }
	rawHeader := func(header string) string { return craft(t, header, valid, es) }

	var cs []advCase
	// alg none, every spelling, with and without a signature.
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		h := fmt.Sprintf(`{"alg":%q,"typ":"JWT","kid":"idp-key-1"}`, alg)
		cs = append(cs,
			bad("alg "+alg+" unsigned", "unsigned tokens are never accepted", craft(t, h, valid, nil)),
			bad("alg "+alg+" with signature", "alg none is not in any allowlist, whatever follows", craft(t, h, valid, es)))
	}
	cs = append(cs,
		// Algorithm confusion: a public key used as an HMAC secret.
		bad("HS256 with RSA public key PEM", "HS* is never accepted with JWKS keys (key confusion)",
			craft(t, `{"alg":"HS256","kid":"idp-rsa"}`, valid, signHMAC(w.rsaPEM, false))),
		bad("HS256 with RSA public key DER", "HS* is never accepted with JWKS keys (key confusion)",
			craft(t, `{"alg":"HS256","kid":"idp-rsa"}`, valid, signHMAC(w.rsaDER, false))),
		bad("HS256 with the JWKS document", "HS* is never accepted with JWKS keys",
			craft(t, `{"alg":"HS256","kid":"idp-rsa"}`, valid, signHMAC(w.set, false))),
		bad("HS256 with PEM and no kid", "HS* is never accepted, whichever key a verifier would pick",
			craft(t, `{"alg":"HS256"}`, valid, signHMAC(w.rsaPEM, false))),
		bad("HS512 with RSA public key PEM", "HS* is never accepted",
			craft(t, `{"alg":"HS512","kid":"idp-rsa"}`, valid, signHMAC(w.rsaPEM, true))),
		bad("RS256 header over the EC key's kid", "alg must match the key's type",
			craft(t, `{"alg":"RS256","kid":"idp-key-1"}`, valid, es)),
		bad("ES256 header over the RSA key's kid", "alg must match the key's type",
			craft(t, `{"alg":"ES256","kid":"idp-rsa"}`, valid, es)),
		bad("PS256 not in the allowlist", "only the issuer's algorithms are accepted",
			craft(t, `{"alg":"PS256","kid":"idp-rsa"}`, valid, fixed(goodSig))),
		bad("PS256 signed by the published RSA key", "a valid signature under an algorithm outside the allowlist is still refused",
			craft(t, `{"alg":"PS256","kid":"idp-rsa"}`, valid, signRSA(w.rsaKey, true))),
		bad("ES384 header with an ES256 signature", "alg must match the key",
			craft(t, `{"alg":"ES384","kid":"idp-key-1"}`, valid, es)),
		bad("unknown kid", "the attacker's key is not in the issuer's JWKS",
			craft(t, `{"alg":"ES256","kid":"attacker"}`, valid, atkSign)),
		bad("no kid, attacker key", "no published key verifies the signature",
			craft(t, `{"alg":"ES256"}`, valid, atkSign)),
		bad("known kid, attacker key", "the signature does not verify with the published key",
			craft(t, hdr, valid, atkSign)),
		bad("key of the other issuer (its own kid)", "a key is trusted only for its own issuer",
			craft(t, `{"alg":"ES256","kid":"idp2-key"}`, valid, signES256(w.idp2Key))),
		bad("the other issuer's key with a shared kid", "keys are looked up per issuer",
			craft(t, hdr, valid, signES256(w.idp2.ecKey(t, "idp-key-1")))),
		bad("iss of the other issuer, signed by the first", "a key is trusted only for its own issuer",
			craft(t, hdr, claimsJSON(t, iss2, nil), es)),
		// Key-locating headers are ignored and never fetched.
		bad("jku to the attacker", "jku is never fetched",
			craft(t, fmt.Sprintf(`{"alg":"ES256","kid":"attacker","jku":%q}`, w.atk.srv.URL+"/jwks.json"), valid, atkSign)),
		bad("jku with a known kid", "jku is never fetched; the known key does not verify",
			craft(t, fmt.Sprintf(`{"alg":"ES256","kid":"idp-key-1","jku":%q}`, w.atk.srv.URL+"/jwks.json"), valid, atkSign)),
		bad("x5u to the attacker", "x5u is never fetched",
			craft(t, fmt.Sprintf(`{"alg":"ES256","kid":"attacker","x5u":%q}`, w.atk.srv.URL+"/cert.pem"), valid, atkSign)),
		bad("embedded jwk", "embedded keys are never trusted",
			craft(t, fmt.Sprintf(`{"alg":"ES256","jwk":%s}`, w.atk.jwk), valid, atkSign)),
		bad("embedded jwk with a known kid", "embedded keys are never trusted",
			craft(t, fmt.Sprintf(`{"alg":"ES256","kid":"idp-key-1","jwk":%s}`, w.atk.jwk), valid, atkSign)),
		bad("embedded x5c", "embedded certificates are never trusted",
			craft(t, fmt.Sprintf(`{"alg":"ES256","x5c":[%q]}`, base64.StdEncoding.EncodeToString(w.atk.cert)), valid, atkSign)),
		// crit: tokengate understands no extension.
		bad("crit b64 false", "RFC 7797 unencoded payloads are not supported",
			craft(t, `{"alg":"ES256","kid":"idp-key-1","b64":false,"crit":["b64"]}`, valid, es)),
		bad("crit exp", "any crit header is rejected",
			craft(t, `{"alg":"ES256","kid":"idp-key-1","crit":["exp"],"exp":1}`, valid, es)),
		bad("crit empty array", "crit must not be empty (RFC 7515 4.1.11)",
			craft(t, `{"alg":"ES256","kid":"idp-key-1","crit":[]}`, valid, es)),
		bad("crit as a string", "crit must be an array; any crit is rejected",
			craft(t, `{"alg":"ES256","kid":"idp-key-1","crit":"b64"}`, valid, es)),
		// kid abuse: looked up, never used as a path or query.
		bad("kid path traversal", "a kid is an opaque identifier, not a path",
			craft(t, `{"alg":"ES256","kid":"../../../../../../etc/passwd"}`, valid, es)),
		bad("kid SQL-like", "a kid is an opaque identifier",
			craft(t, `{"alg":"ES256","kid":"' OR '1'='1' --"}`, valid, es)),
		bad("kid 10 KB", "an unknown kid, however long",
			craft(t, `{"alg":"ES256","kid":"`+strings.Repeat("k", 10<<10)+`"}`, valid, es)),
		bad("kid a number", "kid must be a string",
			craft(t, `{"alg":"ES256","kid":1}`, valid, es)),
		// Time claims (leeway is 5s).
		bad("expired", "exp in the past", withClaims(map[string]any{"exp": now.Add(-time.Hour).Unix()})),
		bad("expired beyond leeway", "exp 10s ago, leeway 5s", withClaims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()})),
		bad("not yet valid", "nbf in the future beyond leeway", withClaims(map[string]any{"nbf": now.Add(time.Hour).Unix()})),
		bad("issued in the future", "iat in the future beyond leeway", withClaims(map[string]any{"iat": now.Add(time.Hour).Unix()})),
		bad("exp missing", "exp is required", withClaims(map[string]any{"exp": nil})),
		bad("exp a string", "exp must be a JSON number", withClaims(map[string]any{"exp": fmt.Sprint(now.Add(time.Hour).Unix())})),
		bad("exp huge float", "exp must fit int64 seconds", rawPayload(strings.Replace(valid, `"exp":`, `"exp":1e300,"x":`, 1))),
		bad("exp 1e19", "exp must fit int64 seconds", rawPayload(strings.Replace(valid, `"exp":`, `"exp":1e19,"x":`, 1))),
		bad("exp NaN", "NaN is not JSON", rawPayload(strings.Replace(valid, `"exp":`, `"exp":NaN,"x":`, 1))),
		bad("exp NaN string", "exp must be a number", withClaims(map[string]any{"exp": "NaN"})),
		bad("exp Infinity", "Infinity is not JSON", rawPayload(strings.Replace(valid, `"exp":`, `"exp":Infinity,"x":`, 1))),
		bad("exp negative", "long expired", withClaims(map[string]any{"exp": -1})),
		bad("exp boolean", "exp must be a number", withClaims(map[string]any{"exp": true})),
		bad("exp null", "exp must be a number", rawPayload(strings.Replace(valid, `"exp":`, `"exp":null,"x":`, 1))),
		bad("nbf a string", "nbf must be a number", withClaims(map[string]any{"nbf": "0"})),
		bad("iat a string", "iat must be a number", withClaims(map[string]any{"iat": "0"})),
		// iss: exact match only.
		bad("iss trailing slash", "iss is an exact string match", withClaims(map[string]any{"iss": iss + "/"})),
		bad("iss upper case", "iss is an exact string match", withClaims(map[string]any{"iss": strings.ToUpper(iss)})),
		bad("iss missing", "iss is required", withClaims(map[string]any{"iss": nil})),
		bad("iss empty", "iss is required", withClaims(map[string]any{"iss": ""})),
		bad("iss array", "iss must be a string", withClaims(map[string]any{"iss": []string{iss}})),
		bad("iss unconfigured", "only configured issuers", withClaims(map[string]any{"iss": "https://evil.example"})),
		// aud: the route's audience must be there.
		bad("aud missing", "the route's audience is required", withClaims(map[string]any{"aud": nil})),
		bad("aud empty string", "the route's audience is required", withClaims(map[string]any{"aud": ""})),
		bad("aud empty array", "the route's audience is required", withClaims(map[string]any{"aud": []string{}})),
		bad("aud object", "aud is a string or an array of strings", withClaims(map[string]any{"aud": map[string]any{"aud": audOrders}})),
		bad("aud number", "aud is a string or an array of strings", withClaims(map[string]any{"aud": 42})),
		bad("aud another API", "a token for inventory does not open orders", withClaims(map[string]any{"aud": audInventory})),
		bad("aud other APIs only", "none of them is the route's", withClaims(map[string]any{"aud": []string{audInventory, "https://x.example"}})),
		bad("aud with a trailing slash", "aud is an exact match", withClaims(map[string]any{"aud": audOrders + "/"})),
		bad("aud array holding an object", "aud entries are strings", withClaims(map[string]any{"aud": []any{map[string]any{"x": audOrders}}})),
		// Duplicate JSON keys: parsers disagree on which wins, so reject.
		bad("duplicate alg in header", "a later alg could disagree with what was checked",
			rawHeader(`{"alg":"ES256","kid":"idp-key-1","alg":"none"}`)),
		bad("duplicate kid in header", "ambiguous key selection",
			rawHeader(`{"alg":"ES256","kid":"other","kid":"idp-key-1"}`)),
		bad("duplicate aud in payload", "ambiguous audience",
			rawPayload(strings.Replace(valid, `"aud":`, `"aud":"https://evil.example","aud":`, 1))),
		bad("duplicate exp in payload", "ambiguous expiry",
			rawPayload(strings.Replace(valid, `"exp":`, `"exp":1,"exp":`, 1))),
		bad("duplicate iss in payload", "ambiguous issuer",
			rawPayload(strings.Replace(valid, `"iss":`, `"iss":"https://evil.example","iss":`, 1))),
		// Shape.
		bad("1 segment", "not a compact JWS", b64(hdr)),
		bad("2 segments", "not a compact JWS", body),
		bad("4 segments", "not a compact JWS", good+"."+goodSig),
		bad("5 segments JWE-shaped", "encrypted tokens are not accepted",
			b64(`{"alg":"RSA-OAEP","enc":"A256GCM","kid":"idp-rsa"}`)+"."+b64("key")+"."+b64("iv")+"."+b64("ciphertext")+"."+b64("tag")),
		bad("6 segments", "not a compact JWS", good+"."+goodSig+"."+goodSig),
		bad("empty segments", "not a compact JWS", ".."),
		advCase{name: "std base64 padding inside", reason: "'=' inside is not token68, so not a bearer token",
			token: oauthtest.Reencode(t, good, base64.URLEncoding), status: 400, www: wwwInvalidReq},
		bad("padded signature", "segments are unpadded base64url", body+"."+goodSig+"=="),
		bad("header not JSON", "the header must be a JSON object", rawHeader(`alg=ES256`)),
		bad("header JSON array", "the header must be a JSON object", rawHeader(`[{"alg":"ES256","kid":"idp-key-1"}]`)),
		bad("header JSON string", "the header must be a JSON object", rawHeader(`"ES256"`)),
		bad("header empty", "the header must be a JSON object", rawHeader(``)),
		bad("payload not JSON", "the payload must be a JSON object", rawPayload(`sub=mallory`)),
		bad("payload JSON array", "the payload must be a JSON object", rawPayload(`[`+valid+`]`)),
		bad("payload null", "the payload must be a JSON object", rawPayload(`null`)),
		bad("payload a number", "the payload must be a JSON object", rawPayload(`123`)),
		bad("payload trailing garbage", "one JSON object, nothing after it", rawPayload(valid+`{}`)),
		// Signatures.
		bad("signature empty", "a signature is required", body+"."),
		bad("signature truncated", "r||s must be 64 bytes", body+"."+goodSig[:len(goodSig)/2]),
		bad("signature spliced from another token", "the signature covers another payload", body+"."+otherSig),
		bad("signature bit-flipped", "one bit changes everything", flipBit(t, good)),
		bad("signature too long", "r||s must be exactly 64 bytes", body+"."+goodSig+"AAAA"),
		advCase{name: "signature not base64url", reason: "'!' is not token68", token: body + ".!!!!", status: 400, www: wwwInvalidReq},
		bad("signature with std alphabet", "'+' and '/' are not base64url", body+"."+strings.NewReplacer("-", "+", "_", "/").Replace(goodSig)+"+/"),
		// Size: the limit applies before parsing.
		bad("just over max_token_bytes", "max_token_bytes is 8192",
			withClaims(map[string]any{"pad": strings.Repeat("p", 8192)})),
		advCase{name: "1 MB token", reason: "over max_header_bytes: refused by the HTTP server itself",
			token: strings.Repeat("a", 1<<20), status: http.StatusRequestHeaderFieldsTooLarge},
		// The Authorization header itself.
		advCase{name: "no Authorization", reason: "a bearer token is required", status: 401, www: wwwRealm},
		advCase{name: "two Authorization headers", reason: "exactly one Authorization header",
			auth: []string{"Bearer " + good, "Bearer " + other}, status: 400, www: wwwInvalidReq},
		advCase{name: "two credentials in one header", reason: "exactly one credential",
			auth: []string{"Bearer " + good + ", Bearer " + other}, status: 400, www: wwwInvalidReq},
		advCase{name: "bearer token then garbage", reason: "exactly one token68",
			auth: []string{"Bearer " + good + " extra"}, status: 400, www: wwwInvalidReq},
		advCase{name: "token only in the query string", reason: "RFC 6750 query tokens are never accepted",
			query: "access_token=" + url.QueryEscape(good), status: 401, www: wwwRealm},
		advCase{name: "token only in an escaped query key", reason: "RFC 6750 query tokens are never accepted",
			query: "access%5Ftoken=" + url.QueryEscape(good), status: 401, www: wwwRealm},
		advCase{name: "Basic scheme", reason: "only Bearer carries a token",
			auth: []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+good))}, status: 401, www: wwwRealm},
		advCase{name: "other scheme", reason: "only Bearer carries a token", auth: []string{"Token " + good}, status: 401, www: wwwRealm},
		advCase{name: "Bearer with no token", reason: "an empty credential", auth: []string{"Bearer"}, status: 400, www: wwwInvalidReq},
		advCase{name: "Bearer and spaces", reason: "an empty credential", auth: []string{"Bearer   "}, status: 400, www: wwwInvalidReq},
		advCase{name: "token without a scheme", reason: "the scheme is required", auth: []string{good}, status: 401, www: wwwRealm},
		advCase{name: "lower-case bearer, bad token", reason: "the scheme is case-insensitive, so the token is checked",
			auth: []string{"bearer " + body + "."}, status: 401, www: wwwInvalidToken},
		advCase{name: "tab separator, bad token", reason: "tabs separate scheme and token, so the token is checked",
			auth: []string{"Bearer\t" + body + "."}, status: 401, www: wwwInvalidToken},
		advCase{name: "space inside the token", reason: "a token68 has no spaces", auth: []string{"Bearer " + body + ". " + goodSig}, status: 400, www: wwwInvalidReq},
		advCase{name: "unicode in the token", reason: "a token68 is ASCII", auth: []string{"Bearer " + body + ".sig\u00e9"}, status: 400, www: wwwInvalidReq},
		advCase{name: "comma in the token", reason: "a token68 has no commas", auth: []string{"Bearer " + body + ",x"}, status: 400, www: wwwInvalidReq},
	)
	// std alphabet: the same bytes with + and / (mint until the token has - or _).
	for i := 0; ; i++ {
		tok := craft(t, hdr, valid, es)
		if std := oauthtest.Reencode(t, tok, base64.RawStdEncoding); std != tok {
			cs = append(cs, bad("std base64 alphabet", "segments are base64url, not base64", std))
			break
		}
		if i > 100 {
			t.Fatal("no signature with - or _ in 100 tries")
		}
	}
	return append(cs, dpopAdversarialCases(t, w)...)
}

// TestAdversarialCorpus sends every hostile case through the real edge of a
// running server and the RFC 8693 endpoint; none may reach the backend,
// fetch an attacker URL, or leave a token in logs or metrics.
func TestAdversarialCorpus(t *testing.T) {
	w := startAdversarial(t)
	cases := adversarialCases(t, w)
	if len(cases) < 80 {
		t.Fatalf("the corpus has %d cases, want at least 80", len(cases))
	}
	// The baseline: a correct token passes, so each case fails for its defect.
	good := craft(t, `{"alg":"ES256","typ":"JWT","kid":"idp-key-1"}`, claimsJSON(t, w.idp.URL(), nil), signES256(w.ecKey))
	if resp, body := w.g.get(t, "/inventory", craft(t, `{"alg":"ES256","kid":"idp-key-1"}`,
		claimsJSON(t, w.idp.URL(), map[string]any{"aud": audInventory, "scope": "inventory:read"}), signES256(w.ecKey))); resp.StatusCode != 200 {
		t.Fatalf("the baseline token was refused: %d %s", resp.StatusCode, body)
	}
	if resp, out := exchangeAt(t, w.g, teForm(good, audOrders)); resp.StatusCode != 200 {
		t.Fatalf("the baseline token was refused at the token endpoint: %d %v", resp.StatusCode, out)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	names := map[string]bool{}
	for _, tc := range cases {
		if names[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			target := w.g.srv.EdgeURL() + "/orders/1"
			if tc.query != "" {
				target += "?" + tc.query
			}
			req, err := http.NewRequest(http.MethodGet, target, nil)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.auth != nil:
				req.Header["Authorization"] = tc.auth
			case tc.token != "":
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.dpop != nil {
				req.Header["Dpop"] = tc.dpop
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s): %s", resp.StatusCode, tc.status, tc.reason, body)
			}
			got := resp.Header.Get("WWW-Authenticate")
			if (tc.www == "" && got != "") || !strings.HasPrefix(got, tc.www) {
				t.Errorf("WWW-Authenticate = %q, want prefix %q", got, tc.www)
			}
			if tc.status < 431 {
				var e struct{ Error string }
				if json.Unmarshal(body, &e) != nil || e.Error == "" {
					t.Errorf("the body is not a JSON error: %s", body)
				}
			}
			for _, tok := range append([]string{tc.token}, tc.auth...) {
				if len(tok) > 16 && strings.Contains(string(body), tok) {
					t.Errorf("the response echoes the token")
				}
			}
			// The same subject token at the RFC 8693 endpoint is invalid_grant,
			// or invalid_target when only its aud does not allow the requested
			// audience (RFC 8693 section 2.2.2).
			if tc.www == wwwInvalidToken && tc.token != "" {
				want := "invalid_grant"
				if audienceRefused[tc.name] {
					want = "invalid_target"
				}
				resp, out := exchangeAt(t, w.g, teForm(tc.token, audOrders))
				if resp.StatusCode != 400 || out["error"] != want {
					t.Errorf("token endpoint: %d %v, want 400 %s", resp.StatusCode, out, want)
				}
			}
		})
	}
	t.Run("token endpoint subject_token encodings", func(t *testing.T) {
		body := good[:strings.LastIndex(good, ".")]
		for _, subject := range []string{body + ".\x00", body + ". sig", " " + good, good + "\n", body + ".sig\u00e9", ""} {
			resp, out := exchangeAt(t, w.g, teForm(subject, audOrders))
			if resp.StatusCode != 400 || (out["error"] != "invalid_grant" && out["error"] != "invalid_request") {
				t.Errorf("subject %q: %d %v, want 400 invalid_grant or invalid_request", subject, resp.StatusCode, out)
			}
		}
	})

	if n := len(w.orders.received()); n != 0 {
		t.Errorf("the orders backend received %d requests; every case must fail closed", n)
	}
	if n := w.atk.hits.Load(); n != 0 {
		t.Errorf("the attacker's server received %d requests; jku/x5u must never be fetched", n)
	}
	_, metrics := get(t, w.g.srv.AdminURL()+"/metrics")
	logs := w.g.logs.String()
	for _, tc := range cases {
		for _, tok := range append([]string{tc.token}, tc.auth...) {
			tok = strings.TrimPrefix(tok, "Bearer ")
			if len(tok) < 40 {
				continue
			}
			sig := tok[strings.LastIndex(tok, ".")+1:]
			for _, where := range []struct{ name, text string }{{"logs", logs}, {"metrics", metrics}} {
				if strings.Contains(where.text, tok) || (len(sig) >= 40 && strings.Contains(where.text, sig)) {
					t.Errorf("case %q: the token appears in the %s", tc.name, where.name)
				}
			}
		}
	}
}

// TestAdversarialSpoofedHeaders: a valid request carrying client-set
// identity headers and a query token is forwarded with those headers
// replaced and the query token dropped.
func TestAdversarialSpoofedHeaders(t *testing.T) {
	w := startAdversarial(t)
	umbrella := craft(t, `{"alg":"ES256","kid":"idp-key-1"}`,
		claimsJSON(t, w.idp.URL(), map[string]any{"aud": audInventory, "scope": "inventory:read"}), signES256(w.ecKey))
	edge, _ := url.Parse(w.g.srv.EdgeURL())
	tests := []struct {
		name   string
		auth   string
		query  string
		header map[string]string
	}{
		{"lower-case bearer", "bearer " + umbrella, "", nil},
		{"tab separator", "Bearer\t" + umbrella, "", nil},
		// A query token besides the header is now refused (400, RFC 6750
		// section 3.1): TestAdversarialEdgeTokenPlacement.
		{"spoofed identity headers", "Bearer " + umbrella, "a=1", map[string]string{
			"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
			"Forwarded": "for=6.6.6.6;host=evil.example;proto=https", "X-Real-Ip": "6.6.6.6",
			"X-Request-Id": "garbage with spaces " + strings.Repeat("x", 200),
		}},
		{"overlong request id", "Bearer " + umbrella, "", map[string]string{"X-Request-Id": strings.Repeat("r", 129)}},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(w.inventory.received())
			target := w.g.srv.EdgeURL() + "/inventory/items"
			if tc.query != "" {
				target += "?" + tc.query
			}
			req, _ := http.NewRequest(http.MethodGet, target, nil)
			req.Header["Authorization"] = []string{tc.auth}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			got := w.inventory.received()
			if len(got) != before+1 {
				t.Fatalf("the backend received %d requests, want 1", len(got)-before)
			}
			r := got[len(got)-1]
			if bearerOf(r) == umbrella || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				t.Errorf("Authorization not replaced by the exchanged token")
			}
			if strings.Contains(r.URL.RawQuery, "access") || strings.Contains(r.URL.RawQuery, umbrella) {
				t.Errorf("the query token was forwarded: %q", r.URL.RawQuery)
			}
			if strings.Contains(tc.query, "a=1") && r.URL.Query().Get("a") != "1" {
				t.Errorf("the rest of the query was lost: %q", r.URL.RawQuery)
			}
			if v := r.Header.Values("X-Forwarded-For"); len(v) != 1 || v[0] != "127.0.0.1" {
				t.Errorf("X-Forwarded-For = %q, want only the client's address", v)
			}
			if v := r.Header.Get("X-Forwarded-Host"); v != edge.Host {
				t.Errorf("X-Forwarded-Host = %q, want %q", v, edge.Host)
			}
			if v := r.Header.Get("X-Forwarded-Proto"); v != "http" {
				t.Errorf("X-Forwarded-Proto = %q, want http", v)
			}
			if v := r.Header.Get("Forwarded") + r.Header.Get("X-Real-Ip"); v != "" {
				t.Errorf("client Forwarded / X-Real-Ip passed through: %q", v)
			}
			id := r.Header.Get("X-Request-Id")
			if sent := tc.header["X-Request-Id"]; id == "" || (sent != "" && id == sent) {
				t.Errorf("X-Request-Id = %q: a bad client id must be replaced", id)
			}
			if resp.Header.Get("X-Request-Id") != id {
				t.Errorf("the response's X-Request-Id %q differs from the forwarded %q", resp.Header.Get("X-Request-Id"), id)
			}
		})
	}
	assertNoUmbrella(t, umbrella, w.g, w.orders, w.inventory)
	assertNoTokenInMetrics(t, umbrella, w.g)
}

// TestAdversarialWriteFuzzSeeds regenerates the corpus seeds of FuzzVerify
// (exchange/testdata/fuzz/FuzzVerify/corpus_*) when TOKENGATE_WRITE_FUZZ_SEEDS=1.
// The tokens are signed by keys the fuzz verifier does not know, so each
// seed reaches the parser and checks the corpus probes, never acceptance.
func TestAdversarialWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("TOKENGATE_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set TOKENGATE_WRITE_FUZZ_SEEDS=1 to regenerate the FuzzVerify corpus seeds")
	}
	w := startAdversarial(t)
	dir := filepath.Join("..", "..", "exchange", "testdata", "fuzz", "FuzzVerify")
	old, _ := filepath.Glob(filepath.Join(dir, "corpus_*"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	clean := strings.NewReplacer(" ", "_", "/", "_", "'", "", ",", "")
	n := 0
	for _, tc := range adversarialCases(t, w) {
		tok := tc.token
		if tok == "" && len(tc.auth) == 1 {
			tok = tc.auth[0]
		}
		if tok == "" || len(tok) > 16<<10 {
			continue
		}
		seed := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", tok)
		if err := os.WriteFile(filepath.Join(dir, "corpus_"+clean.Replace(tc.name)), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	t.Logf("wrote %d seeds to %s", n, dir)
}
