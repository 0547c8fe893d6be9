package verify

import (
	"context"
	"testing"
)

// FuzzIntrospectResponse feeds arbitrary bodies to the RFC 7662 response
// parser: it must never panic, accept a token only when "active" is JSON
// true, and never cache an active result beyond max_cache_ttl.
func FuzzIntrospectResponse(f *testing.F) {
	for _, seed := range []string{
		`{"active":true,"aud":"https://orders.example.com","exp":1893553445,"scope":"a b","sub":"u"}`,
		`{"active":true}`,
		`{"active":false}`,
		`{"active":"true"}`,
		`{"active":true,"active":false}`,
		`{"active":true,"exp":"soon"}`,
		`{"active":true,"exp":1e400}`,
		`{"active":true,"iss":null}`,
		`{"active":true,"token_type":"refresh_token"}`,
		`{"active":true,"cnf":{"jkt":"abc"}}`,
		`{"active":true,"cnf":[]}`,
		`{"active":true,"aud":[1,2]}`,
		`[]`, `null`, `true`, ``, `{`, "{\"active\":true,\"sub\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	e := itNewEnv(f, nil)
	it := e.v.introspector
	f.Fuzz(func(t *testing.T, body []byte) {
		now := e.clock.Now()
		m, err := it.members(context.Background(), body, now)
		if err != nil {
			return
		}
		entry, err := it.entry(m, itOpaque, verifyHash(itOpaque), now)
		if err != nil {
			if _, ok := m["active"]; ok {
				t.Fatalf("an outage for a response with active: %v", err)
			}
			return
		}
		if entry.token == nil {
			if entry.reject == nil {
				t.Fatal("neither a token nor a rejection")
			}
			return
		}
		if string(m["active"]) != "true" {
			t.Fatalf("accepted with active %s", m["active"])
		}
		if entry.until.After(now.Add(it.maxTTL)) || entry.until.After(entry.notAfter) {
			t.Fatalf("cached until %v: beyond max_cache_ttl or exp", entry.until)
		}
		if entry.token.Claims.Issuer != e.iss.Issuer {
			t.Fatalf("issuer %q", entry.token.Claims.Issuer)
		}
	})
}
