// A demo client: COUNT fresh TCP connections to HOST:PORT, then a tally of who answered.
import { connect } from 'node:net';
const [host, port, count = '30'] = process.argv.slice(2);
const tally = new Map();
for (let i = 0; i < Number(count); i++) {
  const answer = await new Promise((resolve) => {
    const s = connect({ host, port: Number(port), timeout: 1000 });
    let buf = '';
    s.on('data', (d) => { buf += d; });
    s.on('end', () => resolve(buf.trim().replace(/ \(saw .*\)$/, '')));
    s.on('timeout', () => { s.destroy(); resolve('(timeout)'); });
    s.on('error', (e) => resolve(`(${e.code})`));
  });
  tally.set(answer, (tally.get(answer) ?? 0) + 1);
}
console.log(`  ${host}:${port} x${count}: ${[...tally].sort().map(([k, v]) => `${k} ${v}`).join(', ')}`);
