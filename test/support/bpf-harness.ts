// The packet-fixture harness (Katran's katran/lib/testing is the model): the
// real bpf/build/switchyard.bpf.o (datapath v2: sy_from_pod, sy_to_pod,
// sy_from_net, sy_to_net) loaded into this kernel with its maps pinned in a
// throwaway bpffs; map entries written explicitly with the layout v2 codecs
// (frontends with their slots and backends, Service IPs, source ranges, the
// node config: the control-plane pipeline that computes them is tested
// elsewhere); a program run on a frame through BPF_PROG_TEST_RUN. A run
// returns the verdict, the frame as the program left it, the connection
// tracking of both families (decoded) and the counters it moved. Nothing is
// attached and no packet is sent. Packets themselves are built and checked
// in packets.ts.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Protocol } from '../../src/model/types.ts';
import { BpfObject, loadBinding, type BpfProgram, type NativeBinding } from '../../src/native/index.ts';
import {
  ADOPTED_MAPS,
  HEADER_DEFINES,
  type KeyOf,
  type MapDef,
  MAPS,
  type MapName,
  type NodeConfig,
  type Scope,
  SY_ACT_FORWARD,
  SY_SCOPE_INTERNAL,
  srcRangeKey,
  type CtKey,
  type CtValue,
  type Gen,
  type SvcAction,
  type ValueOf,
  expandPerCpu,
  STAT_NAMES,
  type StatName,
  ZERO_TRAFFIC,
} from '../../src/dataplane/bpf/layout.ts';

export { STAT_NAMES, type StatName } from '../../src/dataplane/bpf/layout.ts';
import { BPF_OBJECT, REPO } from './requirements.ts';
import { decodeStats, type RawCounters, readCounters, type Traffic } from '../../src/dataplane/bpf/counters.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';
import { maglevTable } from '../../src/dataplane/bpf/maglev.ts';
import { l4Key } from '../../src/dataplane/bpf/state.ts';

/** tc verdicts (uapi linux/pkt_cls.h). */
export const TC_ACT_UNSPEC = -1;
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

/** The four programs of the object. */
export type ProgramName = 'sy_from_pod' | 'sy_to_pod' | 'sy_from_net' | 'sy_to_net';
export const PROGRAMS: readonly ProgramName[] = ['sy_from_pod', 'sy_to_pod', 'sy_from_net', 'sy_to_net'];

export interface CtEntry {
  readonly key: CtKey;
  readonly value: CtValue;
}

export interface RunResult {
  /** The program's return value: TC_ACT_*. */
  readonly verdict: number;
  /** The frame as the program left it. */
  readonly data: Buffer;
  /** Counters this run moved (only those that changed). */
  readonly counted: Partial<Record<StatName, bigint>>;
  /** sy_ct4_v2 and sy_ct6_v2 after the run, sorted by key. */
  readonly ct: CtEntry[];
  /** Traffic counters this run moved, by "svc ID" / "backend4 ID" / "backend6 ID" (only those that changed): the increments. */
  readonly traffic: Record<string, Traffic>;
}

/** One backend of a frontend: its id in sy_backend*_v2, address and port. */
export interface BackendSpec {
  readonly id: number;
  readonly addr: string;
  readonly port: number;
  /** SY_BE_F_*; default 0. */
  readonly flags?: number;
}

/** A frontend as the control plane writes it: master + slots of one generation (+ backends). */
export interface FrontendSpec {
  readonly addr: string;
  readonly port: number;
  readonly proto: Protocol;
  readonly svcId: number;
  readonly scope?: Scope;
  readonly action?: SvcAction;
  /** SY_SVC_F_* */
  readonly flags?: number;
  readonly gen?: Gen;
  /** sessionAffinity ClientIP: SY_SVC_F_AFFINITY, this timeout in the master, every backend a member (sy_aff_be_v2). */
  readonly affinityTimeoutS?: number;
  /** Maglev: SY_SVC_F_MAGLEV, this table size in the master, the table (maglev.ts) of the backends in sy_maglev_v2 under gen. */
  readonly maglevM?: number;
  readonly backends: readonly BackendSpec[];
}

const v6 = (addr: string): boolean => addr.includes(':');

/** One map's definition with its codecs typed by the map's name. */
function mapDef<M extends MapName>(map: M): MapDef<KeyOf<M>, ValueOf<M>> {
  return MAPS[map] as unknown as MapDef<KeyOf<M>, ValueOf<M>>;
}

export class PacketHarness {
  readonly pinRoot: string;
  readonly #native: NativeBinding;
  readonly #obj: BpfObject;
  readonly #progs: Map<ProgramName, BpfProgram>;
  readonly #objectPath: string;

  private constructor(native: NativeBinding, obj: BpfObject, pinRoot: string, objectPath: string) {
    this.#native = native;
    this.#objectPath = objectPath;
    this.#obj = obj;
    this.#progs = new Map(PROGRAMS.map((n) => [n, obj.program(n)]));
    this.pinRoot = pinRoot;
  }

  /** Loads the object with its maps pinned in a fresh bpffs mounted under /run (close() unmounts it) and writes the node config. */
  static async open(config: NodeConfig, o: { objectPath?: string; native?: NativeBinding } = {}): Promise<PacketHarness> {
    const native = o.native ?? loadBinding();
    const pinRoot = fs.mkdtempSync('/run/sy-packets-');
    const objectPath = o.objectPath ?? BPF_OBJECT;
    let obj: BpfObject | undefined;
    try {
      obj = await BpfObject.open(objectPath, pinRoot, native);
      const h = new PacketHarness(native, obj, pinRoot, objectPath);
      await h.setConfig(config);
      return h;
    } catch (e) {
      obj?.close();
      unmount(pinRoot);
      throw e;
    }
  }

  async setConfig(config: NodeConfig): Promise<void> {
    await this.put('config', [[0, config]]);
  }

  /** Writes entries into one map with its layout v2 codecs (a per-CPU map gets the value on every CPU). */
  async put<M extends MapName>(map: M, entries: ReadonlyArray<readonly [KeyOf<M>, ValueOf<M>]>, flags?: number): Promise<void> {
    const def = mapDef(map);
    const m = this.#obj.map(def.name);
    const records = entries.map(([k, v]) => {
      const kb = Buffer.alloc(def.key.size);
      const vb = Buffer.alloc(def.value.size);
      def.keyCodec.encodeInto(k, kb, 0);
      def.valueCodec.encodeInto(v, vb, 0);
      return [kb, expandPerCpu(vb, 1, m.valueSize, m.valueStride)] as const;
    });
    await m.update(records, flags);
  }

  /** Deletes entries of one map. */
  async remove<M extends MapName>(map: M, keys: ReadonlyArray<KeyOf<M>>): Promise<void> {
    const def = mapDef(map);
    const bufs = keys.map((k) => {
      const kb = Buffer.alloc(def.key.size);
      def.keyCodec.encodeInto(k, kb, 0);
      return kb;
    });
    await this.#obj.map(def.name).delete(bufs);
  }

  /** Every entry of one map, decoded. */
  async dump<M extends MapName>(map: M): Promise<Array<{ key: KeyOf<M>; value: ValueOf<M> }>> {
    const def = mapDef(map);
    return (await this.#obj.map(def.name).dump()).map(([k, v]) => ({ key: def.keyCodec.decode(k), value: def.valueCodec.decode(v) }));
  }

  /**
   * A frontend: its backends, slots 1..n of its generation, then the master
   * (count = number of backends). No traffic counters: as for the control
   * plane's fresh ids, the program makes them on the first packet.
   */
  async frontend(f: FrontendSpec): Promise<void> {
    const fam = v6(f.addr) ? '6' : '4';
    const scope = f.scope ?? SY_SCOPE_INTERNAL;
    const gen = f.gen ?? 0;
    if (f.backends.length > 0)
      await this.put(
        `backend${fam}`,
        f.backends.map((b) => [b.id, { addr: b.addr, port: b.port, proto: f.proto, flags: b.flags ?? 0 }] as const),
      );
    const slots = f.backends.map(
      (b, i) =>
        [
          { addr: f.addr, port: f.port, proto: f.proto, scope, slot: i + 1, gen },
          { count: 0, gen: 0 as Gen, action: SY_ACT_FORWARD, backendId: b.id, svcId: 0, flags: 0, affinityTimeoutS: 0, maglevM: 0 },
        ] as const,
    );
    const affinity = f.affinityTimeoutS !== undefined;
    const maglevM = f.maglevM ?? 0;
    const flags = (f.flags ?? 0) | (affinity ? HEADER_DEFINES.SY_SVC_F_AFFINITY : 0) | (maglevM > 0 ? HEADER_DEFINES.SY_SVC_F_MAGLEV : 0);
    if (maglevM > 0 && f.backends.length > 0) {
      const table = maglevTable(
        f.backends.map((b) => l4Key({ addr: b.addr, port: b.port, proto: f.proto })),
        maglevM,
      );
      await this.put(
        'maglev',
        [...table].map((i, index) => [{ svcId: f.svcId, scope, gen, index }, { backendId: (f.backends[i] as BackendSpec).id }] as const),
      );
    }
    const master = [
      { addr: f.addr, port: f.port, proto: f.proto, scope, slot: 0, gen: 0 as Gen },
      {
        count: f.backends.length,
        gen,
        action: f.action ?? SY_ACT_FORWARD,
        backendId: 0,
        svcId: f.svcId,
        flags,
        affinityTimeoutS: f.affinityTimeoutS ?? 0,
        maglevM,
      },
    ] as const;
    if (affinity && f.backends.length > 0)
      await this.put(
        'affbe',
        f.backends.map((b) => [{ svcId: f.svcId, backendId: b.id, scope }, { flags: 0 }] as const),
      );
    await this.put(`svc${fam}`, [...slots, master]);
  }

  /** A Service IP (sy_vip*_v2). */
  async vip(addr: string, flags = HEADER_DEFINES.SY_VIP_F_CLUSTER_IP): Promise<void> {
    await this.put(v6(addr) ? 'vip6' : 'vip4', [[{ addr }, { flags }]]);
  }

  /** loadBalancerSourceRanges of a frontend (sy_srcrange*_v2). */
  async sourceRanges(svcId: number, cidrs: readonly string[]): Promise<void> {
    for (const c of cidrs) {
      const key = srcRangeKey(svcId, c);
      if (key === null) throw new Error(`not a CIDR: ${c}`);
      await this.put(c.includes(':') ? 'srcrange6' : 'srcrange4', [[key, { flags: 0 }]]);
    }
  }

  /** Runs one program once on a copy of the frame. */
  async run(prog: ProgramName, frame: Uint8Array): Promise<RunResult> {
    const p = this.#progs.get(prog);
    if (p === undefined) throw new Error(`no program ${prog}`);
    const before = await this.stats();
    const trafficBefore = await this.traffic();
    const r = await p.testRun(frame);
    const after = await this.stats();
    const counted: Partial<Record<StatName, bigint>> = {};
    for (const name of STAT_NAMES) if (after[name] !== before[name]) counted[name] = after[name] - before[name];
    const traffic = trafficDelta(trafficBefore, await this.traffic());
    // retval is the program's int as the kernel's u32: TC_ACT_UNSPEC reads 0xffffffff.
    return { verdict: r.retval | 0, data: r.data, counted, ct: await this.conntrack(), traffic };
  }

  /** The traffic counters (sy_svc_cnt_v2, sy_be_cnt*_v2) summed over CPUs. */
  async traffic(): Promise<RawCounters> {
    return readCounters((m) => this.#obj.map(MAPS[m].name).dump(), this.#native.numPossibleCpus());
  }

  /**
   * Runs frames in another network namespace (`ip netns exec`, a child
   * process opening the same object on the same pinned maps), where
   * bpf_fib_lookup sees that namespace's routes and neighbours. Verdicts
   * and output frames only; read counters and conntrack from here after.
   */
  runInNetns(netns: string, runs: ReadonlyArray<{ prog: ProgramName; frame: Uint8Array }>): Array<{ verdict: number; data: Buffer }> {
    const input = JSON.stringify(runs.map((r) => ({ prog: r.prog, frame: Buffer.from(r.frame).toString('hex') })));
    const child = spawnSync('ip', ['netns', 'exec', netns, ...NODE_CMD, `${REPO}test/support/testrun-main.ts`, this.#objectPath, this.pinRoot], {
      input,
      encoding: 'utf8',
    });
    if (child.status !== 0) throw new Error(`testrun-main in ${netns} failed (${child.status}): ${child.stderr}`);
    const lines = child.stdout.trim().split('\n');
    const out = JSON.parse(lines[lines.length - 1] ?? '[]') as Array<{ verdict: number; data: string }>;
    return out.map((r) => ({ verdict: r.verdict, data: Buffer.from(r.data, 'hex') }));
  }

  /** sy_ct4_v2 then sy_ct6_v2, each sorted by key. */
  async conntrack(): Promise<CtEntry[]> {
    const byKey = (a: CtEntry, b: CtEntry): number => ctKeyText(a.key).localeCompare(ctKeyText(b.key));
    return [...(await this.dump('ct4')).sort(byKey), ...(await this.dump('ct6')).sort(byKey)];
  }

  /** Empties the maps the programs write (conntrack, fragments, affinity), so a fixture starts with no flows. */
  async flushConntrack(): Promise<void> {
    for (const name of [MAPS.ct4.name, MAPS.ct6.name, MAPS.frag4.name, MAPS.aff4.name, MAPS.aff6.name]) {
      const m = this.#obj.map(name);
      const keys = (await m.dump()).map(([k]) => k);
      if (keys.length > 0) await m.delete(keys);
    }
  }

  /** Empties every map the control plane writes and the counters (ADOPTED_MAPS). */
  async flushServices(): Promise<void> {
    for (const n of ADOPTED_MAPS) {
      const m = this.#obj.map(MAPS[n].name);
      const keys = (await m.dump()).map(([k]) => k);
      if (keys.length > 0) await m.delete(keys);
    }
  }

  /** The SY_STAT_* counters summed over CPUs. */
  async stats(): Promise<Record<StatName, bigint>> {
    return decodeStats(await this.#obj.map(MAPS.stats.name).dump(), this.#native.numPossibleCpus());
  }

  /** Closes the object and unmounts its bpffs (every pin goes with it). */
  close(): void {
    this.#obj.close();
    unmount(this.pinRoot);
  }
}

/** What moved between two readings, by "svc ID" / "backend4 ID" / "backend6 ID". */
export function trafficDelta(before: RawCounters, after: RawCounters): Record<string, Traffic> {
  const out: Record<string, Traffic> = {};
  const diff = (name: string, a: ReadonlyMap<number, Traffic>, b: ReadonlyMap<number, Traffic>): void => {
    for (const [id, t] of b) {
      const o = a.get(id) ?? ZERO_TRAFFIC;
      const d: Traffic = {
        packets: t.packets - o.packets,
        bytes: t.bytes - o.bytes,
        replyPackets: t.replyPackets - o.replyPackets,
        replyBytes: t.replyBytes - o.replyBytes,
        conns: t.conns - o.conns,
      };
      if (d.packets !== 0n || d.bytes !== 0n || d.replyPackets !== 0n || d.replyBytes !== 0n || d.conns !== 0n) out[`${name} ${id}`] = d;
    }
  };
  diff('svc', before.services, after.services);
  diff('backend4', before.backends.IPv4, after.backends.IPv4);
  diff('backend6', before.backends.IPv6, after.backends.IPv6);
  return out;
}

function unmount(pinRoot: string): void {
  while (spawnSync('umount', [pinRoot], { stdio: 'ignore' }).status === 0);
  fs.rmSync(pinRoot, { recursive: true, force: true });
}

/** "10.244.1.5:40000 -> 10.96.0.10:80/TCP fwd" */
export function ctKeyText(k: CtKey): string {
  return `${k.saddr}:${k.sport} -> ${k.daddr}:${k.dport}/${k.proto} ${k.dir === 0 ? 'fwd' : 'rev'}`;
}
