package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

const audGRPC = "https://grpc.example.com"

// grpcBackend is a real grpc-go server (cleartext HTTP/2) running the
// interop TestService: it records the metadata of every call.
type grpcBackend struct {
	testpb.UnimplementedTestServiceServer
	addr string
	mu   sync.Mutex
	md   []metadata.MD
	// deadlines records whether each unary call arrived with a deadline
	// (the client's grpc-timeout, forwarded).
	deadlines []bool
}

func newGRPCBackend(t testing.TB) *grpcBackend {
	t.Helper()
	b := &grpcBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, b)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return b
}

func (b *grpcBackend) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	_, hasDeadline := ctx.Deadline()
	b.mu.Lock()
	b.md = append(b.md, md.Copy())
	b.deadlines = append(b.deadlines, hasDeadline)
	b.mu.Unlock()
}

func (b *grpcBackend) calls() ([]metadata.MD, []bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]metadata.MD(nil), b.md...), append([]bool(nil), b.deadlines...)
}

// UnaryCall echoes the payload, sets a header and a trailer, and answers
// the status the request asks for.
func (b *grpcBackend) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	b.record(ctx)
	grpc.SetHeader(ctx, metadata.Pairs("x-backend-header", "h"))
	grpc.SetTrailer(ctx, metadata.Pairs("x-backend-trailer", "t"))
	if s := req.GetResponseStatus(); s != nil {
		return nil, status.Error(codes.Code(s.GetCode()), s.GetMessage())
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

// CacheableUnaryCall never answers: it waits for the call to end, so the
// route's timeout on the upstream's response headers decides.
func (b *grpcBackend) CacheableUnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	b.record(ctx)
	<-ctx.Done()
	return nil, ctx.Err()
}

// StreamingOutputCall sends one message per response parameter.
func (b *grpcBackend) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	b.record(stream.Context())
	for i := range req.GetResponseParameters() {
		body := []byte(fmt.Sprintf("message %d", i))
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	stream.SetTrailer(metadata.Pairs("x-backend-trailer", "stream"))
	return nil
}

// FullDuplexCall answers each message as it arrives: a client that waits
// for each answer before sending the next only finishes if both directions
// stream through the gateway.
func (b *grpcBackend) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	b.record(stream.Context())
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// grpcRoutes adds the gRPC routes to the e2e configuration: the test
// service over h2c (its CacheableUnaryCall with a short timeout), the
// UnimplementedService to an address nobody listens on, nothing for the
// health service (a call to it has no route).
func grpcRoutes(addr string) func(text, edgeAddr string) string {
	return func(text, _ string) string {
		return text + fmt.Sprintf(`  - name: grpc
    path_prefix: /grpc.testing.TestService
    upstream: "h2c://%[1]s"
    audience: %[2]q
    timeout: 5s
  - name: grpc-slow
    path_prefix: /grpc.testing.TestService/CacheableUnaryCall
    upstream: "h2c://%[1]s"
    audience: %[2]q
    timeout: 200ms
  - name: grpc-down
    path_prefix: /grpc.testing.UnimplementedService
    upstream: "h2c://%[3]s"
    audience: %[2]q
    timeout: 5s
`, addr, audGRPC, closedAddr())
	}
}

// closedAddr is an address where nothing listens: a port just released.
func closedAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// dialEdge is a real grpc-go client of the edge over h2c (prior knowledge).
func dialEdge(t testing.TB, g *e2eGateway) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+g.srv.edgeAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func withBearer(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// TestE2EGRPCProxied: unary, server-streaming and bidirectional calls pass
// through the edge over h2c to an h2c upstream, with headers, trailers and
// the backend's status intact, the client's deadline forwarded, and only
// the exchanged token reaching the backend.
func TestE2EGRPCProxied(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	backend := newGRPCBackend(t)
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: grpcRoutes(backend.addr)})
	client := testpb.NewTestServiceClient(dialEdge(t, g))
	umbrella := idp.mint(t, map[string]any{"sub": "user-1", "aud": audGRPC, "scope": "openid"})
	ctx, cancel := context.WithTimeout(withBearer(t.Context(), umbrella), 10*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		var header, trailer metadata.MD
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}},
			grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatalf("unary: %v", err)
		}
		if string(resp.GetPayload().GetBody()) != "ping" {
			t.Errorf("payload = %q, want ping", resp.GetPayload().GetBody())
		}
		if got := header.Get("x-backend-header"); len(got) != 1 || got[0] != "h" {
			t.Errorf("header metadata = %v", header)
		}
		if got := trailer.Get("x-backend-trailer"); len(got) != 1 || got[0] != "t" {
			t.Errorf("trailer metadata = %v", trailer)
		}
	})

	t.Run("backend status and message intact", func(t *testing.T) {
		const msg = "stock 100% gone: ünïcode\nline"
		var trailer metadata.MD
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{
			Code: int32(codes.FailedPrecondition), Message: msg,
		}}, grpc.Trailer(&trailer))
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != msg {
			t.Errorf("status = %v %q, want FailedPrecondition %q", st.Code(), st.Message(), msg)
		}
		if got := trailer.Get("x-backend-trailer"); len(got) != 1 || got[0] != "t" {
			t.Errorf("trailer metadata = %v", trailer)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			ResponseParameters: make([]*testpb.ResponseParameters, 5),
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if want := fmt.Sprintf("message %d", i); string(m.GetPayload().GetBody()) != want {
				t.Errorf("message %d = %q, want %q", i, m.GetPayload().GetBody(), want)
			}
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: %v, want io.EOF (status OK)", err)
		}
		if got := stream.Trailer().Get("x-backend-trailer"); len(got) != 1 || got[0] != "stream" {
			t.Errorf("stream trailer = %v", stream.Trailer())
		}
	})

	t.Run("bidirectional streaming, full duplex", func(t *testing.T) {
		stream, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Ping-pong: each answer must arrive before the next message is
		// sent, so neither direction may be buffered until the other ends.
		for i := range 5 {
			body := []byte(fmt.Sprintf("ping %d", i))
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("recv %d: %v", i, err)
			}
			if string(m.GetPayload().GetBody()) != string(body) {
				t.Errorf("echo %d = %q", i, m.GetPayload().GetBody())
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: %v, want io.EOF", err)
		}
	})

	mds, deadlines := backend.calls()
	if len(mds) != 4 {
		t.Fatalf("backend saw %d calls, want 4", len(mds))
	}
	for i, md := range mds {
		auth := md.Get("authorization")
		if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") || strings.Contains(auth[0], umbrella) {
			t.Errorf("call %d: authorization %v, want the exchanged token alone", i, auth)
		}
		if !deadlines[i] {
			t.Errorf("call %d arrived without the client's deadline (grpc-timeout)", i)
		}
	}
	if logs := g.logs.String(); strings.Contains(logs, umbrella) {
		t.Error("the umbrella token is in the logs")
	}
	if !strings.Contains(g.logs.String(), `"grpc_status":"9"`) {
		t.Error("the access log lacks the backend's grpc_status 9")
	}
}

// TestE2EGRPCGatewayErrors: the gateway's own refusals of a gRPC call are
// gRPC statuses a grpc-go client reads (trailers-only), with the challenge
// in the trailer metadata, the HTTP status decided in metrics and the gRPC
// status in the access log; nothing reaches the backend.
func TestE2EGRPCGatewayErrors(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	backend := newGRPCBackend(t)
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: grpcRoutes(backend.addr)})
	conn := dialEdge(t, g)
	client := testpb.NewTestServiceClient(conn)
	before := scrape(t, g)

	tests := []struct {
		name      string
		token     string
		call      func(ctx context.Context, opts ...grpc.CallOption) error
		code      codes.Code
		challenge string // www-authenticate trailer metadata, "" for none
		httpCode  string
		route     string
	}{
		{
			name: "no token is UNAUTHENTICATED",
			call: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, opts...)
				return err
			},
			code: codes.Unauthenticated, challenge: `Bearer realm="tokengate"`, httpCode: "401", route: "grpc",
		},
		{
			name:  "bad token is UNAUTHENTICATED with invalid_token",
			token: "not-a-jwt-at-all",
			call: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, opts...)
				return err
			},
			code: codes.Unauthenticated, challenge: `Bearer error="invalid_token"`, httpCode: "401", route: "grpc",
		},
		{
			name:  "a streaming call without a token is refused too",
			token: "",
			call: func(ctx context.Context, opts ...grpc.CallOption) error {
				stream, err := client.FullDuplexCall(ctx, opts...)
				if err != nil {
					return err
				}
				_, err = stream.Recv()
				return err
			},
			code: codes.Unauthenticated, challenge: `Bearer realm="tokengate"`, httpCode: "401", route: "grpc",
		},
		{
			name:  "upstream headers later than the route's timeout is DEADLINE_EXCEEDED",
			token: idp.mint(t, map[string]any{"sub": "u", "aud": audGRPC}),
			call: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := client.CacheableUnaryCall(ctx, &testpb.SimpleRequest{}, opts...)
				return err
			},
			code: codes.DeadlineExceeded, httpCode: "504", route: "grpc-slow",
		},
		{
			name:  "upstream unreachable is UNAVAILABLE",
			token: idp.mint(t, map[string]any{"sub": "u", "aud": audGRPC}),
			call: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := testpb.NewUnimplementedServiceClient(conn).UnimplementedCall(ctx, &testpb.Empty{}, opts...)
				return err
			},
			code: codes.Unavailable, httpCode: "502", route: "grpc-down",
		},
		{
			name:  "no route is UNIMPLEMENTED",
			token: idp.mint(t, map[string]any{"sub": "u", "aud": audGRPC}),
			call: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
				return err
			},
			code: codes.Unimplemented, httpCode: "404", route: "_none",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var trailer metadata.MD
			ctx, cancel := context.WithTimeout(withBearer(t.Context(), tc.token), 10*time.Second)
			defer cancel()
			err := tc.call(ctx, grpc.Trailer(&trailer))
			if st := status.Convert(err); st.Code() != tc.code {
				t.Fatalf("status = %v %q, want %v", st.Code(), st.Message(), tc.code)
			}
			got := strings.Join(trailer.Get("www-authenticate"), ", ")
			if tc.challenge == "" && got != "" || !strings.HasPrefix(got, tc.challenge) {
				t.Errorf("www-authenticate = %q, want %q", got, tc.challenge)
			}
		})
	}
	if mds, _ := backend.calls(); len(mds) != 1 {
		t.Errorf("%d calls reached the backend, want 1 (the slow one)", len(mds))
	}
	after := scrape(t, g)
	for _, s := range []struct {
		route, code string
		delta       float64
	}{{"grpc", "401", 3}, {"_none", "404", 1}, {"grpc", "200", 0}, {"grpc-slow", "504", 1}, {"grpc-down", "502", 1}} {
		key := series("tokengate_requests_total", map[string]string{"route": s.route, "code": s.code})
		if d := after[key] - before[key]; d != s.delta {
			t.Errorf("%s moved by %v, want %v", key, d, s.delta)
		}
	}
	logs := g.logs.String()
	for _, want := range []string{`"grpc_status":"16"`, `"grpc_status":"12"`, `"grpc_status":"4"`, `"grpc_status":"14"`, `"status":401`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the access log lacks %s", want)
		}
	}
}

// TestE2EGRPCKeysUnavailable: an issuer outage is UNAVAILABLE to a gRPC
// client (HTTP 503 decided), with Retry-After in the trailer metadata.
func TestE2EGRPCKeysUnavailable(t *testing.T) {
	idp := newE2EIdP(t)
	idp.SetDown(true)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	backend := newGRPCBackend(t)
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: grpcRoutes(backend.addr)})
	client := testpb.NewTestServiceClient(dialEdge(t, g))
	token := idp.mint(t, map[string]any{"sub": "u", "aud": audGRPC})
	ctx, cancel := context.WithTimeout(withBearer(t.Context(), token), 10*time.Second)
	defer cancel()
	var trailer metadata.MD
	_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
	if st := status.Convert(err); st.Code() != codes.Unavailable {
		t.Fatalf("status = %v %q, want Unavailable", st.Code(), st.Message())
	}
	if len(trailer.Get("retry-after")) != 1 || len(trailer.Get("www-authenticate")) != 0 {
		t.Errorf("trailer metadata = %v, want Retry-After and no challenge", trailer)
	}
	if mds, _ := backend.calls(); len(mds) != 0 {
		t.Errorf("a call reached the backend during an outage")
	}
	if !strings.Contains(g.logs.String(), `"grpc_status":"14"`) {
		t.Error("the access log lacks grpc_status 14")
	}
}

// TestE2EGRPCErrorIsTrailersOnly reads the gateway's refusal of a gRPC call
// frame by frame: one HEADERS frame that ends the stream (no DATA, no
// second HEADERS), HTTP 200, content-type application/grpc, grpc-status,
// a percent-encoded grpc-message and the challenge in the same frame.
func TestE2EGRPCErrorIsTrailersOnly(t *testing.T) {
	idp := newE2EIdP(t)
	g := startE2EWith(t, idp, newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"),
		e2eOptions{edit: grpcRoutes(newGRPCBackend(t).addr)})
	conn, err := net.DialTimeout("tcp", g.srv.edgeAddr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", "edge"},
		{":path", "/grpc.testing.TestService/UnaryCall"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	var frames []http2.Frame
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d frames: %v", len(frames), err)
		}
		if f.Header().StreamID != 1 {
			if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
				fr.WriteSettingsAck()
			}
			continue
		}
		frames = append(frames, f)
		if f.Header().Flags.Has(http2.FlagHeadersEndStream) || f.Header().Flags.Has(http2.FlagDataEndStream) {
			break
		}
	}
	if len(frames) != 1 {
		t.Fatalf("stream 1 had %d frames, want one HEADERS frame", len(frames))
	}
	h, ok := frames[0].(*http2.MetaHeadersFrame)
	if !ok || !h.StreamEnded() {
		t.Fatalf("frame %T, want HEADERS with END_STREAM", frames[0])
	}
	got := map[string]string{}
	for _, f := range h.Fields {
		if got[f.Name] != "" {
			got[f.Name] += ", "
		}
		got[f.Name] += f.Value
	}
	want := map[string]string{
		":status": "200", "content-type": "application/grpc", "grpc-status": "16",
		"www-authenticate": `Bearer realm="tokengate", DPoP algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA"`,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if m := got["grpc-message"]; !strings.HasPrefix(m, "unauthorized: ") || strings.ContainsAny(m, "\"\n") {
		t.Errorf("grpc-message = %q", m)
	}
}
