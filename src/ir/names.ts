// Chain and set names: a hash of the object's identity plus a readable suffix, as
// kube-proxy does. The suffix is built only from validated DNS labels, protocol names,
// digits, and IP text, so it can never contain nft syntax.
import { hash } from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
// nft allows 255 characters; leave room so the prefix and hash always fit.
const MAX_NAME = 200;

function shortHash(s: string): string {
  // crypto.hash: one call, no Hash object (about 3x faster than createHash for names this short)
  const digest = hash('sha256', s, 'buffer');
  let bits = 0, value = 0, out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 8) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= 8) break;
  }
  return out;
}

/** A shared object's name part: 8 base32 characters of the SHA-256 of what it holds. */
export const contentHash = (content: string): string => shortHash(content);

/** identity of a service port: "ns/name/proto/portName" */
export function servicePortId(ns: string, name: string, proto: string, portName: string): string {
  return `${ns}/${name}/${proto}/${portName}`;
}

export type ChainPrefix = 'service' | 'local' | 'external' | 'firewall';

// Names remembered per prefix and id: a service compiled again (every change to it) names the
// same chains, and their SHA-256s were about a third of compiling the service (measured when
// session affinity still made a chain per endpoint). Bounded: a map is emptied past 500,000
// names (a name made again is the same).
const NAMES: Record<ChainPrefix, Map<string, string>> = { service: new Map(), local: new Map(), external: new Map(), firewall: new Map() };
const MAX_REMEMBERED = 500_000;

export function objectName(prefix: ChainPrefix, id: string): string {
  const m = NAMES[prefix];
  let name = m.get(id);
  if (name === undefined) {
    const full = `${prefix}-${shortHash(id)}-${id.replace(/:/g, '.')}`;
    name = full.length <= MAX_NAME ? full : `${full.slice(0, MAX_NAME - 3)}...`;
    if (m.size >= MAX_REMEMBERED) m.clear();
    m.set(id, name);
  }
  return name;
}

export function endpointId(spId: string, addr: string, port: number): string {
  return `${spId}__${addr}/${port}`;
}
