// The BPF dataplane: owns the loaded tc programs and their pinned maps on
// this node. start() loads the object (layout 2) with the configured map
// capacities (adopting pinned maps a previous daemon left), writes
// sy_config_v2, reads back what is programmed, and attaches the programs:
// sy_from_pod (ingress) and sy_to_pod (egress) on every pod interface,
// sy_from_net (ingress) and sy_to_net (egress) on the node interface, all
// at one handle and priority, so a layout 1 sy_ingress filter is replaced
// in place (egress programs everywhere first, then ingress: #attachLinks).
// sync() runs the pipeline compile -> diff -> apply for one snapshot; only
// apply touches the kernel. A sync that fails reads the maps
// back (adopt) and rejects with the apply error; the next sync reconciles
// everything. stop() releases handles and leaves the programs attached and
// the maps pinned, so traffic keeps flowing across restarts.
// Two additions around that (kept apart from the pipeline): start() first
// takes the pin directory's lock (pinlock.ts), waiting for a daemon that
// still holds it, and stop() releases it; and when a layout 1 daemon left its
// maps pinned (migrate.ts), the programs are attached only after the first
// sync has landed and its connection tracking was carried over. Failures are
// DataplaneErrors naming the operation ("update sy_svc4_v2 (3 entries)");
// a kernel refusal keeps the native error as the cause.

import type { ProxySnapshot } from '../../model/types.ts';
import { DataplaneError, type Dataplane, type SyncResult } from '../types.ts';
import type { Logger } from '../../util/log.ts';
import type { NativeBinding } from '../../native/binding.ts';
import { BpfObject, isNativeError, isNotExist, Tc } from '../../native/index.ts';
import { globMatcher, type Link, type LinkSource } from '../../host/links.ts';
import { canonicalIP, familyOf, parseCidr } from '../../util/ip.ts';
import { type CompileOptions, compile, compileChanged } from './compile.ts';
import { diff } from './diff.ts';
import { programmedFromDump } from './adopt.ts';
import type { ConntrackEntry } from '../../host/conntrack.ts';
import { kernelFlows } from './kernel-flows.ts';
import { applyOps, applyPlan, type MapWriter } from './apply.ts';
import {
  ADOPTED_MAPS,
  addTraffic,
  type Capacities,
  capacityOf,
  expandPerCpu,
  configCodec,
  encode,
  MAPS,
  type MapName,
  type NodeConfig,
  type Op,
  type OpBatch,
  PROGRAMMED_MAPS,
  SY_CFG_DETECT_CIDR,
  SY_CFG_DETECT_IFACE,
  SY_CFG_KERNEL_HANDOVER,
  SY_CFG_LAYOUT_UPGRADE,
  type StatName,
  u32Codec,
} from './layout.ts';
import type { DesiredService, DesiredState, ProgrammedState } from './state.ts';
import { acquirePinLock, type PinLock } from './pinlock.ts';
import { ctTarget, LayoutUpgrade, type UpgradeContext } from './migrate.ts';
import type { Clock } from '../../sync/clock.ts';
import { type Counters, decodeStats, hasTraffic, labelCounters, readCounters, type Traffic } from './counters.ts';
import { parseServicePortId } from '../../model/service-ports.ts';
import type { BackendTraffic, ServiceTraffic, TrafficReport } from '../types.ts';
import { type CtPassResult, type CtPressureState, type CtTimeouts, ctPressure, flushPass, gcPass } from './ct-gc.ts';
import { type AffinityMembers, affinityPass, allMembers, lostMembers } from './affinity.ts';
import { MAGLEV_DEFAULT_M } from './maglev.ts';
import { attachSocketLb, closeStaleSockets, SOCK_ATTACH_TYPES, SOCK_PROGRAMS } from './socklb.ts';

/**
 * The canonical addresses of a Service port's serving endpoints (terminating
 * ones included): what the conntrack reconciler and the host-socket clean-up
 * keep; flows and sockets to any other address of the port's frontends go.
 */
function servingAddrs(snapshot: ProxySnapshot, owner: string): Set<string> {
  const port = snapshot.servicePorts.get(owner);
  return new Set((port?.endpoints ?? []).filter((e) => e.serving).map((e) => canonicalIP(e.ip, 'decimal') ?? e.ip));
}

/** Runs a kernel operation; a native error becomes a DataplaneError naming the operation, with the native error as its cause. */
async function kernel<T>(operation: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    throw isNativeError(err) ? DataplaneError.kernel('bpf', operation, err) : err;
  }
}

/** Where our tc filters sit on every interface (handle 0x5359 = "SY"), both directions. */
export const TC_FILTER = { handle: 0x5359, priority: 0x2000 } as const;
/** The filters `cleanup` removes: ours in each direction. */
export const TC_FILTERS = [
  { direction: 'ingress', ...TC_FILTER },
  { direction: 'egress', ...TC_FILTER },
] as const;

/** The programs of the object and where they go (DATAPATH-v2.md). */
export const PROGRAMS = {
  fromPod: 'sy_from_pod',
  toPod: 'sy_to_pod',
  fromNet: 'sy_from_net',
  toNet: 'sy_to_net',
} as const;

/** The programs of each kind of interface, [ingress, egress]: the node interface ('net') and pod interfaces ('pod'). */
export const ROLE_PROGRAMS = {
  net: [PROGRAMS.fromNet, PROGRAMS.toNet],
  pod: [PROGRAMS.fromPod, PROGRAMS.toPod],
} as const;

/** The role whose programs include `program` (a kernel program name), or null: not one of layout 2's. */
export function roleOfProgram(program: string): keyof typeof ROLE_PROGRAMS | null {
  for (const role of ['net', 'pod'] as const) if ((ROLE_PROGRAMS[role] as readonly string[]).includes(program)) return role;
  return null;
}

/** One map's fill, as metrics and `switchyard status` report it. */
export interface MapUsage {
  /** The pinned name (MAPS[x].name). */
  readonly map: string;
  readonly entries: number;
  /** max_entries as loaded (or pinned). */
  readonly capacity: number;
}

/**
 * The fill of the maps the control plane writes: the entries a
 * ProgrammedState counts (the daemon's after each apply, or adopt's from a
 * dump of the pinned maps) against each map's max_entries. The one code
 * path behind mapUsage() (metrics) and `switchyard status`.
 */
export function programmedMapUsage(entries: ProgrammedState['entries'], capacity: (pinnedName: string) => number): MapUsage[] {
  return PROGRAMMED_MAPS.map((m) => ({ map: MAPS[m].name, entries: entries[m], capacity: capacity(MAPS[m].name) }));
}

/** kube-proxy's --detect-local-mode with what each mode needs. */
export type LocalDetector =
  | { readonly mode: 'ClusterCIDR'; readonly cidrs: readonly string[] }
  /** The Node's spec.podCIDRs, from the snapshot (ProxySnapshot.nodePodCIDRs). */
  | { readonly mode: 'NodeCIDR' }
  | { readonly mode: 'BridgeInterface'; readonly bridge: string }
  | { readonly mode: 'InterfaceNamePrefix'; readonly prefix: string };

export interface NodeAddresses {
  /** IPv4 masquerade source; null when the node has none. */
  readonly ipv4: string | null;
  readonly ipv6: string | null;
  /** Every address of the node (NodePort frontends; --nodeport-addresses filters them). Default: ipv4 and ipv6. */
  readonly all?: readonly string[];
}

export interface BpfDataplaneOptions {
  readonly native: NativeBinding;
  readonly log: Logger;
  readonly objectPath: string;
  readonly pinPath: string;
  readonly node: NodeAddresses;
  /** The interface holding the node address (external traffic, replies from remote backends). */
  readonly nodeInterface: string | null;
  /** Comma-separated globs naming the host side of pod interfaces. */
  readonly podInterfaces: string;
  readonly masqueradeAll: boolean;
  readonly detectLocal: LocalDetector;
  /** --nodeport-addresses CIDRs; empty: every node address. */
  readonly nodePortAddresses: readonly string[];
  /** NodePorts on 127.0.0.1 too (compile.ts localhostNodePorts) once the socket hooks are attached; default false. */
  readonly localhostNodePorts?: boolean;
  /** --bpf-snat-port-range, inclusive. */
  readonly snatPorts: { readonly min: number; readonly max: number };
  /** max_entries per map (layout.ts MAPS defaults where absent). */
  readonly capacities: Capacities;
  /** --bpf-lb-algorithm: Services without the lb-algorithm annotation; default random. */
  readonly lbAlgorithm?: 'random' | 'maglev';
  /** --bpf-maglev-table-size (a prime); default MAGLEV_DEFAULT_M. */
  readonly maglevTableSize?: number;
  /** The links to attach to and their changes: hostLinks() in the daemon. */
  readonly links: LinkSource;
  /**
   * The socket hooks for host-network clients (socklb.ts): sock.bpf.o and
   * the cgroup v2 directory to attach it to. Absent or null: not attached.
   * A failure to attach is logged and the tc dataplane runs on without them.
   */
  readonly hostSockets?: { readonly objectPath: string; readonly cgroupPath: string } | null;
  /** Clock for the id quarantine (ms); default Date.now. */
  readonly now?: () => number;
  /** How long start() waits for another daemon to release the pin directory; default PIN_LOCK_TIMEOUT_MS. */
  readonly pinLockTimeoutMs?: number;
  /** Time for the pin lock's waits; default the system clock. */
  readonly clock?: Clock;
  /**
   * The kernel's conntrack table (host/conntrack.ts readConntrack in the
   * daemon): a full sync lands with SY_CFG_KERNEL_HANDOVER set, then the TCP
   * flows the kernel DNATed to its frontends (kube-proxy's) are handed to the
   * program as SY_CT_F_KERNEL entries (kernel-flows.ts) and the flag is
   * cleared. Absent: not done.
   */
  readonly kernelConntrack?: () => readonly ConntrackEntry[];
  /** Idle timeouts of the CT garbage collector (ct-gc.ts ctTimeouts); absent: no GC runs. */
  readonly conntrackTimeouts?: CtTimeouts;
  /** Time between two GC passes; default CT_GC_INTERVAL_MS. */
  readonly conntrackGcIntervalMs?: number;
  /** Told the cost of every GC pass (metrics). */
  readonly onConntrackGc?: (r: CtPassResult) => void;
  /**
   * Told, per family, what each conntrack reconciler pass after a sync took
   * and deleted (kubeproxy_conntrack_reconciler_*). The reconciler runs
   * whatever this says.
   */
  readonly onConntrackReconciled?: (family: 'IPv4' | 'IPv6', seconds: number, deleted: number) => void;
}

/** Default time between two CT GC passes. */
export const CT_GC_INTERVAL_MS = 10_000;

/**
 * What a failed sync rejects with: the apply error itself. If reading the
 * maps back after it failed too, that failure rides along as adoptError
 * (and the next sync reads them back before anything else).
 */
export type SyncFailure = Error & { adoptError?: unknown };

interface Fds {
  readonly fromPod: number;
  readonly toPod: number;
  readonly fromNet: number;
  readonly toNet: number;
}

export class BpfDataplane implements Dataplane {
  readonly name = 'bpf';
  #o: BpfDataplaneOptions;
  #obj: BpfObject | null = null;
  #fds: Fds | null = null;
  #tc: Tc;
  #programmed: ProgrammedState | null = null;
  #desired: DesiredState | null = null;
  /** Capacities in effect: the configured ones, or the size of a map already pinned (#pinnedCapacities). */
  #capacities: Capacities = {};
  /** ifindex -> "name role" attached. */
  #attached = new Map<number, string>();
  /** ifindex -> "name role" wanted but whose last attach failed (metrics: attached 0). */
  #attachFailed = new Map<number, string>();
  #watcher: { stop(): void } | null = null;
  #isPodLink: (name: string) => boolean;
  #configText = '';
  /** The pin directory's lock, held from start() to stop(). */
  #lock: PinLock | null = null;
  /** A pending upgrade from layout 1 (migrate.ts): holds the attach until the first sync. */
  #upgrade: LayoutUpgrade | null = null;
  /** SY_CFG_LAYOUT_UPGRADE goes into every config write while set (the upgrade's switch). */
  #upgradeHold = false;
  #gcTimer: ReturnType<typeof setInterval> | null = null;
  /** The pass under way, so that stop() waits for it and passes never overlap. */
  #gcRunning: Promise<CtPassResult | null> | null = null;
  /** CT entries per map as the last GC pass left them (map-fill metrics). */
  #ctEntries: { ct4: number; ct6: number } | null = null;
  #ctPressure: CtPressureState | null = null;
  #hostSockets = false;

  constructor(o: BpfDataplaneOptions) {
    this.#o = o;
    this.#tc = new Tc(o.native);
    const d = o.detectLocal;
    const extra = d.mode === 'BridgeInterface' ? d.bridge : d.mode === 'InterfaceNamePrefix' ? `${d.prefix}*` : '';
    this.#isPodLink = globMatcher([o.podInterfaces, extra].filter((p) => p !== '').join(','));
  }

  /**
   * The configured capacities, except for maps already pinned here: libbpf
   * reuses a pinned map only at its own max_entries, and recreating it would
   * drop its entries (connection tracking included). A pinned map keeps its
   * size, and the log says which flag asked for another one and how to apply
   * it (`switchyard cleanup`, then start: established flows are lost).
   */
  #pinnedCapacities(): Capacities {
    const o = this.#o;
    const out: Partial<Record<MapName, number>> = { ...o.capacities };
    for (const m of Object.keys(MAPS) as MapName[]) {
      const path = `${o.pinPath}/${MAPS[m].name}`;
      let fd: number;
      try {
        fd = o.native.mapOpenPinned(path);
      } catch (err) {
        if (isNotExist(err)) continue;
        throw isNativeError(err) ? DataplaneError.kernel('bpf', `open pinned ${path}`, err) : err;
      }
      try {
        const pinned = o.native.mapInfo(fd).maxEntries;
        const wanted = capacityOf(o.capacities, m);
        if (pinned !== wanted) {
          o.log.warn(
            'a pinned map keeps its size: the configured capacity applies once it is recreated (switchyard cleanup, then start; established flows are lost)',
            {
              map: MAPS[m].name,
              pinned,
              configured: wanted,
            },
          );
          out[m] = pinned;
        }
      } finally {
        o.native.closeFd(fd);
      }
    }
    return out;
  }

  async start(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    // One daemon per pin directory: wait for one that is still terminating.
    await kernel(`prepare pin directory ${o.pinPath}`, async () => o.native.ensureBpffs(o.pinPath));
    const lock = await acquirePinLock({ native: o.native, log: o.log, pinPath: o.pinPath, timeoutMs: o.pinLockTimeoutMs, clock: o.clock, signal });
    if (lock === null) return; // stopped while waiting: nothing was touched
    this.#lock = lock;
    try {
      this.#upgrade = LayoutUpgrade.detect(o.native, o.log, o.pinPath);
      await this.#load(signal);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async #load(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    this.#capacities = this.#pinnedCapacities();
    const maxEntries: Record<string, number> = {};
    for (const [m, n] of Object.entries(this.#capacities) as [MapName, number][]) maxEntries[MAPS[m].name] = n;
    const obj = await kernel(`load ${o.objectPath}`, () => BpfObject.open(o.objectPath, o.pinPath, o.native, maxEntries));
    this.#obj = obj;
    const fd = (name: string): number => obj.program(name).fd;
    this.#fds = { fromPod: fd(PROGRAMS.fromPod), toPod: fd(PROGRAMS.toPod), fromNet: fd(PROGRAMS.fromNet), toNet: fd(PROGRAMS.toNet) };
    await this.#writeConfig(await this.#pinnedPodCidrs());
    await this.#adopt();
    // Watch first, then list: a link that appears in between is in both, not in neither.
    this.#watcher = o.links.watch(() => this.#attachLinks(), signal);
    this.#attachLinks();
    await this.#attachSockets(maxEntries);
    if (o.conntrackTimeouts !== undefined) {
      this.#gcTimer = setInterval(() => void this.collectConntrack().catch(() => undefined), o.conntrackGcIntervalMs ?? CT_GC_INTERVAL_MS);
      this.#gcTimer.unref();
    }
  }

  /** After a GC pass: a CT table nearly full, flows evicted, inserts failed (ct-gc.ts ctPressure), as log lines. */
  async #reportCtPressure(obj: BpfObject, entries: CtPassResult['entries']): Promise<void> {
    let stats: Record<StatName, bigint>;
    try {
      stats = await this.#stats(obj);
    } catch (err) {
      this.#o.log.debug('datapath counters not read', { error: (err as Error).message });
      return;
    }
    const capacity = { ct4: obj.map(MAPS.ct4.name).maxEntries, ct6: obj.map(MAPS.ct6.name).maxEntries };
    const { notes, next } = ctPressure(this.#ctPressure, { entries, capacity, ctFull: stats.CT_FULL, midstream: stats.CT_MIDSTREAM });
    this.#ctPressure = next;
    for (const n of notes) this.#o.log[n.level](n.msg, n.fields);
  }

  async #stats(obj: BpfObject): Promise<Record<StatName, bigint>> {
    return decodeStats(await obj.map(MAPS.stats.name).dump(), this.#o.native.numPossibleCpus());
  }

  /** The datapath's event counters (sy_stats_v2, SY_STAT_*) summed over CPUs, for metrics; null before start(). */
  async datapathEvents(): Promise<Record<StatName, bigint> | null> {
    const obj = this.#obj;
    if (obj === null) return null;
    return kernel('read datapath counters', () => this.#stats(obj));
  }

  /** Whether the socket hooks are attached (metrics, tests). */
  get hostSockets(): boolean {
    return this.#hostSockets;
  }

  async #attachSockets(maxEntries: Readonly<Record<string, number>>): Promise<void> {
    const o = this.#o;
    const hs = o.hostSockets;
    if (hs === undefined || hs === null) return;
    try {
      await attachSocketLb({ native: o.native, log: o.log, objectPath: hs.objectPath, pinPath: o.pinPath, cgroupPath: hs.cgroupPath, maxEntries });
      this.#hostSockets = true;
    } catch (err) {
      o.log.warn('socket hooks not attached: host-network clients do not reach Services', { cgroup: hs.cgroupPath, error: (err as Error).message });
    }
  }

  /**
   * One CT garbage collection pass now (ct-gc.ts): deletes both halves of
   * the flows idle past their timeout. Null when not started or without
   * timeouts; a pass already under way is waited for instead. A failure is
   * logged and rethrown; the next pass retries.
   */
  async collectConntrack(): Promise<CtPassResult | null> {
    if (this.#gcRunning !== null) return this.#gcRunning;
    const obj = this.#obj;
    const t = this.#o.conntrackTimeouts;
    if (obj === null || t === undefined) return null;
    const run = async (): Promise<CtPassResult> => {
      try {
        const r = await kernel('conntrack gc', () => gcPass({ ct4: obj.map(MAPS.ct4.name), ct6: obj.map(MAPS.ct6.name) }, process.hrtime.bigint(), t));
        this.#ctEntries = r.entries;
        this.#o.log.debug('conntrack gc pass', { scanned: r.scanned, deleted: r.deleted, undecodable: r.undecodable, ms: Math.round(r.durationMs * 10) / 10 });
        await this.#reportCtPressure(obj, r.entries);
        this.#o.onConntrackGc?.(r);
        return r;
      } catch (err) {
        this.#o.log.warn('conntrack gc pass failed; the next pass retries', { error: (err as Error).message });
        throw err;
      }
    };
    this.#gcRunning = run().finally(() => {
      this.#gcRunning = null;
    });
    return this.#gcRunning;
  }

  async sync(snapshot: ProxySnapshot): Promise<SyncResult> {
    const started = performance.now();
    if (!this.#obj) throw new DataplaneError('ERR_SY_DATAPLANE_NOT_STARTED', 'bpf', 'sync', 'not started: call start() first');
    const podCIDRs = snapshot.nodePodCIDRs ?? [];
    await this.#writeConfig(podCIDRs);
    const opts = this.#compileOptions(snapshot.nodeName, podCIDRs);
    // Unknown after a failed sync whose read-back failed too: read the maps now.
    const programmed = this.#programmed ?? (await this.#adopt());
    const desired = this.#desired ? compileChanged(this.#desired, snapshot, opts) : compile(snapshot, opts);
    const scope = this.#desired ? desired.changed : 'all';
    const plan = diff(desired, programmed, scope, { capacities: this.#capacities, nowMs: (this.#o.now ?? Date.now)() });
    // A full sync (the first of this daemon) may take over frontends kube-proxy carried: while the
    // plan lands, TCP packets without a flow are left to the kernel; then the kernel's own NAT
    // flows to these frontends (all there are: from now on new connections are the program's)
    // get SY_CT_F_KERNEL entries, and the handover ends.
    const handOver = this.#desired === null && this.#o.kernelConntrack !== undefined;
    try {
      if (handOver) await this.#writeConfig(podCIDRs, true);
      const stats = await applyPlan(plan, this.#writer());
      if (handOver) {
        const handed = await this.#handKernelFlows(desired);
        if (handed > 0) this.#o.log.info('connections the kernel translated (kube-proxy) stay with the kernel until they end', { flows: handed });
        await this.#writeConfig(podCIDRs, false);
      }
      const before = this.#desired;
      const full = before === null;
      this.#programmed = plan.next;
      this.#desired = desired;
      await this.#flushStaleFlows(plan.touched, plan.next, desired, snapshot);
      await this.#closeStaleSockets(plan.touched, before, desired, snapshot);
      await this.#dropStaleAffinity(full ? allMembers(plan.next) : lostMembers(plan.touched, programmed, plan.next), full);
      if (this.#upgrade !== null && (await this.#upgrade.afterSync(this.#upgradeContext(podCIDRs)))) this.#upgrade = null;
      return {
        frontendsChanged: plan.touched.length,
        operations: stats.updates + stats.deletes,
        problems: [...desired.problems, ...plan.problems],
        durationMs: performance.now() - started,
      };
    } catch (err) {
      if (handOver) await this.#writeConfig(podCIDRs, false).catch(() => undefined); // the next sync writes it anyway
      // Part of the plan may have landed: read back what the kernel holds
      // and reconcile everything on the next sync. The caller must learn
      // why the plan failed, so a read-back failure does not replace it.
      this.#desired = null;
      this.#programmed = null;
      try {
        await this.#adopt();
      } catch (adoptErr) {
        this.#o.log.error('reading the maps back after a failed sync failed; the next sync retries', { error: adoptErr });
        if (err instanceof Error && Object.isExtensible(err)) (err as SyncFailure).adoptError = adoptErr;
      }
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.#gcTimer !== null) clearInterval(this.#gcTimer);
    this.#gcTimer = null;
    await this.#gcRunning?.catch(() => undefined);
    this.#watcher?.stop();
    this.#watcher = null;
    this.#obj?.close();
    this.#obj = null;
    this.#fds = null;
    this.#lock?.release();
    this.#lock = null;
  }

  /**
   * After a sync, with the socket hooks attached: the host sockets they
   * pointed at a backend that is no longer a serving endpoint of the
   * frontend (of the frontends this sync touched) are destroyed, so their
   * clients reconnect (socklb.ts closeStaleSockets). Same rule as the
   * conntrack reconciler below. A failure is logged, not thrown.
   */
  async #closeStaleSockets(touched: readonly string[], before: DesiredState | null, desired: DesiredState, snapshot: ProxySnapshot): Promise<void> {
    if (!this.#hostSockets || touched.length === 0) return;
    const serving = new Map<string, Set<string>>();
    for (const key of touched) {
      const d = desired.services.get(key);
      if (d === undefined || !lostBackends(before, d)) continue;
      const addrs = servingAddrs(snapshot, d.owner);
      if (addrs.size > 0) serving.set(key, addrs);
    }
    if (serving.size === 0) return;
    try {
      const closed = await kernel('close host sockets of removed endpoints', () => closeStaleSockets(this.#o.native, this.#o.pinPath, serving));
      if (closed > 0) this.#o.log.info('closed host sockets connected to removed endpoints', { sockets: closed });
    } catch (err) {
      this.#o.log.warn('closing host sockets of removed endpoints failed; they stay connected', { error: (err as Error).message });
    }
  }

  /**
   * kube-proxy's conntrack reconciler, after a sync: the UDP and SCTP flows
   * of the frontends this sync touched whose backend is no longer a serving
   * endpoint of the frontend's Service port are deleted (both halves), so the
   * next datagram is balanced again. Per frontend (svc_id): a backend that
   * left one Service but stays in another keeps the other's flows.
   * Terminating endpoints are serving: their flows stay. A frontend whose
   * port has no serving endpoint is left alone (kube-proxy does the same).
   * A failure is logged, not thrown: the sync landed.
   */
  async #flushStaleFlows(touched: readonly string[], next: ProgrammedState, desired: DesiredState, snapshot: ProxySnapshot): Promise<void> {
    const obj = this.#obj;
    if (obj === null || touched.length === 0) return;
    const serving = new Map<number, Set<string>>();
    for (const key of touched) {
      const p = next.services.get(key);
      const d = desired.services.get(key);
      if (p === undefined || d === undefined || (p.frontend.proto !== 'UDP' && p.frontend.proto !== 'SCTP')) continue;
      const addrs = servingAddrs(snapshot, d.owner);
      if (addrs.size > 0) serving.set(p.svcId, addrs);
    }
    if (serving.size === 0) return;
    try {
      const r = await kernel('conntrack reconcile', () => flushPass({ ct4: obj.map(MAPS.ct4.name), ct6: obj.map(MAPS.ct6.name) }, serving));
      this.#o.log.debug('conntrack reconciled', { frontends: serving.size, scanned: r.scanned, deleted: r.deleted, ms: Math.round(r.durationMs * 10) / 10 });
      this.#o.onConntrackReconciled?.('IPv4', r.durationMs / 1000, r.deletedBy.ct4);
      this.#o.onConntrackReconciled?.('IPv6', r.durationMs / 1000, r.deletedBy.ct6);
    } catch (err) {
      this.#o.log.warn('removing the flows to removed endpoints failed; they end with their timeout', { error: (err as Error).message });
    }
  }

  /**
   * After a sync: deletes the session-affinity entries that name a backend
   * their frontend lost, or a frontend without affinity (affinity.ts); on
   * the first sync, every entry no live affinity frontend can use. The
   * programs already ignore them (sy_aff_be_v2); this frees the room. A
   * failure is logged, not thrown: the sync landed.
   */
  async #dropStaleAffinity(members: AffinityMembers | null, all: boolean): Promise<void> {
    const obj = this.#obj;
    if (obj === null || members === null) return;
    try {
      const r = await kernel('affinity clean-up', () => affinityPass({ aff4: obj.map(MAPS.aff4.name), aff6: obj.map(MAPS.aff6.name) }, members, all));
      if (r.deleted > 0) this.#o.log.debug('affinity entries of removed backends deleted', { scanned: r.scanned, deleted: r.deleted });
    } catch (err) {
      this.#o.log.warn('deleting the affinity entries of removed backends failed; the datapath ignores them', { error: (err as Error).message });
    }
  }

  /** Writes SY_CT_F_KERNEL entries for kernel-DNATed TCP flows to `desired`'s frontends not tracked yet; returns how many. */
  async #handKernelFlows(desired: DesiredState): Promise<number> {
    const obj = this.#obj;
    const read = this.#o.kernelConntrack;
    if (obj === null || read === undefined) return 0;
    const flows = kernelFlows(read(), (k) => desired.services.has(k), process.hrtime.bigint());
    let written = 0;
    for (const [m, list] of [
      ['ct4', flows.v4],
      ['ct6', flows.v6],
    ] as const) {
      if (list.length === 0) continue;
      const target = ctTarget(obj.map(MAPS[m].name), MAPS[m].keyCodec, MAPS[m].valueCodec);
      const have = await target.has(list.map(([k]) => k));
      const missing = list.filter((_, i) => !have[i]);
      await target.write(missing);
      written += missing.length;
    }
    return written;
  }

  /** Interfaces the programs are attached to now, by ifindex ("eth0 net", "veth1 pod"). */
  get attached(): ReadonlyMap<number, string> {
    return this.#attached;
  }

  /**
   * Metrics (ops/metrics.ts DataplaneStats): the maps the control plane
   * writes, their entries as last programmed (the state every diff counts
   * against) and their max_entries as loaded; and the conntrack maps as
   * the last GC pass left them (a dump per scrape would cost too much).
   * Fragments are not counted. Empty before start().
   */
  mapUsage(): MapUsage[] {
    const obj = this.#obj;
    const programmed = this.#programmed;
    if (obj === null || programmed === null) return [];
    const out = programmedMapUsage(programmed.entries, (name) => obj.map(name).maxEntries);
    const ct = this.#ctEntries;
    if (ct !== null) for (const m of ['ct4', 'ct6'] as const) out.push({ map: MAPS[m].name, entries: ct[m], capacity: obj.map(MAPS[m].name).maxEntries });
    return out;
  }

  /**
   * The datapath's traffic counters (sy_svc_cnt_v2, sy_be_cnt*_v2), summed
   * over CPUs, one row per programmed frontend and backend (counters.ts).
   * For `switchyard status` and metrics; one dump of each counter map.
   * Empty before start().
   */
  async counters(): Promise<Counters> {
    const obj = this.#obj;
    const programmed = this.#programmed;
    if (obj === null || programmed === null) return { frontends: [], backends: [] };
    const raw = await kernel('read traffic counters', () => readCounters((m) => obj.map(MAPS[m].name).dump(), this.#o.native.numPossibleCpus()));
    return labelCounters(raw, programmed, this.#desired);
  }

  /**
   * Metrics (ops/metrics.ts DataplaneStats): counters per Service port,
   * frontend kind and family (frontends of one kind summed), and per
   * endpoint for the backends that carried traffic (an idle backend is not
   * exported: every node programs every endpoint of the cluster). Frontends
   * not compiled by this daemon yet (adopted, before the first sync) are
   * left out.
   */
  async trafficCounters(): Promise<TrafficReport> {
    const c = await this.counters();
    // Summed as Traffic (addTraffic), converted to numbers once per row.
    const services = new Map<string, { row: Omit<ServiceTraffic, keyof TrafficNumbers>; traffic: Traffic }>();
    for (const f of c.frontends) {
      const sp = f.owner === null ? null : parseServicePortId(f.owner);
      if (sp === null || f.kind === null) continue;
      const k = `${f.owner} ${f.kind} ${f.family}`;
      const had = services.get(k);
      const row = { namespace: sp.namespace, service: sp.name, portName: sp.portName, protocol: f.frontend.proto, frontend: f.kind, ipFamily: f.family };
      services.set(k, { row, traffic: had === undefined ? f.traffic : addTraffic(had.traffic, f.traffic) });
    }
    const backends = new Map<string, { row: Omit<BackendTraffic, keyof TrafficNumbers>; traffic: Traffic }>();
    for (const b of c.backends) {
      if (!hasTraffic(b.traffic)) continue;
      const endpoint = b.family === 'IPv6' ? `[${b.backend.addr}]:${b.backend.port}` : `${b.backend.addr}:${b.backend.port}`;
      const k = `${endpoint}/${b.backend.proto}`;
      const had = backends.get(k);
      backends.set(k, { row: { endpoint, protocol: b.backend.proto }, traffic: had === undefined ? b.traffic : addTraffic(had.traffic, b.traffic) });
    }
    return {
      services: [...services.values()].map(({ row, traffic }) => ({ ...row, ...trafficNumbers(traffic) })),
      backends: [...backends.values()].map(({ row, traffic }) => ({ ...row, ...trafficNumbers(traffic) })),
    };
  }

  /**
   * Metrics: the tc attachments this daemon made (attached) or last failed
   * to make (not attached), per interface and direction; and the socket
   * hooks (attach point "cgroup", hook connect4, ...) when configured.
   */
  programAttachments(): { program: string; attachPoint: string; hook: string; attached: boolean }[] {
    const out: ReturnType<BpfDataplane['programAttachments']> = [];
    const add = (tag: string, attached: boolean): void => {
      const cut = tag.lastIndexOf(' ');
      const [name, role] = [tag.slice(0, cut), tag.slice(cut + 1)];
      const [ingress, egress] = ROLE_PROGRAMS[role === 'net' ? 'net' : 'pod'];
      out.push({ program: ingress, attachPoint: name, hook: 'ingress', attached }, { program: egress, attachPoint: name, hook: 'egress', attached });
    };
    for (const tag of this.#attached.values()) add(tag, true);
    for (const tag of this.#attachFailed.values()) add(tag, false);
    if (this.#o.hostSockets && this.#obj !== null)
      for (const hook of SOCK_ATTACH_TYPES) out.push({ program: SOCK_PROGRAMS[hook], attachPoint: 'cgroup', hook, attached: this.#hostSockets });
    return out;
  }

  #compileOptions(nodeName: string, podCIDRs: readonly string[]): CompileOptions {
    const o = this.#o;
    const d = o.detectLocal;
    return {
      masqueradeAll: o.masqueradeAll,
      localCIDRs: d.mode === 'ClusterCIDR' ? d.cidrs : d.mode === 'NodeCIDR' ? podCIDRs : [],
      localByInterface: d.mode === 'BridgeInterface' || d.mode === 'InterfaceNamePrefix',
      nodeName,
      nodeZone: null,
      nodeIPs: o.node.all ?? [o.node.ipv4, o.node.ipv6].filter((a) => a !== null),
      nodePortAddresses: o.nodePortAddresses,
      lbAlgorithm: o.lbAlgorithm ?? 'random',
      maglevTableSize: o.maglevTableSize ?? MAGLEV_DEFAULT_M,
      // Only host sockets reach 127.0.0.1: without the hooks such frontends would serve no one.
      localhostNodePorts: o.localhostNodePorts === true && this.#hostSockets,
    };
  }

  #writer(): MapWriter {
    const obj = this.#obj;
    if (!obj) throw new DataplaneError('ERR_SY_DATAPLANE_NOT_STARTED', 'bpf', 'write', 'not started: call start() first');
    return objectMapWriter(obj, this.#o.native);
  }

  /** Writes sy_config_v2 when it differs from what this daemon wrote last. */
  async #writeConfig(podCIDRs: readonly string[], handover = false): Promise<void> {
    const obj = this.#obj;
    if (!obj) return;
    const base = nodeConfig(this.#o, podCIDRs);
    const extra = (handover ? SY_CFG_KERNEL_HANDOVER : 0) | (this.#upgradeHold ? SY_CFG_LAYOUT_UPGRADE : 0);
    const c = extra === 0 ? base : { ...base, flags: base.flags | extra };
    const text = JSON.stringify(c);
    if (text === this.#configText) return;
    await writeNodeConfig(obj, c);
    this.#configText = text;
    this.#o.log.info('node config', { ...c });
  }

  /**
   * NodeCIDR takes the pod CIDRs from the Node, so they are known only at
   * the first sync. Until then a restarted daemon keeps the ones pinned in
   * sy_config_v2 by the daemon before it: writing none would make the
   * programs, attached at start, take every pod for an external client
   * until that sync (a new pod connection to a ClusterIP masqueraded, a pod's
   * traffic to an externalTrafficPolicy: Local NodePort without a local
   * endpoint dropped). The other modes do not depend on the snapshot.
   */
  async #pinnedPodCidrs(): Promise<string[]> {
    const obj = this.#obj;
    if (obj === null || this.#o.detectLocal.mode !== 'NodeCIDR') return [];
    const m = obj.map(MAPS.config.name);
    const [value] = await kernel(`lookup ${m.name}`, () => m.lookup([encode(u32Codec, 0)]));
    if (value === undefined) return [];
    const pinned = configCodec.decode(value);
    if ((pinned.flags & SY_CFG_DETECT_CIDR) === 0) return [];
    return [pinned.podCidr4, pinned.podCidr6].filter((c) => c !== null);
  }

  async #adopt(): Promise<ProgrammedState> {
    const obj = this.#obj;
    if (!obj) throw new DataplaneError('ERR_SY_DATAPLANE_NOT_STARTED', 'bpf', 'adopt', 'not started: call start() first');
    const dumps = new Map<string, Array<[Buffer, Buffer]>>();
    for (const m of ADOPTED_MAPS) {
      const name = MAPS[m].name;
      dumps.set(name, await kernel(`dump ${name}`, () => obj.map(name).dump()));
    }
    const adopted = programmedFromDump(dumps);
    if (adopted.orphans.length > 0) {
      this.#o.log.info('removing inconsistent entries left in pinned maps', { ops: adopted.orphans.length });
      // adopt orders them svc deletes first: a phase of their own, as apply runs the maps of one phase in parallel.
      const svcDelete = (op: Op): boolean => op.action === 'delete' && (op.map === 'svc4' || op.map === 'svc6');
      await applyOps([adopted.orphans.filter(svcDelete), adopted.orphans.filter((op) => !svcDelete(op))], this.#writer());
    }
    this.#programmed = adopted.state;
    this.#o.log.info('adopted pinned maps', {
      frontends: adopted.state.services.size,
      backends4: adopted.state.backends.IPv4.byId.size,
      backends6: adopted.state.backends.IPv6.byId.size,
    });
    return adopted.state;
  }

  /** The role of a link: the node interface, a pod interface, or neither. */
  #role(link: Link): 'net' | 'pod' | null {
    if (link.name === this.#o.nodeInterface) return 'net';
    return this.#isPodLink(link.name) ? 'pod' : null;
  }

  /** What the layout 1 upgrade needs after a sync landed (migrate.ts). */
  #upgradeContext(podCIDRs: readonly string[]): UpgradeContext {
    const obj = this.#obj as BpfObject;
    const fds = this.#fds as Fds;
    return {
      obj,
      config: nodeConfig(this.#o, podCIDRs),
      attach: () => this.#attachLinks(),
      hold: async (on) => {
        this.#upgradeHold = on;
        await this.#writeConfig(podCIDRs);
      },
      tc: this.#tc,
      links: () => this.#o.links.list(),
      ours: () => new Set([fds.fromPod, fds.toPod, fds.fromNet, fds.toNet].map((fd) => this.#o.native.progIdFromFd(fd))),
      filters: TC_FILTERS,
    };
  }

  /**
   * Attaches to every wanted interface not attached yet; forgets ones that
   * are gone. Egress everywhere first, then ingress: the egress programs
   * reverse the replies that the ingress programs leave to the client's last
   * hop, so an ingress program must not run anywhere before every egress
   * program is in place. That matters when replacing a layout 1 program
   * (ingress only, which reversed replies itself): a reply entering a node
   * through a replaced ingress on the way to a pod interface without egress
   * yet would reach the client untranslated, and the client's reset would
   * end the connection. Replacing a program of the same layout changes
   * nothing either way.
   */
  #attachLinks(): void {
    const fds = this.#fds;
    if (fds === null) return;
    if (this.#upgrade?.holdsAttach) return; // the layout 1 program forwards until the first sync landed
    const present = new Set<number>();
    const todo: { link: Link; role: 'net' | 'pod'; tag: string }[] = [];
    for (const link of this.#o.links.list()) {
      const role = this.#role(link);
      if (role === null) continue;
      present.add(link.ifindex);
      const tag = `${link.name} ${role}`;
      if (this.#attached.get(link.ifindex) !== tag) todo.push({ link, role, tag });
    }
    const failed = new Set<number>();
    for (const direction of ['egress', 'ingress'] as const) {
      for (const { link, role, tag } of todo) {
        if (failed.has(link.ifindex)) continue;
        const fd = direction === 'ingress' ? (role === 'net' ? fds.fromNet : fds.fromPod) : role === 'net' ? fds.toNet : fds.toPod;
        try {
          // replace: true takes over the (handle, priority) slot, so a layout 1 sy_ingress filter is replaced in place.
          this.#tc.attach(link.ifindex, fd, { direction, ...TC_FILTER, replace: true });
          if (direction === 'ingress') {
            this.#attached.set(link.ifindex, tag);
            this.#attachFailed.delete(link.ifindex);
            this.#o.log.info('attached', { interface: link.name, ifindex: link.ifindex, role });
          }
        } catch (err) {
          // A link can vanish between listing and attaching; the next event retries others.
          failed.add(link.ifindex);
          this.#attachFailed.set(link.ifindex, tag);
          this.#o.log.warn('attach failed', { interface: link.name, error: (err as Error).message });
        }
      }
    }
    for (const [ifindex, tag] of [...this.#attached]) {
      if (present.has(ifindex)) continue;
      this.#attached.delete(ifindex);
      this.#o.log.info('forgot interface', { interface: tag.split(' ')[0], ifindex }); // gone, or renamed out of the patterns
    }
    for (const ifindex of [...this.#attachFailed.keys()]) if (!present.has(ifindex)) this.#attachFailed.delete(ifindex);
  }
}

/**
 * Whether a frontend may have lost a backend since the state `before`
 * (null at this daemon's first sync: maybe, changes may have come while no
 * daemon ran; a frontend new since then: no), so that its host sockets are
 * worth a look: the reverse-NAT maps are read only then.
 */
function lostBackends(beforeState: DesiredState | null, now: DesiredService): boolean {
  if (beforeState === null) return true;
  const before = beforeState.services.get(now.key);
  if (before === undefined) return false;
  const keep = new Set([...now.internal.backendKeys, ...(now.external?.backendKeys ?? [])]);
  return [...before.internal.backendKeys, ...(before.external?.backendKeys ?? [])].some((k) => !keep.has(k));
}

type TrafficNumbers = Pick<ServiceTraffic, 'packets' | 'bytes' | 'replyPackets' | 'replyBytes' | 'connections'>;

function trafficNumbers(t: Traffic): TrafficNumbers {
  return {
    packets: Number(t.packets),
    bytes: Number(t.bytes),
    replyPackets: Number(t.replyPackets),
    replyBytes: Number(t.replyBytes),
    connections: Number(t.conns),
  };
}

/** apply's MapWriter over a loaded object's maps: one batch syscall per OpBatch. */
export function objectMapWriter(obj: BpfObject, native: NativeBinding): MapWriter {
  return {
    async write(b: OpBatch): Promise<void> {
      const m = obj.map(b.map);
      await kernel(`${b.action} ${b.map} (${b.count} ${b.count === 1 ? 'entry' : 'entries'})`, async () => {
        // A per-CPU map (the traffic counters) takes the value once per possible CPU.
        if (b.action === 'update')
          await native.mapUpdate(m.fd, b.keys, expandPerCpu(b.values ?? Buffer.alloc(0), b.count, m.valueSize, m.valueStride), m.keySize, m.valueSize);
        else await native.mapDelete(m.fd, b.keys, m.keySize);
      });
    },
  };
}

/** sy_config_v2 from the options: node addresses, detector, SNAT range. */
export function nodeConfig(o: Pick<BpfDataplaneOptions, 'node' | 'detectLocal' | 'snatPorts'>, podCIDRs: readonly string[]): NodeConfig {
  const d = o.detectLocal;
  const cidrs = d.mode === 'ClusterCIDR' ? d.cidrs : d.mode === 'NodeCIDR' ? podCIDRs : [];
  const first = (family: 'IPv4' | 'IPv6'): string | null => cidrs.find((c) => familyOf(c) === family && parseCidr(c, 'decimal') !== null) ?? null;
  const byCidr = d.mode === 'ClusterCIDR' || d.mode === 'NodeCIDR';
  return {
    nodeAddr4: o.node.ipv4,
    nodeAddr6: o.node.ipv6,
    podCidr4: byCidr ? first('IPv4') : null,
    podCidr6: byCidr ? first('IPv6') : null,
    snatPortMin: o.snatPorts.min,
    snatPortMax: o.snatPorts.max,
    flags: byCidr ? SY_CFG_DETECT_CIDR : SY_CFG_DETECT_IFACE,
  };
}

/** Writes sy_config_v2. */
export async function writeNodeConfig(obj: BpfObject, c: NodeConfig): Promise<void> {
  for (const [addr, family] of [
    [c.nodeAddr4, 'IPv4'],
    [c.nodeAddr6, 'IPv6'],
  ] as const) {
    if (addr !== null && (familyOf(addr) !== family || parseCidr(`${addr}/${family === 'IPv4' ? 32 : 128}`, 'decimal') === null))
      throw new DataplaneError('ERR_SY_DATAPLANE_OPTION', 'bpf', 'start', `node address "${addr}" is not an ${family} address`);
  }
  const m = obj.map(MAPS.config.name);
  await kernel(`update ${m.name}`, () => m.update([[encode(u32Codec, 0), encode(configCodec, c)]]));
}

/** The capacities in effect for every map (defaults filled in), for logs. */
export function effectiveCapacities(caps: Capacities): Record<MapName, number> {
  const out = {} as Record<MapName, number>;
  for (const m of Object.keys(MAPS) as MapName[]) out[m] = capacityOf(caps, m);
  return out;
}
