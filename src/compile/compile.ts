// (Model, ProxyConfig) -> Ruleset. Pure: no I/O, no clock, no randomness; the same input
// gives byte-identical output. Linear in services + endpoints.
import type { IPFamily } from '../model/ip.js';
import type { ProxyConfig } from '../model/config.js';
import type { EndpointSlice, Model, Service } from '../model/types.js';
import { type Chain, type NamedSet, type Ruleset, type ServicePortInfo, type SetElement, type Table, TABLE_NAME } from '../ir/types.js';
import { SET, baseChains, emptySets } from './base-chains.js';
import { type FamilyContext, familyContext } from './family-context.js';
import { endpointsForPort } from './endpoints-for-port.js';
import { type ServicePortRules, compileServicePort } from './service-port.js';
import { type GenerationOf, firstGeneration } from './affinity.js';

/**
 * One table per family the configuration names, whatever families the Node's addresses or the
 * services have: which families the host carries is decided outside (the daemon asks the
 * kernel, dump and explain look at their inputs), as kube-proxy runs both families wherever
 * the host can.
 */
export function families(cfg: Pick<ProxyConfig, 'ipFamilies'>): readonly IPFamily[] {
  return cfg.ipFamilies;
}

/** One family's compiled pieces before assembly: what a partial sync diffs service by service. */
export interface CompiledFamily {
  readonly ctx: FamilyContext;
  /** the same string for the same context: a changed context means a full sync */
  readonly ctxKey: string;
  /** what depends on the context alone: every named set (with its fixed elements) and the base chains */
  readonly base: FamilyBase;
  /** per service ("ns/name"), its ports' rules, in model order; the same array while unchanged */
  readonly services: ReadonlyMap<string, readonly (ServicePortRules | undefined)[]>;
}

export interface FamilyBase {
  readonly sets: readonly NamedSet[];
  readonly chains: readonly Chain[];
}

// One base per context: the same object while the context is unchanged.
const bases = new Map<string, FamilyBase>();
function familyBase(ctx: FamilyContext, ctxKey: string): FamilyBase {
  let b = bases.get(ctxKey);
  if (!b) {
    const fixed = new Map<string, SetElement[]>([[SET.nodePortIPs, nodePortIPElements(ctx)]]);
    b = { sets: [...emptySets(ctx).values()].map((d) => ({ ...d, elements: fixed.get(d.name) ?? [] })), chains: baseChains(ctx) };
    if (bases.size > 8) bases.clear();
    bases.set(ctxKey, b);
  }
  return b;
}

/**
 * Compile every service (remembered per unchanged service): O(services), cheap when few changed.
 * generationOf: the daemon's count of how often each affinity endpoint went away (affinity.ts).
 */
export function compileParts(model: Model, cfg: ProxyConfig, generationOf: GenerationOf = firstGeneration): CompiledFamily[] {
  return families(cfg).map((fam) => {
    const ctx = familyContext(cfg, fam);
    const ctxKey = JSON.stringify(ctx);
    const services = new Map<string, readonly (ServicePortRules | undefined)[]>();
    for (const svc of model.services) {
      const ref = refOf(svc);
      services.set(ref, compileService(ctx, ctxKey, svc, model.slices.get(ref) ?? NO_SLICES, generationOf));
    }
    return { ctx, ctxKey, base: familyBase(ctx, ctxKey), services };
  });
}

export function compile(model: Model, cfg: ProxyConfig, generationOf: GenerationOf = firstGeneration): Ruleset {
  return assemble(compileParts(model, cfg, generationOf));
}

/** Every service port's info, without assembling tables. */
export function servicePortsOf(parts: readonly CompiledFamily[]): ServicePortInfo[] {
  return parts.flatMap((f) => [...f.services.values()].flatMap((rules) => rules.flatMap((r) => (r ? [r.info] : []))));
}

export function assemble(parts: readonly CompiledFamily[]): Ruleset {
  const tables: Table[] = [];
  const servicePorts: ServicePortInfo[] = [];
  for (const f of parts) {
    const { table, infos } = assembleFamily(f);
    tables.push(table);
    for (const i of infos) servicePorts.push(i);
  }
  return { tables, servicePorts };
}

function assembleFamily(f: CompiledFamily): { table: Table; infos: ServicePortInfo[] } {
  const { ctx } = f;
  const elements = new Map<string, SetElement[]>(f.base.sets.map((s) => [s.name, [...s.elements]]));
  const chains: Chain[] = [...f.base.chains];
  const infos: ServicePortInfo[] = [];
  const clusterIPs = new Set<string>();
  const hairpin = new Set<string>();

  for (const rules of f.services.values()) {
    for (const r of rules) {
      if (!r) continue;
      for (const c of r.chains) chains.push(c);
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
  // no spread anywhere here: 250,000 endpoints overflow the call stack of push(...array)
  const hairpinEls = elements.get(SET.hairpin);
  if (hairpinEls) for (const ip of [...hairpin].sort()) hairpinEls.push(hairpinElement(ip));

  const sets: NamedSet[] = f.base.sets.map((d) => ({ ...d, elements: sortElements(elements.get(d.name) ?? []) }));
  return { table: { family: ctx.family, name: TABLE_NAME, sets, chains }, infos };
}

export const nodePortIPElements = (ctx: FamilyContext): SetElement[] => (ctx.nodePorts.kind === 'ips' ? ctx.nodePorts.ips.map((ip) => ({ key: [ip] })) : []);
export const hairpinElement = (ip: string): SetElement => ({ key: [ip, ip] });

// Two services never add the same key (the model drops address and NodePort conflicts);
// sorting keeps dump output stable under input reordering.
function sortElements(els: SetElement[]): SetElement[] {
  const keyText = (e: SetElement): string => e.key.map((k) => (typeof k === 'number' ? String(k).padStart(5, '0') : k)).join(' . ');
  return [...els].sort((a, b) => (keyText(a) < keyText(b) ? -1 : keyText(a) > keyText(b) ? 1 : 0));
}

// A service's rules depend only on the service, its slices and the family context; the
// model hands back the same objects while they are unchanged (see build-model.ts). So the
// compiler remembers each service's result: a sync after one change recompiles one service.
// The output is the same objects, which lets the renderer and the differ skip them cheaply.
const NO_SLICES: readonly EndpointSlice[] = [];
const refs = new WeakMap<Service, string>();
function refOf(svc: Service): string {
  let ref = refs.get(svc);
  if (ref === undefined) refs.set(svc, (ref = `${svc.ref.namespace}/${svc.ref.name}`));
  return ref;
}

function sameSlices(a: readonly EndpointSlice[], b: readonly EndpointSlice[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function generationsCurrent(rules: readonly (ServicePortRules | undefined)[], generationOf: GenerationOf): boolean {
  for (const r of rules) if (r) for (const [eid, g] of r.affinity) if (generationOf(eid) !== g) return false;
  return true;
}

// An affinity endpoint's key also depends on its generation: a remembered result is reused
// only while every generation it was made with is still current.
const serviceCache = new WeakMap<Service, { ctxKey: string; slices: readonly EndpointSlice[]; rules: (ServicePortRules | undefined)[] }[]>();

export function compileService(ctx: FamilyContext, ctxKey: string, svc: Service, slices: readonly EndpointSlice[], generationOf: GenerationOf = firstGeneration): (ServicePortRules | undefined)[] {
  // Plain loops: at 10,000 services this is the whole cost of a sync's compile.
  const entries = serviceCache.get(svc) ?? [];
  for (const e of entries) if (e.ctxKey === ctxKey && sameSlices(e.slices, slices) && generationsCurrent(e.rules, generationOf)) return e.rules;
  const rules = svc.ports.map((sp) => compileServicePort(ctx, svc, sp, endpointsForPort(slices, ctx.ipFamily, sp, ctx.nodeName), generationOf));
  // One entry per family context (dual-stack compiles a service twice per sync).
  serviceCache.set(svc, [...entries.filter((e) => e.ctxKey !== ctxKey).slice(-3), { ctxKey, slices, rules }]);
  return rules;
}
