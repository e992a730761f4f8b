// adopt: rebuild the ProgrammedState from a dump of the pinned maps after a
// restart or upgrade, so the first sync diffs against what the kernel
// really holds (and established flows keep their backends).
//
// What is live: each master (slot 0, key gen 0) and the slots 1..count of
// the generation it names; each backend a live slot points at. Everything
// else is left over from an interrupted plan and comes back as `orphans`:
//   - slots of the other generation (crash between phases 2 and 4),
//   - slots beyond count, slots with no master (crash in phase 4),
//   - master keys with gen != 0 (never written by diff),
//   - backends no live slot points at (crash before phase 5 or after 1).
// orphans are ordered safely (slot deletes, then backend deletes) and MUST
// be applied before the first plan diffed against `state`: that plan may
// reuse the ids and keys they free.
// A master whose live slots are missing or point at missing backends is
// kept in `state` (with 0 / the dangling id in backendIds): diff never sees
// it as unchanged, so the first full sync rewrites it, or removes it.

import { backendCodec, svcKeyCodec, svcValueCodec, u32Codec } from './layout-v1.ts';
import { l4Key, programmedState } from './state.ts';
import type { FrontendKey, L4Addr, Op, ProgrammedService, ProgrammedState, SvcKey, SvcValue } from './state.ts';

export interface Adopted {
  readonly state: ProgrammedState;
  /** Cleanup to apply, in order, before the first plan. */
  readonly orphans: Op[];
}

interface Frontend {
  master?: SvcValue;
  badMasters: SvcKey[];
  /** "gen/slot" -> [key, value] */
  slots: Map<string, [SvcKey, SvcValue]>;
  frontend: L4Addr;
}

export function programmedFromDump(svcEntries: ReadonlyArray<readonly [Buffer, Buffer]>, backendEntries: ReadonlyArray<readonly [Buffer, Buffer]>): Adopted {
  const frontends = groupByFrontend(svcEntries);
  const backends = new Map<number, L4Addr>();
  for (const [k, v] of backendEntries) backends.set(u32Codec.decode(k), backendCodec.decode(v));

  const services: Array<[FrontendKey, Omit<ProgrammedService, 'backendKeys'>]> = [];
  const slotOrphans: SvcKey[] = [];
  for (const key of [...frontends.keys()].sort()) {
    const fe = frontends.get(key) as Frontend;
    slotOrphans.push(...fe.badMasters);
    const m = fe.master;
    const backendIds: number[] = [];
    for (let slot = 1; m !== undefined && slot <= m.count; slot++) {
      backendIds.push(fe.slots.get(`${m.gen}/${slot}`)?.[1].backendId ?? 0);
    }
    for (const [sk] of fe.slots.values()) {
      if (m === undefined || sk.gen !== m.gen || sk.slot > m.count) slotOrphans.push(sk);
    }
    if (m !== undefined) services.push([key, { frontend: fe.frontend, svcId: m.svcId, gen: m.gen, flags: m.flags, backendIds }]);
  }

  const state = programmedState(services, backends);
  const deadBackends = [...backends.keys()].filter((id) => !state.backendsById.has(id)).sort((a, b) => a - b);
  slotOrphans.sort(compareKeys);
  const orphans: Op[] = [...slotOrphans.map((key): Op => ({ kind: 'svc-delete', key })), ...deadBackends.map((id): Op => ({ kind: 'backend-delete', id }))];
  return { state, orphans };
}

function groupByFrontend(entries: ReadonlyArray<readonly [Buffer, Buffer]>): Map<FrontendKey, Frontend> {
  const out = new Map<FrontendKey, Frontend>();
  for (const [k, v] of entries) {
    const key = svcKeyCodec.decode(k);
    const frontend: L4Addr = { addr: key.addr, port: key.port, proto: key.proto };
    const fk = l4Key(frontend);
    let fe = out.get(fk);
    if (fe === undefined) {
      fe = { badMasters: [], slots: new Map(), frontend };
      out.set(fk, fe);
    }
    const value = svcValueCodec.decode(v);
    if (key.slot === 0 && key.gen === 0) fe.master = value;
    else if (key.slot === 0) fe.badMasters.push(key);
    else fe.slots.set(`${key.gen}/${key.slot}`, [key, value]);
  }
  return out;
}

function compareKeys(a: SvcKey, b: SvcKey): number {
  const fa = l4Key(a);
  const fb = l4Key(b);
  return (fa < fb ? -1 : fa > fb ? 1 : 0) || a.gen - b.gen || a.slot - b.slot;
}
