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
 *
 * Two cases are left to nft although the maps cover the VIP, because nft MASQUERADES them and
 * a socket rewrite cannot (kube-proxy's source address, exactly):
 *   - a socket whose source is fixed (bound, IP_PKTINFO) to an address nft's ClusterIP
 *     masquerade would rewrite: outside --cluster-cidr (nftproxy_podcidrs);
 *   - a hairpin: one of the service's node-local backends is an address of the caller's own
 *     network namespace (a pod reaching itself through its Service). The decision is made
 *     for the SERVICE before a backend is chosen, so the choice stays uniform either way.
 * Map layout: nftproxy_maps.h (mirrored by native/layout.ts).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nftproxy_maps.h"

#define AF_INET 2
#define AF_INET6 10
#define EADDRNOTAVAIL 99
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

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NFTPROXY_PODCIDRS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cidr_key);
	__type(value, __u8);
} nftproxy_podcidrs SEC(".maps");

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
static __always_inline int lb_pick(struct bpf_sock_addr *ctx, const struct svc_key *svc, const struct svc_val *sv, struct be_val *out)
{
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

static __always_inline int addr_eq(const __u8 *a, const __u8 *b)
{
	return addr_word(a, 0) == addr_word(b, 0) && addr_word(a, 1) == addr_word(b, 1) &&
	       addr_word(a, 2) == addr_word(b, 2) && addr_word(a, 3) == addr_word(b, 3);
}

/* Would nft's ClusterIP masquerade leave this (fixed) source alone? */
static __always_inline int src_kept(const __u8 *src)
{
	struct cidr_key k = { .prefixlen = 128 };
	__builtin_memcpy(k.addr, src, 16);
	__u8 *v = bpf_map_lookup_elem(&nftproxy_podcidrs, &k);
	return v && *v;
}

/*
 * Is backend `be` an address of the caller's own network namespace? 1 = yes, or cannot
 * tell; 0 = no, or nothing of ours listens there (then the connection is refused the same
 * way through nft, whoever's address it would have shown).
 * A socket found bound to exactly `be` answers it. A wildcard one answers for any address,
 * so connect() asks bind(): EADDRNOTAVAIL means `be` is not ours. A successful probe is
 * undone by binding the unspecified address (an IPv6 socket stays IPV6_V6ONLY: it is
 * connecting to an IPv6 address anyway). sendmsg() has no bind(): it cannot tell.
 */
static __always_inline int be_is_mine(struct bpf_sock_addr *ctx, const struct be_val *be, __u32 proto, int can_bind, int v6sock)
{
	struct bpf_sock_tuple t = {};
	__u32 len;
	int v4 = addr_is_v4mapped(be->addr);
	if (v4) {
		t.ipv4.daddr = addr_word(be->addr, 3);
		t.ipv4.dport = be->port;
		len = sizeof(t.ipv4);
	} else {
		t.ipv6.daddr[0] = addr_word(be->addr, 0);
		t.ipv6.daddr[1] = addr_word(be->addr, 1);
		t.ipv6.daddr[2] = addr_word(be->addr, 2);
		t.ipv6.daddr[3] = addr_word(be->addr, 3);
		t.ipv6.dport = be->port;
		len = sizeof(t.ipv6);
	}
	struct bpf_sock *s = proto == IPPROTO_TCP ? bpf_sk_lookup_tcp(ctx, &t, len, BPF_F_CURRENT_NETNS, 0)
						  : bpf_sk_lookup_udp(ctx, &t, len, BPF_F_CURRENT_NETNS, 0);
	if (!s)
		return 0;
	int wildcard = v4 ? s->src_ip4 == 0 : (s->src_ip6[0] | s->src_ip6[1] | s->src_ip6[2] | s->src_ip6[3]) == 0;
	bpf_sk_release(s);
	if (!wildcard)
		return 1;
	if (!can_bind)
		return 1;
	long r;
	if (v6sock) {
		struct sockaddr_in6 sa = {};
		sa.sin6_family = AF_INET6;
		__builtin_memcpy(&sa.sin6_addr, be->addr, 16);
		r = bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
		if (r == 0) {
			struct sockaddr_in6 any = {};
			any.sin6_family = AF_INET6;
			bpf_bind(ctx, (struct sockaddr *)&any, sizeof(any));
		}
	} else {
		struct sockaddr_in sa = {};
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = addr_word(be->addr, 3);
		r = bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
		if (r == 0) {
			struct sockaddr_in any = {};
			any.sin_family = AF_INET;
			bpf_bind(ctx, (struct sockaddr *)&any, sizeof(any));
		}
	}
	return r != -EADDRNOTAVAIL;
}

/*
 * 1: leave this connection to nft, which masquerades it (see the header). `src` is the
 * socket's fixed source (v4-mapped) when have_src.
 */
static __always_inline int nft_masquerades(struct bpf_sock_addr *ctx, const struct svc_val *sv, __u32 proto,
					   const __u8 *src, int have_src, int can_bind, int v6sock)
{
	if (have_src && !src_kept(src))
		return 1;
	__u32 n = sv->local_count;
	for (__u32 i = 0; i < NFTPROXY_LOCAL_PROBE_MAX; i++) {
		if (i >= n)
			break;
		struct be_key bk = { .gen = sv->gen, .slot = i };
		struct be_val *be = bpf_map_lookup_elem(&nftproxy_backends, &bk);
		if (!be)
			return 1; /* the service is being rewritten: nft is always right */
		if (have_src) {
			if (addr_eq(be->addr, src))
				return 1;
		} else if (be_is_mine(ctx, be, proto, can_bind, v6sock)) {
			return 1;
		}
	}
	return 0;
}

/* The covered service `svc` and a copy of its entry, or 0. */
static __always_inline int svc_find(const struct svc_key *svc, struct svc_val *out)
{
	struct svc_val *sv = bpf_map_lookup_elem(&nftproxy_svcs, svc);
	if (!sv)
		return 0;
	__builtin_memcpy(out, sv, sizeof(*out));
	return out->count != 0;
}

/* connect4 / sendmsg4: IPv4 sockets. */
static __always_inline int lb4(struct bpf_sock_addr *ctx, int sendmsg)
{
	__u32 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	struct svc_key svc = {};
	addr_from_v4(svc.addr, ctx->user_ip4);
	svc.port = (__u16)ctx->user_port;
	svc.proto = (__u8)proto;
	struct svc_val sv;
	if (!svc_find(&svc, &sv))
		return 1;

	/* the source this socket is fixed to: IP_PKTINFO of this datagram, else its bound address */
	__u32 ip = 0;
	if (sendmsg)
		ip = ctx->msg_src_ip4;
	if (!ip)
		ip = ctx->sk->src_ip4;
	__u8 src[16];
	addr_from_v4(src, ip);
	if (nft_masquerades(ctx, &sv, proto, src, ip != 0, !sendmsg, 0))
		return 1;

	struct be_val be;
	if (!lb_pick(ctx, &svc, &sv, &be))
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
static __always_inline int lb6(struct bpf_sock_addr *ctx, int sendmsg)
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
	struct svc_val sv;
	if (!svc_find(&svc, &sv))
		return 1;

	__u32 s6[4] = {};
	if (sendmsg) {
		s6[0] = ctx->msg_src_ip6[0];
		s6[1] = ctx->msg_src_ip6[1];
		s6[2] = ctx->msg_src_ip6[2];
		s6[3] = ctx->msg_src_ip6[3];
	}
	if ((s6[0] | s6[1] | s6[2] | s6[3]) == 0) {
		struct bpf_sock *sk = ctx->sk;
		s6[0] = sk->src_ip6[0];
		s6[1] = sk->src_ip6[1];
		s6[2] = sk->src_ip6[2];
		s6[3] = sk->src_ip6[3];
	}
	__u8 src[16];
	addr_from_v6(src, s6);
	if (nft_masquerades(ctx, &sv, proto, src, (s6[0] | s6[1] | s6[2] | s6[3]) != 0, !sendmsg, 1))
		return 1;

	struct be_val be;
	if (!lb_pick(ctx, &svc, &sv, &be))
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
int npx_connect4(struct bpf_sock_addr *ctx) { return lb4(ctx, 0); }

SEC("cgroup/connect6")
int npx_connect6(struct bpf_sock_addr *ctx) { return lb6(ctx, 0); }

SEC("cgroup/sendmsg4")
int npx_sendmsg4(struct bpf_sock_addr *ctx) { return lb4(ctx, 1); }

SEC("cgroup/sendmsg6")
int npx_sendmsg6(struct bpf_sock_addr *ctx) { return lb6(ctx, 1); }

SEC("cgroup/recvmsg4")
int npx_recvmsg4(struct bpf_sock_addr *ctx) { return rev4(ctx); }

SEC("cgroup/recvmsg6")
int npx_recvmsg6(struct bpf_sock_addr *ctx) { return rev6(ctx); }

SEC("cgroup/getpeername4")
int npx_getpeer4(struct bpf_sock_addr *ctx) { return rev4(ctx); }

SEC("cgroup/getpeername6")
int npx_getpeer6(struct bpf_sock_addr *ctx) { return rev6(ctx); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
