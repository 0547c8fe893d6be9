package cache_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/cache/cachetest"
	"github.com/tokengate/tokengate/internal/redistest"
)

var (
	key1 = bytes.Repeat([]byte{1}, cache.KeySize)
	key2 = bytes.Repeat([]byte{2}, cache.KeySize)
)

// prefixes gives every tier a fresh key prefix, so one Redis holds many
// independent, empty caches.
var prefixes atomic.Int64

func freshPrefix() string { return fmt.Sprintf("t%d:", prefixes.Add(1)) }

func keyring(t testing.TB, hashKey []byte, keys ...[]byte) *cache.Keyring {
	t.Helper()
	k, err := cache.NewKeyring(hashKey, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type tierOpts struct {
	prefix  string
	keys    *cache.Keyring
	now     func() time.Time
	metrics *cache.Metrics
	margin  time.Duration
	timeout time.Duration
	backoff time.Duration
}

func newRedisTier(t testing.TB, client redis.UniversalClient, o tierOpts) *cache.Redis {
	t.Helper()
	if o.prefix == "" {
		o.prefix = freshPrefix()
	}
	if o.keys == nil {
		o.keys = keyring(t, nil, key1)
	}
	r, err := cache.NewRedis(cache.RedisOptions{
		Client: client, Keyring: o.keys, KeyPrefix: o.prefix, RefreshBefore: o.margin,
		Timeout: o.timeout, BreakerFailures: 3, BreakerBackoff: o.backoff, Clock: o.now, Metrics: o.metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newClient(t testing.TB, addrs ...string) redis.UniversalClient {
	t.Helper()
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: addrs, MaxRetries: -1, ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		PoolTimeout: 200 * time.Millisecond,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisConformance(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	newTier := func(t *testing.T, now func() time.Time) cachetest.Cache {
		return newRedisTier(t, client, tierOpts{now: now})
	}
	cachetest.Run(t, newTier)
	t.Run("revoke", func(t *testing.T) { cachetest.RunRevoke(t, newTier) })
}

func TestTieredConformance(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	newTiered := func(t *testing.T, now func() time.Time) cachetest.Cache {
		mem, err := cache.NewMemory(1000, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := cache.NewTiered(mem, newRedisTier(t, client, tierOpts{now: now}))
		if err != nil {
			t.Fatal(err)
		}
		return tc
	}
	cachetest.Run(t, newTiered)
	t.Run("revoke", func(t *testing.T) { cachetest.RunRevoke(t, newTiered) })

	// Each tier alone: what one tier holds, the composition finds.
	t.Run("redis hit fills memory", func(t *testing.T) {
		ctx := context.Background()
		now := time.Now
		mem, _ := cache.NewMemory(10, now, nil)
		r := newRedisTier(t, client, tierOpts{now: now})
		tc, _ := cache.NewTiered(mem, r)
		e := cache.Entry{Token: "tok", ExpiresAt: now().Add(time.Hour)}
		r.Set(ctx, "k", e) // as another replica would
		if _, ok := tc.Find(ctx, "k", cache.LookupLocal); ok {
			t.Fatal("Find(LookupLocal) found an entry only Redis holds")
		}
		if got, ok := tc.Get(ctx, "k"); !ok || got.Token != "tok" {
			t.Fatalf("Get = %q, %v; want the Redis entry", got.Token, ok)
		}
		if got, ok := mem.Get(ctx, "k"); !ok || got.Token != "tok" {
			t.Fatalf("memory after a Redis hit = %q, %v; want it filled", got.Token, ok)
		}
		tc.Delete(ctx, "k")
		if _, ok := r.Get(ctx, "k"); ok {
			t.Error("Delete left the Redis entry")
		}
		if _, ok := mem.Get(ctx, "k"); ok {
			t.Error("Delete left the memory entry")
		}
	})
}

// TestRedisClusterConformance runs the suite against a real 3-node Redis
// Cluster: keys spread over slots, the index scripts touch one key each,
// and revocation deletes across nodes.
func TestRedisClusterConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	start := time.Now()
	cl := redistest.StartCluster(t, 3)
	t.Logf("3-node cluster ready in %s", time.Since(start).Round(time.Millisecond))
	client := newClient(t, cl.Addrs()...)
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T; want a cluster client for several addrs", client)
	}
	newTier := func(t *testing.T, now func() time.Time) cachetest.Cache {
		return newRedisTier(t, client, tierOpts{now: now})
	}
	cachetest.Run(t, newTier)
	t.Run("revoke", func(t *testing.T) { cachetest.RunRevoke(t, newTier) })

	// Revocations reach a listener through the cluster's pub/sub.
	t.Run("pub/sub", func(t *testing.T) {
		a, b := newReplica(t, client, "cl:"), newReplica(t, client, "cl:")
		waitUntil(t, "a revocation crosses the cluster", func() bool {
			_, _ = a.tiered.Revoke(context.Background(), cache.Revocation{By: cache.ByToken, Hash: "u", At: time.Now(), Until: time.Now().Add(time.Hour)})
			return b.deny.Revoked(cache.ByToken, "u", time.Time{})
		})
	})

	// Entries really are spread: every node holds some.
	r := newRedisTier(t, client, tierOpts{})
	ctx := context.Background()
	for i := range 60 {
		r.Set(ctx, fmt.Sprint("spread-", i), cache.Entry{Token: "t", ExpiresAt: time.Now().Add(time.Hour)})
	}
	for _, n := range cl.Nodes {
		if size, err := n.Client(t).DBSize(ctx).Result(); err != nil || size == 0 {
			t.Errorf("node %s holds %d keys (%v); want some of the 60", n.Addr(), size, err)
		}
	}
}

// dump returns every key, and every value, member and field, in Redis.
func dump(t *testing.T, c *redis.Client) (keys []string, blob string) {
	t.Helper()
	ctx := context.Background()
	var all strings.Builder
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		keys = append(keys, k)
		all.WriteString(k + "\n")
		switch typ := c.Type(ctx, k).Val(); typ {
		case "string":
			all.WriteString(c.Get(ctx, k).Val() + "\n")
		case "set":
			all.WriteString(strings.Join(c.SMembers(ctx, k).Val(), "\n") + "\n")
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				all.WriteString(f + "\n" + v + "\n")
			}
		default:
			t.Errorf("unexpected key type %s for %s", typ, k)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys, all.String()
}

// forms are the ways a secret could show: raw, and base64 or hex encoded.
func forms(s string) []string {
	return []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)), fmt.Sprintf("%x", s)}
}

func TestRedisNothingReadable(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	raw := srv.Client(t)
	ctx := context.Background()
	r := newRedisTier(t, client, tierOpts{prefix: "tokengate:"})

	// What the channel carries is checked too.
	sub := raw.Subscribe(ctx, "tokengate:revocations")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	secrets := []string{}
	for i := range 5 {
		e := cache.Entry{
			Token:       fmt.Sprintf("eyJhbGciOiJFUzI1NiJ9.exchanged-token-%d.signature-%d", i, i),
			TokenType:   "urn:ietf:params:oauth:token-type:access_token",
			Scope:       "orders:read",
			ExpiresAt:   time.Now().Add(time.Hour),
			SubjectHash: fmt.Sprintf("subject-hash-%d-xxxxxxxxxxxxxxxxxxxx", i),
			SessionHash: fmt.Sprintf("session-hash-%d-xxxxxxxxxxxxxxxxxxxx", i),
			TokenHash:   fmt.Sprintf("umbrella-hash-%d-xxxxxxxxxxxxxxxxxxx", i),
		}
		key := fmt.Sprintf("cache-key-%d-yyyyyyyyyyyyyyyyyyyyyy", i)
		r.Set(ctx, key, e)
		secrets = append(secrets, e.Token, e.SubjectHash, e.SessionHash, e.TokenHash, key, "orders:read")
	}
	if _, err := r.Revoke(ctx, cache.Revocation{By: cache.BySubject, Hash: "subject-hash-0-xxxxxxxxxxxxxxxxxxxx",
		At: time.Now(), Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	r.PublishDelete(ctx, "cache-key-1-yyyyyyyyyyyyyyyyyyyyyy")

	keys, blob := dump(t, raw)
	if len(keys) < 5 {
		t.Fatalf("found %d keys; want the entries, their indexes and the denylist", len(keys))
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "tokengate:") {
			t.Errorf("key %q lacks the prefix", k)
		}
	}
	for range 2 {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		blob += msg.Payload + "\n"
	}
	for _, s := range secrets {
		for _, f := range forms(s) {
			if strings.Contains(blob, f) {
				t.Errorf("Redis or the channel holds %q in a readable form", s)
			}
		}
	}
}

func TestRedisValueMovedFails(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	raw := srv.Client(t)
	ctx := context.Background()
	m := cache.NewMetrics(prometheus.NewRegistry())
	r := newRedisTier(t, client, tierOpts{prefix: "p:", metrics: m})
	r.Set(ctx, "victim", cache.Entry{Token: "victim-token", ExpiresAt: time.Now().Add(time.Hour)})
	r.Set(ctx, "attacker", cache.Entry{Token: "attacker-token", ExpiresAt: time.Now().Add(time.Hour)})
	keys, _ := dump(t, raw)
	var names []string
	for _, k := range keys {
		if strings.HasPrefix(k, "p:e:") {
			names = append(names, k)
		}
	}
	if len(names) != 2 {
		t.Fatalf("entry keys = %q; want 2", names)
	}
	// Copy each value over the other: both are now values of another name.
	v0, v1 := raw.Get(ctx, names[0]).Val(), raw.Get(ctx, names[1]).Val()
	raw.Set(ctx, names[0], v1, time.Hour)
	raw.Set(ctx, names[1], v0, time.Hour)
	errs := m.Requests.WithLabelValues(cache.TierRedis, cache.ResultError)
	for _, k := range []string{"victim", "attacker"} {
		if e, ok := r.Get(ctx, k); ok {
			t.Errorf("Get(%s) = %q after its value was swapped; want a miss", k, e.Token)
		}
	}
	if got := testutil.ToFloat64(errs); got != 2 {
		t.Errorf("redis error lookups = %v; want 2 (values that do not open)", got)
	}
	// A flipped bit fails the same way.
	b := []byte(raw.Get(ctx, names[0]).Val())
	b[len(b)-1] ^= 1
	raw.Set(ctx, names[0], b, time.Hour)
	raw.Set(ctx, names[1], "garbage", time.Hour)
	for _, k := range []string{"victim", "attacker"} {
		if _, ok := r.Get(ctx, k); ok {
			t.Errorf("Get(%s) served a tampered value", k)
		}
	}
	if got := testutil.ToFloat64(errs); got != 4 {
		t.Errorf("redis error lookups = %v; want 4", got)
	}
}

func TestRedisKeyRotation(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	raw := srv.Client(t)
	ctx := context.Background()
	e := func(tok string) cache.Entry { return cache.Entry{Token: tok, ExpiresAt: time.Now().Add(time.Hour)} }

	// Before: key1 only. During: key2 encrypts, key1 still decrypts, names
	// keyed by key1 (hash_key pinned). After: key2 only.
	before := newRedisTier(t, client, tierOpts{prefix: "rot:", keys: keyring(t, nil, key1)})
	during := newRedisTier(t, client, tierOpts{prefix: "rot:", keys: keyring(t, key1, key2, key1)})
	after := newRedisTier(t, client, tierOpts{prefix: "rot:", keys: keyring(t, key1, key2)})
	unpinned := newRedisTier(t, client, tierOpts{prefix: "rot:", keys: keyring(t, nil, key2, key1)})

	before.Set(ctx, "old", e("old-token"))
	if got, ok := during.Get(ctx, "old"); !ok || got.Token != "old-token" {
		t.Fatalf("during rotation, a value under the old key = %q, %v; want it decrypted", got.Token, ok)
	}
	if _, ok := after.Get(ctx, "old"); ok {
		t.Error("after rotation (old key dropped), an old value still decrypted")
	}
	if _, ok := unpinned.Get(ctx, "old"); ok {
		t.Error("without hash_key pinned the names change: the old entry must not be found")
	}

	during.Set(ctx, "new", e("new-token"))
	keyIDs := map[string]uint32{}
	keys, _ := dump(t, raw)
	for _, k := range keys {
		if strings.HasPrefix(k, "rot:e:") {
			v := []byte(raw.Get(ctx, k).Val())
			keyIDs[k] = uint32(v[1])<<24 | uint32(v[2])<<16 | uint32(v[3])<<8 | uint32(v[4])
			if v[0] != 1 {
				t.Errorf("value version = %d; want 1", v[0])
			}
		}
	}
	var sawOld, sawNew bool
	for _, id := range keyIDs {
		sawOld = sawOld || id == before.KeyIDForTest()
		sawNew = sawNew || id == during.KeyIDForTest()
	}
	if !sawOld || !sawNew || before.KeyIDForTest() == during.KeyIDForTest() {
		t.Errorf("key ids in values = %v; want the old key's (%08x) and the new key's (%08x)", keyIDs, before.KeyIDForTest(), during.KeyIDForTest())
	}
	if got, ok := after.Get(ctx, "new"); !ok || got.Token != "new-token" {
		t.Errorf("a value written with the new key = %q, %v; want it readable after the rotation", got.Token, ok)
	}
	if _, ok := before.Get(ctx, "new"); ok {
		t.Error("a replica without the new key decrypted a new value")
	}
}

func TestRedisTTL(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	raw := srv.Client(t)
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRedisTier(t, client, tierOpts{prefix: "ttl:", now: func() time.Time { return now }, margin: 30 * time.Second})
	tests := []struct {
		name   string
		e      cache.Entry
		want   time.Duration // 0: not stored
		stored bool
	}{
		{"remaining life less the margin", cache.Entry{Token: "a", ExpiresAt: now.Add(5 * time.Minute)}, 270 * time.Second, true},
		{"capped: served to the end", cache.Entry{Token: "b", ExpiresAt: now.Add(time.Minute), Capped: true}, time.Minute, true},
		{"inside the margin: not stored", cache.Entry{Token: "c", ExpiresAt: now.Add(20 * time.Second)}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := raw.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			r.Set(ctx, "k", tt.e)
			keys, _ := dump(t, raw)
			var name string
			for _, k := range keys {
				if strings.HasPrefix(k, "ttl:e:") {
					name = k
				}
			}
			if !tt.stored {
				if name != "" {
					t.Fatalf("stored %s; want nothing", name)
				}
				return
			}
			ttl := raw.PTTL(ctx, name).Val()
			if ttl > tt.want || ttl < tt.want-2*time.Second {
				t.Errorf("PTTL = %s; want about %s", ttl, tt.want)
			}
		})
	}
}

func TestRedisMetricsLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := cache.NewMetrics(reg)
	m.RedisDuration.WithLabelValues("get").Observe(0.001)
	m.RedisErrors.WithLabelValues("skipped").Inc()
	m.Revocations.WithLabelValues("sub", "admin").Inc()
	m.Requests.WithLabelValues(cache.TierRedis, cache.ResultError).Inc()
	m.BreakerOpen.Set(1)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	for _, name := range []string{"tokengate_redis_duration_seconds", "tokengate_redis_errors_total",
		"tokengate_redis_breaker_open", "tokengate_revocations_total", "tokengate_cache_requests_total"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("%s: %d series, %v", name, n, err)
		}
	}
}
