// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * switchyard.bpf.c: the four tc programs of datapath v2 (DATAPATH-v2.md),
 * for IPv4 and IPv6 alike:
 *   sy_from_pod  ingress of pod veths     forward translation of pod clients;
 *   sy_from_net  ingress of node ifaces   forward translation of external
 *                                         clients;
 *                both: reverse translation of masqueraded flows (then a FIB
 *                redirect), REJECT answers, ICMP errors of translated flows;
 *   sy_to_pod    egress of pod veths      reverse translation of replies to
 *   sy_to_net    egress of node ifaces    clients that kept their address.
 * Translation happens at the client's first and last hop, so the node's
 * conntrack and rp_filter see one consistent flow. Anything not ours
 * returns TC_ACT_UNSPEC, so later tc filters still run.
 *
 * Each program dispatches on skb->protocol to one body instantiated per
 * family (`v6` is a compile-time constant through the inlined helpers).
 */
#include "lib/pkt.h"
#include "lib/maps.h"
#include "lib/lb.h"
#include "lib/ct.h"
#include "lib/nat.h"
#include "lib/icmperr.h"
#include "lib/reject.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SY_HOOK_FROM_POD 0
#define SY_HOOK_FROM_NET 1
#define SY_HOOK_TO_POD   2
#define SY_HOOK_TO_NET   3

/* to_frontend's answer when the packet is to be rejected: handle() calls
 * sy_reject with the packet still untouched. */
#define SY_DO_REJECT   0x10000
/* to_frontend's answer when the destination is no frontend (no INTERNAL
 * master): handle() goes on with the packet. */
#define SY_NO_FRONTEND 0x10001

/* TCP RST / ICMP(v6) port unreachable in place of the packet (reject.h),
 * as a global BPF function: verified once on its own, not per call path
 * (its checksum loops are long). */
__noinline int sy_reject(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off, __u32 proto, __u32 v6)
{
	stat_inc(SY_STAT_REJECT);
	if (v6)
		return sy_reject6(skb, l3_off, l4_off, proto);
	return sy_reject4(skb, l3_off, l4_off, proto);
}

/* Per-family entry points into the bodies below (and lb_pick), as BPF-to-BPF calls: each
 * gets its own stack frame (the inlined whole would exceed 512 bytes) and
 * is still specialised for its family at compile time. */
#define SY_PER_FAMILY(fn, params, args)                                                            \
	static __noinline int fn##4 params                                                         \
	{                                                                                          \
		const int v6 = 0;                                                                  \
		return fn args;                                                                    \
	}                                                                                          \
	static __noinline int fn##6 params                                                         \
	{                                                                                          \
		const int v6 = 1;                                                                  \
		return fn args;                                                                    \
	}

#define SY_CALL(fn, v6, ...) ((v6) ? fn##6(__VA_ARGS__) : fn##4(__VA_ARGS__))

/* The backend choice (lb.h), each step in its own frame: their keys
 * (affinity, Maglev, slots) would otherwise all sit in to_frontend's, past
 * the 512-byte stack of the deepest call chain. */
SY_PER_FAMILY(lb_random,
              (const struct pkt *p, __u8 scope, const struct sy_svc_value *m,
               struct sy_ct6_value *f),
              (v6, p, scope, m, f))
SY_PER_FAMILY(lb_maglev,
              (const struct pkt *p, __u8 scope, const struct sy_svc_value *m,
               struct sy_ct6_value *f),
              (v6, p, scope, m, f))
SY_PER_FAMILY(aff_choose,
              (const struct pkt *p, __u8 scope, const struct sy_svc_value *m,
               struct sy_ct6_value *f),
              (v6, p, scope, m, f))
SY_PER_FAMILY(aff_remember, (const struct pkt *p, __u32 svc_id, __u32 backend_id),
              (v6, p, svc_id, backend_id))

/* Forward translation with a flow: destination frontend -> backend, source
 * client -> nat when masqueraded (then redirected by the FIB). */
static __always_inline int xlate_fwd(struct __sk_buff *skb, int v6, struct pkt *p,
                                     const struct sy_ct6_value *f)
{
	if (p->frag == SY_FRAG_FIRST)
		frag_record(p);
	if (rw_dst(skb, v6, p, f->backend_addr_be, f->backend_port_be) < 0)
		return TC_ACT_SHOT;
	if (!(f->flags & SY_CT_F_SNAT))
		return TC_ACT_UNSPEC;
	if (rw_src(skb, v6, p, f->nat_addr_be, f->nat_port_be) < 0)
		return TC_ACT_SHOT;
	return fib_redirect(skb, v6, p);
}

/* Whether a flow found under the packet's FWD key still carries it. */
static __always_inline int flow_usable(int v6, const struct pkt *p, const struct sy_ct6_value *f)
{
	union sy_addr addr;
	__be16 port;

	if (p->proto == IPPROTO_TCP && f->tcp_state == SY_TCP_CLOSED &&
	    (p->tcp_flags & (SY_TCP_SYN | SY_TCP_ACK)) == SY_TCP_SYN) {
		stat_inc(SY_STAT_TCP_REOPEN);
		return 0;
	}
	if (backend_get(v6, f->backend_id, &addr, &port) < 0)
		return 0;
	return addr_eq(v6, &addr, (const union sy_addr *)f->backend_addr_be) &&
	       port == f->backend_port_be;
}

/* Masquerade for this client? kube-proxy's rules as the daemon encoded them
 * in the master's flags, plus hairpin (the backend is the client). */
static __always_inline int wants_masq(__u16 mflags, int ext, __u8 scope)
{
	if (scope == SY_SCOPE_EXTERNAL || !ext)
		return !!(mflags & SY_SVC_F_MASQ);
	return !!(mflags & (SY_SVC_F_MASQ | SY_SVC_F_MASQ_EXT));
}

/* A packet to a frontend, or SY_NO_FRONTEND when its destination has no
 * INTERNAL master. The master is looked up here, not in handle(): the
 * lookup key would sit in handle's frame beside the packet, and handle's
 * frame is part of the deepest call chain (512 bytes in all on 5.10). */
static __always_inline int to_frontend(struct __sk_buff *skb, int v6, int hook, struct pkt *p)
{
	struct sy_svc_value *m =
	        svc_lookup(v6, &p->daddr, p->dport, p->proto, SY_SCOPE_INTERNAL, 0, 0);
	struct sy_config_v2 *cfg;
	struct sy_ct6_value f;
	struct sy_ct6_key k;
	__u8 scope = SY_SCOPE_INTERNAL;
	__u16 mflags;
	int ext, verdict;

	if (!m)
		return SY_NO_FRONTEND;
	cfg = config_get();
	if (!cfg)
		return TC_ACT_UNSPEC;
	stat_inc(SY_STAT_SVC_HIT);
	ext = !src_is_pod(v6, hook == SY_HOOK_FROM_POD, cfg, &p->saddr);
	mflags = m->flags;
	if (ext && (mflags & SY_SVC_F_EXT_SCOPE)) {
		scope = SY_SCOPE_EXTERNAL;
		m = svc_lookup(v6, &p->daddr, p->dport, p->proto, scope, 0, 0);
		if (!m) {
			stat_inc(SY_STAT_DROP_NO_LOCAL);
			return TC_ACT_SHOT;
		}
		mflags = m->flags;
	}

	ct_key_pkt(&k, p, SY_CT_DIR_FWD);
	if (ct_read(v6, &k, &f) < 0) {
		/* during a handover, a connection without a flow here may be the kernel's; during
		 * a layout 1 upgrade, the v1 program's, its flow about to be carried over */
		if (p->proto == IPPROTO_TCP &&
		    (p->tcp_flags & (SY_TCP_SYN | SY_TCP_ACK)) != SY_TCP_SYN) {
			if (cfg->flags & SY_CFG_KERNEL_HANDOVER)
				return TC_ACT_UNSPEC;
			if (cfg->flags & SY_CFG_LAYOUT_UPGRADE) {
				stat_inc(SY_STAT_UPGRADE_HOLD);
				return TC_ACT_SHOT;
			}
			/* mid-stream, no flow: its entries were evicted (a full table) or
			 * expired; a new backend is chosen, which resets the connection */
			stat_inc(SY_STAT_CT_MIDSTREAM);
		}
	} else {
		if (f.flags & SY_CT_F_KERNEL) {
			/* the kernel's conntrack translates it (kube-proxy's), unless a new connection */
			if (!(p->proto == IPPROTO_TCP &&
			      (p->tcp_flags & (SY_TCP_SYN | SY_TCP_ACK)) == SY_TCP_SYN))
				return TC_ACT_UNSPEC;
			ct_delete(v6, &k);
		} else if (flow_usable(v6, p, &f)) {
			ct_touch(v6, p, &k, &f, SY_CT_DIR_FWD);
			traffic_count(skb, v6, p->l3_off, m->svc_id, f.backend_id, 0, 0);
			return xlate_fwd(skb, v6, p, &f);
		} else {
			/* re-balanced or reopened: free the old reply key (and nat port) */
			flow_rev_key(&k, &f, p->proto);
			ct_delete(v6, &k);
		}
	}
	if (p->frag == SY_FRAG_LATER)
		return TC_ACT_SHOT; /* no flow for a fragment's datagram: cannot choose */

	if ((mflags & SY_SVC_F_SRC_RANGES) && !srcrange_allows(v6, m->svc_id, &p->saddr)) {
		stat_inc(SY_STAT_DROP_SRC_RANGE);
		return TC_ACT_SHOT;
	}
	__builtin_memset(&f, 0, sizeof(f));
	if (SY_CALL(aff_choose, v6, p, scope, m, &f) == 0) {
		verdict = SY_ACT_FORWARD;
	} else {
		if (m->flags & SY_SVC_F_MAGLEV)
			verdict = SY_CALL(lb_maglev, v6, p, scope, m, &f);
		else
			verdict = SY_CALL(lb_random, v6, p, scope, m, &f);
		if (verdict == SY_ACT_FORWARD && (m->flags & SY_SVC_F_AFFINITY))
			SY_CALL(aff_remember, v6, p, f.svc_id, f.backend_id);
	}
	if (verdict == SY_ACT_REJECT)
		return SY_DO_REJECT;
	if (verdict == SY_ACT_DROP) {
		stat_inc(SY_STAT_DROP_NO_LOCAL);
		return TC_ACT_SHOT;
	}
	if (verdict != SY_ACT_FORWARD)
		return TC_ACT_SHOT;

	__builtin_memcpy(f.client_addr_be, &p->saddr, 16);
	__builtin_memcpy(f.front_addr_be, &p->daddr, 16);
	f.client_port_be = p->sport;
	f.front_port_be = p->dport;
	f.flags = ext ? SY_CT_F_EXT : 0;
	if (p->proto == IPPROTO_TCP)
		f.tcp_state = (p->tcp_flags & SY_TCP_SYN) ? SY_TCP_SYN_SENT : SY_TCP_ESTABLISHED;
	f.created_ns = bpf_ktime_get_ns();
	f.last_seen_ns = f.created_ns;
	if (addr_eq(v6, (const union sy_addr *)f.backend_addr_be, &p->saddr))
		f.flags |= SY_CT_F_HAIRPIN;
	stat_inc(SY_STAT_CT_NEW);

	if (wants_masq(mflags, ext, scope) || (f.flags & SY_CT_F_HAIRPIN)) {
		if (v6)
			__builtin_memcpy(f.nat_addr_be, cfg->node_addr6_be, 16);
		else
			f.nat_addr_be[0] = cfg->node_addr4_be;
		f.flags |= SY_CT_F_SNAT;
		if ((f.nat_addr_be[0] | f.nat_addr_be[1] | f.nat_addr_be[2] | f.nat_addr_be[3]) ==
		            0 ||
		    ct_claim_snat(v6, &k, &f, p->proto, cfg->snat_port_min, cfg->snat_port_max) <
		            0) {
			stat_inc(SY_STAT_SNAT_FAIL);
			return TC_ACT_SHOT;
		}
	} else {
		flow_rev_key(&k, &f, p->proto);
		if (ct_write(v6, &k, &f, BPF_ANY) < 0)
			stat_inc(SY_STAT_CT_FULL);
	}
	flow_fwd_key(&k, &f, p->proto);
	if (ct_write(v6, &k, &f, BPF_ANY) < 0) {
		stat_inc(SY_STAT_CT_FULL);
		if (f.flags & SY_CT_F_SNAT) {
			flow_rev_key(&k, &f, p->proto);
			ct_delete(v6, &k);
			return TC_ACT_SHOT;
		}
	}
	traffic_count(skb, v6, p->l3_off, m->svc_id, f.backend_id, 0, 1);
	return xlate_fwd(skb, v6, p, &f);
}

/* A reply of a tracked flow (packet tuple = REV key). At ingress only
 * masqueraded flows are translated (and redirected); the others are left to
 * the egress programs at the client's last hop. */
static __always_inline int from_backend(struct __sk_buff *skb, int v6, struct pkt *p, int egress)
{
	struct sy_ct6_value f;
	struct sy_ct6_key k;
	int snat;

	ct_key_pkt(&k, p, SY_CT_DIR_REV);
	if (ct_read(v6, &k, &f) < 0)
		return TC_ACT_UNSPEC;
	snat = !!(f.flags & SY_CT_F_SNAT);
	if (!egress)
		ct_touch(v6, p, &k, &f, SY_CT_DIR_REV);
	if (snat == egress)
		return TC_ACT_UNSPEC;
	stat_inc(SY_STAT_RNAT);
	traffic_count(skb, v6, p->l3_off, f.svc_id, f.backend_id, 1, 0);
	if (p->frag == SY_FRAG_FIRST)
		frag_record(p);
	if (snat && rw_dst(skb, v6, p, f.client_addr_be, f.client_port_be) < 0)
		return TC_ACT_SHOT;
	if (rw_src(skb, v6, p, f.front_addr_be, f.front_port_be) < 0)
		return TC_ACT_SHOT;
	return snat ? fib_redirect(skb, v6, p) : TC_ACT_UNSPEC;
}

/* Later IPv4 fragments take their ports from the first; without one a
 * fragment to a Service IP is dropped, anything else is not ours. IPv6
 * fragments to a Service IP are dropped (not reassembled; see README). */
static __always_inline int frag_unknown(int v6, const struct pkt *p)
{
	if (!vip_has(v6, &p->daddr))
		return TC_ACT_UNSPEC;
	stat_inc(SY_STAT_FRAG_DROP);
	return TC_ACT_SHOT;
}

SY_PER_FAMILY(to_frontend, (struct __sk_buff * skb, int hook, struct pkt *p), (skb, v6, hook, p))
SY_PER_FAMILY(from_backend, (struct __sk_buff * skb, struct pkt *p, int egress),
              (skb, v6, p, egress))
SY_PER_FAMILY(icmp_plan,
              (struct __sk_buff * skb, const struct pkt *p, int egress, struct icmp_xlate6 *x),
              (skb, v6, p, egress, x))
SY_PER_FAMILY(icmp_apply, (struct __sk_buff * skb, struct pkt *p, const struct icmp_xlate6 *x),
              (skb, v6, p, x))

/* An ICMP(v6) error: translated when it quotes a packet of a tracked flow
 * (icmp_plan says which and how), redirected when the flow is masqueraded.
 * Planning and rewriting are separate calls: each has its own frame. */
static __always_inline int icmp_error(struct __sk_buff *skb, int v6, struct pkt *p, int egress)
{
	struct icmp_xlate6 x;
	int rc;

	rc = SY_CALL(icmp_plan, v6, skb, p, egress, &x);
	if (rc == 0)
		return TC_ACT_UNSPEC;
	if (SY_CALL(icmp_apply, v6, skb, p, &x) < 0)
		return TC_ACT_SHOT;
	stat_inc(SY_STAT_ICMP_XLATE);
	return rc == 2 ? fib_redirect(skb, v6, p) : TC_ACT_UNSPEC;
}

SY_PER_FAMILY(icmp_error, (struct __sk_buff * skb, struct pkt *p, int egress), (skb, v6, p, egress))

static __always_inline int handle(struct __sk_buff *skb, int v6, int hook)
{
	int egress = hook == SY_HOOK_TO_POD || hook == SY_HOOK_TO_NET;
	struct pkt p = {};
	int rc;

	switch (pkt_parse(skb, v6, &p)) {
	case SY_PARSE_L4:
		break;
	case SY_PARSE_ICMP_ERR:
		return SY_CALL(icmp_error, v6, skb, &p, egress);
	case SY_PARSE_FRAG6:
		return frag_unknown(v6, &p);
	case SY_PARSE_BAD_L4:
		return vip_has(v6, &p.daddr) ? TC_ACT_SHOT : TC_ACT_UNSPEC;
	default:
		return TC_ACT_UNSPEC;
	}
	if (p.frag == SY_FRAG_LATER) {
		if (frag_ports(&p) < 0)
			return frag_unknown(v6, &p);
		stat_inc(SY_STAT_FRAG);
	}
	if (egress)
		return SY_CALL(from_backend, v6, skb, &p, 1);
	rc = SY_CALL(to_frontend, v6, skb, hook, &p);
	if (rc == SY_DO_REJECT)
		return sy_reject(skb, p.l3_off, p.l4_off, p.proto, v6);
	if (rc != SY_NO_FRONTEND)
		return rc;
	if (vip_has(v6, &p.daddr)) {
		stat_inc(SY_STAT_DROP_NO_PORT);
		return TC_ACT_SHOT;
	}
	return SY_CALL(from_backend, v6, skb, &p, 0);
}

static __always_inline int dispatch(struct __sk_buff *skb, int hook)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return handle(skb, 0, hook);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return handle(skb, 1, hook);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int sy_from_pod(struct __sk_buff *skb)
{
	return dispatch(skb, SY_HOOK_FROM_POD);
}

SEC("tc")
int sy_from_net(struct __sk_buff *skb)
{
	return dispatch(skb, SY_HOOK_FROM_NET);
}

SEC("tc")
int sy_to_pod(struct __sk_buff *skb)
{
	return dispatch(skb, SY_HOOK_TO_POD);
}

SEC("tc")
int sy_to_net(struct __sk_buff *skb)
{
	return dispatch(skb, SY_HOOK_TO_NET);
}
