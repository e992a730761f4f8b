// The packet-fixture harness (Katran's katran/lib/testing is the model): the
// real bpf/build/switchyard.bpf.o loaded into this kernel with its maps
// pinned in a throwaway bpffs, Services programmed through the daemon's own
// pipeline (compile -> diff -> apply, from a ProxySnapshot, with the
// production encoders and map writer), and the tc program run on a frame
// through BPF_PROG_TEST_RUN. A run returns the verdict, the frame as the
// program left it, the connection-tracking entries (decoded) and the
// counters it moved. Nothing is attached and no packet is sent.
// Packets themselves are built and checked in packets.ts.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { EndpointInfo, Protocol, ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';
import { BpfObject, loadBinding, type BpfProgram, type NativeBinding } from '../../src/native/index.ts';
import { programmedFromDump } from '../../src/dataplane/bpf/adopt.ts';
import { applyOps, applyPlan } from '../../src/dataplane/bpf/apply.ts';
import { compile } from '../../src/dataplane/bpf/compile.ts';
import { objectMapWriter, PROGRAM_NAME, writeNodeConfig } from '../../src/dataplane/bpf/dataplane.ts';
import { diff } from '../../src/dataplane/bpf/diff.ts';
import {
  ctKeyCodec,
  ctValueCodec,
  decodePerCpuCounters,
  HEADER_DEFINES,
  MAPS,
  rnatValueCodec,
  sumCounters,
  type CtKey,
  type CtValue,
  type RnatValue,
} from '../../src/dataplane/bpf/layout-v1.ts';
import { backendKeyOf, type ProgrammedState } from '../../src/dataplane/bpf/state.ts';
import type { Problem } from '../../src/dataplane/types.ts';
import { BPF_OBJECT } from './requirements.ts';

/** tc verdicts (uapi linux/pkt_cls.h). */
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

/** The SY_STAT_* counters of sy_maps.h, by name. */
export type StatName = 'SVC_HIT' | 'CT_NEW' | 'NO_BACKEND' | 'RNAT' | 'SNAT_FAIL';
const STATS: ReadonlyArray<readonly [StatName, number]> = [
  ['SVC_HIT', HEADER_DEFINES.SY_STAT_SVC_HIT],
  ['CT_NEW', HEADER_DEFINES.SY_STAT_CT_NEW],
  ['NO_BACKEND', HEADER_DEFINES.SY_STAT_NO_BACKEND],
  ['RNAT', HEADER_DEFINES.SY_STAT_RNAT],
  ['SNAT_FAIL', HEADER_DEFINES.SY_STAT_SNAT_FAIL],
];

export interface CtEntry {
  readonly key: CtKey;
  readonly value: CtValue;
}

export interface RnatEntry {
  readonly key: CtKey;
  readonly value: RnatValue;
}

export interface Conntrack {
  /** sy_ct4_v1, sorted by key. */
  readonly ct: CtEntry[];
  /** sy_rnat4_v1, sorted by key. */
  readonly rnat: RnatEntry[];
}

export interface RunResult extends Conntrack {
  /** The program's return value: TC_ACT_*. */
  readonly verdict: number;
  /** The frame as the program left it. */
  readonly data: Buffer;
  /** Counters this run moved (only those that changed). */
  readonly counted: Partial<Record<StatName, bigint>>;
}

export interface HarnessOptions {
  /** sy_config_v1's node address: the masquerade source of hairpin flows. */
  readonly nodeAddress: string;
  readonly masqueradeAll?: boolean;
  readonly objectPath?: string;
  readonly native?: NativeBinding;
}

export class PacketHarness {
  readonly pinRoot: string;
  readonly #native: NativeBinding;
  readonly #obj: BpfObject;
  readonly #prog: BpfProgram;
  readonly #masqueradeAll: boolean;
  #programmed: ProgrammedState;

  private constructor(native: NativeBinding, obj: BpfObject, pinRoot: string, programmed: ProgrammedState, masqueradeAll: boolean) {
    this.#native = native;
    this.#obj = obj;
    this.#prog = obj.program(PROGRAM_NAME);
    this.pinRoot = pinRoot;
    this.#programmed = programmed;
    this.#masqueradeAll = masqueradeAll;
  }

  /**
   * Loads the object as the daemon does (BpfObject.open with a pin root,
   * the node config written, the pinned maps adopted), in a fresh bpffs
   * mounted under /run that close() unmounts.
   */
  static async open(o: HarnessOptions): Promise<PacketHarness> {
    const native = o.native ?? loadBinding();
    const pinRoot = fs.mkdtempSync('/run/sy-packets-');
    let obj: BpfObject | undefined;
    try {
      obj = await BpfObject.open(o.objectPath ?? BPF_OBJECT, pinRoot, native);
      await writeNodeConfig(obj, o.nodeAddress);
      const adopted = programmedFromDump(await obj.map(MAPS.svc.name).dump(), await obj.map(MAPS.backend.name).dump());
      await applyOps([adopted.orphans], objectMapWriter(obj, native));
      return new PacketHarness(native, obj, pinRoot, adopted.state, o.masqueradeAll ?? false);
    } catch (e) {
      obj?.close();
      unmount(pinRoot);
      throw e;
    }
  }

  /**
   * Programs exactly these ServicePorts (a full sync: frontends not among
   * them are removed) through compile -> diff -> apply. Returns compile's
   * problems.
   */
  async program(servicePorts: readonly ServicePortInfo[]): Promise<readonly Problem[]> {
    const snapshot: ProxySnapshot = { nodeName: 'fixture-node', servicePorts: new Map(servicePorts.map((sp) => [sp.id, sp])), changed: 'all' };
    const desired = compile(snapshot, { masqueradeAll: this.#masqueradeAll });
    const plan = diff(desired, this.#programmed, 'all');
    await applyPlan(plan, objectMapWriter(this.#obj, this.#native));
    this.#programmed = plan.next;
    return desired.problems;
  }

  /** The id diff gave a backend (what sy_ct_value.backend_id holds), or undefined. */
  backendId(addr: string, port: number, proto: Protocol): number | undefined {
    return this.#programmed.backends.get(backendKeyOf({ addr, port, proto }))?.id;
  }

  /** Runs sy_ingress once on a copy of the frame. */
  async run(frame: Uint8Array): Promise<RunResult> {
    const before = await this.stats();
    const r = await this.#prog.testRun(frame);
    const after = await this.stats();
    const counted: Partial<Record<StatName, bigint>> = {};
    for (const [name] of STATS) if (after[name] !== before[name]) counted[name] = after[name] - before[name];
    return { verdict: r.retval, data: r.data, counted, ...(await this.conntrack()) };
  }

  async conntrack(): Promise<Conntrack> {
    const ct = (await this.#obj.map(MAPS.ct.name).dump()).map(([k, v]) => ({ key: ctKeyCodec.decode(k), value: ctValueCodec.decode(v) }));
    const rnat = (await this.#obj.map(MAPS.rnat.name).dump()).map(([k, v]) => ({ key: ctKeyCodec.decode(k), value: rnatValueCodec.decode(v) }));
    const byKey = (a: { key: CtKey }, b: { key: CtKey }): number => ctKeyText(a.key).localeCompare(ctKeyText(b.key));
    return { ct: ct.sort(byKey), rnat: rnat.sort(byKey) };
  }

  /** Empties sy_ct4_v1 and sy_rnat4_v1, so a fixture starts with no flows. */
  async flushConntrack(): Promise<void> {
    for (const name of [MAPS.ct.name, MAPS.rnat.name]) {
      const m = this.#obj.map(name);
      const keys = (await m.dump()).map(([k]) => k);
      if (keys.length > 0) await m.delete(keys);
    }
  }

  /** The SY_STAT_* counters summed over CPUs. */
  async stats(): Promise<Record<StatName, bigint>> {
    const cpus = this.#native.numPossibleCpus();
    const byIndex = new Map((await this.#obj.map(MAPS.stats.name).dump()).map(([k, v]) => [k.readUInt32LE(0), sumCounters(decodePerCpuCounters(v, cpus))]));
    return Object.fromEntries(STATS.map(([name, i]) => [name, byIndex.get(i) ?? 0n])) as Record<StatName, bigint>;
  }

  /** Closes the object and unmounts its bpffs (every pin goes with it). */
  close(): void {
    this.#obj.close();
    unmount(this.pinRoot);
  }
}

function unmount(pinRoot: string): void {
  while (spawnSync('umount', [pinRoot], { stdio: 'ignore' }).status === 0);
  fs.rmSync(pinRoot, { recursive: true, force: true });
}

/** "10.244.1.5:40000 -> 10.96.0.10:80/TCP" */
export function ctKeyText(k: CtKey): string {
  return `${k.saddr}:${k.sport} -> ${k.daddr}:${k.dport}/${k.proto}`;
}

// ---------------------------------------------------------------------------
// Services as the model hands them to the dataplane.

export interface ClusterIPSpec {
  readonly name: string;
  readonly clusterIP: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** [ip, port] of each ready endpoint. */
  readonly endpoints: ReadonlyArray<readonly [string, number]>;
}

/** A ClusterIP ServicePort with ready endpoints and default policies, as the SnapshotBuilder makes one. */
export function clusterIP(s: ClusterIPSpec): ServicePortInfo {
  const endpoints: EndpointInfo[] = s.endpoints.map(([ip, port]) => ({
    ip,
    port,
    nodeName: 'fixture-node',
    zone: null,
    ready: true,
    serving: true,
    terminating: false,
    isLocal: true,
  }));
  return {
    id: `default/${s.name}:/${s.protocol}`,
    namespace: 'default',
    name: s.name,
    portName: '',
    protocol: s.protocol,
    clusterIPs: [s.clusterIP],
    port: s.port,
    endpoints,
    clusterEndpoints: endpoints,
  };
}
