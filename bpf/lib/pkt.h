/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pkt.h: parsing an Ethernet frame carrying IPv4 or IPv6 into one
 * family-neutral tuple (struct pkt): 16-byte addresses (IPv4 in word 0, the
 * rest zero), ports, protocol, TCP flags, fragment state, and for ICMP/ICMPv6
 * errors the quoted packet's tuple. Every function takes `v6` as a constant
 * argument: the programs call them once per family, so the compiler emits two
 * specialised copies and the verifier never sees a family switch.
 *
 * Fixed-offset headers are read with direct packet access; anything behind a
 * variable-length header (IPv4 options, IPv6 extension headers, ICMP quotes)
 * with bpf_skb_load_bytes, which keeps variable offsets away from the
 * verifier's packet-range tracking.
 */
#ifndef SY_LIB_PKT_H
#define SY_LIB_PKT_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif
#define SY_NEXTHDR_HOP      0
#define SY_NEXTHDR_ROUTING  43
#define SY_NEXTHDR_FRAGMENT 44
#define SY_NEXTHDR_DEST     60
#define SY_IPV6_EXT_MAX     4 /* extension headers skipped before the L4 header */

#define SY_IP_MF     0x2000
#define SY_IP_OFFSET 0x1fff

#define SY_TCP_FIN 0x01
#define SY_TCP_SYN 0x02
#define SY_TCP_RST 0x04
#define SY_TCP_ACK 0x10

#define SY_ICMP_DEST_UNREACH  3
#define SY_ICMP_TIME_EXCEEDED 11
#define SY_ICMP6_DEST_UNREACH 1
#define SY_ICMP6_PKT_TOOBIG   2
#define SY_ICMP6_TIME_EXCEED  3
#define SY_ICMP_HDR_LEN       8 /* type, code, checksum, 4 bytes; the quote follows */
#define SY_IPV6_HLEN          40

union sy_addr {
	__be32 v4;
	__be32 w[4];
};

#define SY_FRAG_NONE  0
#define SY_FRAG_FIRST 1 /* IPv4, MF set, offset 0: has the L4 header */
#define SY_FRAG_LATER 2 /* IPv4, offset > 0: no L4 header, ports from sy_frag4_v2 */

struct pkt {
	union sy_addr saddr;
	union sy_addr daddr;
	__be16 sport;
	__be16 dport;
	__u16 l3_off;
	__u16 l4_off;
	__be16 frag_id; /* IPv4 identification */
	__u8 proto;
	__u8 tcp_flags; /* byte 13 of the TCP header */
	__u8 frag;      /* SY_FRAG_* */
	__u8 pad[3];
};

/* What pkt_parse found. */
#define SY_PARSE_PASS     0 /* not ours: other protocol, ICMP that is not an error, malformed L3 */
#define SY_PARSE_L4       1 /* TCP, UDP or SCTP with ports (or an IPv4 later fragment) */
#define SY_PARSE_ICMP_ERR 2 /* an ICMP(v6) error: pkt_parse_quote reads what it quotes */
#define SY_PARSE_BAD_L4   3 /* IP header fine, L4 header unreadable */
#define SY_PARSE_FRAG6    4 /* IPv6 with a Fragment header */

static __always_inline int addr_eq(int v6, const union sy_addr *a, const union sy_addr *b)
{
	if (!v6)
		return a->v4 == b->v4;
	return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) |
	        (a->w[3] ^ b->w[3])) == 0;
}

static __always_inline int l4_proto_ok(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/* Ports (the first four bytes of TCP, UDP and SCTP headers) and TCP flags. */
static __always_inline int parse_ports(struct __sk_buff *skb, struct pkt *p)
{
	if (bpf_skb_load_bytes(skb, p->l4_off, &p->sport, 4) < 0)
		return -1;
	if (p->proto == IPPROTO_TCP &&
	    bpf_skb_load_bytes(skb, p->l4_off + 13, &p->tcp_flags, 1) < 0)
		return -1;
	return 0;
}

/* The packet quoted by an ICMP(v4) error starting at l3_off (no options
 * beyond what ihl says, first fragment only). */
static __always_inline int parse_quote4(struct __sk_buff *skb, __u32 l3_off, struct pkt *in)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl < 5 || (ip.frag_off & bpf_htons(SY_IP_OFFSET)))
		return -1;
	if (!l4_proto_ok(ip.protocol))
		return -1;
	in->saddr.v4 = ip.saddr;
	in->daddr.v4 = ip.daddr;
	in->proto = ip.protocol;
	in->l3_off = l3_off;
	in->l4_off = l3_off + ip.ihl * 4;
	return bpf_skb_load_bytes(skb, in->l4_off, &in->sport, 4);
}

static __always_inline int parse_quote6(struct __sk_buff *skb, __u32 l3_off, struct pkt *in)
{
	struct ipv6hdr ip;

	if (bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)) < 0)
		return -1;
	if (!l4_proto_ok(ip.nexthdr))
		return -1;
	__builtin_memcpy(in->saddr.w, &ip.saddr, 16);
	__builtin_memcpy(in->daddr.w, &ip.daddr, 16);
	in->proto = ip.nexthdr;
	in->l3_off = l3_off;
	in->l4_off = l3_off + SY_IPV6_HLEN;
	return bpf_skb_load_bytes(skb, in->l4_off, &in->sport, 4);
}

static __always_inline int is_icmp_error(int v6, __u8 type)
{
	if (!v6)
		return type == SY_ICMP_DEST_UNREACH || type == SY_ICMP_TIME_EXCEEDED;
	return type == SY_ICMP6_DEST_UNREACH || type == SY_ICMP6_PKT_TOOBIG ||
	       type == SY_ICMP6_TIME_EXCEED;
}

/* The packet an ICMP error quotes (see parse_l4); -1 if not TCP/UDP/SCTP. */
static __always_inline int pkt_parse_quote(struct __sk_buff *skb, int v6, const struct pkt *p,
                                           struct pkt *in)
{
	__u32 off = p->l4_off + SY_ICMP_HDR_LEN;

	return v6 ? parse_quote6(skb, off, in) : parse_quote4(skb, off, in);
}

/* After the L3 header: ports, or whether it is an ICMP error (whose quote
 * pkt_parse_quote reads). */
static __always_inline int parse_l4(struct __sk_buff *skb, int v6, struct pkt *p)
{
	__u8 type;

	if (l4_proto_ok(p->proto))
		return parse_ports(skb, p) < 0 ? SY_PARSE_BAD_L4 : SY_PARSE_L4;
	if (p->proto != (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
		return SY_PARSE_PASS;
	if (bpf_skb_load_bytes(skb, p->l4_off, &type, 1) < 0 || !is_icmp_error(v6, type))
		return SY_PARSE_PASS;
	if (p->frag != SY_FRAG_NONE)
		return SY_PARSE_PASS;
	return SY_PARSE_ICMP_ERR;
}

static __always_inline int parse4(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end)
		return SY_PARSE_PASS;
	if (ip->version != 4 || ip->ihl < 5)
		return SY_PARSE_PASS;
	p->saddr.v4 = ip->saddr;
	p->daddr.v4 = ip->daddr;
	p->proto = ip->protocol;
	p->frag_id = ip->id;
	p->l3_off = ETH_HLEN;
	p->l4_off = ETH_HLEN + ip->ihl * 4;
	if (ip->frag_off & bpf_htons(SY_IP_OFFSET)) {
		p->frag = SY_FRAG_LATER;
		return l4_proto_ok(p->proto) ? SY_PARSE_L4 : SY_PARSE_PASS;
	}
	if (ip->frag_off & bpf_htons(SY_IP_MF))
		p->frag = SY_FRAG_FIRST;
	return parse_l4(skb, 0, p);
}

static __always_inline int parse6(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip = data + ETH_HLEN;
	__u32 off = ETH_HLEN + SY_IPV6_HLEN;
	__u8 nh;
	int i;

	if ((void *)(ip + 1) > data_end)
		return SY_PARSE_PASS;
	if (ip->version != 6)
		return SY_PARSE_PASS;
	__builtin_memcpy(p->saddr.w, &ip->saddr, 16);
	__builtin_memcpy(p->daddr.w, &ip->daddr, 16);
	nh = ip->nexthdr;
	p->l3_off = ETH_HLEN;
	for (i = 0; i < SY_IPV6_EXT_MAX; i++) {
		__u8 ext[2];

		if (nh == SY_NEXTHDR_FRAGMENT)
			return SY_PARSE_FRAG6;
		if (nh != SY_NEXTHDR_HOP && nh != SY_NEXTHDR_ROUTING && nh != SY_NEXTHDR_DEST)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
			return SY_PARSE_PASS;
		nh = ext[0];
		off += (ext[1] + 1) * 8;
	}
	p->proto = nh;
	p->l4_off = off;
	return parse_l4(skb, 1, p);
}

static __always_inline int pkt_parse(struct __sk_buff *skb, int v6, struct pkt *p)
{
	return v6 ? parse6(skb, p) : parse4(skb, p);
}

#endif /* SY_LIB_PKT_H */
