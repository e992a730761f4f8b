/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h: the map instances of the v2 programs. Layouts live in
 * include/sy_maps.h (layout 2); every map is pinned by name under the
 * daemon's pin directory so a restarted daemon adopts it (libbpf reuses a
 * pinned map whose type and sizes match). Capacities are the header's
 * defaults; the daemon may set others at load time, so no code here depends
 * on them.
 */
#ifndef SY_LIB_MAPS_H
#define SY_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "../include/sy_maps.h"

#define SY_HASH(name, kt, vt, max)                                                                 \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_HASH);                                                   \
		__uint(max_entries, max);                                                          \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
		__type(key, kt);                                                                   \
		__type(value, vt);                                                                 \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                                               \
	} name SEC(".maps")

#define SY_LRU(name, kt, vt, max)                                                                  \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);                                               \
		__uint(max_entries, max);                                                          \
		__type(key, kt);                                                                   \
		__type(value, vt);                                                                 \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                                               \
	} name SEC(".maps")

#define SY_LPM(name, kt, vt, max)                                                                  \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                                               \
		__uint(max_entries, max);                                                          \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
		__type(key, kt);                                                                   \
		__type(value, vt);                                                                 \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                                               \
	} name SEC(".maps")

SY_HASH(sy_svc4_v2, struct sy_svc4_key, struct sy_svc_value, SY_SVC_MAX);
SY_HASH(sy_svc6_v2, struct sy_svc6_key, struct sy_svc_value, SY_SVC_MAX);
SY_HASH(sy_backend4_v2, __u32, struct sy_backend4, SY_BACKEND_MAX);
SY_HASH(sy_backend6_v2, __u32, struct sy_backend6, SY_BACKEND_MAX);
SY_HASH(sy_vip4_v2, struct sy_vip4_key, struct sy_vip_value, SY_VIP_MAX);
SY_HASH(sy_vip6_v2, struct sy_vip6_key, struct sy_vip_value, SY_VIP_MAX);
SY_LPM(sy_srcrange4_v2, struct sy_srcrange4_key, struct sy_srcrange_value, SY_SRCRANGE_MAX);
SY_LPM(sy_srcrange6_v2, struct sy_srcrange6_key, struct sy_srcrange_value, SY_SRCRANGE_MAX);
SY_LRU(sy_ct4_v2, struct sy_ct4_key, struct sy_ct4_value, SY_CT_MAX);
SY_LRU(sy_ct6_v2, struct sy_ct6_key, struct sy_ct6_value, SY_CT_MAX);
SY_LRU(sy_frag4_v2, struct sy_frag4_key, struct sy_frag_value, SY_FRAG_MAX);
SY_LRU(sy_aff4_v2, struct sy_aff4_key, struct sy_aff_value, SY_AFF_MAX);
SY_LRU(sy_aff6_v2, struct sy_aff6_key, struct sy_aff_value, SY_AFF_MAX);
SY_HASH(sy_aff_be_v2, struct sy_aff_be_key, struct sy_aff_be_value, SY_AFF_BE_MAX);
SY_HASH(sy_maglev_v2, struct sy_maglev_key, struct sy_maglev_value, SY_MAGLEV_MAX);

/* Traffic counters (sy_maps.h): per-CPU, not preallocated; entries are
 * inserted (zeroed) and deleted by the daemon only. */
#define SY_PERCPU_HASH(name, kt, vt, max)                                                          \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_PERCPU_HASH);                                            \
		__uint(max_entries, max);                                                          \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
		__type(key, kt);                                                                   \
		__type(value, vt);                                                                 \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                                               \
	} name SEC(".maps")

SY_PERCPU_HASH(sy_svc_cnt_v2, __u32, struct sy_traffic, SY_SVC_CNT_MAX);
SY_PERCPU_HASH(sy_be_cnt4_v2, __u32, struct sy_traffic, SY_BE_CNT_MAX);
SY_PERCPU_HASH(sy_be_cnt6_v2, __u32, struct sy_traffic, SY_BE_CNT_MAX);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sy_config_v2);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_config_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SY_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_stats_v2 SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&sy_stats_v2, &idx);

	if (v)
		*v += 1;
}

/* The value a counter entry starts from: in .rodata, so that creating an
 * entry takes no stack. */
static const struct sy_traffic sy_traffic_zero;

static __always_inline void traffic_add(struct sy_traffic *t, __u64 segs, __u64 bytes, int reply,
                                        int new_conn)
{
	if (!t)
		return;
	if (reply) {
		t->reply_packets += segs;
		t->reply_bytes += bytes;
	} else {
		t->packets += segs;
		t->bytes += bytes;
	}
	t->conns += new_conn;
}

/* The counter entry of id in map. The daemon does not write entries for
 * new ids (only a zeroed one when it reuses an id): the first packet
 * towards a backend creates it. A reply only counts into an entry that
 * exists, so that a flow that outlived its ids (replies of a connection to
 * a removed backend) cannot bring back an entry the daemon deleted; the
 * forward path's ids are live (the master was just read, the backend
 * checked). A full map: not counted. */
static __always_inline struct sy_traffic *traffic_entry(void *map, __u32 *id, int create)
{
	struct sy_traffic *t = bpf_map_lookup_elem(map, id);

	if (t || !create)
		return t;
	bpf_map_update_elem(map, id, &sy_traffic_zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, id);
}

/* One translated packet of a flow of frontend svc_id and backend
 * backend_id: a per-CPU add in each counter map.
 * reply: backend -> client; new_conn: the flow was just created. */
static __always_inline void traffic_count(struct __sk_buff *skb, int v6, __u32 l3_off, __u32 svc_id,
                                          __u32 backend_id, int reply, int new_conn)
{
	__u64 segs = skb->gso_segs ? skb->gso_segs : 1;
	__u64 bytes = skb->len > l3_off ? skb->len - l3_off : 0;

	traffic_add(traffic_entry(&sy_svc_cnt_v2, &svc_id, !reply), segs, bytes, reply, new_conn);
	if (v6)
		traffic_add(traffic_entry(&sy_be_cnt6_v2, &backend_id, !reply), segs, bytes, reply,
		            new_conn);
	else
		traffic_add(traffic_entry(&sy_be_cnt4_v2, &backend_id, !reply), segs, bytes, reply,
		            new_conn);
}

static __always_inline struct sy_config_v2 *config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sy_config_v2, &zero);
}

#endif /* SY_LIB_MAPS_H */
