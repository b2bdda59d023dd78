// `nftproxy verify`: the kernel's nftproxy tables (read over netlink, dump.ts) against what
// nftproxy intends (the kernel objects of render/kernel), object by object, and each
// difference attributed to the service port that owns the object.
//
// Rules compare in canonical form (apply/netlink/canonical.ts): ours straight from the
// encoder, the kernel's from its dump, so a rule nft or another tool rewrote the same way
// still counts as equal and one that does anything else does not. Elements compare by key
// and value bytes. Not compared, on purpose: comments (user data: they change no packet's
// fate), handles, and the contents of the session-affinity set (the kernel fills it).
import type { Family, ServicePortInfo } from '../ir/types.js';
import { TABLE_NAME } from '../ir/types.js';
import * as A from '../apply/netlink/abi.js';
import { type SetResolver, canonicalAnonSet, canonicalElement, canonicalRule, canonicalSetDecl, desiredRules, desiredSetDecl } from '../apply/netlink/canonical.js';
import type { KernelChain, KernelData, KernelElement, KernelSet, KernelTable } from '../apply/netlink/dump.js';
import { type KFamily, familyChains, familySets } from '../render/kernel/family.js';
import { elementText, fieldsText, hookText, keyText, setKind } from '../render/kernel/text.js';
import type { KChain, KElement, KSetDecl, SetShape } from '../render/kernel/types.js';
import { ownerOfChainName } from './owners.js';

export interface Difference {
  readonly family: Family;
  /** service port ids that own the object; empty: the table's own (base chains, declarations) */
  readonly owners: readonly string[];
  readonly kind: 'missing' | 'extra' | 'changed';
  /** the object in nft words, e.g. `element 172.30.0.10 . tcp . 80 : goto dnat-cluster-3 in map service-ips` */
  readonly what: string;
  /** changed objects: what the kernel holds and what nftproxy intends */
  readonly kernel?: string;
  readonly intended?: string;
}

export interface FamilyCounts { readonly family: Family; readonly chains: number; readonly rules: number; readonly sets: number; readonly elements: number }

export interface VerifyReport {
  readonly differences: readonly Difference[];
  /** what was compared, per family present in the kernel or intended */
  readonly compared: readonly FamilyCounts[];
}

const HOOKNAME = ['prerouting', 'input', 'forward', 'output', 'postrouting'];

/**
 * Compares one family. `kernel` undefined: the table is absent. `anon` reads an anonymous
 * set of the kernel's table (for rules whose lookups use one).
 */
function compareFamily(want: KFamily, kernel: KernelTable | undefined, anon: SetResolver, servicePorts: readonly ServicePortInfo[]): { differences: Difference[]; counts: FamilyCounts } {
  const family = want.head.family;
  const out: Difference[] = [];
  const counts = { family, chains: 0, rules: 0, sets: 0, elements: 0 };
  if (!kernel) {
    out.push({ family, owners: [], kind: 'missing', what: `table ${family} ${TABLE_NAME}` });
    return { differences: out, counts };
  }
  const who = new Attribution(family, want, servicePorts);

  // chains and their rules
  const kchains = new Map<string, KernelChain>(kernel.chains.map((c) => [c.name, c]));
  const chains = new Map<string, KChain>();
  for (const c of familyChains(want)) if (!chains.has(c.name)) chains.set(c.name, c);
  const wantRules = desiredRules(family, chains.values());
  const wanted = new Set<string>();
  for (const c of chains.values()) {
    wanted.add(c.name);
    const owners = c.owner ? [c.owner] : [];
    const k = kchains.get(c.name);
    if (!k) { out.push({ family, owners, kind: 'missing', what: `chain ${c.name}` }); continue; }
    counts.chains++;
    const hookWant = c.hook ? hookText(c.hook) : '(not a base chain)';
    const hookHave = k.hook ? kernelHookText(k.hook) : '(not a base chain)';
    if (hookWant !== hookHave) out.push({ family, owners, kind: 'changed', what: `chain ${c.name}`, kernel: hookHave, intended: hookWant });
    counts.rules += k.rules.length;
    for (const d of compareRules(c, wantRules.get(c.name) ?? [], k, anon)) out.push({ family, owners, ...d });
  }
  for (const k of kernel.chains) {
    if (wanted.has(k.name)) continue;
    out.push({ family, owners: who.ofChainName(k.name), kind: 'extra', what: `chain ${k.name}${k.rules.length ? ` (${k.rules.length} rule${k.rules.length === 1 ? '' : 's'})` : ''}` });
  }

  // sets: declarations and elements
  const ksets = new Map(kernel.sets.map((s) => [s.name, s]));
  const declared = new Set<string>();
  for (const { decl, elements } of familySets(want)) {
    declared.add(decl.name);
    const k = ksets.get(decl.name);
    const what = `${setKind(decl.shape)} ${decl.name}`;
    if (!k) { out.push({ family, owners: [], kind: 'missing', what }); continue; }
    counts.sets++;
    const have = canonicalSetDecl(k, false), intended = desiredSetDecl(family, decl);
    if (have !== intended) { out.push({ family, owners: [], kind: 'changed', what, kernel: have, intended }); continue; }
    if (!elements || !k.elements) continue;
    counts.elements += k.elements.length;
    for (const d of compareElements(family, decl, elements, k.elements, who)) out.push(d);
  }
  for (const k of kernel.sets) if (!declared.has(k.name)) out.push({ family, owners: [], kind: 'extra', what: `set ${k.name}${k.elements ? ` (${k.elements.length} elements)` : ''}` });
  return { differences: out, counts };
}

/** Every family: the kernel's tables (by family) against the intended ones; a table of nftproxy's name nobody intends is extra. */
export function compareAll(want: readonly KFamily[], kernel: ReadonlyMap<Family, KernelTable | undefined>, anon: (family: Family) => SetResolver, servicePorts: readonly ServicePortInfo[]): VerifyReport {
  const differences: Difference[] = [];
  const compared: FamilyCounts[] = [];
  for (const f of want) {
    const r = compareFamily(f, kernel.get(f.head.family), anon(f.head.family), servicePorts);
    for (const d of r.differences) differences.push(d);
    compared.push(r.counts);
  }
  for (const [family, t] of kernel) {
    if (!t || want.some((f) => f.head.family === family)) continue;
    differences.push({ family, owners: [], kind: 'extra', what: `table ${family} ${TABLE_NAME} (${t.chains.length} chains, ${t.sets.length} sets; nftproxy intends no ${family} table)` });
  }
  return { differences, compared };
}

function kernelHookText(h: { hooknum: number; priority: number; type: string | undefined; policy: number | undefined }): string {
  const hook = HOOKNAME[h.hooknum] ?? `hook${h.hooknum}`;
  return `type ${h.type ?? '?'} hook ${hook} priority ${h.priority}; policy ${h.policy === A.VERDICT_CODE.drop ? 'drop' : 'accept'};`;
}

// --- rules: a longest common subsequence, so one rule gone shows as one rule missing ---

type RuleDiff = Omit<Difference, 'family' | 'owners'>;

function compareRules(c: KChain, canon: readonly string[][], k: KernelChain, anon: SetResolver): RuleDiff[] {
  const want = canon.map((r) => r.join(' '));
  const have = k.rules.map((r) => canonicalRule(r.exprs, anon).join(' '));
  if (want.length === have.length && want.every((w, i) => w === have[i])) return [];
  const n = want.length, m = have.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = want[i] === have[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: RuleDiff[] = [];
  let i = 0, j = 0;
  const missing: number[] = [], extra: number[] = [];
  const flush = (): void => {
    // a rule replaced in place reads better as "changed" than as one missing and one extra
    while (missing.length && extra.length) {
      const a = missing.shift()!, b = extra.shift()!;
      out.push({ kind: 'changed', what: `rule ${a + 1} of chain ${c.name}: ${c.rules[a]!.text}`, kernel: `handle ${k.rules[b]!.handle}: ${have[b]}`, intended: want[a] });
    }
    for (const a of missing.splice(0)) out.push({ kind: 'missing', what: `rule ${a + 1} of chain ${c.name}: ${c.rules[a]!.text}` });
    for (const b of extra.splice(0)) out.push({ kind: 'extra', what: `rule (handle ${k.rules[b]!.handle}) in chain ${c.name}: ${have[b]}` });
  };
  while (i < n || j < m) {
    if (i < n && j < m && want[i] === have[j]) { flush(); i++; j++; continue; }
    if (j >= m || (i < n && lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) missing.push(i++);
    else extra.push(j++);
  }
  flush();
  return out;
}

// --- elements: by key bytes ---

const dataCanon = (d: KernelData | undefined): string => canonicalElement({ key: Buffer.alloc(0), data: d, flags: 0, userdata: undefined });

function wantData(e: KElement): KernelData | undefined {
  if (!e.data) return undefined;
  if (e.data.kind === 'value') return { kind: 'value', bytes: Buffer.from(e.data.bytes, 'latin1') };
  const v = e.data.verdict;
  return { kind: 'verdict', code: A.VERDICT_CODE[v.kind], chain: 'chain' in v ? v.chain : undefined };
}

function kernelElementText(family: Family, shape: SetShape, e: KernelElement): string {
  const key = e.key.toString('latin1');
  let text: string;
  try {
    text = keyText(family, shape, key);
  } catch {
    text = e.key.toString('hex');
  }
  if (!e.data) return text;
  if (e.data.kind === 'verdict') return `${text} : ${dataCanon(e.data).slice(3)}`;
  return `${text} : ${shape.endsWith(':addr.port') && e.data.bytes.length === (family === 'ip' ? 8 : 20) ? fieldsText(family, ['addr', 'port'], e.data.bytes.toString('latin1')) : e.data.bytes.toString('hex')}`;
}

function compareElements(family: Family, decl: KSetDecl, want: readonly KElement[], have: readonly KernelElement[], who: Attribution): Difference[] {
  const out: Difference[] = [];
  const kind = setKind(decl.shape);
  const inSet = ` in ${kind} ${decl.name}`;
  const haveBy = new Map<string, KernelElement>();
  for (const e of have) haveBy.set(e.key.toString('latin1'), e);
  const seen = new Set<string>();
  for (const e of want) {
    if (seen.has(e.key)) continue;
    seen.add(e.key);
    const k = haveBy.get(e.key);
    // only for a difference: a 10k-service table has 100,000 hairpin and cluster IP elements
    const owners = (): string[] => (e.owner ? [e.owner] : who.ofKey(decl.shape, e.key));
    if (!k) { out.push({ family, owners: owners(), kind: 'missing', what: `element ${elementText(family, decl.shape, e)}${inSet}` }); continue; }
    const w = dataCanon(wantData(e)), h = dataCanon(k.data);
    if (w !== h) out.push({ family, owners: owners(), kind: 'changed', what: `element ${keyText(family, decl.shape, e.key)}${inSet}`, kernel: kernelElementText(family, decl.shape, k), intended: elementText(family, decl.shape, e) });
  }
  for (const [key, k] of haveBy) {
    if (seen.has(key)) continue;
    out.push({ family, owners: who.ofKey(decl.shape, key), kind: 'extra', what: `element ${kernelElementText(family, decl.shape, k)}${inSet}` });
  }
  return out;
}

/**
 * Who owns an object nftproxy's layout shares or does not intend: a key of the dispatch and
 * endpoint maps belongs to the service port whose address, protocol and port it starts
 * with; a cluster IP to the ports that answer on it; a chain name carries its port's id.
 */
class Attribution {
  private readonly byPrefix = new Map<string, Set<string>>();
  private readonly ids: ReadonlySet<string>;
  private readonly alen: number;

  constructor(private readonly family: Family, want: KFamily, private readonly ports: readonly ServicePortInfo[]) {
    this.alen = family === 'ip' ? 4 : 16;
    this.ids = new Set(ports.filter((p) => p.family === family).map((p) => p.id));
    for (const { decl, elements } of familySets(want)) {
      for (const e of elements ?? []) {
        if (!e.owner) continue;
        const p = this.prefix(decl.shape, e.key);
        if (p === undefined) continue;
        let s = this.byPrefix.get(p);
        if (!s) this.byPrefix.set(p, (s = new Set()));
        s.add(e.owner);
      }
    }
  }

  private prefix(shape: SetShape, key: string): string | undefined {
    if (shape.startsWith('addr.proto.port')) return `a${key.slice(0, this.alen + 8)}`;
    if (shape.startsWith('proto.port')) return `p${key.slice(0, 8)}`;
    return undefined;
  }

  ofKey(shape: SetShape, key: string): string[] {
    const p = this.prefix(shape, key);
    if (p !== undefined) return [...(this.byPrefix.get(p) ?? [])].sort();
    if (shape === 'addr' && key.length === this.alen) return [...(this.index('vips').get(fieldsText(this.family, ['addr'], key)) ?? [])].sort();
    if (shape === 'addr.addr' && key.length === 2 * this.alen) return [...(this.index('nodeEndpoints').get(fieldsText(this.family, ['addr'], key.slice(0, this.alen))) ?? [])].sort();
    return [];
  }

  /** address -> the service ports that list it (made on first use) */
  private readonly indexes = new Map<string, Map<string, Set<string>>>();
  private index(field: 'vips' | 'nodeEndpoints'): Map<string, Set<string>> {
    let m = this.indexes.get(field);
    if (!m) {
      this.indexes.set(field, (m = new Map()));
      for (const sp of this.ports) {
        if (sp.family !== this.family) continue;
        for (const addr of sp[field]) {
          let s = m.get(addr);
          if (!s) m.set(addr, (s = new Set()));
          s.add(sp.id);
        }
      }
    }
    return m;
  }

  ofChainName(name: string): string[] {
    const id = ownerOfChainName(name, this.ids);
    return id !== undefined ? [id] : [];
  }
}

// --- text ---

/** "lab/web port http 80/TCP" for an owner id, as explain names a service port. */
export function servicePortLabel(id: string, family: Family, ports: readonly ServicePortInfo[]): string {
  const sp = ports.find((p) => p.id === id && p.family === family) ?? ports.find((p) => p.id === id);
  return sp ? `${sp.service} port ${sp.portName || '(unnamed)'} ${sp.port}/${sp.proto.toUpperCase()}` : id;
}

/** The report as an operator reads it: by service port, then the table's own objects. */
export function formatVerify(r: VerifyReport, ports: readonly ServicePortInfo[]): string {
  const lines: string[] = [];
  if (r.differences.length === 0) {
    for (const c of r.compared) lines.push(`table ${c.family} ${TABLE_NAME}: as intended (${c.chains} chains, ${c.rules} rules, ${c.sets} sets, ${c.elements} elements)`);
    return lines.join('\n') + '\n';
  }
  // one group per family and owners; the table's own objects after the service ports
  const groups = new Map<string, Difference[]>();
  for (const d of r.differences) {
    const key = `${d.owners.length ? 0 : 1} ${d.family} ${d.owners.join(',')}`;
    const g = groups.get(key) ?? [];
    g.push(d);
    groups.set(key, g);
  }
  for (const key of [...groups.keys()].sort()) {
    const ds = groups.get(key)!;
    const { family, owners } = ds[0]!;
    lines.push(owners.length ? `${owners.map((o) => servicePortLabel(o, family, ports)).join(', ')} (${family}):` : `table ${family} ${TABLE_NAME}, not of one service port:`);
    for (const d of ds) {
      lines.push(`  ${d.kind} ${d.what}`);
      if (d.kernel !== undefined) lines.push(`      kernel:   ${d.kernel}`, `      intended: ${d.intended}`);
    }
  }
  const owned = new Set(r.differences.flatMap((d) => d.owners.map((o) => `${d.family} ${o}`)));
  lines.push(`${r.differences.length} difference${r.differences.length === 1 ? '' : 's'}${owned.size ? `, ${owned.size} service port${owned.size === 1 ? '' : 's'} affected` : ''}: the kernel does not hold what nftproxy intends`);
  return lines.join('\n') + '\n';
}

/** An anonymous set of the kernel's table, read on demand and remembered. */
export function anonReader(read: (name: string) => { decl: Omit<KernelSet, 'elements' | 'name'>; elements: KernelElement[] } | undefined): SetResolver {
  const cache = new Map<string, string>();
  return (name) => {
    if (!name.startsWith('__')) return name;
    let c = cache.get(name);
    if (c === undefined) {
      const s = read(name);
      c = s ? canonicalAnonSet(s.decl, s.elements) : `${name}(absent)`;
      cache.set(name, c);
    }
    return c;
  };
}
