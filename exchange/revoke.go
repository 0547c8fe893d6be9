package exchange

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
)

// ReasonRevoked: the umbrella token, its subject, its session, its client
// or its issuer was revoked (POST /admin/revoke). A rejection reason like
// the verifier's.
const ReasonRevoked = "revoked"

// issuedBeforeSkew is how far in the future an issued_before may lie: a
// clock a little ahead of ours. Further would refuse logins not made yet.
const issuedBeforeSkew = time.Minute

// defaultRevocationTTL is CachingOptions.RevocationTTL when zero.
const defaultRevocationTTL = config.DefaultRevocationTTL

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

// Revocation asks to revoke exactly one of: every token of a subject (sub),
// of a session (sid), of a client application (client_id, matching the
// client_id or azp claim), every token of an issuer (iss) issued before
// IssuedBefore, or one umbrella token (a compact JWS, or an opaque token
// when an issuer introspects). A token is revoked by its identity
// (Token.RevocationID), so every spelling of it is refused.
type Revocation struct {
	Subject  string
	Session  string
	Token    string
	ClientID string
	Issuer   string
	// IssuedBefore goes with Issuer, and only with it: tokens whose iat is
	// earlier are refused (and those without iat). At most a minute ahead.
	IssuedBefore time.Time
}

// RevocationInfo is one revocation in force, as GET /admin/revocations
// lists it: never a token.
type RevocationInfo struct {
	// Kind is sub, sid, token, client_id, iss, key_removed or signing_key_removed.
	Kind string
	// Value is the sub, sid, client_id or iss; the issuer for key_removed;
	// the kid for signing_key_removed; a short hex prefix of the keyed hash
	// for token.
	Value string
	// KeyID is the removed kid, for key_removed.
	KeyID string
	// IssuedBefore is the cut-off of an iss revocation.
	IssuedBefore time.Time
	// At is when it was made; Until when it stops (every token it refuses
	// has expired by then).
	At, Until time.Time
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
	owner  *Caching
	sub    string
	sid    string
	tok    string
	client string
	iss    string
	key    string // (iss, kid of the verifying key)
}

// revocationHash is the keyed hash of one value of field by:
// HMAC-SHA-256(revocation key) over the field and the value, length-prefixed.
// Every replica sharing the KeySecret computes the same hash.
func (c *Caching) revocationHash(by cache.Field, value []byte) string {
	h, _ := c.revocationMACs.Get().(*revocationMAC)
	if h == nil {
		h = &revocationMAC{mac: hmac.New(sha256.New, c.revokeKey)}
	}
	h.mac.Reset()
	var prefix [9]byte
	prefix[0] = byte(by)
	binary.BigEndian.PutUint64(prefix[1:], uint64(len(value)))
	h.mac.Write(prefix[:])
	h.mac.Write(value)
	sum := string(h.mac.Sum(h.sum[:0]))
	c.revocationMACs.Put(h)
	return sum
}

// revocationMAC is a keyed HMAC reused across revocation hashes: a new
// token needs six of them, and a fresh HMAC allocates its two digests.
type revocationMAC struct {
	mac hash.Hash
	sum [sha256.Size]byte
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
	if t.Claims.ClientID != "" {
		h.client = c.revocationHash(cache.ByClient, []byte(t.Claims.ClientID))
	}
	if t.Claims.Issuer != "" {
		h.iss = c.revocationHash(cache.ByIssuer, []byte(t.Claims.Issuer))
		if t.KeyID != "" {
			h.key = c.keyHash(t.Claims.Issuer, t.KeyID)
		}
	}
	t.hashes.Store(h)
	return h
}

// RevokedBy reports whether rev names t itself (a ByToken revocation of
// t's identity): the introspection cache drops such tokens.
func (c *Caching) RevokedBy(t *Token, rev cache.Revocation) bool {
	return t != nil && rev.By == cache.ByToken && rev.Hash != "" && c.hashesOf(t).tok == rev.Hash
}

// keyHash is the keyed hash of an issuer's key (iss, kid): length-prefixed,
// so no two pairs share an input.
func (c *Caching) keyHash(iss, kid string) string {
	v := make([]byte, 0, 8+len(iss)+len(kid))
	v = binary.BigEndian.AppendUint64(v, uint64(len(iss)))
	v = append(v, iss...)
	return c.revocationHash(cache.ByKey, append(v, kid...))
}

// signingKeyHash is the keyed hash of a local signing key's kid.
func (c *Caching) signingKeyHash(kid string) string {
	return c.revocationHash(cache.BySigningKey, []byte(kid))
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
	return c.refusal(t) != nil
}

// refusal is the rejection of t by the denylist, nil when none: a token
// signed with a key its issuer removed is refused as an unknown key, every
// other revocation as revoked.
func (c *Caching) refusal(t *Token) error {
	if c.deny == nil || c.deny.Empty() {
		return nil
	}
	h := c.hashesOf(t)
	iat := t.Claims.IssuedAt
	if c.deny.Revoked(cache.ByKey, h.key, iat) {
		return errKeyRemoved
	}
	if c.deny.Revoked(cache.ByToken, h.tok, iat) ||
		c.deny.Revoked(cache.BySubject, h.sub, iat) ||
		c.deny.Revoked(cache.BySession, h.sid, iat) ||
		c.deny.Revoked(cache.ByClient, h.client, iat) ||
		c.deny.Revoked(cache.ByIssuer, h.iss, iat) {
		return errRevoked
	}
	return nil
}

// errRevoked is the rejection of a revoked token: 401 invalid_token.
var errRevoked = Reject(ReasonRevoked, "the access token has been revoked", nil)

// errKeyRemoved is the rejection of a token signed with a key that a JWKS
// refresh (here or on another replica) found removed: 401 invalid_token.
var errKeyRemoved = Reject(ReasonUnknownKey, "token signed with a key its issuer removed", nil)

// CheckRevoked returns a *RejectError with ReasonRevoked when t is refused
// by a revocation, else nil. It is the gateway's revocation step, run on
// every verified token whatever is done with it next (exchange, Txn-Token,
// token endpoint); Exchange checks again so a Caching used alone is safe.
// One atomic load while nothing is revoked.
func (c *Caching) CheckRevoked(t *Token) error {
	if t == nil {
		return nil
	}
	return c.refusal(t)
}

// Revoke revokes r: the denylist refuses the umbrella tokens it covers
// (issued at or before now, for a subject or session; the token itself, for
// a token) until they have expired, and every cached token exchanged from
// them is dropped, here and, through a cache.Tiered with Redis, on every
// replica. The denylist is updated first, so no exchange that finishes
// meanwhile can store a token for them. An error after that means other
// replicas may not have been told; this replica has applied it.
func (c *Caching) Revoke(ctx context.Context, r Revocation) (RevokeResult, error) {
	rev, err := c.revocationOf(r)
	if err != nil {
		return RevokeResult{}, err
	}
	return c.apply(ctx, rev, "admin")
}

// apply records rev in the denylist, counts it, and drops the cached
// entries it matches here and, through a cache.Tiered with Redis, on every
// replica.
func (c *Caching) apply(ctx context.Context, rev cache.Revocation, source string) (RevokeResult, error) {
	res := RevokeResult{By: rev.By, Until: rev.Until}
	if c.deny != nil {
		c.deny.Add(rev)
	}
	if c.onRevoked != nil {
		c.onRevoked(rev)
	}
	if c.revocations != nil {
		c.revocations.WithLabelValues(rev.By.String(), source).Inc()
	}
	dropped, err := c.cache.Revoke(ctx, rev)
	res.Dropped = dropped
	if err != nil {
		return res, fmt.Errorf("revoke by %s: %w", rev.By, err)
	}
	return res, nil
}

// revocationOf checks r (exactly one thing named, usable values) and
// builds the cache revocation: its keyed hash, cut-off and display value.
func (c *Caching) revocationOf(r Revocation) (cache.Revocation, error) {
	now := c.now()
	rev := cache.Revocation{At: now, Made: now, Until: now.Add(c.revocationTTL)}
	n := 0
	for _, v := range []string{r.Subject, r.Session, r.Token, r.ClientID, r.Issuer} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return rev, &BadRevocationError{Description: fmt.Sprintf("name exactly one of sub, sid, client_id, iss or token (got %d)", n)}
	}
	if r.Issuer == "" && !r.IssuedBefore.IsZero() {
		return rev, &BadRevocationError{Description: "issued_before goes with iss only"}
	}
	switch {
	case r.Subject != "":
		rev.By, rev.Value = cache.BySubject, r.Subject
	case r.Session != "":
		rev.By, rev.Value = cache.BySession, r.Session
	case r.ClientID != "":
		rev.By, rev.Value = cache.ByClient, r.ClientID
	case r.Issuer != "":
		if r.IssuedBefore.IsZero() {
			return rev, &BadRevocationError{Description: "iss needs issued_before (unix seconds or RFC 3339): the tokens issued before it are refused"}
		}
		if r.IssuedBefore.After(now.Add(issuedBeforeSkew)) {
			return rev, &BadRevocationError{Description: "issued_before is more than a minute in the future: it would refuse logins not made yet"}
		}
		// iat earlier than issued_before: at or before the instant just before it.
		rev.By, rev.Value, rev.At = cache.ByIssuer, r.Issuer, r.IssuedBefore.Add(-time.Nanosecond)
	case r.Token != "":
		id, err := unverifiedIdentity(r.Token, c.opaqueTokens)
		if err != nil {
			return rev, err
		}
		rev.By = cache.ByToken
		if exp, ok := UnverifiedExpiry(revocationSpelling(r.Token, c.opaqueTokens)); ok && exp.After(rev.Until) {
			rev.Until = exp // refused for as long as it could be presented
		}
		rev.Hash = c.revocationHash(cache.ByToken, id[:])
		rev.Value = hex.EncodeToString([]byte(rev.Hash[:8])) // names the entry, reveals nothing
		return rev, nil
	}
	if rev.By == cache.ByIssuer {
		rev.Hash = c.revocationHash(rev.By, []byte(r.Issuer))
	} else {
		rev.Hash = c.revocationHash(rev.By, []byte(rev.Value))
	}
	return rev, nil
}

// Revocations lists the revocations in force on this replica (its own,
// its peers', and those loaded from Redis), oldest first. Never a token.
func (c *Caching) Revocations() []RevocationInfo {
	lister, ok := c.deny.(interface{ List() []cache.Revocation })
	if !ok {
		return nil
	}
	all := lister.List()
	out := make([]RevocationInfo, 0, len(all))
	for i := range all {
		r := &all[i]
		info := RevocationInfo{Kind: r.By.String(), Value: r.Value, At: r.MadeAt().UTC(), Until: r.Until.UTC()}
		switch r.By {
		case cache.ByIssuer:
			info.IssuedBefore = r.At.Add(time.Nanosecond).UTC()
		case cache.ByKey:
			info.Value, info.KeyID, _ = strings.Cut(r.Value, " ")
		}
		out = append(out, info)
	}
	return out
}

// keyRemovalTimeout bounds telling Redis about a removed key (a background
// action, not on a request's path).
const keyRemovalTimeout = 10 * time.Second

// KeyRemoved refuses the umbrella tokens that issuer signed with key kid
// and issued at or before now (a JWKS refresh found the key removed): 401
// invalid_token, reason unknown_key, on every replica (the revocation
// travels through Redis like an admin one), and drops the exchanged tokens
// cached for them, here, in Redis and on every replica. A token the issuer
// signs later with a key of the same kid (put back) is accepted. Errors are
// logged: the refresh that found the removal goes on.
func (c *Caching) KeyRemoved(issuer, kid string) {
	now := c.now()
	rev := cache.Revocation{
		By: cache.ByKey, Hash: c.keyHash(issuer, kid), At: now, Made: now,
		Until: now.Add(c.revocationTTL), Value: issuer + " " + kid,
	}
	ctx, cancel := context.WithTimeout(context.Background(), keyRemovalTimeout)
	defer cancel()
	res, err := c.apply(ctx, rev, "jwks")
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelError, "key removal applied on this replica only: Redis could not be told",
			slog.String("issuer", issuer), slog.String("kid", kid), slog.Any("error", err))
		return
	}
	c.log.LogAttrs(ctx, slog.LevelWarn, "tokens signed with a removed issuer key are refused",
		slog.String("event", "revocation"), slog.String("kind", cache.ByKey.String()),
		slog.String("issuer", issuer), slog.String("kid", kid), slog.Int("entries_dropped", res.Dropped))
}

// SigningKeyRemoved drops every cached exchanged token signed with the
// local signing key kid (removed from exchange.local.signing_keys by a
// reload), here, in Redis and, through pub/sub, on every replica, and
// lists the removal in GET /admin/revocations until revocation_ttl. It
// refuses no umbrella token: the exchanged tokens already handed out are
// refused by the backends once their JWKS no longer holds the key.
func (c *Caching) SigningKeyRemoved(ctx context.Context, kid string) (RevokeResult, error) {
	now := c.now()
	rev := cache.Revocation{
		By: cache.BySigningKey, Hash: c.signingKeyHash(kid), At: now, Made: now,
		Until: now.Add(c.revocationTTL), Value: kid,
	}
	return c.apply(ctx, rev, "reload")
}
