/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nat.h: rewriting a packet's addresses and ports with every checksum kept
 * right (IPv4 header; TCP/UDP through the pseudo header, IPv6 via csum_diff
 * of the 16-byte addresses; a zero IPv4 UDP checksum stays zero; SCTP's
 * CRC32c only covers ports), and handing a packet the program masqueraded
 * to the egress interface the FIB names (never to the local stack, which
 * would see a node address arriving from outside).
 */
#ifndef SY_LIB_NAT_H
#define SY_LIB_NAT_H

#include <linux/tcp.h>
#include <linux/udp.h>
#include "maps.h"
#include "pkt.h"
#include "sctp.h"

#define SY_AF_INET  2
#define SY_AF_INET6 10

/* Offset of the TCP/UDP checksum; 0 for protocols without a pseudo-header
 * checksum we update here (SCTP), and for later fragments (no L4 header). */
static __always_inline __u32 l4_csum_off(const struct pkt *p)
{
	if (p->frag == SY_FRAG_LATER)
		return 0;
	if (p->proto == IPPROTO_TCP)
		return p->l4_off + offsetof(struct tcphdr, check);
	if (p->proto == IPPROTO_UDP)
		return p->l4_off + offsetof(struct udphdr, check);
	return 0;
}

/* Replace the source (is_src) or destination address. */
static __always_inline int rw_addr(struct __sk_buff *skb, int v6, struct pkt *p, int is_src,
                                   const union sy_addr *to)
{
	union sy_addr *from = is_src ? &p->saddr : &p->daddr;
	__u32 csum = l4_csum_off(p);

	if (addr_eq(v6, from, to))
		return 0;
	if (!v6) {
		__u32 off = p->l3_off + (is_src ? offsetof(struct iphdr, saddr)
		                                : offsetof(struct iphdr, daddr));

		if (csum && bpf_l4_csum_replace(skb, csum, from->v4, to->v4,
		                                BPF_F_MARK_MANGLED_0 | BPF_F_PSEUDO_HDR | 4) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, p->l3_off + offsetof(struct iphdr, check), from->v4,
		                        to->v4, 4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, off, &to->v4, 4, 0) < 0)
			return -1;
		from->v4 = to->v4;
		return 0;
	}
	__u32 off = p->l3_off +
	            (is_src ? offsetof(struct ipv6hdr, saddr) : offsetof(struct ipv6hdr, daddr));

	if (csum) {
		__s64 diff = bpf_csum_diff(from->w, 16, (__be32 *)to->w, 16, 0);

		if (diff < 0 || bpf_l4_csum_replace(skb, csum, 0, diff,
		                                    BPF_F_MARK_MANGLED_0 | BPF_F_PSEUDO_HDR) < 0)
			return -1;
	}
	if (bpf_skb_store_bytes(skb, off, to->w, 16, 0) < 0)
		return -1;
	__builtin_memcpy(from->w, to->w, 16);
	return 0;
}

/* SCTP's CRC32c after a port change, as a global BPF function: the
 * verifier checks it once on its own instead of at every call site of every
 * path (inlined, its bit loops took the programs past the 1M-instruction
 * verification limit). Global functions take only ctx and scalars (5.10). */
__noinline int sy_sctp_port_fix(struct __sk_buff *skb, __u32 l4_off, __u32 old_port, __u32 new_port,
                                __u32 is_dst)
{
	return sctp_port_csum_update(skb, l4_off, old_port, new_port, is_dst);
}

/* Replace the source (is_src) or destination port. */
static __always_inline int rw_port(struct __sk_buff *skb, struct pkt *p, int is_src, __be16 to)
{
	__be16 *from = is_src ? &p->sport : &p->dport;
	__u32 csum = l4_csum_off(p);

	if (*from == to || p->frag == SY_FRAG_LATER)
		return 0;
	if (csum && bpf_l4_csum_replace(skb, csum, *from, to, BPF_F_MARK_MANGLED_0 | 2) < 0)
		return -1;
	if (p->proto == IPPROTO_SCTP && sy_sctp_port_fix(skb, p->l4_off, *from, to, !is_src) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, p->l4_off + (is_src ? 0 : 2), &to, 2, 0) < 0)
		return -1;
	*from = to;
	return 0;
}

static __always_inline int rw_src(struct __sk_buff *skb, int v6, struct pkt *p, const void *addr,
                                  __be16 port)
{
	if (rw_addr(skb, v6, p, 1, addr) < 0)
		return -1;
	return rw_port(skb, p, 1, port);
}

static __always_inline int rw_dst(struct __sk_buff *skb, int v6, struct pkt *p, const void *addr,
                                  __be16 port)
{
	if (rw_addr(skb, v6, p, 0, addr) < 0)
		return -1;
	return rw_port(skb, p, 0, port);
}

/* Send a packet we masqueraded (or un-masqueraded) straight to the egress
 * interface the FIB chooses, with the MACs it returned; without a neighbour
 * entry, bpf_redirect_neigh resolves it (5.10's four-argument form). */
static __noinline int fib_redirect(struct __sk_buff *skb, int v6, const struct pkt *p)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	/* BPF_PROG_TEST_RUN leaves ingress_ifindex 0; its skb->dev is the netns' lo */
	fib.ifindex = skb->ingress_ifindex ? skb->ingress_ifindex : skb->ifindex;
	fib.l4_protocol = p->proto;
	fib.sport = p->sport;
	fib.dport = p->dport;
	if (v6) {
		fib.family = SY_AF_INET6;
		__builtin_memcpy(fib.ipv6_src, p->saddr.w, 16);
		__builtin_memcpy(fib.ipv6_dst, p->daddr.w, 16);
	} else {
		fib.family = SY_AF_INET;
		fib.ipv4_src = p->saddr.v4;
		fib.ipv4_dst = p->daddr.v4;
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	stat_inc(SY_STAT_FIB_FAIL);
	return TC_ACT_SHOT;
}

#endif /* SY_LIB_NAT_H */
