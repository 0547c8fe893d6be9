package cache

import (
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
)

// String is the field's name in the admin API and the metrics' by label.
func (f Field) String() string {
	switch f {
	case BySubject:
		return "sub"
	case BySession:
		return "sid"
	case ByToken:
		return "token"
	}
	return "unknown"
}

// valid reports one of the defined fields.
func (f Field) valid() bool { return f >= BySubject && f <= ByToken }

// of returns e's hash for f.
func (f Field) of(e *Entry) string {
	switch f {
	case BySubject:
		return e.SubjectHash
	case BySession:
		return e.SessionHash
	case ByToken:
		return e.TokenHash
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
	// At is when the revocation was made.
	At time.Time
	// Until is when it may be forgotten: every token it refuses has expired by then.
	Until time.Time
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
