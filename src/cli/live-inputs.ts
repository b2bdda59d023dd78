// Where dump, explain, verify and trace get what they compile or compare, in this order:
//   -f FILE_OR_DIR        manifests, with the configuration given by flags (offline, anywhere);
//   --kubeconfig FILE     a one-shot list from the API server, with the flags (from a laptop);
//   neither               the daemon on this node, through its socket (--socket): exactly
//                         the objects and resolved configuration of its last sync.
// Asking the daemon takes no configuration flags: its own are the point, and a flag that
// silently did nothing would mislead. A clear error when none of the three is there.
import { request } from 'node:http';
import type { Diagnostic } from '../model/diagnostic.js';
import type { Ruleset } from '../ir/types.js';
import type { ProxyConfig } from '../model/config.js';
import { INSPECT_API } from '../daemon/inspect-server.js';
import type { ConfigFlags } from './config.js';
import { loadBaseConfig } from './config.js';
import { type Loaded, UsageError, compileInputs, loadInputs } from './load-inputs.js';

export interface LiveOpts extends ConfigFlags {
  filename?: string[];
  kubeconfig?: string;
  socket: string;
}

/** What was loaded, and from where (for messages). */
export interface Live extends Omit<Loaded, 'diagnostics'> {
  readonly from: 'files' | 'api' | 'daemon';
  /** skipped objects, as printed */
  readonly diagnostics: readonly (Diagnostic | string)[];
  /** the daemon's: when the sync it answered with completed (epoch ms) */
  readonly syncedAt?: number;
}

export type Source = { readonly kind: 'files'; readonly files: string[] } | { readonly kind: 'api'; readonly kubeconfig: string } | { readonly kind: 'daemon'; readonly socket: string };

const CONFIG_FLAGS: readonly (readonly [keyof ConfigFlags, string])[] = [
  ['node', '--node'], ['config', '--config'], ['clusterCidr', '--cluster-cidr'], ['serviceCidr', '--service-cidr'],
  ['nodeportAddresses', '--nodeport-addresses'], ['nodeIp', '--node-ip'], ['masqueradeAll', '--masquerade-all'], ['ipFamilies', '--ip-families'],
];

/** Which source the options name; a usage error for both -f and --kubeconfig, or config flags with the daemon. */
export function sourceOf(o: LiveOpts): Source {
  const files = o.filename ?? [];
  if (files.length && o.kubeconfig) throw new UsageError('-f and --kubeconfig are two sources: give one');
  if (files.length) return { kind: 'files', files };
  if (o.kubeconfig) return { kind: 'api', kubeconfig: o.kubeconfig };
  const given = CONFIG_FLAGS.filter(([k]) => { const v = o[k]; return Array.isArray(v) ? v.length > 0 : v !== undefined; }).map(([, flag]) => flag);
  if (given.length) throw new UsageError(`${given.join(', ')}: without -f or --kubeconfig the daemon's own objects and configuration are used (its socket, ${o.socket}); give -f or --kubeconfig to compile with other flags`);
  return { kind: 'daemon', socket: o.socket };
}

class DaemonUnavailable extends Error {}

/** GET a path of the daemon's socket -> its JSON. Messages say what to try. */
export async function askDaemon<T>(socket: string, path: string, timeoutMs = 60_000): Promise<T> {
  const noInput = (why: string): DaemonUnavailable => new DaemonUnavailable(`${why}. Give -f FILE_OR_DIR (manifests) or --kubeconfig FILE --node NAME (the API server) instead, or run this where \`nftproxy run\` serves --socket ${socket}`);
  return new Promise<T>((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', headers: { accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        let body: { apiVersion?: number; error?: string } & Record<string, unknown>;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
        } catch {
          return reject(new DaemonUnavailable(`${socket}: the answer is not JSON (is this nftproxy's socket?)`));
        }
        if (res.statusCode === 403) return reject(noInput(`${socket}: ${body.error ?? 'refused'} (run as root)`));
        if (res.statusCode === 503) return reject(new DaemonUnavailable(`the daemon at ${socket}: ${body.error ?? 'not ready'}`));
        if (res.statusCode !== 200) return reject(new DaemonUnavailable(`the daemon at ${socket} answered ${res.statusCode}: ${body.error ?? ''}`));
        if (body.apiVersion !== INSPECT_API) return reject(new DaemonUnavailable(`the daemon at ${socket} speaks inspection API ${String(body.apiVersion)}, this nftproxy ${INSPECT_API}: use the daemon's own binary (kubectl exec into its pod)`));
        resolve(body as T);
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      switch (e.code) {
        case 'ENOENT': return reject(noInput(`no daemon socket at ${socket}`));
        case 'EACCES': case 'EPERM': return reject(noInput(`${socket}: permission denied: the socket answers root only (run as root)`));
        case 'ECONNREFUSED': return reject(noInput(`nothing answers on ${socket}: the daemon is not running (the file is left from an earlier run)`));
        default: return reject(noInput(`${socket}: ${e.message}`));
      }
    });
    req.end();
  });
}

export interface RulesetReply {
  readonly syncedAt: number;
  readonly config: ProxyConfig;
  readonly ruleset: Ruleset;
  readonly diagnostics: readonly string[];
  readonly notes: readonly string[];
  readonly ignored: readonly { ref: string; reason: string }[];
}

/** The one-shot list, with client-node loaded only here (its import costs memory and time). */
async function fromApi(kubeconfig: string, flags: ConfigFlags, warn: (line: string) => void): Promise<Loaded> {
  const base = await loadBaseConfig(flags);
  if (!base.ok) throw new UsageError(base.error);
  const { loadKubeConfig } = await import('../sources/kubernetes.js');
  const { listOnce } = await import('../sources/kubernetes-snapshot.js');
  let kc;
  try {
    kc = loadKubeConfig(kubeconfig);
  } catch (e) {
    throw new UsageError(`--kubeconfig ${kubeconfig}: ${(e as Error).message}`);
  }
  let objects;
  try {
    objects = await listOnce(kc, base.value.nodeName);
  } catch (e) {
    throw new UsageError(`--kubeconfig ${kubeconfig}: cannot list Services, EndpointSlices and Node ${base.value.nodeName}: ${(e as Error).message}`);
  }
  return compileInputs(objects, base.value, warn);
}

/** The ruleset and configuration from whichever source the options name. */
export async function loadLive(o: LiveOpts, warn: (line: string) => void): Promise<Live> {
  const src = sourceOf(o);
  switch (src.kind) {
    case 'files': return { ...(await loadInputs(src.files, o, warn)), from: 'files' };
    case 'api': return { ...(await fromApi(src.kubeconfig, o, warn)), from: 'api' };
    case 'daemon': {
      const r = await askDaemon<RulesetReply>(src.socket, '/v1/ruleset').catch(usage);
      printDaemonDiagnostics(r, warn);
      return { config: r.config, ruleset: r.ruleset, diagnostics: r.diagnostics, ignored: r.ignored, from: 'daemon', syncedAt: r.syncedAt };
    }
  }
}

/** What dump -f prints on stderr, in its order: notes, then skipped objects. */
export function printDaemonDiagnostics(r: { notes: readonly string[]; diagnostics: readonly string[] }, warn: (line: string) => void): void {
  for (const n of r.notes) warn(`note: ${n}`);
  for (const d of r.diagnostics) warn(d);
}

/** A socket that cannot be asked is bad usage (exit 2): the message says what to give instead. */
export function usage(e: unknown): never {
  if (e instanceof DaemonUnavailable) throw new UsageError(e.message);
  throw e;
}
