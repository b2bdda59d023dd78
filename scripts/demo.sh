#!/usr/bin/env bash
# make demo: compile examples/ for node-a, print the ruleset, load it into a throwaway
# network namespace, show what the kernel holds, explain two packets, remove the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
NS="npx-demo-$$"
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
FLAGS=(-f examples/ --node node-a --cluster-cidr 10.244.0.0/16,fd00:10:244::/64 --service-cidr 10.96.0.0/12,fd00:10:96::/112)
echo "== nftproxy dump ${FLAGS[*]}"
node bin/nftproxy.js dump "${FLAGS[@]}" > /tmp/nftproxy-demo.nft
cat /tmp/nftproxy-demo.nft
echo
echo "== loading it into network namespace $NS (the root namespace is not touched)"
ip netns add "$NS"
ip netns exec "$NS" nft -f /tmp/nftproxy-demo.nft
ip netns exec "$NS" nft list tables
echo "chains: $(ip netns exec "$NS" nft list chains | grep -c 'chain ')"
echo
echo "== nftproxy explain: a pod connects to shop/web's ClusterIP"
node bin/nftproxy.js explain "${FLAGS[@]}" --src 10.244.1.5 --dst 10.96.0.10:80
echo
echo "== nftproxy explain: the same from outside the cluster"
node bin/nftproxy.js explain "${FLAGS[@]}" --src 203.0.113.7 --dst 10.96.0.10:80
echo
echo "demo done; namespace $NS removed."
