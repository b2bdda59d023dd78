// Upstream kube-proxy's iptables-mode layout, generated from the same snapshot and loaded with
// iptables-restore (legacy and nft backends). KUBE-SERVICES is a linear list with one rule
// per service destination (ClusterIP, LB IP) jumping to KUBE-SVC-* (or KUBE-EXT-*), which
// picks a KUBE-SEP-* endpoint chain with `-m statistic --mode random --probability 1/k`
// rules; NodePorts are matched in KUBE-NODEPORTS, reached by the last KUBE-SERVICES rule.
// A partial sync (iptables-restore --noflush) rewrites the top-level chains in full
// (KUBE-SERVICES, KUBE-NODEPORTS, … of both tables) plus the changed service's chains, and
// deletes (-X) the chains no longer used.
//
// Bench fixture written from the public descriptions of kube-proxy's iptables mode.
import { AFFINITY_TIMEOUT, CLUSTER_CIDR, type SnapEndpoint, type SnapPort, type SnapService, type Snapshot } from '../workload.js';
import { categorize, hash32, isExternal, portName, proto, svcKey } from './common.js';
import { type DeltaEngine, type DeltaTx, type Layout, LineWriter, type WriteStats } from './layout.js';
import type { Change } from '../workload.js';

interface IptObjs {
  /** per-service chains of the nat table, with their rules (full "-A …" lines) */
  readonly chains: { name: string; rules: string[] }[];
  /** rules this service adds to top-level chains */
  readonly natServices: string[];
  readonly natNodePorts: string[];
  readonly filterExternal: string[];
  readonly filterNodePorts: string[];
}

const FILTER_TOP = ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL'];
const NAT_TOP = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'];

const q = (s: string): string => (/[\s"]/.test(s) ? `"${s}"` : s);

function svcObjs(s: SnapService): IptObjs {
  const o: IptObjs = { chains: [], natServices: [], natNodePorts: [], filterExternal: [], filterNodePorts: [] };
  const cat = categorize(s);
  for (const p of s.ports) portObjs(s, p, cat, o);
  if (s.healthCheckNodePort !== undefined) {
    o.filterNodePorts.push(`-A KUBE-NODEPORTS -m comment --comment ${q(`${s.ns}/${s.name} health check node port`)} -m tcp -p tcp --dport ${s.healthCheckNodePort} -j ACCEPT`);
  }
  return o;
}

function portObjs(s: SnapService, p: SnapPort, cat: ReturnType<typeof categorize>, o: IptObjs): void {
  const pr = proto(p);
  const spn = portName(s, p);
  const h = hash32(spn + pr, 16);
  const svc = `KUBE-SVC-${h}`, svl = `KUBE-SVL-${h}`, ext = `KUBE-EXT-${h}`;
  const sep = (e: SnapEndpoint): string => `KUBE-SEP-${hash32(spn + pr + `${e.ip}:${p.targetPort}`, 16)}`;
  const m = `-m ${pr} -p ${pr}`;
  const hasExternalEndpoints = !cat.etpLocal || cat.local.length > 0;
  const usesLocal = cat.etpLocal && cat.local.length > 0;

  o.natServices.push(`-A KUBE-SERVICES -m comment --comment ${q(`${spn} cluster IP`)} ${m} -d ${s.clusterIP} --dport ${p.port} -j ${svc}`);
  if (s.lbIP) {
    o.natServices.push(`-A KUBE-SERVICES -m comment --comment ${q(`${spn} loadbalancer IP`)} ${m} -d ${s.lbIP} --dport ${p.port} -j ${ext}`);
    if (!hasExternalEndpoints) o.filterExternal.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${q(`${spn} has no local endpoints`)} ${m} -d ${s.lbIP} --dport ${p.port} -j DROP`);
  }
  if (p.nodePort !== undefined) {
    o.natNodePorts.push(`-A KUBE-NODEPORTS -m comment --comment ${spn} ${m} --dport ${p.nodePort} -j ${ext}`);
    if (!hasExternalEndpoints) o.filterExternal.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${q(`${spn} has no local endpoints`)} -m addrtype --dst-type LOCAL ${m} --dport ${p.nodePort} -j DROP`);
  }

  const pick = (chain: string, eps: readonly SnapEndpoint[]): string[] => {
    const rules: string[] = [];
    if (s.affinity) for (const e of eps) rules.push(`-A ${chain} -m comment --comment ${q(`${spn} -> ${e.ip}:${p.targetPort}`)} -m recent --name ${sep(e)} --mask 255.255.255.255 --rsource --rcheck --seconds ${AFFINITY_TIMEOUT} --reap -j ${sep(e)}`);
    eps.forEach((e, i) => {
      const left = eps.length - i;
      const stat = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : '';
      rules.push(`-A ${chain} -m comment --comment ${q(`${spn} -> ${e.ip}:${p.targetPort}`)}${stat} -j ${sep(e)}`);
    });
    return rules;
  };

  o.chains.push({ name: svc, rules: [`-A ${svc} -m comment --comment ${q(`${spn} cluster IP`)} ${m} -d ${s.clusterIP} --dport ${p.port} ! -s ${CLUSTER_CIDR} -j KUBE-MARK-MASQ`, ...pick(svc, cat.cluster)] });
  if (usesLocal) o.chains.push({ name: svl, rules: pick(svl, cat.local) });
  if (isExternal(s)) {
    const rules: string[] = [];
    if (!cat.etpLocal) {
      rules.push(`-A ${ext} -m comment --comment ${q(`masquerade traffic for ${spn} external destinations`)} -j KUBE-MARK-MASQ`, `-A ${ext} -j ${svc}`);
    } else {
      rules.push(`-A ${ext} -m comment --comment ${q(`pod traffic for ${spn} external destinations`)} -s ${CLUSTER_CIDR} -j ${svc}`);
      rules.push(`-A ${ext} -m comment --comment ${q(`masquerade LOCAL traffic for ${spn} external destinations`)} -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`);
      rules.push(`-A ${ext} -m comment --comment ${q(`route LOCAL traffic for ${spn} external destinations`)} -m addrtype --src-type LOCAL -j ${svc}`);
      if (hasExternalEndpoints) rules.push(`-A ${ext} -j ${svl}`);
    }
    o.chains.push({ name: ext, rules });
  }
  for (const e of cat.cluster) {
    const c = sep(e);
    o.chains.push({
      name: c,
      rules: [
        `-A ${c} -m comment --comment ${spn} -s ${e.ip} -j KUBE-MARK-MASQ`,
        `-A ${c} -m comment --comment ${spn}${s.affinity ? ` -m recent --set --name ${c} --mask 255.255.255.255 --rsource` : ''} ${m} -j DNAT --to-destination ${e.ip}:${p.targetPort}`,
      ],
    });
  }
}

const FILTER_JUMPS = [
  '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
  '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
  '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
  '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
  '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
  '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
  '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
  '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
];
const FILTER_FIXED = [
  '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
  '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
  '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
];
const NAT_JUMPS = [
  '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
];
const NAT_FIXED = [
  '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
  '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
  '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
];
const NODEPORTS_LAST = '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS';

/** The whole input: top-level chains in full, plus the per-service chains of `changed`. */
async function emit(
  line: (s: string) => void | Promise<void>,
  all: Iterable<IptObjs>,
  opts: { full: boolean; changed: readonly IptObjs[]; stale: readonly string[] },
): Promise<void> {
  const objs = [...all];
  await line('*filter');
  for (const c of FILTER_TOP) await line(`:${c} - [0:0]`);
  if (opts.full) for (const l of FILTER_JUMPS) await line(l);
  for (const l of FILTER_FIXED) await line(l);
  for (const o of objs) { for (const l of o.filterExternal) await line(l); for (const l of o.filterNodePorts) await line(l); }
  await line('COMMIT');
  await line('*nat');
  for (const c of NAT_TOP) await line(`:${c} - [0:0]`);
  const chainSrc = opts.full ? objs : opts.changed;
  for (const o of chainSrc) for (const c of o.chains) await line(`:${c.name} - [0:0]`);
  for (const c of opts.stale) await line(`:${c} - [0:0]`);
  if (opts.full) for (const l of NAT_JUMPS) await line(l);
  for (const l of NAT_FIXED) await line(l);
  for (const o of objs) for (const l of o.natServices) await line(l);
  await line(NODEPORTS_LAST);
  for (const o of objs) for (const l of o.natNodePorts) await line(l);
  for (const o of chainSrc) for (const c of o.chains) for (const r of c.rules) await line(r);
  for (const c of opts.stale) await line(`-X ${c}`);
  await line('COMMIT');
}

class IptDeltaEngine implements DeltaEngine {
  private readonly current = new Map<string, IptObjs>();
  private order: string[];
  constructor(snap: Snapshot) {
    for (const s of snap.services) this.current.set(svcKey(s), svcObjs(s));
    this.order = snap.services.map(svcKey);
  }
  async change(c: Change): Promise<DeltaTx> {
    const svc = (c.after ?? c.before)!;
    const key = svcKey(svc);
    const old = this.current.get(key);
    const neu = c.after ? svcObjs(c.after) : undefined;
    if (neu) this.current.set(key, neu); else this.current.delete(key);
    if (c.kind === 'add') this.order.splice(c.index, 0, key);
    if (c.kind === 'delete') this.order = this.order.filter((k) => k !== key);
    const keep = new Set((neu?.chains ?? []).map((ch) => ch.name));
    const stale = (old?.chains ?? []).map((ch) => ch.name).filter((n) => !keep.has(n));
    const out: string[] = [];
    await emit((l) => { out.push(l); }, this.order.map((k) => this.current.get(k)!), { full: false, changed: neu ? [neu] : [], stale });
    return { text: out.join('\n') + '\n', lines: out.length };
  }
}

function iptLayout(backend: 'legacy' | 'nft'): Layout {
  const restore = backend === 'legacy' ? 'iptables-legacy-restore' : 'iptables-nft-restore';
  return {
    id: `kp-iptables-${backend}`,
    label: `kube-proxy iptables mode (iptables-${backend})`,
    // A fresh namespace has nothing to keep: plain restore. (kube-proxy always passes
    // --noflush; iptables-nft 1.8.9 then re-reads its cache per chain and the load grows
    // about quadratically: 11.4 s instead of 1.5 s at 500 services. Deltas use --noflush.)
    loadCmd: (file) => [restore, file],
    deltaCmd: () => [restore, '--noflush'],
    async writeFull(snap: Snapshot, file: string): Promise<WriteStats> {
      const w = new LineWriter(file);
      await emit((l) => w.line(l), snap.services.map(svcObjs), { full: true, changed: [], stale: [] });
      return w.close();
    },
    deltas: (snap) => new IptDeltaEngine(snap),
    sample(s) {
      const o = svcObjs(s);
      return [...o.natServices, ...o.natNodePorts, ...o.filterExternal, ...o.filterNodePorts, ...o.chains.flatMap((c) => c.rules)];
    },
  };
}

export const kpIptablesLegacy = iptLayout('legacy');
export const kpIptablesNft = iptLayout('nft');
