// One compile + render measurement in a fresh Node process (run with --expose-gc), so heap
// figures are not polluted by the harness: `node --expose-gc compile-worker.js N M SEED`.
// Prints one JSON line.
import { readFileSync } from 'node:fs';
import { buildModel } from '../../src/model/build-model.js';
import { compile } from '../../src/compile/compile.js';
import { renderText } from '../../src/render/nft-text.js';
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
const ruleset = compile(model, proxyConfig());
const t3 = performance.now();
const text = renderText(ruleset);
const t4 = performance.now();
const heapPeakish = process.memoryUsage().heapUsed;
gc();
const heapRetained = process.memoryUsage().heapUsed - heap0;
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
const elements = ruleset.tables.reduce((a, t) => a + t.sets.reduce((b, s) => b + s.elements.length, 0), 0);
const rules = ruleset.tables.reduce((a, t) => a + t.chains.reduce((b, c) => b + c.rules.length, 0), 0);
process.stdout.write(JSON.stringify({
  buildMs: t1 - t0, compileMs: t3 - t2, renderMs: t4 - t3,
  heapUsedDeltaMB: (heapPeakish - heap0) / 2 ** 20, heapRetainedMB: heapRetained / 2 ** 20,
  rssPeakMB: hwm ? Number(hwm[1]) / 1024 : undefined,
  textMB: text.length / 2 ** 20, lines: countLines(text), servicePorts: ruleset.servicePorts.length, irRules: rules, irElements: elements,
}) + '\n');

function countLines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) n++;
  return n;
}
