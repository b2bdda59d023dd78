// A demo pod: answers every TCP connection on the given ports with its name and the
// source address it saw, then closes.
import { createServer } from 'node:net';
const [name, ...ports] = process.argv.slice(2);
for (const port of ports) {
  createServer((s) => s.end(`${name} (saw ${s.remoteAddress})\n`)).listen(Number(port), '0.0.0.0');
}
