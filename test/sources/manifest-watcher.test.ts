// The manifest directory as a live source: every way tools write files is seen by the
// directory watches alone. The poll is set to an hour here, so a change the watches miss is
// never observed and the wait for it fails.
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventually, sleep } from '../support/eventually.js';
import { ManifestWatcher } from '../../src/sources/manifest-watcher.js';

const NO_POLL = { pollMs: 3_600_000 };

const svc = (name: string, port: number): string => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: lab }
spec: { clusterIP: 10.96.0.10, ports: [{ name: http, port: ${port} }] }
`;

/** port of each Service in the snapshot, by name */
const ports = (w: ManifestWatcher): Record<string, number> =>
  Object.fromEntries(w.snapshot().map(({ object }) => {
    const o = object as { metadata: { name: string }; spec: { ports: { port: number }[] } };
    return [o.metadata.name, o.spec.ports[0]!.port];
  }));


/**
 * What editors and config tools do: write a temporary file next to it, rename it over.
 * Synchronously, as another process would: no turn of this event loop between the two steps
 * (given one, Node's recursive watch can pick up the temporary file and follow its inode).
 */
function replaceByRename(file: string, text: string): void {
  const tmp = `${file}.tmp`; // one temporary name, as many tools use
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

interface Logged { msg: string; fields: Record<string, unknown> | undefined }

let dir: string;
let changes: number;
let logs: Logged[];
let watchers: ManifestWatcher[];

function startWatcher(root = dir): Promise<ManifestWatcher> {
  const log = { info: (msg: string, fields?: Record<string, unknown>) => void logs.push({ msg, fields }), error: (msg: string, fields?: Record<string, unknown>) => void logs.push({ msg, fields }) };
  const w = new ManifestWatcher(root, () => changes++, log, NO_POLL);
  watchers.push(w);
  return w.start().then(() => w);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nftproxy-watch-'));
  changes = 0;
  logs = [];
  watchers = [];
});
afterEach(async () => {
  for (const w of watchers) w.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('ManifestWatcher sees every change through its directory watches', () => {
  it('a file replaced by rename 20 times: 20 changes, each with its content', async () => {
    await writeFile(join(dir, 'web.yaml'), svc('web', 1000));
    const w = await startWatcher();
    expect(ports(w)).toEqual({ web: 1000 });
    for (let i = 1; i <= 20; i++) {
      replaceByRename(join(dir, 'web.yaml'), svc('web', 1000 + i));
      await eventually(() => changes === i, `rename ${i}`);
      expect(ports(w)).toEqual({ web: 1000 + i });
    }
    await sleep(100);
    expect(changes).toBe(20);
    expect(logs.filter((l) => l.msg === 'manifest changed').map((l) => l.fields)).toEqual(Array.from({ length: 20 }, () => ({ file: join(dir, 'web.yaml'), by: 'watch' })));
   }, 30_000);

  it.each([
    ['written in place', (f: string, text: string) => writeFile(f, text)],
    ['replaced by rename', replaceByRename],
  ])('a file in a subdirectory created after start, %s', async (_how, write) => {
    const w = await startWatcher();
    expect(w.watchedDirs()).toEqual([dir]);
    const deep = join(dir, 'team-a', 'prod');
    await mkdir(deep, { recursive: true });
    await writeFile(join(deep, 'api.yaml'), svc('api', 80)); // at once: maybe before its watch
    await eventually(() => changes === 1, 'the new file');
    expect(w.watchedDirs()).toEqual([dir, join(dir, 'team-a'), deep]);
    for (let i = 1; i <= 3; i++) {
      await write(join(deep, 'api.yaml'), svc('api', 80 + i));
      await eventually(() => changes === 1 + i, `change ${i}`);
      expect(ports(w)).toEqual({ api: 80 + i });
    }
  });

  it('a subdirectory replaced by another directory under the same name is watched afresh', async () => {
    await mkdir(join(dir, 'conf'));
    await writeFile(join(dir, 'conf', 'web.yaml'), svc('web', 80));
    const w = await startWatcher();
    const next = join(dir, '.conf-next');
    await mkdir(next);
    await writeFile(join(next, 'web.yaml'), svc('web', 81));
    await rm(join(dir, 'conf'), { recursive: true });
    await rename(next, join(dir, 'conf'));
    await eventually(() => ports(w).web === 81, 'the new directory');
    const seen = changes;
    replaceByRename(join(dir, 'conf', 'web.yaml'), svc('web', 82));
    await eventually(() => changes > seen && ports(w).web === 82, 'a change inside it');
  });

  it('a ConfigMap volume: the ..data symlink swapped for a new version is seen', async () => {
    // How the kubelet updates a mounted ConfigMap: a new hidden directory, a new ..data link
    // renamed over the old one; the visible files are links through ..data.
    const version = (n: number): void => {
      mkdirSync(join(dir, `..v${n}`));
      writeFileSync(join(dir, `..v${n}`, 'web.yaml'), svc('web', 80 + n));
      symlinkSync(`..v${n}`, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    version(0);
    symlinkSync(join('..data', 'web.yaml'), join(dir, 'web.yaml'));
    const w = await startWatcher();
    expect(ports(w)).toEqual({ web: 80 });
    for (let n = 1; n <= 3; n++) {
      version(n);
      rmSync(join(dir, `..v${n - 1}`), { recursive: true });
      await eventually(() => changes === n, `version ${n}`);
      expect(ports(w)).toEqual({ web: 80 + n });
    }
  });

  it('removed files and directories take their objects with them', async () => {
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'web.yaml'), svc('web', 80));
    await writeFile(join(dir, 'sub', 'db.yaml'), svc('db', 5432));
    const w = await startWatcher();
    expect(ports(w)).toEqual({ web: 80, db: 5432 });
    await rm(join(dir, 'sub'), { recursive: true });
    await eventually(() => changes === 1, 'the removed directory');
    expect(ports(w)).toEqual({ web: 80 });
    expect(w.watchedDirs()).toEqual([dir]);
    await rm(join(dir, 'web.yaml'));
    await eventually(() => changes === 2, 'the removed file');
    expect(ports(w)).toEqual({});
  });

  it('a single file given as the root: renames over it are seen', async () => {
    const file = join(dir, 'all.yaml');
    await writeFile(file, svc('web', 80));
    const w = await startWatcher(file);
    for (let i = 1; i <= 5; i++) {
      replaceByRename(file, svc('web', 80 + i));
      await eventually(() => changes === i, `rename ${i}`);
      expect(ports(w)).toEqual({ web: 80 + i });
    }
    // Other files next to it are not read.
    await writeFile(join(dir, 'other.yaml'), svc('other', 1));
    await sleep(150);
    expect(ports(w)).toEqual({ web: 85 });
    expect(changes).toBe(5);
   }, 30_000);

  it('tells what changed since a version: the changed file\'s old objects as before, its new ones as after; each version once', async () => {
    await writeFile(join(dir, 'web.yaml'), svc('web', 80));
    await writeFile(join(dir, 'db.yaml'), svc('db', 5432));
    const w = await startWatcher();
    // no version yet: nothing to tell, compare snapshots
    const first = w.changesSince(undefined);
    expect(first.changes).toBeUndefined();
    const before = w.snapshot().find((o) => (o.object as { metadata: { name: string } }).metadata.name === 'web')!;
    replaceByRename(join(dir, 'web.yaml'), svc('web', 81));
    await eventually(() => changes === 1, 'the edit');
    const told = w.changesSince(first.version);
    expect(told.version).toBeGreaterThan(first.version);
    expect(told.changes).toHaveLength(2);
    expect(told.changes![0]!.before).toBe(before); // the very object handed out before
    const after = told.changes![1]!.after!;
    expect(w.snapshot()).toContain(after);
    expect(ports(w)).toEqual({ web: 81, db: 5432 });
    // asked again from the new version: nothing; from the old one: forgotten (one consumer)
    expect(w.changesSince(told.version).changes).toEqual([]);
    await rm(join(dir, 'db.yaml'));
    await eventually(() => changes === 2, 'the removal');
    const gone = w.changesSince(told.version);
    expect(gone.changes!.map((c) => [c.before ? 'before' : '', c.after ? 'after' : ''].join(''))).toEqual(['before']);
    // a version older than what was taken in cannot be told any more
    expect(w.changesSince(first.version).changes).toBeUndefined();
  });

  it('a file rejected keeps its last good version and tells nothing', async () => {
    await writeFile(join(dir, 'web.yaml'), svc('web', 80));
    const w = await startWatcher();
    const v = w.changesSince(undefined).version;
    replaceByRename(join(dir, 'web.yaml'), 'kind: Service\nmetadata: { name: [\n');
    await eventually(() => logs.some((l) => l.msg === 'manifest rejected; keeping its last good version'), 'the rejection');
    expect(w.changesSince(v)).toEqual({ version: v, changes: [] });
  });
});
