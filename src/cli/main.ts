// nftproxy CLI. Data goes to stdout, messages to stderr.
// Exit codes: 0 ok; 1 objects were skipped and --strict was given; 2 bad usage or input.
import { Command, CommanderError, Option } from 'commander';
import { renderText } from '../render/nft-text.js';
import { renderJson } from '../render/nft-json.js';
import { bpfKeptSources, bpfServices } from '../compile/bpf-coverage.js';
import { renderBpfText } from '../render/bpf-entries.js';
import { trace, type Trace } from '../trace/trace.js';
import { formatTrace } from '../trace/format.js';
import { type Loaded, UsageError } from './load-inputs.js';
import { type LiveOpts, askDaemon, loadLive, printDaemonDiagnostics, sourceOf, usage } from './live-inputs.js';
import { DEFAULT_SOCKET } from '../daemon/inspect-server.js';
import { parsePacket } from '../trace/packet.js';
import { runVerify } from './verify.js';
import { runTrace } from './trace.js';
import type { ConfigFlags } from './config.js';
import { type RunOptions, runDaemon } from './run.js';
import { kubernetesSourceFactory } from './kubernetes-source.js';
import { Applier } from '../apply/applier.js';
import { NetlinkWriter } from '../apply/netlink/writer.js';
import { BPF_INCOMPLETE, BPF_VIEW_HELP, bpfCleanup, bpfStatusSection } from './bpf-commands.js';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const defaultIo: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Where the objects come from: -f, --kubeconfig, or (neither) the daemon's socket (live-inputs.ts). */
function sourceOptions(cmd: Command): Command {
  return configOptions(cmd.option('-f, --filename <path>', 'manifest file or directory (YAML/JSON, multi-document, kind: List); repeatable. Without -f and --kubeconfig: the daemon\'s socket', collect, []))
    .option('--kubeconfig <file>', 'list the objects from this API server once (with --node and the configuration flags), instead of -f')
    .option('--socket <path>', 'the daemon\'s socket, asked when neither -f nor --kubeconfig is given: its own objects and configuration (root only)', DEFAULT_SOCKET);
}

/** dump and explain: the sources, and --strict */
function inputOptions(cmd: Command): Command {
  return sourceOptions(cmd).option('--strict', 'exit 1 when any object was skipped');
}

const INPUTS_HELP = `
Inputs: -f FILE_OR_DIR (manifests), or --kubeconfig FILE --node NAME (a one-shot list from the
API server), or neither: on a node, the daemon's socket (--socket, default ${DEFAULT_SOCKET})
answers with exactly what it applied and its configuration (no configuration flags then).`;

/** The flags that shape the ruleset: shared by dump, explain and run. */
function configOptions(cmd: Command): Command {
  return cmd
    .option('--node <name>', 'this node\'s name (eTP/iTP Local, topology); default: hostnameOverride from --config')
    .option('--config <file>', 'a KubeProxyConfiguration (clusterCIDR, nodePortAddresses, masqueradeAll, hostnameOverride, detectLocalMode); flags override it')
    .option('--cluster-cidr <cidrs>', 'pod CIDRs, comma-separated: traffic from outside them to a ClusterIP is masqueraded; without it there is no local-traffic detector')
    .option('--service-cidr <cidrs>', 'service CIDRs, comma-separated: unallocated addresses inside are dropped')
    .option('--nodeport-addresses <primary|cidrs>', 'where NodePorts listen: "primary" (default: the node\'s primary IP per family) or CIDRs; 0.0.0.0/0 means every local address')
    .option('--node-ip <ip>', 'an address of this node (repeatable; the first of each family is primary); default: the Node object\'s addresses', collect, [])
    .option('--masquerade-all', 'masquerade all ClusterIP traffic')
    .addOption(new Option('--ip-families <families>', 'the families compiled, one table each, whatever addresses the Node lists; default: run, what this host carries (IPv6 when enabled in its network namespace); dump and explain, the families of the node\'s addresses and the services\' ClusterIPs').choices(['ipv4', 'ipv6', 'dual']));
}

interface InputOpts extends ConfigFlags {
  filename: string[];
  kubeconfig?: string;
  socket: string;
  strict?: boolean;
}

const liveOf = (o: InputOpts): LiveOpts => ({ ...flagsOf(o), filename: o.filename, ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}), socket: o.socket });
const flagsOf = (o: InputOpts): ConfigFlags => ({ node: o.node, config: o.config, clusterCidr: o.clusterCidr, serviceCidr: o.serviceCidr, nodeportAddresses: o.nodeportAddresses, nodeIp: o.nodeIp, masqueradeAll: o.masqueradeAll, ipFamilies: o.ipFamilies });

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  let code = 0;
  const program = new Command('nftproxy')
    .description('nftproxy: Kubernetes Services compiled into one nftables ruleset (a kube-proxy replacement)')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError('(run with --help for usage)');

  inputOptions(program.command('dump'))
    .description('print the ruleset the inputs compile to; `nft -f -` loads it as is')
    .addOption(new Option('--format <format>', 'nft text, nft JSON (libnftables-json), or the BPF socket load balancer\'s map entries').choices(['nft', 'json', 'bpf']).default('nft'))
    .addHelpText('after', `
Examples:
  nftproxy dump                                   # on a node, as root: what the daemon applied
  nftproxy dump -f examples/ --node node-a
  nftproxy dump -f cluster.yaml --node node-a --cluster-cidr 10.244.0.0/16 --service-cidr 10.96.0.0/12 | nft -c -f -
  nftproxy dump --kubeconfig ~/.kube/config --node node-a --cluster-cidr 10.244.0.0/16 --format json
${INPUTS_HELP}

Exit codes: 0 ok, 1 objects skipped under --strict, 2 bad usage, unreadable input, or no input (no -f, no --kubeconfig, no daemon socket).`)
    .action(async (opts: InputOpts & { format: 'nft' | 'json' | 'bpf' }) => {
      const loaded = await loadLive(liveOf(opts), (l) => io.err(`${l}\n`));
      io.out(opts.format === 'json' ? renderJson(loaded.ruleset) : opts.format === 'bpf' ? renderBpfText(bpfServices(loaded.ruleset.servicePorts, loaded.config), bpfKeptSources(loaded.config.clusterCIDRs)) : renderText(loaded.ruleset));
      code = strictCode(loaded, opts.strict);
    });

  inputOptions(program.command('explain'))
    .description('where would this packet go, and why: traced through the compiled ruleset')
    .requiredOption('--src <ip>', 'source address of the first packet')
    .requiredOption('--dst <ip:port>', 'destination, e.g. 172.30.0.41:80 or [fd00::1]:80')
    .addOption(new Option('--proto <proto>', 'transport protocol').choices(['tcp', 'udp', 'sctp']).default('tcp'))
    .option('--json', 'print the trace as JSON')
    .addHelpText('after', `
Examples:
  nftproxy explain --src 10.244.1.5 --dst 10.96.0.10:53 --proto udp     # on a node, as root: the daemon's ruleset
  nftproxy explain -f examples/ --node node-a --src 10.244.1.5 --dst 10.96.0.10:53 --proto udp
  nftproxy explain -f examples/ --node node-a --cluster-cidr 10.244.0.0/16 --src 203.0.113.7 --dst 192.168.0.2:30080
${INPUTS_HELP}

Exit codes: 0 ok, 1 objects skipped under --strict, 2 bad usage, unreadable input, or no input.`)
    .action(async (opts: InputOpts & { src: string; dst: string; proto: 'tcp' | 'udp' | 'sctp'; json?: boolean }) => {
      const p = parsePacket(opts.src, opts.dst, opts.proto);
      if (!p.ok) throw new UsageError(p.error);
      const warn = (l: string): void => io.err(`${l}\n`);
      let t: Trace, ignored: Loaded['ignored'], skipped: number;
      if (sourceOf(liveOf(opts)).kind === 'daemon') {
        // the daemon traces its own ruleset: the whole of it never crosses the socket
        const q = new URLSearchParams({ src: opts.src, dst: opts.dst, proto: opts.proto });
        const r = await askDaemon<{ trace: Trace; ignored: Loaded['ignored']; diagnostics: string[]; notes: string[] }>(opts.socket, `/v1/explain?${q}`).catch(usage);
        printDaemonDiagnostics(r, warn);
        ({ trace: t, ignored } = r);
        skipped = r.diagnostics.length;
      } else {
        const loaded = await loadLive(liveOf(opts), warn);
        t = trace(loaded.ruleset, loaded.config.nodeIPs, p.value);
        ignored = loaded.ignored;
        skipped = loaded.diagnostics.length;
      }
      io.out(opts.json ? `${JSON.stringify(t, null, 2)}\n` : formatTrace(t, ignored));
      code = opts.strict && skipped > 0 ? 1 : 0;
    });

  sourceOptions(program.command('verify'))
    .description('does the kernel hold what nftproxy intends? nftproxy\'s tables here, read over netlink, against the daemon\'s last sync (or what -f / --kubeconfig compile to), by service port')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', `
Run it in the network namespace the daemon programs (on a node: the host's). Differences are
grouped by the service port that owns the object: missing, extra, or changed (kernel vs intended).
Rules compare by what they do (their expressions), elements by key and value; comments and the
session-affinity set's contents are not compared.

Examples:
  nftproxy verify                                  # on a node, as root: against the daemon's last sync
  nftproxy verify -f /etc/nftproxy/ --node node-a --cluster-cidr 10.244.0.0/16 --ip-families dual
${INPUTS_HELP}

Exit codes: 0 the kernel holds what is intended, 1 differences, 2 bad usage or no input, 3 cannot read the kernel (not root).`)
    .action(async (opts: InputOpts & { json?: boolean }) => {
      code = await runVerify({ ...liveOf(opts), ...(opts.json ? { json: true } : {}) }, io);
    });

  sourceOptions(program.command('trace'))
    .description('follow real packets: mark one tuple\'s packets with nftrace, read the kernel\'s trace events, and print each packet\'s path in nftproxy\'s words next to explain\'s prediction')
    .requiredOption('--src <ip>', 'source address of the packets to follow')
    .requiredOption('--dst <ip:port>', 'their destination, e.g. 10.96.0.10:80 or [fd00::1]:80 (a ClusterIP, a node IP and NodePort, …)')
    .addOption(new Option('--proto <proto>', 'transport protocol').choices(['tcp', 'udp']).default('tcp'))
    .option('--count <n>', 'stop after this many packets (TCP: connection attempts, the first packet of each; UDP: datagrams)', '1')
    .option('--timeout <duration>', 'stop after this long (e.g. 30s, 2m; a bare number is seconds)', '60s')
    .option('--json', 'one JSON object per packet (JSON lines)')
    .addHelpText('after', `
It adds a table of its own (nftproxy-trace-…) with a rule at the earliest hooks (prerouting and
output, priority -500) that sets meta nftrace for the tuple, and removes it when it stops: after
--count packets, --timeout, Ctrl-C or an error. Run it as root in the network namespace that
sees the packets (on a node: the host's), then send the traffic.

Examples:
  nftproxy trace --src 10.244.1.5 --dst 10.96.0.10:80                   # then connect from that pod
  nftproxy trace --src 203.0.113.7 --dst 192.168.0.2:30080 --count 5 --timeout 2m
  nftproxy trace --src 10.244.1.5 --dst 10.96.0.10:53 --proto udp --json
${INPUTS_HELP}

Exit codes: 0 --count packets traced, 1 timed out first, 2 bad usage or no input, 3 cannot use the kernel (not root), 130 stopped by Ctrl-C (143 SIGTERM).`)
    .action(async (opts: InputOpts & { src: string; dst: string; proto: string; count: string; timeout: string; json?: boolean }) => {
      code = await runTrace({ ...liveOf(opts), src: opts.src, dst: opts.dst, proto: opts.proto, count: opts.count, timeout: opts.timeout, ...(opts.json ? { json: true } : {}) }, io);
    });

  configOptions(program.command('run'))
    .description('the daemon: keep this host\'s nftproxy table in sync with the Kubernetes API (default) or a directory of manifests')
    .option('--manifests <dir>', 'follow this directory (or file) of manifests, in the formats dump reads, instead of the API')
    .option('--kubeconfig <file>', 'kubeconfig for the API server; default: in-cluster config (clientConnection.kubeconfig in --config)')
    .option('--hostname-override <name>', 'this node\'s name (same as --node); default: $NODE_NAME')
    .option('--min-sync-period <duration>', 'at most one sync per this period; the first change after a quiet period syncs at once (default 1s)')
    .option('--sync-period <duration>', 'a full sync (atomic replace of the table) runs this often; /healthz fails when an update waits 2x this (default 1h)')
    .option('--healthz-bind-address <host:port>', 'kube-proxy compatible /healthz and /livez; "" disables (default 0.0.0.0:10256)')
    .option('--metrics-bind-address <host:port>', 'Prometheus /metrics; "" disables (default 127.0.0.1:10249)')
    .option('--no-conntrack', 'skip UDP conntrack cleanup')
    .option('--socket <path>', 'serve the inspection socket here, root only (dump, explain, verify and trace without -f ask it); "" turns it off', DEFAULT_SOCKET)
    .addOption(new Option('--bpf <mode>', 'the eBPF socket load balancer for ClusterIP traffic: auto loads it in the host\'s network namespace when the kernel supports it (elsewhere it stays off), on refuses to start without it (outside the host\'s network namespace it needs --bpf-cgroup)').choices(['off', 'auto', 'on']).default('auto'))
    .option('--bpf-cgroup <path>', 'cgroup v2 the BPF programs attach to: they rewrite connect() of every process in it, whatever its network namespace (default: the cgroup v2 root, the whole host; /sys/fs/cgroup/unified on hybrid hosts)')
    .option('--bpf-pin-dir <dir>', 'where programs and maps are pinned, so a restart adopts them (a bpffs is mounted on /sys/fs/bpf when none is)', '/sys/fs/bpf/nftproxy')
    .option('--bpf-netns-dir <dir>', 'network namespace files of the pods (e.g. /run/netns): connected UDP sockets to removed backends are destroyed there too (kernel >= 6.5)')
    .addOption(new Option('--log-level <level>', 'log verbosity (JSON lines on stderr)').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .addHelpText('after', `
Stops on SIGTERM or SIGINT and leaves the rules in place; \`nftproxy cleanup\` removes them.

Examples:
  nftproxy run --manifests examples/ --node node-a --cluster-cidr 10.244.0.0/16
  nftproxy run --manifests examples/ --node node-a --socket /run/nftproxy-lab/nftproxy.sock   # a second daemon (a lab namespace)
  nftproxy run --config /var/lib/nftproxy/config.yaml           # in a DaemonSet, NODE_NAME from the downward API

Exit codes: 0 stopped by a signal, 2 bad usage or configuration (also: --bpf=on outside the host's network namespace without --bpf-cgroup), 3 no netfilter netlink (not root, or libmnl missing), 4 --bpf=on and BPF unavailable.`)
    .action(async (opts: RunOptions) => {
      code = await runDaemon(opts, { kubernetesSource: kubernetesSourceFactory });
    });

  program.command('cleanup')
    .description('remove everything nftproxy installed: its nftables tables and its BPF programs and pins; nothing else is touched')
    .option('--bpf-pin-dir <dir>', 'where a run pinned its BPF programs and maps', '/sys/fs/bpf/nftproxy')
    .addHelpText('after', BPF_VIEW_HELP)
    .action(async (opts: { bpfPinDir: string }) => {
      const writer = new NetlinkWriter();
      try {
        await new Applier(writer).cleanup();
        io.err('nftproxy tables removed\n');
      } catch (e) {
        io.err(`nftproxy: could not remove the nftproxy tables: ${(e as Error).message}\n`);
        code = 1;
      } finally {
        await writer.close();
      }
      const bpf = bpfCleanup(opts.bpfPinDir);
      for (const m of bpf.messages) io.err(`${m}\n`);
      if (!bpf.ok) code = BPF_INCOMPLETE;
    });

  program.command('status')
    .description('what nftproxy has installed on this host: its nftables tables, its BPF programs and maps')
    .option('--bpf-pin-dir <dir>', 'where a run pinned its BPF programs and maps', '/sys/fs/bpf/nftproxy')
    .option('--json', 'print JSON')
    .addHelpText('after', BPF_VIEW_HELP)
    .action(async (opts: { bpfPinDir: string; json?: boolean }) => {
      const writer = new NetlinkWriter();
      let tables: Record<string, { chains: number; sets: number } | null> | { error: string } = { 'ip nftproxy': null, 'ip6 nftproxy': null };
      try {
        for (const t of await writer.tables('nftproxy')) tables[`${t.family} nftproxy`] = { chains: t.chains, sets: t.sets };
      } catch (e) {
        tables = { error: (e as Error).message };
        code = 1;
      } finally {
        await writer.close();
      }
      const bpf = bpfStatusSection(opts.bpfPinDir);
      if (!bpf.ok) code = BPF_INCOMPLETE;
      if (opts.json) { io.out(`${JSON.stringify({ tables, bpf: bpf.json }, null, 2)}\n`); return; }
      if ('error' in tables) io.out(`nft tables: cannot read them: ${tables.error}\n`);
      else for (const [t, v] of Object.entries(tables)) io.out(`nft table ${t}: ${v ? `${v.chains} chains, ${v.sets} sets/maps` : 'absent'}\n`);
      io.out(bpf.text);
    });

  try {
    if (argv.length === 0) {
      program.outputHelp();
      return 0;
    }
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UsageError) {
      io.err(`nftproxy: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

function strictCode(l: { readonly diagnostics: readonly unknown[] }, strict: boolean | undefined): number {
  return strict && l.diagnostics.length > 0 ? 1 : 0;
}
