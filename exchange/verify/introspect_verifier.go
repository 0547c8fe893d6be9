package verify

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tokengate/tokengate/config"
)

// addIntrospector gives the verifier the introspector of ic, when ic
// introspects. Only one issuer may: an opaque token carries no iss to tell
// which issuer to ask.
func (v *Verifier) addIntrospector(ic config.Issuer, iss *verifyIssuer, opts VerifierOptions, log *slog.Logger, now func() time.Time) error {
	if ic.Introspection == nil {
		return nil
	}
	if v.introspector != nil {
		return errors.New("only one issuer may introspect: an opaque token carries no iss to route by")
	}
	it, err := newIntrospector(ic, iss, opts.HTTPClient, log, opts.Metrics, now)
	if err != nil {
		return err
	}
	it.verifySignature = func(ctx context.Context, h verifyHeader, raw string) error {
		return v.verifySignature(ctx, iss, h, raw)
	}
	v.introspector = it
	return nil
}

// IntrospectionTarget reports whether Verify would send raw to an
// introspection endpoint (it is not JWT-shaped and an issuer introspects),
// and which: the configured URL, or the discovered one ("" when not yet
// discovered). Nothing is sent: `tokengate check --explain` uses it.
func (v *Verifier) IntrospectionTarget(raw string) (issuer, endpoint string, ok bool) {
	it := v.introspector
	if it == nil || jwtShaped(raw) {
		return "", "", false
	}
	endpoint = it.endpoint
	if endpoint == "" {
		endpoint = it.iss.keys.introspectionEndpoint()
	}
	return it.iss.name, endpoint, true
}

// Introspects reports whether an issuer introspects opaque tokens: then an
// opaque token value is something /admin/revoke can revoke.
func (v *Verifier) Introspects() bool { return v.introspector != nil }
