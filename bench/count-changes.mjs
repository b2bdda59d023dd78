// Endpoint-count changes through the daemon's path, by kind: the bench's own workload at
// 10k services x 10 endpoints, its incremental compiler, kernel objects and Applier, with its
// MeasuringWriter (the writer's part: transactions in -> the kernel's last ack), in a
// throwaway namespace. The bench's partial phase measures one kind (M -> M-1, a count no
// other service uses, and back); this one measures all four, one service after another:
//   into a count other services use (10 -> 9, one service kept at 9 throughout),
//   out of it, the count still used (9 -> 10),
//   into a count no other service uses but next to one in use (10 -> 8: its group is a spare,
//     render/kernel/spares.ts, made beforehand),
//   back, that count left unused (8 -> 10: its group stays, a spare of 9),
//   into a count with no group (10 -> 6: the group is made, the kernel validates the table),
//   back (6 -> 10: its group and its spares 5 and 7 are removed).
// Between two changes the spares the first left wanted are made, untimed, as the daemon
// makes them after a change's ack; their own time is printed last.
// After `make build` and `npx tsc -p bench/tsconfig.json`, as root:
//   node bench/count-changes.mjs [changes per kind, default 15] [services, default 10000]
import { execa } from 'execa';
import { Applier } from './dist/src/apply/applier.js';
import { IncrementalCompiler } from './dist/src/compile/incremental-compile.js';
import { kernelFamilyUpdate } from './dist/src/render/kernel/family.js';
import { generate } from './dist/bench/src/workload.js';
import { MeasuringWriter, ModelEditor, modelOf, proxyConfig } from './dist/bench/src/nftproxy.js';

const n = Number(process.argv[2] ?? 15);
const services = Number(process.argv[3] ?? 10000);
const ns = `npcount-${process.pid}`;
await execa('ip', ['netns', 'add', ns]);
let writer;
try {
  const gen = generate(services, 10, 42);
  const editor = new ModelEditor(modelOf(gen.snapshot));
  const cfg = proxyConfig();
  writer = new MeasuringWriter(`/run/netns/${ns}`, true);
  const applier = new Applier(writer);
  const compiler = new IncrementalCompiler();
  const serviceOf = (ref) => editor.service(ref);
  let comp = compiler.update(editor.current, cfg, 'all', serviceOf);
  let kernel = comp.parts.map((p) => kernelFamilyUpdate(undefined, p, 'all'));
  await applier.sync(kernel, { full: true });
  // plain ClusterIP services (no session affinity: theirs is a chain's rules, not a dispatch entry)
  const plain = gen.snapshot.services.filter((s) => s.type === 'ClusterIP' && !s.affinity && s.endpoints.length === 10).slice(1, n + 2);
  if (plain.length < n + 1) throw new Error(`only ${plain.length} plain services with 10 endpoints`);
  const spares = [];
  const step = async (svc, endpoints) => {
    const model = editor.apply({ kind: 'endpoint', before: svc, after: { ...svc, endpoints }, index: 0 });
    writer.reset();
    if (await applier.makeSpares()) spares.push(writer.totalMs);
    writer.reset();
    const t0 = performance.now();
    comp = compiler.update(model, cfg, new Set([`${svc.ns}/${svc.name}`]), serviceOf);
    kernel = comp.parts.map((p, k) => kernelFamilyUpdate(kernel[k], p, comp.changed));
    const r = await applier.sync(kernel);
    if (r.kind !== 'partial') throw new Error(`a ${r.kind} sync`);
    return { e2e: performance.now() - t0, writer: writer.totalMs, tx: r.transactions };
  };
  const kinds = {
    'into a count in use (10 -> 9)': [], 'out, the count still used (9 -> 10)': [],
    'into a spare (10 -> 8)': [], 'back, the count left unused (8 -> 10)': [],
    'into a count with no group (10 -> 6)': [], 'back, its group removed (6 -> 10)': [],
  };
  const rows = Object.values(kinds);
  await step(plain[0], plain[0].endpoints.slice(0, 9));
  for (const s of plain.slice(1)) {
    rows[0].push(await step(s, s.endpoints.slice(0, 9)));
    rows[1].push(await step(s, s.endpoints));
    rows[2].push(await step(s, s.endpoints.slice(0, 8)));
    rows[3].push(await step(s, s.endpoints));
    rows[4].push(await step(s, s.endpoints.slice(0, 6)));
    rows[5].push(await step(s, s.endpoints));
  }
  const q = (a, p) => { const b = [...a].sort((x, y) => x - y); return b[Math.min(b.length - 1, Math.floor(p * b.length))]; };
  const ms = (x) => `${x.toFixed(2)} ms`;
  console.log(`${services} services x 10 endpoints, ${n} changes per kind; writer = transactions in -> last ack; end to end = compile of the service + objects + differ + writer`);
  for (const [what, v] of Object.entries(kinds)) {
    const w = v.map((x) => x.writer), e = v.map((x) => x.e2e);
    console.log(`${what.padEnd(38)} writer p50 ${ms(q(w, 0.5))}, max ${ms(Math.max(...w))}; end to end p50 ${ms(q(e, 0.5))}; transactions ${q(v.map((x) => x.tx), 0.5)}`);
  }
  if (spares.length) console.log(`${'spares made between changes'.padEnd(38)} writer p50 ${ms(q(spares, 0.5))}, max ${ms(Math.max(...spares))}; ${spares.length} times (untimed above)`);
} finally {
  await writer?.close();
  await execa('ip', ['netns', 'del', ns]);
}
