package charttest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// The Kubernetes snippets of docs/ingress.md cannot run here (no
// ingress-nginx, Traefik, Envoy Gateway or Istio), so this test does what
// can be done without them: every snippet decodes strictly (the Kubernetes
// API type where there is one, else a copy of the fields the upstream
// CRD defines for what the snippet uses, so a misspelt field fails), the
// headers an ingress copies from the decision are the ones that keep the
// umbrella token, a client's Txn-Token and its DPoP proof from the backend,
// and every address names the chart's <fullname>-authz Service, rendered
// with both decision listeners on for the release the docs assume.

// docsRelease and docsNamespace are what the snippets assume: the release
// "tokengate" in the namespace "tokengate", whose authz Service is
// tokengate-authz.tokengate.svc.cluster.local.
const (
	docsRelease   = "tokengate"
	docsNamespace = "tokengate"
)

// ingressDocsPath is docs/ingress.md, relative to this test's folder.
var ingressDocsPath = filepath.Join("..", "..", "..", "docs", "ingress.md")

// forwardedByIngress are the headers an HTTP forward-auth ingress must take
// from tokengate's 200 (and drop when it has none).
var forwardedByIngress = []string{"Authorization", "Txn-Token", "DPoP"}

func TestIngressDocSnippets(t *testing.T) {
	authz := renderedAuthzService(t)
	seen := map[string]bool{}
	for i, doc := range yamlDocsOf(t, ingressDocsPath) {
		kind := snippetKind(doc)
		seen[kind] = true
		t.Run(fmt.Sprintf("%d-%s", i, kind), func(t *testing.T) {
			switch kind {
			case "tokengate-config":
				// tokengate's own keys are checked by config's tests.
			case "envoy":
				// Its schema is checked with go-control-plane's types by
				// cmd/tokengate/ingress_docs_test.go; its address here.
				checkEnvoyClusterSnippet(t, doc, authz)
			case "Ingress":
				checkIngressNginxSnippet(t, doc, authz)
			case "Middleware":
				checkTraefikSnippet(t, doc, authz)
			case "SecurityPolicy":
				checkEnvoyGatewaySnippet(t, doc, authz)
			case "extensionProviders":
				checkIstioProviderSnippet(t, doc, authz)
			case "AuthorizationPolicy":
				checkIstioPolicySnippet(t, doc)
			default:
				t.Fatalf("docs/ingress.md has a YAML snippet this test does not know; add a check for it:\n%s", doc)
			}
		})
	}
	for _, k := range []string{"Ingress", "Middleware", "SecurityPolicy", "extensionProviders", "AuthorizationPolicy", "envoy"} {
		if !seen[k] {
			t.Errorf("docs/ingress.md has no %s snippet any more", k)
		}
	}
}

// authzService is where the rendered <fullname>-authz Service answers.
type authzService struct {
	host               string // <name>.<namespace>.svc.cluster.local
	httpPort, grpcPort int32
}

func renderedAuthzService(t *testing.T) authzService {
	t.Helper()
	out, err := helmRun(t, "template", docsRelease, ".", "--namespace", docsNamespace,
		"--set", "authz.http.enabled=true", "--set", "authz.grpc.enabled=true")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	// The release name holds the chart's name, so the fullname is the
	// release name.
	name := docsRelease + "-authz"
	var svc corev1.Service
	decodeInto(t, find(t, splitManifests(t, out), "Service", name), &svc)
	a := authzService{
		host:     name + "." + docsNamespace + ".svc.cluster.local",
		httpPort: servicePort(svc, "authz-http"),
		grpcPort: servicePort(svc, "authz-grpc"),
	}
	if a.httpPort == 0 || a.grpcPort == 0 {
		t.Fatalf("%s ports = %+v", name, svc.Spec.Ports)
	}
	return a
}

// yamlDocsOf returns every YAML document of every ```yaml block of path.
func yamlDocsOf(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	rest := string(data)
	for {
		_, after, ok := strings.Cut(rest, "```yaml\n")
		if !ok {
			break
		}
		block, tail, ok := strings.Cut(after, "```")
		if !ok {
			t.Fatalf("%s: a yaml block is not closed", path)
		}
		rest = tail
		for doc := range strings.SplitSeq(block, "\n---\n") {
			if strings.TrimSpace(stripComments(doc)) != "" {
				docs = append(docs, doc)
			}
		}
	}
	return docs
}

// snippetKind names a document: its kind, or its top-level key where it
// is a fragment of a larger configuration.
func snippetKind(doc string) string {
	var top map[string]any
	if err := yaml.Unmarshal([]byte(doc), &top); err != nil {
		return "unparsable"
	}
	if k, ok := top["kind"].(string); ok {
		return k
	}
	switch {
	case top["authz"] != nil:
		return "tokengate-config"
	case top["extensionProviders"] != nil:
		return "extensionProviders"
	case top["http_filters"] != nil:
		return "envoy"
	}
	return "unknown"
}

func strictDecode(t *testing.T, doc string, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
		t.Fatalf("does not decode strictly: %v\n%s", err, doc)
	}
}

// checkHTTPAddress checks that raw is the authz Service's forward-auth URL.
func checkHTTPAddress(t *testing.T, raw string, a authzService) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		t.Fatalf("address %q is not an http URL (%v)", raw, err)
	}
	if want := net.JoinHostPort(a.host, strconv.Itoa(int(a.httpPort))); u.Host != want {
		t.Errorf("address %q: host %q, the chart's forward-auth Service is %q", raw, u.Host, want)
	}
}

func checkForwardedHeaders(t *testing.T, listed []string) {
	t.Helper()
	for _, h := range forwardedByIngress {
		if !slices.ContainsFunc(listed, func(l string) bool { return strings.EqualFold(strings.TrimSpace(l), h) }) {
			t.Errorf("the ingress does not copy %s from the decision (listed: %q): the client's own would reach the backend", h, listed)
		}
	}
}

func checkIngressNginxSnippet(t *testing.T, doc string, a authzService) {
	var ing networkingv1.Ingress
	strictDecode(t, doc, &ing)
	if ing.APIVersion != "networking.k8s.io/v1" {
		t.Errorf("apiVersion %q", ing.APIVersion)
	}
	const prefix = "nginx.ingress.kubernetes.io/"
	checkHTTPAddress(t, ing.Annotations[prefix+"auth-url"], a)
	headers := strings.Split(ing.Annotations[prefix+"auth-response-headers"], ",")
	checkForwardedHeaders(t, headers)
	// ingress-nginx sets X-Request-ID upstream itself; copying it as well
	// would send two.
	if slices.ContainsFunc(headers, func(h string) bool { return strings.EqualFold(strings.TrimSpace(h), "X-Request-Id") }) {
		t.Error("auth-response-headers lists X-Request-Id, which ingress-nginx already sets")
	}
	for k := range ing.Annotations {
		if strings.HasSuffix(k, "-snippet") {
			t.Errorf("annotation %s: snippet annotations are off by default since ingress-nginx 1.9", k)
		}
	}
}

// crdMeta is the type and object metadata of a custom resource snippet.
type crdMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   map[string]string `json:"metadata"`
}

// traefikMiddleware is the part of Traefik's Middleware (traefik.io/v1alpha1)
// the snippet uses, with every forwardAuth field Traefik defines.
type traefikMiddleware struct {
	crdMeta
	Spec struct {
		ForwardAuth *struct {
			Address                  string   `json:"address"`
			TrustForwardHeader       bool     `json:"trustForwardHeader"`
			AuthResponseHeaders      []string `json:"authResponseHeaders"`
			AuthResponseHeadersRegex string   `json:"authResponseHeadersRegex"`
			AuthRequestHeaders       []string `json:"authRequestHeaders"`
			AddAuthCookiesToResponse []string `json:"addAuthCookiesToResponse"`
			HeaderField              string   `json:"headerField"`
			ForwardBody              bool     `json:"forwardBody"`
			MaxBodySize              *int64   `json:"maxBodySize"`
			PreserveLocationHeader   bool     `json:"preserveLocationHeader"`
			PreserveRequestMethod    bool     `json:"preserveRequestMethod"`
			TLS                      *struct {
				CASecret           string `json:"caSecret"`
				CertSecret         string `json:"certSecret"`
				InsecureSkipVerify bool   `json:"insecureSkipVerify"`
			} `json:"tls"`
		} `json:"forwardAuth"`
	} `json:"spec"`
}

func checkTraefikSnippet(t *testing.T, doc string, a authzService) {
	var m traefikMiddleware
	strictDecode(t, doc, &m)
	if m.APIVersion != "traefik.io/v1alpha1" || m.Spec.ForwardAuth == nil {
		t.Fatalf("apiVersion %q, forwardAuth %v", m.APIVersion, m.Spec.ForwardAuth)
	}
	checkHTTPAddress(t, m.Spec.ForwardAuth.Address, a)
	checkForwardedHeaders(t, m.Spec.ForwardAuth.AuthResponseHeaders)
	if m.Spec.ForwardAuth.TrustForwardHeader {
		t.Error("trustForwardHeader lets a client's X-Forwarded-* reach the decision")
	}
}

// backendRef is a Gateway API BackendObjectReference.
type backendRef struct {
	Group     string `json:"group"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Port      int32  `json:"port"`
	Weight    *int32 `json:"weight"`
}

// envoyGatewaySecurityPolicy is the part of Envoy Gateway's SecurityPolicy
// (gateway.envoyproxy.io/v1alpha1) the snippet uses.
type envoyGatewaySecurityPolicy struct {
	crdMeta
	Spec struct {
		TargetRefs []struct {
			Group       string `json:"group"`
			Kind        string `json:"kind"`
			Name        string `json:"name"`
			SectionName string `json:"sectionName"`
		} `json:"targetRefs"`
		ExtAuth *struct {
			GRPC *struct {
				BackendRef  *backendRef  `json:"backendRef"`
				BackendRefs []backendRef `json:"backendRefs"`
			} `json:"grpc"`
			HTTP *struct {
				BackendRefs      []backendRef `json:"backendRefs"`
				Path             string       `json:"path"`
				HeadersToBackend []string     `json:"headersToBackend"`
			} `json:"http"`
			HeadersToExtAuth []string `json:"headersToExtAuth"`
			FailOpen         *bool    `json:"failOpen"`
			RecomputeRoute   *bool    `json:"recomputeRoute"`
		} `json:"extAuth"`
	} `json:"spec"`
}

func checkEnvoyGatewaySnippet(t *testing.T, doc string, a authzService) {
	var p envoyGatewaySecurityPolicy
	strictDecode(t, doc, &p)
	if p.APIVersion != "gateway.envoyproxy.io/v1alpha1" || p.Spec.ExtAuth == nil || p.Spec.ExtAuth.GRPC == nil {
		t.Fatalf("apiVersion %q, extAuth.grpc missing", p.APIVersion)
	}
	if p.Spec.ExtAuth.FailOpen != nil && *p.Spec.ExtAuth.FailOpen {
		t.Error("failOpen would forward requests tokengate could not decide")
	}
	refs := p.Spec.ExtAuth.GRPC.BackendRefs
	if len(refs) != 1 {
		t.Fatalf("backendRefs = %+v, want the authz Service", refs)
	}
	if host := refs[0].Name + "." + refs[0].Namespace + ".svc.cluster.local"; host != a.host || refs[0].Port != a.grpcPort {
		t.Errorf("backendRef %s port %d, the chart's ext_authz Service is %s port %d", host, refs[0].Port, a.host, a.grpcPort)
	}
}

// istioMeshConfig is the part of Istio's MeshConfig the snippet uses.
type istioMeshConfig struct {
	ExtensionProviders []struct {
		Name              string `json:"name"`
		EnvoyExtAuthzGRPC *struct {
			Service                   string `json:"service"`
			Port                      int32  `json:"port"`
			Timeout                   string `json:"timeout"`
			FailOpen                  bool   `json:"failOpen"`
			StatusOnError             string `json:"statusOnError"`
			IncludeRequestBodyInCheck *struct {
				MaxRequestBytes     int32 `json:"maxRequestBytes"`
				AllowPartialMessage bool  `json:"allowPartialMessage"`
				PackAsBytes         bool  `json:"packAsBytes"`
			} `json:"includeRequestBodyInCheck"`
		} `json:"envoyExtAuthzGrpc"`
	} `json:"extensionProviders"`
}

func checkIstioProviderSnippet(t *testing.T, doc string, a authzService) {
	var m istioMeshConfig
	strictDecode(t, doc, &m)
	if len(m.ExtensionProviders) != 1 || m.ExtensionProviders[0].EnvoyExtAuthzGRPC == nil {
		t.Fatalf("extensionProviders = %+v, want one envoyExtAuthzGrpc", m.ExtensionProviders)
	}
	p := m.ExtensionProviders[0]
	if p.Name != "tokengate" {
		t.Errorf("provider name %q; the AuthorizationPolicy snippet names \"tokengate\"", p.Name)
	}
	g := p.EnvoyExtAuthzGRPC
	if g.Service != a.host || g.Port != a.grpcPort {
		t.Errorf("envoyExtAuthzGrpc %s:%d, the chart's ext_authz Service is %s:%d", g.Service, g.Port, a.host, a.grpcPort)
	}
	if g.FailOpen {
		t.Error("failOpen would forward requests tokengate could not decide")
	}
}

// istioAuthorizationPolicy is the part of Istio's AuthorizationPolicy
// (security.istio.io/v1) the snippet uses.
type istioAuthorizationPolicy struct {
	crdMeta
	Spec struct {
		Selector *struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Action   string `json:"action"`
		Provider *struct {
			Name string `json:"name"`
		} `json:"provider"`
		Rules []struct {
			From []map[string]any `json:"from"`
			To   []struct {
				Operation struct {
					Hosts      []string `json:"hosts"`
					NotHosts   []string `json:"notHosts"`
					Ports      []string `json:"ports"`
					NotPorts   []string `json:"notPorts"`
					Methods    []string `json:"methods"`
					NotMethods []string `json:"notMethods"`
					Paths      []string `json:"paths"`
					NotPaths   []string `json:"notPaths"`
				} `json:"operation"`
			} `json:"to"`
			When []map[string]any `json:"when"`
		} `json:"rules"`
	} `json:"spec"`
}

func checkIstioPolicySnippet(t *testing.T, doc string) {
	var p istioAuthorizationPolicy
	strictDecode(t, doc, &p)
	if p.APIVersion != "security.istio.io/v1" || p.Spec.Action != "CUSTOM" || p.Spec.Provider == nil || p.Spec.Provider.Name != "tokengate" {
		t.Errorf("apiVersion %q action %q provider %+v, want a CUSTOM policy naming the tokengate provider", p.APIVersion, p.Spec.Action, p.Spec.Provider)
	}
	if len(p.Spec.Rules) == 0 {
		t.Error("a CUSTOM policy without rules asks the provider about nothing")
	}
}

// envoyClusterSnippet is the address part of the Envoy snippet's cluster.
type envoyClusterSnippet struct {
	Clusters []struct {
		LoadAssignment struct {
			Endpoints []struct {
				LBEndpoints []struct {
					Endpoint struct {
						Address struct {
							SocketAddress struct {
								Address   string `json:"address"`
								PortValue int32  `json:"port_value"`
							} `json:"socket_address"`
						} `json:"address"`
					} `json:"endpoint"`
				} `json:"lb_endpoints"`
			} `json:"endpoints"`
		} `json:"load_assignment"`
	} `json:"clusters"`
}

func checkEnvoyClusterSnippet(t *testing.T, doc string, a authzService) {
	var e envoyClusterSnippet
	if err := yaml.Unmarshal([]byte(doc), &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Clusters) != 1 || len(e.Clusters[0].LoadAssignment.Endpoints) != 1 || len(e.Clusters[0].LoadAssignment.Endpoints[0].LBEndpoints) != 1 {
		t.Fatalf("want one cluster with one endpoint: %+v", e)
	}
	sa := e.Clusters[0].LoadAssignment.Endpoints[0].LBEndpoints[0].Endpoint.Address.SocketAddress
	if sa.Address != a.host || sa.PortValue != a.grpcPort {
		t.Errorf("the cluster's endpoint is %s:%d, the chart's ext_authz Service is %s:%d", sa.Address, sa.PortValue, a.host, a.grpcPort)
	}
}
