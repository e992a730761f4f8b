// The Switchyard side of the benchmarks: the BPF dataplane's sync pipeline
// (compile -> diff -> apply) run against real pinned maps on a private
// bpffs, one full sync or one endpoint change at a time, each step timed.
// `npm run bench:sync` (bench/sync.ts) and the `control` part of
// `npm run bench` (bench/control.ts) both measure through this module.

import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { programmedFromDump } from '../src/dataplane/bpf/adopt.ts';
import { applyPlan, type ApplyStats } from '../src/dataplane/bpf/apply.ts';
import { compile, compileChanged, compileOptions, type CompileOptions } from '../src/dataplane/bpf/compile.ts';
import { diff } from '../src/dataplane/bpf/diff.ts';
import { type Capacities, MAPS, type MapName } from '../src/dataplane/bpf/layout.ts';
import type { DesiredState, ProgrammedState } from '../src/dataplane/bpf/state.ts';
import type { NativeBinding } from '../src/native/index.ts';
import { BenchBpffs, BenchMaps, TimedWriter, type BatchTiming } from './kernel.ts';
import type { EndpointChange, SyntheticCluster } from './snapshot.ts';

export const OPTS: CompileOptions = compileOptions();

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const OBJECT_PATH = fileURLToPath(new URL('../bpf/build/switchyard.bpf.o', import.meta.url));

// A GC before each measured sync, so a run does not pay for the previous
// one's garbage; also makes "heap after" the live state, not litter.
setFlagsFromString('--expose-gc');
export const gc = runInNewContext('gc') as () => void;

// ---------------------------------------------------------------------------
// Measurements.

export interface FullSync {
  readonly compileMs: number;
  readonly diffMs: number;
  readonly applyMs: number;
  /** Part of applyMs spent awaiting mapUpdate/mapDelete. */
  readonly nativeMs: number;
  readonly totalMs: number;
  /**
   * CPU time (user + system, every thread of the process: the main thread,
   * GC helpers, the thread-pool thread in the syscalls) over totalMs. Time
   * spent waiting for a CPU on a busy machine is not in it.
   */
  readonly cpuMs: number;
  /** Map entries written (updates + deletes). */
  readonly entries: number;
  readonly batches: number;
  /** The native calls one by one. */
  readonly kernel: readonly BatchTiming[];
  /** heapUsed after a GC with the snapshot, desired and programmed state alive. */
  readonly heapBytes: number;
}

export interface FullSyncResult {
  readonly m: FullSync;
  readonly desired: DesiredState;
  /** The plan's next state (the plan itself is dropped, as the daemon does). */
  readonly programmed: ProgrammedState;
}

/** Reads back what the maps hold, as the daemon does at start (here: nothing, fresh pins). */
async function adoptEmpty(maps: BenchMaps): Promise<ProgrammedState> {
  const svc = await maps.obj.map(MAPS.svc4.name).dump();
  const backends = await maps.obj.map(MAPS.backend4.name).dump();
  if (svc.length + backends.length > 0) throw new Error(`fresh pin directory ${maps.pinDir} has ${svc.length + backends.length} entries`);
  return programmedFromDump(
    new Map([
      [MAPS.svc4.name, svc],
      [MAPS.backend4.name, backends],
    ]),
  ).state;
}

export interface Applied {
  readonly diffMs: number;
  readonly applyMs: number;
  readonly next: ProgrammedState;
  readonly stats: ApplyStats;
}

/** diff + apply, timed; the plan goes out of scope on return. */
async function diffAndApply(desired: DesiredState, current: ProgrammedState, writer: TimedWriter, capacities: Capacities): Promise<Applied> {
  const t0 = performance.now();
  const plan = diff(desired, current, desired.changed, { capacities });
  const t1 = performance.now();
  const stats = await applyPlan(plan, writer);
  const t2 = performance.now();
  return { diffMs: t1 - t0, applyMs: t2 - t1, next: plan.next, stats };
}

/** `capacities`: the maps' sizes when not the object's (the diff's capacity check uses them, as the daemon's does). */
export async function fullSync(cluster: SyntheticCluster, maps: BenchMaps, native: NativeBinding, capacities: Capacities = {}): Promise<FullSyncResult> {
  const current = await adoptEmpty(maps);
  const snapshot = cluster.full();
  const writer = new TimedWriter(maps.obj, native);
  gc();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const desired = compile(snapshot, OPTS);
  const compileMs = performance.now() - t0;
  const a = await diffAndApply(desired, current, writer, capacities);
  const totalMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  gc();
  const m: FullSync = {
    compileMs,
    diffMs: a.diffMs,
    applyMs: a.applyMs,
    nativeMs: writer.nativeMs,
    totalMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    entries: a.stats.updates + a.stats.deletes,
    batches: a.stats.batches,
    kernel: writer.batches,
    heapBytes: process.memoryUsage().heapUsed,
  };
  return { m, desired, programmed: a.next };
}

/** The loaded objects of a run and the bpffs they are pinned on. */
export class Bench {
  readonly native: NativeBinding;
  readonly bpffs = new BenchBpffs();
  readonly #open = new Set<BenchMaps>();

  /** The maps' sizes where not the object's (the daemon loads it with its configured capacities). */
  readonly capacities: Capacities;

  constructor(native: NativeBinding, capacities: Capacities = {}) {
    this.capacities = capacities;
    this.native = native;
  }

  async openMaps(tag: string): Promise<BenchMaps> {
    const maxEntries: Record<string, number> = {};
    for (const [m, n] of Object.entries(this.capacities) as [MapName, number][]) maxEntries[MAPS[m].name] = n;
    const m = await BenchMaps.open(OBJECT_PATH, this.bpffs.freshPinDir(tag), this.native, maxEntries);
    this.#open.add(m);
    return m;
  }

  closeMaps(m: BenchMaps): void {
    m.close();
    this.#open.delete(m);
  }

  /** Closes what is open, unmounts and removes the bpffs. */
  cleanup(): void {
    for (const m of this.#open) m.close();
    this.#open.clear();
    this.bpffs.unmount();
  }
}

/** One endpoint change applied: the time of each step, and whether the plan touched only the changed frontend. */
export interface ChangeTiming {
  readonly compileMs: number;
  readonly diffMs: number;
  readonly applyMs: number;
  readonly totalMs: number;
  readonly entries: number;
  readonly batches: number;
}

export interface OneChange {
  readonly m: ChangeTiming;
  /** The frontends the plan touched, when not exactly the changed one (empty when scoped). */
  readonly strayFrontends: readonly string[];
  readonly desired: DesiredState;
  readonly programmed: ProgrammedState;
}

/** From the changed snapshot to the maps written: compileChanged -> scoped diff -> apply. */
export async function applyChange(
  change: EndpointChange,
  desired: DesiredState,
  programmed: ProgrammedState,
  writer: TimedWriter,
  capacities: Capacities = {},
): Promise<OneChange> {
  const t0 = performance.now();
  const d = compileChanged(desired, change.snapshot, OPTS);
  const t1 = performance.now();
  const plan = diff(d, programmed, d.changed, { capacities });
  const t2 = performance.now();
  const stats = await applyPlan(plan, writer);
  const t3 = performance.now();
  const scoped = plan.touched.length === 1 && plan.touched[0] === change.frontend;
  return {
    m: { compileMs: t1 - t0, diffMs: t2 - t1, applyMs: t3 - t2, totalMs: t3 - t0, entries: stats.updates + stats.deletes, batches: stats.batches },
    strayFrontends: scoped ? [] : plan.touched,
    desired: d,
    programmed: plan.next,
  };
}
