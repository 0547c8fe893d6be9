package gateway

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
)

// downShared is a shared replay store (Redis) that is down.
type downShared struct{}

func (downShared) FreshProof(context.Context, string, time.Duration) (bool, error) {
	return false, errors.New("dial tcp: connection refused")
}

// TestDPoPNonceAndReplayWithSharedStoreDown: with the shared replay store
// down, nonces are still required (they are stateless, never looked up in
// Redis), a replay on this replica is still refused from memory, and with
// cache.redis.required every otherwise valid proof fails closed (503).
func TestDPoPNonceAndReplayWithSharedStoreDown(t *testing.T) {
	for _, required := range []bool{false, true} {
		key := newDPoPKey(t)
		mem, err := cache.NewMemoryReplay(100, nil)
		if err != nil {
			t.Fatal(err)
		}
		guard, err := cache.NewReplayGuard(cache.ReplayGuardOptions{Memory: mem, Shared: downShared{}, Required: required})
		if err != nil {
			t.Fatal(err)
		}
		env, be := dpopEnv(t, key, func(o *Options) {
			o.Config.Server.DPoP.Nonce = true
			o.DPoP.Replay = guard
		})
		htu := env.edge.URL + "/orders/1"
		send := func(proof string) (*http.Response, errorBody) {
			resp, body := env.do(t, "GET", "/orders/1", func(r *http.Request) {
				r.Header.Set("Authorization", "DPoP "+tokBound)
				r.Header.Set("DPoP", proof)
			})
			if resp.StatusCode == 200 {
				return resp, errorBody{}
			}
			return resp, decodeError(t, body)
		}
		resp, e := send(key.proof(t, "GET", htu, tokBound, nil))
		nonce := resp.Header.Get("DPoP-Nonce")
		if resp.StatusCode != 401 || e.Error != "use_dpop_nonce" || nonce == "" {
			t.Fatalf("required=%v, no nonce: %d %+v; want 401 use_dpop_nonce", required, resp.StatusCode, e)
		}
		if resp, e := send(key.proof(t, "GET", htu, tokBound, func(c map[string]any) { c["nonce"] = "stale" })); resp.StatusCode != 401 || e.Error != "use_dpop_nonce" {
			t.Errorf("required=%v, bogus nonce: %d %+v; want 401 use_dpop_nonce", required, resp.StatusCode, e)
		}
		proof := key.proof(t, "GET", htu, tokBound, func(c map[string]any) { c["nonce"] = nonce })
		first, _ := send(proof)
		replay, e := send(proof)
		switch {
		case required && (first.StatusCode != 503 || replay.StatusCode == 200):
			t.Errorf("required: first %d, replay %d; want 503 then no 200", first.StatusCode, replay.StatusCode)
		case !required && (first.StatusCode != 200 || replay.StatusCode != 401 || e.Error != "invalid_dpop_proof"):
			t.Errorf("optional: first %d, replay %d %+v; want 200 then 401 invalid_dpop_proof", first.StatusCode, replay.StatusCode, e)
		}
		want := 1
		if required {
			want = 0
		}
		if n := len(be.requests()); n != want {
			t.Errorf("required=%v: backend got %d requests, want %d", required, n, want)
		}
	}
}
