# tokengate: the two set-up commands on a fresh machine are `make demo` and
# `make test`. Everything the tests need is installed or started from here.

GO       ?= go
PKGS     := ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 30s
BENCHTIME ?= 1s
SOAKTIME ?= 60s

# The interop tests run node-oidc-provider and jose from e2e/ (Node.js 20+).
# npm ci runs only when the lock file is newer than the last install, so
# `make test` works offline once the packages are installed.
E2E_STAMP := e2e/node_modules/.tokengate-installed

.PHONY: all build demo test lint vet fmt-check staticcheck unit e2e-deps redis-server nginx chromium python-deps bench fuzz soak clean chart-test chart-docs chart-schema loadtest

all: build

## build: compile bin/tokengate
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tokengate ./cmd/tokengate

## demo: run the self-contained demo (issuer, two backends, gateway) on loopback
demo:
	$(GO) run ./cmd/tokengate demo

## test: formatting, vet, every Go test with the race detector, then the Helm chart
test: lint unit chart-test

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# staticcheck is installed through the Go module proxy into bin/ (once; the
# version is pinned so every machine reports the same findings).
STATICCHECK_VERSION ?= v0.8.2

bin/staticcheck:
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: bin/staticcheck
	$(CURDIR)/bin/staticcheck $(PKGS)

# The Redis tests start their own redis-server on free loopback ports; under
# TOKENGATE_REQUIRE_REDIS=1 a missing redis-server fails them instead of
# skipping them; so does a missing nginx for the forward-auth e2e test
# (TOKENGATE_E2E_NGINX=require) and a missing chromium for the browser CORS
# test (TOKENGATE_E2E_BROWSER=require). The interop tests need Node (TOKENGATE_E2E_NODE=require)
# and Debian's Python JWT libraries (TOKENGATE_E2E_PYTHON=require).
unit: e2e-deps redis-server nginx chromium python-deps
	TOKENGATE_E2E_NODE=require TOKENGATE_E2E_PYTHON=require TOKENGATE_E2E_NGINX=require TOKENGATE_E2E_BROWSER=require TOKENGATE_REQUIRE_REDIS=1 $(GO) test -race -count=1 -timeout 15m $(PKGS)

## e2e-deps: install the interop tests' Node packages (e2e/package-lock.json)
e2e-deps: $(E2E_STAMP)

$(E2E_STAMP): e2e/package.json e2e/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	  echo "make test: the interop tests need Node.js 20 or later and npm (they run node-oidc-provider and jose from e2e/)"; exit 1; }
	cd e2e && npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	@touch $@

## redis-server: install Debian's redis-server if missing (CI runs as root on a
## fresh machine); the system service it comes with is stopped, never used
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server for the tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } || \
	    { echo "could not install redis-server: run 'sudo apt-get install -y redis-server'"; exit 1; }; \
	  systemctl stop redis-server >/dev/null 2>&1 || service redis-server stop >/dev/null 2>&1 || true; \
	}

## nginx: install Debian's nginx if missing (the forward-auth e2e test runs it
## as the test user with its own configuration); the system service it comes
## with is stopped, never used
nginx:
	@test -x /usr/sbin/nginx || { \
	  echo "installing nginx for the tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; } || \
	    { echo "could not install nginx: run 'sudo apt-get install -y nginx'"; exit 1; }; \
	  systemctl stop nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true; \
	}

## chromium: install Debian's chromium if missing (the browser CORS e2e test,
## cmd/tokengate/browser_e2e_test.go, runs it headless with a fresh profile)
chromium:
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium for the tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	    { echo "could not install chromium: run 'sudo apt-get install -y chromium'"; exit 1; }; \
	}

## python-deps: install Debian's python3-jwt (PyJWT) and python3-authlib if
## /usr/bin/python3 cannot import them: the backend matrix verifies tokens
## with them (e2e/python/verify.py, run with /usr/bin/python3, not a pyenv shim)
python-deps:
	@/usr/bin/python3 -c 'import jwt, authlib.jose, cryptography' >/dev/null 2>&1 || { \
	  echo "installing python3-jwt and python3-authlib for the tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-jwt python3-authlib python3-cryptography >/dev/null; } || \
	    { echo "could not install them: run 'sudo apt-get install -y python3-jwt python3-authlib'"; exit 1; }; \
	}

# Helm is built from source through the Go module proxy (about 2 minutes, once):
# bin/helm is kept, so later runs skip it.
HELM_VERSION ?= v3.22.0
HELM         := $(CURDIR)/bin/helm
CHART        := charts/tokengate

bin/helm:
	GOBIN=$(CURDIR)/bin $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

CHART_CI_VALUES := $(wildcard $(CHART)/ci/*-values.yaml)

## chart-test: schema up to date with package config, helm lint --strict and helm template (defaults and every ci/*-values.yaml),
## then the chart's Go tests (their own module: strict decoding into the Kubernetes
## API types, `tokengate check` on the rendered config, PromQL, README table)
chart-test: build bin/helm
	$(GO) run ./internal/configschema/chartschema -check -file $(CHART)/values.schema.json
	$(HELM) lint --strict $(CHART)
	@set -e; for f in $(CHART_CI_VALUES); do echo "$(HELM) lint --strict $(CHART) -f $$f"; $(HELM) lint --strict $(CHART) -f $$f; done
	$(HELM) template tg $(CHART) >/dev/null
	@set -e; for f in $(CHART_CI_VALUES); do $(HELM) template tg $(CHART) -f $$f >/dev/null; done
	cd $(CHART)/test && $(GO) vet ./... && \
	  HELM=$(HELM) TOKENGATE=$(CURDIR)/bin/tokengate $(GO) test -count=1 -timeout 5m ./...

## chart-schema: regenerate the `config` part of charts/tokengate/values.schema.json
## from the structs of package config (a test fails until it is run after a change)
chart-schema:
	$(GO) run ./internal/configschema/chartschema -file $(CHART)/values.schema.json

## chart-docs: regenerate the values table of charts/tokengate/README.md
chart-docs:
	cd $(CHART)/test && $(GO) test -count=1 -run TestReadmeValuesTable ./... -args -update

## bench: the Go benchmarks (verify, cache hit, whole request)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

## fuzz: run every fuzz target for FUZZTIME each (seeds also run in `make test`)
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## soak: mixed traffic (hits, misses, rejections, reloads) through the real
## server for SOAKTIME; reports errors, goroutines and heap, fails on a leak
soak:
	TOKENGATE_SOAK=$(SOAKTIME) $(GO) test -race -count=1 -run '^TestSoak$$' -v -timeout 30m ./cmd/tokengate

clean:
	rm -rf bin

## loadtest: tokengate vs a bare reverse proxy, side by side (cmd/tokengate-bench; LOADTEST_FLAGS=-rounds 7 ...)
LOADTEST_FLAGS ?=
loadtest: build
	$(GO) run ./cmd/tokengate-bench -tokengate bin/tokengate $(LOADTEST_FLAGS)
