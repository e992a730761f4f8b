/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ct.h: connection tracking. A flow has two entries in sy_ct4_v2/sy_ct6_v2:
 * FWD keyed by what the client sends (client -> frontend) and REV keyed by
 * what the reply carries where it is reverse-translated (backend -> client,
 * or backend -> nat address:port when masqueraded). Both hold the whole
 * flow, so either rebuilds the other after an LRU eviction.
 *
 * In here a flow is always a struct sy_ct6_value and a key a struct
 * sy_ct6_key, IPv4 addresses in word 0 (the family-neutral form); the IPv4
 * map entries are converted on the way in and out.
 *
 * TCP state (SY_TCP_*) is learnt from both directions: a retransmitted SYN
 * keeps its backend, a SYN on a CLOSED flow picks a new one.
 */
#ifndef SY_LIB_CT_H
#define SY_LIB_CT_H

#include "maps.h"
#include "pkt.h"

#define SY_SNAT_TRIES  16            /* random masquerade ports tried per new flow */
#define SY_CT_TOUCH_NS 1000000000ULL /* last_seen_ns is refreshed at most once a second */
#define SY_FIN_CLIENT  1
#define SY_FIN_BACKEND 2

static __always_inline void ct_key(struct sy_ct6_key *k, const void *saddr, const void *daddr,
                                   __be16 sport, __be16 dport, __u8 proto, __u8 dir)
{
	__builtin_memcpy(k->saddr_be, saddr, 16);
	__builtin_memcpy(k->daddr_be, daddr, 16);
	k->sport_be = sport;
	k->dport_be = dport;
	k->proto = proto;
	k->dir = dir;
	k->pad[0] = 0;
	k->pad[1] = 0;
}

/* The key a packet carries: FWD at the frontend, REV for a reply. */
static __always_inline void ct_key_pkt(struct sy_ct6_key *k, const struct pkt *p, __u8 dir)
{
	ct_key(k, p->saddr.w, p->daddr.w, p->sport, p->dport, p->proto, dir);
}

static __always_inline void flow_fwd_key(struct sy_ct6_key *k, const struct sy_ct6_value *f,
                                         __u8 proto)
{
	ct_key(k, f->client_addr_be, f->front_addr_be, f->client_port_be, f->front_port_be, proto,
	       SY_CT_DIR_FWD);
}

static __always_inline void flow_rev_key(struct sy_ct6_key *k, const struct sy_ct6_value *f,
                                         __u8 proto)
{
	if (f->flags & SY_CT_F_SNAT)
		ct_key(k, f->backend_addr_be, f->nat_addr_be, f->backend_port_be, f->nat_port_be,
		       proto, SY_CT_DIR_REV);
	else
		ct_key(k, f->backend_addr_be, f->client_addr_be, f->backend_port_be,
		       f->client_port_be, proto, SY_CT_DIR_REV);
}

static __always_inline void ct4_key_of(struct sy_ct4_key *k4, const struct sy_ct6_key *k)
{
	k4->saddr_be = k->saddr_be[0];
	k4->daddr_be = k->daddr_be[0];
	k4->sport_be = k->sport_be;
	k4->dport_be = k->dport_be;
	k4->proto = k->proto;
	k4->dir = k->dir;
	k4->pad[0] = 0;
	k4->pad[1] = 0;
}

/* Copies the flow under k into *f; -1 when there is none. */
static __always_inline int ct_read(int v6, const struct sy_ct6_key *k, struct sy_ct6_value *f)
{
	if (v6) {
		struct sy_ct6_value *v = bpf_map_lookup_elem(&sy_ct6_v2, k);

		if (!v)
			return -1;
		__builtin_memcpy(f, v, sizeof(*f));
		return 0;
	}
	struct sy_ct4_key k4;
	struct sy_ct4_value *v;

	ct4_key_of(&k4, k);
	v = bpf_map_lookup_elem(&sy_ct4_v2, &k4);
	if (!v)
		return -1;
	__builtin_memset(f, 0, sizeof(*f));
	f->client_addr_be[0] = v->client_addr_be;
	f->front_addr_be[0] = v->front_addr_be;
	f->backend_addr_be[0] = v->backend_addr_be;
	f->nat_addr_be[0] = v->nat_addr_be;
	f->client_port_be = v->client_port_be;
	f->front_port_be = v->front_port_be;
	f->backend_port_be = v->backend_port_be;
	f->nat_port_be = v->nat_port_be;
	f->backend_id = v->backend_id;
	f->svc_id = v->svc_id;
	f->flags = v->flags;
	f->tcp_state = v->tcp_state;
	f->fin_mask = v->fin_mask;
	f->created_ns = v->created_ns;
	f->last_seen_ns = v->last_seen_ns;
	return 0;
}

static __always_inline int ct_has(int v6, const struct sy_ct6_key *k)
{
	struct sy_ct4_key k4;

	if (v6)
		return bpf_map_lookup_elem(&sy_ct6_v2, k) != NULL;
	ct4_key_of(&k4, k);
	return bpf_map_lookup_elem(&sy_ct4_v2, &k4) != NULL;
}

/* bpf_map_update_elem of the flow under k (BPF_ANY, BPF_NOEXIST). */
static __always_inline int ct_write(int v6, const struct sy_ct6_key *k,
                                    const struct sy_ct6_value *f, __u64 how)
{
	if (v6)
		return bpf_map_update_elem(&sy_ct6_v2, k, f, how);
	struct sy_ct4_key k4;
	struct sy_ct4_value v = {
	        .client_addr_be = f->client_addr_be[0],
	        .front_addr_be = f->front_addr_be[0],
	        .backend_addr_be = f->backend_addr_be[0],
	        .nat_addr_be = f->nat_addr_be[0],
	        .client_port_be = f->client_port_be,
	        .front_port_be = f->front_port_be,
	        .backend_port_be = f->backend_port_be,
	        .nat_port_be = f->nat_port_be,
	        .backend_id = f->backend_id,
	        .svc_id = f->svc_id,
	        .flags = f->flags,
	        .tcp_state = f->tcp_state,
	        .fin_mask = f->fin_mask,
	        .created_ns = f->created_ns,
	        .last_seen_ns = f->last_seen_ns,
	};

	ct4_key_of(&k4, k);
	return bpf_map_update_elem(&sy_ct4_v2, &k4, &v, how);
}

static __always_inline void ct_delete(int v6, const struct sy_ct6_key *k)
{
	struct sy_ct4_key k4;

	if (v6) {
		bpf_map_delete_elem(&sy_ct6_v2, k);
		return;
	}
	ct4_key_of(&k4, k);
	bpf_map_delete_elem(&sy_ct4_v2, &k4);
}

/* The TCP state after a packet with these flags, from the client
 * (from_client) or from the backend. */
static __always_inline void tcp_advance(struct sy_ct6_value *f, __u8 flags, int from_client)
{
	if (flags & SY_TCP_RST) {
		f->tcp_state = SY_TCP_CLOSED;
		return;
	}
	if (flags & SY_TCP_FIN) {
		f->fin_mask |= from_client ? SY_FIN_CLIENT : SY_FIN_BACKEND;
		f->tcp_state = f->fin_mask == (SY_FIN_CLIENT | SY_FIN_BACKEND) ? SY_TCP_CLOSED
		                                                               : SY_TCP_CLOSING;
		return;
	}
	if (!from_client && f->tcp_state == SY_TCP_SYN_SENT)
		f->tcp_state = SY_TCP_ESTABLISHED;
}

/* Bookkeeping for a packet of a known flow: TCP state, last_seen_ns, and
 * the other half of the flow rebuilt if the LRU evicted it. `k` is the key
 * the flow was found under (overwritten with the other half's); `dir` its direction. Writes the half we hold
 * only when something changed (at most once a second for last_seen_ns), and
 * the other half when the TCP state changed or it is missing. */
static __always_inline void ct_touch(int v6, const struct pkt *p, struct sy_ct6_key *k,
                                     struct sy_ct6_value *f, __u8 dir)
{
	__u8 state = f->tcp_state, fins = f->fin_mask;
	__u64 now = bpf_ktime_get_ns();
	int changed, stale, missing;

	if (p->proto == IPPROTO_TCP && p->frag != SY_FRAG_LATER)
		tcp_advance(f, p->tcp_flags, dir == SY_CT_DIR_FWD);
	changed = state != f->tcp_state || fins != f->fin_mask;
	stale = now - f->last_seen_ns >= SY_CT_TOUCH_NS;
	if (stale)
		f->last_seen_ns = now;
	if (changed || stale)
		ct_write(v6, k, f, BPF_ANY);
	/* the other half's key, in k's place (one key on the caller's stack, not two) */
	if (dir == SY_CT_DIR_FWD)
		flow_rev_key(k, f, p->proto);
	else
		flow_fwd_key(k, f, p->proto);
	missing = !ct_has(v6, k);
	if (changed || missing)
		ct_write(v6, k, f, BPF_ANY);
	if (missing)
		stat_inc(SY_STAT_CT_RESTORE);
}

/* Claim a masquerade port: insert the REV half under nat:port with
 * BPF_NOEXIST, so two CPUs can never take the same port; random ports from
 * the configured range, a bounded number of tries. `k` is the caller's key
 * buffer (overwritten: one key on the stack, not two). */
static __always_inline int ct_claim_snat(int v6, struct sy_ct6_key *k, struct sy_ct6_value *f,
                                         __u8 proto, __u16 port_min, __u16 port_max)
{
	__u32 span;
	int i;

	if (port_min == 0 || port_max < port_min)
		return -1;
	span = (__u32)port_max - port_min + 1;
	for (i = 0; i < SY_SNAT_TRIES; i++) {
		f->nat_port_be = bpf_htons(port_min + bpf_get_prandom_u32() % span);
		flow_rev_key(k, f, proto);
		if (ct_write(v6, k, f, BPF_NOEXIST) == 0)
			return 0;
	}
	return -1;
}

/* IPv4 fragments: the ports of a datagram whose first fragment we handled,
 * keyed by the addresses as they arrived (before translation). */
static __always_inline void frag_record(const struct pkt *p)
{
	struct sy_frag4_key k = {.saddr_be = p->saddr.v4,
	                         .daddr_be = p->daddr.v4,
	                         .id_be = p->frag_id,
	                         .proto = p->proto};
	struct sy_frag_value v = {
	        .sport_be = p->sport, .dport_be = p->dport, .created_ns = bpf_ktime_get_ns()};

	bpf_map_update_elem(&sy_frag4_v2, &k, &v, BPF_ANY);
}

/* A later fragment's ports from its first fragment; -1 if unknown. */
static __always_inline int frag_ports(struct pkt *p)
{
	struct sy_frag4_key k = {.saddr_be = p->saddr.v4,
	                         .daddr_be = p->daddr.v4,
	                         .id_be = p->frag_id,
	                         .proto = p->proto};
	struct sy_frag_value *v = bpf_map_lookup_elem(&sy_frag4_v2, &k);

	if (!v)
		return -1;
	p->sport = v->sport_be;
	p->dport = v->dport_be;
	return 0;
}

#endif /* SY_LIB_CT_H */
