// The only place nftproxy runs `nft`. Argument arrays through execa, the transaction on
// stdin, a timeout, and a command prefix so tests (and `ip netns exec` deployments) can run
// it inside a network namespace. Text form: nft 1.0.6's JSON cannot declare the typeof
// maps the dnat layout needs, and `nft -j -f -` cannot read a socketpair stdin (ENXIO).
import { execa } from 'execa';

export interface NftResult { readonly exitCode: number; readonly stdout: string; readonly stderr: string }

export interface NftRunner {
  /** load a transaction (`nft -f -`); never throws for nft's own failures */
  load(text: string): Promise<NftResult>;
  /** any other nft invocation (list, --version) */
  run(args: readonly string[]): Promise<NftResult>;
}

export interface RunnerOptions {
  /** e.g. ['ip', 'netns', 'exec', 'NAME'] */
  readonly prefix?: readonly string[];
  readonly nftPath?: string;
  readonly timeoutMs?: number;
}

export function nftRunner(opts: RunnerOptions = {}): NftRunner {
  const prefix = opts.prefix ?? [];
  const nft = opts.nftPath ?? 'nft';
  const exec = async (args: readonly string[], input?: string): Promise<NftResult> => {
    const [file, ...rest] = [...prefix, nft, ...args];
    const r = await execa(file!, rest, { input, reject: false, timeout: opts.timeoutMs ?? 120_000, stripFinalNewline: false, maxBuffer: 1 << 30 });
    const failed = r.exitCode === undefined || r.exitCode === null;
    return {
      exitCode: failed ? -1 : r.exitCode!,
      stdout: String(r.stdout ?? ''),
      stderr: failed ? `${String(r.stderr ?? '')}${r.timedOut ? `nft timed out after ${opts.timeoutMs ?? 120_000} ms` : r.shortMessage ?? 'nft did not run'}` : String(r.stderr ?? ''),
    };
  };
  return { load: (text) => exec(['-f', '-'], text), run: (args) => exec(args) };
}

/** The oldest nft nftproxy is tested with; older parsers lack typeof maps with numgen keys. */
const MIN_NFT_VERSION = [1, 0, 6] as const;

export type VersionCheck = { ok: true; version: string } | { ok: false; message: string };

export async function checkNftVersion(runner: NftRunner): Promise<VersionCheck> {
  const need = MIN_NFT_VERSION.join('.');
  const r = await runner.run(['--version']);
  if (r.exitCode !== 0) return { ok: false, message: `nft not usable (${firstLine(r.stderr) || `exit ${r.exitCode}`}): nftproxy needs nftables >= ${need} (Debian/Ubuntu package "nftables")` };
  const m = /v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(r.stdout);
  if (!m) return { ok: false, message: `cannot read the nft version from "${firstLine(r.stdout)}": nftproxy needs nftables >= ${need}` };
  const have = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  const cmp = have.map((v, i) => v - MIN_NFT_VERSION[i]!).find((d) => d !== 0) ?? 0;
  if (cmp < 0) return { ok: false, message: `nft ${have.join('.')} is too old: nftproxy needs nftables >= ${need}` };
  return { ok: true, version: have.join('.') };
}

const firstLine = (s: string): string => s.split('\n')[0]!.trim();
