// Partial syncs at the cost of the change, not of the table. The applier keeps, per family,
// what every service contributed to the kernel's table (its chains, its elements in the
// shared maps) and counts for what services share (cluster IPs, hairpin
// pairs, endpoint-count groups). A sync compares the services whose compiled rules changed
// (the compiler hands back the same objects for the others) and emits a transaction for
// those alone, in the same order the generic differ uses (transaction.ts):
//   declare new sets and chains; delete stale elements; refill changed chains; add new
//   elements; flush then delete gone chains; delete gone sets.
// Anything it cannot do in place (a context change) returns undefined, and the caller does
// a full sync.
import type { Family } from '../ir/types.js';
import { SET } from '../compile/base-chains.js';
import { type CompiledFamily, hairpinElement } from '../compile/compile.js';
import type { ServicePortRules } from '../compile/service-port.js';
import { type DnatGroup, collectDnatGroups, dnatAliases } from '../render/lower-dnat.js';
import { type KChain, type KElement, type KSet, groupElements, groupObjects, kchainOf, kelementOf } from '../render/nft-objects.js';
import type { OwnedLine } from '../render/nft-text.js';
import { TABLE_NAME } from '../ir/types.js';

interface Contribution {
  readonly chains: readonly KChain[];
  /** elements only this service port puts in a shared set or map */
  readonly elements: readonly { readonly set: string; readonly el: KElement }[];
  /** elements several services may share: counted */
  readonly shared: readonly { readonly set: string; readonly el: KElement }[];
  /** endpoint-count groups it needs: counted */
  readonly groups: readonly DnatGroup[];
}

const contributionCache = new WeakMap<ServicePortRules, { family: Family; c: Contribution }>();

function contributionOf(family: Family, r: ServicePortRules): Contribution {
  const hit = contributionCache.get(r);
  if (hit && hit.family === family) return hit.c;
  const elements: { set: string; el: KElement }[] = [];
  const shared: { set: string; el: KElement }[] = [];
  const aliases = dnatAliases(r.chains);
  for (const [set, el] of r.elements) (set === SET.clusterIPs ? shared : elements).push({ set, el: kelementOf(el, undefined, aliases) });
  for (const ip of r.hairpin) shared.push({ set: SET.hairpin, el: kelementOf(hairpinElement(ip), undefined) });
  const groups = collectDnatGroups({ chains: r.chains });
  for (const g of groups) {
    for (const el of groupElements(g, 'vip')) elements.push({ set: g.vipMap, el });
    for (const el of groupElements(g, 'nodeport')) elements.push({ set: g.nodePortMap, el });
  }
  const c: Contribution = { chains: r.chains.filter((ch) => !aliases.has(ch.name)).map((ch) => kchainOf(family, ch, aliases)), elements, shared, groups };
  contributionCache.set(r, { family, c });
  return c;
}

interface ServiceEntry { readonly rules: readonly (ServicePortRules | undefined)[]; readonly contribs: readonly Contribution[] }

export interface Delta {
  readonly lines: readonly OwnedLine[];
  readonly ops: number;
  /** make the delta the new state; call only once nft has applied it */
  commit(): void;
}

export class IncrementalTable {
  private services = new Map<string, ServiceEntry>();
  private sharedCount = new Map<string, number>();
  private groupCount = new Map<string, number>();

  private constructor(readonly family: Family, readonly ctxKey: string) {}

  /** The state right after a full sync of these parts. */
  static fromParts(part: CompiledFamily): IncrementalTable {
    const t = new IncrementalTable(part.ctx.family, part.ctxKey);
    for (const [ref, rules] of part.services) {
      const contribs = rules.flatMap((r) => (r ? [contributionOf(t.family, r)] : []));
      t.services.set(ref, { rules, contribs });
      for (const c of contribs) {
        for (const s of c.shared) t.sharedCount.set(`${s.set}\0${s.el.key}`, (t.sharedCount.get(`${s.set}\0${s.el.key}`) ?? 0) + 1);
        for (const g of c.groups) t.groupCount.set(g.chain, (t.groupCount.get(g.chain) ?? 0) + 1);
      }
    }
    return t;
  }

  delta(part: CompiledFamily): Delta | undefined {
    if (part.ctxKey !== this.ctxKey || part.ctx.family !== this.family) return undefined;
    const changed: string[] = [];
    for (const [ref, rules] of part.services) if (this.services.get(ref)?.rules !== rules) changed.push(ref);
    if (part.services.size !== this.services.size || changed.length > 0) {
      for (const ref of this.services.keys()) if (!part.services.has(ref)) changed.push(ref);
    }
    const at = `${this.family} ${TABLE_NAME}`;
    const decls: OwnedLine[] = [], elDel = new Map<string, OwnedLine[]>(), rules: OwnedLine[] = [], elAdd = new Map<string, OwnedLine[]>(), goneChains: KChain[] = [], goneSets: KSet[] = [];
    let ops = 0;
    const updates = new Map<string, ServiceEntry | undefined>();
    const sharedDelta = new Map<string, { n: number; set: string; el: KElement }>();
    const groupDelta = new Map<string, { n: number; g: DnatGroup }>();
    const push = (m: Map<string, OwnedLine[]>, set: string, l: OwnedLine): void => { const a = m.get(set); if (a) a.push(l); else m.set(set, [l]); };

    for (const ref of changed) {
      const old = this.services.get(ref);
      const rulesNow = part.services.get(ref);
      const next: ServiceEntry | undefined = rulesNow ? { rules: rulesNow, contribs: rulesNow.flatMap((r) => (r ? [contributionOf(this.family, r)] : [])) } : undefined;
      updates.set(ref, next);
      const before = old?.contribs ?? [], after = next?.contribs ?? [];

      const oldChains = new Map(before.flatMap((c) => c.chains).map((c) => [c.name, c]));
      const newChains = new Map(after.flatMap((c) => c.chains).map((c) => [c.name, c]));
      for (const [name, c] of newChains) {
        const o = oldChains.get(name);
        if (o === c) continue;
        if ((o?.hook ?? c.hook) !== undefined) return undefined; // base chains never belong to a service
        if (!o) { decls.push({ text: `add chain ${at} ${name}`, owner: c.owner }); ops++; }
        else if (o.rules.length === c.rules.length && o.rules.every((r, i) => r.text === c.rules[i]!.text)) continue;
        else { rules.push({ text: `flush chain ${at} ${name}`, owner: c.owner }); ops++; }
        for (const r of c.rules) { rules.push({ text: `add rule ${at} ${name} ${r.text}`, owner: r.owner }); ops++; }
      }
      for (const [name, c] of oldChains) if (!newChains.has(name)) goneChains.push(c);

      const oldEls = new Map(before.flatMap((c) => c.elements).map((e) => [`${e.set}\0${e.el.key}`, e]));
      const newEls = new Map(after.flatMap((c) => c.elements).map((e) => [`${e.set}\0${e.el.key}`, e]));
      for (const [k, e] of oldEls) {
        const now = newEls.get(k);
        if (now && (now.el === e.el || now.el.text === e.el.text)) continue;
        push(elDel, e.set, { text: e.el.key, owner: e.el.owner });
      }
      for (const [k, e] of newEls) {
        const was = oldEls.get(k);
        if (was && (was.el === e.el || was.el.text === e.el.text)) continue;
        push(elAdd, e.set, { text: e.el.text, owner: e.el.owner });
      }

      for (const [sign, cs] of [[-1, before], [1, after]] as const) {
        for (const c of cs) {
          for (const s of c.shared) {
            const k = `${s.set}\0${s.el.key}`;
            const d = sharedDelta.get(k) ?? { n: 0, set: s.set, el: s.el };
            d.n += sign;
            sharedDelta.set(k, d);
          }
          for (const g of c.groups) {
            const d = groupDelta.get(g.chain) ?? { n: 0, g };
            d.n += sign;
            groupDelta.set(g.chain, d);
          }
        }
      }
    }

    for (const [k, d] of sharedDelta) {
      const cur = this.sharedCount.get(k) ?? 0;
      if (cur === 0 && d.n > 0) push(elAdd, d.set, { text: d.el.text, owner: undefined });
      if (cur > 0 && cur + d.n === 0) push(elDel, d.set, { text: d.el.key, owner: undefined });
    }
    for (const [chain, d] of groupDelta) {
      const cur = this.groupCount.get(chain) ?? 0;
      const objs = groupObjects(this.family, d.g);
      if (cur === 0 && d.n > 0) {
        for (const m of [objs.vipMap, objs.nodePortMap]) { decls.push({ text: `add map ${at} ${m.name} { ${m.decl.join('; ')}; }`, owner: undefined }); ops++; }
        for (const c of objs.chains) {
          decls.push({ text: `add chain ${at} ${c.name}`, owner: undefined });
          for (const r of c.rules) rules.push({ text: `add rule ${at} ${c.name} ${r.text}`, owner: undefined });
          ops += 1 + c.rules.length;
        }
      }
      if (cur > 0 && cur + d.n === 0) {
        goneChains.push(...objs.chains);
        goneSets.push(objs.vipMap, objs.nodePortMap);
      }
    }

    const lines: OwnedLine[] = [...decls];
    const elementsCmd = (verb: 'add' | 'delete', m: Map<string, OwnedLine[]>): void => {
      for (const [set, els] of m) {
        els.forEach((e, i) => lines.push({ text: `${i === 0 ? `${verb} element ${at} ${set} { ` : '\t'}${e.text}${i === els.length - 1 ? ' }' : ','}`, owner: e.owner }));
        ops += els.length;
      }
    };
    elementsCmd('delete', elDel);
    for (const l of rules) lines.push(l);
    elementsCmd('add', elAdd);
    for (const c of goneChains) lines.push({ text: `flush chain ${at} ${c.name}`, owner: c.owner });
    for (const c of goneChains) lines.push({ text: `delete chain ${at} ${c.name}`, owner: c.owner });
    for (const s of goneSets) lines.push({ text: `delete ${s.kind} ${at} ${s.name}`, owner: s.owner });
    ops += goneChains.length * 2 + goneSets.length;

    return {
      lines, ops,
      commit: () => {
        for (const [ref, e] of updates) { if (e) this.services.set(ref, e); else this.services.delete(ref); }
        for (const [k, d] of sharedDelta) { const n = (this.sharedCount.get(k) ?? 0) + d.n; if (n > 0) this.sharedCount.set(k, n); else this.sharedCount.delete(k); }
        for (const [c, d] of groupDelta) { const n = (this.groupCount.get(c) ?? 0) + d.n; if (n > 0) this.groupCount.set(c, n); else this.groupCount.delete(c); }
      },
    };
  }
}
