// The applier against the real kernel, in throwaway network namespaces.
// - a few hundred random changes applied as partial syncs leave the same table as one full
//   sync of the final state (read back once with `nft -j list table`, normalized);
// - a transaction the kernel rejects changes nothing and names the service port behind it;
// - a new applier on an existing table replaces it atomically; cleanup removes only ours.
import { describe, expect, it } from 'vitest';
import { ApplyError, Applier } from '../../src/apply/applier.js';
import { NetlinkWriter } from '../../src/apply/netlink/writer.js';
import { kernelFamily } from '../../src/render/kernel/family.js';
import type { Ruleset } from '../../src/ir/types.js';
import { canUseKernel, KERNEL_SKIP_REASON, withNetns } from '../lab/netns.js';
import { compileObjects, config, service, slice, type EndpointSpec } from '../support/builders.js';
import { buildModel } from '../../src/model/build-model.js';
import { type CompiledFamily, compileParts } from '../../src/compile/compile.js';
import { readKernelTables } from '../support/kernel-table.js';
import { CLUSTER_ENV } from '../support/address-plan.js';
import { rng } from '../support/rng.js';

const ENV = CLUSTER_ENV;
type Exec = Parameters<Parameters<typeof withNetns>[1]>[0];

const inNetns = async <T>(tag: string, fn: (exec: Exec, applier: Applier, ns: string) => Promise<T>): Promise<T> =>
  withNetns(tag, async (exec) => {
    const ns = (await exec(['ip', 'netns', 'identify'])).stdout.trim();
    const writer = new NetlinkWriter({ netns: `/run/netns/${ns}` });
    try {
      return await fn(exec, new Applier(writer), ns);
    } finally {
      await writer.close();
    }
  });

// ---- a small random cluster and random changes to it --------------------------------------
interface Svc {
  ns: string; name: string; ip: number; type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  ports: { name: string; port: number; proto: 'TCP' | 'UDP'; nodePort: number; target: number }[];
  affinity: number | undefined; etpLocal: boolean; itpLocal: boolean; lb: number | undefined; ext: number[];
  eps: { ip: number; node: string; ready: boolean; serving: boolean; terminating: boolean }[]; v6: boolean;
}

class World {
  svcs = new Map<string, Svc>();
  private n = 0;
  constructor(private readonly r: () => number) {}
  int = (k: number): number => Math.floor(this.r() * k);
  pick = <T>(xs: readonly T[]): T => xs[this.int(xs.length)]!;

  addService(): void {
    const id = ++this.n;
    const type = this.pick(['ClusterIP', 'NodePort', 'LoadBalancer'] as const);
    const ports = Array.from({ length: 1 + this.int(2) }, (_, i) => ({ name: `p${i}`, port: 80 + i, proto: this.pick(['TCP', 'UDP'] as const), nodePort: 30000 + id * 4 + i, target: 8080 + this.int(3) }));
    const s: Svc = { ns: `ns${id % 3}`, name: `svc${id}`, ip: id, type, ports, affinity: this.r() < 0.2 ? 30 + this.int(3) * 30 : undefined, etpLocal: this.r() < 0.3, itpLocal: this.r() < 0.15, lb: type === 'LoadBalancer' ? id : undefined, ext: [], eps: [], v6: this.r() < 0.3 };
    for (let i = this.int(4); i > 0; i--) this.addEndpoint(s);
    this.svcs.set(s.name, s);
  }

  addEndpoint(s: Svc): void {
    const used = new Set(s.eps.map((e) => e.ip));
    let ip = 1 + this.int(200);
    while (used.has(ip)) ip = 1 + this.int(200);
    s.eps.push({ ip, node: this.pick(['node-a', 'node-b']), ready: true, serving: true, terminating: false });
  }

  mutate(): string {
    const all = [...this.svcs.values()];
    if (all.length === 0 || this.r() < 0.08) { this.addService(); return 'add service'; }
    const s = this.pick(all);
    const k = this.int(10);
    switch (k) {
      case 0: this.svcs.delete(s.name); return `delete ${s.name}`;
      case 1: case 2: this.addEndpoint(s); return `add endpoint to ${s.name}`;
      case 3: case 4: if (s.eps.length) s.eps.splice(this.int(s.eps.length), 1); return `remove endpoint of ${s.name}`;
      case 5: if (s.eps.length) { const e = this.pick(s.eps); e.ready = !e.ready; e.terminating = !e.ready; e.serving = e.ready || this.r() < 0.5; } return `flip readiness in ${s.name}`;
      case 6: s.affinity = s.affinity === undefined ? 60 : undefined; return `toggle affinity on ${s.name}`;
      case 7: s.etpLocal = !s.etpLocal; return `toggle eTP on ${s.name}`;
      case 8: s.ports[0]!.target = 8080 + this.int(3); return `retarget ${s.name}`;
      default: if (s.ext.length) s.ext = []; else s.ext = [s.ip]; return `toggle externalIP on ${s.name}`;
    }
  }

  objects(): unknown[] {
    const out: unknown[] = [];
    for (const s of this.svcs.values()) {
      const v4 = `10.96.${s.ip >> 8}.${s.ip & 255}`, v6 = `fd00:10:96::${s.ip.toString(16)}`;
      out.push(service(s.ns, s.name, {
        type: s.type, clusterIP: v4, clusterIPs: s.v6 ? [v4, v6] : [v4], ipFamilies: s.v6 ? ['IPv4', 'IPv6'] : ['IPv4'],
        ports: s.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.proto, targetPort: p.target, ...(s.type !== 'ClusterIP' ? { nodePort: p.nodePort } : {}) })),
        ...(s.affinity ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: s.affinity } } } : {}),
        ...(s.type !== 'ClusterIP' && s.etpLocal ? { externalTrafficPolicy: 'Local', ...(s.type === 'LoadBalancer' ? { healthCheckNodePort: 32000 + s.ip } : {}) } : {}),
        ...(s.itpLocal ? { internalTrafficPolicy: 'Local' } : {}),
        externalIPs: s.ext.map((x) => `192.0.2.${x}`),
      }, s.lb ? { loadBalancer: { ingress: [{ ip: `198.51.100.${s.lb}` }] } } : undefined));
      const eps = (f: (ip: number) => string): EndpointSpec[] => s.eps.map((e) => ({ ip: f(e.ip), node: e.node, ready: e.ready, serving: e.serving, terminating: e.terminating }));
      const ports = s.ports.map((p) => ({ name: p.name, port: p.target, protocol: p.proto }));
      out.push(slice(s.ns, s.name, `${s.name}-v4`, ports, eps((i) => `10.244.${s.ip}.${i}`)));
      if (s.v6) out.push(slice(s.ns, s.name, `${s.name}-v6`, ports, eps((i) => `fd00:10:244::${s.ip.toString(16)}:${i.toString(16)}`), 'IPv6'));
    }
    return out;
  }

  ruleset(): Ruleset {
    const { ruleset, diagnostics } = compileObjects(this.objects(), ENV);
    expect(diagnostics).toEqual([]);
    return ruleset;
  }

  // The daemon's path: objects are re-used while unchanged (as sources do), so the
  // compiler's per-service memory and the incremental differ see real identity.
  private made = new Map<string, { json: string; obj: unknown }>();
  parts(): CompiledFamily[] {
    const objects = this.objects().map((o) => {
      const m = (o as { kind: string; metadata: { namespace: string; name: string } });
      const key = `${m.kind}/${m.metadata.namespace}/${m.metadata.name}`;
      const json = JSON.stringify(o);
      const hit = this.made.get(key);
      if (hit && hit.json === json) return hit.obj;
      this.made.set(key, { json, obj: o });
      return o;
    });
    const { model, diagnostics } = buildModel(objects.map((object) => ({ object })));
    expect(diagnostics).toEqual([]);
    return compileParts(model, config(ENV));
  }
}

describe.skipIf(!canUseKernel)(`applier in the kernel${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  it.each([[1, 'ruleset'], [2, 'ruleset'], [3, 'parts'], [4, 'parts'], [5, 'parts']] as const)('seed %i, %s diff: 150 random changes as partial syncs equal one full sync of the final state', async (seed, mode) => {
    const world = new World(rng(seed));
    for (let i = 0; i < 12; i++) world.addService();
    const syncOnce = (applier: Applier) => (mode === 'parts' ? applier.sync(world.parts().map(kernelFamily)) : applier.syncRuleset(world.ruleset()));
    await inNetns('seq', async (exec, applier) => {
      expect((await syncOnce(applier)).kind).toBe('full');
      if (mode === 'parts') {
        // the daemon's full sync (units made service by service as they are written) builds
        // the table the assembled ruleset's does
        const first = await readKernelTables(exec);
        await inNetns('seqfull', async (exec2, fresh) => {
          await fresh.syncRuleset(world.ruleset());
          expect(first).toEqual(await readKernelTables(exec2));
        });
      }
      const kinds = { full: 0, partial: 0 };
      const log: string[] = [];
      for (let i = 0; i < 150; i++) {
        log.push(world.mutate());
        try {
          kinds[(await syncOnce(applier)).kind]++;
          // the spare groups a change leaves wanted (render/kernel/spares.ts), made after it as
          // the daemon does; every other step not, so that changes also land on counts whose
          // group is not there yet
          if (i % 2 === 0) await applier.makeSpares();
        } catch (e) {
          throw new Error(`step ${i} (${log.at(-1)}) failed: ${String(e)}`);
        }
      }
      // Nothing here changes a set declaration or the context (an affinity timeout is a
      // rule's, in the shared affinity set): every change is a partial sync.
      expect(kinds).toMatchObject({ partial: 150 });
      await applier.makeSpares();
      const afterPartials = await readKernelTables(exec);
      await inNetns('seqref', async (exec2, fresh) => {
        await fresh.syncRuleset(world.ruleset());
        expect(afterPartials).toEqual(await readKernelTables(exec2));
      });
    });
  }, 120_000);

  it('a partial sync of one endpoint change is a handful of ops, not the table', async () => {
    const world = new World(rng(7));
    for (let i = 0; i < 30; i++) world.addService();
    await inNetns('small', async (_exec, applier) => {
      const full = await applier.syncRuleset(world.ruleset());
      const s = [...world.svcs.values()].find((x) => x.eps.length >= 2 && x.affinity === undefined)!;
      s.eps[0]!.ip = 250;
      const part = await applier.syncRuleset(world.ruleset());
      expect(part.kind).toBe('partial');
      expect(part.ops).toBeLessThan(16);
      expect(full.ops).toBeGreaterThan(part.ops * 10);
      const again = await applier.syncRuleset(world.ruleset());
      expect(again.ops).toBe(0);
    });
  });

  it('a count left unused loses its dispatch rules by handle; a rule that is not there fails the partial sync, and the full sync after it mends the table', async () => {
    // two services with 3 and 6 endpoints; the second then has 3 too: group 6 goes, with its
    // spares 5 and 7 (render/kernel/spares.ts); 2 and 4 stay, the spares of 3
    const objects = (second: number) => [
      service('shop', 'web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] }),
      slice('shop', 'web', 'web-1', [{ name: 'http', port: 8080 }], [1, 2, 3].map((i) => ({ ip: `10.244.0.${i}` }))),
      service('shop', 'db', { clusterIP: '10.96.0.11', ports: [{ name: 'pg', port: 5432 }] }),
      slice('shop', 'db', 'db-1', [{ name: 'pg', port: 5432 }], Array.from({ length: second }, (_, i) => ({ ip: `10.244.1.${i + 1}` }))),
    ];
    const fams = (second: number) => compileParts(buildModel(objects(second).map((object) => ({ object }))).model, config(ENV)).map(kernelFamily);
    const dispatchRules = async (exec: Exec): Promise<string[]> => {
      const out: string[] = [];
      for (const chain of ['service-groups', 'nodeport-services']) {
        const listed = JSON.parse((await exec(['nft', '-j', 'list', 'chain', 'ip', 'nftproxy', chain])).stdout) as { nftables: { rule?: { expr: unknown } }[] };
        for (const i of listed.nftables) if (i.rule) out.push(`${chain} ${(JSON.stringify(i.rule.expr).match(/"@([a-z0-9-]+)"/) ?? [])[1] ?? 'other'}`);
      }
      return out;
    };
    await inNetns('byhandle', async (exec, applier) => {
      await applier.sync(fams(6), { full: true });
      expect(await dispatchRules(exec)).toContain('service-groups service-ips-dnat-cluster-6');
      const part = await applier.sync(fams(3));
      expect(part.kind).toBe('partial');
      // the rules of group 6 and of spares 5 and 7 gone, the others in their order, as a full sync writes them
      const afterPartial = await readKernelTables(exec);
      // (the endpoint-count chains' rules first, then their masquerade chains')
      expect(await dispatchRules(exec)).toEqual([
        ...['', '-masq'].flatMap((m) => [2, 3, 4].map((n) => `service-groups service-ips-dnat-cluster-${n}${m}`)), 'service-groups nodeport-ips',
        'nodeport-services service-nodeports', ...['', '-masq'].flatMap((m) => [2, 3, 4].map((n) => `nodeport-services service-nodeports-dnat-cluster-${n}${m}`)),
      ]);
      await inNetns('byhandleref', async (exec2, fresh) => {
        await fresh.sync(fams(3), { full: true });
        expect(afterPartial).toEqual(await readKernelTables(exec2));
      });
      // back to 6 (the group and its rules made again: no spare of 3), then someone deletes one
      // of them: the next move out of 6 finds no rule to delete, changes nothing, and a full
      // sync follows
      await applier.sync(fams(6));
      const listed = JSON.parse((await exec(['nft', '-j', '-a', 'list', 'chain', 'ip', 'nftproxy', 'service-groups'])).stdout) as { nftables: { rule?: { handle: number; expr: unknown } }[] };
      const victim = listed.nftables.find((i) => i.rule && JSON.stringify(i.rule.expr).includes('"@service-ips-dnat-cluster-6"'))!.rule!;
      await exec(['nft', 'delete', 'rule', 'ip', 'nftproxy', 'service-groups', 'handle', String(victim.handle)]);
      const err = await applier.sync(fams(3)).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ApplyError);
      expect((err as ApplyError).error).toMatchObject({ code: 'NFT_REJECTED', errnos: [2] });
      expect(applier.knowsKernelState).toBe(false);
      expect((await applier.sync(fams(3))).kind).toBe('full');
      expect(await readKernelTables(exec)).toEqual(afterPartial);
    });
  });

  it('a rejected transaction changes nothing and names the service port that caused it', async () => {
    const objects = [
      service('shop', 'web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] }),
      slice('shop', 'web', 'web-1', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1' }, { ip: '10.244.0.2' }]),
      service('shop', 'db', { clusterIP: '10.96.0.11', ports: [{ name: 'pg', port: 5432 }] }),
      slice('shop', 'db', 'db-1', [{ name: 'pg', port: 5432 }], [{ ip: '10.244.0.3' }]),
    ];
    const good = compileObjects(objects, ENV).ruleset;
    await inNetns('reject', async (exec, applier) => {
      await applier.syncRuleset(good);
      const before = await readKernelTables(exec);
      // A fault the kernel refuses, owned by shop/db's chain: a jump to a chain that does not exist.
      const dbInfo = good.servicePorts.find((p) => p.service === 'shop/db' && p.family === 'ip')!;
      const bad: Ruleset = {
        ...good,
        tables: good.tables.map((t) => ({
          ...t,
          chains: t.chains.map((c) => (c.owner === dbInfo.id && c.name.startsWith('service-') ? { ...c, rules: [...c.rules, { matches: [], stmts: [{ kind: 'verdict', verdict: { kind: 'jump', chain: 'no-such-chain' } }] }] } : c)),
        })),
      };
      for (const mode of ['partial', 'full'] as const) {
        if (mode === 'partial') expect(applier.knowsKernelState).toBe(true);
        const err = await applier.syncRuleset(bad).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(ApplyError);
        expect((err as ApplyError).kind).toBe(mode);
        expect((err as ApplyError).error).toMatchObject({ code: 'NFT_REJECTED', owners: [dbInfo.id] });
        expect(await readKernelTables(exec)).toEqual(before);
        expect(applier.knowsKernelState).toBe(false);
      }
      await applier.syncRuleset(good);
      expect(await readKernelTables(exec)).toEqual(before);
    });
  });

  it('a new applier replaces an existing table atomically; cleanup removes only nftproxy tables', async () => {
    const world = new World(rng(3));
    for (let i = 0; i < 8; i++) world.addService();
    await inNetns('restart', async (exec, applier, ns) => {
      await exec(['nft', 'add', 'table', 'inet', 'someone-else']);
      await applier.syncRuleset(world.ruleset());
      world.mutate(); world.mutate(); world.mutate();
      const writer = new NetlinkWriter({ netns: `/run/netns/${ns}` });
      const restarted = new Applier(writer);
      expect((await restarted.syncRuleset(world.ruleset())).kind).toBe('full');
      const got = await readKernelTables(exec);
      await inNetns('restartref', async (exec2, fresh) => {
        await fresh.syncRuleset(world.ruleset());
        expect(got).toEqual(await readKernelTables(exec2));
      });
      await restarted.cleanup();
      await restarted.cleanup(); // idempotent
      const tables = (await exec(['nft', 'list', 'tables'])).stdout.trim().split('\n');
      expect(tables).toEqual(['table inet someone-else']);
      await writer.close();
    });
  });
});
