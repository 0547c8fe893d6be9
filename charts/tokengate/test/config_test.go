package charttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// varRef is a ${NAME} reference in the configuration.
var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// TestRenderedConfigPassesCheck lays out the pod's filesystem and environment
// as Kubernetes would from the rendered manifests (ConfigMap and Secrets at
// their mount paths, env and envFrom), then runs `tokengate check` on the
// rendered configuration file. What comes from resources the chart does not
// render (an existingSecret) gets a stand-in: a fresh key for a signing key
// file, "dummy" for a variable.
func TestRenderedConfigPassesCheck(t *testing.T) {
	tokengate := tool(t, "TOKENGATE", "tokengate")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms := render(t, c)
			var d appsv1.Deployment
			decodeInto(t, find(t, ms, "Deployment", c.fullname), &d)
			ct := d.Spec.Template.Spec.Containers[0]
			configMaps, secrets := map[string]map[string]string{}, map[string]map[string]string{}
			for _, m := range ms {
				switch m.Kind {
				case "ConfigMap":
					var cm corev1.ConfigMap
					decodeInto(t, m, &cm)
					configMaps[cm.Name] = cm.Data
				case "Secret":
					var s corev1.Secret
					decodeInto(t, m, &s)
					data := map[string]string{}
					for k, v := range s.Data {
						data[k] = string(v)
					}
					secrets[s.Name] = data
				}
			}

			// The filesystem: every mount under root.
			root := t.TempDir()
			volumes := map[string]corev1.Volume{}
			for _, v := range d.Spec.Template.Spec.Volumes {
				volumes[v.Name] = v
			}
			for _, vm := range ct.VolumeMounts {
				dir := filepath.Join(root, vm.MountPath)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				v := volumes[vm.Name]
				var files []map[string]string
				switch {
				case v.ConfigMap != nil:
					files = append(files, configMaps[v.ConfigMap.Name])
				case v.Projected != nil:
					for _, src := range v.Projected.Sources {
						files = append(files, secrets[src.Secret.Name]) // nil for an existing Secret
					}
				}
				for _, set := range files {
					for name, content := range set {
						if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
			}

			// The configuration file named in the container's arguments.
			args := ct.Args
			if len(args) != 3 || args[0] != "serve" || args[1] != "--config" {
				t.Fatalf("container args = %q, want serve --config FILE", args)
			}
			cfgPath := filepath.Join(root, args[2])
			text, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatalf("the configuration file %s is not in a mounted ConfigMap: %v", args[2], err)
			}
			// Absolute paths in the file point into the pod: re-root them.
			rerooted := string(text)
			for _, vm := range ct.VolumeMounts {
				rerooted = strings.ReplaceAll(rerooted, vm.MountPath+"/", filepath.Join(root, vm.MountPath)+"/")
			}
			if err := os.WriteFile(cfgPath, []byte(rerooted), 0o600); err != nil {
				t.Fatal(err)
			}

			var cfg struct {
				Server struct {
					Listen      string `json:"listen"`
					AdminListen string `json:"admin_listen"`
				} `json:"server"`
				Exchange struct {
					Local struct {
						SigningKeys []struct{ File, Alg string } `json:"signing_keys"`
					} `json:"local"`
				} `json:"exchange"`
			}
			if err := yaml.Unmarshal([]byte(rerooted), &cfg); err != nil {
				t.Fatal(err)
			}
			ports := map[string]int32{}
			for _, p := range ct.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if cfg.Server.Listen != fmt.Sprintf(":%d", ports["edge"]) || cfg.Server.AdminListen != fmt.Sprintf(":%d", ports["admin"]) {
				t.Errorf("listen %q / admin_listen %q do not match the container ports %v", cfg.Server.Listen, cfg.Server.AdminListen, ports)
			}
			for _, k := range cfg.Exchange.Local.SigningKeys {
				if !strings.HasPrefix(k.File, root) {
					t.Errorf("signing key %s is not under a mounted folder", k.File)
				}
				if _, err := os.Stat(k.File); err == nil {
					continue
				}
				// From an existing Secret: stand in a fresh key.
				if out, err := exec.Command(tokengate, "keys", "generate", "--alg", k.Alg, "--out", k.File).CombinedOutput(); err != nil {
					t.Fatalf("keys generate: %v\n%s", err, out)
				}
			}

			// The environment.
			env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
			have := map[string]bool{}
			for _, e := range ct.Env {
				env = append(env, e.Name+"="+e.Value)
				have[e.Name] = true
			}
			for _, from := range ct.EnvFrom {
				if from.SecretRef != nil {
					for k, v := range secrets[from.SecretRef.Name] {
						env = append(env, k+"="+v)
						have[k] = true
					}
				}
			}
			for _, m := range varRef.FindAllStringSubmatch(rerooted, -1) {
				if !have[m[1]] {
					// From an existing Secret or ConfigMap: base64 of 32 bytes
					// passes as a password and as a cache encryption key alike.
					env = append(env, m[1]+"=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
					have[m[1]] = true
				}
			}

			cmd := exec.Command(tokengate, "check", "--config", cfgPath)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "OK") {
				t.Errorf("tokengate check failed: %v\n%s\nconfiguration:\n%s", err, out, rerooted)
			}
		})
	}
}
