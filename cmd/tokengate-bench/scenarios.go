package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// env is what every scenario shares: the dev IdP, the backend, both proxies
// and a client (a keep-alive pool) for each.
type env struct {
	o       options
	dir     string
	idp     *devIdP
	backend *backend
	bare    *target
	tg      *target
	bareC   *client
	tgC     *client
	otlp    *otlpSink // nil without -tracing
	token   string    // the one umbrella token of the hit scenarios
	closers []func()
}

func newEnv(o options) (e *env, err error) {
	e = &env{o: o}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "tokengate-bench-"); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { os.RemoveAll(e.dir) })
	if o.tokengate == "" {
		if o.tokengate, err = buildTokengate(e.dir); err != nil {
			return nil, err
		}
		e.o.tokengate = o.tokengate
	}
	if e.idp, err = newDevIdP(); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.idp.close)
	if e.backend, err = newBackend(); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.backend.close)
	if e.bare, err = startBare(e.backend.url); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.bare.close)
	if o.tracing != "" {
		if e.otlp, err = startOTLPSink(); err != nil {
			return nil, err
		}
		e.closers = append(e.closers, e.otlp.close)
	}
	if e.tg, err = startTokengate(tokengateOptions{binary: o.tokengate, upstream: e.backend.url, idp: e.idp, logLevel: o.logLevel, dir: e.dir,
		grpcUpstream: e.backend.grpcURL, otlp: e.otlp.baseURL(), ratio: o.tracing}); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.tg.close)
	e.bareC, e.tgC = newClient(e.bare.url, o.conns), newClient(e.tg.url, o.conns)
	if e.token, err = e.idp.mint("bench-user"); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// scenario is one named measurement.
type scenario struct {
	about string
	run   func(*env, io.Writer) error
}

var scenarios = map[string]scenario{
	"hit": {"cache hit: one umbrella token, one route, small response", func(e *env, w io.Writer) error {
		return e.compare(w, "hit", constant(routePath(0)+"/x", e.token), nil)
	}},
	"stream": {"cache hit, 1 MiB streamed response", func(e *env, w io.Writer) error {
		return e.compare(w, "stream", constant(routePath(0)+"/big", e.token), nil)
	}},
	"spread":      {fmt.Sprintf("cache hit over %d routes x -spread-tokens distinct tokens (every pair warmed first)", benchRoutes), runSpread},
	"miss":        {"miss: a fresh umbrella token on every tokengate request (pre-minted), local ES256 signing; crypto floor measured in the same run", runMiss},
	"redis":       {"Redis-tier hit (memory tier cold)", runRedis},
	"memory":      {"memory tier: bytes per entry and GC CPU while filling and serving", runMemory},
	"forwardauth": {"forward-auth decisions (cache hit) on authz.listen vs full proxied requests through the bare proxy", runForwardAuth},
	"oauth2proxy": {"forward-auth decisions (cache hit) vs oauth2-proxy's /oauth2/auth validating the same JWT (only with -oauth2-proxy)", runOAuth2Proxy},
	"tracing":     {"cache hit with tracing on at -tracing-ratio (spans to a local OTLP receiver) vs tracing off, two tokengate processes", runTracing},
	"grpc":        {"cache hit, gRPC unary on the wire (h2c both sides, POST application/grpc, grpc-status trailer) vs a bare h2c ReverseProxy", runGRPC},
}

// grpcPrefix is the grpc scenario's route (a gRPC service's path).
const grpcPrefix = "/bench.v1.Bench"

// runGRPC compares tokengate with a bare h2c reverse proxy (its own child
// process) on gRPC-shaped unary calls: clients and the upstream speak the
// gRPC wire format over cleartext HTTP/2, so the figures are the proxies'
// own, not a gRPC library's.
func runGRPC(e *env, w io.Writer) error {
	bare, err := startBare("h2c://" + strings.TrimPrefix(e.backend.grpcURL, "http://"))
	if err != nil {
		return err
	}
	e.closers = append(e.closers, bare.close)
	ref := side{"bare-h2c", bare, newGRPCClient(bare.url, e.o.conns)}
	test := side{"tokengate", e.tg, newGRPCClient(e.tg.url, e.o.conns)}
	load := constant(grpcPrefix+"/Unary", e.token)
	_, err = e.compareSides(w, "grpc", ref, test, load, func() (workload, error) { return load, nil }, nil)
	return err
}

func scenarioNames() []string {
	var n []string
	for k := range scenarios {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// constant sends the same path and token on every request.
func constant(path, token string) workload {
	auth := "Bearer " + token
	return workload{next: func(int, int) (string, string, bool) { return path, auth, true }}
}

// extra is a third measurement taken each round next to the two proxies
// (the crypto floor of the miss scenario). It returns CPU time per op.
type extra struct {
	name string
	run  func() (time.Duration, error)
}

// roundSet is one round: a result per target (and the extra's CPU per op).
// bare is the reference side and tg the side under test.
type roundSet struct {
	bare, tg roundResult
	extra    time.Duration
}

// side is one target under load with its client.
type side struct {
	name string
	t    *target
	c    *client
}

func (e *env) bareSide() side { return side{"bare", e.bare, e.bareC} }
func (e *env) tgSide() side   { return side{"tokengate", e.tg, e.tgC} }

// compare runs o.rounds rounds of bare and tokengate (tgLoad for tokengate,
// bareLoad for bare; prepare runs before each round, outside the
// measurement) alternating which goes first, and prints the table.
func (e *env) compareWith(w io.Writer, name string, bareLoad workload, tgLoad func() (workload, error), x *extra) ([]roundSet, error) {
	return e.compareSides(w, name, e.bareSide(), e.tgSide(), bareLoad, tgLoad, x)
}

// compareSides is compareWith for any two sides: ref is measured with
// refLoad, test with what testLoad returns before each round; the ratios
// are test/ref.
func (e *env) compareSides(w io.Writer, name string, ref, test side, bareLoad workload, tgLoad func() (workload, error), x *extra) ([]roundSet, error) {
	// Open the connections and warm both proxies before measuring.
	warm, err := tgLoad()
	if err != nil {
		return nil, err
	}
	if _, err := ref.c.run(ref.t.pid(), bareLoad, 200*time.Millisecond); err != nil {
		return nil, fmt.Errorf("warm-up %s: %w", ref.name, err)
	}
	if _, err := test.c.run(test.t.pid(), warm, 200*time.Millisecond); err != nil {
		return nil, fmt.Errorf("warm-up %s: %w", test.name, err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\ttarget\treq/s\tp50\tp99\tCPU/req\tbench CPU/req\t")
	var sets []roundSet
	for r := range e.o.rounds {
		var s roundSet
		tgl, err := tgLoad()
		if err != nil {
			return nil, err
		}
		runBare := func() error { s.bare, err = ref.c.run(ref.t.pid(), bareLoad, e.o.duration); return err }
		runTG := func() error { s.tg, err = test.c.run(test.t.pid(), tgl, e.o.duration); return err }
		order := []func() error{runBare, runTG}
		if r%2 == 1 {
			order = []func() error{runTG, runBare}
		}
		for _, f := range order {
			runtime.GC()
			if err := f(); err != nil {
				return nil, err
			}
		}
		if x != nil {
			if s.extra, err = x.run(); err != nil {
				return nil, err
			}
		}
		for _, t := range []struct {
			n string
			r roundResult
		}{{ref.name, s.bare}, {test.name, s.tg}} {
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t\n", r+1, t.n, t.r.rps(), us(t.r.p50), us(t.r.p99), us(t.r.cpuPerReq()),
				us(t.r.selfCPU/time.Duration(max(t.r.requests, 1))))
		}
		if x != nil {
			fmt.Fprintf(tw, "%d\t%s\t\t\t\t%s\t\t\n", r+1, x.name, us(s.extra))
		}
		sets = append(sets, s)
	}
	tw.Flush()
	med := func(f func(roundSet) float64) float64 {
		v := make([]float64, len(sets))
		for i, s := range sets {
			v[i] = f(s)
		}
		return median(v)
	}
	fmt.Fprintf(w, "%s medians: %s %.0f req/s p50 %s p99 %s CPU/req %s | %s %.0f req/s p50 %s p99 %s CPU/req %s\n", name, ref.name,
		med(func(s roundSet) float64 { return s.bare.rps() }), usf(med(func(s roundSet) float64 { return float64(s.bare.p50) })),
		usf(med(func(s roundSet) float64 { return float64(s.bare.p99) })), usf(med(func(s roundSet) float64 { return float64(s.bare.cpuPerReq()) })),
		test.name, med(func(s roundSet) float64 { return s.tg.rps() }), usf(med(func(s roundSet) float64 { return float64(s.tg.p50) })),
		usf(med(func(s roundSet) float64 { return float64(s.tg.p99) })), usf(med(func(s roundSet) float64 { return float64(s.tg.cpuPerReq()) })))
	fmt.Fprintf(w, "%s ratios %s/%s (median over rounds): throughput %.3f  p50 %.3f  p99 %.3f  CPU/req %.3f\n", name, test.name, ref.name,
		med(func(s roundSet) float64 { return s.tg.rps() / s.bare.rps() }),
		med(func(s roundSet) float64 { return float64(s.tg.p50) / float64(s.bare.p50) }),
		med(func(s roundSet) float64 { return float64(s.tg.p99) / float64(s.bare.p99) }),
		med(func(s roundSet) float64 { return float64(s.tg.cpuPerReq()) / float64(s.bare.cpuPerReq()) }))
	return sets, nil
}

// compare is compareWith for one workload shared by both proxies.
func (e *env) compare(w io.Writer, name string, load workload, x *extra) error {
	_, err := e.compareWith(w, name, load, func() (workload, error) { return load, nil }, x)
	return err
}

// spreadLoad mints -spread-tokens umbrella tokens and returns a warm-up workload that
// sends every (token, route) pair once and a load that walks the pairs in a
// fixed pseudo-random order, different per worker: a realistic key spread
// for the caches and the verify memo.
func (e *env) spreadLoad() (warm func() workload, load workload, err error) {
	tokens := e.o.spreadTokens
	toks, err := e.idp.mintMany("spread", tokens, runtime.NumCPU())
	if err != nil {
		return nil, workload{}, err
	}
	auths := make([]string, tokens)
	for i, t := range toks {
		auths[i] = "Bearer " + t
	}
	paths := make([]string, benchRoutes)
	for i := range paths {
		paths[i] = routePath(i) + "/x"
	}
	pairs := tokens * benchRoutes
	warm = func() workload {
		var next atomic.Int64
		return workload{next: func(int, int) (string, string, bool) {
			k := int(next.Add(1) - 1)
			if k >= pairs {
				return "", "", false
			}
			return paths[k%benchRoutes], auths[k/benchRoutes], true
		}}
	}
	load = workload{next: func(wk, i int) (string, string, bool) {
		k := (wk*7919 + i*104729) % pairs
		return paths[k%benchRoutes], auths[k/benchRoutes], true
	}}
	return warm, load, nil
}

// runSpread warms every (token, route) pair through tokengate, then
// compares it with the bare proxy over the spread.
func runSpread(e *env, w io.Writer) error {
	warm, load, err := e.spreadLoad()
	if err != nil {
		return err
	}
	if _, err := e.tgC.run(e.tg.pid(), warm(), time.Minute); err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	return e.compare(w, "spread", load, nil)
}

// runMiss gives tokengate a fresh umbrella token on every request; the bare
// proxy gets the same-sized token each time. The crypto floor (one ES256
// verify and one ES256 sign, in this process) is measured each round.
func runMiss(e *env, w io.Writer) error {
	round := 0
	tgLoad := func() (workload, error) {
		round++
		toks, err := e.idp.mintMany(fmt.Sprintf("miss%d", round), e.o.missTokens, runtime.NumCPU())
		if err != nil {
			return workload{}, err
		}
		var next atomic.Int64
		path := routePath(0) + "/x"
		return workload{next: func(int, int) (string, string, bool) {
			k := int(next.Add(1) - 1)
			if k >= len(toks) {
				return "", "", false // exhausted: raise -miss-tokens
			}
			return path, "Bearer " + toks[k], true
		}}, nil
	}
	fl, err := newFloor(e.idp)
	if err != nil {
		return err
	}
	sets, err := e.compareWith(w, "miss", constant(routePath(0)+"/x", e.token), tgLoad,
		&extra{name: "crypto floor (verify+sign)", run: func() (time.Duration, error) { return fl.measure(500 * time.Millisecond) }})
	if err != nil {
		return err
	}
	v := make([]float64, len(sets))
	for i, s := range sets {
		v[i] = float64(s.tg.cpuPerReq()) / float64(s.bare.cpuPerReq()+s.extra)
	}
	fmt.Fprintf(w, "miss: tokengate CPU/req over (bare proxy CPU/req + crypto floor CPU/op), median over rounds: %.3f\n", median(v))
	return nil
}

// median of v (v is reordered).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }
func usf(ns float64) string     { return fmt.Sprintf("%.1fµs", ns/1e3) }
