// nftproxy as the bench drives it: the product's buildModel / compile / kernel objects /
// Applier, with the product's netlink writer bound to a bench namespace, timed around each
// kernel transaction (encode + send + the kernel's acknowledgement).
import { buildModel } from '../../src/model/build-model.js';
import { compile, compileParts } from '../../src/compile/compile.js';
import { Applier } from '../../src/apply/applier.js';
import type { CommitInfo, KernelWriter, WriteError } from '../../src/apply/kernel-writer.js';
import { NetlinkWriter } from '../../src/apply/netlink/writer.js';
import type { Op, Transaction } from '../../src/render/kernel/ops.js';
import type { Result } from '../../src/model/result.js';
import { parseCidr, parseIP } from '../../src/model/ip.js';
import type { ProxyConfig } from '../../src/model/config.js';
import type { EndpointSlice, Model, Service } from '../../src/model/types.js';
import { refString } from '../../src/model/types.js';
import { CLUSTER_CIDR, NODE_IP, NODE_NAME, SERVICE_CIDR, type Change, type Snapshot, snapshotObjects, toObjects } from './workload.js';
import type { Netns } from './sys.js';
import { must } from '../../test/support/must.js';

export { compile, compileParts, Applier };


export function proxyConfig(): ProxyConfig {
  return {
    nodeName: NODE_NAME,
    nodeIPs: [must(parseIP(NODE_IP))],
    nodeLabels: {},
    clusterCIDRs: [must(parseCidr(CLUSTER_CIDR))],
    serviceCIDRs: [must(parseCidr(SERVICE_CIDR))],
    nodePortAddresses: { kind: 'primary' },
    masqueradeAll: false,
    proxyName: 'nftproxy',
    ipFamilies: ['ipv4'],
  };
}

/** The daemon's flags for the same configuration. */
export const DAEMON_FLAGS = ['--node', NODE_NAME, '--node-ip', NODE_IP, '--cluster-cidr', CLUSTER_CIDR, '--service-cidr', SERVICE_CIDR,
  // the workload is IPv4: the same single table as proxyConfig(), whatever the host carries
  '--ip-families', 'ipv4',
  // never the host's cgroup or /sys/fs/bpf (the data-plane phase measures BPF in its own cgroup)
  '--bpf', 'off', '--bpf-pin-dir', '/nonexistent/nftproxy-bench-pins',
  // no inspection socket: a bench daemon must not take the node's /run/nftproxy
  '--socket', ''];

export function modelOf(snap: Snapshot): Model {
  const r = buildModel(snapshotObjects(snap).map((object) => ({ object })));
  if (r.diagnostics.length) throw new Error(`the generated snapshot has objects nftproxy skips: ${JSON.stringify(r.diagnostics.slice(0, 3))}`);
  if (r.model.services.length !== snap.services.length) throw new Error('model lost services');
  return r.model;
}

/**
 * The product's netlink writer into a bench namespace, timing each transaction (encode, send,
 * the kernel's acknowledgement): `commits` since the last reset(), their sum `totalMs` (the
 * writer's part of one sync). With `record`, each transaction's ops are kept (materialized
 * before the clock starts, so the timing is the writer's alone) for replaying through the CLI.
 */
export class MeasuringWriter implements KernelWriter {
  lastBytes = 0;
  commits: { ms: number; ops: number; bytes: number; tx?: readonly Op[] }[] = [];
  readonly inner: NetlinkWriter;
  constructor(ns: Netns | string, private readonly record = false) {
    this.inner = new NetlinkWriter({ netns: typeof ns === 'string' ? ns : `/run/netns/${ns.name}` });
  }
  reset(): void { this.commits = []; }
  get totalMs(): number { return this.commits.reduce((a, c) => a + c.ms, 0); }
  async commit(tx: Transaction): Promise<Result<CommitInfo, WriteError>> {
    const ops = this.record ? [...tx] : undefined;
    const t0 = performance.now();
    const r = await this.inner.commit(ops ?? tx);
    const ms = performance.now() - t0;
    if (r.ok) this.lastBytes = r.value.bytes;
    this.commits.push({ ms, ops: r.ok ? r.value.ops : 0, bytes: r.ok ? r.value.bytes : 0, ...(ops ? { tx: ops } : {}) });
    return r;
  }
  listDynamicSet(...a: Parameters<KernelWriter['listDynamicSet']>): ReturnType<KernelWriter['listDynamicSet']> { return this.inner.listDynamicSet(...a); }
  tables(name: string): ReturnType<KernelWriter['tables']> { return this.inner.tables(name); }
  close(): Promise<void> { return this.inner.close(); }
}

/** Keeps a Model in step with LiveSnapshot changes (outside the timed region). */
export class ModelEditor {
  private services: Service[];
  private slices: Map<string, readonly EndpointSlice[]>;
  constructor(private model: Model) {
    this.services = [...model.services];
    this.slices = new Map(model.slices);
  }

  get current(): Model { return this.model; }

  /** the model's service for a ref (the incremental compiler's serviceOf) */
  service(ref: string): Service | undefined {
    const at = this.find(ref);
    return at.found ? this.services[at.index] : undefined;
  }

  apply(c: Change): Model {
    const key = (c.after ?? c.before)!;
    const ref = `${key.ns}/${key.name}`;
    if (c.after) {
      const built = buildModel(toObjects(c.after).map((object) => ({ object })));
      const svc = built.model.services[0];
      if (!svc || built.diagnostics.length) throw new Error(`changed service ${ref} did not build: ${JSON.stringify(built.diagnostics)}`);
      const at = this.find(ref);
      if (c.kind === 'add') this.services.splice(at.index, 0, svc);
      else this.services[at.index] = svc;
      this.slices.set(ref, built.model.slices.get(ref) ?? []);
    } else {
      const at = this.find(ref);
      if (!at.found) throw new Error(`deleted service ${ref} not in the model`);
      this.services.splice(at.index, 1);
      this.slices.delete(ref);
    }
    this.model = { services: [...this.services], slices: new Map(this.slices), nodes: this.model.nodes };
    return this.model;
  }

  private find(ref: string): { index: number; found: boolean } {
    let lo = 0, hi = this.services.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (refString(this.services[mid]!.ref) < ref) lo = mid + 1; else hi = mid;
    }
    return { index: lo, found: lo < this.services.length && refString(this.services[lo]!.ref) === ref };
  }
}
