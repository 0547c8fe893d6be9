package config

import (
	"maps"
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

	v.subjectTokenType(p+".subject_token_type", r.SubjectTokenType)
	v.tokenType(p+".requested_token_type", r.RequestedTokenType)
	v.resourceSetting(p+".resource", r.Resource)
	v.extraParams(p+".extra_params", r.ExtraParams)

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

// subjectTokenType checks the type URI the umbrella token is sent as: an
// RFC 8693 type tokengate's umbrella tokens are (access_token, jwt), or a
// custom absolute URI outside the urn:ietf namespace, which some STSs
// require to select their exchange profile (Auth0's Custom Token Exchange
// refuses the urn:ietf types and maps its own URI to an Action).
func (v *validator) subjectTokenType(path, t string) {
	if t == "" || slices.Contains(exchangeTokenTypes(), t) || strings.HasPrefix(strings.ToLower(t), "urn:ietf:") {
		v.tokenType(path, t)
		return
	}
	if !absoluteURI(t) {
		v.addf(path, "%s is not a token type tokengate can use: use %s or %s, or a custom absolute URI outside urn:ietf "+
			"(like urn:acme:umbrella-token) that your STS maps to an exchange profile", quote(t), TokenTypeAccessToken, TokenTypeJWT)
	}
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

// reservedSTSParams are the form parameters tokengate sets itself on a
// request to the STS (RFC 8693 2.1, RFC 6749 2.3 and RFC 7523 client
// authentication, RFC 8707, the Txn-Token request): an extra parameter of
// the same name would replace or duplicate one of them, and so change what
// is exchanged, for whom, or who asks.
func reservedSTSParams() []string {
	return []string{
		"grant_type", "subject_token", "subject_token_type", "audience", "scope", "resource",
		"requested_token_type", "actor_token", "actor_token_type",
		"client_id", "client_secret", "client_assertion", "client_assertion_type",
		"request_context", "request_details",
	}
}

// reservedSTSParamPrefixes: every parameter of these families is tokengate's
// to set (client_assertion*, actor_token*).
func reservedSTSParamPrefixes() []string { return []string{"client_assertion", "actor_token"} }

// extraParams checks exchange.remote.extra_params: names are plain form
// parameter names, none of them one tokengate sets. Names are compared
// without case: an STS that reads parameters case-insensitively must not get
// a second grant_type. Values are never repeated: they may be secrets.
func (v *validator) extraParams(path string, params map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(params)) {
		p := keyPath(path, name)
		lower := strings.ToLower(name)
		switch {
		case name == "":
			v.add(p, "is an empty parameter name: remove it")
		case !validParamName(name):
			v.add(p, "is not a plain parameter name: use letters, digits and . _ - : only, like connector_id")
		case slices.Contains(reservedSTSParams(), lower) ||
			slices.ContainsFunc(reservedSTSParamPrefixes(), func(pre string) bool { return strings.HasPrefix(lower, pre) }):
			v.addf(p, "is a parameter tokengate sets itself (RFC 8693 exchange or client authentication): "+
				"an extra parameter may not replace it; remove it, and configure it with its own key "+
				"(client_id, auth_method, requested_token_type, resource, the routes' audience and scopes)")
		}
	}
}

// validParamName: a conservative form parameter name, so that a typo (a
// space, a "=", a "&") is caught here and not at the STS.
func validParamName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c == '-' || c == '.' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}
