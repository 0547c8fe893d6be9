// Package dpop verifies RFC 9449 DPoP proofs: the compact JWS a client
// sends in the DPoP header to prove it holds the key its access token is
// bound to (cnf.jkt). It is pure: no HTTP server code, no storage. The
// caller supplies what the request looked like (method, URL as the client
// saw it, access token, the token's jkt), checks replay with the returned
// Proof.ReplayKey (last, after every other check passed), and maps the
// sentinel errors to responses.
package dpop
