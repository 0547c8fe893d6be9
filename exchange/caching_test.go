package exchange

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/clocktest"
)

var ctStart = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

const (
	ctTTL           = 5 * time.Minute
	ctRefreshBefore = 30 * time.Second
)

// ctClock is the shared test clock.
type ctClock = clocktest.Clock

// ctUpstream is a counting fake exchanger: call n mints "tok-n", valid for
// ctTTL capped at the umbrella's exp. hook, when set, runs first and may
// block or fail the call.
type ctUpstream struct {
	clock *ctClock

	mu          sync.Mutex
	calls       int
	fingerprint string
	hook        func(ctx context.Context, call int) error
}

func (u *ctUpstream) Exchange(ctx context.Context, req Request) (*Result, error) {
	u.mu.Lock()
	u.calls++
	n, hook := u.calls, u.hook
	u.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, n); err != nil {
			return nil, err
		}
	}
	exp := u.clock.Now().Add(ctTTL)
	if req.Subject.Claims.Expiry.Before(exp) {
		exp = req.Subject.Claims.Expiry
	}
	return &Result{
		AccessToken:     fmt.Sprintf("tok-%d", n),
		IssuedTokenType: TokenTypeAccessToken,
		TokenType:       "Bearer",
		Scope:           strings.Join(req.Scopes, " "),
		ExpiresAt:       exp,
	}, nil
}

func (u *ctUpstream) Fingerprint() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.fingerprint
}

func (u *ctUpstream) Calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls
}

func (u *ctUpstream) SetFingerprint(fp string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fingerprint = fp
}

func (u *ctUpstream) SetHook(h func(ctx context.Context, call int) error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hook = h
}

type ctEnv struct {
	c     *Caching
	up    *ctUpstream
	clock *ctClock
	mem   *cache.Memory
}

func ctSetup(t testing.TB, mutate ...func(*CachingOptions)) *ctEnv {
	t.Helper()
	clock := clocktest.At(ctStart)
	up := &ctUpstream{clock: clock, fingerprint: "key-1"}
	mem, err := cache.NewMemory(1000, clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := CachingOptions{Cache: mem, RefreshBefore: ctRefreshBefore, Clock: clock.Now}
	for _, m := range mutate {
		m(&opts)
	}
	c, err := NewCaching(up, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &ctEnv{c: c, up: up, clock: clock, mem: mem}
}

// ctRequest asks for aud and scopes with an umbrella token raw, which
// expires an hour after ctStart.
func ctRequest(raw, aud string, scopes ...string) Request {
	return ctRequestExp(raw, ctStart.Add(time.Hour), aud, scopes...)
}

func ctRequestExp(raw string, exp time.Time, aud string, scopes ...string) Request {
	tok := NewToken(raw, sha256.Sum256([]byte(raw)), Claims{Subject: "user-1", Expiry: exp}, "")
	return Request{Subject: tok, Audience: aud, Scopes: scopes}
}

func ctExchange(t testing.TB, c *Caching, req Request) string {
	t.Helper()
	res, err := c.Exchange(context.Background(), req)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return res.AccessToken
}

// ctWaitFlight returns once no exchange for req's key is under way (and so
// its result is stored): it joins the flight if there is one.
func ctWaitFlight(c *Caching, req Request) {
	<-c.flight.DoChan(c.cacheKey(req), func() (any, error) { return nil, nil })
}

func ctRefreshing(c *Caching) int {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	return len(c.refreshing)
}

func TestNewCachingOptions(t *testing.T) {
	mem, err := cache.NewMemory(10, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := &ctUpstream{clock: clocktest.At(ctStart)}
	tests := []struct {
		name    string
		up      Upstream
		opts    CachingOptions
		wantErr string
	}{
		{"defaults", up, CachingOptions{Cache: mem}, ""},
		{"32-byte secret", up, CachingOptions{Cache: mem, KeySecret: make([]byte, 32)}, ""},
		{"no upstream", nil, CachingOptions{Cache: mem}, "no upstream"},
		{"no cache", up, CachingOptions{}, "no cache"},
		{"negative refresh", up, CachingOptions{Cache: mem, RefreshBefore: -time.Second}, "refresh before"},
		{"negative timeout", up, CachingOptions{Cache: mem, ExchangeTimeout: -time.Second}, "exchange timeout"},
		{"short secret", up, CachingOptions{Cache: mem, KeySecret: []byte("short")}, "at least 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCaching(tt.up, tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewCaching: %v", err)
				}
				if c.timeout != defaultExchangeTimeout || c.now == nil || c.log == nil {
					t.Errorf("defaults not applied: timeout %s, clock set %v, logger set %v", c.timeout, c.now != nil, c.log != nil)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewCaching error = %v; want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCachingReuse(t *testing.T) {
	env := ctSetup(t)
	ctx := context.Background()
	first, err := env.c.Exchange(ctx, ctRequest("umbrella-a", "https://orders", "orders:read"))
	if err != nil {
		t.Fatal(err)
	}
	// Another Token value for the same raw token, scopes in a new slice.
	second, err := env.c.Exchange(ctx, ctRequest("umbrella-a", "https://orders", "orders:read"))
	if err != nil {
		t.Fatal(err)
	}
	if first.AccessToken != "tok-1" || second.AccessToken != "tok-1" {
		t.Errorf("tokens = %q, %q; want tok-1 twice", first.AccessToken, second.AccessToken)
	}
	if got := env.up.Calls(); got != 1 {
		t.Errorf("upstream calls = %d; want 1", got)
	}
	want := Result{AccessToken: "tok-1", IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer",
		Scope: "orders:read", ExpiresAt: ctStart.Add(ctTTL), Cached: true}
	if *second != want {
		t.Errorf("cached result = %+v; want %+v", *second, want)
	}
	if first.Cached {
		t.Error("the first result, exchanged for this request, says Cached")
	}
	// Results share nothing: a caller changing its copy changes nobody else's.
	if first == second {
		t.Fatal("two callers got the same *Result")
	}
	second.AccessToken = "tampered"
	if got := ctExchange(t, env.c, ctRequest("umbrella-a", "https://orders", "orders:read")); got != "tok-1" {
		t.Errorf("after a caller modified its result, token = %q; want tok-1", got)
	}
}

func TestCachingKeyCoversRequestAndFingerprint(t *testing.T) {
	base := ctRequest("umbrella-a", "https://orders", "a", "b")
	tests := []struct {
		name   string
		req    Request
		before func(env *ctEnv) // changes the upstream
	}{
		{"audience", ctRequest("umbrella-a", "https://billing", "a", "b"), nil},
		{"fewer scopes", ctRequest("umbrella-a", "https://orders", "a"), nil},
		{"no scopes", ctRequest("umbrella-a", "https://orders"), nil},
		{"scopes joined differently", ctRequest("umbrella-a", "https://orders", "a b"), nil},
		{"audience absorbs a scope", ctRequest("umbrella-a", "https://ordersa", "b"), nil},
		{"subject token", ctRequest("umbrella-b", "https://orders", "a", "b"), nil},
		{"fingerprint", base, func(env *ctEnv) { env.up.SetFingerprint("key-2") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := ctSetup(t)
			if got := ctExchange(t, env.c, base); got != "tok-1" {
				t.Fatalf("base token = %q; want tok-1", got)
			}
			if tt.before != nil {
				tt.before(env)
			}
			if got := ctExchange(t, env.c, tt.req); got != "tok-2" {
				t.Fatalf("token = %q; want a new exchange (tok-2)", got)
			}
			if got := ctExchange(t, env.c, tt.req); got != "tok-2" {
				t.Errorf("second token = %q; want tok-2 reused", got)
			}
			if tt.before != nil {
				env.up.SetFingerprint("key-1")
			}
			if got := ctExchange(t, env.c, base); got != "tok-1" {
				t.Errorf("base token afterwards = %q; want tok-1 (separate entries)", got)
			}
			if got := env.up.Calls(); got != 2 {
				t.Errorf("upstream calls = %d; want 2", got)
			}
		})
	}
}

func TestCachingConcurrentFirstRequests(t *testing.T) {
	for _, n := range []int{100, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			env := ctSetup(t)
			gate := make(chan struct{})
			env.up.SetHook(func(context.Context, int) error { <-gate; return nil })
			var joined sync.WaitGroup
			joined.Add(n)
			env.c.testHookJoined = joined.Done

			req := ctRequest("umbrella-a", "https://orders", "orders:read")
			tokens := make([]string, n)
			errs := make([]error, n)
			var done sync.WaitGroup
			for i := range n {
				done.Go(func() {
					res, err := env.c.Exchange(context.Background(), req)
					if err == nil {
						tokens[i] = res.AccessToken
					}
					errs[i] = err
				})
			}
			joined.Wait() // every caller is waiting on the exchange
			close(gate)
			done.Wait()
			for i := range n {
				if errs[i] != nil || tokens[i] != "tok-1" {
					t.Fatalf("caller %d: %q, %v; want tok-1", i, tokens[i], errs[i])
				}
			}
			if got := env.up.Calls(); got != 1 {
				t.Errorf("upstream calls = %d; want 1", got)
			}
		})
	}
}

func TestCachingFirstCallerCanceled(t *testing.T) {
	env := ctSetup(t)
	entered := make(chan struct{})
	gate := make(chan struct{})
	upstreamCtxErr := make(chan error, 1)
	env.up.SetHook(func(ctx context.Context, _ int) error {
		close(entered)
		<-gate
		upstreamCtxErr <- ctx.Err()
		return nil
	})
	req := ctRequest("umbrella-a", "https://orders")

	ctx, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := env.c.Exchange(ctx, req)
		firstErr <- err
	}()
	<-entered
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller error = %v; want context.Canceled", err)
	}

	joined := make(chan struct{})
	env.c.testHookJoined = func() { close(joined) }
	second := make(chan string, 1)
	go func() {
		res, err := env.c.Exchange(context.Background(), req)
		if err != nil {
			t.Errorf("second caller: %v", err)
			second <- ""
			return
		}
		second <- res.AccessToken
	}()
	<-joined
	close(gate)
	if got := <-second; got != "tok-1" {
		t.Errorf("second caller token = %q; want tok-1", got)
	}
	if err := <-upstreamCtxErr; err != nil {
		t.Errorf("upstream context ended with %v; want it alive after the first caller left", err)
	}
	if got := env.up.Calls(); got != 1 {
		t.Errorf("upstream calls = %d; want 1", got)
	}
}

func TestCachingCallerDeadline(t *testing.T) {
	env := ctSetup(t)
	gate := make(chan struct{})
	env.up.SetHook(func(context.Context, int) error { <-gate; return nil })
	req := ctRequest("umbrella-a", "https://orders")

	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := env.c.Exchange(ctx, req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v; want context.DeadlineExceeded", err)
	}
	// The exchange went on without the caller and its token is cached.
	close(gate)
	ctWaitFlight(env.c, req)
	if got := ctExchange(t, env.c, req); got != "tok-1" {
		t.Errorf("next token = %q; want tok-1 from the abandoned exchange", got)
	}
	if got := env.up.Calls(); got != 1 {
		t.Errorf("upstream calls = %d; want 1", got)
	}
}

func TestCachingUpstreamErrorNotCached(t *testing.T) {
	env := ctSetup(t)
	errSTS := errors.New("sts said no")
	env.up.SetHook(func(_ context.Context, call int) error {
		if call == 1 {
			return fmt.Errorf("%w: %w", ErrExchangeUnavailable, errSTS)
		}
		return nil
	})
	req := ctRequest("umbrella-a", "https://orders")
	_, err := env.c.Exchange(context.Background(), req)
	if !errors.Is(err, errSTS) || !errors.Is(err, ErrExchangeUnavailable) {
		t.Fatalf("error = %v; want it to wrap the upstream's errors", err)
	}
	if got := ctExchange(t, env.c, req); got != "tok-2" {
		t.Errorf("token after an error = %q; want tok-2 (errors are not cached)", got)
	}
}

func TestCachingExchangeTimeout(t *testing.T) {
	env := ctSetup(t, func(o *CachingOptions) { o.ExchangeTimeout = time.Millisecond })
	env.up.SetHook(func(ctx context.Context, _ int) error {
		<-ctx.Done() // an STS that never answers
		return ctx.Err()
	})
	_, err := env.c.Exchange(context.Background(), ctRequest("umbrella-a", "https://orders"))
	if !errors.Is(err, ErrExchangeUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v; want ErrExchangeUnavailable wrapping context.DeadlineExceeded", err)
	}
}

func TestCachingNilResult(t *testing.T) {
	env := ctSetup(t)
	c, err := NewCaching(ctNilUpstream{}, CachingOptions{Cache: env.mem})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exchange(context.Background(), ctRequest("u", "a")); !errors.Is(err, ErrExchangeUnavailable) {
		t.Fatalf("error = %v; want ErrExchangeUnavailable", err)
	}
}

type ctNilUpstream struct{}

func (ctNilUpstream) Exchange(context.Context, Request) (*Result, error) { return nil, nil }
func (ctNilUpstream) Fingerprint() string                                { return "" }

func TestCachingNoSubject(t *testing.T) {
	env := ctSetup(t)
	if _, err := env.c.Exchange(context.Background(), Request{Audience: "a"}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("error = %v; want ErrInvalidToken", err)
	}
	env.c.Invalidate(context.Background(), Request{Audience: "a"}) // must not panic
	if got := env.up.Calls(); got != 0 {
		t.Errorf("upstream calls = %d; want 0", got)
	}
}

func TestCachingRefreshBeforeBoundary(t *testing.T) {
	exp := ctStart.Add(ctTTL) // tok-1 expires here
	staleAt := exp.Add(-ctRefreshBefore)
	req := ctRequest("umbrella-a", "https://orders")

	t.Run("fresh before the early window", func(t *testing.T) {
		env := ctSetup(t)
		ctExchange(t, env.c, req)
		env.clock.Set(staleAt.Add(-ctRefreshBefore - time.Nanosecond))
		if got := ctExchange(t, env.c, req); got != "tok-1" {
			t.Errorf("token = %q; want tok-1", got)
		}
		if n := ctRefreshing(env.c); n != 0 || env.up.Calls() != 1 {
			t.Errorf("refreshes = %d, upstream calls = %d; want 0 and 1", n, env.up.Calls())
		}
	})
	t.Run("served just before", func(t *testing.T) {
		env := ctSetup(t)
		ctExchange(t, env.c, req)
		gate := make(chan struct{})
		env.up.SetHook(func(context.Context, int) error { <-gate; return nil })
		env.clock.Set(staleAt.Add(-time.Nanosecond))
		if got := ctExchange(t, env.c, req); got != "tok-1" {
			t.Errorf("token 1ns before the boundary = %q; want tok-1", got)
		}
		close(gate) // let the background refresh this started finish
		ctWaitFlight(env.c, req)
	})
	t.Run("exchanged at the boundary", func(t *testing.T) {
		env := ctSetup(t)
		ctExchange(t, env.c, req)
		env.clock.Set(staleAt)
		if got := ctExchange(t, env.c, req); got != "tok-2" {
			t.Errorf("token at the boundary = %q; want tok-2", got)
		}
		if got := env.up.Calls(); got != 2 {
			t.Errorf("upstream calls = %d; want 2", got)
		}
	})
	t.Run("zero refresh before serves to expiry", func(t *testing.T) {
		env := ctSetup(t, func(o *CachingOptions) { o.RefreshBefore = 0 })
		ctExchange(t, env.c, req)
		env.clock.Set(exp.Add(-time.Nanosecond))
		if got := ctExchange(t, env.c, req); got != "tok-1" || env.up.Calls() != 1 {
			t.Errorf("token = %q after %d calls; want tok-1 after 1", got, env.up.Calls())
		}
	})
}

func TestCachingCappedServedToExpiry(t *testing.T) {
	env := ctSetup(t)
	umbrellaExp := ctStart.Add(time.Minute) // sooner than ctTTL: the token is capped
	req := ctRequestExp("umbrella-a", umbrellaExp, "https://orders")
	res, err := env.c.Exchange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.ExpiresAt.Equal(umbrellaExp) {
		t.Fatalf("ExpiresAt = %s; want the umbrella's exp %s", res.ExpiresAt, umbrellaExp)
	}
	// Well inside RefreshBefore (and the early window), still served: an
	// exchange could not outlive the umbrella anyway.
	env.clock.Set(umbrellaExp.Add(-time.Nanosecond))
	if got := ctExchange(t, env.c, req); got != "tok-1" {
		t.Errorf("token 1ns before the umbrella's exp = %q; want tok-1", got)
	}
	if n := ctRefreshing(env.c); n != 0 || env.up.Calls() != 1 {
		t.Errorf("refreshes = %d, upstream calls = %d; want 0 and 1", n, env.up.Calls())
	}
	env.clock.Set(umbrellaExp)
	if got := ctExchange(t, env.c, req); got != "tok-2" {
		t.Errorf("token at the umbrella's exp = %q; want a new exchange (tok-2)", got)
	}
}

func TestCachingBackgroundRefresh(t *testing.T) {
	env := ctSetup(t)
	req := ctRequest("umbrella-a", "https://orders")
	ctExchange(t, env.c, req)

	entered := make(chan struct{})
	gate := make(chan struct{})
	env.up.SetHook(func(_ context.Context, call int) error {
		if call == 2 {
			close(entered)
			<-gate
		}
		return nil
	})
	// In the early window: [exp-2*RefreshBefore, exp-RefreshBefore).
	env.clock.Set(ctStart.Add(ctTTL - 2*ctRefreshBefore))
	for i := range 10 {
		if got := ctExchange(t, env.c, req); got != "tok-1" {
			t.Fatalf("request %d in the early window = %q; want tok-1 served at once", i, got)
		}
	}
	<-entered // the refresh reached the upstream, once
	if got := env.up.Calls(); got != 2 {
		t.Fatalf("upstream calls = %d; want 2 (one refresh for 10 requests)", got)
	}
	close(gate)
	ctWaitFlight(env.c, req)
	if got := ctExchange(t, env.c, req); got != "tok-2" {
		t.Errorf("token after the refresh = %q; want tok-2", got)
	}
	if got := env.up.Calls(); got != 2 {
		t.Errorf("upstream calls = %d; want 2", got)
	}
}

// ctLogHandler sends every record to records.
type ctLogHandler struct{ records chan slog.Record }

func (h ctLogHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h ctLogHandler) Handle(_ context.Context, r slog.Record) error {
	h.records <- r.Clone()
	return nil
}
func (h ctLogHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h ctLogHandler) WithGroup(string) slog.Handler      { return h }

func TestCachingBackgroundRefreshFailureKeepsEntry(t *testing.T) {
	logs := ctLogHandler{records: make(chan slog.Record, 10)}
	env := ctSetup(t, func(o *CachingOptions) { o.Logger = slog.New(logs) })
	const raw = "umbrella-secret-value"
	req := ctRequest(raw, "https://orders")
	ctExchange(t, env.c, req)
	env.up.SetHook(func(_ context.Context, call int) error {
		if call == 2 {
			return fmt.Errorf("%w: sts down", ErrExchangeUnavailable)
		}
		return nil
	})
	env.clock.Set(ctStart.Add(ctTTL - 2*ctRefreshBefore))
	if got := ctExchange(t, env.c, req); got != "tok-1" {
		t.Fatalf("token = %q; want tok-1", got)
	}
	rec := <-logs.records
	var text strings.Builder
	text.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool { text.WriteString(" " + a.String()); return true })
	if rec.Level != slog.LevelWarn || !strings.Contains(text.String(), "sts down") {
		t.Errorf("log = %s %q; want a warning naming the error", rec.Level, text.String())
	}
	if strings.Contains(text.String(), raw) {
		t.Errorf("log %q contains the umbrella token", text.String())
	}
	// The entry stays, and the next request in the window tries again.
	if got := ctExchange(t, env.c, req); got != "tok-1" {
		t.Errorf("token after a failed refresh = %q; want tok-1 (entry kept)", got)
	}
	ctWaitFlight(env.c, req)
	if got := ctExchange(t, env.c, req); got != "tok-3" {
		t.Errorf("token after the retried refresh = %q; want tok-3", got)
	}
}

func TestCachingInvalidate(t *testing.T) {
	env := ctSetup(t)
	req := ctRequest("umbrella-a", "https://orders", "orders:read")
	other := ctRequest("umbrella-a", "https://billing")
	ctExchange(t, env.c, req)
	ctExchange(t, env.c, other)
	env.c.Invalidate(context.Background(), req)
	if got := ctExchange(t, env.c, req); got != "tok-3" {
		t.Errorf("token after Invalidate = %q; want a new exchange (tok-3)", got)
	}
	if got := ctExchange(t, env.c, other); got != "tok-2" {
		t.Errorf("other entry after Invalidate = %q; want tok-2 untouched", got)
	}
}

// ctRecordingCache records every key it is given.
type ctRecordingCache struct {
	cache.Store
	mu   sync.Mutex
	keys []string
}

func (r *ctRecordingCache) record(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, k)
}

func (r *ctRecordingCache) Find(ctx context.Context, k string, how cache.Lookup) (cache.Entry, bool) {
	r.record(k)
	return r.Store.Find(ctx, k, how)
}

func (r *ctRecordingCache) Set(ctx context.Context, k string, e cache.Entry) {
	r.record(k)
	r.Store.Set(ctx, k, e)
}

func (r *ctRecordingCache) Delete(ctx context.Context, k string) {
	r.record(k)
	r.Store.Delete(ctx, k)
}

func TestCachingKeyHidesToken(t *testing.T) {
	const raw = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"
	mem, err := cache.NewMemory(10, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &ctRecordingCache{Store: mem}
	secret := []byte("0123456789abcdef0123456789abcdef")
	up := &ctUpstream{clock: clocktest.At(time.Now()), fingerprint: "key-1"}
	c, err := NewCaching(up, CachingOptions{Cache: rec, KeySecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	req := ctRequest(raw, "https://orders", "orders:read")
	ctExchange(t, c, req)
	c.Invalidate(context.Background(), req)
	hash := req.Subject.Hash
	if len(rec.keys) == 0 {
		t.Fatal("no key reached the cache")
	}
	for _, k := range rec.keys {
		if len(k) != sha256.Size {
			t.Errorf("key is %d bytes; want %d", len(k), sha256.Size)
		}
		for _, part := range []string{raw, raw[:16], raw[len(raw)-16:], string(hash[:8]), "https://orders", "orders:read"} {
			if strings.Contains(k, part) {
				t.Errorf("key %x contains %q", k, part)
			}
		}
	}
	// The key is keyed: another secret gives another key.
	c2, err := NewCaching(up, CachingOptions{Cache: rec, KeySecret: []byte("another secret of 32 bytes......")})
	if err != nil {
		t.Fatal(err)
	}
	if c.cacheKey(req) == c2.cacheKey(req) {
		t.Error("two key secrets gave the same cache key")
	}
	// The caller's secret slice is copied.
	secret[0] ^= 0xff
	if rec.keys[0] != c.cacheKey(req) {
		t.Error("changing the caller's secret slice changed the cache key")
	}
}

func TestCachingKeyStable(t *testing.T) {
	env := ctSetup(t)
	req := ctRequest("umbrella-a", "https://orders", "a", "b")
	want := env.c.cacheKey(req)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if got := env.c.cacheKey(req); got != want {
					t.Errorf("cacheKey changed between calls: %x != %x", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	// A request too big for a pooled buffer gives stable keys too, and
	// leaves the pool usable.
	huge := ctRequest("umbrella-a", "https://orders", strings.Repeat("s", 2*cacheKeyMaxPooledBuf))
	if k1, k2 := env.c.cacheKey(huge), env.c.cacheKey(huge); k1 != k2 || k1 == want {
		t.Errorf("huge request keys %x, %x; want equal and distinct from %x", k1, k2, want)
	}
	if got := env.c.cacheKey(req); got != want {
		t.Errorf("cacheKey after a huge request = %x; want %x", got, want)
	}
}

func BenchmarkCachingHit(b *testing.B) {
	env := ctSetup(b)
	req := ctRequest(strings.Repeat("u", 900), "https://orders.example.com", "orders:read", "orders:write")
	ctExchange(b, env.c, req)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.c.Exchange(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	if got := env.up.Calls(); got != 1 {
		b.Fatalf("upstream calls = %d; want 1", got)
	}
}

func BenchmarkCachingKey(b *testing.B) {
	env := ctSetup(b)
	req := ctRequest("umbrella-a", "https://orders.example.com", "orders:read", "orders:write")
	b.ReportAllocs()
	for b.Loop() {
		_ = env.c.cacheKey(req)
	}
}
