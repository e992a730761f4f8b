// apply: the only step of the BPF dataplane with side effects. It writes a
// Plan's phases to the maps in order, one batch per map and operation within
// a phase, so that backends exist before the slots that point at them, a
// Service's new slots exist before its master flips to them, and nothing is
// deleted while a master still points at it.

import { encodeOpBatch, type OpBatch } from './layout-v1.ts';
import type { Op, Plan } from './state.ts';

/** Where batches go: the pinned maps in production, a fake store in unit tests. */
export interface MapWriter {
  write(batch: OpBatch): Promise<void>;
}

export interface ApplyStats {
  readonly updates: number;
  readonly deletes: number;
  readonly batches: number;
}

function mapOf(op: Op): 'svc' | 'backend' {
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

export async function applyPlan(plan: Plan, maps: MapWriter): Promise<ApplyStats> {
  return applyOps(plan.phases, maps);
}

/** Writes phases of ops in order (a Plan's, or adoption's orphan cleanup). */
export async function applyOps(phases: readonly (readonly Op[])[], maps: MapWriter): Promise<ApplyStats> {
  let updates = 0;
  let deletes = 0;
  let batches = 0;
  for (const phase of phases) {
    for (const run of runs(phase)) {
      const batch = encodeOpBatch(run);
      if (!batch) continue;
      await maps.write(batch);
      if (batch.action === 'delete') deletes += batch.count;
      else updates += batch.count;
      batches++;
    }
  }
  return { updates, deletes, batches };
}
