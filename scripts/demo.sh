#!/usr/bin/env bash
# make demo: a small lab in network namespaces (a node, five pods, an outside client), the
# nftproxy daemon running on examples/ inside the node namespace, real connections to a
# ClusterIP and a NodePort, a manifest change taking effect, then everything torn down.
# Nothing runs in the root network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
ID=$$
NODE="npx-demo-node-$ID"; CLIENT="npx-demo-cli-$ID"
PODS=(web-old-a:10.244.1.10:8080 web-old-b:10.244.2.10:8080 web-new:10.244.2.11:8081 gateway-a:10.244.1.20:8080 gateway-b:10.244.2.20:8080)
WORK=$(mktemp -d /tmp/nftproxy-demo.XXXXXX)
DAEMON=""
cleanup() {
  [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^npx-demo-.*-$ID$" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building the lab (namespaces $NODE, $CLIENT, npx-demo-p*-$ID)"
ip netns add "$NODE"
ip -n "$NODE" link set lo up
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
i=0
for spec in "${PODS[@]}"; do
  IFS=: read -r name ip port <<<"$spec"
  pod="npx-demo-p$i-$ID"
  ip netns add "$pod"
  ip -n "$NODE" link add "vp$i" type veth peer name eth0 netns "$pod"
  ip -n "$NODE" addr add 10.244.0.1/32 dev "vp$i"
  ip -n "$NODE" link set "vp$i" up
  ip -n "$NODE" route add "$ip/32" dev "vp$i"
  ip -n "$pod" link set lo up
  ip -n "$pod" link set eth0 up
  ip -n "$pod" addr add "$ip/32" dev eth0
  ip -n "$pod" route add 10.244.0.1/32 dev eth0
  ip -n "$pod" route add default via 10.244.0.1 dev eth0
  ip netns exec "$pod" node scripts/demo/pod-server.mjs "$name" "$port" &
  i=$((i + 1))
done
ip netns add "$CLIENT"
ip -n "$NODE" link add vc type veth peer name eth0 netns "$CLIENT"
ip -n "$NODE" addr add 192.168.0.2/24 dev vc
ip -n "$NODE" link set vc up
ip -n "$CLIENT" link set lo up
ip -n "$CLIENT" link set eth0 up
ip -n "$CLIENT" addr add 192.168.0.7/24 dev eth0
ip -n "$CLIENT" route add default via 192.168.0.2

cp -r examples "$WORK/manifests"
FLAGS=(--node node-a --cluster-cidr 10.244.0.0/16,fd00:10:244::/64 --service-cidr 10.96.0.0/12,fd00:10:96::/112)
echo
echo "== nftproxy run --manifests $WORK/manifests ${FLAGS[*]}   (inside $NODE)"
ip netns exec "$NODE" node bin/nftproxy.js run --manifests "$WORK/manifests" "${FLAGS[@]}" --min-sync-period 200ms --bpf off --socket "$WORK/nftproxy.sock" 2>"$WORK/daemon.log" &
DAEMON=$!
for _ in $(seq 50); do grep -q '"msg":"synced"' "$WORK/daemon.log" && break; sleep 0.1; done
grep '"msg":"synced"' "$WORK/daemon.log" | tail -1

echo
echo "== an outside client (192.168.0.7) connects 30 times to shop/web's ClusterIP and to gateway's NodePort"
ip netns exec "$CLIENT" node scripts/demo/client.mjs 10.96.0.10 80 30
ip netns exec "$CLIENT" node scripts/demo/client.mjs 192.168.0.2 30080 30

echo
echo "== the manifest changes: web-new (10.244.2.11) leaves shop/web"
# rewrite the web-new slice with no endpoints (the edit any editor would make)
awk '/name: web-new/ {slice = 1} slice && /^endpoints:/ {print "endpoints: []"; skip = 1; next} skip && /^- / {next} {skip = 0; print}' \
  "$WORK/manifests/web-clusterip.yaml" > "$WORK/w.yaml" && mv "$WORK/w.yaml" "$WORK/manifests/web-clusterip.yaml"
before=$(grep -c '"msg":"synced"' "$WORK/daemon.log")
for _ in $(seq 50); do [ "$(grep -c '"msg":"synced"' "$WORK/daemon.log")" -gt "$before" ] && break; sleep 0.1; done
grep '"msg":"synced"' "$WORK/daemon.log" | tail -1
ip netns exec "$CLIENT" node scripts/demo/client.mjs 10.96.0.10 80 30

echo
echo "== what the kernel holds for shop/web now (nft list map … endpoints-cluster-2)"
ip netns exec "$NODE" nft list map ip nftproxy endpoints-cluster-2 | grep -E '10\.96\.0\.10 \. tcp \. 80' | sed 's/^[[:space:]]*/  /'

echo
echo "== stopping the daemon (SIGTERM: rules stay), then nftproxy cleanup"
kill -TERM "$DAEMON"; wait "$DAEMON" || true; DAEMON=""
echo "  tables after stop:    $(ip netns exec "$NODE" nft list tables | tr '\n' ' ')"
ip netns exec "$NODE" node bin/nftproxy.js cleanup
echo "  tables after cleanup: $(ip netns exec "$NODE" nft list tables | tr '\n' ' ')"
echo
echo "demo done; the lab's namespaces are removed on exit."
