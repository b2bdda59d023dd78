// Socket probe for test/bpf/sock-lb.kernel.test.ts: one process, server and/or client,
// speaking JSON lines on stdin/stdout (every request has an `id`, echoed in the answer).
// Plain JS so it runs under node without a build step. Exits when stdin closes.
//
//   {"op":"ping"}                                      -> {"ok":true,"pid":N}
//   {"op":"listen","proto":"tcp"|"udp","host":H,"port":P,"name":S}
//        servers answer every TCP connection / UDP datagram with
//        {"name":S,"local":<local addr>,"lport":<local port>,"saw":<remote addr>}
//   {"op":"tcp","host":H,"port":P,"timeoutMs":T,"src"?:A} -> {"ok":true,"reply":{..},"peer":{"address","port"}}
//                                                         | {"ok":false,"err":CODE}
//        peer: getpeername() of the connected socket (what the application sees)
//   {"op":"tcpLoop","host":H,"port":P,"durationMs":D}  -> {"tries":[{"ok","name"|"err","t0","t1"}...]}: one connect
//        after the other for D ms; t0/t1: when each began and ended (Date.now())
//   {"op":"udp","host":H,"port":P,"timeoutMs":T,"src"?:A} -> {"ok":true,"reply":{..},"from":{"address","port"}}
//        a fresh unconnected socket: sendto() + recvfrom(); from: the datagram's source as seen
//   src: bind the client socket to this source address first (default: let the route choose)
//   {"op":"udpOpen","sid":S,"host":H,"port":P}         -> {"ok":true,"peer":{"address","port"}}  (connected UDP)
//   {"op":"udpSend","sid":S,"timeoutMs":T}             -> {"ok":true,"reply":{..},"from":{..}} | {"ok":false,"err"}
//   {"op":"udpErrors","sid":S}                         -> {"errors":[CODE...]}
//   {"op":"udpClose","sid":S}                          -> {"ok":true}
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';

const plain = (a) => (a && a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);
const family = (h) => (net.isIPv6(h) ? 'udp6' : 'udp4');
const keep = [];
const udpSockets = new Map();

function listen({ proto, host, port, name }) {
  return new Promise((resolve, reject) => {
    if (proto === 'tcp') {
      const srv = net.createServer((s) => {
        s.on('error', () => {});
        s.end(JSON.stringify({ name, local: plain(s.localAddress), lport: s.localPort, saw: plain(s.remoteAddress) }) + '\n');
      });
      srv.once('error', reject);
      srv.listen({ host, port, exclusive: true }, () => { keep.push(srv); resolve({ ok: true }); });
    } else {
      const srv = dgram.createSocket({ type: family(host) });
      srv.on('message', (_m, r) => {
        const a = srv.address();
        srv.send(JSON.stringify({ name, local: plain(a.address), lport: a.port, saw: plain(r.address) }), r.port, r.address);
      });
      srv.once('error', reject);
      srv.bind({ address: host, port }, () => { srv.removeListener('error', reject); srv.on('error', () => {}); keep.push(srv); resolve({ ok: true }); });
    }
  });
}

function tcp({ host, port, timeoutMs = 1500, src }) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, ...(src ? { localAddress: src } : {}) });
    let data = '';
    let peer = null;
    const done = (r) => { clearTimeout(t); s.destroy(); resolve(r); };
    const t = setTimeout(() => done({ ok: false, err: 'timeout' }), timeoutMs);
    s.on('connect', () => { peer = { address: plain(s.remoteAddress), port: s.remotePort }; });
    s.on('data', (d) => { data += d; });
    s.on('end', () => {
      try { done({ ok: true, reply: JSON.parse(data), peer }); } catch { done({ ok: false, err: `bad reply ${JSON.stringify(data)}` }); }
    });
    s.on('error', (e) => done({ ok: false, err: e.code ?? String(e) }));
  });
}

async function tcpLoop({ host, port, durationMs }) {
  const tries = [];
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    const t0 = Date.now();
    const r = await tcp({ host, port, timeoutMs: 1500 });
    tries.push({ ...(r.ok ? { ok: true, name: r.reply.name } : r), t0, t1: Date.now() });
  }
  return { tries };
}

function udpExchange(sock, send, timeoutMs) {
  return new Promise((resolve) => {
    const onMsg = (m, r) => { done({ ok: true, reply: JSON.parse(String(m)), from: { address: plain(r.address), port: r.port } }); };
    const onErr = (e) => done({ ok: false, err: e.code ?? String(e) });
    const done = (r) => { clearTimeout(t); sock.off('message', onMsg); sock.off('error', onErr); resolve(r); };
    const t = setTimeout(() => done({ ok: false, err: 'timeout' }), timeoutMs);
    sock.on('message', onMsg);
    sock.on('error', onErr);
    try { send((e) => { if (e) done({ ok: false, err: e.code ?? String(e) }); }); } catch (e) { done({ ok: false, err: e.code ?? String(e) }); }
  });
}

async function udp({ host, port, timeoutMs = 1500, src }) {
  const sock = dgram.createSocket(family(host));
  await new Promise((r) => sock.bind({ port: 0, ...(src ? { address: src } : {}) }, r));
  try {
    return await udpExchange(sock, (cb) => sock.send('q', port, host, cb), timeoutMs);
  } finally {
    sock.close();
  }
}

async function udpOpen({ sid, host, port }) {
  const sock = dgram.createSocket(family(host));
  const state = { sock, errors: [] };
  sock.on('error', (e) => state.errors.push(e.code ?? String(e)));
  udpSockets.set(sid, state);
  await new Promise((resolve, reject) => sock.connect(port, host, (e) => (e ? reject(e) : resolve())));
  const r = sock.remoteAddress();
  return { ok: true, peer: { address: plain(r.address), port: r.port } };
}

async function handle(req) {
  switch (req.op) {
    case 'ping': return { ok: true, pid: process.pid };
    case 'listen': return listen(req);
    case 'tcp': return tcp(req);
    case 'tcpLoop': return tcpLoop(req);
    case 'udp': return udp(req);
    case 'udpOpen': return udpOpen(req);
    case 'udpSend': {
      const st = udpSockets.get(req.sid);
      return udpExchange(st.sock, (cb) => st.sock.send('q', cb), req.timeoutMs ?? 1500);
    }
    case 'udpErrors': return { errors: udpSockets.get(req.sid).errors };
    case 'udpClose': { udpSockets.get(req.sid)?.sock.close(); udpSockets.delete(req.sid); return { ok: true }; }
    default: throw new Error(`unknown op ${req.op}`);
  }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let req;
  try { req = JSON.parse(line); } catch { return; }
  handle(req).then(
    (r) => process.stdout.write(JSON.stringify({ id: req.id, ...r }) + '\n'),
    (e) => process.stdout.write(JSON.stringify({ id: req.id, error: String(e?.message ?? e) }) + '\n'),
  );
}).on('close', () => process.exit(0));
