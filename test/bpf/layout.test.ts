// native/layout.ts encodes exactly the bytes bpf/nftproxy_maps.h declares: sizes and
// offsets are compared with what a C compiler says about the header (when one is
// installed), and the encoders are checked byte for byte.
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  LOCAL_PROBE_MAX, OFFSETS, SIZES, addrBytes, addrString, decodeAffKey, decodeCidrKey, encodeCidrKey, decodeAffVal, decodeSvcKey, decodeSvcVal, encodeAffKey, encodeAffVal,
  encodeBeKey, encodeBeVal, encodeDeadKey, encodeMemberKey, encodeSvcKey, encodeSvcVal,
} from '../../native/layout.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cc = ['/usr/bin/clang', '/usr/bin/cc', '/usr/bin/gcc'].find((p) => existsSync(p));

describe('map layout', () => {
  it.skipIf(!cc)('matches the C header (sizeof / offsetof from a C compiler)', async () => {
    const lines: string[] = [];
    for (const [struct, size] of Object.entries(SIZES)) {
      if (!(struct in OFFSETS)) continue; // a plain u8 value
      lines.push(`printf("\\"${struct}\\":{\\"size\\":%zu", sizeof(struct ${struct}));`);
      for (const field of Object.keys((OFFSETS as Record<string, Record<string, number>>)[struct]!)) {
        lines.push(`printf(",\\"${field}\\":%zu", offsetof(struct ${struct}, ${field}));`);
      }
      lines.push('printf("},");');
      void size;
    }
    const src = `#include <stdio.h>\n#include <stddef.h>\n#include "nftproxy_maps.h"\nint main(void){printf("{");${lines.join('')}printf("\\"end\\":0}");return 0;}\n`;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'npx-layout-'));
    try {
      const exe = path.join(dir, 'layout');
      await execa(cc!, ['-x', 'c', '-', '-o', exe, '-I', path.join(REPO, 'bpf')], { input: src });
      const got = JSON.parse(String((await execa(exe)).stdout)) as Record<string, Record<string, number>>;
      for (const [struct, size] of Object.entries(SIZES)) {
        if (!(struct in OFFSETS)) continue; // a plain u8 value
        const { size: cSize, ...cOffsets } = got[struct]!;
        expect(cSize, `sizeof(struct ${struct})`).toBe(size);
        expect(cOffsets, `offsets of struct ${struct}`).toEqual((OFFSETS as Record<string, Record<string, number>>)[struct]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('addresses: 16 bytes, IPv4 v4-mapped, round trip', () => {
    expect(addrBytes('10.96.0.10').toString('hex')).toBe('00000000000000000000ffff0a60000a');
    expect(addrBytes('::ffff:10.96.0.10').toString('hex')).toBe('00000000000000000000ffff0a60000a');
    expect(addrBytes('fd00:96::10').toString('hex')).toBe('fd000096000000000000000000000010');
    expect(addrBytes('::').toString('hex')).toBe('0'.repeat(32));
    expect(addrBytes('2001:db8:0:1:2:3:4:5').toString('hex')).toBe('20010db8000000010002000300040005');
    for (const a of ['10.96.0.10', 'fd00:96::10', '2001:db8::1', '::1', '2001:db8:0:1:2:3:4:5', '1::', '255.255.255.255']) {
      expect(addrString(addrBytes(a))).toBe(a);
    }
    expect(() => addrBytes('10.96.0')).toThrow(/not an IP/);
    expect(() => addrBytes('example.com')).toThrow(/not an IP/);
  });

  it('encodes every struct byte for byte (ports in network order, the rest host order, pads zero)', () => {
    const svc = encodeSvcKey({ addr: '10.96.0.10', port: 80, proto: 'tcp' });
    expect(svc.toString('hex')).toBe('00000000000000000000ffff0a60000a' + '0050' + '06' + '00');
    expect(decodeSvcKey(svc)).toEqual({ addr: '10.96.0.10', port: 80, proto: 6 });
    const val = encodeSvcVal({ gen: 7, count: 3, affinity: true, affinityTimeoutS: 10800, localCount: 2 });
    expect(val.toString('hex')).toBe('07000000' + '0300' + '0100' + '302a0000' + '0200' + '0000');
    expect(decodeSvcVal(val)).toEqual({ gen: 7, count: 3, affinity: true, affinityTimeoutS: 10800, localCount: 2 });
    expect(() => encodeSvcVal({ gen: 1, count: 2, localCount: 3 })).toThrow(/local backends out of range/);
    expect(() => encodeSvcVal({ gen: 1, count: 40, localCount: LOCAL_PROBE_MAX + 1 })).toThrow(/local backends out of range/);
    // LPM keys: prefix length first (host order), host bits cleared; IPv4 as ::ffff:a.b.c.d/(96+n)
    expect(encodeCidrKey('10.244.7.9', 96 + 16).toString('hex')).toBe('70000000' + '00000000000000000000ffff0af40000');
    expect(encodeCidrKey('fd00:10:244::ff', 56).toString('hex')).toBe('38000000' + 'fd000010024400000000000000000000');
    expect(decodeCidrKey(encodeCidrKey('0.0.0.0', 96))).toEqual({ addr: '0.0.0.0', prefixlen: 96 });
    expect(() => encodeCidrKey('::', 129)).toThrow(/prefix length/);
    expect(encodeBeKey(7, 2).toString('hex')).toBe('07000000' + '02000000');
    expect(encodeBeVal({ addr: 'fd00:77::1', port: 8080 }).toString('hex')).toBe('fd000077000000000000000000000001' + '1f90' + '0000');
    expect(encodeMemberKey(7, { addr: '10.77.0.1', port: 8080 }).toString('hex')).toBe('07000000' + '00000000' + '00000000000000000000ffff0a4d0001' + '1f90' + '0000');
    const ak = encodeAffKey(0x1122334455667788n, { addr: '10.96.0.10', port: 53, proto: 'udp' });
    expect(ak.length).toBe(32);
    expect(ak.toString('hex')).toBe('8877665544332211' + '00000000000000000000ffff0a60000a' + '0035' + '11' + '00' + '00000000');
    expect(decodeAffKey(ak)).toEqual({ netnsCookie: 0x1122334455667788n, svc: { addr: '10.96.0.10', port: 53, proto: 17 } });
    const av = encodeAffVal({ addr: '10.77.0.1', port: 5353 }, 123n);
    expect(av.length).toBe(32);
    expect(decodeAffVal(av)).toEqual({ be: { addr: '10.77.0.1', port: 5353 }, lastNs: 123n });
    expect(encodeDeadKey({ addr: '10.77.0.1', port: 5353 })).toEqual(encodeSvcKey({ addr: '10.77.0.1', port: 5353, proto: 'udp' }));
    expect(() => encodeSvcKey({ addr: '10.0.0.1', port: 70000, proto: 'tcp' })).toThrow(/port/);
    expect(() => encodeSvcVal({ gen: 1, count: 65536 })).toThrow(/count/);
  });
});
