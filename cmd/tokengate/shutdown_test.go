package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestShutdownUnderLoadLosesNoRequest plays a rolling update: clients send
// requests without pause while SIGTERM arrives. Like a load balancer, they
// stop sending new requests once /readyz fails; until then, and through
// shutdown_delay, every request must succeed, and requests still running
// when the listener closes must complete.
func TestShutdownUnderLoadLosesNoRequest(t *testing.T) {
	idp := newE2EIdP(t)
	const slowN = 3
	release := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(slowN)
	slow := &e2eBackend{name: "orders"}
	slow.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release
		io.WriteString(w, "slow done")
	}))
	t.Cleanup(slow.srv.Close)
	// On failure, unblock the slow backend before it is closed (cleanups run last-in first-out).
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	fast := newE2EBackend(t, "inventory")

	delayAsked := make(chan time.Duration, 1)
	delayOver := make(chan time.Time)
	g := startE2EWith(t, idp, slow, fast, e2eOptions{
		edit: func(text, _ string) string {
			return strings.Replace(text, "  shutdown_grace: 10s\n", "  shutdown_grace: 10s\n  shutdown_delay: 7s\n", 1)
		},
		opts: func(o *serverOptions) {
			// The test decides when shutdown_delay is over: once the clients
			// have stopped, as they would have long before a real 7s.
			o.After = func(d time.Duration) <-chan time.Time {
				delayAsked <- d
				return delayOver
			}
		},
	})
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": []string{audOrders, audInventory}, "scope": "orders:read inventory:read"})
	send := func(path string) string {
		req, _ := http.NewRequest(http.MethodGet, g.srv.EdgeURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+umbrella)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}

	// Requests that will still be running when the listener closes.
	slowResults := make(chan string, slowN)
	for range slowN {
		go func() { slowResults <- send("/orders") }()
	}
	arrived.Wait()

	// Clients in a loop, until the "load balancer" takes the pod out.
	var (
		stop       atomic.Bool
		sent       atomic.Int64
		afterDrain atomic.Int64
		mu         sync.Mutex
		failures   []string
		clients    sync.WaitGroup
	)
	t.Cleanup(func() { stop.Store(true); clients.Wait() })
	for range 4 {
		clients.Go(func() {
			for !stop.Load() {
				draining := g.srv.proc.Draining.Load()
				if got := send("/inventory/x"); got != `200 {"backend":"inventory"}` {
					mu.Lock()
					failures = append(failures, got)
					mu.Unlock()
				}
				sent.Add(1)
				if draining {
					afterDrain.Add(1)
				}
			}
		})
	}
	waitFor(t, func() bool { return sent.Load() >= 20 })

	shutdown := make(chan error, 1)
	go func() { shutdown <- g.srv.Shutdown(context.Background()) }()
	select {
	case d := <-delayAsked:
		if d != 7*time.Second {
			t.Errorf("shutdown waited %s, want server.shutdown_delay 7s", d)
		}
	case err := <-shutdown:
		t.Fatalf("shutdown returned (%v) without waiting for shutdown_delay", err)
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown did not wait for shutdown_delay")
	}
	// Readiness fails first, while the edge still serves.
	waitFor(t, func() bool {
		resp, _ := get(t, g.srv.AdminURL()+"/readyz")
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	waitFor(t, func() bool { return afterDrain.Load() >= 20 })
	stop.Store(true)
	clients.Wait()
	close(delayOver)

	// The listener closes while the slow requests are still running...
	edgeAddr := strings.TrimPrefix(g.srv.EdgeURL(), "http://")
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", edgeAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-shutdown:
		t.Fatalf("shutdown returned (%v) before the in-flight requests finished", err)
	default:
	}
	// ...and they complete.
	releaseOnce()
	for range slowN {
		if got := <-slowResults; got != "200 slow done" {
			t.Errorf("an in-flight request during shutdown got %q", got)
		}
	}
	if err := <-shutdown; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	for _, f := range failures {
		t.Errorf("a request failed during shutdown: %s", f)
	}
	t.Logf("%d requests sent, %d of them after readiness failed", sent.Load(), afterDrain.Load())
}

// TestSecondSignalCutsShutdownShort: while tokengate waits out
// shutdown_delay and in-flight requests, a second SIGTERM ends the wait.
func TestSecondSignalCutsShutdownShort(t *testing.T) {
	idp := newE2EIdP(t)
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := &e2eBackend{name: "orders"}
	slow.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	t.Cleanup(slow.srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: cleanups are last-in first-out
	g := startE2EWith(t, idp, slow, newE2EBackend(t, "inventory"), e2eOptions{
		edit: func(text, _ string) string {
			return strings.Replace(text, "  shutdown_grace: 10s\n", "  shutdown_grace: 1h\n  shutdown_delay: 1h\n", 1)
		},
	})
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	go func() { // still running when the signals come; its outcome does not matter
		req, _ := http.NewRequest(http.MethodGet, g.srv.EdgeURL()+"/orders", nil)
		req.Header.Set("Authorization", "Bearer "+umbrella)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-arrived

	signals := make(chan os.Signal, 2)
	done := make(chan error, 1)
	go func() { done <- shutdownUntilSignal(g.srv, signals, g.srv.proc.Logger) }()
	waitFor(t, func() bool { return g.srv.proc.Draining.Load() })
	signals <- syscall.SIGHUP // ignored while shutting down
	signals <- syscall.SIGTERM
	select {
	case err := <-done:
		if err == nil {
			t.Error("a shutdown cut short reported success although a request was still running")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a second SIGTERM did not end the shutdown")
	}
}
