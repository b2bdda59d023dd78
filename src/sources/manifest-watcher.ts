// A directory of manifests as a live source for `nftproxy run --manifests DIR`.
//
// Every file keeps its last good content: a file that is half-written, does not parse, or
// holds an object nftproxy refuses is logged and ignored until it is fixed, so an editor
// saving in two steps never takes services away. fs.watch (recursive) says when to look;
// a slow stat-only poll catches what inotify can miss (a directory swapped in place).
import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { SourceObject } from '../model/build-model.js';
import { buildModel } from '../model/build-model.js';
import { formatDiagnostic } from '../model/diagnostic.js';
import { formatManifestError, listManifestFiles, parseManifest } from './manifests.js';

interface FileState {
  /** stat signature of the content last read (good or bad), to read each version once */
  readonly seen: string;
  /** objects of the last version that was good; undefined if no version ever was */
  readonly good: readonly SourceObject[] | undefined;
}

export interface WatchLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface ManifestWatcherOptions {
  readonly pollMs?: number;
  readonly debounceMs?: number;
}

export class ManifestWatcher {
  private files = new Map<string, FileState>();
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private scanning: Promise<void> = Promise.resolve();
  private stopped = false;
  /** errors of the current version of each bad file (for status and tests) */
  readonly badFiles = new Map<string, string>();

  constructor(
    private readonly root: string,
    private readonly onChange: () => void,
    private readonly log: WatchLog,
    private readonly opts: ManifestWatcherOptions = {},
  ) {}

  /** Reads everything once; throws when the root itself cannot be read. */
  async start(): Promise<void> {
    const listed = await listManifestFiles(this.root);
    if (!listed.ok) throw new Error(formatManifestError(listed.error));
    await this.rescan();
    this.watcher = watch(this.root, { recursive: true }, () => this.kick());
    this.watcher.on('error', (e) => this.log.error('watching manifests failed; polling continues', { dir: this.root, err: String(e) }));
    this.poll = setInterval(() => this.kick(), this.opts.pollMs ?? 5_000);
    this.poll.unref();
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
  }

  /** Every object of every file's last good version, in file order. */
  snapshot(): SourceObject[] {
    return [...this.files.keys()].sort().flatMap((f) => this.files.get(f)!.good ?? []);
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.scanning = this.scanning.then(() => this.rescan()).catch((e) => this.log.error('reading manifests failed', { err: String(e) }));
    }, this.opts.debounceMs ?? 30);
  }

  private async rescan(): Promise<void> {
    const listed = await listManifestFiles(this.root);
    if (!listed.ok) {
      this.log.error('manifest directory unreadable; keeping the last good state', { error: formatManifestError(listed.error) });
      return;
    }
    let changed = false;
    const present = new Set(listed.value);
    for (const f of [...this.files.keys()]) {
      if (present.has(f)) continue;
      if (this.files.get(f)!.good?.length) changed = true;
      this.files.delete(f);
      this.badFiles.delete(f);
      this.log.info('manifest removed', { file: f });
    }
    for (const f of listed.value) {
      let sig: string;
      try {
        const st = await stat(f);
        sig = `${st.ino}:${st.size}:${st.mtimeMs}`;
      } catch {
        continue; // removed between listing and stat: the next scan drops it
      }
      const prev = this.files.get(f);
      if (prev?.seen === sig) continue;
      const result = await this.readGood(f);
      if (result.ok) {
        this.files.set(f, { seen: sig, good: result.objects });
        if (this.badFiles.delete(f)) this.log.info('manifest fixed', { file: f });
        changed = true;
      } else {
        this.files.set(f, { seen: sig, good: prev?.good });
        this.badFiles.set(f, result.error);
        this.log.error('manifest rejected; keeping its last good version', { file: f, error: result.error, kept: prev?.good !== undefined });
      }
    }
    if (changed && !this.stopped) this.onChange();
  }

  private async readGood(file: string): Promise<{ ok: true; objects: SourceObject[] } | { ok: false; error: string }> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      return { ok: false, error: `${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
    }
    const parsed = parseManifest(text, file);
    if (!parsed.ok) return { ok: false, error: formatManifestError(parsed.error) };
    // An object the model refuses on its own (not a conflict with another file) means the
    // file is not finished or not right: keep the version that was.
    const own = buildModel(parsed.value).diagnostics.filter((d) => d.code !== 'nodeport-conflict' && d.code !== 'address-conflict' && d.code !== 'duplicate-object');
    if (own.length) return { ok: false, error: own.map((d) => `${file}: ${formatDiagnostic(d)}`).join('; ') };
    return { ok: true, objects: parsed.value };
  }
}
