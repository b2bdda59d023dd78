// nftproxy's full sync as a process of its own, so that its peak memory is a syncing
// process's and not the harness's: `node sync-worker.js N M SEED /run/netns/NAME`. The
// daemon's path (buildModel, compileParts, kernel objects, Applier.sync full through the
// product's netlink writer into that namespace), timed around the writer's commit (kernel
// objects in -> the kernel's last acknowledgement). Prints one JSON line.
import { readFileSync } from 'node:fs';
import { buildModel } from '../../src/model/build-model.js';
import { compileParts } from '../../src/compile/compile.js';
import { kernelFamily } from '../../src/render/kernel/family.js';
import { Applier } from '../../src/apply/applier.js';
import { generate, snapshotObjects } from './workload.js';
import { MeasuringWriter, proxyConfig } from './nftproxy.js';

const [n, m, seed] = process.argv.slice(2, 5).map(Number) as [number, number, number];
const netns = process.argv[5];
if (!netns) throw new Error('usage: sync-worker.js N M SEED /run/netns/NAME');

const objects = snapshotObjects(generate(n, m, seed).snapshot).map((object) => ({ object }));
const t0 = performance.now();
const { model } = buildModel(objects);
const t1 = performance.now();
const parts = compileParts(model, proxyConfig());
const t2 = performance.now();
const fams = parts.map(kernelFamily);
const t3 = performance.now();
const writer = new MeasuringWriter(netns);
const res = await new Applier(writer).sync(fams, { full: true });
const t4 = performance.now();
await writer.close();
const status = readFileSync('/proc/self/status', 'utf8');
const kb = (f: string): number => Number(new RegExp(`${f}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
process.stdout.write(JSON.stringify({
  modelMs: t1 - t0, compileMs: t2 - t1, objectsMs: t3 - t2, syncMs: t4 - t3, writerMs: writer.totalMs,
  ops: res.ops, bytes: writer.lastBytes, hwmMB: kb('VmHWM') / 1024, rssMB: kb('VmRSS') / 1024,
}) + '\n');
