package main

import (
	"context"
	"crypto/rand"
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
// entries (32-byte keys and 800-byte tokens, allocated beforehand so only
// the tier's own bookkeeping is counted), then serves Gets with a little Set
// churn, reporting bytes per entry beyond key and token and the fraction of
// CPU the GC took in each phase (runtime/metrics). It runs in this process.
func runMemory(e *env, w io.Writer) error {
	n := e.o.memoryEntries
	const tokenLen = 800
	ctx := context.Background()
	keys := make([]string, n)
	entries := make([]cache.Entry, n)
	kb := make([]byte, 32)
	tb := make([]byte, tokenLen/2)
	exp := time.Now().Add(time.Hour)
	for i := range n {
		rand.Read(kb)
		rand.Read(tb)
		keys[i] = string(kb)
		entries[i] = cache.Entry{Token: string(tb) + strings.Repeat("x", tokenLen/2), TokenType: "urn:ietf:params:oauth:token-type:access_token",
			Scope: "api0:read", IssuedAt: time.Now(), ExpiresAt: exp}
	}
	c, err := cache.NewMemory(n, nil, nil)
	if err != nil {
		return err
	}
	before := heapAlloc()
	gc0 := gcCPU()
	start := time.Now()
	for i := range n {
		c.Set(ctx, keys[i], entries[i])
	}
	fill := time.Since(start)
	gcFill := gcCPU().sub(gc0)
	after := heapAlloc()
	if c.Len() != n {
		return fmt.Errorf("the tier holds %d entries after %d Sets within a bound of %d", c.Len(), n, n)
	}
	perEntry := float64(after-before) / float64(n)

	// Serve: Gets on every core, one Set in 64 replacing an entry.
	var (
		stop atomic.Bool
		ops  atomic.Int64
		wg   sync.WaitGroup
	)
	gc1 := gcCPU()
	time.AfterFunc(e.o.duration, func() { stop.Store(true) })
	for wk := range runtime.NumCPU() {
		wg.Go(func() {
			k := 0
			for i := wk * 7919; !stop.Load(); i += 104729 {
				j := i % n
				if i%64 == 0 {
					c.Set(ctx, keys[j], entries[j])
				} else if _, ok := c.Get(ctx, keys[j]); !ok {
					panic("memory tier lost an entry within its bound")
				}
				k++
			}
			ops.Add(int64(k))
		})
	}
	wg.Wait()
	gcServe := gcCPU().sub(gc1)
	runtime.KeepAlive(keys)
	runtime.KeepAlive(entries)
	fmt.Fprintf(w, "memory: %d entries (bound %d): %.0f bytes/entry of bookkeeping beyond the 32-byte key and %d-byte token (heap %.0f MB for the tier)\n",
		n, n, perEntry, tokenLen, float64(after-before)/1e6)
	fmt.Fprintf(w, "memory: fill %s (%.0f ns/Set), GC CPU fraction while filling %.3f (%d GC cycles)\n",
		fill.Round(time.Millisecond), float64(fill)/float64(n), gcFill.fraction(), gcFill.cycles)
	fmt.Fprintf(w, "memory: serving %d ops in %s on %d goroutines (%.0f ns/op wall), GC CPU fraction while serving %.3f (%d GC cycles)\n",
		ops.Load(), e.o.duration, runtime.NumCPU(), float64(e.o.duration)/float64(max(ops.Load(), 1))*float64(runtime.NumCPU()), gcServe.fraction(), gcServe.cycles)
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
