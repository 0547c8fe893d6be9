package exchange

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/clocktest"
)

func TestBreakerStates(t *testing.T) {
	clock := clocktest.At(rtNow)
	b := newBreaker(clock.Now, 3, time.Second, 4*time.Second)
	var changes []string
	b.onChange = func(from, to breakerState, backoff time.Duration) {
		changes = append(changes, from.String()+">"+to.String()+"@"+backoff.String())
	}
	call := func(r breakerResult) error {
		t.Helper()
		tk, err := b.allow()
		if err != nil {
			return err
		}
		tk.done(r)
		return nil
	}

	// Failures below the threshold, broken by a success, never open it.
	for _, r := range []breakerResult{breakerFailure, breakerFailure, breakerSuccess, breakerFailure, breakerFailure, breakerUnknown} {
		if err := call(r); err != nil {
			t.Fatalf("closed breaker refused a call: %v", err)
		}
	}
	if b.current() != breakerClosed {
		t.Fatalf("state %s after non-consecutive failures", b.current())
	}
	// The third consecutive failure opens it.
	if err := call(breakerFailure); err != nil {
		t.Fatal(err)
	}
	if b.current() != breakerOpen {
		t.Fatalf("state %s after 3 consecutive failures, want open", b.current())
	}
	if err := call(breakerSuccess); !errors.Is(err, errCircuitOpen) {
		t.Fatalf("open breaker admitted a call: %v", err)
	}

	// After the cooldown: one probe, the others refused while it runs.
	clock.Set(rtNow.Add(time.Second))
	probe, err := b.allow()
	if err != nil || !probe.probe {
		t.Fatalf("no probe after the cooldown: %v", err)
	}
	if _, err := b.allow(); !errors.Is(err, errCircuitOpen) {
		t.Fatalf("a second call got through while the probe runs: %v", err)
	}
	// A failed probe opens it for twice as long.
	probe.done(breakerFailure)
	clock.Set(rtNow.Add(2500 * time.Millisecond))
	if _, err := b.allow(); !errors.Is(err, errCircuitOpen) {
		t.Fatalf("admitted 1.5s into a 2s back-off (opened at 1s): %v", err)
	}
	// A probe that says nothing (caller gone) lets the next caller probe.
	clock.Set(rtNow.Add(3 * time.Second))
	probe, err = b.allow()
	if err != nil {
		t.Fatal(err)
	}
	probe.done(breakerUnknown)
	probe, err = b.allow()
	if err != nil || !probe.probe {
		t.Fatalf("no new probe after an inconclusive one: %v", err)
	}
	// Failed probes double the back-off up to the maximum.
	probe.done(breakerFailure) // 4s
	clock.Set(rtNow.Add(7 * time.Second))
	probe, _ = b.allow()
	probe.done(breakerFailure) // still 4s: the maximum
	clock.Set(rtNow.Add(11 * time.Second))
	probe, err = b.allow()
	if err != nil {
		t.Fatalf("refused after the maximum back-off: %v", err)
	}
	// A successful probe closes it, and the back-off starts over.
	probe.done(breakerSuccess)
	if b.current() != breakerClosed || b.backoff != time.Second {
		t.Fatalf("state %s backoff %s after a good probe", b.current(), b.backoff)
	}
	want := []string{"closed>open@1s", "open>half-open@1s", "half-open>open@2s", "open>half-open@2s",
		"half-open>open@4s", "open>half-open@4s", "half-open>open@4s", "open>half-open@4s", "half-open>closed@1s"}
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Errorf("change %d = %s, want %s", i, changes[i], want[i])
		}
	}
}

// TestRemoteBreakerFailsFast: a dead STS opens the breaker, after which
// exchanges fail at once without calling it; after the cooldown one probe
// goes through and its success closes the breaker.
func TestRemoteBreakerFailsFast(t *testing.T) {
	var mu sync.Mutex
	up := false
	sts := newRTSTS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		ok := up
		mu.Unlock()
		if ok {
			rtOK(60)(w, r, n)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	env := newRTEnv(t, rtConfig(sts.URL()), func(o *RemoteOptions) {
		o.MaxAttempts = 1
		o.BreakerThreshold = 3
		o.BreakerCooldown = 10 * time.Second
	})
	for i := range 3 {
		if _, err := env.remote.Exchange(context.Background(), rtRequest()); kindOf(err) != kindUnavailable {
			t.Fatalf("exchange %d: %v", i, err)
		}
	}
	for range 5 {
		_, err := env.remote.Exchange(context.Background(), rtRequest())
		if kindOf(err) != kindUnavailable || !errors.Is(err, errCircuitOpen) {
			t.Fatalf("error %v, want unavailable because the circuit is open", err)
		}
	}
	if n := len(sts.Calls()); n != 3 {
		t.Fatalf("%d STS calls; the open breaker should have kept it at 3", n)
	}
	mu.Lock()
	up = true
	mu.Unlock()
	env.clock.Set(rtNow.Add(10 * time.Second))
	if _, err := env.remote.Exchange(context.Background(), rtRequest()); err != nil {
		t.Fatalf("probe exchange: %v", err)
	}
	if _, err := env.remote.Exchange(context.Background(), rtRequest()); err != nil {
		t.Fatalf("after a good probe: %v", err)
	}
	if n := len(sts.Calls()); n != 5 {
		t.Errorf("%d STS calls, want 5", n)
	}
}

// TestRemoteRejectionsDoNotOpenTheBreaker: a 4xx is an answer; a flood of
// bad tokens must not make good ones fail.
func TestRemoteRejectionsDoNotOpenTheBreaker(t *testing.T) {
	sts := newRTSTS(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		rtJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
	})
	env := newRTEnv(t, rtConfig(sts.URL()), func(o *RemoteOptions) { o.BreakerThreshold = 2 })
	for range 10 {
		if _, err := env.remote.Exchange(context.Background(), rtRequest()); kindOf(err) != kindRejected {
			t.Fatalf("error %v, want a rejection", err)
		}
	}
	if env.remote.breaker.current() != breakerClosed || len(sts.Calls()) != 10 {
		t.Fatalf("breaker %s after %d rejections", env.remote.breaker.current(), len(sts.Calls()))
	}
}

// TestRemoteConcurrentFirstRequestsOneSTSCall: 200 concurrent first
// requests for the same key through the caching exchanger make exactly
// one STS call, and all get its token.
func TestRemoteConcurrentFirstRequestsOneSTSCall(t *testing.T) {
	release := make(chan struct{})
	sts := newRTSTS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		<-release
		rtOK(60)(w, r, n)
	})
	env := newRTEnv(t, rtConfig(sts.URL()))
	mem, err := cache.NewMemory(1000, env.clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCaching(env.remote, CachingOptions{Cache: mem, RefreshBefore: 10 * time.Second, Clock: env.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var joined sync.WaitGroup
	joined.Add(n)
	c.testHookJoined = joined.Done
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			res, err := c.Exchange(context.Background(), rtRequest("orders:read"))
			if err == nil && res.AccessToken != rtIssued {
				err = errors.New("wrong token " + res.AccessToken)
			}
			errs <- err
		})
	}
	joined.Wait() // every caller is in flight before the STS answers
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls := len(sts.Calls()); calls != 1 {
		t.Fatalf("%d concurrent first requests made %d STS calls, want 1", n, calls)
	}
}
