package cache

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of an encryption key and of the hash key: 32 bytes.
const KeySize = 32

// HKDF labels: each derived key has one purpose. Changing a label renames
// or re-keys everything derived from it.
const (
	labelAEAD      = "tokengate/redis/aead/v1"
	labelKeyID     = "tokengate/redis/key-id/v1"
	labelNames     = "tokengate/redis/key-names/v1"
	labelCacheKeys = "tokengate/exchange/cache-key-secret/v1"
)

// Sealed value layout: version, key id, nonce, then AES-256-GCM ciphertext
// and tag.
const (
	sealVersion   byte = 1
	sealHeaderLen      = 1 + 4 // version, key id
	sealNonceLen       = 12
	sealOverhead       = sealHeaderLen + sealNonceLen + 16
)

// ErrDecrypt is returned when a sealed value cannot be opened: unknown
// version or key id, tampering, or a value moved under another name.
var ErrDecrypt = errors.New("sealed value cannot be opened")

// Keyring holds the keys of the Redis tier: the AEAD keys (the first
// encrypts, all decrypt) and the keyed-hash keys derived from the hash key
// (Redis key names, and the exchanger's cache-key secret that every replica
// must share). Raw configured keys are never kept: only HKDF-derived ones.
type Keyring struct {
	active *aeadKey
	byID   map[uint32]*aeadKey
	names  []byte // HMAC key of Redis key names
	cache  []byte // CachingOptions.KeySecret for every replica
}

type aeadKey struct {
	id   uint32
	aead cipher.AEAD
}

// NewKeyring builds a keyring. encryption lists 32-byte keys, the first of
// which encrypts; hashKey keys every name and cache key, and defaults to
// encryption[0] when nil. Pinning hashKey to the first key a deployment used
// lets encryption keys rotate without renaming (and so losing) any entry.
func NewKeyring(hashKey []byte, encryption ...[]byte) (*Keyring, error) {
	if len(encryption) == 0 {
		return nil, errors.New("new keyring: no encryption key")
	}
	if hashKey == nil {
		hashKey = encryption[0]
	}
	if len(hashKey) != KeySize {
		return nil, fmt.Errorf("new keyring: hash key is %d bytes, want %d", len(hashKey), KeySize)
	}
	k := &Keyring{byID: make(map[uint32]*aeadKey, len(encryption))}
	for i, raw := range encryption {
		if len(raw) != KeySize {
			return nil, fmt.Errorf("new keyring: encryption key %d is %d bytes, want %d", i, len(raw), KeySize)
		}
		ak, err := newAEADKey(raw)
		if err != nil {
			return nil, fmt.Errorf("new keyring: encryption key %d: %w", i, err)
		}
		if _, dup := k.byID[ak.id]; dup {
			return nil, fmt.Errorf("new keyring: encryption key %d is listed twice (or its key id collides): remove the duplicate", i)
		}
		k.byID[ak.id] = ak
		if i == 0 {
			k.active = ak
		}
	}
	var err error
	if k.names, err = hkdf.Key(sha256.New, hashKey, nil, labelNames, KeySize); err != nil {
		return nil, fmt.Errorf("new keyring: derive name key: %w", err)
	}
	if k.cache, err = hkdf.Key(sha256.New, hashKey, nil, labelCacheKeys, KeySize); err != nil {
		return nil, fmt.Errorf("new keyring: derive cache key secret: %w", err)
	}
	return k, nil
}

func newAEADKey(raw []byte) (*aeadKey, error) {
	key, err := hkdf.Key(sha256.New, raw, nil, labelAEAD, KeySize)
	if err != nil {
		return nil, err
	}
	idBytes, err := hkdf.Key(sha256.New, raw, nil, labelKeyID, 4)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &aeadKey{id: binary.BigEndian.Uint32(idBytes), aead: gcm}, nil
}

// ParseKey decodes a configured key: standard or URL-safe base64, padded or
// not, of exactly 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("is not base64")
}

// CacheKeySecret is the HMAC key of the exchanger's cache keys: derived from
// the hash key, so every replica with the same configuration computes the
// same cache key for the same umbrella token. A new slice each call.
func (k *Keyring) CacheKeySecret() []byte { return append([]byte(nil), k.cache...) }

// ActiveKeyID is the id written into new values (logs and tests).
func (k *Keyring) ActiveKeyID() uint32 { return k.active.id }

// name is the keyed hash of one Redis name: HMAC-SHA-256(names key) over a
// kind byte and the parts, URL-safe base64 without padding (43 characters).
func (k *Keyring) name(kind byte, parts ...string) string {
	m := hmac.New(sha256.New, k.names)
	m.Write([]byte{kind})
	for _, p := range parts {
		var n [binary.MaxVarintLen64]byte
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		m.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// seal encrypts plaintext with the active key; aad (the Redis name the
// value is stored under) is authenticated with the header, so a value moved
// under another name, or its header edited, does not open.
func (k *Keyring) seal(plaintext []byte, aad string) ([]byte, error) {
	out := make([]byte, sealHeaderLen+sealNonceLen, sealOverhead+len(plaintext))
	out[0] = sealVersion
	binary.BigEndian.PutUint32(out[1:5], k.active.id)
	if _, err := rand.Read(out[sealHeaderLen:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	ad := append(append(make([]byte, 0, sealHeaderLen+len(aad)), out[:sealHeaderLen]...), aad...)
	return k.active.aead.Seal(out, out[sealHeaderLen:], plaintext, ad), nil
}

// open decrypts a value sealed under aad with any key of the ring.
func (k *Keyring) open(sealed []byte, aad string) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrDecrypt, len(sealed))
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrDecrypt, sealed[0])
	}
	id := binary.BigEndian.Uint32(sealed[1:5])
	ak, ok := k.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: unknown key id %08x (not in encryption_key or previous_encryption_keys)", ErrDecrypt, id)
	}
	ad := append(append(make([]byte, 0, sealHeaderLen+len(aad)), sealed[:sealHeaderLen]...), aad...)
	nonce := sealed[sealHeaderLen : sealHeaderLen+sealNonceLen]
	pt, err := ak.aead.Open(nil, nonce, sealed[sealHeaderLen+sealNonceLen:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	return pt, nil
}
