/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * testrun.bpf.c: the program test/privileged/native-testrun.test.ts runs
 * through BPF_PROG_TEST_RUN to check what progTestRun() carries each way:
 * it copies the source MAC over the destination MAC (output data), sets
 * mark = cb[0] + 1 and returns cb[1] (context in and out, verdict), and
 * counts its runs in an array map (repeat). The test compiles it with
 * clang -target bpf into a temp dir.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sy_testrun_runs SEC(".maps");

SEC("tc")
int sy_testrun(struct __sk_buff *skb)
{
	unsigned char src[6];
	__u32 zero = 0;
	__u64 *runs = bpf_map_lookup_elem(&sy_testrun_runs, &zero);

	if (runs)
		__sync_fetch_and_add(runs, 1);
	if (bpf_skb_load_bytes(skb, 6, src, sizeof(src)) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, 0, src, sizeof(src), 0) < 0)
		return TC_ACT_SHOT;
	skb->mark = skb->cb[0] + 1;
	return skb->cb[1];
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
