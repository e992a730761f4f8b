// The BPF dataplane's state in plain data: what compile() wants programmed
// (DesiredState), what is programmed now (ProgrammedState, read back from the
// pinned maps at start and kept up to date by apply), and the ordered
// operations diff() produces to go from one to the other (Plan).
// Field meanings follow bpf/include/sy_maps.h.
//
// Both states live in copy-on-write containers (src/util/cow.ts: CowMap
// sharded by key hash, CowVec chunked by id, IdSet a bitmap) so that a plan
// that touches one Service copies a few small shards, not 100k-entry maps:
// the previous state stays valid and shares everything it did not change.

import type { Protocol } from '../../model/types.ts';
import { CowMap, CowVec, IdSet } from '../../util/cow.ts';
import { formatIPv4, parseIPv4 } from '../../util/ip.ts';
import type { Problem } from '../types.ts';

export type { Problem } from '../types.ts';

/** "10.96.0.10:80/TCP" */
export type FrontendKey = string;
/**
 * A backend address as one number: IPv4 * 2^18 + port * 4 + protocol index
 * (TCP 0, UDP 1, SCTP 2). Exact (< 2^50), cheap to build, hash and compare,
 * and numeric order is (address, port, protocol) order. formatBackendKey()
 * gives "10.244.1.10:8080/TCP".
 */
export type BackendKey = number;

export interface L4Addr {
  readonly addr: string; // dotted IPv4
  readonly port: number;
  readonly proto: Protocol;
}

/** "10.96.0.10:80/TCP": a FrontendKey, or any address in text. */
export function l4Key(a: L4Addr): string {
  return `${a.addr}:${a.port}/${a.proto}`;
}

export const PROTO_INDEX: Readonly<Record<Protocol, number>> = { TCP: 0, UDP: 1, SCTP: 2 };
const PROTO_BY_INDEX: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** BackendKey from a parsed address (parseIPv4 in src/util/ip.ts). */
export function backendKey(addr: number, port: number, proto: Protocol): BackendKey {
  return addr * 262144 + port * 4 + PROTO_INDEX[proto];
}

export function backendKeyOf(a: L4Addr): BackendKey {
  const addr = parseIPv4(a.addr, 'decimal');
  if (addr < 0) throw new RangeError(`not a dotted IPv4 address: ${a.addr}`);
  return backendKey(addr, a.port, a.proto);
}

export function formatBackendKey(k: BackendKey): string {
  const addr = Math.floor(k / 262144);
  const rest = k - addr * 262144;
  return `${formatIPv4(addr)}:${rest >>> 2}/${PROTO_BY_INDEX[rest & 3] ?? '?'}`;
}

export interface DesiredService {
  readonly key: FrontendKey;
  readonly frontend: L4Addr;
  /** Sorted by BackendKey, no duplicates. */
  readonly backends: readonly L4Addr[];
  /** backends[i]'s BackendKey, computed once by compile so diff need not. */
  readonly backendKeys: readonly BackendKey[];
  /** SY_SVC_F_* */
  readonly flags: number;
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
  readonly masqueradeAll: boolean;
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

export interface ProgrammedService {
  readonly frontend: L4Addr;
  readonly svcId: number;
  readonly gen: 0 | 1;
  readonly flags: number;
  /**
   * backend id per slot, slot 1 first. After adopting a damaged map an entry
   * may be 0 (slot missing) or an id with no backend.
   */
  readonly backendIds: readonly number[];
  /**
   * The address of each slot's backend, parallel to backendIds, so diff()
   * can tell "unchanged" by comparing arrays. -1 where the slot is damaged
   * or its backend is not the one `backends` holds for that address (a
   * duplicate found by adopt): such a Service is never unchanged, so the
   * next full sync rewrites it.
   */
  readonly backendKeys: readonly BackendKey[];
}

export interface ProgrammedBackend {
  readonly id: number;
  readonly key: BackendKey;
  readonly backend: L4Addr;
  /** Live slots pointing at this backend, across all frontends. Always >= 1 in a state. */
  readonly refs: number;
}

export interface ProgrammedState {
  readonly services: CowMap<FrontendKey, ProgrammedService>;
  /** One backend per address: the id new slots for that address use. */
  readonly backends: CowMap<BackendKey, ProgrammedBackend>;
  /** Every programmed backend by id (sy_backend4_v1's key); a superset of `backends` only after adopting duplicates. */
  readonly backendsById: CowVec<ProgrammedBackend>;
  /** Backend ids in use, and the ids in danglingRefs, for lowest-unused allocation. */
  readonly backendIds: IdSet;
  /**
   * Ids that live slots point at but no backend has (damage found by
   * adopt) -> how many slots: reserved in backendIds until the last such
   * slot is rewritten, so a new backend never appears in a damaged slot.
   * Empty unless adopt found damage.
   */
  readonly danglingRefs: ReadonlyMap<number, number>;
  /** svc_ids in use. */
  readonly svcIds: IdSet;
}

export function emptyProgrammedState(): ProgrammedState {
  return {
    services: CowMap.empty(),
    backends: CowMap.empty(),
    backendsById: CowVec.empty(),
    backendIds: IdSet.empty(),
    svcIds: IdSet.empty(),
    danglingRefs: new Map(),
  };
}

/**
 * Builds a ProgrammedState (indexes, refcounts) from services and backends
 * given by id. Backends with no live slot (or an id above IdSet.MAX_ID: the
 * maps hold far fewer entries, so a larger id read back is damage) are
 * dropped; slots pointing at unknown ids are kept as they are (see
 * ProgrammedService.backendIds).
 */
export function programmedState(
  services: Iterable<readonly [FrontendKey, Omit<ProgrammedService, 'backendKeys'>]>,
  backendsById: Iterable<readonly [number, L4Addr]>,
): ProgrammedState {
  const svcList = [...services];
  const refs = new Map<number, number>();
  for (const [, svc] of svcList) for (const id of svc.backendIds) refs.set(id, (refs.get(id) ?? 0) + 1);

  const byId = CowVec.empty<ProgrammedBackend>().edit();
  const byKey = CowMap.empty<BackendKey, ProgrammedBackend>().edit();
  const ids = IdSet.empty().edit();
  const sorted = [...backendsById].sort((a, b) => a[0] - b[0]);
  for (const [id, backend] of sorted) {
    const n = refs.get(id);
    if (n === undefined || id < 1 || id > IdSet.MAX_ID) continue;
    const key = backendKeyOf(backend);
    const b: ProgrammedBackend = { id, key, backend, refs: n };
    byId.set(id, b);
    ids.add(id);
    if (!byKey.has(key)) byKey.set(key, b); // lowest id wins
  }

  // Ids live slots point at with no backend behind them stay reserved (see danglingRefs).
  const danglingRefs = new Map<number, number>();
  for (const [id, n] of refs) {
    if (id < 1 || id > IdSet.MAX_ID || byId.has(id)) continue;
    ids.add(id);
    danglingRefs.set(id, n);
  }

  const svcs = CowMap.empty<FrontendKey, ProgrammedService>().edit();
  const svcIds = IdSet.empty().edit();
  for (const [key, svc] of svcList) {
    const backendKeys = svc.backendIds.map((id) => {
      const b = byId.get(id);
      return b !== undefined && byKey.get(b.key)?.id === id ? b.key : -1;
    });
    svcs.set(key, { ...svc, backendKeys });
    if (svc.svcId >= 1 && svc.svcId <= IdSet.MAX_ID) svcIds.add(svc.svcId);
  }
  return {
    services: svcs.done(),
    backends: byKey.done(),
    backendsById: byId.done(),
    backendIds: ids.done(),
    svcIds: svcIds.done(),
    danglingRefs,
  };
}

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

export type Op =
  | { readonly kind: 'backend-update'; readonly id: number; readonly backend: L4Addr }
  | { readonly kind: 'backend-delete'; readonly id: number }
  | { readonly kind: 'svc-update'; readonly key: SvcKey; readonly value: SvcValue }
  | { readonly kind: 'svc-delete'; readonly key: SvcKey };

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
 *   1. backend-update   (backends exist before any slot points at them)
 *   2. svc-update slots (the new generation, invisible until its master flips)
 *   3. svc-update masters (flip: the Service now uses the new generation)
 *   4. svc-delete       (old generation's slots; masters of removed Services,
 *                        each removed master before its own slots)
 *   5. backend-delete   (backends no slot points at any more)
 * `phases` always has exactly these 5 entries (PHASE_*), empty ones included,
 * so phases[PHASE_SVC_DELETE] always means the same thing. Within a phase the
 * order matters too (a batch is applied in order; kernel batch ops stop at
 * the first error), and every prefix of the op sequence leaves the maps
 * consistent: a packet never sees a half-written Service.
 */
export interface Plan {
  readonly phases: readonly (readonly Op[])[];
  /** The programmed state once every phase has been applied. */
  readonly next: ProgrammedState;
  /** Frontends this plan touches, for logs and tests. Sorted. */
  readonly touched: readonly FrontendKey[];
}
