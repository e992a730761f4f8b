/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb.h: frontends and backends. A frontend (address, port, protocol, scope)
 * is a master entry naming its verdict and live slot generation in one word
 * (`state`), plus backend slots; a new connection reads `state` once, picks
 * a slot uniformly at random (kube-proxy's iptables mode does the same with
 * its probability chain) and, if the slot vanished because the master was
 * replaced meanwhile, rereads the master instead of dropping the packet.
 * A master with SY_SVC_F_MAGLEV picks by Maglev consistent hashing
 * instead: its 5-tuple's entry in the frontend's table (sy_maglev_v2).
 * A master with SY_SVC_F_AFFINITY (sessionAffinity: ClientIP) first asks
 * the affinity map for the backend this client last used through this
 * frontend (sy_maps.h has the rules), and records the backend it picked.
 * Also here: the Service-IP set (unknown ports are dropped), the
 * loadBalancerSourceRanges trie and the local-traffic detector.
 */
#ifndef SY_LIB_LB_H
#define SY_LIB_LB_H

#include "maps.h"
#include "pkt.h"

#define SY_PICK_TRIES 2 /* master rereads when a slot vanished under us */

static __always_inline struct sy_svc_value *svc_lookup(int v6, const union sy_addr *a, __be16 port,
                                                       __u8 proto, __u8 scope, __u16 slot, __u8 gen)
{
	if (v6) {
		struct sy_svc6_key k = {
		        .port_be = port, .proto = proto, .scope = scope, .slot = slot, .gen = gen};

		__builtin_memcpy(k.addr_be, a->w, 16);
		return bpf_map_lookup_elem(&sy_svc6_v2, &k);
	}
	struct sy_svc4_key k = {.addr_be = a->v4,
	                        .port_be = port,
	                        .proto = proto,
	                        .scope = scope,
	                        .slot = slot,
	                        .gen = gen};

	return bpf_map_lookup_elem(&sy_svc4_v2, &k);
}

/* Whether the address is a Service IP (a ClusterIP in use). */
static __always_inline int vip_has(int v6, const union sy_addr *a)
{
	if (v6) {
		struct sy_vip6_key k;

		__builtin_memcpy(k.addr_be, a->w, 16);
		return bpf_map_lookup_elem(&sy_vip6_v2, &k) != NULL;
	}
	struct sy_vip4_key k = {.addr_be = a->v4};

	return bpf_map_lookup_elem(&sy_vip4_v2, &k) != NULL;
}

/* Whether the source is inside one of the frontend's source ranges. */
static __always_inline int srcrange_allows(int v6, __u32 svc_id, const union sy_addr *saddr)
{
	if (v6) {
		struct sy_srcrange6_key k = {.prefixlen = 32 + 128, .svc_id_be = bpf_htonl(svc_id)};

		__builtin_memcpy(k.addr_be, saddr->w, 16);
		return bpf_map_lookup_elem(&sy_srcrange6_v2, &k) != NULL;
	}
	struct sy_srcrange4_key k = {
	        .prefixlen = 32 + 32, .svc_id_be = bpf_htonl(svc_id), .addr_be = saddr->v4};

	return bpf_map_lookup_elem(&sy_srcrange4_v2, &k) != NULL;
}

/* A backend's address and port by id; -1 when the id is gone. */
static __always_inline int backend_get(int v6, __u32 id, union sy_addr *addr, __be16 *port)
{
	if (v6) {
		struct sy_backend6 *be = bpf_map_lookup_elem(&sy_backend6_v2, &id);

		if (!be)
			return -1;
		__builtin_memcpy(addr->w, be->addr_be, 16);
		*port = be->port_be;
		return 0;
	}
	struct sy_backend4 *be = bpf_map_lookup_elem(&sy_backend4_v2, &id);

	if (!be)
		return -1;
	addr->v4 = be->addr_be;
	*port = be->port_be;
	return 0;
}

/* network-order mask of the first `bits` bits of a 32-bit word (0..32) */
static __always_inline __be32 prefix_mask(int bits)
{
	if (bits <= 0)
		return 0;
	if (bits >= 32)
		return 0xffffffff;
	return bpf_htonl(0xffffffffu << (32 - bits));
}

/* kube-proxy's local-traffic detector: is this source a pod of the cluster? */
static __always_inline int src_is_pod(int v6, int from_pod_iface, const struct sy_config_v2 *cfg,
                                      const union sy_addr *saddr)
{
	int len, i;

	if ((cfg->flags & SY_CFG_DETECT_IFACE) && from_pod_iface)
		return 1;
	if (!(cfg->flags & SY_CFG_DETECT_CIDR))
		return 0;
	if (!v6) {
		len = cfg->pod_cidr4_len;
		if (len == 0)
			return 0;
		return ((saddr->v4 ^ cfg->pod_cidr4_be) & prefix_mask(len)) == 0;
	}
	len = cfg->pod_cidr6_len;
	if (len == 0)
		return 0;
#pragma unroll
	for (i = 0; i < 4; i++) {
		if ((saddr->w[i] ^ cfg->pod_cidr6_be[i]) & prefix_mask(len - 32 * i))
			return 0;
	}
	return 1;
}

#define SY_NSEC_PER_SEC 1000000000ULL

static __always_inline struct sy_aff_value *aff_lookup(int v6, __u32 svc_id,
                                                       const union sy_addr *client)
{
	if (v6) {
		struct sy_aff6_key k = {.svc_id = svc_id};

		__builtin_memcpy(k.addr_be, client->w, 16);
		return bpf_map_lookup_elem(&sy_aff6_v2, &k);
	}
	struct sy_aff4_key k = {.svc_id = svc_id, .addr_be = client->v4};

	return bpf_map_lookup_elem(&sy_aff4_v2, &k);
}

/* Records (or replaces) the client's affinity backend. A failed insert only
 * costs the client its affinity for the next connection. */
static __always_inline void aff_record(int v6, __u32 svc_id, const union sy_addr *client,
                                       __u32 backend_id, __u64 now)
{
	struct sy_aff_value v = {.backend_id = backend_id, .last_used_ns = now};

	if (v6) {
		struct sy_aff6_key k = {.svc_id = svc_id};

		__builtin_memcpy(k.addr_be, client->w, 16);
		bpf_map_update_elem(&sy_aff6_v2, &k, &v, BPF_ANY);
		return;
	}
	struct sy_aff4_key k = {.svc_id = svc_id, .addr_be = client->v4};

	bpf_map_update_elem(&sy_aff4_v2, &k, &v, BPF_ANY);
}

/* The client's affinity backend for master m, into *f: 0 when there is one
 * used within the timeout that is still a backend of this scope, else -1
 * (the caller picks, and records its pick). A hit refreshes the entry. */
static __always_inline int aff_pick(int v6, const struct pkt *p, __u8 scope,
                                    const struct sy_svc_value *m, struct sy_ct6_value *f, __u64 now)
{
	struct sy_aff_value *a = aff_lookup(v6, m->svc_id, &p->saddr);
	struct sy_aff_be_key mk = {.svc_id = m->svc_id, .scope = scope};
	__u64 timeout = (__u64)m->affinity_timeout_s * SY_NSEC_PER_SEC;
	__u32 id;

	if (!a)
		return -1;
	id = *(volatile __u32 *)&a->backend_id;
	if (now - a->last_used_ns > timeout)
		return -1;
	mk.backend_id = id;
	if (!bpf_map_lookup_elem(&sy_aff_be_v2, &mk))
		return -1;
	if (backend_get(v6, id, (union sy_addr *)f->backend_addr_be, &f->backend_port_be) < 0)
		return -1;
	f->backend_id = id;
	a->last_used_ns = now;
	stat_inc(SY_STAT_AFFINITY);
	return 0;
}

/* A new connection to master m: its client's affinity backend into *f (0),
 * or -1 (no affinity, not forwarding, or no usable entry: the caller picks,
 * then aff_remember()s the pick). */
static __always_inline int aff_choose(int v6, const struct pkt *p, __u8 scope,
                                      const struct sy_svc_value *m, struct sy_ct6_value *f)
{
	__u32 state = *(volatile const __u32 *)&m->state;

	if (!(m->flags & SY_SVC_F_AFFINITY) || SY_STATE_ACTION(state) != SY_ACT_FORWARD ||
	    SY_STATE_COUNT(state) == 0)
		return -1;
	f->svc_id = m->svc_id;
	return aff_pick(v6, p, scope, m, f, bpf_ktime_get_ns());
}

static __always_inline int aff_remember(int v6, const struct pkt *p, __u32 svc_id, __u32 backend_id)
{
	aff_record(v6, svc_id, &p->saddr, backend_id, bpf_ktime_get_ns());
	return 0;
}

/* murmur3's 32-bit block mix and finalizer: the flow hash of Maglev. Fixed
 * (no per-node seed), so every node sends a flow to the same backend. */
static __always_inline __u32 hash_mix(__u32 h, __u32 k)
{
	/* one word at a time: without this barrier clang loads and mixes all the
	 * words at once, and the spilled halves cost lb_maglev6 64 bytes of stack
	 * (its caller chain is at the 512-byte limit on 5.10) */
	asm volatile("" : "+r"(h), "+r"(k) : : "memory");
	k *= 0xcc9e2d51;
	k = (k << 15) | (k >> 17);
	k *= 0x1b873593;
	h ^= k;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 flow_hash(int v6, const struct pkt *p)
{
	__u32 h = 0x5359;
	int i;

	if (v6) {
#pragma unroll
		for (i = 0; i < 4; i++)
			h = hash_mix(h, p->saddr.w[i]);
#pragma unroll
		for (i = 0; i < 4; i++)
			h = hash_mix(h, p->daddr.w[i]);
	} else {
		h = hash_mix(h, p->saddr.v4);
		h = hash_mix(h, p->daddr.v4);
	}
	h = hash_mix(h, ((__u32)p->sport << 16) | p->dport);
	h = hash_mix(h, p->proto);
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

/* The backend id a new connection gets from master m (state read once):
 * Maglev's table entry for its 5-tuple, or a random slot. 0 when the entry
 * or slot is gone (the master was replaced meanwhile: reread it). */
static __always_inline __u32 pick_id(int v6, const struct pkt *p, __u8 scope,
                                     const struct sy_svc_value *m, __u32 state, int maglev,
                                     __u32 hash)
{
	__u32 count = SY_STATE_COUNT(state);
	__u32 size = m->maglev_m;

	if (maglev && size > 0) {
		struct sy_maglev_key k = {.svc_id = m->svc_id,
		                          .scope = scope,
		                          .gen = SY_STATE_GEN(state),
		                          .index = hash % size};
		struct sy_maglev_value *e = bpf_map_lookup_elem(&sy_maglev_v2, &k);

		if (!e)
			return 0;
		stat_inc(SY_STAT_MAGLEV);
		return e->backend_id;
	}
	struct sy_svc_value *slot =
	        svc_lookup(v6, &p->daddr, p->dport, p->proto, scope,
	                   1 + bpf_get_prandom_u32() % count, SY_STATE_GEN(state));

	return slot ? slot->backend_id : 0;
}

/* The master's verdict for a new connection; on SY_ACT_FORWARD the chosen
 * backend (address, port, id) and the frontend's svc_id are in *f. Returns
 * -1 when no consistent version of the frontend could be read (or its
 * backend entry is missing). A FORWARD with no slots is a REJECT
 * (kube-proxy rejects Services without endpoints). Maglev or a random
 * slot; session affinity is asked before (aff_choose) and told after
 * (aff_remember), each in its own frame (switchyard.bpf.c). */
static __always_inline int lb_pick(int v6, const struct pkt *p, __u8 scope,
                                   const struct sy_svc_value *master, struct sy_ct6_value *f,
                                   int maglev)
{
	const struct sy_svc_value *m = master;
	/* once, before the rereads: the packet's words are not kept live (spilled) across them */
	__u32 hash = maglev ? flow_hash(v6, p) : 0;
	int i;

	for (i = 0; i < SY_PICK_TRIES; i++) {
		__u32 state = *(volatile const __u32 *)&m->state;
		__u32 action = SY_STATE_ACTION(state);
		__u32 id;

		if (action != SY_ACT_FORWARD)
			return action;
		if (SY_STATE_COUNT(state) == 0)
			return SY_ACT_REJECT;
		f->svc_id = m->svc_id;
		id = pick_id(v6, p, scope, m, state, maglev, hash);
		if (id) {
			f->backend_id = id;
			if (backend_get(v6, id, (union sy_addr *)f->backend_addr_be,
			                &f->backend_port_be) < 0)
				return -1;
			return SY_ACT_FORWARD;
		}
		stat_inc(SY_STAT_RETRY);
		m = svc_lookup(v6, &p->daddr, p->dport, p->proto, scope, 0, 0);
		if (!m)
			return -1;
	}
	return -1;
}

/* lb_pick for masters without / with SY_SVC_F_MAGLEV: `maglev` a compile-time
 * constant, so each has only its own keys in its frame. */
static __always_inline int lb_random(int v6, const struct pkt *p, __u8 scope,
                                     const struct sy_svc_value *m, struct sy_ct6_value *f)
{
	return lb_pick(v6, p, scope, m, f, 0);
}

static __always_inline int lb_maglev(int v6, const struct pkt *p, __u8 scope,
                                     const struct sy_svc_value *m, struct sy_ct6_value *f)
{
	return lb_pick(v6, p, scope, m, f, 1);
}

#endif /* SY_LIB_LB_H */
