/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nftproxy eBPF map layout. FIXED: native/layout.ts encodes exactly these bytes (offsets and
 * sizes are asserted there and in test/bpf/). Change both together, and rebuild with `make bpf`.
 *
 * All addresses are 16 bytes; IPv4 is stored v4-mapped (::ffff:a.b.c.d). Ports are in
 * NETWORK byte order. proto is IPPROTO_TCP (6) or IPPROTO_UDP (17). Every pad byte is zero
 * (keys are hashed byte for byte).
 *
 * Update protocol (why gen exists): the applier writes a service's backends under a NEW gen
 * (nftproxy_backends + nftproxy_members), then updates nftproxy_svcs to {gen, count}, then
 * deletes the old gen's entries, so a lookup never sees a half-written service.
 */
#ifndef NFTPROXY_MAPS_H
#define NFTPROXY_MAPS_H

#include <linux/types.h>

#define NFTPROXY_SVC_F_AFFINITY 0x1 /* svc_val.flags bit0: ClientIP session affinity */

struct svc_key {            /* 20 bytes */
	__u8 addr[16];      /*  0: VIP, v4-mapped for IPv4 */
	__u16 port;         /* 16: network byte order */
	__u8 proto;         /* 18: IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;           /* 19: 0 */
};

struct svc_val {            /* 16 bytes */
	__u32 gen;                /*  0: generation of the backend slots */
	__u16 count;              /*  4: slots 0..count-1 exist under gen; 0 = pass through */
	__u16 flags;              /*  6: NFTPROXY_SVC_F_* */
	__u32 affinity_timeout_s; /*  8: ClientIP affinity timeout, seconds */
	__u16 local_count;        /* 12: slots 0..local_count-1 are backends on this node (hairpin probe) */
	__u16 pad;                /* 14: 0 */
};

struct be_key {             /* 8 bytes */
	__u32 gen;          /* 0 */
	__u32 slot;         /* 4 */
};

struct be_val {             /* 20 bytes */
	__u8 addr[16];      /*  0: backend, v4-mapped for IPv4 */
	__u16 port;         /* 16: network byte order */
	__u16 pad;          /* 18: 0 */
};

struct member_key {         /* 28 bytes -> __u8 1: backend `be` belongs to generation `gen` */
	__u32 gen;          /* 0 */
	__u32 pad;          /* 4: 0 */
	struct be_val be;   /* 8 */
};

struct aff_key {            /* 32 bytes; client identity = netns cookie (one pod) */
	__u64 netns_cookie; /*  0 */
	struct svc_key svc; /*  8 */
	__u32 pad;          /* 28: 0 */
};

struct aff_val {            /* 32 bytes */
	struct be_val be;   /*  0 */
	__u32 pad;          /* 20: 0 */
	__u64 last_ns;      /* 24: bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last use */
};

/* Reverse NAT, written by connect/sendmsg, read by recvmsg/getpeername: a socket that was
 * sent to backend `addr:port` in place of a VIP sees the VIP. */
struct rev_key {            /* 32 bytes */
	__u64 cookie;       /*  0: bpf_get_socket_cookie() */
	__u8 addr[16];      /*  8: backend, v4-mapped */
	__u16 port;         /* 24: backend port, network order */
	__u16 pad;          /* 26: 0 */
	__u32 pad2;         /* 28: 0 */
};

struct rev_val {            /* 20 bytes */
	__u8 addr[16];      /*  0: VIP, v4-mapped */
	__u16 port;         /* 16: VIP port, network order */
	__u16 pad;          /* 18: 0 */
};

/* Sources nft's ClusterIP masquerade leaves alone (--cluster-cidr, or a whole family that has
 * none): LPM trie, value 1 = keep, 0 = nft masquerades it. A socket whose source address is
 * FIXED (bound, or IP_PKTINFO) and not kept goes to nft, which masquerades it. */
struct cidr_key {           /* 20 bytes */
	__u32 prefixlen;    /*  0: over the 16-byte (v4-mapped) address */
	__u8 addr[16];      /*  4 */
};

/* sock_destroy.o: connected UDP sockets whose peer is one of these are destroyed by the
 * iter/udp program. Key has the svc_key shape (addr, port, proto = 17); value __u8 1. */
struct dead_key {           /* 20 bytes */
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 pad;
};

/* One record written to the iterator's output per destroyed socket. */
struct destroyed_rec {      /* 24 bytes */
	__u8 addr[16];      /*  0: peer, v4-mapped */
	__u16 port;         /* 16: peer port, network order */
	__u16 family;       /* 18: AF_INET / AF_INET6 of the socket */
	__s32 err;          /* 20: bpf_sock_destroy() result */
};

#define NFTPROXY_SVCS_MAX 65536
#define NFTPROXY_BACKENDS_MAX 1048576
#define NFTPROXY_MEMBERS_MAX 1048576
#define NFTPROXY_AFFINITY_MAX 65536
#define NFTPROXY_REVNAT_MAX 262144
#define NFTPROXY_DEAD_MAX 4096
#define NFTPROXY_PODCIDRS_MAX 1024
/* A service with more node-local backends than this is left to nft (each is probed per connect). */
#define NFTPROXY_LOCAL_PROBE_MAX 16

_Static_assert(sizeof(struct svc_key) == 20, "svc_key");
_Static_assert(sizeof(struct svc_val) == 16, "svc_val");
_Static_assert(sizeof(struct be_key) == 8, "be_key");
_Static_assert(sizeof(struct be_val) == 20, "be_val");
_Static_assert(sizeof(struct member_key) == 28, "member_key");
_Static_assert(sizeof(struct aff_key) == 32, "aff_key");
_Static_assert(sizeof(struct aff_val) == 32, "aff_val");
_Static_assert(sizeof(struct rev_key) == 32, "rev_key");
_Static_assert(sizeof(struct rev_val) == 20, "rev_val");
_Static_assert(sizeof(struct dead_key) == 20, "dead_key");
_Static_assert(sizeof(struct cidr_key) == 20, "cidr_key");
_Static_assert(sizeof(struct destroyed_rec) == 24, "destroyed_rec");

#endif
