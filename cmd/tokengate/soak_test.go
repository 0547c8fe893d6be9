package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoak drives mixed traffic (cache hits, misses, rejections, reloads)
// through the real server for TOKENGATE_SOAK (a duration; `make soak` sets
// 60s) and reports errors, goroutines and heap at start and end. It fails
// on any unexpected status or a goroutine leak. Without TOKENGATE_SOAK it
// is skipped: it is not part of `make test`.
func TestSoak(t *testing.T) {
	env := os.Getenv("TOKENGATE_SOAK")
	if env == "" {
		t.Skip("set TOKENGATE_SOAK=60s (make soak) to run the soak test")
	}
	d, err := time.ParseDuration(env)
	if err != nil || d <= 0 {
		t.Fatalf("TOKENGATE_SOAK=%q: want a positive duration such as 60s", env)
	}
	idp := newE2EIdP(t)
	// Backends that record nothing: a soak must not grow the test's heap.
	quiet := func(name string) *e2eBackend {
		b := &e2eBackend{name: name, srv: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "ok")
		}))}
		t.Cleanup(b.srv.Close)
		return b
	}
	orders, inventory := quiet("orders"), quiet("inventory")
	g := startE2E(t, idp, orders, inventory)
	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	atk := newAttacker(t)

	hits := make([]string, 8)
	for i := range hits {
		hits[i] = idp.mint(t, map[string]any{"sub": fmt.Sprintf("hit-%d", i), "aud": []string{audOrders, audInventory}, "scope": "orders:read inventory:read"})
	}
	expired := idp.mint(t, map[string]any{"sub": "x", "aud": audOrders, "scope": "orders:read", "exp": time.Now().Add(-time.Hour).Unix()})
	wrongAud := idp.mint(t, map[string]any{"sub": "x", "aud": "https://other.example", "scope": "orders:read"})
	claims := claimsJSON(t, idp.URL(), nil)

	do := func(path, token string) int {
		req, _ := http.NewRequest(http.MethodGet, g.srv.EdgeURL()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Warm up every path with the soak's concurrency, so that connection
	// pools (bounded by it) and caches exist before the baseline.
	const workers = 4
	var warm sync.WaitGroup
	for range workers {
		warm.Go(func() {
			for _, tok := range hits {
				do("/orders", tok)
				do("/inventory", tok)
			}
		})
	}
	warm.Wait()
	baseG, baseHeap := settle(transport)
	t.Logf("start: goroutines %d, heap %.1f MiB", baseG, float64(baseHeap)/(1<<20))

	var counts [5]atomic.Int64 // hit, miss, reject, reload, error
	var errMu sync.Mutex
	var errs []string
	fail := func(format string, args ...any) {
		counts[4].Add(1)
		errMu.Lock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
		errMu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				switch i % 10 {
				case 0, 1, 2, 3, 4: // cache hits
					path := []string{"/orders", "/inventory"}[i%2]
					if c := do(path, hits[(w+i)%len(hits)]); c != 200 {
						fail("hit %s: %d", path, c)
					}
					counts[0].Add(1)
				case 5, 6: // misses: a new subject each time
					tok := idp.mint(t, map[string]any{"sub": fmt.Sprintf("miss-%d-%d", w, i), "aud": audOrders, "scope": "orders:read"})
					if c := do("/orders", tok); c != 200 {
						fail("miss: %d", c)
					}
					counts[1].Add(1)
				default: // rejections
					tok := []string{expired, wrongAud, "garbage",
						craft(t, fmt.Sprintf(`{"alg":"ES256","kid":"rnd-%d-%d"}`, w, i), claims, signES256(atk.key))}[i%4]
					if c := do("/orders", tok); c != 401 {
						fail("rejection: %d", c)
					}
					counts[2].Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := g.srv.Reload(context.Background()); err != nil {
					fail("reload: %v", err)
				}
				counts[3].Add(1)
			}
		}
	})
	wg.Wait()

	endG, endHeap := settle(transport)
	// Goroutines return to the baseline once the load stops (a condition,
	// polled: connection goroutines finish asynchronously).
	deadline := time.After(20 * time.Second)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
wait:
	for endG > baseG+10 {
		select {
		case <-deadline:
			break wait
		case <-poll.C:
			endG, endHeap = settle(transport)
		}
	}
	t.Logf("end: goroutines %d, heap %.1f MiB", endG, float64(endHeap)/(1<<20))
	t.Logf("%v: %d hits, %d misses, %d rejections, %d reloads, %d errors",
		d, counts[0].Load(), counts[1].Load(), counts[2].Load(), counts[3].Load(), counts[4].Load())
	for _, e := range errs {
		t.Errorf("error: %s", e)
	}
	if endG > baseG+10 {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("goroutines %d after the load, baseline %d: a leak\n%s", endG, baseG, b.String())
	}
	if counts[0].Load() == 0 || counts[1].Load() == 0 || counts[2].Load() == 0 || counts[3].Load() == 0 {
		t.Errorf("the mix did not run every kind of traffic")
	}
	for _, tok := range append(hits, expired, wrongAud) {
		assertNoUmbrella(t, tok, g)
	}
}

// settle closes idle client connections, collects garbage and returns the
// goroutine count and live heap.
func settle(tr *http.Transport) (int, uint64) {
	tr.CloseIdleConnections()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapAlloc
}
