// IR table -> the objects nft will hold: sets and maps (declaration + elements keyed by
// their key text) and chains (declaration + rule texts), each tagged with the service port
// that owns it. The text renderer prints this; the partial-sync differ compares two of them.
// Every token comes from a parsed IP, port, protocol, a hashed name or our own constants.
import type { Backend, Chain, Family, NamedSet, SetElement, Table } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { type DnatGroup, addrKeyword, collectDnatGroups, dnatAliases } from './lower-dnat.js';
import { type Aliases, quote, renderElementParts, renderRule } from './nft-text.js';

export interface KElement {
  /** the element's key as nft prints it: what `delete element` needs */
  readonly key: string;
  /** the whole element (key, comment, value): what `add element` needs */
  readonly text: string;
  readonly owner: string | undefined;
}

export interface KSet {
  readonly kind: 'set' | 'map';
  readonly name: string;
  /** declaration lines (type, flags, timeout, comment), without elements */
  readonly decl: readonly string[];
  /** elements the kernel adds itself (session affinity): never diffed, never listed */
  readonly dynamic: boolean;
  readonly elements: ReadonlyMap<string, KElement>;
  readonly owner: string | undefined;
}

export interface KRule { readonly text: string; readonly owner: string | undefined }

export interface KChain {
  readonly name: string;
  /** the base-chain line (type, hook, priority, policy), or undefined for regular chains */
  readonly hook: string | undefined;
  readonly rules: readonly KRule[];
  readonly owner: string | undefined;
}

export interface KTable {
  readonly family: Family;
  readonly name: string;
  readonly comment: string;
  readonly sets: ReadonlyMap<string, KSet>;
  readonly chains: ReadonlyMap<string, KChain>;
}

export const TABLE_COMMENT = 'rules for nftproxy';

export function toKTable(t: Table): KTable {
  const sets = new Map<string, KSet>();
  const chains = new Map<string, KChain>();
  const aliases = dnatAliases(t.chains);
  for (const s of t.sets) sets.set(s.name, kset(t.family, s, aliases));

  const groups = collectDnatGroups(t);
  for (const g of groups) {
    const { vipMap, nodePortMap } = groupObjects(t.family, g);
    sets.set(vipMap.name, { ...vipMap, elements: new Map(groupElements(g, 'vip').map((e) => [e.key, e])) });
    sets.set(nodePortMap.name, { ...nodePortMap, elements: new Map(groupElements(g, 'nodeport').map((e) => [e.key, e])) });
  }
  for (const c of t.chains) if (!aliases.has(c.name)) chains.set(c.name, kchain(t.family, c, aliases));
  for (const g of groups) for (const c of groupObjects(t.family, g).chains) chains.set(c.name, c);
  return { family: t.family, name: t.name, comment: TABLE_COMMENT, sets, chains };
}

const keyTypes = (f: Family, key: NamedSet['key']): string => {
  const addr = f === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  switch (key) {
    case 'addr': return addr;
    case 'addr.addr': return `${addr} . ${addr}`;
    case 'addr.l4proto.dport': return `${addr} . inet_proto . inet_service`;
    case 'l4proto.dport': return 'inet_proto . inet_service';
    case 'saddr.affinity': throw new Error('the affinity set is declared with typeof');
    default: return assertNever(key);
  }
};

function kset(f: Family, s: NamedSet, aliases?: Aliases): KSet {
  // the affinity key's two words are numgen values: only `typeof` can say so (nft-text.ts)
  const decl = [s.key === 'saddr.affinity'
    ? `typeof ${f === 'ip' ? 'ip' : 'ip6'} saddr . numgen random mod 1 . numgen random mod 1`
    : `type ${keyTypes(f, s.key)}${s.isMap ? ' : verdict' : ''}`];
  if (s.size !== undefined) decl.push(`size ${s.size}`);
  const flags = [...(s.interval ? ['interval'] : []), ...(s.timeoutSeconds !== undefined ? ['dynamic', 'timeout'] : [])];
  if (flags.length) decl.push(`flags ${flags.join(',')}`);
  if (s.timeoutSeconds !== undefined) decl.push(`timeout ${s.timeoutSeconds}s`);
  if (s.comment) decl.push(`comment ${quote(s.comment)}`);
  const elements = new Map<string, KElement>();
  for (const e of s.elements) {
    const k = kelement(e, s.owner, aliases);
    elements.set(k.key, k);
  }
  return { kind: s.isMap ? 'map' : 'set', name: s.name, decl, dynamic: s.timeoutSeconds !== undefined, elements, owner: s.owner };
}

// The compiler hands back the same IR objects for unchanged services (compile.ts), so their
// rendered form is remembered per object: rendering 10,000 services after one change renders
// one. The differ then compares these objects by identity first. (An object's aliases are
// those of its own service port's chains: the same every time it is rendered.)
const chainCache = new WeakMap<Chain, { family: Family; k: KChain }>();
function kchain(family: Family, c: Chain, aliases?: Aliases): KChain {
  const hit = chainCache.get(c);
  if (hit && hit.family === family) return hit.k;
  const k: KChain = {
    name: c.name,
    hook: c.base ? `type ${c.base.type} hook ${c.base.hook} priority ${c.base.priority}; policy accept;` : undefined,
    rules: c.rules.map((r) => ({ text: renderRule(family, r, aliases), owner: c.owner })),
    owner: c.owner,
  };
  chainCache.set(c, { family, k });
  return k;
}

const elementCache = new WeakMap<SetElement, KElement>();
function kelement(e: SetElement, setOwner: string | undefined, aliases?: Aliases): KElement {
  const hit = elementCache.get(e);
  if (hit && hit.owner === (e.owner ?? setOwner)) return hit;
  const { key, text } = renderElementParts(e, aliases);
  const k = { key, text, owner: e.owner ?? setOwner };
  elementCache.set(e, k);
  return k;
}

// dnat map elements are keyed by the (statement key, slot, backend) objects the compiler made.
const dnatCache = new WeakMap<object, WeakMap<object, KElement[]>>();
function dnatElement(e: { key: object; slot: number; backend: Backend; owner: string | undefined }, keyText: () => string): KElement {
  let byBackend = dnatCache.get(e.key);
  if (!byBackend) dnatCache.set(e.key, (byBackend = new WeakMap()));
  const slots = byBackend.get(e.backend) ?? [];
  const hit = slots[e.slot];
  if (hit && hit.owner === e.owner) return hit;
  const key = keyText();
  const k = { key, text: `${key} : ${e.backend.addr} . ${e.backend.port}`, owner: e.owner };
  slots[e.slot] = k;
  byBackend.set(e.backend, slots);
  return k;
}

/** The shared objects of one endpoint-count group: its two maps (empty) and its two chains. */
export function groupObjects(family: Family, g: Pick<DnatGroup, 'n' | 'chain' | 'masqChain' | 'vipMap' | 'nodePortMap'>): { vipMap: KSet; nodePortMap: KSet; chains: readonly KChain[] } {
  const a = addrKeyword(family);
  const dataType = `${a} daddr . th dport`;
  const rules = (texts: string[]): KRule[] => texts.map((text) => ({ text, owner: undefined }));
  return {
    vipMap: { kind: 'map', name: g.vipMap, decl: [`typeof ${a} daddr . meta l4proto . th dport . numgen random mod 1 : ${dataType}`], dynamic: false, elements: new Map(), owner: undefined },
    nodePortMap: { kind: 'map', name: g.nodePortMap, decl: [`typeof meta l4proto . th dport . numgen random mod 1 : ${dataType}`], dynamic: false, elements: new Map(), owner: undefined },
    chains: [
      {
        name: g.chain, hook: undefined, owner: undefined,
        rules: rules([
          `meta l4proto { tcp, udp, sctp } dnat ${a} addr . port to ${a} daddr . meta l4proto . th dport . numgen random mod ${g.n} map @${g.vipMap}`,
          `meta l4proto { tcp, udp, sctp } dnat ${a} addr . port to meta l4proto . th dport . numgen random mod ${g.n} map @${g.nodePortMap}`,
        ]),
      },
      // the external chain of an externalTrafficPolicy=Cluster service (dnatAliases)
      { name: g.masqChain, hook: undefined, owner: undefined, rules: rules([renderRule(family, { matches: [], stmts: [{ kind: 'mark-masq' }] }), `goto ${g.chain}`]) },
    ],
  };
}

/** The elements a group's VIP or NodePort map holds. */
export function groupElements(g: DnatGroup, which: 'vip' | 'nodeport'): KElement[] {
  return which === 'vip'
    ? g.vipElements.map((e) => dnatElement(e, () => `${e.key.addr} . ${e.key.proto} . ${e.key.port} . ${e.slot}`))
    : g.nodePortElements.map((e) => dnatElement(e, () => `${e.key.proto} . ${e.key.port} . ${e.slot}`));
}

export { kchain as kchainOf, kelement as kelementOf };
