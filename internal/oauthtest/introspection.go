package oauthtest

import "testing"

// Introspection is a fake RFC 7662 introspection endpoint (URL + "/introspect"):
// it records every call and answers with a scriptable Handler.
type Introspection struct {
	*formServer
}

// NewIntrospection starts an introspection server that answers with handle.
func NewIntrospection(t testing.TB, handle Handler) *Introspection {
	t.Helper()
	return &Introspection{formServer: newFormServer(t, "/introspect", handle)}
}

// Endpoint is the introspection endpoint.
func (s *Introspection) Endpoint() string { return s.srv.URL + "/introspect" }
