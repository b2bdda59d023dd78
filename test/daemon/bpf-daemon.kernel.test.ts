// `nftproxy run --bpf=on` as a real process: attached to a cgroup the test created, pinned in
// a private bpffs, it balances ClusterIP connections of processes in that cgroup at
// connect() (no DNAT conntrack entry for the VIP: the packets went straight to the pod),
// follows a manifest change, shows in `nftproxy status`, survives a restart by adopting its
// pins, and `nftproxy cleanup` detaches it. `--bpf=on` without a usable cgroup refuses to start.
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bpfSupport } from '../../native/loader.js';
import { Netns } from '../lab/netns.js';
import { BIN, Daemon, httpGet, synced } from '../support/daemon.js';
import { webManifest } from '../support/manifests.js';
import { Probe, createTestCgroup, inNetns, inNetnsAndCgroup, kernelSkipReason, mountTestBpffs, removeTestCgroup, unmountTestBpffs } from '../bpf/env.js';

const skip = kernelSkipReason(bpfSupport);

const web = webManifest;

describe.skipIf(skip !== null)(`nftproxy run --bpf${skip ? ` [skipped: ${skip}]` : ''}`, () => {
  let ns: Netns, cg: string, bpffs: string, dir: string;
  let server: Probe, client: Probe;
  beforeAll(async () => {
    ns = await Netns.create('bpfd');
    await ns.ip(['link set lo up', 'address add 10.244.0.1/32 dev lo', 'address add 10.244.0.2/32 dev lo', 'address add 10.244.0.3/32 dev lo', 'address add 192.168.0.2/32 dev lo']);
    cg = createTestCgroup();
    bpffs = await mountTestBpffs();
    dir = await mkdtemp(join(tmpdir(), 'nftproxy-bpfd-'));
    server = await Probe.start('pods', inNetns(ns.name));
    for (const ip of ['10.244.0.1', '10.244.0.2', '10.244.0.3']) {
      await server.req({ op: 'listen', proto: 'tcp', host: ip, port: 8080, name: ip });
      await server.req({ op: 'listen', proto: 'udp', host: ip, port: 5353, name: ip });
    }
    client = await Probe.start('client', inNetnsAndCgroup(ns.name, cg));
  });
  afterAll(async () => {
    await client?.stop();
    await server?.stop();
    // inside the test namespace: cleanup also removes nft tables, and only the test's
    if (ns && bpffs) await execa('ip', ['netns', 'exec', ns.name, process.execPath, BIN, 'cleanup', '--bpf-pin-dir', join(bpffs, 'nftproxy')], { reject: false });
    if (cg) await removeTestCgroup(cg);
    if (bpffs) await unmountTestBpffs(bpffs);
    if (dir) await rm(dir, { recursive: true, force: true });
    await ns?.destroy();
  });

  const landings = async (n: number): Promise<{ names: Set<string>; peers: Set<string> }> => {
    const names = new Set<string>(), peers = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await client.req({ op: 'tcp', host: '10.96.0.10', port: 80, timeoutMs: 1500 });
      expect(r.ok, JSON.stringify(r)).toBe(true);
      names.add((r.reply as { name: string }).name);
      peers.add(`${(r.peer as { address: string }).address}:${(r.peer as { port: number }).port}`);
    }
    return { names, peers };
  };
  const vipFlows = async (): Promise<number> => (await execa('ip', ['netns', 'exec', ns.name, 'conntrack', '-L', '-p', 'tcp', '--orig-dst', '10.96.0.10'], { reject: false })).stdout.split('\n').filter((l) => l.includes('dport=80')).length;

  it('balances at connect(), follows a change, restarts by adoption, reports status, cleans up', async () => {
    await writeFile(join(dir, 'web.yaml'), web(['10.244.0.1', '10.244.0.2']));
    const pinDir = join(bpffs, 'nftproxy');
    const args = ['--manifests', dir, '--node', 'node-a', '--node-ip', '192.168.0.2', '--cluster-cidr', '10.244.0.0/16', '--min-sync-period', '100ms',
      '--bpf', 'on', '--bpf-cgroup', cg, '--bpf-pin-dir', pinDir, '--healthz-bind-address', '', '--metrics-bind-address', '127.0.0.1:10249'];
    const d = new Daemon(ns.name, args, {}, 'nsenter');
    try {
      const on = await d.waitFor((l) => l.msg.startsWith('BPF hot path on'), 15_000, 0);
      expect(on.cgroup).toBe(cg);
      await d.waitFor(synced, 15_000, 0);
      await execa('ip', ['netns', 'exec', ns.name, 'conntrack', '-F'], { reject: false });
      const a = await landings(30);
      expect([...a.names].sort()).toEqual(['10.244.0.1', '10.244.0.2']);
      expect([...a.peers]).toEqual(['10.96.0.10:80']); // getpeername shows the VIP
      expect(await vipFlows()).toBe(0); // no DNAT: the BPF path carried them

      // connected UDP sockets are pinned to the backend chosen at connect(); 8 of them, so
      // that some are pinned to 10.244.0.1, which is about to leave (all 8 elsewhere: 1/256)
      const pinned = new Map<string, string>();
      for (let i = 0; i < 8; i++) {
        await client.req({ op: 'udpOpen', sid: `u${i}`, host: '10.96.0.10', port: 53 });
        pinned.set(`u${i}`, ((await client.req({ op: 'udpSend', sid: `u${i}`, timeoutMs: 1500 })).reply as { name: string }).name);
      }
      const doomed = [...pinned].filter(([, b]) => b === '10.244.0.1').map(([sid]) => sid);
      expect(doomed.length, JSON.stringify([...pinned])).toBeGreaterThan(0);

      let mark = d.logs.length;
      await writeFile(join(dir, 'web.yaml'), web(['10.244.0.2', '10.244.0.3']));
      await d.waitFor(synced, 10_000, mark);
      expect([...(await landings(30)).names].sort()).toEqual(['10.244.0.2', '10.244.0.3']);
      // their backend left: the daemon destroyed exactly those sockets (bpf_sock_destroy), their
      // owners see ECONNABORTED; the others are left alone and keep working
      expect(d.logs.find((l) => l.msg === 'connected UDP sockets to removed backends destroyed')).toMatchObject({ destroyed: doomed.length });
      for (const [sid, b] of pinned) {
        if (doomed.includes(sid)) expect((await client.req({ op: 'udpErrors', sid })).errors).toContain('ECONNABORTED');
        else expect(((await client.req({ op: 'udpSend', sid, timeoutMs: 1500 })).reply as { name: string }).name).toBe(b);
      }
      // ...and reconnecting, as a resolver does on that error, their next datagrams reach a live backend
      for (const sid of doomed) {
        await client.req({ op: 'udpClose', sid });
        await client.req({ op: 'udpOpen', sid: `${sid}-again`, host: '10.96.0.10', port: 53 });
        const again = await client.req({ op: 'udpSend', sid: `${sid}-again`, timeoutMs: 1500 });
        expect(['10.244.0.2', '10.244.0.3'], JSON.stringify(again)).toContain((again.reply as { name: string } | undefined)?.name);
        await client.req({ op: 'udpClose', sid: `${sid}-again` });
      }

      // what an operator's dashboard sees
      const metrics = (await httpGet(ns.name, 'http://127.0.0.1:10249/metrics')).body;
      expect(metrics.split('\n').filter((l) => l.startsWith('nftproxy_bpf_')).sort()).toEqual([
        'nftproxy_bpf_active 1', 'nftproxy_bpf_refused_services 0', 'nftproxy_bpf_services 2', `nftproxy_bpf_udp_sockets_destroyed_total ${doomed.length}`,
      ]);

      const st = await execa('ip', ['netns', 'exec', ns.name, process.execPath, BIN, 'status', '--bpf-pin-dir', pinDir, '--json']);
      const status = JSON.parse(st.stdout) as { tables: Record<string, unknown>; bpf: { pinned: boolean; cgroups: string[]; links: string[]; maps: Record<string, number> } };
      expect(status.bpf.pinned).toBe(true);
      expect(status.bpf.cgroups).toEqual([cg]); // the attach point, from the kernel's link info
      expect(status.bpf.links.length).toBe(8);
      expect(status.bpf.maps).toMatchObject({ svcs: 2, backends: 4, members: 4, podcidrs: 3 }); // podcidrs: ::/0, 0.0.0.0/0, 10.244.0.0/16
      expect(status.tables['ip nftproxy']).not.toBeNull();

      d.kill('SIGTERM');
      expect(await d.exited).toBe(0);
      // stopped: the programs stay attached and keep balancing
      expect([...(await landings(20)).names].sort()).toEqual(['10.244.0.2', '10.244.0.3']);

      mark = 0;
      const again = new Daemon(ns.name, args, {}, 'nsenter');
      try {
        const on2 = await again.waitFor((l) => l.msg.startsWith('BPF hot path on'), 15_000, 0);
        expect((on2.replaced as string[]).length).toBe(8); // links switched in place: no gap
        await again.waitFor(synced, 15_000, 0);
        expect([...(await landings(20)).names].sort()).toEqual(['10.244.0.2', '10.244.0.3']);
      } finally {
        again.kill('SIGTERM');
        await again.exited;
      }

      // --bpf=off after a BPF run: the programs left attached would keep rewriting connect()
      // from maps nobody updates; the daemon detaches and unpins them
      const off = new Daemon(ns.name, args.map((a) => (a === 'on' ? 'off' : a)), {}, 'nsenter');
      try {
        await off.waitFor((l) => l.msg.startsWith('BPF hot path off: detached and unpinned'), 15_000, 0);
        await off.waitFor(synced, 15_000, 0);
        expect(existsSync(pinDir)).toBe(false);
        // connect() is no longer rewritten: this namespace has no route to the VIP itself
        const r = await client.req({ op: 'tcp', host: '10.96.0.10', port: 80, timeoutMs: 800 });
        expect(r).toMatchObject({ ok: false, err: 'ENETUNREACH' });
      } finally {
        off.kill('SIGTERM');
        await off.exited;
      }

      // on again (pinned afresh), then `nftproxy cleanup` detaches it
      const third = new Daemon(ns.name, args, {}, 'nsenter');
      try {
        await third.waitFor(synced, 15_000, 0);
        expect(existsSync(pinDir)).toBe(true);
      } finally {
        third.kill('SIGTERM');
        await third.exited;
      }
      const c = await execa('ip', ['netns', 'exec', ns.name, process.execPath, BIN, 'cleanup', '--bpf-pin-dir', pinDir]);
      expect(c.stderr).toContain('BPF programs detached');
      await execa('ip', ['netns', 'exec', ns.name, 'conntrack', '-F'], { reject: false });
      // no BPF, no nft table: the VIP is just an address nobody has
      const r = await client.req({ op: 'tcp', host: '10.96.0.10', port: 80, timeoutMs: 800 });
      expect(r.ok).toBe(false);
    } finally {
      d.kill('SIGKILL');
      await d.exited;
    }
  }, 90_000);

  it('--bpf=on without a usable cgroup refuses to start (exit 4, one line)', async () => {
    await writeFile(join(dir, 'web.yaml'), web(['10.244.0.1']));
    const r = await execa('nsenter', [`--net=/run/netns/${ns.name}`, process.execPath, BIN, 'run', '--manifests', dir, '--node', 'node-a', '--bpf', 'on', '--bpf-cgroup', '/nonexistent-cgroup', '--bpf-pin-dir', join(bpffs, 'x'), '--healthz-bind-address', '', '--metrics-bind-address', ''], { reject: false, timeout: 20_000 });
    expect(r.exitCode).toBe(4);
    expect(r.stderr).toMatch(/^nftproxy: --bpf=on: .*nonexistent-cgroup/m);
  });
});
