// The BPF filesystem that pinned programs, links and maps live in. nftproxy pins under
// /sys/fs/bpf/nftproxy; on a host where nothing mounted a bpffs at /sys/fs/bpf, it mounts
// one (`mount -t bpf bpf /sys/fs/bpf`) or fails with a message saying what to do.
import { execa } from 'execa';
import { mkdirSync, statfsSync } from 'node:fs';
import path from 'node:path';

export const BPF_FS_MAGIC = 0xcafe4a11;
export const DEFAULT_BPFFS = '/sys/fs/bpf';
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/nftproxy';

/** true when `p` exists and is on a bpffs. */
export function isBpffs(p: string): boolean {
  try {
    return statfsSync(p).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Make sure a bpffs is mounted at `mountPoint` (creating the directory if needed).
 * Returns whether this call mounted it.
 */
export async function ensureBpffs(mountPoint: string = DEFAULT_BPFFS): Promise<{ mounted: boolean }> {
  if (isBpffs(mountPoint)) return { mounted: false };
  try {
    mkdirSync(mountPoint, { recursive: true });
  } catch (e) {
    throw new Error(`cannot create ${mountPoint} for the BPF filesystem: ${(e as Error).message}`);
  }
  const r = await execa('mount', ['-t', 'bpf', 'bpf', mountPoint], { reject: false });
  if (r.exitCode !== 0 || !isBpffs(mountPoint)) {
    throw new Error(
      `no BPF filesystem at ${mountPoint} and mounting one failed (${String(r.stderr).trim() || `exit ${r.exitCode}`}); ` +
        `mount it yourself (mount -t bpf bpf ${mountPoint}; in a container: hostPath /sys/fs/bpf with mountPropagation) ` +
        `or run nftproxy with --bpf=off`,
    );
  }
  return { mounted: true };
}

/**
 * Ensure `pinDir` is a directory on a bpffs. If its parent is not on a bpffs, a bpffs is
 * mounted on the parent (the default: /sys/fs/bpf for /sys/fs/bpf/nftproxy).
 */
export async function ensurePinDir(pinDir: string = DEFAULT_PIN_DIR): Promise<{ mounted: string | null }> {
  const parent = path.dirname(path.resolve(pinDir));
  let mounted: string | null = null;
  if (!isBpffs(parent)) {
    if ((await ensureBpffs(parent)).mounted) mounted = parent;
  }
  mkdirSync(pinDir, { recursive: true });
  if (!isBpffs(pinDir)) throw new Error(`${pinDir} is not on a BPF filesystem`);
  return { mounted };
}

/** Unmount a bpffs this process mounted (pins in it are released). */
export async function unmountBpffs(mountPoint: string): Promise<void> {
  if (!isBpffs(mountPoint)) return;
  const r = await execa('umount', [mountPoint], { reject: false });
  if (r.exitCode !== 0) {
    const lazy = await execa('umount', ['-l', mountPoint], { reject: false });
    if (lazy.exitCode !== 0) throw new Error(`umount ${mountPoint} failed: ${String(r.stderr).trim()}`);
  }
}
