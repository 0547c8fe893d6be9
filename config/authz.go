package config

// Authz are the decision listeners for a proxy in front of the APIs
// (docs/ingress.md). They believe the original-request headers they are
// sent, so only the proxy may reach them.
type Authz struct {
	// Listen is the HTTP forward-auth listener (ingress-nginx auth-url,
	// Traefik forwardAuth, Envoy http_service). "" (default): off.
	Listen string `yaml:"listen"`
	// GRPCListen is the Envoy ext_authz v3 gRPC listener (h2c), with the
	// grpc.health.v1 service. "" (default): off.
	GRPCListen string `yaml:"grpc_listen"`
	// PathPrefix is stripped from a forward-auth request's own path to
	// get the original path (Envoy http_service's path_prefix).
	PathPrefix string `yaml:"path_prefix"`
}

// Enabled reports whether any authz listener is on: a route may then go
// without upstream (decided only through authz).
func (a Authz) Enabled() bool { return a.Listen != "" || a.GRPCListen != "" }

func (v *validator) authz() {
	a := v.c.Authz
	s := v.c.Server
	check := func(p, addr string) {
		if addr == "" || !v.listenAddress(p, addr, "127.0.0.1:8081") {
			return
		}
		for _, other := range []struct{ key, addr string }{
			{"server.listen", s.Listen}, {"server.admin_listen", s.AdminListen},
		} {
			if sameAddress(addr, other.addr) {
				v.addf(p, "%s is the same address as %s (%s): the authz listener believes the "+
					"original-request headers it is sent, so it needs its own port that only the proxy can reach, like 127.0.0.1:8081",
					quote(addr), other.key, quote(other.addr))
			}
		}
	}
	check("authz.listen", a.Listen)
	check("authz.grpc_listen", a.GRPCListen)
	if a.Listen != "" && a.GRPCListen != "" && sameAddress(a.Listen, a.GRPCListen) {
		v.addf("authz.grpc_listen", "%s is the same address as authz.listen: give each listener its own port", quote(a.GRPCListen))
	}
	if p := a.PathPrefix; p != "" && (p[0] != '/' || p != normalizedPrefix(p)) {
		v.addf("authz.path_prefix", `%s must start with "/" and not end with "/", like /ext-authz`, quote(p))
	}
}

func normalizedPrefix(p string) string {
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}
