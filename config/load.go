package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// Load reads, decodes and validates the configuration file at path, with
// ${VAR} taken from the process environment. The error, when not nil, joins
// (errors.Join) every problem found, each a *FieldError naming its key path,
// in document order; only a file that cannot be read is reported alone.
func Load(path string) (*Config, error) {
	return load(path, os.LookupEnv)
}

func load(path string, lookup lookupFunc) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("load configuration: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("load configuration: %w", err)
	}
	cfg, probs, skip := parse(data, filepath.Dir(abs), lookup)
	if cfg != nil {
		// Validate what could be decoded too, so one run reports every
		// problem; but not again what the decoding already reported.
		covered := coveredPaths(probs, skip)
		for _, p := range cfg.validate() {
			if !covered(p.err.Path) {
				probs = append(probs, p)
			}
		}
	}
	if err := probs.join(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes a configuration file's contents: ${VAR} expansion with
// lookupEnv (nil means no variable is set), strict decoding, defaults, and
// relative file paths resolved against dir, the file's folder. It does not
// validate: call Validate, or use Load. The error joins every problem found,
// each a *FieldError with its key path.
func Parse(data []byte, dir string, lookupEnv func(string) (string, bool)) (*Config, error) {
	cfg, probs, _ := parse(data, dir, lookupEnv)
	if err := probs.join(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parse returns the configuration and every decoding problem. When there
// are problems, the configuration is what could still be decoded (for Load
// to validate the rest), or nil when the file is not a usable mapping; skip
// lists the keys that "did you mean" proposed, whose validation would only
// repeat the unknown key (routes[0].upstream is empty: it was misspelled).
func parse(data []byte, dir string, lookup lookupFunc) (cfg *Config, probs problems, skip []string) {
	root, docProbs := readDocument(data)
	if root == nil {
		return nil, docProbs, nil
	}
	w := newWalker(lookup)
	w.mapping(root, reflect.TypeFor[Config](), "", newMergeTarget())
	if w.tooBig {
		return nil, w.probs, nil
	}
	cfg = &Config{}
	if len(w.probs) == 0 {
		if err := decodeStrict(root, cfg); err != nil {
			w.probs.add(0, "", err.Error())
			return nil, w.probs, nil
		}
	} else {
		// Best effort, for Load to validate the rest: without what the
		// walker found wrong, yaml.v3 sets what it can.
		w.prune(root)
		_ = root.Decode(cfg)
		for p := range w.suggested {
			skip = append(skip, p)
		}
	}
	cfg.Dir = dir
	cfg.src = &source{spans: w.spans, written: map[string]string{}}
	cfg.applyDefaults()
	cfg.resolvePaths()
	return cfg, w.probs, skip
}

// coveredPaths returns a test for validation problems that would repeat a
// decoding problem: those at or under a path that already has one.
func coveredPaths(probs problems, skip []string) func(string) bool {
	paths := slices.Clone(skip)
	for _, p := range probs {
		paths = append(paths, p.err.Path)
	}
	return func(path string) bool {
		for _, q := range paths {
			if q == "" || path == q || strings.HasPrefix(path, q+".") || strings.HasPrefix(path, q+"[") {
				return true
			}
		}
		return false
	}
}

// resolvePaths makes relative file paths relative to the config's folder,
// remembering how the file wrote them (for messages).
func (c *Config) resolvePaths() {
	abs := func(key string, p *string) {
		if *p == "" {
			return
		}
		if c.src != nil {
			c.src.written[key] = *p
		}
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(c.Dir, *p)
		}
	}
	for i := range c.Exchange.Local.SigningKeys {
		abs(indexPath("exchange.local.signing_keys", i)+".file", &c.Exchange.Local.SigningKeys[i].File)
	}
	abs("exchange.remote.private_key.file", &c.Exchange.Remote.PrivateKey.File)
	for i, is := range c.Issuers {
		if is.Introspection != nil {
			abs(indexPath("issuers", i)+".introspection.private_key.file", &is.Introspection.PrivateKey.File)
		}
	}
	if c.Server.TLS != nil {
		abs("server.tls.cert_file", &c.Server.TLS.CertFile)
		abs("server.tls.key_file", &c.Server.TLS.KeyFile)
	}
	for i := range c.Routes {
		if t := c.Routes[i].TLS; t != nil {
			p := indexPath("routes", i) + ".tls."
			abs(p+"ca_file", &t.CAFile)
			abs(p+"cert_file", &t.CertFile)
			abs(p+"key_file", &t.KeyFile)
		}
	}
	if r := c.Cache.Redis; r != nil && r.TLS != nil {
		abs("cache.redis.tls.ca_file", &r.TLS.CAFile)
		abs("cache.redis.tls.cert_file", &r.TLS.CertFile)
		abs("cache.redis.tls.key_file", &r.TLS.KeyFile)
	}
}
