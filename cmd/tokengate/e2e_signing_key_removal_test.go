package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
)

// lastKid is the kid of the exchanged token the backend received last.
func lastKid(t *testing.T, b *e2eBackend) string {
	t.Helper()
	reqs := b.received()
	if len(reqs) == 0 {
		t.Fatal("the backend received nothing")
	}
	tok := strings.TrimPrefix(reqs[len(reqs)-1].Header.Get("Authorization"), "Bearer ")
	head, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("exchanged token header: %v", err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// publishedKids are the kids of g's published JWKS.
func publishedKids(t *testing.T, g *e2eGateway) []string {
	t.Helper()
	resp, body := adminGet(t, g, "", "/.well-known/jwks.json")
	if resp.StatusCode != 200 {
		t.Fatalf("JWKS: %d", resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestE2ERedisSigningKeyRemoved: an emergency removal of the signing key
// from exchange.local.signing_keys (a reload) drops its key from the
// published JWKS at once and purges every cached token it signed: from the
// reloaded replica's memory, from Redis, and from the other replica's
// memory through pub/sub. The next exchange is signed with the remaining key.
func TestE2ERedisSigningKeyRemoved(t *testing.T) {
	second := filepath.Join(t.TempDir(), "second.pem")
	writeES256Key(t, second)
	const first = "      - file: keys/es256.pem\n        alg: ES256\n"
	withSecond := func(text, _ string) string {
		return strings.Replace(text, first, first+"      - file: "+second+"\n        alg: ES256\n", 1)
	}
	rs := startReplicasEdited(t, withSecond, withSecond)
	g1, g2 := rs.gws[0], rs.gws[1]
	tok := rs.idp.mint(t, map[string]any{"sub": "alice", "aud": audOrders, "scope": "orders:read"})
	for _, g := range rs.gws {
		if resp, body := g.get(t, "/orders", tok); resp.StatusCode != 200 {
			t.Fatalf("before the removal: %d %s", resp.StatusCode, body)
		}
	}
	removedKid := lastKid(t, rs.orders)
	if kids := publishedKids(t, g1); len(kids) != 2 || kids[0] != removedKid {
		t.Fatalf("published kids %v; want two, %s first", kids, removedKid)
	}

	text, err := os.ReadFile(g1.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g1.path, []byte(strings.Replace(string(text), first, "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := g1.srv.Reload(context.Background()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if kids := publishedKids(t, g1); len(kids) != 1 || kids[0] == removedKid {
		t.Errorf("published kids after the removal %v; want only the remaining key", kids)
	}
	if purged(g1, cache.CauseSigningKeyRemoved, cache.TierMemory) < 1 || purged(g1, cache.CauseSigningKeyRemoved, cache.TierRedis) < 1 {
		t.Errorf("replica 1 purged memory %v redis %v; want >= 1 each",
			purged(g1, cache.CauseSigningKeyRemoved, cache.TierMemory), purged(g1, cache.CauseSigningKeyRemoved, cache.TierRedis))
	}
	if !waitFor(t, func() bool { return purged(g2, cache.CauseSigningKeyRemoved, cache.TierMemory) >= 1 }) {
		t.Fatal("replica 2 kept the removed key's tokens in its memory tier")
	}
	t.Logf("signing key removal: cached tokens purged on both replicas %s after the reload began", time.Since(start))
	n, _ := rs.redis.Client(t).Keys(context.Background(), "tokengate:e:*").Result()
	if len(n) != 0 {
		t.Errorf("%d entries left in Redis after the removal", len(n))
	}

	before := signings(g1)
	if resp, body := g1.get(t, "/orders", tok); resp.StatusCode != 200 {
		t.Fatalf("after the removal: %d %s", resp.StatusCode, body)
	}
	if kid := lastKid(t, rs.orders); kid == removedKid {
		t.Errorf("replica 1 handed out a token signed with the removed key")
	}
	if signings(g1) != before+1 {
		t.Errorf("replica 1 signings %v -> %v; want a new exchange", before, signings(g1))
	}
	if r, ok := findListed(listRevocations(t, g2), "signing_key_removed", removedKid); !ok || r.Until.Before(time.Now()) {
		t.Errorf("replica 2 lists %+v", listRevocations(t, g2))
	}
}
