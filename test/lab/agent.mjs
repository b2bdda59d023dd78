// Traffic agent for the datapath lab: one long-lived process per network namespace,
// started as `ip netns exec NS node test/lab/agent.mjs NAME`. Plain JS so it runs under
// node without a build step.
//
// Protocol: JSON lines. Each request carries an `id`; the answer echoes it.
//   {"id":1,"op":"ping"}                                       -> {"id":1,"ok":true}
//   {"id":2,"op":"listen","proto":"tcp","port":80,"host":"::"} -> {"id":2,"ok":true}
//   {"id":3,"op":"connect","proto":"udp","host":"172.30.0.42","port":53,
//    "src":"10.180.0.2","count":40,"timeoutMs":800}           -> {"id":3,"tries":[...]}
//   {"id":4,"op":"loop","loop":"L1","proto":"tcp","host":..,"port":80,"src":..,
//    "mode":"fresh","sports":[20000,20999],"intervalMs":5,"timeoutMs":800}  -> {"id":4,"ok":true}
//   {"id":5,"op":"loopCount","loop":"L1","since":1700000000000}  -> {"id":5,"count":12}
//   {"id":6,"op":"peek","loop":"L1","since":1700000000000}       -> {"id":6,"records":[...]}
//   {"id":7,"op":"stop","loop":"L1"}                            -> {"id":7,"records":[...]}
// A try is {"ok":true,"name":..,"saw":..,"port":..} (what the server answered) or
// {"ok":false,"err":"refused"|"timeout"|"unreachable"|<errno code>}: refused is ECONNREFUSED
// (ICMP port unreachable, or a TCP RST), unreachable any other ICMP error.
//
// A loop keeps trying until stopped, one try at a time, `intervalMs` apart, and records
// each as a try plus {"t0":<ms since epoch when the try began>,"t1":<when it ended>}.
// mode "fresh": a new socket per try, its source port the next of `sports` [first, last]
// (never a kernel-chosen one: no port is reused within a loop, so every try is a new
// conntrack flow; the range must lie below the ephemeral range). Running out of ports ends
// the loop with a failed try {"ok":false,"err":"out of source ports"}.
// mode "socket" (UDP only): ONE connected socket, bound to sports[0], sends a datagram per
// try and waits for the answer: one conntrack flow for the whole loop.
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
//
// A drop is the kernel's verdict: no handshake within timeoutMs. Once the handshake is done
// the packets have landed, and the answer waits only on the server agent being scheduled,
// which a loaded machine can delay by seconds: it gets ANSWER_MS. A timer that fires while
// the handshake's completion is already queued must not call it a drop: the verdict is given
// in the check phase, after the event loop's poll phase has delivered what the kernel did.
const ANSWER_MS = 15_000;
const afterPoll = (fn) => setImmediate(fn);

function tcpTry({ host, port, src, sport, timeoutMs }) {
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    let connected = false;
    const finish = (r) => { if (!done) { done = true; clearTimeout(timer); sock.destroy(); resolve(r); } };
    const sock = net.connect({ host, port, ...(src ? { localAddress: src } : {}), ...(sport ? { localPort: sport } : {}) });
    let timer = setTimeout(() => afterPoll(() => { if (!connected) finish({ ok: false, err: 'timeout' }); }), timeoutMs);
    sock.on('connect', () => {
      connected = true;
      clearTimeout(timer);
      timer = setTimeout(() => finish({ ok: false, err: 'no answer after the handshake' }), ANSWER_MS);
    });
    sock.setEncoding('utf8');
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => finish(parseAnswer(data)));
    sock.on('error', (e) => finish({ ok: false, err: errName(e) }));
  });
}

// One UDP try on a fresh socket. The socket is connect()ed: only a connected UDP socket
// gets the ICMP port unreachable of a reject back, as an ECONNREFUSED 'error' event.
function udpTry({ host, port, src, sport, timeoutMs }) {
  return new Promise((resolve) => {
    let done = false;
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const finish = (r) => { if (!done) { done = true; clearTimeout(timer); try { sock.close(); } catch { /* already closed */ } resolve(r); } };
    const timer = setTimeout(() => afterPoll(() => finish({ ok: false, err: 'timeout' })), timeoutMs);
    sock.on('message', (msg) => finish(parseAnswer(msg.toString('utf8'))));
    sock.on('error', (e) => finish({ ok: false, err: errName(e) }));
    sock.bind({ port: sport ?? 0, ...(src ? { address: src } : {}) }, () => {
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

const loops = new Map();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One connected UDP socket for a whole loop; try() sends one datagram and waits for its
// answer (or an ICMP error, or the timeout). An answer arriving while no try waits is
// dropped; one arriving after its own try timed out but during the next try would be
// credited to that one: choose a timeout no answer in the lab ever needs.
async function connectedUdp({ host, port, src, sport }) {
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  let waiting;
  sock.on('message', (msg) => { const w = waiting; waiting = undefined; w?.(parseAnswer(msg.toString('utf8'))); });
  sock.on('error', (e) => { const w = waiting; waiting = undefined; w?.({ ok: false, err: errName(e) }); });
  await new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ port: sport, ...(src ? { address: src } : {}) }, () => {
      sock.connect(port, host, (e) => { sock.removeListener('error', reject); if (e) reject(e); else resolve(); });
    });
  });
  return {
    try: (timeoutMs) => new Promise((resolve) => {
      const timer = setTimeout(() => { waiting = undefined; resolve({ ok: false, err: 'timeout' }); }, timeoutMs);
      waiting = (r) => { clearTimeout(timer); resolve(r); };
      sock.send('probe', (e) => { if (e && waiting) { const w = waiting; waiting = undefined; w({ ok: false, err: errName(e) }); } });
    }),
    close: () => { try { sock.close(); } catch { /* already closed */ } },
  };
}

async function startLoop(req) {
  if (loops.has(req.loop)) throw new Error(`loop ${req.loop} exists`);
  const [first, last] = req.sports;
  const state = { records: [], stopped: false };
  let next;
  if (req.mode === 'socket') {
    if (req.proto !== 'udp') throw new Error('mode socket is UDP only');
    const s = await connectedUdp({ ...req, sport: first });
    next = () => s.try(req.timeoutMs);
    state.close = s.close;
  } else if (req.mode === 'fresh') {
    const one = req.proto === 'tcp' ? tcpTry : req.proto === 'udp' ? udpTry : null;
    if (!one) throw new Error(`unsupported protocol ${req.proto}`);
    let sport = first;
    next = () => (sport > last ? null : one({ ...req, sport: sport++ }));
  } else throw new Error(`unknown loop mode ${req.mode}`);
  loops.set(req.loop, state);
  state.done = (async () => {
    while (!state.stopped) {
      const t0 = Date.now();
      const pending = next();
      if (pending === null) { state.records.push({ t0, t1: t0, ok: false, err: 'out of source ports' }); break; }
      const r = await pending;
      state.records.push({ t0, t1: Date.now(), ...r });
      if (req.intervalMs > 0) await sleep(req.intervalMs);
      else await new Promise((res) => setImmediate(res));
    }
    state.close?.();
  })();
}

async function stopLoop(req) {
  const state = loops.get(req.loop);
  if (!state) throw new Error(`no loop ${req.loop}`);
  state.stopped = true;
  await state.done;
  loops.delete(req.loop);
  return state.records;
}

function loopRecords(req) {
  const state = loops.get(req.loop);
  if (!state) throw new Error(`no loop ${req.loop}`);
  return state.records.filter((r) => r.t0 > req.since);
}

async function handle(req) {
  switch (req.op) {
    case 'ping': return { ok: true, name: NAME };
    case 'listen': await listen(req); return { ok: true };
    case 'connect': return { tries: await connect(req) };
    case 'loop': await startLoop(req); return { ok: true };
    case 'loopCount': return { count: loopRecords(req).length };
    case 'peek': return { records: loopRecords(req) };
    case 'stop': return { records: await stopLoop(req) };
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
