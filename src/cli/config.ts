// Flags + optional KubeProxyConfiguration file -> BaseConfig (model/config.ts resolves it
// against the Node object into a ProxyConfig). Flags override the file.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { type Cidr, type IP, parseCidr, parseIP } from '../model/ip.js';
import { type BaseConfig, type NodePortAddresses, parseIPFamilies } from '../model/config.js';
import { type Result, ok, err } from '../model/result.js';
import { parseDuration } from './duration.js';

export interface ConfigFlags {
  node?: string;
  config?: string;
  clusterCidr?: string;
  serviceCidr?: string;
  nodeportAddresses?: string;
  nodeIp?: string[];
  masqueradeAll?: boolean;
  /** ipv4, ipv6 or dual */
  ipFamilies?: string;
}

function cidrList(text: string, what: string): Result<Cidr[], string> {
  const out: Cidr[] = [];
  for (const part of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const c = parseCidr(part);
    if (!c.ok) return err(`${what}: ${c.error}`);
    out.push(c.value);
  }
  return ok(out);
}

function nodePortAddresses(items: string[], what: string): Result<NodePortAddresses, string> {
  if (items.length === 0 || (items.length === 1 && items[0] === 'primary')) return ok({ kind: 'primary' });
  const c = cidrList(items.join(','), what);
  return c.ok ? ok({ kind: 'cidrs', cidrs: c.value }) : c;
}

/** What `run` needs beyond the ruleset's inputs; flags override the file, the file the defaults. */
export interface DaemonSettings {
  readonly kubeconfig: string | undefined;
  readonly healthzBindAddress: string;
  readonly metricsBindAddress: string;
  readonly syncPeriod: string;
  readonly minSyncPeriod: string;
}

export interface DaemonFlags {
  kubeconfig?: string;
  healthzBindAddress?: string;
  metricsBindAddress?: string;
  syncPeriod?: string;
  minSyncPeriod?: string;
}

const DAEMON_DEFAULTS = { healthzBindAddress: '0.0.0.0:10256', metricsBindAddress: '127.0.0.1:10249', syncPeriod: '1h', minSyncPeriod: '1s' } as const;

// The KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) fields nftproxy reads, and
// the ones it accepts and ignores because they have no meaning here. Anything else is an
// error naming the field, as kube-proxy's strict decoding does.
const READ = new Set(['apiVersion', 'kind', 'hostnameOverride', 'clusterCIDR', 'nodePortAddresses', 'masqueradeAll', 'detectLocalMode', 'healthzBindAddress', 'metricsBindAddress', 'syncPeriod', 'minSyncPeriod', 'clientConnection', 'nftables', 'mode']);
const IGNORED = new Set(['bindAddress', 'bindAddressHardFail', 'conntrack', 'iptables', 'ipvs', 'winkernel', 'featureGates', 'configSyncPeriod', 'portRange', 'oomScoreAdj', 'showHiddenMetricsForVersion', 'enableProfiling', 'logging', 'detectLocal', 'windowsRunAsService', 'linux']);

interface ConfigFile {
  readonly raw: Record<string, unknown>;
  readonly path: string | undefined;
}

async function readConfigFile(path: string | undefined): Promise<Result<ConfigFile, string>> {
  if (!path) return ok({ raw: {}, path });
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    return err(`--config ${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let file: Record<string, unknown>;
  try {
    const v: unknown = parseYaml(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return err(`--config ${path}: not a KubeProxyConfiguration object`);
    file = v as Record<string, unknown>;
  } catch (e) {
    const line = (e as { linePos?: { line: number }[] }).linePos?.[0]?.line;
    return err(`--config ${path}${line ? `:${line}` : ''}: YAML syntax error: ${(e as Error).message.split('\n')[0]}`);
  }
  const where = `--config ${path}`;
  if (file.kind !== undefined && file.kind !== 'KubeProxyConfiguration') return err(`${where}: kind ${String(file.kind)} is not KubeProxyConfiguration`);
  if (file.apiVersion !== undefined && file.apiVersion !== 'kubeproxy.config.k8s.io/v1alpha1') return err(`${where}: apiVersion ${String(file.apiVersion)} is not kubeproxy.config.k8s.io/v1alpha1`);
  for (const k of Object.keys(file)) if (!READ.has(k) && !IGNORED.has(k)) return err(`${where}: unknown field "${k}"`);
  const mode = file.detectLocalMode;
  if (mode !== undefined && mode !== '' && mode !== 'ClusterCIDR') {
    return err(`${where}: detectLocalMode ${String(mode)} is not supported; nftproxy detects pod traffic by clusterCIDR`);
  }
  for (const k of ['clientConnection', 'nftables'] as const) {
    if (file[k] !== undefined && (typeof file[k] !== 'object' || file[k] === null || Array.isArray(file[k]))) return err(`${where}: ${k} must be an object`);
  }
  const nft = (file.nftables ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(nft)) if (!['masqueradeAll', 'masqueradeBit', 'syncPeriod', 'minSyncPeriod'].includes(k)) return err(`${where}: unknown field "nftables.${k}"`);
  if (nft.masqueradeBit !== undefined && nft.masqueradeBit !== 14) return err(`${where}: nftables.masqueradeBit ${String(nft.masqueradeBit)}: nftproxy uses bit 14 (mark 0x4000), as kube-proxy's default`);
  for (const k of ['masqueradeAll'] as const) {
    for (const [v, name] of [[file[k], k], [nft[k], `nftables.${k}`]] as const) if (v !== undefined && typeof v !== 'boolean') return err(`${where}: ${name} must be true or false`);
  }
  for (const [v, name] of [[file.syncPeriod, 'syncPeriod'], [file.minSyncPeriod, 'minSyncPeriod'], [nft.syncPeriod, 'nftables.syncPeriod'], [nft.minSyncPeriod, 'nftables.minSyncPeriod']] as const) {
    if (v !== undefined && (typeof v !== 'string' || parseDuration(v) === undefined)) return err(`${where}: ${name} ${JSON.stringify(v)} is not a duration (e.g. 1s, 30m, 1h)`);
  }
  for (const name of ['healthzBindAddress', 'metricsBindAddress', 'hostnameOverride', 'clusterCIDR', 'mode'] as const) {
    if (file[name] !== undefined && typeof file[name] !== 'string') return err(`${where}: ${name} must be a string`);
  }
  const cc = (file.clientConnection ?? {}) as Record<string, unknown>;
  if (cc.kubeconfig !== undefined && typeof cc.kubeconfig !== 'string') return err(`${where}: clientConnection.kubeconfig must be a string`);
  return ok({ raw: file, path });
}

export async function loadBaseConfig(flags: ConfigFlags): Promise<Result<BaseConfig, string>> {
  const f = await readConfigFile(flags.config);
  return f.ok ? baseConfigFrom(flags, f.value) : f;
}

/** The full configuration of `run`: the ruleset's inputs and the daemon's own settings. */
export async function loadRunConfig(flags: ConfigFlags & DaemonFlags): Promise<Result<{ base: BaseConfig; daemon: DaemonSettings }, string>> {
  const f = await readConfigFile(flags.config);
  if (!f.ok) return f;
  const base = baseConfigFrom(flags, f.value);
  if (!base.ok) return base;
  const file = f.value.raw;
  const nft = (file.nftables ?? {}) as Record<string, string | undefined>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const daemon: DaemonSettings = {
    kubeconfig: flags.kubeconfig ?? (str(((file.clientConnection ?? {}) as Record<string, unknown>).kubeconfig) || undefined),
    healthzBindAddress: flags.healthzBindAddress ?? str(file.healthzBindAddress) ?? DAEMON_DEFAULTS.healthzBindAddress,
    metricsBindAddress: flags.metricsBindAddress ?? str(file.metricsBindAddress) ?? DAEMON_DEFAULTS.metricsBindAddress,
    syncPeriod: flags.syncPeriod ?? str(file.syncPeriod) ?? nft.syncPeriod ?? DAEMON_DEFAULTS.syncPeriod,
    minSyncPeriod: flags.minSyncPeriod ?? str(file.minSyncPeriod) ?? nft.minSyncPeriod ?? DAEMON_DEFAULTS.minSyncPeriod,
  };
  return ok({ base: base.value, daemon });
}

function baseConfigFrom(flags: ConfigFlags, f: ConfigFile): Result<BaseConfig, string> {
  const file = f.raw;
  const str = (k: string): string | undefined => (typeof file[k] === 'string' ? (file[k] as string) : undefined);

  const nodeName = flags.node ?? str('hostnameOverride');
  if (!nodeName) return err('--node is required (or hostnameOverride in --config): it names this node for eTP/iTP Local and topology');

  const clusterText = flags.clusterCidr ?? str('clusterCIDR') ?? '';
  const clusterCIDRs = cidrList(clusterText, flags.clusterCidr !== undefined ? '--cluster-cidr' : 'clusterCIDR');
  if (!clusterCIDRs.ok) return clusterCIDRs;
  const serviceCIDRs = cidrList(flags.serviceCidr ?? '', '--service-cidr');
  if (!serviceCIDRs.ok) return serviceCIDRs;

  let npa: Result<NodePortAddresses, string>;
  if (flags.nodeportAddresses !== undefined) npa = nodePortAddresses(flags.nodeportAddresses.split(',').map((s) => s.trim()).filter(Boolean), '--nodeport-addresses');
  else {
    const v = file.nodePortAddresses;
    if (v !== undefined && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) return err('nodePortAddresses in --config must be a list of CIDRs or ["primary"]');
    npa = nodePortAddresses((v as string[] | undefined) ?? [], 'nodePortAddresses');
  }
  if (!npa.ok) return npa;

  const nodeIPs: IP[] = [];
  for (const text of flags.nodeIp ?? []) {
    for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
      const ip = parseIP(part);
      if (!ip.ok) return err(`--node-ip: ${ip.error}`);
      if (!nodeIPs.includes(ip.value)) nodeIPs.push(ip.value);
    }
  }
  const masq = flags.masqueradeAll ?? (file.masqueradeAll === true || (file.nftables as Record<string, unknown> | undefined)?.masqueradeAll === true);
  const fams = flags.ipFamilies === undefined ? undefined : parseIPFamilies(flags.ipFamilies);
  if (fams && !fams.ok) return fams;
  return ok({ nodeName, nodeIPs, clusterCIDRs: clusterCIDRs.value, serviceCIDRs: serviceCIDRs.value, nodePortAddresses: npa.value, masqueradeAll: masq, ...(fams ? { ipFamilies: fams.value } : {}) });
}
