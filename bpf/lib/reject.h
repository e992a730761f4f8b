/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * reject.h: kube-proxy's REJECT, generated in place. The frame (Ethernet,
 * untranslated, addressed to a Service frontend) is turned into the answer
 * and sent back out of the interface it came in on:
 *   TCP         a reset (RFC 793 "Reset Generation"): to a segment with
 *               ACK, seq = its ack and only RST; otherwise seq 0 and
 *               RST|ACK with ack = seq + payload + SYN + FIN. A reset is
 *               never answered.
 *   UDP, SCTP   ICMP destination unreachable / port unreachable (type 3
 *               code 3), or ICMPv6 destination unreachable / port
 *               unreachable (type 1 code 4), quoting the offending packet
 *               from its IP header on, as much as keeps the error within
 *               576 bytes (IPv4, as Linux does; RFC 792 asks for the header
 *               + 8 bytes at least) or 1280 bytes (IPv6, RFC 4443 §2.4 c).
 * The answer's source is the packet's destination (the frontend), its
 * destination the packet's source; MACs swapped, TTL / hop limit 64, no IP
 * options or extension headers, every checksum computed.
 *
 * Nothing is answered (TC_ACT_SHOT) to a source that is unspecified,
 * multicast or broadcast, or to a reset.
 *
 * Checksum state of the skb: the answer is resized at least once, which
 * turns CHECKSUM_COMPLETE into CHECKSUM_NONE. The TCP checksum goes through
 * bpf_l4_csum_replace (pseudo-header with BPF_F_PSEUDO_HDR, header
 * without), so it is right both for CHECKSUM_NONE and for a pod's
 * CHECKSUM_PARTIAL segment (csum_start still at the TCP header, the device
 * or the receiving veth peer completes or trusts it). The ICMP checksums
 * are computed whole; a CHECKSUM_PARTIAL datagram keeps csum_start inside
 * the quote, which its veth peer (the only way such a packet is answered)
 * does not check.
 *
 * The ICMP answers need room in front of the quote: bpf_skb_adjust_room
 * (BPF_ADJ_ROOM_MAC) inserts it after the Ethernet header, so l3_off must
 * be ETH_HLEN there; then bpf_skb_change_tail cuts the quote.
 */
#ifndef SY_LIB_REJECT_H
#define SY_LIB_REJECT_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
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

#define SY_REJECT_TTL        64
#define SY_REJECT_QUOTE4_MAX (576 - 20 - 8)  /* 548 */
#define SY_REJECT_QUOTE6_MAX (1280 - 40 - 8) /* 1232 */
#define SY_REJECT_CHUNK      64

/* Fold a 32-bit ones' complement sum to 16 bits. */
static __always_inline __u16 sy_csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* The ones' complement sum (as bpf_csum_diff adds, unfolded) of `len`
 * bytes of the packet at `off`, added to `seed`. len <= 1280. Reads in
 * 64-byte chunks; the last, shorter one is zero-padded. */
static __always_inline __s64 sy_skb_csum(struct __sk_buff *skb, __u32 off, __u32 len, __u32 seed)
{
	__u8 buf[SY_REJECT_CHUNK];
	__u32 chunks = len / SY_REJECT_CHUNK;
	__u32 rest = len % SY_REJECT_CHUNK;
	__s64 sum = seed;
	int i;

	if (len > 1280)
		return -1;
	/* Hide what clang knows of chunks (<= 20), so that it keeps the
	 * constant loop bound the verifier needs. */
	asm volatile("" : "+r"(chunks));
	for (i = 0; i < 1280 / SY_REJECT_CHUNK; i++) {
		if (i >= (int)chunks)
			break;
		if (bpf_skb_load_bytes(skb, off + i * SY_REJECT_CHUNK, buf, SY_REJECT_CHUNK) < 0)
			return -1;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)buf, SY_REJECT_CHUNK, (__u32)sum);
		if (sum < 0)
			return -1;
	}
	if (rest > 0) {
		/* n = rest (1..63) in a form whose bounds every verifier sees:
		 * 5.10 learns nothing from "n != 0", so n = ((rest - 1) & 63) + 1,
		 * hidden from clang, which would fold it back to rest. */
		__u32 n = rest - 1;
		__u32 words;

		asm volatile("" : "+r"(n));
		n = (n & (SY_REJECT_CHUNK - 1)) + 1;
		words = (n + 3) >> 2;
		asm volatile("" : "+r"(words));
		if (words > SY_REJECT_CHUNK / 4)
			return -1;
		__builtin_memset(buf, 0, sizeof(buf));
		if (bpf_skb_load_bytes(skb, off + chunks * SY_REJECT_CHUNK, buf, n) < 0)
			return -1;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)buf, words << 2, (__u32)sum);
	}
	return sum;
}

/* Swap the Ethernet source and destination. */
static __always_inline int sy_swap_macs(struct __sk_buff *skb)
{
	__u8 macs[2 * ETH_ALEN];
	__u8 swapped[2 * ETH_ALEN];

	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0)
		return -1;
	__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);
	return bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0);
}

/* Resize the frame to new_len. Any resize turns CHECKSUM_COMPLETE into
 * CHECKSUM_NONE (the rewrite does not keep skb->csum), so a frame already
 * of that length is grown by 4 bytes and cut back. A large (GSO) frame is
 * only ever cut: its GSO state is reset by the helper. */
static __always_inline int sy_reject_resize(struct __sk_buff *skb, __u32 new_len)
{
	if (skb->len == new_len && bpf_skb_change_tail(skb, new_len + 4, 0) < 0)
		return -1;
	return bpf_skb_change_tail(skb, new_len, 0) < 0 ? -1 : 0;
}

/* The TCP reset answering `in` (the offending header, host order where
 * computed): ports swapped, seq/ack/flags by RFC 793. payload = segment
 * data length. Returns -1 if `in` is itself a reset. */
static __always_inline int sy_rst_header(const struct tcphdr *in, __u32 payload, struct tcphdr *out)
{
	__builtin_memset(out, 0, sizeof(*out));
	if (in->rst)
		return -1;
	out->source = in->dest;
	out->dest = in->source;
	out->doff = 5;
	out->rst = 1;
	if (in->ack) {
		out->seq = in->ack_seq;
	} else {
		out->ack = 1;
		out->ack_seq = bpf_htonl(bpf_ntohl(in->seq) + payload + in->syn + in->fin);
	}
	return 0;
}

/* Writes the TCP checksum of the reset at l4 through bpf_l4_csum_replace:
 * the field starts at "zero" (0xffff, which is zero in both checksum
 * states), then gets the pseudo-header's sum (BPF_F_PSEUDO_HDR) and the
 * header's. */
static __always_inline int sy_rst_csum(struct __sk_buff *skb, __u32 l4, __s64 pseudo, __s64 hdr)
{
	__u32 check_off = l4 + offsetof(struct tcphdr, check);

	if (pseudo < 0 || hdr < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, check_off, 0, (__u32)pseudo, BPF_F_PSEUDO_HDR) < 0)
		return -1;
	return bpf_l4_csum_replace(skb, check_off, 0, (__u32)hdr, 0) < 0 ? -1 : 0;
}

static __always_inline int sy_reject4_source_ok(__be32 saddr)
{
	__u32 a = bpf_ntohl(saddr);

	return a != 0 && a != 0xffffffff && (a & 0xf0000000) != 0xe0000000;
}

static __always_inline int sy_reject4(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off, __u8 proto)
{
	struct iphdr ip;
	struct iphdr oip;
	__u32 ip_len;
	__s64 sum;

	if (l4_off < l3_off + sizeof(struct iphdr) || l4_off > l3_off + 60)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)) < 0)
		return TC_ACT_SHOT;
	if (!sy_reject4_source_ok(ip.saddr))
		return TC_ACT_SHOT;
	ip_len = bpf_ntohs(ip.tot_len);

	__builtin_memset(&oip, 0, sizeof(oip));
	oip.version = 4;
	oip.ihl = 5;
	oip.ttl = SY_REJECT_TTL;
	oip.saddr = ip.daddr;
	oip.daddr = ip.saddr;

	if (proto == IPPROTO_TCP) {
		struct tcphdr th;
		struct tcphdr rst;
		struct {
			__be32 saddr;
			__be32 daddr;
			__u8 zero;
			__u8 proto;
			__be16 len;
		} ph;
		__u32 hdrs;
		__u32 payload = 0;
		__u32 l4;

		if (bpf_skb_load_bytes(skb, l4_off, &th, sizeof(th)) < 0)
			return TC_ACT_SHOT;
		hdrs = (l4_off - l3_off) + th.doff * 4;
		if (ip_len > hdrs)
			payload = ip_len - hdrs;
		if (sy_rst_header(&th, payload, &rst) < 0)
			return TC_ACT_SHOT;

		oip.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct tcphdr));
		oip.frag_off = bpf_htons(0x4000); /* DF, as Linux sends resets */
		oip.protocol = IPPROTO_TCP;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&oip, sizeof(oip), 0);
		if (sum < 0)
			return TC_ACT_SHOT;
		oip.check = ~sy_csum_fold((__u32)sum);

		ph.saddr = oip.saddr;
		ph.daddr = oip.daddr;
		ph.zero = 0;
		ph.proto = IPPROTO_TCP;
		ph.len = bpf_htons(sizeof(struct tcphdr));

		l4 = l3_off + sizeof(struct iphdr);
		if (sy_reject_resize(skb, l4 + sizeof(struct tcphdr)) < 0)
			return TC_ACT_SHOT;
		if (sy_swap_macs(skb) < 0)
			return TC_ACT_SHOT;
		if (bpf_skb_store_bytes(skb, l3_off, &oip, sizeof(oip), 0) < 0)
			return TC_ACT_SHOT;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&rst, sizeof(rst), 0);
		rst.check = 0xffff;
		if (bpf_skb_store_bytes(skb, l4, &rst, sizeof(rst), 0) < 0)
			return TC_ACT_SHOT;
		if (sy_rst_csum(skb, l4, bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0),
		                sum) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(skb->ifindex, 0);
	}

	if (proto == IPPROTO_UDP || proto == IPPROTO_SCTP) {
		struct {
			struct iphdr ip;
			struct sy_icmphdr icmp;
		} h;
		const __u32 room = sizeof(struct iphdr) + sizeof(struct sy_icmphdr);
		__u32 avail;
		__u32 quote;

		if (l3_off != ETH_HLEN)
			return TC_ACT_SHOT;
		if (skb->len < l4_off + 8)
			return TC_ACT_SHOT; /* the header + 8 bytes are the least an error quotes */
		avail = skb->len - l3_off;
		quote = ip_len < avail ? ip_len : avail;
		if (quote < l4_off - l3_off + 8)
			quote = l4_off - l3_off + 8;
		if (quote > SY_REJECT_QUOTE4_MAX)
			quote = SY_REJECT_QUOTE4_MAX;

		__builtin_memset(&h, 0, sizeof(h));
		h.ip = oip;
		h.ip.tos = 0xc0; /* internetwork control, as Linux sends ICMP errors */
		h.ip.tot_len = bpf_htons(room + quote);
		h.ip.protocol = IPPROTO_ICMP;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&h.ip, sizeof(h.ip), 0);
		if (sum < 0)
			return TC_ACT_SHOT;
		h.ip.check = ~sy_csum_fold((__u32)sum);
		h.icmp.type = SY_ICMP_DEST_UNREACH;
		h.icmp.code = SY_ICMP_PORT_UNREACH;

		if (bpf_skb_adjust_room(skb, room, BPF_ADJ_ROOM_MAC, 0) < 0)
			return TC_ACT_SHOT;
		if (sy_reject_resize(skb, l3_off + room + quote) < 0)
			return TC_ACT_SHOT;
		/* ICMPv4 has no pseudo-header: header (checksum 0) + quote. */
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&h.icmp, sizeof(h.icmp), 0);
		if (sum < 0)
			return TC_ACT_SHOT;
		sum = sy_skb_csum(skb, l3_off + room, quote, (__u32)sum);
		if (sum < 0)
			return TC_ACT_SHOT;
		h.icmp.checksum = ~sy_csum_fold((__u32)sum);
		if (sy_swap_macs(skb) < 0)
			return TC_ACT_SHOT;
		if (bpf_skb_store_bytes(skb, l3_off, &h, sizeof(h), 0) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(skb->ifindex, 0);
	}
	return TC_ACT_SHOT;
}

static __always_inline int sy_reject6_source_ok(const struct in6_addr *a)
{
	__u32 w0 = bpf_ntohl(a->in6_u.u6_addr32[0]);

	if ((w0 >> 24) == 0xff)
		return 0; /* multicast */
	return (a->in6_u.u6_addr32[0] | a->in6_u.u6_addr32[1] | a->in6_u.u6_addr32[2] |
	        a->in6_u.u6_addr32[3]) != 0;
}

struct sy_pseudo6 {
	struct in6_addr saddr;
	struct in6_addr daddr;
	__be32 len;
	__u8 zero[3];
	__u8 nexthdr;
};

static __always_inline int sy_reject6(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off, __u8 proto)
{
	struct ipv6hdr ip;
	struct ipv6hdr oip;
	struct sy_pseudo6 ph;
	__u32 ip_len; /* the whole IPv6 packet */
	__s64 sum;

	if (l4_off < l3_off + sizeof(struct ipv6hdr))
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)) < 0)
		return TC_ACT_SHOT;
	if (!sy_reject6_source_ok(&ip.saddr))
		return TC_ACT_SHOT;
	ip_len = sizeof(struct ipv6hdr) + bpf_ntohs(ip.payload_len);

	__builtin_memset(&oip, 0, sizeof(oip));
	oip.version = 6;
	oip.hop_limit = SY_REJECT_TTL;
	oip.saddr = ip.daddr;
	oip.daddr = ip.saddr;
	__builtin_memset(&ph, 0, sizeof(ph));
	ph.saddr = oip.saddr;
	ph.daddr = oip.daddr;

	if (proto == IPPROTO_TCP) {
		struct tcphdr th;
		struct tcphdr rst;
		__u32 hdrs;
		__u32 payload = 0;
		__u32 l4;

		if (bpf_skb_load_bytes(skb, l4_off, &th, sizeof(th)) < 0)
			return TC_ACT_SHOT;
		hdrs = (l4_off - l3_off) + th.doff * 4;
		if (ip_len > hdrs)
			payload = ip_len - hdrs;
		if (sy_rst_header(&th, payload, &rst) < 0)
			return TC_ACT_SHOT;
		oip.payload_len = bpf_htons(sizeof(struct tcphdr));
		oip.nexthdr = IPPROTO_TCP;
		ph.len = bpf_htonl(sizeof(struct tcphdr));
		ph.nexthdr = IPPROTO_TCP;

		l4 = l3_off + sizeof(struct ipv6hdr);
		if (sy_reject_resize(skb, l4 + sizeof(struct tcphdr)) < 0)
			return TC_ACT_SHOT;
		if (sy_swap_macs(skb) < 0)
			return TC_ACT_SHOT;
		if (bpf_skb_store_bytes(skb, l3_off, &oip, sizeof(oip), 0) < 0)
			return TC_ACT_SHOT;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&rst, sizeof(rst), 0);
		rst.check = 0xffff;
		if (bpf_skb_store_bytes(skb, l4, &rst, sizeof(rst), 0) < 0)
			return TC_ACT_SHOT;
		if (sy_rst_csum(skb, l4, bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0),
		                sum) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(skb->ifindex, 0);
	}

	if (proto == IPPROTO_UDP || proto == IPPROTO_SCTP) {
		struct {
			struct ipv6hdr ip;
			struct icmp6hdr icmp;
		} h;
		const __u32 room = sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr);
		__u32 avail;
		__u32 quote;

		if (l3_off != ETH_HLEN)
			return TC_ACT_SHOT;
		if (skb->len < l4_off + 8)
			return TC_ACT_SHOT;
		avail = skb->len - l3_off;
		quote = ip_len < avail ? ip_len : avail;
		if (quote < l4_off - l3_off + 8)
			quote = l4_off - l3_off + 8;
		if (quote > SY_REJECT_QUOTE6_MAX)
			quote = SY_REJECT_QUOTE6_MAX;

		__builtin_memset(&h, 0, sizeof(h));
		h.ip = oip;
		h.ip.payload_len = bpf_htons(sizeof(struct icmp6hdr) + quote);
		h.ip.nexthdr = IPPROTO_ICMPV6;
		h.icmp.icmp6_type = ICMPV6_DEST_UNREACH;
		h.icmp.icmp6_code = ICMPV6_PORT_UNREACH;
		ph.len = bpf_htonl(sizeof(struct icmp6hdr) + quote);
		ph.nexthdr = IPPROTO_ICMPV6;

		if (bpf_skb_adjust_room(skb, room, BPF_ADJ_ROOM_MAC, 0) < 0)
			return TC_ACT_SHOT;
		if (sy_reject_resize(skb, l3_off + room + quote) < 0)
			return TC_ACT_SHOT;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
		if (sum < 0)
			return TC_ACT_SHOT;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&h.icmp, sizeof(h.icmp), (__u32)sum);
		if (sum < 0)
			return TC_ACT_SHOT;
		sum = sy_skb_csum(skb, l3_off + room, quote, (__u32)sum);
		if (sum < 0)
			return TC_ACT_SHOT;
		h.icmp.icmp6_cksum = ~sy_csum_fold((__u32)sum);
		if (sy_swap_macs(skb) < 0)
			return TC_ACT_SHOT;
		if (bpf_skb_store_bytes(skb, l3_off, &h, sizeof(h), 0) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(skb->ifindex, 0);
	}
	return TC_ACT_SHOT;
}

#endif /* SY_LIB_REJECT_H */
