package cache_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
)

func writeCA(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewRedisClient(t *testing.T) {
	ca := writeCA(t)
	base := func() *config.Redis {
		return &config.Redis{Addrs: []string{"127.0.0.1:6379"}, DialTimeout: config.Duration(time.Second),
			ReadTimeout: config.Duration(time.Second), WriteTimeout: config.Duration(time.Second)}
	}
	tests := []struct {
		name    string
		change  func(*config.Redis)
		want    string // client type
		wantErr string
	}{
		{"single", func(*config.Redis) {}, "*redis.Client", ""},
		{"cluster by addrs", func(r *config.Redis) { r.Addrs = []string{"a:1", "b:2"} }, "*redis.ClusterClient", ""},
		{"cluster by flag", func(r *config.Redis) { r.Cluster = true }, "*redis.ClusterClient", ""},
		{"sentinel", func(r *config.Redis) { r.MasterName = "mymaster"; r.Addrs = []string{"s1:26379", "s2:26379"} }, "*redis.Client", ""},
		{"tls with CA", func(r *config.Redis) { r.TLS = &config.RedisTLS{CAFile: ca, ServerName: "redis"} }, "*redis.Client", ""},
		{"tls CA not PEM", func(r *config.Redis) { r.TLS = &config.RedisTLS{CAFile: os.Args[0]} }, "", "no PEM certificate"},
		{"tls CA missing", func(r *config.Redis) { r.TLS = &config.RedisTLS{CAFile: ca + ".missing"} }, "", "ca_file"},
		{"no address", func(r *config.Redis) { r.Addrs = nil }, "", "no address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.change(cfg)
			c, err := cache.NewRedisClient(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := ""
			switch c.(type) {
			case *redis.Client:
				got = "*redis.Client"
			case *redis.ClusterClient:
				got = "*redis.ClusterClient"
			}
			if got != tt.want {
				t.Errorf("client %T; want %s", c, tt.want)
			}
		})
	}
}

func TestNewKeyringFromConfig(t *testing.T) {
	k1, k2 := "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"
	same1, err := cache.NewKeyringFromConfig(&config.Redis{EncryptionKey: k1})
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := cache.NewKeyringFromConfig(&config.Redis{EncryptionKey: k2, PreviousEncryptionKeys: []string{k1}, HashKey: k1})
	if err != nil {
		t.Fatal(err)
	}
	if string(same1.CacheKeySecret()) != string(pinned.CacheKeySecret()) {
		t.Error("pinning hash_key to the old key changed the cache key secret")
	}
	if same1.ActiveKeyID() == pinned.ActiveKeyID() {
		t.Error("a new encryption key kept the old key id")
	}
	for _, bad := range []*config.Redis{
		nil, {EncryptionKey: "nope"}, {EncryptionKey: k1, PreviousEncryptionKeys: []string{"c2hvcnQ="}}, {EncryptionKey: k1, HashKey: "x"},
	} {
		if _, err := cache.NewKeyringFromConfig(bad); err == nil {
			t.Errorf("NewKeyringFromConfig(%+v) succeeded", bad)
		}
	}
}
