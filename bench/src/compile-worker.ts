// One whole-cluster compile in a fresh Node process (run with --expose-gc), so heap figures
// are not polluted by the harness: `node --expose-gc compile-worker.js N M SEED`. The daemon's
// path up to the bytes it sends: buildModel, compileParts, kernel objects (kernelFamily), and
// the full sync's netlink batch encoded in memory (nothing is sent). Prints one JSON line.
import { readFileSync } from 'node:fs';
import { buildModel } from '../../src/model/build-model.js';
import { compileParts, servicePortsOf } from '../../src/compile/compile.js';
import { kernelFamily } from '../../src/render/kernel/family.js';
import { fullOps } from '../../src/render/kernel/ops.js';
import { encodeBatch } from '../../src/apply/netlink/encode.js';
import { generate, snapshotObjects } from './workload.js';
import { proxyConfig } from './nftproxy.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const [n, m, seed] = process.argv.slice(2).map(Number) as [number, number, number];

const objects = snapshotObjects(generate(n, m, seed).snapshot).map((object) => ({ object }));
gc();
const t0 = performance.now();
const { model } = buildModel(objects);
const t1 = performance.now();
gc();
const heap0 = process.memoryUsage().heapUsed;
const t2 = performance.now();
const parts = compileParts(model, proxyConfig());
const t3 = performance.now();
const fams = parts.map(kernelFamily);
const t4 = performance.now();
const batch = encodeBatch(fullOps(fams, fams.map((f) => f.head)), 1);
const t5 = performance.now();
const heapPeakish = process.memoryUsage().heapUsed;
const batchMB = batch.bytes / 2 ** 20, ops = batch.ops;
gc();
const heapRetained = process.memoryUsage().heapUsed - heap0;
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
const servicePorts = servicePortsOf(parts).length;
process.stdout.write(JSON.stringify({
  buildMs: t1 - t0, compileMs: t3 - t2, objectsMs: t4 - t3, encodeMs: t5 - t4,
  heapUsedDeltaMB: (heapPeakish - heap0) / 2 ** 20, heapRetainedMB: heapRetained / 2 ** 20,
  rssPeakMB: hwm ? Number(hwm[1]) / 1024 : undefined,
  batchMB, ops, servicePorts,
}) + '\n');
void fams;
