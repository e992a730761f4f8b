// `npm run bench:sync`: how long the BPF dataplane's sync pipeline takes
// against the real kernel maps, at 1,000 and 10,000 ClusterIP Services with
// 10 endpoints each. A benchmark, not a test: nothing here asserts a time.
// It exits non-zero only when something is functionally wrong (the maps do
// not hold what was planned, a one-Service change touched other frontends).
//
//   full sync    compile -> diff (against the empty maps, read back as the
//                daemon's adopt does) -> apply into freshly pinned maps;
//                each step timed; apply split into JavaScript encoding and
//                the native calls (copy, thread-pool hop, batch syscalls).
//   one change   on the 10,000-Service state, one Service loses an endpoint
//                and gains one: compileChanged -> scoped diff -> apply.
//
// Needs root (mounts a bpffs under /run, loads the object); anything it
// creates is removed at exit, on error and on SIGINT/SIGTERM too.
// See bench/README.md for how to read the output.

import { existsSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { relative } from 'node:path';
import { MAPS } from '../src/dataplane/bpf/layout.ts';
import type { DesiredState, ProgrammedState } from '../src/dataplane/bpf/state.ts';
import { loadBinding, type NativeBinding } from '../src/native/index.ts';
import { type BenchMaps, TimedWriter } from './kernel.ts';
import { applyChange, Bench, type FullSync, type FullSyncResult, fullSync, gc, OBJECT_PATH, type ChangeTiming as OneChange, ROOT } from './pipeline.ts';
import { fixed, median, MiB, quantile, table, thousands } from './report.ts';
import { SyntheticCluster } from './snapshot.ts';
import { checkMaps, type Expected } from './verify.ts';

const SIZES = [1_000, 10_000] as const;
const LARGEST: number = Math.max(...SIZES);
const ENDPOINTS = 10;
/** Full syncs per size; the median is reported (5, not 3: this kind of machine is shared and noisy). */
const RUNS = 5;
/** One-Service changes timed on the largest state, after WARMUP_CHANGES untimed ones. */
const CHANGES = 50;
const WARMUP_CHANGES = 5;
/** Untimed full syncs at the smallest size before the timed ones. */
const WARMUP_SYNCS = 2;
interface ChangeLoop {
  readonly timed: readonly OneChange[];
  /** Changes made (warm-up included), and how many of their plans touched exactly the changed frontend. */
  readonly changes: number;
  readonly scoped: number;
  readonly desired: DesiredState;
  readonly programmed: ProgrammedState;
}

/**
 * CHANGES + WARMUP_CHANGES one-Service changes, each on a different
 * Service, applied to the maps in turn. Each plan must touch exactly the
 * changed frontend.
 */
async function changeLoop(cluster: SyntheticCluster, maps: BenchMaps, native: NativeBinding, start: FullSyncResult, failures: string[]): Promise<ChangeLoop> {
  let desired = start.desired;
  let programmed = start.programmed;
  const timed: OneChange[] = [];
  const writer = new TimedWriter(maps.obj, native);
  let scoped = 0;
  gc();
  for (let i = 0; i < WARMUP_CHANGES + CHANGES; i++) {
    // 7919 is prime and does not divide N, so i * 7919 mod N is a different Service for each i < N.
    const change = cluster.replaceOneEndpoint((i * 7919 + 13) % cluster.services);
    const c = await applyChange(change, desired, programmed, writer);
    if (c.strayFrontends.length === 0) {
      scoped++;
    } else {
      failures.push(`changing ${change.id} (${change.frontend}) touched ${c.strayFrontends.length} frontends: ${c.strayFrontends.slice(0, 5).join(', ')}`);
    }
    desired = c.desired;
    programmed = c.programmed;
    if (i < WARMUP_CHANGES) continue;
    timed.push(c.m);
  }
  return { timed, changes: WARMUP_CHANGES + CHANGES, scoped, desired, programmed };
}

// ---------------------------------------------------------------------------
// The run.

interface SizeResult {
  readonly n: number;
  readonly runs: readonly FullSync[];
  /** process maxRSS: for the smallest size after its warm-up syncs, for the largest after every run. */
  readonly peakRssBytes: number;
}

const med = (runs: readonly FullSync[], pick: (r: FullSync) => number): number => median(runs.map(pick));

/** The largest size's last full sync, kept loaded for the checks and the one-Service changes. */
interface Kept {
  readonly cluster: SyntheticCluster;
  readonly maps: BenchMaps;
  readonly result: FullSyncResult;
}

/** Untimed syncs at the smallest size: JIT warm-up, so that size is not charged for compiling the pipeline's code. */
async function warmUp(b: Bench): Promise<void> {
  for (let w = 0; w < WARMUP_SYNCS; w++) {
    const m = await b.openMaps(`warmup${w + 1}`);
    await fullSync(new SyntheticCluster(SIZES[0], ENDPOINTS), m, b.native);
    b.closeMaps(m);
  }
}

/**
 * RUNS full syncs per size, the sizes interleaved (1k, 10k, 1k, 10k, ...)
 * so that a burst of load on a shared machine falls on both.
 */
async function timedFullSyncs(b: Bench, rssAfterWarmUp: number): Promise<{ results: SizeResult[]; kept: Kept }> {
  const runs = SIZES.map(() => [] as FullSync[]);
  let kept: Kept | undefined;
  for (let r = 0; r < RUNS; r++) {
    for (const [i, n] of SIZES.entries()) {
      const keep = r === RUNS - 1 && n === LARGEST;
      const one = await timedFullSync(b, n, `n${n}-r${r + 1}`, keep);
      runs[i]?.push(one.m);
      kept ??= one.kept;
    }
  }
  if (kept === undefined) throw new Error('bench: no run of the largest size');
  const rssEnd = process.resourceUsage().maxRSS * 1024;
  const results = SIZES.map((n, i) => ({ n, runs: runs[i] ?? [], peakRssBytes: i === 0 ? rssAfterWarmUp : rssEnd }));
  return { results, kept };
}

/**
 * One full sync into fresh maps, closed afterwards unless `keep`. Its own
 * function so that nothing of the run stays reachable from the caller's
 * suspended frame and inflates the next run's heap figure.
 */
async function timedFullSync(b: Bench, n: number, tag: string, keep: boolean): Promise<{ m: FullSync; kept?: Kept }> {
  const cluster = new SyntheticCluster(n, ENDPOINTS);
  const maps = await b.openMaps(tag);
  const result = await fullSync(cluster, maps, b.native);
  if (keep) return { m: result.m, kept: { cluster, maps, result } };
  b.closeMaps(maps);
  return { m: result.m };
}

/** Maps dumped and compared with the plan; failures are added to `failures`. */
async function verifyFullSync(k: Kept, failures: string[]): Promise<Expected> {
  const { cluster, maps, result } = k;
  const expected: Expected = {
    frontends: cluster.services,
    slots: cluster.services * cluster.endpointsPerService,
    backends: cluster.uniqueBackends,
  };
  const check = await checkMaps(maps.obj, result.desired, result.programmed, expected);
  failures.push(...check.failures);
  console.log(
    `\nMaps after the ${thousands(cluster.services)}-Service apply: ${MAPS.svc4.name} ${thousands(check.svcEntries)} entries ` +
      `(${thousands(expected.frontends)} masters + ${thousands(expected.slots)} slots), ` +
      `${MAPS.backend4.name} ${thousands(check.backendEntries)} (unique backends: ${thousands(expected.backends)}); ` +
      `read back frontend by frontend: ${check.failures.length === 0 ? 'matches the plan' : 'MISMATCH'}`,
  );
  console.log(
    `  reading them back as a restarting daemon does: dump the three maps ${fixed(check.dumpMs)} ms, adopt (rebuild the state) ${fixed(check.adoptMs)} ms`,
  );
  return expected;
}

async function run(b: Bench, failures: string[]): Promise<void> {
  b.bpffs.mount();
  gc();
  printHeader(b.bpffs.path, process.resourceUsage().maxRSS * 1024, process.memoryUsage().heapUsed);
  await warmUp(b);
  const { results, kept } = await timedFullSyncs(b, process.resourceUsage().maxRSS * 1024);
  printFullSyncs(results);
  const expected = await verifyFullSync(kept, failures);
  const loop = await changeLoop(kept.cluster, kept.maps, b.native, kept.result, failures);
  const after = await checkMaps(kept.maps.obj, loop.desired, loop.programmed, expected);
  failures.push(...after.failures.map((f) => `after the one-Service changes: ${f}`));
  printChanges(kept.cluster.services, loop, after.failures.length === 0);
  printRatios(results, loop.timed);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.log('bench:sync skipped: needs root (it mounts a bpffs under /run and loads the BPF object into the kernel).');
    return 0;
  }
  if (!existsSync(OBJECT_PATH)) {
    console.error(`bench:sync: ${relative(ROOT, OBJECT_PATH)} is missing; build it with make -C bpf`);
    return 1;
  }
  const b = new Bench(loadBinding());
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`bench:sync: ${sig}, removing ${b.bpffs.path}`);
    try {
      b.bpffs.unmount(); // the process's fds close as it exits
    } finally {
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const failures: string[] = [];
  const began = performance.now();
  try {
    await run(b, failures);
  } finally {
    b.cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  console.log(`\n(${fixed((performance.now() - began) / 1000, 1)} s in all; ${b.bpffs.path} unmounted and removed)`);
  if (failures.length === 0) return 0;
  console.error(`\nFAILED: the kernel maps or the plans are not what was expected:\n  ${failures.join('\n  ')}`);
  return 1;
}

// ---------------------------------------------------------------------------
// Output.

function printHeader(bpffsPath: string, rssBytes: number, heapBytes: number): void {
  const cpu = cpus();
  console.log(`Switchyard sync benchmark  ${new Date().toISOString()}`);
  console.log(`${cpu.length} CPUs (${cpu[0]?.model.trim() ?? '?'}), Linux ${release()}, Node ${process.version}`);
  console.log(`object ${relative(ROOT, OBJECT_PATH)}, bpffs ${bpffsPath} (fresh pin directory per run)`);
  console.log(
    `ClusterIP Services x ${ENDPOINTS} endpoints, TCP; ${RUNS} full syncs per size into empty maps, sizes interleaved, medians shown; ` +
      `${WARMUP_SYNCS} untimed ${thousands(SIZES[0])} syncs first (JIT warm-up).`,
  );
  console.log(`Before any sync: RSS ${fixed(MiB(rssBytes))} MiB, heap ${fixed(MiB(heapBytes))} MiB.`);
}

function printFullSyncs(results: readonly SizeResult[]): void {
  const rows = results.map(({ n, runs, peakRssBytes }) => {
    const apply = med(runs, (r) => r.applyMs);
    const entries = med(runs, (r) => r.entries);
    return [
      thousands(n),
      fixed(med(runs, (r) => r.compileMs)),
      fixed(med(runs, (r) => r.diffMs)),
      fixed(apply),
      fixed(med(runs, (r) => r.applyMs - r.nativeMs)),
      fixed(med(runs, (r) => r.nativeMs)),
      fixed(med(runs, (r) => r.totalMs)),
      fixed(med(runs, (r) => r.cpuMs)),
      thousands(entries),
      thousands(median(runs.map((r) => r.entries / (r.applyMs / 1000)))),
      fixed(MiB(peakRssBytes)),
      fixed(MiB(med(runs, (r) => r.heapBytes))),
    ];
  });
  console.log('\nFull sync: compile -> diff -> apply into empty maps (median of runs; ms)');
  console.log(table(['Services', 'compile', 'diff', 'apply', 'encode', 'kernel', 'total', 'CPU', 'entries', 'entries/s', 'peak RSS MiB', 'heap MiB'], rows));
  console.log(
    "  apply = encode (JavaScript: group ops, encode batches; what did not overlap a batch in flight) + kernel (while a mapUpdate/mapDelete is in flight: copy, thread pool, syscalls; a phase's maps in parallel)",
  );
  console.log('  CPU = user + system time of the whole process during the sync (waiting for a CPU on a busy machine is not counted)');
  console.log('  entries/s = map entries written / apply time; heap = after GC, with the snapshot and both states alive');
  console.log(`  peak RSS = process maximum: ${thousands(SIZES[0])} after its warm-up syncs, ${thousands(LARGEST)} after every run`);
  for (const { n, runs } of results) {
    console.log(`  totals per run, ${thousands(n)}: ${runs.map((r) => `${fixed(r.totalMs)}`).join(' / ')} ms`);
  }
  const big = results[results.length - 1];
  if (big !== undefined) {
    const calls = big.runs[0]?.kernel ?? [];
    const parts = calls.map((c, i) => `${c.what} ${thousands(c.count)}: ${fixed(median(big.runs.map((r) => r.kernel[i]?.ms ?? NaN)))} ms`);
    console.log(`  kernel per batch, ${thousands(big.n)}: ${parts.join('; ')}`);
  }
}

function printChanges(n: number, loop: ChangeLoop, mapsOk: boolean): void {
  const t = loop.timed;
  const row = (name: string, pick: (c: OneChange) => number): string[] => [name, fixed(median(t.map(pick)), 3), fixed(quantile(t.map(pick), 0.95), 3)];
  console.log(
    `\nOne-Service change on the ${thousands(n)}-Service state: remove one endpoint, add one (${t.length} changes, each a different Service, after ${WARMUP_CHANGES} untimed)`,
  );
  console.log(
    table(
      ['step', 'median ms', 'p95 ms'],
      [row('compileChanged', (c) => c.compileMs), row('scoped diff', (c) => c.diffMs), row('apply', (c) => c.applyMs), row('total', (c) => c.totalMs)],
    ),
  );
  console.log(
    `  per change: ${median(t.map((c) => c.entries))} map entries in ${median(t.map((c) => c.batches))} batches; ` +
      `plans touching only the changed frontend: ${loop.scoped} of ${loop.changes}; maps afterwards: ${mapsOk ? 'match the plan' : 'MISMATCH'}`,
  );
}

function printRatios(results: readonly SizeResult[], changes: readonly OneChange[]): void {
  const small = results[0];
  const big = results[results.length - 1];
  if (small === undefined || big === undefined || small === big) return;
  const ratio = (pick: (r: FullSync) => number): number => med(big.runs, pick) / med(small.runs, pick);
  const best = (runs: readonly FullSync[]): number => Math.min(...runs.map((r) => r.totalMs));
  const scale = big.n / small.n;
  const oneChange = median(changes.map((c) => c.totalMs));
  console.log(`\nRatios, measured side by side in this run (medians; noise only adds time, so the fastest-run ratio is shown too)`);
  console.log(
    `  scaling    total(${thousands(big.n)}) / total(${thousands(small.n)}) = ${fixed(
      ratio((r) => r.totalMs),
      1,
    )}  ` +
      `(${fixed(scale, 0)} = linear; fastest runs ${fixed(best(big.runs) / best(small.runs), 1)}, CPU time ${fixed(
        ratio((r) => r.cpuMs),
        1,
      )}; ` +
      `compile ${fixed(
        ratio((r) => r.compileMs),
        1,
      )}, diff ${fixed(
        ratio((r) => r.diffMs),
        1,
      )}, apply ${fixed(
        ratio((r) => r.applyMs),
        1,
      )})`,
  );
  console.log(`  full sync(${thousands(big.n)}) / one change(${thousands(big.n)}) = ${fixed(med(big.runs, (r) => r.totalMs) / oneChange, 0)}`);
}

process.exitCode = await main();
