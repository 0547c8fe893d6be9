package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/keys"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

const ttTrustDomain = "trust-domain.example"

func ttOptions() exchange.TxnOptions {
	return exchange.TxnOptions{TrustDomain: ttTrustDomain, WorkloadID: "apigw", TTL: time.Minute, ContextClaims: []string{"tenant", "acr", "absent"}}
}

func ttNewLocal(t testing.TB, ks *keys.KeySet, mutate func(*LocalTxnOptions)) *LocalTxn {
	t.Helper()
	opts := LocalTxnOptions{TxnOptions: ttOptions(), Issuer: ltIssuer, Keys: ks, Clock: ltClock}
	if mutate != nil {
		mutate(&opts)
	}
	l, err := NewLocalTxn(opts)
	if err != nil {
		t.Fatalf("NewLocalTxn: %v", err)
	}
	return l
}

func ttRequest(c exchange.Claims, scopes ...string) exchange.TxnRequest {
	raw := "umbrella." + c.Subject
	return exchange.TxnRequest{
		Subject: exchange.NewToken(raw, sha256.Sum256([]byte(raw)), c, ""),
		Scopes:  scopes,
		Context: exchange.TxnContext{IP: "203.0.113.7", Transport: "https", Method: "POST", Route: "orders"},
	}
}

// ttVerify verifies a Txn-Token against the published JWKS as a service
// would, and returns its header and claims.
func ttVerify(t testing.TB, token string, ks *keys.KeySet) (jose.Header, map[string]json.RawMessage) {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("ParseSigned: %v", err)
	}
	var raw map[string]json.RawMessage
	var std jwt.Claims
	if err := parsed.Claims(ks.PublicJWKS(), &raw, &std); err != nil {
		t.Fatalf("signature does not verify with the published JWKS: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: ltIssuer, AnyAudience: jwt.Audience{ttTrustDomain}, Time: ltNow}, 0); err != nil {
		t.Errorf("go-jose rejects the claims: %v", err)
	}
	return parsed.Headers[0], raw
}

func TestLocalTxnClaims(t *testing.T) {
	ks := ltKeySet(t)
	l := ttNewLocal(t, ks, nil)
	res, err := l.MintTxnToken(context.Background(), ttRequest(ltClaims(), "orders:read"))
	if err != nil {
		t.Fatalf("MintTxnToken: %v", err)
	}
	hdr, claims := ttVerify(t, res.Token, ks)
	if typ := hdr.ExtraHeaders[jose.HeaderType]; typ != exchange.TxnTokenJWSType {
		t.Errorf("typ = %v, want %s", typ, exchange.TxnTokenJWSType)
	}
	if hdr.KeyID != ks.Active().Kid || hdr.KeyID == "" {
		t.Errorf("kid = %q, want %q", hdr.KeyID, ks.Active().Kid)
	}
	iat := ltNow.Unix()
	want := map[string]string{
		"iss":    ltQuote(ltIssuer),
		"iat":    jsonInt(iat),
		"exp":    jsonInt(iat + 60),
		"aud":    ltQuote(ttTrustDomain),
		"txn":    ltQuote(res.Txn),
		"sub":    ltQuote("user-1"),
		"scope":  ltQuote("orders:read"),
		"req_wl": ltQuote("apigw"),
		"tctx":   `{"acr":"mfa","tenant":{"id":7,"name":"acme"}}`,
		"rctx":   `{"req_ip":"203.0.113.7","transport":"https","req_method":"POST","req_route":"orders"}`,
	}
	for name, w := range want {
		got, ok := claims[name]
		if !ok {
			t.Errorf("claim %s missing", name)
			continue
		}
		if !oauthtest.JSONEqual(t, got, w) {
			t.Errorf("%s = %s, want %s", name, got, w)
		}
	}
	if len(claims) != len(want) {
		t.Errorf("claims %v, want exactly %d", keysOf(claims), len(want))
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(res.Txn) {
		t.Errorf("txn %q is not a UUIDv4", res.Txn)
	}
	if !res.ExpiresAt.Equal(time.Unix(iat+60, 0)) {
		t.Errorf("ExpiresAt = %v", res.ExpiresAt)
	}
	if strings.Contains(res.Token, "umbrella.") || bytes.Contains(mustPayload(t, res.Token), []byte("umbrella.")) {
		t.Error("the umbrella token is inside the Txn-Token")
	}
}

func TestLocalTxnExpiry(t *testing.T) {
	ks := ltKeySet(t)
	tests := []struct {
		name    string
		ttl     time.Duration
		exp     time.Time
		wantExp int64
		wantErr string
	}{
		{"ttl", time.Minute, ltNow.Add(time.Hour), ltNow.Unix() + 60, ""},
		{"capped by umbrella exp", 5 * time.Minute, ltNow.Add(90 * time.Second), ltNow.Add(90 * time.Second).Unix(), ""},
		{"umbrella expiring now", time.Minute, ltNow, 0, exchange.ReasonExpired},
		{"umbrella without exp", time.Minute, time.Time{}, 0, exchange.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ttNewLocal(t, ks, func(o *LocalTxnOptions) { o.TTL = tt.ttl })
			c := ltClaims()
			c.Expiry = tt.exp
			res, err := l.MintTxnToken(context.Background(), ttRequest(c))
			if tt.wantErr != "" {
				var re *exchange.RejectError
				if !errors.As(err, &re) || re.Reason != tt.wantErr {
					t.Fatalf("err = %v, want rejection %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, claims := ttVerify(t, res.Token, ks)
			if got := string(claims["exp"]); got != jsonInt(tt.wantExp) {
				t.Errorf("exp = %s, want %d", got, tt.wantExp)
			}
		})
	}
}

func TestLocalTxnScopeNeverWider(t *testing.T) {
	l := ttNewLocal(t, ltKeySet(t), nil)
	_, err := l.MintTxnToken(context.Background(), ttRequest(ltClaims(), "orders:read", "orders:write"))
	if !errors.Is(err, exchange.ErrTxnUnavailable) || !errors.Is(err, exchange.ErrExchangeUnavailable) {
		t.Fatalf("err = %v, want ErrTxnUnavailable for a scope the umbrella lacks", err)
	}
	res, err := l.MintTxnToken(context.Background(), ttRequest(ltClaims()))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(mustClaims(t, res.Token)["scope"]); got != `""` {
		t.Errorf("scope = %s, want empty", got)
	}
}

func TestLocalTxnContextClaims(t *testing.T) {
	ks := ltKeySet(t)
	tests := []struct {
		name   string
		claims []string
		want   string // "" = no tctx
	}{
		{"none configured", nil, ""},
		{"only configured and present", []string{"tenant"}, `{"tenant":{"id":7,"name":"acme"}}`},
		{"absent only", []string{"nothere"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ttNewLocal(t, ks, func(o *LocalTxnOptions) { o.ContextClaims = tt.claims })
			res, err := l.MintTxnToken(context.Background(), ttRequest(ltClaims()))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := mustClaims(t, res.Token)["tctx"]
			switch {
			case tt.want == "" && ok:
				t.Errorf("tctx = %s, want none", got)
			case tt.want != "" && !oauthtest.JSONEqual(t, got, tt.want):
				t.Errorf("tctx = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLocalTxnUnique(t *testing.T) {
	l := ttNewLocal(t, ltKeySet(t), nil)
	const n = 2000
	var mu sync.Mutex
	seen := make(map[string]bool, n)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/4; i++ {
				res, err := l.MintTxnToken(context.Background(), ttRequest(ltClaims()))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[res.Txn] {
					t.Errorf("txn %s minted twice", res.Txn)
				}
				seen[res.Txn] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d distinct txn values, want %d", len(seen), n)
	}
}

func TestLocalTxnRandomFailure(t *testing.T) {
	l := ttNewLocal(t, ltKeySet(t), func(o *LocalTxnOptions) { o.Random = bytes.NewReader(nil) })
	if _, err := l.MintTxnToken(context.Background(), ttRequest(ltClaims())); !errors.Is(err, exchange.ErrTxnUnavailable) {
		t.Fatalf("err = %v, want ErrTxnUnavailable", err)
	}
}

func TestNewLocalTxnOptions(t *testing.T) {
	ks := ltKeySet(t)
	tests := []struct {
		name   string
		mutate func(*LocalTxnOptions)
		want   string
	}{
		{"no trust domain", func(o *LocalTxnOptions) { o.TrustDomain = "" }, "trust domain is empty"},
		{"no workload", func(o *LocalTxnOptions) { o.WorkloadID = "" }, "workload id is empty"},
		{"no ttl", func(o *LocalTxnOptions) { o.TTL = 0 }, "ttl is 0s"},
		{"no issuer", func(o *LocalTxnOptions) { o.Issuer = "" }, "issuer is empty"},
		{"no keys", func(o *LocalTxnOptions) { o.Keys = nil }, "no signing keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LocalTxnOptions{TxnOptions: ttOptions(), Issuer: ltIssuer, Keys: ks}
			tt.mutate(&opts)
			if _, err := NewLocalTxn(opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func BenchmarkLocalTxnMint(b *testing.B) {
	l := ttNewLocal(b, ltKeySet(b), nil)
	req := ttRequest(ltClaims(), "orders:read")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.MintTxnToken(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func keysOf(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// mustClaims reads a token's claims without verifying it.
func mustClaims(t testing.TB, token string) map[string]json.RawMessage {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA, jose.PS256})
	if err != nil {
		t.Fatalf("ParseSigned: %v", err)
	}
	var m map[string]json.RawMessage
	if err := parsed.UnsafeClaimsWithoutVerification(&m); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return m
}

func mustPayload(t testing.TB, token string) []byte {
	t.Helper()
	b, err := json.Marshal(mustClaims(t, token))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
