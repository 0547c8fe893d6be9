package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyExample copies examples/<name> into a new folder with a freshly made
// keys/es256.pem beside it, and returns the copy's path.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeKey(t, dir, "keys/es256.pem")
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadExampleComplete(t *testing.T) {
	path := copyExample(t, "tokengate.yaml")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(examples/tokengate.yaml): %v", err)
	}
	dir := filepath.Dir(path)
	wantEqual(t, c.Dir, dir)
	wantEqual(t, c.Server.Listen, "127.0.0.1:8080")
	wantEqual(t, c.Server.AdminListen, "127.0.0.1:9090")
	wantEqual(t, c.Server.TokenEndpoint(), "/oauth2/token")
	wantEqual(t, c.Exchange.Mode, ModeLocal)
	wantEqual(t, c.Exchange.Local.Issuer, "http://127.0.0.1:9090")
	wantEqual(t, c.Exchange.Local.SigningKeys[0].File, filepath.Join(dir, "keys", "es256.pem"))
	wantEqual(t, len(c.Routes), 2)
	wantEqual(t, c.Routes[0].Name, "orders")
	wantEqual(t, c.Routes[1].Name, "inventory")
	wantEqual(t, c.Routes[1].Timeout.D(), 10*time.Second)
	wantEqual(t, c.Routes[1].MaxAge, 0)
	wantEqual(t, c.Cache.Redis == nil, true)
	wantEqual(t, c.Issuers[0].AllowInsecureHTTP, false)
}

// TestExampleShowsDefaults: the complete example writes every default as it
// is, so that it documents them; applying the defaults to an empty file
// must give the same server, log, exchange and cache settings.
func TestExampleShowsDefaults(t *testing.T) {
	c, err := Load(copyExample(t, "tokengate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d := &Config{}
	d.applyDefaults()
	wantEqual(t, c.Server.Listen, d.Server.Listen)
	wantEqual(t, c.Server.MaxTokenBytes, d.Server.MaxTokenBytes)
	wantEqual(t, c.Server.ReadHeaderTimeout, d.Server.ReadHeaderTimeout)
	wantEqual(t, c.Server.MaxHeaderBytes, d.Server.MaxHeaderBytes)
	wantEqual(t, c.Server.IdleTimeout, d.Server.IdleTimeout)
	wantEqual(t, c.Server.ShutdownGrace, d.Server.ShutdownGrace)
	wantEqual(t, c.Log, d.Log)
	wantEqual(t, c.Exchange.TokenTTL, d.Exchange.TokenTTL)
	wantEqual(t, strings.Join(c.Exchange.Local.CopyClaims, " "), strings.Join(d.Exchange.Local.CopyClaims, " "))
	wantEqual(t, c.Cache.MaxEntries, d.Cache.MaxEntries)
	wantEqual(t, c.Cache.RefreshBefore, d.Cache.RefreshBefore)
	wantEqual(t, c.Routes[0].Timeout.D(), DefaultRouteTimeout)
}

func TestLoadExampleMinimal(t *testing.T) {
	c, err := Load(copyExample(t, "minimal.yaml"))
	if err != nil {
		t.Fatalf("Load(examples/minimal.yaml): %v", err)
	}
	wantEqual(t, c.Issuers[0].Discovery, true)
	wantEqual(t, len(c.Issuers[0].Algorithms), 10)
	wantEqual(t, c.Routes[0].Timeout.D(), DefaultRouteTimeout)
}

func TestLoadMissingKeyFile(t *testing.T) {
	path := copyExample(t, "minimal.yaml")
	if err := os.Remove(filepath.Join(filepath.Dir(path), "keys", "es256.pem")); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	got := messages(t, err)
	want := "exchange.local.signing_keys[0].file: file \"keys/es256.pem\" does not exist: make a key with " +
		"`tokengate keys generate --alg ES256 --out keys/es256.pem`"
	if len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Fatalf("problems %q, want one starting %q", got, want)
	}
}

func TestLoadUnreadable(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestLoadEnvironment(t *testing.T) {
	path := copyExample(t, "minimal.yaml")
	data, _ := os.ReadFile(path)
	text := strings.Replace(string(data), `upstream: "http://127.0.0.1:9001"`, `upstream: "${TOKENGATE_TEST_UPSTREAM}"`, 1)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOKENGATE_TEST_UPSTREAM", "http://127.0.0.1:9555")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, c.Routes[0].Upstream, "http://127.0.0.1:9555")
}

// TestErrorsNeverShowSecrets: values from the environment, and passwords in
// URLs, are never repeated in a message, wherever they end up.
func TestErrorsNeverShowSecrets(t *testing.T) {
	const secret = "hunter2-redis-secret"
	texts := []string{
		"cache:\n  redis:\n    password: ${REDIS_PASSWORD}\n",
		"cache:\n  redis:\n    db: ${REDIS_PASSWORD}\n",
		"cache:\n  max_entries: ${REDIS_PASSWORD}\n",
		"exchange:\n  token_ttl: ${REDIS_PASSWORD}\n",
		"issuers:\n  - discovery: ${REDIS_PASSWORD}\n",
		"exchange:\n  mode: remote\n  remote:\n    client_secret: ${STS_SECRET}\n",
		"routes:\n  - upstream: \"http://u:${REDIS_PASSWORD}@h\"\n",
		"routes:\n  - upstream: \"u:${REDIS_PASSWORD}@h\"\n",
		"issuers:\n  - jwks_uri: \"ftp://u:${REDIS_PASSWORD}@h\"\n",
		"server:\n  listen: \"${REDIS_PASSWORD}\n",
		"cache:\n  redis:\n    password: \"${REDIS_PASSWORD}${\"\n",
	}
	for _, text := range texts {
		t.Run(strings.ReplaceAll(text, "\n", " "), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := load(path, lookupTestEnv)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), testEnv["STS_SECRET"]) {
				t.Fatalf("the error repeats a secret:\n%v", err)
			}
		})
	}
}
