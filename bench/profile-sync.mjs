// Where a partial sync's time goes at 10k services x 10 endpoints, without nft: build the
// model, compile (per-service memory), and the incremental diff, for 7 one-slice changes.
// After `make build` and `npx tsc -p bench/tsconfig.json`:  node bench/profile-sync.mjs
import { generate, toObjects } from './dist/bench/src/workload.js';
import { buildModel } from '../dist/src/model/build-model.js';
import { compileParts } from '../dist/src/compile/compile.js';
import { IncrementalTable } from '../dist/src/apply/incremental.js';
import { parseIP, parseCidr } from '../dist/src/model/ip.js';
const g = generate(10000, 10);
let objects = g.snapshot.services.flatMap((s) => toObjects(s)).map((object) => ({ object }));
const cfg = { nodeName: 'node-0', nodeIPs: [parseIP('192.168.0.2').value], nodeLabels: {}, clusterCIDRs: [parseCidr('10.128.0.0/9').value], serviceCIDRs: [], nodePortAddresses: { kind: 'primary' }, masqueradeAll: false, proxyName: 'nftproxy' };
let inc;
for (let round = 0; round < 8; round++) {
  if (round > 0) { const i = 1 + round * 7; const o = structuredClone(objects[2 * i + 1].object); o.endpoints[0].addresses = [`10.200.${round}.1`]; objects = objects.slice(); objects[2 * i + 1] = { object: o }; }
  const a0 = performance.now();
  const m = buildModel(objects);
  const a1 = performance.now();
  const parts = compileParts(m.model, cfg);
  const a2 = performance.now();
  let ops = 0;
  if (!inc) inc = parts.map((p) => IncrementalTable.fromParts(p));
  else { const ds = parts.map((p, i) => inc[i].delta(p)); for (const d of ds) { ops += d.ops; d.commit(); } }
  const a3 = performance.now();
  console.log(`round ${round}: model ${(a1-a0).toFixed(1)} compileParts ${(a2-a1).toFixed(1)} delta ${(a3-a2).toFixed(1)} ms ops ${ops}`);
}
