// KeyBuilder builds dnat-map keys and values in one piece; its bytes must be the field
// functions' bytes, concatenated (those are what the golden encoder test pins).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyBuilder, addrField, portField, protoField, wordField } from '../../src/render/kernel/bytes.js';
import type { Protocol } from '../../src/model/types.js';

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const v6 = fc.constantFrom('fd00:10:96::a', '::1', '2001:db8::', 'fd00::10:244:1:7', '2001:db8:1:2:3:4:5:6');
const proto = fc.constantFrom<Protocol>('tcp', 'udp', 'sctp');

describe('KeyBuilder', () => {
  it('vip key (addr . proto . port . slot) and value (addr . port) equal the fields concatenated', () => {
    const k = new KeyBuilder();
    fc.assert(fc.property(fc.oneof(v4, v6), proto, fc.nat(65535), fc.nat(0xffffffff), fc.oneof(v4, v6), fc.nat(65535), (a, p, port, slot, b, bport) => {
      expect(k.addr(a).proto(p).port(port).word(slot).take()).toBe(addrField(a) + protoField(p) + portField(port) + wordField(slot));
      expect(k.addr(b).port(bport).take()).toBe(addrField(b) + portField(bport));
      expect(k.proto(p).port(port).word(slot).take()).toBe(protoField(p) + portField(port) + wordField(slot));
    }), { numRuns: 1000 });
  });
});
