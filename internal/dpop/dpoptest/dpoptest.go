// Package dpoptest makes RFC 9449 DPoP proofs for tests, the way a client
// library would: an ES256 key, proofs signed with go-jose that embed the
// public key, a fresh jti each time.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is a client's DPoP key.
type Key struct {
	// Private is the key itself, for tests that craft proofs by hand.
	Private *ecdsa.PrivateKey
	// JKT is the RFC 7638 SHA-256 thumbprint: the cnf.jkt of tokens bound to it.
	JKT    string
	signer jose.Signer
	seq    atomic.Int64
}

// NewKey makes a fresh P-256 key.
func NewKey(t testing.TB) *Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Private: priv, JKT: base64.RawURLEncoding.EncodeToString(tp), signer: s}
}

// ATH is the ath claim for an access token: base64url(SHA-256(token)).
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Proof signs a proof of a request (method, htu) presenting token, issued
// at iat, with a jti never used before. edit, when not nil, changes the
// claims first (set a nonce, break a claim, delete one).
func (k *Key) Proof(t testing.TB, method, htu, token string, iat time.Time, edit func(claims map[string]any)) string {
	t.Helper()
	claims := map[string]any{
		"jti": fmt.Sprintf("proof-%d-%d", time.Now().UnixNano(), k.seq.Add(1)),
		"htm": method, "htu": htu, "iat": iat.Unix(),
		"ath": ATH(token),
	}
	if edit != nil {
		edit(claims)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	o, err := k.signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := o.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
