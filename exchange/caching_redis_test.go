package exchange

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/redistest"
)

// countingHook counts the GET commands a go-redis client sends.
type countingHook struct{ gets atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "get") {
			h.gets.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if strings.EqualFold(c.Name(), "get") {
				h.gets.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// TestCachingBurstOneRedisReadOneExchange: a burst of concurrent first
// requests for one key on one replica makes at most one Redis read and one
// exchange, whether the token is nowhere yet or only in Redis (made by
// another replica): the memory tier is read before joining the key's flight,
// Redis only inside it.
func TestCachingBurstOneRedisReadOneExchange(t *testing.T) {
	srv := redistest.Start(t)
	keys, err := cache.NewKeyring(nil, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		inRedis       bool
		wantExchanges int
	}{
		{"token nowhere yet", false, 1},
		{"token only in Redis", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200
			hook := &countingHook{}
			client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
			client.AddHook(hook)
			t.Cleanup(func() { client.Close() })
			prefix := fmt.Sprintf("burst-%t:", tc.inRedis)
			newTiered := func(clock func() time.Time) *cache.Tiered {
				mem, err := cache.NewMemory(100, clock, nil)
				if err != nil {
					t.Fatal(err)
				}
				r, err := cache.NewRedis(cache.RedisOptions{Client: client, Keyring: keys, KeyPrefix: prefix, Clock: clock})
				if err != nil {
					t.Fatal(err)
				}
				tc, err := cache.NewTiered(mem, r)
				if err != nil {
					t.Fatal(err)
				}
				return tc
			}
			secret := keys.CacheKeySecret()
			req := ctRequest("umbrella-burst", "https://orders", "orders:read")
			if tc.inRedis { // another replica exchanged it first
				other := ctSetup(t, func(o *CachingOptions) { o.KeySecret = secret; o.Cache = newTiered(time.Now) })
				other.clock.Set(time.Now())
				ctExchange(t, other.c, req)
			}

			env := ctSetup(t, func(o *CachingOptions) { o.KeySecret = secret })
			env.clock.Set(time.Now())
			tiered := newTiered(env.clock.Now)
			env.c.cache = tiered
			// With nothing cached, the upstream waits until every caller has
			// joined the flight. With the token in Redis there is no exchange
			// to wait on: callers either join the one flight that reads Redis
			// or, once it has filled memory, hit memory.
			gate := make(chan struct{})
			var joined sync.WaitGroup
			if !tc.inRedis {
				env.up.SetHook(func(context.Context, int) error { <-gate; return nil })
				joined.Add(n)
				env.c.testHookJoined = joined.Done
			}
			hook.gets.Store(0)

			var done sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				done.Go(func() {
					if _, err := env.c.Exchange(context.Background(), req); err != nil {
						errs <- err
					}
				})
			}
			joined.Wait()
			close(gate)
			done.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("a caller failed: %v", err)
			}
			if got := hook.gets.Load(); got != 1 {
				t.Errorf("%d concurrent first requests made %d Redis reads; want 1", n, got)
			}
			if got := env.up.Calls(); got != tc.wantExchanges {
				t.Errorf("upstream exchanges = %d; want %d", got, tc.wantExchanges)
			}
			if _, ok := tiered.Find(context.Background(), env.c.cacheKey(req), cache.LookupLocal); !ok {
				t.Error("the memory tier was not filled")
			}
		})
	}
}
