package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// TestE2EAuthzReloadAndShutdown: a reload swaps the authz listeners'
// decisions with the edge's; Shutdown drains and closes them.
func TestE2EAuthzReloadAndShutdown(t *testing.T) {
	idp, downIdP := newE2EIdP(t), newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startAuthzE2E(t, idp, downIdP, orders, inventory)
	tok := idp.mint(t, map[string]any{"sub": "alice", "aud": audOrders, "scope": "orders:read"})

	forwardAuth := func() int {
		req, err := http.NewRequest(http.MethodGet, g.srv.AuthzURL()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Original-Uri", "/orders/1")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	conn, err := grpc.NewClient(g.srv.AuthzGRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	check := func() codes.Code {
		res, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{
			Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/orders/1",
					Headers: map[string]string{"authorization": "Bearer " + tok}},
			}},
		})
		if err != nil {
			return codes.Unknown
		}
		return codes.Code(res.GetStatus().GetCode())
	}
	if got := forwardAuth(); got != http.StatusOK {
		t.Fatalf("forward-auth before reload: %d, want 200", got)
	}
	if got := check(); got != codes.OK {
		t.Fatalf("ext_authz before reload: %v, want OK", got)
	}

	text := strings.Replace(g.cfgText, "    required_scopes: [orders:read]\n", "    required_scopes: [orders:write]\n", 1)
	if err := os.WriteFile(g.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := forwardAuth(); got != http.StatusForbidden {
		t.Errorf("forward-auth after reload: %d, want 403", got)
	}
	if got := check(); got != codes.PermissionDenied {
		t.Errorf("ext_authz after reload: %v, want PERMISSION_DENIED", got)
	}

	if err := g.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := forwardAuth(); got != 0 {
		t.Errorf("forward-auth after shutdown: %d, want the connection refused", got)
	}
	if got := check(); got == codes.OK || got == codes.PermissionDenied {
		t.Errorf("ext_authz after shutdown: %v, want a failed call", got)
	}
}
