package oauthclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// MaxMetadata bounds a metadata document.
const MaxMetadata = 1 << 20

// Metadata is what tokengate reads of an authorization server's metadata
// (RFC 8414 2, OpenID Connect Discovery 3). Endpoints are as published:
// callers check each one they use with CheckEndpointURL.
type Metadata struct {
	Issuer                string   `json:"issuer"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	IntrospectionEndpoint string   `json:"introspection_endpoint"`
	GrantTypesSupported   []string `json:"grant_types_supported"`
}

// FetchMetadata reads issuer's metadata: OpenID Connect discovery first,
// RFC 8414 when that answers with another status than 200. A transport
// failure stops at once (the second location is on the same host). The
// document must name exactly issuer (RFC 8414 3.3), so a server cannot
// speak for another. timeout bounds each GET (0: ctx only).
func FetchMetadata(ctx context.Context, client *http.Client, issuer string, timeout time.Duration) (*Metadata, error) {
	var errs []error
	for _, u := range MetadataURLs(issuer) {
		body, err := Get(ctx, client, u, MaxMetadata, timeout)
		if err != nil {
			errs = append(errs, err)
			if oe, ok := errors.AsType[*Error](err); ok && oe.Status != 0 {
				continue // try the RFC 8414 location
			}
			break
		}
		var meta Metadata
		if err := json.Unmarshal(body, &meta); err != nil {
			return nil, fmt.Errorf("parse %s: %w", u, err)
		}
		if meta.Issuer != issuer {
			return nil, fmt.Errorf("%s names issuer %q, want exactly %q", u, meta.Issuer, issuer)
		}
		return &meta, nil
	}
	return nil, errors.Join(errs...)
}

// Discovery reads an issuer's metadata once and keeps it for its life (the
// life of one configuration). Failed reads are retried no more often than
// MinInterval, one at a time: callers meanwhile get the last error at once,
// so a down server is not hammered by every request.
type Discovery struct {
	issuer      string
	client      *http.Client
	timeout     time.Duration
	minInterval time.Duration
	now         func() time.Time
	check       func(*Metadata) error

	flight singleflight.Group

	mu      sync.Mutex
	meta    *Metadata
	lastErr error
	lastTry time.Time
}

// DiscoveryOptions configure NewDiscovery.
type DiscoveryOptions struct {
	Issuer string
	// Client fetches the metadata. Required.
	Client *http.Client
	// Timeout bounds one read (both locations), detached from any caller.
	Timeout time.Duration
	// MinInterval is the least time between two reads after a failure.
	MinInterval time.Duration
	// Clock is nil for time.Now.
	Clock func() time.Time
	// Check, when set, vets a document (its endpoints, say); an error makes
	// the read a failure, so a bad document is never kept.
	Check func(*Metadata) error
}

// NewDiscovery returns a Discovery that reads nothing until asked.
func NewDiscovery(o DiscoveryOptions) *Discovery {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Discovery{issuer: o.Issuer, client: o.Client, timeout: o.Timeout,
		minInterval: o.MinInterval, now: o.Clock, check: o.Check}
}

// Metadata returns the issuer's metadata, reading it if need be. One read
// serves every waiting caller and is detached from any one caller's
// cancellation; each caller still stops waiting when its ctx ends.
func (d *Discovery) Metadata(ctx context.Context) (*Metadata, error) {
	d.mu.Lock()
	meta, lastErr, lastTry := d.meta, d.lastErr, d.lastTry
	d.mu.Unlock()
	if meta != nil {
		return meta, nil
	}
	if lastErr != nil && d.now().Sub(lastTry) < d.minInterval {
		return nil, lastErr
	}
	ch := d.flight.DoChan("discover", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
		defer cancel()
		meta, err := FetchMetadata(fctx, d.client, d.issuer, 0)
		if err == nil && d.check != nil {
			err = d.check(meta)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.lastTry = d.now()
		if err != nil {
			d.lastErr = err
			return nil, err
		}
		d.meta, d.lastErr = meta, nil
		return meta, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Metadata), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("read the metadata of %q: %w", d.issuer, ctx.Err())
	}
}
