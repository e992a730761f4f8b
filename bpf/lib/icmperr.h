/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * icmperr.h: ICMP and ICMPv6 errors about a translated flow (destination
 * unreachable incl. fragmentation needed, packet too big, time exceeded).
 * The quoted packet names the flow; the error is translated like a packet
 * of the flow travelling the same way, quote included, so path MTU
 * discovery and traceroute work through a Service. The byte rewriting is
 * icmp.h's; here the flow lookups and the new values.
 */
#ifndef SY_LIB_ICMPERR_H
#define SY_LIB_ICMPERR_H

#include "ct.h"
#include "nat.h"
#include "icmp.h"

/* What the error should become, family-neutral: struct icmp_xlate6 with
 * IPv4 addresses in word 0 (converted for icmp4_err_rewrite). */
static __always_inline int icmp_apply(struct __sk_buff *skb, int v6, struct pkt *p,
                                      const struct icmp_xlate6 *x)
{
	if (v6) {
		if (icmp6_err_rewrite(skb, p->l3_off, p->l4_off, x) < 0)
			return -1;
	} else {
		struct icmp_xlate4 x4 = {
		        .outer_saddr = x->outer_saddr[0],
		        .outer_daddr = x->outer_daddr[0],
		        .inner_saddr = x->inner_saddr[0],
		        .inner_daddr = x->inner_daddr[0],
		        .inner_sport = x->inner_sport,
		        .inner_dport = x->inner_dport,
		};

		if (icmp4_err_rewrite(skb, p->l3_off, p->l4_off, &x4) < 0)
			return -1;
	}
	__builtin_memcpy(&p->saddr, x->outer_saddr, 16);
	__builtin_memcpy(&p->daddr, x->outer_daddr, 16);
	return 0;
}

/* An error travelling toward the client (about a packet the client's flow
 * sent to its backend): the quote is client/nat -> backend. `snat` selects
 * which flows this hook translates (ingress: masqueraded ones, which it
 * must redirect; egress: the others). Fills *x and returns 1 when the error
 * is ours, 0 when not. */
static __always_inline int icmp_plan_to_client(int v6, const struct pkt *p, const struct pkt *in,
                                               int snat, struct icmp_xlate6 *x)
{
	struct sy_ct6_key k;
	struct sy_ct6_value f;

	ct_key(&k, in->daddr.w, in->saddr.w, in->dport, in->sport, in->proto, SY_CT_DIR_REV);
	if (ct_read(v6, &k, &f) < 0)
		return 0;
	if (!(f.flags & SY_CT_F_SNAT) != !snat)
		return 0;
	__builtin_memcpy(x->outer_saddr, &p->saddr, 16);
	__builtin_memcpy(x->outer_daddr, &p->daddr, 16);
	if (addr_eq(v6, &p->saddr, (const union sy_addr *)f.backend_addr_be))
		__builtin_memcpy(x->outer_saddr, f.front_addr_be, 16);
	if (snat)
		__builtin_memcpy(x->outer_daddr, f.client_addr_be, 16);
	__builtin_memcpy(x->inner_saddr, f.client_addr_be, 16);
	__builtin_memcpy(x->inner_daddr, f.front_addr_be, 16);
	x->inner_sport = f.client_port_be;
	x->inner_dport = f.front_port_be;
	return 1;
}

/* An error the client sends about a reply it got (quote frontend ->
 * client): it goes to the backend, from the nat address if masqueraded
 * (then 2 is returned: the caller redirects it). 0 when not ours. */
static __always_inline int icmp_plan_to_backend(int v6, const struct pkt *p, const struct pkt *in,
                                                struct icmp_xlate6 *x)
{
	struct sy_ct6_key k;
	struct sy_ct6_value f;

	ct_key(&k, in->daddr.w, in->saddr.w, in->dport, in->sport, in->proto, SY_CT_DIR_FWD);
	if (ct_read(v6, &k, &f) < 0 || (f.flags & SY_CT_F_KERNEL))
		return 0; /* a kernel-translated flow's errors are the kernel's (conntrack RELATED) */
	__builtin_memcpy(x->outer_saddr, &p->saddr, 16);
	__builtin_memcpy(x->outer_daddr, &p->daddr, 16);
	if (addr_eq(v6, &p->daddr, (const union sy_addr *)f.front_addr_be))
		__builtin_memcpy(x->outer_daddr, f.backend_addr_be, 16);
	__builtin_memcpy(x->inner_saddr, f.backend_addr_be, 16);
	x->inner_sport = f.backend_port_be;
	if (!(f.flags & SY_CT_F_SNAT)) {
		__builtin_memcpy(x->inner_daddr, &in->daddr, 16);
		x->inner_dport = in->dport;
		return 1;
	}
	__builtin_memcpy(x->outer_saddr, f.nat_addr_be, 16);
	__builtin_memcpy(x->inner_daddr, f.nat_addr_be, 16);
	x->inner_dport = f.nat_port_be;
	return 2;
}

/* Which flow an ICMP(v6) error belongs to and what it becomes (*x), from
 * its quote. 0: not ours; 1: translate in place; 2: translate and redirect
 * (a masqueraded flow). Ingress: errors toward the client of masqueraded
 * flows, errors from the client about a reply; egress: errors toward the
 * client of the other flows. */
static __always_inline int icmp_plan(struct __sk_buff *skb, int v6, const struct pkt *p, int egress,
                                     struct icmp_xlate6 *x)
{
	struct pkt in = {};

	if (pkt_parse_quote(skb, v6, p, &in) < 0)
		return 0;
	if (icmp_plan_to_client(v6, p, &in, !egress, x))
		return egress ? 1 : 2;
	if (egress)
		return 0;
	return icmp_plan_to_backend(v6, p, &in, x);
}

#endif /* SY_LIB_ICMPERR_H */
