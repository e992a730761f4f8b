/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ct.h: connection tracking. The forward entry (sy_ct4_v1, keyed by what the
 * client sent) pins a flow to its backend; the reverse entry (sy_rnat4_v1,
 * keyed by what the reply arrives with) restores the frontend as the reply's
 * source. Both are LRU maps: the kernel evicts the least recently used flows
 * when full.
 */
#ifndef SY_LIB_CT_H
#define SY_LIB_CT_H

#include "maps.h"
#include "pkt.h"

#define SY_NAT_PORT_MIN   32768
#define SY_NAT_PORT_SPAN  28232 /* 32768..60999, Linux's default ephemeral range */
#define SY_NAT_PORT_TRIES 8

static __always_inline void ct_key_fwd(struct sy_ct_key *k, const struct pkt *p)
{
	k->saddr_be = p->saddr;
	k->daddr_be = p->daddr;
	k->sport_be = p->sport;
	k->dport_be = p->dport;
	k->proto = p->proto;
}

/* Whether an existing forward entry may carry this packet. A TCP SYN starts
 * a new connection even when the client reuses a tuple. A UDP flow whose
 * backend is gone is re-balanced at once, as kube-proxy flushes stale UDP
 * conntrack entries; a TCP flow keeps its backend until it ends. */
static __always_inline int ct_usable(const struct sy_ct_value *ct, const struct pkt *p)
{
	struct sy_backend *be;
	__u32 id = ct->backend_id;

	if (p->proto == IPPROTO_TCP)
		return !((p->tcp_flags & TCP_FLAG_SYN) && !(p->tcp_flags & TCP_FLAG_ACK));
	be = bpf_map_lookup_elem(&sy_backend4_v1, &id);
	return be && be->addr_be == ct->backend_addr_be && be->port_be == ct->backend_port_be;
}

/* Choose the masquerade source port: the client's own port when that reply
 * tuple is free or already ours, otherwise a random one in the ephemeral
 * range. Returns 0 when every try collided. */
static __always_inline __be16 ct_nat_port(const struct pkt *p, __be32 backend_addr,
                                          __be16 backend_port, __be32 nat_addr)
{
	struct sy_ct_key rk = {
	        .saddr_be = backend_addr,
	        .daddr_be = nat_addr,
	        .sport_be = backend_port,
	        .proto = p->proto,
	};
	__be16 port = p->sport;
	int i;

#pragma unroll
	for (i = 0; i < SY_NAT_PORT_TRIES; i++) {
		struct sy_rnat_value *r;

		rk.dport_be = port;
		r = bpf_map_lookup_elem(&sy_rnat4_v1, &rk);
		if (!r || (r->client_addr_be == p->saddr && r->client_port_be == p->sport &&
		           r->front_addr_be == p->daddr && r->front_port_be == p->dport))
			return port;
		port = bpf_htons(SY_NAT_PORT_MIN + bpf_get_prandom_u32() % SY_NAT_PORT_SPAN);
	}
	return 0;
}

/* Record a new flow in both directions. */
static __always_inline int ct_create(const struct pkt *p, const struct sy_ct_value *ct)
{
	struct sy_ct_key fk = {};
	struct sy_ct_key rk = {
	        .saddr_be = ct->backend_addr_be,
	        .sport_be = ct->backend_port_be,
	        .proto = p->proto,
	};
	struct sy_rnat_value rv = {
	        .front_addr_be = p->daddr,
	        .front_port_be = p->dport,
	        .client_addr_be = p->saddr,
	        .client_port_be = p->sport,
	        .flags = ct->flags,
	        .last_seen_ns = ct->last_seen_ns,
	};

	if (ct->flags & SY_CT_F_SNAT) {
		rk.daddr_be = ct->nat_addr_be;
		rk.dport_be = ct->nat_port_be;
	} else {
		rk.daddr_be = p->saddr;
		rk.dport_be = p->sport;
	}
	ct_key_fwd(&fk, p);
	if (bpf_map_update_elem(&sy_rnat4_v1, &rk, &rv, BPF_ANY) < 0)
		return -1;
	return bpf_map_update_elem(&sy_ct4_v1, &fk, ct, BPF_ANY);
}

#endif /* SY_LIB_CT_H */
