// One resource kept in sync with the API server: client-node's informer (ListWatch: the
// cache, the list-then-watch loop, the relist on 410 Gone), made to survive everything
// else.
//
// What client-node 1.x does on its own (read from its cache.js/watch.js, 1.4.0):
// - a watch stream that ends cleanly is resumed at once from the last resourceVersion;
// - 410 Gone, as an ERROR watch event carrying a Status with code 410 (what API servers
//   send) or as an HTTP 410 answer to the watch request, clears the resourceVersion, and
//   the next round relists: objects missing from the new list get delete callbacks;
// - ANY other failure (list refused, connection refused or reset, a proxy's 5xx) is handed
//   to the 'error' callbacks and the informer stops for good, cache intact.
// So this wrapper restarts it after every error with exponential backoff. A restart
// resumes the watch from the last resourceVersion (nothing is relisted when the API server
// still has the history) and the cache is never cleared in between.
//
// It also asks for what client-go's reflector asks for and client-node does not:
// bookmarks (the resourceVersion stays fresh on a quiet watch, so a reconnect is less
// likely to be 410) and a server-side timeout, plus a client-side deadline behind it:
// client-node sets no timeout at all, and a connection that dies without a FIN (a node
// cut off from the network) would otherwise hold a silent watch forever.
import { type KubeConfig, type KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { listAll } from './kubernetes-list.js';
import { sameButVersion, trimObject } from './kubernetes-trim.js';
import { ChangeLog } from './change-log.js';

export interface ResourceSpec {
  readonly kind: 'Service' | 'EndpointSlice' | 'Node';
  readonly apiVersion: 'v1' | 'discovery.k8s.io/v1';
  /** the cluster-wide collection path, e.g. /api/v1/services */
  readonly path: string;
  readonly fieldSelector?: string;
}

export interface InformerOptions {
  /** first restart delay after an error; doubles up to maxMs, back to this after a good watch */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** spread restarts of many nodes after an API server outage: delay × (1 + jitter × random) */
  readonly backoffJitter?: number;
  /** server-side watch timeout, drawn per watch (client-go: 5–10 min) */
  readonly watchTimeoutSeconds?: () => number;
  /** how much longer than its timeout a watch may stay open before it is presumed dead */
  readonly watchGraceSeconds?: number;
  /** for list requests and for the answer to a watch request */
  readonly requestTimeoutMs?: number;
  readonly pageSize?: number;
}

export interface InformerStatus {
  /** the first list has been applied to the cache */
  readonly synced: boolean;
  /** a watch is established right now */
  readonly connected: boolean;
  /** the most recent failure, kept after recovery for diagnosis */
  readonly lastError?: string;
  readonly lastErrorAt?: number;
  /** restarts after errors */
  readonly restarts: number;
}

interface WatchHooks {
  /** called when the informer asks for a watch: the list before it (if any) is applied */
  beforeWatch(): void;
  connected(): void;
  ended(err: unknown): void;
  /** an ERROR event in the stream (a Status: 410 Expired makes the informer relist) */
  errorEvent(status: unknown): void;
  /** an object event (ADDED, MODIFIED, DELETED): returns what the cache gets of it */
  received(phase: string, obj: unknown): unknown;
}

/** Exponential backoff: initial, ×2 each failure, capped; reset on success. */
export class Backoff {
  private next: number;
  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly jitter: number,
  ) {
    this.next = initialMs;
  }
  delay(): number {
    const d = this.next;
    this.next = Math.min(this.maxMs, this.next * 2);
    return Math.round(d * (1 + this.jitter * Math.random()));
  }
  reset(): void {
    this.next = this.initialMs;
  }
}

/**
 * client-node's Watch with bookmarks, a server-side timeout and two client-side
 * deadlines: for the answer, and for the stream to end after its timeout.
 */
class GuardedWatch extends Watch {
  // client-node's ListWatch.stop() aborts only the request it already holds: a watch still
  // being answered when stop() runs would stay open for good. So the informer closes us too.
  private closed = false;
  private readonly live = new Set<AbortController>();

  /** Abort every open watch, and any answered later. */
  close(): void {
    this.closed = true;
    for (const c of this.live) c.abort();
  }

  constructor(
    kc: KubeConfig,
    private readonly hooks: WatchHooks,
    private readonly o: { timeoutSeconds: () => number; graceSeconds: number; answerTimeoutMs: number; quietRestartMs: number },
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    this.hooks.beforeWatch();
    const timeoutSeconds = this.o.timeoutSeconds();
    const outer = new AbortController();
    this.live.add(outer);
    let inner: AbortController | undefined;
    let finished = false;
    let connectedAt: number | undefined;
    let events = 0;
    const timers: NodeJS.Timeout[] = [];
    let signalFinished!: () => void;
    const finishedP = new Promise<void>((r) => (signalFinished = r));
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      this.live.delete(outer);
      signalFinished();
      for (const t of timers) clearTimeout(t);
      inner?.abort();
      this.hooks.ended(err);
      // A watch that the server ends at once, again and again, without a word (a proxy
      // cutting long requests) would make the informer reconnect in a tight loop: pace it.
      const quiet = !err && events === 0 && connectedAt !== undefined && Date.now() - connectedAt < 1000;
      if (quiet) setTimeout(() => done(err), this.o.quietRestartMs);
      else done(err);
    };
    outer.signal.addEventListener('abort', () => inner?.abort());
    timers.push(setTimeout(() => finish(new Error(`watch ${path}: no answer in ${this.o.answerTimeoutMs} ms`)), this.o.answerTimeoutMs));
    const answered = super
      .watch(
        path,
        { ...queryParams, allowWatchBookmarks: true, timeoutSeconds },
        (phase, obj, raw) => {
          events++;
          if (phase === 'ERROR') this.hooks.errorEvent(obj);
          const isObjectEvent = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED';
          callback(phase, isObjectEvent ? this.hooks.received(phase, obj) : obj, raw);
        },
        finish,
      )
      .then(
        (c) => {
          inner = c;
          // Given up on already (no answer in time), or stopped while the answer was on its
          // way (the abort found no request to cancel yet): a late answer is closed at once.
          if (finished || outer.signal.aborted || this.closed) c.abort();
        },
        (e: unknown) => finish(e),
      );
    // Return as soon as the watch is either answered or given up: ListWatch keeps what
    // this returns as its current request, and a late return would overwrite a newer one.
    await Promise.race([answered, finishedP]);
    if (finished) return outer;
    clearTimeout(timers.shift());
    connectedAt = Date.now();
    this.hooks.connected();
    const deadline = timeoutSeconds + this.o.graceSeconds;
    timers.push(setTimeout(() => finish(new Error(`watch ${path}: still open ${deadline} s after it should have ended; connection presumed dead`)), deadline * 1000));
    return outer;
  }
}

/**
 * One resource's informer that does not give up. start() resolves once the first list
 * is in the cache; after that the cache only ever changes by watch events and relists.
 */
export class ResilientInformer {
  private readonly lw: ListWatch<KubernetesObject>;
  private readonly guard: GuardedWatch;
  private readonly backoff: Backoff;
  private synced = false;
  private connected = false;
  /** a list completed and has not yet been seen applied (see beforeWatch) */
  private listed = false;
  private lastError: string | undefined;
  private lastErrorAt: number | undefined;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running = false;
  private readonly syncWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private readonly log: Logger;
  /** events that changed the cache so far */
  private changes = 0;
  /** updates (by the object the cache got) in which nothing nftproxy reads changed */
  private readonly quiet = new WeakSet<KubernetesObject>();
  /** the object the cache holds per namespace/name, as its events said: what an update replaced */
  private readonly current = new Map<string, KubernetesObject>();
  /** the cache's changes, for changesSince */
  private readonly logged = new ChangeLog<{ readonly before?: KubernetesObject; readonly after?: KubernetesObject }>(MAX_LOGGED);

  constructor(
    kc: KubeConfig,
    readonly spec: ResourceSpec,
    onChange: () => void,
    log: Logger,
    o: InformerOptions = {},
  ) {
    this.log = log.child({ resource: spec.kind });
    this.backoff = new Backoff(o.backoffInitialMs ?? 500, o.backoffMaxMs ?? 30_000, o.backoffJitter ?? 0.2);
    const watch = (this.guard = new GuardedWatch(
      kc,
      {
        // ListWatch applies a list to its cache and asks for the watch in one synchronous
        // run: when the watch is asked for, the cache holds the list.
        beforeWatch: () => {
          if (!this.listed) return;
          this.listed = false;
          this.markSynced();
        },
        connected: () => {
          this.connected = true;
          this.backoff.reset();
        },
        ended: () => {
          this.connected = false;
        },
        received: (_phase, obj) => this.admit(obj as KubernetesObject),
        errorEvent: (status) => {
          const s = status as { code?: unknown; message?: unknown } | undefined;
          if (s?.code === 410) this.log.info({ message: s.message }, 'watch expired (410 Gone); relisting');
          else this.log.warn({ status: s }, 'error event in the watch stream; resuming');
        },
      },
      {
        timeoutSeconds: o.watchTimeoutSeconds ?? (() => 300 + Math.floor(Math.random() * 300)),
        graceSeconds: o.watchGraceSeconds ?? 30,
        answerTimeoutMs: o.requestTimeoutMs ?? 60_000,
        quietRestartMs: o.backoffInitialMs ?? 500,
      },
    ));
    const listFn = async () => {
      const list = await listAll(kc, spec.path, {
        ...(spec.fieldSelector ? { fieldSelector: spec.fieldSelector } : {}),
        ...(o.pageSize ? { pageSize: o.pageSize } : {}),
        timeoutMs: o.requestTimeoutMs ?? 60_000,
        keep: (item) => this.admit(item),
      });
      this.listed = true;
      this.log.debug({ items: list.items.length, resourceVersion: list.metadata?.resourceVersion }, 'listed');
      return list;
    };
    this.lw = new ListWatch(spec.path, watch, listFn, false, undefined, spec.fieldSelector);
    const changed = (): void => {
      if (this.synced && !this.stopped) onChange();
    };
    // Every change to the cache comes with one of these events (the cache sets an object only
    // for a new resourceVersion): `version` counts them, quiet ones too (their object replaced
    // the cached one), so a snapshot is rebuilt only after one.
    this.lw.on('add', (o: KubernetesObject) => { this.note(o, o); changed(); });
    this.lw.on('update', (o: KubernetesObject) => {
      this.note(o, o);
      if (!this.quiet.has(o)) changed();
    });
    this.lw.on('delete', (o: KubernetesObject) => { this.note(o, undefined); changed(); });
    this.lw.on('error', (err: unknown) => this.failed(err));
  }

  /** Resolves when the first list is in the cache; retries until then; rejects if stopped first. */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('informer stopped'));
    const synced = this.synced ? Promise.resolve() : new Promise<void>((resolve, reject) => this.syncWaiters.push({ resolve, reject }));
    if (!this.running) {
      this.running = true;
      this.run();
    }
    return synced;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.connected = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    void this.lw.stop();
    this.guard.close();
    for (const w of this.syncWaiters.splice(0)) w.reject(new Error(`${this.spec.kind} informer stopped before its first list`));
  }

  /** Changes whenever the cache does (see the event handlers). */
  get version(): number {
    return this.changes;
  }

  /**
   * What the cache got since version `since` (as `version` read then): per event the object it
   * replaced or dropped (`before`, the very object the cache held) and the one it got (`after`).
   * Undefined when that is not known (no `since`, or older than what is remembered). For one
   * consumer: what it has seen (versions up to `since`) is forgotten.
   */
  changesSince(since: number | undefined): { before?: KubernetesObject; after?: KubernetesObject }[] | undefined {
    return this.logged.since(since);
  }

  /** One cache event: `key` names the object, `after` is what the cache holds for it now (none: deleted). */
  private note(key: KubernetesObject, after: KubernetesObject | undefined): void {
    this.changes++;
    const k = `${key.metadata?.namespace ?? ''}/${key.metadata?.name ?? ''}`;
    const before = this.current.get(k);
    if (after) this.current.set(k, after); else this.current.delete(k);
    // The first list is the first snapshot: nobody asks what changed before it.
    if (!this.synced) { this.logged.startAt(this.changes); return; }
    this.logged.add(this.changes, [{ ...(before ? { before } : {}), ...(after ? { after } : {}) }]);
  }

  /** The cached objects: trimmed (see kubernetes-trim.ts), with kind and apiVersion. */
  objects(): readonly KubernetesObject[] {
    return this.lw.list();
  }

  status(): InformerStatus {
    return {
      synced: this.synced,
      connected: this.connected,
      ...(this.lastError !== undefined ? { lastError: this.lastError, lastErrorAt: this.lastErrorAt } : {}),
      restarts: this.restarts,
    };
  }

  /**
   * Every object on its way into the cache (list item or watch event) passes here: what the
   * cache gets is the trimmed object. A new version that differs from the cached one only in
   * what was trimmed (an annotation, managedFields, a Node's heartbeat) still replaces it,
   * so that its resourceVersion is current, but is not a change: no sync for it.
   */
  private admit(o: KubernetesObject): KubernetesObject {
    const trimmed = trimObject(this.spec, o);
    const m = trimmed.metadata ?? {};
    const cached = m.name === undefined ? undefined : this.lw.get(m.name, m.namespace);
    if (cached && sameButVersion(cached, trimmed)) this.quiet.add(trimmed);
    return trimmed;
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.log.info({ objects: this.lw.list().length }, 'initial list loaded');
    for (const w of this.syncWaiters.splice(0)) w.resolve();
  }

  /** The informer has stopped itself: keep the cache, try again later. */
  private failed(err: unknown): void {
    // ListWatch.stop() aborts the open watch, which reports the abort as an error.
    if (this.stopped) return;
    this.connected = false;
    this.lastError = describe(err);
    this.lastErrorAt = Date.now();
    if (this.restartTimer) return;
    const delayMs = this.backoff.delay();
    this.log.warn({ error: this.lastError, retryInMs: delayMs, synced: this.synced }, this.synced ? 'watch failed; keeping the cache and restarting' : 'initial list failed; retrying');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      this.restarts++;
      this.run();
    }, delayMs);
  }

  /** (Re)starts the informer: a list if it has no resourceVersion to resume from, then a watch. */
  private run(): void {
    // ListWatch reports its failures through 'error'; a rejection here would be a bug in it.
    this.lw.start().catch((e: unknown) => this.failed(e));
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown; statusCode?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    return code !== undefined && !err.message.includes(String(code)) ? `${err.message} (${String(code)})` : err.message;
  }
  return String(err);
}

/** Cache events remembered for changesSince; more than the model folds in one by one (2,000). */
const MAX_LOGGED = 4096;
