package charttest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestAuthzListeners: authz.http / authz.grpc become config.authz.listen /
// grpc_listen, container ports and the <fullname>-authz Service; config's
// cors passes through.
func TestAuthzListeners(t *testing.T) {
	c := cases[1]
	ms := render(t, c)
	var cm corev1.ConfigMap
	decodeInto(t, find(t, ms, "ConfigMap", c.fullname), &cm)
	var cfg struct {
		Authz map[string]string `json:"authz"`
		CORS  map[string]any    `json:"cors"`
	}
	for _, text := range cm.Data {
		if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Authz["listen"] != ":8081" || cfg.Authz["grpc_listen"] != ":8082" {
		t.Errorf("config.authz = %v", cfg.Authz)
	}
	if cfg.CORS == nil {
		t.Error("config.cors did not pass through")
	}
	var d appsv1.Deployment
	decodeInto(t, find(t, ms, "Deployment", c.fullname), &d)
	ports := map[string]int32{}
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["authz-http"] != 8081 || ports["authz-grpc"] != 8082 {
		t.Errorf("container ports = %v", ports)
	}
	var svc corev1.Service
	decodeInto(t, find(t, ms, "Service", c.fullname+"-authz"), &svc)
	if servicePort(svc, "authz-http") != 8081 || servicePort(svc, "authz-grpc") != 9002 {
		t.Errorf("authz service ports = %+v", svc.Spec.Ports)
	}
	// The edge Service does not expose the decision listeners.
	var edge corev1.Service
	decodeInto(t, find(t, ms, "Service", c.fullname), &edge)
	for _, p := range edge.Spec.Ports {
		if strings.HasPrefix(p.Name, "authz") {
			t.Errorf("the edge Service exposes %s", p.Name)
		}
	}
	// Set directly, the listeners are refused: the chart owns them.
	if _, err := helmRun(t, append(c.templateArgs(), "--set", "config.authz.listen=:9999")...); err == nil ||
		!strings.Contains(err.Error(), "config.authz.listen") {
		t.Errorf("config.authz.listen set directly: %v", err)
	}
}
