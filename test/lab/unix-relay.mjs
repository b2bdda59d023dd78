// A TCP-to-Unix-socket relay for the multi-node lab (cluster.ts): started inside a node's
// network namespace as `ip netns exec NS node test/lab/unix-relay.mjs SOCKET [HOST] [PORT]`,
// it listens on HOST:PORT (default 127.0.0.1:6443) there and pipes every connection, bytes
// only, to the Unix socket SOCKET, where the test process's fake API server listens. TLS
// passes through untouched: the client verifies the fake's certificate (SAN 127.0.0.1).
// So a daemon in the namespace reaches the API server at https://127.0.0.1:6443 without
// anything listening in the root namespace's network.
//
// When the Unix socket is gone or refuses (the fake is stopped), the accepted connection is
// closed at once: the client sees its connection reset, as with a crashed API server.
// Prints "listening" once ready; exits when its stdin closes, so a crashed test never leaves
// it running. Plain JS so it runs under node without a build step.
import net from 'node:net';

const [socketPath, host = '127.0.0.1', portText = '6443'] = process.argv.slice(2);
if (!socketPath) {
  process.stderr.write('usage: unix-relay.mjs SOCKET [HOST] [PORT]\n');
  process.exit(2);
}

const server = net.createServer((client) => {
  const upstream = net.connect(socketPath);
  const cut = () => { client.destroy(); upstream.destroy(); };
  client.on('error', cut);
  upstream.on('error', cut);
  client.on('close', cut);
  upstream.on('close', cut);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.on('error', (e) => {
  process.stderr.write(`unix-relay: ${e.message}\n`);
  process.exit(1);
});
server.listen(Number(portText), host, () => process.stdout.write('listening\n'));

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
