/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * fixture.bpf.c: the smallest object test/privileged/native.test.ts needs to
 * exercise the addon: one tc program that lets every packet through, one hash
 * map pinned by name (reused across opens) and one per-CPU array (not
 * pinned). The test compiles it with clang -target bpf into a temp dir.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct fixture_key {
	__u32 id;
	__u16 port;
	__u16 pad;
};

struct fixture_value {
	__u64 a;
	__u32 b;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct fixture_key);
	__type(value, struct fixture_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sy_fixture_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} sy_fixture_percpu SEC(".maps");

SEC("tc")
int sy_fixture_pass(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u32 *hits = bpf_map_lookup_elem(&sy_fixture_percpu, &zero);

	if (hits)
		*hits += 1;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
