// The kernel's floor under every transaction: how a tiny commit's time grows with the number
// of chains in the network namespace. nf_tables' commit flips the rule generation of every
// chain of every table, whether the transaction touched it or not, so a one-element change
// costs more in a table with many chains. Each size: 400 commits through nftproxy's own
// netlink writer, alternately adding and deleting one element of a set beside N empty
// chains, in a throwaway namespace.
// After `make build`, as root:  node bench/commit-floor.mjs [N,N,...]
import { execa } from 'execa';
import { NfSocket } from '../dist/src/apply/netlink/socket.js';
import { encodeBatch } from '../dist/src/apply/netlink/encode.js';
import { kelement } from '../dist/src/render/kernel/objects.js';

const ns = `npfloor-${process.pid}`;
const sizes = (process.argv[2] ?? '0,1000,5000,10000,20000,40000').split(',').map(Number);
await execa('ip', ['netns', 'add', ns]);
let sock;
try {
  sock = NfSocket.open({ netns: `/run/netns/${ns}` });
  let have = 0;
  for (const n of sizes) {
    let text = have === 0 ? 'table ip floor {\n set s { type ipv4_addr; }\n}\n' : '';
    for (let i = have; i < n; i++) text += `add chain ip floor c${i}\n`;
    await execa('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: text });
    have = Math.max(have, n);
    const times = [];
    for (let i = 0; i < 400; i++) {
      const k = i >> 1;
      const el = kelement('addr', { key: [`10.9.${(k >> 8) & 255}.${k & 255}`] });
      const op = { family: 'ip', table: 'floor', op: i % 2 ? 'delete-elements' : 'add-elements', set: 's', shape: 'addr', elements: [el] };
      const batch = encodeBatch([op], sock.seqs(0));
      sock.seqs(batch.lastSeq - batch.firstSeq + 3);
      const t0 = performance.now();
      await sock.commit(batch);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(`${String(n).padStart(6)} chains: one-element commit p50 ${times[200].toFixed(3)} ms, p90 ${times[360].toFixed(3)} ms`);
  }
} finally {
  sock?.close();
  await execa('ip', ['netns', 'del', ns], { reject: false });
}
