package dpop

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/strictjson"
)

// Limits on a proof, checked before any parsing or cryptography.
const (
	// MaxProofBytes bounds one DPoP header value.
	MaxProofBytes = 8 << 10
	// MaxJTILength bounds the jti claim (it is hashed into a replay key).
	MaxJTILength = 256
	// ProofType is the only typ header a proof may carry.
	ProofType = "dpop+jwt"
	// MinRSABits is the shortest RSA proof key accepted.
	MinRSABits = 2048
)

// DefaultAlgorithms are the proof algorithms accepted when Options leaves
// them out: every asymmetric JWS algorithm. A new slice each call.
func DefaultAlgorithms() []string { return config.DefaultDPoPAlgorithms() }

// Options configure a Verifier.
type Options struct {
	// Algorithms is the proof alg allowlist; nil means DefaultAlgorithms.
	// Only asymmetric algorithms may be listed.
	Algorithms []string
	// MaxAge is how old a proof's iat may be; Leeway how far in the future.
	MaxAge, Leeway time.Duration
	// Nonces, when set, makes a valid server nonce required.
	Nonces *Nonces
	// Clock is the time source; nil means time.Now.
	Clock func() time.Time
}

// Verifier checks proofs against one configuration. It is safe for
// concurrent use.
type Verifier struct {
	algs     []jose.SignatureAlgorithm
	algNames []string
	maxAge   time.Duration
	leeway   time.Duration
	nonces   *Nonces
	now      func() time.Time
}

// NewVerifier validates opts and returns a Verifier.
func NewVerifier(opts Options) (*Verifier, error) {
	names := opts.Algorithms
	if names == nil {
		names = DefaultAlgorithms()
	}
	if len(names) == 0 {
		return nil, errors.New("new dpop verifier: no algorithm allowed")
	}
	v := &Verifier{maxAge: opts.MaxAge, leeway: opts.Leeway, nonces: opts.Nonces, now: opts.Clock}
	for _, n := range names {
		if !config.IsAsymmetricAlgorithm(n) {
			return nil, fmt.Errorf("new dpop verifier: %q is not an asymmetric JWS algorithm", n)
		}
		v.algs = append(v.algs, jose.SignatureAlgorithm(n))
		v.algNames = append(v.algNames, n)
	}
	if v.maxAge <= 0 || v.leeway < 0 {
		return nil, errors.New("new dpop verifier: max age must be positive and leeway not negative")
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Algorithms returns the allowed algorithms (for the algs challenge parameter).
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algNames) }

// Nonces returns the nonce source, nil when nonces are not required.
func (v *Verifier) Nonces() *Nonces { return v.nonces }

// Request is what one proof must match.
type Request struct {
	// Proofs are the values of the request's DPoP headers: exactly one is valid.
	Proofs []string
	// Method is the HTTP method (htm).
	Method string
	// URL is the target URI as the client saw it, without query or
	// fragment (htu); it is normalized before comparison.
	URL string
	// AccessToken is the presented access token (ath).
	AccessToken string
	// JKT is the token's cnf.jkt the proof key must match.
	JKT string
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof key.
	JKT string
	// JTI is the proof's unique identifier.
	JTI string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
	// Nonce is the proof's nonce ("" when it has none).
	Nonce string
	// ReplayKey names the proof in a replay store: a hash of (jkt, jti),
	// never the proof itself.
	ReplayKey string
	// ReplayTTL is how long the replay key must be remembered: until the
	// proof's iat can no longer pass the window.
	ReplayTTL time.Duration
}

// proofClaims are the claims read from a proof; pointers tell absent from empty.
type proofClaims struct {
	JTI   *string      `json:"jti"`
	HTM   *string      `json:"htm"`
	HTU   *string      `json:"htu"`
	IAT   *json.Number `json:"iat"`
	ATH   *string      `json:"ath"`
	Nonce *string      `json:"nonce"`
}

// privateMembers are JWK members that only private or symmetric keys carry.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth", "priv"}

// Verify checks every property of the one proof in req except replay. The
// caller checks ReplayKey against a replay store afterwards. Errors are
// *Error wrapping ErrInvalidProof or ErrUseNonce.
func (v *Verifier) Verify(req Request) (*Proof, error) {
	switch len(req.Proofs) {
	case 0:
		return nil, invalid("a DPoP proof is required")
	case 1:
	default:
		return nil, invalid("several DPoP headers")
	}
	raw := req.Proofs[0]
	if len(raw) > MaxProofBytes {
		return nil, invalid("the DPoP proof is too large")
	}
	jwk, err := v.checkHeader(raw)
	if err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(raw, v.algs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, invalid("the DPoP proof is not a compact JWS")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, invalid("the DPoP proof signature does not verify with its jwk")
	}
	if err := strictjson.UniqueNames(payload); err != nil {
		// Also refuses data after the object.
		return nil, invalid("the DPoP proof claims are not one JSON object with unique names")
	}
	var c proofClaims
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, invalid("the DPoP proof claims are not a JSON object of the expected types")
	}
	now := v.now()
	iat, err := v.checkClaims(&c, req, now)
	if err != nil {
		return nil, err
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, invalid("the DPoP proof jwk has no thumbprint")
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	if req.JKT == "" || subtle.ConstantTimeCompare([]byte(jkt), []byte(req.JKT)) != 1 {
		return nil, invalid("the DPoP proof key is not the key the access token is bound to")
	}
	if v.nonces != nil {
		switch {
		case c.Nonce == nil:
			return nil, &Error{Kind: ErrUseNonce, Description: "a DPoP nonce is required"}
		case !v.nonces.Valid(*c.Nonce):
			return nil, &Error{Kind: ErrUseNonce, Description: "the DPoP nonce is stale or unknown"}
		}
	}
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(*c.JTI))
	ttl := iat.Add(v.maxAge + v.leeway).Sub(now)
	var nonce string
	if c.Nonce != nil {
		nonce = *c.Nonce
	}
	return &Proof{
		Nonce:     nonce,
		JKT:       jkt,
		JTI:       *c.JTI,
		IssuedAt:  iat,
		ReplayKey: base64.RawURLEncoding.EncodeToString(h.Sum(nil)),
		ReplayTTL: max(ttl, time.Second),
	}, nil
}

// checkHeader reads the protected header before go-jose does, to apply
// what go-jose does not: typ, no crit, a jwk that is public and asymmetric.
func (v *Verifier) checkHeader(raw string) (*jose.JSONWebKey, error) {
	dot := strings.IndexByte(raw, '.')
	if dot <= 0 || strings.Count(raw, ".") != 2 {
		return nil, invalid("the DPoP proof is not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(raw[:dot])
	if err != nil {
		return nil, invalid("the DPoP proof header is not base64url")
	}
	// Unique names: go-jose reads the same header again, and two readers
	// must not take different members of a duplicated name.
	hdr, err := strictjson.Object(hb)
	if err != nil {
		return nil, invalid("the DPoP proof header is not one JSON object with unique names")
	}
	var typ, alg string
	if json.Unmarshal(hdr["typ"], &typ) != nil || typ != ProofType {
		return nil, invalid(`the DPoP proof typ is not "dpop+jwt"`)
	}
	if json.Unmarshal(hdr["alg"], &alg) != nil || !slices.Contains(v.algNames, alg) {
		return nil, invalid("the DPoP proof alg is not allowed")
	}
	if _, ok := hdr["crit"]; ok {
		return nil, invalid("the DPoP proof has critical header parameters")
	}
	rawJWK, ok := hdr["jwk"]
	if !ok {
		return nil, invalid("the DPoP proof header has no jwk")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(rawJWK, &members); err != nil {
		return nil, invalid("the DPoP proof jwk is not a JSON object")
	}
	for _, m := range privateMembers {
		if _, bad := members[m]; bad {
			return nil, invalid("the DPoP proof jwk holds private or symmetric key material")
		}
	}
	var kty string
	if json.Unmarshal(members["kty"], &kty) != nil || (kty != "EC" && kty != "RSA" && kty != "OKP") {
		return nil, invalid("the DPoP proof jwk is not an asymmetric public key")
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(rawJWK); err != nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, invalid("the DPoP proof jwk is not a valid public key")
	}
	if k, ok := jwk.Key.(*rsa.PublicKey); ok && k.N.BitLen() < MinRSABits {
		return nil, invalid("the DPoP proof jwk is an RSA key shorter than 2048 bits")
	}
	return &jwk, nil
}

// checkClaims checks jti, htm, htu, iat and ath; it returns iat.
func (v *Verifier) checkClaims(c *proofClaims, req Request, now time.Time) (time.Time, error) {
	if c.JTI == nil || *c.JTI == "" || len(*c.JTI) > MaxJTILength {
		return time.Time{}, invalid("the DPoP proof jti is missing, empty or too long")
	}
	if c.HTM == nil || *c.HTM != req.Method {
		return time.Time{}, invalid("the DPoP proof htm does not match the request method")
	}
	if c.HTU == nil {
		return time.Time{}, invalid("the DPoP proof has no htu")
	}
	got, err := NormalizeURL(*c.HTU)
	if err != nil {
		return time.Time{}, invalid("the DPoP proof htu is invalid: " + err.Error())
	}
	want, err := NormalizeURL(req.URL)
	if err != nil || got != want {
		return time.Time{}, invalid("the DPoP proof htu does not match the request URL")
	}
	if c.IAT == nil {
		return time.Time{}, invalid("the DPoP proof has no iat")
	}
	f, err := c.IAT.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<33 {
		return time.Time{}, invalid("the DPoP proof iat is not a number of seconds")
	}
	iat := time.Unix(0, 0).Add(time.Duration(f * float64(time.Second)))
	switch {
	case iat.After(now.Add(v.leeway)):
		return time.Time{}, invalid("the DPoP proof iat is in the future")
	case iat.Before(now.Add(-v.maxAge - v.leeway)):
		return time.Time{}, invalid("the DPoP proof is too old")
	}
	if c.ATH == nil {
		return time.Time{}, invalid("the DPoP proof has no ath")
	}
	sum := sha256.Sum256([]byte(req.AccessToken))
	if subtle.ConstantTimeCompare([]byte(*c.ATH), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
		return time.Time{}, invalid("the DPoP proof ath does not match the access token")
	}
	return iat, nil
}
