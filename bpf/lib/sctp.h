/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sctp.h: the SCTP CRC32c checksum (RFC 4960 appendix B, RFC 3309) updated
 * for a changed source or destination port without reading the packet.
 *
 * CRC32c is affine in the message: for two messages of one length,
 * crc(A) ^ crc(B) = L(A ^ B), where L is the CRC's linear part (initial
 * value and final xor 0). A port change xors a 2-byte delta d at offset o
 * into an otherwise unchanged packet of n bytes, so
 *     crc(new) = crc(old) ^ L(d) * x^(8 (n - o - 2)) mod P,
 * leading zero bytes not changing L's state and each trailing zero byte
 * multiplying it by x^8. With m = n - o - 2 the bytes after the port,
 * x^(8m) is a product of at most four constants x^(8 j 16^k) mod P, one
 * per hex digit j of m (so m < 64 Ki), with GF(2) products in 32-step
 * bounded loops: about a thousand instructions, no loop whose length
 * depends on the packet, verified on 5.10.
 *
 * Polynomials are in the reflected representation CRC32c computes in
 * (zlib's crc32_combine uses the same): bit 31 is x^0, bit 0 is x^31.
 * The checksum sits at offset 8 of the common header, least significant
 * byte first (Linux stores cpu_to_le32(crc); RFC 3720 B.4's vectors are
 * written in that byte order).
 *
 * Limits: n is skb->len - l4_off, so the frame must end where the SCTP
 * packet does (an SCTP packet with a chunk is at least 28 bytes, so an
 * Ethernet frame carrying one is never padded); GSO packets are not
 * supported (their CRC is computed per segment later anyway). An skb whose
 * CRC is still to be computed by offload (CHECKSUM_PARTIAL, csum_not_inet)
 * carries 0 in the field, and the kernel's software fallback sums the field
 * as it is: such a packet is left alone (a real CRC of 0 is 1 in 2^32).
 */
#ifndef SY_LIB_SCTP_H
#define SY_LIB_SCTP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SY_CRC32C_POLY   0x82f63b78u /* reflected Castagnoli polynomial */
#define SY_CRC32C_X0     0x80000000u /* x^0, the multiplicative identity */
#define SY_SCTP_CSUM_OFF 8

/* The CRC field's bytes read as a host-order __u32 are the CRC itself on a
 * little-endian host; swap on a big-endian one. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define sy_le32_to_cpu(x) (x)
#else
#define sy_le32_to_cpu(x) __builtin_bswap32(x)
#endif

/* a * b mod P (reflected). Branch-free, 32 bounded steps. */
static __always_inline __u32 sy_crc32c_mulmod(__u32 a, __u32 b)
{
	__u32 p = 0;
	int i;

#pragma clang loop unroll(disable)
	for (i = 0; i < 32; i++) {
		p ^= b & (0u - ((a >> (31 - i)) & 1));
		b = (b >> 1) ^ (SY_CRC32C_POLY & (0u - (b & 1)));
	}
	return p;
}

/* x^(8 j 16^k) mod P for the hex digit j (0..15) of n at position k
 * (0..3): a branch-free select among constants (no table in .rodata). */
#define SY_X8_SEL(j, v, c) ((__u32)(c) & (0u - (__u32)((j) == (v))))
#define SY_X8_ROW(j, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15)         \
	(SY_X8_SEL(j, 0, c0) | SY_X8_SEL(j, 1, c1) | SY_X8_SEL(j, 2, c2) | SY_X8_SEL(j, 3, c3) |   \
	 SY_X8_SEL(j, 4, c4) | SY_X8_SEL(j, 5, c5) | SY_X8_SEL(j, 6, c6) | SY_X8_SEL(j, 7, c7) |   \
	 SY_X8_SEL(j, 8, c8) | SY_X8_SEL(j, 9, c9) | SY_X8_SEL(j, 10, c10) |                       \
	 SY_X8_SEL(j, 11, c11) | SY_X8_SEL(j, 12, c12) | SY_X8_SEL(j, 13, c13) |                   \
	 SY_X8_SEL(j, 14, c14) | SY_X8_SEL(j, 15, c15))

static __always_inline __u32 sy_crc32c_x8pow_digit(int k, __u32 j)
{
	switch (k) {
	case 0:
		return SY_X8_ROW(j, 0x80000000u, 0x00800000u, 0x00008000u, 0x00000080u, 0x82f63b78u,
		                 0xfbc3faf9u, 0x8b277743u, 0x52a0c93fu, 0x6ea2d55cu, 0x1c08b7d6u,
		                 0xf56e0ef4u, 0x34019664u, 0xa66805ebu, 0x7a1f6b24u, 0xe75d06aau,
		                 0xc94ec098u);
	case 1:
		return SY_X8_ROW(j, 0x80000000u, 0x18b8ea18u, 0x510ac59au, 0xb2dea967u, 0xb82be955u,
		                 0x36c41f1cu, 0x19b29a35u, 0xc9e90b9eu, 0xb8fdb1e7u, 0xe55ef1f3u,
		                 0x1fe0b5c3u, 0xe0553f1eu, 0x18e4a304u, 0x2b830011u, 0x56993a31u,
		                 0x0246e2e6u);
	case 2:
		return SY_X8_ROW(j, 0x80000000u, 0x88e56f72u, 0x74c360a4u, 0x631bb273u, 0xe4172b16u,
		                 0x71892b1bu, 0x835305c9u, 0x196b1eaeu, 0x0d65762au, 0xafc81338u,
		                 0xb5a50ab7u, 0xf373c3acu, 0x5f60970fu, 0xd46d3063u, 0x3a5275eau,
		                 0x02331c01u);
	default:
		return SY_X8_ROW(j, 0x80000000u, 0x35d73a62u, 0x28461564u, 0x43eefc9fu, 0xbf455269u,
		                 0x5edcdeb9u, 0x65059450u, 0x4e6f41a4u, 0xe2ea32dcu, 0xf5b95b32u,
		                 0x695a4c87u, 0xf204502cu, 0x9a4f01b6u, 0x941a0916u, 0x4303cb97u,
		                 0x4c3d3d65u);
	}
}

/* L(bytes) of a 16-bit field as it sits in the packet (network order). */
static __always_inline __u32 sy_crc32c_lin16(__be16 v)
{
	__u16 h = bpf_ntohs(v);
	__u32 c = h >> 8; /* first byte on the wire */
	int i;

#pragma unroll
	for (i = 0; i < 8; i++)
		c = (c >> 1) ^ (SY_CRC32C_POLY & (0u - (c & 1)));
	c ^= h & 0xff;
#pragma unroll
	for (i = 0; i < 8; i++)
		c = (c >> 1) ^ (SY_CRC32C_POLY & (0u - (c & 1)));
	return c;
}

/* L(d) advanced over n zero bytes: L(d) * x^(8n) mod P, n < 2^16, one
 * product per hex digit of n. */
static __always_inline __u32 sy_crc32c_shift(__u32 crc, __u32 n)
{
	int k;

#pragma unroll
	for (k = 0; k < 4; k++) {
		if ((n >> (4 * k)) == 0)
			break;
		crc = sy_crc32c_mulmod(sy_crc32c_x8pow_digit(k, (n >> (4 * k)) & 0xf), crc);
	}
	return crc;
}

/*
 * The SCTP packet at l4_off (common header: sport, dport, vtag, CRC32c)
 * had its source (is_dst = 0) or destination (is_dst = 1) port changed
 * from old_port to new_port (the caller stores the port, before or after);
 * this updates the CRC32c field accordingly. Returns 0, or -1 when the
 * packet is too short or too long (>= 64 KiB after the port) or a helper
 * fails.
 */
static __always_inline int sctp_port_csum_update(struct __sk_buff *skb, __u32 l4_off,
                                                 __be16 old_port, __be16 new_port, int is_dst)
{
	__u32 len = skb->len;
	__u32 after; /* bytes after the changed field */
	__u32 raw;
	__u32 delta;

	if (old_port == new_port)
		return 0;
	if (len < l4_off + 12)
		return -1;
	after = len - l4_off - (is_dst ? 4 : 2);
	if (after > 0xffff)
		return -1;
	if (bpf_skb_load_bytes(skb, l4_off + SY_SCTP_CSUM_OFF, &raw, sizeof(raw)) < 0)
		return -1;
	/* Zero: the CRC is still to be computed (Linux leaves the field 0 when
	 * a device offloads it, CHECKSUM_PARTIAL + csum_not_inet, and its
	 * software fallback skb_crc32c_csum_help() sums the field as it is).
	 * A delta stored here would end up in that CRC: leave it. */
	if (raw == 0)
		return 0;
	delta = sy_crc32c_shift(sy_crc32c_lin16(old_port ^ new_port), after);
	raw ^= sy_le32_to_cpu(delta);
	if (bpf_skb_store_bytes(skb, l4_off + SY_SCTP_CSUM_OFF, &raw, sizeof(raw),
	                        BPF_F_RECOMPUTE_CSUM) < 0)
		return -1;
	return 0;
}

#endif /* SY_LIB_SCTP_H */
