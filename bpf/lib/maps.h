/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h: the map instances of the tc program. Layouts live in
 * include/sy_maps.h; every map is pinned by name under the daemon's pin
 * directory so a restarted daemon adopts it (libbpf reuses a pinned map
 * whose type and sizes match).
 */
#ifndef SY_LIB_MAPS_H
#define SY_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "../include/sy_maps_v1.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SY_SVC_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sy_svc_key);
	__type(value, struct sy_svc_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_svc4_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SY_BACKEND_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct sy_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_backend4_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SY_CT_MAX);
	__type(key, struct sy_ct_key);
	__type(value, struct sy_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_ct4_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SY_CT_MAX);
	__type(key, struct sy_ct_key);
	__type(value, struct sy_rnat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_rnat4_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sy_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_config_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SY_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_stats_v1 SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&sy_stats_v1, &idx);

	if (v)
		*v += 1;
}

#endif /* SY_LIB_MAPS_H */
