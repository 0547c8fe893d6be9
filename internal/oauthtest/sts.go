package oauthtest

import (
	"net/http"
	"testing"
)

// GrantTokenExchange is RFC 8693's grant type.
const GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// STS is a fake RFC 8693 security token service: its token endpoint
// (TokenURL) records every call and answers with a scriptable Handler; it
// publishes OpenID Connect metadata naming itself as issuer and its token
// endpoint (SetMetadata replaces it, SetMetadataDown takes it down).
type STS struct {
	*formServer
	metadata
}

// NewSTS starts an STS that answers its token endpoint with handle.
func NewSTS(t testing.TB, handle Handler) *STS {
	t.Helper()
	s := &STS{formServer: newFormServer(t, "/token", handle)}
	s.extra = func(w http.ResponseWriter, r *http.Request) {
		if !s.metadata.serve(w, r, s.srv.URL, s.defaultMetadata) {
			http.NotFound(w, r)
		}
	}
	return s
}

// TokenURL is the token endpoint.
func (s *STS) TokenURL() string { return s.srv.URL + "/token" }

func (s *STS) defaultMetadata() any {
	return map[string]any{
		"issuer": s.srv.URL, "token_endpoint": s.TokenURL(),
		"grant_types_supported": []string{GrantTokenExchange},
	}
}

// TokenResponse is an RFC 8693 2.2.1 success answer for an access token.
func TokenResponse(token string, expiresIn any) map[string]any {
	return map[string]any{
		"access_token":      token,
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type":        "Bearer",
		"expires_in":        expiresIn,
	}
}

// Answer is a Handler that always writes status and body as JSON.
func Answer(status int, body any) Handler {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { JSON(w, status, body) }
}
