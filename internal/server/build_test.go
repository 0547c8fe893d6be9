package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// buildEnv is a configuration whose issuer and Redis are local listeners
// that count who reaches them.
type buildEnv struct {
	cfg        *config.Config
	idp        *oauthtest.IdP // down: every JWKS fetch fails, and is counted
	redisDials chan struct{}
}

func newBuildEnv(t *testing.T) *buildEnv {
	t.Helper()
	env := &buildEnv{idp: oauthtest.NewIdP(t), redisDials: make(chan struct{}, 16)}
	env.idp.SetDown(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			env.redisDials <- struct{}{}
			c.Close()
		}
	}()
	dir := t.TempDir()
	oauthtest.WriteKey(t, filepath.Join(dir, "es256.pem"), "ES256")
	text := fmt.Sprintf(`server: {listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0"}
issuers:
  - issuer: "https://idp.example.com/"
    jwks_uri: %q
    allow_insecure_http: true
exchange:
  local:
    issuer: "https://gw.example.com"
    signing_keys: [{file: es256.pem, alg: ES256}]
cache:
  redis:
    addrs: [%q]
    encryption_key: %q
routes:
  - {name: orders, path_prefix: /orders, upstream: "http://127.0.0.1:9001", audience: "https://orders.example.com"}
`, env.idp.JWKSURL(), ln.Addr().String(), base64.StdEncoding.EncodeToString(make([]byte, 32)))
	path := filepath.Join(dir, "tokengate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if env.cfg, err = config.Load(path); err != nil {
		t.Fatal(err)
	}
	return env
}

func newTestProcess(t *testing.T) *Process {
	t.Helper()
	p, err := NewProcess(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBuildOfflineDialsNothing: an offline build (check, explain) fetches
// no keys and dials no Redis, so a fresh `check` needs nothing reachable;
// the online build (serve) prefetches keys and listens on Redis.
func TestBuildOfflineDialsNothing(t *testing.T) {
	env := newBuildEnv(t)
	gen, err := Build(context.Background(), newTestProcess(t), env.cfg, nil, Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if gen.Edge() == nil || gen.Admin() == nil || gen.Local() == nil || gen.Verifier() == nil {
		t.Fatal("an offline build lacks components")
	}
	gen.Close()
	gen.Close() // twice is harmless
	if n := env.idp.JWKSFetches(); n != 0 {
		t.Errorf("offline build fetched from the IdP %d times", n)
	}
	select {
	case <-env.redisDials:
		t.Error("offline build dialled Redis")
	default:
	}

	online, err := Build(context.Background(), newTestProcess(t), env.cfg, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer online.Close()
	if env.idp.JWKSFetches() == 0 {
		t.Error("online build did not prefetch the issuer's keys")
	}
	select {
	case <-env.redisDials:
	case <-time.After(10 * time.Second):
		t.Error("online build never dialled Redis for revocations")
	}
}

// TestBuildDonatesMemoryTiers: a reload's build takes over the previous
// generation's memory cache when its bound is unchanged and makes a new one
// when it changes; the DPoP replay memory is always taken over (with the new
// bound), so no proof seen before a reload can be replayed after it.
func TestBuildDonatesMemoryTiers(t *testing.T) {
	env := newBuildEnv(t)
	p := newTestProcess(t)
	first, err := Build(context.Background(), p, env.cfg, nil, Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Build(context.Background(), p, env.cfg, first, Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	if second.memory != first.memory || second.dpopMemory != first.dpopMemory {
		t.Error("same bounds: the memory tiers were not handed on")
	}
	changed := *env.cfg
	changed.Cache.MaxEntries++
	changed.Server.DPoP.ReplayMaxEntries++
	third, err := Build(context.Background(), p, &changed, second, Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	second.Close()
	defer third.Close()
	if third.memory == second.memory {
		t.Error("changed bound: the old memory cache was kept")
	}
	if third.dpopMemory != second.dpopMemory {
		t.Error("changed bound: the DPoP replay memory was replaced, forgetting the proofs it saw")
	}
}
