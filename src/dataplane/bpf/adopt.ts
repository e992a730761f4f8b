// adopt: rebuild the ProgrammedState from a dump of the pinned maps after a
// restart or upgrade, so the first sync diffs against what the kernel
// really holds (and established flows keep their backends). Generic over
// the maps the control plane writes (layout.ts PROGRAMMED_MAPS), both
// families.
//
// What is live: each internal master (scope INTERNAL, slot 0, key gen 0)
// and the slots 1..count of the generation it names; the external master
// of the same frontend (and its slots) when the internal one exists; each
// backend a live slot points at; the source ranges under a live frontend's
// svc_id; the VIPs of live ClusterIP frontends. Everything else is left
// over from an interrupted plan and comes back as `orphans`:
//   - slots of another generation (crash between phases 2 and 4),
//   - slots beyond count, slots or external masters with no internal master,
//   - master keys with gen != 0 (never written by diff),
//   - backends no live slot points at, source ranges of no live frontend,
//     VIPs no ClusterIP frontend uses.
// orphans also re-adds the VIP of a live ClusterIP frontend that lost it,
// makes sy_aff_be_v2 hold exactly the backends of the live affinity scopes,
// and deletes the traffic counter entries of ids nothing uses; counters of
// live ids are kept (a restart does not reset them), and a live id without
// one gets it from the datapath on its next packet. Only when every map
// was empty are new ids known to have no stale counter (CounterFresh).
// orphans are ordered safely (svc deletes, then the rest) and MUST be
// applied before the first plan diffed against `state`: that plan may
// reuse the ids and keys they free.
// A master whose live slots are missing or point at missing backends is
// kept in `state` (with 0 / the dangling id in backendIds): diff never sees
// it as unchanged, so the first full sync rewrites it, or removes it.

import type { IPFamily } from '../../model/types.ts';
import {
  decodeEntries,
  MAPS,
  u32Codec,
  type MapName,
  type Op,
  SY_SCOPE_EXTERNAL,
  SY_SCOPE_INTERNAL,
  SY_SVC_F_CLUSTER_IP,
  SY_SVC_F_MAGLEV,
  type AffBeKey,
  type Gen,
  type Scope,
  SY_VIP_F_CLUSTER_IP,
  type SvcKey,
  type SvcValue,
} from './layout.ts';
import { affinityMembers, ALL_IDS_FRESH, FAMILIES, l4Key, NO_FRESH_IDS, programmedState, type ProgrammedServiceIn } from './state.ts';
import type { BackendAddr, FrontendKey, L4Addr, ProgrammedState } from './state.ts';

export interface Adopted {
  readonly state: ProgrammedState;
  /** Cleanup to apply, in order, before the first plan. */
  readonly orphans: Op[];
}

type Entries = ReadonlyArray<readonly [Buffer, Buffer]>;

/** Dumps of the programmed maps, by pinned map name (MAPS[x].name); a missing map reads as empty. */
export type MapDumps = ReadonlyMap<string, Entries>;

interface ScopeEntries {
  master?: SvcValue;
  /** "gen/slot" -> [key, value] */
  readonly slots: Map<string, [SvcKey, SvcValue]>;
}

interface Frontend {
  readonly frontend: L4Addr;
  readonly badMasters: SvcKey[];
  readonly scopes: [ScopeEntries, ScopeEntries];
}

const NAMES = {
  IPv4: { svc: 'svc4', backend: 'backend4', vip: 'vip4', srcrange: 'srcrange4', becnt: 'becnt4' },
  IPv6: { svc: 'svc6', backend: 'backend6', vip: 'vip6', srcrange: 'srcrange6', becnt: 'becnt6' },
} as const;

/** The ids a per-CPU counter map holds entries for (values are not decoded). */
function counterIds(dumps: MapDumps, m: 'svccnt' | 'becnt4' | 'becnt6'): Set<number> {
  return new Set((dumps.get(MAPS[m].name) ?? []).map(([k]) => u32Codec.decode(k)));
}

/** Deletes of the counter entries of ids that are not live. */
function orphanCounters(m: 'svccnt' | 'becnt4' | 'becnt6', have: Set<number>, live: Iterable<number>): Op[] {
  const want = new Set(live);
  const out: Op[] = [];
  for (const id of [...have].sort((a, b) => a - b)) if (!want.has(id)) out.push({ map: m, action: 'delete', key: id } as Op);
  return out;
}

export function programmedFromDump(dumps: MapDumps): Adopted {
  const services: Array<[FrontendKey, ProgrammedServiceIn]> = [];
  const backends = { IPv4: new Map<number, BackendAddr>(), IPv6: new Map<number, BackendAddr>() } as Record<IPFamily, Map<number, BackendAddr>>;
  const svcDeletes: Op[] = [];
  const rest: Op[] = [];
  const vips = new Map<string, number>();
  const tables = maglevTables(dumps);
  const keptTables = new Set<string>();

  for (const family of FAMILIES) {
    const n = NAMES[family];
    const dump = (m: MapName): Entries => dumps.get(MAPS[m].name) ?? [];
    for (const [id, b] of decodeEntries(n.backend, dump(n.backend))) backends[family].set(id, b);
    const ranges = new Map<number, string[]>();
    for (const [k] of decodeEntries(n.srcrange, dump(n.srcrange))) {
      const list = ranges.get(k.svcId) ?? [];
      list.push(`${k.addr}/${k.prefixlen - 32}`);
      ranges.set(k.svcId, list);
    }
    const frontends = groupByFrontend(decodeEntries(n.svc, dump(n.svc)));
    const live = new Set<number>();
    const clusterIPs = new Set<string>();
    for (const key of [...frontends.keys()].sort()) {
      const fe = frontends.get(key) as Frontend;
      const orphanSlots: SvcKey[] = [...fe.badMasters];
      const [int, ext] = fe.scopes;
      const m = int.master;
      const scopeIn = (sc: ScopeEntries, scope: Scope) => {
        const master = sc.master as SvcValue;
        const backendIds: number[] = [];
        for (let slot = 1; slot <= master.count; slot++) backendIds.push(sc.slots.get(`${master.gen}/${slot}`)?.[1].backendId ?? 0);
        for (const [sk] of sc.slots.values()) if (sk.gen !== master.gen || sk.slot > master.count) orphanSlots.push(sk);
        // Maglev: the live generation's table is kept when complete and naming only this scope's backends; else rewritten.
        let maglevM = (master.flags & SY_SVC_F_MAGLEV) !== 0 ? master.maglevM : 0;
        if (maglevM > 0 && backendIds.length > 0) {
          const group = `${master.svcId}/${scope}/${master.gen}`;
          const t = tables.get(group);
          const ids = new Set(backendIds);
          if (t !== undefined && t.size === maglevM && [...t.values()].every((id) => ids.has(id))) keptTables.add(group);
          else maglevM = 0;
        }
        return { gen: master.gen, action: master.action, flags: master.flags, affinityTimeoutS: master.affinityTimeoutS, maglevM, backendIds };
      };
      if (m === undefined) {
        // No internal master: nothing reaches this frontend; everything of it goes.
        for (const sc of fe.scopes) for (const [sk] of sc.slots.values()) orphanSlots.push(sk);
        if (ext.master !== undefined) orphanSlots.push({ ...fe.frontend, scope: SY_SCOPE_EXTERNAL, slot: 0, gen: 0 });
      } else {
        const internal = scopeIn(int, SY_SCOPE_INTERNAL);
        const external = ext.master === undefined ? null : scopeIn(ext, SY_SCOPE_EXTERNAL);
        if (ext.master === undefined) for (const [sk] of ext.slots.values()) orphanSlots.push(sk);
        live.add(m.svcId);
        const sourceRanges = [...(ranges.get(m.svcId) ?? [])].sort();
        services.push([key, { family, frontend: fe.frontend, svcId: m.svcId, internal, external, sourceRanges }]);
        if ((m.flags & SY_SVC_F_CLUSTER_IP) !== 0) {
          clusterIPs.add(fe.frontend.addr);
          vips.set(fe.frontend.addr, (vips.get(fe.frontend.addr) ?? 0) + 1);
        }
      }
      orphanSlots.sort(compareKeys);
      for (const sk of orphanSlots) svcDeletes.push({ map: n.svc, action: 'delete', key: sk } as Op);
    }
    for (const [svcId, list] of [...ranges].sort((a, b) => a[0] - b[0])) {
      if (live.has(svcId)) continue;
      for (const cidr of list.sort()) {
        const [addr = '', bits = '0'] = cidr.split('/');
        rest.push({ map: n.srcrange, action: 'delete', key: { prefixlen: 32 + Number(bits), svcId, addr } } as Op);
      }
    }
    const present = new Set(decodeEntries(n.vip, dump(n.vip)).map(([k]) => k.addr));
    for (const addr of [...present].sort()) if (!clusterIPs.has(addr)) rest.push({ map: n.vip, action: 'delete', key: { addr } } as Op);
    for (const addr of [...clusterIPs].sort())
      if (!present.has(addr)) rest.push({ map: n.vip, action: 'update', key: { addr }, value: { flags: SY_VIP_F_CLUSTER_IP } } as Op);
  }

  const empty = [...dumps.values()].every((entries) => entries.length === 0);
  const state = programmedState(services, backends, vips, empty ? ALL_IDS_FRESH : NO_FRESH_IDS);
  for (const family of FAMILIES) {
    const dead = [...backends[family].keys()].filter((id) => !state.backends[family].byId.has(id)).sort((a, b) => a - b);
    for (const id of dead) rest.push({ map: NAMES[family].backend, action: 'delete', key: id } as Op);
    const live: number[] = [];
    state.backends[family].byId.forEach((_b, id) => live.push(id));
    rest.push(...orphanCounters(NAMES[family].becnt, counterIds(dumps, NAMES[family].becnt), live));
  }
  const liveSvc: number[] = [];
  state.services.forEach((svc) => {
    if (svc.svcId >= 1) liveSvc.push(svc.svcId);
  });
  rest.push(...orphanCounters('svccnt', counterIds(dumps, 'svccnt'), liveSvc));
  rest.push(...reconcileMembers(dumps, state));
  // Maglev entries of no live, complete table: an interrupted plan, a frontend gone, damage.
  for (const [group, t] of [...tables].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (keptTables.has(group)) continue;
    const [svcId, scope, gen] = group.split('/').map(Number) as [number, Scope, Gen];
    for (const index of [...t.keys()].sort((a, b) => a - b)) rest.push({ map: 'maglev', action: 'delete', key: { svcId, scope, gen, index } } as Op);
  }
  return { state, orphans: [...svcDeletes, ...rest] };
}

/** sy_maglev_v2 by "svc_id/scope/gen" -> index -> backend id. */
function maglevTables(dumps: MapDumps): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const [k, v] of decodeEntries('maglev', dumps.get(MAPS.maglev.name) ?? [])) {
    const group = `${k.svcId}/${k.scope}/${k.gen}`;
    let t = out.get(group);
    if (t === undefined) {
      t = new Map();
      out.set(group, t);
    }
    t.set(k.index, v.backendId);
  }
  return out;
}

/**
 * Ops that make sy_aff_be_v2 hold exactly the members of the live affinity
 * scopes (state.ts affinityMembers): deletes for the rest (an interrupted
 * plan, a frontend gone), entries for the missing.
 */
function reconcileMembers(dumps: MapDumps, state: ProgrammedState): Op[] {
  const text = (k: AffBeKey): string => `${k.svcId}/${k.scope}/${k.backendId}`;
  const want = new Map<string, AffBeKey>();
  state.services.forEach((svc) => {
    for (const [scope, sc] of [
      [SY_SCOPE_INTERNAL, svc.internal],
      [SY_SCOPE_EXTERNAL, svc.external],
    ] as const) {
      for (const backendId of affinityMembers(sc)) {
        const k: AffBeKey = { svcId: svc.svcId, backendId, scope };
        want.set(text(k), k);
      }
    }
  });
  const have = new Map<string, AffBeKey>();
  for (const [k] of decodeEntries('affbe', dumps.get(MAPS.affbe.name) ?? [])) have.set(text(k), k);
  const out: Op[] = [];
  for (const t of [...have.keys()].sort()) if (!want.has(t)) out.push({ map: 'affbe', action: 'delete', key: have.get(t) } as Op);
  for (const t of [...want.keys()].sort()) if (!have.has(t)) out.push({ map: 'affbe', action: 'update', key: want.get(t), value: { flags: 0 } } as Op);
  return out;
}

function groupByFrontend(entries: ReadonlyArray<[SvcKey, SvcValue]>): Map<FrontendKey, Frontend> {
  const out = new Map<FrontendKey, Frontend>();
  for (const [key, value] of entries) {
    const frontend: L4Addr = { addr: key.addr, port: key.port, proto: key.proto };
    const fk = l4Key(frontend);
    let fe = out.get(fk);
    if (fe === undefined) {
      fe = { frontend, badMasters: [], scopes: [{ slots: new Map() }, { slots: new Map() }] };
      out.set(fk, fe);
    }
    const sc = fe.scopes[key.scope];
    if (key.slot === 0 && key.gen === 0) sc.master = value;
    else if (key.slot === 0) fe.badMasters.push(key);
    else sc.slots.set(`${key.gen}/${key.slot}`, [key, value]);
  }
  return out;
}

function compareKeys(a: SvcKey, b: SvcKey): number {
  return a.scope - b.scope || a.gen - b.gen || a.slot - b.slot;
}
