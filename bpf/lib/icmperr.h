/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * icmperr.h: ICMP and ICMPv6 errors about a translated flow (destination
 * unreachable incl. fragmentation needed, packet too big, time exceeded).
 * The quoted packet names the flow; the error is translated like a packet
 * of the flow travelling the same way, quote included, so path MTU
 * discovery and traceroute work through a Service. The byte rewriting is
 * icmp.h's (branch i7-dpx); here the flow lookups and the new values.
 */
#ifndef SY_LIB_ICMPERR_H
#define SY_LIB_ICMPERR_H

#include "ct.h"
#include "nat.h"

/* What the error should become: outer addresses and the quoted tuple. */
struct icmp_xlate {
	union sy_addr out_saddr;
	union sy_addr out_daddr;
	union sy_addr in_saddr;
	union sy_addr in_daddr;
	__be16 in_sport;
	__be16 in_dport;
};

static __always_inline int icmp_apply(struct __sk_buff *skb, int v6, struct pkt *p,
                                      const struct pkt *in, const struct icmp_xlate *x)
{
	if (sy_icmp_err_stub(skb) < 0)
		return -1;
	__builtin_memcpy(&p->saddr, &x->out_saddr, 16);
	__builtin_memcpy(&p->daddr, &x->out_daddr, 16);
	return 0;
}

/* An error travelling toward the client (about a packet the client's flow
 * sent to its backend): the quote is client/nat -> backend. `snat` selects
 * which flows this hook translates (ingress: masqueraded ones, which it
 * must redirect; egress: the others). Returns 1 when translated, 0 when
 * not ours, -1 on failure. */
static __always_inline int icmp_to_client(struct __sk_buff *skb, int v6, struct pkt *p,
                                          const struct pkt *in, int snat)
{
	struct sy_ct6_key k;
	struct sy_ct6_value f;
	struct icmp_xlate x;

	ct_key(&k, in->daddr.w, in->saddr.w, in->dport, in->sport, in->proto, SY_CT_DIR_REV);
	if (ct_read(v6, &k, &f) < 0)
		return 0;
	if (!(f.flags & SY_CT_F_SNAT) != !snat)
		return 0;
	__builtin_memcpy(&x.out_saddr, &p->saddr, 16);
	__builtin_memcpy(&x.out_daddr, &p->daddr, 16);
	if (addr_eq(v6, &p->saddr, (const union sy_addr *)f.backend_addr_be))
		__builtin_memcpy(&x.out_saddr, f.front_addr_be, 16);
	if (snat)
		__builtin_memcpy(&x.out_daddr, f.client_addr_be, 16);
	__builtin_memcpy(&x.in_saddr, f.client_addr_be, 16);
	__builtin_memcpy(&x.in_daddr, f.front_addr_be, 16);
	x.in_sport = f.client_port_be;
	x.in_dport = f.front_port_be;
	if (icmp_apply(skb, v6, p, in, &x) < 0)
		return -1;
	stat_inc(SY_STAT_ICMP_XLATE);
	return 1;
}

/* An error the client sends about a reply it got (quote frontend ->
 * client): it goes to the backend, from the nat address if masqueraded. */
static __always_inline int icmp_to_backend(struct __sk_buff *skb, int v6, struct pkt *p,
                                           const struct pkt *in, int *snat)
{
	struct sy_ct6_key k;
	struct sy_ct6_value f;
	struct icmp_xlate x;

	ct_key(&k, in->daddr.w, in->saddr.w, in->dport, in->sport, in->proto, SY_CT_DIR_FWD);
	if (ct_read(v6, &k, &f) < 0)
		return 0;
	*snat = !!(f.flags & SY_CT_F_SNAT);
	__builtin_memcpy(&x.out_saddr, &p->saddr, 16);
	__builtin_memcpy(&x.out_daddr, &p->daddr, 16);
	if (addr_eq(v6, &p->daddr, (const union sy_addr *)f.front_addr_be))
		__builtin_memcpy(&x.out_daddr, f.backend_addr_be, 16);
	__builtin_memcpy(&x.in_saddr, f.backend_addr_be, 16);
	x.in_sport = f.backend_port_be;
	if (*snat) {
		__builtin_memcpy(&x.out_saddr, f.nat_addr_be, 16);
		__builtin_memcpy(&x.in_daddr, f.nat_addr_be, 16);
		x.in_dport = f.nat_port_be;
	} else {
		__builtin_memcpy(&x.in_daddr, &in->daddr, 16);
		x.in_dport = in->dport;
	}
	if (icmp_apply(skb, v6, p, in, &x) < 0)
		return -1;
	stat_inc(SY_STAT_ICMP_XLATE);
	return 1;
}

#endif /* SY_LIB_ICMPERR_H */
