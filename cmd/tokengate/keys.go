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
	"github.com/tokengate/tokengate/exchange"
)

// runKeys implements `tokengate keys generate --alg ALG --out FILE`.
func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "generate" {
		fmt.Fprintln(stderr, "usage: tokengate keys generate --alg ES256|RS256|PS256|EdDSA --out FILE [--force]")
		return &exitError{code: 2}
	}
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "ES256", "signing algorithm: ES256, RS256, PS256 or EdDSA")
	out := fs.String("out", "", "file to write the PEM (PKCS#8) private key to")
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	if err := fs.Parse(args[1:]); err != nil {
		return &exitError{code: 2}
	}
	if *out == "" {
		fmt.Fprintln(stderr, "keys generate: --out FILE is required")
		return &exitError{code: 2}
	}
	pemBytes, err := exchange.GenerateKeyPEM(*alg, rand.Reader)
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
	ks, err := exchange.NewKeySet([]config.SigningKey{{File: *out, Alg: *alg}})
	if err != nil {
		return fmt.Errorf("keys generate: reading back %s: %w", *out, err)
	}
	fmt.Fprintf(stdout, "wrote %s (%s, kid %s)\n", *out, *alg, ks.Active().Kid)
	return nil
}
