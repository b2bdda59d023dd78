// results.json, summary.md, sync-time.svg, conn-rate.svg; and the targets (MET / MISSED with
// the measured ratio; the test suite never enforces them).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sameSize, sizeLabel } from './plan.js';
import { fmtMB, fmtMs, fmtDur, median } from './stats.js';
import { barChart, lineChart, type Series } from './svg.js';
import type { DaemonRun, FullSyncRow, PartialRow, Results, Stats, TargetRow } from './results.js';
import type { Size } from './plan.js';

type Row = TargetRow;
const NM = (name: string, threshold: string, note?: string): Row => ({ name, threshold, measured: '–', status: 'NOT MEASURED', ...(note ? { note } : {}) });
/** measured ≤ limit: MET */
function atMost(name: string, threshold: string, value: number | undefined, limit: number, measured: (v: number) => string, note?: string, missing?: string): Row {
  if (value === undefined || !Number.isFinite(value)) return NM(name, threshold, missing ?? note);
  return { name, threshold, ratio: value / limit, measured: measured(value), status: value <= limit ? 'MET' : 'MISSED', ...(note ? { note } : {}) };
}
const ratioText = (a: number, b: number): string => (a / b >= 1 ? `${(a / b).toFixed(a / b >= 10 ? 0 : 1)}×` : `1/${(b / a).toFixed(b / a >= 10 ? 0 : 1)}`);

/** The target size's partial-sync rows of nftproxy and the CLI. */
export function partialAt(r: Results, size: Size): { np?: PartialRow; cli?: PartialRow } {
  const p = r.partial.find((x) => sameSize(x.size, size));
  return { np: p?.rows.find((x) => x.loader === 'nftproxy'), cli: p?.rows.find((x) => x.loader === 'nft-cli') };
}
export const daemonRun = (r: Results, size: Size, source: 'manifests' | 'api'): DaemonRun | undefined => r.daemon?.runs.find((x) => sameSize(x.size, size) && x.source === source);
const fsRow = (r: Results, id: string, size: Size): FullSyncRow | undefined => r.fullSync.find((x) => x.loader === id && sameSize(x.size, size));

export function computeTargets(r: Results): TargetRow[] {
  const plan = r.meta.plan;
  const T = plan.target;
  const at = sizeLabel(T);
  const q = plan.quick || !sameSize(T, { n: 10_000, m: 10 }) ? `measured at ${at}; the targets are defined at 10k×10` : undefined;
  const out: Row[] = [];

  // --- issue 13: the writer against the nft CLI, same objects, same run ---
  const { np, cli } = partialAt(r, T);
  const w1 = np?.writer?.endpoint, wc = np?.writer?.count, c1 = cli?.kinds.endpoint, cc = cli?.kinds.count;
  out.push(atMost(`13: writer, one-endpoint change p50 (transactions in → last kernel ack), ${at}`, '≤ 0.5 ms', w1?.p50, 0.5, (v) => `${fmtMs(v)} (p99 ${fmtMs(w1!.p99)}, n=${w1!.n}, ${np?.txP50?.endpoint ?? '?'} transactions)`, q));
  out.push(atMost(`13: writer, endpoint-count change p50 (ordered transactions), ${at}`, '≤ 3 ms', wc?.p50, 3, (v) => `${fmtMs(v)} (p99 ${fmtMs(wc!.p99)}, n=${wc!.n}, ${np?.txP50?.count ?? '?'} transactions)`, q));
  out.push(atMost(`13: writer ÷ nft CLI, one-endpoint change (p50, the same transactions)`, '≤ 1/20', w1 && c1 ? w1.p50 / c1.p50 : undefined, 1 / 20, (v) => `${fmtMs(w1!.p50)} vs ${fmtMs(c1!.p50)} = ${ratioText(w1!.p50, c1!.p50)}`, q, cli?.error));
  out.push(atMost(`13: writer ÷ nft CLI, endpoint-count change (p50)`, '≤ 1/20', wc && cc ? wc.p50 / cc.p50 : undefined, 1 / 20, (v) => `${fmtMs(wc!.p50)} vs ${fmtMs(cc!.p50)} = ${ratioText(wc!.p50, cc!.p50)}`, q, cli?.error));
  const npFs = fsRow(r, 'nftproxy', T), cliFs = fsRow(r, 'nft-cli', T);
  out.push(atMost(`13: full sync wall time, writer ÷ nft CLI (nft -f of the same objects), ${at}`, '≤ 0.3×', npFs?.medianMs && cliFs?.medianMs ? npFs.medianMs / cliFs.medianMs : undefined, 0.3, (v) => `${fmtMs(npFs!.medianMs)} vs ${fmtMs(cliFs!.medianMs)} = ${v.toFixed(2)}× (runs ${npFs!.runs.filter((x) => x.ok).length} / ${cliFs!.runs.filter((x) => x.ok).length})`, q));
  const dm = daemonRun(r, T, 'manifests');
  out.push(atMost(`13: full sync peak memory, the daemon (start → first sync acknowledged) ÷ nft, ${at}`, '≤ 1/4', dm?.peakAtFirstMB && cliFs?.medianRssMB ? dm.peakAtFirstMB / cliFs.medianRssMB : undefined, 1 / 4, (v) => `${fmtMB(dm!.peakAtFirstMB)} vs ${fmtMB(cliFs!.medianRssMB)} = ${(v * 100).toFixed(0)}% (the sync worker: ${fmtMB(npFs?.medianRssMB)})`, q, dm?.error));

  // --- issue 15: the daemon, from its own log ---
  const da = daemonRun(r, T, 'api');
  for (const [d, src] of [[dm, 'manifests'], [da, 'API']] as const) {
    out.push(atMost(`15: daemon one-endpoint partial sync p50 (event → kernel ack, its log), ${src}, ${at}`, '≤ 5 ms', d?.endpoint?.p50, 5, (v) => `${fmtMs(v)} (n=${d!.endpoint!.n}; its Applier.sync p50 ${fmtMs(d!.endpointApply?.p50)})`, q, d?.error));
    out.push(atMost(`15: daemon one-endpoint partial sync p99, ${src}, ${at}`, '≤ 20 ms', d?.endpoint?.p99, 20, (v) => `${fmtMs(v)} (n=${d!.endpoint!.n})`, q, d?.error));
    out.push(atMost(`15: daemon endpoint-count change p50, ${src}, ${at}`, '≤ 10 ms', d?.count?.p50, 10, (v) => `${fmtMs(v)} (n=${d!.count!.n}; its Applier.sync p50 ${fmtMs(d!.countApply?.p50)})`, q, d?.error));
  }
  out.push(atMost(`15: daemon RSS after the first sync, manifests, ${at}`, '≤ 150 MB', dm?.rssAfterFirstMB, 150, (v) => fmtMB(v), q, dm?.error));
  out.push(atMost(`15: daemon RSS after 20 partial syncs, manifests, ${at}`, '≤ 150 MB', dm?.rssAfter20MB, 150, (v) => fmtMB(v), q, dm?.error));
  const peak = dm?.peakAt20MB !== undefined ? dm.peakAt20MB + (dm.childPeakMB ?? 0) : undefined;
  out.push(atMost(`15: daemon peak RSS (plus its largest child) from start to 20 partial syncs, ${at}`, '≤ 300 MB', peak, 300, (v) => `${fmtMB(v)} (daemon ${fmtMB(dm!.peakAt20MB)}, child ${fmtMB(dm!.childPeakMB)})`, q, dm?.error));
  const c = r.compile.find((x) => sameSize(x.size, T))?.median;
  out.push(atMost(`15: model + compile of the whole cluster, ${at}`, '≤ 300 ms', c ? c.buildMs + c.compileMs : undefined, 300, (v) => `${fmtMs(v)} (model ${fmtMs(c!.buildMs)}, compile ${fmtMs(c!.compileMs)}; kernel objects ${fmtMs(c!.objectsMs)} more)`, q));
  const cd = np?.compileDiff?.endpoint;
  out.push(atMost(`15: one-service change, compile + diff p50 (in process, one endpoint replaced), ${at}`, '≤ 1 ms', cd?.p50, 1, (v) => `${fmtMs(v)} (compile alone ${fmtMs(np!.compile?.endpoint?.p50)}, n=${cd!.n})`, q));
  out.push(atMost(`15: cold start (initial state in hand → first sync acknowledged, its log), manifests, ${at}`, '≤ 3 s', dm?.coldStartMs, 3000, (v) => `${fmtMs(v)} (process start → line ${fmtMs(dm!.startToSyncedMs)})`, q, dm?.error));
  const big = plan.daemon.find((v) => v.size.m >= 50);
  if (big) {
    const d = daemonRun(r, big.size, big.source);
    const pk = d?.peakAt20MB !== undefined ? d.peakAt20MB + (d.childPeakMB ?? 0) : undefined;
    out.push(atMost(`15: daemon peak RSS, ${sizeLabel(big.size)}`, '≤ 400 MB', pk, 400, (v) => fmtMB(v), undefined, d?.error));
  }

  // --- earlier targets that still hold ---
  const up = fsRow(r, 'kp-nft-numgen', T);
  out.push(atMost(`full sync ${at}: nftproxy's writer vs upstream's inline-numgen layout`, '≤ 1/20', npFs?.medianMs && up?.medianMs ? npFs.medianMs / up.medianMs : undefined, 1 / 20, () => `${fmtMs(npFs!.medianMs)} vs ${fmtMs(up!.medianMs)} = ${ratioText(npFs!.medianMs!, up!.medianMs!)} (runs ${npFs!.runs.length} vs ${up!.runs.length})`, q, up?.note));
  out.push(atMost(`full sync ${at}: peak RSS of the syncing process (sync worker) vs upstream's nft`, '≤ 1/2', npFs?.medianRssMB && up?.medianRssMB ? npFs.medianRssMB / up.medianRssMB : undefined, 0.5, (v) => `${fmtMB(npFs!.medianRssMB)} vs ${fmtMB(up!.medianRssMB)} = ${(v * 100).toFixed(0)}%`, q, up?.note));
  for (const which of ['first', 'last'] as const) {
    const row = r.dataplane?.rows.find((x) => x.id === `nftproxy/${which}`);
    const name = `ClusterIP connection rate at ${T.n.toLocaleString('en')} services, ${which} service, vs one DNAT rule`;
    if (row?.vsDnat1 !== undefined) out.push({ name, threshold: '≥ 97%', ratio: row.vsDnat1, measured: `${Math.round(row.rate!)}/s = ${(row.vsDnat1 * 100).toFixed(1)}%`, status: row.vsDnat1 >= 0.97 ? 'MET' : 'MISSED', ...(q ? { note: q } : {}) });
    else out.push(NM(name, '≥ 97%'));
  }
  for (const which of ['first', 'last'] as const) {
    const row = r.dataplane?.rows.find((x) => x.id === `bpf/${which}`);
    const name = `ClusterIP connection rate with BPF on, ${which} service, vs direct to the pod`;
    if (row?.vsDirect !== undefined) out.push({ name, threshold: '≥ 95%', ratio: row.vsDirect, measured: `${Math.round(row.rate!)}/s = ${(row.vsDirect * 100).toFixed(1)}%`, status: row.vsDirect >= 0.95 ? 'MET' : 'MISSED', ...(q ? { note: q } : {}) });
    else out.push(NM(name, '≥ 95%', r.dataplane?.skipped.find((x) => x.loader.startsWith('bpf'))?.why ?? 'no BPF row'));
  }
  return out;
}

const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(1)}%`);
const times = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : x >= 10 ? `${x.toFixed(0)}×` : `${x.toFixed(1)}×`);
/** One line on the BPF rows: what they are, or why they were skipped. */
export function bpfLine(r: Results): string {
  const d = r.dataplane;
  const rows = d?.rows.filter((x) => x.loader === 'bpf') ?? [];
  const sk = d?.skipped.filter((x) => x.loader.startsWith('bpf')) ?? [];
  if (rows.length) {
    const b = d!.bpf;
    return `BPF hot path on (\`bpf/first\`, \`bpf/last\`): nftproxy's ruleset loaded as for its rows, plus the socket load balancer (bpf/sock_lb.o) attached to a bench cgroup only${b ? ` (${b.entries} ClusterIP entries written by BpfApplier)` : ''}, the client in that cgroup: connect() goes to the pod directly, no DNAT in the node namespace (checked with conntrack), so it can beat the one DNAT rule.${sk.length ? ` Skipped: ${sk.map((x) => `${x.loader}: ${x.why}`).join('; ')}.` : ''}`;
  }
  if (sk.length) return `BPF: skipped: ${sk.map((x) => x.why).join('; ')}.`;
  return d ? 'BPF: not measured.' : 'BPF: not measured (no data-plane phase).';
}

const us = (x: number | undefined): string => (x === undefined ? '–' : x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(0)} µs`);

const ps = (x: Stats | undefined): string => (x ? `${fmtMs(x.p50)} / ${fmtMs(x.p99)}` : '–');
const cpu = (x: { userSec?: number; sysSec?: number } | undefined): string => (x?.userSec !== undefined && x.sysSec !== undefined ? `${x.userSec.toFixed(1)} s / ${x.sysSec.toFixed(1)} s` : '–');
const medianOf = (xs: (number | undefined)[]): number | undefined => { const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x)); return v.length ? median(v) : undefined; };

export function summaryMarkdown(r: Results): string {
  const L: string[] = [];
  const plan = r.meta.plan;
  L.push(`# nftproxy bench — ${r.meta.startedAt}${plan.quick ? ' (QUICK)' : ''}`, '');
  const h = r.meta.host;
  L.push(`Host: kernel ${h.kernel}, ${h.cpus}, ${h.memory}, ${h.nft}, node ${h.node}${h['iptables-legacy'] ? `, ${h['iptables-legacy']}` : ''}; load average at start ${h.loadavgAtStart}, at the end ${h.loadavgAtEnd} (other work on the machine skews timings, the data plane most). Wall time ${fmtDur(r.meta.wallSec ?? 0)}.`, '');
  L.push('Loaders: ' + r.meta.loaders.map((l) => `\`${l.id}\` = ${l.label}`).join('; ') + '. ' + (r.dataplane?.rows.some((x) => x.loader === 'bpf') ? '`bpf` = nftproxy with its BPF hot path on (data plane only, see there).' : bpfLine(r)), '');

  L.push('## Targets', '', 'Issue 13 (the writer against the nft CLI) and issue 15 (the daemon, from its own log), then the earlier ones. MET / MISSED with the measured figure; the test suite never enforces them.', '', '| target | threshold | measured | status |', '|---|---|---|---|');
  for (const t of r.targets) L.push(`| ${t.name} | ${t.threshold} | ${t.measured}${t.note ? ` — ${t.note}` : ''} | **${t.status}** |`);
  L.push('');

  L.push('## Workloads', '', '| size | services | service ports | endpoints | ClusterIP / NodePort / LB | eTP=Local | affinity | UDP ports |', '|---|---|---|---|---|---|---|---|');
  for (const w of r.workloads) {
    const c = w.counts;
    L.push(`| ${sizeLabel(w.size)} | ${c.services} | ${c.servicePorts} | ${c.endpoints} | ${c.byType.ClusterIP ?? 0} / ${c.byType.NodePort ?? 0} / ${c.byType.LoadBalancer ?? 0} | ${c.etpLocal} | ${c.affinity} | ${c.udpPorts} |`);
  }
  L.push('');

  // --- issue 13 ---
  L.push('## nftproxy\'s writer against the nft CLI (issue 13)', '');
  L.push('Full sync into a fresh namespace, the same kernel objects both ways, runs interleaved (median). nftproxy: the writer\'s own time (kernel objects in → the kernel\'s last ack) in a sync worker process (model, compile, objects, Applier.sync: its peak RSS is a syncing process\'s); the daemon\'s own first sync at the sizes it ran (its log\'s applyMs, its peak RSS from start). CLI: `nft -f` of the same objects as text (`tablesText`, what `nftproxy dump` prints): wall time, peak RSS and CPU (user = parse and evaluation, kernel = the transaction).', '');
  L.push('| size | writer (objects → ack) | Applier.sync | sync worker peak RSS | daemon: first sync applyMs / peak RSS | nft -f wall | nft peak RSS | nft CPU user / kernel | writer ÷ CLI time | memory ÷ CLI (daemon, else worker) |', '|---|---|---|---|---|---|---|---|---|---|');
  for (const size of [...new Set(r.fullSync.map((x) => sizeLabel(x.size)))]) {
    const npR = r.fullSync.find((x) => x.loader === 'nftproxy' && sizeLabel(x.size) === size), cR = r.fullSync.find((x) => x.loader === 'nft-cli' && sizeLabel(x.size) === size);
    if (!npR && !cR) continue;
    const d = r.daemon?.runs.find((x) => sizeLabel(x.size) === size && x.source === 'manifests');
    const goodNp = npR?.runs.filter((x) => x.ok) ?? [], goodC = cR?.runs.filter((x) => x.ok) ?? [];
    const syncMs = medianOf(goodNp.map((x) => x.syncMs));
    const mem = d?.peakAtFirstMB ?? npR?.medianRssMB;
    L.push(`| ${size} | ${fmtMs(npR?.medianMs)} | ${fmtMs(syncMs)} | ${fmtMB(npR?.medianRssMB)} | ${d ? `${fmtMs(d.firstApplyMs)} / ${fmtMB(d.peakAtFirstMB)}` : '–'} | ${fmtMs(cR?.medianMs)} | ${fmtMB(cR?.medianRssMB)} | ${cpu({ userSec: medianOf(goodC.map((x) => x.userSec)), sysSec: medianOf(goodC.map((x) => x.sysSec)) })} | ${npR?.medianMs && cR?.medianMs ? `${(npR.medianMs / cR.medianMs).toFixed(2)}×` : '–'} | ${mem && cR?.medianRssMB ? `${((mem / cR.medianRssMB) * 100).toFixed(0)}%` : '–'} |`);
  }
  L.push('');
  for (const p of r.partial) {
    const { np, cli } = partialAt(r, p.size);
    if (!np) continue;
    L.push(`Partial sync at ${sizeLabel(p.size)}, p50 / p99 (n). nftproxy in process, the daemon's path: end to end (the incremental compile and kernel objects of the changed service → Applier.sync: the differ, then the writer), that compile, the writer's own part (its commit calls: transactions in → the kernel's last ack), compile + diff (all but the writer). CLI: the same transactions as nft commands (\`opsText\`) through \`nft -f -\`, one process per ordered transaction. The daemon's own figures (event → ack) are in the daemon section.`, '');
    L.push('| change | writer | nftproxy end to end | compile | compile + diff | transactions (p50) | nft CLI, same transactions | writer ÷ CLI (p50) |', '|---|---|---|---|---|---|---|---|');
    const line = (label: string, w: Stats | undefined, e2e: Stats | undefined, comp: Stats | undefined, cd: Stats | undefined, tx: number | undefined, c: Stats | undefined): void => {
      L.push(`| ${label} | ${ps(w)}${w ? ` (${w.n})` : ''} | ${ps(e2e)} | ${ps(comp)} | ${ps(cd)} | ${tx ?? '–'} | ${ps(c)}${c ? ` (${c.n})` : ''} | ${w && c ? ratioText(w.p50, c.p50) : '–'} |`);
    };
    line('one endpoint replaced', np.writer?.endpoint, np.kinds.endpoint, np.compile?.endpoint, np.compileDiff?.endpoint, np.txP50?.endpoint, cli?.kinds.endpoint);
    line('endpoint count M → M-1 and back', np.writer?.count, np.kinds.count, np.compile?.count, np.compileDiff?.count, np.txP50?.count, cli?.kinds.count);
    line('… into a count no other service uses (its group a spare: next to M)', np.countSplit?.writerToNew, np.countSplit?.toNew, undefined, undefined, undefined, cli?.countSplit?.toNew);
    line('… back (M − 1 left unused: its group stays, a spare of M)', np.countSplit?.writerBack, np.countSplit?.back, undefined, undefined, undefined, cli?.countSplit?.back);
    line('one service added', np.writer?.add, np.kinds.add, np.compile?.add, np.compileDiff?.add, np.txP50?.add, cli?.kinds.add);
    line('one service deleted', np.writer?.delete, np.kinds.delete, np.compile?.delete, np.compileDiff?.delete, np.txP50?.delete, cli?.kinds.delete);
    if (np.error || cli?.error) L.push('', `Errors: ${[np.error, cli?.error].filter(Boolean).join('; ')}`);
    L.push('');
  }

  // --- encoder ---
  if (r.encoder) {
    const e = r.encoder;
    L.push('## Encoder: nftproxy\'s TypeScript encoder against libnftnl (issue 13)', '');
    L.push(`One NEWSETELEM batch of ${e.elements.toLocaleString('en')} elements of the endpoint maps' shape (\`${e.shape}\`), built from the same kernel objects, bytes in memory; ${e.ts.runs.length} runs each, interleaved, median (min – max). libnftnl through koffi as nft builds it: per element nftnl_set_elem_alloc, two nftnl_set_elem_set, nftnl_set_elem_add; then nftnl_set_elems_nlmsg_build_payload_iter into an nftnl_batch. Each batch was then sent once into a bench namespace; the kernel counted the elements.`, '');
    L.push('| encoder | median | min – max | bytes | messages | kernel counted |', '|---|---|---|---|---|---|');
    L.push(`| nftproxy (TypeScript, encodeBatch) | ${fmtMs(e.ts.medianMs)} | ${fmtMs(Math.min(...e.ts.runs))} – ${fmtMs(Math.max(...e.ts.runs))} | ${e.ts.bytes.toLocaleString('en')} | ${e.ts.messages} | ${e.kernelCheck?.ts?.toLocaleString('en') ?? '–'} |`);
    if (e.libnftnl) L.push(`| ${e.libnftnl.version} via koffi | ${fmtMs(e.libnftnl.medianMs)} | ${fmtMs(Math.min(...e.libnftnl.runs))} – ${fmtMs(Math.max(...e.libnftnl.runs))} | ${e.libnftnl.bytes.toLocaleString('en')} | ${e.libnftnl.messages} | ${e.kernelCheck?.libnftnl?.toLocaleString('en') ?? '–'} |`);
    if (e.error) L.push('', `Error: ${e.error}`);
    L.push('');
  }

  // --- issue 15: the daemon ---
  if (r.daemon) {
    L.push('## The daemon, from its own log (issue 15)', '');
    L.push('`nftproxy run` in a fresh namespace, against manifests in files (each changing service in a small file of its own) or the fake API server (test/fake-apiserver, through the suite\'s Unix-socket relay). Cold start: the first "synced" line\'s eventToAckMs (initial state in hand → the kernel\'s last ack). Partial syncs: eventToAckMs of each "synced" line (the change event → the kernel\'s last ack; for manifests the event is the re-read after the watcher\'s 30 ms debounce), p50 / p99; "write → line" is the bench\'s own clock from writing the file / updating the API object to reading the line. Memory from /proc: RSS, peak (VmHWM), children (conntrack) sampled every 25 ms.', '');
    L.push('| size | source | cold start (its log) | process start → first line | first sync: applyMs / whole | one-endpoint: event → ack p50 / p99 | its Applier.sync p50 | write → line p50 | count change: event → ack p50 / p99 | RSS after first sync | RSS after 20 partial | peak (daemon + largest child) | note |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const d of r.daemon.runs) {
      L.push(`| ${sizeLabel(d.size)} | ${d.source} | ${fmtMs(d.coldStartMs)} | ${fmtMs(d.startToSyncedMs)} | ${fmtMs(d.firstApplyMs)} / ${fmtMs(d.firstSyncMs)} | ${ps(d.endpoint)}${d.endpoint ? ` (${d.endpoint.n})` : ''} | ${fmtMs(d.endpointApply?.p50)} | ${fmtMs(d.endpointWriteToLine?.p50)} | ${ps(d.count)}${d.count ? ` (${d.count.n})` : ''} | ${fmtMB(d.rssAfterFirstMB)} | ${fmtMB(d.rssAfter20MB)} | ${d.peakAt20MB !== undefined ? `${fmtMB(d.peakAt20MB + (d.childPeakMB ?? 0))} (${fmtMB(d.peakAt20MB)} + ${fmtMB(d.childPeakMB)}, ${d.children ?? 0} children${d.childNames?.length ? `: ${d.childNames.join(', ')}` : ''})` : '–'} | ${[d.note, d.error].filter(Boolean).join('; ')} |`);
    }
    L.push('');
  }

  L.push('## nftproxy compile, the daemon\'s path in memory (median, a fresh process each)', '', 'buildModel, compileParts, kernel objects (kernelFamily), and the full sync\'s netlink batch encoded (nothing sent). Model + compile is issue 15\'s "whole cluster" figure.', '', '| size | build model | compile | model + compile | kernel objects | encode | heap growth | heap retained | peak RSS | full-sync batch |', '|---|---|---|---|---|---|---|---|---|---|');
  for (const c of r.compile) {
    const m = c.median;
    if (!m) { L.push(`| ${sizeLabel(c.size)} | – | – | – | – | – | – | – | – | ${c.note ?? ''} |`); continue; }
    L.push(`| ${sizeLabel(c.size)} | ${fmtMs(m.buildMs)} | ${fmtMs(m.compileMs)} | ${fmtMs(m.buildMs + m.compileMs)} | ${fmtMs(m.objectsMs)} | ${fmtMs(m.encodeMs)} | ${fmtMB(m.heapUsedDeltaMB)} | ${fmtMB(m.heapRetainedMB)} | ${fmtMB(m.rssPeakMB)} | ${m.ops.toLocaleString('en')} ops, ${fmtMB(m.batchMB)}${c.note ? ` (${c.note})` : ''} |`);
  }
  L.push('');

  L.push('## Full sync into a fresh namespace, every loader', '', `Median over runs (interleaved). nftproxy: the writer's time and the sync worker's peak RSS; the others: the loader process (\`nft -f\` / \`iptables-restore\`), wall time, peak RSS, CPU user / kernel. "× nftproxy" = the loader's figure ÷ nftproxy's at the same size.`, '');
  L.push('| size | loader | runs | load time | peak RSS | CPU user / kernel | × nftproxy time | × nftproxy RSS | input | note |', '|---|---|---|---|---|---|---|---|---|---|');
  for (const row of r.fullSync) {
    const np = r.fullSync.find((x) => x.loader === 'nftproxy' && sameSize(x.size, row.size));
    const good = row.runs.filter((x) => x.ok);
    L.push(`| ${sizeLabel(row.size)} | ${row.loader} | ${good.length}${good.length !== row.runs.length ? `/${row.runs.length}` : ''} | ${fmtMs(row.medianMs)} | ${fmtMB(row.medianRssMB)} | ${cpu({ userSec: medianOf(good.map((x) => x.userSec)), sysSec: medianOf(good.map((x) => x.sysSec)) })} | ${row.loader === 'nftproxy' ? '1×' : times(row.medianMs && np?.medianMs ? row.medianMs / np.medianMs : undefined)} | ${row.loader === 'nftproxy' ? '1×' : times(row.medianRssMB && np?.medianRssMB ? row.medianRssMB / np.medianRssMB : undefined)} | ${row.lines ? `${row.lines.toLocaleString('en')} ${row.loader === 'nftproxy' ? 'ops' : 'lines'}` : '–'} | ${row.note ?? ''} |`);
  }
  L.push('');

  if (r.reconcile) {
    const rc = r.reconcile;
    L.push(`## Upstream's 1.36+ layout: which features cost the load (issue 15)`, '');
    L.push(`The bench's \`kp-nft-numgen\` (every feature) and a minimal model of the same layout (\`kp-nft-numgen-min\`: a chain per service port with one \`dnat … numgen random mod N map { … }\` rule, ClusterIP only, no affinity, no hairpin) on the same services, each feature on or off, one \`nft -f\` each into a fresh namespace. Per-service part of each load: chains, rules, anonymous maps (an inline \`map { … }\` / \`vmap { … }\` in a rule), named sets, elements.`, '');
    L.push('| size | variant | load time | CPU user / kernel | peak RSS | chains | rules | anonymous maps | named sets | elements | note |', '|---|---|---|---|---|---|---|---|---|---|---|');
    for (const x of rc.rows) {
      const c = x.census;
      L.push(`| ${sizeLabel(x.size)} | ${x.id}: ${x.features} | ${fmtMs(x.run?.ms)} | ${cpu(x.run)} | ${fmtMB(x.run?.rssMB)} | ${c?.chains.toLocaleString('en') ?? '–'} | ${c?.rules.toLocaleString('en') ?? '–'} | ${c?.anonMaps.toLocaleString('en') ?? '–'} | ${c?.namedSets.toLocaleString('en') ?? '–'} | ${c?.elements.toLocaleString('en') ?? '–'} | ${x.note ?? ''} |`);
    }
    const T = plan.target;
    const get = (id: string): FullSyncRow | undefined => fsRow(r, id, T);
    const np = get('nftproxy'), cl = get('nft-cli');
    const refs = ['kp-nft-numgen', 'kp-nft-numgen-min', 'kp-nft-shared'].map((id) => [id, get(id)] as const).filter(([, x]) => x?.medianMs);
    if (np?.medianMs && refs.length) {
      L.push('', `At ${sizeLabel(T)}, same run (full-sync phase): nftproxy's writer ${fmtMs(np.medianMs)} (the CLI with nftproxy's objects ${fmtMs(cl?.medianMs)}); ` + refs.map(([id, x]) => `${id} ${fmtMs(x!.medianMs)} (CPU ${cpu(medianCpu(x!))}) = ${times(x!.medianMs! / np.medianMs!)} nftproxy's`).join('; ') + '.');
    }
    L.push('');
  }

  const peerParts = r.partial.filter((p) => p.rows.some((x) => x.loader !== 'nftproxy' && x.loader !== 'nft-cli'));
  for (const p of peerParts) {
    L.push(`## Partial sync at ${sizeLabel(p.size)}, nftproxy and the peers`, '', `p50 / p99 per change. nftproxy: end to end in process (model change → compile → diff → its ordered transactions acknowledged). Peers: upstream's delta transaction for the same change (its stale-chain deletion, a separate transaction, in its own column).`, '');
    L.push('| loader | one endpoint replaced | endpoint count changed | one service added | one service deleted | n (endpoint / count / add / delete) | stale-chain delete p50 | note |', '|---|---|---|---|---|---|---|---|');
    for (const row of p.rows) {
      const f = (k: 'endpoint' | 'count' | 'add' | 'delete'): string => ps(row.kinds[k]);
      L.push(`| ${row.loader} | ${f('endpoint')} | ${f('count')} | ${f('add')} | ${f('delete')} | ${row.kinds.endpoint?.n ?? 0} / ${row.kinds.count?.n ?? 0} / ${row.kinds.add?.n ?? 0} / ${row.kinds.delete?.n ?? 0} | ${row.staleDelete ? fmtMs(row.staleDelete.p50) : '–'} | ${[row.note, row.error].filter(Boolean).join('; ')} |`);
    }
    L.push('');
  }

  if (r.dataplane) {
    const d = r.dataplane;
    L.push(`## Data plane at ${sizeLabel(d.size)}`, '', `Short TCP connections (connect, HTTP/1.0 request, response, server closes) from a client pod namespace through the node namespace to ${d.server}. ${d.concurrency} in flight, ${d.rounds} interleaved rounds of ${d.seconds} s per target; medians; the ratios are per round (each target against direct / one DNAT rule measured in the same round), median over rounds. ${bpfLine(r)}`, '');
    L.push('| target | destination | conn/s | p50 | p99 | ÷ direct | ÷ one DNAT rule | note |', '|---|---|---|---|---|---|---|---|');
    for (const row of d.rows) L.push(`| ${row.id} | ${row.dst} | ${Math.round(row.rate ?? 0).toLocaleString('en')} | ${us(row.p50us)} | ${us(row.p99us)} | ${pct(row.vsDirect)} | ${pct(row.vsDnat1)} | ${row.note ?? ''} |`);
    for (const s of d.skipped) L.push(`| ${s.loader} | – | – | – | – | – | – | skipped: ${s.why} |`);
    L.push('');
  }

  if (r.notes.length) { L.push('## Notes', '', ...r.notes.map((n) => `- ${n}`), ''); }
  return L.join('\n');
}

const medianCpu = (x: FullSyncRow): { userSec?: number; sysSec?: number } => {
  const g = x.runs.filter((y) => y.ok);
  const u = medianOf(g.map((y) => y.userSec)), s = medianOf(g.map((y) => y.sysSec));
  return { ...(u !== undefined ? { userSec: u } : {}), ...(s !== undefined ? { sysSec: s } : {}) };
};

export function syncTimeSvg(r: Results): string {
  const series: Series[] = [];
  const ms = [...new Set(r.fullSync.map((x) => x.size.m))].sort((a, b) => a - b);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
  for (const [li, l] of r.meta.loaders.entries()) {
    for (const [i, m] of ms.entries()) {
      const points = r.fullSync.filter((x) => x.loader === l.id && x.size.m === m && x.medianMs).map((x) => ({ x: x.size.n, y: x.medianMs! / 1000 }));
      if (points.length) series.push({ name: `${l.id}, M=${m}`, points, dashed: i > 0, color: colors[li % colors.length]! });
    }
  }
  return lineChart({ title: 'Full sync into a fresh namespace: loader wall time', xLabel: 'services (N)', yLabel: 'seconds (log scale)', series, logY: true, yFormat: (v) => (v >= 1 ? `${v} s` : `${v * 1000} ms`), note: `${r.meta.startedAt}${r.meta.plan.quick ? ' QUICK' : ''}; median of runs; M = endpoints per service${ms.length > 1 ? ` (dashed: M=${ms.slice(1).join(',')})` : ''}; missing points: skipped by the budget (see summary.md)` });
}

function bpfSvgNote(r: Results): string {
  const d = r.dataplane;
  if (d?.rows.some((x) => x.loader === 'bpf')) return 'bpf/*: BPF hot path on (connect() goes to the pod: no DNAT, can beat it)';
  const why = d?.skipped.find((x) => x.loader.startsWith('bpf'))?.why;
  return why ? `BPF: skipped (${why.length > 90 ? `${why.slice(0, 89)}…` : why})` : 'BPF: not measured';
}

export function connRateSvg(r: Results): string {
  const d = r.dataplane;
  const bars = (d?.rows ?? []).map((x) => ({ label: x.id, value: x.rate ?? 0, group: x.loader, text: `${Math.round(x.rate ?? 0).toLocaleString('en')}/s  (${pct(x.vsDnat1)} of 1 DNAT)` }));
  const dn = d?.rows.find((x) => x.id === 'dnat1')?.rate;
  return barChart({ title: `New TCP connections per second, ${d ? `${d.size.n.toLocaleString('en')} services × ${d.size.m} endpoints loaded` : '?'}`, xLabel: 'connections / s (median of rounds)', bars, refs: dn ? [{ label: '97% of one DNAT rule', value: dn * 0.97 }] : [], note: `${r.meta.startedAt}${r.meta.plan.quick ? ' QUICK' : ''}; ${bpfSvgNote(r)}` });
}

export async function writeReport(dir: string, r: Results): Promise<string> {
  const md = summaryMarkdown(r);
  await writeFile(join(dir, 'results.json'), JSON.stringify(r, null, 2) + '\n');
  await writeFile(join(dir, 'summary.md'), md + '\n');
  await writeFile(join(dir, 'sync-time.svg'), syncTimeSvg(r) + '\n');
  await writeFile(join(dir, 'conn-rate.svg'), connRateSvg(r) + '\n');
  return md;
}
