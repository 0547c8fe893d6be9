package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tokengate/tokengate/exchange/keys"
)

// fakeSecretsAPI is the part of the Kubernetes API that ensure-secret uses:
// create (POST, 409 when the name is taken) and get of core/v1 Secrets, with
// bearer-token authentication. It records every method it is called with, so
// a test can prove that nothing ever updates or deletes a Secret.
type fakeSecretsAPI struct {
	token  string
	forbid bool // answer 403 to everything, as RBAC without the Role would

	mu      sync.Mutex
	secrets map[string]json.RawMessage // "namespace/name" → the stored object
	methods []string
}

func (f *fakeSecretsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.methods = append(f.methods, r.Method)
	status := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": msg, "code": code})
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		status(http.StatusUnauthorized, "Unauthorized")
		return
	}
	if f.forbid {
		status(http.StatusForbidden, `secrets is forbidden: User "system:serviceaccount:shop:tg" cannot create resource "secrets"`)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // api v1 namespaces NS secrets [NAME]
	if len(parts) < 5 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" || parts[4] != "secrets" {
		status(http.StatusNotFound, "not found")
		return
	}
	ns := parts[3]
	switch {
	case r.Method == http.MethodPost && len(parts) == 5:
		if r.Header.Get("Content-Type") != "application/json" {
			status(http.StatusUnsupportedMediaType, "want JSON")
			return
		}
		body, _ := io.ReadAll(r.Body)
		var s struct {
			Metadata struct{ Name, Namespace string } `json:"metadata"`
		}
		if err := json.Unmarshal(body, &s); err != nil || s.Metadata.Name == "" || s.Metadata.Namespace != ns {
			status(http.StatusBadRequest, "bad Secret")
			return
		}
		key := ns + "/" + s.Metadata.Name
		if _, ok := f.secrets[key]; ok {
			status(http.StatusConflict, `secrets "`+s.Metadata.Name+`" already exists`)
			return
		}
		f.secrets[key] = body
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	case r.Method == http.MethodGet && len(parts) == 6:
		s, ok := f.secrets[ns+"/"+parts[5]]
		if !ok {
			status(http.StatusNotFound, "not found")
			return
		}
		w.Write(s)
	default:
		status(http.StatusMethodNotAllowed, "ensure-secret must only create and get")
	}
}

// startFakeAPI serves f over TLS and returns the flags that point
// ensure-secret at it (server, token file, CA file, namespace).
func startFakeAPI(t *testing.T, f *fakeSecretsAPI) []string {
	t.Helper()
	f.token = "sa-token-123"
	if f.secrets == nil {
		f.secrets = map[string]json.RawMessage{}
	}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	tokenFile, caFile := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(tokenFile, []byte(f.token+"\n"), 0o600))
	must(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	return []string{"--server", srv.URL, "--token-file", tokenFile, "--ca-file", caFile, "--namespace", "shop"}
}

// storedKey returns the PEM under data[key] of the stored Secret.
func (f *fakeSecretsAPI) storedKey(t *testing.T, name, key string) []byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var s struct {
		Type     string `json:"type"`
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Data map[string][]byte `json:"data"`
	}
	raw, ok := f.secrets["shop/"+name]
	if !ok {
		t.Fatalf("no Secret shop/%s was created", name)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Type != "Opaque" {
		t.Errorf("type %q, want Opaque", s.Type)
	}
	return s.Data[key]
}

// TestKeysEnsureSecret: the chart's key generator creates the Secret once
// and never changes it afterwards, whatever runs it again.
func TestKeysEnsureSecret(t *testing.T) {
	api := &fakeSecretsAPI{}
	flags := startFakeAPI(t, api)
	args := append([]string{"keys", "ensure-secret", "--name", "tg-signing-key", "--label", "app.kubernetes.io/instance=tg"}, flags...)

	stdout, stderr, code := runCmd(t, args...)
	if code != 0 || !strings.Contains(stdout, "created Secret shop/tg-signing-key") {
		t.Fatalf("first run: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	first := api.storedKey(t, "tg-signing-key", "signing.pem")
	signer, err := keys.ParsePrivateKeyPEM(first)
	if err != nil {
		t.Fatalf("the stored key does not parse: %v", err)
	}
	if ec, ok := signer.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("the stored key is a %T, want an ECDSA P-256 key for ES256", signer)
	}
	if strings.Contains(stdout+stderr, "PRIVATE KEY") {
		t.Error("the key was printed")
	}

	// Every later run (helm upgrade, an Argo CD sync) keeps the key.
	for i := range 3 {
		stdout, stderr, code := runCmd(t, args...)
		if code != 0 || !strings.Contains(stdout, "kept unchanged") {
			t.Fatalf("run %d: exit %d, stdout %q, stderr %q", i+2, code, stdout, stderr)
		}
	}
	if again := api.storedKey(t, "tg-signing-key", "signing.pem"); !bytes.Equal(again, first) {
		t.Error("a later run changed the signing key")
	}
	for _, m := range api.methods {
		if m != http.MethodPost && m != http.MethodGet {
			t.Errorf("ensure-secret called %s: it must only create and read", m)
		}
	}
}

// TestKeysEnsureSecretRefuses: a Secret of that name without a usable key,
// a missing permission and bad flags fail with a message, and change nothing.
func TestKeysEnsureSecretRefuses(t *testing.T) {
	t.Run("existing Secret without the key", func(t *testing.T) {
		api := &fakeSecretsAPI{secrets: map[string]json.RawMessage{
			"shop/tg-signing-key": json.RawMessage(`{"apiVersion":"v1","kind":"Secret","type":"Opaque","metadata":{"name":"tg-signing-key"},"data":{"other.pem":"eA=="}}`),
		}}
		flags := startFakeAPI(t, api)
		_, stderr, code := runCmd(t, append([]string{"keys", "ensure-secret", "--name", "tg-signing-key"}, flags...)...)
		if code != 1 || !strings.Contains(stderr, "has no signing.pem") || !strings.Contains(stderr, "kept unchanged") {
			t.Errorf("exit %d, stderr %q; want 1 naming the missing signing.pem", code, stderr)
		}
		if got := string(api.secrets["shop/tg-signing-key"]); !strings.Contains(got, "other.pem") || strings.Contains(got, "signing.pem") {
			t.Errorf("the Secret was changed: %s", got)
		}
	})
	t.Run("existing Secret with a value that is not a key", func(t *testing.T) {
		api := &fakeSecretsAPI{secrets: map[string]json.RawMessage{
			"shop/tg-signing-key": json.RawMessage(`{"type":"Opaque","metadata":{"name":"tg-signing-key"},"data":{"signing.pem":"bm90IGEga2V5"}}`),
		}}
		flags := startFakeAPI(t, api)
		_, stderr, code := runCmd(t, append([]string{"keys", "ensure-secret", "--name", "tg-signing-key"}, flags...)...)
		if code != 1 || !strings.Contains(stderr, "is not a PEM private key") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("no permission", func(t *testing.T) {
		api := &fakeSecretsAPI{forbid: true}
		flags := startFakeAPI(t, api)
		_, stderr, code := runCmd(t, append([]string{"keys", "ensure-secret", "--name", "tg-signing-key"}, flags...)...)
		if code != 1 || !strings.Contains(stderr, "HTTP 403") || !strings.Contains(stderr, "cannot create resource") {
			t.Errorf("exit %d, stderr %q; want the API server's 403 message", code, stderr)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		api := &fakeSecretsAPI{}
		flags := startFakeAPI(t, api)
		os.WriteFile(flags[3], []byte("other"), 0o600)
		_, stderr, code := runCmd(t, append([]string{"keys", "ensure-secret", "--name", "x"}, flags...)...)
		if code != 1 || !strings.Contains(stderr, "HTTP 401") || len(api.secrets) != 0 {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no name", nil, 2, "--name SECRET is required"},
		{"bad algorithm", []string{"--name", "x", "--alg", "HS256"}, 1, "HS256"},
		{"bad label", []string{"--name", "x", "--label", "novalue"}, 2, "want KEY=VALUE"},
		{"plain http server", []string{"--name", "x", "--server", "http://127.0.0.1:1"}, 1, "want an https:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeSecretsAPI{}
			flags := startFakeAPI(t, api)
			args := append(append([]string{"keys", "ensure-secret"}, flags...), tc.args...)
			_, stderr, code := runCmd(t, args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, stderr, tc.code, tc.want)
			}
			if len(api.secrets) != 0 {
				t.Error("a Secret was created")
			}
		})
	}
	t.Run("unknown keys subcommand", func(t *testing.T) {
		_, stderr, code := runCmd(t, "keys", "rotate")
		if code != 2 || !strings.Contains(stderr, "ensure-secret") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestKeysEnsureSecretCopiesAnOlderChartsKey: on the first upgrade from a
// chart version that kept the key in another Secret, the new Secret takes
// that key, so upgrading the chart does not rotate it; with no such Secret
// (a fresh install) a new key is made.
func TestKeysEnsureSecretCopiesAnOlderChartsKey(t *testing.T) {
	old, err := keys.GenerateKeyPEM("ES256", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	oldSecret, _ := json.Marshal(map[string]any{"type": "Opaque", "metadata": map[string]any{"name": "tg-signing-keys"},
		"data": map[string][]byte{"signing.pem": old, "extra.pem": []byte("x")}})
	api := &fakeSecretsAPI{secrets: map[string]json.RawMessage{"shop/tg-signing-keys": oldSecret}}
	flags := startFakeAPI(t, api)
	args := append([]string{"keys", "ensure-secret", "--name", "tg-signing-key", "--copy-from", "tg-signing-keys"}, flags...)
	stdout, stderr, code := runCmd(t, args...)
	if code != 0 || !strings.Contains(stdout, "with the key of Secret tg-signing-keys") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got := api.storedKey(t, "tg-signing-key", "signing.pem"); !bytes.Equal(got, old) {
		t.Error("the new Secret does not hold the older chart's key")
	}

	fresh := &fakeSecretsAPI{}
	flags = startFakeAPI(t, fresh)
	args = append([]string{"keys", "ensure-secret", "--name", "tg-signing-key", "--copy-from", "tg-signing-keys"}, flags...)
	if stdout, stderr, code := runCmd(t, args...); code != 0 || !strings.Contains(stdout, "with a new ES256 key") {
		t.Fatalf("fresh install: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// An older Secret of keys without a generated one (signingKeys.values only).
	valuesOnly, _ := json.Marshal(map[string]any{"type": "Opaque", "metadata": map[string]any{"name": "tg-signing-keys"},
		"data": map[string][]byte{"es256-2026.pem": old}})
	other := &fakeSecretsAPI{secrets: map[string]json.RawMessage{"shop/tg-signing-keys": valuesOnly}}
	flags = startFakeAPI(t, other)
	args = append([]string{"keys", "ensure-secret", "--name", "tg-signing-key", "--copy-from", "tg-signing-keys"}, flags...)
	if stdout, stderr, code := runCmd(t, args...); code != 0 || !strings.Contains(stdout, "with a new ES256 key") {
		t.Fatalf("older Secret without signing.pem: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got := other.storedKey(t, "tg-signing-key", "signing.pem"); bytes.Equal(got, old) || len(got) == 0 {
		t.Error("a key listed under another name was taken as the generated key")
	}
}
