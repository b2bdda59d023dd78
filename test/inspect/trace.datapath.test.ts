// `nftproxy trace` against real packets (test/lab/: a real kernel in network namespaces). The
// product's applier loads the rules into the node; trace runs in the node as its own process
// with the same manifests (-f) and flags; real connections are sent while it runs. Each row
// checks what trace printed against what the packets did:
// - the endpoint trace names is the one whose echo server answered (connection by connection:
//   they are sent one after the other, so the i-th traced packet is the i-th connection);
// - masquerade as the endpoint saw it (the source address in its reply);
// - the verdict (DNAT, REJECT = refused, DROP = timed out), and explain agreeing;
// and that trace's own table is gone afterwards: after success, a timeout, SIGINT, and a
// start that fails (no input, not root).
import { type ResultPromise, execa } from 'execa';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Try } from '../lab/agent-process.js';
import { Lab, type LabSpec } from '../lab/lab.js';
import { GATEWAY } from '../lab/topology.js';
import { canUseKernel, KERNEL_SKIP_REASON } from '../lab/netns.js';
import { EXT, LAB_ENV, NODE, NODE6, envFlags } from '../support/address-plan.js';
import { compileObjects, service, slice } from '../support/builders.js';
import { BIN } from '../support/daemon.js';
import type { PacketReport } from '../../src/inspect/trace-report.js';

const POD = { A: '10.180.2.1', B: '10.180.2.2', C: '10.180.2.3' };
const POD6 = { A: 'fd00:10::21', B: 'fd00:10::22' };
/** a pod client, inside the cluster CIDR */
const CLIENT = '10.180.3.100', CLIENT6 = 'fd00:10::100';
const WEB = { vip: '172.30.0.10', port: 80, nodePort: 30080 };
const WEB6 = { vip: 'fd00:10:96::10', port: 80 };
const EMPTY = { vip: '172.30.0.12', port: 80 };
/** in the service CIDR, owned by no service */
const UNALLOCATED = '172.30.0.99';

const tcp = { name: 'http', port: 80, protocol: 'TCP' as const };
const OBJECTS = [
  service('lab', 'web', { type: 'NodePort', clusterIP: WEB.vip, ports: [{ ...tcp, targetPort: 80, nodePort: WEB.nodePort }] }),
  slice('lab', 'web', 'web-1', [tcp], Object.values(POD).map((ip) => ({ ip, node: 'elsewhere' }))),
  service('lab', 'empty', { clusterIP: EMPTY.vip, ports: [{ ...tcp, targetPort: 80 }] }),
  service('lab', 'web6', { clusterIP: WEB6.vip, clusterIPs: [WEB6.vip], ipFamilies: ['IPv6'], ports: [{ ...tcp, targetPort: 80 }] }),
  slice('lab', 'web6', 'web6-1', [tcp], Object.values(POD6).map((ip) => ({ ip, node: 'elsewhere' })), 'IPv6'),
  { apiVersion: 'v1', kind: 'Node', metadata: { name: LAB_ENV.nodeName }, status: { addresses: [{ type: 'InternalIP', address: NODE }, { type: 'InternalIP', address: NODE6 }] } },
];
const FLAGS = envFlags(LAB_ENV);

const SPEC: LabSpec = { nodeIPs: [NODE, NODE6], pods: [...Object.values(POD), ...Object.values(POD6)], clients: [CLIENT, EXT, CLIENT6], selfAddressed: [], ports: [80] };

interface Run { code: number; stdout: string; stderr: string }

describe.skipIf(!canUseKernel)(`nftproxy trace of real packets${canUseKernel ? '' : ` [skipped: ${KERNEL_SKIP_REASON}]`}`, () => {
  let lab: Lab;
  let dir: string;

  beforeAll(async () => {
    lab = await Lab.create('trace', SPEC);
    dir = await mkdtemp(join(tmpdir(), 'nftproxy-trace-'));
    await writeFile(join(dir, 'cluster.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: OBJECTS }));
    await chmod(dir, 0o755); // the not-root row reads it too
    const { ruleset, diagnostics } = compileObjects(OBJECTS, LAB_ENV);
    expect(diagnostics).toEqual([]);
    await lab.load(ruleset);
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** trace's tables in the node (there must never be one after a trace ended) */
  const traceTables = async (): Promise<string[]> => {
    const r = await execa('ip', ['netns', 'exec', lab.nodeNetns, 'nft', 'list', 'tables'], { reject: false });
    return String(r.stdout).split('\n').filter((l) => l.includes('nftproxy-trace-'));
  };

  /** Starts trace in the node; resolves once its table is in place (it says "tracing"). */
  async function startTrace(args: string[], env: Record<string, string> = {}, cmd: string[] = []): Promise<{ proc: ResultPromise; done: Promise<Run> }> {
    const proc = execa('ip', ['netns', 'exec', lab.nodeNetns, ...cmd, process.execPath, BIN, 'trace', ...args], { reject: false, env });
    let err = '';
    const done = proc.then((r) => ({ code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) }));
    await new Promise<void>((resolve, reject) => {
      proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('tracing ')) resolve(); });
      void done.then((r) => reject(new Error(`trace exited (${r.code}) before tracing: ${r.stderr}`)));
    });
    return { proc, done };
  }

  /** n connections one after the other from `src` (bound) to dst. */
  async function connectSerially(src: string, dst: string, port: number, n: number, timeoutMs: number): Promise<Try[]> {
    const agent = lab.sourceAgent(src);
    if (!agent) throw new Error(`no agent owns ${src}`);
    const out: Try[] = [];
    for (let i = 0; i < n; i++) out.push(...(await agent.connect({ proto: 'tcp', host: dst, port, src, count: 1, timeoutMs })));
    return out;
  }

  const reports = (stdout: string): PacketReport[] => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as PacketReport);

  it.each([
    { name: 'ClusterIP from a pod: DNAT to the endpoint that answered, no masquerade', src: CLIENT, dst: WEB.vip, port: WEB.port, n: 4, masquerade: false },
    { name: 'NodePort from outside: DNAT to the endpoint that answered, masqueraded', src: EXT, dst: NODE, port: WEB.nodePort, n: 3, masquerade: true },
    { name: 'IPv6 ClusterIP from a pod (table ip6)', src: CLIENT6, dst: WEB6.vip, port: WEB6.port, n: 2, masquerade: false },
  ])('$name', async ({ src, dst, port, n, masquerade }) => {
    const t = await startTrace(['-f', dir, ...FLAGS, '--src', src, '--dst', `${dst.includes(':') ? `[${dst}]` : dst}:${port}`, '--count', String(n), '--timeout', '30s', '--json']);
    const tries = await connectSerially(src, dst, port, n, 2000);
    const run = await t.done;
    expect(run.code, run.stderr).toBe(0);
    const got = reports(run.stdout);
    expect(got).toHaveLength(n);
    got.forEach((r, i) => {
      const answered = tries[i]!;
      if (!answered.ok) throw new Error(`connection ${i} failed: ${answered.err}`);
      expect(r.verdict.kind).toBe('dnat');
      // the echo server's own name is its pod address; trace must name the same endpoint
      expect(`${r.endpoint?.addr}:${r.endpoint?.port}`).toBe(`${answered.name}:${answered.port}`);
      expect(r.masquerade).toBe(masquerade);
      expect(answered.saw).toBe(masquerade ? GATEWAY.v4 : src);
      expect(r.servicePort?.label).toBe(dst === WEB6.vip ? 'lab/web6 port http 80/TCP' : 'lab/web port http 80/TCP');
      expect(r.explain.agrees, r.explain.why).toBe(true);
      expect(r.packet).toMatchObject({ proto: 'tcp', src, dst, dport: port });
    });
    expect(await traceTables()).toEqual([]);
  }, 60_000);

  it.each([
    { name: 'a service without endpoints: REJECT, the client is refused', dst: EMPTY.vip, verdict: 'reject', err: 'refused', label: 'lab/empty port http 80/TCP' },
    { name: 'an unallocated service IP: DROP, the client times out', dst: UNALLOCATED, verdict: 'drop', err: 'timeout', label: undefined },
  ])('$name', async ({ dst, verdict, err, label }) => {
    const t = await startTrace(['-f', dir, ...FLAGS, '--src', CLIENT, '--dst', `${dst}:80`, '--count', '1', '--timeout', '30s', '--json']);
    // 600 ms: a dropped SYN is retransmitted after a second; one packet is what is traced
    const tries = await connectSerially(CLIENT, dst, 80, 1, 600);
    const run = await t.done;
    expect(run.code, run.stderr).toBe(0);
    expect(tries.map((x) => (x.ok ? 'answered' : x.err))).toEqual([err]);
    const [r] = reports(run.stdout);
    expect(r!.verdict.kind).toBe(verdict);
    expect(r!.endpoint).toBeNull();
    expect(r!.servicePort?.label).toBe(label);
    expect(r!.explain.agrees, r!.explain.why).toBe(true);
    expect(await traceTables()).toEqual([]);
  }, 60_000);

  it('prints the path in words: the service chain, the endpoint, the verdict, explain', async () => {
    const t = await startTrace(['-f', dir, ...FLAGS, '--src', CLIENT, '--dst', `${EMPTY.vip}:80`]);
    await connectSerially(CLIENT, EMPTY.vip, 80, 1, 600);
    const run = await t.done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^packet 1: tcp 10\.180\.3\.100:\d+ -> 172\.30\.0\.12:80 \(prerouting, in on /);
    expect(run.stdout).toContain('service-endpoints-check: ip daddr . meta l4proto . th dport vmap @no-endpoint-services  -> goto reject-chain');
    expect(run.stdout).toContain('reject-chain: reject  -> drop');
    expect(run.stdout).toContain('  verdict:      REJECT (chain reject-chain)');
    expect(run.stdout).toContain('  explain:      REJECT: the service has no usable endpoint -> agrees');
  }, 60_000);

  it('times out when no packet comes: exit 1, table removed', async () => {
    const t = await startTrace(['-f', dir, ...FLAGS, '--src', CLIENT, '--dst', `${WEB.vip}:80`, '--timeout', '1']);
    const run = await t.done;
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('timed out after 1s with 0 of 1 packet');
    expect(await traceTables()).toEqual([]);
  }, 30_000);

  it('stops on SIGINT (Ctrl-C): exit 130, table removed', async () => {
    const t = await startTrace(['-f', dir, ...FLAGS, '--src', CLIENT, '--dst', `${WEB.vip}:80`, '--timeout', '60s']);
    expect(await traceTables()).toHaveLength(1);
    t.proc.kill('SIGINT');
    const run = await t.done;
    expect(run.code).toBe(130);
    expect(run.stderr).toContain('stopped by SIGINT after 0 of 1 packet');
    expect(await traceTables()).toEqual([]);
  }, 30_000);

  it.each([
    { name: 'no input (no -f, no daemon socket): exit 2', files: false, cmd: [], code: 2, says: 'no daemon socket at /nonexistent/nftproxy.sock' },
    { name: 'not root: exit 3', files: true, cmd: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'], code: 3, says: 'nftproxy trace: cannot join netlink group 9' },
  ])('a failed start leaves nothing: $name', async ({ files, cmd, code, says }) => {
    const input = files ? ['-f', dir, ...FLAGS] : ['--socket', '/nonexistent/nftproxy.sock'];
    const r = await execa('ip', ['netns', 'exec', lab.nodeNetns, ...cmd, process.execPath, BIN, 'trace', ...input, '--src', CLIENT, '--dst', `${WEB.vip}:80`, '--timeout', '5s'], { reject: false });
    expect(r.exitCode, String(r.stderr)).toBe(code);
    expect(String(r.stderr)).toContain(says);
    expect(await traceTables()).toEqual([]);
  }, 30_000);

  it('removes the table a killed trace left (SIGKILL), at its next start', async () => {
    const t = await startTrace(['-f', dir, ...FLAGS, '--src', CLIENT, '--dst', `${WEB.vip}:80`, '--timeout', '60s']);
    t.proc.kill('SIGKILL');
    await t.done;
    expect(await traceTables()).toHaveLength(1);
    const next = await startTrace(['-f', dir, ...FLAGS, '--src', CLIENT, '--dst', `${WEB.vip}:80`, '--timeout', '1']);
    const run = await next.done;
    expect(run.stderr).toMatch(/removed table ip nftproxy-trace-\d+-\d+-[0-9a-f]+, left by a trace that was killed/);
    expect(await traceTables()).toEqual([]);
  }, 30_000);
});
