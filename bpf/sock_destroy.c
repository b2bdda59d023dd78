// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nftproxy: destroy connected UDP sockets whose peer is a removed backend (the socket-LB
 * analogue of kube-proxy's conntrack flush), so a client never keeps sending to a dead
 * backend. An iter/udp program: user space fills nftproxy_dead with {backend addr, port,
 * 17}, then reads an iterator created IN EACH network namespace to clean (the udp iterator
 * walks the sockets of the namespace its creator was in); every matching socket gets
 * bpf_sock_destroy() (kernel >= 6.5) and the owner sees ECONNABORTED. One destroyed_rec is
 * written to the iterator output per destroyed socket.
 *
 * No vmlinux.h: the few kernel types used are declared below with CO-RE relocations
 * (preserve_access_index), resolved by libbpf against the running kernel's BTF.
 * kfuncs need a GPL-compatible license.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nftproxy_maps.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_UDP 17

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__u32 u6_addr32[4];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	__u32 skc_daddr;            /* __be32 */
	__u16 skc_dport;            /* __be16 */
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct udp_sock {
	struct inet_sock inet;
} __attribute__((preserve_access_index));

struct seq_file;
struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
	__u32 uid;
	int bucket;
} __attribute__((preserve_access_index));

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NFTPROXY_DEAD_MAX);
	__type(key, struct dead_key);
	__type(value, __u8);
} nftproxy_dead SEC(".maps");

SEC("iter/udp")
int npx_udp_destroy(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp_sk = ctx->udp_sk;
	if (!udp_sk)
		return 0;
	struct sock_common *skc = (struct sock_common *)udp_sk;

	struct dead_key key = {};
	__u16 family = skc->skc_family;
	if (family == AF_INET) {
		__u32 w[4] = { 0, 0, bpf_htonl(0x0000ffff), skc->skc_daddr };
		__builtin_memcpy(key.addr, w, 16);
	} else if (family == AF_INET6) {
		__u32 w[4] = {
			skc->skc_v6_daddr.in6_u.u6_addr32[0],
			skc->skc_v6_daddr.in6_u.u6_addr32[1],
			skc->skc_v6_daddr.in6_u.u6_addr32[2],
			skc->skc_v6_daddr.in6_u.u6_addr32[3],
		};
		__builtin_memcpy(key.addr, w, 16);
	} else {
		return 0;
	}
	key.port = skc->skc_dport;
	key.proto = IPPROTO_UDP;
	if (key.port == 0)
		return 0; /* not connected */
	if (!bpf_map_lookup_elem(&nftproxy_dead, &key))
		return 0;

	struct destroyed_rec rec = {};
	__builtin_memcpy(rec.addr, key.addr, 16);
	rec.port = key.port;
	rec.family = family;
	rec.err = bpf_sock_destroy(skc);
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
