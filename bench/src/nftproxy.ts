// nftproxy as the bench drives it: the product's buildModel / compile / renderText /
// Applier, with an NftRunner that runs nft inside a bench namespace (optionally under
// /usr/bin/time for the peak RSS) and records how long the nft process took.
import { buildModel } from '../../src/model/build-model.js';
import { compile, compileParts } from '../../src/compile/compile.js';
import { Applier } from '../../src/apply/applier.js';
import { type NftResult, type NftRunner, nftRunner } from '../../src/apply/nft-runner.js';
import { parseCidr, parseIP } from '../../src/model/ip.js';
import type { ProxyConfig } from '../../src/model/config.js';
import type { EndpointSlice, Model, Service } from '../../src/model/types.js';
import { refString } from '../../src/model/types.js';
import { CLUSTER_CIDR, NODE_IP, NODE_NAME, SERVICE_CIDR, type Change, type Snapshot, snapshotObjects, toObjects } from './workload.js';
import { type Netns, stripTimeMark, timedPrefix } from './sys.js';

export { compile, compileParts, Applier };

const ok = <T>(r: { ok: true; value: T } | { ok: false; error: string }): T => {
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

export function proxyConfig(): ProxyConfig {
  return {
    nodeName: NODE_NAME,
    nodeIPs: [ok(parseIP(NODE_IP))],
    nodeLabels: {},
    clusterCIDRs: [ok(parseCidr(CLUSTER_CIDR))],
    serviceCIDRs: [ok(parseCidr(SERVICE_CIDR))],
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
  '--bpf', 'off', '--bpf-pin-dir', '/nonexistent/nftproxy-bench-pins'];

export function modelOf(snap: Snapshot): Model {
  const r = buildModel(snapshotObjects(snap).map((object) => ({ object })));
  if (r.diagnostics.length) throw new Error(`the generated snapshot has objects nftproxy skips: ${JSON.stringify(r.diagnostics.slice(0, 3))}`);
  if (r.model.services.length !== snap.services.length) throw new Error('model lost services');
  return r.model;
}

/**
 * Records the wall time of the last nft process and, while `timed`, its peak RSS (nft runs
 * under /usr/bin/time, which costs a fork; partial syncs run untimed).
 */
export class MeasuringRunner implements NftRunner {
  lastMs = 0;
  lastRssKB: number | undefined;
  lastLines = 0;
  lastBytes = 0;
  timed: boolean;
  private readonly withTime: NftRunner;
  private readonly plain: NftRunner;
  constructor(ns: Netns, timed: boolean, timeoutMs = 1_800_000) {
    this.timed = timed;
    this.withTime = nftRunner({ prefix: timedPrefix(ns), timeoutMs });
    this.plain = nftRunner({ prefix: ns.prefix, timeoutMs });
  }
  async load(text: string): Promise<NftResult> {
    this.lastBytes = Buffer.byteLength(text);
    let lines = 0;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
    this.lastLines = lines;
    const t0 = performance.now();
    const r = await (this.timed ? this.withTime : this.plain).load(text);
    this.lastMs = performance.now() - t0;
    const s = stripTimeMark(r.stderr);
    this.lastRssKB = s.rssKB;
    return { ...r, stderr: s.stderr };
  }
  run(args: readonly string[]): Promise<NftResult> { return this.plain.run(args); }
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
