// Correctness check for the sync benchmark: dumps sy_svc4_v2,
// sy_backend4_v2 and sy_vip4_v2 and compares them with what was planned. A fast apply that
// wrote the wrong thing is not a result, so any mismatch fails the run.
//
// Two checks: the entry counts (one master per frontend plus one slot per
// endpoint; one backend per distinct endpoint address), and the maps read
// back as adopt does after a restart, frontend by frontend: the same
// backend addresses in the same slots, the generation and svc_id the plan
// chose, and nothing left over (no orphans).

import { programmedFromDump, type Adopted } from '../src/dataplane/bpf/adopt.ts';
import { MAPS } from '../src/dataplane/bpf/layout.ts';
import { type BackendKey, formatBackendKey, type DesiredState, type ProgrammedState } from '../src/dataplane/bpf/state.ts';
import type { BpfObject } from '../src/native/index.ts';

export interface Expected {
  readonly frontends: number;
  readonly slots: number;
  readonly backends: number;
}

export interface MapCheck {
  readonly svcEntries: number;
  readonly backendEntries: number;
  /** Time to dump both maps, and to rebuild the state from the dump (adopt, as at a daemon restart). */
  readonly dumpMs: number;
  readonly adoptMs: number;
  /** Empty when the maps hold exactly what was planned. */
  readonly failures: readonly string[];
}

export async function checkMaps(obj: BpfObject, desired: DesiredState, planned: ProgrammedState, want: Expected): Promise<MapCheck> {
  const t0 = performance.now();
  const svc = await obj.map(MAPS.svc4.name).dump();
  const backends = await obj.map(MAPS.backend4.name).dump();
  const vips = await obj.map(MAPS.vip4.name).dump();
  const svcCounters = await obj.map(MAPS.svccnt.name).dump();
  const beCounters = await obj.map(MAPS.becnt4.name).dump();
  const t1 = performance.now();
  const failures: string[] = [];
  const fail = (msg: string): void => void failures.push(msg);

  if (svc.length !== want.frontends + want.slots) {
    fail(`${MAPS.svc4.name}: ${svc.length} entries, expected ${want.frontends} masters + ${want.slots} slots = ${want.frontends + want.slots}`);
  }
  if (backends.length !== want.backends) fail(`${MAPS.backend4.name}: ${backends.length} entries, expected ${want.backends} unique backends`);
  // Fresh ids into empty maps: the datapath creates their counter entries on the first packet, the sync writes none.
  for (const [name, entries] of [
    [MAPS.svccnt.name, svcCounters],
    [MAPS.becnt4.name, beCounters],
  ] as const) {
    if (entries.length !== 0) fail(`${name}: ${entries.length} entries, expected none (no packet has been counted)`);
  }

  let adopted: Adopted;
  try {
    adopted = programmedFromDump(
      new Map([
        [MAPS.svc4.name, svc],
        [MAPS.backend4.name, backends],
        [MAPS.vip4.name, vips],
        [MAPS.svccnt.name, svcCounters],
        [MAPS.becnt4.name, beCounters],
      ]),
    );
  } catch (err) {
    fail(`the maps cannot be read back: ${(err as Error).message}`);
    return { svcEntries: svc.length, backendEntries: backends.length, dumpMs: t1 - t0, adoptMs: NaN, failures };
  }
  const t2 = performance.now();
  if (adopted.orphans.length > 0) fail(`${adopted.orphans.length} entries no master or live slot accounts for`);
  const got = adopted.state.services;
  if (got.size !== desired.services.size) fail(`${got.size} frontends in the maps, ${desired.services.size} desired`);
  let shown = 0;
  const mismatch = (key: string, what: string): void => {
    if (shown++ < 5) fail(`${key}: ${what}`);
  };
  desired.services.forEach((d, key) => {
    const g = got.get(key);
    const p = planned.services.get(key);
    if (g === undefined) return mismatch(key, 'desired but not in the maps');
    const slot = firstDifference(g.internal.backendKeys, d.internal.backendKeys);
    if (slot >= 0)
      return mismatch(key, `slot ${slot + 1} holds ${backendText(g.internal.backendKeys[slot])}, desired ${backendText(d.internal.backendKeys[slot])}`);
    if (p === undefined || g.internal.gen !== p.internal.gen || g.svcId !== p.svcId || g.internal.flags !== p.internal.flags)
      mismatch(key, 'master differs from the plan (gen, svc_id or flags)');
  });
  if (shown > 5) fail(`... and ${shown - 5} more frontends`);
  return { svcEntries: svc.length, backendEntries: backends.length, dumpMs: t1 - t0, adoptMs: t2 - t1, failures };
}

/** The first index where the arrays differ (length included), or -1. */
function firstDifference(a: readonly BackendKey[], b: readonly BackendKey[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** A slot's backend as text; adopt marks a damaged slot -1. */
function backendText(k: BackendKey | undefined): string {
  return k === undefined ? 'nothing' : k === -1 ? 'a missing or damaged backend' : formatBackendKey(k);
}
