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
)

// fastExchanger returns one precomputed result: the cache-hit case.
type fastExchanger struct{ res *exchange.Result }

func (f fastExchanger) Exchange(context.Context, exchange.Request) (*exchange.Result, error) {
	return f.res, nil
}
func (fastExchanger) Invalidate(context.Context, exchange.Request) {}

// BenchmarkEdgeHit measures a whole edge request on the hot path: route,
// bearer, verify and exchange answered at once, upstream round trip over a
// keep-alive connection. "handler" calls ServeHTTP directly (the gateway's
// own cost plus the upstream hop); "http" adds a keep-alive client in front.
func BenchmarkEdgeHit(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer be.Close()
	gw, err := New(Options{
		Config:    &config.Config{Server: config.Server{MaxTokenBytes: 8192}, Routes: []config.Route{testRoute("orders", "/orders", be.URL)}},
		Verifier:  newFakeVerifier(),
		Exchanger: fastExchanger{&exchange.Result{AccessToken: "xt.orders.example.com.orders:read"}},
		Metrics:   NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()

	b.Run("handler", func(b *testing.B) {
		req := newRequest(b, context.Background(), "/orders/1", umbrella)
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			gw.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	})

	b.Run("http", func(b *testing.B) {
		edge := httptest.NewServer(gw)
		defer edge.Close()
		client := edge.Client()
		req, _ := http.NewRequest(http.MethodGet, edge.URL+"/orders/1", nil)
		req.Header.Set("Authorization", "Bearer "+umbrella)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

func BenchmarkRouteMatch(b *testing.B) {
	var routes []config.Route
	for _, p := range []string{"/", "/a", "/orders", "/orders/admin", "/billing", "/users", "/users/me", "/x/y/z"} {
		routes = append(routes, testRoute("r"+p, p, "http://127.0.0.1:1"))
	}
	gw, err := New(Options{Config: &config.Config{Routes: routes}, Verifier: newFakeVerifier(), Exchanger: newFakeExchanger()})
	if err != nil {
		b.Fatal(err)
	}
	req := newRequest(b, context.Background(), "/users/me/settings", "")
	b.ReportAllocs()
	for b.Loop() {
		if gw.match(canonicalRequest(req)) == nil {
			b.Fatal("no match")
		}
	}
}
