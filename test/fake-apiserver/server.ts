// A fake Kubernetes API server for tests, speaking the real wire protocol over HTTP on
// 127.0.0.1 (and on Unix sockets: listenUnix): discovery, GET, paginated LIST and streaming
// WATCH for Services, EndpointSlices and Nodes. Tests change the world with
// create/update/delete and break it with the controls below (compaction, dropped watches,
// restarts, failing requests).
import { readFileSync, rmSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { discoveryDoc } from './discovery.js';
import { type Kind, type Resource, apiVersionOf, route } from './resources.js';
import { type Matcher, SelectorError, parseFieldSelector, parseLabelSelector } from './selectors.js';
import { type KObject, Store, StoreError, keyOf } from './store.js';
import { WatchStream, withKind } from './watch-stream.js';

export interface FakeApiServerOptions {
  /** BOOKMARK period for watches that ask for bookmarks (the real server: about a minute) */
  readonly bookmarkIntervalMs?: number;
  /** ends watches that sent no timeoutSeconds after this long (the real server: 30-60 min); 0 = never */
  readonly defaultWatchTimeoutSeconds?: number;
  /** events kept for resuming watches; older resourceVersions get 410 (default: all since the last compactHistory) */
  readonly historyLimit?: number;
  /** serve HTTPS with the test CA's certificate, as a real API server (default true) */
  readonly tls?: boolean;
}

// Test-only TLS material: a CA and a server certificate for 127.0.0.1 (test/fixtures/tls).
const TLS_DIR = new URL('../fixtures/tls/', import.meta.url);
export const TEST_CA = readFileSync(new URL('ca.crt', TLS_DIR), 'utf8');
const TEST_CERT = { cert: readFileSync(new URL('server.crt', TLS_DIR), 'utf8'), key: readFileSync(new URL('server.key', TLS_DIR), 'utf8') };

export type Verb = 'list' | 'watch' | 'get' | 'discovery' | 'other';

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly verb: Verb;
  readonly accept: string;
  readonly userAgent: string;
}

export interface FaultOptions {
  /** which requests to the path it applies to; default any */
  readonly verb?: Verb | 'any';
  /** how many requests it applies to; default 1 (Infinity: until clearFaults) */
  readonly times?: number;
}

type Fault = { path: string; verb: Verb | 'any'; remaining: number } & ({ status: number } | { delayMs: number });

const REASONS: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed', 409: 'AlreadyExists',
  410: 'Expired', 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
};

export function statusObject(code: number, message: string, reason = REASONS[code] ?? 'Unknown'): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** strconv.ParseBool, which the server uses for `watch`, `allowWatchBookmarks`, … */
const parseBool = (v: string | null): boolean => v !== null && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface ContinueToken {
  readonly rv: number;
  /** key of the last item already returned */
  readonly after: string;
}

export class FakeApiServer {
  readonly store: Store;
  /** every request received, in order (what kubectl or the informer actually asked) */
  readonly requests: RequestRecord[] = [];
  private server: Server | undefined;
  /** Unix socket paths to serve on (listenUnix), and the servers listening there while running */
  private readonly unixPaths = new Set<string>();
  private unixServers: Server[] = [];
  private portNumber = 0;
  private readonly sockets = new Set<Socket>();
  private readonly watches = new Set<WatchStream>();
  private faults: Fault[] = [];
  private frozen = false;

  /** set: every new watch is ended cleanly this long after it starts, like a proxy cutting long requests */
  private watchLifetimeMs: number | undefined;

  constructor(private readonly opts: FakeApiServerOptions = {}) {
    this.store = new Store(opts.historyLimit);
  }

  get port(): number {
    return this.portNumber;
  }

  get url(): string {
    return `${this.opts.tls === false ? 'http' : 'https'}://127.0.0.1:${this.portNumber}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  get openWatches(): number {
    return this.watches.size;
  }

  /**
   * Listens on 127.0.0.1: a random port the first time, the same port after a stop(); and
   * on every Unix socket path given to listenUnix.
   */
  async start(): Promise<void> {
    if (this.server) return;
    const server = this.newServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.portNumber, '127.0.0.1', () => resolve());
    });
    this.portNumber = (server.address() as AddressInfo).port;
    this.server = server;
    for (const path of this.unixPaths) await this.openUnix(path);
  }

  /**
   * Serves on a Unix socket as well (same handler, same TLS, same faults), now if running
   * and after every start(): a stop() closes it with the rest. A file left at `path` (a
   * previous run's socket) is replaced. For clients in other network namespaces, which
   * reach a socket file but not this process's 127.0.0.1.
   */
  async listenUnix(path: string): Promise<void> {
    if (this.unixPaths.has(path)) return;
    this.unixPaths.add(path);
    if (this.server) await this.openUnix(path);
  }

  private async openUnix(path: string): Promise<void> {
    rmSync(path, { force: true });
    const server = this.newServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    this.unixServers.push(server);
  }

  private newServer(): Server {
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    const server: Server = this.opts.tls === false ? createServer(handler) : createTlsServer(TEST_CERT, handler);
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    return server;
  }

  /** An API server crash: every connection is cut, nothing listens until start(). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const unix = this.unixServers;
    this.unixServers = [];
    for (const w of this.watches) w.destroy();
    for (const s of this.sockets) s.destroy();
    await Promise.all([server, ...unix].map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  }

  // ---- the world -------------------------------------------------------------------------

  create(kind: Kind, obj: Record<string, unknown>): KObject {
    return this.store.create(kind, obj);
  }

  update(kind: Kind, obj: Record<string, unknown>): KObject {
    return this.store.update(kind, obj);
  }

  delete(kind: Kind, obj: Record<string, unknown>): KObject {
    return this.store.delete(kind, obj);
  }

  get resourceVersion(): number {
    return this.store.resourceVersion;
  }

  // ---- ways to break it ------------------------------------------------------------------

  /** Forgets all event history: a watch from any older resourceVersion now gets 410 Gone. */
  compactHistory(): void {
    this.store.compact();
  }

  /**
   * Ends every open watch. Abrupt (default): the TCP connection is cut mid-stream.
   * Graceful: the stream ends as on a server-side timeout.
   */
  dropWatches(how: 'abrupt' | 'graceful' = 'abrupt'): void {
    for (const w of [...this.watches]) (how === 'abrupt' ? w.destroy() : w.end());
  }

  /** Open (and new) watches stop delivering events, as over a stalled connection. */
  freezeWatches(): void {
    this.frozen = true;
    for (const w of this.watches) w.hold();
  }

  thawWatches(): void {
    this.frozen = false;
    for (const w of this.watches) w.release();
  }

  /** New watches end cleanly `ms` after they start (undefined: they live their normal life). */
  setWatchLifetime(ms: number | undefined): void {
    this.watchLifetimeMs = ms;
  }

  /** The next request(s) to `path` answer `status` with a Status body. */
  setFailNext(path: string, status: number, o: FaultOptions = {}): void {
    this.faults.push({ path, verb: o.verb ?? 'any', remaining: o.times ?? 1, status });
  }

  /** The next request(s) to `path` are answered only after `ms`. */
  setDelay(path: string, ms: number, o: FaultOptions = {}): void {
    this.faults.push({ path, verb: o.verb ?? 'any', remaining: o.times ?? 1, delayMs: ms });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /**
   * A kubeconfig for this server: TLS verified against the test CA (plain HTTP needs
   * skip-verify). `server`: another address that leads here (a relay to listenUnix's socket).
   */
  kubeconfig(namespace = 'default', server = this.url): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${server}`,
      ...(this.opts.tls === false ? ['    insecure-skip-tls-verify: true'] : [`    certificate-authority-data: ${Buffer.from(TEST_CA).toString('base64')}`]),
      'users:',
      '- name: fake',
      '  user:',
      '    token: fake-token',
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      '    user: fake',
      `    namespace: ${namespace}`,
      'current-context: fake',
      '',
    ].join('\n');
  }

  // ---- protocol --------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const r = route(url.pathname);
    const q = url.searchParams;
    const verb: Verb = req.method !== 'GET' ? 'other'
      : r.to === 'discovery' ? 'discovery'
      : r.to === 'object' ? 'get'
      : r.to === 'collection' ? (parseBool(q.get('watch')) ? 'watch' : 'list')
      : 'other';
    this.requests.push({
      method: req.method ?? '', path: url.pathname, query: Object.fromEntries(q), verb,
      accept: req.headers.accept ?? '', userAgent: req.headers['user-agent'] ?? '',
    });

    const { delayMs, status } = this.takeFaults(url.pathname, verb);
    if (delayMs > 0) await sleep(delayMs);
    if (res.destroyed) return;
    if (status !== undefined) return this.sendStatus(res, status, `injected failure (${status})`);

    if (req.method !== 'GET') return this.sendStatus(res, 405, `the server does not allow this method on the requested resource`);
    try {
      switch (r.to) {
        case 'discovery':
          return this.sendJson(res, 200, discoveryDoc(r.path, `127.0.0.1:${this.portNumber}`));
        case 'object':
          return this.get(res, r.resource, r.name, r.namespace);
        case 'collection':
          return verb === 'watch' ? this.watch(res, r.resource, r.namespace, q) : this.list(res, r.resource, r.namespace, q);
        case 'none':
          return this.sendStatus(res, 404, 'the server could not find the requested resource');
      }
    } catch (e) {
      if (e instanceof SelectorError) return this.sendStatus(res, 400, e.message);
      if (e instanceof StoreError) return this.sendStatus(res, e.code, e.message);
      return this.sendStatus(res, 500, String(e));
    }
  }

  private takeFaults(path: string, verb: Verb): { delayMs: number; status: number | undefined } {
    let delayMs = 0;
    let status: number | undefined;
    for (const f of this.faults) {
      if (f.path !== path || (f.verb !== 'any' && f.verb !== verb) || f.remaining <= 0) continue;
      if ('delayMs' in f) delayMs += f.delayMs;
      else if (status === undefined) status = f.status;
      else continue;
      f.remaining--;
    }
    this.faults = this.faults.filter((f) => f.remaining > 0);
    return { delayMs, status };
  }

  private matcher(r: Resource, namespace: string | undefined, q: URLSearchParams): Matcher {
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), r.fields);
    return (o) => (namespace === undefined || (o.metadata as { namespace?: string }).namespace === namespace) && labels(o) && fields(o);
  }

  private get(res: ServerResponse, r: Resource, name: string, namespace?: string): void {
    const key = keyOf(r.kind, namespace === undefined ? { name } : { name, namespace });
    const o = this.store.get(r.kind, key);
    if (!o) return this.sendStatus(res, 404, `${r.plural} "${name}" not found`);
    this.sendJson(res, 200, withKind(r, o));
  }

  /**
   * LIST with limit/continue. Every page of one list is cut from the same snapshot (the
   * version of the first page, carried in the continue token); a token older than the
   * retained history is 410 Expired, as when etcd has compacted it.
   */
  private list(res: ServerResponse, r: Resource, namespace: string | undefined, q: URLSearchParams): void {
    const match = this.matcher(r, namespace, q);
    const limitText = q.get('limit');
    const limit = limitText === null || limitText === '' ? 0 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 0) return this.sendStatus(res, 400, `invalid limit "${limitText}"`);
    let token: ContinueToken = { rv: this.store.resourceVersion, after: '' };
    const cont = q.get('continue');
    if (cont) {
      const decoded = decodeContinue(cont);
      if (!decoded) return this.sendStatus(res, 400, 'continue key is not valid');
      token = decoded;
    }
    const all = this.store.list(r.kind, token.rv);
    if (!all) {
      return this.sendStatus(res, 410, 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
    }
    const items = all.filter((o) => keyOf(r.kind, o.metadata) > token.after && match(o));
    const page = limit > 0 ? items.slice(0, limit) : items;
    const metadata: Record<string, unknown> = { resourceVersion: String(token.rv) };
    if (page.length < items.length) {
      const last = page[page.length - 1]!;
      metadata.continue = encodeContinue({ rv: token.rv, after: keyOf(r.kind, last.metadata) });
      // The real server counts the rest only when it can (no selectors).
      if (!q.get('labelSelector') && !q.get('fieldSelector')) metadata.remainingItemCount = items.length - page.length;
    }
    // List items carry no kind/apiVersion: the list says what they are.
    this.sendJson(res, 200, { kind: r.listKind, apiVersion: apiVersionOf(r), metadata, items: page });
  }

  /**
   * WATCH: HTTP 200 at once, then events. No resourceVersion (or "0", or
   * sendInitialEvents) starts with the current objects as ADDED; a version still in the
   * history replays what came after it; an older one gets the real server's answer: a 200
   * carrying one ERROR event with a 410 Expired Status, then the end of the stream.
   */
  private watch(res: ServerResponse, r: Resource, namespace: string | undefined, q: URLSearchParams): void {
    const match = this.matcher(r, namespace, q);
    const rvText = q.get('resourceVersion') ?? '';
    const from = rvText === '' ? 0 : Number(rvText);
    if (!Number.isInteger(from) || from < 0) return this.sendStatus(res, 400, `invalid resource version "${rvText}"`);
    const bookmarks = parseBool(q.get('allowWatchBookmarks'));
    const initial = parseBool(q.get('sendInitialEvents'));

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const stream = new WatchStream(res, r, match, () => this.watches.delete(stream));
    this.watches.add(stream);
    if (this.frozen) stream.hold();

    if (from === 0 || initial) {
      for (const o of this.store.list(r.kind)!) if (match(o)) stream.send('ADDED', o);
      if (initial && bookmarks) {
        stream.send('BOOKMARK', { metadata: { resourceVersion: String(this.store.resourceVersion), annotations: { 'k8s.io/initial-events-end': 'true' } } });
      }
      stream.follow(this.store, []);
    } else {
      const backlog = this.store.eventsAfter(r.kind, from);
      if (!backlog) return stream.fail(statusObject(410, `too old resource version: ${from} (${this.store.oldestResumable})`, 'Expired'));
      stream.follow(this.store, backlog);
    }
    if (bookmarks) stream.bookmarkEvery(this.opts.bookmarkIntervalMs ?? 1000, () => this.store.resourceVersion);
    const timeoutText = q.get('timeoutSeconds');
    const timeout = timeoutText ? Number(timeoutText) : (this.opts.defaultWatchTimeoutSeconds ?? 0);
    if (timeout > 0) stream.endAfter(timeout);
    if (this.watchLifetimeMs !== undefined) {
      const t = setTimeout(() => stream.end(), this.watchLifetimeMs);
      res.on('close', () => clearTimeout(t));
    }
  }

  private sendStatus(res: ServerResponse, code: number, message: string): void {
    this.sendJson(res, code, statusObject(code, message));
  }

  private sendJson(res: ServerResponse, code: number, body: unknown): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.end(JSON.stringify(body));
  }
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: 'fake/1', rv: t.rv, start: t.after })).toString('base64url');
}

function decodeContinue(s: string): ContinueToken | undefined {
  try {
    const o = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as { v?: unknown; rv?: unknown; start?: unknown };
    if (o.v !== 'fake/1' || typeof o.rv !== 'number' || typeof o.start !== 'string') return undefined;
    return { rv: o.rv, after: o.start };
  } catch {
    return undefined;
  }
}
