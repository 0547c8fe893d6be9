package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/sign"
	"github.com/tokengate/tokengate/exchange/verify"
	"github.com/tokengate/tokengate/gateway"
	build "github.com/tokengate/tokengate/internal/server"
)

// explainOptions are what `tokengate check --explain` needs; tests inject
// the clock and the HTTP client.
type explainOptions struct {
	cfg        *config.Config
	raw        string // the umbrella token: never printed
	noVerify   bool
	now        func() time.Time
	httpClient *http.Client
	out        io.Writer
}

// errKeysForExplain: the signature cannot be checked; --no-verify is the way out.
var errKeysForExplain = errors.New("cannot verify the token's signature")

// explain prints, for one umbrella token, what the gateway would do on
// every route and at the token endpoint, and what each exchanged token
// would contain. The decisions come from gateway.Explain, the code that
// serves requests; the exchanged claims from the configured local signer.
// Nothing is sent to a route, and the token itself is never printed.
func explain(ctx context.Context, o explainOptions) error {
	cfg := o.cfg
	// The same build as serve, offline: --no-verify only swaps the
	// verifier the gateway decides with.
	gen, err := buildOffline(ctx, cfg, build.ProcessOptions{HTTPClient: o.httpClient, Clock: o.now},
		build.Options{Verifier: func(v *verify.Verifier) gateway.Verifier {
			if o.noVerify {
				return unverified{v}
			}
			return v
		}})
	if err != nil {
		return err
	}
	defer gen.Close()
	verifier := gen.Verifier()
	w := &errWriter{w: o.out}
	if iss, endpoint, ok := verifier.IntrospectionTarget(o.raw); ok {
		explainOpaque(w, iss, endpoint)
		return w.err
	}
	if o.noVerify {
		w.printf("WARNING: --no-verify: the signature is NOT checked. This explains what the claims would\n")
		w.printf("WARNING: allow IF the token is genuine; a forged token with the same claims reads the same.\n\n")
	}

	// The token before any route: its claims as the verifier reads them.
	info, infoErr := verifier.InspectUnverified(o.raw, "")
	signature := "signature NOT checked (--no-verify)"
	if !o.noVerify && infoErr == nil {
		switch aud := info.Claims.Audience; {
		case len(aud) == 0 || aud[0] == "":
			signature = "signature not checked: the token has no aud, so no route accepts it"
		default:
			_, err := verifier.Verify(ctx, o.raw, aud[0])
			var reject *exchange.RejectError
			switch {
			case err == nil:
				signature = fmt.Sprintf("signature verified with the keys of issuer %q", info.Claims.Issuer)
			case errors.As(err, &reject):
				signature = "signature check FAILED: " + reject.Description
			default:
				return fmt.Errorf("%w: the keys of issuer %q are unavailable (%v); run again with --no-verify "+
					"to explain it from its unverified claims", errKeysForExplain, info.Claims.Issuer, err)
			}
		}
	}
	now := o.now()
	if infoErr != nil {
		w.printf("Umbrella token: refused before any route: %s\n", describe(infoErr))
	} else {
		w.printf("Umbrella token (%s)\n", signature)
		printClaims(w, cfg, &info.Claims, now)
	}

	// Explain decides through the gateway's own code and exchanges nothing.
	ex := gen.Edge().Explain(ctx, o.raw)
	mint := &minter{local: gen.Local(), ttl: cfg.Exchange.TokenTTL.D(), now: o.now}

	if ex.JKT != "" {
		w.printf("\nDPoP-bound (cnf.jkt %s): every request below also needs a DPoP proof signed by that key, "+
			"with Authorization: DPoP at the edge; sent as Bearer it is refused (docs/dpop.md)\n", ex.JKT)
	}

	allowed := 0
	for _, d := range ex.Routes {
		if d.Allowed {
			allowed++
		}
	}
	w.printf("\nRoutes: %d of %d reachable\n", allowed, len(ex.Routes))
	for _, d := range ex.Routes {
		match := d.PathPrefix
		if d.Host != "" {
			match = d.Host + match
		}
		w.printf("  %s %s  %s -> aud %s\n", verdict(d.Allowed), d.Routes[0], match, d.Audience)
		if !d.Allowed {
			printRefusal(w, d)
			continue
		}
		mint.print(ctx, w, d.Request)
	}

	if ex.TokenEndpointPath == "" {
		w.printf("\nToken endpoint: disabled (server.token_endpoint_path is \"\")\n")
	} else {
		w.printf("\nToken endpoint: POST %s, for each audience (without a scope parameter)\n", ex.TokenEndpointPath)
		for _, d := range ex.TokenEndpoint {
			w.printf("  %s %s  (%s %s)\n", verdict(d.Allowed), d.Audience, plural(len(d.Routes), "route", "routes"), strings.Join(d.Routes, ", "))
			if !d.Allowed {
				printRefusal(w, d)
				continue
			}
			w.printf("      token: %s, same claims as at the edge\n", scopeText(d.Request.Scopes))
		}
	}
	if o.noVerify {
		w.printf("\nWARNING: --no-verify: nothing above proves that the token is genuine.\n")
	}
	return w.err
}

// scopeText describes the scope of an exchanged token.
func scopeText(scopes []string) string {
	if len(scopes) == 0 {
		return "no scope (the umbrella token holds none that belongs to this API)"
	}
	return fmt.Sprintf("scope %q", strings.Join(scopes, " "))
}

func verdict(ok bool) string {
	if ok {
		return "ALLOWED"
	}
	return "REFUSED"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func printRefusal(w *errWriter, d gateway.Decision) {
	w.printf("      %d %s: %s\n", d.Status, d.Error, d.Description)
	if d.Challenge != "" {
		w.printf("      WWW-Authenticate: %s\n", d.Challenge)
	}
}

// describe is a verifier error as the client would read it, never the token.
func describe(err error) string {
	var reject *exchange.RejectError
	if errors.As(err, &reject) {
		return reject.Reason + ": " + reject.Description
	}
	return "the token cannot be read"
}

// printClaims prints what policy and exchange read from the token.
func printClaims(w *errWriter, cfg *config.Config, c *exchange.Claims, now time.Time) {
	var iss *config.Issuer
	for i := range cfg.Issuers {
		if cfg.Issuers[i].Issuer == c.Issuer {
			iss = &cfg.Issuers[i]
		}
	}
	row := func(name, value string) { w.printf("  %-10s %s\n", name, value) }
	row("iss", c.Issuer)
	if c.Subject != "" {
		row("sub", c.Subject)
	}
	_, hasClientID := c.Extra["client_id"]
	switch {
	case c.ClientID != "" && hasClientID:
		row("client", c.ClientID+" (client_id)")
	case c.ClientID != "":
		row("client", c.ClientID+" (azp)")
	default:
		row("client", "(none: routes with allowed_clients refuse it)")
	}
	if gty, ok := c.Extra["gty"]; ok {
		row("gty", strings.Trim(string(gty), `"`))
	}
	for i, a := range c.Audience {
		name := "aud"
		if i > 0 {
			name = ""
		}
		if iss != nil && iss.UmbrellaAudience != "" && a == iss.UmbrellaAudience {
			a += "  (the issuer's umbrella_audience: may reach every route)"
		}
		row(name, a)
	}
	scopes := strings.Join(c.Scopes, " ")
	if scopes == "" {
		scopes = "(none)"
	}
	if _, ok := c.Extra["permissions"]; ok && iss != nil && iss.PermissionsAsScopes {
		scopes += "  (scope and permissions: permissions_as_scopes)"
	}
	row("scopes", scopes)
	if c.ACR != "" {
		row("acr", c.ACR)
	}
	if c.AuthTime.IsZero() {
		row("auth_time", "(none: routes with max_age refuse it)")
	} else {
		row("auth_time", fmt.Sprintf("%s (%s ago)", stamp(c.AuthTime), now.Sub(c.AuthTime).Round(time.Second)))
	}
	row("exp", fmt.Sprintf("%s (in %s)", stamp(c.Expiry), c.Expiry.Sub(now).Round(time.Second)))
	row("now", stamp(now))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// minter signs with the configured local signer what an allowed route
// would exchange, and prints the claims (never the token). In remote mode
// (local is nil) the STS would sign: nothing is sent to it.
type minter struct {
	local *sign.Local
	ttl   time.Duration
	now   func() time.Time
}

func (m *minter) print(ctx context.Context, w *errWriter, req exchange.Request) {
	if m.local == nil {
		w.printf("      exchanged token: aud %q, %s, issued by the STS (exchange.mode remote; not contacted)\n",
			req.Audience, scopeText(req.Scopes))
		return
	}
	res, err := m.local.Exchange(ctx, req)
	if err != nil {
		w.printf("      the exchange would fail: %s\n", describe(err))
		return
	}
	tok, err := jwt.ParseSigned(res.AccessToken, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA})
	var claims map[string]json.RawMessage
	if err == nil {
		err = tok.UnsafeClaimsWithoutVerification(&claims)
	}
	if err != nil {
		w.printf("      the exchanged token cannot be read: %v\n", err)
		return
	}
	bound := "now + exchange.token_ttl (" + m.ttl.String() + ")"
	if res.ExpiresAt.Before(m.now().Add(m.ttl).Truncate(time.Second)) {
		bound = "the umbrella token's exp, sooner than exchange.token_ttl (" + m.ttl.String() + ")"
	}
	w.printf("      exchanged token: aud %q, %s, exp %s = %s\n",
		req.Audience, scopeText(req.Scopes), stamp(res.ExpiresAt), bound)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range claims {
			if !yield(k) {
				return
			}
		}
	}) {
		v := string(claims[name])
		switch name {
		case "jti":
			v = "(random, unique per token)"
		case "iat", "nbf", "exp", "auth_time":
			if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
				v = stamp(time.Unix(sec, 0))
			}
		}
		w.printf("        %-10s %s\n", name, v)
	}
}

// unverified is the --no-verify verifier: every check but the signature.
type unverified struct{ v *verify.Verifier }

func (u unverified) Verify(_ context.Context, raw, audience string) (*exchange.Token, error) {
	return u.v.InspectUnverified(raw, audience)
}

// errWriter keeps the first write error, so printing code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// readToken reads an umbrella token from path ("-" is stdin): surrounding
// whitespace and an optional "Bearer " prefix are removed. Errors never
// quote the file's content.
func readToken(path string, stdin io.Reader, maxBytes int) (string, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		defer f.Close()
		r = f
	}
	limit := int64(maxBytes) + 1024
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return "", fmt.Errorf("token file %s is larger than %d bytes: it should hold one token", path, limit)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) > 7 && strings.EqualFold(tok[:7], "bearer ") {
		tok = strings.TrimSpace(tok[7:])
	}
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty: put the umbrella token in it", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("token file %s holds more than one word: put exactly one token in it", path)
	}
	return tok, nil
}
