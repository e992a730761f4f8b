/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * dpx_stub.h: TEMPORARY stand-ins for the headers of branch i7-dpx
 * (reject.h, sctp.h, icmp.h) until they are merged; deleted then.
 */
#ifndef SY_LIB_DPX_STUB_H
#define SY_LIB_DPX_STUB_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>

static __always_inline int sy_reject4(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off, __u8 proto)
{
	return TC_ACT_SHOT;
}

static __always_inline int sy_reject6(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off, __u8 proto)
{
	return TC_ACT_SHOT;
}

static __always_inline int sctp_port_csum_update(struct __sk_buff *skb, __u32 l4_off,
                                                 __be16 old_port, __be16 new_port)
{
	return 0;
}

/* Rewrite an ICMP error in place: outer source/destination, the quoted
 * packet's addresses and ports; all checksums fixed. Stub: not yet. */
static __always_inline int sy_icmp_err_stub(struct __sk_buff *skb)
{
	return -1;
}

#endif /* SY_LIB_DPX_STUB_H */
