// The daemon's inspection socket: read-only HTTP over a root-only Unix socket, so `nftproxy
// dump`, `explain`, `verify` and `trace` on the node answer from exactly what the daemon
// compiled and applied, with its resolved configuration (no flags to repeat).
//
//   GET /v1/summary                      what the daemon runs on and its last sync
//   GET /v1/ruleset                      the compiled ruleset of the last successful sync, its
//                                        configuration, skipped objects and notes
//   GET /v1/explain?src=&dst=&proto=     explain's trace over that ruleset
//
// Who may ask: root (and the daemon's own user). The socket is 0600 in a 0700 directory the
// daemon owns, so nobody else can connect at all; the peer's credentials (SO_PEERCRED) are
// checked as well, for a socket whose mode someone loosened. Nothing here changes state.
//
// Cost: /v1/ruleset assembles and serializes the whole ruleset (cached per sync) on the
// daemon's event loop: tens of MB and about a second at 10,000 services. It is a debugging
// request, asked by a person, not a metric to scrape.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { peerCredentials } from '../../native/peercred.js';
import { type CompiledFamily, assemble } from '../compile/compile.js';
import type { Ruleset } from '../ir/types.js';
import type { ProxyConfig } from '../model/config.js';
import { parsePacket } from '../trace/packet.js';
import { trace } from '../trace/trace.js';

export const DEFAULT_SOCKET = '/run/nftproxy/nftproxy.sock';
/** bumped when a reply's shape changes incompatibly; clients refuse what they do not know */
export const INSPECT_API = 1;

/** What the last successful sync applied (Proxier.lastApplied). */
export interface AppliedState {
  readonly parts: readonly CompiledFamily[];
  readonly config: ProxyConfig;
  /** skipped objects, as `dump` prints them */
  readonly diagnostics: readonly string[];
  /** configuration notes, as `dump` prints them (without "note: ") */
  readonly notes: readonly string[];
  readonly ignored: readonly { ref: string; reason: string }[];
  /** epoch ms */
  readonly at: number;
}

export interface InspectState {
  applied(): AppliedState | undefined;
  summary(): Record<string, unknown>;
}

export class InspectSocketError extends Error {
  constructor(readonly code: 'IN_USE' | 'UNSAFE', message: string) {
    super(message);
    this.name = 'InspectSocketError';
  }
}

export interface InspectServer {
  readonly path: string;
  close(): Promise<void>;
}

// Per applied state, not per parts: the daemon keeps its compiled parts across syncs and
// updates them in place. Services in name order, as a compile from scratch lists them (the
// kept parts list a service added later at the end).
const rulesets = new WeakMap<AppliedState, Ruleset>();
function rulesetOf(a: AppliedState): Ruleset {
  let r = rulesets.get(a);
  if (!r) {
    const sorted = a.parts.map((p) => ({ ...p, services: new Map([...p.services].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) }));
    rulesets.set(a, (r = assemble(sorted)));
  }
  return r;
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function handle(req: IncomingMessage, res: ServerResponse, state: InspectState): void {
  if (req.method !== 'GET') return reply(res, 405, { error: 'read-only: GET only' });
  const url = new URL(req.url ?? '/', 'http://nftproxy');
  const applied = state.applied();
  const notYet = (): void => reply(res, 503, { error: 'the daemon has not completed a sync yet (it waits for its source\'s first complete view); try again in a moment' });
  switch (url.pathname) {
    case '/v1/summary':
      return reply(res, 200, { apiVersion: INSPECT_API, ...state.summary() });
    case '/v1/ruleset': {
      if (!applied) return notYet();
      return reply(res, 200, { apiVersion: INSPECT_API, syncedAt: applied.at, config: applied.config, ruleset: rulesetOf(applied), diagnostics: applied.diagnostics, notes: applied.notes, ignored: applied.ignored });
    }
    case '/v1/explain': {
      if (!applied) return notYet();
      const p = parsePacket(url.searchParams.get('src') ?? '', url.searchParams.get('dst') ?? '', url.searchParams.get('proto') ?? 'tcp');
      if (!p.ok) return reply(res, 400, { error: p.error });
      return reply(res, 200, { apiVersion: INSPECT_API, syncedAt: applied.at, trace: trace(rulesetOf(applied), applied.config.nodeIPs, p.value), ignored: applied.ignored, diagnostics: applied.diagnostics, notes: applied.notes });
    }
    default:
      return reply(res, 404, { error: `no ${url.pathname}: /v1/summary, /v1/ruleset, /v1/explain?src=&dst=&proto=` });
  }
}

/** Does a daemon answer on this socket? (A socket file nobody listens on is left by a crash.) */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Socket = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Creates the directory (0700) and the socket (0600) and serves on it. Refuses a directory
 * that is a symlink or belongs to another user (whoever owns it could swap the socket), and a
 * socket another daemon still answers on (two daemons on one node: IN_USE).
 */
export async function serveInspect(path: string, state: InspectState, log: Logger): Promise<InspectServer> {
  const dir = dirname(path);
  const uid = process.geteuid?.() ?? 0;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const d = await lstat(dir);
  if (!d.isDirectory()) throw new InspectSocketError('UNSAFE', `${dir} is not a directory (a symlink?): the inspection socket needs a directory of its own`);
  if (d.uid !== uid) throw new InspectSocketError('UNSAFE', `${dir} belongs to uid ${d.uid}, not to this daemon (uid ${uid}): whoever owns it could replace the socket`);
  if ((d.mode & 0o077) !== 0) await chmod(dir, 0o700);

  const old = await lstat(path).catch(() => undefined);
  if (old) {
    if (!old.isSocket()) throw new InspectSocketError('UNSAFE', `${path} exists and is not a socket; remove it or give --socket another path`);
    if (await answers(path)) throw new InspectSocketError('IN_USE', `EADDRINUSE: another nftproxy answers on ${path}; two daemons must not program one node (or give --socket another path)`);
    await unlink(path);
  }

  const peers = new WeakMap<Socket, number | undefined>();
  const server: Server = createServer((req, res) => {
    const peerUid = peers.get(req.socket);
    if (peerUid !== undefined && peerUid !== 0 && peerUid !== uid) {
      log.warn({ peerUid }, 'inspection socket: refused a client that is not root');
      return reply(res, 403, { error: 'the nftproxy socket answers root only' });
    }
    try {
      handle(req, res, state);
    } catch (e) {
      log.error({ error: String(e) }, 'inspection socket: request failed');
      reply(res, 500, { error: String(e) });
    }
  });
  server.on('connection', (s: Socket) => {
    const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
    peers.set(s, fd === undefined ? undefined : peerCredentials(fd)?.uid);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => { server.off('error', reject); resolve(); });
  });
  await chmod(path, 0o600);
  const ino = (await lstat(path)).ino;
  log.info({ socket: path }, 'inspection socket ready (root only): nftproxy dump, explain, verify and trace ask it');
  return {
    path,
    close: async () => {
      await new Promise<void>((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); });
      // only our own socket: a daemon that replaced it (after we were presumed dead) keeps its own
      const now = await lstat(path).catch(() => undefined);
      if (now && now.ino === ino) await unlink(path).catch(() => undefined);
    },
  };
}
