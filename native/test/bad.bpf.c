/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bad.bpf.c: a tc program the verifier must reject (it reads packet data
 * without a bounds check), so test/privileged/native.test.ts can check that a
 * load failure's message carries the verifier's log.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int sy_fixture_unchecked(struct __sk_buff *skb)
{
	__u8 *data = (__u8 *)(long)skb->data;

	return data[0];
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
