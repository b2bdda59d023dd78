// What the bench needs on the machine; installs what is missing (Debian packages `time`,
// `iptables`, `build-essential`) and builds the C client and server.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { must, run } from '../sys.js';
import type { Ctx } from '../results.js';

/** Is `cmd` an executable on PATH (no shell involved)? */
async function have(cmd: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    try { accessSync(join(dir, cmd), constants.X_OK); return true; } catch { /* next */ }
  }
  return false;
}

async function aptInstall(pkgs: string[]): Promise<string> {
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  let r = await run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...pkgs], { env, timeoutMs: 600_000 });
  if (r.exitCode !== 0) {
    await run(['apt-get', 'update', '-qq'], { env, timeoutMs: 600_000 });
    r = await run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...pkgs], { env, timeoutMs: 600_000 });
  }
  if (r.exitCode !== 0) throw new Error(`apt-get install ${pkgs.join(' ')} failed: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
  return `installed ${pkgs.join(' ')}`;
}

export async function toolsPhase(ctx: Ctx): Promise<void> {
  const { progress } = ctx;
  progress.phase('tools', 'Tools');
  await progress.step('root, nft, ip, conntrack, product build', async () => {
    if (process.getuid?.() !== 0) throw new Error('the bench runs as root (it creates network namespaces)');
    for (const c of ['nft', 'ip', 'conntrack']) if (!(await have(c))) throw new Error(`${c} is missing: run make deps`);
    if (!existsSync(join(ctx.repo, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run make build');
  });
  await progress.step('/usr/bin/time (peak RSS of loaders)', async () => (existsSync('/usr/bin/time') ? 'present' : aptInstall(['time'])), (s) => s);
  await progress.step('cc (client and server)', async () => ((await have('cc')) ? 'present' : aptInstall(['build-essential'])), (s) => s);
  await progress.step('iptables-restore (legacy and nft backends)', async () => {
    if ((await have('iptables-legacy-restore')) && (await have('iptables-nft-restore'))) return 'present';
    return aptInstall(['iptables']);
  }, (s) => s);
  await progress.step('build bench/c', async () => {
    const out = join(ctx.repo, 'bench', 'dist', 'bin');
    await mkdir(out, { recursive: true });
    const bins = { connbench: join(out, 'connbench'), httpd: join(out, 'httpd') };
    for (const [name, path] of Object.entries(bins)) await must(['cc', '-O2', '-Wall', '-o', path, join(ctx.repo, 'bench', 'c', `${name}.c`)]);
    ctx.bins = bins;
    return Object.keys(bins).join(', ');
  }, (s) => s);

  // drop loaders whose tool is missing after all
  for (const [id, bin] of [['kp-iptables-legacy', 'iptables-legacy-restore'], ['kp-iptables-nft', 'iptables-nft-restore']] as const) {
    if (!(await have(bin))) {
      const i = ctx.loaders.findIndex((l) => l.id === id);
      if (i >= 0) ctx.loaders.splice(i, 1);
      ctx.results.notes.push(`${id}: skipped, ${bin} is not available.`);
    }
  }
  const first = (s: string): string => s.split('\n')[0]!.trim();
  const host = ctx.results.meta.host;
  host.kernel = release();
  host.cpus = `${cpus().length} × ${cpus()[0]?.model ?? '?'}`;
  host.memory = `${(totalmem() / 2 ** 30).toFixed(1)} GiB`;
  host.node = process.version;
  host.nft = first((await run(['nft', '--version'])).stdout);
  for (const b of ['iptables-legacy', 'iptables-nft']) {
    const r = await run([b, '--version']);
    if (r.exitCode === 0) host[b] = first(r.stdout);
  }
  host.loadavgAtStart = readFileSync('/proc/loadavg', 'utf8').trim();
}
