package oauthtest

import (
	"net/http"
	"sync/atomic"
	"testing"
)

// GrantTokenExchange is RFC 8693's grant type.
const GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// STS is a fake RFC 8693 security token service: its token endpoint
// (TokenURL) records every call and answers with a scriptable Handler; it
// publishes OpenID Connect metadata naming itself as issuer and its token
// endpoint, unless taken down with SetMetadataDown.
type STS struct {
	*formServer
	metaDown    bool
	metaPath    string
	metaDoc     func(base string) (int, any) // nil: the default document
	metaFetches atomic.Int32
}

// NewSTS starts an STS that answers its token endpoint with handle.
func NewSTS(t testing.TB, handle Handler) *STS {
	t.Helper()
	s := &STS{formServer: newFormServer(t, "/token", handle), metaPath: "/.well-known/openid-configuration"}
	s.extra = s.metadata
	return s
}

// TokenURL is the token endpoint.
func (s *STS) TokenURL() string { return s.srv.URL + "/token" }

// SetMetadataDown makes the metadata answer 503 (down) or not.
func (s *STS) SetMetadataDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metaDown = down
}

// SetMetadata serves doc's answer at path (an RFC 8414 location, an
// issuer with a path) instead of the default document; doc gets the
// server's base URL.
func (s *STS) SetMetadata(path string, doc func(base string) (status int, body any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metaPath, s.metaDoc = path, doc
}

// MetadataFetches counts the metadata requests so far.
func (s *STS) MetadataFetches() int32 { return s.metaFetches.Load() }

func (s *STS) metadata(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down, path, doc := s.metaDown, s.metaPath, s.metaDoc
	s.mu.Unlock()
	if r.URL.Path != path {
		http.NotFound(w, r)
		return
	}
	s.metaFetches.Add(1)
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if doc != nil {
		status, body := doc(s.srv.URL)
		JSON(w, status, body)
		return
	}
	JSON(w, http.StatusOK, map[string]any{
		"issuer": s.srv.URL, "token_endpoint": s.TokenURL(),
		"grant_types_supported": []string{GrantTokenExchange},
	})
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
