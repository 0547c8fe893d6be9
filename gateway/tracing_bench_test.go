package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/telemetry"
)

// BenchmarkEdgeHitTracing is BenchmarkEdgeHit/handler with tracing wired as
// internal/server wires it (a server span around the edge, a client span
// around the upstream transport), off and at sample ratios 0.01 and 1.0,
// exporting to a local OTLP receiver that discards. docs/performance.md
// has the numbers.
func BenchmarkEdgeHitTracing(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer be.Close()
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer collector.Close()

	for _, bc := range []struct {
		name     string
		endpoint string
		ratio    float64
	}{
		{"off", "", 1}, {"ratio=0.01", collector.URL, 0.01}, {"ratio=1", collector.URL, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tel, err := telemetry.New(context.Background(), config.Tracing{OTLPEndpoint: bc.endpoint, SampleRatio: bc.ratio, ServiceName: "bench"}, nil, telemetry.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			gw, err := New(Options{
				Config:        &config.Config{Server: config.Server{MaxTokenBytes: 8192}, Routes: []config.Route{testRoute("orders", "/orders", be.URL)}},
				Verifier:      newFakeVerifier(),
				Exchanger:     fastExchanger{&exchange.Result{AccessToken: "xt.orders.example.com.orders:read"}},
				Metrics:       NewMetrics(prometheus.NewRegistry()),
				WrapTransport: tel.Transport,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
			h := tel.Handler(gw)
			req := newRequest(b, context.Background(), "/orders/1", umbrella)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				// An unsampled request gets a traceparent set on it; a real
				// client's next request comes without one, so must this one
				// (else every iteration after the first continues one
				// unsampled trace and the sampler never runs).
				req.Header.Del("Traceparent")
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}
