// `nftproxy verify`: does the kernel hold what nftproxy intends? Reads nftproxy's tables of
// this network namespace over netlink and compares them (inspect/verify.ts) with the daemon's
// last sync (its socket) or with what -f / --kubeconfig compile to.
//
// A consistent view: the ruleset generation is read before and after the tables; if anything
// changed the ruleset meanwhile (a sync, another process), the tables are read again. Against
// the daemon, its ruleset is asked again too when it synced during the read.
import type { Family } from '../ir/types.js';
import { TABLE_NAME } from '../ir/types.js';
import { NetlinkError, NfSocket } from '../apply/netlink/socket.js';
import { type KernelTable, readElements, readSet, readTable } from '../apply/netlink/dump.js';
import { kernelFamilyOfTable } from '../render/kernel/family.js';
import { type VerifyReport, anonReader, compareAll, formatVerify, servicePortLabel } from '../inspect/verify.js';
import { type Live, type LiveOpts, askDaemon, loadLive, sourceOf, usage } from './live-inputs.js';
import type { Io } from './main.js';

export interface VerifyOpts extends LiveOpts {
  json?: boolean;
}

const FAMILIES: readonly Family[] = ['ip', 'ip6'];
const ATTEMPTS = 5;

function readKernel(sock: NfSocket): Map<Family, KernelTable | undefined> {
  const out = new Map<Family, KernelTable | undefined>();
  for (const f of FAMILIES) out.set(f, readTable(sock, f, TABLE_NAME));
  return out;
}

export async function runVerify(o: VerifyOpts, io: Io): Promise<number> {
  const fromDaemon = sourceOf(o).kind === 'daemon';
  let live: Live = await loadLive(o, (l) => io.err(`${l}\n`));
  let sock: NfSocket;
  try {
    sock = NfSocket.open();
    sock.generation();
  } catch (e) {
    io.err(`nftproxy verify: cannot read the kernel's tables: ${(e as Error).message}\n`);
    return 3;
  }
  try {
    let report: VerifyReport | undefined;
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const gen = sock.generation();
      const kernel = readKernel(sock);
      const anon = (f: Family) => anonReader((name) => {
        const decl = readSet(sock, f, TABLE_NAME, name);
        return decl ? { decl, elements: readElements(sock, f, TABLE_NAME, name) } : undefined;
      });
      report = compareAll(live.ruleset.tables.map(kernelFamilyOfTable), kernel, anon, live.ruleset.servicePorts);
      const changed = sock.generation() !== gen;
      let resynced = false;
      if (fromDaemon) {
        const s = await askDaemon<{ lastSuccess: string | null }>(o.socket, '/v1/summary').catch(usage);
        resynced = s.lastSuccess !== null && Date.parse(s.lastSuccess) !== live.syncedAt;
      }
      if (!changed && !resynced) break;
      if (attempt === ATTEMPTS) { io.err(`nftproxy verify: the ruleset kept changing during ${ATTEMPTS} reads; the report below may show a change in flight\n`); break; }
      if (resynced) live = await loadLive(o, () => undefined);
    }
    const r = report!;
    const ports = live.ruleset.servicePorts;
    if (o.json) {
      io.out(`${JSON.stringify({
        ok: r.differences.length === 0,
        source: live.from,
        compared: r.compared,
        differences: r.differences.map((d) => ({ ...d, servicePorts: d.owners.map((id) => servicePortLabel(id, d.family, ports)) })),
      }, null, 2)}\n`);
    } else io.out(formatVerify(r, ports));
    return r.differences.length === 0 ? 0 : 1;
  } catch (e) {
    if (!(e instanceof NetlinkError)) throw e;
    io.err(`nftproxy verify: reading the kernel's tables failed: ${e.message}\n`);
    return 3;
  } finally {
    sock.close();
  }
}
