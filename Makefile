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

# The Temporal CLI pinned by issue 18, built once from the Go module proxy (about 5 minutes on 2 cores)
# into a per-user cache outside the repository, so clean clones and `git clean` reuse it. Its dev
# server is the real Temporal that demo-temporal and test-temporal run the example against.
TEMPORAL_VERSION := v1.5.1
TEMPORAL_CLI     ?= $(HOME)/.cache/tollgate/temporal-$(TEMPORAL_VERSION)/temporal

.PHONY: temporal-cli demo-temporal test-temporal
temporal-cli: $(TEMPORAL_CLI)

$(TEMPORAL_CLI):
	GOBIN=$(dir $@) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

# Procure-to-pay on Temporal, governed by Tollgate (examples/temporal): starts the Temporal dev server,
# Tollgate and the worker on loopback, runs 100 workflows (N=…), prints their outcomes and one
# workflow's decisions, and stops what it started. Files in .bin/demo-temporal/.
demo-temporal: temporal-cli
	TEMPORAL_CLI=$(TEMPORAL_CLI) examples/temporal/demo.sh

# The example's test against a real Temporal dev server: 20 workflows, a killed worker, failures
# injected after decisions were answered; fails (not skips) without the Temporal CLI.
test-temporal: temporal-cli
	cd examples/temporal && $(GO) vet ./... && \
	  TEMPORAL_CLI=$(TEMPORAL_CLI) TOLLGATE_REQUIRE_TEMPORAL=1 $(GO) test -race -count=1 ./...

# Issue 14's start-up case, measured: fills a real SQLite audit store with 1,000,000 INVOICE.POST
# decisions over 30 days (plus 250,000 of other actions; about 3 GB in a temp dir), then times
# history.Rebuild over the pack's views with one store reader and with RebuildReaders, and reports the
# heap per tracked decision. About 5 minutes on 2 CPUs. docs/history.md has the figures.
.PHONY: perf-history
perf-history:
	TOLLGATE_PERF=1 $(GO) test -run '^$$' -bench BenchmarkRebuildMillion -benchtime 1x -timeout 60m ./server/history/
