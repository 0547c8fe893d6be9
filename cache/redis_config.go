package cache

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/config"
)

// NewRedisClient builds the go-redis universal client for cache.redis: a
// single node, a cluster (several addrs, or cluster: true) or Sentinel
// (master_name). Timeouts are honoured from the context as well, retries
// and dial retries are off (the breaker decides when to try again), and the
// pool waits no longer than a read. The caller closes it.
func NewRedisClient(cfg *config.Redis) (redis.UniversalClient, error) {
	if cfg == nil || len(cfg.Addrs) == 0 {
		return nil, errors.New("new redis client: no address")
	}
	opts := &redis.UniversalOptions{
		Addrs:                 cfg.Addrs,
		MasterName:            cfg.MasterName,
		IsClusterMode:         cfg.Cluster,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		DialTimeout:           cfg.DialTimeout.D(),
		DialerRetries:         1, // one attempt per dial: the breaker retries
		ReadTimeout:           cfg.ReadTimeout.D(),
		WriteTimeout:          cfg.WriteTimeout.D(),
		PoolTimeout:           cfg.ReadTimeout.D(),
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		PoolSize:              cfg.PoolSize,
		ClientName:            "tokengate",
	}
	if t := cfg.TLS; t != nil {
		tc, err := redisTLS(t)
		if err != nil {
			return nil, fmt.Errorf("new redis client: %w", err)
		}
		opts.TLSConfig = tc
	}
	return redis.NewUniversalClient(opts), nil
}

func redisTLS(t *config.RedisTLS) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as testing only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// NewKeyringFromConfig decodes cache.redis's keys: encryption_key first,
// then previous_encryption_keys, and hash_key (default encryption_key).
func NewKeyringFromConfig(cfg *config.Redis) (*Keyring, error) {
	if cfg == nil {
		return nil, errors.New("new keyring: no cache.redis")
	}
	active, err := ParseKey(cfg.EncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("cache.redis.encryption_key %w", err)
	}
	keys := [][]byte{active}
	for i, s := range cfg.PreviousEncryptionKeys {
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("cache.redis.previous_encryption_keys[%d] %w", i, err)
		}
		keys = append(keys, k)
	}
	var hashKey []byte
	if cfg.HashKey != "" {
		if hashKey, err = ParseKey(cfg.HashKey); err != nil {
			return nil, fmt.Errorf("cache.redis.hash_key %w", err)
		}
	}
	return NewKeyring(hashKey, keys...)
}
