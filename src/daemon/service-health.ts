// One HTTP server per externalTrafficPolicy: Local LoadBalancer service, on its
// healthCheckNodePort, as kube-proxy runs them: cloud load balancers send traffic only to
// nodes that answer 200, i.e. nodes with a ready local endpoint. Any path. Body:
// {"service":{"namespace":…,"name":…},"localEndpoints":N,"serviceProxyHealthy":bool}.
// Node deletion does not change these answers (kube-proxy's /healthz covers that).
// Like kube-proxy, a server listens on the addresses that accept NodePorts (nodePortAddresses;
// with the default `primary`, the node's primary IPs); on a family's wildcard address where
// that family accepts them on every address (e.g. the Node lists no address of it), on all
// addresses when every family does.
import { type Server, createServer } from 'node:http';
import type { Logger } from 'pino';
import type { Model } from '../model/types.js';
import { refString } from '../model/types.js';
import type { CompiledFamily } from '../compile/compile.js';

export interface ServiceHealth {
  readonly namespace: string;
  readonly name: string;
  readonly port: number;
  /** distinct ready endpoints on this node (terminating ones do not count) */
  readonly localEndpoints: number;
}

export function serviceHealthOf(model: Model, nodeName: string): ServiceHealth[] {
  const out: ServiceHealth[] = [];
  for (const s of model.services) {
    if (s.healthCheckNodePort === undefined || s.type !== 'LoadBalancer' || s.externalTrafficPolicy !== 'Local') continue;
    const ready = new Set<string>();
    for (const sl of model.slices.get(refString(s.ref)) ?? []) {
      for (const e of sl.endpoints) if (e.nodeName === nodeName && e.conditions.ready) ready.add(e.ip);
    }
    out.push({ namespace: s.ref.namespace, name: s.ref.name, port: s.healthCheckNodePort, localEndpoints: ready.size });
  }
  return out;
}

/** Where the servers listen: these addresses, or every address. */
export type HealthHosts = readonly string[] | 'all';

/** The addresses NodePorts are accepted on, per family, as the compiler decided them for the
 * ruleset just applied (each family's context): a family that accepts them on every local
 * address (its node IP unknown, or a 0.0.0.0/0 / ::/0 entry) is served on its wildcard
 * address, every family that does on all addresses. */
export function healthHostsOf(parts: readonly Pick<CompiledFamily, 'ctx'>[]): HealthHosts {
  const hosts: string[] = [];
  let matchAll = 0;
  for (const { ctx } of parts) {
    if (ctx.nodePorts.kind === 'match-all') { matchAll++; hosts.push(ctx.family === 'ip' ? '0.0.0.0' : '::'); } else hosts.push(...ctx.nodePorts.ips);
  }
  return matchAll === parts.length || hosts.length === 0 ? 'all' : hosts;
}

export class ServiceHealthServers {
  private servers = new Map<number, { servers: Server[]; hosts: string; current: ServiceHealth }>();

  constructor(private readonly log: Logger, private readonly proxyHealthy: () => boolean) {}

  /** Start servers for new ports, update answers, close servers of ports that went away (or
   * whose addresses changed: they start again on the new ones). */
  async sync(wanted: readonly ServiceHealth[], hosts: HealthHosts = 'all'): Promise<void> {
    const hostKey = hosts === 'all' ? 'all' : [...hosts].sort().join(',');
    const byPort = new Map(wanted.map((w) => [w.port, w]));
    for (const [port, s] of [...this.servers]) {
      if (byPort.has(port) && s.hosts === hostKey) continue;
      this.servers.delete(port);
      await closeAll(s.servers);
    }
    for (const w of wanted) {
      const have = this.servers.get(w.port);
      if (have) { have.current = w; continue; }
      const entry = { servers: [] as Server[], hosts: hostKey, current: w };
      const serve = (): Server => createServer((_req, res) => this.answer(entry.current, res));
      try {
        if (hosts === 'all') {
          const server = serve();
          entry.servers.push(server);
          await listenDual(server, '::', w.port);
        } else {
          for (const h of hosts) {
            const server = serve();
            entry.servers.push(server);
            await listen(server, h, w.port, h === '::');
          }
        }
        this.servers.set(w.port, entry);
      } catch (e) {
        await closeAll(entry.servers);
        // kube-proxy emits FailedToStartServiceHealthcheck; we log it and retry next sync.
        this.log.error({ service: `${w.namespace}/${w.name}`, port: w.port, hosts, error: String(e) }, 'cannot start the service health check server');
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => closeAll(s.servers)));
    this.servers.clear();
  }

  get ports(): number[] {
    return [...this.servers.keys()].sort((a, b) => a - b);
  }

  private answer(s: ServiceHealth, res: import('node:http').ServerResponse): void {
    const healthy = this.proxyHealthy();
    const code = s.localEndpoints > 0 && healthy ? 200 : 503;
    res.writeHead(code, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' })
      .end(JSON.stringify({ service: { namespace: s.namespace, name: s.name }, localEndpoints: s.localEndpoints, serviceProxyHealthy: healthy }));
  }
}

const closeAll = (servers: readonly Server[]): Promise<unknown> => Promise.all(servers.map((s) => new Promise((r) => { if (s.listening) s.close(r); else r(undefined); })));

// "::" beside addresses of the other family is IPv6's wildcard only: a dual-stack socket
// there would clash with the IPv4 addresses bound on the same port.
const listen = (server: Server, host: string, port: number, ipv6Only = false): Promise<void> => new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen({ port, host, ipv6Only }, () => { server.off('error', reject); resolve(); });
});

// "::" serves IPv4 too on a dual-stack host; fall back to 0.0.0.0 where IPv6 is off.
async function listenDual(server: Server, host: string, port: number): Promise<void> {
  try {
    await listen(server, host, port);
  } catch (e) {
    if (host !== '::' || (e as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') throw e;
    await listen(server, '0.0.0.0', port);
  }
}
