// Package oauthtest is the one set of OAuth test fakes every package's
// tests use: a fake identity provider (JWKS and discovery metadata, minting
// tokens with any claims and headers, key rotation and removal, a JWKS
// taken down, failing, answering raw bytes or held), signing keys that sign
// exactly what a test asks (Key), a fake RFC 8693 STS and a fake RFC 7662
// introspection server (scriptable answers, recorded calls), and a key
// writer (PEM files of each alg). Everything is real HTTP (httptest) and
// closes with the test.
//
// It is test support in a normal package so that any package's tests can
// import it. It holds no product logic and imports no product package
// beyond config types: what a fake answers is scripted by each test, and
// what tokengate does with the answer is for the product code to decide.
package oauthtest
