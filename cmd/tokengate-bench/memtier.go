package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokengate/tokengate/cache"
)

// runMemory fills a memory tier bounded at o.memoryEntries with that many
// entries (32-byte keys and 800-byte tokens made as the entries are, as a
// server makes them), then serves Gets with a little Set churn while
// allocating what a proxied request allocates, reporting bytes per entry
// beyond key and token and the fraction of CPU the GC took in each phase
// (runtime/metrics). It runs in this process, with GOGC at its default.
func runMemory(e *env, w io.Writer) error {
	n := e.o.memoryEntries
	const (
		keyLen, tokenLen = 32, 800
		// garbagePerOp is about what the whole request allocates on the
		// hit path (BenchmarkWholeRequest: ~15 KB/op).
		garbagePerOp = 15 << 10
	)
	ctx := context.Background()
	c, err := cache.NewMemory(n, nil, nil)
	if err != nil {
		return err
	}
	key := func(i int) string {
		var k [keyLen]byte
		binary.BigEndian.PutUint64(k[:], uint64(i))
		copy(k[8:], "tokengate-bench-memory-tier-key")
		return string(k[:])
	}
	pad := strings.Repeat("x", tokenLen-32)
	exp := time.Now().Add(time.Hour)
	before := heapAlloc()
	gc0 := gcCPU()
	start := time.Now()
	rb := make([]byte, 16)
	for i := range n {
		rand.Read(rb)
		c.Set(ctx, key(i), cache.Entry{Token: hex.EncodeToString(rb) + pad, TokenType: "urn:ietf:params:oauth:token-type:access_token",
			Scope: "api0:read", IssuedAt: start, ExpiresAt: exp})
	}
	fill := time.Since(start)
	gcFill := gcCPU().sub(gc0)
	after := heapAlloc()
	if c.Len() != n {
		return fmt.Errorf("the tier holds %d entries after %d Sets within a bound of %d", c.Len(), n, n)
	}
	perEntry := float64(after-before)/float64(n) - keyLen - tokenLen

	// Serve: Gets on every core, one Set in 64 replacing an entry, and a
	// request's worth of garbage per op so that the GC runs as it would.
	var (
		stop atomic.Bool
		ops  atomic.Int64
		wg   sync.WaitGroup
		miss atomic.Int64
		// last keeps the newest garbage reachable, so that it is made on
		// the heap (a non-escaping make would live on the stack).
		last atomic.Pointer[[]byte]
	)
	gc1 := gcCPU()
	serveStart := time.Now()
	// A GC cycle over this heap is rare and dear: serve for at least
	// -duration and until three cycles have run (at most a minute), so the
	// fraction is an average over cycles, not one window's luck.
	go func() {
		for !stop.Load() {
			time.Sleep(50 * time.Millisecond)
			el := time.Since(serveStart)
			if el >= e.o.duration && (gcCPU().sub(gc1).cycles >= 3 || el >= time.Minute) {
				stop.Store(true)
			}
		}
	}()
	for wk := range runtime.NumCPU() {
		wg.Go(func() {
			k := 0
			for i := wk * 7919; !stop.Load(); i += 104729 {
				j := i % n
				if i%64 == 0 {
					c.Set(ctx, key(j), cache.Entry{Token: pad, ExpiresAt: exp})
				} else if _, ok := c.Get(ctx, key(j)); !ok {
					miss.Add(1)
				}
				g := make([]byte, garbagePerOp)
				last.Store(&g)
				k++
			}
			ops.Add(int64(k))
		})
	}
	wg.Wait()
	served := time.Since(serveStart)
	gcServe := gcCPU().sub(gc1)
	runtime.KeepAlive(c)
	if miss.Load() > 0 {
		return fmt.Errorf("the tier lost %d entries within its bound", miss.Load())
	}
	fmt.Fprintf(w, "memory: %d entries (bound %d): %.0f bytes/entry beyond the %d-byte key and %d-byte token (tier heap %.0f MB)\n",
		n, n, perEntry, keyLen, tokenLen, float64(after-before)/1e6)
	fmt.Fprintf(w, "memory: fill %s (%.0f ns/Set), GC CPU fraction while filling %.3f (%d GC cycles)\n",
		fill.Round(time.Millisecond), float64(fill)/float64(n), gcFill.fraction(), gcFill.cycles)
	fmt.Fprintf(w, "memory: serving %d Gets/Sets with %d KiB of garbage each in %s on %d goroutines: GC CPU fraction %.3f over %d GC cycles (%.0f ms GC CPU per cycle, %.1f µs GC CPU per op amortized)\n",
		ops.Load(), garbagePerOp>>10, served.Round(time.Millisecond), runtime.NumCPU(), gcServe.fraction(), gcServe.cycles,
		gcServe.gc*1e3/float64(max(gcServe.cycles, 1)), gcServe.gc*1e6/float64(max(ops.Load(), 1)))
	return nil
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// gcSample is the GC's and the whole process's CPU time so far.
type gcSample struct {
	gc, total float64
	cycles    uint64
}

func gcCPU() gcSample {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return gcSample{gc: s[0].Value.Float64(), total: s[1].Value.Float64(), cycles: s[2].Value.Uint64()}
}

func (a gcSample) sub(b gcSample) gcSample {
	return gcSample{gc: a.gc - b.gc, total: a.total - b.total, cycles: a.cycles - b.cycles}
}

// fraction of CPU time spent in the GC. runtime/metrics' total counts every
// P's available time, so on an idle core this understates; it is what
// GOGC's own pacing is measured against.
func (a gcSample) fraction() float64 {
	if a.total <= 0 {
		return 0
	}
	return a.gc / a.total
}
