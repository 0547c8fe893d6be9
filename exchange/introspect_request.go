package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
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
// authentication, and reads the answer. An error is an outage; a definite
// answer (active or not) is an entry.
func (it *introspector) ask(ctx context.Context, raw string, hash [32]byte) (*introspectEntry, error) {
	endpoint, err := it.endpointURL(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{}
	form.Set("token", raw)
	form.Set("token_type_hint", "access_token")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("build introspection request: %w", err)
	}
	if err := it.auth.Apply(req, form, endpoint, it.now()); err != nil {
		return nil, err
	}
	// The body is set after client authentication has added its fields.
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	want := introspectJSONType
	if it.jwtResponse {
		want = introspectJWTType
	}
	req.Header.Set("Accept", want)

	resp, err := it.client.Do(req)
	if err != nil {
		// *url.Error carries the endpoint and the cause, never the body.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, introspectMaxBody))
		return nil, fmt.Errorf("POST %s: unexpected status %d", endpoint, resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || !strings.EqualFold(mt, want) {
		return nil, fmt.Errorf("POST %s: response Content-Type is %q, want %s", endpoint, resp.Header.Get("Content-Type"), want)
	}
	b, err := introspectReadAll(resp.Body, introspectMaxBody)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	now := it.now()
	members, err := it.members(ctx, b, now)
	if err != nil {
		return nil, err
	}
	return it.entry(members, raw, hash, now)
}
