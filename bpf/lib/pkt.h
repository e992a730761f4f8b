/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pkt.h: parsing an Ethernet/IPv4/TCP|UDP packet into a flat tuple, and
 * rewriting its addresses and ports with correct L3 and L4 checksums.
 */
#ifndef SY_LIB_PKT_H
#define SY_LIB_PKT_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define IP_MF     0x2000
#define IP_OFFSET 0x1fff

struct pkt {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags; /* byte 13 of the TCP header; 0 for UDP */
	__u16 l4_off;   /* offset of the L4 header from the start of the frame */
};

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

/* Returns 0 for a TCP or UDP packet we can translate, -1 for anything else
 * (passed up the stack untouched). Non-first fragments carry no ports and are
 * passed; first fragments are translated like any packet. */
static __always_inline int pkt_parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 ihl_len;

	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return -1;
	if (ip->ihl < 5)
		return -1;
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return -1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return -1;

	ihl_len = ip->ihl * 4;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	p->l4_off = ETH_HLEN + ihl_len;
	p->tcp_flags = 0;

	/* Ports are the first four bytes of both TCP and UDP headers. Loading
	 * them with a helper keeps the variable IP header length away from the
	 * verifier's packet-pointer range checks. */
	if (bpf_skb_load_bytes(skb, p->l4_off, &p->sport, 4) < 0)
		return -1;
	if (p->proto == IPPROTO_TCP &&
	    bpf_skb_load_bytes(skb, p->l4_off + 13, &p->tcp_flags, 1) < 0)
		return -1;
	return 0;
}

static __always_inline __u32 l4_csum_off(const struct pkt *p)
{
	return p->l4_off + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
	                                            : offsetof(struct udphdr, check));
}

/* A UDP checksum of zero means "none" and must stay zero. */
static __always_inline __u64 l4_csum_flags(const struct pkt *p)
{
	return p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Rewrite the source (is_src) or destination address and port. */
static __always_inline int pkt_rewrite(struct __sk_buff *skb, struct pkt *p, int is_src,
                                       __be32 addr, __be16 port)
{
	__u32 addr_off =
	        ETH_HLEN + (is_src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));
	__u32 port_off = p->l4_off + (is_src ? 0 : 2);
	__be32 old_addr = is_src ? p->saddr : p->daddr;
	__be16 old_port = is_src ? p->sport : p->dport;
	__u32 csum_off = l4_csum_off(p);
	__u64 fl = l4_csum_flags(p);

	if (old_addr != addr) {
		if (bpf_l4_csum_replace(skb, csum_off, old_addr, addr,
		                        fl | BPF_F_PSEUDO_HDR | sizeof(addr)) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old_addr,
		                        addr, sizeof(addr)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &addr, sizeof(addr), 0) < 0)
			return -1;
	}
	if (old_port != port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, port, fl | sizeof(port)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &port, sizeof(port), 0) < 0)
			return -1;
	}
	if (is_src) {
		p->saddr = addr;
		p->sport = port;
	} else {
		p->daddr = addr;
		p->dport = port;
	}
	return 0;
}

/* Send the frame back out of the interface it came in on, towards the
 * sender: swap the Ethernet addresses and redirect to our own egress. Used
 * for hairpin traffic, whose backend is the client behind this interface. */
static __always_inline int pkt_bounce(struct __sk_buff *skb)
{
	unsigned char macs[2 * ETH_ALEN];
	unsigned char swapped[2 * ETH_ALEN];

	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0)
		return TC_ACT_SHOT;
	__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

#endif /* SY_LIB_PKT_H */
