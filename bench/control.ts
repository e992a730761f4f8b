// Part `control` of `npm run bench`: Switchyard's control plane against the
// rulesets kube-proxy's iptables and nftables modes write for the same
// Services, measured in the same run.
//
//   full sync   N ClusterIP Services x 10 endpoints. Switchyard: compile ->
//               diff -> apply into freshly pinned maps (bench/pipeline.ts).
//               kube-proxy: the restore input / nft transaction of its first
//               sync (test/support/kube-proxy-*ruleset.ts), applied in a
//               fresh network namespace with the command kube-proxy runs.
//   one change  with R Services resident, one Service loses an endpoint and
//               gains one. Switchyard: changed snapshot -> maps written.
//               kube-proxy: its partial-sync restore input (KUBE-SERVICES in
//               full, that Service's chains), the whole tables rewritten,
//               and its partial nft transaction (that Service's chains).
//
// kube-proxy's own time to build its input (Go) is not counted: only the
// command that applies it. Each command is stopped at a limit; a stopped
// command is reported as "more than" the limit, and the same tool is not
// tried at larger sizes. The run fails only when something is wrong: a
// ruleset the tool rejects, maps or rules that are not what was written.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_BACKENDS_MAX, DEFAULT_SERVICES_MAX } from '../src/config/types.ts';
import type { ServicePortInfo } from '../src/model/types.ts';
import { loadBinding } from '../src/native/index.ts';
import { kubeProxyNftFull, kubeProxyNftPartial, nftDeleteChains, staleEndpointChains } from '../test/support/kube-proxy-nft-ruleset.ts';
import { type KpService, kubeProxyJumps, kubeProxyRestoreInput } from '../test/support/kube-proxy-ruleset.ts';
import { TimedWriter } from './kernel.ts';
import { ApplyFailed, BenchNetns, deleteAllNetns, type Timed } from './netns.ts';
import type { Part, Plot, RunContext } from './part.ts';
import { applyChange, Bench, type FullSyncResult, fullSync, gc, OBJECT_PATH } from './pipeline.ts';
import { fixed, median, quantile, thousands } from './report.ts';
import { SyntheticCluster } from './snapshot.ts';
import { checkMaps } from './verify.ts';

const ENDPOINTS = 10;
const CLUSTER_CIDR = '10.240.0.0/12'; // every pod address snapshot.ts hands out
const SERVICE_CIDR = '10.96.0.0/12';
const NFT_OPTS = { clusterCIDR: CLUSTER_CIDR, serviceCIDR: SERVICE_CIDR, v6: false } as const;

interface Settings {
  readonly sizes: readonly number[];
  /** Full syncs per size: Switchyard, and each kube-proxy command. */
  readonly runs: number;
  readonly kpRuns: number;
  /** Services resident for the one-change measurement. */
  readonly resident: number;
  readonly changes: number;
  /** Wall-time limit of one kube-proxy command, and of all of one kube-proxy way's changes. */
  readonly limitMs: number;
  readonly changeBudgetMs: number;
}

const FULL: Settings = { sizes: [1_000, 10_000, 50_000], runs: 5, kpRuns: 3, resident: 10_000, changes: 200, limitMs: 1_200_000, changeBudgetMs: 600_000 };
// Quick: kube-proxy's 10,000-Service tables do not load within its limit on a busy 2-CPU machine, so the changes are measured with 1,000 resident.
const QUICK: Settings = { sizes: [1_000, 10_000], runs: 3, kpRuns: 1, resident: 1_000, changes: 20, limitMs: 10_000, changeBudgetMs: 8_000 };

/** The ways a full sync is applied. */
export const FULL_WAYS = ['switchyard', 'iptables-restore', 'iptables-restore-whole', 'nft'] as const;
export type FullWay = (typeof FULL_WAYS)[number];
/** The ways one change is applied. */
export const CHANGE_WAYS = ['switchyard', 'iptables-restore', 'iptables-restore-whole', 'nft'] as const;
export type ChangeWay = (typeof CHANGE_WAYS)[number];

const LABEL: Record<FullWay, string> = {
  switchyard: 'Switchyard (compile, diff, apply to BPF maps)',
  'iptables-restore': 'kube-proxy iptables: iptables-restore --noflush --counters',
  'iptables-restore-whole': 'iptables-restore, whole tables replaced (no --noflush)',
  nft: 'kube-proxy nftables: nft -f (one transaction)',
};
const SHORT: Record<FullWay, string> = {
  switchyard: 'Switchyard',
  'iptables-restore': 'iptables-restore --noflush',
  'iptables-restore-whole': 'iptables-restore (whole tables)',
  nft: 'nft -f',
};

export interface FullSyncRow {
  readonly n: number;
  readonly way: FullWay;
  /** Wall ms of each run (the limit for a stopped one). */
  readonly runsMs: number[];
  /** Switchyard only: CPU ms of each run, and map entries written. */
  readonly cpuMs?: number[];
  readonly entries?: number;
  /** The input's size (kube-proxy ways): bytes and lines. */
  readonly inputBytes?: number;
  readonly inputLines?: number;
  readonly stopped: boolean;
  /** Not run, and why (a smaller size was stopped at the limit). */
  readonly skipped?: string;
}

export interface ChangeRow {
  readonly way: ChangeWay;
  readonly resident: number;
  readonly samplesMs: number[];
  /** Switchyard only: each step's time, per change. */
  readonly stepsMs?: { readonly compile: number[]; readonly diff: number[]; readonly apply: number[] };
  readonly stopped: boolean;
  readonly skipped?: string;
}

export interface ControlData {
  readonly quick: boolean;
  readonly endpointsPerService: number;
  readonly limitMs: number;
  readonly tools: { readonly iptables: string; readonly nft: string };
  /** `ip netns exec NS true`, median of 5: the spawn cost inside each kube-proxy figure. */
  readonly spawnMs: number;
  readonly fullSync: FullSyncRow[];
  readonly change: ChangeRow[];
}

function kpService(sp: ServicePortInfo): KpService {
  return {
    namespace: sp.namespace,
    name: sp.name,
    clusterIP: sp.clusterIPs[0] ?? '',
    ports: [{ name: sp.portName, port: sp.port, protocol: 'TCP', endpoints: sp.clusterEndpoints.map((e) => `${e.ip}:${e.port}`) }],
  };
}

function kpServices(cluster: SyntheticCluster): KpService[] {
  return [...cluster.full().servicePorts.values()].map(kpService);
}

function lines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

const IPT_RESTORE = ['iptables-nft-restore', '--noflush', '--counters'];
const IPT_WHOLE = ['iptables-nft-restore', '--counters'];
const NFT = ['nft', '-f', '-'];

/** The state of one run: temporary files, loaded maps and namespaces, all removed by cleanup(). */
class ControlRun {
  readonly ctx: RunContext;
  readonly s: Settings;
  readonly dir = mkdtempSync(join(tmpdir(), 'sy-bench-control-'));
  // The maps as the daemon loads them with its default capacities (--bpf-services-max, --bpf-backends-max: 50,000 x 10 fit).
  readonly bench = new Bench(loadBinding(), {
    svc4: DEFAULT_SERVICES_MAX,
    svc6: DEFAULT_SERVICES_MAX,
    backend4: DEFAULT_BACKENDS_MAX,
    backend6: DEFAULT_BACKENDS_MAX,
    svccnt: 2 * DEFAULT_SERVICES_MAX,
    becnt4: DEFAULT_BACKENDS_MAX,
    becnt6: DEFAULT_BACKENDS_MAX,
  });
  readonly full: FullSyncRow[] = [];
  readonly change: ChangeRow[] = [];
  /** kube-proxy ways stopped at the limit, with the size. */
  readonly #stoppedAt = new Map<FullWay, number>();
  #files = 0;

  constructor(ctx: RunContext, s: Settings) {
    this.ctx = ctx;
    this.s = s;
  }

  file(name: string, text: string): string {
    const path = join(this.dir, `${String(++this.#files).padStart(4, '0')}-${name}`);
    writeFileSync(path, text);
    return path;
  }

  cleanup(): void {
    deleteAllNetns();
    this.bench.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Applies `file` with `argv` in a fresh namespace; `setup` (untimed) first. Returns the time and the namespace (deleted unless kept). */
  async applyFresh(way: FullWay, argv: readonly string[], file: string, setup: string | null, keep: boolean): Promise<{ t: Timed; ns: BenchNetns | null }> {
    const ns = new BenchNetns(way.replace('iptables-restore', 'ipt'));
    try {
      if (setup !== null) await ns.run(IPT_RESTORE, setup, this.s.limitMs);
      const t = await ns.run(argv, file, this.s.limitMs);
      if (keep && !t.stopped) return { t, ns };
      ns.delete();
      return { t, ns: null };
    } catch (err) {
      ns.delete();
      throw err;
    }
  }

  /** Every full-sync way at size n, runs interleaved; the Switchyard state of the last run is returned when `keepSy`. */
  async fullSyncs(n: number, keepSy: boolean): Promise<{ cluster: SyntheticCluster; sy: FullSyncResult; maps: Awaited<ReturnType<Bench['openMaps']>> } | null> {
    const cluster = new SyntheticCluster(n, ENDPOINTS);
    const kp = kpServices(cluster);
    const iptText = kubeProxyRestoreInput(kp, { clusterCIDR: CLUSTER_CIDR, v6: false });
    const nftText = kubeProxyNftFull(kp, NFT_OPTS);
    const files: Record<Exclude<FullWay, 'switchyard'>, string> = {
      'iptables-restore': this.file(`ipt-${n}.txt`, iptText),
      'iptables-restore-whole': this.file(`ipt-${n}.txt`, iptText),
      nft: this.file(`nft-${n}.nft`, nftText),
    };
    const sizes = { ipt: { bytes: Buffer.byteLength(iptText), lines: lines(iptText) }, nft: { bytes: Buffer.byteLength(nftText), lines: lines(nftText) } };
    const jumps = this.file('jumps.txt', kubeProxyJumps());
    const rows = new Map<FullWay, { runsMs: number[]; cpuMs: number[]; entries: number; stopped: boolean }>();
    for (const w of FULL_WAYS) rows.set(w, { runsMs: [], cpuMs: [], entries: 0, stopped: false });
    let kept: { cluster: SyntheticCluster; sy: FullSyncResult; maps: Awaited<ReturnType<Bench['openMaps']>> } | null = null;
    const runs = Math.max(this.s.runs, this.s.kpRuns);
    for (let r = 0; r < runs; r++) {
      if (r < this.s.runs) {
        const maps = await this.bench.openMaps(`n${n}-r${r + 1}`);
        const sy = await fullSync(cluster, maps, this.bench.native, this.bench.capacities);
        const row = rows.get('switchyard');
        row?.runsMs.push(sy.m.totalMs);
        row?.cpuMs.push(sy.m.cpuMs);
        if (row) row.entries = sy.m.entries;
        this.ctx.log(
          `  ${thousands(n)} Services, Switchyard run ${r + 1}: ${fixed(sy.m.totalMs)} ms (CPU ${fixed(sy.m.cpuMs)} ms, ${thousands(sy.m.entries)} entries)`,
        );
        if (keepSy && r === this.s.runs - 1) kept = { cluster, sy, maps };
        else this.bench.closeMaps(maps);
        gc();
      }
      if (r >= this.s.kpRuns) continue;
      for (const way of ['iptables-restore', 'iptables-restore-whole', 'nft'] as const) {
        const row = rows.get(way);
        if (row === undefined || row.stopped || this.#stoppedAt.has(way)) continue;
        const argv = way === 'nft' ? NFT : way === 'iptables-restore' ? IPT_RESTORE : IPT_WHOLE;
        const last = r === this.s.kpRuns - 1;
        const { t, ns } = await this.applyFresh(way, argv, files[way], way === 'nft' ? null : jumps, last);
        row.runsMs.push(t.ms);
        row.stopped ||= t.stopped;
        this.ctx.log(
          `  ${thousands(n)} Services, ${SHORT[way]} run ${r + 1}: ${t.stopped ? `stopped at the limit, ${fixed(t.ms / 1000)} s` : `${fixed(t.ms)} ms`}`,
        );
        if (ns !== null) {
          this.checkKubeProxy(way, ns, n);
          ns.delete();
        }
      }
    }
    for (const way of FULL_WAYS) {
      const row = rows.get(way);
      if (row === undefined) continue;
      const skippedAt = this.#stoppedAt.get(way);
      if (skippedAt !== undefined) {
        this.full.push({ n, way, runsMs: [], stopped: false, skipped: `stopped at the limit at ${thousands(skippedAt)} Services` });
        continue;
      }
      if (row.stopped) this.#stoppedAt.set(way, n);
      const input = way === 'nft' ? sizes.nft : sizes.ipt;
      this.full.push({
        n,
        way,
        runsMs: row.runsMs,
        stopped: row.stopped,
        ...(way === 'switchyard' ? { cpuMs: row.cpuMs, entries: row.entries } : { inputBytes: input.bytes, inputLines: input.lines }),
      });
    }
    return kept;
  }

  /** What the namespace holds after a kube-proxy full sync: one KUBE-SERVICES rule / service-ips element per Service. */
  checkKubeProxy(way: FullWay, ns: BenchNetns, n: number): void {
    if (way === 'nft') {
      const text = ns.output(['nft', 'list', 'map', 'ip', 'kube-proxy', 'service-ips']);
      const got = text.split(': goto service-').length - 1;
      if (got !== n) this.ctx.fail(`nft: service-ips holds ${got} elements after the full sync of ${n} Services`);
    } else {
      const text = ns.output(['iptables-nft-save', '-t', 'nat']);
      const got = text.split('\n-A KUBE-SERVICES -d ').length - 1;
      const sep = text.split('\n:KUBE-SEP-').length - 1;
      if (got !== n || sep !== n * ENDPOINTS)
        this.ctx.fail(`${way}: ${got} KUBE-SERVICES rules and ${sep} KUBE-SEP chains after the full sync of ${n} Services`);
    }
  }

  /** One endpoint change at a time, on every way in turn, R Services resident. */
  async changes(k: { cluster: SyntheticCluster; sy: FullSyncResult; maps: Awaited<ReturnType<Bench['openMaps']>> }): Promise<void> {
    const { cluster } = k;
    const n = cluster.services;
    const kp = kpServices(cluster);
    // kube-proxy's tables loaded (untimed): iptables through a whole-tables restore (the quick way), nftables through its first sync.
    const iptNs = new BenchNetns('ipt-resident');
    const nftNs = new BenchNetns('nft-resident');
    const load = async (ns: BenchNetns, argv: readonly string[], file: string): Promise<boolean> => !(await ns.run(argv, file, this.s.limitMs)).stopped;
    await iptNs.run(IPT_RESTORE, this.file('jumps.txt', kubeProxyJumps()), this.s.limitMs);
    const iptLoaded = await load(iptNs, IPT_WHOLE, this.file(`ipt-${n}.txt`, kubeProxyRestoreInput(kp, { clusterCIDR: CLUSTER_CIDR, v6: false })));
    const nftLoaded = await load(nftNs, NFT, this.file(`nft-${n}.nft`, kubeProxyNftFull(kp, NFT_OPTS)));
    this.ctx.log(
      `  ${thousands(n)} Services resident: iptables ${iptLoaded ? 'loaded' : 'not loaded within the limit'}, nftables ${nftLoaded ? 'loaded' : 'not loaded within the limit'}`,
    );

    const samples: Record<ChangeWay, number[]> = { switchyard: [], 'iptables-restore': [], 'iptables-restore-whole': [], nft: [] };
    const spent: Record<ChangeWay, number> = { switchyard: 0, 'iptables-restore': 0, 'iptables-restore-whole': 0, nft: 0 };
    const stopped: Record<ChangeWay, boolean> = { switchyard: false, 'iptables-restore': false, 'iptables-restore-whole': false, nft: false };
    const loaded: Record<ChangeWay, boolean> = { switchyard: true, 'iptables-restore': iptLoaded, 'iptables-restore-whole': iptLoaded, nft: nftLoaded };
    const writer = new TimedWriter(k.maps.obj, this.bench.native);
    let desired = k.sy.desired;
    let programmed = k.sy.programmed;
    const warmUp = 5;
    let scoped = 0;
    const steps = { compile: [] as number[], diff: [] as number[], apply: [] as number[] };
    for (let i = 0; i < warmUp + this.s.changes; i++) {
      // 7919 is prime and does not divide N: a different Service for each i < N.
      const s = (i * 7919 + 13) % n;
      const before = kp[s] as KpService;
      const change = cluster.replaceOneEndpoint(s);
      const after = kpService(change.snapshot.servicePorts.get(change.id) as ServicePortInfo);
      kp[s] = after;
      gc(); // the garbage of the previous change's kube-proxy inputs is not Switchyard's
      const c = await applyChange(change, desired, programmed, writer, this.bench.capacities);
      desired = c.desired;
      programmed = c.programmed;
      if (c.strayFrontends.length === 0) scoped++;
      else this.ctx.fail(`changing ${change.id} touched ${c.strayFrontends.length} frontends: ${c.strayFrontends.slice(0, 3).join(', ')}`);
      const timed = i >= warmUp;
      if (timed) {
        samples.switchyard.push(c.m.totalMs);
        steps.compile.push(c.m.compileMs);
        steps.diff.push(c.m.diffMs);
        steps.apply.push(c.m.applyMs);
      }
      const due = (w: ChangeWay): boolean => timed && loaded[w] && !stopped[w] && spent[w] < this.s.changeBudgetMs;
      // Every way is kept in step (the tables hold the same endpoints); only the timed ones are recorded.
      const ns = `${before.namespace}/${before.name}`;
      if (due('iptables-restore-whole') && i % 10 === warmUp % 10) {
        // The whole tables rewritten, in place of the partial restore: one change in ten (building the input takes seconds at 10,000).
        const whole = this.file('ipt-whole.txt', kubeProxyRestoreInput(kp, { clusterCIDR: CLUSTER_CIDR, v6: false }));
        const t = await iptNs.run(IPT_WHOLE, whole, this.s.limitMs);
        spent['iptables-restore-whole'] += t.ms;
        stopped['iptables-restore-whole'] ||= t.stopped;
        samples['iptables-restore-whole'].push(t.ms);
        rmSync(whole);
      } else if (loaded['iptables-restore']) {
        // A killed restore commits nothing: the table stays as it was, and the next whole-tables restore catches up.
        const iptPartial = this.file('ipt-change.txt', kubeProxyRestoreInput(kp, { clusterCIDR: CLUSTER_CIDR, v6: false, changed: new Set([ns]) }));
        const t = await iptNs.run(IPT_RESTORE, iptPartial, this.s.limitMs);
        if (due('iptables-restore') || t.stopped) {
          spent['iptables-restore'] += t.ms;
          stopped['iptables-restore'] ||= t.stopped;
          samples['iptables-restore'].push(t.ms);
        }
        if (t.stopped) loaded['iptables-restore'] = false;
        rmSync(iptPartial);
      }
      if (loaded.nft) {
        const stale = staleEndpointChains(before, after);
        const part = this.file('nft-change.nft', kubeProxyNftPartial([after], stale, NFT_OPTS));
        const t = await nftNs.run(NFT, part, this.s.limitMs);
        if (due('nft') || t.stopped) {
          spent.nft += t.ms;
          stopped.nft ||= t.stopped;
          samples.nft.push(t.ms);
        }
        if (t.stopped) loaded.nft = false;
        // kube-proxy deletes stale chains in a later transaction, a second after: untimed here.
        const del = this.file('nft-delete.nft', nftDeleteChains(stale, false));
        if (!t.stopped) await nftNs.run(NFT, del, this.s.limitMs);
        rmSync(part);
        rmSync(del);
      }
    }
    this.ctx.log(`  ${thousands(n)} Services resident, Switchyard: ${scoped} of ${warmUp + this.s.changes} plans touched only the changed frontend`);
    const after = await checkMaps(k.maps.obj, desired, programmed, { frontends: n, slots: n * ENDPOINTS, backends: cluster.uniqueBackends });
    for (const f of after.failures) this.ctx.fail(`maps after the changes: ${f}`);
    if (iptLoaded) this.checkKubeProxyChanged(iptNs, kp);
    for (const way of CHANGE_WAYS) {
      const notLoaded = !(way === 'switchyard' || (way === 'nft' ? nftLoaded : iptLoaded));
      this.change.push({
        way,
        resident: n,
        samplesMs: samples[way],
        stopped: stopped[way],
        ...(way === 'switchyard' ? { stepsMs: steps } : {}),
        ...(notLoaded ? { skipped: `the ${thousands(n)}-Service table did not load within the limit` } : {}),
      });
    }
    iptNs.delete();
    nftNs.delete();
  }

  /** After the changes (partial and whole-tables restores), still one KUBE-SERVICES rule per Service. */
  checkKubeProxyChanged(ns: BenchNetns, kp: readonly KpService[]): void {
    const text = ns.output(['iptables-nft-save', '-t', 'nat']);
    const got = text.split('\n-A KUBE-SERVICES -d ').length - 1;
    if (got !== kp.length) this.ctx.fail(`iptables after the changes: ${got} KUBE-SERVICES rules, expected ${kp.length}`);
  }
}

function toolVersion(argv: readonly string[]): string {
  try {
    return execFileSync(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .trim()
      .split('\n')[0] as string;
  } catch {
    return 'missing';
  }
}

function spawnFloor(): number {
  const ns = new BenchNetns('floor');
  try {
    const t: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      execFileSync('ip', ['netns', 'exec', ns.name, 'true'], { stdio: 'ignore' });
      t.push(performance.now() - t0);
    }
    return median(t);
  } finally {
    ns.delete();
  }
}

export const control: Part<ControlData> = {
  name: 'control',
  title: 'Control plane: Switchyard against kube-proxy’s rulesets',

  cannotRun(): string | null {
    if (process.getuid?.() !== 0) return 'needs root (bpffs, BPF maps, network namespaces)';
    if (!existsSync(OBJECT_PATH)) return 'bpf/build/switchyard.bpf.o is missing (npm run build:bpf)';
    for (const tool of [
      ['ip', '-V'],
      ['iptables-nft-restore', '--version'],
      ['nft', '--version'],
    ]) {
      if (toolVersion(tool) === 'missing') return `${tool[0]} is missing (scripts/setup.sh installs it)`;
    }
    return null;
  },

  async run(ctx: RunContext): Promise<ControlData> {
    const s = ctx.quick ? QUICK : FULL;
    const run = new ControlRun(ctx, s);
    const onSignal = (sig: NodeJS.Signals): void => {
      run.cleanup();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      run.bench.bpffs.mount();
      const spawnMs = spawnFloor();
      // Untimed warm-up of the pipeline's code (JIT) at the smallest size.
      const w = await run.bench.openMaps('warmup');
      await fullSync(new SyntheticCluster(s.sizes[0] ?? 1_000, ENDPOINTS), w, run.bench.native, run.bench.capacities);
      run.bench.closeMaps(w);
      let kept: Awaited<ReturnType<ControlRun['fullSyncs']>> = null;
      for (const n of s.sizes) {
        ctx.log(`full sync, ${thousands(n)} Services x ${ENDPOINTS} endpoints`);
        const k = await run.fullSyncs(n, n === s.resident);
        if (k !== null) {
          const check = await checkMaps(k.maps.obj, k.sy.desired, k.sy.programmed, { frontends: n, slots: n * ENDPOINTS, backends: k.cluster.uniqueBackends });
          for (const f of check.failures) ctx.fail(`maps after the ${n}-Service full sync: ${f}`);
          kept = k;
        }
      }
      if (kept !== null) {
        ctx.log(`one endpoint change, ${thousands(s.resident)} Services resident`);
        await run.changes(kept);
      }
      return {
        quick: ctx.quick,
        endpointsPerService: ENDPOINTS,
        limitMs: s.limitMs,
        tools: { iptables: toolVersion(['iptables-nft-restore', '--version']), nft: toolVersion(['nft', '--version']) },
        spawnMs,
        fullSync: run.full,
        change: run.change,
      };
    } catch (err) {
      if (err instanceof ApplyFailed) {
        ctx.fail(err.message);
        throw err;
      }
      throw err;
    } finally {
      run.cleanup();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },

  markdown: renderControl,
  plots: plotControl,
};

// ---------------------------------------------------------------------------
// Rendering (from the JSON data only).

const ms = (v: number): string => (v >= 10_000 ? thousands(v) : v >= 100 ? fixed(v, 0) : v >= 10 ? fixed(v, 1) : fixed(v, 2));

function cell(row: { runsMs?: number[]; samplesMs?: number[]; stopped: boolean; skipped?: string } | undefined, pick: (v: number[]) => number): string {
  if (row === undefined) return '-';
  if (row.skipped !== undefined) return 'not run';
  const v = row.runsMs ?? row.samplesMs ?? [];
  if (v.length === 0) return '-';
  return row.stopped ? `> ${ms(Math.max(...v))}` : ms(pick(v));
}

function ratio(
  sy: number,
  other: { runsMs?: number[]; samplesMs?: number[]; stopped: boolean; skipped?: string } | undefined,
  pick: (v: number[]) => number,
): string {
  if (other === undefined || other.skipped !== undefined) return '-';
  const v = other.runsMs ?? other.samplesMs ?? [];
  if (v.length === 0 || !(sy > 0)) return '-';
  const r = (other.stopped ? Math.max(...v) : pick(v)) / sy;
  return `${other.stopped ? '> ' : ''}${r >= 100 ? thousands(r) : fixed(r, 1)}×`;
}

export function renderControl(d: ControlData): string {
  const sizes = [...new Set(d.fullSync.map((r) => r.n))].sort((a, b) => a - b);
  const row = (n: number, w: FullWay): FullSyncRow | undefined => d.fullSync.find((r) => r.n === n && r.way === w);
  const out: string[] = [];
  out.push(
    `ClusterIP Services × ${d.endpointsPerService} endpoints (TCP). Tools: ${d.tools.iptables}, ${d.tools.nft}. ` +
      `Each kube-proxy command runs in a fresh network namespace (\`ip netns exec\`; ${ms(d.spawnMs)} ms of that is the spawn itself, measured as \`ip netns exec NS true\`) and is stopped after ${fixed(d.limitMs / 1000, 0)} s ("> limit"). ` +
      'kube-proxy’s own time to build its input is not counted, only the command that applies it; Switchyard’s figure is the whole pipeline (compile, diff, apply).',
  );
  out.push('', '### Full sync (ms, median of runs; ratio = kube-proxy’s time / Switchyard’s, same run)', '');
  out.push('| Services | Switchyard | (CPU) | iptables-restore --noflush | ratio | iptables-restore, whole tables | ratio | nft -f | ratio |');
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const n of sizes) {
    const sy = row(n, 'switchyard');
    const syMs = median(sy?.runsMs ?? []);
    out.push(
      `| ${thousands(n)} | ${cell(sy, median)} | ${sy?.cpuMs ? ms(median(sy.cpuMs)) : '-'} | ${cell(row(n, 'iptables-restore'), median)} | ${ratio(syMs, row(n, 'iptables-restore'), median)} | ` +
        `${cell(row(n, 'iptables-restore-whole'), median)} | ${ratio(syMs, row(n, 'iptables-restore-whole'), median)} | ${cell(row(n, 'nft'), median)} | ${ratio(syMs, row(n, 'nft'), median)} |`,
    );
  }
  out.push('');
  out.push(
    'Runs per size: ' +
      FULL_WAYS.map((w) => `${SHORT[w]} ${Math.max(0, ...sizes.map((n) => row(n, w)?.runsMs.length ?? 0))}`).join(', ') +
      '. Input sizes: ' +
      sizes
        .map((n) => {
          const i = [row(n, 'iptables-restore'), row(n, 'iptables-restore-whole')].find((r) => (r?.inputLines ?? 0) > 0);
          const f = row(n, 'nft');
          return `${thousands(n)}: restore ${thousands(i?.inputLines ?? 0)} lines (${fixed((i?.inputBytes ?? 0) / 1e6)} MB), nft ${thousands(f?.inputLines ?? 0)} lines (${fixed((f?.inputBytes ?? 0) / 1e6)} MB), Switchyard ${thousands(row(n, 'switchyard')?.entries ?? 0)} map entries`;
        })
        .join('; ') +
      '.',
  );
  const ch = (w: ChangeWay): ChangeRow | undefined => d.change.find((r) => r.way === w);
  const sy = ch('switchyard');
  if (sy !== undefined) {
    const p50 = (v: number[]): number => quantile(v, 0.5);
    const p99 = (v: number[]): number => quantile(v, 0.99);
    out.push('', `### One endpoint change, ${thousands(sy.resident)} Services resident (ms)`, '');
    out.push('| way | changes | p50 | p99 | p50 ratio | p99 ratio |');
    out.push('|---|---:|---:|---:|---:|---:|');
    for (const w of CHANGE_WAYS) {
      const r = ch(w);
      if (r === undefined) continue;
      const label =
        w === 'switchyard'
          ? 'Switchyard: changed snapshot → compileChanged, diff, apply'
          : w === 'iptables-restore'
            ? 'kube-proxy iptables (1.28+ partial sync): iptables-restore --noflush of KUBE-SERVICES in full + that Service’s chains'
            : w === 'iptables-restore-whole'
              ? 'iptables-restore of the whole tables (a full sync; kube-proxy before 1.28)'
              : 'kube-proxy nftables: nft -f of the partial-sync transaction (that Service’s chains)';
      const note = r.skipped !== undefined ? ` (${r.skipped})` : '';
      out.push(
        `| ${label}${note} | ${r.samplesMs.length} | ${cell(r, p50)} | ${cell(r, p99)} | ${w === 'switchyard' ? '' : ratio(p50(sy.samplesMs), r, p50)} | ${w === 'switchyard' ? '' : ratio(p99(sy.samplesMs), r, p99)} |`,
      );
    }
    out.push('');
    if (sy.stepsMs !== undefined) {
      const st = sy.stepsMs;
      const pp = (v: number[]): string => `${ms(quantile(v, 0.5))} / ${ms(quantile(v, 0.99))}`;
      out.push(`Switchyard's steps, p50 / p99 (ms): compileChanged ${pp(st.compile)}, scoped diff ${pp(st.diff)}, apply ${pp(st.apply)}.`, '');
    }
    out.push(
      'Each change: one Service loses an endpoint and gains one, a different Service each time, applied to every way in turn (so all hold the same endpoints); ' +
        'kube-proxy’s ways stop taking samples after their time budget (fewer samples than Switchyard’s then). kube-proxy’s nftables mode also lists its chains and sets (`nft list`) at every sync and deletes stale chains in a later transaction: not counted here.',
    );
  }
  return out.join('\n');
}

export function plotControl(d: ControlData): Plot[] {
  const values = d.fullSync
    .filter((r) => r.skipped === undefined && r.runsMs.length > 0)
    .map((r) => ({
      services: r.n,
      ms: r.stopped ? Math.max(...r.runsMs) : median(r.runsMs),
      way: SHORT[r.way],
      stopped: r.stopped ? 'stopped at the limit (lower bound)' : 'finished',
    }));
  const plots: Plot[] = [
    {
      file: 'control-full-sync.svg',
      title: 'Full sync',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: {
          text: `Full sync of N Services × ${d.endpointsPerService} endpoints`,
          subtitle: 'wall time, median of runs (log scales); hollow: stopped at the limit',
        },
        width: 520,
        height: 320,
        data: { values },
        encoding: {
          x: {
            field: 'services',
            type: 'quantitative',
            scale: { type: 'log' },
            title: 'Services',
            axis: { values: [...new Set(values.map((v) => v.services))] },
          },
          y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'ms' },
          color: { field: 'way', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 2, labelLimit: 400 } },
        },
        layer: [
          { mark: { type: 'line' } },
          { mark: { type: 'point', size: 70, filled: true }, transform: [{ filter: "datum.stopped === 'finished'" }] },
          { mark: { type: 'point', size: 70, filled: false }, transform: [{ filter: "datum.stopped !== 'finished'" }] },
        ],
      },
    },
  ];
  const ch = d.change.filter((r) => r.skipped === undefined && r.samplesMs.length > 0);
  if (ch.length > 0) {
    const cv = ch.flatMap((r) => [
      { way: SHORT[r.way], stat: 'p50', ms: quantile(r.samplesMs, 0.5) },
      { way: SHORT[r.way], stat: 'p99', ms: quantile(r.samplesMs, 0.99) },
    ]);
    plots.push({
      file: 'control-one-change.svg',
      title: 'One endpoint change',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: { text: `One endpoint change, ${thousands(ch[0]?.resident ?? 0)} Services resident`, subtitle: 'wall time, p50 and p99 (log scale)' },
        width: 520,
        height: 220,
        data: { values: cv },
        mark: 'bar',
        encoding: {
          y: { field: 'way', type: 'nominal', title: null, sort: null, axis: { labelLimit: 400 } },
          yOffset: { field: 'stat' },
          x: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'ms' },
          color: { field: 'stat', type: 'nominal', title: null, legend: { orient: 'bottom' } },
        },
      },
    });
  }
  return plots;
}

export { LABEL as CONTROL_LABELS };
