package sts

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/exchange"
)

// rtBreakerCooldown is the open period of the breaker tests: gobreaker
// keeps real time, so it is short, and long enough that the calls made
// while it is open finish well within it.
const rtBreakerCooldown = 300 * time.Millisecond

// rtEventually waits (up to 10s) for cond: a state that real time brings
// about, such as the end of the breaker's open period.
func rtEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRemoteBreakerStates walks the STS breaker through its states with
// real calls: failures below the threshold, broken by an answer, never open
// it, nor does a caller giving up; the threshold's consecutive failure
// opens it; an open breaker refuses without calling the STS; after the
// cooldown one probe goes through while the others are refused; a failed
// probe opens it again; a probe whose caller gave up lets the next caller
// probe; a good probe closes it. Every change is logged.
func TestRemoteBreakerStates(t *testing.T) {
	type step int
	const (
		fail step = iota
		answer
		hang // wait until the caller gives up
		ok
	)
	var mu sync.Mutex
	var script []step
	next := func() step {
		mu.Lock()
		defer mu.Unlock()
		if len(script) == 0 {
			return ok
		}
		s := script[0]
		script = script[1:]
		return s
	}
	arrived := make(chan struct{}, 10)
	release := make(chan struct{})
	sts := newRTSTS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch next() {
		case fail:
			w.WriteHeader(http.StatusServiceUnavailable)
		case answer:
			rtJSON(w, http.StatusForbidden, map[string]string{"error": "access_denied"})
		case hang:
			arrived <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-release:
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		default:
			rtOK(60)(w, r, n)
		}
	})
	env := newRTEnv(t, rtConfig(sts.URL()), func(o *RemoteOptions) {
		o.MaxAttempts = 1
		o.BreakerThreshold = 3
		o.BreakerCooldown = rtBreakerCooldown
		o.BreakerMaxCooldown = 2 * rtBreakerCooldown
	})
	exchange := func(ctx context.Context) error {
		_, err := env.remote.Exchange(ctx, rtRequest())
		return err
	}
	// gaveUp runs an exchange whose caller gives up once the STS has it.
	gaveUp := func() {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- exchange(ctx) }()
		<-arrived
		cancel()
		if err := <-done; err == nil {
			t.Fatal("a cancelled exchange succeeded")
		}
	}
	calls := func() int { return len(sts.Calls()) }
	closed := func() bool { return env.remote.breaker.state() == gobreaker.StateClosed }

	// Failures below the threshold, broken by an answer, never open it;
	// nor does a caller that gave up.
	mu.Lock()
	script = []step{fail, fail, answer, fail, fail, hang}
	mu.Unlock()
	for range 5 {
		_ = exchange(context.Background())
	}
	gaveUp()
	if !closed() {
		t.Fatalf("state %s after non-consecutive failures", env.remote.breaker.state())
	}
	// The third consecutive failure opens it.
	mu.Lock()
	script = []step{fail}
	mu.Unlock()
	_ = exchange(context.Background())
	if env.remote.breaker.state() != gobreaker.StateOpen {
		t.Fatalf("state %s after 3 consecutive failures, want open", env.remote.breaker.state())
	}
	before := calls()
	if err := exchange(context.Background()); !errors.Is(err, errCircuitOpen) {
		t.Fatalf("open breaker admitted a call: %v", err)
	}
	if calls() != before {
		t.Fatal("the open breaker called the STS")
	}

	// After the cooldown: one probe, the others refused while it runs.
	rtEventually(t, "the end of the open period", func() bool { return env.remote.Degraded(context.Background()) == nil })
	mu.Lock()
	script = []step{hang}
	mu.Unlock()
	probeErr := make(chan error, 1)
	go func() { probeErr <- exchange(context.Background()) }()
	<-arrived
	if err := exchange(context.Background()); !errors.Is(err, errCircuitOpen) || !strings.Contains(err.Error(), "probe") {
		t.Fatalf("a second call got through while the probe runs: %v", err)
	}
	// A failed probe opens it again, for twice as long.
	beforeReopen := time.Now()
	release <- struct{}{}
	if err := <-probeErr; kindOf(err) != kindUnavailable {
		t.Fatalf("failed probe: %v", err)
	}
	if env.remote.breaker.state() != gobreaker.StateOpen {
		t.Fatalf("state %s after a failed probe, want open", env.remote.breaker.state())
	}
	if err := exchange(context.Background()); !errors.Is(err, errCircuitOpen) {
		t.Fatalf("admitted right after a failed probe: %v", err)
	}
	rtEventually(t, "the end of the open period", func() bool { return env.remote.Degraded(context.Background()) == nil })
	if open := time.Since(beforeReopen); open < 2*rtBreakerCooldown {
		t.Errorf("open for %s after a failed probe, want at least %s", open, 2*rtBreakerCooldown)
	}
	// A probe that says nothing (caller gone) lets the next caller probe.
	mu.Lock()
	script = []step{hang, fail}
	mu.Unlock()
	gaveUp()
	// Failed probes double the back-off up to the maximum (2 cooldowns here).
	if err := exchange(context.Background()); kindOf(err) != kindUnavailable || errors.Is(err, errCircuitOpen) {
		t.Fatalf("no new probe after an inconclusive one: %v", err)
	}
	rtEventually(t, "the end of the open period", func() bool { return env.remote.Degraded(context.Background()) == nil })
	// A successful probe closes it, and the back-off starts over.
	if err := exchange(context.Background()); err != nil {
		t.Fatalf("good probe: %v", err)
	}
	if !closed() {
		t.Fatalf("state %s after a good probe", env.remote.breaker.state())
	}
	c, c2 := rtBreakerCooldown.String(), (2 * rtBreakerCooldown).String()
	want := []string{"closed>open@" + c, "open>half-open@" + c, "half-open>open@" + c2, "open>half-open@" + c2,
		"half-open>open@" + c2, "open>half-open@" + c2, "half-open>closed@" + c}
	var changes []string
	for _, line := range strings.Split(env.logs.String(), "\n") {
		var l struct{ Msg, From, Backoff string }
		if json.Unmarshal([]byte(line), &l) != nil || !strings.HasPrefix(l.Msg, "sts circuit breaker ") {
			continue
		}
		changes = append(changes, l.From+">"+strings.TrimPrefix(l.Msg, "sts circuit breaker ")+"@"+l.Backoff)
	}
	if !slices.Equal(changes, want) {
		t.Errorf("state changes %v, want %v", changes, want)
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
		o.BreakerCooldown = rtBreakerCooldown
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
	rtEventually(t, "the end of the open period", func() bool { return env.remote.Degraded(context.Background()) == nil })
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
// bad tokens (invalid_grant), refused audiences (access_denied) or
// tokengate's own configuration errors (invalid_client) must not make good
// requests fail fast.
func TestRemoteRejectionsDoNotOpenTheBreaker(t *testing.T) {
	for _, code := range []string{"invalid_grant", "access_denied", "invalid_client"} {
		t.Run(code, func(t *testing.T) {
			sts := newRTSTS(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				rtJSON(w, http.StatusBadRequest, map[string]string{"error": code})
			})
			env := newRTEnv(t, rtConfig(sts.URL()), func(o *RemoteOptions) { o.BreakerThreshold = 2 })
			for range 10 {
				if _, err := env.remote.Exchange(context.Background(), rtRequest()); err == nil || errors.Is(err, errCircuitOpen) {
					t.Fatalf("error %v, want the STS's answer", err)
				}
			}
			if env.remote.breaker.state() != gobreaker.StateClosed || len(sts.Calls()) != 10 {
				t.Fatalf("breaker %s after %d rejections", env.remote.breaker.state(), len(sts.Calls()))
			}
		})
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
	const n = 200
	var joined sync.WaitGroup
	joined.Add(n)
	c, err := exchange.NewCaching(env.remote, exchange.CachingOptions{Cache: mem, RefreshBefore: 10 * time.Second, Clock: env.clock.Now, OnJoin: joined.Done})
	if err != nil {
		t.Fatal(err)
	}
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
