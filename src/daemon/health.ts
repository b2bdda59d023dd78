// kube-proxy's health endpoints, same semantics (operators' probes and cloud load balancers
// depend on them):
// - /healthz: 503 when an update has waited longer than the health timeout (2 x sync period)
//   without being applied, or when this node is leaving (deletionTimestamp, or the cluster
//   autoscaler's ToBeDeletedByClusterAutoscaler taint); body {lastUpdated, currentTime, nodeEligible}.
// - /livez: the same without the node check.
import { type Server, createServer } from 'node:http';
import type { Node } from '../model/types.js';

export interface HealthState {
  /** when the oldest update not yet applied was queued (undefined: nothing waiting) */
  queuedSince(): number | undefined;
  /** the last successful sync */
  lastUpdated(): number | undefined;
  /** this node's object, if known */
  node(): Node | undefined;
}

export interface HealthAnswer { readonly code: 200 | 503; readonly body: Record<string, unknown> }

export function healthAnswer(kind: 'healthz' | 'livez', s: HealthState, timeoutMs: number, now = Date.now()): HealthAnswer {
  const queued = s.queuedSince();
  const stale = queued !== undefined && now - queued > timeoutMs;
  const leaving = s.node()?.leaving;
  const last = s.lastUpdated();
  const body: Record<string, unknown> = {
    lastUpdated: last !== undefined ? new Date(last).toISOString() : '',
    currentTime: new Date(now).toISOString(),
  };
  if (kind === 'healthz') body.nodeEligible = leaving === undefined;
  const healthy = !stale && (kind === 'livez' || leaving === undefined);
  if (!healthy) body.reason = stale ? `an update queued ${Math.round((now - queued!) / 1000)}s ago is not applied yet (timeout ${Math.round(timeoutMs / 1000)}s)` : leaving;
  return { code: healthy ? 200 : 503, body };
}

export function parseBindAddress(text: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`${what} ${text} is not HOST:PORT (e.g. 0.0.0.0:10256, [::]:10256)`);
  return { host: m[1] === '' ? '0.0.0.0' : m[1]!, port };
}

export async function listen(server: Server, bind: { host: string; port: number }): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(bind.port, bind.host, () => { server.off('error', reject); resolve(); });
  });
}

export function healthServer(s: HealthState, timeoutMs: number, count: (kind: 'healthz' | 'livez', code: number) => void): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/healthz' && path !== '/livez') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
      return;
    }
    const kind = path === '/healthz' ? 'healthz' : 'livez';
    const a = healthAnswer(kind, s, timeoutMs);
    count(kind, a.code);
    res.writeHead(a.code, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' }).end(JSON.stringify(a.body));
  });
}
