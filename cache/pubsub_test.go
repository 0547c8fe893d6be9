package cache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/redistest"
)

// replica is one gateway's cache: its own memory tier and denylist, the
// shared Redis, listening to the channel.
type replica struct {
	mem     *cache.Memory
	tiered  *cache.Tiered
	deny    *cache.Denylist
	metrics *cache.Metrics
}

func newReplica(t *testing.T, client redis.UniversalClient, prefix string) *replica {
	t.Helper()
	m := cache.NewMetrics(prometheus.NewRegistry())
	mem, err := cache.NewMemory(100, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cache.NewTiered(mem, newRedisTier(t, client, tierOpts{prefix: prefix, metrics: m}))
	if err != nil {
		t.Fatal(err)
	}
	rep := &replica{mem: mem, tiered: tc, deny: cache.NewDenylist(nil), metrics: m}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { tc.Listen(ctx, rep.deny.Add) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return rep
}

// subscribed waits until n clients listen on the channel.
func subscribed(t *testing.T, raw *redis.Client, channel string, n int64) {
	t.Helper()
	waitUntil(t, "subscribers", func() bool {
		m, err := raw.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && m[channel] >= n
	})
}

func TestRevocationReachesEveryReplica(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	raw := srv.Client(t)
	ctx := context.Background()
	a, b := newReplica(t, client, "ps:"), newReplica(t, client, "ps:")
	subscribed(t, raw, "ps:revocations", 2)

	exp := time.Now().Add(time.Hour)
	entry := func(tok, sub string) cache.Entry {
		return cache.Entry{Token: tok, ExpiresAt: exp, SubjectHash: sub, TokenHash: "umb-" + tok}
	}
	a.tiered.Set(ctx, "k-alice-1", entry("t1", "alice"))
	a.tiered.Set(ctx, "k-alice-2", entry("t2", "alice"))
	a.tiered.Set(ctx, "k-bob", entry("t3", "bob"))
	for _, k := range []string{"k-alice-1", "k-alice-2", "k-bob"} {
		if _, ok := b.tiered.Get(ctx, k); !ok { // fills b's memory tier from Redis
			t.Fatalf("replica b does not see %s", k)
		}
	}

	rev := cache.Revocation{By: cache.BySubject, Hash: "alice", At: time.Now(), Until: exp}
	n, err := a.tiered.Revoke(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 { // two in a's memory, two in Redis
		t.Errorf("Revoke dropped %d entries; want 4", n)
	}
	waitUntil(t, "replica b drops alice's entries from its memory tier", func() bool {
		_, ok1 := b.mem.Get(ctx, "k-alice-1")
		_, ok2 := b.mem.Get(ctx, "k-alice-2")
		return !ok1 && !ok2
	})
	if _, ok := b.tiered.Get(ctx, "k-bob"); !ok {
		t.Error("revoking alice dropped bob's entry")
	}
	if !b.deny.Revoked(cache.BySubject, "alice", time.Now().Add(-time.Minute)) {
		t.Error("replica b's denylist does not refuse alice's older tokens")
	}
	if b.deny.Revoked(cache.BySubject, "alice", time.Now().Add(time.Minute)) {
		t.Error("replica b's denylist refuses a token issued after the revocation")
	}
	if got := testutil.ToFloat64(b.metrics.Revocations.WithLabelValues("sub", "peer")); got != 1 {
		t.Errorf("b: tokengate_revocations_total{by=sub,source=peer} = %v; want 1", got)
	}
	if got := testutil.ToFloat64(a.metrics.Revocations.WithLabelValues("sub", "peer")); got != 0 {
		t.Errorf("a counted its own revocation as from a peer: %v", got)
	}

	// A delete (upstream 401) reaches b's memory tier too.
	a.tiered.Delete(ctx, "k-bob")
	waitUntil(t, "replica b drops the deleted entry", func() bool {
		_, ok := b.mem.Get(ctx, "k-bob")
		return !ok
	})

	// A replica that starts after the revocation loads it from Redis.
	c := newReplica(t, client, "ps:")
	waitUntil(t, "a late replica loads the stored revocation", func() bool {
		return c.deny.Revoked(cache.BySubject, "alice", time.Now().Add(-time.Minute))
	})
}

// TestListenerResubscribes: after Redis restarts, the listener subscribes
// again by itself and revocations flow again.
func TestListenerResubscribes(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	ctx := context.Background()
	a, b := newReplica(t, client, "rs:"), newReplica(t, client, "rs:")
	subscribed(t, srv.Client(t), "rs:revocations", 2)

	srv.Restart()
	raw := srv.Client(t)
	subscribed(t, raw, "rs:revocations", 2)
	waitUntil(t, "the revocation reaches b after the restart", func() bool {
		_, _ = a.tiered.Revoke(ctx, cache.Revocation{By: cache.BySession, Hash: "s1", At: time.Now(), Until: time.Now().Add(time.Hour)})
		return b.deny.Revoked(cache.BySession, "s1", time.Time{})
	})
}

func TestDenylist(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := now
	d := cache.NewDenylist(func() time.Time { return clock })
	if !d.Empty() || d.Revoked(cache.BySubject, "alice", time.Time{}) {
		t.Fatal("a new denylist refuses something")
	}
	d.Add(cache.Revocation{By: cache.BySubject, Hash: "alice", At: now, Until: now.Add(time.Hour)})
	d.Add(cache.Revocation{By: cache.ByToken, Hash: "tok", At: now, Until: now.Add(time.Minute)})
	d.Add(cache.Revocation{By: cache.BySession, Hash: "old", At: now, Until: now}) // already over: ignored
	d.Add(cache.Revocation{By: cache.Field(9), Hash: "x", At: now, Until: now.Add(time.Hour)})
	if d.Len() != 2 {
		t.Errorf("Len = %d; want 2", d.Len())
	}
	tests := []struct {
		name     string
		by       cache.Field
		hash     string
		issuedAt time.Time
		want     bool
	}{
		{"issued before", cache.BySubject, "alice", now.Add(-time.Second), true},
		{"issued at", cache.BySubject, "alice", now, true},
		{"no iat", cache.BySubject, "alice", time.Time{}, true},
		{"issued after: a new login", cache.BySubject, "alice", now.Add(time.Second), false},
		{"other subject", cache.BySubject, "bob", time.Time{}, false},
		{"same hash, other field", cache.BySession, "alice", time.Time{}, false},
		{"token: whatever its iat", cache.ByToken, "tok", now.Add(time.Hour), true},
		{"expired revocation", cache.BySession, "old", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.Revoked(tt.by, tt.hash, tt.issuedAt); got != tt.want {
				t.Errorf("Revoked = %v; want %v", got, tt.want)
			}
		})
	}
	// A later revocation of the same hash moves At forward; expiry forgets.
	d.Add(cache.Revocation{By: cache.BySubject, Hash: "alice", At: now.Add(time.Minute), Until: now.Add(30 * time.Minute)})
	if !d.Revoked(cache.BySubject, "alice", now.Add(30*time.Second)) {
		t.Error("a second revocation did not move the cut-off forward")
	}
	clock = now.Add(2 * time.Hour)
	if d.Revoked(cache.BySubject, "alice", time.Time{}) {
		t.Error("a revocation past Until still refuses")
	}
	d.Add(cache.Revocation{By: cache.BySubject, Hash: "carol", At: clock, Until: clock.Add(time.Hour)})
	if d.Len() != 1 {
		t.Errorf("Len after expiry = %d; want 1 (expired ones swept)", d.Len())
	}
}
