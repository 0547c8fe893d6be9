package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange/keys"
)

const keysUsage = `usage:
  tokengate keys generate --alg ES256|RS256|PS256|EdDSA --out FILE [--force]
  tokengate keys ensure-secret --name SECRET [--namespace NS] [--alg ES256] [--key signing.pem]`

// runKeys implements `tokengate keys generate` and `tokengate keys ensure-secret`.
func runKeys(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "generate":
		return runKeysGenerate(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "ensure-secret":
		return runKeysEnsureSecret(args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, keysUsage)
	return &exitError{code: 2}
}

// runKeysGenerate implements `tokengate keys generate --alg ALG --out FILE`.
func runKeysGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "ES256", "signing algorithm: ES256, RS256, PS256 or EdDSA")
	out := fs.String("out", "", "file to write the PEM (PKCS#8) private key to")
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	if *out == "" {
		fmt.Fprintln(stderr, "keys generate: --out FILE is required")
		return &exitError{code: 2}
	}
	pemBytes, err := keys.GenerateKeyPEM(*alg, rand.Reader)
	if err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o700); err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	// 0600: a signing key is a secret; never write it readable by others.
	f, err := os.OpenFile(*out, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("keys generate: %s exists: choose another --out or pass --force to overwrite it", *out)
	}
	if err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		return fmt.Errorf("keys generate: write %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keys generate: write %s: %w", *out, err)
	}
	// Load it back the way serve will, so the printed kid is the one published.
	ks, err := keys.NewKeySet([]config.SigningKey{{File: *out, Alg: *alg}})
	if err != nil {
		return fmt.Errorf("keys generate: reading back %s: %w", *out, err)
	}
	fmt.Fprintf(stdout, "wrote %s (%s, kid %s)\n", *out, *alg, ks.Active().Kid)
	return nil
}
