# tokengate: the two set-up commands on a fresh machine are `make demo` and
# `make test`. Everything the tests need is installed or started from here.

GO       ?= go
PKGS     := ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 30s
BENCHTIME ?= 1s

.PHONY: all build demo test lint vet fmt-check unit bench fuzz clean chart-test chart-docs

all: build

## build: compile bin/tokengate
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tokengate ./cmd/tokengate

## demo: run the self-contained demo (issuer, two backends, gateway) on loopback
demo:
	$(GO) run ./cmd/tokengate demo

## test: formatting, vet, every Go test with the race detector, then the Helm chart
test: lint unit chart-test

lint: fmt-check vet

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# Helm is built from source through the Go module proxy (about 2 minutes, once):
# bin/helm is kept, so later runs skip it.
HELM_VERSION ?= v3.22.0
HELM         := $(CURDIR)/bin/helm
CHART        := charts/tokengate

bin/helm:
	GOBIN=$(CURDIR)/bin $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

## chart-test: helm lint --strict and helm template (defaults and every feature on),
## then the chart's Go tests (their own module: strict decoding into the Kubernetes
## API types, `tokengate check` on the rendered config, PromQL, README table)
chart-test: build bin/helm
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/all-features-values.yaml
	$(HELM) template tg $(CHART) >/dev/null
	$(HELM) template tg $(CHART) -f $(CHART)/ci/all-features-values.yaml >/dev/null
	cd $(CHART)/test && $(GO) vet ./... && \
	  HELM=$(HELM) TOKENGATE=$(CURDIR)/bin/tokengate $(GO) test -count=1 -timeout 5m ./...

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

clean:
	rm -rf bin
