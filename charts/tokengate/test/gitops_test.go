package charttest

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// equalYAML compares two values by their YAML form.
func equalYAML(t *testing.T, a, b any) bool {
	t.Helper()
	ya, err := yaml.Marshal(a)
	must(t, err)
	yb, err := yaml.Marshal(b)
	must(t, err)
	return string(ya) == string(yb)
}

// TestRenderIsDeterministic: Argo CD and Flux render the chart without the
// cluster, at every sync. Two renders of the same values must be the same
// bytes, or every sync would roll the pods, and a generated key would be
// replaced (invalidating every token it signed).
func TestRenderIsDeterministic(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			first, err := helmRun(t, c.templateArgs()...)
			if err != nil {
				t.Fatal(err)
			}
			second, err := helmRun(t, c.templateArgs()...)
			if err != nil {
				t.Fatal(err)
			}
			if first != second {
				t.Errorf("two renders of the same values differ:\n%s", firstDiff(first, second))
			}
		})
	}
}

// firstDiff shows the first differing line of a and b.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + al[i] + "\n  vs " + bl[i]
		}
	}
	return "lengths differ"
}

// nonDeterministic are the template functions whose result depends on the
// cluster, the clock or chance.
var nonDeterministic = regexp.MustCompile(`\b(lookup|genPrivateKey|genCA|genCAWithKey|genSelfSignedCert|genSelfSignedCertWithKey|genSignedCert|genSignedCertWithKey|derivePassword|randAlphaNum|randAlpha|randNumeric|randAscii|randBytes|randInt|uuidv4|now|date|dateInZone|htmlDate)\b`)

// templateComment is a {{/* ... */}} comment, which may mention anything.
var templateComment = regexp.MustCompile(`(?s)/\*.*?\*/`)

// TestTemplatesUseNoClusterOrChance: no template calls lookup (empty under
// `helm template`, so a GitOps render differs from `helm install`'s), or
// generates keys, passwords or ids at render time.
func TestTemplatesUseNoClusterOrChance(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	must(t, err)
	more, err := filepath.Glob(filepath.Join(chartDir, "templates", "*", "*"))
	must(t, err)
	for _, f := range append(files, more...) {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		b, err := os.ReadFile(f)
		must(t, err)
		text := templateComment.ReplaceAllString(string(b), "")
		for _, action := range regexp.MustCompile(`(?s)\{\{.*?\}\}`).FindAllString(text, -1) {
			if m := nonDeterministic.FindString(action); m != "" {
				t.Errorf("%s calls %s: %s", filepath.Base(f), m, action)
			}
		}
	}
}

// TestKeysGenerator: the generated key comes from a pre-install/pre-upgrade
// hook Job that runs `tokengate keys ensure-secret` for the very Secret the
// pods mount, with an identity that can create Secrets and read only that
// one (and the older chart's, to keep its key), for the time of the hook.
func TestKeysGenerator(t *testing.T) {
	c := caseNamed(t, "default")
	ms := render(t, c)
	secret := c.fullname + "-signing-key"
	name := c.fullname + "-keys-generator"

	var job batchv1.Job
	decodeInto(t, find(t, ms, "Job", name), &job)
	var sa corev1.ServiceAccount
	decodeInto(t, find(t, ms, "ServiceAccount", name), &sa)
	var role rbacv1.Role
	decodeInto(t, find(t, ms, "Role", name), &role)
	var binding rbacv1.RoleBinding
	decodeInto(t, find(t, ms, "RoleBinding", name), &binding)

	for kind, ann := range map[string]map[string]string{"Job": job.Annotations, "ServiceAccount": sa.Annotations, "Role": role.Annotations, "RoleBinding": binding.Annotations} {
		if ann["helm.sh/hook"] != "pre-install,pre-upgrade" || !strings.Contains(ann["helm.sh/hook-delete-policy"], "hook-succeeded") {
			t.Errorf("%s is not a pre-install/pre-upgrade hook deleted once it succeeded: %v", kind, ann)
		}
	}
	if job.Annotations["helm.sh/hook-weight"] <= role.Annotations["helm.sh/hook-weight"] && job.Annotations["helm.sh/hook-weight"] != "0" {
		t.Errorf("the Job (weight %s) may run before its Role (weight %s)", job.Annotations["helm.sh/hook-weight"], role.Annotations["helm.sh/hook-weight"])
	}

	pod := job.Spec.Template.Spec
	if pod.ServiceAccountName != name || pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Errorf("the Job runs as %q with token %v, want %s with its token", pod.ServiceAccountName, pod.AutomountServiceAccountToken, name)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever || len(pod.Containers) != 1 {
		t.Fatalf("job pod: restart %s, %d containers", pod.RestartPolicy, len(pod.Containers))
	}
	ct := pod.Containers[0]
	args := strings.Join(ct.Args, " ")
	for _, want := range []string{"keys ensure-secret", "--name=" + secret, "--namespace=" + namespace, "--alg=ES256", "--key=signing.pem",
		"--copy-from=" + c.fullname + "-signing-keys"} {
		if !strings.Contains(args, want) {
			t.Errorf("the Job runs %q, without %q", args, want)
		}
	}
	var d appsv1.Deployment
	decodeInto(t, find(t, ms, "Deployment", c.fullname), &d)
	if ct.Image != d.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("the Job runs %s, not the tokengate image %s", ct.Image, d.Spec.Template.Spec.Containers[0].Image)
	}
	if sc := ct.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("the Job's container is not hardened: %+v", sc)
	}
	if !slices.Contains(projectedSecrets(d), secret) {
		t.Errorf("the pods mount %v, not the generated Secret %s", projectedSecrets(d), secret)
	}

	// RBAC: create Secrets (create cannot be limited by name), read only the two.
	for _, r := range role.Rules {
		if !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.Resources, []string{"secrets"}) {
			t.Errorf("rule %+v reaches beyond core Secrets", r)
		}
		switch {
		case slices.Equal(r.Verbs, []string{"create"}) && len(r.ResourceNames) == 0:
		case slices.Equal(r.Verbs, []string{"get"}) && slices.Equal(r.ResourceNames, []string{secret, c.fullname + "-signing-keys"}):
		default:
			t.Errorf("rule %+v: want create, or get on %s only", r, secret)
		}
	}
	if len(role.Rules) != 2 {
		t.Errorf("%d rules", len(role.Rules))
	}
	if binding.RoleRef.Name != name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != name || binding.Subjects[0].Namespace != namespace {
		t.Errorf("binding %+v does not tie the Role to the Job's service account only", binding)
	}

	// Neither the Service nor the NetworkPolicy selects the Job's pod.
	var svc corev1.Service
	decodeInto(t, find(t, ms, "Service", c.fullname), &svc)
	if selects(svc.Spec.Selector, job.Spec.Template.Labels) {
		t.Error("the Service selects the key generator's pod")
	}
	// The gateway itself keeps no API access.
	if d.Spec.Template.Spec.AutomountServiceAccountToken == nil || *d.Spec.Template.Spec.AutomountServiceAccountToken {
		t.Error("the gateway's pods mount a service account token")
	}
}

// TestKeySources: each way of bringing the signing key mounts signing.pem
// (or the listed keys) and renders no key material and no hook it does not need.
func TestKeySources(t *testing.T) {
	t.Run("cert-manager", func(t *testing.T) {
		c := caseNamed(t, "cert-manager")
		ms := render(t, c)
		var cert certificate
		decodeInto(t, find(t, ms, "Certificate", c.fullname+"-signing-key"), &cert)
		pk := cert.Spec.PrivateKey
		if pk == nil || pk.Algorithm != "ECDSA" || pk.Size != 256 || pk.Encoding != "PKCS8" || pk.RotationPolicy != "Never" {
			t.Errorf("privateKey = %+v, want ECDSA 256 PKCS8 with rotationPolicy Never", pk)
		}
		if cert.Spec.SecretName != c.fullname+"-signing-cert" || cert.Spec.CommonName == "" || cert.Spec.Duration != "8760h" {
			t.Errorf("spec = %+v", cert.Spec)
		}
		var iss issuer
		decodeInto(t, find(t, ms, "Issuer", c.fullname+"-signing-key-issuer"), &iss)
		if iss.Spec.SelfSigned == nil || cert.Spec.IssuerRef.Name != iss.Name || cert.Spec.IssuerRef.Kind != "Issuer" || cert.Spec.IssuerRef.Group != "cert-manager.io" {
			t.Errorf("issuerRef %+v does not name the self-signed Issuer %s", cert.Spec.IssuerRef, iss.Name)
		}
		var d appsv1.Deployment
		decodeInto(t, find(t, ms, "Deployment", c.fullname), &d)
		var found bool
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name == cert.Spec.SecretName {
					found = len(src.Secret.Items) == 1 && src.Secret.Items[0].Key == "tls.key" && src.Secret.Items[0].Path == "signing.pem"
				}
			}
		}
		if !found {
			t.Error("cert-manager's tls.key is not mounted as signing.pem")
		}

		// A cluster issuer of the user's: no Issuer of the chart's.
		out, err := helmRun(t, c.templateArgs("--set", "signingKeys.certManager.issuerRef.name=vault", "--set", "signingKeys.certManager.issuerRef.kind=ClusterIssuer")...)
		if err != nil {
			t.Fatal(err)
		}
		ms = splitManifests(t, out)
		decodeInto(t, find(t, ms, "Certificate", c.fullname+"-signing-key"), &cert)
		if cert.Spec.IssuerRef.Name != "vault" || cert.Spec.IssuerRef.Kind != "ClusterIssuer" {
			t.Errorf("issuerRef = %+v", cert.Spec.IssuerRef)
		}
		for _, m := range ms {
			if m.Kind == "Issuer" {
				t.Error("an Issuer is rendered although issuerRef names one")
			}
		}
	})
	t.Run("generate and cert-manager together", func(t *testing.T) {
		_, err := helmRun(t, caseNamed(t, "default").templateArgs("--set", "signingKeys.certManager.enabled=true")...)
		if err == nil || !strings.Contains(err.Error(), "pick one source for signing.pem") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("gitops: existing Secrets only", func(t *testing.T) {
		c := caseNamed(t, "gitops")
		ms := render(t, c)
		for _, m := range ms {
			if m.Kind == "Secret" || m.Kind == "Job" || m.Kind == "Certificate" {
				t.Errorf("the GitOps install renders %s %s", m.Kind, m.Metadata.Name)
			}
		}
		var d appsv1.Deployment
		decodeInto(t, find(t, ms, "Deployment", c.fullname), &d)
		if got := projectedSecrets(d); !slices.Equal(got, []string{"tokengate-signing-keys"}) {
			t.Errorf("signing keys from %v, want the existing Secret only", got)
		}
	})
}

// projectedSecrets are the Secrets of the signing-keys volume.
func projectedSecrets(d appsv1.Deployment) []string {
	var names []string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "signing-keys" && v.Projected != nil {
			for _, s := range v.Projected.Sources {
				names = append(names, s.Secret.Name)
			}
		}
	}
	return names
}

// TestConfigCheckInitContainer: before tokengate serves, an init container
// runs `tokengate check` on the same file, with the same environment and
// mounts, so a bad configuration, key or unset ${VAR} stops the pod (and the
// rollout) instead of reaching traffic.
func TestConfigCheckInitContainer(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d appsv1.Deployment
			decodeInto(t, find(t, render(t, c), "Deployment", c.fullname), &d)
			pod := d.Spec.Template.Spec
			if len(pod.InitContainers) != 1 {
				t.Fatalf("%d init containers, want check", len(pod.InitContainers))
			}
			check, main := pod.InitContainers[0], pod.Containers[0]
			if want := append([]string{"check"}, main.Args[1:]...); !slices.Equal(check.Args, want) {
				t.Errorf("init container runs %q, want %q", check.Args, want)
			}
			if check.Image != main.Image {
				t.Errorf("check image %s, tokengate image %s", check.Image, main.Image)
			}
			if !equalYAML(t, check.Env, main.Env) || !equalYAML(t, check.EnvFrom, main.EnvFrom) || !equalYAML(t, check.VolumeMounts, main.VolumeMounts) {
				t.Error("the check sees another environment or other files than tokengate")
			}
			if !equalYAML(t, check.SecurityContext, main.SecurityContext) {
				t.Error("the check runs with another security context")
			}
		})
	}
	var d appsv1.Deployment
	out, err := helmRun(t, cases[0].templateArgs("--set", "configCheck.enabled=false")...)
	must(t, err)
	decodeInto(t, find(t, splitManifests(t, out), "Deployment", cases[0].fullname), &d)
	if len(d.Spec.Template.Spec.InitContainers) != 0 {
		t.Error("configCheck.enabled=false still renders the check")
	}
}

// TestNetworkPolicyAdmitsTheGatewaysEgress: with egress restricted, every
// destination of the rendered configuration (the issuers' JWKS and
// discovery, the STS, Redis, the upstreams) is admitted on its port, by an
// ipBlock for a host outside the cluster and by a pod or namespace selector
// for a Service inside it; and DNS is allowed.
func TestNetworkPolicyAdmitsTheGatewaysEgress(t *testing.T) {
	for _, name := range []string{"all-features", "gitops"} {
		t.Run(name, func(t *testing.T) {
			c := caseNamed(t, name)
			ms := render(t, c)
			var np networkingv1.NetworkPolicy
			decodeInto(t, find(t, ms, "NetworkPolicy", c.fullname), &np)
			if !admits(np, 53, corev1.ProtocolUDP, anyPeer) || !admits(np, 53, corev1.ProtocolTCP, anyPeer) {
				t.Error("DNS is not admitted")
			}
			var d appsv1.Deployment
			decodeInto(t, find(t, ms, "Deployment", c.fullname), &d)
			dests := configDestinations(t, ms, c, d)
			if len(dests) < 3 {
				t.Fatalf("only %d destinations found in the configuration: %v", len(dests), dests)
			}
			for _, dst := range dests {
				if !admits(np, dst.port, corev1.ProtocolTCP, dst.peer) {
					t.Errorf("egress to %s (%s, port %d) is not admitted", dst.host, dst.what, dst.port)
				}
			}
		})
	}
}

// Kinds of peer a destination needs.
const (
	anyPeer      = "any"
	clusterPeer  = "a pod or namespace selector"
	externalPeer = "an ipBlock"
)

// admits reports whether an egress rule of np lets the pods reach port over
// proto at a peer of the right kind.
func admits(np networkingv1.NetworkPolicy, port int, proto corev1.Protocol, kind string) bool {
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		return true
	}
	for _, rule := range np.Spec.Egress {
		portOK := len(rule.Ports) == 0
		for _, p := range rule.Ports {
			pp := corev1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			if pp == proto && (p.Port == nil || p.Port.IntValue() == port || (p.EndPort != nil && p.Port.IntValue() <= port && port <= int(*p.EndPort))) {
				portOK = true
			}
		}
		peerOK := len(rule.To) == 0
		for _, peer := range rule.To {
			selector := peer.PodSelector != nil || peer.NamespaceSelector != nil
			if kind == anyPeer || kind == clusterPeer && selector || kind == externalPeer && peer.IPBlock != nil {
				peerOK = true
			}
		}
		if portOK && peerOK {
			return true
		}
	}
	return false
}

// destination is a host the gateway connects to, from its configuration.
type destination struct {
	what, host string
	port       int
	peer       string // clusterPeer or externalPeer
}

// configDestinations reads the rendered configuration (with ${VAR} taken
// from the container's env) and lists every host the gateway calls.
func configDestinations(t *testing.T, ms []manifest, c valuesCase, d appsv1.Deployment) []destination {
	t.Helper()
	var cm corev1.ConfigMap
	decodeInto(t, find(t, ms, "ConfigMap", c.fullname), &cm)
	text := cm.Data["tokengate.yaml"]
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		text = strings.ReplaceAll(text, "${"+e.Name+"}", e.Value)
	}
	var cfg struct {
		Issuers []struct {
			Issuer                string `json:"issuer"`
			JWKSURI               string `json:"jwks_uri"`
			Discovery             bool   `json:"discovery"`
			IntrospectionEndpoint string `json:"introspection_endpoint"`
		} `json:"issuers"`
		Exchange struct {
			Remote struct {
				TokenEndpoint string `json:"token_endpoint"`
				Issuer        string `json:"issuer"`
			} `json:"remote"`
		} `json:"exchange"`
		Cache struct {
			Redis *struct {
				Addrs []string `json:"addrs"`
			} `json:"redis"`
		} `json:"cache"`
		Routes []struct {
			Upstream string `json:"upstream"`
		} `json:"routes"`
		Tracing struct {
			OTLPEndpoint string `json:"otlp_endpoint"`
		} `json:"tracing"`
	}
	must(t, yaml.Unmarshal([]byte(text), &cfg))
	var out []destination
	addURL := func(what, raw string) {
		if raw == "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			t.Errorf("%s %q is not a URL", what, raw)
			return
		}
		port := map[string]int{"http": 80, "https": 443, "h2c": 80}[u.Scheme]
		if p := u.Port(); p != "" {
			port, _ = strconv.Atoi(p)
		}
		out = append(out, destination{what, u.Hostname(), port, peerKind(u.Hostname())})
	}
	for _, is := range cfg.Issuers {
		addURL("JWKS", is.JWKSURI)
		if is.Discovery {
			addURL("discovery", is.Issuer)
		}
		addURL("introspection", is.IntrospectionEndpoint)
	}
	addURL("STS", cfg.Exchange.Remote.TokenEndpoint)
	addURL("STS discovery", cfg.Exchange.Remote.Issuer)
	addURL("OTLP", cfg.Tracing.OTLPEndpoint)
	for _, r := range cfg.Routes {
		addURL("upstream", r.Upstream)
	}
	if cfg.Cache.Redis != nil {
		for _, a := range cfg.Cache.Redis.Addrs {
			host, p, err := net.SplitHostPort(a)
			must(t, err)
			port, _ := strconv.Atoi(p)
			out = append(out, destination{"Redis", host, port, peerKind(host)})
		}
	}
	return out
}

// peerKind: a cluster Service name needs a selector (an ipBlock does not
// reliably match pod IPs); anything else an ipBlock.
func peerKind(host string) string {
	if !strings.Contains(host, ".") || strings.HasSuffix(host, ".svc") || strings.Contains(host, ".svc.") {
		return clusterPeer
	}
	return externalPeer
}
