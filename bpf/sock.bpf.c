// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock.bpf.c: socket-level load balancing for processes in the node's own
 * network namespace (kubelet, hostNetwork pods, the daemon). cgroup v2
 * hooks, attached by the daemon to the cgroup2 root:
 *   connect4/6      TCP, connected UDP (and SCTP): the destination becomes
 *                   a backend once, before the kernel routes anything;
 *   sendmsg4/6      unconnected UDP: the destination of each datagram;
 *   recvmsg4/6      unconnected (and connected) UDP: the source of a reply
 *                   becomes the frontend again;
 *   getpeername4/6  the peer reads as the frontend.
 * A v6 hook given an IPv4-mapped address (a dual-stack socket) is served
 * from the IPv4 maps and answered mapped.
 * Frontends are the tc programs' (sy_svc*_v2, INTERNAL masters: host
 * clients get the verdict of in-cluster clients, as kube-proxy gives
 * traffic whose source is a local address), backends sy_backend*_v2; the
 * frontend a socket was pointed away from is kept in sy_sock_rnat*_v2 by
 * (socket cookie, backend). Packets then go to the backend address
 * directly: the tc programs see no frontend and translate nothing.
 *
 * The hooks run for every network namespace with processes in the cgroup
 * (pods included): they act only where bpf_get_netns_cookie() is the one
 * the daemon wrote in sy_sockcfg_v2.
 *
 * No endpoints (REJECT, or FORWARD with none): the call fails with
 * ECONNREFUSED through bpf_set_retval (5.18+; a CO-RE check drops the call
 * on older kernels, where the verifier never sees it and the call fails
 * with the hooks' default EPERM). DROP (e.g. internalTrafficPolicy Local
 * with no local endpoint): EHOSTUNREACH the same way.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "lib/pkt.h"
#include "lib/maps.h"
#include "lib/lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SYS_REJECT  0
#define SYS_PROCEED 1

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sy_sockcfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_sockcfg_v2 SEC(".maps");

SY_LRU(sy_sock_rnat4_v2, struct sy_sock_rnat4_key, struct sy_sock_rnat4_value, SY_SOCK_RNAT_MAX);
SY_LRU(sy_sock_rnat6_v2, struct sy_sock_rnat6_key, struct sy_sock_rnat6_value, SY_SOCK_RNAT_MAX);

/* Whether the socket lives in the node's network namespace. */
static __always_inline int in_node_netns(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	struct sy_sockcfg *c = bpf_map_lookup_elem(&sy_sockcfg_v2, &zero);

	return c && c->netns_cookie != 0 && c->netns_cookie == bpf_get_netns_cookie(ctx);
}

/* Fail the call with err where the kernel lets a program choose (5.18+). */
static __always_inline int refuse(int err)
{
	stat_inc(SY_STAT_SOCK_REJECT);
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_set_retval))
		bpf_set_retval(-err);
	return SYS_REJECT;
}

static __always_inline void ctx_addr(struct bpf_sock_addr *ctx, int v6, union sy_addr *a)
{
	if (v6) {
		a->w[0] = ctx->user_ip6[0];
		a->w[1] = ctx->user_ip6[1];
		a->w[2] = ctx->user_ip6[2];
		a->w[3] = ctx->user_ip6[3];
	} else {
		a->w[0] = ctx->user_ip4;
		a->w[1] = 0;
		a->w[2] = 0;
		a->w[3] = 0;
	}
}

static __always_inline void ctx_set(struct bpf_sock_addr *ctx, int v6, const __be32 *a, __be16 port)
{
	if (v6) {
		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
	} else {
		ctx->user_ip4 = a[0];
	}
	ctx->user_port = (__u32)port;
}

static __always_inline void rnat_write(int v6, __u64 cookie, __u8 proto,
                                       const struct sy_ct6_value *f, const union sy_addr *front,
                                       __be16 front_port)
{
	if (v6) {
		struct sy_sock_rnat6_key k = {
		        .cookie = cookie, .port_be = f->backend_port_be, .proto = proto};
		struct sy_sock_rnat6_value v = {.port_be = front_port};

		__builtin_memcpy(k.addr_be, f->backend_addr_be, 16);
		__builtin_memcpy(v.addr_be, front->w, 16);
		bpf_map_update_elem(&sy_sock_rnat6_v2, &k, &v, BPF_ANY);
		return;
	}
	struct sy_sock_rnat4_key k = {.cookie = cookie,
	                              .addr_be = f->backend_addr_be[0],
	                              .port_be = f->backend_port_be,
	                              .proto = proto};
	struct sy_sock_rnat4_value v = {.addr_be = front->v4, .port_be = front_port};

	bpf_map_update_elem(&sy_sock_rnat4_v2, &k, &v, BPF_ANY);
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) in a v6 hook's context: a
 * dual-stack socket talking IPv4 (Java's default, for one). */
static __always_inline int ctx_v4mapped(struct bpf_sock_addr *ctx)
{
	return ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 &&
	       ctx->user_ip6[2] == bpf_htonl(0x0000ffff);
}

static __always_inline void ctx_set_v4mapped(struct bpf_sock_addr *ctx, __be32 a, __be16 port)
{
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
	ctx->user_ip6[3] = a;
	ctx->user_port = (__u32)port;
}

/* connect / sendmsg: a frontend's address becomes one of its backends.
 * mapped: a v6 hook with an IPv4-mapped address, served from the IPv4 maps
 * (v6 is then 0) and written back mapped. */
static __always_inline int sock_fwd_body(struct bpf_sock_addr *ctx, int v6, int mapped)
{
	struct sy_svc_value *m;
	struct sy_ct6_value f;
	struct pkt p = {};
	int verdict;

	p.proto = (__u8)ctx->protocol;
	if (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP && p.proto != IPPROTO_SCTP)
		return SYS_PROCEED;
	if (mapped)
		p.daddr.w[0] = ctx->user_ip6[3];
	else
		ctx_addr(ctx, v6, &p.daddr);
	p.dport = (__be16)ctx->user_port;
	m = svc_lookup(v6, &p.daddr, p.dport, p.proto, SY_SCOPE_INTERNAL, 0, 0);
	if (!m)
		return SYS_PROCEED;
	__builtin_memset(&f, 0, sizeof(f));
	/* Random: no 5-tuple yet at connect time for Maglev, no affinity here (README). */
	verdict = lb_pick(v6, &p, SY_SCOPE_INTERNAL, m, &f, 0);
	if (verdict == SY_ACT_REJECT)
		return refuse(ECONNREFUSED);
	if (verdict != SY_ACT_FORWARD)
		return refuse(EHOSTUNREACH);
	rnat_write(v6, bpf_get_socket_cookie(ctx), p.proto, &f, &p.daddr, p.dport);
	if (mapped)
		ctx_set_v4mapped(ctx, f.backend_addr_be[0], f.backend_port_be);
	else
		ctx_set(ctx, v6, f.backend_addr_be, f.backend_port_be);
	stat_inc(SY_STAT_SOCK_XLATE);
	return SYS_PROCEED;
}

static __always_inline int sock_fwd(struct bpf_sock_addr *ctx, int v6)
{
	if (!in_node_netns(ctx))
		return SYS_PROCEED;
	if (v6 && ctx_v4mapped(ctx))
		return sock_fwd_body(ctx, 0, 1);
	return sock_fwd_body(ctx, v6, 0);
}

/* recvmsg / getpeername: a backend's address back to the frontend. */
static __always_inline int sock_rev(struct bpf_sock_addr *ctx, int v6)
{
	__u8 proto;

	if (!in_node_netns(ctx))
		return SYS_PROCEED;
	proto = (__u8)ctx->protocol;
	if (v6 && ctx_v4mapped(ctx)) {
		struct sy_sock_rnat4_key k = {.cookie = bpf_get_socket_cookie(ctx),
		                              .addr_be = ctx->user_ip6[3],
		                              .port_be = (__be16)ctx->user_port,
		                              .proto = proto};
		struct sy_sock_rnat4_value *v = bpf_map_lookup_elem(&sy_sock_rnat4_v2, &k);

		if (v)
			ctx_set_v4mapped(ctx, v->addr_be, v->port_be);
		return SYS_PROCEED;
	}
	if (v6) {
		struct sy_sock_rnat6_key k = {.cookie = bpf_get_socket_cookie(ctx),
		                              .port_be = (__be16)ctx->user_port,
		                              .proto = proto};
		struct sy_sock_rnat6_value *v;

		k.addr_be[0] = ctx->user_ip6[0];
		k.addr_be[1] = ctx->user_ip6[1];
		k.addr_be[2] = ctx->user_ip6[2];
		k.addr_be[3] = ctx->user_ip6[3];
		v = bpf_map_lookup_elem(&sy_sock_rnat6_v2, &k);
		if (v)
			ctx_set(ctx, 1, v->addr_be, v->port_be);
		return SYS_PROCEED;
	}
	struct sy_sock_rnat4_key k = {.cookie = bpf_get_socket_cookie(ctx),
	                              .addr_be = ctx->user_ip4,
	                              .port_be = (__be16)ctx->user_port,
	                              .proto = proto};
	struct sy_sock_rnat4_value *v = bpf_map_lookup_elem(&sy_sock_rnat4_v2, &k);

	if (v)
		ctx_set(ctx, 0, &v->addr_be, v->port_be);
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int sy_sk_connect4(struct bpf_sock_addr *ctx)
{
	return sock_fwd(ctx, 0);
}

SEC("cgroup/connect6")
int sy_sk_connect6(struct bpf_sock_addr *ctx)
{
	return sock_fwd(ctx, 1);
}

SEC("cgroup/sendmsg4")
int sy_sk_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_fwd(ctx, 0);
}

SEC("cgroup/sendmsg6")
int sy_sk_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock_fwd(ctx, 1);
}

SEC("cgroup/recvmsg4")
int sy_sk_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_rev(ctx, 0);
}

SEC("cgroup/recvmsg6")
int sy_sk_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sock_rev(ctx, 1);
}

SEC("cgroup/getpeername4")
int sy_sk_peer4(struct bpf_sock_addr *ctx)
{
	return sock_rev(ctx, 0);
}

SEC("cgroup/getpeername6")
int sy_sk_peer6(struct bpf_sock_addr *ctx)
{
	return sock_rev(ctx, 1);
}
