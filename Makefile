# storecrypt. `make demo` runs the whole flow on this machine (event -> launch function ->
# the synthesized SSM document in a QEMU guest -> result function); `make test` runs every test.
# Both install what they lack on Debian/Ubuntu as root (scripts/install-deps.sh).
SHELL   := bash
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BIN     := bin
LINT    := $(BIN)/golangci-lint
LINT_VERSION := v2.15.0
CDK     := node_modules/.bin/cdk
# jsii warns on every run under node 20; the CLI would otherwise phone home.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: all build test lint demo bench deps synth publish release deploy destroy integ mutants clean

all: build

## build: the agent for linux/amd64 and linux/arm64 (static, a .sha256 and a .gz beside
## each: instances download the .gz) and each function's bootstrap for provided.al2023 on
## arm64, into bin/ (cmd/storecrypt-build: the construct builds the same way)
# The go command knows when to rebuild; make does not see Go's inputs, so build always runs.
build:
	@$(GO) run ./cmd/storecrypt-build -o $(BIN) -version $(VERSION)

## deps: install the packages the tests and the demo need (Debian/Ubuntu, root)
deps:
	@bash scripts/install-deps.sh

## lint: gofmt, go vet, golangci-lint; the integration test (build tag integ) is compiled and vetted too
lint: $(LINT)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integ ./test/integ
	$(GO) test -tags integ -c -o /dev/null ./test/integ
	$(LINT) run ./...
	$(LINT) run --build-tags integ ./test/integ

$(LINT):
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VERSION)

## synth: the CloudFormation template into cdk.out (no AWS account needed)
synth: $(CDK) build
	$(CDK) synth -q --no-notices

## publish: dist/, for an organization-wide StackSet: the template (no CDK assets or
## bootstrap) and the code objects to upload to each region's bucket (docs/organizations.md)
publish: $(CDK) build
	rm -rf dist
	$(CDK) synth -q --no-notices -c publish=dist -o .cache/publish.out

## release: release/storecrypt-$(VERSION).tar.gz, what an organization deploys without Go or Node:
## dist/ under code/, the CLI for RELEASE_PLATFORMS under bin/, and SHA256SUMS (sha256sum -c);
## the same tree gives the same bytes. `storecrypt stage --release` uploads it (docs/organizations.md)
RELEASE_PLATFORMS ?= linux/amd64,linux/arm64,darwin/arm64
release: publish
	$(GO) run ./cmd/storecrypt-release -dist dist -o release -version $(VERSION) -platforms $(RELEASE_PLATFORMS)

## deploy: deploy the stack with the credentials in your environment (see README)
deploy: $(CDK) build
	$(CDK) deploy --require-approval broadening --no-notices

## destroy: delete the stack; the key and the buckets are retained (see docs/deploy.md, Tear down)
destroy: $(CDK)
	$(CDK) destroy --no-notices

# npm ci installs every pinned node tool of package.json: the CDK CLI, dynalite and
# iam-simulate (test/iamsim); make test reaches it through synth. The CLI ships Go init
# templates; a go.mod in node_modules makes it another module, so ./... (go vet, go test,
# golangci-lint) does not descend into it.
# A worktree may link node_modules to another checkout's: npm ci would empty that one
# through the link, so a link is left as it is.
$(CDK): package.json package-lock.json
	@if [ -L node_modules ]; then echo "make: node_modules links to $$(readlink node_modules); not reinstalling through the link (npm ci there)"; else \
		npm ci --no-audit --no-fund --loglevel=error && printf 'module node_modules\n' > node_modules/go.mod && touch $@; fi

## integ: deploy to the account in your environment, encrypt one real instance, tear it all down (see docs/contributing.md)
integ: build $(CDK)
	$(GO) test -tags integ -count=1 -timeout 60m -v ./test/integ

## test: lint and every test, the real-kernel ones included (CI=true makes a missing QEMU fail):
## go test ./..., with the packages that boot a guest one at a time from the start, lint and
## synth beside them, then the other packages (test/cmd/gotest); the agent is built once; the
## ten slowest tests are printed at the end. (The sub-make is spelled `make`, not $(MAKE),
## so that `make -n test` prints the line rather than running the suite.)
test: deps $(CDK) build
	STORECRYPT_AGENT=$(CURDIR)/$(BIN)/storecrypt-agent-linux-amd64 $(GO) run ./test/cmd/gotest -timeout 40m \
		-first 'make --no-print-directory lint synth' ./...

## mutants: remove or weaken each docs/security.md row's control in turn (test/mutants) and
## check that its test fails (ARGS=-guest adds those only a QEMU test kills, ARGS='-row ...' picks rows)
mutants: $(CDK)
	$(GO) run ./test/mutants/cmd/mutants $(ARGS)

## bench: every benchmark at full size (the fleet revoke's ledger in dynalite: node_modules); rewrites docs/benchmarks.md and docs/bench/ (~10 min)
bench: deps $(CDK) build
	$(GO) run ./test/bench/cmd/bench

## demo: the whole flow with no AWS account: a running event through the launch function, the
## synthesized document run by an SSM fake in the guest, the result function, status and report
demo: deps synth
	$(GO) run ./test/demo

clean:
	rm -rf $(BIN) .cache cdk.out dist release node_modules examples/typescript/node_modules
