// The BPF applier's write protocol against an in-memory stand-in for the pinned maps (the
// kernel side is tested in test/bpf and test/daemon/bpf-daemon.kernel.test.ts): a service
// entry only ever points at a complete generation; old generations are deleted; a restart
// reconciles what a previous run left; a service the maps cannot take is removed from them
// (the nftables rules serve it) while the others are written.
import { describe, expect, it } from 'vitest';
import { decodeSvcVal, encodeSvcKey } from '../../native/layout.js';
import type { SockLbHandle } from '../../native/loader.js';
import { BpfApplier, MAX_BACKENDS_PER_SERVICE } from '../../src/apply/bpf-applier.js';
import { parseIP } from '../../src/model/ip.js';
import type { BpfService } from '../../src/compile/bpf-coverage.js';
import { must } from '../support/must.js';

type MapName = 'svcs' | 'backends' | 'members' | 'affinity' | 'revnat';

/** Maps as byte-keyed dictionaries; `failWhen` makes an update throw like a full kernel map. */
function memoryHandle(failWhen: (map: MapName, key: Buffer) => boolean = () => false): SockLbHandle & { maps: Record<MapName, Map<string, Buffer>>; log: string[] } {
  const maps = { svcs: new Map(), backends: new Map(), members: new Map(), affinity: new Map(), revnat: new Map() } as Record<MapName, Map<string, Buffer>>;
  const log: string[] = [];
  return {
    maps, log, pinDir: '/memory', report: { attached: [], replaced: [], moved: [], reusedMaps: [], replacedMaps: [] }, fds: {} as never,
    update: (m, k, v) => {
      if (failWhen(m as MapName, k)) throw new Error(`bpf_map_update_elem(${m}): No space left on device (errno 28)`);
      maps[m as MapName].set(k.toString('hex'), v);
      if (m === 'svcs') log.push(`svc -> gen ${decodeSvcVal(v).gen}: ${[...maps.backends.keys()].filter((bk) => Buffer.from(bk, 'hex').readUInt32LE(0) === decodeSvcVal(v).gen).length} slots present`);
    },
    delete: (m, k) => maps[m as MapName].delete(k.toString('hex')),
    lookup: (m, k) => maps[m as MapName].get(k.toString('hex')) ?? null,
    keys: (m) => [...maps[m as MapName].keys()].map((k) => Buffer.from(k, 'hex')),
    entries: (m) => [...maps[m as MapName]].map(([k, v]) => [Buffer.from(k, 'hex'), v] as [Buffer, Buffer]),
    detach: () => undefined, unpin: () => undefined, close: () => undefined,
  };
}

const ip = (text: string) => must(parseIP(text));
const svc = (addr: string, backends: string[], extra: Partial<BpfService> = {}): BpfService =>
  ({ addr: ip(addr), port: 80, proto: 'tcp', backends: backends.map((b) => ({ addr: ip(b), port: 8080 })), localCount: 0, affinitySeconds: undefined, label: `ns/${addr}:http`, ...extra });
const gens = (h: ReturnType<typeof memoryHandle>): number[] => [...new Set([...h.maps.backends.keys()].map((k) => Buffer.from(k, 'hex').readUInt32LE(0)))].sort();
const svcGen = (h: ReturnType<typeof memoryHandle>, s: BpfService): number | undefined => {
  const v = h.maps.svcs.get(encodeSvcKey(s).toString('hex'));
  return v ? decodeSvcVal(v).gen : undefined;
};

describe('BpfApplier', () => {
  it('a service entry is switched only to a complete generation; the old one is then deleted', () => {
    const h = memoryHandle();
    const a = new BpfApplier(h);
    a.sync([svc('10.96.0.10', ['10.244.0.1', '10.244.0.2'])]);
    a.sync([svc('10.96.0.10', ['10.244.0.1', '10.244.0.2', '10.244.0.3'])]);
    expect(h.log).toEqual(['svc -> gen 1: 2 slots present', 'svc -> gen 2: 3 slots present']);
    expect(gens(h)).toEqual([2]);
    expect(h.maps.members.size).toBe(3);
  });

  it('an unchanged service is not rewritten; a gone one is removed with its generation', () => {
    const h = memoryHandle();
    const a = new BpfApplier(h);
    const keep = svc('10.96.0.10', ['10.244.0.1']), gone = svc('10.96.0.11', ['10.244.0.2']);
    a.sync([keep, gone]);
    const r = a.sync([keep]);
    expect(r).toMatchObject({ upserts: 0, removes: 1, refused: [] });
    expect(svcGen(h, keep)).toBe(1);
    expect(svcGen(h, gone)).toBeUndefined();
    expect(gens(h)).toEqual([1]);
  });

  it('after a restart, what the previous run left is reconciled and its generations never reused', () => {
    const h = memoryHandle();
    new BpfApplier(h).sync([svc('10.96.0.10', ['10.244.0.1']), svc('10.96.0.11', ['10.244.0.2'])]);
    const restarted = new BpfApplier(h);
    restarted.sync([svc('10.96.0.10', ['10.244.0.9'])]);
    expect(h.maps.svcs.size).toBe(1);
    expect(svcGen(h, svc('10.96.0.10', []))).toBe(3);
    expect(gens(h)).toEqual([3]);
    expect(h.maps.members.size).toBe(1);
  });

  it('a map that cannot take a service: it is taken out of the maps (nft serves it), the others are written', () => {
    const big = svc('10.96.0.12', ['10.244.0.5', '10.244.0.6']);
    let full = false;
    const h = memoryHandle((m, k) => full && m === 'backends' && k.readUInt32LE(4) === 1);
    const a = new BpfApplier(h);
    a.sync([svc('10.96.0.10', ['10.244.0.1']), big]);
    full = true;
    const r = a.sync([svc('10.96.0.10', ['10.244.0.2']), { ...big, backends: [...big.backends, { addr: ip('10.244.0.7'), port: 8080 }] }]);
    expect(r.refused).toEqual([{ service: 'ns/10.96.0.12:http 10.96.0.12:80/tcp', reason: 'bpf_map_update_elem(backends): No space left on device (errno 28)' }]);
    expect(svcGen(h, big)).toBeUndefined(); // no stale entry left pointing at old backends
    expect(svcGen(h, svc('10.96.0.10', []))).toBeDefined();
    expect(gens(h)).toEqual([svcGen(h, svc('10.96.0.10', []))]); // nothing half-written left behind
  });

  it(`more than ${MAX_BACKENDS_PER_SERVICE} backends in one service is refused with a clear reason`, () => {
    const h = memoryHandle();
    const many = Array.from({ length: MAX_BACKENDS_PER_SERVICE + 1 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    const r = new BpfApplier(h).sync([svc('10.96.0.10', many)]);
    expect(r.refused[0]!.reason).toBe(`${MAX_BACKENDS_PER_SERVICE + 1} backends: more than the ${MAX_BACKENDS_PER_SERVICE} slots a service can have`);
    expect(h.maps.svcs.size + h.maps.backends.size).toBe(0);
  });
});
