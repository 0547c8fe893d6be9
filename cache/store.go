package cache

import "context"

// Lookup says how far a Find looks and whether it counts in
// tokengate_cache_requests_total. A tier without the distinction (a single
// tier) treats LookupLocal as LookupAll.
type Lookup uint8

const (
	// LookupAll looks in every tier, counted: a plain Get.
	LookupAll Lookup = iota
	// LookupLocal looks only in the tier that costs no network round trip
	// (the memory tier), counted: the caching exchanger's lookup before it
	// joins a key's flight, so a burst on one key makes one remote read.
	LookupLocal
	// LookupRecheck looks in every tier without counting the memory tier
	// again: the lookup inside a flight, after the caller's LookupLocal
	// already missed and was counted (else every miss would count twice and
	// the hit ratio would read low). A remote tier still counts its read.
	LookupRecheck
)

// Store is a cache of exchanged tokens with tiers: what the caching
// exchanger needs from it. Memory, Redis and Tiered implement it, and
// cachetest checks every one of them. Keys are opaque strings (keyed
// hashes, never tokens). Failures never reach the caller: a failed read is
// a miss, a failed write is logged and counted by the tier; only Revoke
// reports an error, because a revocation that other replicas missed must
// be said.
type Store interface {
	// Find returns the entry under key; how says which tiers it reads.
	Find(ctx context.Context, key string, how Lookup) (Entry, bool)
	// Set stores e under key (ignored when e has already expired).
	Set(ctx context.Context, key string, e Entry)
	// Delete drops key (in a shared tier, for every replica).
	Delete(ctx context.Context, key string)
	// Revoke drops every entry whose rev.By hash is rev.Hash, and in a
	// shared tier tells the other replicas; it returns how many entries
	// it dropped here.
	Revoke(ctx context.Context, rev Revocation) (int, error)
}

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Redis)(nil)
	_ Store = (*Tiered)(nil)
)
