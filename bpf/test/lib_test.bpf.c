/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lib_test.bpf.c: test-only tc programs that drive the datapath library
 * headers (lib/reject.h, lib/sctp.h, lib/icmp.h) through BPF_PROG_TEST_RUN
 * in test/privileged/bpf-lib.test.ts. Each parses a frame minimally
 * (Ethernet + IPv4 without assumptions on options, or IPv6 without
 * extension headers) and calls one library function:
 *   t_reject        sy_reject4 / sy_reject6 on a TCP, UDP or SCTP packet
 *                   (anything else passes, so it can sit on a live link);
 *   t_sctp_dport    stores lib_test_cfg.sctp_port as the SCTP destination
 *   t_sctp_sport    (source) port and calls sctp_port_csum_update;
 *   t_icmp_xlate    icmp4/6_err_parse (result in lib_test_out) and
 *                   icmp4/6_err_rewrite with lib_test_cfg's translation.
 * Built by bpf/Makefile into bpf/build/lib_test.bpf.o; never attached.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../lib/reject.h"
#include "../lib/sctp.h"
#include "../lib/icmp.h"

struct lib_test_cfg {
	__be16 sctp_port; /* the new SCTP port */
	__u16 pad;
	struct icmp_xlate4 x4;
	struct icmp_xlate6 x6;
};

struct lib_test_out {
	__s32 parse_rc;
	__s32 rewrite_rc;
	struct icmp_inner4 in4;
	struct icmp_inner6 in6;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lib_test_cfg);
} lib_test_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lib_test_out);
} lib_test_out SEC(".maps");

/* Family, L4 offset and protocol of the frame; -1 for anything else. */
static __always_inline int lt_parse(struct __sk_buff *skb, int *v6, __u32 *l4_off, __u8 *proto)
{
	__be16 type;
	__u8 vihl;

	if (bpf_skb_load_bytes(skb, 12, &type, 2) < 0)
		return -1;
	if (type == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &vihl, 1) < 0 || (vihl >> 4) != 4 ||
		    (vihl & 0xf) < 5)
			return -1;
		if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, protocol), proto, 1) <
		    0)
			return -1;
		*v6 = 0;
		*l4_off = ETH_HLEN + (vihl & 0xf) * 4;
		return 0;
	}
	if (type == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, nexthdr), proto,
		                       1) < 0)
			return -1;
		*v6 = 1;
		*l4_off = ETH_HLEN + sizeof(struct ipv6hdr);
		return 0;
	}
	return -1;
}

SEC("tc")
int t_reject(struct __sk_buff *skb)
{
	__u32 l4_off;
	__u8 proto;
	int v6;

	if (lt_parse(skb, &v6, &l4_off, &proto) < 0)
		return TC_ACT_UNSPEC;
	/* Everything else passes: ARP, neighbour discovery, ICMP. */
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
		return TC_ACT_UNSPEC;
	if (v6)
		return sy_reject6(skb, ETH_HLEN, l4_off, proto);
	return sy_reject4(skb, ETH_HLEN, l4_off, proto);
}

static __always_inline int lt_sctp_port(struct __sk_buff *skb, int is_dst)
{
	struct lib_test_cfg *cfg;
	__u32 zero = 0;
	__u32 l4_off;
	__be16 old_port;
	__u8 proto;
	int v6;

	cfg = bpf_map_lookup_elem(&lib_test_cfg, &zero);
	if (!cfg)
		return TC_ACT_SHOT;
	if (lt_parse(skb, &v6, &l4_off, &proto) < 0 || proto != IPPROTO_SCTP)
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, l4_off + (is_dst ? 2 : 0), &old_port, 2) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, l4_off + (is_dst ? 2 : 0), &cfg->sctp_port, 2,
	                        BPF_F_RECOMPUTE_CSUM) < 0)
		return TC_ACT_SHOT;
	if (sctp_port_csum_update(skb, l4_off, old_port, cfg->sctp_port, is_dst) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("tc")
int t_sctp_dport(struct __sk_buff *skb)
{
	return lt_sctp_port(skb, 1);
}

SEC("tc")
int t_sctp_sport(struct __sk_buff *skb)
{
	return lt_sctp_port(skb, 0);
}

SEC("tc")
int t_icmp_xlate(struct __sk_buff *skb)
{
	struct lib_test_cfg *cfg;
	struct lib_test_out *out;
	__u32 zero = 0;
	__u32 l4_off;
	__u8 proto;
	int v6;

	cfg = bpf_map_lookup_elem(&lib_test_cfg, &zero);
	out = bpf_map_lookup_elem(&lib_test_out, &zero);
	if (!cfg || !out)
		return TC_ACT_SHOT;
	if (lt_parse(skb, &v6, &l4_off, &proto) < 0)
		return TC_ACT_UNSPEC;
	if (v6) {
		if (proto != IPPROTO_ICMPV6)
			return TC_ACT_UNSPEC;
		out->parse_rc = icmp6_err_parse(skb, ETH_HLEN, l4_off, &out->in6);
		if (out->parse_rc < 0)
			return TC_ACT_UNSPEC;
		out->rewrite_rc = icmp6_err_rewrite(skb, ETH_HLEN, l4_off, &cfg->x6);
	} else {
		if (proto != IPPROTO_ICMP)
			return TC_ACT_UNSPEC;
		out->parse_rc = icmp4_err_parse(skb, ETH_HLEN, l4_off, &out->in4);
		if (out->parse_rc < 0)
			return TC_ACT_UNSPEC;
		out->rewrite_rc = icmp4_err_rewrite(skb, ETH_HLEN, l4_off, &cfg->x4);
	}
	return out->rewrite_rc < 0 ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
