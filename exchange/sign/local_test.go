package sign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/keys"
)

const (
	ltIssuer   = "https://gw.example.com"
	ltAudience = "https://orders.example.com"
)

// ltNow has a fractional second so flooring to NumericDate is exercised.
var ltNow = time.Unix(1_700_000_000, 600_000_000)

func ltClock() time.Time { return ltNow }

func ltClaims() exchange.Claims {
	return exchange.Claims{
		Issuer:   "https://idp.example.com/",
		Subject:  "user-1",
		Audience: []string{ltAudience, "https://billing.example.com"},
		Expiry:   ltNow.Add(time.Hour).Truncate(time.Second),
		ClientID: "app-1",
		AZP:      "app-1",
		Scopes:   []string{"orders:read", "billing:read"},
		ACR:      "mfa",
		Extra: map[string]json.RawMessage{
			"iss":       json.RawMessage(`"https://idp.example.com/"`),
			"sub":       json.RawMessage(`"user-1"`),
			"client_id": json.RawMessage(`"app-1"`),
			"azp":       json.RawMessage(`"app-1"`),
			"acr":       json.RawMessage(`"mfa"`),
			"amr":       json.RawMessage(`["pwd","otp"]`),
			"auth_time": json.RawMessage(`1699999000`),
			"tenant":    json.RawMessage(`{"id":7,"name":"acme"}`),
		},
	}
}

func ltRequest(c exchange.Claims, aud string, scopes []string) exchange.Request {
	raw := "umbrella." + c.Subject
	return exchange.Request{Subject: exchange.NewToken(raw, sha256.Sum256([]byte(raw)), c, ""), Audience: aud, Scopes: scopes}
}

func ltNewLocal(t testing.TB, ks *keys.KeySet, mutate func(*LocalOptions)) *Local {
	t.Helper()
	opts := LocalOptions{
		Issuer:     ltIssuer,
		TokenTTL:   5 * time.Minute,
		CopyClaims: []string{"sub", "client_id", "azp", "acr", "amr", "auth_time"},
		Keys:       ks,
		Clock:      ltClock,
	}
	if mutate != nil {
		mutate(&opts)
	}
	l, err := NewLocal(opts)
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	return l
}

func ltKeySet(t testing.TB, specs ...keys.KeySpec) *keys.KeySet {
	t.Helper()
	if len(specs) == 0 {
		specs = []keys.KeySpec{{Signer: ltGetKeys(t).P256, Alg: "ES256"}}
	}
	ks, err := keys.NewKeySetFromSigners(specs)
	if err != nil {
		t.Fatalf("NewKeySetFromSigners: %v", err)
	}
	return ks
}

// ltVerify checks a minted token's signature against the published JWKS the
// way a backend would and returns its header and raw claims.
func ltVerify(t testing.TB, token string, ks *keys.KeySet, alg jose.SignatureAlgorithm) (jose.Header, map[string]json.RawMessage) {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatalf("ParseSigned: %v", err)
	}
	if len(parsed.Headers) != 1 {
		t.Fatalf("%d JWS headers, want 1", len(parsed.Headers))
	}
	var raw map[string]json.RawMessage
	var std jwt.Claims
	if err := parsed.Claims(ks.PublicJWKS(), &raw, &std); err != nil {
		t.Fatalf("signature does not verify with the published JWKS: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: ltIssuer, Time: ltNow}, 0); err != nil {
		t.Errorf("go-jose rejects the claims: %v", err)
	}
	return parsed.Headers[0], raw
}

func ltQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestLocalExchangeFormats(t *testing.T) {
	for _, f := range ltFormats(t) {
		t.Run(f.Name, func(t *testing.T) {
			ks, err := keys.NewKeySet([]config.SigningKey{{File: ltWrite(t, "key.pem", f.PEM), Alg: string(f.Alg)}})
			if err != nil {
				t.Fatalf("NewKeySet: %v", err)
			}
			l := ltNewLocal(t, ks, nil)
			res, err := l.Exchange(t.Context(), ltRequest(ltClaims(), ltAudience, []string{"orders:read", "orders:write"}))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			hdr, raw := ltVerify(t, res.AccessToken, ks, f.Alg)
			if hdr.ExtraHeaders[jose.HeaderType] != "at+jwt" {
				t.Errorf("typ = %v, want at+jwt", hdr.ExtraHeaders[jose.HeaderType])
			}
			if hdr.KeyID != ks.Active().Kid || hdr.Algorithm != string(f.Alg) {
				t.Errorf("header kid %q alg %q, want %q %q", hdr.KeyID, hdr.Algorithm, ks.Active().Kid, f.Alg)
			}
			if hdr.JSONWebKey != nil {
				t.Error("header embeds a jwk")
			}

			iat := strconv.FormatInt(ltNow.Unix(), 10)
			want := map[string]string{
				"iss":       ltQuote(ltIssuer),
				"aud":       ltQuote(ltAudience), // one string, not an array
				"sub":       `"user-1"`,
				"client_id": `"app-1"`,
				"scope":     `"orders:read orders:write"`,
				"iat":       iat,
				"nbf":       iat,
				"exp":       strconv.FormatInt(ltNow.Unix()+300, 10),
				"act":       `{"sub":` + ltQuote(ltIssuer) + `}`,
				"azp":       `"app-1"`,
				"acr":       `"mfa"`,
				"amr":       `["pwd","otp"]`,
				"auth_time": `1699999000`,
			}
			for name, w := range want {
				if got := string(raw[name]); got != w {
					t.Errorf("claim %s = %s, want %s", name, got, w)
				}
			}
			var jti string
			if err := json.Unmarshal(raw["jti"], &jti); err != nil {
				t.Fatalf("jti: %v", err)
			}
			if b, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(b) != 16 {
				t.Errorf("jti %q is not 128 bits of base64url", jti)
			}
			if extra := slices.Collect(maps.Keys(raw)); len(extra) != len(want)+1 {
				slices.Sort(extra)
				t.Errorf("claims %v: want exactly %d", extra, len(want)+1)
			}

			wantRes := exchange.Result{AccessToken: res.AccessToken, IssuedTokenType: exchange.TokenTypeAccessToken, TokenType: "Bearer",
				Scope: "orders:read orders:write", ExpiresAt: time.Unix(ltNow.Unix()+300, 0)}
			if *res != wantRes {
				t.Errorf("Result = %+v, want %+v", *res, wantRes)
			}
		})
	}
}

func TestLocalExchangeClaims(t *testing.T) {
	ks := ltKeySet(t)
	now := ltNow.Unix()
	cases := []struct {
		name       string
		claims     func(*exchange.Claims)
		scopes     []string
		copyClaims []string
		nilSubject bool
		wantReason string // a RejectError is expected
		want       map[string]string
		absent     []string
		wantExp    int64
	}{
		{
			name:    "ttl bounds exp",
			scopes:  []string{"orders:read"},
			want:    map[string]string{"scope": `"orders:read"`, "sub": `"user-1"`},
			wantExp: now + 300,
		},
		{
			name:    "umbrella exp caps exp",
			claims:  func(c *exchange.Claims) { c.Expiry = time.Unix(now+60, 0) },
			wantExp: now + 60,
		},
		{
			name:    "umbrella exp one second ahead",
			claims:  func(c *exchange.Claims) { c.Expiry = time.Unix(now+1, 0) },
			wantExp: now + 1,
		},
		{
			name:       "umbrella expires this second",
			claims:     func(c *exchange.Claims) { c.Expiry = time.Unix(now, 0) },
			wantReason: exchange.ReasonExpired,
		},
		{
			name:       "umbrella already expired",
			claims:     func(c *exchange.Claims) { c.Expiry = ltNow.Add(-time.Hour) },
			wantReason: exchange.ReasonExpired,
		},
		{
			name:       "umbrella without exp",
			claims:     func(c *exchange.Claims) { c.Expiry = time.Time{} },
			wantReason: exchange.ReasonMalformed,
		},
		{
			name:    "no scopes omits scope",
			absent:  []string{"scope"},
			wantExp: now + 300,
		},
		{
			name: "client credentials token: sub is client_id",
			claims: func(c *exchange.Claims) {
				c.Subject = ""
				delete(c.Extra, "sub")
			},
			want:    map[string]string{"sub": `"app-1"`, "client_id": `"app-1"`},
			wantExp: now + 300,
		},
		{
			name: "neither sub nor client_id",
			claims: func(c *exchange.Claims) {
				c.Subject, c.ClientID = "", ""
			},
			wantReason: exchange.ReasonMalformed,
		},
		{
			name:    "no client_id omits it",
			claims:  func(c *exchange.Claims) { c.ClientID = ""; delete(c.Extra, "client_id") },
			absent:  []string{"client_id"},
			want:    map[string]string{"sub": `"user-1"`},
			wantExp: now + 300,
		},
		{
			name: "copy_claims never override reserved claims",
			claims: func(c *exchange.Claims) {
				for name, v := range map[string]string{
					"iss": `"https://evil.example.com"`, "aud": `["a","b"]`, "exp": `9999999999`,
					"iat": `1`, "nbf": `1`, "jti": `"fixed"`, "scope": `"admin"`, "act": `{"sub":"evil"}`,
					"sub": `"someone-else"`, "client_id": `"other-app"`,
				} {
					c.Extra[name] = json.RawMessage(v)
				}
			},
			copyClaims: []string{"iss", "aud", "exp", "iat", "nbf", "jti", "scope", "act", "sub", "client_id", "tenant", "missing", "acr"},
			want: map[string]string{
				"iss": ltQuote(ltIssuer), "aud": ltQuote(ltAudience), "sub": `"user-1"`, "client_id": `"app-1"`,
				"iat": strconv.FormatInt(now, 10), "nbf": strconv.FormatInt(now, 10),
				"act":    `{"sub":` + ltQuote(ltIssuer) + `}`,
				"tenant": `{"id":7,"name":"acme"}`, "acr": `"mfa"`,
			},
			absent:  []string{"scope", "missing", "amr", "azp"},
			wantExp: now + 300,
		},
		{
			name:       "copy_claims empty copies nothing extra",
			copyClaims: []string{},
			absent:     []string{"azp", "acr", "amr", "auth_time", "tenant"},
			want:       map[string]string{"sub": `"user-1"`, "client_id": `"app-1"`},
			wantExp:    now + 300,
		},
		{
			name:       "no subject token",
			nilSubject: true,
			wantReason: exchange.ReasonMalformed,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := ltNewLocal(t, ks, func(o *LocalOptions) {
				if tc.copyClaims != nil {
					o.CopyClaims = tc.copyClaims
				}
			})
			c := ltClaims()
			if tc.claims != nil {
				tc.claims(&c)
			}
			req := ltRequest(c, ltAudience, tc.scopes)
			if tc.nilSubject {
				req.Subject = nil
			}
			res, err := l.Exchange(t.Context(), req)
			if tc.wantReason != "" {
				var rej *exchange.RejectError
				if !errors.As(err, &rej) || rej.Reason != tc.wantReason || !errors.Is(err, exchange.ErrInvalidToken) {
					t.Fatalf("err = %v, want a %s rejection", err, tc.wantReason)
				}
				if res != nil {
					t.Errorf("Result %+v returned with an error", res)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			_, raw := ltVerify(t, res.AccessToken, ks, jose.ES256)
			for name, w := range tc.want {
				if got := string(raw[name]); got != w {
					t.Errorf("claim %s = %s, want %s", name, got, w)
				}
			}
			for _, name := range tc.absent {
				if v, ok := raw[name]; ok {
					t.Errorf("claim %s = %s, want it absent", name, v)
				}
			}
			if got := string(raw["exp"]); got != strconv.FormatInt(tc.wantExp, 10) {
				t.Errorf("exp = %s, want %d", got, tc.wantExp)
			}
			if !res.ExpiresAt.Equal(time.Unix(tc.wantExp, 0)) {
				t.Errorf("ExpiresAt = %v, want %v", res.ExpiresAt, time.Unix(tc.wantExp, 0))
			}
			if want := strings.Join(tc.scopes, " "); res.Scope != want {
				t.Errorf("Result.Scope = %q, want %q", res.Scope, want)
			}
		})
	}
}

func TestLocalExchangeJTI(t *testing.T) {
	ks := ltKeySet(t)
	t.Run("unique", func(t *testing.T) {
		l := ltNewLocal(t, ks, nil)
		seen := make(map[string]bool)
		for range 2000 {
			res, err := l.Exchange(t.Context(), ltRequest(ltClaims(), ltAudience, nil))
			if err != nil {
				t.Fatal(err)
			}
			jti := ltUnverifiedClaim(t, res.AccessToken, "jti")
			if seen[jti] {
				t.Fatalf("jti %s repeated", jti)
			}
			seen[jti] = true
		}
	})
	t.Run("from Random", func(t *testing.T) {
		seed := bytes.Repeat([]byte{0xfb}, 16)
		l := ltNewLocal(t, ks, func(o *LocalOptions) { o.Random = bytes.NewReader(seed) })
		res, err := l.Exchange(t.Context(), ltRequest(ltClaims(), ltAudience, nil))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ltUnverifiedClaim(t, res.AccessToken, "jti"), ltQuote(base64.RawURLEncoding.EncodeToString(seed)); got != want {
			t.Errorf("jti = %s, want %s", got, want)
		}
		// The reader is exhausted: no jti, no token (fail closed).
		if res, err := l.Exchange(t.Context(), ltRequest(ltClaims(), ltAudience, nil)); err == nil || res != nil {
			t.Errorf("Exchange with no randomness = %v, %v; want an error", res, err)
		}
	})
}

// ltUnverifiedClaim reads one claim's raw JSON without checking the signature.
func ltUnverifiedClaim(t testing.TB, token, name string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		t.Fatal(err)
	}
	return string(raw[name])
}

func TestLocalExchangeMetrics(t *testing.T) {
	m := exchange.NewMetrics(prometheus.NewRegistry())
	l := ltNewLocal(t, ltKeySet(t), func(o *LocalOptions) { o.Metrics = m })
	for range 3 {
		if _, err := l.Exchange(t.Context(), ltRequest(ltClaims(), ltAudience, nil)); err != nil {
			t.Fatal(err)
		}
	}
	expired := ltClaims()
	expired.Expiry = ltNow.Add(-time.Minute)
	if _, err := l.Exchange(t.Context(), ltRequest(expired, ltAudience, nil)); err == nil {
		t.Fatal("expired umbrella exchanged")
	}
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Exchange(canceled, ltRequest(ltClaims(), ltAudience, nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}

	if got := testutil.ToFloat64(m.Exchanges.WithLabelValues(ltAudience, "local", "ok")); got != 3 {
		t.Errorf("ok exchanges = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.Exchanges.WithLabelValues(ltAudience, "local", "error")); got != 2 {
		t.Errorf("error exchanges = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(m.ExchangeDuration, "tokengate_exchange_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1 (mode=local)", n)
	}
	hist, err := m.ExchangeDuration.GetMetricWithLabelValues("local")
	if err != nil {
		t.Fatal(err)
	}
	var pb dto.Metric
	if err := hist.(prometheus.Metric).Write(&pb); err != nil {
		t.Fatal(err)
	}
	if got := pb.GetHistogram().GetSampleCount(); got != 5 {
		t.Errorf("duration observations = %d, want 5", got)
	}
}

func TestNewLocalErrors(t *testing.T) {
	_, err := NewLocal(LocalOptions{})
	if err == nil {
		t.Fatal("NewLocal with no options succeeded")
	}
	for _, want := range []string{"exchange.local.issuer", "exchange.token_ttl", "exchange.local.signing_keys"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestLocalFingerprint(t *testing.T) {
	k := ltGetKeys(t)
	es := keys.KeySpec{Signer: k.P256, Alg: "ES256"}
	ed := keys.KeySpec{Signer: k.Ed, Alg: "EdDSA"}
	base := ltNewLocal(t, ltKeySet(t, es), nil).Fingerprint()
	if base == "" {
		t.Fatal("empty fingerprint")
	}
	same := []struct {
		name string
		l    *Local
	}{
		{"rebuilt", ltNewLocal(t, ltKeySet(t, es), nil)},
		{"inactive key added", ltNewLocal(t, ltKeySet(t, es, ed), nil)},
		{"copy_claims reordered", ltNewLocal(t, ltKeySet(t, es), func(o *LocalOptions) {
			o.CopyClaims = []string{"auth_time", "amr", "acr", "azp", "client_id", "sub", "acr"}
		})},
		{"other clock, random, metrics", ltNewLocal(t, ltKeySet(t, es), func(o *LocalOptions) {
			o.Clock = time.Now
			o.Metrics = exchange.NewMetrics(prometheus.NewRegistry())
		})},
	}
	for _, tc := range same {
		if got := tc.l.Fingerprint(); got != base {
			t.Errorf("%s: fingerprint changed: %s != %s", tc.name, got, base)
		}
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	differ := []struct {
		name string
		l    *Local
	}{
		{"active key rotated", ltNewLocal(t, ltKeySet(t, ed, es), nil)},
		{"explicit kid", ltNewLocal(t, ltKeySet(t, keys.KeySpec{Signer: k.P256, Alg: "ES256", Kid: "k1"}), nil)},
		{"same kid, new key material", ltNewLocal(t, ltKeySet(t, keys.KeySpec{Signer: other, Alg: "ES256", Kid: ltThumbprint(t, k.P256.Public())}), nil)},
		{"same RSA key, other alg", ltNewLocal(t, ltKeySet(t, keys.KeySpec{Signer: k.RSA2048, Alg: "PS256", Kid: "r"}), nil)},
		{"issuer", ltNewLocal(t, ltKeySet(t, es), func(o *LocalOptions) { o.Issuer = "https://other.example.com" })},
		{"ttl", ltNewLocal(t, ltKeySet(t, es), func(o *LocalOptions) { o.TokenTTL = time.Minute })},
		{"copy_claims", ltNewLocal(t, ltKeySet(t, es), func(o *LocalOptions) { o.CopyClaims = []string{"sub"} })},
	}
	seen := map[string]string{base: "base"}
	for _, tc := range differ {
		got := tc.l.Fingerprint()
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: fingerprint equals %s's", tc.name, prev)
		}
		seen[got] = tc.name
	}
	rs256 := ltNewLocal(t, ltKeySet(t, keys.KeySpec{Signer: k.RSA2048, Alg: "RS256", Kid: "r"}), nil).Fingerprint()
	if seen[rs256] != "" {
		t.Errorf("RS256 and PS256 with one key and kid share a fingerprint")
	}
}

func TestLocalKeys(t *testing.T) {
	ks := ltKeySet(t)
	if got := ltNewLocal(t, ks, nil).Keys(); got != ks {
		t.Errorf("Keys() = %p, want %p", got, ks)
	}
}

func TestLocalExchangeConcurrent(t *testing.T) {
	k := ltGetKeys(t)
	ks := ltKeySet(t, keys.KeySpec{Signer: k.P256, Alg: "ES256"}, keys.KeySpec{Signer: k.Ed, Alg: "EdDSA"})
	m := exchange.NewMetrics(prometheus.NewRegistry())
	l := ltNewLocal(t, ks, func(o *LocalOptions) { o.Metrics = m })

	const workers, each = 8, 25
	tokens := make(chan string, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			aud := ltAudience
			if w%2 == 1 {
				aud = "https://billing.example.com"
			}
			for range each {
				res, err := l.Exchange(t.Context(), ltRequest(ltClaims(), aud, []string{"orders:read"}))
				if err != nil {
					t.Error(err)
					return
				}
				tokens <- res.AccessToken
			}
		})
	}
	wg.Wait()
	close(tokens)

	jtis := make(map[string]bool)
	for tok := range tokens {
		_, raw := ltVerify(t, tok, ks, jose.ES256)
		jtis[string(raw["jti"])] = true
	}
	if len(jtis) != workers*each {
		t.Errorf("%d distinct jti values from %d tokens", len(jtis), workers*each)
	}
	ok := testutil.ToFloat64(m.Exchanges.WithLabelValues(ltAudience, "local", "ok")) +
		testutil.ToFloat64(m.Exchanges.WithLabelValues("https://billing.example.com", "local", "ok"))
	if ok != workers*each {
		t.Errorf("ok exchanges = %v, want %d", ok, workers*each)
	}
}

func BenchmarkLocalExchangeES256(b *testing.B) {
	l := ltNewLocal(b, ltKeySet(b), nil)
	req := ltRequest(ltClaims(), ltAudience, []string{"orders:read", "orders:write"})
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Exchange(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
