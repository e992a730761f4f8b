// Netlink attributes (uapi linux/netlink.h, struct nlattr): type-length-value
// records, each padded to 4 bytes, nested by putting records inside one.
//
//   struct nlattr { u16 nla_len; u16 nla_type; }   // nla_len counts the 4-byte header, not the padding
//
// The header and integers written with u16/u32/u64 are host byte order
// (little-endian here); be16/be32 are network order, which several families
// use for ports and addresses (IPVS's ports, IPv4 netmask; rtnetlink's
// addresses are byte strings). The top two bits of nla_type are flags:
// NLA_F_NESTED (set by newer kernels on nested attributes they send, and
// required by strict policies) and NLA_F_NET_BYTEORDER; the decoder masks
// them off. Writers do not set NLA_F_NESTED unless asked: IPVS and the
// generic netlink controller parse with the deprecated (flag-less) parser,
// and ipvsadm (through libnl) sends none.

import { NetlinkDecodeError, align4 } from './message.ts';

export const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

/** Builds a run of attributes; nest() for nested ones. */
export class AttrWriter {
  readonly #parts: Buffer[] = [];
  #length = 0;

  #put(type: number, value: Uint8Array): this {
    const len = NLA_HDRLEN + value.length;
    if (len > 0xffff) throw new RangeError(`netlink attribute ${type}: ${value.length} bytes do not fit in nla_len`);
    const b = Buffer.alloc(align4(len));
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(type, 2);
    b.set(value, NLA_HDRLEN);
    this.#parts.push(b);
    this.#length += b.length;
    return this;
  }

  bytes(type: number, value: Uint8Array): this {
    return this.#put(type, value);
  }

  flag(type: number): this {
    return this.#put(type, Buffer.alloc(0));
  }

  u8(type: number, v: number): this {
    return this.#put(type, Buffer.of(checkUint(v, 8, type)));
  }

  u16(type: number, v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(checkUint(v, 16, type));
    return this.#put(type, b);
  }

  u32(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(checkUint(v, 32, type));
    return this.#put(type, b);
  }

  u64(type: number, v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return this.#put(type, b);
  }

  be16(type: number, v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(checkUint(v, 16, type));
    return this.#put(type, b);
  }

  be32(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(checkUint(v, 32, type));
    return this.#put(type, b);
  }

  /** A NUL-terminated string (NLA_NUL_STRING). */
  string(type: number, s: string): this {
    return this.#put(type, Buffer.concat([Buffer.from(s, 'utf8'), Buffer.of(0)]));
  }

  nest(type: number, fill: (w: AttrWriter) => void, opts: { flag?: boolean } = {}): this {
    const inner = new AttrWriter();
    fill(inner);
    return this.#put(opts.flag === true ? type | NLA_F_NESTED : type, inner.toBuffer());
  }

  get length(): number {
    return this.#length;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.#parts, this.#length);
  }
}

function checkUint(v: number, bits: number, type: number): number {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) throw new RangeError(`netlink attribute ${type}: ${v} is not a u${bits}`);
  return v;
}

/**
 * A decoded run of attributes by type (flags masked off; a repeated type
 * keeps every value, get() returns the last, as the kernel's parser does).
 * Typed getters check the length and throw NetlinkDecodeError naming `what`.
 */
export class Attrs {
  readonly what: string;
  readonly #byType = new Map<number, Buffer[]>();

  constructor(what: string, buf: Uint8Array) {
    this.what = what;
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    let off = 0;
    while (off + NLA_HDRLEN <= b.length) {
      const len = b.readUInt16LE(off);
      const type = b.readUInt16LE(off + 2) & NLA_TYPE_MASK;
      if (len < NLA_HDRLEN || off + len > b.length)
        throw new NetlinkDecodeError(`${what}: attribute length ${len} at offset ${off} does not fit in ${b.length} bytes`);
      const list = this.#byType.get(type) ?? [];
      list.push(b.subarray(off + NLA_HDRLEN, off + len));
      this.#byType.set(type, list);
      off += align4(len);
    }
    // A trailing run shorter than a header is padding the kernel never sends; tolerate up to 3 bytes.
    if (b.length - off > 3) throw new NetlinkDecodeError(`${what}: ${b.length - off} stray bytes at offset ${off}`);
  }

  has(type: number): boolean {
    return this.#byType.has(type);
  }

  types(): number[] {
    return [...this.#byType.keys()].sort((a, b) => a - b);
  }

  get(type: number): Buffer | undefined {
    const l = this.#byType.get(type);
    return l?.[l.length - 1];
  }

  all(type: number): Buffer[] {
    return this.#byType.get(type) ?? [];
  }

  #sized(type: number, size: number): Buffer | undefined {
    const v = this.get(type);
    if (v === undefined) return undefined;
    if (v.length < size) throw new NetlinkDecodeError(`${this.what}: attribute ${type} has ${v.length} bytes, expected ${size}`);
    return v;
  }

  u8(type: number): number | undefined {
    return this.#sized(type, 1)?.readUInt8(0);
  }

  u16(type: number): number | undefined {
    return this.#sized(type, 2)?.readUInt16LE(0);
  }

  u32(type: number): number | undefined {
    return this.#sized(type, 4)?.readUInt32LE(0);
  }

  u64(type: number): bigint | undefined {
    return this.#sized(type, 8)?.readBigUInt64LE(0);
  }

  be16(type: number): number | undefined {
    return this.#sized(type, 2)?.readUInt16BE(0);
  }

  be32(type: number): number | undefined {
    return this.#sized(type, 4)?.readUInt32BE(0);
  }

  /** A string up to its first NUL (NLA_STRING or NLA_NUL_STRING). */
  string(type: number): string | undefined {
    const v = this.get(type);
    if (v === undefined) return undefined;
    const nul = v.indexOf(0);
    return v.toString('utf8', 0, nul < 0 ? v.length : nul);
  }

  nested(type: number, what = `${this.what}/${type}`): Attrs | undefined {
    const v = this.get(type);
    return v === undefined ? undefined : new Attrs(what, v);
  }

  /** Like u32() etc., but the attribute must be there. */
  need<T>(type: number, read: (type: number) => T | undefined, name: string): T {
    const v = read.call(this, type);
    if (v === undefined) throw new NetlinkDecodeError(`${this.what}: no ${name} (attribute ${type})`);
    return v;
  }
}
