package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/oauthtest"
	"github.com/tokengate/tokengate/internal/redistest"
)

const e2eAdminToken = "e2e-admin-token-0123456789"

// e2eReplicas are gateway instances in one process with separate memory
// tiers that share one Redis, a signing key and an issuer, as replicas of a
// Deployment do.
type e2eReplicas struct {
	redis    *redistest.Server
	gws      []*e2eGateway
	orders   *e2eBackend
	idp      *e2eIdP
	cacheKey string
}

// redisCacheYAML is the cache.redis block of the replicas: short timeouts and
// a quick breaker, so outages are fast to test.
func redisCacheYAML(addr, key string) string {
	return fmt.Sprintf(`  redis:
    addrs: [%q]
    encryption_key: %q
    dial_timeout: 100ms
    read_timeout: 100ms
    write_timeout: 100ms
    breaker_failures: 2
    breaker_backoff: 200ms
`, addr, key)
}

func startReplicas(t *testing.T, n int, orders *e2eBackend) *e2eReplicas {
	t.Helper()
	srv := redistest.Start(t)
	idp := newE2EIdP(t)
	if orders == nil {
		orders = newE2EBackend(t, "orders")
	}
	inventory := newE2EBackend(t, "inventory")
	pemBytes, key := replicaSecrets(t)
	rs := &e2eReplicas{redis: srv, orders: orders, idp: idp, cacheKey: key}
	for range n {
		rs.gws = append(rs.gws, startE2EWith(t, idp, orders, inventory, e2eOptions{
			keyPEM: pemBytes, issuer: "https://tokengate.test", adminToken: e2eAdminToken,
			cacheYAML: redisCacheYAML(srv.Addr(), key),
		}))
	}
	// Every replica listens for revocations before the test starts.
	waitFor(t, func() bool {
		m, err := srv.Client(t).PubSubNumSub(context.Background(), "tokengate:revocations").Result()
		return err == nil && m["tokengate:revocations"] >= int64(n)
	})
	return rs
}

func signings(g *e2eGateway) float64 {
	return testutil.ToFloat64(g.srv.proc.ExchangeMetrics.Exchanges.WithLabelValues(audOrders, "local", "ok"))
}

func redisLookups(g *e2eGateway, result string) float64 {
	return testutil.ToFloat64(g.srv.proc.CacheMetrics.Requests.WithLabelValues(cache.TierRedis, result))
}

// redisDump is every key and every value, member and field in Redis.
func redisDump(t *testing.T, c *redis.Client) (int, string) {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	n := 0
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		n++
		b.WriteString(k + "\n")
		switch c.Type(ctx, k).Val() {
		case "string":
			b.WriteString(c.Get(ctx, k).Val())
		case "set":
			b.WriteString(strings.Join(c.SMembers(ctx, k).Val(), "\n"))
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				b.WriteString(f + "\n" + v + "\n")
			}
		}
		b.WriteString("\n")
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return n, b.String()
}

// readable lists the forms in which a secret could show in Redis.
func readable(secret string) []string {
	forms := []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), base64.RawURLEncoding.EncodeToString([]byte(secret))}
	if i := strings.LastIndex(secret, "."); i > 0 { // a JWS: its signature alone identifies it
		forms = append(forms, secret[i+1:])
	}
	return forms
}

func TestE2ERedisReplicasShareOneExchange(t *testing.T) {
	rs := startReplicas(t, 2, nil)
	g1, g2 := rs.gws[0], rs.gws[1]
	const sub = "subject-in-clear-7731"
	umbrella := rs.idp.mint(t, map[string]any{"sub": sub, "sid": "session-in-clear-55", "aud": audOrders, "scope": "orders:read"})

	if resp, body := g1.get(t, "/orders/1", umbrella); resp.StatusCode != 200 {
		t.Fatalf("replica 1: %d %s", resp.StatusCode, body)
	}
	if resp, body := g2.get(t, "/orders/2", umbrella); resp.StatusCode != 200 {
		t.Fatalf("replica 2: %d %s", resp.StatusCode, body)
	}
	if got := signings(g1) + signings(g2); got != 1 {
		t.Errorf("two replicas signed %v tokens for one umbrella token and audience; want 1", got)
	}
	if got := redisLookups(g2, cache.ResultHit); got != 1 {
		t.Errorf("replica 2 redis hits = %v; want 1", got)
	}
	reqs := rs.orders.received()
	if len(reqs) != 2 || bearerOf(reqs[0]) != bearerOf(reqs[1]) {
		t.Fatalf("the backend got %d requests with tokens equal = %v; want 2 with one token", len(reqs), len(reqs) == 2 && bearerOf(reqs[0]) == bearerOf(reqs[1]))
	}
	exchanged := bearerOf(reqs[0])

	// Nothing in Redis is readable: not the umbrella token, not the
	// exchanged token, not the subject or session.
	n, blob := redisDump(t, rs.redis.Client(t))
	if n < 2 {
		t.Fatalf("Redis holds %d keys; want the entry and its indexes", n)
	}
	for _, secret := range []string{umbrella, exchanged, sub, "session-in-clear-55"} {
		for _, f := range readable(secret) {
			if strings.Contains(blob, f) {
				t.Errorf("Redis holds a secret in a readable form (%d bytes of it)", len(f))
			}
		}
	}
	assertNoUmbrella(t, umbrella, g1, rs.orders)
	assertNoUmbrella(t, umbrella, g2, rs.orders)
	assertNoTokenInMetrics(t, umbrella, g1)
	assertNoTokenInMetrics(t, umbrella, g2)
}

// TestE2ERedisOutage: Redis killed mid-test → requests still 200, none held
// up beyond the Redis timeouts, the breaker opens, /readyz stays 200 and
// reports Redis degraded; Redis restarted → the shared tier works again.
func TestE2ERedisOutage(t *testing.T) {
	rs := startReplicas(t, 2, nil)
	g1, g2 := rs.gws[0], rs.gws[1]
	mint := func(sub string) string {
		return rs.idp.mint(t, map[string]any{"sub": sub, "aud": audOrders, "scope": "orders:read"})
	}
	if resp, _ := g1.get(t, "/orders", mint("before")); resp.StatusCode != 200 {
		t.Fatalf("before the outage: %d", resp.StatusCode)
	}

	rs.redis.Kill()
	const bound = 2 * time.Second // Redis calls are bounded by 200ms; generous for -race on 2 cores
	for i := range 8 {
		tok := mint(fmt.Sprint("during-", i))
		for _, g := range []*e2eGateway{g1, g2} {
			start := time.Now()
			resp, body := g.get(t, "/orders", tok)
			if d := time.Since(start); d > bound {
				t.Errorf("request %d took %s with Redis down; want under %s", i, d, bound)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("request %d with Redis down: %d %s", i, resp.StatusCode, body)
			}
		}
	}
	if got := testutil.ToFloat64(g1.srv.proc.CacheMetrics.BreakerOpen); got != 1 {
		t.Errorf("tokengate_redis_breaker_open = %v with Redis down; want 1", got)
	}
	resp, body := get(t, g1.srv.AdminURL()+"/readyz")
	if resp.StatusCode != 200 || !strings.Contains(body, `"degraded":{"redis"`) {
		t.Errorf("readyz with Redis down = %d %s; want 200 reporting redis degraded", resp.StatusCode, body)
	}
	_, metrics := get(t, g1.srv.AdminURL()+"/metrics")
	for _, name := range []string{"tokengate_redis_duration_seconds_bucket", "tokengate_redis_errors_total", `tokengate_cache_requests_total{result="error",tier="redis"}`} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	rs.redis.Restart()
	// The tier comes back: a token exchanged by replica 1 is a Redis hit on
	// replica 2 again.
	i := 0
	waitFor(t, func() bool {
		i++
		tok := mint(fmt.Sprint("after-", i))
		hits := redisLookups(g2, cache.ResultHit)
		r1, _ := g1.get(t, "/orders", tok)
		r2, _ := g2.get(t, "/orders", tok)
		if r1.StatusCode != 200 || r2.StatusCode != 200 {
			t.Fatalf("after the restart: %d, %d", r1.StatusCode, r2.StatusCode)
		}
		return redisLookups(g2, cache.ResultHit) > hits
	})
	if resp, body := get(t, g1.srv.AdminURL()+"/readyz"); resp.StatusCode != 200 || strings.Contains(body, "degraded") {
		t.Errorf("readyz after the restart = %d %s; want 200, not degraded", resp.StatusCode, body)
	}
}

func adminPost(t *testing.T, g *e2eGateway, auth, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.srv.AdminURL()+"/admin/revoke", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestE2ERedisRevocation: a revocation on one replica is seen by the other.
func TestE2ERedisRevocation(t *testing.T) {
	rs := startReplicas(t, 2, nil)
	g1, g2 := rs.gws[0], rs.gws[1]
	mint := func(sub string, iat time.Time) string {
		return rs.idp.mint(t, map[string]any{"sub": sub, "aud": audOrders, "scope": "orders:read", "iat": iat.Unix()})
	}
	past := time.Now().Add(-time.Minute)
	alice, bob := mint("alice", past), mint("bob", past)
	for _, g := range rs.gws {
		for _, tok := range []string{alice, bob} {
			if resp, _ := g.get(t, "/orders", tok); resp.StatusCode != 200 {
				t.Fatalf("before the revocation: %d", resp.StatusCode)
			}
		}
	}

	if resp, _ := adminPost(t, g1, "", `{"sub":"alice"}`); resp.StatusCode != 401 {
		t.Errorf("revoke without the admin token = %d; want 401", resp.StatusCode)
	}
	if resp, _ := adminPost(t, g1, "wrong-token-0123456789", `{"sub":"alice"}`); resp.StatusCode != 401 {
		t.Errorf("revoke with a wrong admin token = %d; want 401", resp.StatusCode)
	}
	resp, body := adminPost(t, g1, e2eAdminToken, `{"sub":"alice"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"revoked":"sub"`) || strings.Contains(body, "alice") {
		t.Fatalf("revoke = %d %s", resp.StatusCode, body)
	}

	// Replica 2 learns it through Redis pub/sub.
	waitFor(t, func() bool {
		resp, _ := g2.get(t, "/orders", alice)
		return resp.StatusCode == 401
	})
	for _, g := range rs.gws {
		resp, body := g.get(t, "/orders", alice)
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("alice's revoked token: %d %s", resp.StatusCode, body)
		}
		if resp, _ := g.get(t, "/orders", bob); resp.StatusCode != 200 {
			t.Errorf("bob after alice's revocation: %d; want 200", resp.StatusCode)
		}
	}
	if got := testutil.ToFloat64(g2.srv.proc.CacheMetrics.Revocations.WithLabelValues("sub", "peer")); got != 1 {
		t.Errorf("replica 2 tokengate_revocations_total{by=sub,source=peer} = %v; want 1", got)
	}
	if got := testutil.ToFloat64(g1.srv.proc.CacheMetrics.Revocations.WithLabelValues("sub", "admin")); got != 1 {
		t.Errorf("replica 1 tokengate_revocations_total{by=sub,source=admin} = %v; want 1", got)
	}
	// A new login (issued after the revocation; within the issuer's leeway)
	// is accepted on both replicas.
	fresh := mint("alice", time.Now().Add(2*time.Second))
	for _, g := range rs.gws {
		if resp, body := g.get(t, "/orders", fresh); resp.StatusCode != 200 {
			t.Errorf("alice's new token: %d %s", resp.StatusCode, body)
		}
	}
	// A replica started after the revocation refuses the token too.
	g3 := startE2EWith(t, rs.idp, rs.orders, newE2EBackend(t, "inventory"), e2eOptions{
		issuer: "https://tokengate.test", cacheYAML: redisCacheYAML(rs.redis.Addr(), rs.cacheKey),
	})
	waitFor(t, func() bool {
		resp, _ := g3.get(t, "/orders", alice)
		return resp.StatusCode == 401
	})
}

// TestE2ERedisUpstream401DropsEverywhere: an upstream 401 drops the entry
// from Redis and from every replica's memory tier; the next request on any
// replica exchanges anew.
func TestE2ERedisUpstream401DropsEverywhere(t *testing.T) {
	var refuse atomic.Value // the exchanged token the backend refuses
	refuse.Store("")
	var mu sync.Mutex
	var seen []string
	orders := &e2eBackend{name: "orders"}
	orders.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearerOf(r)
		mu.Lock()
		seen = append(seen, tok)
		mu.Unlock()
		if tok == refuse.Load().(string) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(orders.srv.Close)
	rs := startReplicas(t, 2, orders)
	g1, g2 := rs.gws[0], rs.gws[1]
	umbrella := rs.idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-1]
	}
	for _, g := range rs.gws {
		if resp, _ := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
			t.Fatalf("%d", resp.StatusCode)
		}
	}
	first := last()
	refuse.Store(first) // the backend now refuses it (revoked upstream, key rotated...)
	if resp, _ := g1.get(t, "/orders", umbrella); resp.StatusCode != 401 {
		t.Fatalf("the backend's 401 was not passed on: %d", resp.StatusCode)
	}
	waitFor(t, func() bool {
		resp, _ := g2.get(t, "/orders", umbrella)
		return resp.StatusCode == 200 && last() != first
	})
	if got := signings(g1) + signings(g2); got != 2 {
		t.Errorf("signings = %v; want 2 (the first token, then one new one after the 401)", got)
	}
	if resp, _ := g1.get(t, "/orders", umbrella); resp.StatusCode != 200 || last() == first {
		t.Errorf("replica 1 after the 401: %d, token refreshed %v", resp.StatusCode, last() != first)
	}
}

// TestE2ERedisRequired: with cache.redis.required, Redis down fails /readyz
// (requests still succeed).
func TestE2ERedisRequired(t *testing.T) {
	srv := redistest.Start(t)
	idp := newE2EIdP(t)
	yaml := redisCacheYAML(srv.Addr(), base64.StdEncoding.EncodeToString(make([]byte, 32))) + "    required: true\n"
	g := startE2EWith(t, idp, newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"), e2eOptions{cacheYAML: yaml})
	if resp, body := get(t, g.srv.AdminURL()+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz with Redis up = %d %s", resp.StatusCode, body)
	}
	srv.Kill()
	resp, body := get(t, g.srv.AdminURL()+"/readyz")
	if resp.StatusCode != 503 || !strings.Contains(body, `"checks":{"redis"`) {
		t.Errorf("readyz with a required Redis down = %d %s; want 503 naming redis", resp.StatusCode, body)
	}
	tok := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	if resp, _ := g.get(t, "/orders", tok); resp.StatusCode != 200 {
		t.Errorf("a request with a required Redis down = %d; want 200 all the same", resp.StatusCode)
	}
}

// TestE2ERedisReload: a reload builds a new Redis tier and closes the old
// one (its listener too); the shared tier keeps working.
func TestE2ERedisReload(t *testing.T) {
	rs := startReplicas(t, 2, nil)
	g1, g2 := rs.gws[0], rs.gws[1]
	raw := rs.redis.Client(t)
	if err := g1.srv.Reload(context.Background()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	waitFor(t, func() bool {
		m, err := raw.PubSubNumSub(context.Background(), "tokengate:revocations").Result()
		return err == nil && m["tokengate:revocations"] == 2 // the old listener left, the new one joined
	})
	tok := rs.idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	for _, g := range []*e2eGateway{g1, g2} {
		if resp, body := g.get(t, "/orders", tok); resp.StatusCode != 200 {
			t.Fatalf("after reload: %d %s", resp.StatusCode, body)
		}
	}
	if got := signings(g1) + signings(g2); got != 1 {
		t.Errorf("signings after reload = %v; want 1 (the shared tier still shared)", got)
	}
	resp, _ := adminPost(t, g1, e2eAdminToken, `{"sub":"u"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("revoke after reload: %d", resp.StatusCode)
	}
	waitFor(t, func() bool {
		resp, _ := g2.get(t, "/orders", tok)
		return resp.StatusCode == 401
	})
}

// replicaSecrets are what replicas of one deployment share: a signing key
// (PEM) and the Redis encryption key (base64 of 32 random bytes).
func replicaSecrets(t *testing.T) (signingKeyPEM []byte, redisKey string) {
	t.Helper()
	pemBytes := oauthtest.KeyPEM(t, oauthtest.NewKey(t, "ES256"))
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return pemBytes, base64.StdEncoding.EncodeToString(raw)
}
