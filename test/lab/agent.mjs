// Traffic agent for the datapath lab: one long-lived process per network namespace,
// started as `ip netns exec NS node test/lab/agent.mjs NAME`. Plain JS so it runs under
// node without a build step.
//
// Protocol: JSON lines. Each request carries an `id`; the answer echoes it.
//   {"id":1,"op":"ping"}                                       -> {"id":1,"ok":true}
//   {"id":2,"op":"listen","proto":"tcp","port":80,"host":"::"} -> {"id":2,"ok":true}
//   {"id":3,"op":"connect","proto":"udp","host":"172.30.0.42","port":53,
//    "src":"10.180.0.2","count":40,"timeoutMs":800}           -> {"id":3,"tries":[...]}
// A try is {"ok":true,"name":..,"saw":..,"port":..} (what the server answered) or
// {"ok":false,"err":"refused"|"timeout"|"unreachable"|<errno code>}: refused is ECONNREFUSED
// (ICMP port unreachable, or a TCP RST), unreachable any other ICMP error.
//
// Servers answer every TCP connection and every UDP datagram with
// {"name":NAME,"saw":<remote address>,"port":<local port>}: `saw` tells the lab whether the
// source was masqueraded, `port` which targetPort the DNAT chose.
//
// The agent exits when its stdin closes, so a crashed test never leaves it running.
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';

const NAME = process.argv[2] ?? 'agent';
const servers = [];

// Listening on "::" accepts IPv4 too; those peers show up as ::ffff:a.b.c.d.
const plain = (addr) => (addr && addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr);
const reply = (saw, port) => JSON.stringify({ name: NAME, saw: plain(saw), port });

function listen({ proto, port, host = '::' }) {
  return new Promise((resolve, reject) => {
    if (proto === 'tcp') {
      const srv = net.createServer((sock) => {
        sock.on('error', () => {});
        sock.end(reply(sock.remoteAddress, sock.localPort) + '\n');
      });
      srv.once('error', reject);
      srv.listen({ port, host, ipv6Only: false }, () => { servers.push(srv); resolve(); });
    } else if (proto === 'udp') {
      const srv = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
      srv.on('message', (_msg, rinfo) => srv.send(reply(rinfo.address, srv.address().port), rinfo.port, rinfo.address));
      srv.once('error', reject);
      srv.bind({ port, address: host }, () => { srv.removeListener('error', reject); srv.on('error', () => {}); servers.push(srv); resolve(); });
    } else reject(new Error(`unsupported protocol ${proto}`));
  });
}

const errName = (e) => {
  switch (e?.code) {
    case 'ECONNREFUSED': return 'refused';
    // EACCES: ICMPv6 administratively prohibited, which the lab's upstream sends (topology.ts).
    case 'EHOSTUNREACH': case 'ENETUNREACH': case 'EACCES': return 'unreachable';
    default: return e?.code ?? String(e);
  }
};

function parseAnswer(text) {
  try {
    const m = JSON.parse(text);
    return { ok: true, name: m.name, saw: m.saw, port: m.port };
  } catch {
    return { ok: false, err: `garbled answer ${JSON.stringify(text.slice(0, 80))}` };
  }
}

// One TCP try on a fresh socket (fresh source port). A SYN answered by ICMP port
// unreachable fails the connect with ECONNREFUSED; a dropped SYN is retried by the kernel
// only after 1 s, so a short timeout sees exactly one SYN.
function tcpTry({ host, port, src, timeoutMs }) {
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const finish = (r) => { if (!done) { done = true; clearTimeout(timer); sock.destroy(); resolve(r); } };
    const sock = net.connect({ host, port, ...(src ? { localAddress: src } : {}) });
    const timer = setTimeout(() => finish({ ok: false, err: 'timeout' }), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => finish(parseAnswer(data)));
    sock.on('error', (e) => finish({ ok: false, err: errName(e) }));
  });
}

// One UDP try on a fresh socket. The socket is connect()ed: only a connected UDP socket
// gets the ICMP port unreachable of a reject back, as an ECONNREFUSED 'error' event.
function udpTry({ host, port, src, timeoutMs }) {
  return new Promise((resolve) => {
    let done = false;
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const finish = (r) => { if (!done) { done = true; clearTimeout(timer); try { sock.close(); } catch { /* already closed */ } resolve(r); } };
    const timer = setTimeout(() => finish({ ok: false, err: 'timeout' }), timeoutMs);
    sock.on('message', (msg) => finish(parseAnswer(msg.toString('utf8'))));
    sock.on('error', (e) => finish({ ok: false, err: errName(e) }));
    sock.bind({ port: 0, ...(src ? { address: src } : {}) }, () => {
      sock.connect(port, host, (e) => {
        if (e) return finish({ ok: false, err: errName(e) });
        sock.send('probe', (e2) => { if (e2) finish({ ok: false, err: errName(e2) }); });
      });
    });
  });
}

async function connect(req) {
  const one = req.proto === 'tcp' ? tcpTry : req.proto === 'udp' ? udpTry : null;
  if (!one) throw new Error(`unsupported protocol ${req.proto}`);
  // All tries at once: a drop then costs one timeout, not `count` of them.
  return Promise.all(Array.from({ length: req.count }, () => one(req)));
}

async function handle(req) {
  switch (req.op) {
    case 'ping': return { ok: true, name: NAME };
    case 'listen': await listen(req); return { ok: true };
    case 'connect': return { tries: await connect(req) };
    default: throw new Error(`unknown op ${req.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let req;
  try { req = JSON.parse(line); } catch { return; }
  handle(req).then(
    (res) => process.stdout.write(JSON.stringify({ id: req.id, ...res }) + '\n'),
    (e) => process.stdout.write(JSON.stringify({ id: req.id, error: String(e?.message ?? e) }) + '\n'),
  );
});
rl.on('close', () => {
  for (const s of servers) try { s.close(); } catch { /* closing anyway */ }
  process.exit(0);
});
