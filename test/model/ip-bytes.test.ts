// Addresses as the kernel sends them (conntrack tuples, set elements) read back to the same
// canonical text the model makes from the API, so the two compare with ===.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ipFromBytes, parseIP } from '../../src/model/ip.js';
import { addrBytes } from '../../src/render/kernel/bytes.js';

describe('ipFromBytes', () => {
  it.each([
    ['10.0.0.1', [10, 0, 0, 1]],
    ['0.0.0.0', [0, 0, 0, 0]],
    ['fd00:10:96::a', [0xfd, 0, 0, 0x10, 0, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a]],
    ['::1', [...Array(15).fill(0), 1]],
  ])('%s', (want, bytes) => expect(ipFromBytes(Uint8Array.from(bytes))).toBe(want));

  it.each([[0], [5], [15], [17]])('refuses %i bytes', (n) => expect(ipFromBytes(new Uint8Array(n))).toBeUndefined());

  it('round-trips with the encoder and agrees with parseIP, IPv4 and IPv6', () => {
    fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
      const ip = parseIP(text);
      expect(ip.ok, text).toBe(true);
      if (ip.ok) expect(ipFromBytes(addrBytes(ip.value))).toBe(ip.value);
      return true;
    }), { numRuns: 300 });
  });
});
