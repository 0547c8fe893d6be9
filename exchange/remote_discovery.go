package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

const (
	// stsDiscoveryMinInterval is the least time between two metadata fetches
	// after a failure: requests meanwhile fail at once with the last error.
	stsDiscoveryMinInterval = 5 * time.Second
	// stsMaxMetadata bounds a metadata document.
	stsMaxMetadata = 1 << 20
	// grantTokenExchange is RFC 8693's grant type.
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// stsEndpoint is the STS's token endpoint: configured, or read once from the
// issuer's metadata (OIDC discovery, else RFC 8414) and then kept for the
// life of this configuration. Failed fetches are retried no more often than
// stsDiscoveryMinInterval, one at a time.
type stsEndpoint struct {
	static        string // exchange.remote.token_endpoint; "" means discover
	issuer        string
	client        *http.Client
	timeout       time.Duration
	allowInsecure bool
	now           func() time.Time
	onWarn        func(msg string, args ...any)

	flight singleflight.Group

	mu       sync.Mutex
	endpoint string
	lastErr  error
	lastTry  time.Time
}

// resolve returns the token endpoint, discovering it if need be.
func (d *stsEndpoint) resolve(ctx context.Context) (string, error) {
	if d.static != "" {
		return d.static, nil
	}
	d.mu.Lock()
	ep, lastErr, lastTry := d.endpoint, d.lastErr, d.lastTry
	d.mu.Unlock()
	if ep != "" {
		return ep, nil
	}
	if lastErr != nil && d.now().Sub(lastTry) < stsDiscoveryMinInterval {
		return "", lastErr
	}
	// One fetch for every waiting caller, detached from any one caller's
	// cancellation; each caller still stops waiting when its ctx ends.
	ch := d.flight.DoChan("discover", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
		defer cancel()
		ep, err := d.discover(fctx)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.lastTry = d.now()
		if err != nil {
			d.lastErr = err
			return "", err
		}
		d.endpoint, d.lastErr = ep, nil
		return ep, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("discover the sts token endpoint: %w", ctx.Err())
	}
}

// stsMetadata is what tokengate reads of the STS's metadata.
type stsMetadata struct {
	Issuer        string   `json:"issuer"`
	TokenEndpoint string   `json:"token_endpoint"`
	GrantTypes    []string `json:"grant_types_supported"`
}

func (d *stsEndpoint) discover(ctx context.Context) (string, error) {
	var errs []error
	for _, u := range jwksMetadataURLs(d.issuer) {
		body, status, err := d.get(ctx, u)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if status != http.StatusOK {
			errs = append(errs, fmt.Errorf("GET %s: status %d", u, status))
			continue // try the RFC 8414 location
		}
		var meta stsMetadata
		if err := json.Unmarshal(body, &meta); err != nil {
			return "", fmt.Errorf("discover the sts token endpoint: parse %s: %w", u, err)
		}
		if meta.Issuer != d.issuer {
			return "", fmt.Errorf("discover the sts token endpoint: %s names issuer %q, want exactly %q", u, meta.Issuer, d.issuer)
		}
		if meta.TokenEndpoint == "" {
			return "", fmt.Errorf("discover the sts token endpoint: %s has no token_endpoint", u)
		}
		if err := jwksCheckURI(meta.TokenEndpoint, d.allowInsecure); err != nil {
			return "", fmt.Errorf("discover the sts token endpoint: %s: token_endpoint: %w", u, err)
		}
		if len(meta.GrantTypes) > 0 && !slices.Contains(meta.GrantTypes, grantTokenExchange) && d.onWarn != nil {
			d.onWarn("the STS's metadata does not list the token exchange grant; exchanges may be refused",
				"issuer", d.issuer, "grant_types_supported", meta.GrantTypes)
		}
		return meta.TokenEndpoint, nil
	}
	return "", fmt.Errorf("discover the sts token endpoint: %w", errors.Join(errs...))
}

func (d *stsEndpoint) get(ctx context.Context, uri string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", uri, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, resp.StatusCode, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, stsMaxMetadata+1))
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: read body: %w", uri, err)
	}
	if len(body) > stsMaxMetadata {
		return nil, 0, fmt.Errorf("GET %s: metadata larger than %d bytes", uri, stsMaxMetadata)
	}
	return body, http.StatusOK, nil
}
