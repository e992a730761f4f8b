// apply: the only step of the BPF dataplane with side effects. It writes a
// Plan's phases to the maps in order, one batch per run of ops on one map
// with one action within a phase (generic over layout.ts's MAPS), so that
// backends exist before the slots that point at them, a Service's new slots exist before its master flips to them, and nothing is
// deleted while a master still points at it.
//
// Within a phase, order matters only among the ops on one map, so the
// batches of different maps of a large phase are in flight together (each
// is a hop to the thread pool and a syscall; a full sync's first phase
// writes four maps, the per-CPU counters slowest), while runs on one map
// follow each other.
// The next phase is encoded while the current one is in flight, and starts
// only when every batch of the current one has landed. Consecutive phases
// that are each one batch on the same map and action go as one batch.

import { encodeOpBatch, type Op, type OpBatch } from './layout.ts';
import type { Plan } from './state.ts';

/** Where batches go: the pinned maps in production, a fake store in unit tests. */
export interface MapWriter {
  write(batch: OpBatch): Promise<void>;
}

export interface ApplyStats {
  readonly updates: number;
  readonly deletes: number;
  readonly batches: number;
}

/**
 * Splits a phase into runs of the same (map, action), in order of first
 * appearance, keeping the order of ops within each run: within a phase,
 * order matters only among ops on one map (an external master before the
 * internal one, a removed master before its slots), never across maps, so
 * a phase is one batch per map and action.
 */
export function phaseRuns(phase: readonly Op[]): Op[][] {
  // Keyed by map, then action, without building a string per op (a full
  // sync's phases hold 100k+ ops); consecutive ops usually share a run.
  const runs: Op[][] = [];
  const byMap = new Map<string, { update?: Op[]; delete?: Op[] }>();
  let last: Op | undefined;
  let lastRun: Op[] = [];
  for (let i = 0; i < phase.length; i++) {
    const op = phase[i] as Op;
    if (last !== undefined && op.map === last.map && op.action === last.action) {
      lastRun.push(op);
      continue;
    }
    let kinds = byMap.get(op.map);
    if (kinds === undefined) {
      kinds = {};
      byMap.set(op.map, kinds);
    }
    let run = kinds[op.action];
    if (run === undefined) {
      run = [];
      kinds[op.action] = run;
      runs.push(run);
    }
    run.push(op);
    last = op;
    lastRun = run;
  }
  return runs;
}

export async function applyPlan(plan: Plan, maps: MapWriter): Promise<ApplyStats> {
  return applyOps(plan.phases, maps);
}

/** Writes phases of ops in order (a Plan's, or adoption's orphan cleanup). */
export async function applyOps(phases: readonly (readonly Op[])[], maps: MapWriter): Promise<ApplyStats> {
  let updates = 0;
  let deletes = 0;
  let batches = 0;
  const encoded: (OpBatch[] | undefined)[] = [];
  const encode = (i: number): OpBatch[] => {
    let e = encoded[i];
    if (e === undefined) {
      e = encodePhase(phases[i] ?? []);
      encoded[i] = e;
    }
    return e;
  };
  let p = 0;
  while (p < phases.length) {
    let current = encode(p);
    let end = p + 1;
    // A phase that is one batch, followed by phases that are one batch on the
    // same map with the same action (a Plan's new slots, then the masters
    // that flip to them): one batch. The kernel applies a batch in order and
    // stops at the first failure, so the maps go through the same states,
    // with one trip to the kernel fewer.
    while (current.length === 1 && end < phases.length) {
      const following = encode(end);
      const only = current[0] as OpBatch;
      const other = following[0];
      if (following.length === 0) end++;
      else if (following.length === 1 && other !== undefined && other.map === only.map && other.action === only.action) {
        current = [joinBatches(only, other)];
        end++;
      } else break;
    }
    if (current.length > 0) {
      const inFlight = writePhase(current, maps);
      // Encoding (JavaScript, this thread) overlaps the syscalls of the phase in flight (the thread pool).
      let encodeError: unknown;
      try {
        if (end < phases.length) encode(end);
      } catch (err) {
        encodeError = err;
      }
      await inFlight;
      if (encodeError !== undefined) throw encodeError;
      for (const batch of current) {
        if (batch.action === 'delete') deletes += batch.count;
        else updates += batch.count;
        batches++;
      }
    }
    for (let i = p; i < end; i++) encoded[i] = undefined;
    p = end;
  }
  return { updates, deletes, batches };
}

/** Two batches of one map and action as one, a's records first. */
function joinBatches(a: OpBatch, b: OpBatch): OpBatch {
  const values = a.values === null || b.values === null ? null : Buffer.concat([a.values, b.values]);
  return { map: a.map, action: a.action, count: a.count + b.count, keys: Buffer.concat([a.keys, b.keys]), values };
}

/** A phase's batches, in phaseRuns order. */
function encodePhase(phase: readonly Op[]): OpBatch[] {
  const out: OpBatch[] = [];
  for (const run of phaseRuns(phase)) {
    const batch = encodeOpBatch(run);
    if (batch !== null) out.push(batch);
  }
  return out;
}

/**
 * A phase with fewer records goes batch after batch: its syscalls take
 * microseconds, the cost is the hop to the thread pool, and batches in
 * parallel wake more threads without saving a hop (a one-Service change's
 * phases hold a few entries each; on a busy 2-CPU machine the parallel
 * form was no faster there).
 */
const PARALLEL_MIN_RECORDS = 1000;

/**
 * Writes one phase (batch after batch when small): one chain per map (its batches in order), the chains
 * concurrently. Settles when every chain has; a failure is thrown then (the
 * first failed batch's error, in phase order), so nothing of a failed phase
 * is still in flight when the caller reads the maps back.
 */
async function writePhase(batches: readonly OpBatch[], maps: MapWriter): Promise<void> {
  let records = 0;
  for (const b of batches) records += b.count;
  if (batches.length === 1 || records < PARALLEL_MIN_RECORDS) {
    for (const b of batches) await maps.write(b);
    return;
  }
  const byMap = new Map<string, OpBatch[]>();
  for (const b of batches) {
    const chain = byMap.get(b.map);
    if (chain === undefined) byMap.set(b.map, [b]);
    else chain.push(b);
  }
  const failed = new Map<OpBatch, unknown>();
  const chains = [...byMap.values()].map(async (chain) => {
    for (const b of chain) {
      try {
        await maps.write(b);
      } catch (err) {
        failed.set(b, err);
        return; // the rest of this map's runs depend on this one
      }
    }
  });
  await Promise.all(chains);
  for (const b of batches) if (failed.has(b)) throw failed.get(b);
}
