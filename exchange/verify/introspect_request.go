package verify

import (
	"context"
	"fmt"
	"mime"
	"net/url"
	"strings"
)

const (
	// introspectMaxBody bounds an introspection response.
	introspectMaxBody = 64 << 10
	// Media types of RFC 7662 and RFC 9701 responses.
	introspectJSONType = "application/json"
	introspectJWTType  = "application/token-introspection+jwt"
)

// ask POSTs the token to the endpoint (RFC 7662 2.1) with client
// authentication (oauthclient: no redirects, a bounded body), and reads the
// answer. An error is an outage; a definite
// answer (active or not) is an entry.
func (it *introspector) ask(ctx context.Context, raw string, hash [32]byte) (*introspectEntry, error) {
	endpoint, err := it.endpointURL(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{}
	form.Set("token", raw)
	form.Set("token_type_hint", "access_token")
	want := introspectJSONType
	if it.jwtResponse {
		want = introspectJWTType
	}
	resp, _, err := it.oauth.PostForm(ctx, endpoint, form, want)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || !strings.EqualFold(mt, want) {
		return nil, fmt.Errorf("POST %s: response Content-Type is %q, want %s", endpoint, resp.Header.Get("Content-Type"), want)
	}
	b := resp.Body
	now := it.now()
	members, err := it.members(ctx, b, now)
	if err != nil {
		return nil, err
	}
	return it.entry(members, raw, hash, now)
}
