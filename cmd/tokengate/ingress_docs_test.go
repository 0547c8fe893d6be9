package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	// The router's typed_config in the snippet must resolve.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
)

// TestEnvoyDocSnippet: the Envoy block of docs/ingress.md is Envoy
// configuration as go-control-plane's types define it (protojson refuses
// unknown fields, and the generated validation runs), the ext_authz filter
// comes before the router and fails closed over the v3 API, it names the
// cluster of the snippet, and that cluster speaks HTTP/2 (tokengate's
// ext_authz listener is gRPC over h2c). The chart's tests check the
// cluster's address against the rendered authz Service.
func TestEnvoyDocSnippet(t *testing.T) {
	var snippet struct {
		HTTPFilters []any `yaml:"http_filters"`
		Clusters    []any `yaml:"clusters"`
	}
	if err := yaml.Unmarshal([]byte(envoyDocBlock(t)), &snippet); err != nil {
		t.Fatal(err)
	}
	if len(snippet.HTTPFilters) != 2 || len(snippet.Clusters) != 1 {
		t.Fatalf("want two http_filters (ext_authz, router) and one cluster, got %d and %d", len(snippet.HTTPFilters), len(snippet.Clusters))
	}

	filters := make([]*hcmv3.HttpFilter, len(snippet.HTTPFilters))
	for i, raw := range snippet.HTTPFilters {
		filters[i] = new(hcmv3.HttpFilter)
		envoyDecode(t, raw, filters[i])
	}
	if filters[0].GetName() != "envoy.filters.http.ext_authz" || filters[1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("filters %q, %q: ext_authz must come before the router", filters[0].GetName(), filters[1].GetName())
	}
	authz := new(extauthzv3.ExtAuthz)
	if err := filters[0].GetTypedConfig().UnmarshalTo(authz); err != nil {
		t.Fatalf("ext_authz typed_config: %v", err)
	}
	if err := authz.ValidateAll(); err != nil {
		t.Fatalf("ext_authz: %v", err)
	}
	if authz.GetFailureModeAllow() {
		t.Error("failure_mode_allow forwards requests tokengate could not decide")
	}
	if authz.GetTransportApiVersion().String() != "V3" {
		t.Errorf("transport_api_version %v, tokengate serves the v3 API", authz.GetTransportApiVersion())
	}
	clusterName := authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()

	cluster := new(clusterv3.Cluster)
	envoyDecode(t, snippet.Clusters[0], cluster)
	if cluster.GetName() != clusterName {
		t.Errorf("the filter calls cluster %q, the snippet defines %q", clusterName, cluster.GetName())
	}
	opts := new(upstreamhttpv3.HttpProtocolOptions)
	anyOpts := cluster.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if anyOpts == nil || anyOpts.UnmarshalTo(opts) != nil || opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Errorf("cluster %q does not speak HTTP/2 (explicit_http_config.http2_protocol_options): gRPC needs it", cluster.GetName())
	}
	if port := cluster.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue(); port == 0 {
		t.Error("the cluster's endpoint has no port")
	}
}

// envoyDecode decodes a YAML value into m as Envoy reads its configuration
// (proto JSON, unknown fields refused) and runs m's generated validation.
func envoyDecode(t *testing.T, raw any, m interface {
	proto.Message
	ValidateAll() error
}) {
	t.Helper()
	js, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		t.Fatalf("%T: %v\n%s", m, err, js)
	}
	if err := m.ValidateAll(); err != nil {
		t.Fatalf("%T: %v", m, err)
	}
}

// envoyDocBlock is the yaml block of docs/ingress.md that holds
// http_filters.
func envoyDocBlock(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "ingress.md"))
	if err != nil {
		t.Fatal(err)
	}
	rest := string(doc)
	for {
		_, after, ok := strings.Cut(rest, "```yaml\n")
		if !ok {
			t.Fatal("docs/ingress.md has no yaml block with http_filters")
		}
		block, tail, _ := strings.Cut(after, "```")
		if strings.Contains(block, "\nhttp_filters:") {
			return block
		}
		rest = tail
	}
}
