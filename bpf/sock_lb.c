// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nftproxy socket load balancer: cgroup sock_addr hooks that rewrite a Service VIP:port to
 * a backend before the socket ever sends a packet.
 *
 *   connect4/6   TCP connect() and connected UDP: VIP -> backend, remember the VIP (revnat)
 *   sendmsg4/6   unconnected UDP sendto(): the same, per datagram
 *   recvmsg4/6   UDP recvfrom(): a datagram from a remembered backend appears to come from the VIP
 *   getpeername4/6  getpeername() of a rewritten socket returns the VIP
 *
 * The backend SET is precomputed by nftproxy's compiler (iTP=Local, topology, terminating
 * fallback already applied): this program only chooses among the slots it is given. Whatever
 * the maps do not cover is left untouched (return 1, no rewrite) for the nftables rules.
 * Map layout: nftproxy_maps.h (mirrored by native/layout.ts).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nftproxy_maps.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define NSEC_PER_SEC 1000000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NFTPROXY_SVCS_MAX);
	__type(key, struct svc_key);
	__type(value, struct svc_val);
} nftproxy_svcs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NFTPROXY_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct be_key);
	__type(value, struct be_val);
} nftproxy_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NFTPROXY_MEMBERS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct member_key);
	__type(value, __u8);
} nftproxy_members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NFTPROXY_AFFINITY_MAX);
	__type(key, struct aff_key);
	__type(value, struct aff_val);
} nftproxy_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NFTPROXY_REVNAT_MAX);
	__type(key, struct rev_key);
	__type(value, struct rev_val);
} nftproxy_revnat SEC(".maps");

/* ::ffff:0:0/96 prefix words as stored in memory (network order). */
#define V4MAPPED_W2 bpf_htonl(0x0000ffff)

static __always_inline void addr_from_v4(__u8 *addr, __u32 ip4)
{
	__u32 w[4] = { 0, 0, V4MAPPED_W2, ip4 };
	__builtin_memcpy(addr, w, 16);
}

static __always_inline void addr_from_v6(__u8 *addr, const __u32 *w6)
{
	__u32 w[4] = { w6[0], w6[1], w6[2], w6[3] };
	__builtin_memcpy(addr, w, 16);
}

static __always_inline int addr_is_v4mapped(const __u8 *addr)
{
	__u32 w[4];
	__builtin_memcpy(w, addr, 16);
	return w[0] == 0 && w[1] == 0 && w[2] == V4MAPPED_W2;
}

static __always_inline __u32 addr_word(const __u8 *addr, int i)
{
	__u32 w[4];
	__builtin_memcpy(w, addr, 16);
	return w[i];
}

/*
 * Choose a backend for VIP `svc`, or return 0 (no rewrite). Implements the generation
 * protocol and ClientIP affinity keyed by the client's network namespace cookie.
 */
static __always_inline int lb_pick(struct bpf_sock_addr *ctx, const struct svc_key *svc, struct be_val *out)
{
	struct svc_val *sv = bpf_map_lookup_elem(&nftproxy_svcs, svc);
	if (!sv)
		return 0;
	__u32 gen = sv->gen;
	__u32 count = sv->count;
	__u32 affinity = sv->flags & NFTPROXY_SVC_F_AFFINITY;
	__u64 timeout = (__u64)sv->affinity_timeout_s * NSEC_PER_SEC;
	if (count == 0)
		return 0;

	struct aff_key ak = {};
	if (affinity) {
		ak.netns_cookie = bpf_get_netns_cookie(ctx);
		__builtin_memcpy(&ak.svc, svc, sizeof(ak.svc));
		struct aff_val *av = bpf_map_lookup_elem(&nftproxy_affinity, &ak);
		if (av) {
			__u64 now = bpf_ktime_get_ns();
			if (now - av->last_ns < timeout) {
				struct member_key mk = {};
				mk.gen = gen;
				__builtin_memcpy(&mk.be, &av->be, sizeof(mk.be));
				mk.be.pad = 0;
				if (bpf_map_lookup_elem(&nftproxy_members, &mk)) {
					__builtin_memcpy(out, &mk.be, sizeof(*out));
					av->last_ns = now;
					return 1;
				}
			}
		}
	}

	struct be_key bk = { .gen = gen, .slot = bpf_get_prandom_u32() % count };
	struct be_val *be = bpf_map_lookup_elem(&nftproxy_backends, &bk);
	if (!be)
		return 0;
	__builtin_memcpy(out, be, sizeof(*out));
	out->pad = 0;

	if (affinity) {
		struct aff_val nv = {};
		__builtin_memcpy(&nv.be, out, sizeof(nv.be));
		nv.last_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&nftproxy_affinity, &ak, &nv, BPF_ANY);
	}
	return 1;
}

/* Remember that this socket's traffic to `be` is really for `svc`. */
static __always_inline void revnat_record(struct bpf_sock_addr *ctx, const struct be_val *be, const struct svc_key *svc)
{
	struct rev_key rk = {};
	rk.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rk.addr, be->addr, 16);
	rk.port = be->port;

	struct rev_val rv = {};
	__builtin_memcpy(rv.addr, svc->addr, 16);
	rv.port = svc->port;

	struct rev_val *old = bpf_map_lookup_elem(&nftproxy_revnat, &rk);
	if (old && old->port == rv.port && addr_word(old->addr, 0) == addr_word(rv.addr, 0) &&
	    addr_word(old->addr, 1) == addr_word(rv.addr, 1) && addr_word(old->addr, 2) == addr_word(rv.addr, 2) &&
	    addr_word(old->addr, 3) == addr_word(rv.addr, 3))
		return; /* unconnected UDP sends the same mapping again and again */
	bpf_map_update_elem(&nftproxy_revnat, &rk, &rv, BPF_ANY);
}

static __always_inline struct rev_val *revnat_lookup(struct bpf_sock_addr *ctx, struct rev_key *rk)
{
	rk->cookie = bpf_get_socket_cookie(ctx);
	return bpf_map_lookup_elem(&nftproxy_revnat, rk);
}

/* connect4 / sendmsg4: IPv4 sockets. */
static __always_inline int lb4(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	struct svc_key svc = {};
	addr_from_v4(svc.addr, ctx->user_ip4);
	svc.port = (__u16)ctx->user_port;
	svc.proto = (__u8)proto;

	struct be_val be;
	if (!lb_pick(ctx, &svc, &be))
		return 1;
	if (!addr_is_v4mapped(be.addr))
		return 1; /* an IPv6 backend cannot serve an IPv4 socket: leave it to nftables */
	ctx->user_ip4 = addr_word(be.addr, 3);
	ctx->user_port = (__u32)be.port;
	revnat_record(ctx, &be, &svc);
	return 1;
}

/* connect6 / sendmsg6: IPv6 sockets (a v4-mapped VIP on a dual-stack socket works too:
 * its key is the same v4-mapped address, and so is its backend). */
static __always_inline int lb6(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	__u32 w6[4];
	w6[0] = ctx->user_ip6[0];
	w6[1] = ctx->user_ip6[1];
	w6[2] = ctx->user_ip6[2];
	w6[3] = ctx->user_ip6[3];
	struct svc_key svc = {};
	addr_from_v6(svc.addr, w6);
	svc.port = (__u16)ctx->user_port;
	svc.proto = (__u8)proto;

	struct be_val be;
	if (!lb_pick(ctx, &svc, &be))
		return 1;
	if (addr_is_v4mapped(be.addr) != addr_is_v4mapped(svc.addr))
		return 1; /* family mismatch: leave it to nftables */
	ctx->user_ip6[0] = addr_word(be.addr, 0);
	ctx->user_ip6[1] = addr_word(be.addr, 1);
	ctx->user_ip6[2] = addr_word(be.addr, 2);
	ctx->user_ip6[3] = addr_word(be.addr, 3);
	ctx->user_port = (__u32)be.port;
	revnat_record(ctx, &be, &svc);
	return 1;
}

/* recvmsg4 / getpeername4: a remembered backend shows as its VIP. */
static __always_inline int rev4(struct bpf_sock_addr *ctx)
{
	struct rev_key rk = {};
	addr_from_v4(rk.addr, ctx->user_ip4);
	rk.port = (__u16)ctx->user_port;
	struct rev_val *rv = revnat_lookup(ctx, &rk);
	if (!rv || !addr_is_v4mapped(rv->addr))
		return 1;
	ctx->user_ip4 = addr_word(rv->addr, 3);
	ctx->user_port = (__u32)rv->port;
	return 1;
}

static __always_inline int rev6(struct bpf_sock_addr *ctx)
{
	__u32 w6[4];
	w6[0] = ctx->user_ip6[0];
	w6[1] = ctx->user_ip6[1];
	w6[2] = ctx->user_ip6[2];
	w6[3] = ctx->user_ip6[3];
	struct rev_key rk = {};
	addr_from_v6(rk.addr, w6);
	rk.port = (__u16)ctx->user_port;
	struct rev_val *rv = revnat_lookup(ctx, &rk);
	if (!rv)
		return 1;
	ctx->user_ip6[0] = addr_word(rv->addr, 0);
	ctx->user_ip6[1] = addr_word(rv->addr, 1);
	ctx->user_ip6[2] = addr_word(rv->addr, 2);
	ctx->user_ip6[3] = addr_word(rv->addr, 3);
	ctx->user_port = (__u32)rv->port;
	return 1;
}

SEC("cgroup/connect4")
int npx_connect4(struct bpf_sock_addr *ctx) { return lb4(ctx); }

SEC("cgroup/connect6")
int npx_connect6(struct bpf_sock_addr *ctx) { return lb6(ctx); }

SEC("cgroup/sendmsg4")
int npx_sendmsg4(struct bpf_sock_addr *ctx) { return lb4(ctx); }

SEC("cgroup/sendmsg6")
int npx_sendmsg6(struct bpf_sock_addr *ctx) { return lb6(ctx); }

SEC("cgroup/recvmsg4")
int npx_recvmsg4(struct bpf_sock_addr *ctx) { return rev4(ctx); }

SEC("cgroup/recvmsg6")
int npx_recvmsg6(struct bpf_sock_addr *ctx) { return rev6(ctx); }

SEC("cgroup/getpeername4")
int npx_getpeer4(struct bpf_sock_addr *ctx) { return rev4(ctx); }

SEC("cgroup/getpeername6")
int npx_getpeer6(struct bpf_sock_addr *ctx) { return rev6(ctx); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
