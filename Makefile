# Tollgate build targets. `make test` is the command the README and CI use.
GO      ?= go
BIN     := $(CURDIR)/.bin
TOOLS   := -modfile=tools/go.mod

.PHONY: test build proto lint-proto tools fuzz bench console

test:
	$(GO) test -race -count=1 ./...

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# Protobuf tooling runs offline: buf and the plugins are built from tools/go.mod.
tools:
	GOBIN=$(BIN) $(GO) install $(TOOLS) tool

lint-proto: tools
	PATH=$(BIN):$$PATH buf lint

proto: lint-proto
	PATH=$(BIN):$$PATH buf generate

# The web console's assets (server/console/dist, embedded in the binary and committed, so go build needs
# no npm): installs the locked npm packages of console/ and bundles them with esbuild.
console:
	cd console && npm ci && npm run build

# Every fuzz target for a bounded time each (FUZZTIME, default 10s); fails if any target fails.
fuzz:
	scripts/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Side-by-side benchmark against stock OPA (issue 6): builds both servers, checks they decide the corpus
# identically, drives each at 16 and 64 concurrent requests, beside Tollgate with its audit log in
# PostgreSQL (issue 13; PERF_FLAGS=-skip-postgres to leave it out, -postgres URL for another server),
# runs the in-process floor and scale benchmarks and writes docs/performance.md. About 6 minutes;
# loopback only.
.PHONY: perf
perf:
	$(GO) run ./test/perf/cmd/perfrun -out docs/performance.md $(PERF_FLAGS)
