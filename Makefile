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

typecheck: deps
	npx tsc -p tsconfig.json --noEmit

# The whole suite; ends with one line "N passed, N failed, N skipped".
test: build
	@rm -f .test-results.json
	@npx vitest run --reporter=default --reporter=json --outputFile=.test-results.json; rc=$$?; \
	 node scripts/test-summary.mjs .test-results.json; exit $$rc

# Compile examples/, print the ruleset, load it into a throwaway network namespace.
demo: build
	@bash scripts/demo.sh

clean:
	rm -rf dist .test-results.json

# nftproxy against upstream kube-proxy's layouts (root; everything inside network namespaces
# the bench creates and removes). QUICK=1: small sizes, under 2 minutes. Results and plots in
# bench/results/<timestamp>/; the summary is printed at the end.
.PHONY: bench
bench: build
	npx tsc -p bench/tsconfig.json
	node --max-old-space-size=12288 bench/dist/bench/src/main.js $(if $(filter-out 0,$(QUICK)),--quick,)
