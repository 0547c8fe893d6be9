package gateway

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tokengate/tokengate/exchange"
)

// RFC 8693 token exchange parameters.
const (
	paramGrantType          = "grant_type"
	paramSubjectToken       = "subject_token"
	paramSubjectTokenType   = "subject_token_type"
	paramAudience           = "audience"
	paramScope              = "scope"
	paramRequestedTokenType = "requested_token_type"
	paramResource           = "resource"
	paramActorToken         = "actor_token"
	paramActorTokenType     = "actor_token_type"
)

// tokenParams are the parameters the endpoint reads; only these are checked
// for repetition (RFC 6749 section 3.2: unrecognised parameters are ignored).
var tokenParams = [...]string{
	paramGrantType, paramSubjectToken, paramSubjectTokenType, paramAudience, paramScope,
	paramRequestedTokenType, paramResource, paramActorToken, paramActorTokenType,
}

// tokenRequest is a well-formed RFC 8693 token exchange request.
type tokenRequest struct {
	subjectToken string
	audience     string
	// scopes is the scope parameter, split, sorted and deduplicated; nil
	// when the parameter is absent (then the downscoped set is issued).
	scopes []string
	// requestedType is requested_token_type, "" when absent.
	requestedType string
}

func badTokenRequest(code, description string) *tokenRequestError {
	return &tokenRequestError{status: http.StatusBadRequest, code: code, description: description}
}

// parseTokenForm parses and checks an application/x-www-form-urlencoded
// token exchange body. A parameter sent without a value counts as absent
// (RFC 6749 section 3.1); a recognised one sent twice is invalid_request,
// except audience: several audiences ask for a multi-audience token, which
// tokengate is unwilling to issue (invalid_target, RFC 8693 section 2.2.2).
// Errors are *tokenRequestError and never hold a parameter's value.
func parseTokenForm(body string) (tokenRequest, error) {
	form, err := url.ParseQuery(body)
	if err != nil {
		return tokenRequest{}, badTokenRequest("invalid_request", "the body is not a valid application/x-www-form-urlencoded form")
	}
	for _, name := range tokenParams {
		if len(form[name]) < 2 {
			continue
		}
		if name == paramAudience || name == paramResource {
			return tokenRequest{}, badTokenRequest("invalid_target",
				"several "+name+"s: tokengate issues single-audience tokens; ask for one audience per request")
		}
		return tokenRequest{}, badTokenRequest("invalid_request", "the parameter "+name+" is repeated")
	}
	get := func(name string) string {
		if v := form[name]; len(v) == 1 {
			return v[0]
		}
		return ""
	}

	switch gt := get(paramGrantType); gt {
	case grantTokenExchange:
	case "":
		return tokenRequest{}, badTokenRequest("invalid_request", "grant_type is required: use "+grantTokenExchange)
	default:
		return tokenRequest{}, badTokenRequest("unsupported_grant_type", "only the token exchange grant is supported: use "+grantTokenExchange)
	}
	if get(paramActorToken) != "" || get(paramActorTokenType) != "" {
		return tokenRequest{}, badTokenRequest("invalid_request", "delegation is not supported: remove actor_token and actor_token_type")
	}
	req := tokenRequest{subjectToken: get(paramSubjectToken)}
	if req.subjectToken == "" {
		return tokenRequest{}, badTokenRequest("invalid_request", "subject_token is required: send the umbrella access token")
	}
	switch get(paramSubjectTokenType) {
	case exchange.TokenTypeAccessToken, exchange.TokenTypeJWT:
	case "":
		return tokenRequest{}, badTokenRequest("invalid_request", "subject_token_type is required: use "+exchange.TokenTypeAccessToken)
	default:
		return tokenRequest{}, badTokenRequest("invalid_request",
			"subject_token_type is not supported: use "+exchange.TokenTypeAccessToken+" or "+exchange.TokenTypeJWT)
	}
	switch rt := get(paramRequestedTokenType); rt {
	case "", exchange.TokenTypeAccessToken, exchange.TokenTypeJWT:
		req.requestedType = rt
	default:
		return tokenRequest{}, badTokenRequest("invalid_request",
			"requested_token_type is not supported: use "+exchange.TokenTypeAccessToken+" or "+exchange.TokenTypeJWT)
	}
	audience, err := requestedAudience(get(paramAudience), get(paramResource))
	if err != nil {
		return tokenRequest{}, err
	}
	req.audience = audience
	if s, ok := form[paramScope]; ok && len(s) == 1 && s[0] != "" {
		scopes, ok := splitScope(s[0])
		if !ok {
			return tokenRequest{}, badTokenRequest("invalid_scope",
				"scope is malformed: write scope names separated by single spaces")
		}
		req.scopes = scopes
	}
	return req, nil
}

// requestedAudience is the target a request names: audience (RFC 8693), or
// resource (RFC 8707), which names the same thing for a client that speaks
// resource indicators. Both together must be the same string: tokengate
// issues single-audience tokens, and cannot tell which of two targets the
// client meant (invalid_target). Whether it is a route audience is up to the
// caller; neither value is echoed.
func requestedAudience(audience, resource string) (string, error) {
	switch {
	case audience != "" && resource != "" && audience != resource:
		return "", badTokenRequest("invalid_target",
			"audience and resource name different targets: send one of them, naming a configured route audience")
	case audience != "":
		return audience, nil
	case resource != "":
		return resource, nil
	}
	return "", badTokenRequest("invalid_request", "audience is required: name the API the token is for (or send it as resource)")
}

// splitScope splits an RFC 6749 section 3.3 scope: scope-tokens of
// %x21 / %x23-5B / %x5D-7E separated by one space. The result is sorted and
// deduplicated (it becomes part of the exchange cache key).
func splitScope(s string) ([]string, bool) {
	parts := strings.Split(s, " ")
	for _, p := range parts {
		if p == "" {
			return nil, false
		}
		for i := 0; i < len(p); i++ {
			if c := p[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return nil, false
			}
		}
	}
	slices.Sort(parts)
	return slices.Compact(parts), true
}
