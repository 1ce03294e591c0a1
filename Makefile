# signerd — see README.md. Quick start: `make demo`, then `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := build

GO            ?= go
COMETBFT_VERSION := v0.38.26
CACHE         ?= $(HOME)/.cache/signerd
COMETBFT_DIR  := $(CACHE)/cometbft-$(COMETBFT_VERSION)
COMETBFT      := $(COMETBFT_DIR)/cometbft
SIGNERD       := bin/signerd
TEST_TIMEOUT  ?= 45m
FUZZTIME      ?= 20s
DEMO_BLOCKS   ?= 0
DEMO_HOME     ?= $(CACHE)/demo

export SIGNERD_COMETBFT := $(COMETBFT)

.PHONY: build test lint vet fmt-check cometbft demo bench fuzz clean

build: ## build bin/signerd
	$(GO) build -o $(SIGNERD) ./cmd/signerd

# The CometBFT node used by end-to-end tests, the demo and the benchmarks, built
# from the module proxy outside this module (its version never enters go.mod).
cometbft: $(COMETBFT)
$(COMETBFT):
	@mkdir -p $(COMETBFT_DIR)
	cd $(COMETBFT_DIR) && GOBIN=$(COMETBFT_DIR) GOFLAGS= $(GO) install github.com/cometbft/cometbft/cmd/cometbft@$(COMETBFT_VERSION)
	@$(COMETBFT) version

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint: vet fmt-check

test: cometbft lint ## every test, race detector on; SoftHSM/nftables/root tests skip locally with a reason, fail under CI=true
	$(GO) test -race -timeout $(TEST_TIMEOUT) -count=1 ./...

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

demo: cometbft build ## a real single-validator chain signed by signerd through SoftHSM; DEMO_BLOCKS=N stops after N blocks
	@COMETBFT=$(COMETBFT) SIGNERD=$(SIGNERD) DEMO_HOME=$(DEMO_HOME) DEMO_BLOCKS=$(DEMO_BLOCKS) bash scripts/demo.sh

# Benchmarks (issue 4; see bench/RESULTS.md). Several minutes; never part of `make test`.
# BENCH_FLAGS passes harness flags, e.g. BENCH_FLAGS='-runs 1 -chain-duration 5s -sections latency'.
BENCH         := bin/signerd-bench
BENCH_OUT     ?= bench/RESULTS.md
BENCH_FLAGS   ?=

bench: cometbft build ## floor, sign round trips vs FilePV, chain blocks/s, multi-chain, memory; writes BENCH_OUT
	$(GO) build -o $(BENCH) ./bench/cmd/signerd-bench
	$(BENCH) -signerd $(SIGNERD) -cometbft $(COMETBFT) -out $(BENCH_OUT) $(BENCH_FLAGS)

clean:
	rm -rf bin
