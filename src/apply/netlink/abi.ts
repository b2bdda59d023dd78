// The parts of the kernel's netlink, nf_tables and ctnetlink ABI nftproxy speaks
// (linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h,
// linux/netfilter/nfnetlink_conntrack.h). Numbers only; checked against the headers of this
// machine's kernel (test/apply/netlink/abi.test.ts compiles them).

export const NLMSG_HDRLEN = 16;
export const NFGENMSG_LEN = 4;
export const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;

export const NLM_F = { REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, DUMP_INTR: 0x10, DUMP: 0x300, EXCL: 0x200, CREATE: 0x400, APPEND: 0x800, CAPPED: 0x100, ACK_TLVS: 0x200 } as const;
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2 } as const;

export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 16;
export const NFNL_MSG_BATCH_END = 17;
export const NFNLGRP = { NFTABLES: 7, NFTRACE: 9 } as const;
export const NFPROTO = { ip: 2, ip6: 10, inet: 1 } as const;

export const MSG = {
  NEWTABLE: 0, GETTABLE: 1, DELTABLE: 2,
  NEWCHAIN: 3, GETCHAIN: 4, DELCHAIN: 5,
  NEWRULE: 6, GETRULE: 7, DELRULE: 8,
  NEWSET: 9, GETSET: 10, DELSET: 11,
  NEWSETELEM: 12, GETSETELEM: 13, DELSETELEM: 14,
  NEWGEN: 15, GETGEN: 16, TRACE: 17,
} as const;
export type MsgType = (typeof MSG)[keyof typeof MSG];
export const msgName = (t: number): string => Object.entries(MSG).find(([, v]) => v === t)?.[0] ?? `MSG_${t}`;

export const TABLE = { NAME: 1, FLAGS: 2, USE: 3, HANDLE: 4, USERDATA: 6 } as const;
export const CHAIN = { TABLE: 1, HANDLE: 2, NAME: 3, HOOK: 4, POLICY: 5, USE: 6, TYPE: 7, FLAGS: 10, ID: 11 } as const;
export const HOOK = { HOOKNUM: 1, PRIORITY: 2 } as const;
export const RULE = { TABLE: 1, CHAIN: 2, HANDLE: 3, EXPRESSIONS: 4, USERDATA: 7 } as const;
export const SET = { TABLE: 1, NAME: 2, FLAGS: 3, KEY_TYPE: 4, KEY_LEN: 5, DATA_TYPE: 6, DATA_LEN: 7, POLICY: 8, DESC: 9, ID: 10, TIMEOUT: 11, GC_INTERVAL: 12, USERDATA: 13, HANDLE: 16 } as const;
export const SET_DESC = { SIZE: 1 } as const;
export const SET_F = { ANONYMOUS: 0x1, CONSTANT: 0x2, INTERVAL: 0x4, MAP: 0x8, TIMEOUT: 0x10, EVAL: 0x20 } as const;
export const SET_ELEM = { KEY: 1, DATA: 2, FLAGS: 3, TIMEOUT: 4, EXPIRATION: 5, USERDATA: 6 } as const;
export const SET_ELEM_F = { INTERVAL_END: 0x1 } as const;
export const SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3, SET_ID: 4 } as const;
export const LIST_ELEM = 1;
export const DATA = { VALUE: 1, VERDICT: 2 } as const;
export const VERDICT = { CODE: 1, CHAIN: 2 } as const;
/** verdict codes as the kernel stores them (NF_DROP, NF_ACCEPT, NFT_JUMP …) */
export const VERDICT_CODE = { drop: 0, accept: 1, continue: -1, jump: -3, goto: -4, return: -5 } as const;
export const NFT_DATA_VERDICT = 0xffffff00;
export const GEN = { ID: 1, PROC_PID: 2, PROC_NAME: 3 } as const;

export const EXPR = { NAME: 1, DATA: 2 } as const;
export const IMMEDIATE = { DREG: 1, DATA: 2 } as const;
export const BITWISE = { SREG: 1, DREG: 2, LEN: 3, MASK: 4, XOR: 5, OP: 6 } as const;
export const CMP = { SREG: 1, OP: 2, DATA: 3 } as const;
export const CMP_OP = { eq: 0, neq: 1 } as const;
export const LOOKUP = { SET: 1, SREG: 2, DREG: 3, SET_ID: 4, FLAGS: 5 } as const;
export const LOOKUP_F_INV = 1;
export const PAYLOAD = { DREG: 1, BASE: 2, OFFSET: 3, LEN: 4 } as const;
export const PAYLOAD_BASE = { network: 1, transport: 2 } as const;
export const META = { DREG: 1, KEY: 2, SREG: 3 } as const;
// nftrace (NFT_META_NFTRACE): only `nftproxy trace`'s own table sets it
export const META_KEY = { mark: 3, nftrace: 12, nfproto: 15, l4proto: 16 } as const;
export const CT = { DREG: 1, KEY: 2 } as const;
export const CT_KEY = { state: 0, status: 2 } as const;
export const NAT = { TYPE: 1, FAMILY: 2, REG_ADDR_MIN: 3, REG_PROTO_MIN: 5, FLAGS: 7 } as const;
export const NAT_DNAT = 1;
export const MASQ = { FLAGS: 1 } as const;
export const REJECT = { TYPE: 1, ICMP_CODE: 2 } as const;
export const NG = { DREG: 1, MODULUS: 2, TYPE: 3, OFFSET: 4 } as const;
export const NG_RANDOM = 1;
export const DYNSET = { SET_NAME: 1, SET_ID: 2, OP: 3, SREG_KEY: 4, TIMEOUT: 6, FLAGS: 9 } as const;
export const DYNSET_OP_UPDATE = 1;
export const FIB = { DREG: 1, RESULT: 2, FLAGS: 3 } as const;
export const FIB_RESULT_ADDRTYPE = 3;
export const FIB_F = { saddr: 1, daddr: 2 } as const;

export const TRACE = { TABLE: 1, CHAIN: 2, RULE_HANDLE: 3, TYPE: 4, VERDICT: 5, ID: 6, NETWORK_HEADER: 8, TRANSPORT_HEADER: 9, IIF: 10, OIF: 12, MARK: 14, NFPROTO: 15, POLICY: 16 } as const;
export const TRACETYPE = { POLICY: 1, RETURN: 2, RULE: 3 } as const;

/** libnftnl's user data tags (libnftnl/udata.h): what nft stores beside an object for people */
export const UDATA_TABLE_COMMENT = 0;
export const UDATA_RULE_COMMENT = 0;
export const UDATA_SET = { KEYBYTEORDER: 0, DATABYTEORDER: 1, MERGE_ELEMENTS: 2, KEY_TYPEOF: 3, DATA_TYPEOF: 4, DATA_INTERVAL: 6, COMMENT: 7 } as const;
export const UDATA_SET_ELEM_COMMENT = 0;
export const UDATA_TYPEOF = { EXPR: 0, DATA: 1 } as const;

// ctnetlink (linux/netfilter/nfnetlink_conntrack.h): listing and deleting conntrack entries.
export const NFNL_SUBSYS_CTNETLINK = 1;
export const CT_MSG = { NEW: 0, GET: 1, DELETE: 2 } as const;
export const CTA = { TUPLE_ORIG: 1, TUPLE_REPLY: 2, ID: 12, ZONE: 18, FILTER: 25 } as const;
export const CTA_TUPLE = { IP: 1, PROTO: 2 } as const;
export const CTA_IP = { V4_SRC: 1, V4_DST: 2, V6_SRC: 3, V6_DST: 4 } as const;
export const CTA_PROTO = { NUM: 1, SRC_PORT: 2, DST_PORT: 3 } as const;
export const CTA_FILTER = { ORIG_FLAGS: 1, REPLY_FLAGS: 2 } as const;
/**
 * Which fields of the request's CTA_TUPLE_ORIG a filtered dump compares. The kernel keeps
 * these bits in net/netfilter/nf_internals.h, not in a uapi header, so no header test can
 * check them: test/apply/conntrack.kernel.test.ts proves them by the flows a dump returns.
 */
export const CTA_FILTER_F = { IP_SRC: 1 << 0, IP_DST: 1 << 1, PROTO_NUM: 1 << 3, PROTO_SRC_PORT: 1 << 4, PROTO_DST_PORT: 1 << 5 } as const;
