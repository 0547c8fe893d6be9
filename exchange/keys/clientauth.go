package keys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

// NewClientAuth builds an OAuth client authentication method from its
// configuration, loading the private_key_jwt key; the STS client and the
// introspection client share it. path names the configuration block in
// errors.
func NewClientAuth(path, method, id, secret string, pk config.SigningKey, audience string, random io.Reader) (oauthclient.ClientAuth, error) {
	switch method {
	case config.AuthClientSecretBasic, "":
		return &oauthclient.ClientSecretBasic{ID: id, Secret: secret}, nil
	case config.AuthClientSecretPost:
		return &oauthclient.ClientSecretPost{ID: id, Secret: secret}, nil
	case config.AuthPrivateKeyJWT:
		key, err := LoadClientKey(pk)
		if err != nil {
			return nil, fmt.Errorf("%s.private_key: %w", path, err)
		}
		return key.assertionAuth(id, audience, random), nil
	default:
		return nil, fmt.Errorf("%s.auth_method %q is not supported", path, method)
	}
}

// assertionAuth is private_key_jwt with this key. The key enters the
// fingerprint by kid, thumbprint and alg, so a new key changes it.
func (k *ClientKey) assertionAuth(id, audience string, random io.Reader) *oauthclient.PrivateKeyJWT {
	return &oauthclient.PrivateKeyJWT{
		ID:       id,
		Signer:   k.signer,
		KeyID:    fmt.Sprintf("%d:%s;%d:%s", len(k.Kid), k.Kid, len(k.thumbprint), k.thumbprint+"/"+k.Alg),
		Audience: audience,
		Random:   random,
	}
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
