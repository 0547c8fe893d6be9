package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// workload says what each request of a round carries. next returns the
// path and the Authorization value of the worker's i-th request, or
// ok=false when the workload is exhausted (the worker stops).
type workload struct {
	next func(worker, i int) (path, auth string, ok bool)
}

// roundResult is one target's measurements over one round.
type roundResult struct {
	requests int
	errors   int
	elapsed  time.Duration
	p50, p99 time.Duration
	cpu      time.Duration // the target process's user+system CPU time
	selfCPU  time.Duration // this process's: load generator and backend
}

func (r roundResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r roundResult) cpuPerReq() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.requests)
}

// client is a fixed pool of conns keep-alive connections to one target
// (or, for gRPC, conns workers multiplexed on one HTTP/2 connection, as a
// gRPC channel does).
type client struct {
	base  string
	rt    *http.Transport
	conns int
	grpc  bool // POST gRPC unary calls over h2c; success is grpc-status 0
	// success is the status of a good answer; 0 is 200 (oauth2-proxy's
	// /oauth2/auth answers 202).
	success int
}

// newGRPCClient makes gRPC-shaped unary calls over cleartext HTTP/2.
func newGRPCClient(base string, conns int) *client {
	c := newClient(base, conns)
	c.grpc = true
	c.rt.Protocols = new(http.Protocols)
	c.rt.Protocols.SetUnencryptedHTTP2(true)
	return c
}

// grpcRequest is one length-prefixed gRPC message (11 bytes).
var grpcRequest = append([]byte{0, 0, 0, 0, 6}, []byte("bench!")...)

func newClient(base string, conns int) *client {
	return &client{base: base, conns: conns, rt: &http.Transport{
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		MaxIdleConns:        conns,
		DisableCompression:  true,
		IdleConnTimeout:     5 * time.Minute,
	}}
}

// do sends one GET and drains the body; it returns whether the answer was
// the success status (200 unless set).
func (c *client) do(req *http.Request, path, auth string) (bool, error) {
	req.URL.Path = path
	req.Header["Authorization"] = []string{auth}
	if c.grpc {
		req.Body = io.NopCloser(bytes.NewReader(grpcRequest))
	}
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	want := c.success
	if want == 0 {
		want = http.StatusOK
	}
	ok := resp.StatusCode == want && err == nil
	if c.grpc {
		ok = ok && resp.Trailer.Get("Grpc-Status") == "0"
	}
	if !ok && err == nil {
		err = fmt.Errorf("%s%s: status %d (grpc-status %q), want %d", c.base, path, resp.StatusCode, resp.Trailer.Get("Grpc-Status"), want)
	}
	return ok, err
}

func (c *client) newRequest() *http.Request {
	if c.grpc {
		req, _ := http.NewRequest(http.MethodPost, c.base+"/", nil)
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		req.ContentLength = int64(len(grpcRequest))
		return req
	}
	req, _ := http.NewRequest(http.MethodGet, c.base+"/", nil)
	return req
}

// run drives the target with c.conns closed-loop workers for d (or until
// the workload is exhausted) and measures it.
func (c *client) run(pid int, w workload, d time.Duration) (roundResult, error) {
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		lats    = make([][]time.Duration, c.conns)
		errs    = make([]int, c.conns)
		firstEr atomic.Value
	)
	cpu0, err := procCPU(pid)
	if err != nil {
		return roundResult{}, err
	}
	self0 := selfCPU()
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for wk := range c.conns {
		wg.Go(func() {
			req := c.newRequest()
			l := make([]time.Duration, 0, 4096)
			for i := 0; !stop.Load(); i++ {
				path, auth, ok := w.next(wk, i)
				if !ok {
					break
				}
				t0 := time.Now()
				good, err := c.do(req, path, auth)
				l = append(l, time.Since(t0))
				if !good {
					errs[wk]++ // do's error says why
					firstEr.CompareAndSwap(nil, err)
				}
			}
			lats[wk] = l
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := procCPU(pid)
	if err != nil {
		return roundResult{}, err
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	r := roundResult{requests: len(all), elapsed: elapsed, cpu: cpu1 - cpu0, selfCPU: selfCPU() - self0}
	for _, e := range errs {
		r.errors += e
	}
	if len(all) > 0 {
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	if r.errors > 0 {
		return r, fmt.Errorf("%d of %d requests failed; first: %v", r.errors, r.requests, firstEr.Load())
	}
	return r, nil
}

// procCPU is a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu of %d: unexpected /proc stat %q", pid, s)
	}
	// USER_HZ is 100 on Linux for every architecture Go supports.
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
