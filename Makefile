# ec2sec: `make build`, `make test`, `make lint`, `make bench`, `make fuzz`.
GO       ?= go
BIN      := bin/ec2sec
TOOLS    := $(CURDIR)/tools/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -s -w -X github.com/ec2sec/ec2sec/agent.version=$(VERSION) -X github.com/ec2sec/ec2sec/agent.commit=$(COMMIT)

# Go-built test peers, installed into tools/bin by `make tools`.
METADATA_MOCK := github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0
# The gitleaks CLI, only to compare recall on the user-data corpus (probes/secrets tests).
GITLEAKS      := github.com/zricethezav/gitleaks/v8@v8.30.1
# staticcheck for `make lint`, pinned: a new release may add checks.
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build test vet lint tools bench clean package fuzz generate
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ec2sec

# The IMDS watcher's BPF object (probes/imdswatch), regenerated from its C source with clang
# and libbpf-dev (Debian packages) by bpf2go; the .o and .go files are committed, so a build
# needs neither. The include path is the host's multiarch asm/ headers.
BPF_CFLAGS := -O2 -g -Wall -Werror -I/usr/include/$(shell uname -m)-linux-gnu
generate:
	$(GO) generate ./agent   # docs/checks.md from the catalog
	BPF2GO_CC=clang BPF2GO_CFLAGS='$(BPF_CFLAGS)' $(GO) generate ./probes/imdswatch/

# Every Go-built tool, pinned, into tools/bin (never linked into the agent).
tools: $(TOOLS)/ec2-metadata-mock $(TOOLS)/gitleaks $(TOOLS)/nfpm $(TOOLS)/staticcheck
$(TOOLS)/ec2-metadata-mock:
	GOBIN=$(TOOLS) $(GO) install $(METADATA_MOCK)
$(TOOLS)/gitleaks:
	GOBIN=$(TOOLS) $(GO) install $(GITLEAKS)
$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install $(STATICCHECK)

# ---- Release artefacts: `make package` writes dist/ (see docs/install.md), with the central
# forwarder's Lambda zips (bootstrap, provided.al2023; docs/forwarder.md).
# nfpm builds the deb and rpm as a pinned CLI in tools/bin, so its dependencies stay out of the
# agent's go.mod.
NFPM      := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DIST      := dist
# The commit time: file times inside deb, rpm and zips, so one commit always builds the same bytes.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 1577836800)
# deb and rpm versions must start with a digit: tag v1.2.3 -> 1.2.3, otherwise 0.0.0+g<commit>.
PKG_VERSION ?= $(shell echo '$(VERSION)' | sed -n 's/^v\{0,1\}\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\)$$/\1/p')
ifeq ($(strip $(PKG_VERSION)),)
PKG_VERSION := 0.0.0+g$(shell echo '$(COMMIT)unknown' | cut -c1-12)
endif
PKG_LDFLAGS := -s -w -buildid= -X github.com/ec2sec/ec2sec/agent.version=$(VERSION) -X github.com/ec2sec/ec2sec/agent.commit=$(COMMIT)
PKG_BUILD = CGO_ENABLED=0 GOOS=$(1) GOARCH=$(2) $(GO) build -trimpath -buildvcs=false -ldflags '$(PKG_LDFLAGS)' -o $(DIST)/ec2sec-$(1)-$(2)$(3) ./cmd/ec2sec

$(TOOLS)/nfpm:
	GOBIN=$(TOOLS) $(GO) install $(NFPM)

package: $(TOOLS)/nfpm
	rm -rf $(DIST)
	mkdir -p $(DIST)
	$(call PKG_BUILD,linux,amd64,)
	$(call PKG_BUILD,linux,arm64,)
	$(call PKG_BUILD,windows,amd64,.exe)
	for a in amd64 arm64; do for p in deb rpm; do \
	  ARCH=$$a BIN=$(DIST)/ec2sec-linux-$$a PKG_VERSION='$(PKG_VERSION)' SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
	    $(TOOLS)/nfpm package --config packaging/nfpm/nfpm.yaml --packager $$p --target $(DIST)/ || exit 1; \
	done; done
	for a in arm64 amd64; do \
	  mkdir -p $(DIST)/forwarder-$$a && \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -buildvcs=false -ldflags '$(PKG_LDFLAGS)' -o $(DIST)/forwarder-$$a/bootstrap ./cmd/ec2sec-forwarder && \
	  touch -d @$(SOURCE_DATE_EPOCH) $(DIST)/forwarder-$$a/bootstrap && \
	  (cd $(DIST)/forwarder-$$a && zip -q -X ../ec2sec-forwarder-linux-$$a.zip bootstrap) && \
	  rm -rf $(DIST)/forwarder-$$a || exit 1; \
	done
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./packaging/cmd/ssmpkg -repo . -dist $(DIST) -out $(DIST)/ssm -version '$(PKG_VERSION)' >/dev/null
	cd $(DIST) && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | xargs sha256sum > SHA256SUMS
	@echo "dist/: $(VERSION) ($(PKG_VERSION)), commit $(COMMIT)"; cat $(DIST)/SHA256SUMS

# `make vet` is the quick part of `make lint`: formatting, go.mod/go.sum tidy, vet for Linux and
# Windows. `make lint` adds staticcheck (a minute or more on two cores). A finding is fixed, or
# annotated where it stands with //lint:ignore CHECK and the reason.
vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo 'gofmt needed'; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...

lint: vet $(TOOLS)/staticcheck
	$(TOOLS)/staticcheck ./...

test: lint tools
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -short -count=1 -run '^$$' -bench . -benchtime=1x ./...

# Fuzzing: every FuzzXxx target of every package for FUZZTIME each (`make test` runs only their
# seed corpora, as plain `go test` does). FUZZFLAGS=-parallel=1 keeps it to one core.
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline exceeded" when
# -fuzztime ends while a worker is busy (golang/go#75804, fixed in Go 1.27): that alone, with
# no failing input written to testdata/fuzz, is reported and not counted as a failure.
FUZZTIME  ?= 30s
FUZZFLAGS ?=
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t ($(FUZZTIME))"; \
	    corpus=$$($(GO) list -f '{{.Dir}}' $$pkg)/testdata/fuzz/$$t; \
	    before=$$(ls $$corpus 2>/dev/null | wc -l); \
	    if $(GO) test $$pkg -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) >$$log 2>&1; then \
	      cat $$log; \
	    else \
	      cat $$log; \
	      if [ "$$(ls $$corpus 2>/dev/null | wc -l)" -eq "$$before" ] && \
	         [ "$$(grep -c -e '^--- FAIL' -e 'context deadline exceeded' $$log)" -eq 2 ] && \
	         grep -A1 '^--- FAIL' $$log | grep -q '^    context deadline exceeded$$'; then \
	        echo "(ignored: Go's fuzz coordinator ended on its own deadline, golang/go#75804; no input failed)"; \
	      else exit 1; fi; \
	    fi; \
	  done; \
	done

# Go benchmarks per probe and for full scans of a generated large host, the whole-process
# comparison with the gitleaks CLI (hyperfine when installed), the targets, and BENCHMARKS.md.
# BENCH_REF: an earlier commit whose scan is timed beside this build's, so that BENCHMARKS.md
# tells a slower machine from slower code (1505432: the last full run of 2026-11-28).
BENCH_REF ?= 1505432
bench: $(TOOLS)/gitleaks
	$(GO) run ./internal/bench/cmd/benchcmp -out BENCHMARKS.md -ref '$(BENCH_REF)'

clean:
	rm -rf bin dist tools
