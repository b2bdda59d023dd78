// Flags + optional KubeProxyConfiguration file -> ProxyConfig. Flags override the file.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { type Cidr, type IP, parseCidr, parseIP, familyOf } from '../model/ip.js';
import type { NodePortAddresses, ProxyConfig } from '../model/config.js';
import type { Model } from '../model/types.js';
import { type Result, ok, err } from '../model/result.js';

export interface ConfigFlags {
  node?: string;
  config?: string;
  clusterCidr?: string;
  serviceCidr?: string;
  nodeportAddresses?: string;
  nodeIp?: string[];
  masqueradeAll?: boolean;
}

/** What the config file says, before the Node object is known. */
export interface BaseConfig {
  readonly nodeName: string;
  readonly nodeIPs: readonly IP[];
  readonly clusterCIDRs: readonly Cidr[];
  readonly serviceCIDRs: readonly Cidr[];
  readonly nodePortAddresses: NodePortAddresses;
  readonly masqueradeAll: boolean;
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

export async function loadBaseConfig(flags: ConfigFlags): Promise<Result<BaseConfig, string>> {
  let file: Record<string, unknown> = {};
  if (flags.config) {
    let text: string;
    try {
      text = await readFile(flags.config, 'utf8');
    } catch (e) {
      return err(`--config ${flags.config}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    try {
      const v: unknown = parseYaml(text);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return err(`--config ${flags.config}: not a KubeProxyConfiguration object`);
      file = v as Record<string, unknown>;
    } catch (e) {
      const line = (e as { linePos?: { line: number }[] }).linePos?.[0]?.line;
      return err(`--config ${flags.config}${line ? `:${line}` : ''}: YAML syntax error: ${(e as Error).message.split('\n')[0]}`);
    }
    if (file.kind !== undefined && file.kind !== 'KubeProxyConfiguration') return err(`--config ${flags.config}: kind ${String(file.kind)} is not KubeProxyConfiguration`);
    const mode = file.detectLocalMode;
    if (mode !== undefined && mode !== '' && mode !== 'ClusterCIDR') {
      return err(`--config ${flags.config}: detectLocalMode ${String(mode)} is not supported; nftproxy detects pod traffic by clusterCIDR`);
    }
  }
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
  const masq = flags.masqueradeAll ?? (file.masqueradeAll === true);
  return ok({ nodeName, nodeIPs, clusterCIDRs: clusterCIDRs.value, serviceCIDRs: serviceCIDRs.value, nodePortAddresses: npa.value, masqueradeAll: masq });
}

/** Fill in what only the Node object knows: addresses (when no --node-ip) and labels. */
export function resolveConfig(base: BaseConfig, model: Model, proxyName = 'nftproxy'): { config: ProxyConfig; notes: string[] } {
  const node = model.nodes.get(base.nodeName);
  const notes: string[] = [];
  let nodeIPs = base.nodeIPs;
  if (nodeIPs.length === 0) {
    nodeIPs = node?.addresses ?? [];
    if (!node) notes.push(`node ${base.nodeName} is not among the inputs and no --node-ip was given: NodePorts have no address to listen on`);
  }
  // Primary first per family: keep the order given, grouped so each family's first wins.
  const ordered = [...nodeIPs.filter((ip) => familyOf(ip) === 'ipv4'), ...nodeIPs.filter((ip) => familyOf(ip) === 'ipv6')];
  return {
    config: { ...base, nodeIPs: ordered, nodeLabels: node?.labels ?? {}, proxyName },
    notes,
  };
}
