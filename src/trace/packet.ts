// The packet explain and trace are asked about, from the command line (--src, --dst, --proto)
// or the daemon's socket (?src=&dst=&proto=): validated like any other input.
import { familyOf, parseIP } from '../model/ip.js';
import type { Protocol } from '../model/types.js';
import { type Result, err, ok } from '../model/result.js';
import type { Packet } from './trace.js';

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

export function parsePacket(src: string, dst: string, proto: string): Result<Packet, string> {
  const s = parseIP(src);
  if (!s.ok) return err(`--src: ${s.error}`);
  const m = dst.match(/^\[?([^\]]+?)\]?:(\d{1,5})$/);
  const d = m ? parseIP(m[1]!) : undefined;
  const port = m ? Number(m[2]) : 0;
  if (!d?.ok || port < 1 || port > 65535) return err(`--dst ${dst} is not IP:PORT (IPv6: [addr]:port)`);
  if (familyOf(s.value) !== familyOf(d.value)) return err(`--src ${src} and --dst ${dst} are of different IP families`);
  if (!(PROTOCOLS as readonly string[]).includes(proto)) return err(`--proto ${proto} is not one of ${PROTOCOLS.join(', ')}`);
  return ok({ src: s.value, dst: d.value, proto: proto as Protocol, dport: port });
}
