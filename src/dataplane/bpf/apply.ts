// apply: the only step of the BPF dataplane with side effects. It writes a
// Plan's phases to the maps in order, one batch per map and operation within
// a phase, so that backends exist before the slots that point at them, a
// Service's new slots exist before its master flips to them, and nothing is
// deleted while a master still points at it.

import type { Op, Plan } from './state.ts';

export type MapName = 'svc' | 'backend';

/** Encodes one batch of ops for one map into back-to-back key (and value) records. */
export interface OpEncoder {
  updates(map: MapName, ops: readonly Op[]): { keys: Buffer; values: Buffer; count: number };
  deletes(map: MapName, ops: readonly Op[]): { keys: Buffer; count: number };
}

/** Where batches go: the pinned maps in production, a fake store in unit tests. */
export interface MapWriter {
  update(map: MapName, keys: Buffer, values: Buffer, count: number): Promise<void>;
  delete(map: MapName, keys: Buffer, count: number): Promise<void>;
}

export interface ApplyStats {
  readonly updates: number;
  readonly deletes: number;
  readonly batches: number;
}

function mapOf(op: Op): MapName {
  return op.kind === 'backend-update' || op.kind === 'backend-delete' ? 'backend' : 'svc';
}

function isDelete(op: Op): boolean {
  return op.kind === 'backend-delete' || op.kind === 'svc-delete';
}

/**
 * Splits a phase into runs of the same (map, update|delete), keeping order:
 * a phase is normally one run, and order inside a run is kept by the batch.
 */
function runs(phase: readonly Op[]): Op[][] {
  const out: Op[][] = [];
  let cur: Op[] = [];
  for (const op of phase) {
    const head = cur[0];
    if (head && (mapOf(head) !== mapOf(op) || isDelete(head) !== isDelete(op))) {
      out.push(cur);
      cur = [];
    }
    cur.push(op);
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export async function applyPlan(plan: Plan, enc: OpEncoder, maps: MapWriter): Promise<ApplyStats> {
  let updates = 0;
  let deletes = 0;
  let batches = 0;
  for (const phase of plan.phases) {
    for (const run of runs(phase)) {
      const first = run[0];
      if (!first) continue;
      const map = mapOf(first);
      if (isDelete(first)) {
        const b = enc.deletes(map, run);
        await maps.delete(map, b.keys, b.count);
        deletes += b.count;
      } else {
        const b = enc.updates(map, run);
        await maps.update(map, b.keys, b.values, b.count);
        updates += b.count;
      }
      batches++;
    }
  }
  return { updates, deletes, batches };
}
