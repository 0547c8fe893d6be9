package charttest

import (
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// newObject returns an empty object of the API type of apiVersion/kind, or
// nil for a kind the chart must not render.
func newObject(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1/Pod":
		return &corev1.Pod{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "batch/v1/Job":
		return &batchv1.Job{}
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}
	case "cert-manager.io/v1/Certificate":
		return &certificate{}
	case "cert-manager.io/v1/Issuer":
		return &issuer{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &serviceMonitor{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &prometheusRule{}
	}
	return nil
}

// TestManifestsDecodeStrictly: every rendered manifest is a known kind and
// decodes into its API type with no unknown field.
func TestManifestsDecodeStrictly(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, m := range render(t, c) {
				obj := newObject(m.APIVersion, m.Kind)
				if obj == nil {
					t.Errorf("unexpected kind %s %s", m.APIVersion, m.Kind)
					continue
				}
				decodeInto(t, m, obj)
				if m.Metadata.Namespace == "" {
					t.Errorf("%s %s has no namespace", m.Kind, m.Metadata.Name)
				}
			}
		})
	}
}

// TestStrictDecodingCatchesMisspelledFields guards the guard.
func TestStrictDecodingCatchesMisspelledFields(t *testing.T) {
	m := manifest{raw: []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n")}
	if err := strictErr(m, &appsv1.Deployment{}); err == nil {
		t.Error("spec.replica (for replicas) decoded without error")
	}
}

// TestFeatureSets: optional resources appear exactly when asked for.
func TestFeatureSets(t *testing.T) {
	kindsOf := func(ms []manifest) []string {
		var ks []string
		for _, m := range ms {
			ks = append(ks, fmt.Sprintf("%s/%s", m.Kind, m.Metadata.Name))
		}
		slices.Sort(ks)
		return ks
	}
	tests := []struct {
		c    valuesCase
		want []string
	}{
		// The generated key is no rendered Secret (it would change at every
		// render): the keys-generator hook creates it once.
		{cases[0], []string{
			"ConfigMap/tg-tokengate", "Deployment/tg-tokengate", "Job/tg-tokengate-keys-generator", "Pod/tg-tokengate-test-readyz",
			"PodDisruptionBudget/tg-tokengate", "Role/tg-tokengate-keys-generator", "RoleBinding/tg-tokengate-keys-generator",
			"Service/tg-tokengate", "ServiceAccount/tg-tokengate", "ServiceAccount/tg-tokengate-keys-generator",
		}},
		{cases[1], []string{
			"ConfigMap/gateway", "ConfigMap/gateway-dashboard", "Deployment/gateway", "HorizontalPodAutoscaler/gateway",
			"Ingress/gateway", "Job/gateway-keys-generator", "NetworkPolicy/gateway", "Pod/gateway-test-readyz", "PodDisruptionBudget/gateway",
			"PrometheusRule/gateway", "Role/gateway-keys-generator", "RoleBinding/gateway-keys-generator", "Secret/gateway-env", "Secret/gateway-files",
			"Service/gateway", "Service/gateway-authz", "ServiceAccount/gateway-keys-generator", "ServiceAccount/tokengate-sa", "ServiceMonitor/gateway",
		}},
		{cases[2], []string{"ConfigMap/tg-tokengate", "Deployment/tg-tokengate", "Pod/tg-tokengate-test-readyz", "Service/tg-tokengate"}},
		{cases[3], []string{
			"ConfigMap/edge-gateway", "ConfigMap/edge-gateway-dashboard", "Deployment/edge-gateway", "NetworkPolicy/edge-gateway",
			"Pod/edge-gateway-test-readyz", "PodDisruptionBudget/edge-gateway", "PrometheusRule/edge-gateway",
			"Service/edge-gateway", "ServiceAccount/edge-gateway", "ServiceMonitor/edge-gateway",
		}},
		{cases[4], []string{
			"Certificate/tg-tokengate-signing-key", "ConfigMap/tg-tokengate", "Deployment/tg-tokengate",
			"Issuer/tg-tokengate-signing-key-issuer", "Pod/tg-tokengate-test-readyz", "PodDisruptionBudget/tg-tokengate",
			"Service/tg-tokengate", "ServiceAccount/tg-tokengate",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.c.name, func(t *testing.T) {
			if got := kindsOf(render(t, tc.c)); !slices.Equal(got, tc.want) {
				t.Errorf("rendered %q\nwant     %q", got, tc.want)
			}
		})
	}
}

// TestDeploymentHardening: probes on the admin port, the hardened security
// context, checksums, named ports, and mounts the kubelet can update.
func TestDeploymentHardening(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms := render(t, c)
			var d appsv1.Deployment
			decodeInto(t, find(t, ms, "Deployment", c.fullname), &d)
			pod := d.Spec.Template.Spec
			if len(pod.Containers) != 1 || len(pod.InitContainers) != 1 {
				t.Fatalf("%d containers and %d init containers, want tokengate and check", len(pod.Containers), len(pod.InitContainers))
			}
			ct := pod.Containers[0]

			psc := pod.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil ||
				psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext not hardened: %+v", psc)
			}
			sc := ct.SecurityContext
			switch {
			case sc == nil:
				t.Fatal("no container securityContext")
			case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
				t.Error("runAsNonRoot is not true")
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Error("readOnlyRootFilesystem is not true")
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Error("allowPrivilegeEscalation is not false")
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("capabilities = %+v, want drop [ALL]", sc.Capabilities)
			case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
				t.Error("seccomp is not RuntimeDefault")
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("the service account token is mounted; tokengate needs no API access")
			}

			ports := map[string]int32{}
			for _, p := range ct.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if ports["edge"] == 0 || ports["admin"] == 0 {
				t.Errorf("container ports %v, want named edge and admin", ports)
			}
			for name, probe := range map[string]*corev1.Probe{"liveness": ct.LivenessProbe, "readiness": ct.ReadinessProbe} {
				want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
				if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "admin" {
					t.Errorf("%s probe = %+v, want GET %s on port admin", name, probe, want)
				}
			}
			if d.Spec.Template.Annotations["checksum/secret"] == "" {
				t.Error("no checksum/secret annotation")
			}
			if _, ok := d.Spec.Template.Annotations["checksum/config"]; ok == (c.name == "all-features") {
				t.Errorf("checksum/config present = %v with rollOnConfigChange %v", ok, c.name != "all-features")
			}
			for _, vm := range ct.VolumeMounts {
				if vm.SubPath != "" {
					t.Errorf("volume %s is mounted with subPath: the kubelet would never update it", vm.Name)
				}
			}

			var svc corev1.Service
			decodeInto(t, find(t, ms, "Service", c.fullname), &svc)
			for _, p := range svc.Spec.Ports {
				if p.TargetPort.String() != p.Name || (p.Name != "edge" && p.Name != "admin") {
					t.Errorf("service port %+v: want named edge/admin ports targeting the same names", p)
				}
			}
			if len(svc.Spec.Ports) != 2 {
				t.Errorf("service has %d ports, want edge and admin", len(svc.Spec.Ports))
			}
			// The Service must never select the helm test pod.
			var testPod corev1.Pod
			decodeInto(t, find(t, ms, "Pod", c.fullname+"-test-readyz"), &testPod)
			if selects(svc.Spec.Selector, testPod.Labels) {
				t.Error("the Service selects the helm test pod")
			}
			if !selects(svc.Spec.Selector, d.Spec.Template.Labels) || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				t.Error("the Service or the Deployment does not select the pods")
			}
			if got := testPod.Spec.Containers[0].Command; !slices.ContainsFunc(got, func(s string) bool {
				return s == fmt.Sprintf("http://%s:%d/readyz", c.fullname, servicePort(svc, "admin"))
			}) {
				t.Errorf("the helm test pod runs %q, want a call to /readyz on the admin Service port", got)
			}
		})
	}
}

func servicePort(svc corev1.Service, name string) int32 {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return p.Port
		}
	}
	return 0
}

// selects reports whether every selector label is in labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestAllFeatures checks the optional resources' wiring.
func TestAllFeatures(t *testing.T) {
	c := cases[1]
	ms := render(t, c)

	var d appsv1.Deployment
	decodeInto(t, find(t, ms, "Deployment", c.fullname), &d)
	if d.Spec.Replicas != nil {
		t.Error("replicas is set although the HPA owns the count")
	}
	pod := d.Spec.Template.Spec
	if a := pod.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("podAntiAffinityPreset hard not rendered: %+v", a)
	}
	if tsc := pod.TopologySpreadConstraints; len(tsc) != 1 || tsc[0].LabelSelector == nil || !selects(tsc[0].LabelSelector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("topology spread constraint lacks the pods' label selector: %+v", tsc)
	}
	envFrom := map[string]bool{}
	for _, e := range pod.Containers[0].EnvFrom {
		if e.SecretRef != nil {
			envFrom[e.SecretRef.Name] = true
		}
	}
	if !envFrom["gateway-env"] || !envFrom["tokengate-extra-env"] {
		t.Errorf("envFrom secrets = %v, want the chart's and the existing one", envFrom)
	}
	projected := map[string][]string{}
	for _, v := range pod.Volumes {
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				projected[v.Name] = append(projected[v.Name], s.Secret.Name)
			}
			if m := v.Projected.DefaultMode; m == nil || *m != 0o440 {
				t.Errorf("volume %s mode %v, want 0440", v.Name, m)
			}
		}
	}
	if !slices.Equal(projected["signing-keys"], []string{"gateway-signing-key", "tokengate-previous-keys"}) ||
		!slices.Equal(projected["secret-files"], []string{"gateway-files", "tokengate-tls"}) {
		t.Errorf("projected volumes = %v", projected)
	}

	var hpa autoscalingv2.HorizontalPodAutoscaler
	decodeInto(t, find(t, ms, "HorizontalPodAutoscaler", c.fullname), &hpa)
	if hpa.Spec.ScaleTargetRef.Name != c.fullname || hpa.Spec.MaxReplicas != 12 || len(hpa.Spec.Metrics) != 2 {
		t.Errorf("hpa = %+v", hpa.Spec)
	}

	var pdb policyv1.PodDisruptionBudget
	decodeInto(t, find(t, ms, "PodDisruptionBudget", c.fullname), &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("pdb = %+v", pdb.Spec)
	}

	var ing networkingv1.Ingress
	decodeInto(t, find(t, ms, "Ingress", c.fullname), &ing)
	for _, r := range ing.Spec.Rules {
		for _, p := range r.HTTP.Paths {
			if p.Backend.Service == nil || p.Backend.Service.Name != c.fullname || p.Backend.Service.Port.Name != "edge" {
				t.Errorf("ingress path %s does not go to the edge port: %+v", p.Path, p.Backend)
			}
		}
	}

	var np networkingv1.NetworkPolicy
	decodeInto(t, find(t, ms, "NetworkPolicy", c.fullname), &np)
	checkNetworkPolicy(t, np, d)

	var sm serviceMonitor
	decodeInto(t, find(t, ms, "ServiceMonitor", c.fullname), &sm)
	var svc corev1.Service
	decodeInto(t, find(t, ms, "Service", c.fullname), &svc)
	if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) || len(sm.Spec.Endpoints) != 1 ||
		sm.Spec.Endpoints[0].Port != "admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("servicemonitor = %+v", sm.Spec)
	}
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Error("serviceMonitor.labels not applied")
	}
}

// checkNetworkPolicy: the edge port is open to the configured peers; the
// admin port only to monitoring, the test pod and the extra peers.
func checkNetworkPolicy(t *testing.T, np networkingv1.NetworkPolicy, d appsv1.Deployment) {
	t.Helper()
	if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
		t.Error("the network policy does not select the pods")
	}
	byPort := map[string][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) != 1 {
			t.Fatalf("ingress rule with %d ports", len(rule.Ports))
		}
		byPort[rule.Ports[0].Port.String()] = rule.From
	}
	if edge := byPort["edge"]; len(edge) != 1 || edge[0].NamespaceSelector == nil {
		t.Errorf("edge peers = %+v, want the ingress-nginx namespace", edge)
	}
	for _, port := range []string{"authz-http", "authz-grpc"} {
		peers := byPort[port]
		if len(peers) != 1 || peers[0].NamespaceSelector == nil ||
			peers[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "ingress-nginx" {
			t.Errorf("%s peers = %+v, want only the ingress's namespace", port, peers)
		}
	}
	admin := byPort["admin"]
	if len(admin) != 3 {
		t.Fatalf("admin peers = %+v, want monitoring, the test pod and one extra", admin)
	}
	mon := admin[0]
	if mon.NamespaceSelector == nil || mon.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" ||
		mon.PodSelector == nil || mon.PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
		t.Errorf("admin is not limited to the monitoring namespace's Prometheus: %+v", mon)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || len(np.Spec.Egress) < 2 {
		t.Errorf("egress = %+v, want DNS plus the configured rules", np.Spec.Egress)
	}
}

// serviceMonitor mirrors the monitoring.coreos.com/v1 ServiceMonitor fields
// the chart renders, so strict decoding catches a misspelled one.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port              string          `json:"port"`
			Path              string          `json:"path"`
			Scheme            string          `json:"scheme"`
			Interval          string          `json:"interval"`
			ScrapeTimeout     string          `json:"scrapeTimeout"`
			Relabelings       []relabelConfig `json:"relabelings,omitempty"`
			MetricRelabelings []relabelConfig `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type relabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    string   `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  string   `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// prometheusRule mirrors the monitoring.coreos.com/v1 PrometheusRule fields.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Alert         string            `json:"alert,omitempty"`
				Record        string            `json:"record,omitempty"`
				Expr          string            `json:"expr"`
				For           string            `json:"for,omitempty"`
				KeepFiringFor string            `json:"keep_firing_for,omitempty"`
				Labels        map[string]string `json:"labels,omitempty"`
				Annotations   map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// certificate mirrors the cert-manager.io/v1 Certificate fields the chart
// renders (cert-manager's API types, not imported: its module is large).
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName     string `json:"secretName"`
		SecretTemplate *struct {
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"secretTemplate,omitempty"`
		CommonName string   `json:"commonName,omitempty"`
		DNSNames   []string `json:"dnsNames,omitempty"`
		Duration   string   `json:"duration,omitempty"`
		Usages     []string `json:"usages,omitempty"`
		PrivateKey *struct {
			Algorithm      string `json:"algorithm,omitempty"`
			Size           int    `json:"size,omitempty"`
			Encoding       string `json:"encoding,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind,omitempty"`
			Group string `json:"group,omitempty"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// issuer mirrors a cert-manager.io/v1 self-signed Issuer.
type issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SelfSigned *struct{} `json:"selfSigned,omitempty"`
	} `json:"spec"`
}
