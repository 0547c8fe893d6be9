package config

import (
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"time"
)

// Redis limits.
const (
	minAdminToken      = 16
	maxRedisTimeout    = 10 * time.Second
	maxRedisDB         = 15
	maxBreakerFailures = 1000
)

// keyHint is how to make an encryption key, for messages.
const keyHint = "make one with `head -c 32 /dev/urandom | base64`"

// adminToken checks server.admin_token: empty disables the admin endpoints
// that change state; otherwise it must be a secret worth the name.
func (v *validator) adminToken() {
	t := v.c.Server.AdminToken
	if t == "" {
		return
	}
	switch {
	case len(t) < minAdminToken:
		v.addf("server.admin_token", "is %d characters: use at least %d random characters (like the output of "+
			"`head -c 24 /dev/urandom | base64`), or remove it to disable POST /admin/revoke", len(t), minAdminToken)
	case hasSpaceOrControl(t):
		v.add("server.admin_token", "contains whitespace: use base64 or hex characters only")
	}
}

// redis checks cache.redis. Secret values are never repeated in messages.
func (v *validator) redis(r *Redis) {
	const p = "cache.redis."
	switch {
	case len(r.Addrs) == 0:
		v.add(p+"addrs", `is empty: list the Redis address, like ["127.0.0.1:6379"] (several for a cluster, `+
			"the Sentinels' with master_name)")
	default:
		seen := map[string]int{}
		for i, a := range r.Addrs {
			path := indexPath(p+"addrs", i)
			if msg := redisAddr(a); msg != "" {
				v.add(path, msg)
				continue
			}
			if first, dup := seen[a]; dup {
				v.addf(path, "%s is also addrs[%d]: list each address once", quote(a), first)
			}
			seen[a] = i
		}
	}
	if r.MasterName != "" && hasSpaceOrControl(r.MasterName) {
		v.add(p+"master_name", "contains whitespace: write the Sentinel master's name, like mymaster")
	}
	if r.MasterName != "" && r.Cluster {
		v.add(p+"cluster", "is true together with master_name: use a cluster (addrs of its nodes) or Sentinel "+
			"(master_name and the Sentinels' addrs), not both")
	}
	switch {
	case r.DB < 0 || r.DB > maxRedisDB:
		v.addf(p+"db", "%d is out of range: use 0 to %d", r.DB, maxRedisDB)
	case r.DB != 0 && (r.Cluster || len(r.Addrs) > 1 && r.MasterName == ""):
		v.add(p+"db", "is set for a cluster, which has only database 0: remove db")
	}
	if hasSpaceOrControl(r.KeyPrefix) {
		v.add(p+"key_prefix", `contains whitespace: use a short word ending in ":", like "tokengate:"`)
	}

	switch {
	case r.EncryptionKey == "":
		v.add(p+"encryption_key", "is empty: Redis values are encrypted with it, and every replica needs the same "+
			"one: "+keyHint+` and set encryption_key: "${TOKENGATE_CACHE_KEY}"`)
	default:
		v.key(p+"encryption_key", r.EncryptionKey)
	}
	for i, k := range r.PreviousEncryptionKeys {
		path := indexPath(p+"previous_encryption_keys", i)
		if k == "" {
			v.add(path, "is empty: remove the entry, or give a key that encrypted values before a rotation")
			continue
		}
		if v.key(path, k) && sameKey(k, r.EncryptionKey) {
			v.add(path, "is the same key as encryption_key: remove it from previous_encryption_keys")
		}
	}
	if r.HashKey != "" {
		v.key(p+"hash_key", r.HashKey)
	}

	if t := r.TLS; t != nil {
		if t.CAFile != "" {
			if msg := fileProblem(t.CAFile, v.c.showPath(p+"tls.ca_file", t.CAFile)); msg != "" {
				v.add(p+"tls.ca_file", msg+": name a PEM file of the CA certificates to trust, or remove ca_file to use the system's")
			}
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			v.add(p+"tls", "has only one of cert_file and key_file: a client certificate needs both, or neither")
		} else if t.CertFile != "" {
			v.requiredFile(p+"tls.cert_file", t.CertFile, "a PEM client certificate", "or remove cert_file and key_file")
			v.requiredFile(p+"tls.key_file", t.KeyFile, "its PEM private key", "or remove cert_file and key_file")
		}
		if hasSpaceOrControl(t.ServerName) {
			v.add(p+"tls.server_name", "contains whitespace: write the host name in the server's certificate")
		}
	}

	v.redisTimeout(p+"dial_timeout", r.DialTimeout, DefaultRedisDialTimeout)
	v.redisTimeout(p+"read_timeout", r.ReadTimeout, DefaultRedisReadTimeout)
	v.redisTimeout(p+"write_timeout", r.WriteTimeout, DefaultRedisWriteTimeout)
	if r.PoolSize < 0 {
		v.addf(p+"pool_size", "%d is negative: use a positive number of connections per node, or 0 for the default", r.PoolSize)
	}
	if r.BreakerFailures < 1 || r.BreakerFailures > maxBreakerFailures {
		v.addf(p+"breaker_failures", "%d is out of range: use 1 to %d failed calls in a row (default %d)",
			r.BreakerFailures, maxBreakerFailures, DefaultRedisBreakerFailures)
	}
	if r.BreakerBackoff <= 0 {
		v.addf(p+"breaker_backoff", "%s is not positive: set how long to skip Redis after repeated failures, like %s",
			r.BreakerBackoff, DefaultRedisBreakerBackoff)
	}
}

// redisAddr checks one host:port; "" when fine.
func redisAddr(a string) string {
	if strings.Contains(a, "://") {
		return "is a URL: write host:port only, like 127.0.0.1:6379 (TLS is cache.redis.tls, the password cache.redis.password)"
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return quote(a) + " is not host:port: write it like 127.0.0.1:6379"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return quote(a) + " has port " + quote(port) + ", which is not a number from 1 to 65535: write it like 127.0.0.1:6379"
	}
	return ""
}

func (v *validator) redisTimeout(path string, d Duration, def time.Duration) {
	switch {
	case d <= 0:
		v.addf(path, "%s is not positive: use a short timeout, like %s", d, def)
	case d.D() > maxRedisTimeout:
		v.addf(path, "%s is too long: every request could wait that long on Redis; use at most %s, like %s", d, maxRedisTimeout, def)
	}
}

// key checks a base64 key of 32 bytes without ever repeating it.
func (v *validator) key(path, s string) bool {
	b, ok := decodeKey(s)
	switch {
	case !ok:
		v.add(path, "is not base64: "+keyHint)
		return false
	case len(b) != 32:
		v.addf(path, "decodes to %d bytes, need 32: %s", len(b), keyHint)
		return false
	}
	return true
}

// decodeKey accepts standard or URL-safe base64, padded or not (as
// cache.ParseKey does).
func decodeKey(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

func sameKey(a, b string) bool {
	ka, okA := decodeKey(a)
	kb, okB := decodeKey(b)
	return okA && okB && string(ka) == string(kb)
}
