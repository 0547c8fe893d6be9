package sign

import (
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestLocalNeverCopiesMeaningClaims: cnf, txn and tctx of the umbrella token
// are never copied onto an exchanged token, even when copy_claims names them
// (config.Validate refuses that; this is the signer's own guard).
func TestLocalNeverCopiesMeaningClaims(t *testing.T) {
	ks := ltKeySet(t)
	l := ltNewLocal(t, ks, func(o *LocalOptions) { o.CopyClaims = []string{"cnf", "txn", "tctx", "acr"} })
	c := ltClaims()
	c.Extra["cnf"] = json.RawMessage(`{"jkt":"umbrella-key"}`)
	c.Extra["txn"] = json.RawMessage(`"txn-1"`)
	c.Extra["tctx"] = json.RawMessage(`{"a":1}`)
	res, err := l.Exchange(t.Context(), ltRequest(c, ltAudience, nil))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	_, raw := ltVerify(t, res.AccessToken, ks, jose.ES256)
	for _, name := range []string{"cnf", "txn", "tctx"} {
		if v, ok := raw[name]; ok {
			t.Errorf("claim %s = %s copied from the umbrella token", name, v)
		}
	}
	if got := string(raw["acr"]); got != `"mfa"` {
		t.Errorf("acr = %s, want the copied \"mfa\"", got)
	}
}
