package verify

import (
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tokengate/tokengate/exchange"
)

// verifyMemo remembers fully verified tokens by the SHA-256 of the raw token,
// so a token seen again costs a hash, a map lookup and three comparisons
// instead of JSON parsing and a signature check.
type verifyMemo struct {
	cache *lru.Cache[[32]byte, *verifyMemoEntry]
}

// verifyMemoEntry is one verified token with its validity window already
// widened by the issuer's leeway.
type verifyMemoEntry struct {
	token *exchange.Token
	// notAfter is exp + leeway: the entry is never served at or after it.
	notAfter time.Time
	// notBefore is the later of nbf and iat, minus leeway.
	notBefore time.Time
	// iss is the issuer whose key verified it: a memo hit may start the
	// issuer's periodic JWKS refresh, and a removed key (iss.name,
	// token.KeyID) drops the entry.
	iss *verifyIssuer
}

func newVerifyMemo(size int) (*verifyMemo, error) {
	c, err := lru.New[[32]byte, *verifyMemoEntry](size)
	if err != nil {
		return nil, fmt.Errorf("create verified-token memo: %w", err)
	}
	return &verifyMemo{cache: c}, nil
}

func (m *verifyMemo) get(hash [32]byte) (*verifyMemoEntry, bool) { return m.cache.Get(hash) }

func (m *verifyMemo) add(hash [32]byte, e *verifyMemoEntry) { m.cache.Add(hash, e) }

func (m *verifyMemo) remove(hash [32]byte) { m.cache.Remove(hash) }

func (m *verifyMemo) len() int { return m.cache.Len() }

// purgeKey drops every entry verified with the key kid of issuer iss and
// returns how many. It walks the memo (bounded by its size): key removals
// are rare.
func (m *verifyMemo) purgeKey(iss, kid string) int {
	n := 0
	for _, h := range m.cache.Keys() {
		e, ok := m.cache.Peek(h)
		if ok && e.iss != nil && e.iss.name == iss && e.token.KeyID == kid {
			m.cache.Remove(h)
			n++
		}
	}
	return n
}
