# storecrypt. `make demo` shows the agent on a real kernel; `make test` runs every test.
# Both install what they lack on Debian/Ubuntu as root (scripts/install-deps.sh).
SHELL   := bash
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BIN     := bin
LINT    := $(BIN)/golangci-lint
LINT_VERSION := v2.15.0
AGENT_LDFLAGS := -s -w -X github.com/storecrypt/storecrypt/instance-agent/cli.Version=$(VERSION)
# The guest image (kernel + initramfs) is built once and kept here.
export STORECRYPT_VM_CACHE ?= $(CURDIR)/.cache/vm

.PHONY: all build test lint demo deps clean

all: build

AGENTS := $(BIN)/storecrypt-agent-linux-amd64 $(BIN)/storecrypt-agent-linux-arm64

FUNCTIONS := $(BIN)/functions/launch/bootstrap $(BIN)/functions/result/bootstrap

## build: the agent for linux/amd64 and linux/arm64 (static, a .sha256 beside each) and
## each function's bootstrap for provided.al2023 on arm64
build: $(AGENTS:=.sha256) $(FUNCTIONS)

# FORCE: the go command knows when to rebuild; make does not see Go's inputs.
$(AGENTS): $(BIN)/storecrypt-agent-linux-%: FORCE
	@mkdir -p $(BIN)
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags '$(AGENT_LDFLAGS)' -o $@ ./instance-agent/cmd/storecrypt-agent

# lambda.norpc: provided.al2023 speaks only the Runtime API; the RPC mode is dead weight.
$(FUNCTIONS): $(BIN)/functions/%/bootstrap: FORCE
	@mkdir -p $(dir $@)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -tags lambda.norpc -ldflags '-s -w' -o $@ ./functions/$*

$(AGENTS:=.sha256): %.sha256: %
	cd $(BIN) && sha256sum $(notdir $*) > $(notdir $@)

FORCE:

## deps: install the packages the tests and the demo need (Debian/Ubuntu, root)
deps:
	@bash scripts/install-deps.sh

## lint: gofmt, go vet, golangci-lint
lint: $(LINT)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(LINT) run ./...

$(LINT):
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VERSION)

## test: lint, then every test, the real-kernel ones included (CI=true makes a missing QEMU fail)
test: deps lint build
	$(GO) test -timeout 40m ./...

## demo: the agent's life on the test guest: apply, write, reboot, unlock, read back, status
demo: deps
	$(GO) run ./test/demo

clean:
	rm -rf $(BIN) .cache cdk.out
