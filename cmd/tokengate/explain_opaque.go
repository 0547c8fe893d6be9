package main

// explainOpaque says what the gateway would do with an opaque token: ask
// the issuer's introspection endpoint. check does not call it: that would
// send the token to the authorization server from an operator's machine,
// and its answer changes with revocation anyway.
func explainOpaque(w *errWriter, issuer, endpoint string) {
	if endpoint == "" {
		endpoint = "(the introspection_endpoint of the issuer's metadata)"
	}
	w.printf("Umbrella token: opaque (not a JWT).\n")
	w.printf("The gateway would introspect it (RFC 7662) at %s\n", endpoint)
	w.printf("as issuer %q, and treat the claims of an active answer like a JWT's.\n", issuer)
	w.printf("check does not call the authorization server: nothing was sent.\n")
}
