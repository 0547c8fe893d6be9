package exchange

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/config"
)

const (
	// clientAssertionType is RFC 7523 2.2's client_assertion_type.
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// clientAssertionTTL is the life of one client assertion: it is used at
	// once, and STSs reject long-lived ones.
	clientAssertionTTL = time.Minute
)

// stsClientAuth authenticates tokengate at the STS. apply sets what one
// request needs: a header, form fields, or a new assertion (each attempt
// gets its own jti, since STSs reject a replayed assertion).
type stsClientAuth interface {
	apply(req *http.Request, form url.Values, endpoint string, now time.Time) error
	// fingerprint identifies the credential without revealing it.
	fingerprint() string
}

// newSTSClientAuth builds the configured method. random is the source of
// assertion jtis.
func newSTSClientAuth(cfg config.Remote, random io.Reader) (stsClientAuth, error) {
	return newClientAuth("exchange.remote", cfg.AuthMethod, cfg.ClientID, cfg.ClientSecret,
		cfg.PrivateKey, cfg.AssertionAudience, random)
}

// newClientAuth builds an OAuth client authentication method; the STS
// client and the introspection client share it. path names the
// configuration block in errors.
func newClientAuth(path, method, id, secret string, pk config.SigningKey, audience string, random io.Reader) (stsClientAuth, error) {
	switch method {
	case config.AuthClientSecretBasic, "":
		return &stsSecretBasic{id: id, secret: secret}, nil
	case config.AuthClientSecretPost:
		return &stsSecretPost{id: id, secret: secret}, nil
	case config.AuthPrivateKeyJWT:
		key, err := LoadClientKey(pk)
		if err != nil {
			return nil, fmt.Errorf("%s.private_key: %w", path, err)
		}
		return &stsPrivateKeyJWT{id: id, key: key, audience: audience, random: random}, nil
	default:
		return nil, fmt.Errorf("%s.auth_method %q is not supported", path, method)
	}
}

// stsSecretFingerprint hashes a secret with a domain: rotating the secret
// changes the fingerprint (so the cache), and the fingerprint never shows it.
func stsSecretFingerprint(method, id, secret string) string {
	h := sha256.New()
	fmt.Fprintf(h, "tokengate/sts-client-secret/v1;%d:%s;%d:%s;%d:%s;", len(method), method, len(id), id, len(secret), secret)
	return method + ":" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// stsSecretBasic is client_secret_basic: RFC 6749 2.3.1 form-encodes the id
// and the secret before they are joined and base64-encoded, so a ":" or a
// non-ASCII character in either survives.
type stsSecretBasic struct{ id, secret string }

func (a *stsSecretBasic) apply(req *http.Request, _ url.Values, _ string, _ time.Time) error {
	req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret))
	return nil
}

func (a *stsSecretBasic) fingerprint() string {
	return stsSecretFingerprint(config.AuthClientSecretBasic, a.id, a.secret)
}

// stsSecretPost is client_secret_post: both in the form body.
type stsSecretPost struct{ id, secret string }

func (a *stsSecretPost) apply(_ *http.Request, form url.Values, _ string, _ time.Time) error {
	form.Set("client_id", a.id)
	form.Set("client_secret", a.secret)
	return nil
}

func (a *stsSecretPost) fingerprint() string {
	return stsSecretFingerprint(config.AuthClientSecretPost, a.id, a.secret)
}

// stsPrivateKeyJWT is private_key_jwt: an RFC 7523 assertion with iss = sub
// = client_id, aud = the token endpoint (or the configured audience), a
// unique jti and a short exp.
type stsPrivateKeyJWT struct {
	id       string
	key      *ClientKey
	audience string // "" means the token endpoint
	random   io.Reader
}

func (a *stsPrivateKeyJWT) apply(_ *http.Request, form url.Values, endpoint string, now time.Time) error {
	var jti [16]byte
	if _, err := io.ReadFull(a.random, jti[:]); err != nil {
		return fmt.Errorf("client assertion jti: %w", err)
	}
	aud := a.audience
	if aud == "" {
		aud = endpoint
	}
	claims := jwt.Claims{
		Issuer:   a.id,
		Subject:  a.id,
		Audience: jwt.Audience{aud},
		ID:       base64.RawURLEncoding.EncodeToString(jti[:]),
		IssuedAt: jwt.NewNumericDate(now),
		// nbf lets an STS whose clock is slightly behind accept it.
		NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
		Expiry:    jwt.NewNumericDate(now.Add(clientAssertionTTL)),
	}
	assertion, err := jwt.Signed(a.key.signer).Claims(claims).Serialize()
	if err != nil {
		return fmt.Errorf("sign client assertion with %s key %q: %w", a.key.Alg, a.key.Kid, err)
	}
	form.Set("client_id", a.id)
	form.Set("client_assertion_type", clientAssertionType)
	form.Set("client_assertion", assertion)
	return nil
}

func (a *stsPrivateKeyJWT) fingerprint() string {
	return fmt.Sprintf("%s:%d:%s;%d:%s;%d:%s;%d:%s", config.AuthPrivateKeyJWT,
		len(a.id), a.id, len(a.key.Kid), a.key.Kid, len(a.key.thumbprint), a.key.thumbprint+"/"+a.key.Alg,
		len(a.audience), a.audience)
}

// ClientKey is the private key of private_key_jwt client authentication.
type ClientKey struct {
	// Kid is the JWS kid: as configured, else the RFC 7638 thumbprint.
	Kid string
	// Alg is ES256, RS256, PS256 or EdDSA.
	Alg string
	// Public is the public key as a JWK (kid, alg, use=sig), to register
	// with the STS.
	Public     jose.JSONWebKey
	signer     jose.Signer
	thumbprint string
}

// LoadClientKey reads exchange.remote.private_key: a PEM private key whose
// type fits alg. Errors name the file, never key material.
func LoadClientKey(k config.SigningKey) (*ClientKey, error) {
	data, err := os.ReadFile(k.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read client key: %w (create it with: tokengate keys generate --alg %s --out %s)",
			err, signingKeyAlgHint(k.Alg), k.File)
	}
	if err != nil {
		return nil, fmt.Errorf("read client key: %w", err)
	}
	signer, err := ParsePrivateKeyPEM(data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.File, err)
	}
	return NewClientKey(KeySpec{Signer: signer, Alg: k.Alg, Kid: k.Kid})
}

// NewClientKey builds a ClientKey from a key in memory (tests, the demo).
func NewClientKey(spec KeySpec) (*ClientKey, error) {
	// signingKeyNew checks the alg against the key, derives the kid and
	// proves the key with one signature.
	sk, err := signingKeyNew(spec)
	if err != nil {
		return nil, err
	}
	// A client assertion is a plain JWT: RFC 7523 sets no typ, and an
	// at+jwt typ would make it look like an access token.
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(sk.Alg),
		Key:       jose.JSONWebKey{Key: joseSigningKey(spec.Signer), KeyID: sk.Kid},
	}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("create %s client assertion signer: %w", sk.Alg, err)
	}
	return &ClientKey{Kid: sk.Kid, Alg: sk.Alg, Public: sk.public, signer: signer, thumbprint: sk.thumbprint}, nil
}
