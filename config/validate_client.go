package config

import (
	"strings"
	"unicode"
)

// oauthClient is how tokengate authenticates as an OAuth client: at the
// STS (exchange.remote) or at an introspection endpoint.
type oauthClient struct {
	id, secret, method string
	key                SigningKey
	// peer names the server in messages ("the STS"); secretEnv and keyFile
	// are the examples a message suggests.
	peer, secretEnv, keyFile string
}

// clientAuth checks client_id and the secret or private key that
// auth_method needs, under key path p. It reports whether auth_method is
// private_key_jwt (for checks only that method has).
func (v *validator) clientAuth(p string, c oauthClient) (privateKeyJWT bool) {
	switch {
	case c.id == "":
		v.addf(p+".client_id", "is empty: set the client ID that tokengate has at %s", c.peer)
	case strings.IndexFunc(c.id, unicode.IsControl) >= 0:
		v.add(p+".client_id", "contains a control character (a line break?): write the client ID on one line")
	}
	switch c.method {
	case AuthClientSecretBasic, AuthClientSecretPost:
		if c.secret == "" {
			v.addf(p+".client_secret", "is empty: auth_method %s sends the client secret; set it, "+
				"from the environment like \"${%s}\"", c.method, c.secretEnv)
		}
		if c.key != (SigningKey{}) {
			v.addf(p+".private_key", "is set, but auth_method is %s, which does not use it: set auth_method: %s "+
				"to sign client assertions with it, or remove private_key", c.method, AuthPrivateKeyJWT)
		}
	case AuthPrivateKeyJWT:
		if c.secret != "" {
			v.addf(p+".client_secret", "is set, but auth_method is %s, which does not send it: remove it", AuthPrivateKeyJWT)
		}
		if c.key == (SigningKey{}) {
			v.addf(p+".private_key", "is not set: auth_method %s signs client assertions with a private key; set "+
				"private_key: {file: %s, alg: ES256} and register its public key with %s", AuthPrivateKeyJWT, c.keyFile, c.peer)
		} else {
			v.signingKey(p+".private_key", c.key)
		}
		return true
	case "":
		v.addf(p+".auth_method", "is empty: use %s (or remove the key for the default, %s)",
			strings.Join(authMethods(), ", "), DefaultAuthMethod)
	default:
		v.addf(p+".auth_method", "%s is not a client authentication method: use %s",
			quote(c.method), strings.Join(authMethods(), ", "))
	}
	return false
}
