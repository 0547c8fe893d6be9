package oauthtest

import (
	"net/http"
	"sync"
	"sync/atomic"
)

// oidcMetadataPath is where OpenID Connect discovery reads an issuer
// without a path.
const oidcMetadataPath = "/.well-known/openid-configuration"

// metadata is a fake server's discovery document (the IdP's, the STS's):
// served at one path, replaceable, counted, and able to go down.
type metadata struct {
	mu      sync.Mutex
	path    string                       // "": oidcMetadataPath
	doc     func(base string) (int, any) // nil: the server's default document
	down    bool
	fetches atomic.Int32
}

// SetMetadata serves doc's answer at path (an RFC 8414 location, an issuer
// with a path) instead of the default document; doc gets the server's base
// URL. Other paths answer 404.
func (m *metadata) SetMetadata(path string, doc func(base string) (status int, body any)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.path, m.doc = path, doc
}

// SetMetadataDown makes the metadata answer 503 (down) or not.
func (m *metadata) SetMetadataDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// MetadataFetches counts the metadata requests so far.
func (m *metadata) MetadataFetches() int32 { return m.fetches.Load() }

// serve answers r when it asks for the document and reports whether it
// did; def is the default document of the server at base.
func (m *metadata) serve(w http.ResponseWriter, r *http.Request, base string, def func() any) bool {
	m.mu.Lock()
	path, doc, down := m.path, m.doc, m.down
	m.mu.Unlock()
	if path == "" {
		path = oidcMetadataPath
	}
	if r.URL.Path != path {
		return false
	}
	m.fetches.Add(1)
	switch {
	case down:
		http.Error(w, "down", http.StatusServiceUnavailable)
	case doc != nil:
		status, body := doc(base)
		JSON(w, status, body)
	default:
		JSON(w, http.StatusOK, def())
	}
	return true
}
