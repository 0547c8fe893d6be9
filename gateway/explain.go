package gateway

import (
	"context"
	"net/http"

	"github.com/tokengate/tokengate/exchange"
)

// Decision is what the gateway would do with one umbrella token on one
// route, or at the token endpoint for one audience.
type Decision struct {
	// Routes names the route; at the token endpoint, every route of the
	// audience (the token must satisfy each one's policy).
	Routes []string
	// Host and PathPrefix are the route's match (edge decisions only).
	Host, PathPrefix string
	// Audience is the aud the token would be exchanged for.
	Audience string
	// Allowed: the token would be exchanged with Request and the request
	// forwarded (or, at the token endpoint, answered with a token).
	Allowed bool
	Request exchange.Request
	// When refused: what the client would receive, and the rejection label.
	Status      int
	Error       string // the JSON error
	Description string
	Challenge   string // WWW-Authenticate, "" for none
	Reason      string // tokengate_token_rejections_total reason, "" for none
}

// Explanation is what Explain found for one token.
type Explanation struct {
	// Routes has one decision per route, in configuration order.
	Routes []Decision
	// TokenEndpointPath is "" when the endpoint is disabled.
	TokenEndpointPath string
	// TokenEndpoint has one decision per audience (in the order of their
	// first route), for a request without a scope parameter.
	TokenEndpoint []Decision
	// JKT is the token's cnf.jkt when it is DPoP-bound (RFC 9449): every
	// request then needs Authorization: DPoP and a proof signed by that key.
	JKT string
}

// Explain decides, for raw, every route and every token endpoint audience
// through the very code that serves requests (authorize, errorResponse),
// without exchanging or forwarding anything. It is the engine of
// `tokengate check --explain`; raw appears in nothing it returns.
func (g *Gateway) Explain(ctx context.Context, raw string) Explanation {
	var ex Explanation
	for _, rt := range g.routes {
		d := g.explainTarget(ctx, raw, &rt.policy.self, false)
		d.Host, d.PathPrefix = rt.match.host, rt.match.prefix
		if d.Request.Subject != nil {
			ex.JKT = d.Request.Subject.Claims.JKT
		}
		ex.Routes = append(ex.Routes, d)
	}
	if g.tokenPath == "" {
		return ex
	}
	ex.TokenEndpointPath = g.tokenPath
	seen := make(map[string]bool, len(g.audiences))
	for _, rt := range g.routes {
		if seen[rt.policy.audience] {
			continue
		}
		seen[rt.policy.audience] = true
		ex.TokenEndpoint = append(ex.TokenEndpoint, g.explainTarget(ctx, raw, g.audiences[rt.policy.audience], true))
	}
	return ex
}

// explainTarget is the authorize step of the decision for one target.
func (g *Gateway) explainTarget(ctx context.Context, raw string, t *target, endpoint bool) Decision {
	d := Decision{Audience: t.audience}
	for _, rt := range t.routes {
		d.Routes = append(d.Routes, rt.name)
	}
	req, err := g.authorize(ctx, raw, t, nil, nil)
	d.Request.Subject = req.Subject // the verified token, even when refused
	if err == nil {
		d.Allowed, d.Request, d.Status = true, req, http.StatusOK
		return d
	}
	if endpoint {
		err = &tokenEndpointError{err}
	}
	resp := errorResponse(err)
	d.Status, d.Error, d.Description, d.Challenge, d.Reason = resp.status, resp.code, resp.description, resp.challenge, resp.reason
	if resp.hints && resp.missingScope != "" {
		d.Description += " (missing: " + resp.missingScope + ")"
	}
	return d
}
