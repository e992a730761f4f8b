// The BPF dataplane's state in plain data: what compile() wants programmed
// (DesiredState), what is programmed now (ProgrammedState, read back from the
// pinned maps at start and kept up to date by apply), and the ordered
// operations diff() produces to go from one to the other (Plan). Field
// meanings follow bpf/include/sy_maps.h (layout 2).
//
// A frontend is (family, address, port, protocol). It has an internal
// master (scope INTERNAL) always, and an external master (scope EXTERNAL)
// when external clients get another verdict or other backends; both share
// the frontend's svc_id, and each has its own slots and generation.
// Backends, backend ids, VIPs and source ranges live per family (the …4 and
// …6 maps); svc_ids are one space for both families.
//
// Both states live in copy-on-write containers (src/util/cow.ts: CowMap
// sharded by key hash, CowVec chunked by id, IdSet a bitmap) so that a plan
// that touches one Service copies a few small shards, not 100k-entry maps:
// the previous state stays valid and shares everything it did not change.

import type { FrontendKind } from '../../model/verdict.ts';
import type { IPFamily, Protocol } from '../../model/types.ts';
import { CowMap, CowVec, IdSet } from '../../util/cow.ts';
import { formatIPv4, parseIPv4 } from '../../util/ip.ts';
import type { Problem } from '../types.ts';
import { type Capacities, type Op, type ProgrammedMapName, SY_SVC_F_AFFINITY, type SvcAction } from './layout.ts';

export type { Problem } from '../types.ts';
export type { Op } from './layout.ts';

/** "10.96.0.10:80/TCP", "[fd00:10:96::a]:80/TCP" */
export type FrontendKey = string;

/**
 * A backend (address, port, protocol, SY_BE_F_LOCAL) as one value: for
 * IPv4 a number, address * 2^19 + port * 8 + protocol index * 2 + local
 * (exact below 2^51; numeric order is address, port, protocol order); for
 * IPv6 the text "addr|port|PROTO|local". formatBackendKey() prints either.
 */
export type BackendKey = number | string;

export interface L4Addr {
  /** Canonical text of its family. */
  readonly addr: string;
  readonly port: number;
  readonly proto: Protocol;
}

/** A backend as the backend maps hold it. */
export interface BackendAddr extends L4Addr {
  /** SY_BE_F_* */
  readonly flags: number;
}

/** "10.96.0.10:80/TCP" or "[fd00::1]:80/TCP": a FrontendKey, or any address in text. */
export function l4Key(a: L4Addr): string {
  return a.addr.includes(':') ? `[${a.addr}]:${a.port}/${a.proto}` : `${a.addr}:${a.port}/${a.proto}`;
}

export const PROTO_INDEX: Readonly<Record<Protocol, number>> = { TCP: 0, UDP: 1, SCTP: 2 };
const PROTO_BY_INDEX: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** BackendKey of an IPv4 backend from a parsed address (parseIPv4 in src/util/ip.ts). */
export function backendKey4(addr: number, port: number, proto: Protocol, flags: number): number {
  return addr * 524288 + port * 8 + PROTO_INDEX[proto] * 2 + (flags & 1);
}

export function backendKeyOf(b: BackendAddr): BackendKey {
  if (b.addr.includes(':')) return `${b.addr}|${b.port}|${b.proto}|${b.flags & 1}`;
  const addr = parseIPv4(b.addr, 'decimal');
  if (addr < 0) throw new RangeError(`not a dotted IPv4 address: ${b.addr}`);
  return backendKey4(addr, b.port, b.proto, b.flags);
}

export function formatBackendKey(k: BackendKey): string {
  if (typeof k === 'string') {
    const [addr, port, proto, local] = k.split('|');
    return `[${addr}]:${port}/${proto}${local === '1' ? ' local' : ''}`;
  }
  const addr = Math.floor(k / 524288);
  const rest = k - addr * 524288;
  return `${formatIPv4(addr)}:${rest >>> 3}/${PROTO_BY_INDEX[(rest >>> 1) & 3] ?? '?'}${rest & 1 ? ' local' : ''}`;
}

export function compareBackendKeys(a: BackendKey, b: BackendKey): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

export const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

/** What one master of a frontend should hold. */
export interface DesiredScope {
  readonly action: SvcAction;
  /** SY_SVC_F_* */
  readonly flags: number;
  /** sessionAffinity ClientIP timeout with SY_SVC_F_AFFINITY in flags, else 0. */
  readonly affinityTimeoutS: number;
  /** Maglev table size with SY_SVC_F_MAGLEV in flags, else 0. */
  readonly maglevM: number;
  /** Sorted by BackendKey, no duplicates. */
  readonly backends: readonly BackendAddr[];
  /** backends[i]'s BackendKey, computed once by compile so diff need not. */
  readonly backendKeys: readonly BackendKey[];
}

export interface DesiredService {
  readonly key: FrontendKey;
  readonly family: IPFamily;
  readonly kind: FrontendKind;
  readonly frontend: L4Addr;
  readonly internal: DesiredScope;
  /** The scope external clients use, when it differs from internal (internal then has SY_SVC_F_EXT_SCOPE). */
  readonly external: DesiredScope | null;
  /** loadBalancerSourceRanges as LPM CIDRs (network address/bits, sorted); empty: no filter. */
  readonly sourceRanges: readonly string[];
  /** ServicePortInfo.id that produced this frontend, for messages and status. */
  readonly owner: string;
}

export interface DesiredState {
  readonly services: CowMap<FrontendKey, DesiredService>;
  /**
   * Frontends that may differ from the DesiredState this one was compiled
   * from: 'all' after a full compile, else the frontends of the changed
   * ServicePorts. Pass it to diff() as its scope.
   */
  readonly changed: ReadonlySet<FrontendKey> | 'all';
  /** Bad input, one entry per bad field; the rest of the snapshot compiled. Sorted by owner, field. */
  readonly problems: readonly Problem[];
  /** The options it was compiled with (a change recompiles everything). */
  readonly optionsKey: string;
  /** Indexes for compileChanged(); treat as opaque. */
  readonly index: CompileIndex;
}

export interface CompileIndex {
  /** ServicePort id -> every frontend it claims, won or lost. */
  readonly claims: CowMap<string, readonly FrontendKey[]>;
  /** Contested frontends -> the ServicePort ids that lost them, in id order. Usually empty. */
  readonly losers: ReadonlyMap<FrontendKey, readonly string[]>;
  /** ServicePort id -> its input problems (not conflicts). Sparse. */
  readonly inputProblems: CowMap<string, readonly Problem[]>;
}

export interface ProgrammedScope {
  readonly gen: 0 | 1;
  readonly action: SvcAction;
  readonly flags: number;
  /** The master's affinity_timeout_s (0 without SY_SVC_F_AFFINITY). */
  readonly affinityTimeoutS: number;
  /**
   * The master's maglev_m (0 without SY_SVC_F_MAGLEV): with backends, the
   * scope's generation has a complete table of that many entries in
   * sy_maglev_v2 (adopt says 0, damaged, when it found it incomplete).
   */
  readonly maglevM: number;
  /**
   * backend id per slot, slot 1 first. After adopting a damaged map an entry
   * may be 0 (slot missing) or an id with no backend.
   */
  readonly backendIds: readonly number[];
  /**
   * The key of each slot's backend, parallel to backendIds, so diff() can
   * tell "unchanged" by comparing arrays. -1 where the slot is damaged or
   * its backend is not the one `backends` holds for that key (a duplicate
   * found by adopt): such a scope is never unchanged, so the next full sync
   * rewrites it.
   */
  readonly backendKeys: readonly BackendKey[];
}

export interface ProgrammedService {
  readonly family: IPFamily;
  readonly frontend: L4Addr;
  readonly svcId: number;
  readonly internal: ProgrammedScope;
  readonly external: ProgrammedScope | null;
  /** Source-range CIDRs programmed under svcId, sorted. */
  readonly sourceRanges: readonly string[];
}

export interface ProgrammedBackend {
  readonly id: number;
  readonly key: BackendKey;
  readonly backend: BackendAddr;
  /** Live slots pointing at this backend, across all frontends. Always >= 1 in a state. */
  readonly refs: number;
}

/** Ids freed by a plan, reusable from `until` (ms, the clock diff() is given) on. */
export interface Quarantined {
  readonly id: number;
  readonly until: number;
}

/** The backends of one family (one backend map). */
export interface FamilyBackends {
  /** One backend per key: the id new slots for that key use. */
  readonly byKey: CowMap<BackendKey, ProgrammedBackend>;
  /** Every programmed backend by id; a superset of `byKey` only after adopting duplicates. */
  readonly byId: CowVec<ProgrammedBackend>;
  /** Ids in use, in danglingRefs, or quarantined: never handed out. */
  readonly ids: IdSet;
  /**
   * Ids that live slots point at but no backend has (damage found by
   * adopt) -> how many slots: reserved in ids until the last such slot is
   * rewritten, so a new backend never appears in a damaged slot.
   */
  readonly danglingRefs: ReadonlyMap<number, number>;
  /** Freed ids not reusable yet (ID_QUARANTINE_MS), oldest first. */
  readonly quarantine: readonly Quarantined[];
}

export interface ProgrammedState {
  readonly services: CowMap<FrontendKey, ProgrammedService>;
  readonly backends: Readonly<Record<IPFamily, FamilyBackends>>;
  /** svc_ids in use or quarantined. */
  readonly svcIds: IdSet;
  readonly svcQuarantine: readonly Quarantined[];
  /** Service IPs in sy_vip*_v2 -> how many programmed ClusterIP frontends use them. */
  readonly vips: ReadonlyMap<string, number>;
  /** Desired frontends a plan could not program (a map full): every later diff retries them. */
  readonly deferred: ReadonlySet<FrontendKey>;
  /** Entries in each map the control plane writes, for the capacity check. */
  readonly entries: Readonly<Record<ProgrammedMapName, number>>;
  /** Which new ids need a zeroed traffic counter entry (CounterFresh). */
  readonly counterFresh: CounterFresh;
}

/**
 * Per id space (svc_ids, backend ids of each family): ids from this one up
 * have not been handed out since their counter map was last seen empty.
 * The datapath creates a counter entry on an id's first packet, so a new
 * id there needs nothing written; a lower id gets a zeroed entry when it is
 * handed out again (its previous owner's flows may have left one). A state
 * adopted from maps that held anything starts with every id below
 * (NO_FRESH_IDS): only empty maps are known to hold no stale counter.
 */
export type CounterFresh = Readonly<Record<'svc' | IPFamily, number>>;

export const ALL_IDS_FRESH: CounterFresh = { svc: 1, IPv4: 1, IPv6: 1 };
export const NO_FRESH_IDS: CounterFresh = { svc: IdSet.MAX_ID + 1, IPv4: IdSet.MAX_ID + 1, IPv6: IdSet.MAX_ID + 1 };

export function noEntries(): Record<ProgrammedMapName, number> {
  return { svc4: 0, svc6: 0, backend4: 0, backend6: 0, vip4: 0, vip6: 0, srcrange4: 0, srcrange6: 0, affbe: 0, maglev: 0 };
}

/** The sy_maglev_v2 entries a scope's live generation holds: its table, when it has Maglev and backends. */
export function maglevEntries(sc: { readonly maglevM: number; readonly backendIds: readonly number[] } | null): number {
  return sc !== null && sc.maglevM > 0 && sc.backendIds.length > 0 ? sc.maglevM : 0;
}

/**
 * The sy_aff_be_v2 entries a programmed scope holds: its backend ids (live,
 * unique, sorted) when the master has SY_SVC_F_AFFINITY, else none.
 */
export function affinityMembers(sc: { readonly flags: number; readonly backendIds: readonly number[] } | null): number[] {
  if (sc === null || (sc.flags & SY_SVC_F_AFFINITY) === 0) return [];
  return [...new Set(sc.backendIds.filter((id) => id !== 0))].sort((a, b) => a - b);
}

/**
 * How long a freed backend id or svc_id stays unused: a connection-tracking
 * entry names a backend by id (and address, which the datapath checks), so
 * an id is not handed to another backend while flows that named it are
 * likely alive and idle. Time-based (not a count of syncs), so that a burst
 * of syncs does not shorten it; lost on restart, where the datapath's
 * address check still catches a reused id.
 */
export const ID_QUARANTINE_MS = 120_000;

export function emptyFamilyBackends(): FamilyBackends {
  return { byKey: CowMap.empty(), byId: CowVec.empty(), ids: IdSet.empty(), danglingRefs: new Map(), quarantine: [] };
}

export function emptyProgrammedState(): ProgrammedState {
  return {
    services: CowMap.empty(),
    backends: { IPv4: emptyFamilyBackends(), IPv6: emptyFamilyBackends() },
    svcIds: IdSet.empty(),
    svcQuarantine: [],
    vips: new Map(),
    deferred: new Set(),
    entries: noEntries(),
    counterFresh: ALL_IDS_FRESH,
  };
}

type ScopeIn = Omit<ProgrammedScope, 'backendKeys'>;
export type ProgrammedServiceIn = Omit<ProgrammedService, 'internal' | 'external'> & { readonly internal: ScopeIn; readonly external: ScopeIn | null };

/**
 * Builds a ProgrammedState (indexes, refcounts) from services and backends
 * given by id per family. Backends with no live slot (or an id above
 * IdSet.MAX_ID) are dropped; slots pointing at unknown ids are kept as they
 * are (see ProgrammedScope.backendIds). vips: the addresses in the vip maps
 * with how many ClusterIP frontends use each (adopt counts them).
 */
export function programmedState(
  services: Iterable<readonly [FrontendKey, ProgrammedServiceIn]>,
  backendsById: Readonly<Record<IPFamily, Iterable<readonly [number, BackendAddr]>>>,
  vips: ReadonlyMap<string, number> = new Map(),
  counterFresh: CounterFresh = NO_FRESH_IDS,
): ProgrammedState {
  const svcList = [...services];
  const scopes = (s: ProgrammedServiceIn): ScopeIn[] => (s.external === null ? [s.internal] : [s.internal, s.external]);
  const fam = {} as Record<IPFamily, FamilyBackends>;
  for (const family of FAMILIES) {
    const refs = new Map<number, number>();
    for (const [, svc] of svcList) {
      if (svc.family !== family) continue;
      for (const sc of scopes(svc)) for (const id of sc.backendIds) refs.set(id, (refs.get(id) ?? 0) + 1);
    }
    const byId = CowVec.empty<ProgrammedBackend>().edit();
    const byKey = CowMap.empty<BackendKey, ProgrammedBackend>().edit();
    const ids = IdSet.empty().edit();
    const sorted = [...backendsById[family]].sort((a, b) => a[0] - b[0]);
    for (const [id, backend] of sorted) {
      const n = refs.get(id);
      if (n === undefined || id < 1 || id > IdSet.MAX_ID) continue;
      const key = backendKeyOf(backend);
      const b: ProgrammedBackend = { id, key, backend, refs: n };
      byId.set(id, b);
      ids.add(id);
      if (!byKey.has(key)) byKey.set(key, b); // lowest id wins
    }
    const danglingRefs = new Map<number, number>();
    for (const [id, n] of refs) {
      if (id < 1 || id > IdSet.MAX_ID || byId.has(id)) continue;
      ids.add(id);
      danglingRefs.set(id, n);
    }
    fam[family] = { byKey: byKey.done(), byId: byId.done(), ids: ids.done(), danglingRefs, quarantine: [] };
  }

  const svcs = CowMap.empty<FrontendKey, ProgrammedService>().edit();
  const svcIds = IdSet.empty().edit();
  const entries = noEntries();
  for (const fam4 of FAMILIES) entries[fam4 === 'IPv4' ? 'backend4' : 'backend6'] = fam[fam4].byId.size;
  for (const [addr] of vips) entries[addr.includes(':') ? 'vip6' : 'vip4']++;
  for (const [key, svc] of svcList) {
    const v6 = svc.family === 'IPv6';
    for (const sc of scopes(svc)) entries[v6 ? 'svc6' : 'svc4'] += 1 + sc.backendIds.filter((id) => id !== 0).length;
    entries[v6 ? 'srcrange6' : 'srcrange4'] += svc.sourceRanges.length;
    for (const sc of scopes(svc)) entries.affbe += affinityMembers(sc).length;
    for (const sc of scopes(svc)) entries.maglev += maglevEntries(sc);
    const f = fam[svc.family];
    const withKeys = (sc: ScopeIn): ProgrammedScope => ({
      ...sc,
      backendKeys: sc.backendIds.map((id) => {
        const b = f.byId.get(id);
        return b !== undefined && f.byKey.get(b.key)?.id === id ? b.key : -1;
      }),
    });
    svcs.set(key, { ...svc, internal: withKeys(svc.internal), external: svc.external === null ? null : withKeys(svc.external) });
    if (svc.svcId >= 1 && svc.svcId <= IdSet.MAX_ID) svcIds.add(svc.svcId);
  }
  return { services: svcs.done(), backends: fam, svcIds: svcIds.done(), svcQuarantine: [], vips, deferred: new Set(), entries, counterFresh };
}

/** Indexes into Plan.phases. */
export const PHASE_BACKEND_UPDATE = 0;
export const PHASE_SLOT_UPDATE = 1;
export const PHASE_MASTER_UPDATE = 2;
export const PHASE_SVC_DELETE = 3;
export const PHASE_BACKEND_DELETE = 4;
export const PHASE_NAMES = ['backend-update', 'slot-update', 'master-update', 'svc-delete', 'backend-delete'] as const;

/**
 * Operations in the order they must reach the kernel. Each phase is one
 * batch per map; phases run one after the other:
 *   1. backend-update   (backends exist before any slot points at them;
 *                        source ranges before the masters that rely on them)
 *   2. svc-update slots (the new generation, invisible until its master flips)
 *   3. svc-update masters (flip: the frontend now uses the new generation;
 *                        an external master before the internal master
 *                        that sends clients to it; VIPs no longer used, so
 *                        that no packet meets a VIP without its port)
 *   4. svc-delete       (old generation's slots; masters of removed
 *                        frontends, internal first, then their slots;
 *                        source ranges no longer used; new VIPs, once their
 *                        masters translate)
 *   5. backend-delete   (backends no slot points at any more)
 * `phases` always has exactly these 5 entries (PHASE_*), empty ones included.
 * Within a phase the order matters too (a batch is applied in order; kernel
 * batch ops stop at the first error), and every prefix of the op sequence
 * leaves the maps consistent: a packet never sees a half-written frontend.
 */
export interface Plan {
  readonly phases: readonly (readonly Op[])[];
  /** The programmed state once every phase has been applied. */
  readonly next: ProgrammedState;
  /** Frontends this plan touches, for logs and tests. Sorted. */
  readonly touched: readonly FrontendKey[];
  /** Frontends left out because a map is full (owner named), sorted by owner. */
  readonly problems: readonly Problem[];
}

/** What diff() needs besides the two states. */
export interface DiffOptions {
  /** Map capacities (max_entries) the maps were loaded with; MAPS defaults where absent. */
  readonly capacities?: Capacities;
  /** Clock for the id quarantine (ms); default 0 (tests that do not care). */
  readonly nowMs?: number;
}
