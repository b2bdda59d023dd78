// IR sets, elements and chains -> kernel objects (types.ts), remembered per IR object: the
// compiler hands back the same objects for unchanged services, so after one change one
// service is lowered again, and the differ can compare the rest by identity.
import type { Chain, Family, KeyAtom, NamedSet, SetElement } from '../../ir/types.js';
import { assertNever } from '../../model/result.js';
import type { Protocol } from '../../model/types.js';
import { type DnatGroup, dispatchSetName, groupDispatchTargets } from '../lower-dnat.js';
import type { Aliases } from '../rule-text.js';
import { KeyBuilder, addrField, flat, portField, protoField, wordField } from './bytes.js';
import { groupDnatRule, kverdict, lowerRule, storedComment } from './lower-rule.js';
import type { KChain, KElement, KRule, KSet, KSetDecl, SetShape } from './types.js';

export function shapeOf(s: Pick<NamedSet, 'key' | 'isMap' | 'timeoutSeconds'>): SetShape {
  switch (s.key) {
    case 'addr': return 'addr';
    case 'addr.addr': return 'addr.addr';
    case 'addr.l4proto.dport': return 'addr.proto.port:verdict';
    case 'l4proto.dport': return 'proto.port:verdict';
    case 'saddr.affinity': return 'saddr.word.word';
    default: return assertNever(s.key);
  }
}

export function setDecl(s: NamedSet): KSetDecl {
  if (s.interval) throw new Error(`set ${s.name}: named interval sets are not part of nftproxy's layout`);
  const shape = shapeOf(s);
  if (shape.endsWith(':verdict') !== s.isMap) throw new Error(`set ${s.name}: a ${s.key} ${s.isMap ? 'map' : 'set'} is not part of nftproxy's layout`);
  return {
    name: s.name, shape,
    ...(s.comment ? { comment: storedComment(s.comment) } : {}),
    ...(s.timeoutSeconds !== undefined ? { timeoutSeconds: s.timeoutSeconds } : {}),
    ...(s.size !== undefined ? { size: s.size } : {}),
  };
}

/** A named set with its elements (none kept for a dynamic set). */
export function kset(s: NamedSet, aliases?: Aliases): KSet {
  const decl = setDecl(s);
  if (s.timeoutSeconds !== undefined) return { ...decl, elements: undefined, ...(s.owner ? { owner: s.owner } : {}) };
  const elements = new Map<string, KElement>();
  for (const e of s.elements) {
    const k = kelement(decl.shape, e, s.owner, aliases);
    elements.set(k.key, k);
  }
  return { ...decl, elements, ...(s.owner ? { owner: s.owner } : {}) };
}

const str = (a: KeyAtom | undefined): string => String(a);
const num = (a: KeyAtom | undefined): number => Number(a);

function keyBytes(shape: SetShape, k: readonly KeyAtom[]): string {
  return flat(keyParts(shape, k));
}

function keyParts(shape: SetShape, k: readonly KeyAtom[]): string {
  switch (shape) {
    case 'addr': return addrField(str(k[0]));
    case 'addr.addr': return addrField(str(k[0])) + addrField(str(k[1]));
    case 'addr.proto.port:verdict': return addrField(str(k[0])) + protoField(str(k[1]) as Protocol) + portField(num(k[2]));
    case 'proto.port:verdict': return protoField(str(k[0]) as Protocol) + portField(num(k[1]));
    case 'saddr.word.word': return addrField(str(k[0])) + wordField(num(k[1])) + wordField(num(k[2]));
    case 'addr.proto.port': case 'proto.port':
      throw new Error('dispatch set elements come from dispatch map elements (family.ts: routed)');
    case 'addr.proto.port.slot:addr.port': case 'proto.port.slot:addr.port':
      throw new Error('dnat map elements come from dnat statements (groupElements)');
    default: return assertNever(shape);
  }
}

// Not remembered per IR element: the unit that holds an element is remembered whole (family.ts).
export function kelement(shape: SetShape, e: SetElement, setOwner?: string, aliases?: Aliases): KElement {
  const owner = e.owner ?? setOwner;
  return {
    key: keyBytes(shape, e.key),
    ...(e.verdict ? { data: { kind: 'verdict', verdict: kverdict(e.verdict, aliases) } } : {}),
    ...(e.comment ? { comment: storedComment(e.comment) } : {}),
    ...(owner ? { owner } : {}),
  };
}

export function kchain(family: Family, c: Chain, aliases: Aliases): KChain {
  return {
    name: c.name,
    ...(c.base ? { hook: c.base } : {}),
    rules: c.rules.map((r) => lowerRule(family, r, aliases, c.owner)),
    ...(c.owner ? { owner: c.owner } : {}),
  };
}

const KEYS = new KeyBuilder();
type GroupElement = DnatGroup['vipElements'][number] | DnatGroup['nodePortElements'][number];
function dnatElement(e: GroupElement): KElement {
  const k = KEYS;
  const key = (e.key.kind === 'vip' ? k.addr(e.key.addr) : k).proto(e.key.proto).port(e.key.port).word(e.slot).take();
  const bytes = k.addr(e.backend.addr).port(e.backend.port).take();
  // no spread of a conditional object: this runs for every endpoint of every service
  return e.owner ? { key, data: { kind: 'value', bytes }, owner: e.owner } : { key, data: { kind: 'value', bytes } };
}

/** Objects several service ports share, made while one uses them: an endpoint-count group's maps and chains, or a shared chain alone. */
export interface GroupObjects { readonly maps: readonly KSetDecl[]; readonly chains: readonly KChain[] }

// Made once per name and family (a full sync asks per service port). Bounded: shared chains
// are named by their content, and a long-running daemon may see many; a map emptied past
// 10,000 makes the same objects again.
const groupCache = new Map<string, GroupObjects>();
const remember = (id: string, o: GroupObjects): GroupObjects => {
  if (groupCache.size >= 10_000) groupCache.clear();
  groupCache.set(id, o);
  return o;
};

/**
 * The shared objects of one endpoint-count group: its two maps, the dispatch sets of its chains
 * (lower-dnat.ts: DISPATCH_CHAIN; declarations) and its chains.
 */
export function groupObjects(family: Family, g: Pick<DnatGroup, 'policy' | 'n' | 'chain' | 'masqChain' | 'vipMap' | 'nodePortMap'>): GroupObjects {
  const id = `${family} ${g.chain}`;
  const hit = groupCache.get(id);
  if (hit) return hit;
  const markMasq: KRule = lowerRule(family, { matches: [], stmts: [{ kind: 'mark-masq' }] }, NO_ALIASES, undefined);
  const o: GroupObjects = {
    maps: [
      { name: g.vipMap, shape: 'addr.proto.port.slot:addr.port' }, { name: g.nodePortMap, shape: 'proto.port.slot:addr.port' },
      ...groupDispatchTargets(g.chain).flatMap((t): KSetDecl[] => [{ name: dispatchSetName(t, 'vip'), shape: 'addr.proto.port' }, { name: dispatchSetName(t, 'nodeport'), shape: 'proto.port' }]),
    ],
    chains: [
      { name: g.chain, rules: [groupDnatRule(family, g.n, g.vipMap, true), groupDnatRule(family, g.n, g.nodePortMap, false)] },
      // the external chain of an externalTrafficPolicy=Cluster service (lower-dnat.ts:
      // dnatAliases); this node's endpoints (policy local) are never reached through one
      ...(g.policy === 'local' ? [] : [{ name: g.masqChain, rules: [markMasq, { text: `goto ${g.chain}`, exprs: [{ op: 'verdict', verdict: { kind: 'goto', chain: g.chain } }] } as KRule] }]),
    ],
  };
  return remember(id, o);
}
const NO_ALIASES: Aliases = new Map();

/** A shared chain (lower-dnat.ts: sharedName): its rules are any of the chains it stands for, with the aliases of that chain's port. */
export function sharedChainObjects(family: Family, name: string, chain: Chain, aliases: Aliases): GroupObjects {
  const id = `${family} ${name}`;
  const hit = groupCache.get(id);
  if (hit) return hit;
  return remember(id, { maps: [], chains: [{ name, rules: chain.rules.map((r) => lowerRule(family, r, aliases, undefined)) }] });
}

/** The elements a group's VIP or NodePort map holds. */
export function groupElements(g: DnatGroup, which: 'vip' | 'nodeport'): KElement[] {
  return (which === 'vip' ? g.vipElements : g.nodePortElements).map(dnatElement);
}

