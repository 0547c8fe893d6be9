package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/redistest"
)

// waitUntil polls cond (a condition, never a fixed sleep) for up to 20s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("%s: not within 20s", what)
		case <-tick.C:
		}
	}
}

// TestRedisOutage: Redis killed → every call returns within its timeout and
// is a miss; after 3 failures the breaker opens and calls are skipped
// without touching the network; Redis restarted → after the back-off a
// probe closes the breaker and hits come back.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	ctx := context.Background()
	m := cache.NewMetrics(prometheus.NewRegistry())
	const timeout = 300 * time.Millisecond
	r := newRedisTier(t, client, tierOpts{metrics: m, timeout: timeout, backoff: 300 * time.Millisecond})
	e := cache.Entry{Token: "tok", ExpiresAt: time.Now().Add(time.Hour)}
	r.Set(ctx, "k", e)
	if _, ok := r.Get(ctx, "k"); !ok {
		t.Fatal("miss before the outage")
	}

	srv.Kill()
	skipped := m.RedisErrors.WithLabelValues("skipped")
	for i := range 10 {
		start := time.Now()
		_, ok := r.Get(ctx, "k")
		r.Set(ctx, "k2", e)
		if d := time.Since(start); d > 2*timeout+200*time.Millisecond {
			t.Errorf("call %d with Redis down took %s; want each bounded by %s", i, d, timeout)
		}
		if ok {
			t.Fatalf("call %d: a hit with Redis down", i)
		}
	}
	if !r.BreakerOpen() {
		t.Error("breaker closed after 20 failed calls; want open")
	}
	if got := testutil.ToFloat64(m.BreakerOpen); got != 1 {
		t.Errorf("tokengate_redis_breaker_open = %v; want 1", got)
	}
	if got := testutil.ToFloat64(skipped); got == 0 {
		t.Error("no call was skipped while the breaker was open")
	}
	if got := testutil.ToFloat64(m.Requests.WithLabelValues(cache.TierRedis, cache.ResultError)); got < 10 {
		t.Errorf("redis error lookups = %v; want every Get during the outage (10)", got)
	}
	if err := r.Ping(ctx); err == nil {
		t.Error("Ping succeeded with Redis down")
	}

	srv.Restart() // empty: nothing is persisted
	r.Set(ctx, "k", e)
	waitUntil(t, "breaker closes and hits come back after the restart", func() bool {
		r.Set(ctx, "k", e)
		_, ok := r.Get(ctx, "k")
		return ok && !r.BreakerOpen()
	})
	if got := testutil.ToFloat64(m.BreakerOpen); got != 0 {
		t.Errorf("tokengate_redis_breaker_open = %v after recovery; want 0", got)
	}
	if err := r.Ping(ctx); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
}

// TestRedisSlowIsBounded: a Redis that does not answer (CLIENT PAUSE) costs
// a request at most the call timeout.
func TestRedisSlowIsBounded(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	ctx := context.Background()
	const timeout = 150 * time.Millisecond
	r := newRedisTier(t, client, tierOpts{timeout: timeout, backoff: time.Hour})
	r.Set(ctx, "k", cache.Entry{Token: "tok", ExpiresAt: time.Now().Add(time.Hour)})
	if err := srv.Client(t).Do(ctx, "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		start := time.Now()
		if _, ok := r.Get(ctx, "k"); ok {
			t.Fatalf("call %d: a hit from a paused Redis", i)
		}
		if d := time.Since(start); d > timeout+150*time.Millisecond {
			t.Errorf("call %d took %s with Redis paused; want about %s", i, d, timeout)
		}
	}
	_ = srv.Client(t).Do(ctx, "CLIENT", "UNPAUSE").Err()
}
