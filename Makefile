# ec2sec: `make build`, `make test`, `make bench`.
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

.PHONY: build test vet tools bench clean
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ec2sec

tools: $(TOOLS)/ec2-metadata-mock $(TOOLS)/gitleaks
$(TOOLS)/ec2-metadata-mock:
	GOBIN=$(TOOLS) $(GO) install $(METADATA_MOCK)
$(TOOLS)/gitleaks:
	GOBIN=$(TOOLS) $(GO) install $(GITLEAKS)

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...

test: vet tools
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin dist tools
