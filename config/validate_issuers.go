package config

import (
	"slices"
	"strings"
	"time"
)

// Issuer limits.
const (
	maxLeeway             = 5 * time.Minute
	minMinRefreshInterval = time.Second
)

func (v *validator) issuers() {
	if len(v.c.Issuers) == 0 {
		v.add("issuers", "no issuer is configured: add the identity provider whose tokens are accepted, "+
			"with issuer: and jwks_uri: (or discovery: true)")
		return
	}
	seen := map[string]int{}
	for i, is := range v.c.Issuers {
		p := indexPath("issuers", i)
		switch first, dup := seen[is.Issuer]; {
		case is.Issuer == "":
			v.add(p+".issuer", "is empty: set it to the exact iss of the provider's tokens, like https://idp.example.com/")
		case dup:
			v.addf(p+".issuer", "%s is also issuers[%d]: list each issuer once", quote(is.Issuer), first)
		default:
			seen[is.Issuer] = i
		}
		switch {
		case is.JWKSURI != "" && is.Discovery:
			v.add(p+".jwks_uri", "is set together with discovery: true: keep one, jwks_uri to name the key set "+
				"or discovery to find it in the issuer's metadata")
		case is.JWKSURI == "" && !is.Discovery && is.Introspection == nil:
			v.add(p+".jwks_uri", "is not set, and discovery is not true: set jwks_uri to the provider's JWKS URL, "+
				"or discovery: true to find it in the issuer's metadata")
		case is.JWKSURI != "":
			v.fetchURL(p+".jwks_uri", is.JWKSURI, is.AllowInsecureHTTP, "https://idp.example.com/jwks.json")
		case is.Discovery && is.Issuer != "":
			v.fetchURL(p+".issuer", is.Issuer, is.AllowInsecureHTTP, "https://idp.example.com/ (discovery needs a URL)")
		}
		v.algorithms(p+".algorithms", is.Algorithms)
		if is.Leeway < 0 || is.Leeway.D() > maxLeeway {
			v.addf(p+".leeway", "%s is out of range: use 0s to %s (the clock skew allowed on exp, nbf and iat)", is.Leeway, maxLeeway)
		}
		if is.MinRefreshInterval.D() < minMinRefreshInterval {
			v.addf(p+".min_refresh_interval", "%s is too short: use at least %s (default %s), so tokens with unknown "+
				"kids cannot make tokengate hammer the provider", is.MinRefreshInterval, minMinRefreshInterval, DefaultMinRefreshInterval)
		}
		if is.RefreshInterval < is.MinRefreshInterval {
			v.addf(p+".refresh_interval", "%s is shorter than min_refresh_interval (%s): use at least that (default %s)",
				is.RefreshInterval, is.MinRefreshInterval, DefaultRefreshInterval)
		}
		v.positive(p+".fetch_timeout", is.FetchTimeout, "how long one JWKS or discovery fetch may take", DefaultFetchTimeout)
	}
}

// fetchURL checks a URL tokengate fetches keys from: http(s), and plain http
// only on loopback or where the issuer allows it.
func (v *validator) fetchURL(path, raw string, allowInsecure bool, example string) {
	u, msg := httpURL(raw, example)
	if msg != "" {
		v.add(path, msg)
		return
	}
	if u.Scheme == "http" && !allowInsecure && !isLoopback(u.Hostname()) {
		v.addf(path, "%s uses plain http: keys fetched without TLS can be forged in transit; use https, "+
			"or set allow_insecure_http: true on this issuer if the network is trusted", showURL(u))
	}
}

func (v *validator) algorithms(path string, algs []string) {
	if len(algs) == 0 {
		v.add(path, "is empty: list the algorithms the provider signs with, like [RS256], "+
			"or remove the key to allow every asymmetric algorithm")
		return
	}
	// An umbrella token may only use algorithms verified with a public key
	// from the issuer's JWKS: the default list is all of them.
	asymmetricAlgorithms := AsymmetricAlgorithms()
	for i, a := range algs {
		p := indexPath(path, i)
		upper := strings.ToUpper(a)
		switch {
		case slices.Contains(asymmetricAlgorithms, a):
		case upper == "NONE":
			v.addf(p, "%s is never accepted: an unsigned token proves nothing; remove it", quote(a))
		case upper == "HS256" || upper == "HS384" || upper == "HS512":
			v.addf(p, "%s is never accepted: it is a shared-secret (HMAC) algorithm and cannot be verified "+
				"against JWKS public keys; remove it", quote(a))
		default:
			if j := slices.IndexFunc(asymmetricAlgorithms, func(s string) bool { return strings.EqualFold(s, a) }); j >= 0 {
				v.addf(p, "%s is not a supported algorithm: names are case-sensitive, write %s", quote(a), asymmetricAlgorithms[j])
				continue
			}
			v.addf(p, "%s is not a supported algorithm: use %s", quote(a), strings.Join(asymmetricAlgorithms, ", "))
		}
	}
}
