// Read nftproxy's tables back from a test namespace as normalized JSON: handles dropped,
// set elements sorted, dynamic (kernel-filled) set contents dropped, objects sorted by kind
// and name while rules keep their order inside a chain. Two tables that normalize equal
// hold the same rules for every packet.
type Exec = (cmd: string[], input?: string) => Promise<{ stdout: string; stderr: string; exitCode: number }>;

export async function readKernelTables(exec: Exec): Promise<string> {
  const parts: unknown[] = [];
  for (const fam of ['ip', 'ip6']) {
    const r = await exec(['nft', '-j', 'list', 'table', fam, 'nftproxy']);
    if (r.exitCode !== 0) { parts.push({ family: fam, absent: true }); continue; }
    parts.push(normalize(JSON.parse(r.stdout)));
  }
  return JSON.stringify(parts, null, 1);
}

function normalize(doc: { nftables: Record<string, Record<string, unknown>>[] }): unknown {
  const objects: [string, unknown][] = [];
  const rules = new Map<string, unknown[]>();
  for (const item of doc.nftables) {
    const [kind, body] = Object.entries(item)[0]!;
    if (kind === 'metainfo') continue;
    const b = { ...body };
    delete b.handle;
    if (kind === 'rule') {
      const chain = String(b.chain);
      rules.set(chain, [...(rules.get(chain) ?? []), b.expr ?? null, b.comment ?? null]);
      continue;
    }
    if ((kind === 'set' || kind === 'map') && Array.isArray(b.flags) && (b.flags as string[]).includes('dynamic')) delete b.elem;
    if (Array.isArray(b.elem)) b.elem = [...b.elem].map((e) => JSON.stringify(e)).sort();
    objects.push([`${kind} ${String(b.name)}`, b]);
  }
  objects.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { objects: Object.fromEntries(objects), rules: Object.fromEntries([...rules.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) };
}
