// src/apply/netlink/abi.ts against the kernel headers of this machine: a C program built from
// linux/netfilter/nf_tables.h prints the numbers, and every one we use must match.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as A from '../../../src/apply/netlink/abi.js';

const HEADER = '/usr/include/linux/netfilter/nf_tables.h';
const cc = ['cc', 'gcc', 'clang'].find((c) => ['/usr/bin/', '/bin/'].some((d) => existsSync(d + c)));
const skip = !existsSync(HEADER) ? `no ${HEADER} (linux-libc-dev)` : !cc ? 'no C compiler' : undefined;

// [C expression, our value]
const CHECKS: readonly (readonly [string, number])[] = [
  ['NFNL_SUBSYS_NFTABLES', A.NFNL_SUBSYS_NFTABLES], ['NFNL_MSG_BATCH_BEGIN', A.NFNL_MSG_BATCH_BEGIN], ['NFNL_MSG_BATCH_END', A.NFNL_MSG_BATCH_END],
  ['NFNLGRP_NFTABLES', A.NFNLGRP.NFTABLES], ['NFNLGRP_NFTRACE', A.NFNLGRP.NFTRACE],
  ...Object.entries(A.MSG).map(([k, v]) => [`NFT_MSG_${k}`, v] as const),
  ...Object.entries(A.TABLE).map(([k, v]) => [`NFTA_TABLE_${k}`, v] as const),
  ...Object.entries(A.CHAIN).map(([k, v]) => [`NFTA_CHAIN_${k}`, v] as const),
  ...Object.entries(A.HOOK).map(([k, v]) => [`NFTA_HOOK_${k}`, v] as const),
  ...Object.entries(A.RULE).map(([k, v]) => [`NFTA_RULE_${k}`, v] as const),
  ...Object.entries(A.SET).map(([k, v]) => [`NFTA_SET_${k}`, v] as const),
  ...Object.entries(A.SET_F).map(([k, v]) => [`NFT_SET_${k}`, v] as const),
  ...Object.entries(A.SET_ELEM).map(([k, v]) => [`NFTA_SET_ELEM_${k}`, v] as const),
  ...Object.entries(A.SET_ELEM_LIST).map(([k, v]) => [`NFTA_SET_ELEM_LIST_${k}`, v] as const),
  ['NFTA_SET_DESC_SIZE', A.SET_DESC.SIZE], ['NFT_SET_ELEM_INTERVAL_END', A.SET_ELEM_F.INTERVAL_END], ['NFTA_LIST_ELEM', A.LIST_ELEM],
  ['NFTA_DATA_VALUE', A.DATA.VALUE], ['NFTA_DATA_VERDICT', A.DATA.VERDICT], ['NFTA_VERDICT_CODE', A.VERDICT.CODE], ['NFTA_VERDICT_CHAIN', A.VERDICT.CHAIN],
  ['NF_DROP', A.VERDICT_CODE.drop], ['NF_ACCEPT', A.VERDICT_CODE.accept], ['NFT_JUMP', A.VERDICT_CODE.jump], ['NFT_GOTO', A.VERDICT_CODE.goto], ['NFT_RETURN', A.VERDICT_CODE.return],
  ['NFT_DATA_VERDICT', A.NFT_DATA_VERDICT], ['NFTA_GEN_ID', A.GEN.ID],
  ['NFTA_EXPR_NAME', A.EXPR.NAME], ['NFTA_EXPR_DATA', A.EXPR.DATA],
  ...Object.entries(A.IMMEDIATE).map(([k, v]) => [`NFTA_IMMEDIATE_${k}`, v] as const),
  ...Object.entries(A.BITWISE).map(([k, v]) => [`NFTA_BITWISE_${k}`, v] as const),
  ...Object.entries(A.CMP).map(([k, v]) => [`NFTA_CMP_${k}`, v] as const), ['NFT_CMP_EQ', A.CMP_OP.eq], ['NFT_CMP_NEQ', A.CMP_OP.neq],
  ...Object.entries(A.LOOKUP).map(([k, v]) => [`NFTA_LOOKUP_${k}`, v] as const), ['NFT_LOOKUP_F_INV', A.LOOKUP_F_INV],
  ...Object.entries(A.PAYLOAD).map(([k, v]) => [`NFTA_PAYLOAD_${k}`, v] as const), ['NFT_PAYLOAD_NETWORK_HEADER', A.PAYLOAD_BASE.network], ['NFT_PAYLOAD_TRANSPORT_HEADER', A.PAYLOAD_BASE.transport],
  ...Object.entries(A.META).map(([k, v]) => [`NFTA_META_${k}`, v] as const), ['NFT_META_MARK', A.META_KEY.mark], ['NFT_META_L4PROTO', A.META_KEY.l4proto], ['NFT_META_NFPROTO', A.META_KEY.nfproto],
  ...Object.entries(A.CT).map(([k, v]) => [`NFTA_CT_${k}`, v] as const), ['NFT_CT_STATE', A.CT_KEY.state], ['NFT_CT_STATUS', A.CT_KEY.status],
  ...Object.entries(A.NAT).map(([k, v]) => [`NFTA_NAT_${k}`, v] as const), ['NFT_NAT_DNAT', A.NAT_DNAT],
  ['NFTA_MASQ_FLAGS', A.MASQ.FLAGS], ['NFTA_REJECT_TYPE', A.REJECT.TYPE], ['NFTA_REJECT_ICMP_CODE', A.REJECT.ICMP_CODE],
  ...Object.entries(A.NG).map(([k, v]) => [`NFTA_NG_${k}`, v] as const), ['NFT_NG_RANDOM', A.NG_RANDOM],
  ...Object.entries(A.DYNSET).map(([k, v]) => [`NFTA_DYNSET_${k}`, v] as const), ['NFT_DYNSET_OP_UPDATE', A.DYNSET_OP_UPDATE],
  ...Object.entries(A.FIB).map(([k, v]) => [`NFTA_FIB_${k}`, v] as const), ['NFT_FIB_RESULT_ADDRTYPE', A.FIB_RESULT_ADDRTYPE], ['NFTA_FIB_F_SADDR', A.FIB_F.saddr], ['NFTA_FIB_F_DADDR', A.FIB_F.daddr],
  ...Object.entries(A.TRACE).map(([k, v]) => [`NFTA_TRACE_${k}`, v] as const),
  ...Object.entries(A.TRACETYPE).map(([k, v]) => [`NFT_TRACETYPE_${k}`, v] as const),
  ['NFNL_SUBSYS_CTNETLINK', A.NFNL_SUBSYS_CTNETLINK],
  ...Object.entries(A.CT_MSG).map(([k, v]) => [`IPCTNL_MSG_CT_${k}`, v] as const),
  ...Object.entries(A.CTA).map(([k, v]) => [`CTA_${k}`, v] as const),
  ...Object.entries(A.CTA_TUPLE).map(([k, v]) => [`CTA_TUPLE_${k}`, v] as const),
  ...Object.entries(A.CTA_IP).map(([k, v]) => [`CTA_IP_${k}`, v] as const),
  ...Object.entries(A.CTA_PROTO).map(([k, v]) => [`CTA_PROTO_${k}`, v] as const),
  ...Object.entries(A.CTA_FILTER).map(([k, v]) => [`CTA_FILTER_${k}`, v] as const),
];

describe('nf_tables ABI numbers', () => {
  it.skipIf(skip !== undefined)(`match this machine's kernel headers${skip ? ` [skipped: ${skip}]` : ''}`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nftproxy-abi-'));
    try {
      const src = ['#include <stdio.h>', '#include <linux/netlink.h>', '#include <linux/netfilter/nfnetlink.h>', '#include <linux/netfilter/nf_tables.h>', '#include <linux/netfilter/nfnetlink_conntrack.h>', '#include <linux/netfilter.h>', 'int main(void) {',
        ...CHECKS.map(([c]) => `  printf("%lld\\n", (long long)(${c}));`), '  return 0;', '}'].join('\n');
      await writeFile(join(dir, 'abi.c'), src);
      await execa(cc!, [join(dir, 'abi.c'), '-o', join(dir, 'abi')]);
      const got = (await execa(join(dir, 'abi'))).stdout.trim().split('\n').map(Number);
      // NFT_DATA_VERDICT is 0xffffff00 as an unsigned enum; the C program may print it either way
      const norm = (n: number): number => (n < 0 ? n + 2 ** 32 : n);
      const mismatches = CHECKS.flatMap(([c, ours], i) => (norm(got[i]!) === norm(ours) ? [] : [`${c}: header ${got[i]}, ours ${ours}`]));
      expect(mismatches).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
