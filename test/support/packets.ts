// Packets for BPF fixtures, built and read in TypeScript: Ethernet + IPv4
// (options, fragment fields, any protocol) + TCP or UDP frames from a flat
// description, truncation and fragmenting of a built frame, a parser that
// turns a frame back into fields (for readable diffs), and the Internet
// checksum (RFC 1071, with the TCP/UDP pseudo-header). The checksum here is
// written from the RFC, independent of the kernel's helpers and of the BPF
// program's incremental updates, so a frame the program rewrote can be
// checked against one computed from scratch.

export const ETH_HLEN = 14;
export const ETH_P_IP = 0x0800;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_GRE = 47;

/** TCP flag bits (byte 13 of the header). */
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/**
 * One frame. The builder fills everything it is not told: lengths and
 * checksums are computed (unless overridden), MACs and other fields have
 * fixed defaults. A frame rewritten by NAT is described by spreading the
 * original and changing addresses and ports: `{ ...syn, dst: BACKEND, dport: 8080 }`.
 */
export interface FrameSpec {
  readonly srcMac?: string;
  readonly dstMac?: string;
  readonly etherType?: number;

  readonly src: string;
  readonly dst: string;
  /** 'TCP' / 'UDP' build that header; a number only sets the IP protocol (give the bytes in l4). */
  readonly proto: 'TCP' | 'UDP' | number;
  readonly ttl?: number;
  readonly id?: number;
  readonly tos?: number;
  readonly df?: boolean;
  readonly mf?: boolean;
  /** Fragment offset in 8-byte units. */
  readonly fragOffset?: number;
  /** IP options, padded by the caller to a multiple of 4 bytes (ihl = 5 + length / 4). */
  readonly ipOptions?: Uint8Array;

  readonly sport?: number;
  readonly dport?: number;
  readonly tcpFlags?: number;
  readonly seq?: number;
  readonly ack?: number;
  readonly window?: number;
  /** 'none' sends UDP checksum 0 ("no checksum", RFC 768). Default 'compute'. */
  readonly udpChecksum?: 'compute' | 'none';

  /** Bytes after the TCP/UDP header (or after the IP header when l4 is given). */
  readonly payload?: Uint8Array;
  /** Raw bytes after the IP header instead of a built TCP/UDP header (other protocols, non-first fragments). */
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

function formatIPv4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** Checksums read as "0x1c46", so a diff shows them as they appear in a capture. */
function hex16(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`;
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

/** The TCP/UDP pseudo-header (RFC 793 / 768): source, destination, zero, protocol, L4 length. */
export function pseudoHeader(src: Uint8Array, dst: Uint8Array, proto: number, l4Length: number): Buffer {
  const b = Buffer.alloc(12);
  b.set(src, 0);
  b.set(dst, 4);
  b[9] = proto;
  b.writeUInt16BE(l4Length, 10);
  return b;
}

/** The checksum a TCP or UDP segment should carry (its checksum field is taken as zero). UDP's 0 is sent as 0xffff. */
export function l4Checksum(src: Uint8Array, dst: Uint8Array, proto: number, segment: Uint8Array): number {
  const zeroed = Buffer.from(segment);
  zeroed.writeUInt16BE(0, proto === IPPROTO_TCP ? 16 : 6);
  const c = internetChecksum(pseudoHeader(src, dst, proto, segment.length), zeroed);
  return proto === IPPROTO_UDP && c === 0 ? 0xffff : c;
}

// ---------------------------------------------------------------------------
// Building.

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

function protoNumber(p: FrameSpec['proto']): number {
  return p === 'TCP' ? IPPROTO_TCP : p === 'UDP' ? IPPROTO_UDP : p;
}

/** The L4 bytes of a frame: a built TCP/UDP header and payload with its checksum, or spec.l4 + payload. */
function l4Bytes(s: FrameSpec): Buffer {
  const payload = Buffer.from(s.payload ?? []);
  if (s.l4 !== undefined) return Buffer.concat([s.l4, payload]);
  const proto = protoNumber(s.proto);
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return payload;
  const seg = Buffer.concat([proto === IPPROTO_TCP ? tcpHeader(s) : udpHeader(s, payload.length), payload]);
  if (proto === IPPROTO_UDP && s.udpChecksum === 'none') return seg;
  seg.writeUInt16BE(l4Checksum(ipv4(s.src), ipv4(s.dst), proto, seg), proto === IPPROTO_TCP ? 16 : 6);
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

/** Ethernet + IPv4 + (TCP | UDP | raw bytes), lengths and checksums computed. */
export function frame(s: FrameSpec): Buffer {
  const eth = Buffer.alloc(ETH_HLEN);
  mac(s.dstMac ?? '02:00:00:00:00:02').copy(eth, 0);
  mac(s.srcMac ?? '02:00:00:00:00:01').copy(eth, 6);
  eth.writeUInt16BE(s.etherType ?? ETH_P_IP, 12);
  const l4 = l4Bytes(s);
  return Buffer.concat([eth, ipHeader(s, l4.length), l4]);
}

/** The first `length` bytes of a frame, as a capture cut short would hold (length fields still claim the whole). */
export function truncate(f: Uint8Array, length: number): Buffer {
  return Buffer.from(f.subarray(0, length));
}

/**
 * The first fragment of a built frame: its L4 data cut to `l4Length` bytes
 * (a multiple of 8), MF set, total length and header checksum fixed. The
 * TCP/UDP checksum stays that of the whole datagram, as a sender computes it.
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

// ---------------------------------------------------------------------------
// Reading.

export interface ParsedFrame {
  readonly eth: { readonly dst: string; readonly src: string; readonly type: number };
  readonly ip?: {
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
  };
  readonly tcp?: {
    readonly sport: number;
    readonly dport: number;
    readonly seq: number;
    readonly ack: number;
    readonly flags: number;
    readonly window: number;
    readonly checksum: string;
  };
  readonly udp?: { readonly sport: number; readonly dport: number; readonly length: number; readonly checksum: string };
  /** Hex of what follows the last header parsed. */
  readonly rest: string;
  /** Set when the frame ends inside a header: which one. */
  readonly truncatedIn?: 'eth' | 'ip' | 'tcp' | 'udp';
}

/** Fields of a frame, for diffs that name the field that differs. Parses TCP/UDP only in first fragments. */
export function parseFrame(f: Uint8Array): ParsedFrame {
  const b = Buffer.from(f);
  if (b.length < ETH_HLEN) return { eth: { dst: '', src: '', type: 0 }, rest: b.toString('hex'), truncatedIn: 'eth' };
  const eth = { dst: formatMac(b, 0), src: formatMac(b, 6), type: b.readUInt16BE(12) };
  if (eth.type !== ETH_P_IP) return { eth, rest: b.subarray(ETH_HLEN).toString('hex') };
  if (b.length < ETH_HLEN + 20) return { eth, rest: b.subarray(ETH_HLEN).toString('hex'), truncatedIn: 'ip' };
  const o = ETH_HLEN;
  const ihl = ((b[o] as number) & 0x0f) * 4;
  const frag = b.readUInt16BE(o + 6);
  const ip = {
    ihl: ihl / 4,
    tos: b[o + 1] as number,
    totalLength: b.readUInt16BE(o + 2),
    id: b.readUInt16BE(o + 4),
    df: (frag & 0x4000) !== 0,
    mf: (frag & 0x2000) !== 0,
    fragOffset: frag & 0x1fff,
    ttl: b[o + 8] as number,
    proto: b[o + 9] as number,
    checksum: hex16(b.readUInt16BE(o + 10)),
    src: formatIPv4(b, o + 12),
    dst: formatIPv4(b, o + 16),
    options: b.subarray(o + 20, o + ihl).toString('hex'),
  };
  const l4 = o + ihl;
  if (b.length < l4) return { eth, ip, rest: '', truncatedIn: 'ip' };
  if (ip.fragOffset === 0 && ip.proto === IPPROTO_TCP) {
    if (b.length < l4 + 20) return { eth, ip, rest: b.subarray(l4).toString('hex'), truncatedIn: 'tcp' };
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
    return { eth, ip, tcp, rest: b.subarray(l4 + dataOff).toString('hex') };
  }
  if (ip.fragOffset === 0 && ip.proto === IPPROTO_UDP) {
    if (b.length < l4 + 8) return { eth, ip, rest: b.subarray(l4).toString('hex'), truncatedIn: 'udp' };
    const udp = { sport: b.readUInt16BE(l4), dport: b.readUInt16BE(l4 + 2), length: b.readUInt16BE(l4 + 4), checksum: hex16(b.readUInt16BE(l4 + 6)) };
    return { eth, ip, udp, rest: b.subarray(l4 + 8).toString('hex') };
  }
  return { eth, ip, rest: b.subarray(l4).toString('hex') };
}

export interface ChecksumCheck {
  /** The IPv4 header sums to 0xffff. */
  readonly ip: boolean;
  /** The TCP/UDP segment with its pseudo-header sums to 0xffff; 'none' for UDP checksum 0; 'n/a' when it cannot be checked (a fragment, a truncated segment, another protocol). */
  readonly l4: boolean | 'none' | 'n/a';
}

/** Verifies a frame's checksums from scratch. */
export function verifyChecksums(f: Uint8Array): ChecksumCheck {
  const p = parseFrame(f);
  if (p.ip === undefined) throw new Error('verifyChecksums: not an IPv4 frame');
  const o = ETH_HLEN;
  const ihl = p.ip.ihl * 4;
  const ip = onesComplementSum(f.subarray(o, o + ihl)) === 0xffff;
  const l4Length = p.ip.totalLength - ihl;
  const whole = !p.ip.mf && p.ip.fragOffset === 0 && f.length >= o + p.ip.totalLength;
  if (!whole || (p.ip.proto !== IPPROTO_TCP && p.ip.proto !== IPPROTO_UDP)) return { ip, l4: 'n/a' };
  const seg = f.subarray(o + ihl, o + ihl + l4Length);
  if (p.udp?.checksum === '0x0000') return { ip, l4: 'none' };
  const sum = onesComplementSum(Buffer.concat([pseudoHeader(ipv4(p.ip.src), ipv4(p.ip.dst), p.ip.proto, l4Length), seg]));
  return { ip, l4: sum === 0xffff };
}
