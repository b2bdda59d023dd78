// One HTTP server per externalTrafficPolicy: Local LoadBalancer service, on its
// healthCheckNodePort, as kube-proxy runs them: cloud load balancers send traffic only to
// nodes that answer 200, i.e. nodes with a ready local endpoint. Any path. Body:
// {"service":{"namespace":…,"name":…},"localEndpoints":N,"serviceProxyHealthy":bool}.
// Node deletion does not change these answers (kube-proxy's /healthz covers that).
import { type Server, createServer } from 'node:http';
import type { Logger } from 'pino';
import type { Model } from '../model/types.js';
import { refString } from '../model/types.js';

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

export class ServiceHealthServers {
  private servers = new Map<number, { server: Server; current: ServiceHealth }>();

  constructor(private readonly log: Logger, private readonly proxyHealthy: () => boolean, private readonly host = '::') {}

  /** Start servers for new ports, update answers, close servers of ports that went away. */
  async sync(wanted: readonly ServiceHealth[]): Promise<void> {
    const byPort = new Map(wanted.map((w) => [w.port, w]));
    for (const [port, s] of [...this.servers]) {
      if (byPort.has(port)) continue;
      this.servers.delete(port);
      await new Promise((r) => s.server.close(r));
    }
    for (const w of wanted) {
      const have = this.servers.get(w.port);
      if (have) { have.current = w; continue; }
      const entry = { server: createServer((_req, res) => this.answer(entry.current, res)), current: w };
      try {
        await listenDual(entry.server, this.host, w.port);
        this.servers.set(w.port, entry);
      } catch (e) {
        // kube-proxy emits FailedToStartServiceHealthcheck; we log it and retry next sync.
        this.log.error({ service: `${w.namespace}/${w.name}`, port: w.port, error: String(e) }, 'cannot start the service health check server');
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => new Promise((r) => s.server.close(r))));
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

// "::" serves IPv4 too on a dual-stack host; fall back to 0.0.0.0 where IPv6 is off.
async function listenDual(server: Server, host: string, port: number): Promise<void> {
  const attempt = (h: string): Promise<void> => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, h, () => { server.off('error', reject); resolve(); });
  });
  try {
    await attempt(host);
  } catch (e) {
    if (host !== '::' || (e as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') throw e;
    await attempt('0.0.0.0');
  }
}
