package config

import (
	"strings"
)

// maxTxnTokenString bounds trust_domain, workload_id and context claim
// names: they are copied into every Txn-Token.
const maxTxnTokenString = 256

// txnReservedClaim: claims a Txn-Token sets itself. A context claim of the
// same name would only be confusing inside tctx, and copying the umbrella's
// own aud, exp or jti there says nothing a service should rely on.
func txnReservedClaim(name string) bool {
	switch name {
	case "iss", "aud", "exp", "iat", "nbf", "jti", "txn", "tctx", "rctx", "req_wl", "scope":
		return true
	}
	return false
}

// txnToken checks txn_token and routes[].forward.
func (v *validator) txnToken() {
	const p = "txn_token."
	t := v.c.TxnToken
	forwards := -1 // the first route that forwards a Txn-Token
	for i, r := range v.c.Routes {
		switch r.Forward {
		case "", ForwardAccessToken, ForwardTxnToken, ForwardBoth:
		default:
			v.addf(indexPath("routes", i)+".forward", "%s is not a forward mode: use access_token (the exchanged "+
				"token in Authorization), txn_token (only a Txn-Token header) or both", quote(r.Forward))
			continue
		}
		if forwards < 0 && r.ForwardsTxnToken() {
			forwards = i
		}
	}
	switch {
	case t.TrustDomain == "" && forwards >= 0:
		v.addf(p+"trust_domain", "is empty but routes[%d].forward is %s: set the trust domain of the internal "+
			"services (the aud of every Txn-Token), like trust-domain.example", forwards, quote(v.c.Routes[forwards].Forward))
	case len(t.TrustDomain) > maxTxnTokenString || hasSpaceOrControl(t.TrustDomain):
		v.addf(p+"trust_domain", "must be 1 to %d characters without whitespace, like trust-domain.example", maxTxnTokenString)
	}
	v.trustDomainNotAudience(t.TrustDomain)
	switch w := t.WorkloadID; {
	case w == "":
		v.add(p+"workload_id", "is empty: name tokengate's workload (the req_wl claim), like apigateway.trust-domain.example, "+
			"or remove the key for the default tokengate")
	case len(w) > maxTxnTokenString || hasSpaceOrControl(w):
		v.addf(p+"workload_id", "must be 1 to %d characters without whitespace, like apigateway.trust-domain.example", maxTxnTokenString)
	}
	switch ttl := t.TTL.D(); {
	case ttl <= 0:
		v.addf(p+"ttl", "%s is not positive: use a short lifetime like 60s (the default)", t.TTL)
	case ttl > MaxTxnTTL:
		v.addf(p+"ttl", "%s is longer than %s: a Txn-Token lives for one request's call chain; use 60s, or at most %s",
			t.TTL, Duration(MaxTxnTTL), Duration(MaxTxnTTL))
	}
	seen := map[string]int{}
	for i, name := range t.ContextClaims {
		path := indexPath(p+"context_claims", i)
		first, dup := seen[name]
		switch {
		case name == "" || strings.TrimSpace(name) != name || len(name) > maxTxnTokenString:
			v.add(path, "must be a claim name of the umbrella token, like tenant")
		case txnReservedClaim(name):
			v.addf(path, "%s is a claim the Txn-Token sets itself: list claims of the umbrella token that "+
				"services need inside tctx, like tenant", quote(name))
		case dup:
			v.addf(path, "%s is also context_claims[%d]: list each claim once", quote(name), first)
		default:
			seen[name] = i
		}
	}
}

// trustDomainNotAudience refuses a txn_token.trust_domain that is also a
// route's audience: a Txn-Token's aud is the trust domain, so an upstream of
// that route would accept a Txn-Token as its access token. A Txn-Token must
// never be usable as an access token.
func (v *validator) trustDomainNotAudience(td string) {
	if td == "" {
		return
	}
	for i, r := range v.c.Routes {
		if r.Audience == td {
			v.addf("txn_token.trust_domain", "%s is also routes[%d].audience: a Txn-Token (aud = trust_domain) "+
				"would then be accepted as that route's access token; name the internal trust domain otherwise, "+
				"like trust-domain.example", quote(td), i)
			return
		}
	}
}
