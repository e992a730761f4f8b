/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sy_maps_v1.h: layout 1, frozen. Kept only so that src/dataplane/bpf/migrate.ts
 * can read maps pinned by a daemon of layout 1. Was: the one definition of every map key and value shared between
 * the BPF program (bpf/), the native addon (native/) and the TypeScript
 * encoders (src/dataplane/bpf/layout.ts, checked against this object's BTF
 * by test/unit/bpf-layout-btf.test.ts).
 *
 * Rules: explicit padding, explicit byte order (fields named *_be are in
 * network order, all others host order), a _Static_assert on every size.
 * Map names carry the layout version (SY_LAYOUT_VERSION); a layout change
 * bumps the suffix and ships a migration in src/dataplane/bpf/migrate.ts.
 */
#ifndef SY_MAPS_V1_H
#define SY_MAPS_V1_H

#include <linux/types.h>

#define SY_LAYOUT_VERSION 1

/* Map capacities. Services: one master entry per frontend plus one slot per
 * backend per generation, so 10k Services x 10 backends x 2 generations fits. */
#define SY_SVC_MAX     262144
#define SY_BACKEND_MAX 131072
#define SY_CT_MAX      65536

/*
 * sy_svc4_v1 (hash): frontend -> master entry (slot 0) or backend slot.
 *
 * A Service frontend is one master entry {slot = 0} whose value says how
 * many backend slots are live and in which generation. Backend slots are
 * {slot = 1..count, gen}. Updates write the other generation's slots first,
 * then flip the master, then delete the old generation: a packet reads the
 * master once and then one slot of the generation it names, so it always
 * sees one whole version of the Service.
 */
struct sy_svc_key {
	__be32 addr_be; /* frontend IPv4 address */
	__be16 port_be; /* frontend port */
	__u8 proto;     /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	__u8 gen;       /* slot generation 0/1; always 0 for the master */
	__u16 slot;     /* 0 = master, 1..count = backend slot */
	__u16 pad;
};
_Static_assert(sizeof(struct sy_svc_key) == 12, "sy_svc_key size");

/* sy_svc_value.flags */
#define SY_SVC_F_MASQ_ALL 0x01 /* masquerade every connection (masqueradeAll) */

struct sy_svc_value {
	__u32 backend_id; /* slot: backend id in sy_backend4_v1; master: 0 */
	__u16 count;      /* master: number of live slots */
	__u8 gen;         /* master: generation of the live slots */
	__u8 flags;       /* master: SY_SVC_F_* */
	__u32 svc_id;     /* master: stable id of this frontend (stats, status) */
	__u32 pad;
};
_Static_assert(sizeof(struct sy_svc_value) == 16, "sy_svc_value size");

/* sy_backend4_v1 (hash): backend id -> address. Shared by every Service
 * that uses the same (address, port, protocol). */
struct sy_backend {
	__be32 addr_be;
	__be16 port_be;
	__u8 proto;
	__u8 flags;
};
_Static_assert(sizeof(struct sy_backend) == 8, "sy_backend size");

/*
 * Connection tracking. sy_ct4_v1 (LRU hash) is keyed by the tuple the client
 * sent (client -> frontend); sy_rnat4_v1 (LRU hash) by the tuple the reply
 * arrives with (backend -> client, or backend -> node address when the
 * connection was masqueraded).
 */
struct sy_ct_key {
	__be32 saddr_be;
	__be32 daddr_be;
	__be16 sport_be;
	__be16 dport_be;
	__u8 proto;
	__u8 pad[3];
};
_Static_assert(sizeof(struct sy_ct_key) == 16, "sy_ct_key size");

/* sy_ct_value.flags and sy_rnat_value.flags */
#define SY_CT_F_SNAT    0x01 /* source was masqueraded to nat_addr:nat_port */
#define SY_CT_F_HAIRPIN 0x02 /* backend is the client itself (same interface) */

struct sy_ct_value {
	__u32 backend_id;
	__be32 backend_addr_be;
	__be32 nat_addr_be; /* masquerade source, when SY_CT_F_SNAT */
	__be16 backend_port_be;
	__be16 nat_port_be;
	__u32 flags;
	__u32 pad;
	__u64 last_seen_ns; /* bpf_ktime_get_ns() when the flow was created */
};
_Static_assert(sizeof(struct sy_ct_value) == 32, "sy_ct_value size");

struct sy_rnat_value {
	__be32 front_addr_be;  /* reply source becomes the frontend */
	__be32 client_addr_be; /* reply destination, restored when SNATed */
	__be16 front_port_be;
	__be16 client_port_be;
	__u32 flags;
	__u64 last_seen_ns;
};
_Static_assert(sizeof(struct sy_rnat_value) == 24, "sy_rnat_value size");

/* sy_config_v1 (array, 1 entry): per-node settings written by the daemon. */
struct sy_config {
	__be32 node_addr_be; /* masquerade source address; 0 = not set yet */
	__u32 flags;
};
_Static_assert(sizeof(struct sy_config) == 8, "sy_config size");

/* sy_stats_v1 (per-CPU array): packet counters, indexed by SY_STAT_*. */
#define SY_STAT_SVC_HIT    0 /* packet matched a Service frontend */
#define SY_STAT_CT_NEW     1 /* new connection, backend chosen */
#define SY_STAT_NO_BACKEND 2 /* frontend with no backends */
#define SY_STAT_RNAT       3 /* reply reverse-translated */
#define SY_STAT_SNAT_FAIL  4 /* no free masquerade port */
#define SY_STAT_MAX        8

#endif /* SY_MAPS_V1_H */
