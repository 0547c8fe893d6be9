package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/keys"
	"github.com/tokengate/tokengate/exchange/sign"
)

// BenchmarkEdgeTxn compares a whole edge request (ServeHTTP plus the
// upstream hop) on an access_token route answered from the cache with the
// same request on a txn_token route, which signs a fresh ES256 Txn-Token
// every time (Txn-Tokens are unique per request, never cached).
func BenchmarkEdgeTxn(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer be.Close()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := keys.NewKeySetFromSigners([]keys.KeySpec{{Signer: key, Alg: "ES256"}})
	if err != nil {
		b.Fatal(err)
	}
	minter, err := sign.NewLocalTxn(sign.LocalTxnOptions{
		TxnOptions: exchange.TxnOptions{TrustDomain: "trust-domain.example", WorkloadID: "tokengate", TTL: time.Minute},
		Issuer:     "http://127.0.0.1:9090", Keys: keys,
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, forward := range []string{config.ForwardAccessToken, config.ForwardTxnToken} {
		b.Run(forward, func(b *testing.B) {
			rt := testRoute("orders", "/orders", be.URL)
			rt.Forward = forward
			gw, err := New(Options{
				Config:    &config.Config{Server: config.Server{MaxTokenBytes: 8192}, Routes: []config.Route{rt}},
				Verifier:  newFakeVerifier(),
				Exchanger: fastExchanger{&exchange.Result{AccessToken: "xt.orders.example.com.orders:read"}},
				Metrics:   NewMetrics(prometheus.NewRegistry()),
				TxnMinter: minter,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
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
	}
}
