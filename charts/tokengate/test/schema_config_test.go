package charttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestSchemaValidatesConfig: values.schema.json (generated from package
// config) refuses what the strict decoder refuses, before anything renders.
func TestSchemaValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want string // in helm's error
	}{
		{"unknown server key", []string{"config.server.listenn=:1"}, "additional properties 'listenn' not allowed"},
		{"unknown route key", []string{"config.routes[0].upstreams=http://x"}, "additional properties 'upstreams' not allowed"},
		{"unknown redis key", []string{"config.cache.redis.adress=x"}, "additional properties 'adress' not allowed"},
		{"duration without unit", []string{"config.exchange.token_ttl=300"}, "/config/exchange/token_ttl"},
		{"duration as words", []string{"config.issuers[0].leeway=soon"}, "/config/issuers/0/leeway"},
		{"integer as words", []string{"config.cache.max_entries=many"}, "/config/cache/max_entries"},
		{"boolean as words", []string{"config.log.subjects=maybe"}, "/config/log/subjects"},
		{"list for a mapping", []string{"config.server.tls[0]=x"}, "/config/server/tls"},
		{"mapping for a list", []string{"config.routes[0].scopes.a=b"}, "/config/routes/0/scopes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			_, err := helmRun(t, cases[0].templateArgs(args...)...)
			if err == nil {
				t.Fatalf("--set %v was accepted", tc.set)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "schema") {
				t.Errorf("--set %v failed without a schema error naming %q:\n%v", tc.set, tc.want, err)
			}
		})
	}
}

// TestSchemaIsNoStricterThanTheDecoder: forms tokengate takes pass the
// schema: ${VAR} where a number, a boolean or a duration goes (expanded
// before decoding), 0 for a duration, a number for a string, null for an
// absent key, and every example configuration of the repository.
func TestSchemaIsNoStricterThanTheDecoder(t *testing.T) {
	t.Run("scalar forms", func(t *testing.T) {
		sets := []string{
			"config.cache.max_entries=${MAX_ENTRIES}", "config.log.subjects=${LOG_SUBJECTS}",
			"config.exchange.token_ttl=${TOKEN_TTL}", "config.routes[0].max_age=0", "config.routes[0].timeout=1m30s",
			"config.routes[0].name=7", "config.server.shutdown_delay=null", "config.issuers[0].leeway=1.5s",
		}
		var args []string
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		if _, err := helmRun(t, cases[0].templateArgs(args...)...); err != nil {
			t.Errorf("%v", err)
		}
	})
	examples, err := filepath.Glob(filepath.Join("..", "..", "..", "examples", "*.yaml"))
	must(t, err)
	if len(examples) == 0 {
		t.Fatal("no examples/*.yaml")
	}
	for _, ex := range examples {
		t.Run(filepath.Base(filepath.Dir(ex))+"/"+filepath.Base(ex), func(t *testing.T) {
			b, err := os.ReadFile(ex)
			must(t, err)
			var cfg map[string]any
			must(t, yaml.Unmarshal(b, &cfg))
			// The chart sets the listeners itself.
			if server, ok := cfg["server"].(map[string]any); ok {
				delete(server, "listen")
				delete(server, "admin_listen")
			}
			values, err := yaml.Marshal(map[string]any{"config": cfg})
			must(t, err)
			f := filepath.Join(t.TempDir(), "values.yaml")
			must(t, os.WriteFile(f, values, 0o600))
			_, err = helmRun(t, cases[0].templateArgs("-f", f)...)
			if err != nil && strings.Contains(err.Error(), "schema") {
				t.Errorf("the schema refuses %s: %v", ex, err)
			}
		})
	}
}
