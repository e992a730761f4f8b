/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb.h: Service lookup and backend choice. A frontend is a master entry
 * (slot 0) naming the live generation and slot count; a backend is chosen
 * uniformly at random among the live slots, as kube-proxy's iptables mode
 * does with its probability chain.
 */
#ifndef SY_LIB_LB_H
#define SY_LIB_LB_H

#include "maps.h"
#include "pkt.h"

static __always_inline struct sy_svc_value *lb_lookup_master(const struct pkt *p)
{
	struct sy_svc_key key = {
	        .addr_be = p->daddr,
	        .port_be = p->dport,
	        .proto = p->proto,
	};

	return bpf_map_lookup_elem(&sy_svc4_v1, &key);
}

/* Pick a backend among the live slots. The master's count and gen are read
 * once: an update replaces the whole hash element, so they belong together. */
static __always_inline struct sy_backend *lb_pick(const struct pkt *p,
                                                  const struct sy_svc_value *master,
                                                  __u32 *backend_id)
{
	__u16 count = master->count;
	struct sy_svc_key key = {
	        .addr_be = p->daddr,
	        .port_be = p->dport,
	        .proto = p->proto,
	        .gen = master->gen,
	};
	struct sy_svc_value *slot;

	if (count == 0)
		return NULL;
	key.slot = (bpf_get_prandom_u32() % count) + 1;
	slot = bpf_map_lookup_elem(&sy_svc4_v1, &key);
	if (!slot)
		return NULL;
	*backend_id = slot->backend_id;
	return bpf_map_lookup_elem(&sy_backend4_v1, backend_id);
}

#endif /* SY_LIB_LB_H */
