// Packets for BPF fixtures, built and read in TypeScript: Ethernet + IPv4
// (options, fragment fields, any protocol) or IPv6 (optionally with a
// Fragment header) + TCP, UDP, SCTP (common header and one DATA or INIT
// chunk), ICMP or ICMPv6 (echo, or errors quoting the packet that caused
// them) frames from a flat description; truncation and fragmenting of a
// built frame; a parser that turns a frame back into fields (for readable
// diffs), including the packet an ICMP error quotes; and the checksums:
// the Internet checksum (RFC 1071) with the TCP/UDP/ICMPv6 pseudo-headers
// of both families (RFC 793, 768, 8200 §8.1, 4443), and CRC32c for SCTP
// (RFC 3309, RFC 4960 appendix B). They are written from the RFCs,
// independent of the kernel's helpers and of the BPF programs' incremental
// updates, so a frame a program rewrote can be checked against one computed
// from scratch.

import { parseIPv4, parseIPv6, formatIPv6 } from '../../src/util/ip.ts';

export const ETH_HLEN = 14;
export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_GRE = 47;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;

/** TCP flag bits (byte 13 of the header). */
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/** ICMPv4 types and codes (RFC 792, 1191). */
export const ICMP = {
  ECHO_REPLY: 0,
  DEST_UNREACH: 3,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
  /** Codes of DEST_UNREACH. */
  PORT_UNREACH: 3,
  FRAG_NEEDED: 4,
} as const;

/** ICMPv6 types and codes (RFC 4443). */
export const ICMP6 = {
  DEST_UNREACH: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
  /** Code of DEST_UNREACH. */
  PORT_UNREACH: 4,
} as const;

/** SCTP chunk types (RFC 4960 §3.2). */
export const SCTP_CHUNK = { DATA: 0, INIT: 1 } as const;

/** The minimum IPv6 MTU (RFC 8200): an ICMPv6 error is at most this long. */
export const IPV6_MIN_MTU = 1280;
/** The IPv4 datagram size every host accepts (RFC 791); Linux cuts ICMP errors to it. */
export const IPV4_MIN_REASSEMBLY = 576;

export type ProtoName = 'TCP' | 'UDP' | 'SCTP' | 'ICMP' | 'ICMPv6';

/**
 * One frame. The builder fills everything it is not told: lengths and
 * checksums are computed (unless overridden), MACs and other fields have
 * fixed defaults. A frame rewritten by NAT is described by spreading the
 * original and changing addresses and ports: `{ ...syn, dst: BACKEND, dport: 8080 }`.
 * The family follows the addresses: IPv6 when they contain ':'.
 */
export interface FrameSpec {
  readonly srcMac?: string;
  readonly dstMac?: string;
  readonly etherType?: number;

  readonly src: string;
  readonly dst: string;
  /** A name builds that header; a number only sets the IP protocol / next header (give the bytes in l4). */
  readonly proto: ProtoName | number;
  /** IPv4 TTL, IPv6 hop limit. Default 64. */
  readonly ttl?: number;
  /** IPv4 TOS, IPv6 traffic class. */
  readonly tos?: number;
  // IPv4 only.
  readonly id?: number;
  readonly df?: boolean;
  readonly mf?: boolean;
  /** Fragment offset in 8-byte units. */
  readonly fragOffset?: number;
  /** IP options, padded by the caller to a multiple of 4 bytes (ihl = 5 + length / 4). */
  readonly ipOptions?: Uint8Array;
  // IPv6 only.
  readonly flowLabel?: number;
  /** Adds a Fragment header (RFC 8200 §4.5) before the L4 bytes; the L4 bytes are built whole (give l4 for a later fragment). */
  readonly fragment6?: { readonly offset: number; readonly more: boolean; readonly id: number };

  readonly sport?: number;
  readonly dport?: number;
  readonly tcpFlags?: number;
  readonly seq?: number;
  readonly ack?: number;
  readonly window?: number;
  /** 'none' sends UDP checksum 0 ("no checksum", RFC 768; invalid over IPv6). Default 'compute'. */
  readonly udpChecksum?: 'compute' | 'none';

  /** SCTP: the verification tag (default 0 for INIT, 0x5c0ffee5 otherwise), the one chunk, its TSN / initiate tag. */
  readonly sctp?: {
    readonly vtag?: number;
    readonly chunk?: 'DATA' | 'INIT';
    readonly tsn?: number;
    readonly initiateTag?: number;
    /** 'zero' leaves the CRC32c field 0. Default 'compute'. */
    readonly checksum?: 'compute' | 'zero';
  };

  /** ICMP / ICMPv6 header: type, code and the 32-bit word after the checksum (id << 16 | seq, the MTU, a pointer, or 0). The body is `payload`. */
  readonly icmp?: { readonly type: number; readonly code: number; readonly rest?: number };

  /** Bytes after the L4 header (SCTP: the DATA chunk's user data; ICMP: the body, e.g. a quoted packet). */
  readonly payload?: Uint8Array;
  /** Raw bytes after the IP header instead of a built L4 header (other protocols, non-first fragments). */
  readonly l4?: Uint8Array;
}

export function mac(s: string): Buffer {
  const b = Buffer.from(s.replaceAll(':', ''), 'hex');
  if (b.length !== 6) throw new RangeError(`not a MAC address: ${s}`);
  return b;
}

export function ipv4(s: string): Buffer {
  const parts = s.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new RangeError(`not an IPv4 address: ${s}`);
  return Buffer.from(parts);
}

export function ipv6(s: string): Buffer {
  const b = parseIPv6(s, 'reject');
  if (b === null) throw new RangeError(`not an IPv6 address: ${s}`);
  return Buffer.from(b);
}

/** An address of either family as bytes (4 or 16). */
export function ipBytes(s: string): Buffer {
  return s.includes(':') ? ipv6(s) : ipv4(s);
}

function formatIPv4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** Checksums read as "0x1c46", so a diff shows them as they appear in a capture. */
function hex16(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`;
}

function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

function formatMac(b: Uint8Array, at: number): string {
  return [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

// ---------------------------------------------------------------------------
// RFC 1071.

/** The 16-bit ones' complement sum of bytes (big-endian words; an odd last byte is padded with zero), folded. */
export function onesComplementSum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += ((bytes[i] as number) << 8) | (bytes[i + 1] as number);
  if (bytes.length % 2 === 1) sum += (bytes[bytes.length - 1] as number) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of the concatenated parts: the ones' complement of their ones' complement sum. */
export function internetChecksum(...parts: Uint8Array[]): number {
  return ~onesComplementSum(Buffer.concat(parts)) & 0xffff;
}

/**
 * The pseudo-header of an upper-layer checksum. IPv4 (RFC 793 / 768):
 * source, destination, zero, protocol, 16-bit length. IPv6 (RFC 8200 §8.1,
 * also for ICMPv6): source, destination, 32-bit length, three zero bytes,
 * next header. The family follows the address length.
 */
export function pseudoHeader(src: Uint8Array, dst: Uint8Array, proto: number, l4Length: number): Buffer {
  if (src.length === 16 && dst.length === 16) {
    const b = Buffer.alloc(40);
    b.set(src, 0);
    b.set(dst, 16);
    b.writeUInt32BE(l4Length, 32);
    b[39] = proto;
    return b;
  }
  if (src.length !== 4 || dst.length !== 4) throw new RangeError('pseudoHeader: addresses must both be 4 or both 16 bytes');
  const b = Buffer.alloc(12);
  b.set(src, 0);
  b.set(dst, 4);
  b[9] = proto;
  b.writeUInt16BE(l4Length, 10);
  return b;
}

/** Where the 16-bit Internet checksum of an L4 protocol sits in its header. */
function checksumOffset(proto: number): number {
  switch (proto) {
    case IPPROTO_TCP:
      return 16;
    case IPPROTO_UDP:
      return 6;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      return 2;
    default:
      throw new RangeError(`protocol ${proto} has no Internet checksum`);
  }
}

/**
 * The checksum a TCP, UDP, ICMP or ICMPv6 message should carry (its checksum
 * field is taken as zero), for addresses of either family. ICMPv4 has no
 * pseudo-header; the others do. UDP's 0 is sent as 0xffff.
 */
export function l4Checksum(src: Uint8Array, dst: Uint8Array, proto: number, segment: Uint8Array): number {
  const zeroed = Buffer.from(segment);
  zeroed.writeUInt16BE(0, checksumOffset(proto));
  const c = proto === IPPROTO_ICMP ? internetChecksum(zeroed) : internetChecksum(pseudoHeader(src, dst, proto, segment.length), zeroed);
  return proto === IPPROTO_UDP && c === 0 ? 0xffff : c;
}

// ---------------------------------------------------------------------------
// CRC32c (Castagnoli), RFC 3309 / RFC 4960 appendix B: reflected polynomial
// 0x82f63b78, initial value and final xor 0xffffffff. SCTP puts the result
// in the common header's checksum field least significant byte first (the
// kernel stores cpu_to_le32(crc)); RFC 3720 B.4's vectors are given in that
// byte order.

const CRC32C_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32c of the bytes, as a number ("123456789" -> 0xe3069283). */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC32C_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The CRC32c an SCTP packet (common header + chunks) should carry: computed with the checksum field zero. Store it with writeUInt32LE at offset 8. */
export function sctpChecksum(packet: Uint8Array): number {
  const zeroed = Buffer.from(packet);
  zeroed.writeUInt32LE(0, 8);
  return crc32c(zeroed);
}

// ---------------------------------------------------------------------------
// Building.

function isV6(s: FrameSpec): boolean {
  const v6 = s.src.includes(':');
  if (v6 !== s.dst.includes(':')) throw new RangeError(`source ${s.src} and destination ${s.dst} are of different families`);
  return v6;
}

function protoNumber(p: FrameSpec['proto']): number {
  switch (p) {
    case 'TCP':
      return IPPROTO_TCP;
    case 'UDP':
      return IPPROTO_UDP;
    case 'SCTP':
      return IPPROTO_SCTP;
    case 'ICMP':
      return IPPROTO_ICMP;
    case 'ICMPv6':
      return IPPROTO_ICMPV6;
    default:
      return p;
  }
}

function tcpHeader(s: FrameSpec): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(s.sport ?? 0, 0);
  h.writeUInt16BE(s.dport ?? 0, 2);
  h.writeUInt32BE(s.seq ?? 0x01020304, 4);
  h.writeUInt32BE(s.ack ?? 0, 8);
  h[12] = 5 << 4;
  h[13] = s.tcpFlags ?? TCP.SYN;
  h.writeUInt16BE(s.window ?? 64240, 14);
  return h;
}

function udpHeader(s: FrameSpec, payloadLength: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(s.sport ?? 0, 0);
  h.writeUInt16BE(s.dport ?? 0, 2);
  h.writeUInt16BE(8 + payloadLength, 4);
  return h;
}

/** SCTP common header + one chunk (RFC 4960 §3): DATA (B and E set, stream 0) with the payload padded to 4 bytes, or INIT. */
function sctpPacket(s: FrameSpec, payload: Buffer): Buffer {
  const o = s.sctp ?? {};
  const init = o.chunk === 'INIT';
  const common = Buffer.alloc(12);
  common.writeUInt16BE(s.sport ?? 0, 0);
  common.writeUInt16BE(s.dport ?? 0, 2);
  common.writeUInt32BE(o.vtag ?? (init ? 0 : 0x5c0ffee5), 4);
  let chunk: Buffer;
  if (init) {
    if (payload.length > 0) throw new RangeError('an INIT chunk built here carries no payload');
    chunk = Buffer.alloc(20);
    chunk[0] = SCTP_CHUNK.INIT;
    chunk.writeUInt16BE(20, 2);
    chunk.writeUInt32BE(o.initiateTag ?? 0x1badcafe, 4);
    chunk.writeUInt32BE(106496, 8); // a_rwnd
    chunk.writeUInt16BE(10, 12); // outbound streams
    chunk.writeUInt16BE(65535, 14); // max inbound streams
    chunk.writeUInt32BE(o.tsn ?? 0x10000000, 16);
  } else {
    const padded = (16 + payload.length + 3) & ~3;
    chunk = Buffer.alloc(padded);
    chunk[0] = SCTP_CHUNK.DATA;
    chunk[1] = 0x03; // B | E: an unfragmented user message
    chunk.writeUInt16BE(16 + payload.length, 2); // the length excludes the padding
    chunk.writeUInt32BE(o.tsn ?? 0x10000000, 4);
    chunk.writeUInt16BE(0, 8); // stream
    chunk.writeUInt16BE(0, 10); // stream sequence
    chunk.writeUInt32BE(0, 12); // PPID
    payload.copy(chunk, 16);
  }
  const pkt = Buffer.concat([common, chunk]);
  if (o.checksum !== 'zero') pkt.writeUInt32LE(sctpChecksum(pkt), 8);
  return pkt;
}

/** The L4 bytes of a frame: a built header and payload with its checksum, or spec.l4 + payload. */
function l4Bytes(s: FrameSpec, src: Buffer, dst: Buffer): Buffer {
  const payload = Buffer.from(s.payload ?? []);
  if (s.l4 !== undefined) return Buffer.concat([s.l4, payload]);
  const proto = protoNumber(s.proto);
  if (proto === IPPROTO_SCTP) return sctpPacket(s, payload);
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    if (s.icmp === undefined) throw new RangeError('an ICMP frame needs spec.icmp (type, code)');
    const h = Buffer.alloc(8);
    h[0] = s.icmp.type;
    h[1] = s.icmp.code;
    h.writeUInt32BE((s.icmp.rest ?? 0) >>> 0, 4);
    const msg = Buffer.concat([h, payload]);
    msg.writeUInt16BE(l4Checksum(src, dst, proto, msg), 2);
    return msg;
  }
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return payload;
  const seg = Buffer.concat([proto === IPPROTO_TCP ? tcpHeader(s) : udpHeader(s, payload.length), payload]);
  if (proto === IPPROTO_UDP && s.udpChecksum === 'none') return seg;
  seg.writeUInt16BE(l4Checksum(src, dst, proto, seg), proto === IPPROTO_TCP ? 16 : 6);
  return seg;
}

function ipHeader(s: FrameSpec, l4Length: number): Buffer {
  const options = Buffer.from(s.ipOptions ?? []);
  if (options.length % 4 !== 0 || options.length > 40) throw new RangeError(`IP options must be 0..40 bytes in 4-byte words, got ${options.length}`);
  const h = Buffer.alloc(20 + options.length);
  h[0] = (4 << 4) | (5 + options.length / 4);
  h[1] = s.tos ?? 0;
  h.writeUInt16BE(h.length + l4Length, 2);
  h.writeUInt16BE(s.id ?? 0x1234, 4);
  h.writeUInt16BE((s.df ? 0x4000 : 0) | (s.mf ? 0x2000 : 0) | (s.fragOffset ?? 0), 6);
  h[8] = s.ttl ?? 64;
  h[9] = protoNumber(s.proto);
  ipv4(s.src).copy(h, 12);
  ipv4(s.dst).copy(h, 16);
  options.copy(h, 20);
  h.writeUInt16BE(internetChecksum(h), 10);
  return h;
}

function ip6Header(s: FrameSpec, payloadLength: number): Buffer {
  for (const k of ['id', 'df', 'mf', 'fragOffset', 'ipOptions'] as const) {
    if (s[k] !== undefined) throw new RangeError(`${k} is an IPv4 field; an IPv6 frame (${s.src} -> ${s.dst}) takes fragment6`);
  }
  const h = Buffer.alloc(40);
  h.writeUInt32BE(((6 << 28) | ((s.tos ?? 0) << 20) | ((s.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  h.writeUInt16BE(payloadLength, 4);
  h[6] = s.fragment6 !== undefined ? IPPROTO_FRAGMENT : protoNumber(s.proto);
  h[7] = s.ttl ?? 64;
  ipv6(s.src).copy(h, 8);
  ipv6(s.dst).copy(h, 24);
  return h;
}

function fragmentHeader(s: FrameSpec): Buffer {
  const f = s.fragment6;
  if (f === undefined) return Buffer.alloc(0);
  const h = Buffer.alloc(8);
  h[0] = protoNumber(s.proto);
  h.writeUInt16BE(((f.offset & 0x1fff) << 3) | (f.more ? 1 : 0), 2);
  h.writeUInt32BE(f.id >>> 0, 4);
  return h;
}

/** The IP packet (no Ethernet header) of a spec: IPv4 or IPv6 + L4, lengths and checksums computed. */
export function ipPacket(s: FrameSpec): Buffer {
  if (isV6(s)) {
    const l4 = l4Bytes(s, ipv6(s.src), ipv6(s.dst));
    const frag = fragmentHeader(s);
    return Buffer.concat([ip6Header(s, frag.length + l4.length), frag, l4]);
  }
  if (s.flowLabel !== undefined || s.fragment6 !== undefined) throw new RangeError(`flowLabel and fragment6 are IPv6 fields; ${s.src} -> ${s.dst} is IPv4`);
  const l4 = l4Bytes(s, ipv4(s.src), ipv4(s.dst));
  return Buffer.concat([ipHeader(s, l4.length), l4]);
}

/** Ethernet + IPv4 or IPv6 + (TCP | UDP | SCTP | ICMP | ICMPv6 | raw bytes), lengths and checksums computed. */
export function frame(s: FrameSpec): Buffer {
  const eth = Buffer.alloc(ETH_HLEN);
  mac(s.dstMac ?? '02:00:00:00:00:02').copy(eth, 0);
  mac(s.srcMac ?? '02:00:00:00:00:01').copy(eth, 6);
  eth.writeUInt16BE(s.etherType ?? (isV6(s) ? ETH_P_IPV6 : ETH_P_IP), 12);
  return Buffer.concat([eth, ipPacket(s)]);
}

/** The first `length` bytes of a frame, as a capture cut short would hold (length fields still claim the whole). */
export function truncate(f: Uint8Array, length: number): Buffer {
  return Buffer.from(f.subarray(0, length));
}

/**
 * The first fragment of a built IPv4 frame: its L4 data cut to `l4Length`
 * bytes (a multiple of 8), MF set, total length and header checksum fixed.
 * The TCP/UDP checksum stays that of the whole datagram, as a sender computes it.
 */
export function firstFragment(f: Uint8Array, l4Length: number): Buffer {
  if (l4Length % 8 !== 0) throw new RangeError('a fragment that is not the last carries a multiple of 8 bytes');
  const ihl = ((f[ETH_HLEN] as number) & 0x0f) * 4;
  const out = Buffer.from(f.subarray(0, ETH_HLEN + ihl + l4Length));
  out.writeUInt16BE(ihl + l4Length, ETH_HLEN + 2);
  out.writeUInt16BE(out.readUInt16BE(ETH_HLEN + 6) | 0x2000, ETH_HLEN + 6);
  out.writeUInt16BE(0, ETH_HLEN + 10);
  out.writeUInt16BE(internetChecksum(out.subarray(ETH_HLEN, ETH_HLEN + ihl)), ETH_HLEN + 10);
  return out;
}

/** A frame with its Ethernet source and destination swapped. */
export function swapMacs(f: Uint8Array): Buffer {
  const out = Buffer.from(f);
  out.set(f.subarray(6, 12), 0);
  out.set(f.subarray(0, 6), 6);
  return out;
}

/** The IP packet of a frame (without the Ethernet header), cut to at most `max` bytes: what an ICMP error quotes. */
export function quote(f: Uint8Array, max: number): Buffer {
  const ip = f.subarray(ETH_HLEN);
  return Buffer.from(ip.subarray(0, Math.min(ip.length, max)));
}

export interface IcmpErrorSpec {
  /** ICMP(v6) type and code. */
  readonly type: number;
  readonly code: number;
  /** The word after the checksum: the next-hop MTU (v4 frag-needed: low 16 bits; v6 packet too big: all 32), else 0. */
  readonly rest?: number;
  /** The error's source address; default the original's destination (the host that refuses it). */
  readonly from?: string;
  /** The error's destination; default the original's source. */
  readonly to?: string;
  /**
   * How many bytes of the original IP packet to quote. Default as Linux
   * does: as much as keeps the error within 576 bytes (IPv4) or 1280
   * (IPv6, RFC 4443 §2.4 c).
   */
  readonly quoteBytes?: number;
  readonly ttl?: number;
  /** Default: the original's, swapped (the error goes back where the packet came from). */
  readonly srcMac?: string;
  readonly dstMac?: string;
}

/** The spec of an ICMP or ICMPv6 error about a built frame: the original's IP packet quoted, addresses and MACs reversed. */
export function icmpErrorSpec(original: Uint8Array, e: IcmpErrorSpec): FrameSpec {
  const p = parseFrame(original);
  const ip = p.ip ?? p.ip6;
  if (ip === undefined) throw new Error('icmpErrorSpec: the original is not an IP frame');
  const v6 = p.ip6 !== undefined;
  const max = e.quoteBytes ?? (v6 ? IPV6_MIN_MTU - 40 - 8 : IPV4_MIN_REASSEMBLY - 20 - 8);
  return {
    srcMac: e.srcMac ?? p.eth.dst,
    dstMac: e.dstMac ?? p.eth.src,
    src: e.from ?? ip.dst,
    dst: e.to ?? ip.src,
    proto: v6 ? 'ICMPv6' : 'ICMP',
    ttl: e.ttl,
    icmp: { type: e.type, code: e.code, rest: e.rest ?? 0 },
    payload: quote(original, max),
  };
}

/** An ICMP or ICMPv6 error frame about a built frame (see icmpErrorSpec). */
export function icmpError(original: Uint8Array, e: IcmpErrorSpec): Buffer {
  return frame(icmpErrorSpec(original, e));
}

/** Where the L4 header of a frame's IP packet starts, from the start of the IP header. */
function l4OffsetInPacket(f: Uint8Array): number {
  const p = parseFrame(f);
  if (p.ip6 !== undefined) return p.ip6.frag !== undefined ? 48 : 40;
  if (p.ip !== undefined) return p.ip.ihl * 4;
  throw new Error('not an IP frame');
}

/**
 * The ICMP error about `sent` as bpf/lib/icmp.h's rewrite makes it from the
 * error `e` about `translated` (the same packet after NAT): everything as
 * icmpError(sent, e) builds it, except the quoted L4 checksums the rewrite
 * leaves alone: TCP's unless the whole segment is quoted, SCTP's CRC32c
 * always. The ICMP checksum is computed over that.
 */
export function translatedIcmpError(sent: Uint8Array, translated: Uint8Array, e: IcmpErrorSpec): Buffer {
  const out = icmpError(sent, e);
  const p = parseFrame(sent);
  const v6 = p.ip6 !== undefined;
  const proto = p.tcp !== undefined ? IPPROTO_TCP : p.sctp !== undefined ? IPPROTO_SCTP : 0;
  if (proto === 0) return out;
  const icmpAt = ETH_HLEN + (v6 ? 40 : 20);
  const quoteAt = icmpAt + 8;
  const ipLength = v6 ? 40 + (p.ip6?.payloadLength ?? 0) : (p.ip?.totalLength ?? 0);
  if (proto === IPPROTO_TCP && ipLength <= out.length - quoteAt) return out;
  const field = proto === IPPROTO_TCP ? 16 : 8;
  const width = proto === IPPROTO_TCP ? 2 : 4;
  const at = quoteAt + l4OffsetInPacket(sent) + field;
  if (at + width > out.length) return out;
  const from = ETH_HLEN + l4OffsetInPacket(translated) + field;
  out.set(translated.subarray(from, from + width), at);
  const outer = parseFrame(out);
  const ip = outer.ip ?? outer.ip6;
  if (ip === undefined) throw new Error('translatedIcmpError: the error is not IP');
  out.writeUInt16BE(l4Checksum(ipBytes(ip.src), ipBytes(ip.dst), v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, out.subarray(icmpAt)), icmpAt + 2);
  return out;
}

/**
 * The answer kube-proxy's REJECT gives a frame, as bpf/lib/reject.h builds
 * it (and Linux would): MACs swapped, from the packet's destination to its
 * source, TTL / hop limit 64, no IP options. TCP: a reset (RFC 793: to a
 * segment with ACK, seq = its ack and RST; else seq 0, RST|ACK and ack =
 * seq + payload + SYN + FIN; IPv4 ID 0 with DF; window 0). UDP and SCTP:
 * ICMP port unreachable (TOS 0xc0, ID 0) or ICMPv6 port unreachable quoting
 * the packet (548 / 1232 bytes at most). Throws for a reset (never answered)
 * and other protocols.
 */
export function rejectAnswer(original: Uint8Array): Buffer {
  const p = parseFrame(original);
  const ip = p.ip ?? p.ip6;
  if (ip === undefined) throw new Error('rejectAnswer: not an IP frame');
  const v6 = p.ip6 !== undefined;
  if (p.tcp !== undefined) {
    if (p.tcp.flags & TCP.RST) throw new Error('rejectAnswer: a reset is never answered');
    const l3Length = v6 ? 40 : (p.ip?.ihl ?? 5) * 4;
    const hdrs = l3Length + ((original[ETH_HLEN + l3Length + 12] as number) >> 4) * 4;
    const ipLength = v6 ? 40 + (p.ip6?.payloadLength ?? 0) : (p.ip?.totalLength ?? 0);
    const payload = Math.max(0, ipLength - hdrs);
    const hasAck = (p.tcp.flags & TCP.ACK) !== 0;
    const syn = p.tcp.flags & TCP.SYN ? 1 : 0;
    const fin = p.tcp.flags & TCP.FIN ? 1 : 0;
    return frame({
      srcMac: p.eth.dst,
      dstMac: p.eth.src,
      src: ip.dst,
      dst: ip.src,
      proto: 'TCP',
      ...(v6 ? {} : { id: 0, df: true }),
      sport: p.tcp.dport,
      dport: p.tcp.sport,
      seq: hasAck ? p.tcp.ack : 0,
      ack: hasAck ? 0 : (p.tcp.seq + payload + syn + fin) >>> 0,
      tcpFlags: hasAck ? TCP.RST : TCP.RST | TCP.ACK,
      window: 0,
    });
  }
  if (p.udp === undefined && p.sctp === undefined) throw new Error('rejectAnswer: not TCP, UDP or SCTP');
  const spec = icmpErrorSpec(original, v6 ? { type: ICMP6.DEST_UNREACH, code: ICMP6.PORT_UNREACH } : { type: ICMP.DEST_UNREACH, code: ICMP.PORT_UNREACH });
  return frame(v6 ? spec : { ...spec, tos: 0xc0, id: 0 });
}

// ---------------------------------------------------------------------------
// Reading.

export interface ParsedIPv4 {
  readonly ihl: number;
  readonly tos: number;
  readonly totalLength: number;
  readonly id: number;
  readonly df: boolean;
  readonly mf: boolean;
  readonly fragOffset: number;
  readonly ttl: number;
  readonly proto: number;
  readonly checksum: string;
  readonly src: string;
  readonly dst: string;
  readonly options: string;
}

export interface ParsedIPv6 {
  readonly trafficClass: number;
  readonly flowLabel: number;
  readonly payloadLength: number;
  /** The IPv6 header's next header field. */
  readonly nextHeader: number;
  readonly hopLimit: number;
  readonly src: string;
  readonly dst: string;
  /** The upper-layer protocol after the extension headers parsed here (Fragment only). */
  readonly proto: number;
  readonly frag?: { readonly offset: number; readonly more: boolean; readonly id: number };
}

export interface ParsedTcp {
  readonly sport: number;
  readonly dport: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window: number;
  readonly checksum: string;
}

export interface ParsedUdp {
  readonly sport: number;
  readonly dport: number;
  readonly length: number;
  readonly checksum: string;
}

export interface ParsedSctp {
  readonly sport: number;
  readonly dport: number;
  readonly vtag: number;
  /** The CRC32c as a number (read least significant byte first). */
  readonly checksum: string;
  /** Chunk type, flags and length of each chunk, as far as the bytes go. */
  readonly chunks: ReadonlyArray<{ readonly type: number; readonly flags: number; readonly length: number }>;
}

export interface ParsedIcmp {
  readonly type: number;
  readonly code: number;
  readonly checksum: string;
  /** The word after the checksum. */
  readonly rest: number;
  /** For error types: the quoted packet, parsed (usually truncated). */
  readonly inner?: ParsedPacket;
}

/** An IP packet's fields (an ICMP error's quoted packet, or a frame's). */
export interface ParsedPacket {
  readonly ip?: ParsedIPv4;
  readonly ip6?: ParsedIPv6;
  readonly tcp?: ParsedTcp;
  readonly udp?: ParsedUdp;
  readonly sctp?: ParsedSctp;
  /** ICMP (over IPv4) or ICMPv6 (over IPv6). */
  readonly icmp?: ParsedIcmp;
  /** Hex of what follows the last header parsed. */
  readonly rest: string;
  /** Set when the bytes end inside a header: which one. */
  readonly truncatedIn?: 'eth' | 'ip' | 'ip6' | 'tcp' | 'udp' | 'sctp' | 'icmp';
}

export interface ParsedFrame extends ParsedPacket {
  readonly eth: { readonly dst: string; readonly src: string; readonly type: number };
}

function isIcmpError(v6: boolean, type: number): boolean {
  return v6
    ? type === ICMP6.DEST_UNREACH || type === ICMP6.PACKET_TOO_BIG || type === ICMP6.TIME_EXCEEDED || type === 4
    : type === ICMP.DEST_UNREACH || type === ICMP.TIME_EXCEEDED || type === 12 || type === 5;
}

/** Parses the L4 header at `l4` (TCP/UDP/SCTP/ICMP only when `first`, i.e. not a later fragment). */
function parseL4(b: Buffer, l4: number, proto: number, v6: boolean, first: boolean): Omit<ParsedPacket, 'ip' | 'ip6'> {
  if (!first) return { rest: b.subarray(l4).toString('hex') };
  if (proto === IPPROTO_TCP) {
    if (b.length < l4 + 20) return { rest: b.subarray(l4).toString('hex'), truncatedIn: 'tcp' };
    const dataOff = ((b[l4 + 12] as number) >> 4) * 4;
    const tcp = {
      sport: b.readUInt16BE(l4),
      dport: b.readUInt16BE(l4 + 2),
      seq: b.readUInt32BE(l4 + 4),
      ack: b.readUInt32BE(l4 + 8),
      flags: b[l4 + 13] as number,
      window: b.readUInt16BE(l4 + 14),
      checksum: hex16(b.readUInt16BE(l4 + 16)),
    };
    return { tcp, rest: b.subarray(l4 + dataOff).toString('hex') };
  }
  if (proto === IPPROTO_UDP) {
    if (b.length < l4 + 8) return { rest: b.subarray(l4).toString('hex'), truncatedIn: 'udp' };
    const udp = { sport: b.readUInt16BE(l4), dport: b.readUInt16BE(l4 + 2), length: b.readUInt16BE(l4 + 4), checksum: hex16(b.readUInt16BE(l4 + 6)) };
    return { udp, rest: b.subarray(l4 + 8).toString('hex') };
  }
  if (proto === IPPROTO_SCTP) {
    if (b.length < l4 + 12) return { rest: b.subarray(l4).toString('hex'), truncatedIn: 'sctp' };
    const chunks: { type: number; flags: number; length: number }[] = [];
    let at = l4 + 12;
    while (at + 4 <= b.length) {
      const length = b.readUInt16BE(at + 2);
      chunks.push({ type: b[at] as number, flags: b[at + 1] as number, length });
      if (length < 4) break;
      at += (length + 3) & ~3;
    }
    const sctp = { sport: b.readUInt16BE(l4), dport: b.readUInt16BE(l4 + 2), vtag: b.readUInt32BE(l4 + 4), checksum: hex32(b.readUInt32LE(l4 + 8)), chunks };
    return { sctp, rest: b.subarray(Math.min(at, b.length)).toString('hex') };
  }
  if (proto === (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP)) {
    if (b.length < l4 + 8) return { rest: b.subarray(l4).toString('hex'), truncatedIn: 'icmp' };
    const type = b[l4] as number;
    const head = { type, code: b[l4 + 1] as number, checksum: hex16(b.readUInt16BE(l4 + 2)), rest: b.readUInt32BE(l4 + 4) };
    if (isIcmpError(v6, type)) return { icmp: { ...head, inner: parseIpPacket(b.subarray(l4 + 8)) }, rest: '' };
    return { icmp: head, rest: b.subarray(l4 + 8).toString('hex') };
  }
  return { rest: b.subarray(l4).toString('hex') };
}

/** Fields of an IP packet (version from its first nibble). */
export function parseIpPacket(p: Uint8Array): ParsedPacket {
  const b = Buffer.from(p);
  return b.length > 0 && (b[0] as number) >> 4 === 6 ? parse6(b) : parse4(b);
}

function parse6(b: Buffer): ParsedPacket {
  if (b.length < 40) return { rest: b.toString('hex'), truncatedIn: 'ip6' };
  const w0 = b.readUInt32BE(0);
  const nextHeader = b[6] as number;
  const base = {
    trafficClass: (w0 >>> 20) & 0xff,
    flowLabel: w0 & 0xfffff,
    payloadLength: b.readUInt16BE(4),
    nextHeader,
    hopLimit: b[7] as number,
    src: formatIPv6(b.subarray(8, 24)),
    dst: formatIPv6(b.subarray(24, 40)),
  };
  if (nextHeader === IPPROTO_FRAGMENT) {
    if (b.length < 48) return { ip6: { ...base, proto: nextHeader }, rest: b.subarray(40).toString('hex'), truncatedIn: 'ip6' };
    const fo = b.readUInt16BE(42);
    const frag = { offset: fo >> 3, more: (fo & 1) === 1, id: b.readUInt32BE(44) };
    const ip6 = { ...base, proto: b[40] as number, frag };
    return { ip6, ...parseL4(b, 48, ip6.proto, true, frag.offset === 0) };
  }
  const ip6 = { ...base, proto: nextHeader };
  return { ip6, ...parseL4(b, 40, nextHeader, true, true) };
}

function parse4(b: Buffer): ParsedPacket {
  if (b.length < 20) return { rest: b.toString('hex'), truncatedIn: 'ip' };
  const ihl = ((b[0] as number) & 0x0f) * 4;
  const frag = b.readUInt16BE(6);
  const ip = {
    ihl: ihl / 4,
    tos: b[1] as number,
    totalLength: b.readUInt16BE(2),
    id: b.readUInt16BE(4),
    df: (frag & 0x4000) !== 0,
    mf: (frag & 0x2000) !== 0,
    fragOffset: frag & 0x1fff,
    ttl: b[8] as number,
    proto: b[9] as number,
    checksum: hex16(b.readUInt16BE(10)),
    src: formatIPv4(b, 12),
    dst: formatIPv4(b, 16),
    options: b.subarray(20, ihl).toString('hex'),
  };
  if (b.length < ihl) return { ip, rest: '', truncatedIn: 'ip' };
  return { ip, ...parseL4(b, ihl, ip.proto, false, ip.fragOffset === 0) };
}

/** Fields of a frame, for diffs that name the field that differs. Parses L4 headers only in first fragments. */
export function parseFrame(f: Uint8Array): ParsedFrame {
  const b = Buffer.from(f);
  if (b.length < ETH_HLEN) return { eth: { dst: '', src: '', type: 0 }, rest: b.toString('hex'), truncatedIn: 'eth' };
  const eth = { dst: formatMac(b, 0), src: formatMac(b, 6), type: b.readUInt16BE(12) };
  const body = b.subarray(ETH_HLEN);
  if (eth.type === ETH_P_IP) {
    return { eth, ...parse4(body) };
  }
  if (eth.type === ETH_P_IPV6) {
    return { eth, ...parse6(body) };
  }
  return { eth, rest: body.toString('hex') };
}

export interface ChecksumCheck {
  /** The IPv4 header sums to 0xffff; 'n/a' for IPv6 (no header checksum). */
  readonly ip: boolean | 'n/a';
  /**
   * The L4 checksum verified from scratch: TCP/UDP/ICMPv6 with their
   * pseudo-header, ICMPv4 over the message, SCTP's CRC32c. 'none' for UDP
   * checksum 0; 'n/a' when it cannot be checked (a fragment, a truncated
   * segment, another protocol).
   */
  readonly l4: boolean | 'none' | 'n/a';
  /**
   * ICMP errors only: the quoted packet's checks. Its IPv4 header checksum
   * when the header is quoted whole; its L4 checksum only when the whole
   * datagram is quoted (else 'n/a': compare with an expected frame instead).
   */
  readonly inner?: ChecksumCheck;
}

/** Checks an IP packet's checksums; `quoted` allows it to be cut short (an ICMP error's inner packet). */
function verifyPacket(pkt: Buffer, v6: boolean, quoted: boolean): ChecksumCheck {
  const p = v6 ? parse6(pkt) : parse4(pkt);
  let ip: boolean | 'n/a';
  let src: Buffer;
  let dst: Buffer;
  let l4At: number;
  let l4End: number;
  let proto: number;
  let whole: boolean;
  if (p.ip6 !== undefined) {
    ip = 'n/a';
    src = ipv6(p.ip6.src);
    dst = ipv6(p.ip6.dst);
    l4At = p.ip6.frag !== undefined ? 48 : 40;
    l4End = 40 + p.ip6.payloadLength;
    proto = p.ip6.proto;
    whole = p.ip6.frag === undefined && pkt.length >= l4End;
  } else if (p.ip !== undefined) {
    const ihl = p.ip.ihl * 4;
    ip = pkt.length >= ihl ? onesComplementSum(pkt.subarray(0, ihl)) === 0xffff : false;
    src = ipv4(p.ip.src);
    dst = ipv4(p.ip.dst);
    l4At = ihl;
    l4End = p.ip.totalLength;
    proto = p.ip.proto;
    whole = !p.ip.mf && p.ip.fragOffset === 0 && pkt.length >= l4End;
  } else {
    throw new Error(`verifyChecksums: not an IP packet${quoted ? ' (quoted)' : ''}: ${pkt.subarray(0, 40).toString('hex')}`);
  }
  const icmpProto = p.ip6 !== undefined ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
  const known = proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP || proto === icmpProto;
  if (!whole || !known || l4End < l4At) return { ip, l4: 'n/a' };
  const seg = pkt.subarray(l4At, l4End);
  let l4: boolean | 'none';
  if (proto === IPPROTO_SCTP) l4 = seg.length >= 12 && seg.readUInt32LE(8) === sctpChecksum(seg);
  else if (proto === IPPROTO_UDP && seg.length >= 8 && seg.readUInt16BE(6) === 0) l4 = 'none';
  else if (proto === IPPROTO_ICMP) l4 = onesComplementSum(seg) === 0xffff;
  else l4 = onesComplementSum(Buffer.concat([pseudoHeader(src, dst, proto, seg.length), seg])) === 0xffff;
  if (p.icmp?.inner !== undefined && seg.length >= 8) return { ip, l4, inner: verifyPacket(seg.subarray(8), p.ip6 !== undefined, true) };
  return { ip, l4 };
}

/** Verifies a frame's checksums from scratch (and those of the packet an ICMP error quotes). */
export function verifyChecksums(f: Uint8Array): ChecksumCheck {
  const p = parseFrame(f);
  if (p.ip === undefined && p.ip6 === undefined) throw new Error('verifyChecksums: not an IPv4 or IPv6 frame');
  return verifyPacket(Buffer.from(f.subarray(ETH_HLEN)), p.ip6 !== undefined, false);
}

/** The text form of an address of either family from bytes (4 or 16). */
export function formatAddress(b: Uint8Array): string {
  if (b.length === 16) return formatIPv6(b);
  if (b.length === 4) return formatIPv4(b, 0);
  throw new RangeError(`an address is 4 or 16 bytes, got ${b.length}`);
}

/** True for text that is a valid address of either family. */
export function isAddress(s: string): boolean {
  return s.includes(':') ? parseIPv6(s, 'reject') !== null : parseIPv4(s, 'reject') >= 0;
}
