// The byte layout of every BPF map key and value of layout 2, mirroring
// bpf/include/sy_maps.h. Each struct is written down ONCE, as a table of
// fields (name, offset, size, kind: src/dataplane/bpf/struct.ts); the codecs
// below read and write through that table, and
// test/unit/bpf-layout-btf.test.ts compares the same tables (and MAPS, and
// HEADER_DEFINES) with the BTF of the compiled object and of the header, so
// a change to the header that is not made here fails a test.
//
// Every map is described by a MapDef: its pinned name, type, key and value
// structs, default capacity and flags, and the codecs between plain data and
// bytes. Ops (update/delete of one entry of one map, in plain data) are
// generic over MAPS: encodeOpBatch() turns a run of ops on one map into the
// key and value buffers of one kernel batch. The frozen layout 1 is
// layout-v1.ts (read by the migration only).
//
// Addresses in plain data are canonical text of the map's family (dotted
// quad in the …4 maps, RFC 5952 in the …6 maps); an IPv6 address is
// `__be32 addr_be[4]` in C, 16 bytes in network order.

import type { Protocol } from '../../model/types.ts';
import { formatIPv4, formatIPv6, parseCidr, parseIPv4, parseIPv6 } from '../../util/ip.ts';
import { type Codec, type Field, LayoutError, protoName, protoNumber, type StructSpec, struct, u32Codec, u64Codec, zeroPadding } from './struct.ts';

export {
  type Codec,
  decodeMany,
  decodePerCpuCounters,
  encode,
  encodeMany,
  type Field,
  type FieldKind,
  type FieldSpec,
  LayoutError,
  protoName,
  protoNumber,
  type StructSpec,
  sumCounters,
  U32,
  U64,
  u32Codec,
  u64Codec,
} from './struct.ts';

/** The #defines of sy_maps.h (checked against the header by the BTF test). */
export const HEADER_DEFINES = {
  SY_LAYOUT_VERSION: 2,
  SY_SVC_MAX: 262144,
  SY_BACKEND_MAX: 131072,
  SY_CT_MAX: 262144,
  SY_VIP_MAX: 65536,
  SY_SRCRANGE_MAX: 16384,
  SY_FRAG_MAX: 8192,
  SY_SVC_CNT_MAX: 524288,
  SY_BE_CNT_MAX: 131072,
  SY_AFF_MAX: 65536,
  SY_AFF_BE_MAX: 524288,
  SY_MAGLEV_MAX: 2097152,
  SY_SCOPE_INTERNAL: 0,
  SY_SCOPE_EXTERNAL: 1,
  SY_ACT_FORWARD: 0,
  SY_ACT_REJECT: 1,
  SY_ACT_DROP: 2,
  SY_SVC_F_MASQ: 0x0001,
  SY_SVC_F_MASQ_EXT: 0x0002,
  SY_SVC_F_EXT_SCOPE: 0x0004,
  SY_SVC_F_SRC_RANGES: 0x0008,
  SY_SVC_F_AFFINITY: 0x0010,
  SY_SVC_F_MAGLEV: 0x0020,
  SY_SVC_F_CLUSTER_IP: 0x0040,
  SY_BE_F_LOCAL: 0x01,
  SY_VIP_F_CLUSTER_IP: 0x01,
  SY_CT_DIR_FWD: 0,
  SY_CT_DIR_REV: 1,
  SY_CT_F_SNAT: 0x0001,
  SY_CT_F_HAIRPIN: 0x0002,
  SY_CT_F_EXT: 0x0004,
  SY_CT_F_KERNEL: 0x0008,
  SY_TCP_NONE: 0,
  SY_TCP_SYN_SENT: 1,
  SY_TCP_ESTABLISHED: 2,
  SY_TCP_CLOSING: 3,
  SY_TCP_CLOSED: 4,
  SY_CFG_DETECT_CIDR: 0x01,
  SY_CFG_DETECT_IFACE: 0x02,
  SY_CFG_KERNEL_HANDOVER: 0x04,
  SY_CFG_LAYOUT_UPGRADE: 0x08,
  SY_STAT_SVC_HIT: 0,
  SY_STAT_CT_NEW: 1,
  SY_STAT_REJECT: 2,
  SY_STAT_DROP_NO_LOCAL: 3,
  SY_STAT_DROP_SRC_RANGE: 4,
  SY_STAT_DROP_NO_PORT: 5,
  SY_STAT_RNAT: 6,
  SY_STAT_SNAT_FAIL: 7,
  SY_STAT_CT_FULL: 8,
  SY_STAT_CT_RESTORE: 9,
  SY_STAT_ICMP_XLATE: 10,
  SY_STAT_FRAG: 11,
  SY_STAT_FRAG_DROP: 12,
  SY_STAT_FIB_FAIL: 13,
  SY_STAT_RETRY: 14,
  SY_STAT_TCP_REOPEN: 15,
  SY_STAT_SOCK_XLATE: 16,
  SY_STAT_SOCK_REJECT: 17,
  SY_STAT_UPGRADE_HOLD: 18,
  SY_STAT_AFFINITY: 19,
  SY_STAT_MAGLEV: 20,
  SY_STAT_CT_MIDSTREAM: 21,
  SY_STAT_MAX: 32,
  SY_SOCK_RNAT_MAX: 65536,
} as const;

/** The SY_STAT_* counters of sy_maps.h, by name (without the prefix), in index order. */
export const STAT_NAMES = [
  'SVC_HIT',
  'CT_NEW',
  'REJECT',
  'DROP_NO_LOCAL',
  'DROP_SRC_RANGE',
  'DROP_NO_PORT',
  'RNAT',
  'SNAT_FAIL',
  'CT_FULL',
  'CT_RESTORE',
  'ICMP_XLATE',
  'FRAG',
  'FRAG_DROP',
  'FIB_FAIL',
  'RETRY',
  'TCP_REOPEN',
  'SOCK_XLATE',
  'SOCK_REJECT',
  'UPGRADE_HOLD',
  'AFFINITY',
  'MAGLEV',
  'CT_MIDSTREAM',
] as const;
export type StatName = (typeof STAT_NAMES)[number];

const D = HEADER_DEFINES;
export const SY_SCOPE_INTERNAL = D.SY_SCOPE_INTERNAL;
export const SY_SCOPE_EXTERNAL = D.SY_SCOPE_EXTERNAL;
export const SY_ACT_FORWARD = D.SY_ACT_FORWARD;
export const SY_ACT_REJECT = D.SY_ACT_REJECT;
export const SY_ACT_DROP = D.SY_ACT_DROP;
export const SY_SVC_F_MASQ = D.SY_SVC_F_MASQ;
export const SY_SVC_F_MASQ_EXT = D.SY_SVC_F_MASQ_EXT;
export const SY_SVC_F_EXT_SCOPE = D.SY_SVC_F_EXT_SCOPE;
export const SY_SVC_F_SRC_RANGES = D.SY_SVC_F_SRC_RANGES;
export const SY_SVC_F_AFFINITY = D.SY_SVC_F_AFFINITY;
export const SY_SVC_F_MAGLEV = D.SY_SVC_F_MAGLEV;
export const SY_SVC_F_CLUSTER_IP = D.SY_SVC_F_CLUSTER_IP;
export const SY_BE_F_LOCAL = D.SY_BE_F_LOCAL;
export const SY_VIP_F_CLUSTER_IP = D.SY_VIP_F_CLUSTER_IP;
export const SY_CT_DIR_FWD = D.SY_CT_DIR_FWD;
export const SY_CT_DIR_REV = D.SY_CT_DIR_REV;
export const SY_CT_F_SNAT = D.SY_CT_F_SNAT;
export const SY_CT_F_HAIRPIN = D.SY_CT_F_HAIRPIN;
export const SY_CT_F_EXT = D.SY_CT_F_EXT;
export const SY_CT_F_KERNEL = D.SY_CT_F_KERNEL;
export const SY_CFG_DETECT_CIDR = D.SY_CFG_DETECT_CIDR;
export const SY_CFG_DETECT_IFACE = D.SY_CFG_DETECT_IFACE;
export const SY_CFG_KERNEL_HANDOVER = D.SY_CFG_KERNEL_HANDOVER;
export const SY_CFG_LAYOUT_UPGRADE = D.SY_CFG_LAYOUT_UPGRADE;
/** The largest count a master can hold (count is 16 bits of state, slot is __u16). */
export const SY_MAX_SLOTS = 0xffff;

/** SY_SCOPE_*: which clients a master serves. */
export type Scope = typeof SY_SCOPE_INTERNAL | typeof SY_SCOPE_EXTERNAL;
/** SY_ACT_*: what a master does with a new connection. */
export type SvcAction = typeof SY_ACT_FORWARD | typeof SY_ACT_REJECT | typeof SY_ACT_DROP;
export type Gen = 0 | 1;

// ---------------------------------------------------------------------------
// The state word of a master: count | gen << 16 | action << 24 (SY_STATE).

export function svcState(count: number, gen: Gen, action: SvcAction): number {
  if (!(Number.isInteger(count) && count >= 0 && count <= SY_MAX_SLOTS)) throw new LayoutError('sy_svc_value', 'state', `count ${count} does not fit 16 bits`);
  return (count | (gen << 16) | (action << 24)) >>> 0;
}
export const stateCount = (s: number): number => s & 0xffff;
export const stateGen = (s: number): number => (s >>> 16) & 0xff;
export const stateAction = (s: number): number => (s >>> 24) & 0xff;

// ---------------------------------------------------------------------------
// Field tables (names, offsets and C types exactly as in sy_maps.h).

export const SY_SVC4_KEY = struct('sy_svc4_key', 12, [
  ['addr_be', 0, 'be32'],
  ['port_be', 4, 'be16'],
  ['proto', 6, 'u8'],
  ['scope', 7, 'u8'],
  ['slot', 8, 'u16'],
  ['gen', 10, 'u8'],
  ['pad', 11, 'u8'],
]);

export const SY_SVC6_KEY = struct('sy_svc6_key', 24, [
  ['addr_be', 0, 'be32[]', 16],
  ['port_be', 16, 'be16'],
  ['proto', 18, 'u8'],
  ['scope', 19, 'u8'],
  ['slot', 20, 'u16'],
  ['gen', 22, 'u8'],
  ['pad', 23, 'u8'],
]);

export const SY_SVC_VALUE = struct('sy_svc_value', 24, [
  ['state', 0, 'u32'],
  ['backend_id', 4, 'u32'],
  ['svc_id', 8, 'u32'],
  ['flags', 12, 'u16'],
  ['pad', 14, 'u16'],
  ['affinity_timeout_s', 16, 'u32'],
  ['maglev_m', 20, 'u32'],
]);

export const SY_BACKEND4 = struct('sy_backend4', 8, [
  ['addr_be', 0, 'be32'],
  ['port_be', 4, 'be16'],
  ['proto', 6, 'u8'],
  ['flags', 7, 'u8'],
]);

export const SY_BACKEND6 = struct('sy_backend6', 20, [
  ['addr_be', 0, 'be32[]', 16],
  ['port_be', 16, 'be16'],
  ['proto', 18, 'u8'],
  ['flags', 19, 'u8'],
]);

export const SY_VIP4_KEY = struct('sy_vip4_key', 4, [['addr_be', 0, 'be32']]);
export const SY_VIP6_KEY = struct('sy_vip6_key', 16, [['addr_be', 0, 'be32[]', 16]]);
export const SY_VIP_VALUE = struct('sy_vip_value', 4, [['flags', 0, 'u32']]);

export const SY_SRCRANGE4_KEY = struct('sy_srcrange4_key', 12, [
  ['prefixlen', 0, 'u32'],
  ['svc_id_be', 4, 'be32'],
  ['addr_be', 8, 'be32'],
]);

export const SY_SRCRANGE6_KEY = struct('sy_srcrange6_key', 24, [
  ['prefixlen', 0, 'u32'],
  ['svc_id_be', 4, 'be32'],
  ['addr_be', 8, 'be32[]', 16],
]);

export const SY_SRCRANGE_VALUE = struct('sy_srcrange_value', 4, [['flags', 0, 'u32']]);

export const SY_CT4_KEY = struct('sy_ct4_key', 16, [
  ['saddr_be', 0, 'be32'],
  ['daddr_be', 4, 'be32'],
  ['sport_be', 8, 'be16'],
  ['dport_be', 10, 'be16'],
  ['proto', 12, 'u8'],
  ['dir', 13, 'u8'],
  ['pad', 14, 'u8[]', 2],
]);

export const SY_CT6_KEY = struct('sy_ct6_key', 40, [
  ['saddr_be', 0, 'be32[]', 16],
  ['daddr_be', 16, 'be32[]', 16],
  ['sport_be', 32, 'be16'],
  ['dport_be', 34, 'be16'],
  ['proto', 36, 'u8'],
  ['dir', 37, 'u8'],
  ['pad', 38, 'u8[]', 2],
]);

/** Offsets of the fields after the four addresses in sy_ct4_value / sy_ct6_value. */
function ctValue(name: string, addrKind: 'be32' | 'be32[]', a: number) {
  const al = addrKind === 'be32' ? undefined : 16;
  const p = 4 * a; // ports start after four addresses
  return struct(name, p + 40, [
    ['client_addr_be', 0, addrKind, al],
    ['front_addr_be', a, addrKind, al],
    ['backend_addr_be', 2 * a, addrKind, al],
    ['nat_addr_be', 3 * a, addrKind, al],
    ['client_port_be', p, 'be16'],
    ['front_port_be', p + 2, 'be16'],
    ['backend_port_be', p + 4, 'be16'],
    ['nat_port_be', p + 6, 'be16'],
    ['backend_id', p + 8, 'u32'],
    ['svc_id', p + 12, 'u32'],
    ['flags', p + 16, 'u16'],
    ['tcp_state', p + 18, 'u8'],
    ['fin_mask', p + 19, 'u8'],
    ['pad', p + 20, 'u32'],
    ['created_ns', p + 24, 'u64'],
    ['last_seen_ns', p + 32, 'u64'],
  ] as const);
}
export const SY_CT4_VALUE = ctValue('sy_ct4_value', 'be32', 4);
export const SY_CT6_VALUE = ctValue('sy_ct6_value', 'be32[]', 16);

export const SY_FRAG4_KEY = struct('sy_frag4_key', 12, [
  ['saddr_be', 0, 'be32'],
  ['daddr_be', 4, 'be32'],
  ['id_be', 8, 'be16'],
  ['proto', 10, 'u8'],
  ['pad', 11, 'u8'],
]);

export const SY_FRAG_VALUE = struct('sy_frag_value', 16, [
  ['sport_be', 0, 'be16'],
  ['dport_be', 2, 'be16'],
  ['pad', 4, 'u32'],
  ['created_ns', 8, 'u64'],
]);

export const SY_CONFIG_V2 = struct('sy_config_v2', 56, [
  ['node_addr4_be', 0, 'be32'],
  ['node_addr6_be', 4, 'be32[]', 16],
  ['pod_cidr4_be', 20, 'be32'],
  ['pod_cidr6_be', 24, 'be32[]', 16],
  ['pod_cidr4_len', 40, 'u8'],
  ['pod_cidr6_len', 41, 'u8'],
  ['snat_port_min', 42, 'u16'],
  ['snat_port_max', 44, 'u16'],
  ['pad', 46, 'u16'],
  ['flags', 48, 'u32'],
  ['pad2', 52, 'u32'],
]);

export const SY_AFF4_KEY = struct('sy_aff4_key', 8, [
  ['svc_id', 0, 'u32'],
  ['addr_be', 4, 'be32'],
]);

export const SY_AFF6_KEY = struct('sy_aff6_key', 20, [
  ['svc_id', 0, 'u32'],
  ['addr_be', 4, 'be32[]', 16],
]);

export const SY_AFF_VALUE = struct('sy_aff_value', 16, [
  ['backend_id', 0, 'u32'],
  ['pad', 4, 'u32'],
  ['last_used_ns', 8, 'u64'],
]);

export const SY_AFF_BE_KEY = struct('sy_aff_be_key', 12, [
  ['svc_id', 0, 'u32'],
  ['backend_id', 4, 'u32'],
  ['scope', 8, 'u8'],
  ['pad', 9, 'u8[]', 3],
]);

export const SY_AFF_BE_VALUE = struct('sy_aff_be_value', 4, [['flags', 0, 'u32']]);

export const SY_MAGLEV_KEY = struct('sy_maglev_key', 12, [
  ['svc_id', 0, 'u32'],
  ['scope', 4, 'u8'],
  ['gen', 5, 'u8'],
  ['pad', 6, 'u16'],
  ['index', 8, 'u32'],
]);

export const SY_MAGLEV_VALUE = struct('sy_maglev_value', 4, [['backend_id', 0, 'u32']]);

export const SY_TRAFFIC = struct('sy_traffic', 40, [
  ['packets', 0, 'u64'],
  ['bytes', 8, 'u64'],
  ['reply_packets', 16, 'u64'],
  ['reply_bytes', 24, 'u64'],
  ['conns', 32, 'u64'],
]);

export const SY_SOCKCFG = struct('sy_sockcfg', 16, [
  ['netns_cookie', 0, 'u64'],
  ['flags', 8, 'u32'],
  ['pad', 12, 'u32'],
]);

export const SY_SOCK_RNAT4_KEY = struct('sy_sock_rnat4_key', 16, [
  ['cookie', 0, 'u64'],
  ['addr_be', 8, 'be32'],
  ['port_be', 12, 'be16'],
  ['proto', 14, 'u8'],
  ['pad', 15, 'u8'],
]);

export const SY_SOCK_RNAT4_VALUE = struct('sy_sock_rnat4_value', 8, [
  ['addr_be', 0, 'be32'],
  ['port_be', 4, 'be16'],
  ['pad', 6, 'u16'],
]);

export const SY_SOCK_RNAT6_KEY = struct('sy_sock_rnat6_key', 32, [
  ['cookie', 0, 'u64'],
  ['addr_be', 8, 'be32[]', 16],
  ['port_be', 24, 'be16'],
  ['proto', 26, 'u8'],
  ['pad', 27, 'u8'],
  ['pad2', 28, 'u32'],
]);

export const SY_SOCK_RNAT6_VALUE = struct('sy_sock_rnat6_value', 20, [
  ['addr_be', 0, 'be32[]', 16],
  ['port_be', 16, 'be16'],
  ['pad', 18, 'u16'],
]);

/** Every struct sy_maps.h defines, by C name. */
export const STRUCTS: readonly StructSpec[] = [
  SY_SVC4_KEY,
  SY_SVC6_KEY,
  SY_SVC_VALUE,
  SY_BACKEND4,
  SY_BACKEND6,
  SY_VIP4_KEY,
  SY_VIP6_KEY,
  SY_VIP_VALUE,
  SY_SRCRANGE4_KEY,
  SY_SRCRANGE6_KEY,
  SY_SRCRANGE_VALUE,
  SY_CT4_KEY,
  SY_CT6_KEY,
  SY_CT4_VALUE,
  SY_CT6_VALUE,
  SY_FRAG4_KEY,
  SY_FRAG_VALUE,
  SY_CONFIG_V2,
  SY_AFF4_KEY,
  SY_AFF6_KEY,
  SY_AFF_VALUE,
  SY_AFF_BE_KEY,
  SY_AFF_BE_VALUE,
  SY_MAGLEV_KEY,
  SY_MAGLEV_VALUE,
  SY_TRAFFIC,
  SY_SOCKCFG,
  SY_SOCK_RNAT4_KEY,
  SY_SOCK_RNAT4_VALUE,
  SY_SOCK_RNAT6_KEY,
  SY_SOCK_RNAT6_VALUE,
];

// ---------------------------------------------------------------------------
// Plain data: what the codecs take and give.

/** Key of sy_svc4_v2 / sy_svc6_v2. */
export interface SvcKey {
  readonly addr: string;
  readonly port: number;
  readonly proto: Protocol;
  readonly scope: Scope;
  /** 0 = master, 1..count = backend slot. */
  readonly slot: number;
  /** Slot generation; always 0 for a master. */
  readonly gen: Gen;
}

/** Value of sy_svc4_v2 / sy_svc6_v2; `state` is split into count, gen and action (0, 0, FORWARD in a slot). */
export interface SvcValue {
  readonly count: number;
  readonly gen: Gen;
  readonly action: SvcAction;
  /** Slot: the backend id; master: 0. */
  readonly backendId: number;
  /** Master: stable id of the frontend (both scopes share it); slot: 0. */
  readonly svcId: number;
  /** SY_SVC_F_* */
  readonly flags: number;
  readonly affinityTimeoutS: number;
  /** Master with SY_SVC_F_MAGLEV: entries of its Maglev table; else 0. */
  readonly maglevM: number;
}

/** struct sy_traffic: counters of one frontend (svc_id) or backend id; see sy_maps.h. */
export interface Traffic {
  /** Forward: client -> frontend (GSO segments). */
  readonly packets: bigint;
  /** IP bytes of those packets. */
  readonly bytes: bigint;
  /** Reply: backend -> client. */
  readonly replyPackets: bigint;
  readonly replyBytes: bigint;
  /** Flows created. */
  readonly conns: bigint;
}

/** Value of sy_backend4_v2 / sy_backend6_v2 (key: the backend id, a __u32). */
export interface BackendValue {
  readonly addr: string;
  readonly port: number;
  readonly proto: Protocol;
  /** SY_BE_F_* */
  readonly flags: number;
}

export interface VipKey {
  readonly addr: string;
}
export interface VipValue {
  /** SY_VIP_F_* */
  readonly flags: number;
}

/**
 * Key of sy_srcrange4_v2 / sy_srcrange6_v2. prefixlen as the LPM trie reads
 * it: 32 (svc_id) + the CIDR's prefix length; addr is the CIDR's network
 * address (host bits cleared by srcRangeKey()).
 */
export interface SrcRangeKey {
  readonly prefixlen: number;
  readonly svcId: number;
  readonly addr: string;
}
export interface SrcRangeValue {
  readonly flags: number;
}

export interface CtKey {
  readonly saddr: string;
  readonly daddr: string;
  readonly sport: number;
  readonly dport: number;
  readonly proto: Protocol;
  /** SY_CT_DIR_* */
  readonly dir: 0 | 1;
}

/** Both halves of a flow hold all of it (sy_maps.h). natAddr is 0.0.0.0 / :: without SNAT. */
export interface CtValue {
  readonly clientAddr: string;
  readonly frontAddr: string;
  readonly backendAddr: string;
  readonly natAddr: string;
  readonly clientPort: number;
  readonly frontPort: number;
  readonly backendPort: number;
  readonly natPort: number;
  readonly backendId: number;
  readonly svcId: number;
  /** SY_CT_F_* */
  readonly flags: number;
  /** SY_TCP_* */
  readonly tcpState: number;
  readonly finMask: number;
  readonly createdNs: bigint;
  readonly lastSeenNs: bigint;
}

/** Key of sy_aff4_v2 / sy_aff6_v2: a client of a frontend with session affinity. */
export interface AffKey {
  readonly svcId: number;
  /** The client address. */
  readonly addr: string;
}
/** Value of sy_aff4_v2 / sy_aff6_v2: the client's backend and when a new connection last used it (CLOCK_MONOTONIC ns). */
export interface AffValue {
  readonly backendId: number;
  readonly lastUsedNs: bigint;
}
/** Key of sy_maglev_v2: entry `index` of the Maglev table of a frontend's scope, slot generation `gen`. */
export interface MaglevKey {
  readonly svcId: number;
  readonly scope: Scope;
  readonly gen: Gen;
  readonly index: number;
}
export interface MaglevValue {
  readonly backendId: number;
}

/** Key of sy_aff_be_v2: backend id is one of the backends of this scope of frontend svcId (with session affinity). */
export interface AffBeKey {
  readonly svcId: number;
  readonly backendId: number;
  readonly scope: Scope;
}

export interface Frag4Key {
  readonly saddr: string;
  readonly daddr: string;
  readonly id: number;
  readonly proto: Protocol;
}
export interface FragValue {
  readonly sport: number;
  readonly dport: number;
  readonly createdNs: bigint;
}

/** sy_config_v2 in plain data. */
export interface NodeConfig {
  /** IPv4 masquerade source; null = none (0.0.0.0). */
  readonly nodeAddr4: string | null;
  /** IPv6 masquerade source; null = none (::). */
  readonly nodeAddr6: string | null;
  /** Local-traffic detector CIDRs ("10.244.0.0/16"); null = none of that family (length 0). Host bits are cleared. */
  readonly podCidr4: string | null;
  readonly podCidr6: string | null;
  readonly snatPortMin: number;
  readonly snatPortMax: number;
  /** SY_CFG_* */
  readonly flags: number;
}

// ---------------------------------------------------------------------------
// Addresses of each family, with a one-entry memo each: every slot key of a
// frontend carries the same address string.

interface AddrIO {
  readonly family: 'IPv4' | 'IPv6';
  readonly zero: string;
  put(f: Field, b: Buffer, base: number, text: string, struct: string): void;
  get(f: Field, b: Buffer, base: number): string;
}

let last4 = '';
let last4N = -1;
let last6 = '';
let last6B: Uint8Array = new Uint8Array(16);

const IO4: AddrIO = {
  family: 'IPv4',
  zero: '0.0.0.0',
  put(f, b, base, s, st) {
    if (s !== last4) {
      const n = parseIPv4(s, 'decimal');
      if (n < 0) throw new LayoutError(st, f.name, `not an IPv4 address: ${JSON.stringify(s)}`);
      last4 = s;
      last4N = n;
    }
    f.put(b, base, last4N);
  },
  get: (f, b, base) => formatIPv4(f.get(b, base)),
};

const IO6: AddrIO = {
  family: 'IPv6',
  zero: '::',
  put(f, b, base, s, st) {
    if (s !== last6) {
      const bytes = s.includes(':') ? parseIPv6(s, 'decimal') : null;
      if (bytes === null) throw new LayoutError(st, f.name, `not an IPv6 address: ${JSON.stringify(s)}`);
      last6 = s;
      last6B = bytes;
    }
    f.putBytes(b, base, last6B);
  },
  get: (f, b, base) => formatIPv6(f.getBytes(b, base)),
};

function gen01(struct: string, field: string, n: number): Gen {
  if (n > 1) throw new LayoutError(struct, field, `generation ${n} is not 0 or 1`);
  return n as Gen;
}

function scope01(struct: string, n: number): Scope {
  if (n > 1) throw new LayoutError(struct, 'scope', `scope ${n} is not SY_SCOPE_INTERNAL or SY_SCOPE_EXTERNAL`);
  return n as Scope;
}

// ---------------------------------------------------------------------------
// Codecs.

function svcKeyCodec(spec: typeof SY_SVC4_KEY | typeof SY_SVC6_KEY, io: AddrIO): Codec<SvcKey> {
  const k = spec.f;
  return {
    spec,
    encodeInto(v, b, base) {
      io.put(k.addr_be, b, base, v.addr, spec.name);
      k.port_be.put(b, base, v.port);
      k.proto.put(b, base, protoNumber(v.proto));
      k.scope.put(b, base, v.scope);
      k.slot.put(b, base, v.slot);
      k.gen.put(b, base, v.gen);
      k.pad.put(b, base, 0);
    },
    decode(b, base = 0) {
      return {
        addr: io.get(k.addr_be, b, base),
        port: k.port_be.get(b, base),
        proto: protoName(k.proto.get(b, base), spec.name),
        scope: scope01(spec.name, k.scope.get(b, base)),
        slot: k.slot.get(b, base),
        gen: gen01(spec.name, 'gen', k.gen.get(b, base)),
      };
    },
  };
}

export const svc4KeyCodec = svcKeyCodec(SY_SVC4_KEY, IO4);
export const svc6KeyCodec = svcKeyCodec(SY_SVC6_KEY, IO6);

const SV = SY_SVC_VALUE.f;
export const svcValueCodec: Codec<SvcValue> = {
  spec: SY_SVC_VALUE,
  encodeInto(v, b, base) {
    SV.state.put(b, base, svcState(v.count, v.gen, v.action));
    SV.backend_id.put(b, base, v.backendId);
    SV.svc_id.put(b, base, v.svcId);
    SV.flags.put(b, base, v.flags);
    SV.pad.put(b, base, 0);
    SV.affinity_timeout_s.put(b, base, v.affinityTimeoutS);
    SV.maglev_m.put(b, base, v.maglevM);
  },
  decode(b, base = 0) {
    const s = SV.state.get(b, base);
    const action = stateAction(s);
    if (action > SY_ACT_DROP) throw new LayoutError(SY_SVC_VALUE.name, 'state', `action ${action} is not a SY_ACT_*`);
    return {
      count: stateCount(s),
      gen: gen01(SY_SVC_VALUE.name, 'state', stateGen(s)),
      action: action as SvcAction,
      backendId: SV.backend_id.get(b, base),
      svcId: SV.svc_id.get(b, base),
      flags: SV.flags.get(b, base),
      affinityTimeoutS: SV.affinity_timeout_s.get(b, base),
      maglevM: SV.maglev_m.get(b, base),
    };
  },
};

function backendCodec(spec: typeof SY_BACKEND4 | typeof SY_BACKEND6, io: AddrIO): Codec<BackendValue> {
  const k = spec.f;
  return {
    spec,
    encodeInto(v, b, base) {
      io.put(k.addr_be, b, base, v.addr, spec.name);
      k.port_be.put(b, base, v.port);
      k.proto.put(b, base, protoNumber(v.proto));
      k.flags.put(b, base, v.flags);
    },
    decode(b, base = 0) {
      return {
        addr: io.get(k.addr_be, b, base),
        port: k.port_be.get(b, base),
        proto: protoName(k.proto.get(b, base), spec.name),
        flags: k.flags.get(b, base),
      };
    },
  };
}

export const backend4Codec = backendCodec(SY_BACKEND4, IO4);
export const backend6Codec = backendCodec(SY_BACKEND6, IO6);

function vipKeyCodec(spec: typeof SY_VIP4_KEY | typeof SY_VIP6_KEY, io: AddrIO): Codec<VipKey> {
  return {
    spec,
    encodeInto(v, b, base) {
      io.put(spec.f.addr_be, b, base, v.addr, spec.name);
    },
    decode(b, base = 0) {
      return { addr: io.get(spec.f.addr_be, b, base) };
    },
  };
}

export const vip4KeyCodec = vipKeyCodec(SY_VIP4_KEY, IO4);
export const vip6KeyCodec = vipKeyCodec(SY_VIP6_KEY, IO6);

function flagsCodec(spec: typeof SY_VIP_VALUE | typeof SY_SRCRANGE_VALUE | typeof SY_AFF_BE_VALUE): Codec<{ readonly flags: number }> {
  return {
    spec,
    encodeInto(v, b, base) {
      spec.f.flags.put(b, base, v.flags);
    },
    decode(b, base = 0) {
      return { flags: spec.f.flags.get(b, base) };
    },
  };
}

export const vipValueCodec: Codec<VipValue> = flagsCodec(SY_VIP_VALUE);
export const srcRangeValueCodec: Codec<SrcRangeValue> = flagsCodec(SY_SRCRANGE_VALUE);

function srcRangeKeyCodec(spec: typeof SY_SRCRANGE4_KEY | typeof SY_SRCRANGE6_KEY, io: AddrIO): Codec<SrcRangeKey> {
  const k = spec.f;
  const maxLen = 32 + (io.family === 'IPv4' ? 32 : 128);
  return {
    spec,
    encodeInto(v, b, base) {
      if (!(Number.isInteger(v.prefixlen) && v.prefixlen >= 32 && v.prefixlen <= maxLen))
        throw new LayoutError(spec.name, 'prefixlen', `${v.prefixlen} is not 32 (svc_id) + 0..${maxLen - 32}`);
      k.prefixlen.put(b, base, v.prefixlen);
      k.svc_id_be.put(b, base, v.svcId);
      io.put(k.addr_be, b, base, v.addr, spec.name);
    },
    decode(b, base = 0) {
      return { prefixlen: k.prefixlen.get(b, base), svcId: k.svc_id_be.get(b, base), addr: io.get(k.addr_be, b, base) };
    },
  };
}

function affKeyCodec(spec: typeof SY_AFF4_KEY | typeof SY_AFF6_KEY, io: AddrIO): Codec<AffKey> {
  const k = spec.f;
  return {
    spec,
    encodeInto(v, b, base) {
      k.svc_id.put(b, base, v.svcId);
      io.put(k.addr_be, b, base, v.addr, spec.name);
    },
    decode(b, base = 0) {
      return { svcId: k.svc_id.get(b, base), addr: io.get(k.addr_be, b, base) };
    },
  };
}

export const aff4KeyCodec = affKeyCodec(SY_AFF4_KEY, IO4);
export const aff6KeyCodec = affKeyCodec(SY_AFF6_KEY, IO6);

const AV = SY_AFF_VALUE.f;
export const affValueCodec: Codec<AffValue> = {
  spec: SY_AFF_VALUE,
  encodeInto(v, b, base) {
    AV.backend_id.put(b, base, v.backendId);
    AV.pad.put(b, base, 0);
    AV.last_used_ns.putBig(b, base, v.lastUsedNs);
  },
  decode(b, base = 0) {
    return { backendId: AV.backend_id.get(b, base), lastUsedNs: AV.last_used_ns.getBig(b, base) };
  },
};

const AB = SY_AFF_BE_KEY.f;
export const affBeKeyCodec: Codec<AffBeKey> = {
  spec: SY_AFF_BE_KEY,
  encodeInto(v, b, base) {
    AB.svc_id.put(b, base, v.svcId);
    AB.backend_id.put(b, base, v.backendId);
    AB.scope.put(b, base, v.scope);
    zeroPadding(SY_AFF_BE_KEY, b, base);
  },
  decode(b, base = 0) {
    return { svcId: AB.svc_id.get(b, base), backendId: AB.backend_id.get(b, base), scope: scope01(SY_AFF_BE_KEY.name, AB.scope.get(b, base)) };
  },
};

const MK = SY_MAGLEV_KEY.f;
export const maglevKeyCodec: Codec<MaglevKey> = {
  spec: SY_MAGLEV_KEY,
  encodeInto(v, b, base) {
    MK.svc_id.put(b, base, v.svcId);
    MK.scope.put(b, base, v.scope);
    MK.gen.put(b, base, v.gen);
    MK.pad.put(b, base, 0);
    MK.index.put(b, base, v.index);
  },
  decode(b, base = 0) {
    return {
      svcId: MK.svc_id.get(b, base),
      scope: scope01(SY_MAGLEV_KEY.name, MK.scope.get(b, base)),
      gen: gen01(SY_MAGLEV_KEY.name, 'gen', MK.gen.get(b, base)),
      index: MK.index.get(b, base),
    };
  },
};

export const maglevValueCodec: Codec<MaglevValue> = {
  spec: SY_MAGLEV_VALUE,
  encodeInto(v, b, base) {
    SY_MAGLEV_VALUE.f.backend_id.put(b, base, v.backendId);
  },
  decode(b, base = 0) {
    return { backendId: SY_MAGLEV_VALUE.f.backend_id.get(b, base) };
  },
};

export const affBeValueCodec: Codec<{ readonly flags: number }> = flagsCodec(SY_AFF_BE_VALUE);

export const srcRange4KeyCodec = srcRangeKeyCodec(SY_SRCRANGE4_KEY, IO4);
export const srcRange6KeyCodec = srcRangeKeyCodec(SY_SRCRANGE6_KEY, IO6);

/**
 * The LPM key of a source range of frontend svcId: prefixlen 32 + the CIDR's
 * bits, host bits cleared. null when `cidr` does not parse.
 */
export function srcRangeKey(svcId: number, cidr: string): SrcRangeKey | null {
  const c = parseCidr(cidr, 'decimal');
  if (c === null) return null;
  return { prefixlen: 32 + c.prefix, svcId, addr: maskedText(c.bytes, c.prefix) };
}

function maskedText(bytes: Uint8Array, prefix: number): string {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = (out[i] as number) & ((0xff << (8 - keep)) & 0xff);
  }
  return out.length === 4 ? `${out[0]}.${out[1]}.${out[2]}.${out[3]}` : formatIPv6(out);
}

function ctKeyCodec(spec: typeof SY_CT4_KEY | typeof SY_CT6_KEY, io: AddrIO): Codec<CtKey> {
  const k = spec.f;
  return {
    spec,
    encodeInto(v, b, base) {
      io.put(k.saddr_be, b, base, v.saddr, spec.name);
      io.put(k.daddr_be, b, base, v.daddr, spec.name);
      k.sport_be.put(b, base, v.sport);
      k.dport_be.put(b, base, v.dport);
      k.proto.put(b, base, protoNumber(v.proto));
      k.dir.put(b, base, v.dir);
      zeroPadding(spec, b, base);
    },
    decode(b, base = 0) {
      const dir = k.dir.get(b, base);
      if (dir > 1) throw new LayoutError(spec.name, 'dir', `${dir} is not SY_CT_DIR_FWD or SY_CT_DIR_REV`);
      return {
        saddr: io.get(k.saddr_be, b, base),
        daddr: io.get(k.daddr_be, b, base),
        sport: k.sport_be.get(b, base),
        dport: k.dport_be.get(b, base),
        proto: protoName(k.proto.get(b, base), spec.name),
        dir: dir as 0 | 1,
      };
    },
  };
}

export const ct4KeyCodec = ctKeyCodec(SY_CT4_KEY, IO4);
export const ct6KeyCodec = ctKeyCodec(SY_CT6_KEY, IO6);

function ctValueCodec(spec: typeof SY_CT4_VALUE, io: AddrIO): Codec<CtValue> {
  const k = spec.f;
  return {
    spec,
    encodeInto(v, b, base) {
      io.put(k.client_addr_be, b, base, v.clientAddr, spec.name);
      io.put(k.front_addr_be, b, base, v.frontAddr, spec.name);
      io.put(k.backend_addr_be, b, base, v.backendAddr, spec.name);
      io.put(k.nat_addr_be, b, base, v.natAddr, spec.name);
      k.client_port_be.put(b, base, v.clientPort);
      k.front_port_be.put(b, base, v.frontPort);
      k.backend_port_be.put(b, base, v.backendPort);
      k.nat_port_be.put(b, base, v.natPort);
      k.backend_id.put(b, base, v.backendId);
      k.svc_id.put(b, base, v.svcId);
      k.flags.put(b, base, v.flags);
      k.tcp_state.put(b, base, v.tcpState);
      k.fin_mask.put(b, base, v.finMask);
      k.pad.put(b, base, 0);
      k.created_ns.putBig(b, base, v.createdNs);
      k.last_seen_ns.putBig(b, base, v.lastSeenNs);
    },
    decode(b, base = 0) {
      return {
        clientAddr: io.get(k.client_addr_be, b, base),
        frontAddr: io.get(k.front_addr_be, b, base),
        backendAddr: io.get(k.backend_addr_be, b, base),
        natAddr: io.get(k.nat_addr_be, b, base),
        clientPort: k.client_port_be.get(b, base),
        frontPort: k.front_port_be.get(b, base),
        backendPort: k.backend_port_be.get(b, base),
        natPort: k.nat_port_be.get(b, base),
        backendId: k.backend_id.get(b, base),
        svcId: k.svc_id.get(b, base),
        flags: k.flags.get(b, base),
        tcpState: k.tcp_state.get(b, base),
        finMask: k.fin_mask.get(b, base),
        createdNs: k.created_ns.getBig(b, base),
        lastSeenNs: k.last_seen_ns.getBig(b, base),
      };
    },
  };
}

export const ct4ValueCodec = ctValueCodec(SY_CT4_VALUE, IO4);
export const ct6ValueCodec = ctValueCodec(SY_CT6_VALUE as typeof SY_CT4_VALUE, IO6);

const FK = SY_FRAG4_KEY.f;
export const frag4KeyCodec: Codec<Frag4Key> = {
  spec: SY_FRAG4_KEY,
  encodeInto(v, b, base) {
    IO4.put(FK.saddr_be, b, base, v.saddr, SY_FRAG4_KEY.name);
    IO4.put(FK.daddr_be, b, base, v.daddr, SY_FRAG4_KEY.name);
    FK.id_be.put(b, base, v.id);
    FK.proto.put(b, base, protoNumber(v.proto));
    FK.pad.put(b, base, 0);
  },
  decode(b, base = 0) {
    return {
      saddr: IO4.get(FK.saddr_be, b, base),
      daddr: IO4.get(FK.daddr_be, b, base),
      id: FK.id_be.get(b, base),
      proto: protoName(FK.proto.get(b, base), SY_FRAG4_KEY.name),
    };
  },
};

const FV = SY_FRAG_VALUE.f;
export const fragValueCodec: Codec<FragValue> = {
  spec: SY_FRAG_VALUE,
  encodeInto(v, b, base) {
    FV.sport_be.put(b, base, v.sport);
    FV.dport_be.put(b, base, v.dport);
    FV.pad.put(b, base, 0);
    FV.created_ns.putBig(b, base, v.createdNs);
  },
  decode(b, base = 0) {
    return { sport: FV.sport_be.get(b, base), dport: FV.dport_be.get(b, base), createdNs: FV.created_ns.getBig(b, base) };
  },
};

const TF = SY_TRAFFIC.f;
/** struct sy_traffic: one CPU's counters (or a sum). */
export const trafficCodec: Codec<Traffic> = {
  spec: SY_TRAFFIC,
  encodeInto(v, b, base) {
    if (v === ZERO_TRAFFIC) {
      // What diff writes with every new id (110k entries in a 10k-Service full sync): no bigint stores.
      b.fill(0, base, base + SY_TRAFFIC.size);
      return;
    }
    TF.packets.putBig(b, base, v.packets);
    TF.bytes.putBig(b, base, v.bytes);
    TF.reply_packets.putBig(b, base, v.replyPackets);
    TF.reply_bytes.putBig(b, base, v.replyBytes);
    TF.conns.putBig(b, base, v.conns);
  },
  decode(b, base = 0) {
    return {
      packets: TF.packets.getBig(b, base),
      bytes: TF.bytes.getBig(b, base),
      replyPackets: TF.reply_packets.getBig(b, base),
      replyBytes: TF.reply_bytes.getBig(b, base),
      conns: TF.conns.getBig(b, base),
    };
  },
};

export const ZERO_TRAFFIC: Traffic = Object.freeze({ packets: 0n, bytes: 0n, replyPackets: 0n, replyBytes: 0n, conns: 0n });

export function addTraffic(a: Traffic, b: Traffic): Traffic {
  return {
    packets: a.packets + b.packets,
    bytes: a.bytes + b.bytes,
    replyPackets: a.replyPackets + b.replyPackets,
    replyBytes: a.replyBytes + b.replyBytes,
    conns: a.conns + b.conns,
  };
}

/** A per-CPU struct sy_traffic as user space reads it (one value per possible CPU), summed over the CPUs. */
export function decodePerCpuTraffic(b: Buffer, cpus: number): Traffic {
  const stride = Math.ceil(SY_TRAFFIC.size / 8) * 8;
  if (b.length !== stride * cpus)
    throw new LayoutError(SY_TRAFFIC.name, 'value', `per-CPU value is ${b.length} bytes, expected ${stride * cpus} for ${cpus} CPUs`);
  let sum = ZERO_TRAFFIC;
  for (let i = 0; i < cpus; i++) sum = addTraffic(sum, trafficCodec.decode(b, i * stride));
  return sum;
}

/**
 * Value records of a per-CPU map from one value each (valueSize bytes, as
 * encodeOpBatch writes them): each value copied to every CPU's slot of
 * `stride` bytes (roundup(valueSize, 8) * CPUs), as bpf(2) takes them.
 */
export function expandPerCpu(values: Buffer, count: number, valueSize: number, stride: number): Buffer {
  if (stride === valueSize) return values;
  const slot = Math.ceil(valueSize / 8) * 8;
  const cpus = stride / slot;
  if (!Number.isInteger(cpus) || values.length !== count * valueSize)
    throw new LayoutError('(per-CPU)', 'value', `cannot spread ${values.length} bytes of ${count} values of ${valueSize} over records of ${stride}`);
  const out = Buffer.alloc(count * stride);
  // Byte by byte: a Buffer.copy() per record and CPU costs more than the copy (records are 40 bytes).
  for (let i = 0; i < count; i++) {
    const from = i * valueSize;
    for (let c = 0; c < cpus; c++) {
      const to = i * stride + c * slot;
      for (let j = 0; j < valueSize; j++) out[to + j] = values[from + j] as number;
    }
  }
  return out;
}

const CF = SY_CONFIG_V2.f;
const ZERO16 = new Uint8Array(16);

function putCidr(addr: Field, len: Field, b: Buffer, base: number, text: string | null, family: 'IPv4' | 'IPv6'): void {
  if (text === null) {
    if (family === 'IPv4') addr.put(b, base, 0);
    else addr.putBytes(b, base, ZERO16);
    len.put(b, base, 0);
    return;
  }
  const c = parseCidr(text, 'decimal');
  if (c === null || c.family !== family) throw new LayoutError(SY_CONFIG_V2.name, addr.name, `not an ${family} CIDR: ${JSON.stringify(text)}`);
  const masked = maskedText(c.bytes, c.prefix);
  (family === 'IPv4' ? IO4 : IO6).put(addr, b, base, masked, SY_CONFIG_V2.name);
  len.put(b, base, c.prefix);
}

export const configCodec: Codec<NodeConfig> = {
  spec: SY_CONFIG_V2,
  encodeInto(v, b, base) {
    if (v.nodeAddr4 === null) CF.node_addr4_be.put(b, base, 0);
    else IO4.put(CF.node_addr4_be, b, base, v.nodeAddr4, SY_CONFIG_V2.name);
    if (v.nodeAddr6 === null) CF.node_addr6_be.putBytes(b, base, ZERO16);
    else IO6.put(CF.node_addr6_be, b, base, v.nodeAddr6, SY_CONFIG_V2.name);
    putCidr(CF.pod_cidr4_be, CF.pod_cidr4_len, b, base, v.podCidr4, 'IPv4');
    putCidr(CF.pod_cidr6_be, CF.pod_cidr6_len, b, base, v.podCidr6, 'IPv6');
    CF.snat_port_min.put(b, base, v.snatPortMin);
    CF.snat_port_max.put(b, base, v.snatPortMax);
    CF.pad.put(b, base, 0);
    CF.flags.put(b, base, v.flags);
    CF.pad2.put(b, base, 0);
  },
  decode(b, base = 0) {
    const a4 = IO4.get(CF.node_addr4_be, b, base);
    const a6 = IO6.get(CF.node_addr6_be, b, base);
    const l4 = CF.pod_cidr4_len.get(b, base);
    const l6 = CF.pod_cidr6_len.get(b, base);
    return {
      nodeAddr4: a4 === '0.0.0.0' ? null : a4,
      nodeAddr6: a6 === '::' ? null : a6,
      podCidr4: l4 === 0 ? null : `${IO4.get(CF.pod_cidr4_be, b, base)}/${l4}`,
      podCidr6: l6 === 0 ? null : `${IO6.get(CF.pod_cidr6_be, b, base)}/${l6}`,
      snatPortMin: CF.snat_port_min.get(b, base),
      snatPortMax: CF.snat_port_max.get(b, base),
      flags: CF.flags.get(b, base),
    };
  },
};

/** sy_sockcfg_v2's one value: the node's network namespace (SO_NETNS_COOKIE); 0n = the socket hooks act for no socket. */
export interface SockConfig {
  readonly netnsCookie: bigint;
}

export const sockConfigCodec: Codec<SockConfig> = {
  spec: SY_SOCKCFG,
  encodeInto(v, b, base) {
    SY_SOCKCFG.f.netns_cookie.putBig(b, base, v.netnsCookie);
    SY_SOCKCFG.f.flags.put(b, base, 0);
    SY_SOCKCFG.f.pad.put(b, base, 0);
  },
  decode(b, base = 0) {
    return { netnsCookie: SY_SOCKCFG.f.netns_cookie.getBig(b, base) };
  },
};

/** Key of sy_sock_rnat4_v2 / sy_sock_rnat6_v2: a socket (cookie) and the backend it was pointed at. */
export interface SockRnatKey {
  readonly cookie: bigint;
  readonly addr: string;
  readonly port: number;
  readonly proto: Protocol;
}

/** The frontend a socket's backend reads as (recvmsg, getpeername). */
export interface SockRnatValue {
  readonly addr: string;
  readonly port: number;
}

function sockRnatKeyCodec(spec: typeof SY_SOCK_RNAT4_KEY | typeof SY_SOCK_RNAT6_KEY, io: AddrIO): Codec<SockRnatKey> {
  const k = spec.f;
  return {
    spec,
    encodeInto(v, b, base) {
      b.fill(0, base, base + spec.size);
      k.cookie.putBig(b, base, v.cookie);
      io.put(k.addr_be, b, base, v.addr, spec.name);
      k.port_be.put(b, base, v.port);
      k.proto.put(b, base, protoNumber(v.proto));
    },
    decode(b, base = 0) {
      return {
        cookie: k.cookie.getBig(b, base),
        addr: io.get(k.addr_be, b, base),
        port: k.port_be.get(b, base),
        proto: protoName(k.proto.get(b, base), spec.name),
      };
    },
  };
}

function sockRnatValueCodec(spec: typeof SY_SOCK_RNAT4_VALUE | typeof SY_SOCK_RNAT6_VALUE, io: AddrIO): Codec<SockRnatValue> {
  const k = spec.f;
  return {
    spec,
    encodeInto(v, b, base) {
      b.fill(0, base, base + spec.size);
      io.put(k.addr_be, b, base, v.addr, spec.name);
      k.port_be.put(b, base, v.port);
    },
    decode(b, base = 0) {
      return { addr: io.get(k.addr_be, b, base), port: k.port_be.get(b, base) };
    },
  };
}

// ---------------------------------------------------------------------------
// Maps.

export type MapType = 'hash' | 'lru_hash' | 'array' | 'percpu_array' | 'percpu_hash' | 'lpm_trie';

/** Whether user space reads and writes one value per possible CPU (roundup(value size, 8) bytes each). */
export function isPerCpu(t: MapType): boolean {
  return t === 'percpu_array' || t === 'percpu_hash';
}

/** BPF_F_NO_PREALLOC: a hash update links a freshly allocated element and frees the old one after an RCU grace period (a reader holding the old master keeps a consistent copy until then); an LPM trie requires it. */
export const BPF_F_NO_PREALLOC = 1;

/** What the BTF test checks of a map: as declared in the object. */
export interface MapSpec {
  /** Pinned name, with the layout version suffix. */
  readonly name: string;
  readonly type: MapType;
  readonly key: StructSpec;
  readonly value: StructSpec;
  /** The object's default; the daemon may load another (Capacities). */
  readonly maxEntries: number;
  /** map_flags. */
  readonly flags: number;
}

/** A map with the codecs of its key and value. */
export interface MapDef<K, V> extends MapSpec {
  readonly keyCodec: Codec<K>;
  readonly valueCodec: Codec<V>;
}

function def<K, V>(name: string, type: MapType, keyCodec: Codec<K>, valueCodec: Codec<V>, maxEntries: number, flags: number): MapDef<K, V> {
  return { name, type, key: keyCodec.spec, value: valueCodec.spec, maxEntries, flags, keyCodec, valueCodec };
}

const NP = BPF_F_NO_PREALLOC;

/**
 * Every map of layout 2 (all pinned by name), by short name. The BTF test
 * checks each against the object's .maps section. stats and the traffic
 * counters (svccnt, becnt4, becnt6) are per-CPU: their value codecs read
 * one CPU's value (decodePerCpuCounters, decodePerCpuTraffic for the lot);
 * an op writes the same value on every CPU (expandPerCpu).
 */
export const MAPS = {
  svc4: def('sy_svc4_v2', 'hash', svc4KeyCodec, svcValueCodec, D.SY_SVC_MAX, NP),
  svc6: def('sy_svc6_v2', 'hash', svc6KeyCodec, svcValueCodec, D.SY_SVC_MAX, NP),
  backend4: def('sy_backend4_v2', 'hash', u32Codec, backend4Codec, D.SY_BACKEND_MAX, NP),
  backend6: def('sy_backend6_v2', 'hash', u32Codec, backend6Codec, D.SY_BACKEND_MAX, NP),
  vip4: def('sy_vip4_v2', 'hash', vip4KeyCodec, vipValueCodec, D.SY_VIP_MAX, NP),
  vip6: def('sy_vip6_v2', 'hash', vip6KeyCodec, vipValueCodec, D.SY_VIP_MAX, NP),
  srcrange4: def('sy_srcrange4_v2', 'lpm_trie', srcRange4KeyCodec, srcRangeValueCodec, D.SY_SRCRANGE_MAX, NP),
  srcrange6: def('sy_srcrange6_v2', 'lpm_trie', srcRange6KeyCodec, srcRangeValueCodec, D.SY_SRCRANGE_MAX, NP),
  ct4: def('sy_ct4_v2', 'lru_hash', ct4KeyCodec, ct4ValueCodec, D.SY_CT_MAX, 0),
  ct6: def('sy_ct6_v2', 'lru_hash', ct6KeyCodec, ct6ValueCodec, D.SY_CT_MAX, 0),
  frag4: def('sy_frag4_v2', 'lru_hash', frag4KeyCodec, fragValueCodec, D.SY_FRAG_MAX, 0),
  aff4: def('sy_aff4_v2', 'lru_hash', aff4KeyCodec, affValueCodec, D.SY_AFF_MAX, 0),
  aff6: def('sy_aff6_v2', 'lru_hash', aff6KeyCodec, affValueCodec, D.SY_AFF_MAX, 0),
  affbe: def('sy_aff_be_v2', 'hash', affBeKeyCodec, affBeValueCodec, D.SY_AFF_BE_MAX, NP),
  maglev: def('sy_maglev_v2', 'hash', maglevKeyCodec, maglevValueCodec, D.SY_MAGLEV_MAX, NP),
  svccnt: def('sy_svc_cnt_v2', 'percpu_hash', u32Codec, trafficCodec, D.SY_SVC_CNT_MAX, NP),
  becnt4: def('sy_be_cnt4_v2', 'percpu_hash', u32Codec, trafficCodec, D.SY_BE_CNT_MAX, NP),
  becnt6: def('sy_be_cnt6_v2', 'percpu_hash', u32Codec, trafficCodec, D.SY_BE_CNT_MAX, NP),
  config: def('sy_config_v2', 'array', u32Codec, configCodec, 1, 0),
  stats: def('sy_stats_v2', 'percpu_array', u32Codec, u64Codec, D.SY_STAT_MAX, 0),
} as const;

export type MapName = keyof typeof MAPS;

/**
 * The maps only the socket hooks' object (bpf/build/sock.bpf.o) declares;
 * it shares every map of MAPS with the tc programs through their pins. The
 * BTF test checks these against that object.
 */
export const SOCK_MAPS = {
  sockcfg: def('sy_sockcfg_v2', 'array', u32Codec, sockConfigCodec, 1, 0),
  rnat4: def('sy_sock_rnat4_v2', 'lru_hash', sockRnatKeyCodec(SY_SOCK_RNAT4_KEY, IO4), sockRnatValueCodec(SY_SOCK_RNAT4_VALUE, IO4), D.SY_SOCK_RNAT_MAX, 0),
  rnat6: def('sy_sock_rnat6_v2', 'lru_hash', sockRnatKeyCodec(SY_SOCK_RNAT6_KEY, IO6), sockRnatValueCodec(SY_SOCK_RNAT6_VALUE, IO6), D.SY_SOCK_RNAT_MAX, 0),
} as const;
export type KeyOf<M extends MapName> = (typeof MAPS)[M] extends MapDef<infer K, unknown> ? K : never;
export type ValueOf<M extends MapName> = (typeof MAPS)[M] extends MapDef<unknown, infer V> ? V : never;

/** The maps the control plane writes entry by entry (ops); the rest are the datapath's (ct, frag, aff, stats) or written whole (config). */
export const PROGRAMMED_MAPS = [
  'svc4',
  'svc6',
  'backend4',
  'backend6',
  'vip4',
  'vip6',
  'srcrange4',
  'srcrange6',
  'affbe',
  'maglev',
] as const satisfies readonly MapName[];
export type ProgrammedMapName = (typeof PROGRAMMED_MAPS)[number];

/** The traffic counter maps: entries written (zeroed) and deleted by the control plane with the ids, counted by the programs. */
export const COUNTER_MAPS = ['svccnt', 'becnt4', 'becnt6'] as const satisfies readonly MapName[];
export type CounterMapName = (typeof COUNTER_MAPS)[number];

/** What adopt reads back (src/dataplane/bpf/adopt.ts): the programmed maps and the counter maps (their keys). */
export const ADOPTED_MAPS = [...PROGRAMMED_MAPS, ...COUNTER_MAPS] as const;

/** Per-map max_entries the daemon loads the object with (MapSpec.maxEntries where absent). */
export type Capacities = Readonly<Partial<Record<MapName, number>>>;

export function capacityOf(caps: Capacities, m: MapName): number {
  return caps[m] ?? MAPS[m].maxEntries;
}

// ---------------------------------------------------------------------------
// Ops: one update or delete of one entry of one map, in plain data.

export type UpdateOp<M extends MapName = MapName> = M extends MapName
  ? { readonly map: M; readonly action: 'update'; readonly key: KeyOf<M>; readonly value: ValueOf<M> }
  : never;
export type DeleteOp<M extends MapName = MapName> = M extends MapName ? { readonly map: M; readonly action: 'delete'; readonly key: KeyOf<M> } : never;
export type Op<M extends MapName = MapName> = UpdateOp<M> | DeleteOp<M>;

/** One kernel batch: all ops of one kind on one map, encoded back to back. */
export interface OpBatch {
  /** The pinned map name (MAPS[x].name). */
  readonly map: string;
  readonly action: 'update' | 'delete';
  readonly count: number;
  readonly keys: Buffer;
  /** For updates. */
  readonly values: Buffer | null;
}

/**
 * Encodes a run of ops on one map with one action (a Plan phase is one or a
 * few such runs) into one key buffer and one value buffer, in op order.
 * Throws on a mixed run.
 */
export function encodeOpBatch(ops: readonly Op[]): OpBatch | null {
  const first = ops[0];
  if (first === undefined) return null;
  const m = MAPS[first.map] as MapDef<unknown, unknown>;
  const update = first.action === 'update';
  const n = ops.length;
  const ks = m.key.size;
  const vs = m.value.size;
  const keys = Buffer.allocUnsafe(ks * n);
  const values = update ? Buffer.allocUnsafe(vs * n) : null;
  for (let i = 0; i < n; i++) {
    const op = ops[i] as Op;
    if (op.map !== first.map || op.action !== first.action)
      throw new LayoutError('(batch)', 'kind', `op ${i} is ${op.action} ${op.map} in a batch of ${first.action} ${first.map}`);
    m.keyCodec.encodeInto(op.key, keys, i * ks);
    if (values !== null) m.valueCodec.encodeInto((op as UpdateOp).value, values, i * vs);
  }
  return { map: m.name, action: first.action, count: n, keys, values };
}

/** Decodes a dump ([key, value] buffers) of map `m`. */
export function decodeEntries<M extends MapName>(m: M, entries: ReadonlyArray<readonly [Buffer, Buffer]>): Array<[KeyOf<M>, ValueOf<M>]> {
  const d = MAPS[m] as MapDef<KeyOf<M>, ValueOf<M>>;
  return entries.map(([k, v]) => [d.keyCodec.decode(k), d.valueCodec.decode(v)]);
}
