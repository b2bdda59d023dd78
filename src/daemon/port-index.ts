// What the daemon knows of every compiled service port, kept per service across syncs so a
// change costs its own ports: the infos (for conntrack cleanup, BPF, metrics), the number of
// ports, the distinct serving endpoints (the `endpoints` count of the sync log), the ports
// with a Local policy and no local endpoint (kube-proxy's no-local-endpoints gauge).
import type { CompiledFamily } from '../compile/compile.js';
import type { ServicePortInfo } from '../ir/types.js';

export interface PortChanges {
  /** the ports of the changed services as they were */
  readonly before: readonly ServicePortInfo[];
  /** and as they are */
  readonly after: readonly ServicePortInfo[];
}

export class PortIndex {
  private byRef = new Map<string, readonly ServicePortInfo[]>();
  private endpointRefs = new Map<string, number>();
  private ports = 0;
  private local = { internal: 0, external: 0 };

  /** Fold in the services that changed ('all': rebuild from every family's services). */
  update(parts: readonly CompiledFamily[], changed: ReadonlySet<string> | 'all'): PortChanges | 'all' {
    if (changed === 'all') {
      this.byRef = new Map();
      this.endpointRefs = new Map();
      this.ports = 0;
      this.local = { internal: 0, external: 0 };
      const refs = new Set<string>();
      for (const p of parts) for (const ref of p.services.keys()) refs.add(ref);
      for (const ref of refs) this.set(ref, this.infosOf(parts, ref));
      return 'all';
    }
    const before: ServicePortInfo[] = [], after: ServicePortInfo[] = [];
    for (const ref of changed) {
      for (const i of this.byRef.get(ref) ?? []) before.push(i);
      const now = this.infosOf(parts, ref);
      for (const i of now) after.push(i);
      this.set(ref, now);
    }
    return { before, after };
  }

  private infosOf(parts: readonly CompiledFamily[], ref: string): ServicePortInfo[] {
    const out: ServicePortInfo[] = [];
    for (const p of parts) for (const r of p.services.get(ref) ?? []) if (r) out.push(r.info);
    return out;
  }

  private set(ref: string, infos: readonly ServicePortInfo[]): void {
    for (const i of this.byRef.get(ref) ?? []) this.count(i, -1);
    if (infos.length) this.byRef.set(ref, infos); else this.byRef.delete(ref);
    for (const i of infos) this.count(i, 1);
  }

  private count(i: ServicePortInfo, sign: 1 | -1): void {
    this.ports += sign;
    if (i.noLocalEndpoints.internal) this.local.internal += sign;
    if (i.noLocalEndpoints.external) this.local.external += sign;
    for (const ip of i.servingEndpoints) {
      const n = (this.endpointRefs.get(ip) ?? 0) + sign;
      if (n > 0) this.endpointRefs.set(ip, n); else this.endpointRefs.delete(ip);
    }
  }

  /** every port (O(ports): for what needs the whole, such as the BPF maps) */
  all(): ServicePortInfo[] {
    const out: ServicePortInfo[] = [];
    for (const infos of this.byRef.values()) for (const i of infos) out.push(i);
    return out;
  }

  get servicePorts(): number { return this.ports; }
  get endpoints(): number { return this.endpointRefs.size; }
  get noLocalEndpoints(): { readonly internal: number; readonly external: number } { return this.local; }
  /** the service a port id belongs to ("ns/name"), for naming a refused port's service */
  serviceOfPort(id: string): string | undefined {
    const ref = id.split('/').slice(0, 2).join('/');
    return this.byRef.get(ref)?.some((i) => i.id === id) ? ref : undefined;
  }
}
