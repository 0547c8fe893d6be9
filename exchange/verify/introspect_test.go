package verify

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthclient"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

func TestIntrospectActiveMapsEveryClaim(t *testing.T) {
	e := itNewEnv(t, nil)
	now := e.clock.Now()
	m := e.members()
	m["acr"] = "urn:mfa"
	m["amr"] = []string{"pwd", "otp"}
	m["auth_time"] = now.Add(-time.Minute).Unix()
	m["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
	m["jti"] = "tok-1"
	m["nbf"] = now.Add(-time.Second).Unix()
	m["iss"] = e.iss.Issuer
	m["azp"] = "app-azp"
	e.as.respond(m)

	tok, err := e.verify(t, itOpaque, vtAudOrders)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	c := tok.Claims
	checks := []struct {
		name      string
		got, want any
	}{
		{"iss", c.Issuer, e.iss.Issuer},
		{"sub", c.Subject, "user-1"},
		{"aud", strings.Join(c.Audience, " "), vtAudOrders + " " + vtAudBilling},
		{"exp", c.Expiry, now.Add(time.Hour)},
		{"iat", c.IssuedAt, now},
		{"nbf", c.NotBefore, now.Add(-time.Second)},
		{"client_id", c.ClientID, "app"},
		{"azp", c.AZP, "app-azp"},
		{"scope", strings.Join(c.Scopes, " "), "orders:read billing:read"},
		{"acr", c.ACR, "urn:mfa"},
		{"amr", strings.Join(c.AMR, " "), "pwd otp"},
		{"auth_time", c.AuthTime, now.Add(-time.Minute)},
		{"cnf.jkt", c.JKT, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
		{"jti", c.ID, "tok-1"},
		{"subject token", tok.SubjectToken(), itOpaque},
		{"hash", tok.Hash, verifyHash(itOpaque)},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}

	reqs := e.as.requests()
	if len(reqs) != 1 {
		t.Fatalf("the AS got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	switch {
	case r.form.Get("token") != itOpaque:
		t.Errorf("token = %q", r.form.Get("token"))
	case r.form.Get("token_type_hint") != "access_token":
		t.Errorf("token_type_hint = %q", r.form.Get("token_type_hint"))
	case r.contentType != "application/x-www-form-urlencoded":
		t.Errorf("Content-Type = %q", r.contentType)
	case r.header.Get("Accept") != "application/json":
		t.Errorf("Accept = %q", r.header.Get("Accept"))
	}
}

func TestIntrospectOutcomes(t *testing.T) {
	const umbrella = "https://api.example.com"
	tests := []struct {
		name     string
		edit     func(e *itEnv, m map[string]any)
		audience string
		want     string // rejection reason, "unavailable", or "" for accepted
		check    func(t *testing.T, e *itEnv, tok *exchange.Token)
	}{
		{name: "active"},
		{name: "inactive", edit: func(_ *itEnv, m map[string]any) { clear(m); m["active"] = false }, want: exchange.ReasonInactive},
		{name: "active false with claims", edit: func(_ *itEnv, m map[string]any) { m["active"] = false }, want: exchange.ReasonInactive},
		{name: "active as a string", edit: func(_ *itEnv, m map[string]any) { m["active"] = "true" }, want: exchange.ReasonInactive},
		{name: "active as a number", edit: func(_ *itEnv, m map[string]any) { m["active"] = 1 }, want: exchange.ReasonInactive},
		{name: "active missing", edit: func(_ *itEnv, m map[string]any) { delete(m, "active") }, want: "unavailable"},
		{name: "iss equal", edit: func(e *itEnv, m map[string]any) { m["iss"] = e.iss.Issuer }},
		{name: "iss mismatch", edit: func(_ *itEnv, m map[string]any) { m["iss"] = "https://evil.example.com" }, want: exchange.ReasonIssuer},
		{name: "iss not a string", edit: func(_ *itEnv, m map[string]any) { m["iss"] = 7 }, want: exchange.ReasonIssuer},
		{name: "audience mismatch", audience: "https://payroll.example.com", want: exchange.ReasonAudience},
		{name: "audience absent", edit: func(_ *itEnv, m map[string]any) { delete(m, "aud") }, want: exchange.ReasonAudience},
		{name: "audience as a string", edit: func(_ *itEnv, m map[string]any) { m["aud"] = vtAudOrders }},
		{name: "umbrella audience", edit: func(_ *itEnv, m map[string]any) { m["aud"] = umbrella },
			audience: "https://payroll.example.com"},
		{name: "refresh token", edit: func(_ *itEnv, m map[string]any) { m["token_type"] = "refresh_token" }, want: exchange.ReasonInactive},
		{name: "expired", edit: func(e *itEnv, m map[string]any) { m["exp"] = e.clock.Now().Add(-time.Hour).Unix() }, want: exchange.ReasonExpired},
		{name: "expired within leeway", edit: func(e *itEnv, m map[string]any) { m["exp"] = e.clock.Now().Add(-10 * time.Second).Unix() }},
		{name: "not yet valid", edit: func(e *itEnv, m map[string]any) { m["nbf"] = e.clock.Now().Add(time.Hour).Unix() }, want: exchange.ReasonNotYetValid},
		{name: "missing exp is capped", edit: func(_ *itEnv, m map[string]any) { delete(m, "exp") },
			check: func(t *testing.T, e *itEnv, tok *exchange.Token) {
				if want := e.clock.Now().Add(5 * time.Minute); !tok.Claims.Expiry.Equal(want) {
					t.Errorf("Expiry = %v, want now + max_cache_ttl = %v", tok.Claims.Expiry, want)
				}
			}},
		{name: "exp not a number", edit: func(_ *itEnv, m map[string]any) { m["exp"] = "soon" }, want: exchange.ReasonMalformed},
		{name: "scp array", edit: func(_ *itEnv, m map[string]any) { delete(m, "scope"); m["scp"] = []string{"a", "b"} },
			check: func(t *testing.T, _ *itEnv, tok *exchange.Token) {
				if got := strings.Join(tok.Claims.Scopes, " "); got != "a b" {
					t.Errorf("Scopes = %q", got)
				}
			}},
		{name: "azp as client id", edit: func(_ *itEnv, m map[string]any) { delete(m, "client_id"); m["azp"] = "spa" },
			check: func(t *testing.T, _ *itEnv, tok *exchange.Token) {
				if tok.Claims.ClientID != "spa" {
					t.Errorf("ClientID = %q", tok.Claims.ClientID)
				}
			}},
		{name: "scope not a string", edit: func(_ *itEnv, m map[string]any) { m["scope"] = []string{"a"} }, want: exchange.ReasonMalformed},
		{name: "cnf without jkt", edit: func(_ *itEnv, m map[string]any) { m["cnf"] = map[string]any{"x5t#S256": "abc"} }, want: exchange.ReasonBinding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := itNewEnv(t, func(is *config.Issuer) { is.UmbrellaAudience = umbrella })
			m := e.members()
			if tt.edit != nil {
				tt.edit(e, m)
			}
			e.as.respond(m)
			aud := tt.audience
			if aud == "" {
				aud = vtAudOrders
			}
			tok, err := e.verify(t, itOpaque, aud)
			if got := itReason(err); got != tt.want {
				t.Fatalf("outcome %q (%v), want %q", got, err, tt.want)
			}
			if tt.want == "" && tt.check != nil {
				tt.check(t, e, tok)
			}
		})
	}
}

func TestIntrospectOutages(t *testing.T) {
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
	}{
		{"500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) }},
		{"401 for our client", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			itWriteJSON(w, map[string]any{"error": "invalid_client"})
		}},
		{"redirect is not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example.com/", http.StatusTemporaryRedirect)
		}},
		{"bad JSON", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":true,`))
		}},
		{"duplicate members", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":false,"active":true}`))
		}},
		{"not JSON content type", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`{"active":true}`))
		}},
		{"oversize body", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":true,"pad":"` + strings.Repeat("a", introspectMaxBody) + `"}`))
		}},
		{"timeout", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := itNewEnv(t, func(is *config.Issuer) {
				is.Introspection.Timeout = config.Duration(100 * time.Millisecond)
			})
			e.as.setHandle(tt.handle)
			for i := range 2 {
				_, err := e.verify(t, itOpaque, vtAudOrders)
				if got := itReason(err); got != "unavailable" {
					t.Fatalf("call %d: outcome %q (%v), want unavailable", i, got, err)
				}
			}
			if n := e.as.calls.Load(); n != 2 {
				t.Errorf("the AS was called %d times, want 2 (outages are never cached)", n)
			}
			if got := e.calls(exchange.IntrospectionError); got != 2 {
				t.Errorf("introspections_total{result=error} = %v, want 2", got)
			}
		})
	}
}

func TestIntrospectNetworkError(t *testing.T) {
	e := itNewEnv(t, nil)
	e.as.intro.Close()
	_, err := e.verify(t, itOpaque, vtAudOrders)
	if got := itReason(err); got != "unavailable" {
		t.Fatalf("outcome %q (%v), want unavailable", got, err)
	}
}

func TestIntrospectClientAuth(t *testing.T) {
	keyPath, key := itWriteKey(t)
	tests := []struct {
		name   string
		mutate func(in *config.Introspection)
		check  func(t *testing.T, e *itEnv, r itRequest)
	}{
		{"client_secret_basic", nil, func(t *testing.T, _ *itEnv, r itRequest) {
			// RFC 6749 2.3.1: form-encoded before base64.
			if !r.basic || r.user != "tokengate" || r.pass != "s3cret%3Awith%2Fodd+chars" {
				t.Errorf("basic auth %v %q %q", r.basic, r.user, r.pass)
			}
			if r.form.Has("client_secret") {
				t.Error("the secret is also in the form")
			}
		}},
		{"client_secret_post", func(in *config.Introspection) { in.AuthMethod = config.AuthClientSecretPost },
			func(t *testing.T, _ *itEnv, r itRequest) {
				if r.basic {
					t.Error("basic auth sent with client_secret_post")
				}
				if r.form.Get("client_id") != "tokengate" || r.form.Get("client_secret") != "s3cret:with/odd chars" {
					t.Errorf("form %v", r.form)
				}
			}},
		{"private_key_jwt", func(in *config.Introspection) {
			in.AuthMethod, in.ClientSecret = config.AuthPrivateKeyJWT, ""
			in.PrivateKey = config.SigningKey{File: keyPath, Alg: "ES256"}
		}, func(t *testing.T, e *itEnv, r itRequest) {
			if r.basic {
				t.Error("basic auth sent with private_key_jwt")
			}
			if r.form.Get("client_assertion_type") != oauthclient.ClientAssertionType || r.form.Get("client_id") != "tokengate" {
				t.Errorf("form %v", r.form)
			}
			jws, err := jwt.ParseSigned(r.form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			var c jwt.Claims
			if err := jws.Claims(&key.PublicKey, &c); err != nil {
				t.Fatalf("the assertion does not verify with the client key: %v", err)
			}
			if c.Issuer != "tokengate" || c.Subject != "tokengate" || !slices.Contains(c.Audience, e.as.endpoint()) || c.ID == "" {
				t.Errorf("assertion claims %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := itNewEnv(t, func(is *config.Issuer) {
				if tt.mutate != nil {
					tt.mutate(is.Introspection)
				}
			})
			e.as.respond(e.members())
			if _, err := e.verify(t, itOpaque, vtAudOrders); err != nil {
				t.Fatal(err)
			}
			reqs := e.as.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			tt.check(t, e, reqs[0])
		})
	}
}

func TestIntrospectJWTResponse(t *testing.T) {
	other := oauthtest.NewSigningKey(t, "ES256", "as1") // same kid, not the published key
	tests := []struct {
		name        string
		contentType string
		typ         string
		signer      func(e *itEnv) oauthtest.Key
		edit        func(e *itEnv, c map[string]any)
		want        string
	}{
		{name: "valid"},
		{name: "typ with application/ prefix", typ: "application/token-introspection+jwt"},
		{name: "wrong typ", typ: "JWT", want: "unavailable"},
		{name: "no typ", typ: "-", want: "unavailable"},
		{name: "wrong content type", contentType: "application/jwt", want: "unavailable"},
		{name: "wrong aud", edit: func(_ *itEnv, c map[string]any) { c["aud"] = "someone-else" }, want: "unavailable"},
		{name: "wrong iss", edit: func(_ *itEnv, c map[string]any) { c["iss"] = "https://evil.example.com" }, want: "unavailable"},
		{name: "no iat", edit: func(_ *itEnv, c map[string]any) { delete(c, "iat") }, want: "unavailable"},
		{name: "stale iat", edit: func(e *itEnv, c map[string]any) { c["iat"] = e.clock.Now().Add(-time.Hour).Unix() }, want: "unavailable"},
		{name: "wrong signature", signer: func(*itEnv) oauthtest.Key { return other }, want: "unavailable"},
		{name: "no token_introspection", edit: func(_ *itEnv, c map[string]any) { delete(c, "token_introspection") }, want: "unavailable"},
		{name: "inactive", edit: func(_ *itEnv, c map[string]any) { c["token_introspection"] = map[string]any{"active": false} },
			want: exchange.ReasonInactive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := itNewEnv(t, func(is *config.Issuer) {
				is.JWKSURI = is.Issuer + "/jwks.json"
				is.Introspection.JWTResponse = true
			})
			c := map[string]any{
				"iss": e.iss.Issuer, "aud": "tokengate", "iat": e.clock.Now().Unix(),
				"token_introspection": e.members(),
			}
			if tt.edit != nil {
				tt.edit(e, c)
			}
			typ := tt.typ
			switch typ {
			case "":
				typ = introspectJWTTyp
			case "-":
				typ = ""
			}
			k := e.as.key
			if tt.signer != nil {
				k = tt.signer(e)
			}
			ct := tt.contentType
			if ct == "" {
				ct = introspectJWTType
			}
			e.as.setHandle(itJWTHandler(ct, itSignResponse(t, k, typ, c)))
			tok, err := e.verify(t, itOpaque, vtAudOrders)
			if got := itReason(err); got != tt.want {
				t.Fatalf("outcome %q (%v), want %q", got, err, tt.want)
			}
			if tt.want == "" && tok.Claims.Subject != "user-1" {
				t.Errorf("sub = %q", tok.Claims.Subject)
			}
			if r := e.as.requests(); len(r) == 0 || r[0].header.Get("Accept") != introspectJWTType {
				t.Errorf("Accept was not %s", introspectJWTType)
			}
		})
	}
}

func TestIntrospectCache(t *testing.T) {
	e := itNewEnv(t, nil)
	m := e.members()
	m["exp"] = e.clock.Now().Add(time.Hour).Unix()
	e.as.respond(m)
	for i := range 5 {
		aud := vtAudOrders
		if i%2 == 1 {
			aud = vtAudBilling
		}
		if _, err := e.verify(t, itOpaque, aud); err != nil {
			t.Fatal(err)
		}
	}
	// A cached token is still checked per route.
	if _, err := e.verify(t, itOpaque, "https://payroll.example.com"); itReason(err) != exchange.ReasonAudience {
		t.Fatalf("audience on a cache hit: %v", err)
	}
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("the AS was called %d times for 6 requests, want 1", n)
	}
	if e.hits(exchange.IntrospectionActive) != 5 || e.calls(exchange.IntrospectionActive) != 1 {
		t.Errorf("hits %v, calls %v", e.hits(exchange.IntrospectionActive), e.calls(exchange.IntrospectionActive))
	}
	// max_cache_ttl bounds how long a revoked token stays accepted.
	e.as.respond(map[string]any{"active": false})
	e.clock.Advance(5*time.Minute - time.Second)
	if _, err := e.verify(t, itOpaque, vtAudOrders); err != nil {
		t.Fatalf("before max_cache_ttl: %v", err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.verify(t, itOpaque, vtAudOrders); itReason(err) != exchange.ReasonInactive {
		t.Fatalf("after max_cache_ttl: %v, want inactive", err)
	}
	if n := e.as.calls.Load(); n != 2 {
		t.Errorf("the AS was called %d times, want 2", n)
	}
}

func TestIntrospectCacheUntilExp(t *testing.T) {
	e := itNewEnv(t, nil)
	m := e.members()
	m["exp"] = e.clock.Now().Add(time.Minute).Unix()
	e.as.respond(m)
	if _, err := e.verify(t, itOpaque, vtAudOrders); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute + 31*time.Second) // past exp + leeway
	if _, err := e.verify(t, itOpaque, vtAudOrders); itReason(err) != exchange.ReasonExpired {
		t.Fatalf("after exp: %v, want expired", err)
	}
}

func TestIntrospectConcurrentOneCall(t *testing.T) {
	e := itNewEnv(t, nil)
	release := make(chan struct{})
	e.as.setHandle(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		itWriteJSON(w, e.members())
	})
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = e.v.Verify(context.Background(), itOpaque, vtAudOrders) })
	}
	<-e.as.arrived // one call is in flight; the others join it or find its answer cached
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if c := e.as.calls.Load(); c != 1 {
		t.Errorf("the AS was called %d times for %d concurrent requests, want 1", c, n)
	}
}

func TestIntrospectCallerGoneDoesNotFailOthers(t *testing.T) {
	e := itNewEnv(t, nil)
	release := make(chan struct{})
	e.as.setHandle(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		itWriteJSON(w, e.members())
	})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := e.v.Verify(ctx, itOpaque, vtAudOrders); first <- err }()
	<-e.as.arrived
	cancel()
	if err := <-first; itReason(err) != "unavailable" {
		t.Fatalf("the gone caller: %v", err)
	}
	close(release)
	// The detached call finished and was cached: no second call.
	if _, err := e.verify(t, itOpaque, vtAudOrders); err != nil {
		t.Fatal(err)
	}
	if c := e.as.calls.Load(); c != 1 {
		t.Errorf("the AS was called %d times, want 1", c)
	}
}

func TestIntrospectNegativeCache(t *testing.T) {
	e := itNewEnv(t, nil)
	e.as.respond(map[string]any{"active": false})
	for range 3 {
		if _, err := e.verify(t, itOpaque, vtAudOrders); itReason(err) != exchange.ReasonInactive {
			t.Fatalf("want inactive: %v", err)
		}
	}
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("the AS was called %d times, want 1 within negative_cache_ttl", n)
	}
	if e.hits(exchange.IntrospectionInactive) != 2 || e.calls(exchange.IntrospectionInactive) != 1 {
		t.Errorf("hits %v, calls %v", e.hits(exchange.IntrospectionInactive), e.calls(exchange.IntrospectionInactive))
	}
	e.as.respond(e.members())
	e.clock.Advance(10 * time.Second)
	if _, err := e.verify(t, itOpaque, vtAudOrders); err != nil {
		t.Fatalf("after negative_cache_ttl: %v", err)
	}

	// negative_cache_ttl 0 caches nothing.
	e = itNewEnv(t, func(is *config.Issuer) { is.Introspection.NegativeCacheTTL = 0 })
	e.as.respond(map[string]any{"active": false})
	for range 2 {
		_, _ = e.verify(t, itOpaque, vtAudOrders)
	}
	if n := e.as.calls.Load(); n != 2 {
		t.Errorf("with negative_cache_ttl 0 the AS was called %d times, want 2", n)
	}
}

func TestIntrospectJWTShapedNeverSent(t *testing.T) {
	e := itNewEnv(t, nil)
	e.as.respond(e.members())
	k := oauthtest.NewSigningKey(t, "ES256", "k1")
	tokens := map[string]string{
		"JWT of an unknown issuer":        k.Sign(t, nil, map[string]any{"iss": "https://other.example.com", "aud": vtAudOrders}),
		"JWT of the introspecting issuer": k.Sign(t, nil, map[string]any{"iss": e.iss.Issuer, "aud": vtAudOrders, "exp": e.clock.Now().Add(time.Hour).Unix()}),
		"JWE-shaped":                      vtB64(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + ".a.b.c.d",
		"unsigned JWT":                    vtB64(`{"alg":"none"}`) + "." + vtB64(`{"iss":"x"}`) + ".",
	}
	for name, raw := range tokens {
		t.Run(name, func(t *testing.T) {
			tok, err := e.verify(t, raw, vtAudOrders)
			if err == nil || tok != nil {
				t.Fatalf("accepted: %v", tok)
			}
			if itReason(err) == "unavailable" || itReason(err) == exchange.ReasonInactive {
				t.Errorf("outcome %q: the token went to introspection", itReason(err))
			}
		})
	}
	if n := e.as.calls.Load(); n != 0 {
		t.Errorf("JWT-shaped tokens reached the AS %d times", n)
	}
	// Dotted but not a JWT (the first segment is no JSON object): opaque.
	if _, err := e.verify(t, "abc.def.ghi", vtAudOrders); err != nil {
		t.Fatalf("a dotted opaque token: %v", err)
	}
	if n := e.as.calls.Load(); n != 1 {
		t.Errorf("the dotted opaque token reached the AS %d times, want 1", n)
	}
}

func TestIntrospectTooLarge(t *testing.T) {
	e := itNewEnv(t, nil)
	e.as.respond(e.members())
	_, err := e.verify(t, strings.Repeat("a", verifyDefaultMaxTokenBytes+1), vtAudOrders)
	if itReason(err) != exchange.ReasonTooLarge || e.as.calls.Load() != 0 {
		t.Fatalf("outcome %q, AS calls %d", itReason(err), e.as.calls.Load())
	}
}

func TestIntrospectDiscovery(t *testing.T) {
	e := itNewEnv(t, func(is *config.Issuer) {
		is.IntrospectionEndpoint = ""
		is.Discovery = true
	})
	e.as.respond(e.members())
	if _, err := e.v.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	target := func() string { _, ep, _ := e.v.IntrospectionTarget(itOpaque); return ep }
	if got := target(); got != e.as.endpoint() {
		t.Errorf("IntrospectionTarget = %q, want the discovered %q", got, e.as.endpoint())
	}
	if _, err := e.verify(t, itOpaque, vtAudOrders); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := e.v.IntrospectionTarget(vtB64(`{"alg":"ES256"}`) + ".e30.c2ln"); ok {
		t.Error("a JWT-shaped token would be introspected")
	}
}

func TestIntrospectOnlyIssuerIsReadyWithoutKeys(t *testing.T) {
	e := itNewEnv(t, nil)
	if err := e.v.Prefetch(context.Background()); err != nil {
		t.Errorf("Prefetch: %v", err)
	}
	if _, err := e.v.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestNewVerifierRefusesTwoIntrospectors(t *testing.T) {
	e := itNewEnv(t, nil)
	second := e.iss
	second.Issuer = "https://second.example.com"
	_, err := NewVerifier([]config.Issuer{e.iss, second}, VerifierOptions{HTTPClient: e.as.client()})
	if err == nil || !strings.Contains(err.Error(), "only one issuer may introspect") {
		t.Fatalf("err = %v", err)
	}
}

func TestIntrospectDiscoveryWithoutEndpoint(t *testing.T) {
	as := itNewAS(t)
	as.withoutMetaEndpoint()
	as.respond(map[string]any{"active": true, "aud": vtAudOrders})
	iss := config.Issuer{
		Issuer: as.URL(), Discovery: true,
		Introspection: &config.Introspection{ClientID: "tg", ClientSecret: "s"},
	}
	v, err := NewVerifier([]config.Issuer{iss}, VerifierOptions{HTTPClient: as.client()})
	if err != nil {
		t.Fatal(err)
	}
	// Its JWTs may still verify (Ready then holds), but the issuer is
	// named, with the missing endpoint, as a degraded part.
	parts, _ := v.Ready(context.Background())
	if perr := parts["issuer "+as.URL()]; perr == nil || !strings.Contains(perr.Error(), "names no introspection_endpoint") {
		t.Fatalf("Ready parts = %v, want the missing endpoint named", parts)
	}
	if _, err := v.Verify(context.Background(), itOpaque, vtAudOrders); itReason(err) != "unavailable" {
		t.Fatalf("Verify: %v, want unavailable", err)
	}
	if as.calls.Load() != 0 {
		t.Error("the introspection endpoint was called without being discovered")
	}
}
