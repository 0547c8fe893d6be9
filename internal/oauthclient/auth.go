package oauthclient

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Client authentication methods (RFC 8414 token_endpoint_auth_methods).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

const (
	// ClientAssertionType is RFC 7523 2.2's client_assertion_type.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// clientAssertionTTL is the life of one client assertion: it is used at
	// once, and servers reject long-lived ones.
	clientAssertionTTL = time.Minute
)

// ClientAuth authenticates tokengate at an authorization server. Apply sets
// what one request needs: a header, form fields, or a new assertion (each
// attempt gets its own jti, since servers reject a replayed assertion).
type ClientAuth interface {
	Apply(req *http.Request, form url.Values, endpoint string, now time.Time) error
	// Fingerprint identifies the credential without revealing it: rotating
	// a secret or a key changes it.
	Fingerprint() string
}

// secretFingerprint hashes a secret with a domain: rotating the secret
// changes the fingerprint (so the cache), and the fingerprint never shows it.
func secretFingerprint(method, id, secret string) string {
	h := sha256.New()
	fmt.Fprintf(h, "tokengate/sts-client-secret/v1;%d:%s;%d:%s;%d:%s;", len(method), method, len(id), id, len(secret), secret)
	return method + ":" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// ClientSecretBasic is client_secret_basic: RFC 6749 2.3.1 form-encodes the
// id and the secret before they are joined and base64-encoded, so a ":" or
// a non-ASCII character in either survives.
type ClientSecretBasic struct{ ID, Secret string }

// Apply sets the Authorization header.
func (a *ClientSecretBasic) Apply(req *http.Request, _ url.Values, _ string, _ time.Time) error {
	req.SetBasicAuth(url.QueryEscape(a.ID), url.QueryEscape(a.Secret))
	return nil
}

// Fingerprint hashes the method, id and secret.
func (a *ClientSecretBasic) Fingerprint() string {
	return secretFingerprint(AuthClientSecretBasic, a.ID, a.Secret)
}

// ClientSecretPost is client_secret_post: both in the form body.
type ClientSecretPost struct{ ID, Secret string }

// Apply adds client_id and client_secret to the form.
func (a *ClientSecretPost) Apply(_ *http.Request, form url.Values, _ string, _ time.Time) error {
	form.Set("client_id", a.ID)
	form.Set("client_secret", a.Secret)
	return nil
}

// Fingerprint hashes the method, id and secret.
func (a *ClientSecretPost) Fingerprint() string {
	return secretFingerprint(AuthClientSecretPost, a.ID, a.Secret)
}

// PrivateKeyJWT is private_key_jwt: an RFC 7523 assertion with iss = sub =
// client_id, aud = the endpoint it is sent to (or Audience), a fresh jti and
// a short exp.
type PrivateKeyJWT struct {
	ID string
	// Signer signs the assertion (typ JWT, the key's kid).
	Signer jose.Signer
	// KeyID identifies the key in Fingerprint (kid, thumbprint, alg); it
	// must change when the key does.
	KeyID string
	// Audience is the assertion's aud; "" means the endpoint.
	Audience string
	// Random is the source of jtis (crypto/rand in production).
	Random io.Reader
}

// Apply signs a new assertion and adds it, with client_id, to the form.
func (a *PrivateKeyJWT) Apply(_ *http.Request, form url.Values, endpoint string, now time.Time) error {
	var jti [16]byte
	if _, err := io.ReadFull(a.Random, jti[:]); err != nil {
		return fmt.Errorf("client assertion jti: %w", err)
	}
	aud := a.Audience
	if aud == "" {
		aud = endpoint
	}
	claims := jwt.Claims{
		Issuer:   a.ID,
		Subject:  a.ID,
		Audience: jwt.Audience{aud},
		ID:       base64.RawURLEncoding.EncodeToString(jti[:]),
		IssuedAt: jwt.NewNumericDate(now),
		// nbf lets a server whose clock is slightly behind accept it.
		NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
		Expiry:    jwt.NewNumericDate(now.Add(clientAssertionTTL)),
	}
	assertion, err := jwt.Signed(a.Signer).Claims(claims).Serialize()
	if err != nil {
		return fmt.Errorf("sign client assertion with key %s: %w", a.KeyID, err)
	}
	form.Set("client_id", a.ID)
	form.Set("client_assertion_type", ClientAssertionType)
	form.Set("client_assertion", assertion)
	return nil
}

// Fingerprint names the method, client, key and audience.
func (a *PrivateKeyJWT) Fingerprint() string {
	return fmt.Sprintf("%s:%d:%s;%s;%d:%s", AuthPrivateKeyJWT, len(a.ID), a.ID, a.KeyID, len(a.Audience), a.Audience)
}
