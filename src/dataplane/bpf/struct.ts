// The machinery under every map layout (layout.ts for layout 2,
// layout-v1.ts for the frozen layout 1): a C struct written down once as a
// table of fields (name, offset, size, kind), accessors specialised per
// field, the Codec interface between plain data and bytes, batch buffers
// (records back to back, as BPF_MAP_*_BATCH wants them), and the scalar
// helpers (protocol numbers, per-CPU counters).
//
// Byte order: fields of kind be16/be32/be32[] are network order; every other
// field is host order, which we only support little-endian (x86_64, arm64):
// loading this module on a big-endian host throws.

import { endianness } from 'node:os';
import type { Protocol } from '../../model/types.ts';
import { SwitchyardError } from '../../util/errors.ts';

if (endianness() !== 'LE') {
  throw new SwitchyardError(
    'ERR_SY_UNSUPPORTED_HOST',
    `struct.ts: host byte order is ${endianness()}; sy_maps.h host-order fields are encoded little-endian only`,
  );
}

/** A layout error: names the struct and field that could not be encoded or decoded. */
export class LayoutError extends SwitchyardError {
  declare readonly code: 'ERR_SY_LAYOUT';
  readonly struct: string;
  readonly field: string;
  constructor(struct: string, field: string, message: string) {
    super('ERR_SY_LAYOUT', `${struct}.${field}: ${message}`);
    this.struct = struct;
    this.field = field;
  }
}

// ---------------------------------------------------------------------------
// Field tables.

/**
 * C type of a field: u8/u16/u32/u64 = __u8..__u64 (host order), be16/be32 =
 * __be16/__be32, be32[] = __be32 array (an IPv6 address, network order),
 * u8[] = __u8 array (explicit padding). 'hole' is padding the compiler
 * inserts for alignment: no member in C or BTF, but it is part of the
 * key/value bytes, so the encoders zero it. Array lengths are in bytes.
 */
export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'be32' | 'be32[]' | 'u8[]' | 'hole';

type ArrayKind = 'be32[]' | 'u8[]' | 'hole';
const KIND_SIZE: Record<Exclude<FieldKind, ArrayKind>, number> = { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, be32: 4 };

export interface FieldSpec {
  readonly name: string;
  /** Bytes from the start of the struct. */
  readonly offset: number;
  readonly size: number;
  readonly kind: FieldKind;
}

/** A field plus its reader and writer, specialised at load time for its kind and offset. */
export interface Field extends FieldSpec {
  /** Writes an integer field (not u64, not arrays). */
  put(b: Buffer, base: number, v: number): void;
  get(b: Buffer, base: number): number;
  /** u64 fields. */
  putBig(b: Buffer, base: number, v: bigint): void;
  getBig(b: Buffer, base: number): bigint;
  /** be32[] fields: exactly `size` bytes, network order. */
  putBytes(b: Buffer, base: number, v: Uint8Array): void;
  getBytes(b: Buffer, base: number): Uint8Array;
}

export interface StructSpec<N extends string = string> {
  /** The C name: "sy_svc4_key" for struct sy_svc4_key, or the scalar type ("__u32"). */
  readonly name: string;
  /** 'struct' is checked member by member against BTF; 'scalar' by size only. */
  readonly type: 'struct' | 'scalar';
  readonly size: number;
  readonly fields: readonly FieldSpec[];
  /** The same fields by name, with accessors. */
  readonly f: { readonly [K in N]: Field };
}

export type FieldDef = readonly [name: string, offset: number, kind: FieldKind, length?: number];

function wrongKind(struct: string, f: FieldSpec, what: string): never {
  throw new LayoutError(struct, f.name, `is ${f.kind}, cannot ${what}`);
}

const MAX: Partial<Record<FieldKind, number>> = { u8: 0xff, u16: 0xffff, u32: 0xffffffff, be16: 0xffff, be32: 0xffffffff };

function accessor(struct: string, spec: FieldSpec): Field {
  const o = spec.offset;
  const max = MAX[spec.kind] ?? 0;
  // Byte stores into the Buffer (a Uint8Array keeps the low 8 bits of what
  // is stored), with our own range check that names the field; about 3x
  // faster than Buffer's write* methods on the 110k-record batches.
  const check = (v: number): void => {
    if (!(v >= 0 && v <= max && Math.floor(v) === v)) throw new LayoutError(struct, spec.name, `${v} does not fit ${spec.kind}`);
  };
  let put: Field['put'] = () => wrongKind(struct, spec, 'put a number');
  let get: Field['get'] = () => wrongKind(struct, spec, 'get a number');
  let putBig: Field['putBig'] = () => wrongKind(struct, spec, 'put a bigint');
  let getBig: Field['getBig'] = () => wrongKind(struct, spec, 'get a bigint');
  let putBytes: Field['putBytes'] = () => wrongKind(struct, spec, 'put bytes');
  let getBytes: Field['getBytes'] = () => wrongKind(struct, spec, 'get bytes');
  switch (spec.kind) {
    case 'u8':
      put = (b, base, v) => {
        check(v);
        b[base + o] = v;
      };
      get = (b, base) => b.readUInt8(base + o);
      break;
    case 'u16':
      put = (b, base, v) => {
        check(v);
        b[base + o] = v;
        b[base + o + 1] = v >>> 8;
      };
      get = (b, base) => b.readUInt16LE(base + o);
      break;
    case 'u32':
      put = (b, base, v) => {
        check(v);
        b[base + o] = v;
        b[base + o + 1] = v >>> 8;
        b[base + o + 2] = v >>> 16;
        b[base + o + 3] = v >>> 24;
      };
      get = (b, base) => b.readUInt32LE(base + o);
      break;
    case 'be16':
      put = (b, base, v) => {
        check(v);
        b[base + o] = v >>> 8;
        b[base + o + 1] = v;
      };
      get = (b, base) => b.readUInt16BE(base + o);
      break;
    case 'be32':
      put = (b, base, v) => {
        check(v);
        b[base + o] = v >>> 24;
        b[base + o + 1] = v >>> 16;
        b[base + o + 2] = v >>> 8;
        b[base + o + 3] = v;
      };
      get = (b, base) => b.readUInt32BE(base + o);
      break;
    case 'u64':
      putBig = (b, base, v) => {
        if (v < 0n || v > 0xffffffffffffffffn) throw new LayoutError(struct, spec.name, `${v} does not fit u64`);
        b.writeBigUInt64LE(v, base + o);
      };
      getBig = (b, base) => b.readBigUInt64LE(base + o);
      break;
    case 'be32[]':
      putBytes = (b, base, v) => {
        if (v.length !== spec.size) throw new LayoutError(struct, spec.name, `${v.length} bytes do not fit ${spec.size}`);
        b.set(v, base + o);
      };
      getBytes = (b, base) => Uint8Array.prototype.slice.call(b, base + o, base + o + spec.size);
      break;
    case 'u8[]':
    case 'hole':
      break; // padding: zeroed by the encoders, ignored by the decoders
  }
  return { ...spec, put, get, putBig, getBig, putBytes, getBytes };
}

/** Declares a struct; checks the table covers every byte exactly once (explicit padding, no holes). */
export function struct<const D extends readonly FieldDef[]>(
  name: string,
  size: number,
  defs: D,
  type: 'struct' | 'scalar' = 'struct',
): StructSpec<D[number][0]> {
  const fields: FieldSpec[] = defs.map(([fname, offset, kind, length]) => ({
    name: fname,
    offset,
    kind,
    size: kind === 'u8[]' || kind === 'hole' || kind === 'be32[]' ? (length ?? 0) : KIND_SIZE[kind],
  }));
  let at = 0;
  for (const fs of fields) {
    if (fs.offset !== at) throw new LayoutError(name, fs.name, `offset ${fs.offset}, expected ${at} (hole or overlap)`);
    if (fs.size <= 0) throw new LayoutError(name, fs.name, 'empty field');
    if (fs.kind === 'be32[]' && fs.size % 4 !== 0) throw new LayoutError(name, fs.name, `be32[] of ${fs.size} bytes`);
    at += fs.size;
  }
  if (at !== size) throw new LayoutError(name, '(size)', `fields cover ${at} bytes, struct is ${size}`);
  const f = Object.fromEntries(fields.map((fs) => [fs.name, accessor(name, fs)])) as { [K in D[number][0]]: Field };
  return { name, type, size, fields, f };
}

/** Plain __u32 keys (backend id, array index). */
export const U32 = struct('__u32', 4, [['value', 0, 'u32']], 'scalar');
/** Plain __u64 values (per-CPU counters). */
export const U64 = struct('__u64', 8, [['value', 0, 'u64']], 'scalar');

// ---------------------------------------------------------------------------
// Codecs between plain data and bytes. encodeInto() writes every field of
// the struct at `base`, padding included, so it can fill a reused or
// unzeroed batch buffer.

export interface Codec<T> {
  readonly spec: StructSpec;
  encodeInto(v: T, b: Buffer, base: number): void;
  decode(b: Buffer, base?: number): T;
}

/** Zeroes every padding field (u8[] and holes) of one record. */
export function zeroPadding(spec: StructSpec, b: Buffer, base: number): void {
  for (const f of spec.fields) if (f.kind === 'u8[]' || f.kind === 'hole') b.fill(0, base + f.offset, base + f.offset + f.size);
}

const U = U32.f;
/** Backend ids (the backend maps' key) and array indexes. */
export const u32Codec: Codec<number> = {
  spec: U32,
  encodeInto(v, b, base) {
    U.value.put(b, base, v);
  },
  decode(b, base = 0) {
    return U.value.get(b, base);
  },
};

/** One __u64 (a per-CPU array value is one of these per CPU: see decodePerCpuCounters). */
export const u64Codec: Codec<bigint> = {
  spec: U64,
  encodeInto(v, b, base) {
    U64.f.value.putBig(b, base, v);
  },
  decode(b, base = 0) {
    return U64.f.value.getBig(b, base);
  },
};

export function encode<T>(codec: Codec<T>, v: T): Buffer {
  const b = Buffer.allocUnsafe(codec.spec.size);
  codec.encodeInto(v, b, 0);
  return b;
}

export function encodeMany<T>(codec: Codec<T>, items: readonly T[]): Buffer {
  const size = codec.spec.size;
  const b = Buffer.allocUnsafe(size * items.length);
  for (let i = 0; i < items.length; i++) codec.encodeInto(items[i] as T, b, i * size);
  return b;
}

export function decodeMany<T>(codec: Codec<T>, b: Buffer): T[] {
  const size = codec.spec.size;
  if (b.length % size !== 0) throw new LayoutError(codec.spec.name, '(size)', `batch of ${b.length} bytes is not a multiple of ${size}`);
  const out: T[] = [];
  for (let base = 0; base < b.length; base += size) out.push(codec.decode(b, base));
  return out;
}

/**
 * A per-CPU value as the kernel returns it from user space: one slot per
 * possible CPU, each rounded up to 8 bytes. Returns one counter per CPU.
 */
export function decodePerCpuCounters(b: Buffer, cpus: number): bigint[] {
  const stride = Math.ceil(U64.size / 8) * 8;
  if (b.length !== stride * cpus) throw new LayoutError(U64.name, 'value', `per-CPU value is ${b.length} bytes, expected ${stride * cpus} for ${cpus} CPUs`);
  const out: bigint[] = [];
  for (let i = 0; i < cpus; i++) out.push(U64.f.value.getBig(b, i * stride));
  return out;
}

export function sumCounters(perCpu: readonly bigint[]): bigint {
  let s = 0n;
  for (const v of perCpu) s += v;
  return s;
}

// ---------------------------------------------------------------------------
// Scalars: protocols (addresses: src/util/ip.ts).

const PROTO_NUMBER: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

export function protoNumber(p: Protocol): number {
  const n = PROTO_NUMBER[p];
  if (n === undefined) throw new LayoutError('(protocol)', 'proto', `unknown protocol ${String(p)}`);
  return n;
}

export function protoName(n: number, struct = '(protocol)'): Protocol {
  if (n === 6) return 'TCP';
  if (n === 17) return 'UDP';
  if (n === 132) return 'SCTP';
  throw new LayoutError(struct, 'proto', `unknown IP protocol number ${n}`);
}
