// One open watch: a chunked HTTP response carrying one JSON event per line, exactly as the
// API server streams them (each object with its kind and apiVersion, unlike list items).
import type { ServerResponse } from 'node:http';
import type { Matcher } from './selectors.js';
import { type Resource, apiVersionOf } from './resources.js';
import type { KObject, Store, StoredEvent } from './store.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export const withKind = (r: Resource, o: Record<string, unknown>): Record<string, unknown> => ({ kind: r.kind, apiVersion: apiVersionOf(r), ...o });

/**
 * What a filtered watcher sees of a store event. An object that stops matching the
 * selector is DELETED for this watcher and one that starts matching is ADDED, as the
 * API server's watch cache does.
 */
export function translate(e: StoredEvent, match: Matcher): { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: KObject } | undefined {
  switch (e.type) {
    case 'ADDED':
      return match(e.object) ? { type: 'ADDED', object: e.object } : undefined;
    case 'DELETED':
      return match(e.object) ? { type: 'DELETED', object: e.object } : undefined;
    case 'MODIFIED': {
      const now = match(e.object);
      const before = e.prev !== undefined && match(e.prev);
      if (now && before) return { type: 'MODIFIED', object: e.object };
      if (now) return { type: 'ADDED', object: e.object };
      if (before) return { type: 'DELETED', object: e.object };
      return undefined;
    }
  }
}

export class WatchStream {
  /** lines not yet written while the watch is held (a stalled connection) */
  private held: string[] | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private unsubscribe: () => void = () => undefined;
  private closed = false;
  private endWhenReleased = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly resource: Resource,
    private readonly match: Matcher,
    onClose: () => void,
  ) {
    res.on('close', () => {
      this.closed = true;
      this.unsubscribe();
      for (const t of this.timers) clearTimeout(t);
      onClose();
    });
  }

  /** Replays `backlog`, then relays every later store event of this resource. */
  follow(store: Store, backlog: readonly StoredEvent[]): void {
    for (const e of backlog) this.relay(e);
    this.unsubscribe = store.subscribe((e) => this.relay(e));
  }

  send(type: WatchEventType, object: Record<string, unknown>): void {
    if (this.closed) return;
    const line = `${JSON.stringify({ type, object: type === 'ERROR' ? object : withKind(this.resource, object) })}\n`;
    if (this.held) this.held.push(line);
    else this.res.write(line);
  }

  /** An ERROR event, then the end of the stream: how the server refuses a watch it accepted. */
  fail(status: Record<string, unknown>): void {
    this.send('ERROR', status);
    this.end();
  }

  /**
   * Periodic bookmarks at the store's current version. None while held: a bookmark says
   * "you have seen everything up to here", which is false with events still queued.
   */
  bookmarkEvery(ms: number, rv: () => number): void {
    const t = setInterval(() => {
      if (!this.held) this.send('BOOKMARK', { metadata: { resourceVersion: String(rv()) } });
    }, ms);
    this.timers.push(t);
  }

  /**
   * `timeoutSeconds`: the server ends the watch cleanly, the client resumes from its last
   * version. Over a held (stalled) connection the end does not arrive either, until release.
   */
  endAfter(seconds: number): void {
    this.timers.push(setTimeout(() => (this.held ? (this.endWhenReleased = true) : this.end()), seconds * 1000));
  }

  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const lines = this.held ?? [];
    this.held = undefined;
    for (const l of lines) if (!this.closed) this.res.write(l);
    if (this.endWhenReleased) this.end();
  }

  /** Clean end: the chunked stream's terminator is sent (events still held are lost with it). */
  end(): void {
    this.held = undefined;
    if (this.closed) return;
    this.closed = true;
    this.res.end();
  }

  /** Abrupt end: the TCP connection is cut mid-stream, no terminator. */
  destroy(): void {
    this.held = undefined;
    this.res.socket?.destroy();
    this.res.destroy();
  }

  private relay(e: StoredEvent): void {
    if (e.kind !== this.resource.kind) return;
    const t = translate(e, this.match);
    if (t) this.send(t.type, t.object);
  }
}
