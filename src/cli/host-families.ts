// Which IP families this host's network namespace carries: what `run` compiles when
// --ip-families is not given. IPv4 always; IPv6 when the kernel has it and it is not switched
// off. kube-proxy runs both families wherever the host supports both, whatever addresses its
// Node object lists (cmd/kube-proxy/app/server.go); this is the one place nftproxy asks.
import { access, readFile } from 'node:fs/promises';
import { DUAL_STACK, type IPFamilies } from '../model/config.js';

export interface HostFamilies {
  readonly ipFamilies: IPFamilies;
  /** why, for the start log line */
  readonly why: string;
}

/**
 * Both files are per network namespace: /proc/net is the reader's namespace and
 * /proc/sys/net the one the reader opened it in, so run inside a namespace this answers for it.
 * procRoot is a parameter so a test can point it at a directory laid out the same way.
 */
export async function hostIPFamilies(procRoot = '/proc'): Promise<HostFamilies> {
  // No if_inet6: the kernel has no IPv6 (built without it, or booted with ipv6.disable=1).
  try {
    await access(`${procRoot}/net/if_inet6`);
  } catch {
    return { ipFamilies: ['ipv4'], why: `${procRoot}/net/if_inet6 is absent: the kernel has no IPv6` };
  }
  let disabled: string;
  try {
    disabled = (await readFile(`${procRoot}/sys/net/ipv6/conf/all/disable_ipv6`, 'utf8')).trim();
  } catch (e) {
    return { ipFamilies: ['ipv4'], why: `cannot read ${procRoot}/sys/net/ipv6/conf/all/disable_ipv6 (${(e as NodeJS.ErrnoException).code ?? String(e)}): IPv6 taken as off` };
  }
  if (disabled !== '0') return { ipFamilies: ['ipv4'], why: `net.ipv6.conf.all.disable_ipv6 is ${disabled}: IPv6 is switched off in this network namespace` };
  return { ipFamilies: DUAL_STACK, why: 'IPv6 is enabled in this network namespace' };
}
