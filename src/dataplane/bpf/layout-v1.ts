// The frozen layout 1 (bpf/include/sy_maps_v1.h): the maps a daemon built
// from before issue 7 left pinned. Only the migration to layout 2 reads
// them (src/dataplane/bpf/migrate.ts); nothing writes them any more.
// Checked against sy_maps_v1.h's structs by test/unit/bpf-layout-btf.test.ts.
// Do not change: a change here is a change to what old daemons wrote.

import type { Protocol } from '../../model/types.ts';
import { formatIPv4, parseIPv4 } from '../../util/ip.ts';
import { type Codec, LayoutError, protoName, protoNumber, struct, U32, U64, u32Codec, zeroPadding, type StructSpec } from './struct.ts';

export { LayoutError, u32Codec, U32, U64 };
export { type Codec, decodeMany, decodePerCpuCounters, encode, encodeMany, protoName, protoNumber, sumCounters } from './struct.ts';

/** The #defines of sy_maps.h (checked against the header by the BTF test). */
/** Key of sy_svc4_v1 in plain data. */
export interface SvcKey {
  readonly addr: string;
  readonly port: number;
  readonly proto: Protocol;
  readonly gen: 0 | 1;
  readonly slot: number;
}

/** Value of sy_svc4_v1 in plain data. */
export interface SvcValue {
  readonly backendId: number;
  readonly count: number;
  readonly gen: 0 | 1;
  readonly flags: number;
  readonly svcId: number;
}

/** sy_backend in plain data (flags: none defined in layout 1). */
export interface L4Addr {
  readonly addr: string;
  readonly port: number;
  readonly proto: Protocol;
}

export const HEADER_DEFINES = {
  SY_LAYOUT_VERSION: 1,
  SY_SVC_MAX: 262144,
  SY_BACKEND_MAX: 131072,
  SY_CT_MAX: 65536,
  SY_SVC_F_MASQ_ALL: 0x01,
  SY_CT_F_SNAT: 0x01,
  SY_CT_F_HAIRPIN: 0x02,
  SY_STAT_SVC_HIT: 0,
  SY_STAT_CT_NEW: 1,
  SY_STAT_NO_BACKEND: 2,
  SY_STAT_RNAT: 3,
  SY_STAT_SNAT_FAIL: 4,
  SY_STAT_MAX: 8,
} as const;

export const SY_SVC_F_MASQ_ALL = HEADER_DEFINES.SY_SVC_F_MASQ_ALL;
export const SY_CT_F_SNAT = HEADER_DEFINES.SY_CT_F_SNAT;
export const SY_CT_F_HAIRPIN = HEADER_DEFINES.SY_CT_F_HAIRPIN;
/** The largest count a master can hold (sy_svc_value.count and sy_svc_key.slot are __u16). */
export const SY_MAX_SLOTS = 0xffff;

export const SY_SVC_KEY = struct('sy_svc_key', 12, [
  ['addr_be', 0, 'be32'],
  ['port_be', 4, 'be16'],
  ['proto', 6, 'u8'],
  ['gen', 7, 'u8'],
  ['slot', 8, 'u16'],
  ['pad', 10, 'u16'],
]);

export const SY_SVC_VALUE = struct('sy_svc_value', 16, [
  ['backend_id', 0, 'u32'],
  ['count', 4, 'u16'],
  ['gen', 6, 'u8'],
  ['flags', 7, 'u8'],
  ['svc_id', 8, 'u32'],
  ['pad', 12, 'u32'],
]);

export const SY_BACKEND = struct('sy_backend', 8, [
  ['addr_be', 0, 'be32'],
  ['port_be', 4, 'be16'],
  ['proto', 6, 'u8'],
  ['flags', 7, 'u8'],
]);

export const SY_CT_KEY = struct('sy_ct_key', 16, [
  ['saddr_be', 0, 'be32'],
  ['daddr_be', 4, 'be32'],
  ['sport_be', 8, 'be16'],
  ['dport_be', 10, 'be16'],
  ['proto', 12, 'u8'],
  ['pad', 13, 'u8[]', 3],
]);

/* sy_ct_value has 4 bytes the compiler inserts before the 8-aligned __u64
 * (the header's structs are otherwise explicitly padded). */
export const SY_CT_VALUE = struct('sy_ct_value', 32, [
  ['backend_id', 0, 'u32'],
  ['backend_addr_be', 4, 'be32'],
  ['nat_addr_be', 8, 'be32'],
  ['backend_port_be', 12, 'be16'],
  ['nat_port_be', 14, 'be16'],
  ['flags', 16, 'u32'],
  ['pad', 20, 'u32'],
  ['last_seen_ns', 24, 'u64'],
]);

export const SY_RNAT_VALUE = struct('sy_rnat_value', 24, [
  ['front_addr_be', 0, 'be32'],
  ['client_addr_be', 4, 'be32'],
  ['front_port_be', 8, 'be16'],
  ['client_port_be', 10, 'be16'],
  ['flags', 12, 'u32'],
  ['last_seen_ns', 16, 'u64'],
]);

export const SY_CONFIG = struct('sy_config', 8, [
  ['node_addr_be', 0, 'be32'],
  ['flags', 4, 'u32'],
]);

/** Every struct sy_maps.h defines, by C name. */
export const STRUCTS: readonly StructSpec[] = [SY_SVC_KEY, SY_SVC_VALUE, SY_BACKEND, SY_CT_KEY, SY_CT_VALUE, SY_RNAT_VALUE, SY_CONFIG];

export type MapType = 'hash' | 'lru_hash' | 'array' | 'percpu_array';

/** BPF_F_NO_PREALLOC: a hash update links a freshly allocated element and frees the old one after an RCU grace period, so a reader holding the old master never sees it change under it (with preallocation a freed element can be reused at once). */
export const BPF_F_NO_PREALLOC = 1;

export interface MapSpec {
  /** Pinned name, with the layout version suffix. */
  readonly name: string;
  readonly type: MapType;
  readonly key: StructSpec;
  readonly value: StructSpec;
  readonly maxEntries: number;
  /** map_flags. */
  readonly flags: number;
}

/** The maps sy_maps.h describes (all pinned by name). The BTF test checks them against the object's .maps section. */
export const MAPS = {
  svc: { name: 'sy_svc4_v1', type: 'hash', key: SY_SVC_KEY, value: SY_SVC_VALUE, maxEntries: HEADER_DEFINES.SY_SVC_MAX, flags: BPF_F_NO_PREALLOC },
  backend: { name: 'sy_backend4_v1', type: 'hash', key: U32, value: SY_BACKEND, maxEntries: HEADER_DEFINES.SY_BACKEND_MAX, flags: BPF_F_NO_PREALLOC },
  ct: { name: 'sy_ct4_v1', type: 'lru_hash', key: SY_CT_KEY, value: SY_CT_VALUE, maxEntries: HEADER_DEFINES.SY_CT_MAX, flags: 0 },
  rnat: { name: 'sy_rnat4_v1', type: 'lru_hash', key: SY_CT_KEY, value: SY_RNAT_VALUE, maxEntries: HEADER_DEFINES.SY_CT_MAX, flags: 0 },
  config: { name: 'sy_config_v1', type: 'array', key: U32, value: SY_CONFIG, maxEntries: 1, flags: 0 },
  stats: { name: 'sy_stats_v1', type: 'percpu_array', key: U32, value: U64, maxEntries: HEADER_DEFINES.SY_STAT_MAX, flags: 0 },
} as const satisfies Record<string, MapSpec>;

// A one-entry memo of parseIPv4 (a pure function, so no observable state):
// every slot key of a frontend carries the same address string, and this
// saves a third of the time of encoding a full sy_svc4_v1 batch.
let lastAddr = '';
let lastAddrN = -1;

function addrOf(struct: string, field: string, s: string): number {
  if (s === lastAddr) return lastAddrN;
  const n = parseIPv4(s, 'decimal');
  if (n < 0) throw new LayoutError(struct, field, `not an IPv4 address: ${JSON.stringify(s)}`);
  lastAddr = s;
  lastAddrN = n;
  return n;
}

const K = SY_SVC_KEY.f;
export const svcKeyCodec: Codec<SvcKey> = {
  spec: SY_SVC_KEY,
  encodeInto(k, b, base) {
    K.addr_be.put(b, base, addrOf(SY_SVC_KEY.name, 'addr_be', k.addr));
    K.port_be.put(b, base, k.port);
    K.proto.put(b, base, protoNumber(k.proto));
    K.gen.put(b, base, k.gen);
    K.slot.put(b, base, k.slot);
    K.pad.put(b, base, 0);
  },
  decode(b, base = 0) {
    const gen = K.gen.get(b, base);
    if (gen > 1) throw new LayoutError(SY_SVC_KEY.name, 'gen', `generation ${gen} is not 0 or 1`);
    return {
      addr: formatIPv4(K.addr_be.get(b, base)),
      port: K.port_be.get(b, base),
      proto: protoName(K.proto.get(b, base), SY_SVC_KEY.name),
      gen: gen as 0 | 1,
      slot: K.slot.get(b, base),
    };
  },
};

const V = SY_SVC_VALUE.f;
export const svcValueCodec: Codec<SvcValue> = {
  spec: SY_SVC_VALUE,
  encodeInto(v, b, base) {
    V.backend_id.put(b, base, v.backendId);
    V.count.put(b, base, v.count);
    V.gen.put(b, base, v.gen);
    V.flags.put(b, base, v.flags);
    V.svc_id.put(b, base, v.svcId);
    V.pad.put(b, base, 0);
  },
  decode(b, base = 0) {
    const gen = V.gen.get(b, base);
    if (gen > 1) throw new LayoutError(SY_SVC_VALUE.name, 'gen', `generation ${gen} is not 0 or 1`);
    return {
      backendId: V.backend_id.get(b, base),
      count: V.count.get(b, base),
      gen: gen as 0 | 1,
      flags: V.flags.get(b, base),
      svcId: V.svc_id.get(b, base),
    };
  },
};

const B = SY_BACKEND.f;
/** sy_backend; flags are written 0 (none defined yet) and not decoded. */
export const backendCodec: Codec<L4Addr> = {
  spec: SY_BACKEND,
  encodeInto(a, b, base) {
    B.addr_be.put(b, base, addrOf(SY_BACKEND.name, 'addr_be', a.addr));
    B.port_be.put(b, base, a.port);
    B.proto.put(b, base, protoNumber(a.proto));
    B.flags.put(b, base, 0);
  },
  decode(b, base = 0) {
    return {
      addr: formatIPv4(B.addr_be.get(b, base)),
      port: B.port_be.get(b, base),
      proto: protoName(B.proto.get(b, base), SY_BACKEND.name),
    };
  },
};

/** sy_ct_key in plain data (also the key of sy_rnat4_v1). */
export interface CtKey {
  readonly saddr: string;
  readonly daddr: string;
  readonly sport: number;
  readonly dport: number;
  readonly proto: Protocol;
}

export interface CtValue {
  readonly backendId: number;
  readonly backendAddr: string;
  readonly backendPort: number;
  readonly natAddr: string;
  readonly natPort: number;
  /** SY_CT_F_* */
  readonly flags: number;
  readonly lastSeenNs: bigint;
}

export interface RnatValue {
  readonly frontAddr: string;
  readonly frontPort: number;
  readonly clientAddr: string;
  readonly clientPort: number;
  /** SY_CT_F_* */
  readonly flags: number;
  readonly lastSeenNs: bigint;
}

export interface NodeConfig {
  /** Masquerade source; null = not set yet (0.0.0.0 in the map). */
  readonly nodeAddr: string | null;
  readonly flags: number;
}

const CK = SY_CT_KEY.f;
export const ctKeyCodec: Codec<CtKey> = {
  spec: SY_CT_KEY,
  encodeInto(k, b, base) {
    CK.saddr_be.put(b, base, addrOf(SY_CT_KEY.name, 'saddr_be', k.saddr));
    CK.daddr_be.put(b, base, addrOf(SY_CT_KEY.name, 'daddr_be', k.daddr));
    CK.sport_be.put(b, base, k.sport);
    CK.dport_be.put(b, base, k.dport);
    CK.proto.put(b, base, protoNumber(k.proto));
    zeroPadding(SY_CT_KEY, b, base);
  },
  decode(b, base = 0) {
    return {
      saddr: formatIPv4(CK.saddr_be.get(b, base)),
      daddr: formatIPv4(CK.daddr_be.get(b, base)),
      sport: CK.sport_be.get(b, base),
      dport: CK.dport_be.get(b, base),
      proto: protoName(CK.proto.get(b, base), SY_CT_KEY.name),
    };
  },
};

const CV = SY_CT_VALUE.f;
export const ctValueCodec: Codec<CtValue> = {
  spec: SY_CT_VALUE,
  encodeInto(v, b, base) {
    CV.backend_id.put(b, base, v.backendId);
    CV.backend_addr_be.put(b, base, addrOf(SY_CT_VALUE.name, 'backend_addr_be', v.backendAddr));
    CV.nat_addr_be.put(b, base, addrOf(SY_CT_VALUE.name, 'nat_addr_be', v.natAddr));
    CV.backend_port_be.put(b, base, v.backendPort);
    CV.nat_port_be.put(b, base, v.natPort);
    CV.flags.put(b, base, v.flags);
    CV.pad.put(b, base, 0);
    zeroPadding(SY_CT_VALUE, b, base);
    CV.last_seen_ns.putBig(b, base, v.lastSeenNs);
  },
  decode(b, base = 0) {
    return {
      backendId: CV.backend_id.get(b, base),
      backendAddr: formatIPv4(CV.backend_addr_be.get(b, base)),
      backendPort: CV.backend_port_be.get(b, base),
      natAddr: formatIPv4(CV.nat_addr_be.get(b, base)),
      natPort: CV.nat_port_be.get(b, base),
      flags: CV.flags.get(b, base),
      lastSeenNs: CV.last_seen_ns.getBig(b, base),
    };
  },
};

const RV = SY_RNAT_VALUE.f;
export const rnatValueCodec: Codec<RnatValue> = {
  spec: SY_RNAT_VALUE,
  encodeInto(v, b, base) {
    RV.front_addr_be.put(b, base, addrOf(SY_RNAT_VALUE.name, 'front_addr_be', v.frontAddr));
    RV.client_addr_be.put(b, base, addrOf(SY_RNAT_VALUE.name, 'client_addr_be', v.clientAddr));
    RV.front_port_be.put(b, base, v.frontPort);
    RV.client_port_be.put(b, base, v.clientPort);
    RV.flags.put(b, base, v.flags);
    RV.last_seen_ns.putBig(b, base, v.lastSeenNs);
  },
  decode(b, base = 0) {
    return {
      frontAddr: formatIPv4(RV.front_addr_be.get(b, base)),
      frontPort: RV.front_port_be.get(b, base),
      clientAddr: formatIPv4(RV.client_addr_be.get(b, base)),
      clientPort: RV.client_port_be.get(b, base),
      flags: RV.flags.get(b, base),
      lastSeenNs: RV.last_seen_ns.getBig(b, base),
    };
  },
};

const CF = SY_CONFIG.f;
export const configCodec: Codec<NodeConfig> = {
  spec: SY_CONFIG,
  encodeInto(v, b, base) {
    CF.node_addr_be.put(b, base, v.nodeAddr === null ? 0 : addrOf(SY_CONFIG.name, 'node_addr_be', v.nodeAddr));
    CF.flags.put(b, base, v.flags);
  },
  decode(b, base = 0) {
    const n = CF.node_addr_be.get(b, base);
    return { nodeAddr: n === 0 ? null : formatIPv4(n), flags: CF.flags.get(b, base) };
  },
};
