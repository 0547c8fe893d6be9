package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// nonceMACLen is the truncated HMAC length of a nonce: 128 bits.
const nonceMACLen = 16

// Nonces issues and checks stateless server nonces (RFC 9449 section 8):
// base64url(window || HMAC-SHA-256(secret, window)[:16]), where window is
// the current time divided by the lifetime. A nonce of the current or the
// previous window is accepted, so one lives between one and two lifetimes.
// Replicas sharing the secret accept each other's nonces.
type Nonces struct {
	secret   []byte
	lifetime time.Duration
	now      func() time.Time
}

// NewNonces returns a nonce source; secret must be at least 32 bytes.
func NewNonces(secret []byte, lifetime time.Duration, clock func() time.Time) (*Nonces, error) {
	if len(secret) < 32 {
		return nil, errors.New("new dpop nonces: the secret must be at least 32 bytes")
	}
	if lifetime <= 0 {
		return nil, errors.New("new dpop nonces: the lifetime must be positive")
	}
	if clock == nil {
		clock = time.Now
	}
	return &Nonces{secret: append([]byte(nil), secret...), lifetime: lifetime, now: clock}, nil
}

func (n *Nonces) window() uint64 { return uint64(n.now().UnixNano() / int64(n.lifetime)) }

// Current returns the nonce of the current window.
func (n *Nonces) Current() string { return n.make(n.window()) }

func (n *Nonces) make(w uint64) string {
	var b [8 + sha256.Size]byte
	binary.BigEndian.PutUint64(b[:8], w)
	m := hmac.New(sha256.New, n.secret)
	m.Write(b[:8])
	m.Sum(b[:8])
	return base64.RawURLEncoding.EncodeToString(b[:8+nonceMACLen])
}

// Valid reports whether s is a nonce of the current or the previous window.
func (n *Nonces) Valid(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(8+nonceMACLen) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return false
	}
	w, cur := binary.BigEndian.Uint64(b[:8]), n.window()
	if w != cur && w+1 != cur {
		return false
	}
	return hmac.Equal([]byte(n.make(w)), []byte(s))
}
