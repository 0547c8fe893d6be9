package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/gateway"
)

// BenchmarkWholeRequest drives real HTTP through the real stack (verifier
// with memo, caching exchanger, local signer, reverse proxy) on the cache-hit
// path, next to a bare httputil.ReverseProxy over the same backend, so the
// ratio of the two is the gateway's cost. Compare ns/op of the sub-benchmarks
// from one run; these machines are noisy. The gateway's access log is on
// (the e2e configuration logs at debug into memory). For side-by-side
// figures over real processes, see cmd/tokengate-bench (make loadtest).
func BenchmarkWholeRequest(b *testing.B) {
	idp := newE2EIdP(b)
	orders, inventory := newE2EBackend(b, "orders"), newE2EBackend(b, "inventory")
	g := startE2E(b, idp, orders, inventory)
	umbrella := idp.mint(b, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})

	// The backend records requests; a benchmark would grow that without bound.
	orders.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"backend":"orders"}`)
	})
	target, _ := url.Parse(orders.srv.URL)
	// The bare proxy gets the gateway's own transport tuning and a buffer
	// pool like the gateway's: without one it allocates a 32 KiB copy buffer
	// per request, which would flatter the gateway.
	bare := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport:  gateway.UpstreamTransport(5 * time.Second),
		BufferPool: gateway.NewBufferPool(),
	})
	b.Cleanup(bare.Close)

	run := func(b *testing.B, url string) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.Cleanup(client.CloseIdleConnections)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+umbrella)
			for pb.Next() {
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	b.Run("bare_reverse_proxy", func(b *testing.B) { run(b, bare.URL+"/orders") })
	b.Run("tokengate_cache_hit", func(b *testing.B) { run(b, g.srv.EdgeURL()+"/orders") })
}

// BenchmarkEdgeHandler is BenchmarkWholeRequest without the client's HTTP:
// the edge handler and a bare httputil.ReverseProxy called directly, one
// request at a time, with the access log at info (JSON, discarded). The
// difference of the two is what tokengate adds to a cache-hit request in
// the server, which is what a CPU profile of this benchmark shows alone.
func BenchmarkEdgeHandler(b *testing.B) {
	idp := newE2EIdP(b)
	orders, inventory := newE2EBackend(b, "orders"), newE2EBackend(b, "inventory")
	orders.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"backend":"orders"}`)
	})
	g := startE2EWith(b, idp, orders, inventory, e2eOptions{opts: func(o *serverOptions) {
		o.Logger = newLogger(config.Log{Level: "info"}, io.Discard) // as serve builds it
	}})
	umbrella := idp.mint(b, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	target, _ := url.Parse(orders.srv.URL)
	bare := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport:  gateway.UpstreamTransport(5 * time.Second),
		BufferPool: gateway.NewBufferPool(),
	}
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			w := &discardResponse{h: http.Header{}}
			for pb.Next() {
				req := httptest.NewRequest(http.MethodGet, "http://edge.example/orders/1", nil)
				req.RemoteAddr = "127.0.0.1:40000"
				req.Header.Set("Authorization", "Bearer "+umbrella)
				req.Header.Set("User-Agent", "bench/1")
				clear(w.h)
				w.status = 0
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Errorf("status %d", w.status)
					return
				}
			}
		})
	}
	b.Run("bare_reverse_proxy", func(b *testing.B) { run(b, bare) })
	b.Run("tokengate_cache_hit", func(b *testing.B) { run(b, g.srv.gen.Load().Handler()) })
}

// discardResponse is a ResponseWriter that keeps the status and drops the body.
type discardResponse struct {
	h      http.Header
	status int
}

func (w *discardResponse) Header() http.Header { return w.h }
func (w *discardResponse) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}
