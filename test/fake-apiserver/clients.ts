// Test helpers to drive the fake with real clients: kubectl (a child process with its own
// kubeconfig and discovery cache) and plain HTTP for the wire-level checks.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { type FakeApiServer, TEST_CA } from './server.js';

// NFTPROXY_KUBECTL picks another kubectl (e.g. Debian's kubernetes-client 1.20 next to a newer one).
export const KUBECTL = process.env.NFTPROXY_KUBECTL ?? '/usr/bin/kubectl';
export const haveKubectl = existsSync(KUBECTL);

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A scratch directory with the fake's kubeconfig, and kubectl runs against it. */
export class Kubectl {
  private readonly dir = mkdtempSync(join(tmpdir(), 'fake-kubectl-'));
  readonly kubeconfig = join(this.dir, 'kubeconfig');

  constructor(fake: FakeApiServer) {
    writeFileSync(this.kubeconfig, fake.kubeconfig());
  }

  private argv(args: readonly string[]): string[] {
    // Own discovery cache: kubectl otherwise shares ~/.kube/cache between servers by host:port.
    return ['--kubeconfig', this.kubeconfig, '--cache-dir', join(this.dir, 'cache'), ...args];
  }

  run(args: readonly string[]): Promise<Run> {
    return new Promise((resolve) => {
      execFile(KUBECTL, this.argv(args), { timeout: 10_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** A long-running kubectl (--watch): its output so far, and a way to wait for more. */
  spawn(args: readonly string[]): { proc: ChildProcess; output: () => string; waitFor: (pred: (out: string) => boolean, ms?: number) => Promise<string>; kill: () => void } {
    const proc = spawn(KUBECTL, this.argv(args), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', () => undefined);
    const waitFor = async (pred: (o: string) => boolean, ms = 8000): Promise<string> => {
      const until = Date.now() + ms;
      while (!pred(out)) {
        if (Date.now() > until) throw new Error(`kubectl output never matched; got:\n${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      return out;
    };
    return { proc, output: () => out, waitFor, kill: () => void proc.kill('SIGTERM') };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Concatenated JSON documents (kubectl -w -o json prints one per event) as values. */
export function jsonStream(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}') {
      if (--depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return out;
}

/** GET over HTTP or HTTPS (trusting the test CA), as a stream. */
function get(url: string, signal?: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsGet : httpGet)(url, { ca: TEST_CA, signal }, resolve);
    req.on('error', reject);
  });
}

export async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await get(url);
  let text = '';
  for await (const chunk of r) text += String(chunk);
  return { status: r.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> };
}

export interface WatchEvent {
  type: string;
  object: Record<string, unknown> & { metadata?: { name?: string; resourceVersion?: string } };
}

/**
 * Opens a watch over HTTP and collects its events; `until` resolves when a predicate over
 * the events holds, `ended` when the server ends the stream.
 */
export function openWatch(url: string): {
  events: WatchEvent[];
  until: (pred: (ev: WatchEvent[]) => boolean, ms?: number) => Promise<WatchEvent[]>;
  ended: Promise<'clean' | 'error'>;
  status: Promise<number>;
  close: () => void;
} {
  const events: WatchEvent[] = [];
  const ac = new AbortController();
  let statusResolve!: (n: number) => void;
  const status = new Promise<number>((r) => (statusResolve = r));
  const ended = (async (): Promise<'clean' | 'error'> => {
    try {
      const r = await get(url, ac.signal);
      statusResolve(r.statusCode ?? 0);
      let buf = '';
      let clean = true;
      r.on('aborted', () => { clean = false; });
      for await (const chunk of r) {
        buf += String(chunk);
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) events.push(JSON.parse(line) as WatchEvent);
        }
      }
      return clean && r.complete ? 'clean' : 'error';
    } catch {
      statusResolve(0);
      return 'error';
    }
  })();
  const until = async (pred: (ev: WatchEvent[]) => boolean, ms = 3000): Promise<WatchEvent[]> => {
    const deadline = Date.now() + ms;
    while (!pred(events)) {
      if (Date.now() > deadline) throw new Error(`watch never matched; got ${JSON.stringify(events.map((e) => [e.type, e.object.metadata?.name]))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return events;
  };
  return { events, until, ended, status, close: () => ac.abort() };
}
