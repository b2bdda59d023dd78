// The encoder's bytes, golden: a table, chains, a set of every shape nftproxy declares, their
// elements, and rules of every kind the compiler emits, in both families, encoded as one batch
// (sequence numbers from 1). Review a diff like code: every byte here is what the kernel reads.
// That the kernel reads it as nft's own objects is test/render/kernel-equivalence and the
// property test's job.
import { describe, expect, it } from 'vitest';
import { encodeBatch } from '../../../src/apply/netlink/encode.js';
import { messages } from '../../../src/apply/netlink/attrs.js';
import { msgName } from '../../../src/apply/netlink/abi.js';
import type { Family, Rule } from '../../../src/ir/types.js';
import type { IP } from '../../../src/model/ip.js';
import { constCidr } from '../../../src/model/ip.js';
import { lowerRule, groupDnatRule } from '../../../src/render/kernel/lower-rule.js';
import type { Op } from '../../../src/render/kernel/ops.js';
import type { KElement, KSetDecl } from '../../../src/render/kernel/types.js';
import { addrField, portField, protoField, wordField } from '../../../src/render/kernel/bytes.js';
import { opsText } from '../../../src/render/kernel/text.js';

const ip = (s: string): IP => s as IP;

const RULES: readonly (readonly [string, Rule])[] = [
  ['ct state new jump', { matches: [{ kind: 'ct-state-new' }], stmts: [{ kind: 'verdict', verdict: { kind: 'jump', chain: 'firewall-check' } }] }],
  ['vmap on daddr . l4proto . dport', { matches: [], stmts: [{ kind: 'vmap', key: 'daddr.l4proto.dport', map: 'service-ips' }] }],
  ['lookup, prefix compare, mark, comment', { matches: [{ kind: 'addr-in-set', field: 'daddr', set: 'cluster-ips' }, { kind: 'addr', field: 'saddr', op: '!=', values: [constCidr('10.244.0.0/16')] }], stmts: [{ kind: 'mark-masq' }], comment: 'masquerade ClusterIP traffic from outside the cluster' }],
  ['unaligned prefix, drop', { matches: [{ kind: 'addr', field: 'daddr', op: '==', values: [constCidr('10.96.0.0/12')] }], stmts: [{ kind: 'verdict', verdict: { kind: 'drop' } }] }],
  ['interval set of sources', { matches: [{ kind: 'addr', field: 'saddr', op: '!=', values: [constCidr('203.0.113.0/24'), ip('198.51.100.7')] }], stmts: [{ kind: 'verdict', verdict: { kind: 'drop' } }] }],
  ['masquerade, clearing the mark', { matches: [{ kind: 'masq-mark', set: true }], stmts: [{ kind: 'masquerade', clearMark: true }] }],
  ['hairpin', { matches: [{ kind: 'hairpin', set: 'hairpin-endpoints' }], stmts: [{ kind: 'masquerade', clearMark: false }] }],
  ['fib local, NodePort vmap', { matches: [{ kind: 'fib-local', field: 'daddr' }, { kind: 'addr', field: 'daddr', op: '!=', values: [constCidr('127.0.0.0/8')] }], stmts: [{ kind: 'vmap', key: 'l4proto.dport', map: 'service-nodeports' }] }],
  ['dnat to one backend', { matches: [], stmts: [{ kind: 'dnat', proto: 'tcp', backends: [{ addr: ip('10.244.1.7'), port: 8080 }], policy: 'cluster', keys: [] }] }],
  ['affinity lookup', { matches: [{ kind: 'affinity', set: 'affinity', key: [952726868, 1742742655] }], stmts: [{ kind: 'verdict', verdict: { kind: 'goto', chain: 'endpoint-X' } }] }],
  ['affinity update', { matches: [], stmts: [{ kind: 'affinity-update', set: 'affinity', key: [952726868, 1742742655], timeoutSeconds: 10800 }] }],
  ['one in three, goto', { matches: [{ kind: 'one-in', n: 3 }], stmts: [{ kind: 'verdict', verdict: { kind: 'goto', chain: 'endpoint-X' } }] }],
  ['dport match, reject', { matches: [{ kind: 'dport', proto: 'udp', port: 53 }], stmts: [{ kind: 'reject' }] }],
];

const SETS: readonly KSetDecl[] = [
  { name: 'cluster-ips', shape: 'addr', comment: 'Active ClusterIPs' },
  { name: 'hairpin-endpoints', shape: 'addr.addr' },
  { name: 'service-ips', shape: 'addr.proto.port:verdict', comment: 'ClusterIP, ExternalIP and LoadBalancer IP traffic' },
  { name: 'service-nodeports', shape: 'proto.port:verdict' },
  { name: 'affinity', shape: 'saddr.word.word', timeoutSeconds: 10800, size: 4194304 },
  { name: 'endpoints-cluster-2', shape: 'addr.proto.port.slot:addr.port' },
  { name: 'nodeport-endpoints-cluster-2', shape: 'proto.port.slot:addr.port' },
];

function ops(f: Family): Op[] {
  const at = { family: f, table: 'nftproxy' };
  const a = (v4: string, v6: string): string => addrField(f === 'ip' ? v4 : v6);
  const els: Record<string, KElement[]> = {
    'cluster-ips': [{ key: a('10.96.0.20', 'fd00:10:96::20') }],
    'hairpin-endpoints': [{ key: a('10.244.1.7', 'fd00:10:244::7') + a('10.244.1.7', 'fd00:10:244::7') }],
    'service-ips': [{ key: a('10.96.0.20', 'fd00:10:96::20') + protoField('tcp') + portField(5432), data: { kind: 'verdict', verdict: { kind: 'goto', chain: 'dnat-cluster-2' } }, comment: 'db/pg:pg' }],
    'service-nodeports': [{ key: protoField('udp') + portField(30053), data: { kind: 'verdict', verdict: { kind: 'goto', chain: 'dnat-cluster-2-masq' } } }],
    'endpoints-cluster-2': [0, 1].map((slot) => ({ key: a('10.96.0.20', 'fd00:10:96::20') + protoField('tcp') + portField(5432) + wordField(slot), data: { kind: 'value' as const, bytes: a(`10.244.1.${7 + slot}`, `fd00:10:244::${7 + slot}`) + portField(5432) } })),
    'nodeport-endpoints-cluster-2': [{ key: protoField('udp') + portField(30053) + wordField(1), data: { kind: 'value', bytes: a('10.244.1.8', 'fd00:10:244::8') + portField(53) } }],
    'affinity': [{ key: a('10.0.0.2', 'fd00::2') + wordField(952726868) + wordField(1742742655), timeoutMs: 10_800_000, expiresMs: 60_000 }],
  };
  return [
    { ...at, op: 'add-table' }, { ...at, op: 'delete-table' }, { ...at, op: 'add-table', comment: 'rules for nftproxy' },
    ...SETS.map((set): Op => ({ ...at, op: 'add-set', set })),
    { ...at, op: 'add-chain', chain: { name: 'nat-prerouting', hook: { type: 'nat', hook: 'prerouting', priority: -100 } } },
    { ...at, op: 'add-chain', chain: { name: 'rules' } },
    { ...at, op: 'add-chain', chain: { name: 'dnat-cluster-2' } },
    ...RULES.map(([, r]): Op => ({ ...at, op: 'add-rule', chain: 'rules', rule: lowerRule(f, r, new Map(), 'db/pg/tcp/pg') })),
    { ...at, op: 'add-rule', chain: 'dnat-cluster-2', rule: groupDnatRule(f, 2, 'endpoints-cluster-2', true) },
    { ...at, op: 'add-rule', chain: 'dnat-cluster-2', rule: groupDnatRule(f, 2, 'nodeport-endpoints-cluster-2', false) },
    ...SETS.map((s): Op => ({ ...at, op: 'add-elements', set: s.name, shape: s.shape, elements: els[s.name]! })),
    { ...at, op: 'delete-elements', set: 'service-ips', shape: 'addr.proto.port:verdict', elements: els['service-ips']! },
    { ...at, op: 'delete-rule', chain: 'dnat-cluster-2', lookup: 'nodeport-endpoints-cluster-2', handle: 7n },
    { ...at, op: 'flush-chain', name: 'rules' }, { ...at, op: 'delete-chain', name: 'rules' }, { ...at, op: 'delete-set', name: 'hairpin-endpoints', kind: 'set' }, { ...at, op: 'flush-set', name: 'service-ips', kind: 'map' }, { ...at, op: 'flush-table' },
  ];
}

/** The batch as people review it: one block per message, its kind, then 16 bytes a line. */
function hexDump(chunks: readonly Buffer[]): string {
  const out: string[] = [];
  for (const m of messages(Buffer.concat(chunks))) {
    const t = m.type >> 8 === 10 ? msgName(m.type & 0xff) : m.type === 16 ? 'BATCH_BEGIN' : m.type === 17 ? 'BATCH_END' : String(m.type);
    out.push(`# ${t} seq ${m.seq} flags 0x${m.flags.toString(16)} len ${m.data.length}`);
    for (let i = 0; i < m.data.length; i += 16) out.push(m.data.subarray(i, i + 16).toString('hex').replace(/(..)(?!$)/g, '$1 '));
  }
  return out.join('\n') + '\n';
}

describe('netlink encoder', () => {
  for (const f of ['ip', 'ip6'] as const) {
    it(`${f}: every object kind, golden bytes`, async () => {
      const batch = encodeBatch(ops(f), 1);
      await expect(hexDump(batch.chunks)).toMatchFileSnapshot(`__golden__/encode-${f}.hex`);
      await expect(opsText(ops(f))).toMatchFileSnapshot(`__golden__/encode-${f}.nft`);
    });
  }

  it('asks for one acknowledgement, on the last message, and numbers messages in order', () => {
    const batch = encodeBatch(ops('ip'), 41);
    const msgs = [...messages(Buffer.concat(batch.chunks))];
    expect(msgs[0]!.seq).toBe(41);
    expect(msgs.map((m) => m.seq)).toEqual(msgs.map((_, i) => 41 + i));
    expect(msgs.filter((m) => m.flags & 0x4).map((m) => m.seq)).toEqual([batch.lastSeq]);
    expect(batch.lastSeq).toBe(msgs.at(-2)!.seq);
    expect(batch.replacesTables).toBe(true);
  });

  it('packs elements into messages whose element list stays under 64 KiB, and remembers where each starts', () => {
    const elements: KElement[] = Array.from({ length: 20_000 }, (_, i) => ({ key: addrField(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`) + protoField('tcp') + portField(80), data: { kind: 'verdict', verdict: { kind: 'goto', chain: 'dnat-cluster-3' } }, owner: `ns/svc${i}/tcp/http` }));
    const batch = encodeBatch([{ family: 'ip', table: 'nftproxy', op: 'add-elements', set: 'service-ips', shape: 'addr.proto.port:verdict', elements }], 1);
    const msgs = [...messages(Buffer.concat(batch.chunks))].slice(1, -1);
    expect(msgs.length).toBeGreaterThan(1);
    for (const m of msgs) expect(m.data.length).toBeLessThan(65_536);
    const owners = msgs.flatMap((m) => batch.info.get(m.seq)!.elements!.owners);
    expect(owners).toEqual(elements.map((e) => e.owner));
    expect(batch.ops).toBe(20_000);
    // chunks start small and grow (a partial sync's batch is tiny): this one spans several,
    // and each holds whole messages only, as the kernel reads them from one writev
    expect(batch.chunks.length).toBeGreaterThan(2);
    const perChunk = batch.chunks.map((c) => [...messages(c)]);
    for (const [i, ms] of perChunk.entries()) expect(ms.reduce((n, m) => n + m.data.length, 0), `chunk ${i}`).toBe(batch.chunks[i]!.length);
    expect(perChunk.flat().length).toBe(msgs.length + 2);
  });
});
