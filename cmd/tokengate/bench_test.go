package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

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
