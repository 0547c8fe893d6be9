package config

import (
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Auth methods of exchange.remote.auth_method.
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// maxRemoteTimeout bounds exchange.remote.timeout: a request waits for it.
const maxRemoteTimeout = time.Minute

// authMethods are the values of exchange.remote.auth_method.
func authMethods() []string {
	return []string{AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT}
}

// exchangeTokenTypes are the token type URIs tokengate can send as the
// subject and ask for: the issued token goes to an API as a bearer token.
func exchangeTokenTypes() []string { return []string{TokenTypeAccessToken, TokenTypeJWT} }

func (v *validator) remote() {
	const p = "exchange.remote"
	r := v.c.Exchange.Remote
	switch {
	case r.TokenEndpoint != "" && r.Issuer != "":
		v.add(p+".token_endpoint", "is set together with issuer: keep one, token_endpoint to name the STS's token URL "+
			"or issuer to find it in the STS's metadata")
	case r.TokenEndpoint == "" && r.Issuer == "":
		v.add(p+".token_endpoint", "is not set, and issuer is not either: set token_endpoint to the STS's token URL, "+
			"like https://sts.example.com/oauth2/token, or issuer to find it in the STS's metadata")
	case r.TokenEndpoint != "":
		v.stsURL(p+".token_endpoint", r.TokenEndpoint, r.AllowInsecureHTTP, false, "https://sts.example.com/oauth2/token")
	default:
		v.stsURL(p+".issuer", r.Issuer, r.AllowInsecureHTTP, true, "https://sts.example.com")
	}

	if v.clientAuth(p, oauthClient{
		id: r.ClientID, secret: r.ClientSecret, method: r.AuthMethod, key: r.PrivateKey,
		peer: "the STS", secretEnv: "STS_CLIENT_SECRET", keyFile: "keys/sts-client.pem",
	}) {
		if strings.IndexFunc(r.AssertionAudience, unicode.IsSpace) >= 0 {
			v.add(p+".assertion_audience", "contains whitespace: write the one audience the STS expects in client assertions, "+
				"like its issuer URL, or remove the key for the token endpoint URL")
		}
	} else if r.AssertionAudience != "" && (r.AuthMethod == AuthClientSecretBasic || r.AuthMethod == AuthClientSecretPost) {
		v.addf(p+".assertion_audience", "is only used with auth_method: %s: remove it", AuthPrivateKeyJWT)
	}

	v.tokenType(p+".subject_token_type", r.SubjectTokenType)
	v.tokenType(p+".requested_token_type", r.RequestedTokenType)
	v.resourceSetting(p+".resource", r.Resource)

	switch {
	case r.Timeout <= 0:
		v.addf(p+".timeout", "%s is not positive: set how long one exchange (retries included) may take, like %s",
			r.Timeout, DefaultRemoteTimeout)
	case r.Timeout.D() > maxRemoteTimeout:
		v.addf(p+".timeout", "%s is too long: a request waits for the exchange; use at most %s, a few seconds like %s is usual",
			r.Timeout, maxRemoteTimeout, DefaultRemoteTimeout)
	}
}

// stsURL checks a URL tokengate sends credentials and umbrella tokens to (or
// reads where to send them from): http(s), plain http only on loopback or
// where allowed. A base URL (an issuer) has no query either.
func (v *validator) stsURL(path, raw string, allowInsecure, base bool, example string) {
	u, msg := httpURL(raw, example)
	if msg == "" {
		switch {
		case u.Fragment != "" || strings.Contains(raw, "#"):
			msg = showURL(u) + " has a fragment (#...): remove it"
		case base && (u.RawQuery != "" || u.ForceQuery):
			// RFC 6749 3.2 lets a token endpoint have a query; an issuer has none.
			msg = showURL(u) + " has a query (?...): remove it"
		}
	}
	if msg == "" && u.Scheme == "http" && !allowInsecure && !isLoopback(u.Hostname()) {
		msg = showURL(u) + " uses plain http: the client credentials and every umbrella token would cross the network " +
			"unencrypted; use https, or set exchange.remote.allow_insecure_http: true if the network is trusted"
	}
	if msg != "" {
		v.add(path, msg)
	}
}

// tokenType checks an RFC 8693 token type URI tokengate can use.
func (v *validator) tokenType(path, t string) {
	if slices.Contains(exchangeTokenTypes(), t) {
		return
	}
	if t == "" {
		v.addf(path, "is empty: use %s (or remove the key for that default)", TokenTypeAccessToken)
		return
	}
	v.addf(path, "%s is not a token type tokengate can use: use %s or %s", quote(t), TokenTypeAccessToken, TokenTypeJWT)
}

// resourceSetting checks exchange.remote.resource: RFC 8707 wants each
// resource to be an absolute URI without a fragment, and a listed audience
// must be one that a route exchanges for.
func (v *validator) resourceSetting(path string, r Resource) {
	if r.All {
		for i, rt := range v.c.Routes {
			if rt.Audience != "" && !absoluteURI(rt.Audience) {
				v.addf(path, "is true, but routes[%d].audience %s is not an absolute URI without a fragment, which "+
					"RFC 8707 requires of a resource: list only the audiences that are, like [%s]",
					i, quote(rt.Audience), "https://orders.example.com")
				return
			}
		}
		return
	}
	for i, a := range r.Audiences {
		p := indexPath(path, i)
		switch {
		case a == "":
			v.add(p, "is empty: remove the entry, or name a route's audience")
		case !absoluteURI(a):
			v.addf(p, "%s is not an absolute URI without a fragment, which RFC 8707 requires of a resource: remove it", quote(a))
		case !slices.ContainsFunc(v.c.Routes, func(rt Route) bool { return rt.Audience == a }):
			v.addf(p, "%s is not the audience of any route: list routes' audiences only", quote(a))
		}
	}
}

// absoluteURI reports a URI with a scheme and no fragment (RFC 8707 2).
func absoluteURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Fragment == "" && !strings.Contains(s, "#") && !hasSpaceOrControl(s)
}
