// counters: the datapath's traffic counters read back (sy_svc_cnt_v2 by
// svc_id, sy_be_cnt4_v2 / sy_be_cnt6_v2 by backend id; bpf/include/sy_maps.h
// says what the programs count and when), summed over CPUs, and joined
// with the programmed state to name what each id is: the frontend (address,
// port, protocol, kind, owning ServicePort) or the backend (address, port,
// protocol). The control plane writes a zeroed entry when it hands out an
// id and deletes it when the id is freed (diff.ts), so a reused id starts
// from zero and an entry always belongs to the object that holds its id now.
//
// readCounters() works on any map source (the daemon's loaded object, or
// maps opened from the pin directory by a command such as `switchyard
// status`: readPinnedCounters() by id, pinnedCounters() per frontend and
// backend).

import type { IPFamily } from '../../model/types.ts';
import type { FrontendKind } from '../../model/verdict.ts';
import type { NativeBinding } from '../../native/binding.ts';
import { BpfMap, isNotExist, type MapRecord } from '../../native/index.ts';
import {
  COUNTER_MAPS,
  type CounterMapName,
  decodePerCpuCounters,
  decodePerCpuTraffic,
  HEADER_DEFINES,
  MAPS,
  STAT_NAMES,
  type StatName,
  sumCounters,
  type Traffic,
  u32Codec,
} from './layout.ts';
import type { BackendAddr, DesiredState, FrontendKey, L4Addr, ProgrammedState } from './state.ts';

export type { Traffic } from './layout.ts';

/** Counters by id, summed over CPUs, as the maps hold them. */
export interface RawCounters {
  /** svc_id -> counters of that frontend (both families share the id space). */
  readonly services: ReadonlyMap<number, Traffic>;
  /** backend id -> counters, per family (each family has its own ids). */
  readonly backends: Readonly<Record<IPFamily, ReadonlyMap<number, Traffic>>>;
}

export interface FrontendCounters {
  readonly key: FrontendKey;
  readonly svcId: number;
  readonly family: IPFamily;
  readonly frontend: L4Addr;
  /** What compiled the frontend; null until the first sync after a restart (adopted state has no owners). */
  readonly kind: FrontendKind | null;
  /** The ServicePort id "namespace/name:portName/PROTOCOL"; null as kind. */
  readonly owner: string | null;
  readonly traffic: Traffic;
}

export interface BackendCounters {
  readonly family: IPFamily;
  readonly id: number;
  readonly backend: BackendAddr;
  readonly traffic: Traffic;
}

export interface Counters {
  /** Every programmed frontend, sorted by key. */
  readonly frontends: readonly FrontendCounters[];
  /** Every programmed backend, by family then id. */
  readonly backends: readonly BackendCounters[];
}

/** The dump of one counter map, or null when it is not there. */
export type CounterDump = (m: CounterMapName) => Promise<MapRecord[] | null>;

/** Reads the three counter maps; `cpus` is the number of possible CPUs (a per-CPU value holds one struct per CPU). */
export async function readCounters(dump: CounterDump, cpus: number): Promise<RawCounters> {
  const out = {} as Record<CounterMapName, Map<number, Traffic>>;
  for (const m of COUNTER_MAPS) {
    const byId = new Map<number, Traffic>();
    for (const [k, v] of (await dump(m)) ?? []) byId.set(u32Codec.decode(k), decodePerCpuTraffic(v, cpus));
    out[m] = byId;
  }
  return { services: out.svccnt, backends: { IPv4: out.becnt4, IPv6: out.becnt6 } };
}

/** A pinned map's entries; null when it is not pinned. */
async function dumpPinned(native: NativeBinding, pinPath: string, name: string): Promise<MapRecord[] | null> {
  let map: BpfMap;
  try {
    map = BpfMap.openPinned(`${pinPath}/${name}`, native);
  } catch (err) {
    if (isNotExist(err)) return null;
    throw err;
  }
  try {
    return await map.dump();
  } finally {
    map.close();
  }
}

/**
 * The counters in the maps pinned under pinPath, by id, without a daemon.
 * A counter map that is not pinned reads as empty (a daemon of a version
 * without counters, or nothing running).
 */
export async function readPinnedCounters(native: NativeBinding, pinPath: string): Promise<RawCounters> {
  return readCounters((m) => dumpPinned(native, pinPath, MAPS[m].name), native.numPossibleCpus());
}

const NONE: Traffic = Object.freeze({ packets: 0n, bytes: 0n, replyPackets: 0n, replyBytes: 0n, conns: 0n });

/**
 * Names the raw counters by the programmed state: one row per programmed
 * frontend and per programmed backend (zero when its id has no entry).
 * `desired` (the last compiled state) gives each frontend its kind and owner.
 */
export function labelCounters(raw: RawCounters, programmed: ProgrammedState, desired: DesiredState | null): Counters {
  const frontends: FrontendCounters[] = [];
  programmed.services.forEach((svc, key) => {
    const want = desired?.services.get(key);
    frontends.push({
      key,
      svcId: svc.svcId,
      family: svc.family,
      frontend: svc.frontend,
      kind: want?.kind ?? null,
      owner: want?.owner ?? null,
      traffic: raw.services.get(svc.svcId) ?? NONE,
    });
  });
  frontends.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const backends: BackendCounters[] = [];
  for (const family of ['IPv4', 'IPv6'] as const) {
    const rows: BackendCounters[] = [];
    programmed.backends[family].byId.forEach((b, id) => {
      rows.push({ family, id, backend: b.backend, traffic: raw.backends[family].get(id) ?? NONE });
    });
    rows.sort((a, b) => a.id - b.id);
    backends.push(...rows);
  }
  return { frontends, backends };
}

/** Whether any counter moved. */
export function hasTraffic(t: Traffic): boolean {
  return t.packets !== 0n || t.bytes !== 0n || t.replyPackets !== 0n || t.replyBytes !== 0n || t.conns !== 0n;
}

/** The sy_stats_v2 counters from a dump of the map (index -> per-CPU u64), summed over CPUs, by name. */
export function decodeStats(dump: readonly MapRecord[], cpus: number): Record<StatName, bigint> {
  const byIndex = new Map(dump.map(([k, v]) => [u32Codec.decode(k), sumCounters(decodePerCpuCounters(v, cpus))]));
  return Object.fromEntries(STAT_NAMES.map((name) => [name, byIndex.get(HEADER_DEFINES[`SY_STAT_${name}`]) ?? 0n])) as Record<StatName, bigint>;
}
