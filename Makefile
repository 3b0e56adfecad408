SHELL := /bin/bash
# redlease — the two set-up commands are `make demo` and `make test`.
GO ?= go
export GOFLAGS ?= -buildvcs=false

.PHONY: demo test test-short test-faults nemesis test-cluster fuzz bench vet lint

## demo: a short tour against an embedded Redis (miniredis in-process), or
## the server at $REDIS_ADDR when set.
demo:
	$(GO) run ./examples/demo

## test: vet plus every test with the race detector against real redis-server
## processes the tests start themselves (skipped loudly without redis-server
## unless REDLEASE_REQUIRE_REDIS=1) — the redleaseotel module's too — plus a
## short run of each fuzz target, and the allocation budgets (without the
## race detector, which allocates on its own).
test: vet
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -count=1 -run '^TestAllocsPerPair$$' ./mutex/
	cd redleaseotel && $(GO) test -race -count=1 -timeout 10m ./...
	$(MAKE) fuzz FUZZTIME=50000x

## vet: go vet on the main module and on redleaseotel (its own module).
vet:
	$(GO) vet ./...
	cd redleaseotel && $(GO) vet ./...

## lint: golangci-lint v2 with .golangci.yml (govet, staticcheck, errcheck,
## revive, ...) on both modules; installs the pinned version into $(go env GOPATH)/bin if
## missing.
GOLANGCI_LINT_VERSION ?= v2.15.0
lint:
	@command -v golangci-lint >/dev/null 2>&1 || [ -x "$$($(GO) env GOPATH)/bin/golangci-lint" ] || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" golangci-lint run ./...
	cd redleaseotel && PATH="$$($(GO) env GOPATH)/bin:$$PATH" golangci-lint run ./...

test-short:
	$(GO) test -race -short -count=1 ./...
	cd redleaseotel && $(GO) test -race -short -count=1 ./...

## test-faults: the fault-injection scenarios (build tag "faults"), without
## the race detector: they measure timing (how late Lost closes), and the race
## detector slows the process enough to act like a pause (see RELIABILITY.md).
## Goroutine leaks are still checked (goleak).
test-faults:
	$(GO) test -count=1 -tags faults -timeout 20m -v -run 'Fault' ./internal/faults/ 2>&1 | tee faults.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|RESULT|violation'; test $${PIPESTATUS[0]} -eq 0

## nemesis: the randomized fault nemesis alone (TestFaultNemesis, also part of
## test-faults with a 20s run) for SECONDS seconds with seed SEED. Every run
## logs its seed; the same SEED replays the same schedule of operations and
## faults (the timing still varies). An empty SEED picks a random one.
SECONDS ?= 120
SEED ?=
nemesis:
	NEMESIS_SECONDS=$(SECONDS) NEMESIS_SEED=$(SEED) $(GO) test -count=1 -tags faults -timeout $$(( $(SECONDS) + 600 ))s -v -run '^TestFaultNemesis$$' ./internal/faults/ 2>&1 | tee nemesis.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|RESULT|violation|seed'; test $${PIPESTATUS[0]} -eq 0

## test-cluster: Redis Cluster and Sentinel deployments (also part of make test).
test-cluster:
	$(GO) test -race -count=1 -timeout 20m -run 'Cluster|Sentinel' ./...

# An execution count, not a duration: a -fuzztime duration sometimes ends a
# clean run with "context deadline exceeded" when the deadline catches a
# worker mid-exchange (seen in CI here); a count has no deadline.
FUZZTIME ?= 200000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzFor$$' -fuzztime $(FUZZTIME) ./internal/keys/
	$(GO) test -run '^$$' -fuzz '^FuzzParseReplies$$' -fuzztime $(FUZZTIME) ./internal/core/
	$(GO) test -run '^$$' -fuzz '^FuzzNew$$' -fuzztime $(FUZZTIME) ./mutex/

## bench: side-by-side benchmarks against peers (bench/ is its own module).
bench:
	cd bench && $(GO) run . 
