package verify

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// vtWantReject fails unless err is a *RejectError with reason, matching
// ErrInvalidToken, whose text does not contain the token.
func vtWantReject(t *testing.T, err error, reason, raw string) *exchange.RejectError {
	t.Helper()
	if err == nil {
		t.Fatalf("Verify succeeded, want rejection %q", reason)
	}
	re, ok := errors.AsType[*exchange.RejectError](err)
	if !ok {
		t.Fatalf("Verify error = %v (%T), want *RejectError %q", err, err, reason)
	}
	if re.Reason != reason {
		t.Fatalf("reason = %q (%s), want %q", re.Reason, re.Description, reason)
	}
	if !errors.Is(err, exchange.ErrInvalidToken) {
		t.Fatalf("errors.Is(err, ErrInvalidToken) = false for %v", err)
	}
	if errors.Is(err, exchange.ErrKeysUnavailable) {
		t.Fatalf("a rejection must not be ErrKeysUnavailable: %v", err)
	}
	if re.Description == "" {
		t.Fatal("empty description")
	}
	vtNoTokenIn(t, err.Error(), raw)
	return re
}

// vtNoTokenIn fails when text holds raw or any of its segments.
func vtNoTokenIn(t *testing.T, text, raw string) {
	t.Helper()
	for _, part := range append([]string{raw}, strings.Split(raw, ".")...) {
		if len(part) >= 12 && strings.Contains(text, part) {
			t.Fatalf("text leaks the token: %q", text)
		}
	}
}

func TestVerifyValid(t *testing.T) {
	t.Parallel()
	rsKey := vtRSAKey(t, "RS256", "rs")
	psKey := vtRSAKey(t, "PS256", "ps")
	edKey := oauthtest.NewSigningKey(t, "EdDSA", "ed")
	e := vtNewEnv(t, func(ic *config.Issuer) { ic.UmbrellaAudience = vtAudUmbrella }, rsKey, psKey, edKey)
	noKid := oauthtest.Key{Alg: "ES256", Signer: e.key.Signer}

	tests := []struct {
		name     string
		key      oauthtest.Key
		edit     func(map[string]any)
		audience string
		check    func(*testing.T, *exchange.Token)
	}{
		{name: "ES256 aud array", key: e.key, audience: vtAudOrders},
		{name: "same token second audience", key: e.key, audience: vtAudBilling},
		{name: "RS256", key: rsKey, audience: vtAudOrders},
		{name: "PS256", key: psKey, audience: vtAudOrders},
		{name: "EdDSA", key: edKey, audience: vtAudOrders},
		{name: "no kid tries fitting keys", key: noKid, audience: vtAudOrders},
		{name: "aud string", key: e.key, audience: vtAudOrders,
			edit: func(c map[string]any) { c["aud"] = vtAudOrders }},
		{name: "umbrella audience", key: e.key, audience: vtAudOrders,
			edit: func(c map[string]any) { c["aud"] = vtAudUmbrella },
			check: func(t *testing.T, tok *exchange.Token) {
				if tok.UmbrellaAudience != vtAudUmbrella {
					t.Errorf("UmbrellaAudience = %q", tok.UmbrellaAudience)
				}
			}},
		{name: "expired within leeway", key: e.key, audience: vtAudOrders,
			edit: func(c map[string]any) { c["exp"] = c["iat"].(int64) - 20 }},
		{name: "nbf and iat within leeway", key: e.key, audience: vtAudOrders,
			edit: func(c map[string]any) { c["nbf"] = c["iat"].(int64) + 20; c["iat"] = c["iat"].(int64) + 20 }},
		{name: "fractional dates", key: e.key, audience: vtAudOrders,
			edit: func(c map[string]any) { c["exp"] = float64(c["exp"].(int64)) + 0.5; c["iat"] = 1.5e9 },
			check: func(t *testing.T, tok *exchange.Token) {
				if got := tok.Claims.IssuedAt; !got.Equal(time.Unix(1.5e9, 0)) {
					t.Errorf("IssuedAt = %v", got)
				}
				if ns := tok.Claims.Expiry.Nanosecond(); ns != 5e8 {
					t.Errorf("Expiry nanoseconds = %d, want 5e8", ns)
				}
			}},
		{name: "claims mapped", key: e.key, audience: vtAudOrders,
			edit: func(c map[string]any) {
				delete(c, "client_id")
				c["azp"] = "spa"
				c["scope"] = " orders:read  orders:write "
				c["acr"] = "urn:mace:incommon:iap:silver"
				c["amr"] = []string{"pwd", "otp"}
				c["auth_time"] = c["iat"]
				c["jti"] = "id-1"
				c["tenant"] = map[string]any{"id": 7}
			},
			check: func(t *testing.T, tok *exchange.Token) {
				c := tok.Claims
				if c.Issuer != e.iss.Issuer || c.Subject != "user-1" || c.ClientID != "spa" || c.AZP != "spa" ||
					c.ACR != "urn:mace:incommon:iap:silver" || c.ID != "id-1" {
					t.Errorf("claims = %+v", c)
				}
				if !slices.Equal(c.Scopes, []string{"orders:read", "orders:write"}) {
					t.Errorf("Scopes = %q", c.Scopes)
				}
				if !slices.Equal(c.AMR, []string{"pwd", "otp"}) || !slices.Equal(c.Audience, []string{vtAudOrders, vtAudBilling}) {
					t.Errorf("AMR = %q, Audience = %q", c.AMR, c.Audience)
				}
				if c.AuthTime.IsZero() || c.NotBefore.IsZero() || c.IssuedAt.IsZero() {
					t.Errorf("times not set: %+v", c)
				}
				if string(c.Extra["tenant"]) != `{"id":7}` || string(c.Extra["sub"]) != `"user-1"` {
					t.Errorf("Extra = %q", c.Extra)
				}
			}},
		{name: "scp array when no scope", key: e.key, audience: vtAudOrders,
			edit: func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{"a", "b"} },
			check: func(t *testing.T, tok *exchange.Token) {
				if !slices.Equal(tok.Claims.Scopes, []string{"a", "b"}) {
					t.Errorf("Scopes = %q", tok.Claims.Scopes)
				}
			}},
		{name: "cnf.jkt read", key: e.key, audience: vtAudOrders,
			edit: func(c map[string]any) {
				c["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
			},
			check: func(t *testing.T, tok *exchange.Token) {
				if tok.Claims.JKT != "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" {
					t.Errorf("JKT = %q", tok.Claims.JKT)
				}
			}},
		{name: "no cnf is a bearer token", key: e.key, audience: vtAudOrders,
			check: func(t *testing.T, tok *exchange.Token) {
				if tok.Claims.JKT != "" {
					t.Errorf("JKT = %q, want none", tok.Claims.JKT)
				}
			}},
		{name: "client_id wins over azp", key: e.key, audience: vtAudOrders,
			edit: func(c map[string]any) { c["azp"] = "other" },
			check: func(t *testing.T, tok *exchange.Token) {
				if tok.Claims.ClientID != "app" || tok.Claims.AZP != "other" {
					t.Errorf("ClientID = %q, AZP = %q", tok.Claims.ClientID, tok.Claims.AZP)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.claims()
			if tc.edit != nil {
				tc.edit(c)
			}
			raw := tc.key.Sign(t, nil, c)
			tok, err := e.v.Verify(context.Background(), raw, tc.audience)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tok.SubjectToken() != raw || tok.Hash != sha256.Sum256([]byte(raw)) {
				t.Error("token or hash not kept")
			}
			if tc.check != nil {
				tc.check(t, tok)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	rsKey := vtRSAKey(t, "RS256", "rs")
	e := vtNewEnv(t, func(ic *config.Issuer) {
		ic.Algorithms = []string{"ES256", "ES384", "RS256", "PS256"}
	}, rsKey)
	if err := e.v.Prefetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now().Unix()
	valid := e.token(t, nil)
	h, p, _ := strings.Cut(valid, ".")
	p, s, _ := strings.Cut(p, ".")
	if len(h)%4 == 0 {
		t.Fatal("test setup: the header needs trailing bits for the non-canonical case")
	}
	other := oauthtest.NewSigningKey(t, "ES256", "k1")    // same kid, not published
	stranger := oauthtest.NewSigningKey(t, "ES256", "k9") // unknown kid
	p384 := oauthtest.NewSigningKey(t, "ES384", "k1")     // claims kid k1 with ES384
	rsAsPS := vtRSAKey(t, "PS256", "rs")                  // RS256-only JWK used with PS256
	payload := func(edit func(map[string]any)) string {
		c := e.claims()
		if edit != nil {
			edit(c)
		}
		return vtJSON(t, c)
	}
	raw := func(header, body string) string { return vtSignRaw(t, e.key, header, body) }
	const hdr = `{"alg":"ES256","kid":"k1"}`

	tests := []struct {
		name     string
		raw      string
		audience string
		reason   string
		desc     string // substring of the description, when it matters
		fetches  bool   // the check may involve the JWKS
	}{
		{name: "too large", raw: valid + strings.Repeat("A", 8192), reason: exchange.ReasonTooLarge},
		{name: "empty", raw: "", reason: exchange.ReasonMalformed},
		{name: "JWE", raw: "a.b.c.d.e", reason: exchange.ReasonMalformed, desc: "encrypted tokens (JWE) are not accepted"},
		{name: "two segments", raw: h + "." + p, reason: exchange.ReasonMalformed},
		{name: "four segments", raw: valid + ".x", reason: exchange.ReasonMalformed},
		{name: "empty header", raw: "." + p + "." + s, reason: exchange.ReasonMalformed},
		{name: "empty signature", raw: h + "." + p + ".", reason: exchange.ReasonMalformed},
		{name: "padding", raw: h + "." + p + "." + s + "==", reason: exchange.ReasonMalformed},
		{name: "padding in header", raw: h + "=." + p + "." + s, reason: exchange.ReasonMalformed},
		{name: "std alphabet", raw: h + "." + p + "+/." + s, reason: exchange.ReasonMalformed},
		{name: "newline", raw: h + "." + p[:10] + "\n" + p[10:] + "." + s, reason: exchange.ReasonMalformed},
		{name: "CR", raw: h + "\r." + p + "." + s, reason: exchange.ReasonMalformed},
		{name: "space", raw: h + "." + p + " ." + s, reason: exchange.ReasonMalformed},
		{name: "NUL", raw: h + "." + p + "." + s + "\x00", reason: exchange.ReasonMalformed},
		{name: "leading space", raw: " " + valid, reason: exchange.ReasonMalformed},
		{name: "non-canonical base64", raw: h[:len(h)-1] + vtFlipLowBits(h[len(h)-1:]) + "." + p + "." + s, reason: exchange.ReasonMalformed},
		{name: "header not JSON", raw: vtB64("not json") + "." + p + "." + s, reason: exchange.ReasonMalformed},
		{name: "header array", raw: raw(`["alg","ES256"]`, payload(nil)), reason: exchange.ReasonMalformed},
		{name: "header duplicate alg", raw: raw(`{"alg":"none","kid":"k1","alg":"ES256"}`, payload(nil)), reason: exchange.ReasonMalformed},
		{name: "header duplicate escaped name", raw: raw(`{"alg":"ES256","kid":"k1","\u006bid":"k2"}`, payload(nil)), reason: exchange.ReasonMalformed},
		{name: "header trailing data", raw: raw(hdr+`{}`, payload(nil)), reason: exchange.ReasonMalformed},
		{name: "header invalid UTF-8", raw: raw(`{"alg":"ES256","kid":"k1","x":"`+"\xff"+`"}`, payload(nil)), reason: exchange.ReasonMalformed},
		{name: "crit", raw: e.key.Sign(t, map[string]any{"crit": []string{"exp"}, "exp": 1}, e.claims()), reason: exchange.ReasonCrit},
		{name: "crit empty", raw: raw(`{"alg":"ES256","kid":"k1","crit":[]}`, payload(nil)), reason: exchange.ReasonCrit},
		{name: "b64", raw: raw(`{"alg":"ES256","kid":"k1","b64":true}`, payload(nil)), reason: exchange.ReasonCrit},
		{name: "alg none", raw: vtB64(`{"alg":"none"}`) + "." + p + ".AA", reason: exchange.ReasonAlgorithm},
		{name: "alg missing", raw: raw(`{"kid":"k1"}`, payload(nil)), reason: exchange.ReasonAlgorithm},
		{name: "alg not a string", raw: raw(`{"alg":["ES256"],"kid":"k1"}`, payload(nil)), reason: exchange.ReasonAlgorithm},
		{name: "alg lower case", raw: raw(`{"alg":"es256","kid":"k1"}`, payload(nil)), reason: exchange.ReasonAlgorithm},
		{name: "alg not in issuer allowlist", raw: oauthtest.NewSigningKey(t, "EdDSA", "k1").Sign(t, nil, e.claims()), reason: exchange.ReasonAlgorithm},
		{name: "HS256 keyed with the RSA public key", raw: vtHS256(t, rsKey.Signer.Public(), "rs", payload(nil)), reason: exchange.ReasonAlgorithm},
		{name: "kid not a string", raw: raw(`{"alg":"ES256","kid":1}`, payload(nil)), reason: exchange.ReasonMalformed},
		{name: "cnf not an object", raw: e.key.Sign(t, nil, vtWith(e.claims(), "cnf", "jkt")), reason: exchange.ReasonMalformed},
		{name: "cnf null", raw: e.key.Sign(t, nil, vtWith(e.claims(), "cnf", nil)), reason: exchange.ReasonMalformed},
		{name: "cnf.jkt not a string", raw: e.key.Sign(t, nil, vtWith(e.claims(), "cnf", map[string]any{"jkt": 1})), reason: exchange.ReasonMalformed},
		{name: "cnf bound to an mTLS certificate", raw: e.key.Sign(t, nil, vtWith(e.claims(), "cnf", map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"})), reason: exchange.ReasonBinding},
		{name: "cnf.jkt empty", raw: e.key.Sign(t, nil, vtWith(e.claims(), "cnf", map[string]any{"jkt": ""})), reason: exchange.ReasonBinding},
		{name: "payload not JSON", raw: h + "." + vtB64("{") + "." + s, reason: exchange.ReasonMalformed},
		{name: "payload array", raw: raw(hdr, `[1]`), reason: exchange.ReasonMalformed},
		{name: "payload null", raw: raw(hdr, `null`), reason: exchange.ReasonMalformed},
		{name: "payload invalid UTF-8", raw: raw(hdr, strings.Replace(payload(nil), "user-1", "\xc3\x28", 1)), reason: exchange.ReasonMalformed},
		{name: "payload duplicate iss", raw: raw(hdr, strings.Replace(payload(nil), `{`, `{"iss":"https://evil.example",`, 1)), reason: exchange.ReasonMalformed},
		{name: "payload duplicate exp", raw: raw(hdr, strings.Replace(payload(nil), `{`, fmt.Sprintf(`{"exp":%d,`, now+1e6), 1)), reason: exchange.ReasonMalformed},
		{name: "payload nested duplicate", raw: raw(hdr, strings.Replace(payload(nil), `{`, `{"act":{"sub":"a","sub":"b"},`, 1)), reason: exchange.ReasonMalformed},
		{name: "iss missing", raw: e.token(t, func(c map[string]any) { delete(c, "iss") }), reason: exchange.ReasonIssuer},
		{name: "iss unknown", raw: e.token(t, func(c map[string]any) { c["iss"] = "https://evil.example" }), reason: exchange.ReasonIssuer, desc: "issuer not accepted"},
		{name: "iss trailing slash", raw: e.token(t, func(c map[string]any) { c["iss"] = e.iss.Issuer + "/" }), reason: exchange.ReasonIssuer},
		{name: "iss not a string", raw: e.token(t, func(c map[string]any) { c["iss"] = []string{e.iss.Issuer} }), reason: exchange.ReasonIssuer},
		{name: "exp missing", raw: e.token(t, func(c map[string]any) { delete(c, "exp") }), reason: exchange.ReasonMalformed},
		{name: "exp string", raw: e.token(t, func(c map[string]any) { c["exp"] = fmt.Sprint(now + 60) }), reason: exchange.ReasonMalformed},
		{name: "exp bool", raw: e.token(t, func(c map[string]any) { c["exp"] = true }), reason: exchange.ReasonMalformed},
		{name: "exp null", raw: e.token(t, func(c map[string]any) { c["exp"] = nil }), reason: exchange.ReasonMalformed},
		{name: "exp beyond int64", raw: raw(hdr, strings.Replace(payload(nil), fmt.Sprintf(`"exp":%d`, now+3600), `"exp":9223372036854775808`, 1)), reason: exchange.ReasonMalformed},
		{name: "exp float beyond int64", raw: e.token(t, func(c map[string]any) { c["exp"] = 1e30 }), reason: exchange.ReasonMalformed},
		{name: "exp 2^63 as float", raw: e.token(t, func(c map[string]any) { c["exp"] = math.Pow(2, 63) }), reason: exchange.ReasonMalformed},
		{name: "nbf string", raw: e.token(t, func(c map[string]any) { c["nbf"] = "0" }), reason: exchange.ReasonMalformed},
		{name: "iat object", raw: e.token(t, func(c map[string]any) { c["iat"] = map[string]any{} }), reason: exchange.ReasonMalformed},
		{name: "auth_time string", raw: e.token(t, func(c map[string]any) { c["auth_time"] = "yesterday" }), reason: exchange.ReasonMalformed},
		{name: "aud number", raw: e.token(t, func(c map[string]any) { c["aud"] = 7 }), reason: exchange.ReasonMalformed},
		{name: "aud array with number", raw: e.token(t, func(c map[string]any) { c["aud"] = []any{vtAudOrders, 7} }), reason: exchange.ReasonMalformed},
		{name: "aud missing", raw: e.token(t, func(c map[string]any) { delete(c, "aud") }), reason: exchange.ReasonAudience},
		{name: "aud empty array", raw: e.token(t, func(c map[string]any) { c["aud"] = []string{} }), reason: exchange.ReasonAudience},
		{name: "aud empty string", raw: e.token(t, func(c map[string]any) { c["aud"] = "" }), reason: exchange.ReasonAudience},
		{name: "aud other API", raw: e.token(t, nil), audience: "https://hr.example.com", reason: exchange.ReasonAudience,
			desc: "audience not accepted: expected https://hr.example.com"},
		{name: "aud only umbrella, none configured", raw: e.token(t, func(c map[string]any) { c["aud"] = vtAudUmbrella }), reason: exchange.ReasonAudience},
		{name: "sub number", raw: e.token(t, func(c map[string]any) { c["sub"] = 1 }), reason: exchange.ReasonMalformed},
		{name: "client_id bool", raw: e.token(t, func(c map[string]any) { c["client_id"] = false }), reason: exchange.ReasonMalformed},
		{name: "scope array", raw: e.token(t, func(c map[string]any) { c["scope"] = []string{"a"} }), reason: exchange.ReasonMalformed},
		{name: "scp string", raw: e.token(t, func(c map[string]any) { c["scp"] = "a b" }), reason: exchange.ReasonMalformed},
		{name: "amr string", raw: e.token(t, func(c map[string]any) { c["amr"] = "pwd" }), reason: exchange.ReasonMalformed},
		{name: "acr number", raw: e.token(t, func(c map[string]any) { c["acr"] = 1 }), reason: exchange.ReasonMalformed},
		{name: "jti number", raw: e.token(t, func(c map[string]any) { c["jti"] = 1 }), reason: exchange.ReasonMalformed},
		{name: "expired", raw: e.token(t, func(c map[string]any) { c["exp"] = now - 31 }), reason: exchange.ReasonExpired, desc: "token expired"},
		{name: "expired at exp+leeway", raw: e.token(t, func(c map[string]any) { c["exp"] = now - 30 }), reason: exchange.ReasonExpired},
		{name: "exp far past", raw: e.token(t, func(c map[string]any) { c["exp"] = math.MinInt64 }), reason: exchange.ReasonExpired},
		{name: "nbf in the future", raw: e.token(t, func(c map[string]any) { c["nbf"] = now + 31 }), reason: exchange.ReasonNotYetValid},
		{name: "nbf max int64", raw: e.token(t, func(c map[string]any) { c["nbf"] = int64(math.MaxInt64) }), reason: exchange.ReasonNotYetValid},
		{name: "iat in the future", raw: e.token(t, func(c map[string]any) { c["iat"] = now + 31 }), reason: exchange.ReasonNotYetValid},
		{name: "wrong key, known kid", raw: other.Sign(t, nil, e.claims()), reason: exchange.ReasonSignature, desc: "signature verification failed", fetches: true},
		{name: "payload tampered", raw: h + "." + vtB64(payload(func(c map[string]any) { c["sub"] = "admin" })) + "." + s, reason: exchange.ReasonSignature, fetches: true},
		{name: "signature of another token", raw: h + "." + p + "." + strings.Split(e.token(t, func(c map[string]any) { c["sub"] = "x" }), ".")[2], reason: exchange.ReasonSignature, fetches: true},
		{name: "unknown kid", raw: stranger.Sign(t, nil, e.claims()), reason: exchange.ReasonUnknownKey, desc: "token signed with an unknown key", fetches: true},
		{name: "known kid, other key type", raw: p384.Sign(t, nil, e.claims()), reason: exchange.ReasonAlgorithm, fetches: true},
		{name: "JWK alg differs from token alg", raw: rsAsPS.Sign(t, nil, e.claims()), reason: exchange.ReasonAlgorithm, fetches: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.idp.JWKSFetches()
			aud := tc.audience
			if aud == "" {
				aud = vtAudOrders
			}
			_, err := e.v.Verify(context.Background(), tc.raw, aud)
			re := vtWantReject(t, err, tc.reason, tc.raw)
			if tc.desc != "" && !strings.Contains(re.Description, tc.desc) {
				t.Errorf("description %q does not contain %q", re.Description, tc.desc)
			}
			if !tc.fetches && e.idp.JWKSFetches() != before {
				t.Errorf("a %s rejection fetched the JWKS", tc.reason)
			}
		})
	}
	if n := e.v.memo.len(); n != 0 {
		t.Errorf("memo holds %d rejected tokens", n)
	}
	if strings.Contains(e.logs.String(), p) {
		t.Error("logs contain a token")
	}
}

// vtFlipLowBits changes a final base64url character so that it decodes to
// the same bytes only under a lenient decoder (non-zero trailing bits).
func vtFlipLowBits(c string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.Index(alphabet, c)
	return string(alphabet[i^1])
}

func TestVerifyHeaderKeyURLsNeverFetched(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, nil)
	attacker := oauthtest.NewSigningKey(t, "ES256", "evil")
	jwks := oauthtest.JWKS(t, attacker)
	var hits atomic.Int64
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(jwks)
	}))
	t.Cleanup(trap.Close)
	headers := map[string]any{"jku": trap.URL + "/jwks", "x5u": trap.URL + "/cert.pem"}

	// A legitimate token carrying jku/x5u still verifies with the issuer's keys.
	if _, err := e.v.Verify(context.Background(), e.key.Sign(t, headers, e.claims()), vtAudOrders); err != nil {
		t.Fatalf("legit token with jku: %v", err)
	}
	// The attacker's token names its own key set and embeds its own key.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: attacker.Signer},
		(&jose.SignerOptions{EmbedJWK: true}).WithHeader("jku", trap.URL+"/jwks").WithHeader("x5u", trap.URL+"/c"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign([]byte(vtJSON(t, e.claims())))
	if err != nil {
		t.Fatal(err)
	}
	evil, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(vtMustDecodeTB(t, strings.Split(evil, ".")[0])), `"jwk"`) {
		t.Fatal("test setup: no embedded jwk")
	}
	_, err = e.v.Verify(context.Background(), evil, vtAudOrders)
	vtWantReject(t, err, exchange.ReasonSignature, evil)
	// And with a kid the issuer does not know: unknown key, never the jku.
	evilKid := attacker.Sign(t, headers, e.claims())
	_, err = e.v.Verify(context.Background(), evilKid, vtAudOrders)
	vtWantReject(t, err, exchange.ReasonUnknownKey, evilKid)
	if n := hits.Load(); n != 0 {
		t.Fatalf("jku/x5u server was hit %d times", n)
	}
}

func TestVerifyMemo(t *testing.T) {
	t.Parallel()
	t.Run("hit skips signature and parsing", func(t *testing.T) {
		t.Parallel()
		e := vtNewEnv(t, nil)
		raw := e.token(t, nil)
		first, err := e.v.Verify(context.Background(), raw, vtAudOrders)
		if err != nil {
			t.Fatal(err)
		}
		// Remove every key from the verifier: only the memo can answer now.
		e.v.issuers[e.iss.Issuer].keys.current.Store(&jwksSnapshot{})
		e.idp.SetJWKSStatus(http.StatusInternalServerError)
		for _, aud := range []string{vtAudOrders, vtAudBilling} {
			tok, err := e.v.Verify(context.Background(), raw, aud)
			if err != nil {
				t.Fatalf("memo hit for %s: %v", aud, err)
			}
			if tok != first {
				t.Error("memo hit returned a different *Token")
			}
		}
		if n := e.sigs.Load(); n != 1 {
			t.Errorf("signature checks = %d, want 1", n)
		}
		_, err = e.v.Verify(context.Background(), raw, "https://hr.example.com")
		vtWantReject(t, err, exchange.ReasonAudience, raw)
	})
	t.Run("respects exp with leeway", func(t *testing.T) {
		t.Parallel()
		e := vtNewEnv(t, nil) // leeway 30s
		raw := e.token(t, func(c map[string]any) { c["exp"] = c["iat"].(int64) + 60 })
		if _, err := e.v.Verify(context.Background(), raw, vtAudOrders); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(89 * time.Second)
		if _, err := e.v.Verify(context.Background(), raw, vtAudOrders); err != nil {
			t.Fatalf("within leeway: %v", err)
		}
		e.clock.Advance(time.Second)
		_, err := e.v.Verify(context.Background(), raw, vtAudOrders)
		vtWantReject(t, err, exchange.ReasonExpired, raw)
		if n := e.v.memo.len(); n != 0 {
			t.Errorf("expired entry kept: memo len %d", n)
		}
		if n := e.sigs.Load(); n != 1 {
			t.Errorf("signature checks = %d, want 1", n)
		}
	})
	t.Run("respects nbf when the clock goes back", func(t *testing.T) {
		t.Parallel()
		e := vtNewEnv(t, nil)
		raw := e.token(t, nil)
		if _, err := e.v.Verify(context.Background(), raw, vtAudOrders); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(-time.Minute)
		_, err := e.v.Verify(context.Background(), raw, vtAudOrders)
		vtWantReject(t, err, exchange.ReasonNotYetValid, raw)
	})
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		e := vtNewEnvOpts(t, nil, VerifierOptions{MemoSize: -1})
		raw := e.token(t, nil)
		for range 3 {
			if _, err := e.v.Verify(context.Background(), raw, vtAudOrders); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.sigs.Load(); n != 3 {
			t.Errorf("signature checks = %d, want 3", n)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		t.Parallel()
		e := vtNewEnvOpts(t, nil, VerifierOptions{MemoSize: 2})
		for i := range 5 {
			raw := e.token(t, func(c map[string]any) { c["jti"] = fmt.Sprint(i) })
			if _, err := e.v.Verify(context.Background(), raw, vtAudOrders); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.v.memo.len(); n != 2 {
			t.Errorf("memo len = %d, want 2", n)
		}
	})
}

func TestVerifyMaxTokenBytes(t *testing.T) {
	t.Parallel()
	e := vtNewEnvOpts(t, nil, VerifierOptions{MaxTokenBytes: 600})
	small := e.token(t, nil)
	big := e.token(t, func(c map[string]any) { c["pad"] = strings.Repeat("x", 600) })
	if _, err := e.v.Verify(context.Background(), small, vtAudOrders); err != nil {
		t.Fatalf("small token: %v", err)
	}
	_, err := e.v.Verify(context.Background(), big, vtAudOrders)
	vtWantReject(t, err, exchange.ReasonTooLarge, big)
}

func TestNewVerifierErrors(t *testing.T) {
	t.Parallel()
	ok := config.Issuer{Issuer: "https://idp.example.com/", JWKSURI: "https://idp.example.com/jwks"}
	tests := []struct {
		name    string
		issuers []config.Issuer
		client  *http.Client
		want    string
	}{
		{name: "no client", issuers: []config.Issuer{ok}, want: "HTTP client"},
		{name: "HS256 configured", issuers: []config.Issuer{{Issuer: "x", JWKSURI: "https://x/j", Algorithms: []string{"HS256"}}}, client: &http.Client{}, want: `"HS256"`},
		{name: "none configured", issuers: []config.Issuer{{Issuer: "x", JWKSURI: "https://x/j", Algorithms: []string{"none"}}}, client: &http.Client{}, want: `"none"`},
		{name: "no key source", issuers: []config.Issuer{{Issuer: "x"}}, client: &http.Client{}, want: "jwks_uri or discovery"},
		{name: "bad jwks_uri", issuers: []config.Issuer{{Issuer: "x", JWKSURI: "/relative"}}, client: &http.Client{}, want: "jwks_uri"},
		{name: "plain http jwks_uri", issuers: []config.Issuer{{Issuer: "x", JWKSURI: "http://idp.example.com/jwks"}}, client: &http.Client{}, want: "allow_insecure_http"},
		{name: "plain http discovery", issuers: []config.Issuer{{Issuer: "http://idp.example.com", Discovery: true}}, client: &http.Client{}, want: "allow_insecure_http"},
		{name: "discovery without URL issuer", issuers: []config.Issuer{{Issuer: "x", Discovery: true}}, client: &http.Client{}, want: "discovery"},
		{name: "empty issuer", issuers: []config.Issuer{{JWKSURI: "https://x/j"}}, client: &http.Client{}, want: "issuer is empty"},
		{name: "duplicate", issuers: []config.Issuer{ok, ok}, client: &http.Client{}, want: "issuers[1]: issuer \"https://idp.example.com/\" is configured twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(tc.issuers, VerifierOptions{HTTPClient: tc.client})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestNewVerifierDefaults(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier([]config.Issuer{
		{Issuer: "x", JWKSURI: "https://x/j"},
		{Issuer: "http://idp.internal", Discovery: true, AllowInsecureHTTP: true},
		{Issuer: "y", JWKSURI: "http://localhost:8080/j"},
	}, VerifierOptions{HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	iss := v.issuers["x"]
	switch {
	case v.maxTokenBytes != 8192:
		t.Errorf("maxTokenBytes = %d", v.maxTokenBytes)
	case v.memo == nil:
		t.Error("memo not enabled by default")
	case iss.keys.minInterval != 10*time.Second || iss.keys.timeout != 5*time.Second:
		t.Errorf("interval %v timeout %v", iss.keys.minInterval, iss.keys.timeout)
	case iss.leeway != 0:
		t.Errorf("leeway = %v, want 0 (a zero leeway is valid)", iss.leeway)
	case !slices.Equal(iss.algs, verifyAsymmetricAlgs()):
		t.Errorf("algs = %v", iss.algs)
	case slices.Contains(iss.algs, jose.HS256):
		t.Error("HS256 allowed by default")
	}
}

// TestVerifyConcurrent exercises the memo and key set under -race.
func TestVerifyConcurrent(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, nil)
	toks := make([]string, 8)
	for i := range toks {
		toks[i] = e.token(t, func(c map[string]any) { c["jti"] = fmt.Sprint(i) })
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				if _, err := e.v.Verify(context.Background(), toks[(g+i)%len(toks)], vtAudOrders); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.idp.JWKSFetches(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
}

func BenchmarkVerifyMemoHit(b *testing.B) {
	e := vtNewEnv(b, nil)
	raw := e.token(b, nil)
	ctx := context.Background()
	if _, err := e.v.Verify(ctx, raw, vtAudOrders); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(ctx, raw, vtAudOrders); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyNoMemo(b *testing.B) {
	e := vtNewEnvOpts(b, nil, VerifierOptions{MemoSize: -1})
	raw := e.token(b, nil)
	ctx := context.Background()
	if _, err := e.v.Verify(ctx, raw, vtAudOrders); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(ctx, raw, vtAudOrders); err != nil {
			b.Fatal(err)
		}
	}
}
