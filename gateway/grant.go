package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tokengate/tokengate/exchange"
)

// target is what a token is exchanged for: one audience, and the routes
// whose policy the umbrella token must satisfy to get it. An edge request's
// target is its route alone; the token endpoint's is every route of the
// requested audience, since the token it returns can be used at any of them.
type target struct {
	audience string
	routes   []*route
}

// scopeError: the token endpoint's scope parameter asks for more than the
// subject token grants for the audience (invalid_scope).
type scopeError struct{ extra []string }

func (e *scopeError) Error() string {
	shown := make([]string, len(e.extra))
	for i, s := range e.extra {
		// A scope is client input: its characters are checked (splitScope),
		// its length is bounded here.
		if len(s) > maxListedScopeLen {
			s = s[:maxListedScopeLen] + "..."
		}
		shown[i] = s
	}
	return "the requested scope is broader than the subject token grants for this audience: " + strings.Join(shown, " ")
}

// maxListedScopes bounds how many refused scopes a description names, and
// maxListedScopeLen how much of each.
const (
	maxListedScopes   = 8
	maxListedScopeLen = 64
)

// authorize is the decision shared by the edge, the token endpoint and
// `tokengate check --explain`, so they can never disagree: verify raw for
// t's audience, refuse it if revoked, apply the policy of every route of t, downscope to the
// scopes every one of them gives, and narrow to requested when it is not nil
// (the token endpoint's scope parameter). It returns what to exchange; it
// exchanges nothing. Errors are mapped by errorResponse; none holds raw.
//
// presented is the request that presented raw, whose binding (a DPoP
// proof) is checked right after verification and before any policy, so a
// stolen bound token without its key learns nothing of the policy; nil for
// explain, which has no request.
func (g *Gateway) authorize(ctx context.Context, raw string, t *target, requested []string, presented *requestState) (exchange.Request, error) {
	if g.maxTokenBytes > 0 && len(raw) > g.maxTokenBytes {
		return exchange.Request{}, errTokenTooLarge
	}
	tok, err := g.verifier.Verify(ctx, raw, t.audience)
	if err != nil {
		return exchange.Request{}, redact(fmt.Errorf("verify: %w", err), raw)
	}
	if tok == nil {
		return exchange.Request{}, errors.New("verify: verifier returned no token")
	}
	// Revocation is part of verification: checked on the verified token
	// (memo and introspection-cache hits included) by its identity, not its
	// spelling, before anything else may use it.
	if g.revocations != nil {
		if err := g.revocations.CheckRevoked(tok); err != nil {
			return exchange.Request{}, fmt.Errorf("verify: %w", err)
		}
	}
	req := exchange.Request{Subject: tok, Audience: t.audience}
	if presented != nil {
		if err := g.checkBinding(ctx, tok, raw, presented); err != nil {
			return req, err
		}
	}
	now := g.clock()
	for i, rt := range t.routes {
		if err := g.requireBinding(rt, tok); err != nil {
			return req, err
		}
		if err := rt.policy.rules.check(&tok.Claims, now); err != nil {
			return req, err
		}
		if i == 0 {
			req.Scopes = rt.policy.downscope(tok.Claims.Scopes)
		} else {
			// Several routes serve the audience: the token carries only the
			// scopes that every one of them would give it.
			req.Scopes = intersectSorted(req.Scopes, rt.policy.downscope(tok.Claims.Scopes))
		}
	}
	if requested != nil {
		var extra []string
		for _, s := range requested {
			if _, ok := slices.BinarySearch(req.Scopes, s); !ok && len(extra) < maxListedScopes {
				extra = append(extra, s)
			}
		}
		if len(extra) > 0 {
			return req, redact(&scopeError{extra: extra}, raw)
		}
		req.Scopes = requested
	}
	return req, nil
}

// admit is authorize for the token a request presented, binding included;
// it records the client in st. Whatever an edge request forwards, an
// exchanged token or a Txn-Token, it has passed admit first.
func (g *Gateway) admit(ctx context.Context, raw string, t *target, requested []string, st *requestState) (exchange.Request, error) {
	req, err := g.authorize(ctx, raw, t, requested, st)
	if req.Subject != nil {
		st.clientID = clientOf(&req.Subject.Claims)
		if g.logSubjects {
			st.subject = req.Subject.Claims.Subject
		}
	}
	return req, err
}

// grant authorizes raw for t and exchanges it: the whole path from an
// umbrella token to a single-audience token, for the edge and the token
// endpoint alike. It records the client and the exchange request in st.
func (g *Gateway) grant(ctx context.Context, raw string, t *target, requested []string, st *requestState) (*exchange.Result, error) {
	req, err := g.admit(ctx, raw, t, requested, st)
	if err != nil {
		return nil, err
	}
	st.exReq = req
	res, err := g.exchanger.Exchange(ctx, req)
	if err != nil {
		return nil, redact(fmt.Errorf("exchange: %w", err), raw)
	}
	if res == nil || res.AccessToken == "" {
		return nil, fmt.Errorf("exchange: %w", errEmptyExchange)
	}
	st.cache = cacheMiss
	if res.Cached {
		st.cache = cacheHit
	}
	return res, nil
}
