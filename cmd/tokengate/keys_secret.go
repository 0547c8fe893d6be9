package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tokengate/tokengate/exchange/keys"
)

// `tokengate keys ensure-secret` is the Helm chart's one-time key generator:
// a pre-install/pre-upgrade hook Job runs it in the tokengate image. It
// creates a Kubernetes Secret holding a new signing key when, and only when,
// no Secret of that name exists; an existing Secret is never changed, so a
// re-run (every upgrade, every Argo CD sync) can never rotate the key and
// invalidate the tokens it signed. It talks to the API server with net/http
// and the pod's service account, so the main module needs no client-go.

// In-cluster defaults, as every Kubernetes pod has them.
const (
	saDir           = "/var/run/secrets/kubernetes.io/serviceaccount"
	ensureSecretMax = 1 << 20 // bytes read from one API response
)

// errSecretLacksKey: the Secret exists but does not hold the key file.
var errSecretLacksKey = errors.New("exists but holds no usable key")

// secretTarget is where ensure-secret puts the key and how it reaches the API.
type secretTarget struct {
	server    string // https://host:port of the API server
	token     string // bearer token of the service account
	namespace string
	name      string
	key       string // data key of the PEM file, e.g. signing.pem
	copyFrom  string // Secret whose key a new Secret takes instead of a new key, if it has one
	labels    map[string]string
	client    *http.Client
	copied    bool // ensure took the key from copyFrom
}

// runKeysEnsureSecret implements `tokengate keys ensure-secret`.
func runKeysEnsureSecret(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys ensure-secret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name of the Secret to create when absent (required)")
	namespace := fs.String("namespace", "", "namespace of the Secret (default: the pod's, from the service account)")
	alg := fs.String("alg", "ES256", "algorithm of a new key: ES256, RS256, PS256 or EdDSA")
	key := fs.String("key", "signing.pem", "data key of the PEM file in the Secret")
	copyFrom := fs.String("copy-from", "", "when creating, take the key from this Secret if it holds one (an older chart's), instead of making a new key")
	var labels labelFlag
	fs.Var(&labels, "label", "label of a new Secret, KEY=VALUE (repeatable)")
	server := fs.String("server", "", "API server URL (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)")
	tokenFile := fs.String("token-file", saDir+"/token", "service account token")
	caFile := fs.String("ca-file", saDir+"/ca.crt", "CA bundle of the API server")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole operation")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	if *name == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "keys ensure-secret: --name SECRET is required and no arguments are taken\n"+keysUsage)
		return &exitError{code: 2}
	}
	target, err := newSecretTarget(*server, *namespace, *tokenFile, *caFile)
	if err != nil {
		return fmt.Errorf("keys ensure-secret: %w", err)
	}
	target.name, target.key, target.labels, target.copyFrom = *name, *key, labels.m, *copyFrom
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	created, err := target.ensure(ctx, *alg)
	if err != nil {
		return fmt.Errorf("keys ensure-secret: %w", err)
	}
	switch {
	case created && target.copied:
		fmt.Fprintf(stdout, "created Secret %s/%s with the key of Secret %s in %s\n", target.namespace, target.name, target.copyFrom, target.key)
	case created:
		fmt.Fprintf(stdout, "created Secret %s/%s with a new %s key in %s\n", target.namespace, target.name, *alg, target.key)
	default:
		fmt.Fprintf(stdout, "Secret %s/%s already holds %s: kept unchanged\n", target.namespace, target.name, target.key)
	}
	return nil
}

// newSecretTarget reads the in-cluster settings, each overridable by a flag.
func newSecretTarget(server, namespace, tokenFile, caFile string) (*secretTarget, error) {
	if server == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("not in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT unset): pass --server")
		}
		server = "https://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want an https:// URL of the API server", server)
	}
	if namespace == "" {
		b, err := os.ReadFile(saDir + "/namespace")
		if err != nil {
			return nil, fmt.Errorf("no --namespace and the pod's namespace is unknown: %w", err)
		}
		namespace = strings.TrimSpace(string(b))
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("service account token: %w (is automountServiceAccountToken on for the Job?)", err)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("the API server CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("the API server CA %s holds no PEM certificate", caFile)
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		Proxy:               nil, // the API server is in the cluster: never through a proxy
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &secretTarget{
		server:    strings.TrimSuffix(u.String(), "/"),
		token:     strings.TrimSpace(string(token)),
		namespace: namespace,
		client:    &http.Client{Transport: transport},
	}, nil
}

// ensure creates the Secret with a new key unless one of that name exists,
// and reports whether it created it. It never updates a Secret: create is a
// POST that the API server refuses with 409 when the name is taken, so two
// Jobs racing cannot both write. An existing Secret must hold the key file.
func (s *secretTarget) ensure(ctx context.Context, alg string) (created bool, err error) {
	pemBytes, err := s.keyToStore(ctx, alg)
	if err != nil {
		return false, err
	}
	defer clear(pemBytes)
	meta := map[string]any{"name": s.name, "namespace": s.namespace}
	if len(s.labels) > 0 {
		meta["labels"] = s.labels
	}
	body, err := json.Marshal(map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata":   meta,
		"type":       "Opaque",
		"data":       map[string][]byte{s.key: pemBytes}, // encoding/json writes []byte as base64
	})
	if err != nil {
		return false, fmt.Errorf("encode the Secret: %w", err)
	}
	defer clear(body)
	status, resp, err := s.call(ctx, http.MethodPost, s.collectionPath(), body)
	switch {
	case err != nil:
		return false, err
	case status == http.StatusCreated || status == http.StatusOK:
		return true, nil
	case status != http.StatusConflict:
		return false, apiError("create", s.namespace, s.name, status, resp)
	}
	return false, s.checkExisting(ctx)
}

// keyToStore is the key a new Secret gets: the one in copyFrom when that
// Secret exists and holds one (the key an older chart version generated, so
// that an upgrade does not rotate it), else a new key of alg.
func (s *secretTarget) keyToStore(ctx context.Context, alg string) ([]byte, error) {
	// Made first even when a key may be copied: a bad --alg fails the same
	// way with or without --copy-from.
	fresh, err := keys.GenerateKeyPEM(alg, rand.Reader)
	if err != nil {
		return nil, err
	}
	if s.copyFrom == "" || s.copyFrom == s.name {
		return fresh, nil
	}
	old, err := s.readKey(ctx, s.copyFrom)
	switch {
	case err == nil:
		clear(fresh)
		s.copied = true
		return old, nil
	case errors.Is(err, errNoSecret) || errors.Is(err, errSecretLacksKey):
		return fresh, nil // a fresh install, or an older Secret without a generated key
	default:
		clear(fresh)
		return nil, err
	}
}

// errNoSecret: the Secret does not exist.
var errNoSecret = errors.New("does not exist")

// checkExisting checks that the Secret that is already there holds a PEM
// private key under s.key.
func (s *secretTarget) checkExisting(ctx context.Context) error {
	pemBytes, err := s.readKey(ctx, s.name)
	if errors.Is(err, errNoSecret) { // deleted between the create and now
		return fmt.Errorf("the Secret %s/%s was deleted while being created: run again", s.namespace, s.name)
	}
	clear(pemBytes)
	return err
}

// readKey reads Secret name and returns the PEM private key under s.key. It
// never prints the key.
func (s *secretTarget) readKey(ctx context.Context, name string) ([]byte, error) {
	status, resp, err := s.call(ctx, http.MethodGet, s.collectionPath()+"/"+url.PathEscape(name), nil)
	if err != nil {
		return nil, err
	}
	defer clear(resp)
	switch status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("the Secret %s/%s %w", s.namespace, name, errNoSecret)
	default:
		return nil, apiError("read", s.namespace, name, status, resp)
	}
	var secret struct {
		Data map[string][]byte `json:"data"`
	}
	if err := json.Unmarshal(resp, &secret); err != nil {
		return nil, fmt.Errorf("read the Secret %s/%s: the API server's answer is not a Secret: %w", s.namespace, name, err)
	}
	pemBytes, ok := secret.Data[s.key]
	if !ok {
		return nil, fmt.Errorf("the Secret %s/%s %w: it has no %s; it was kept unchanged: add the key, or delete the Secret so a new one is made",
			s.namespace, name, errSecretLacksKey, s.key)
	}
	if _, err := keys.ParsePrivateKeyPEM(pemBytes); err != nil {
		clear(pemBytes)
		return nil, fmt.Errorf("the Secret %s/%s %w: %s is not a PEM private key (%v); it was kept unchanged",
			s.namespace, name, errSecretLacksKey, s.key, err)
	}
	return pemBytes, nil
}

func (s *secretTarget) collectionPath() string {
	return "/api/v1/namespaces/" + url.PathEscape(s.namespace) + "/secrets"
}

// call makes one API request and returns the status and the body.
func (s *secretTarget) call(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.server+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("build the API request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("the API server %s: %w", s.server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, ensureSecretMax))
	if err != nil {
		return 0, nil, fmt.Errorf("the API server %s: read its answer: %w", s.server, err)
	}
	return resp.StatusCode, data, nil
}

// apiError describes a refused request with the API server's own message (a
// metav1.Status), which names the missing permission on a 403.
func apiError(verb, namespace, name string, status int, body []byte) error {
	var st struct {
		Message string `json:"message"`
	}
	msg := http.StatusText(status)
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	hint := ""
	if status == http.StatusForbidden || status == http.StatusUnauthorized {
		hint = " (the Job's service account needs create and get on this Secret: see the chart's keys-generator Role)"
	}
	return fmt.Errorf("%s the Secret %s/%s: HTTP %d: %s%s", verb, namespace, name, status, msg, hint)
}

// labelFlag collects repeated --label KEY=VALUE flags.
type labelFlag struct{ m map[string]string }

func (l *labelFlag) String() string { return "" }

func (l *labelFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	if l.m == nil {
		l.m = map[string]string{}
	}
	l.m[k] = val
	return nil
}
