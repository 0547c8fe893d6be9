package cache

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Field names the keyed hash of an Entry that a revocation matches.
type Field uint8

// The fields a revocation can match. Their values are part of the Redis
// encodings: never renumber them.
const (
	// BySubject matches Entry.SubjectHash: every token of one subject.
	BySubject Field = 1
	// BySession matches Entry.SessionHash: every token of one session (sid).
	BySession Field = 2
	// ByToken matches Entry.TokenHash: every token exchanged from one umbrella token.
	ByToken Field = 3
	// ByClient matches Entry.ClientHash: every token of one client
	// application (client_id, or azp).
	ByClient Field = 4
	// ByIssuer matches Entry.IssuerHash: every token of one issuer (iss),
	// issued before a given time.
	ByIssuer Field = 5
	// ByKey matches Entry.KeyHash: every token its issuer signed with one
	// key (iss, kid), the key having been removed from the issuer's JWKS.
	ByKey Field = 6
	// BySigningKey matches Entry.SigningKeyHash: every exchanged token
	// signed with one local signing key (its kid), the key having been
	// removed from exchange.local.signing_keys.
	BySigningKey Field = 7
)

// fieldMax is the highest defined field.
const fieldMax = BySigningKey

// Fields are every defined field, in order: the Redis tier indexes an entry
// under each of its non-empty hashes.
var Fields = [...]Field{BySubject, BySession, ByToken, ByClient, ByIssuer, ByKey, BySigningKey}

// String is the field's name in the admin API and the metrics' by label.
func (f Field) String() string {
	switch f {
	case BySubject:
		return "sub"
	case BySession:
		return "sid"
	case ByToken:
		return "token"
	case ByClient:
		return "client_id"
	case ByIssuer:
		return "iss"
	case ByKey:
		return "key_removed"
	case BySigningKey:
		return "signing_key_removed"
	}
	return "unknown"
}

// Purge causes: the cause label of tokengate_purged_entries_total.
const (
	CauseRevoked           = "revoked"
	CauseKeyRemoved        = "key_removed"
	CauseSigningKeyRemoved = "signing_key_removed"
)

// Cause is why entries matching f are purged.
func (f Field) Cause() string {
	switch f {
	case ByKey:
		return CauseKeyRemoved
	case BySigningKey:
		return CauseSigningKeyRemoved
	}
	return CauseRevoked
}

// valid reports one of the defined fields.
func (f Field) valid() bool { return f >= BySubject && f <= fieldMax }

// of returns e's hash for f.
func (f Field) of(e *Entry) string {
	switch f {
	case BySubject:
		return e.SubjectHash
	case BySession:
		return e.SessionHash
	case ByToken:
		return e.TokenHash
	case ByClient:
		return e.ClientHash
	case ByIssuer:
		return e.IssuerHash
	case ByKey:
		return e.KeyHash
	case BySigningKey:
		return e.SigningKeyHash
	}
	return ""
}

// Revocation says that every umbrella token matching (By, Hash) and issued
// at or before At is refused until Until, and that every cached token
// exchanged from one is dropped. For ByToken, At does not matter: the token
// itself is refused.
type Revocation struct {
	By   Field
	Hash string // a keyed hash, as in Entry; never a raw value
	// At is the cut-off: tokens issued at or before it are refused. It is
	// when the revocation was made, except for ByIssuer (just before the
	// issued_before time given).
	At time.Time
	// Until is when it may be forgotten: every token it refuses has expired by then.
	Until time.Time
	// Made is when the revocation was made (zero from a replica that
	// predates it: At then is).
	Made time.Time
	// Value is what the operator listing revocations sees: the sub, sid,
	// client_id or iss value, "iss kid" for a removed key, the kid of a
	// removed signing key; for ByToken a short hex prefix of the keyed
	// hash, never the token. Not a secret: Redis stores it sealed all the same.
	Value string
}

// MadeAt is Made, or At when Made is unknown.
func (r *Revocation) MadeAt() time.Time {
	if r.Made.IsZero() {
		return r.At
	}
	return r.Made
}

// denyKey indexes the denylist.
type denyKey struct {
	by   Field
	hash string
}

// Denylist remembers revocations so the exchanger can refuse revoked
// umbrella tokens until they expire. It lives as long as the process (across
// configuration reloads) and is filled locally, from peers through Redis
// pub/sub, and from Redis when (re)subscribing. Safe for concurrent use.
type Denylist struct {
	now func() time.Time
	// size is len(m), read without the lock: Empty is on the hot path.
	size atomic.Int64
	mu   sync.RWMutex
	m    map[denyKey]Revocation
}

// NewDenylist returns an empty denylist; clock defaults to time.Now.
func NewDenylist(clock func() time.Time) *Denylist {
	if clock == nil {
		clock = time.Now
	}
	return &Denylist{now: clock, m: map[denyKey]Revocation{}}
}

// Add records r. A second revocation of the same hash keeps the later At
// and the later Until. Revocations already past Until are ignored, and
// expired ones are forgotten.
func (d *Denylist) Add(r Revocation) {
	now := d.now()
	if !r.By.valid() || r.Hash == "" || !now.Before(r.Until) {
		return
	}
	k := denyKey{r.By, r.Hash}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.m[k]; ok {
		if old.At.After(r.At) {
			r.At = old.At
		}
		if old.Until.After(r.Until) {
			r.Until = old.Until
		}
		if r.Value == "" {
			r.Value = old.Value
		}
		// Made follows At: the later revocation is the one listed.
		if r.Made = r.MadeAt(); old.MadeAt().After(r.Made) {
			r.Made = old.MadeAt()
		}
	}
	d.m[k] = r
	// Revocations are rare and few: sweeping them all here is cheap.
	for k, old := range d.m {
		if !now.Before(old.Until) {
			delete(d.m, k)
		}
	}
	d.size.Store(int64(len(d.m)))
}

// Empty reports a denylist with nothing in it: one atomic load, so callers
// can skip computing hashes until a first revocation.
func (d *Denylist) Empty() bool { return d.size.Load() == 0 }

// Len is the number of revocations remembered (expired ones included until
// the next Add).
func (d *Denylist) Len() int { return int(d.size.Load()) }

// List returns the revocations in force, oldest first.
func (d *Denylist) List() []Revocation {
	now := d.now()
	d.mu.RLock()
	out := make([]Revocation, 0, len(d.m))
	for _, r := range d.m {
		if now.Before(r.Until) {
			out = append(out, r)
		}
	}
	d.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].MadeAt(), out[j].MadeAt()
		if !a.Equal(b) {
			return a.Before(b)
		}
		if out[i].By != out[j].By {
			return out[i].By < out[j].By
		}
		return out[i].Hash < out[j].Hash
	})
	return out
}

// Revoked reports whether a token whose by-hash is hash and which was issued
// at issuedAt (zero when unknown) is refused.
func (d *Denylist) Revoked(by Field, hash string, issuedAt time.Time) bool {
	if hash == "" || d.Empty() {
		return false
	}
	d.mu.RLock()
	r, ok := d.m[denyKey{by, hash}]
	d.mu.RUnlock()
	if !ok || !d.now().Before(r.Until) {
		return false
	}
	// A token issued after the revocation (a new login) is not refused; one
	// without iat cannot show it was, so it is.
	return by == ByToken || issuedAt.IsZero() || !issuedAt.After(r.At)
}
