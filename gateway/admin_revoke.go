package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/exchange"
)

const (
	pathRevoke      = "/admin/revoke"
	pathRevocations = "/admin/revocations"
	// revokeMaxBody bounds a revocation request: one umbrella token at most.
	revokeMaxBody = 1 << 20
	// revokeTimeout bounds one revocation, Redis included.
	revokeTimeout = 10 * time.Second
	// adminChallenge is the WWW-Authenticate of a refused admin request.
	adminChallenge = `Bearer realm="tokengate-admin"`
)

// Revoker revokes an umbrella token, a subject or a session: the cached
// tokens exchanged from them are dropped on every replica, and they are
// refused until they expire (exchange.Caching).
type Revoker interface {
	Revoke(ctx context.Context, r exchange.Revocation) (exchange.RevokeResult, error)
}

// revokeRequest is the JSON body of POST /admin/revoke: exactly one of
// sub, sid, client_id, iss (with issued_before) or token.
type revokeRequest struct {
	Sub      string `json:"sub"`
	Sid      string `json:"sid"`
	Token    string `json:"token"`
	ClientID string `json:"client_id"`
	Iss      string `json:"iss"`
	// IssuedBefore is unix seconds (a JSON number or a string of digits)
	// or an RFC 3339 time.
	IssuedBefore json.RawMessage `json:"issued_before"`

	issuedBefore time.Time
}

type revokeResponse struct {
	Revoked        string    `json:"revoked"`
	EntriesDropped int       `json:"entries_dropped"`
	RefusedUntil   time.Time `json:"refused_until"`
	Warning        string    `json:"warning,omitempty"`
}

type adminError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// adminAuthorized compares the bearer token with the admin token in
// constant time (over SHA-256 digests, so the length does not leak either).
func (a *admin) adminAuthorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], a.adminTokenHash[:]) == 1
}

// revoke serves POST /admin/revoke. Disabled (404) without an admin token
// or a revoker; 401 without the right bearer token; 400 unless the body
// names exactly one of sub, sid or token with a usable value (not blank; a
// token must be a JWT, or an opaque token when an issuer introspects).
// Values are never echoed or logged.
func (a *admin) revoke(w http.ResponseWriter, r *http.Request) {
	if a.revoker == nil || !a.adminTokenSet {
		http.NotFound(w, r)
		return
	}
	if !a.adminAuthorized(r) {
		w.Header().Set("WWW-Authenticate", adminChallenge)
		writeJSON(w, http.StatusUnauthorized, "application/json", "no-store",
			adminError{"unauthorized", "send Authorization: Bearer <server.admin_token>"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, "application/json", "no-store",
			adminError{"method_not_allowed", "use POST"})
		return
	}
	if err := bufferBody(w, r, MaxBodyBytes, a.bodyTimeout); err != nil {
		writeBodyError(w, err)
		return
	}
	req, msg := readRevokeRequest(w, r)
	if msg != "" {
		writeJSON(w, http.StatusBadRequest, "application/json", "no-store", adminError{"invalid_request", msg})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), revokeTimeout)
	defer cancel()
	res, err := a.revoker.Revoke(ctx, exchange.Revocation{
		Subject: req.Sub, Session: req.Sid, Token: req.Token,
		ClientID: req.ClientID, Issuer: req.Iss, IssuedBefore: req.issuedBefore,
	})
	switch {
	case errors.Is(err, exchange.ErrBadRevocation):
		msg := "give exactly one of sub, sid, client_id, iss or token"
		var bad *exchange.BadRevocationError
		if errors.As(err, &bad) {
			msg = bad.Description // names the problem, never the value
		}
		writeJSON(w, http.StatusBadRequest, "application/json", "no-store", adminError{"invalid_request", msg})
		return
	case err != nil && res.By == 0:
		a.logger.LogAttrs(r.Context(), slog.LevelError, "revocation failed", slog.Any("error", err))
		writeJSON(w, http.StatusInternalServerError, "application/json", "no-store",
			adminError{"server_error", "the revocation failed; retry"})
		return
	}
	body := revokeResponse{Revoked: res.By.String(), EntriesDropped: res.Dropped, RefusedUntil: res.Until.UTC()}
	status := http.StatusOK
	if err != nil {
		// Applied here, but Redis could not take it to the other replicas.
		a.logger.LogAttrs(r.Context(), slog.LevelError, "revocation applied on this replica only",
			slog.String("by", body.Revoked), slog.Any("error", err))
		body.Warning = "applied on this replica only: Redis could not be reached to tell the others; retry"
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	}
	a.auditRevocation(r, body, err == nil)
	writeJSON(w, status, "application/json", "no-store", body)
}

// auditRevocation writes the one audit line of a revocation: its kind,
// who asked (the TCP peer, or the client behind server.trusted_proxies),
// what it dropped and until when it refuses. Never a value or a token.
func (a *admin) auditRevocation(r *http.Request, body revokeResponse, everywhere bool) {
	a.logger.LogAttrs(r.Context(), slog.LevelInfo, "revocation",
		slog.String("event", "revocation"),
		slog.String("kind", body.Revoked),
		slog.String("by", body.Revoked),
		slog.String("caller", a.proxies.clientIP(r)),
		slog.Int("entries_dropped", body.EntriesDropped),
		slog.Time("refused_until", body.RefusedUntil),
		slog.Bool("all_replicas_told", everywhere))
}

// revocationsBody is the answer of GET /admin/revocations.
type revocationsBody struct {
	Revocations []revocationItem `json:"revocations"`
}

// revocationItem is one revocation in force: what, when, until when.
type revocationItem struct {
	Kind         string     `json:"kind"`
	Value        string     `json:"value"`
	Kid          string     `json:"kid,omitempty"`
	IssuedBefore *time.Time `json:"issued_before,omitempty"`
	At           time.Time  `json:"at"`
	Until        time.Time  `json:"until"`
}

// RevocationLister lists the revocations in force (exchange.Caching).
type RevocationLister interface {
	Revocations() []exchange.RevocationInfo
}

// listRevocations serves GET /admin/revocations: the revocations in force
// on this replica (every replica holds every one, through Redis), as JSON.
// Same switch and authentication as POST /admin/revoke. A token is listed
// by a short prefix of its keyed hash, never by value.
func (a *admin) listRevocations(w http.ResponseWriter, r *http.Request) {
	lister, ok := a.revoker.(RevocationLister)
	if !ok || !a.adminTokenSet {
		http.NotFound(w, r)
		return
	}
	if !a.adminAuthorized(r) {
		w.Header().Set("WWW-Authenticate", adminChallenge)
		writeJSON(w, http.StatusUnauthorized, "application/json", "no-store",
			adminError{"unauthorized", "send Authorization: Bearer <server.admin_token>"})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, "application/json", "no-store",
			adminError{"method_not_allowed", "use GET"})
		return
	}
	body := revocationsBody{Revocations: []revocationItem{}}
	for _, info := range lister.Revocations() {
		item := revocationItem{Kind: info.Kind, Value: info.Value, Kid: info.KeyID, At: info.At, Until: info.Until}
		if !info.IssuedBefore.IsZero() {
			ib := info.IssuedBefore
			item.IssuedBefore = &ib
		}
		body.Revocations = append(body.Revocations, item)
	}
	writeJSON(w, http.StatusOK, "application/json", "no-store", body)
}

// parseIssuedBefore reads issued_before: unix seconds (a JSON number or a
// string of digits) or an RFC 3339 time.
func parseIssuedBefore(raw string) (time.Time, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		if n <= 0 {
			return time.Time{}, false
		}
		return time.Unix(n, 0).UTC(), true
	}
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return t.UTC(), true
	}
	return time.Time{}, false
}

// issuedBeforeOf decodes the JSON value of issued_before (a number or a string).
func issuedBeforeOf(v json.RawMessage) (time.Time, bool) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return parseIssuedBefore(s)
	}
	var n json.Number
	if json.Unmarshal(v, &n) == nil {
		return parseIssuedBefore(n.String())
	}
	return time.Time{}, false
}

// readRevokeRequest reads a JSON or form body; msg says what is wrong.
func readRevokeRequest(w http.ResponseWriter, r *http.Request) (revokeRequest, string) {
	r.Body = http.MaxBytesReader(w, r.Body, revokeMaxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var req revokeRequest
	switch ct {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, `the body is not a JSON object with one of "sub", "sid", "client_id", "iss" (with "issued_before") or "token"`
		}
		if dec.More() {
			return req, "the body holds more than one JSON value"
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return req, "the form body cannot be parsed"
		}
		for name, vals := range r.PostForm {
			if len(vals) != 1 {
				return req, "each form field may appear once"
			}
			switch name {
			case "sub":
				req.Sub = vals[0]
			case "sid":
				req.Sid = vals[0]
			case "token":
				req.Token = vals[0]
			case "client_id":
				req.ClientID = vals[0]
			case "iss":
				req.Iss = vals[0]
			case "issued_before":
				req.IssuedBefore, _ = json.Marshal(vals[0])
			default:
				return req, `unknown form field: use one of sub, sid, client_id, iss (with issued_before) or token`
			}
		}
	default:
		return req, "send application/json or application/x-www-form-urlencoded"
	}
	return req, checkRevokeRequest(&req)
}

// checkRevokeRequest says what a decoded body lacks ("" when it names
// exactly one usable thing), so a body that would revoke nothing is a 400,
// never a 200. A token value loses surrounding white space (a pasted line
// end); whether it is a token at all is the revoker's call (a JWT, or an
// opaque token when an issuer introspects).
func checkRevokeRequest(req *revokeRequest) string {
	n := 0
	for _, f := range []struct{ name, value string }{
		{"sub", req.Sub}, {"sid", req.Sid}, {"token", req.Token}, {"client_id", req.ClientID}, {"iss", req.Iss},
	} {
		switch {
		case f.value == "":
		case strings.TrimSpace(f.value) == "":
			return `"` + f.name + `" is blank: give the value to revoke`
		default:
			n++
		}
	}
	req.Token = strings.TrimSpace(req.Token)
	switch n {
	case 0:
		return `the body names nothing to revoke: give exactly one of "sub", "sid", "client_id", "iss" (with "issued_before") or "token"`
	case 1:
	default:
		return `give exactly one of "sub", "sid", "client_id", "iss" or "token", not several`
	}
	return checkIssuedBefore(req)
}

// checkIssuedBefore: issued_before goes with iss, and iss needs it, as unix
// seconds or RFC 3339 (its distance from now is the revoker's call).
func checkIssuedBefore(req *revokeRequest) string {
	given := len(req.IssuedBefore) > 0 && string(req.IssuedBefore) != "null"
	switch {
	case req.Iss == "" && given:
		return `"issued_before" goes with "iss" only`
	case req.Iss == "":
		return ""
	case !given:
		return `"iss" needs "issued_before" (unix seconds or RFC 3339): the issuer's tokens issued before it are refused`
	}
	t, ok := issuedBeforeOf(req.IssuedBefore)
	if !ok {
		return `"issued_before" is not unix seconds or an RFC 3339 time`
	}
	req.issuedBefore = t
	return ""
}
