package server

import (
	"context"
	"net/http"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The authz listeners' handlers (authz.listen, authz.grpc_listen). They
// outlive generations: each call decides with the current generation's
// gateway, so a reload swaps them with the edge.

// AuthzHTTP is the HTTP forward-auth handler over current.
func AuthzHTTP(current func() *Generation) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current().Edge().ServeAuthz(w, r)
	})
}

// AuthzGRPC is the gRPC server of authz.grpc_listen: Envoy ext_authz v3
// (envoy.service.auth.v3.Authorization) and grpc.health.v1. The health
// server it returns reports SERVING until Shutdown sets it otherwise.
func AuthzGRPC(current func() *Generation) (*grpc.Server, *health.Server) {
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, checker{current})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	return srv, hs
}

// checker is the Authorization service over the current generation.
type checker struct{ current func() *Generation }

func (c checker) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return c.current().Edge().Check(ctx, req)
}
