package cache

import (
	"context"
	"fmt"
)

// Tiered is the memory tier over the Redis tier: reads try memory, then
// Redis (a Redis hit fills memory); writes, deletes and revocations go to
// both. Safe for concurrent use.
type Tiered struct {
	mem   *Memory
	redis *Redis
}

// NewTiered composes the two tiers.
func NewTiered(mem *Memory, r *Redis) (*Tiered, error) {
	if mem == nil || r == nil {
		return nil, fmt.Errorf("new tiered cache: both tiers are required")
	}
	return &Tiered{mem: mem, redis: r}, nil
}

// Memory is the memory tier.
func (t *Tiered) Memory() *Memory { return t.mem }

// Redis is the Redis tier.
func (t *Tiered) Redis() *Redis { return t.redis }

// Get returns the entry under key from memory, else from Redis, copying a
// Redis hit into memory.
func (t *Tiered) Get(ctx context.Context, key string) (Entry, bool) {
	return t.Find(ctx, key, LookupAll)
}

// Find looks in memory, then (unless how is LookupLocal) in Redis, copying
// a Redis hit into memory. LookupLocal costs no round trip, for callers
// that do the full lookup once per burst (inside a flight); LookupRecheck
// is that full lookup after a counted LookupLocal miss: memory again
// without counting it, then Redis, counted (the one Redis read of the burst).
func (t *Tiered) Find(ctx context.Context, key string, how Lookup) (Entry, bool) {
	if e, ok := t.mem.Find(ctx, key, how); ok || how == LookupLocal {
		return e, ok
	}
	return t.fromRedis(ctx, key)
}

// fromRedis reads key from Redis after a memory miss, copying a hit into
// memory so the next lookup on this replica costs no round trip.
func (t *Tiered) fromRedis(ctx context.Context, key string) (Entry, bool) {
	e, ok := t.redis.Get(ctx, key)
	if ok {
		t.mem.Set(ctx, key, e)
	}
	return e, ok
}

// Set stores e in both tiers.
func (t *Tiered) Set(ctx context.Context, key string, e Entry) {
	t.mem.Set(ctx, key, e)
	t.redis.Set(ctx, key, e)
}

// Delete drops key from both tiers and tells the other replicas to drop it
// from their memory tiers.
func (t *Tiered) Delete(ctx context.Context, key string) {
	t.mem.Delete(ctx, key)
	t.redis.Delete(ctx, key)
	t.redis.PublishDelete(ctx, key)
}

// Revoke drops the entries matching rev from both tiers, stores rev in
// Redis for replicas that start later, and publishes it to the others. It
// returns how many entries it dropped here (memory and Redis together); an
// error means Redis could not be told, the memory tier was still cleaned.
func (t *Tiered) Revoke(ctx context.Context, rev Revocation) (int, error) {
	n, _ := t.mem.Revoke(ctx, rev)
	m, err := t.redis.Revoke(ctx, rev)
	return n + m, err
}

// Listen applies what other replicas publish to the memory tier, and hands
// every revocation in force to onRevoked (the process's denylist), until ctx
// ends. Run it in its own goroutine.
func (t *Tiered) Listen(ctx context.Context, onRevoked func(Revocation)) {
	t.redis.Listen(ctx, Listener{
		Revoked: func(ctx context.Context, rev Revocation, _ bool) {
			if onRevoked != nil {
				onRevoked(rev)
			}
			_, _ = t.mem.Revoke(ctx, rev)
		},
		Deleted: func(ctx context.Context, key string) { t.mem.Delete(ctx, key) },
	})
}
