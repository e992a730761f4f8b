/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * icmp.h: ICMP and ICMPv6 errors of translated flows. An error (IPv4:
 * destination unreachable, fragmentation needed included, and time
 * exceeded; IPv6: destination unreachable, packet too big, time exceeded)
 * quotes the packet that caused it: the parse helpers return that inner
 * packet's tuple (TCP, UDP or SCTP; IPv6 without extension headers), the
 * rewrite helpers give the outer packet new addresses and the inner packet
 * new addresses and ports, with every checksum fixed incrementally:
 *   outer IPv4 header checksum;
 *   inner IPv4 header checksum (the inner header's sum does not change, so
 *     the ICMP checksum does not move with the inner addresses on IPv4);
 *   inner UDP checksum when its field is among the quoted bytes (and not 0);
 *   inner TCP checksum only when the whole segment is quoted (it rarely is;
 *     a partial segment's checksum cannot be checked by anyone anyway);
 *   inner SCTP: nothing (its CRC32c does not cover addresses; a quoted
 *     packet's port change is left unreflected, nothing verifies it);
 *   the ICMP checksum, over the whole message (ICMPv4: no pseudo-header;
 *     ICMPv6: with the outer addresses, BPF_F_PSEUDO_HDR).
 * Every data change is balanced by a checksum-field change made with the
 * kernel's csum helpers, as pkt.h does for plain packets.
 */
#ifndef SY_LIB_ICMP_H
#define SY_LIB_ICMP_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

/* linux/icmp.h pulls in libc's socket headers, which a BPF build has not:
 * the little of it used here. */
#ifndef SY_ICMPHDR_DEFINED
#define SY_ICMPHDR_DEFINED
struct sy_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* id/sequence, next-hop MTU, or unused */
};
#define SY_ICMP_DEST_UNREACH  3
#define SY_ICMP_PORT_UNREACH  3
#define SY_ICMP_FRAG_NEEDED   4
#define SY_ICMP_TIME_EXCEEDED 11
#endif

/* The packet an error quotes. Offsets are from the start of the frame. */
struct icmp_inner4 {
	__be32 saddr; /* the quoted packet's source (for a reply-direction error: our client side) */
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	__u8 type;  /* the error's ICMP type and code */
	__u8 code;
	__u8 full;    /* 1 when the whole quoted datagram is in the packet */
	__u32 l3_off; /* inner IPv4 header */
	__u32 l4_off; /* inner L4 header */
};

struct icmp_inner6 {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 type;
	__u8 code;
	__u8 full;
	__u32 l3_off;
	__u32 l4_off;
};

/* What a translated error becomes: new outer addresses, new inner
 * addresses and ports (fields equal to the current ones are left alone). */
struct icmp_xlate4 {
	__be32 outer_saddr;
	__be32 outer_daddr;
	__be32 inner_saddr;
	__be32 inner_daddr;
	__be16 inner_sport;
	__be16 inner_dport;
};

struct icmp_xlate6 {
	__be32 outer_saddr[4];
	__be32 outer_daddr[4];
	__be32 inner_saddr[4];
	__be32 inner_daddr[4];
	__be16 inner_sport;
	__be16 inner_dport;
};

static __always_inline int sy_icmp_inner_proto_ok(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/* 0 with *out filled for an ICMPv4 error we translate; -1 for any other
 * ICMP message, a quote too short to hold the inner ports, an inner packet
 * that is a later fragment or of another protocol. */
static __always_inline int icmp4_err_parse(struct __sk_buff *skb, __u32 l3_off, __u32 icmp_off,
                                           struct icmp_inner4 *out)
{
	struct sy_icmphdr icmp;
	struct iphdr ip;
	__u32 ihl;

	if (bpf_skb_load_bytes(skb, icmp_off, &icmp, sizeof(icmp)) < 0)
		return -1;
	if (icmp.type != SY_ICMP_DEST_UNREACH && icmp.type != SY_ICMP_TIME_EXCEEDED)
		return -1;
	out->l3_off = icmp_off + sizeof(struct sy_icmphdr);
	if (bpf_skb_load_bytes(skb, out->l3_off, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl < 5)
		return -1;
	if (ip.frag_off & bpf_htons(0x1fff))
		return -1;
	if (!sy_icmp_inner_proto_ok(ip.protocol))
		return -1;
	ihl = ip.ihl * 4;
	out->l4_off = out->l3_off + ihl;
	if (bpf_skb_load_bytes(skb, out->l4_off, &out->sport, 4) < 0)
		return -1;
	out->saddr = ip.saddr;
	out->daddr = ip.daddr;
	out->proto = ip.protocol;
	out->type = icmp.type;
	out->code = icmp.code;
	out->full = out->l3_off + bpf_ntohs(ip.tot_len) <= skb->len;
	return 0;
}

static __always_inline int icmp6_err_parse(struct __sk_buff *skb, __u32 l3_off, __u32 icmp_off,
                                           struct icmp_inner6 *out)
{
	struct icmp6hdr icmp;
	struct ipv6hdr ip;

	if (bpf_skb_load_bytes(skb, icmp_off, &icmp, sizeof(icmp)) < 0)
		return -1;
	if (icmp.icmp6_type != ICMPV6_DEST_UNREACH && icmp.icmp6_type != ICMPV6_PKT_TOOBIG &&
	    icmp.icmp6_type != ICMPV6_TIME_EXCEED)
		return -1;
	out->l3_off = icmp_off + sizeof(struct icmp6hdr);
	if (bpf_skb_load_bytes(skb, out->l3_off, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 6 || !sy_icmp_inner_proto_ok(ip.nexthdr))
		return -1;
	out->l4_off = out->l3_off + sizeof(struct ipv6hdr);
	if (bpf_skb_load_bytes(skb, out->l4_off, &out->sport, 4) < 0)
		return -1;
	__builtin_memcpy(out->saddr, &ip.saddr, 16);
	__builtin_memcpy(out->daddr, &ip.daddr, 16);
	out->proto = ip.nexthdr;
	out->type = icmp.icmp6_type;
	out->code = icmp.icmp6_code;
	out->full = out->l3_off + sizeof(struct ipv6hdr) + bpf_ntohs(ip.payload_len) <= skb->len;
	return 0;
}

/* Where the inner L4 checksum sits, or 0 when it is not to be updated. */
static __always_inline __u32 sy_icmp_inner_csum_off(struct __sk_buff *skb, __u8 proto, __u32 l4_off,
                                                    __u8 full)
{
	if (proto == IPPROTO_UDP && l4_off + sizeof(struct udphdr) <= skb->len)
		return l4_off + offsetof(struct udphdr, check);
	if (proto == IPPROTO_TCP && full && l4_off + sizeof(struct tcphdr) <= skb->len)
		return l4_off + offsetof(struct tcphdr, check);
	return 0;
}

/* Updates the inner TCP/UDP checksum at csum_off for a change of the
 * words `from` -> `to` (pseudo-header addresses and the ports), and the
 * ICMP checksum at icmp_csum_off for the checksum field's own change. */
static __always_inline int sy_icmp_inner_l4_fix(struct __sk_buff *skb, __u8 proto, __u32 csum_off,
                                                __u32 icmp_csum_off, __be32 *from, __u32 from_size,
                                                __be32 *to, __u32 to_size)
{
	__u16 old_check;
	__u16 new_check;
	__s64 sum;

	if (bpf_skb_load_bytes(skb, csum_off, &old_check, sizeof(old_check)) < 0)
		return -1;
	if (proto == IPPROTO_UDP && old_check == 0)
		return 0; /* no checksum: stays none */
	sum = bpf_csum_diff(from, from_size, to, to_size, (__u16)~old_check);
	if (sum < 0)
		return -1;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	new_check = ~(__u16)sum;
	if (proto == IPPROTO_UDP && new_check == 0)
		new_check = 0xffff;
	if (new_check == old_check)
		return 0;
	if (bpf_l4_csum_replace(skb, icmp_csum_off, old_check, new_check, sizeof(__u16)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, csum_off, &new_check, sizeof(new_check), 0) < 0 ? -1 : 0;
}

/* Rewrites an ICMPv4 error of a translated flow. Returns 0, or -1 when it
 * is not an error we translate (see icmp4_err_parse) or a helper fails
 * (the packet may then be half rewritten: drop it). */
static __always_inline int icmp4_err_rewrite(struct __sk_buff *skb, __u32 l3_off, __u32 icmp_off,
                                             const struct icmp_xlate4 *x)
{
	__u32 icmp_csum_off = icmp_off + offsetof(struct sy_icmphdr, checksum);
	__u32 ip_csum_off = l3_off + offsetof(struct iphdr, check);
	struct icmp_inner4 in;
	__be32 outer[2];
	__be32 from[3];
	__be32 to[3];
	__u32 l4_csum;

	if (icmp4_err_parse(skb, l3_off, icmp_off, &in) < 0)
		return -1;
	if (bpf_skb_load_bytes(skb, l3_off + offsetof(struct iphdr, saddr), outer, sizeof(outer)) <
	    0)
		return -1;

	/* Outer addresses: IP header checksum only (ICMP has no pseudo-header). */
	if (outer[0] != x->outer_saddr) {
		if (bpf_l3_csum_replace(skb, ip_csum_off, outer[0], x->outer_saddr, 4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, l3_off + offsetof(struct iphdr, saddr),
		                        &x->outer_saddr, 4, 0) < 0)
			return -1;
	}
	if (outer[1] != x->outer_daddr) {
		if (bpf_l3_csum_replace(skb, ip_csum_off, outer[1], x->outer_daddr, 4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, l3_off + offsetof(struct iphdr, daddr),
		                        &x->outer_daddr, 4, 0) < 0)
			return -1;
	}

	/* The inner L4 checksum first, from the old values. */
	l4_csum = sy_icmp_inner_csum_off(skb, in.proto, in.l4_off, in.full);
	if (l4_csum) {
		from[0] = in.saddr;
		from[1] = in.daddr;
		to[0] = x->inner_saddr;
		to[1] = x->inner_daddr;
		__builtin_memcpy(&from[2], &in.sport, 4);
		__builtin_memcpy(&to[2], &x->inner_sport, 4);
		if (sy_icmp_inner_l4_fix(skb, in.proto, l4_csum, icmp_csum_off, from, sizeof(from),
		                         to, sizeof(to)) < 0)
			return -1;
	}

	/* Inner addresses: inner header checksum; the header's sum, and so the
	 * ICMP checksum, stays the same. */
	if (in.saddr != x->inner_saddr) {
		if (bpf_l3_csum_replace(skb, in.l3_off + offsetof(struct iphdr, check), in.saddr,
		                        x->inner_saddr, 4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, in.l3_off + offsetof(struct iphdr, saddr),
		                        &x->inner_saddr, 4, 0) < 0)
			return -1;
	}
	if (in.daddr != x->inner_daddr) {
		if (bpf_l3_csum_replace(skb, in.l3_off + offsetof(struct iphdr, check), in.daddr,
		                        x->inner_daddr, 4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, in.l3_off + offsetof(struct iphdr, daddr),
		                        &x->inner_daddr, 4, 0) < 0)
			return -1;
	}

	/* Inner ports: quoted data, so the ICMP checksum. */
	if (in.sport != x->inner_sport) {
		if (bpf_l4_csum_replace(skb, icmp_csum_off, in.sport, x->inner_sport, 2) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, in.l4_off, &x->inner_sport, 2, 0) < 0)
			return -1;
	}
	if (in.dport != x->inner_dport) {
		if (bpf_l4_csum_replace(skb, icmp_csum_off, in.dport, x->inner_dport, 2) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, in.l4_off + 2, &x->inner_dport, 2, 0) < 0)
			return -1;
	}
	return 0;
}

/* Rewrites an ICMPv6 error of a translated flow; as icmp4_err_rewrite. */
static __always_inline int icmp6_err_rewrite(struct __sk_buff *skb, __u32 l3_off, __u32 icmp_off,
                                             const struct icmp_xlate6 *x)
{
	__u32 icmp_csum_off = icmp_off + offsetof(struct icmp6hdr, icmp6_cksum);
	struct icmp_inner6 in;
	__be32 outer[8];
	__be32 want[8];
	__be32 from[9];
	__be32 to[9];
	__u32 l4_csum;
	__s64 diff;

	if (icmp6_err_parse(skb, l3_off, icmp_off, &in) < 0)
		return -1;
	if (bpf_skb_load_bytes(skb, l3_off + offsetof(struct ipv6hdr, saddr), outer,
	                       sizeof(outer)) < 0)
		return -1;

	/* Outer addresses: the ICMPv6 pseudo-header. */
	__builtin_memcpy(want, x->outer_saddr, 16);
	__builtin_memcpy(&want[4], x->outer_daddr, 16);
	diff = bpf_csum_diff(outer, sizeof(outer), want, sizeof(want), 0);
	if (diff < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, icmp_csum_off, 0, (__u32)diff, BPF_F_PSEUDO_HDR) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, l3_off + offsetof(struct ipv6hdr, saddr), want, sizeof(want),
	                        0) < 0)
		return -1;

	__builtin_memcpy(from, in.saddr, 16);
	__builtin_memcpy(&from[4], in.daddr, 16);
	__builtin_memcpy(&from[8], &in.sport, 4);
	__builtin_memcpy(to, x->inner_saddr, 16);
	__builtin_memcpy(&to[4], x->inner_daddr, 16);
	__builtin_memcpy(&to[8], &x->inner_sport, 4);

	/* The inner L4 checksum (its pseudo-header has the inner addresses). */
	l4_csum = sy_icmp_inner_csum_off(skb, in.proto, in.l4_off, in.full);
	if (l4_csum && sy_icmp_inner_l4_fix(skb, in.proto, l4_csum, icmp_csum_off, from,
	                                    sizeof(from), to, sizeof(to)) < 0)
		return -1;

	/* Inner addresses and ports are quoted data: the ICMPv6 checksum. */
	diff = bpf_csum_diff(from, sizeof(from), to, sizeof(to), 0);
	if (diff < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, icmp_csum_off, 0, (__u32)diff, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, in.l3_off + offsetof(struct ipv6hdr, saddr), to, 32, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, in.l4_off, &to[8], 4, 0) < 0)
		return -1;
	return 0;
}

#endif /* SY_LIB_ICMP_H */
