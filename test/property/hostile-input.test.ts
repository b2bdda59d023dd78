// Property test: random snapshots of Services, EndpointSlices and Nodes, mixing valid
// objects with hostile ones (nft syntax in names, annotations and labels, out-of-range
// ports, bad protocols, IPs and CIDRs, duplicate ports, NodePort collisions, junk that is
// not an object at all). For every snapshot:
//  (a) buildModel + compile never throw; every invalid object yields exactly the
//      diagnostic that names it (or is ignored), and every valid object still compiles;
//  (b) the text render is accepted by the kernel (`nft -c -f`), in a private netns;
//  (c) the JSON render is accepted by the kernel (`nft -j -c -f`), same netns;
//  (d) no annotation/label value and no invalid name leaks into the output;
//  (e) compile is deterministic: twice, and with the objects shuffled, byte-identical.
// The generators live in test/support/hostile-snapshots.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel } from '../../src/model/build-model.js';
import { compile, compileParts } from '../../src/compile/compile.js';
import { kernelFamily } from '../../src/render/kernel/family.js';
import { withEquivalence } from '../support/equivalence.js';
import { renderText } from '../../src/render/nft-text.js';
import { renderJson } from '../../src/render/nft-json.js';
import { servicePortId } from '../../src/ir/names.js';
import { CFG, type Entry, LEAK_NEEDLES, maxLengthExample, scenarioArb, snapshotArb, sources } from '../support/hostile-snapshots.js';

interface Compiled {
  readonly built: ReturnType<typeof buildModel>;
  readonly ruleset: ReturnType<typeof compile>;
  readonly text: string;
  readonly json: string;
}

function compileAll(entries: readonly Entry[]): Compiled {
  const built = buildModel(sources(entries), CFG.proxyName);
  const ruleset = compile(built.model, CFG);
  return { built, ruleset, text: renderText(ruleset), json: renderJson(ruleset) };
}

const sortedStrings = (xs: string[]): string[] => [...xs].sort();

// ---------------------------------------------------------------------------------------
// (a) outcome of every object.

function checkOutcomes(entries: readonly Entry[], c: Compiled): void {
  const { built, ruleset, text } = c;
  const expects = entries.map((e) => e.expect);

  const wantDiags = expects.flatMap((x) => (x.t === 'diag' ? [JSON.stringify([x.kind, x.object, x.code])] : []));
  const gotDiags = built.diagnostics.map((d) => JSON.stringify([d.kind, d.object, d.code]));
  expect(sortedStrings(gotDiags), 'diagnostics: exactly one per invalid object, naming it').toEqual(sortedStrings(wantDiags));
  for (const d of built.diagnostics) expect(d.reason, `diagnostic for ${d.object} has a reason`).not.toBe('');

  const wantIgnored = expects.flatMap((x) => (x.t === 'ignored' ? [x.ref] : []));
  expect(sortedStrings(built.ignored.map((i) => i.ref)), 'ignored objects').toEqual(sortedStrings(wantIgnored));

  const wantServices = expects.flatMap((x) => (x.t === 'service' ? [x] : []));
  expect(sortedStrings(built.model.services.map((s) => `${s.ref.namespace}/${s.ref.name}`)), 'accepted services')
    .toEqual(sortedStrings(wantServices.map((s) => `${s.ns}/${s.name}`)));

  const wantSlices = expects.flatMap((x) => (x.t === 'slice' ? [`${x.ns}/${x.service}/${x.name}`] : []));
  const gotSlices = [...built.model.slices.entries()].flatMap(([key, list]) => list.map((s) => `${key}/${s.ref.name}`));
  expect(sortedStrings(gotSlices), 'accepted endpoint slices').toEqual(sortedStrings(wantSlices));

  const wantNodes = expects.flatMap((x) => (x.t === 'node' ? [x.name] : []));
  expect(sortedStrings([...built.model.nodes.keys()]), 'accepted nodes').toEqual(sortedStrings([...new Set(wantNodes)]));

  // Every valid service compiles: one service-port entry per (family of a clusterIP, port).
  const wantIds = wantServices.flatMap((s) => s.clusterIPs.flatMap((ip) => s.ports.map((p) => `${ip.includes(':') ? 'ip6' : 'ip'} ${servicePortId(s.ns, s.name, p.proto, p.name)}`)));
  const gotIds = ruleset.servicePorts.map((sp) => `${sp.family} ${sp.id}`);
  expect(sortedStrings(gotIds), 'compiled service ports').toEqual(sortedStrings(wantIds));
  for (const s of wantServices) {
    for (const ip of s.clusterIPs) expect(text.includes(`${ip}`), `clusterIP ${ip} of ${s.ns}/${s.name} is in the ruleset`).toBe(true);
  }
}

// (d) nothing from annotations, labels, free-text fields or invalid names in the output.
function checkNoLeaks(c: Compiled): void {
  for (const [what, out] of [['text', c.text], ['json', c.json]] as const) {
    const lower = out.toLowerCase();
    for (const needle of LEAK_NEEDLES) {
      const pos = lower.indexOf(needle);
      expect(pos, `${what} output contains "${needle}": ...${out.slice(Math.max(0, pos - 80), pos + 80)}...`).toBe(-1);
    }
  }
}

// ---------------------------------------------------------------------------------------
// The kernel side: a private network namespace so that nothing touches the host's tables.

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const found = async (cmd: string, args: string[]): Promise<boolean> => {
  try {
    return (await execa(cmd, args, { reject: false })).exitCode === 0;
  } catch {
    return false;
  }
};
const nftFound = await found('nft', ['--version']);
const ipFound = await found('ip', ['-V']);
const kernelSkipReason = !isRoot ? 'not root' : !nftFound ? 'nft is missing' : !ipFound ? 'ip (iproute2) is missing' : undefined;
const NETNS = `npx-prop-${process.pid}`;

describe('hostile input (property)', () => {
  it('(a)(d)(e) compile never throws, reports exactly the invalid objects, leaks nothing, and is deterministic', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async ({ snap, shuffled }) => {
        const before = structuredClone(snap.entries.map((e) => e.object));
        const first = compileAll(snap.entries);
        expect(snap.entries.map((e) => e.object), 'compile does not mutate its input').toEqual(before);

        checkOutcomes(snap.entries, first);
        checkNoLeaks(first);

        const again = compileAll(snap.entries);
        expect(again.text, 'same objects, same text').toBe(first.text);
        expect(again.json, 'same objects, same JSON').toBe(first.json);
        const reordered = compileAll(shuffled);
        expect(reordered.text, 'shuffled objects, same text').toBe(first.text);
        expect(reordered.json, 'shuffled objects, same JSON').toBe(first.json);
      }),
      { numRuns: 30, examples: [[{ snap: maxLengthExample(), shuffled: [...maxLengthExample().entries].reverse() }]] },
    );
  }, 120_000);

  describe('kernel', () => {
    let dir: string | undefined;
    let netnsCreated = false;

    beforeAll(async () => {
      if (kernelSkipReason) return;
      dir = await mkdtemp(join(tmpdir(), 'nftproxy-prop-'));
      await execa('ip', ['netns', 'add', NETNS]);
      netnsCreated = true;
    });

    afterAll(async () => {
      try {
        if (netnsCreated) await execa('ip', ['netns', 'del', NETNS]);
      } finally {
        if (dir) await rm(dir, { recursive: true, force: true });
      }
    });

    const nftCheck = async (file: string, json: boolean, body: string): Promise<void> => {
      const r = await execa('ip', ['netns', 'exec', NETNS, 'nft', ...(json ? ['-j'] : []), '-c', '-f', file], { reject: false, timeout: 30_000 });
      if (r.exitCode !== 0) {
        const lines = /:(\d+):/.exec(r.stderr);
        const n = lines ? Number(lines[1]) : 0;
        const context = json ? '' : `\n--- around line ${n} ---\n${body.split('\n').slice(Math.max(0, n - 4), n + 2).join('\n')}`;
        throw new Error(`nft ${json ? '-j ' : ''}-c -f rejected the ${json ? 'JSON' : 'text'} render (exit ${r.exitCode}):\n${r.stderr}${context}`);
      }
    };

    const title = `(b)(c) the kernel parser accepts the text (nft -c -f) and JSON (nft -j -c -f) renders${kernelSkipReason ? ` [skipped: ${kernelSkipReason}]` : ''}`;
    it.skipIf(kernelSkipReason !== undefined)(title, async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(snapshotArb, async (snap) => {
          const c = compileAll(snap.entries);
          const n = run++;
          const textFile = join(dir!, `ruleset-${n}.nft`);
          const jsonFile = join(dir!, `ruleset-${n}.json`);
          await writeFile(textFile, c.text);
          await writeFile(jsonFile, c.json);
          await nftCheck(textFile, false, c.text);
          await nftCheck(jsonFile, true, c.json);
        }),
        // Shrinking a failure costs two nft runs per step: cap it so that a failing run still
        // ends (with the smallest counterexample found so far) well inside the test timeout.
        { numRuns: 30, examples: [[maxLengthExample()]], interruptAfterTimeLimit: 45_000, markInterruptAsFailure: true },
      );
    }, 120_000);

    // The netlink writer (the daemon's path: compileParts -> kernelFamily -> one batch) and
    // `nft -f` of dump's text must leave the same table for every snapshot, hostile ones too.
    const eqTitle = `(f) the netlink writer builds the table nft -f builds from the text${kernelSkipReason ? ` [skipped: ${kernelSkipReason}]` : ''}`;
    it.skipIf(kernelSkipReason !== undefined)(eqTitle, async () => {
      await withEquivalence('propeq', async (pair) => {
        await fc.assert(
          fc.asyncProperty(snapshotArb, async (snap) => {
            const c = compileAll(snap.entries);
            const fams = compileParts(c.built.model, CFG).map(kernelFamily);
            const { netlink, nft } = await pair.load(fams, c.text);
            expect(netlink).toBe(nft);
          }),
          { numRuns: 25, examples: [[maxLengthExample()]], interruptAfterTimeLimit: 45_000, markInterruptAsFailure: true },
        );
      });
    }, 120_000);

    // Two Services that claim one (IP, protocol, port) would put one key twice into map
    // service-ips, and the kernel refuses the whole transaction ("File exists"): one hostile
    // Service (any user may set externalIPs) would stop every Service on the node. The model
    // keeps the first claimant and skips the other with an address-conflict diagnostic.
    for (const c of IP_COLLISIONS) {
      it.skipIf(kernelSkipReason !== undefined)(`ip-collision: ${c.title}: ${c.skipped} skipped, the kernel accepts the rest${kernelSkipReason ? ` [skipped: ${kernelSkipReason}]` : ''}`, async () => {
        const compiled = compileAll(c.entries);
        expect(compiled.built.diagnostics.map((d) => [d.object, d.code])).toEqual([[c.skipped, 'address-conflict']]);
        const file = join(dir!, `collision-${c.title.replace(/[^a-z0-9]+/gi, '-')}.nft`);
        await writeFile(file, compiled.text);
        await nftCheck(file, false, compiled.text);
      });
    }
  });
});

// Two valid services whose destinations collide; each alone loads fine.
function collisionService(name: string, clusterIP: string, externalIPs: string[], epIP: string): Entry[] {
  return [
    {
      object: { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name }, spec: { clusterIP, externalIPs, ports: [{ port: 80, protocol: 'TCP' }] } },
      origin: `collision-${name}`, expect: { t: 'none' },
    },
    {
      object: {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { namespace: 'default', name: `${name}-1`, labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv4', ports: [{ port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: [epIP], conditions: { ready: true } }],
      },
      origin: `collision-${name}-slice`, expect: { t: 'none' },
    },
  ];
}

const IP_COLLISIONS: readonly { title: string; skipped: string; entries: Entry[] }[] = [
  { title: 'two services with one externalIP', skipped: 'default/b', entries: [...collisionService('a', '10.96.0.10', ['192.0.2.1'], '10.244.0.1'), ...collisionService('b', '10.96.0.11', ['192.0.2.1'], '10.244.0.2')] },
  { title: "an externalIP equal to another service's clusterIP", skipped: 'default/b', entries: [...collisionService('a', '10.96.0.10', [], '10.244.0.1'), ...collisionService('b', '10.96.0.11', ['10.96.0.10'], '10.244.0.2')] },
  { title: 'an externalIP equal to its own clusterIP', skipped: 'default/a', entries: collisionService('a', '10.96.0.10', ['10.96.0.10'], '10.244.0.1') },
  { title: 'two services with one clusterIP', skipped: 'default/b', entries: [...collisionService('a', '10.96.0.10', [], '10.244.0.1'), ...collisionService('b', '10.96.0.10', [], '10.244.0.2')] },
];
