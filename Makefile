# nftproxy. Every target installs what it is missing first (root, Debian 12, Node 20+).
SHELL := /bin/bash
APT_PKGS := nftables iproute2 conntrack
NODE_FLAGS :=

.PHONY: all deps build test demo clean typecheck

all: build

# System packages (only when a tool is missing) and the locked npm dependencies.
deps:
	@missing=""; command -v nft >/dev/null || missing="$$missing nftables"; \
	 command -v ip >/dev/null || missing="$$missing iproute2"; \
	 command -v conntrack >/dev/null || missing="$$missing conntrack"; \
	 command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	 if [ -n "$$missing" ]; then \
	   echo "installing:$$missing"; \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	 fi
	@[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund

build: deps
	npx tsc -p tsconfig.json
	npx tsc -p native/tsconfig.json

# src/ and native/, the suite (test/tsconfig.json) and the bench harness.
typecheck: deps
	npx tsc -p tsconfig.json --noEmit
	npx tsc -p native/tsconfig.json --noEmit
	npx tsc -p test/tsconfig.json --noEmit
	npx tsc -p bench/tsconfig.json --noEmit

# The whole suite; ends with one line "N passed, N failed, N skipped". The suite and the
# bench are type-checked first (vitest strips types without checking them).
test: build
	@rm -f .test-results.json .test-results-smoke.json
	npx tsc -p test/tsconfig.json --noEmit
	npx tsc -p bench/tsconfig.json
	@npx vitest run --reporter=default --reporter=json --outputFile=.test-results.json; rc=$$?; \
	 npx vitest run --config vitest.smoke.config.ts --reporter=default --reporter=json --outputFile=.test-results-smoke.json || rc=1; \
	 node scripts/test-summary.mjs .test-results.json .test-results-smoke.json; exit $$rc

# Compile examples/, print the ruleset, load it into a throwaway network namespace.
demo: build
	@bash scripts/demo.sh

clean:
	rm -rf dist bench/dist .test-results.json .test-results-smoke.json

# nftproxy against upstream kube-proxy's layouts (root; everything inside network namespaces
# the bench creates and removes). QUICK=1: small sizes, under 2 minutes. Results and plots in
# bench/results/<timestamp>/; the summary is printed at the end.
.PHONY: bench
bench: build
	npx tsc -p bench/tsconfig.json
	node --expose-gc --max-old-space-size=12288 bench/dist/bench/src/main.js $(if $(filter-out 0,$(QUICK)),--quick,)

# The eBPF socket load balancer (bpf/*.c -> bpf/*.o), shipped precompiled: run this only after
# changing bpf/. Byte-reproducible (relative source paths, -fdebug-prefix-map): the same
# sources and clang give the same objects anywhere. BPF_OUT=DIR builds into DIR instead (what
# test/bpf/object.test.ts does); only a build into bpf/ rewrites bpf/SHA256SUMS.
BPF_OUT ?= bpf
BPF_SRCS := bpf/sock_lb.c bpf/sock_destroy.c
BPF_FLAGS := -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu -Wall -Werror
.PHONY: bpf
bpf:
	@command -v clang >/dev/null && [ -f /usr/include/bpf/bpf_helpers.h ] || { echo "installing: clang libbpf-dev"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libbpf-dev >/dev/null; }
	@mkdir -p "$(BPF_OUT)"
	@set -e; cd "$(CURDIR)"; for src in $(BPF_SRCS); do obj="$(BPF_OUT)/$$(basename $$src .c).o"; \
	  echo "clang $(BPF_FLAGS) -fdebug-prefix-map=\$$PWD=. -c $$src -o $$obj"; \
	  clang $(BPF_FLAGS) -fdebug-prefix-map="$(CURDIR)"=. -c $$src -o $$obj; done
	@if [ "$(BPF_OUT)" = bpf ]; then cd "$(CURDIR)" && { \
	  echo "# Written by \`make bpf\`: the objects below were built from exactly the sources above them,"; \
	  echo "# with $$(clang --version | head -1) and: $(BPF_FLAGS) -fdebug-prefix-map=\$$PWD=."; \
	  echo "# Check with: sha256sum -c bpf/SHA256SUMS (test/bpf/object.test.ts also rebuilds and compares)."; \
	  sha256sum bpf/nftproxy_maps.h $(BPF_SRCS) $(patsubst %.c,%.o,$(BPF_SRCS)); } > bpf/SHA256SUMS && cat bpf/SHA256SUMS; fi
