package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestE2EExtAuthzGRPC: a real gRPC client with the go-control-plane types
// asks authz.grpc_listen, as Envoy does; the health service answers too.
func TestE2EExtAuthzGRPC(t *testing.T) {
	idp, downIdP := newE2EIdP(t), newE2EIdP(t)
	downIdP.SetDown(true)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startAuthzE2E(t, idp, downIdP, orders, inventory)
	conn, err := grpc.NewClient(g.srv.AuthzGRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := context.Background()

	for _, service := range []string{"", "envoy.service.auth.v3.Authorization"} {
		hr, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v %v, want SERVING", service, hr.GetStatus(), err)
		}
	}

	umbrella := idp.mint(t, map[string]any{"sub": "alice", "aud": audOrders, "scope": "orders:read"})
	noScope := idp.mint(t, map[string]any{"sub": "bob", "aud": audOrders, "scope": "inventory:read"})
	outage := downIdP.mint(t, map[string]any{"sub": "carol", "aud": audOrders, "scope": "orders:read"})
	client := authv3.NewAuthorizationClient(conn)
	tests := []struct {
		name      string
		path      string
		token     string
		code      codes.Code
		status    int
		challenge string
	}{
		{"allowed", "/orders/1?x=1", umbrella, codes.OK, 200, ""},
		{"no token", "/orders/1", "", codes.Unauthenticated, 401, `Bearer realm="tokengate"`},
		{"missing scope", "/orders/1", noScope, codes.PermissionDenied, 403, `Bearer error="insufficient_scope"`},
		{"no route", "/nowhere", umbrella, codes.PermissionDenied, 404, ""},
		{"path confusion", "/orders%2F..%2Finventory", umbrella, codes.InvalidArgument, 400, ""},
		{"issuer keys unreachable", "/orders/1", outage, codes.Unavailable, 503, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{"dpop": "proof", "x-forwarded-proto": "https"}
			if tc.token != "" {
				headers["authorization"] = "Bearer " + tc.token
			}
			res, err := client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: "GET", Host: "api.example.com", Path: tc.path, Headers: headers,
				}},
			}})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := codes.Code(res.GetStatus().GetCode()); got != tc.code {
				t.Fatalf("status %v, want %v", got, tc.code)
			}
			if tc.code == codes.OK {
				ok := res.GetOkResponse()
				var auth string
				for _, h := range ok.GetHeaders() {
					if h.GetHeader().GetKey() == "authorization" {
						auth = h.GetHeader().GetValue()
						//lint:ignore SA1019 the contract pins append: false
						if h.GetAppendAction().String() != "OVERWRITE_IF_EXISTS_OR_ADD" || h.GetAppend().GetValue() {
							t.Errorf("authorization is not overwritten: %v", h)
						}
					}
				}
				if tok := strings.TrimPrefix(auth, "Bearer "); tok == auth || tok == umbrella || strings.Count(tok, ".") != 2 {
					t.Errorf("authorization %q, want the exchanged token", auth)
				}
				if !strings.Contains(strings.Join(ok.GetHeadersToRemove(), ","), "dpop") {
					t.Errorf("headers_to_remove %v lacks dpop", ok.GetHeadersToRemove())
				}
				return
			}
			d := res.GetDeniedResponse()
			if int(d.GetStatus().GetCode()) != tc.status {
				t.Errorf("denied HTTP status %d, want %d", d.GetStatus().GetCode(), tc.status)
			}
			var challenge string
			for _, h := range d.GetHeaders() {
				if h.GetHeader().GetKey() == "www-authenticate" && challenge == "" {
					challenge = h.GetHeader().GetValue()
				}
			}
			if !strings.HasPrefix(challenge, tc.challenge) || (tc.challenge == "" && challenge != "") {
				t.Errorf("WWW-Authenticate %q, want %q", challenge, tc.challenge)
			}
			var body struct{ Error string }
			if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body.Error == "" {
				t.Errorf("denied body %q is not the JSON error", d.GetBody())
			}
		})
	}
	if len(orders.received()) != 0 {
		t.Error("a decision forwarded something")
	}
	assertNoUmbrella(t, umbrella, g)
	metrics := func() string { _, body := get(t, g.srv.AdminURL()+"/metrics"); return body }()
	for _, want := range []string{
		`tokengate_authz_decisions_total{code="200",protocol="grpc",route="orders"} 1`,
		`tokengate_authz_decisions_total{code="404",protocol="grpc",route="_none"} 1`,
		`tokengate_authz_duration_seconds_count{protocol="grpc"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
