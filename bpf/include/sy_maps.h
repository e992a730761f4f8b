/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sy_maps.h: the one definition of every map key and value shared between
 * the BPF programs (bpf/), the native addon (native/) and the TypeScript
 * encoders (src/dataplane/bpf/layout.ts, checked against this object's BTF
 * by test/unit/bpf-layout-btf.test.ts).
 *
 * Rules: explicit padding, explicit byte order (fields named *_be are in
 * network order, all others host order), a _Static_assert on every size.
 * Map names carry the layout version (SY_LAYOUT_VERSION); a layout change
 * bumps the suffix and ships a migration in src/dataplane/bpf/migrate.ts.
 *
 * Layout 2: every address-carrying map exists once per family (…4_v2 with
 * __be32 addresses, …6_v2 with 16-byte addresses). Frontends carry a scope
 * so that in-cluster and external clients of one address can get different
 * backends and verdicts (externalTrafficPolicy: Local).
 */
#ifndef SY_MAPS_H
#define SY_MAPS_H

#include <linux/types.h>

#define SY_LAYOUT_VERSION 2

/* Default capacities. The daemon may set others at load time (maxEntries),
 * so the programs never depend on these numbers. Services: one master entry
 * per frontend and scope plus one slot per backend per generation. CT: two
 * entries (forward and reverse half) per flow. */
#define SY_SVC_MAX      262144
#define SY_BACKEND_MAX  131072
#define SY_CT_MAX       262144
#define SY_VIP_MAX      65536
#define SY_SRCRANGE_MAX 16384
#define SY_FRAG_MAX     8192
/* Traffic counters: one entry per live svc_id (frontends of both families)
 * and per live backend id of a family; not preallocated, so the limit costs
 * nothing until used. */
#define SY_SVC_CNT_MAX  524288 /* 2 * SY_SVC_MAX */
#define SY_BE_CNT_MAX   131072 /* SY_BACKEND_MAX */
/* Session affinity: one entry per (frontend, client address) in use, evicted
 * least recently used first; membership: one entry per backend slot of the
 * frontends with affinity (svc_ids span both families). */
#define SY_AFF_MAX      65536
#define SY_AFF_BE_MAX   524288 /* 2 * SY_SVC_MAX */
/* Maglev tables: maglev_m entries per table (default 16381), one table per
 * scope of a frontend using Maglev, two while it is replaced. */
#define SY_MAGLEV_MAX   2097152

/* ------------------------------------------------------------------------
 * Frontends: sy_svc4_v2 / sy_svc6_v2 (hash).
 *
 * A frontend (address, port, protocol, scope) is one master entry
 * {slot = 0, gen = 0} plus backend slots {slot = 1..count, gen}. An update
 * writes the other generation's slots, then replaces the master (one hash
 * element, so `state` changes as one word), then deletes the old slots. A
 * reader loads `state` once (count, gen and action together); if the slot it
 * picked is already gone (the master was replaced in between), it reloads
 * the master and tries again instead of dropping the packet.
 *
 * Scopes: every frontend has a SY_SCOPE_INTERNAL master, used by clients
 * that the local-traffic detector calls pods. External clients (everything
 * else) use it too, unless it carries SY_SVC_F_EXT_SCOPE: then they use the
 * SY_SCOPE_EXTERNAL master and slots of the same address (another verdict or
 * another set of backends, e.g. externalTrafficPolicy: Local).
 *
 * NodePorts are programmed as frontends on every node address that
 * --nodeport-addresses allows (the daemon expands them).
 */
#define SY_SCOPE_INTERNAL 0
#define SY_SCOPE_EXTERNAL 1

struct sy_svc4_key {
	__be32 addr_be;
	__be16 port_be;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	__u8 scope; /* SY_SCOPE_* */
	__u16 slot; /* 0 = master, 1..count = backend slot */
	__u8 gen;   /* slot generation 0/1; always 0 for the master */
	__u8 pad;
};
_Static_assert(sizeof(struct sy_svc4_key) == 12, "sy_svc4_key size");

struct sy_svc6_key {
	__be32 addr_be[4];
	__be16 port_be;
	__u8 proto;
	__u8 scope;
	__u16 slot;
	__u8 gen;
	__u8 pad;
};
_Static_assert(sizeof(struct sy_svc6_key) == 24, "sy_svc6_key size");

/* What a master does with a new connection (bits 24..31 of state). */
#define SY_ACT_FORWARD 0 /* DNAT to one of `count` backends */
#define SY_ACT_REJECT  1 /* no usable endpoint: TCP RST / ICMP(v6) unreachable */
#define SY_ACT_DROP    2 /* e.g. externalTrafficPolicy Local with none local */

/* state = count | gen << 16 | action << 24, written and read as one word. */
#define SY_STATE(count, gen, action)                                                               \
	((__u32)(count) | ((__u32)(gen) << 16) | ((__u32)(action) << 24))
#define SY_STATE_COUNT(s)  ((s)&0xffff)
#define SY_STATE_GEN(s)    (((s) >> 16) & 0xff)
#define SY_STATE_ACTION(s) (((s) >> 24) & 0xff)

/* sy_svc_value.flags (masters) */
#define SY_SVC_F_MASQ 0x0001 /* masquerade flows of the clients this master serves */
#define SY_SVC_F_MASQ_EXT                                                                          \
	0x0002 /* internal master without EXT_SCOPE: masquerade external clients */
#define SY_SVC_F_EXT_SCOPE                                                                         \
	0x0004 /* internal master: external clients use the SY_SCOPE_EXTERNAL master */
#define SY_SVC_F_SRC_RANGES                                                                        \
	0x0008 /* only sources in sy_srcrange*_v2 under svc_id (loadBalancerSourceRanges) */
#define SY_SVC_F_AFFINITY                                                                          \
	0x0010 /* sessionAffinity ClientIP (affinity_timeout_s): sy_aff*_v2, sy_aff_be_v2 */
#define SY_SVC_F_MAGLEV     0x0020 /* Maglev backend choice (maglev_m, sy_maglev_v2) */
#define SY_SVC_F_CLUSTER_IP 0x0040 /* the frontend is a ClusterIP */

struct sy_svc_value {
	__u32 state;      /* master: SY_STATE(count, gen, action); slot: 0 */
	__u32 backend_id; /* slot: backend id in sy_backend*_v2; master: 0 */
	__u32 svc_id;     /* master: stable id of this frontend (both scopes share it) */
	__u16 flags;      /* master: SY_SVC_F_* */
	__u16 pad;
	__u32 affinity_timeout_s; /* master with SY_SVC_F_AFFINITY: sessionAffinity timeout */
	__u32 maglev_m; /* master with SY_SVC_F_MAGLEV: entries of its Maglev table (a prime) */
};
_Static_assert(sizeof(struct sy_svc_value) == 24, "sy_svc_value size");

/* ------------------------------------------------------------------------
 * Session affinity (sessionAffinity: ClientIP), kube-proxy's semantics per
 * frontend: a new connection from a client address that this frontend sent
 * to a backend less than affinity_timeout_s ago goes to that backend again,
 * as long as the backend is still one of the frontend's (this scope's).
 *
 * sy_aff4_v2 / sy_aff6_v2 (LRU hash, written by the programs): (svc_id,
 * client address) -> (backend id, last use). Refreshed by every new
 * connection that uses it (not by the packets of established flows, which
 * keep their connection-tracking entry whatever happens here). An entry
 * past its timeout, or naming a backend the frontend no longer has, is
 * ignored and replaced by the next pick. The daemon deletes the entries of
 * backends a frontend lost (and of frontends that lost affinity or went).
 *
 * sy_aff_be_v2 (hash, written by the daemon): (svc_id, backend id, scope)
 * for every backend slot of an affinity master, so the check "still one of
 * the frontend's backends" is one lookup. Written before the master that
 * uses it (with the new slots), deleted after.
 */
struct sy_aff4_key {
	__u32 svc_id;
	__be32 addr_be; /* client address */
};
_Static_assert(sizeof(struct sy_aff4_key) == 8, "sy_aff4_key size");

struct sy_aff6_key {
	__u32 svc_id;
	__be32 addr_be[4];
};
_Static_assert(sizeof(struct sy_aff6_key) == 20, "sy_aff6_key size");

struct sy_aff_value {
	__u32 backend_id;
	__u32 pad;
	__u64 last_used_ns; /* bpf_ktime_get_ns() of the last new connection sent by it */
};
_Static_assert(sizeof(struct sy_aff_value) == 16, "sy_aff_value size");

struct sy_aff_be_key {
	__u32 svc_id;
	__u32 backend_id;
	__u8 scope; /* SY_SCOPE_* */
	__u8 pad[3];
};
_Static_assert(sizeof(struct sy_aff_be_key) == 12, "sy_aff_be_key size");

struct sy_aff_be_value {
	__u32 flags; /* unused, 0 */
};
_Static_assert(sizeof(struct sy_aff_be_value) == 4, "sy_aff_be_value size");

/* ------------------------------------------------------------------------
 * Maglev consistent hashing (SY_SVC_F_MAGLEV): sy_maglev_v2 (hash, written
 * by the daemon), (svc_id, scope, gen, index) -> backend id, index
 * 0..maglev_m-1: the lookup table of the Maglev paper, computed by the
 * daemon from the backends' identities (address, port, protocol), so every
 * node holds the same table for the same backends. A new connection hashes
 * its 5-tuple to an index of the generation its master names (the slot
 * generation: the table is replaced with the slots). Only frontends using
 * Maglev have entries.
 */
struct sy_maglev_key {
	__u32 svc_id;
	__u8 scope; /* SY_SCOPE_* */
	__u8 gen;   /* the master's slot generation */
	__u16 pad;
	__u32 index; /* 0..maglev_m-1 */
};
_Static_assert(sizeof(struct sy_maglev_key) == 12, "sy_maglev_key size");

struct sy_maglev_value {
	__u32 backend_id;
};
_Static_assert(sizeof(struct sy_maglev_value) == 4, "sy_maglev_value size");

/* ------------------------------------------------------------------------
 * Backends: sy_backend4_v2 / sy_backend6_v2 (hash), backend id -> address.
 * Shared by every frontend using the same (address, port, protocol). The
 * daemon does not reuse a freed id for a grace period, so a connection
 * tracking entry naming an id never silently points at another backend.
 */
#define SY_BE_F_LOCAL 0x01 /* the backend runs on this node */

struct sy_backend4 {
	__be32 addr_be;
	__be16 port_be;
	__u8 proto;
	__u8 flags; /* SY_BE_F_* */
};
_Static_assert(sizeof(struct sy_backend4) == 8, "sy_backend4 size");

struct sy_backend6 {
	__be32 addr_be[4];
	__be16 port_be;
	__u8 proto;
	__u8 flags;
};
_Static_assert(sizeof(struct sy_backend6) == 20, "sy_backend6 size");

/* ------------------------------------------------------------------------
 * Service IPs: sy_vip4_v2 / sy_vip6_v2 (hash), address -> flags. Every
 * ClusterIP in use; a packet to one of them on a port no frontend has is
 * dropped (counted as SY_STAT_DROP_NO_PORT).
 */
#define SY_VIP_F_CLUSTER_IP 0x01

struct sy_vip4_key {
	__be32 addr_be;
};
_Static_assert(sizeof(struct sy_vip4_key) == 4, "sy_vip4_key size");

struct sy_vip6_key {
	__be32 addr_be[4];
};
_Static_assert(sizeof(struct sy_vip6_key) == 16, "sy_vip6_key size");

struct sy_vip_value {
	__u32 flags; /* SY_VIP_F_* */
};
_Static_assert(sizeof(struct sy_vip_value) == 4, "sy_vip_value size");

/* ------------------------------------------------------------------------
 * loadBalancerSourceRanges: sy_srcrange4_v2 / sy_srcrange6_v2 (LPM trie,
 * BPF_F_NO_PREALLOC). The key is svc_id followed by the source address, and
 * prefixlen counts svc_id's 32 bits plus the CIDR's: a lookup with
 * prefixlen = 32 + 32 (or 32 + 128) and the frontend's svc_id matches when
 * the source is in one of that frontend's ranges.
 */
struct sy_srcrange4_key {
	__u32 prefixlen;
	__be32 svc_id_be; /* network order: the trie compares bytes from the first */
	__be32 addr_be;
};
_Static_assert(sizeof(struct sy_srcrange4_key) == 12, "sy_srcrange4_key size");

struct sy_srcrange6_key {
	__u32 prefixlen;
	__be32 svc_id_be;
	__be32 addr_be[4];
};
_Static_assert(sizeof(struct sy_srcrange6_key) == 24, "sy_srcrange6_key size");

struct sy_srcrange_value {
	__u32 flags; /* unused, 0 */
};
_Static_assert(sizeof(struct sy_srcrange_value) == 4, "sy_srcrange_value size");

/* ------------------------------------------------------------------------
 * Connection tracking: sy_ct4_v2 / sy_ct6_v2 (LRU hash). Each flow has two
 * entries, told apart by `dir`:
 *   SY_CT_DIR_FWD keyed by the tuple the client sent (client -> frontend);
 *   SY_CT_DIR_REV keyed by the tuple the reply carries where it is
 *     reverse-translated (backend -> client, or backend -> nat address
 *     when the flow was masqueraded).
 * Both entries hold the whole flow, so when the LRU evicts one half the
 * program rebuilds it from the other.
 */
#define SY_CT_DIR_FWD 0
#define SY_CT_DIR_REV 1

struct sy_ct4_key {
	__be32 saddr_be;
	__be32 daddr_be;
	__be16 sport_be;
	__be16 dport_be;
	__u8 proto;
	__u8 dir; /* SY_CT_DIR_* */
	__u8 pad[2];
};
_Static_assert(sizeof(struct sy_ct4_key) == 16, "sy_ct4_key size");

struct sy_ct6_key {
	__be32 saddr_be[4];
	__be32 daddr_be[4];
	__be16 sport_be;
	__be16 dport_be;
	__u8 proto;
	__u8 dir;
	__u8 pad[2];
};
_Static_assert(sizeof(struct sy_ct6_key) == 40, "sy_ct6_key size");

/* sy_ct*_value.flags */
#define SY_CT_F_SNAT    0x0001 /* source was masqueraded to nat addr:port */
#define SY_CT_F_HAIRPIN 0x0002 /* the backend is the client itself */
#define SY_CT_F_EXT     0x0004 /* the client was classified external */
/* A flow the kernel translated before Switchyard carried its frontend (kube-proxy's
 * DNAT, written by the daemon from the kernel's conntrack at start): its NAT lives in
 * the kernel's conntrack entry, so its packets are left alone (FWD half only). A bare
 * SYN on its tuple is a new connection, which Switchyard takes. */
#define SY_CT_F_KERNEL  0x0008

/* sy_ct*_value.tcp_state */
#define SY_TCP_NONE        0 /* not TCP */
#define SY_TCP_SYN_SENT    1 /* client SYN seen */
#define SY_TCP_ESTABLISHED 2 /* a reply (SYN-ACK) seen */
#define SY_TCP_CLOSING     3 /* FIN seen */
#define SY_TCP_CLOSED      4 /* RST seen, or FIN both ways: a new SYN starts a new flow */

struct sy_ct4_value {
	__be32 client_addr_be;
	__be32 front_addr_be;
	__be32 backend_addr_be;
	__be32 nat_addr_be; /* masquerade source when SY_CT_F_SNAT, else 0 */
	__be16 client_port_be;
	__be16 front_port_be;
	__be16 backend_port_be;
	__be16 nat_port_be;
	__u32 backend_id;
	__u32 svc_id;
	__u16 flags; /* SY_CT_F_* */
	__u8 tcp_state;
	__u8 fin_mask; /* 1: client sent FIN, 2: backend sent FIN */
	__u32 pad;
	__u64 created_ns;   /* bpf_ktime_get_ns() at creation */
	__u64 last_seen_ns; /* refreshed by traffic (at most once a second) */
};
_Static_assert(sizeof(struct sy_ct4_value) == 56, "sy_ct4_value size");

struct sy_ct6_value {
	__be32 client_addr_be[4];
	__be32 front_addr_be[4];
	__be32 backend_addr_be[4];
	__be32 nat_addr_be[4];
	__be16 client_port_be;
	__be16 front_port_be;
	__be16 backend_port_be;
	__be16 nat_port_be;
	__u32 backend_id;
	__u32 svc_id;
	__u16 flags;
	__u8 tcp_state;
	__u8 fin_mask;
	__u32 pad;
	__u64 created_ns;
	__u64 last_seen_ns;
};
_Static_assert(sizeof(struct sy_ct6_value) == 104, "sy_ct6_value size");

/* ------------------------------------------------------------------------
 * IPv4 fragments: sy_frag4_v2 (LRU hash). The first fragment of a datagram
 * to a frontend records its ports; later fragments (no L4 header) are
 * translated with them. A later fragment that arrives first, or of a
 * datagram whose first fragment was not translated, is passed on untouched
 * unless its destination is a Service IP, where it is dropped.
 */
struct sy_frag4_key {
	__be32 saddr_be;
	__be32 daddr_be;
	__be16 id_be;
	__u8 proto;
	__u8 pad;
};
_Static_assert(sizeof(struct sy_frag4_key) == 12, "sy_frag4_key size");

struct sy_frag_value {
	__be16 sport_be;
	__be16 dport_be;
	__u32 pad;
	__u64 created_ns;
};
_Static_assert(sizeof(struct sy_frag_value) == 16, "sy_frag_value size");

/* ------------------------------------------------------------------------
 * sy_config_v2 (array, 1 entry): per-node settings written by the daemon.
 */
#define SY_CFG_DETECT_CIDR 0x01 /* a source in pod_cidr4/6 is a pod (ClusterCIDR, NodeCIDR) */
#define SY_CFG_DETECT_IFACE                                                                        \
	0x02 /* traffic entering a pod interface is from a pod (BridgeInterface, InterfaceNamePrefix) */
/* Set by the daemon while it hands the kernel's own NAT flows over (a full sync taking
 * over kube-proxy's frontends, kernel-flows.ts): a TCP packet that is not a bare SYN and
 * has no flow is left to the kernel, whose conntrack may be translating it. */
#define SY_CFG_KERNEL_HANDOVER 0x04
/* Set by the daemon while it upgrades from layout 1 (migrate.ts), from just before the v2
 * programs replace the v1 one until its flows created meanwhile are carried over: a TCP
 * packet that is not a bare SYN and has no flow is dropped (SY_STAT_UPGRADE_HOLD), so
 * that TCP retransmits it once the flow is there instead of it opening a new one. */
#define SY_CFG_LAYOUT_UPGRADE  0x08

struct sy_config_v2 {
	__be32 node_addr4_be;    /* IPv4 masquerade source; 0 = none */
	__be32 node_addr6_be[4]; /* IPv6 masquerade source; :: = none */
	__be32 pod_cidr4_be;     /* local-traffic detector, IPv4 (SY_CFG_DETECT_CIDR) */
	__be32 pod_cidr6_be[4];  /* local-traffic detector, IPv6 */
	__u8 pod_cidr4_len;      /* prefix length; 0 with the flag = no IPv4 detector */
	__u8 pod_cidr6_len;
	__u16 snat_port_min; /* masquerade source ports, inclusive (--bpf-snat-port-range) */
	__u16 snat_port_max;
	__u16 pad;
	__u32 flags; /* SY_CFG_* */
	__u32 pad2;
};
_Static_assert(sizeof(struct sy_config_v2) == 56, "sy_config_v2 size");

/* ------------------------------------------------------------------------
 * sy_stats_v2 (per-CPU array): packet counters, indexed by SY_STAT_*.
 */
#define SY_STAT_SVC_HIT        0  /* packet matched a frontend */
#define SY_STAT_CT_NEW         1  /* new connection, backend chosen */
#define SY_STAT_REJECT         2  /* REJECT answered (RST / ICMP) */
#define SY_STAT_DROP_NO_LOCAL  3  /* DROP verdict (no local endpoint) */
#define SY_STAT_DROP_SRC_RANGE 4  /* source outside loadBalancerSourceRanges */
#define SY_STAT_DROP_NO_PORT   5  /* Service IP, no frontend on that port */
#define SY_STAT_RNAT           6  /* reply reverse-translated */
#define SY_STAT_SNAT_FAIL      7  /* no free masquerade port, or no node address */
#define SY_STAT_CT_FULL        8  /* a connection-tracking insert failed */
#define SY_STAT_CT_RESTORE     9  /* one half of a flow rebuilt from the other */
#define SY_STAT_ICMP_XLATE     10 /* ICMP error of a translated flow translated */
#define SY_STAT_FRAG           11 /* later fragment translated */
#define SY_STAT_FRAG_DROP      12 /* fragment to a Service IP dropped */
#define SY_STAT_FIB_FAIL       13 /* no route for a packet we had to redirect */
#define SY_STAT_RETRY          14 /* a frontend changed under a reader: reread */
#define SY_STAT_TCP_REOPEN     15 /* SYN on a closed flow: new backend chosen */
#define SY_STAT_SOCK_XLATE     16 /* host socket pointed at a backend (connect, sendmsg) */
#define SY_STAT_SOCK_REJECT    17 /* host socket refused: frontend without endpoints */
#define SY_STAT_UPGRADE_HOLD   18 /* no flow yet, SY_CFG_LAYOUT_UPGRADE set: dropped */
#define SY_STAT_AFFINITY       19 /* new connection sent to its client's affinity backend */
#define SY_STAT_MAGLEV         20 /* new connection's backend chosen by Maglev */
#define SY_STAT_CT_MIDSTREAM   21 /* TCP without SYN opened a flow: its entries were gone */
#define SY_STAT_MAX            32

/* ------------------------------------------------------------------------
 * Traffic counters: sy_svc_cnt_v2 (per-CPU hash, svc_id -> counters of the
 * frontend) and sy_be_cnt4_v2 / sy_be_cnt6_v2 (per-CPU hash, backend id ->
 * counters of the backend, summed over every frontend using it).
 *
 * The daemon inserts a zeroed entry when it hands out an id (before any
 * master or slot names it) and deletes it when the id is freed, so a reused
 * id starts from zero; the programs only look entries up (no insert from
 * the datapath). Counted by the programs where a packet is translated:
 * forward (client -> frontend, at DNAT) and reply (backend -> client, at
 * the reverse translation). packets counts GSO segments (an aggregate skb
 * counts as skb->gso_segs packets), bytes the IP length of the skb as the
 * hook sees it (headers of an aggregate counted once). conns counts flows
 * created (a backend chosen and connection tracking written).
 */
struct sy_traffic {
	__u64 packets; /* forward: client -> frontend */
	__u64 bytes;
	__u64 reply_packets; /* reply: backend -> client */
	__u64 reply_bytes;
	__u64 conns;
};
_Static_assert(sizeof(struct sy_traffic) == 40, "sy_traffic size");

/* ------------------------------------------------------------------------
 * Socket-level load balancing for the node's own network namespace
 * (sock.bpf.c: cgroup connect/sendmsg/recvmsg/getpeername hooks).
 *
 * sy_sockcfg_v2 (array, 1 entry), written by the daemon: the cgroup hooks
 * run for every network namespace whose processes sit in the cgroup, so
 * they act only for sockets whose bpf_get_netns_cookie() equals
 * netns_cookie (the node's namespace, SO_NETNS_COOKIE); 0 = act for none.
 */
struct sy_sockcfg {
	__u64 netns_cookie;
	__u32 flags; /* reserved, 0 */
	__u32 pad;
};
_Static_assert(sizeof(struct sy_sockcfg) == 16, "sy_sockcfg size");

/* sy_sock_rnat4_v2 / sy_sock_rnat6_v2 (LRU hash): the Service address a
 * socket was pointed away from, keyed by the socket's cookie and the
 * backend it was given: recvmsg turns the source of a reply back into the
 * frontend, getpeername the peer. Written by the hooks at connect and at
 * every unconnected sendmsg. */
struct sy_sock_rnat4_key {
	__u64 cookie;   /* bpf_get_socket_cookie() */
	__be32 addr_be; /* backend */
	__be16 port_be;
	__u8 proto;
	__u8 pad;
};
_Static_assert(sizeof(struct sy_sock_rnat4_key) == 16, "sy_sock_rnat4_key size");

struct sy_sock_rnat4_value {
	__be32 addr_be; /* frontend */
	__be16 port_be;
	__u16 pad;
};
_Static_assert(sizeof(struct sy_sock_rnat4_value) == 8, "sy_sock_rnat4_value size");

struct sy_sock_rnat6_key {
	__u64 cookie;
	__be32 addr_be[4];
	__be16 port_be;
	__u8 proto;
	__u8 pad;
	__u32 pad2;
};
_Static_assert(sizeof(struct sy_sock_rnat6_key) == 32, "sy_sock_rnat6_key size");

struct sy_sock_rnat6_value {
	__be32 addr_be[4];
	__be16 port_be;
	__u16 pad;
};
_Static_assert(sizeof(struct sy_sock_rnat6_value) == 20, "sy_sock_rnat6_value size");
#define SY_SOCK_RNAT_MAX 65536

#endif /* SY_MAPS_H */
