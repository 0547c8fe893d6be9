// Package oauthclient is tokengate's OAuth 2.0 client plumbing, shared by
// every outbound call to an authorization server: the RFC 8693 STS, RFC 7662
// introspection and the issuers' JWKS and metadata.
//
// It owns authorization-server metadata discovery (OpenID Connect
// discovery, else RFC 8414; the issuer must match exactly), the endpoint URL
// policy (https, or http on loopback or where allowed), client
// authentication (client_secret_basic, client_secret_post, private_key_jwt
// per RFC 7523), a form POST that never follows redirects and reads a
// bounded body, a bounded GET, and the error type of a failed call (*Error,
// like x/oauth2's RetrieveError, with Retryable).
//
// It knows nothing of what tokens mean: which answers reject a subject
// token, which are configuration problems, how long a token is kept, or how
// keys are chosen are the callers' (package exchange) business.
package oauthclient
