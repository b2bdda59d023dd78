// results.json, summary.md, sync-time.svg, conn-rate.svg; and the targets (MET / MISSED with
// the measured ratio; the test suite never enforces them).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sameSize, sizeLabel } from './plan.js';
import { fmtMB, fmtMs, fmtDur } from './stats.js';
import { barChart, lineChart, type Series } from './svg.js';
import type { Results, TargetRow } from './results.js';

export function computeTargets(r: Results): TargetRow[] {
  const plan = r.meta.plan;
  const at = `${sizeLabel(plan.target)}`;
  const q = plan.quick ? ` (QUICK run: measured at ${at}; the targets are defined at 10k×10)` : '';
  const out: TargetRow[] = [];
  const fs = (id: string) => r.fullSync.find((x) => x.loader === id && sameSize(x.size, plan.target));
  const np = fs('nftproxy'), up = fs('kp-nft-numgen');
  if (np?.medianMs && up?.medianMs) {
    const ratio = np.medianMs / up.medianMs;
    out.push({ name: `full sync ${at}: load time vs upstream inline-numgen layout`, threshold: '≤ 1/20', ratio, measured: `${fmtMs(np.medianMs)} vs ${fmtMs(up.medianMs)} = 1/${(1 / ratio).toFixed(1)}`, status: ratio <= 1 / 20 ? 'MET' : 'MISSED', note: `runs: ${np.runs.length} vs ${up.runs.length}${q}` });
  } else out.push({ name: `full sync ${at}: load time vs upstream inline-numgen layout`, threshold: '≤ 1/20', measured: '–', status: 'NOT MEASURED', note: up?.note ?? np?.note ?? 'no data' });
  if (np?.medianRssMB && up?.medianRssMB) {
    const ratio = np.medianRssMB / up.medianRssMB;
    out.push({ name: `full sync ${at}: nft peak RSS vs upstream inline-numgen layout`, threshold: '≤ 1/2', ratio, measured: `${fmtMB(np.medianRssMB)} vs ${fmtMB(up.medianRssMB)} = ${(ratio * 100).toFixed(0)}%`, status: ratio <= 0.5 ? 'MET' : 'MISSED', ...(q ? { note: q.trim() } : {}) });
  } else out.push({ name: `full sync ${at}: nft peak RSS vs upstream inline-numgen layout`, threshold: '≤ 1/2', measured: '–', status: 'NOT MEASURED' });
  const ep = r.partial?.rows.find((x) => x.loader === 'nftproxy')?.kinds.endpoint;
  if (ep) {
    out.push({ name: `partial sync ${at}, one endpoint replaced: p50 (compile + Applier.sync)`, threshold: '≤ 20 ms', ratio: ep.p50 / 20, measured: `${fmtMs(ep.p50)} (n=${ep.n})`, status: ep.p50 <= 20 ? 'MET' : 'MISSED', ...(q ? { note: q.trim() } : {}) });
    out.push({ name: `partial sync ${at}, one endpoint replaced: p99`, threshold: '≤ 50 ms', ratio: ep.p99 / 50, measured: `${fmtMs(ep.p99)} (n=${ep.n})`, status: ep.p99 <= 50 ? 'MET' : 'MISSED', ...(q ? { note: q.trim() } : {}) });
  } else {
    for (const [n, t] of [['p50', '≤ 20 ms'], ['p99', '≤ 50 ms']]) out.push({ name: `partial sync ${at}, one endpoint replaced: ${n}`, threshold: t!, measured: '–', status: 'NOT MEASURED' });
  }
  for (const which of ['first', 'last'] as const) {
    const row = r.dataplane?.rows.find((x) => x.id === `nftproxy/${which}`);
    const name = `ClusterIP connection rate at ${plan.target.n.toLocaleString('en')} services, ${which} service, vs one DNAT rule`;
    if (row?.vsDnat1 !== undefined) out.push({ name, threshold: '≥ 97%', ratio: row.vsDnat1, measured: `${Math.round(row.rate!)}/s = ${(row.vsDnat1 * 100).toFixed(1)}%`, status: row.vsDnat1 >= 0.97 ? 'MET' : 'MISSED', ...(q ? { note: q.trim() } : {}) });
    else out.push({ name, threshold: '≥ 97%', measured: '–', status: 'NOT MEASURED' });
  }
  for (const which of ['first', 'last'] as const) {
    const row = r.dataplane?.rows.find((x) => x.id === `bpf/${which}`);
    const name = `ClusterIP connection rate with BPF on, ${which} service, vs direct to the pod`;
    if (row?.vsDirect !== undefined) out.push({ name, threshold: '≥ 95%', ratio: row.vsDirect, measured: `${Math.round(row.rate!)}/s = ${(row.vsDirect * 100).toFixed(1)}%`, status: row.vsDirect >= 0.95 ? 'MET' : 'MISSED', ...(q ? { note: q.trim() } : {}) });
    else out.push({ name, threshold: '≥ 95%', measured: '–', status: 'NOT MEASURED', note: r.dataplane?.skipped.find((x) => x.loader.startsWith('bpf'))?.why ?? 'no BPF row' });
  }
  const c = r.compile.find((x) => x.size.n === plan.target.n && x.size.m === plan.target.m)?.median;
  const cName = `compile + render ${at}`;
  if (c) {
    const ms = c.buildMs + c.compileMs + c.renderMs;
    out.push({ name: cName, threshold: '≤ 500 ms', ratio: ms / 500, measured: `${fmtMs(ms)} (model ${fmtMs(c.buildMs)}, compile ${fmtMs(c.compileMs)}, render ${fmtMs(c.renderMs)})`, status: ms <= 500 ? 'MET' : 'MISSED', ...(q ? { note: q.trim() } : {}) });
  } else out.push({ name: cName, threshold: '≤ 500 ms', measured: '–', status: 'NOT MEASURED' });
  const d = r.daemon?.median?.steadyRssMB;
  const dName = `daemon steady-state RSS ${at}`;
  if (d !== undefined) out.push({ name: dName, threshold: '≤ 150 MB', ratio: d / 150, measured: fmtMB(d), status: d <= 150 ? 'MET' : 'MISSED', ...(q ? { note: q.trim() } : {}) });
  else out.push({ name: dName, threshold: '≤ 150 MB', measured: '–', status: 'NOT MEASURED', note: r.daemon?.error ?? r.daemon?.note ?? 'no data' });
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

export function summaryMarkdown(r: Results): string {
  const L: string[] = [];
  const plan = r.meta.plan;
  const label = (id: string): string => r.meta.loaders.find((l) => l.id === id)?.label ?? id;
  L.push(`# nftproxy bench — ${r.meta.startedAt}${plan.quick ? ' (QUICK)' : ''}`, '');
  const h = r.meta.host;
  L.push(`Host: kernel ${h.kernel}, ${h.cpus}, ${h.memory}, ${h.nft}, node ${h.node}${h['iptables-legacy'] ? `, ${h['iptables-legacy']}` : ''}; load average at start ${h.loadavgAtStart}, at the end ${h.loadavgAtEnd} (other work on the machine skews timings, the data plane most). Wall time ${fmtDur(r.meta.wallSec ?? 0)}.`, '');
  L.push('Loaders: ' + r.meta.loaders.map((l) => `\`${l.id}\` = ${l.label}`).join('; ') + '. ' + (r.dataplane?.rows.some((x) => x.loader === 'bpf') ? '`bpf` = nftproxy with its BPF hot path on (data plane only, see there).' : bpfLine(r)), '');

  L.push('## Targets', '', '| target | threshold | measured | status |', '|---|---|---|---|');
  for (const t of r.targets) L.push(`| ${t.name} | ${t.threshold} | ${t.measured}${t.note ? ` — ${t.note}` : ''} | **${t.status}** |`);
  L.push('');

  L.push('## Workloads', '', '| size | services | service ports | endpoints | ClusterIP / NodePort / LB | eTP=Local | affinity | UDP ports |', '|---|---|---|---|---|---|---|---|');
  for (const w of r.workloads) {
    const c = w.counts;
    L.push(`| ${sizeLabel(w.size)} | ${c.services} | ${c.servicePorts} | ${c.endpoints} | ${c.byType.ClusterIP ?? 0} / ${c.byType.NodePort ?? 0} / ${c.byType.LoadBalancer ?? 0} | ${c.etpLocal} | ${c.affinity} | ${c.udpPorts} |`);
  }
  L.push('');

  L.push(`## nftproxy compile + render (median of ${plan.runs}, a fresh process each)`, '', '| size | build model | compile | render | heap growth | heap retained | peak RSS | nft text |', '|---|---|---|---|---|---|---|---|');
  for (const c of r.compile) {
    const m = c.median;
    if (!m) { L.push(`| ${sizeLabel(c.size)} | – | – | – | – | – | – | ${c.note ?? ''} |`); continue; }
    L.push(`| ${sizeLabel(c.size)} | ${fmtMs(m.buildMs)} | ${fmtMs(m.compileMs)} | ${fmtMs(m.renderMs)} | ${fmtMB(m.heapUsedDeltaMB)} | ${fmtMB(m.heapRetainedMB)} | ${fmtMB(m.rssPeakMB)} | ${m.lines.toLocaleString('en')} lines, ${fmtMB(m.textMB)}${c.note ? ` (${c.note})` : ''} |`);
  }
  L.push('');

  L.push('## Full sync into a fresh namespace', '', `Median over runs (interleaved) of the loader process (\`nft -f\` / \`iptables-restore\`): wall time and peak RSS. "× nftproxy" = the loader's figure ÷ nftproxy's at the same size.`, '');
  L.push('| size | loader | runs | load time | peak RSS | × nftproxy time | × nftproxy RSS | input | note |', '|---|---|---|---|---|---|---|---|---|');
  for (const row of r.fullSync) {
    const np = r.fullSync.find((x) => x.loader === 'nftproxy' && sameSize(x.size, row.size));
    const ok = row.runs.filter((x) => x.ok).length;
    L.push(`| ${sizeLabel(row.size)} | ${row.loader} | ${ok}${ok !== row.runs.length ? `/${row.runs.length}` : ''} | ${fmtMs(row.medianMs)} | ${fmtMB(row.medianRssMB)} | ${row.loader === 'nftproxy' ? '1×' : times(row.medianMs && np?.medianMs ? row.medianMs / np.medianMs : undefined)} | ${row.loader === 'nftproxy' ? '1×' : times(row.medianRssMB && np?.medianRssMB ? row.medianRssMB / np.medianRssMB : undefined)} | ${row.lines ? `${row.lines.toLocaleString('en')} lines` : '–'} | ${row.note ?? ''} |`);
  }
  L.push('');

  if (r.partial) {
    const p = r.partial;
    L.push(`## Partial sync at ${sizeLabel(p.size)}`, '', `p50 / p99 per change. nftproxy: end to end (model change → compile → diff → nft transaction applied). Peers: upstream's delta transaction for the same change (its stale-chain deletion, a separate transaction, in its own column).`, '');
    L.push('| loader | one endpoint replaced | one service added | one service deleted | n (endpoint / add / delete) | stale-chain delete p50 | note |', '|---|---|---|---|---|---|---|');
    for (const row of p.rows) {
      const f = (k: 'endpoint' | 'add' | 'delete'): string => { const s = row.kinds[k]; return s ? `${fmtMs(s.p50)} / ${fmtMs(s.p99)}` : '–'; };
      L.push(`| ${row.loader} | ${f('endpoint')} | ${f('add')} | ${f('delete')} | ${row.kinds.endpoint?.n ?? 0} / ${row.kinds.add?.n ?? 0} / ${row.kinds.delete?.n ?? 0} | ${row.staleDelete ? fmtMs(row.staleDelete.p50) : '–'} | ${row.error ?? ''} |`);
    }
    const np = p.rows.find((x) => x.loader === 'nftproxy');
    if (np?.compile?.endpoint && np.nft?.endpoint) {
      L.push('', `nftproxy, one endpoint replaced: compile p50 ${fmtMs(np.compile.endpoint.p50)}, nft process p50 ${fmtMs(np.nft.endpoint.p50)} (p99 ${fmtMs(np.nft.endpoint.p99)}), ${np.linesP50?.endpoint ?? '?'} ops per transaction; the rest is diff + transaction text.`);
    }
    L.push('');
  }

  if (r.daemon) {
    const d = r.daemon;
    L.push(`## Daemon (\`nftproxy run --manifests\`, ${sizeLabel(d.size)})`, '');
    if (d.median) {
      L.push(`Cold start to the first "synced" log line: **${fmtMs(d.median.coldStartMs)}** (median of ${d.runs.length}${d.note ? `, ${d.note}` : ''}). Steady-state RSS **${fmtMB(d.median.steadyRssMB)}**, peak RSS ${fmtMB(d.median.peakRssMB)}.`, '');
      L.push('| run | cold start | source read (until "sync started") | sync (its log) | of which nft | UDP conntrack cleanup | steady RSS | peak RSS |', '|---|---|---|---|---|---|---|---|');
      d.runs.forEach((x, i) => L.push(`| ${i + 1} | ${fmtMs(x.coldStartMs)} | ${fmtMs(x.sourceReadyMs)} | ${fmtMs(x.syncLogMs)} | ${fmtMs(x.applyMs)} | ${fmtMs(x.conntrackMs)} | ${fmtMB(x.steadyRssMB)} | ${fmtMB(x.peakRssMB)} |`));
    }
    if (d.error) L.push('', `Error: ${d.error}`);
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
  void label;
  return L.join('\n');
}

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
