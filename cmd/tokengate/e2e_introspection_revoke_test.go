package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// forget makes the AS answer inactive for token (revoked at the AS).
func (as *e2eAS) forget(token string) {
	as.mu.Lock()
	defer as.mu.Unlock()
	delete(as.known, token)
}

// TestE2ERedisRevokeDropsIntrospection: an opaque token revoked at the
// authorization server is cached as active for up to max_cache_ttl;
// /admin/revoke by token drops that cached answer on both replicas (the
// next presentation asks the AS again) and the token is refused everywhere.
func TestE2ERedisRevokeDropsIntrospection(t *testing.T) {
	as := newE2EAS(t)
	t.Setenv("TOKENGATE_TEST_INTROSPECTION_SECRET", e2eASSecret)
	introspect := func(text, _ string) string {
		block := fmt.Sprintf("    min_refresh_interval: 1s\n    introspection_endpoint: %q\n    introspection:\n"+
			"      client_id: %s\n      client_secret: \"${TOKENGATE_TEST_INTROSPECTION_SECRET}\"\n      timeout: 1s\n",
			as.Endpoint(), e2eASClientID)
		return strings.Replace(text, "    min_refresh_interval: 1s\n", block, 1)
	}
	rs := startReplicasEdited(t, introspect, introspect)
	const opaque = "opaque-incident-Zq7W2mK9pL4xN8cV3bR6tY1uH5jD0sF"
	as.issue(opaque, map[string]any{"sub": "user-7", "aud": audOrders, "scope": "orders:read"})
	for _, g := range rs.gws {
		if resp, body := g.get(t, "/orders", opaque); resp.StatusCode != 200 {
			t.Fatalf("before the revocation: %d %s", resp.StatusCode, body)
		}
	}
	as.forget(opaque) // revoked at the AS: the replicas' cached answers still say active
	calls := as.calls.Load()

	start := time.Now()
	resp, body := adminPost(t, rs.gws[0], e2eAdminToken, `{"token":"`+opaque+`"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"revoked":"token"`) {
		t.Fatalf("revoke = %d %s", resp.StatusCode, body)
	}
	for i, g := range rs.gws {
		if !waitFor(t, func() bool { return purged(g, "revoked", "introspection") >= 1 }) {
			t.Fatalf("replica %d kept the revoked token's introspection answer", i+1)
		}
	}
	took := refusedEverywhere(t, rs.gws, opaque, start)
	t.Logf("opaque token revocation: introspection answers dropped and the token refused on both replicas %s after POST /admin/revoke", took)
	if n := as.calls.Load() - calls; n != 2 {
		t.Errorf("the AS was asked %d times after the revocation; want 2 (once per replica, its cached answer dropped)", n)
	}
}
