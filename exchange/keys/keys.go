package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"

	"github.com/tokengate/tokengate/config"
)

const (
	// signingKeyMinRSABits is the smallest RSA modulus accepted (RFC 7518 3.3).
	signingKeyMinRSABits = 2048
	// signingKeyGenRSABits is what GenerateKeyPEM makes: NIST's size past 2030.
	signingKeyGenRSABits = 3072
	// signingKeyTokenType is the JWS typ of exchanged tokens (RFC 9068 2.1).
	signingKeyTokenType = "at+jwt"
)

// ParsePrivateKeyPEM reads one PEM private key: PKCS#8 ("PRIVATE KEY"), SEC1
// ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"). "EC PARAMETERS" and
// certificate blocks next to it are ignored, so `openssl ecparam -genkey`
// output and key+chain bundles work. Errors never contain key material.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	var (
		key   *pem.Block
		other []string
		rest  = data
		found bool
	)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		found = true
		if !strings.Contains(block.Type, "PRIVATE KEY") {
			other = append(other, block.Type)
			continue
		}
		if key != nil {
			return nil, errors.New("more than one private key in the PEM data: put each key in its own file")
		}
		key = block
	}
	switch {
	case !found:
		return nil, errors.New("no PEM block found: expected a PEM private key (-----BEGIN PRIVATE KEY-----)")
	case key == nil:
		return nil, fmt.Errorf("no private key in the PEM data (found %s): expected PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY",
			strings.Join(other, ", "))
	}
	if key.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(key.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("encrypted PEM is not supported: decrypt it (openssl pkey -in KEY -out PLAIN) and protect the file with permissions or a secret store")
	}

	var (
		parsed any
		err    error
	)
	switch key.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(key.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS#8 private key: %w", err)
		}
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(key.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse SEC1 EC private key: %w", err)
		}
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(key.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS#1 RSA private key: %w", err)
		}
	default:
		return nil, fmt.Errorf("PEM type %q is not supported: convert the key to PKCS#8 (openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8)", key.Type)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		// e.g. an X25519 key in PKCS#8: valid, but it cannot sign.
		return nil, fmt.Errorf("a %T key cannot sign: use an ECDSA P-256, RSA or Ed25519 key", parsed)
	}
	return signer, nil
}

// GenerateKeyPEM makes a new private key for alg (ES256: P-256; RS256 and
// PS256: RSA 3072 bits; EdDSA: Ed25519) and returns it as PKCS#8 PEM. A nil
// random uses crypto/rand.
func GenerateKeyPEM(alg string, random io.Reader) ([]byte, error) {
	if random == nil {
		random = rand.Reader
	}
	var (
		key any
		err error
	)
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), random)
	case jose.RS256, jose.PS256:
		key, err = rsa.GenerateKey(random, signingKeyGenRSABits)
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(random)
	default:
		return nil, signingKeyAlgError(alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode %s key as PKCS#8: %w", alg, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// SigningKey is one loaded private key with what signing with it needs.
type SigningKey struct {
	// Kid is the JWS kid header and the JWKS kid.
	Kid string
	// Alg is ES256, RS256, PS256 or EdDSA.
	Alg string

	signer     crypto.Signer
	joseSigner jose.Signer     // safe for concurrent use: Sign only reads it
	public     jose.JSONWebKey // public part, kid, alg, use=sig
	// thumbprint is the RFC 7638 SHA-256 thumbprint, even when Kid is explicit:
	// it identifies the key material for Local.Fingerprint.
	thumbprint string
}

// KeySpec is a signing key that is already in memory (tests, the demo).
type KeySpec struct {
	// Signer is the private key: *ecdsa.PrivateKey, *rsa.PrivateKey,
	// ed25519.PrivateKey, or any crypto.Signer with such a public key (an HSM).
	Signer crypto.Signer
	// Alg is ES256, RS256, PS256 or EdDSA.
	Alg string
	// Kid defaults to the RFC 7638 SHA-256 thumbprint.
	Kid string
}

// KeySet holds the local signing keys: the first signs, all are published so
// tokens signed before a rotation still verify. It is immutable and safe for
// concurrent use.
type KeySet struct {
	keys     []*SigningKey
	jwks     jose.JSONWebKeySet
	jwksJSON []byte
	algs     []string
}

// NewKeySet loads exchange.local.signing_keys. File paths are used as given
// (config.Load has made them absolute). Every error names the file.
func NewKeySet(keys []config.SigningKey) (*KeySet, error) {
	specs := make([]KeySpec, 0, len(keys))
	labels := make([]string, 0, len(keys))
	for _, k := range keys {
		data, err := os.ReadFile(k.File)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read signing key: %w (create it with: tokengate keys generate --alg %s --out %s)",
				err, signingKeyAlgHint(k.Alg), k.File)
		}
		if err != nil {
			return nil, fmt.Errorf("read signing key: %w", err)
		}
		signer, err := ParsePrivateKeyPEM(data)
		clear(data) // do not leave the PEM in memory longer than needed
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.File, err)
		}
		specs = append(specs, KeySpec{Signer: signer, Alg: k.Alg, Kid: k.Kid})
		labels = append(labels, k.File)
	}
	return signingKeySetBuild(specs, labels)
}

// NewKeySetFromSigners builds a KeySet from keys already in memory.
func NewKeySetFromSigners(keys []KeySpec) (*KeySet, error) {
	labels := make([]string, len(keys))
	for i := range keys {
		labels[i] = fmt.Sprintf("key[%d]", i)
	}
	return signingKeySetBuild(keys, labels)
}

func signingKeySetBuild(specs []KeySpec, labels []string) (*KeySet, error) {
	if len(specs) == 0 {
		return nil, errors.New("no signing keys: add one (tokengate keys generate --alg ES256 --out keys/es256.pem)")
	}
	ks := &KeySet{keys: make([]*SigningKey, 0, len(specs))}
	byKid := make(map[string]string, len(specs))
	for i, spec := range specs {
		k, err := signingKeyNew(spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", labels[i], err)
		}
		if prev, dup := byKid[k.Kid]; dup {
			return nil, fmt.Errorf("%s: kid %q is also used by %s: give each key its own kid (or leave kid empty for the thumbprint)",
				labels[i], k.Kid, prev)
		}
		byKid[k.Kid] = labels[i]
		ks.keys = append(ks.keys, k)
		ks.jwks.Keys = append(ks.jwks.Keys, k.public)
		if !slices.Contains(ks.algs, k.Alg) {
			ks.algs = append(ks.algs, k.Alg)
		}
	}
	var err error
	if ks.jwksJSON, err = json.Marshal(ks.jwks); err != nil {
		return nil, fmt.Errorf("marshal JWKS: %w", err)
	}
	return ks, nil
}

// signingKeyNew checks that spec.Alg fits the key, derives the kid, builds
// the go-jose signer and proves it with one signature.
func signingKeyNew(spec KeySpec) (*SigningKey, error) {
	if spec.Signer == nil {
		return nil, errors.New("no private key")
	}
	pub := spec.Signer.Public()
	if spec.Alg == "" {
		return nil, fmt.Errorf("alg is empty: set it to %s (this is %s key)", signingKeyAlgHint(signingKeyAlgFor(pub)), signingKeyDescribe(pub))
	}
	if err := signingKeyCheckAlg(spec.Alg, pub); err != nil {
		return nil, err
	}
	thumb, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key thumbprint: %w", err)
	}
	k := &SigningKey{
		Kid:        spec.Kid,
		Alg:        spec.Alg,
		signer:     spec.Signer,
		thumbprint: base64.RawURLEncoding.EncodeToString(thumb),
	}
	if k.Kid == "" {
		k.Kid = k.thumbprint
	}

	opts := (&jose.SignerOptions{}).WithType(signingKeyTokenType)
	k.joseSigner, err = jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(k.Alg),
		Key:       jose.JSONWebKey{Key: joseSigningKey(spec.Signer), KeyID: k.Kid},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("create %s signer: %w", k.Alg, err)
	}
	k.public = jose.JSONWebKey{Key: pub, KeyID: k.Kid, Algorithm: k.Alg, Use: "sig"}
	if err := signingKeyProbe(k); err != nil {
		return nil, err
	}
	return k, nil
}

// joseSigningKey is the key go-jose signs with: the standard key types
// natively; anything else (an HSM, a KMS) through its crypto.Signer adapter.
func joseSigningKey(signer crypto.Signer) any {
	switch s := signer.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return s
	case *ed25519.PrivateKey:
		return *s
	default:
		return cryptosigner.Opaque(s)
	}
}

// signingKeyProbe signs once and verifies with the public key, so a key that
// cannot produce tokens the backends accept (a broken HSM, a mismatched
// public key) fails at load time instead of on the first request.
func signingKeyProbe(k *SigningKey) error {
	probe := []byte(`{"probe":true}`)
	jws, err := k.joseSigner.Sign(probe)
	if err != nil {
		return fmt.Errorf("test signature with %s failed: %w", k.Alg, err)
	}
	got, err := jws.Verify(k.public)
	if err != nil || !bytes.Equal(got, probe) {
		return fmt.Errorf("test signature with %s does not verify with the key's public part: the key is unusable", k.Alg)
	}
	return nil
}

// signingKeyCheckAlg says whether alg may be used with pub, and if not, why.
func signingKeyCheckAlg(alg string, pub crypto.PublicKey) error {
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256:
		if ec, ok := pub.(*ecdsa.PublicKey); ok && ec.Curve == elliptic.P256() {
			return nil
		}
		return fmt.Errorf("alg ES256 needs a P-256 key, got %s", signingKeyDescribe(pub))
	case jose.RS256, jose.PS256:
		r, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("alg %s needs an RSA key, got %s", alg, signingKeyDescribe(pub))
		}
		if bits := r.N.BitLen(); bits < signingKeyMinRSABits {
			return fmt.Errorf("RSA key is %d bits: %s needs at least %d (tokengate keys generate --alg %s makes a %d-bit key)",
				bits, alg, signingKeyMinRSABits, alg, signingKeyGenRSABits)
		}
		return nil
	case jose.EdDSA:
		if _, ok := pub.(ed25519.PublicKey); ok {
			return nil
		}
		return fmt.Errorf("alg EdDSA needs an Ed25519 key, got %s", signingKeyDescribe(pub))
	default:
		return signingKeyAlgError(alg)
	}
}

func signingKeyAlgError(alg string) error {
	return fmt.Errorf("alg %q is not supported: use %s", alg, signingKeyAlgList())
}

// signingKeyAlgFor suggests the alg for a key type ("" when none fits).
func signingKeyAlgFor(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return string(jose.ES256)
		}
	case *rsa.PublicKey:
		return string(jose.RS256)
	case ed25519.PublicKey:
		return string(jose.EdDSA)
	}
	return ""
}

// signingKeyAlgHint turns a possibly empty or invalid alg into one worth
// printing in a suggested command.
func signingKeyAlgHint(alg string) string {
	if config.IsSigningAlgorithm(alg) {
		return alg
	}
	return string(jose.ES256)
}

// signingKeyAlgList names config.SigningAlgorithms for error messages:
// "ES256, RS256, PS256 or EdDSA".
func signingKeyAlgList() string {
	algs := config.SigningAlgorithms()
	return strings.Join(algs[:len(algs)-1], ", ") + " or " + algs[len(algs)-1]
}

// signingKeyDescribe names a key's type and size, never its material.
func signingKeyDescribe(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA (%d bits)", p.N.BitLen())
	case *ecdsa.PublicKey:
		return "EC " + p.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// Active returns the key that signs new tokens.
func (ks *KeySet) Active() *SigningKey { return ks.keys[0] }

// PublicJWKS returns the public part of every key, with kid, alg and use=sig.
func (ks *KeySet) PublicJWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: slices.Clone(ks.jwks.Keys)}
}

// PublicJWKSJSON returns PublicJWKS as JSON, marshalled once at construction.
func (ks *KeySet) PublicJWKSJSON() []byte { return slices.Clone(ks.jwksJSON) }

// Algorithms returns the distinct algs of the keys, active key's first: the
// *_signing_alg_values_supported of discovery.
func (ks *KeySet) Algorithms() []string { return slices.Clone(ks.algs) }

// Fingerprint identifies what of k shapes a token: kid, alg and the
// key material (an explicit kid may stay the same across a key change).
func (k *SigningKey) Fingerprint() []byte {
	h := sha256.New()
	for _, s := range []string{k.Kid, k.Alg, k.thumbprint} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return h.Sum(nil)
}

// Signer is k's signer of RFC 9068 access tokens (typ at+jwt). Safe for
// concurrent use: Sign only reads it.
func (k *SigningKey) Signer() jose.Signer { return k.joseSigner }

// NewSigner returns a signer with k whose JWS typ header is typ (a
// Txn-Token's txntoken+jwt, for one).
func (k *SigningKey) NewSigner(typ jose.ContentType) (jose.Signer, error) {
	return jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(k.Alg),
		Key:       jose.JSONWebKey{Key: joseSigningKey(k.signer), KeyID: k.Kid},
	}, (&jose.SignerOptions{}).WithType(typ))
}
