package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// BenchmarkTokenEndpointHit measures one token endpoint request on the hot
// path (verify memoized, exchange answered from the cache): form parsing,
// policy, downscoping and the JSON answer.
func BenchmarkTokenEndpointHit(b *testing.B) {
	gw, err := New(Options{
		Config:    &config.Config{Server: config.Server{MaxTokenBytes: 8192}, Routes: []config.Route{testRoute("orders", "/orders", "http://127.0.0.1:1")}},
		Verifier:  newFakeVerifier(),
		Exchanger: fastExchanger{&exchange.Result{AccessToken: "aaaa.bbbb.cccc", Scope: "orders:read", ExpiresAt: testNow.Add(5 * time.Minute)}},
		Metrics:   NewMetrics(prometheus.NewRegistry()),
		Clock:     func() time.Time { return testNow },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	body := exchangeForm(umbrella, "https://orders.example.com").Encode()
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		req := newRequest(b, context.Background(), tokenPath, "")
		req.Method = http.MethodPost
		req.Header.Set("Content-Type", formType)
		req.Body = io.NopCloser(strings.NewReader(body))
		gw.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}
