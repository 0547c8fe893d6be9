package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Check is the Envoy ext_authz v3 adapter
// (envoy.service.auth.v3.Authorization/Check on authz.grpc_listen): the
// original request is attributes.request.http. Allowed: OK, with
// ok_response setting authorization (and/or txn-token per the route's
// forward) with OVERWRITE_IF_EXISTS_OR_ADD, and removing dpop (and
// authorization on a txn_token route), so the umbrella token can never
// reach the upstream beside the exchanged one. Denied: the gRPC status of
// the HTTP status decided, with a denied_response saying what the edge
// would (status, WWW-Authenticate, JSON body). A transport-level error is
// never returned: Envoy would then apply its own failure_mode_allow.
func (g *Gateway) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	hr := req.GetAttributes().GetRequest().GetHttp()
	header := envoyHeaders(hr)
	w := &headerRecorder{h: http.Header{}}
	st := g.newAuthzState(w, header)
	remote := ""
	if p, ok := grpcpeer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	in, err := originalRequest(ctx, remote, hr.GetMethod(), hr.GetHost(), hr.GetPath(), header,
		strings.EqualFold(hr.GetScheme(), "https") || strings.EqualFold(header.Get("X-Forwarded-Proto"), "https"))
	var resp *response
	if err != nil {
		r := g.failure((&http.Request{Header: header}).WithContext(ctx), st, err)
		g.metrics.AuthzDecisions.WithLabelValues(noRouteLabel, strconv.Itoa(r.status), authzGRPC).Inc()
		resp = &r
	} else {
		resp = g.decideAuthz(in, st, authzGRPC)
	}
	if resp != nil {
		return deniedCheck(*resp), nil
	}
	return g.allowedCheck(st, w.h), nil
}

// envoyHeaders are the original request's headers: header_map when Envoy
// sends raw values (encode_raw_headers), else headers; pseudo-headers
// (":path", ":authority") are left out.
func envoyHeaders(hr *authv3.AttributeContext_HttpRequest) http.Header {
	h := http.Header{}
	if hm := hr.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		for _, kv := range hm.GetHeaders() {
			v := kv.GetValue()
			if raw := kv.GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			if k := kv.GetKey(); k != "" && k[0] != ':' {
				h.Add(k, v)
			}
		}
		return h
	}
	for k, v := range hr.GetHeaders() {
		if k != "" && k[0] != ':' {
			h.Add(k, v)
		}
	}
	return h
}

// allowedCheck is the OK answer of an allowed decision.
func (g *Gateway) allowedCheck(st *requestState, extra http.Header) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{HeadersToRemove: []string{"dpop"}}
	set := func(k, v string) {
		ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{
			Header: &corev3.HeaderValue{Key: k, Value: v},
			// The contract asks for append: false beside append_action, so
			// an older Envoy that reads only the deprecated field overwrites too.
			//lint:ignore SA1019 see above
			Append:       wrapperspb.Bool(false),
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	switch {
	case st.preflight:
		// A CORS preflight needs no token: nothing to set; the proxy (or
		// the upstream) answers it.
	case st.exchanged != "":
		set("authorization", "Bearer "+st.exchanged)
	default:
		ok.HeadersToRemove = append(ok.HeadersToRemove, "authorization")
	}
	if st.txnToken != "" {
		set("txn-token", st.txnToken)
	} else {
		// The client's own Txn-Token never reaches the upstream.
		ok.HeadersToRemove = append(ok.HeadersToRemove, "txn-token")
	}
	set("x-request-id", st.requestID)
	if n := extra.Get(headerDPoPNonce); n != "" {
		ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, &corev3.HeaderValueOption{
			Header: &corev3.HeaderValue{Key: "dpop-nonce", Value: n},
			//lint:ignore SA1019 as for the request headers
			Append:       wrapperspb.Bool(false),
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// deniedCheck is the denial of resp: the gRPC code of its HTTP status and
// the response the edge would send.
func deniedCheck(resp response) *authv3.CheckResponse {
	h := http.Header{}
	body := resp.headers(h)
	h.Del("Content-Length") // Envoy sets it for the body it sends
	h.Del("Connection")
	denied := &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(resp.status)},
		Body:   string(body),
	}
	for k, vs := range h {
		for _, v := range vs {
			denied.Headers = append(denied.Headers, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: strings.ToLower(k), Value: v},
				AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
			})
		}
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(extAuthzCode(resp.status)), Message: resp.code},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
	}
}

// extAuthzCode maps the HTTP status decided to the ext_authz Check status
// (contract section 9; the edge's own gRPC errors use grpcCode, section 10).
func extAuthzCode(status int) codes.Code {
	switch {
	case status == http.StatusUnauthorized:
		return codes.Unauthenticated
	case status == http.StatusForbidden || status == http.StatusNotFound:
		return codes.PermissionDenied
	case status == http.StatusServiceUnavailable || status >= 500 || status == statusClientClosed:
		return codes.Unavailable
	default:
		return codes.InvalidArgument // 400, 408, 413
	}
}

// headerRecorder is the ResponseWriter of an ext_authz decision: decide
// records the request id and a DPoP nonce on its headers; nothing is
// written.
type headerRecorder struct{ h http.Header }

func (w *headerRecorder) Header() http.Header         { return w.h }
func (w *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (w *headerRecorder) WriteHeader(int)             {}
