package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/redistest"
)

// startReplicasEdited starts one replica per edit (nil: unchanged), sharing
// one Redis, IdP, signing key and backends, as startReplicas does.
func startReplicasEdited(t *testing.T, edits ...func(text, edge string) string) *e2eReplicas {
	t.Helper()
	srv := redistest.Start(t)
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	pemBytes, key := replicaSecrets(t)
	rs := &e2eReplicas{redis: srv, orders: orders, idp: idp, cacheKey: key}
	for _, edit := range edits {
		rs.gws = append(rs.gws, startE2EWith(t, idp, orders, inventory, e2eOptions{
			keyPEM: pemBytes, issuer: "https://tokengate.test", adminToken: e2eAdminToken,
			cacheYAML: redisCacheYAML(srv.Addr(), key), edit: edit,
		}))
	}
	waitFor(t, func() bool {
		m, err := srv.Client(t).PubSubNumSub(context.Background(), "tokengate:revocations").Result()
		return err == nil && m["tokengate:revocations"] >= int64(len(edits))
	})
	return rs
}

// refreshEvery sets the issuer's refresh_interval.
func refreshEvery(d string) func(text, edge string) string {
	return func(text, _ string) string {
		return strings.Replace(text, "    min_refresh_interval: 1s\n", "    min_refresh_interval: 1s\n    refresh_interval: "+d+"\n", 1)
	}
}

func purged(g *e2eGateway, cause, tier string) float64 {
	return testutil.ToFloat64(g.srv.proc.CacheMetrics.Purged.WithLabelValues(cause, tier))
}

// TestE2ERedisJWKSKeyRemoved: a key rotated out of a live JWKS stops
// working at the next refresh, for tokens verified (memoized) and exchanged
// (cached) before: 401 invalid_token (unknown_key) on replica 1, whose
// refresh sees the removal, and at once on replica 2, whose own refresh is
// an hour away, through Redis pub/sub. Tokens of the remaining key work.
func TestE2ERedisJWKSKeyRemoved(t *testing.T) {
	rs := startReplicasEdited(t, refreshEvery("1s"), refreshEvery("1h"))
	g1, g2 := rs.gws[0], rs.gws[1]
	claims := map[string]any{"sub": "alice", "aud": audOrders, "scope": "orders:read"}
	old := rs.idp.mint(t, claims) // signed by idp-key-1
	rs.idp.addKey(t, "idp-key-2")
	fresh := rs.idp.mint(t, claims)
	for _, g := range rs.gws {
		for _, tok := range []string{old, fresh} {
			if !waitFor(t, func() bool { resp, _ := g.get(t, "/orders", tok); return resp.StatusCode == 200 }) {
				t.Fatal("tokens of both keys are not accepted before the removal")
			}
		}
	}
	// The old token is now memoized and its exchanged token cached on both.
	n, _ := rs.redis.Client(t).Keys(context.Background(), "tokengate:e:*").Result()
	if len(n) == 0 {
		t.Fatal("nothing cached in Redis before the removal")
	}

	removed := time.Now()
	rs.idp.RemoveKey("idp-key-1")
	// Requests keep coming (memo hits): one of them starts replica 1's refresh.
	took := refusedEverywhere(t, []*e2eGateway{g1, g2}, old, removed)
	t.Logf("JWKS key removal: refused on both replicas %s after the IdP removed the key (refresh_interval 1s on replica 1; replica 2 told through Redis)", took)
	for i, g := range rs.gws {
		resp, body := g.get(t, "/orders", old)
		if c := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(c, `error="invalid_token"`) || !strings.Contains(c, "key") {
			t.Errorf("replica %d: the removed key's token: %d %q %s", i+1, resp.StatusCode, c, body)
		}
		if got := testutil.ToFloat64(g.srv.proc.GatewayMetrics.TokenRejections.WithLabelValues("unknown_key")); got == 0 {
			t.Errorf("replica %d counted no unknown_key rejection", i+1)
		}
		if resp, body := g.get(t, "/orders", fresh); resp.StatusCode != 200 {
			t.Errorf("replica %d: a token of the remaining key: %d %s", i+1, resp.StatusCode, body)
		}
	}
	// Replica 2 never refreshed: it learnt of the removal from replica 1.
	if got := testutil.ToFloat64(g2.srv.proc.CacheMetrics.Revocations.WithLabelValues("key_removed", "peer")); got != 1 {
		t.Errorf("replica 2 tokengate_revocations_total{by=key_removed,source=peer} = %v; want 1", got)
	}
	if got := testutil.ToFloat64(g1.srv.proc.ExchangeMetrics.JWKSKeysRemoved.WithLabelValues(rs.idp.URL())); got != 1 {
		t.Errorf("replica 1 tokengate_jwks_keys_removed_total = %v; want 1", got)
	}
	// The memo entry and the cached exchanged tokens were dropped.
	if purged(g1, cache.CauseKeyRemoved, cache.TierMemo) < 1 || purged(g1, cache.CauseKeyRemoved, cache.TierRedis) < 1 ||
		purged(g1, cache.CauseKeyRemoved, cache.TierMemory) < 1 || purged(g2, cache.CauseKeyRemoved, cache.TierMemory) < 1 {
		t.Errorf("purged: replica 1 memo %v redis %v memory %v; replica 2 memory %v; want each >= 1",
			purged(g1, cache.CauseKeyRemoved, cache.TierMemo), purged(g1, cache.CauseKeyRemoved, cache.TierRedis),
			purged(g1, cache.CauseKeyRemoved, cache.TierMemory), purged(g2, cache.CauseKeyRemoved, cache.TierMemory))
	}
	// Both replicas list the removal.
	for i, g := range rs.gws {
		r, ok := findListed(listRevocations(t, g), "key_removed", rs.idp.URL())
		if !ok || r.Kid != "idp-key-1" {
			t.Errorf("replica %d lists %+v", i+1, listRevocations(t, g))
		}
	}
	if !strings.Contains(g1.logs.String(), `"event":"jwks_key_removed"`) {
		t.Error("replica 1 logged no jwks_key_removed event")
	}
}
