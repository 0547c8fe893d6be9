package config

import (
	"slices"
	"strings"
	"time"
)

// maxTokenTTL bounds exchange.token_ttl: exchanged tokens are short-lived.
const maxTokenTTL = 24 * time.Hour

// signingAlgorithms are the algorithms of exchange.local.signing_keys.

// setClaims are the claims tokengate sets on every exchanged token, so
// copy_claims cannot name them.
func setClaims() []string {
	return []string{"iss", "aud", "exp", "iat", "nbf", "jti", "scope", "act", "typ"}
}

// meaningClaims would change what an exchanged token means if copy_claims
// copied them from the umbrella token: cnf would bind the token to the
// umbrella's proof-of-possession key, txn and tctx would dress an access
// token up as a Txn-Token (RFC draft-ietf-oauth-transaction-tokens).
func meaningClaims() []string { return []string{"cnf", "txn", "tctx"} }

// ReservedCopyClaim reports whether copy_claims may not name claim. The
// local signer consults it too, so a configuration that bypassed Validate
// still cannot copy such a claim.
func ReservedCopyClaim(claim string) bool {
	return slices.Contains(setClaims(), claim) || slices.Contains(meaningClaims(), claim)
}

func (v *validator) exchange() {
	e := v.c.Exchange
	switch e.Mode {
	case ModeLocal, ModeRemote:
	case "":
		v.add("exchange.mode", `is empty: use "local" or "remote" (or remove the key for the default, "local")`)
	default:
		v.addf("exchange.mode", `%s is not an exchange mode: use "local" (tokengate signs) or "remote" (an RFC 8693 STS signs)`, quote(e.Mode))
	}
	switch {
	case e.TokenTTL <= 0:
		v.addf("exchange.token_ttl", "%s is not positive: set the lifetime of exchanged tokens, like %s", e.TokenTTL, DefaultTokenTTL)
	case e.TokenTTL.D() > maxTokenTTL:
		v.addf("exchange.token_ttl", "%s is too long: exchanged tokens live at most %s; a few minutes, like %s, is usual",
			e.TokenTTL, maxTokenTTL, DefaultTokenTTL)
	}
	switch e.Mode {
	case ModeLocal:
		v.local()
	case ModeRemote:
		v.remote()
	}
}

func (v *validator) local() {
	l := v.c.Exchange.Local
	v.localIssuer(l.Issuer)

	if len(l.SigningKeys) == 0 {
		v.add("exchange.local.signing_keys", "no signing key is configured: make one with "+
			"`tokengate keys generate --alg ES256 --out keys/es256.pem` and list it here as "+
			"- {file: keys/es256.pem, alg: ES256}")
	}
	kids := map[string]int{}
	for i, k := range l.SigningKeys {
		p := indexPath("exchange.local.signing_keys", i)
		v.signingKey(p, k)
		if k.Kid != "" {
			if first, dup := kids[k.Kid]; dup {
				v.addf(p+".kid", "%s is also the kid of signing_keys[%d]: kids must be unique; "+
					"leave kid empty to use the key's thumbprint", quote(k.Kid), first)
			} else {
				kids[k.Kid] = i
			}
		}
	}

	for i, claim := range l.CopyClaims {
		p := indexPath("exchange.local.copy_claims", i)
		switch {
		case claim == "":
			v.add(p, "is empty: remove the entry, or name a claim of the umbrella token")
		case slices.Contains(setClaims(), claim):
			v.addf(p, "%s is a claim tokengate sets itself on every exchanged token: remove it from copy_claims", quote(claim))
		case slices.Contains(meaningClaims(), claim):
			v.addf(p, "%s would change what the exchanged token means (cnf binds it to a key; txn and tctx belong "+
				"to Txn-Tokens): remove it from copy_claims", quote(claim))
		}
	}
}

// signingKeyFile checks a signing key's file; the message tells how to make
// one with algorithm alg.
func (v *validator) signingKeyFile(path, file, alg string) {
	if file == "" {
		v.addf(path, "is empty: name a PEM private key file, like keys/%s.pem", strings.ToLower(alg))
		return
	}
	shown := v.c.showPath(path, file)
	if msg := fileProblem(file, shown); msg != "" {
		v.addf(path, "%s: make a key with `tokengate keys generate --alg %s --out %s`, or fix the path "+
			"(relative to the configuration file's folder)", msg, alg, strings.Trim(shown, `"`))
	}
}

// localIssuer checks exchange.local.issuer, the iss of exchanged tokens and
// the base of the discovery URL that backends use.
func (v *validator) localIssuer(iss string) {
	const path = "exchange.local.issuer"
	const example = "http://127.0.0.1:9090"
	c := v.c
	derived := c.src != nil && !c.isSet(path) && iss == "http://"+c.Server.AdminListen
	if derived && v.has("server.admin_listen") {
		return // the admin_listen problem is the one to fix
	}
	if iss == "" {
		v.add(path, "is empty: set the URL backends use to reach tokengate's admin listener, like "+example)
		return
	}
	u, msg := httpURL(iss, example)
	if msg == "" {
		msg = queryOrFragment(u, iss)
	}
	if msg == "" && strings.HasSuffix(u.Path, "/") {
		msg = showURL(u) + ` ends with "/": write it without, like ` + quote(strings.TrimRight(iss, "/"))
	}
	if msg == "" {
		return
	}
	if derived {
		msg = "the default, derived from server.admin_listen, is not usable: " + msg +
			"; or set exchange.local.issuer to the URL backends use to reach the admin listener"
	}
	v.add(path, msg)
}

// has reports whether a problem at path was found already.
func (v *validator) has(path string) bool {
	return slices.ContainsFunc(v.probs, func(p problem) bool { return p.err.Path == path })
}

func (v *validator) cache() {
	ca := v.c.Cache
	if ca.MaxEntries < 1 {
		v.addf("cache.max_entries", "%d is too small: the in-memory cache needs at least 1 entry (default %d)",
			ca.MaxEntries, DefaultMaxEntries)
	}
	ttl := v.c.Exchange.TokenTTL
	switch {
	case ca.RefreshBefore < 0:
		v.addf("cache.refresh_before", "%s is negative: use 0s or more, like %s", ca.RefreshBefore, DefaultRefreshBefore)
	case ttl > 0 && ca.RefreshBefore >= ttl:
		v.addf("cache.refresh_before", "%s is not shorter than exchange.token_ttl (%s): every token would be "+
			"due for refresh as soon as it is made; use less, like %s", ca.RefreshBefore, ttl, DefaultRefreshBefore)
	}
	if ca.RevocationTTL <= 0 {
		v.addf("cache.revocation_ttl", "%s is not positive: set how long a revocation refuses older tokens, longer than "+
			"any umbrella token lives, like %s", ca.RevocationTTL, DefaultRevocationTTL)
	}
	if ca.Redis != nil {
		v.redis(ca.Redis)
	}
}

// signingKey checks one PEM key file and its algorithm: the local signing
// keys and the remote private_key_jwt key alike.
func (v *validator) signingKey(path string, k SigningKey) {
	algOK := IsSigningAlgorithm(k.Alg)
	hint := k.Alg // for the `keys generate` command in messages
	if !algOK {
		hint = "ES256"
	}
	v.signingKeyFile(path+".file", k.File, hint)
	switch {
	case k.Alg == "":
		v.addf(path+".alg", "is empty: set the key's algorithm: %s", strings.Join(SigningAlgorithms(), ", "))
	case !algOK:
		v.addf(path+".alg", "%s is not a signing algorithm: use %s", quote(k.Alg), strings.Join(SigningAlgorithms(), ", "))
	}
}
