package exchange

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokengate/tokengate/cache"
)

// ReasonRevoked: the umbrella token, its subject or its session was revoked
// (POST /admin/revoke). A rejection reason like the verifier's.
const ReasonRevoked = "revoked"

// defaultRevocationTTL is CachingOptions.RevocationTTL when zero.
const defaultRevocationTTL = 24 * time.Hour

// revocationHashDomain separates the revocation hashes' key from the cache
// keys' (both derive from KeySecret) and versions their encoding.
const revocationHashDomain = "tokengate/exchange/revocation-hash/v1"

// ErrBadRevocation: a revocation request that names nothing, or more than
// one thing, to revoke, or a token value that cannot be a token the gateway
// accepts. Revoke's errors match it with errors.Is and are a
// *BadRevocationError, whose Description is safe to show.
var ErrBadRevocation = errors.New("bad revocation request")

// BadRevocationError says what is wrong with a revocation request. Its
// Description names the problem, never the value given.
type BadRevocationError struct{ Description string }

func (e *BadRevocationError) Error() string { return ErrBadRevocation.Error() + ": " + e.Description }

// Is makes errors.Is(err, ErrBadRevocation) hold.
func (e *BadRevocationError) Is(target error) bool { return target == ErrBadRevocation }

// Denylist is what the caching exchanger needs to refuse revoked umbrella
// tokens (declared where consumed; *cache.Denylist implements it).
type Denylist interface {
	Add(r cache.Revocation)
	Revoked(by cache.Field, hash string, issuedAt time.Time) bool
	Empty() bool
}

// RevokingCache is a Cache that can drop entries by keyed hash, and tell
// the other replicas (cache.Memory, cache.Tiered).
type RevokingCache interface {
	Revoke(ctx context.Context, rev cache.Revocation) (int, error)
}

// LocalCache is a Cache with a lookup that costs no network round trip
// (cache.Tiered's memory tier). The caching exchanger uses it before joining
// a key's flight, and the full Get only inside it, so a burst on one key
// makes one remote read.
type LocalCache interface {
	GetLocal(ctx context.Context, key string) (cache.Entry, bool)
}

// Revocation asks to revoke exactly one of: every token of a subject (sub),
// of a session (sid), or one umbrella token (a compact JWS, or an opaque
// token when an issuer introspects). A token is revoked by its identity
// (Token.RevocationID), so every spelling of it is refused.
type Revocation struct {
	Subject string
	Session string
	Token   string
}

// RevokeResult says what a revocation did on this replica.
type RevokeResult struct {
	By cache.Field
	// Dropped counts the cached entries dropped here (memory and Redis).
	Dropped int
	// Until is how long the umbrella tokens it covers are refused.
	Until time.Time
}

// tokenHashes are the keyed hashes of one umbrella token, for one secret.
type tokenHashes struct {
	owner *Caching
	sub   string
	sid   string
	tok   string
}

// revocationHash is the keyed hash of one value of field by:
// HMAC-SHA-256(revocation key) over the field and the value, length-prefixed.
// Every replica sharing the KeySecret computes the same hash.
func (c *Caching) revocationHash(by cache.Field, value []byte) string {
	m := hmac.New(sha256.New, c.revokeKey)
	m.Write([]byte{byte(by)})
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(value))))
	m.Write(value)
	return string(m.Sum(nil))
}

// hashesOf returns t's keyed hashes, computed once per token and exchanger.
func (c *Caching) hashesOf(t *Token) *tokenHashes {
	if h := t.hashes.Load(); h != nil && h.owner == c {
		return h
	}
	id := t.RevocationID()
	h := &tokenHashes{owner: c, tok: c.revocationHash(cache.ByToken, id[:])}
	if t.Claims.Subject != "" {
		h.sub = c.revocationHash(cache.BySubject, []byte(t.Claims.Subject))
	}
	if sid := sessionID(&t.Claims); sid != "" {
		h.sid = c.revocationHash(cache.BySession, []byte(sid))
	}
	t.hashes.Store(h)
	return h
}

// sessionID is the token's sid claim (OIDC session id), "" when absent.
func sessionID(c *Claims) string {
	raw, ok := c.Extra["sid"]
	if !ok {
		return ""
	}
	var sid string
	if json.Unmarshal(raw, &sid) != nil {
		return ""
	}
	return sid
}

// revoked reports whether t is refused by a revocation. It costs one atomic
// load until anything has been revoked.
func (c *Caching) revoked(t *Token) bool {
	if c.deny == nil || c.deny.Empty() {
		return false
	}
	h := c.hashesOf(t)
	iat := t.Claims.IssuedAt
	return c.deny.Revoked(cache.ByToken, h.tok, iat) ||
		c.deny.Revoked(cache.BySubject, h.sub, iat) ||
		c.deny.Revoked(cache.BySession, h.sid, iat)
}

// errRevoked is the rejection of a revoked token: 401 invalid_token.
var errRevoked = Reject(ReasonRevoked, "the access token has been revoked", nil)

// CheckRevoked returns a *RejectError with ReasonRevoked when t is refused
// by a revocation, else nil. It is the gateway's revocation step, run on
// every verified token whatever is done with it next (exchange, Txn-Token,
// token endpoint); Exchange checks again so a Caching used alone is safe.
// One atomic load while nothing is revoked.
func (c *Caching) CheckRevoked(t *Token) error {
	if t != nil && c.revoked(t) {
		return errRevoked
	}
	return nil
}

// Revoke revokes r: the denylist refuses the umbrella tokens it covers
// (issued at or before now, for a subject or session; the token itself, for
// a token) until they have expired, and every cached token exchanged from
// them is dropped, here and, through a RevokingCache with Redis, on every
// replica. The denylist is updated first, so no exchange that finishes
// meanwhile can store a token for them. An error after that means other
// replicas may not have been told; this replica has applied it.
func (c *Caching) Revoke(ctx context.Context, r Revocation) (RevokeResult, error) {
	now := c.now()
	rev := cache.Revocation{At: now, Until: now.Add(c.revocationTTL)}
	n := 0
	if r.Subject != "" {
		n++
		rev.By, rev.Hash = cache.BySubject, c.revocationHash(cache.BySubject, []byte(r.Subject))
	}
	if r.Session != "" {
		n++
		rev.By, rev.Hash = cache.BySession, c.revocationHash(cache.BySession, []byte(r.Session))
	}
	if r.Token != "" {
		n++
	}
	if n != 1 {
		return RevokeResult{}, &BadRevocationError{Description: fmt.Sprintf("name exactly one of sub, sid or token (got %d)", n)}
	}
	if r.Token != "" {
		id, err := unverifiedIdentity(r.Token, c.opaqueTokens)
		if err != nil {
			return RevokeResult{}, err
		}
		rev.By, rev.Hash = cache.ByToken, c.revocationHash(cache.ByToken, id[:])
		if exp, ok := unverifiedExpiry(revocationSpelling(r.Token, c.opaqueTokens)); ok && exp.After(rev.Until) {
			rev.Until = exp // refused for as long as it could be presented
		}
	}
	res := RevokeResult{By: rev.By, Until: rev.Until}
	if c.deny != nil {
		c.deny.Add(rev)
	}
	if c.revocations != nil {
		c.revocations.WithLabelValues(rev.By.String(), "admin").Inc()
	}
	rc, ok := c.cache.(RevokingCache)
	if !ok {
		return res, nil
	}
	dropped, err := rc.Revoke(ctx, rev)
	res.Dropped = dropped
	if err != nil {
		return res, fmt.Errorf("revoke by %s: %w", rev.By, err)
	}
	return res, nil
}
