// The message writer's string and byte attributes, against the netlink layout written out by
// hand with Buffer (header: u16 length, u16 type; value; zero padding to 4). The writer sets
// bytes one by one on its fast paths (ASCII, latin1 keys) and falls back to UTF-8 for the rest:
// each row is one of those paths at each padding length.
import { describe, expect, it } from 'vitest';
import { MessageWriter, attrList, messages } from '../../../src/apply/netlink/attrs.js';

const attr = (type: number, value: Buffer): Buffer => {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
};

/** the attributes of one message the writer wrote with `write` */
function written(write: (w: MessageWriter) => void): Buffer {
  const w = new MessageWriter();
  w.begin(1, 0, 1, 2);
  write(w);
  w.end();
  const [m] = [...messages(Buffer.concat(w.finish()))];
  return m!.data.subarray(20);
}

const STRINGS: readonly (readonly [string, string])[] = [
  ['empty', ''],
  ['ASCII, value fills the word', 'abc'],
  ['ASCII, 1 byte of padding', 'nftproxy'],
  ['ASCII, 2 bytes of padding', 'service-ips'],
  ['ASCII, 3 bytes of padding', 'dnat-cluster-10'],
  ['2-byte UTF-8 after ASCII', 'café'],
  ['3-byte UTF-8 first', '€uro'],
  ['a surrogate pair', 'a😀b'],
];

describe('MessageWriter', () => {
  it.each(STRINGS)('str: %s', (_, s) => {
    expect(written((w) => w.str(7, s))).toEqual(attr(7, Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])])));
  });

  it.each(STRINGS)('udataString (a comment): %s', (_, s) => {
    const value = Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
    expect(written((w) => w.udataString(9, 0, s))).toEqual(attr(9, Buffer.concat([Buffer.from([0, value.length]), value])));
  });

  it('udataString refuses an item over 255 bytes', () => {
    expect(() => written((w) => w.udataString(9, 0, 'x'.repeat(255)))).toThrow(/over 255 bytes/);
  });

  it.each([1, 2, 3, 4, 5, 20])('latin1 key of %i bytes', (n) => {
    const bytes = Buffer.from(Array.from({ length: n }, (_, i) => (i * 97 + 255) & 0xff));
    expect(written((w) => w.latin1(1, bytes.toString('latin1')))).toEqual(attr(1, bytes));
  });

  it('u8, u32 (network order) and a nested attribute', () => {
    const got = written((w) => {
      const n = w.open(3);
      w.u32(1, 0xdeadbeef);
      w.u8(2, 0xab);
      w.close(n);
    });
    const inner = Buffer.concat([attr(1, Buffer.from([0xde, 0xad, 0xbe, 0xef])), attr(2, Buffer.from([0xab]))]);
    const outer = attr(3, inner);
    outer.writeUInt16LE(3 | 0x8000, 2);
    expect(got).toEqual(outer);
    expect(attrList(got).map(([t]) => t)).toEqual([3]);
  });
});
