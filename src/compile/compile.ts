// (Model, ProxyConfig) -> Ruleset. Pure: no I/O, no clock, no randomness; the same input
// gives byte-identical output. Linear in services + endpoints.
import { type IPFamily, familyOf } from '../model/ip.js';
import type { ProxyConfig } from '../model/config.js';
import type { Model } from '../model/types.js';
import { type Chain, type NamedSet, type Ruleset, type ServicePortInfo, type SetElement, type Table, TABLE_NAME } from '../ir/types.js';
import { SET, baseChains, emptySets } from './base-chains.js';
import { type FamilyContext, familyContext } from './family-context.js';
import { endpointsForPort } from './endpoints-for-port.js';
import { compileServicePort } from './service-port.js';

export function families(model: Model, cfg: ProxyConfig): IPFamily[] {
  const seen = new Set<IPFamily>();
  for (const ip of cfg.nodeIPs) seen.add(familyOf(ip));
  if (seen.size === 0) for (const s of model.services) for (const ip of s.clusterIPs) seen.add(familyOf(ip));
  if (seen.size === 0) seen.add('ipv4');
  return (['ipv4', 'ipv6'] as const).filter((f) => seen.has(f));
}

export function compile(model: Model, cfg: ProxyConfig): Ruleset {
  const tables: Table[] = [];
  const servicePorts: ServicePortInfo[] = [];
  for (const fam of families(model, cfg)) {
    const ctx = familyContext(cfg, fam);
    const { table, infos } = compileFamily(model, ctx);
    tables.push(table);
    servicePorts.push(...infos);
  }
  return { tables, servicePorts };
}

function compileFamily(model: Model, ctx: FamilyContext): { table: Table; infos: ServicePortInfo[] } {
  const setDefs = emptySets(ctx);
  const elements = new Map<string, SetElement[]>([...setDefs.keys()].map((k) => [k, []]));
  const chains: Chain[] = baseChains(ctx);
  const extraSets: NamedSet[] = [];
  const infos: ServicePortInfo[] = [];
  const clusterIPs = new Set<string>();
  const hairpin = new Set<string>();

  if (ctx.nodePorts.kind === 'ips') for (const ip of ctx.nodePorts.ips) elements.get(SET.nodePortIPs)?.push({ key: [ip] });

  for (const svc of model.services) {
    const slices = model.slices.get(`${svc.ref.namespace}/${svc.ref.name}`) ?? [];
    for (const sp of svc.ports) {
      const r = compileServicePort(ctx, svc, sp, endpointsForPort(slices, ctx.ipFamily, sp, ctx.nodeName));
      if (!r) continue;
      chains.push(...r.chains);
      extraSets.push(...r.sets);
      for (const [set, el] of r.elements) {
        if (set === SET.clusterIPs) {
          const ip = String(el.key[0]);
          if (clusterIPs.has(ip)) continue;
          clusterIPs.add(ip);
        }
        elements.get(set)?.push(el);
      }
      for (const ip of r.hairpin) hairpin.add(ip);
      infos.push(r.info);
    }
  }
  elements.get(SET.hairpin)?.push(...[...hairpin].sort().map((ip) => ({ key: [ip, ip] })));

  const sets: NamedSet[] = [...setDefs.values()].map((d) => ({ ...d, elements: sortElements(elements.get(d.name) ?? []) }));
  return { table: { family: ctx.family, name: TABLE_NAME, sets: [...sets, ...extraSets], chains }, infos };
}

// Two services never add the same key (the model drops address and NodePort conflicts);
// sorting keeps dump output stable under input reordering.
function sortElements(els: SetElement[]): SetElement[] {
  const keyText = (e: SetElement): string => e.key.map((k) => (typeof k === 'number' ? String(k).padStart(5, '0') : k)).join(' . ');
  return [...els].sort((a, b) => (keyText(a) < keyText(b) ? -1 : keyText(a) > keyText(b) ? 1 : 0));
}
