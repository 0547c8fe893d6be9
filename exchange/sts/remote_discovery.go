package sts

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/tokengate/tokengate/internal/oauthclient"
)

const (
	// stsDiscoveryMinInterval is the least time between two metadata fetches
	// after a failure: requests meanwhile fail at once with the last error.
	stsDiscoveryMinInterval = 5 * time.Second
	// grantTokenExchange is RFC 8693's grant type.
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// stsEndpoint is the STS's token endpoint: configured, or read once from the
// issuer's metadata (oauthclient.Discovery: OIDC discovery, else RFC 8414,
// kept for the life of this configuration, failed reads retried no more
// often than stsDiscoveryMinInterval).
type stsEndpoint struct {
	static    string // exchange.remote.token_endpoint; "" means discover
	discovery *oauthclient.Discovery
}

// newSTSEndpoint returns the configured endpoint, or one discovered from
// issuer's metadata, whose token_endpoint must pass the URL policy.
func newSTSEndpoint(static, issuer string, client *http.Client, timeout time.Duration, allowInsecure bool, now func() time.Time, log *slog.Logger) *stsEndpoint {
	if static != "" {
		return &stsEndpoint{static: static}
	}
	return &stsEndpoint{discovery: oauthclient.NewDiscovery(oauthclient.DiscoveryOptions{
		Issuer:      issuer,
		Client:      client,
		Timeout:     timeout,
		MinInterval: stsDiscoveryMinInterval,
		Clock:       now,
		Check: func(meta *oauthclient.Metadata) error {
			if meta.TokenEndpoint == "" {
				return fmt.Errorf("the metadata of %q has no token_endpoint", issuer)
			}
			if err := oauthclient.CheckEndpointURL(meta.TokenEndpoint, allowInsecure); err != nil {
				return fmt.Errorf("token_endpoint: %w", err)
			}
			if len(meta.GrantTypesSupported) > 0 && !slices.Contains(meta.GrantTypesSupported, grantTokenExchange) {
				log.Warn("the STS's metadata does not list the token exchange grant; exchanges may be refused",
					"issuer", issuer, "grant_types_supported", meta.GrantTypesSupported)
			}
			return nil
		},
	})}
}

// resolve returns the token endpoint, discovering it if need be.
func (d *stsEndpoint) resolve(ctx context.Context) (string, error) {
	if d.static != "" {
		return d.static, nil
	}
	meta, err := d.discovery.Metadata(ctx)
	if err != nil {
		return "", fmt.Errorf("discover the sts token endpoint: %w", err)
	}
	return meta.TokenEndpoint, nil
}
