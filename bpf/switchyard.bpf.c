// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * switchyard.bpf.c: the tc ingress program. Attached to the host side of
 * every pod interface and to the node's external interface, it
 *   - translates packets addressed to a Service frontend to a backend (DNAT),
 *     keeping every packet of a flow on the backend its first packet chose;
 *   - masquerades hairpin flows (a pod reaching itself through its Service)
 *     to the node address, since the pod would drop a packet from itself;
 *   - reverse-translates replies so the client sees the frontend as source.
 * Everything else passes untouched (TC_ACT_OK).
 */
#include "lib/pkt.h"
#include "lib/maps.h"
#include "lib/lb.h"
#include "lib/ct.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline __be32 node_addr(void)
{
	__u32 zero = 0;
	struct sy_config *cfg = bpf_map_lookup_elem(&sy_config_v1, &zero);

	return cfg ? cfg->node_addr_be : 0;
}

/* A new flow to a frontend: choose its backend and masquerading. */
static __always_inline int new_flow(const struct pkt *p, const struct sy_svc_value *master,
                                    struct sy_ct_value *ct)
{
	struct sy_backend *be;
	__u32 id = 0;

	be = lb_pick(p, master, &id);
	if (!be) {
		stat_inc(SY_STAT_NO_BACKEND);
		return -1;
	}
	ct->backend_id = id;
	ct->backend_addr_be = be->addr_be;
	ct->backend_port_be = be->port_be;
	ct->last_seen_ns = bpf_ktime_get_ns();

	if (be->addr_be == p->saddr) {
		__be32 nat = node_addr();
		__be16 port;

		if (!nat) {
			stat_inc(SY_STAT_SNAT_FAIL);
			return -1;
		}
		port = ct_nat_port(p, be->addr_be, be->port_be, nat);
		if (!port) {
			stat_inc(SY_STAT_SNAT_FAIL);
			return -1;
		}
		ct->flags = SY_CT_F_SNAT | SY_CT_F_HAIRPIN;
		ct->nat_addr_be = nat;
		ct->nat_port_be = port;
	}
	if (ct_create(p, ct) < 0)
		return -1;
	stat_inc(SY_STAT_CT_NEW);
	return 0;
}

static __always_inline int to_service(struct __sk_buff *skb, struct pkt *p,
                                      const struct sy_svc_value *master)
{
	struct sy_ct_key fk = {};
	struct sy_ct_value *found;
	struct sy_ct_value ct = {};

	stat_inc(SY_STAT_SVC_HIT);
	ct_key_fwd(&fk, p);
	found = bpf_map_lookup_elem(&sy_ct4_v1, &fk);
	if (found && ct_usable(found, p)) {
		ct = *found;
	} else if (new_flow(p, master, &ct) < 0) {
		/* No backend: kube-proxy rejects; until the reject path lands
		 * the packet is dropped rather than leaked to the default route. */
		return TC_ACT_SHOT;
	}

	if (ct.flags & SY_CT_F_SNAT) {
		if (pkt_rewrite(skb, p, 1, ct.nat_addr_be, ct.nat_port_be) < 0)
			return TC_ACT_SHOT;
	}
	if (pkt_rewrite(skb, p, 0, ct.backend_addr_be, ct.backend_port_be) < 0)
		return TC_ACT_SHOT;
	if (ct.flags & SY_CT_F_HAIRPIN)
		return pkt_bounce(skb);
	return TC_ACT_OK;
}

static __always_inline int from_backend(struct __sk_buff *skb, struct pkt *p)
{
	struct sy_ct_key rk = {};
	struct sy_rnat_value *r;
	struct sy_rnat_value rv;

	rk.saddr_be = p->saddr;
	rk.daddr_be = p->daddr;
	rk.sport_be = p->sport;
	rk.dport_be = p->dport;
	rk.proto = p->proto;
	r = bpf_map_lookup_elem(&sy_rnat4_v1, &rk);
	if (!r)
		return TC_ACT_OK;
	rv = *r;
	stat_inc(SY_STAT_RNAT);

	if (rv.flags & SY_CT_F_SNAT) {
		if (pkt_rewrite(skb, p, 0, rv.client_addr_be, rv.client_port_be) < 0)
			return TC_ACT_SHOT;
	}
	if (pkt_rewrite(skb, p, 1, rv.front_addr_be, rv.front_port_be) < 0)
		return TC_ACT_SHOT;
	if (rv.flags & SY_CT_F_HAIRPIN)
		return pkt_bounce(skb);
	return TC_ACT_OK;
}

SEC("tc")
int sy_ingress(struct __sk_buff *skb)
{
	struct sy_svc_value *master;
	struct pkt p = {};

	if (pkt_parse(skb, &p) < 0)
		return TC_ACT_OK;
	master = lb_lookup_master(&p);
	if (master)
		return to_service(skb, &p, master);
	return from_backend(skb, &p);
}
