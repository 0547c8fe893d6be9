package cache

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/config"
)

// Redis tier defaults for zero-valued options.
const (
	defaultRedisTimeout    = config.DefaultRedisTimeout
	defaultBreakerFailures = config.DefaultRedisBreakerFailures
	defaultBreakerBackoff  = config.DefaultRedisBreakerBackoff
	// redisAdminTimeout bounds a revocation's Redis work (an admin action,
	// not on the request path, and possibly many deletions).
	redisAdminTimeout = 5 * time.Second
)

// Kinds of Redis names: a byte of the keyed hash, so an entry, an index and
// a denylist field never share a name.
const (
	nameEntry   byte = 'e'
	nameIndex   byte = 'i'
	nameRevoked byte = 'r'
)

// Redis ops: the op label of the Redis metrics.
const (
	opGet     = "get"
	opSet     = "set"
	opDelete  = "delete"
	opRevoke  = "revoke"
	opPublish = "publish"
	opPing    = "ping"
	opLoad    = "load_revocations"
	opSkipped = "skipped"
)

// extendScript adds a member to a set (ARGV[1]) or a field to a hash
// (ARGV[1] = ARGV[2]) and makes the key live at least ARGV[3] ms more. One
// key per script call, so it works unchanged on Redis Cluster.
var (
	indexScript = redis.NewScript(`redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('PTTL', KEYS[1])
if t < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`)
	revokedScript = redis.NewScript(`redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local t = redis.call('PTTL', KEYS[1])
if t < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1`)
)

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// Client is a go-redis client: single node, cluster or Sentinel. Required.
	// The tier never closes it.
	Client redis.UniversalClient
	// Keyring names and seals everything the tier writes. Required.
	Keyring *Keyring
	// KeyPrefix starts every key and the pub/sub channel's name.
	KeyPrefix string
	// RefreshBefore is subtracted from an entry's remaining life to get its
	// Redis TTL (except for capped entries, served to the end): the
	// exchanger never serves an entry in that window anyway.
	RefreshBefore time.Duration
	// Timeout bounds every Redis call on the request path; 0 means 400ms.
	Timeout time.Duration
	// BreakerFailures consecutive failures open the breaker; 0 means 5.
	BreakerFailures int
	// BreakerBackoff is how long an open breaker skips Redis before one
	// probe call is let through; 0 means 5s.
	BreakerBackoff time.Duration
	// Clock defaults to time.Now. It decides expiry; Redis TTLs are only a
	// bound on storage.
	Clock func() time.Time
	// Metrics may be nil.
	Metrics *Metrics
	// Logger receives breaker changes and subscription problems; nil discards.
	Logger *slog.Logger
}

// Redis is the shared cache tier. Names are key_prefix + a keyed hash;
// values are AES-256-GCM sealed with the Redis name as additional data.
// Failures never reach the caller: a failed or skipped Get is a miss, a
// failed Set or Delete is logged by count. After BreakerFailures failures in
// a row the breaker skips Redis for BreakerBackoff, then lets one probe
// through. Safe for concurrent use.
type Redis struct {
	client  redis.UniversalClient
	keys    *Keyring
	prefix  string
	channel string
	revoked string
	margin  time.Duration
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
	breaker *breaker
	origin  string // identifies this tier's messages on the channel

	hits, misses, errs prometheus.Counter
	duration           *prometheus.HistogramVec
	failures           *prometheus.CounterVec
	revocations        *prometheus.CounterVec
	purged             *prometheus.CounterVec
}

// NewRedis returns a Redis tier over opts.Client.
func NewRedis(opts RedisOptions) (*Redis, error) {
	if opts.Client == nil {
		return nil, errors.New("new redis cache: no client")
	}
	if opts.Keyring == nil {
		return nil, errors.New("new redis cache: no keyring")
	}
	if opts.RefreshBefore < 0 || opts.Timeout < 0 || opts.BreakerFailures < 0 || opts.BreakerBackoff < 0 {
		return nil, errors.New("new redis cache: refresh before, timeout and breaker settings must not be negative")
	}
	m := opts.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	origin := make([]byte, 12)
	if _, err := rand.Read(origin); err != nil {
		return nil, fmt.Errorf("new redis cache: origin id: %w", err)
	}
	r := &Redis{
		client:      opts.Client,
		keys:        opts.Keyring,
		prefix:      opts.KeyPrefix,
		channel:     opts.KeyPrefix + "revocations",
		revoked:     opts.KeyPrefix + "revoked",
		margin:      opts.RefreshBefore,
		timeout:     opts.Timeout,
		now:         opts.Clock,
		log:         opts.Logger,
		origin:      base64.RawURLEncoding.EncodeToString(origin),
		hits:        m.Requests.WithLabelValues(TierRedis, ResultHit),
		misses:      m.Requests.WithLabelValues(TierRedis, ResultMiss),
		errs:        m.Requests.WithLabelValues(TierRedis, ResultError),
		duration:    m.RedisDuration,
		failures:    m.RedisErrors,
		revocations: m.Revocations,
		purged:      m.Purged,
	}
	if r.timeout == 0 {
		r.timeout = defaultRedisTimeout
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	failures, backoff := opts.BreakerFailures, opts.BreakerBackoff
	if failures == 0 {
		failures = defaultBreakerFailures
	}
	if backoff == 0 {
		backoff = defaultBreakerBackoff
	}
	r.breaker = newBreaker(failures, backoff, m.BreakerOpen, r.log)
	return r, nil
}

// entryName is the Redis key of a cache key.
func (r *Redis) entryName(key string) string {
	return r.prefix + "e:" + r.keys.name(nameEntry, key)
}

// indexName is the Redis set of the entry names whose by-hash is hash.
func (r *Redis) indexName(by Field, hash string) string {
	return r.prefix + "i:" + r.keys.name(nameIndex, string([]byte{byte(by)}), hash)
}

// call runs one Redis call on the request path: through the breaker, bounded
// by the timeout, observed. It returns errBreakerOpen when the breaker
// skipped it.
func (r *Redis) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	done, allowed := r.breaker.allow()
	if !allowed {
		r.failures.WithLabelValues(opSkipped).Inc()
		return errBreakerOpen
	}
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	start := time.Now()
	err := fn(cctx)
	cancel()
	r.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		done(nil)
	case ctx.Err() != nil:
		// The caller gave up: says nothing about Redis.
		done(errExcluded)
	default:
		done(err)
		r.failures.WithLabelValues(op).Inc()
	}
	return err
}

// Find is Get: the Redis tier alone has no local part to look in first, and
// its one read is counted whatever how says.
func (r *Redis) Find(ctx context.Context, key string, _ Lookup) (Entry, bool) {
	return r.Get(ctx, key)
}

// Get returns the entry stored under key. A miss, an error, a skipped call
// and a value that does not open are all misses to the caller; the last
// three count as result "error".
func (r *Redis) Get(ctx context.Context, key string) (Entry, bool) {
	name := r.entryName(key)
	var b []byte
	err := r.call(ctx, opGet, func(ctx context.Context) error {
		var err error
		b, err = r.client.Get(ctx, name).Bytes()
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		r.misses.Inc()
		return Entry{}, false
	case err != nil:
		r.errs.Inc()
		return Entry{}, false
	}
	pt, err := r.keys.open(b, name)
	if err == nil {
		var e Entry
		if e, err = decodeEntry(pt); err == nil {
			if !r.now().Before(e.ExpiresAt) {
				r.misses.Inc()
				return Entry{}, false
			}
			r.hits.Inc()
			return e, true
		}
	}
	r.errs.Inc()
	r.log.LogAttrs(ctx, slog.LevelDebug, "redis cache value does not open; treated as a miss", slog.Any("error", err))
	return Entry{}, false
}

// ttl is how long e should live in Redis at now; <= 0 means do not store.
func (r *Redis) ttl(e *Entry, now time.Time) time.Duration {
	d := e.ExpiresAt.Sub(now)
	if !e.Capped {
		d -= r.margin
	}
	return d.Truncate(time.Millisecond)
}

// Set stores e under key for its remaining life less the refresh margin,
// and adds it to the revocation indexes of its hashes, in one round trip.
func (r *Redis) Set(ctx context.Context, key string, e Entry) {
	ttl := r.ttl(&e, r.now())
	if ttl <= 0 {
		return
	}
	name := r.entryName(key)
	sealed, err := r.keys.seal(encodeEntry(&e), name)
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "redis cache: cannot seal an entry", slog.Any("error", err))
		return
	}
	ms := strconv.FormatInt(ttl.Milliseconds(), 10)
	_ = r.call(ctx, opSet, func(ctx context.Context) error {
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, name, sealed, ttl)
			for _, by := range Fields {
				if h := by.of(&e); h != "" {
					indexScript.Eval(ctx, p, []string{r.indexName(by, h)}, name, ms)
				}
			}
			return nil
		})
		return err
	})
}

// Delete removes the entry stored under key. Its index memberships stay
// until the index expires: deleting a name twice is harmless.
func (r *Redis) Delete(ctx context.Context, key string) {
	name := r.entryName(key)
	_ = r.call(ctx, opDelete, func(ctx context.Context) error {
		return r.client.Del(ctx, name).Err()
	})
}

// Ping checks that Redis answers, bypassing the breaker (readiness).
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	start := time.Now()
	err := r.client.Ping(ctx).Err()
	r.duration.WithLabelValues(opPing).Observe(time.Since(start).Seconds())
	if err != nil {
		r.failures.WithLabelValues(opPing).Inc()
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// BreakerOpen reports whether the breaker currently skips Redis.
func (r *Redis) BreakerOpen() bool { return r.breaker.open() }

// Revoke makes rev known to every replica: it drops the Redis entries whose
// by-hash matches (through the index), stores rev in the shared denylist
// (so a replica that starts later refuses the token too), and publishes it.
// It bypasses the breaker (an admin action must try) and returns how many
// Redis entries it dropped; every step is tried even when one fails.
func (r *Redis) Revoke(ctx context.Context, rev Revocation) (int, error) {
	if !rev.By.valid() || rev.Hash == "" {
		return 0, nil // matches nothing, as in the memory tier
	}
	ctx, cancel := context.WithTimeout(ctx, redisAdminTimeout)
	defer cancel()
	start := time.Now()
	defer func() { r.duration.WithLabelValues(opRevoke).Observe(time.Since(start).Seconds()) }()

	var errs []error
	if err := r.storeRevocation(ctx, &rev); err != nil {
		errs = append(errs, err)
	}
	dropped, err := r.dropIndexed(ctx, rev.By, rev.Hash)
	if err != nil {
		errs = append(errs, err)
	}
	if dropped > 0 {
		r.purged.WithLabelValues(rev.By.Cause(), TierRedis).Add(float64(dropped))
	}
	if err := r.publish(ctx, &message{origin: r.origin, revocation: &rev}); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		r.failures.WithLabelValues(opRevoke).Inc()
		return dropped, fmt.Errorf("redis revoke: %w", err)
	}
	return dropped, nil
}

// storeRevocation adds rev to the shared denylist hash, which lives as long
// as its longest-lived revocation.
func (r *Redis) storeRevocation(ctx context.Context, rev *Revocation) error {
	field := r.keys.name(nameRevoked, string([]byte{byte(rev.By)}), rev.Hash)
	sealed, err := r.keys.seal(encodeStoredRevocation(rev), r.revoked+"#"+field)
	if err != nil {
		return fmt.Errorf("store revocation: %w", err)
	}
	ttl := rev.Until.Sub(r.now()).Milliseconds()
	if ttl <= 0 {
		return nil
	}
	if err := revokedScript.Eval(ctx, r.client, []string{r.revoked}, field, sealed, ttl).Err(); err != nil {
		return fmt.Errorf("store revocation: %w", err)
	}
	return nil
}

// dropIndexed deletes every entry listed in the index of (by, hash), then
// the index. Entries are deleted one command each (pipelined), as on a
// cluster they live in different slots.
func (r *Redis) dropIndexed(ctx context.Context, by Field, hash string) (int, error) {
	idx := r.indexName(by, hash)
	names, err := r.client.SMembers(ctx, idx).Result()
	if err != nil {
		return 0, fmt.Errorf("read index: %w", err)
	}
	cmds := make([]*redis.IntCmd, 0, len(names))
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, n := range names {
			cmds = append(cmds, p.Del(ctx, n))
		}
		p.Del(ctx, idx)
		return nil
	})
	dropped := 0
	for _, c := range cmds {
		dropped += int(c.Val())
	}
	if err != nil {
		return dropped, fmt.Errorf("delete indexed entries: %w", err)
	}
	return dropped, nil
}

// PublishDelete tells the other replicas to drop key from their memory
// tiers (its upstream refused the token). Best effort, through the breaker.
func (r *Redis) PublishDelete(ctx context.Context, key string) {
	_ = r.call(ctx, opPublish, func(ctx context.Context) error {
		return r.publish(ctx, &message{origin: r.origin, deleteKey: key})
	})
}

// publish seals m (the channel's name is its additional data) and
// publishes it: nothing on the channel is readable or forgeable without
// the keys.
func (r *Redis) publish(ctx context.Context, m *message) error {
	sealed, err := r.keys.seal(encodeMessage(m), r.channel)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := r.client.Publish(ctx, r.channel, sealed).Err(); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// Listener receives what other replicas publish. Revocations are also
// delivered from the shared denylist on every (re)subscription, so a
// replica that was away misses none that are still in force.
type Listener struct {
	// Revoked is called for each revocation in force.
	Revoked func(ctx context.Context, rev Revocation, fromPeer bool)
	// Deleted is called with a cache key another replica dropped.
	Deleted func(ctx context.Context, key string)
}

// Listen subscribes to the revocations channel and delivers messages to l
// until ctx ends. go-redis reconnects and resubscribes by itself; each
// (re)subscription reloads the shared denylist.
func (r *Redis) Listen(ctx context.Context, l Listener) {
	ps := r.client.Subscribe(ctx, r.channel)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(256))
	for {
		select {
		case <-ctx.Done():
			return
		case v, ok := <-ch:
			if !ok {
				return
			}
			switch v := v.(type) {
			case *redis.Subscription:
				if v.Kind == "subscribe" {
					r.loadRevocations(ctx, l)
				}
			case *redis.Message:
				r.deliver(ctx, v.Payload, l)
			}
		}
	}
}

func (r *Redis) deliver(ctx context.Context, payload string, l Listener) {
	pt, err := r.keys.open([]byte(payload), r.channel)
	var m *message
	if err == nil {
		m, err = decodeMessage(pt)
	}
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "redis: a message on the revocations channel does not open; ignored", slog.Any("error", err))
		return
	}
	if m.origin == r.origin {
		return
	}
	switch {
	case m.revocation != nil:
		r.revocations.WithLabelValues(m.revocation.By.String(), "peer").Inc()
		if l.Revoked != nil {
			l.Revoked(ctx, *m.revocation, true)
		}
	case l.Deleted != nil:
		l.Deleted(ctx, m.deleteKey)
	}
}

// loadRevocations delivers every revocation still in force from the shared
// denylist and removes expired ones.
func (r *Redis) loadRevocations(ctx context.Context, l Listener) {
	ctx, cancel := context.WithTimeout(ctx, redisAdminTimeout)
	defer cancel()
	start := time.Now()
	all, err := r.client.HGetAll(ctx, r.revoked).Result()
	r.duration.WithLabelValues(opLoad).Observe(time.Since(start).Seconds())
	if err != nil {
		r.failures.WithLabelValues(opLoad).Inc()
		r.log.LogAttrs(ctx, slog.LevelWarn, "redis: cannot load revocations", slog.Any("error", err))
		return
	}
	now := r.now()
	var expired []string
	for field, v := range all {
		pt, err := r.keys.open([]byte(v), r.revoked+"#"+field)
		var rev *Revocation
		if err == nil {
			rev, err = decodeStoredRevocation(pt)
		}
		switch {
		case err != nil:
			r.log.LogAttrs(ctx, slog.LevelWarn, "redis: a stored revocation does not open; ignored", slog.Any("error", err))
		case !now.Before(rev.Until):
			expired = append(expired, field)
		case l.Revoked != nil:
			l.Revoked(ctx, *rev, false)
		}
	}
	if len(expired) > 0 {
		_ = r.client.HDel(ctx, r.revoked, expired...).Err()
	}
}
