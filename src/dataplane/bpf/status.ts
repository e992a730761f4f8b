// status: what the BPF dataplane holds, read back from the kernel for
// `switchyard status` (never from a daemon's memory): the pinned maps under
// the pin directory, decoded by adopt's own reading of them
// (programmedFromDump: the same live/orphan rules a restarted daemon
// applies), their fill by the same code path as the metrics
// (programmedMapUsage), and our tc filters on this namespace's interfaces.
// Read only: maps are opened by their pins and dumped, nothing is written,
// and the pin directory's lock is never taken (a running daemon is not
// disturbed; pinlock.ts's holders are only listed). A daemon that syncs
// while the maps are dumped can leave a moment's inconsistency between
// them; a read that finds any is repeated (READ_ATTEMPTS) before it is
// reported as it is.

import { existsSync } from 'node:fs';
import { SOCK_ATTACH_TYPES, sockLinkPin } from './socklb.ts';
import type { Link } from '../../host/links.ts';
import { BpfMap, isNativeError, isNotExist, isPermissionDenied, type MapRecord, type NativeBinding } from '../../native/index.ts';
import { canonicalIP } from '../../util/ip.ts';
import {
  type AttachmentStatus,
  type BackendStatus,
  compareFrontends,
  type DataplaneStatus,
  type FrontendKind,
  type FrontendStatus,
  type ScopeStatus,
  STATUS_SCHEMA,
  type StatusAction,
  type TableUsage,
  type TrafficCount,
} from '../status.ts';
import { DataplaneError } from '../types.ts';
import { programmedFromDump } from './adopt.ts';
import { programmedMapUsage, roleOfProgram, TC_FILTERS } from './dataplane.ts';
import {
  decodeEntries,
  HEADER_DEFINES,
  MAPS,
  type MapName,
  type NodeConfig,
  ADOPTED_MAPS,
  COUNTER_MAPS,
  SY_ACT_DROP,
  SY_ACT_REJECT,
  SY_BE_F_LOCAL,
  SY_SVC_F_AFFINITY,
  SY_SVC_F_CLUSTER_IP,
  SY_SVC_F_MASQ,
  SY_SVC_F_MASQ_EXT,
  SY_SVC_F_SRC_RANGES,
} from './layout.ts';
import { V1_MAPS } from './migrate.ts';
import type { FamilyBackends, ProgrammedScope, ProgrammedService, ProgrammedState } from './state.ts';
import { type RawCounters, readCounters, type Traffic } from './counters.ts';

/** Reads of the maps while a daemon may be writing them, until one is consistent. */
export const READ_ATTEMPTS = 3;

/** Layout 1's one tc program (ingress only), replaced in place by the upgrade. */
const LAYOUT1_PROGRAM = 'sy_ingress';

/** The maps the datapath itself fills (their fill is counted from a dump). */
const DATAPATH_MAPS = ['ct4', 'ct6', 'frag4', 'aff4', 'aff6'] as const satisfies readonly MapName[];

export interface PinnedStatusOptions {
  readonly native: NativeBinding;
  readonly pinPath: string;
  /** This namespace's interfaces (listLinks()), searched for our tc filters. */
  readonly links: readonly Link[];
  /** This host's own addresses: a frontend on one of them is a NodePort. */
  readonly nodeAddresses: readonly string[];
}

/** What the pin directory holds. */
export type PinnedRead =
  | { readonly kind: 'nothing' }
  /** Only layout 1 maps (an older daemon's); `switchyard run` migrates them on start. */
  | { readonly kind: 'layout1'; readonly maps: readonly string[] }
  | { readonly kind: 'status'; readonly status: DataplaneStatus };

export async function readPinnedStatus(o: PinnedStatusOptions): Promise<PinnedRead> {
  const maps = openPinnedMaps(o.native, o.pinPath);
  try {
    if (maps.size === 0) {
      const v1 = V1_MAPS.filter((name) => isPinned(o.native, `${o.pinPath}/${name}`));
      return v1.length > 0 ? { kind: 'layout1', maps: v1 } : { kind: 'nothing' };
    }
    let read = await readOnce(maps, o);
    for (let i = 1; i < READ_ATTEMPTS && read.inconsistent; i++) read = await readOnce(maps, o);
    const notes = [...read.notes];
    const missing = (Object.keys(MAPS) as MapName[]).filter((m) => !maps.has(m)).map((m) => MAPS[m].name);
    if (missing.length > 0) notes.push(`not pinned: ${missing.join(', ')} (read as empty)`);
    const v1 = V1_MAPS.filter((name) => isPinned(o.native, `${o.pinPath}/${name}`));
    if (v1.length > 0)
      notes.push(`layout 1 maps are still pinned (${v1.join(', ')}): the upgrade to layout 2 has not finished; the daemon completes it after its first sync`);
    const socketHooks = SOCK_ATTACH_TYPES.filter((t) => existsSync(sockLinkPin(o.pinPath, t)));
    if (socketHooks.length > 0 && socketHooks.length < SOCK_ATTACH_TYPES.length)
      notes.push(
        `only ${socketHooks.length} of ${SOCK_ATTACH_TYPES.length} socket hooks are pinned (${socketHooks.join(', ')}): the daemon's attach stopped part way`,
      );
    const attachments = readAttachments(o.native, o.links);
    for (const a of attachments) {
      if (a.program === null || roleOfProgram(a.program) !== null) continue;
      notes.push(
        a.program === LAYOUT1_PROGRAM
          ? `${a.interface} ${a.hook}: the layout 1 program (${a.program}) is still attached`
          : `${a.interface} ${a.hook}: a program that is not Switchyard's (${a.program}) sits at our tc handle and priority`,
      );
    }
    const status: DataplaneStatus = {
      schema: STATUS_SCHEMA,
      dataplane: 'bpf',
      source: o.pinPath,
      layout: HEADER_DEFINES.SY_LAYOUT_VERSION,
      daemonPids: lockHolders(o.native, o.pinPath),
      frontends: read.frontends,
      tables: read.tables,
      attachments,
      socketHooks,
      notes,
    };
    return { kind: 'status', status };
  } finally {
    for (const m of maps.values()) m.close();
  }
}

/** Every map of layout 2 pinned under pinPath, opened by its pin. */
function openPinnedMaps(native: NativeBinding, pinPath: string): Map<MapName, BpfMap> {
  const out = new Map<MapName, BpfMap>();
  try {
    for (const m of Object.keys(MAPS) as MapName[]) {
      const path = `${pinPath}/${MAPS[m].name}`;
      try {
        out.set(m, BpfMap.openPinned(path, native));
      } catch (err) {
        if (isNotExist(err)) continue;
        if (isPermissionDenied(err))
          throw new DataplaneError('ERR_SY_DATAPLANE_KERNEL', 'bpf', `open pinned ${path}`, `${err.message} (run as root)`, { cause: err });
        throw isNativeError(err) ? DataplaneError.kernel('bpf', `open pinned ${path}`, err) : err;
      }
    }
    return out;
  } catch (err) {
    for (const m of out.values()) m.close();
    throw err;
  }
}

function isPinned(native: NativeBinding, path: string): boolean {
  let fd: number;
  try {
    fd = native.mapOpenPinned(path);
  } catch (err) {
    if (isNotExist(err)) return false;
    throw isNativeError(err) ? DataplaneError.kernel('bpf', `open pinned ${path}`, err) : err;
  }
  native.closeFd(fd);
  return true;
}

function lockHolders(native: NativeBinding, pinPath: string): number[] {
  try {
    return native.lockHolders(pinPath).sort((a, b) => a - b);
  } catch {
    return []; // /proc/locks unreadable: nobody known
  }
}

interface Read {
  readonly frontends: FrontendStatus[];
  readonly tables: TableUsage[];
  readonly notes: string[];
  /** Left-over entries or damaged frontends: worth reading again while a daemon may be writing. */
  readonly inconsistent: boolean;
}

async function readOnce(maps: ReadonlyMap<MapName, BpfMap>, o: PinnedStatusOptions): Promise<Read> {
  const dump = async (m: MapName): Promise<MapRecord[]> => {
    const map = maps.get(m);
    if (map === undefined) return [];
    try {
      return await map.dump();
    } catch (err) {
      throw isNativeError(err) ? DataplaneError.kernel('bpf', `dump ${map.name}`, err) : err;
    }
  };
  const dumps = new Map<string, MapRecord[]>();
  for (const m of ADOPTED_MAPS) dumps.set(MAPS[m].name, await dump(m));
  const config = decodeEntries('config', await dump('config'))[0]?.[1] ?? null;
  const adopted = programmedFromDump(dumps);
  const counters = await readCounters(async (m) => (maps.has(m) ? dump(m) : null), o.native.numPossibleCpus());
  const frontends = statusFrontends(adopted.state, { nodeAddresses: nodeAddressSet(o.nodeAddresses, config), counters });
  const capacity = (name: string): number => [...maps.values()].find((m) => m.name === name)?.maxEntries ?? 0;
  // Maps that are not pinned have no fill (a note names them).
  const pinned = new Set([...maps.values()].map((m) => m.name));
  const tables: TableUsage[] = programmedMapUsage(adopted.state.entries, capacity)
    .filter((u) => pinned.has(u.map))
    .map((u) => ({ name: u.map, entries: u.entries, capacity: u.capacity }));
  for (const m of DATAPATH_MAPS) if (maps.has(m)) tables.push({ name: MAPS[m].name, entries: (await dump(m)).length, capacity: capacity(MAPS[m].name) });
  const notes: string[] = [];
  const leftover = new Map<string, number>();
  // A counter entry missing or left for a dead id is the starting daemon's to mend (adopt), not a left-over of a sync.
  for (const op of adopted.orphans)
    if (!(COUNTER_MAPS as readonly MapName[]).includes(op.map)) leftover.set(MAPS[op.map].name, (leftover.get(MAPS[op.map].name) ?? 0) + 1);
  for (const [name, n] of leftover)
    notes.push(`${name}: ${n} ${n === 1 ? 'entry' : 'entries'} left over from an interrupted sync, not counted above (a daemon removes them when it starts)`);
  return { frontends, tables, notes, inconsistent: leftover.size > 0 || frontends.some((f) => f.problems.length > 0) };
}

/** The node's addresses, canonical: the host's own and the masquerade sources in sy_config_v2. */
function nodeAddressSet(host: readonly string[], config: NodeConfig | null): Set<string> {
  const out = new Set<string>();
  for (const a of [...host, config?.nodeAddr4 ?? null, config?.nodeAddr6 ?? null]) {
    const c = a === null ? null : canonicalIP(a, 'decimal');
    if (c !== null) out.add(c);
  }
  return out;
}

export interface StatusContext {
  /** Canonical addresses of this node: a frontend on one is a NodePort. */
  readonly nodeAddresses: ReadonlySet<string>;
  /** The counter maps by id (counters.ts); absent: no counters column. */
  readonly counters?: RawCounters;
}

/** The dataplane-neutral frontends of a ProgrammedState (adopt's reading of the maps), sorted. Pure. */
export function statusFrontends(state: ProgrammedState, ctx: StatusContext): FrontendStatus[] {
  const out: FrontendStatus[] = [];
  for (const svc of state.services.values()) out.push(frontendStatus(svc, state.backends[svc.family], ctx));
  return out.sort(compareFrontends);
}

const ACTIONS: Readonly<Record<number, StatusAction>> = { [SY_ACT_REJECT]: 'REJECT', [SY_ACT_DROP]: 'DROP' };

function frontendStatus(svc: ProgrammedService, backends: FamilyBackends, ctx: StatusContext): FrontendStatus {
  const problems: string[] = [];
  const f = svc.frontend;
  const kind = kindOf(svc, ctx.nodeAddresses);
  const scope = (sc: ProgrammedScope, masquerade: boolean, which: string): ScopeStatus => ({
    action: ACTIONS[sc.action] ?? 'DNAT',
    masquerade,
    backends: scopeBackends(sc, backends, svc, ctx.counters, (p) => problems.push(`${which}: ${p}`)),
  });
  const flags = svc.internal.flags;
  const internal = scope(svc.internal, (flags & SY_SVC_F_MASQ) !== 0, 'internal');
  const external =
    svc.external === null
      ? { ...internal, masquerade: (flags & (SY_SVC_F_MASQ | SY_SVC_F_MASQ_EXT)) !== 0 }
      : scope(svc.external, (svc.external.flags & SY_SVC_F_MASQ) !== 0, 'external');
  const timeout = (flags & SY_SVC_F_AFFINITY) !== 0 ? svc.internal.affinityTimeoutS : undefined;
  return {
    family: svc.family,
    address: f.addr,
    port: f.port,
    protocol: f.proto,
    kind,
    id: svc.svcId,
    internal,
    external,
    sharedScope: svc.external === null,
    externalTrafficPolicy: kind === 'ClusterIP' ? null : trafficPolicy(external),
    sourceRanges: svc.sourceRanges,
    affinity: timeout === undefined ? null : { timeoutSeconds: timeout },
    counters: countOf(ctx.counters, ctx.counters?.services.get(svc.svcId)),
    problems,
  };
}

/**
 * What a frontend is, as far as the maps tell: the ClusterIP flag; a node
 * address (NodePorts listen on every allowed node address); source ranges
 * (only LoadBalancer IPs have them); else an ExternalIP or LoadBalancer IP.
 */
function kindOf(svc: ProgrammedService, nodeAddresses: ReadonlySet<string>): FrontendKind {
  if ((svc.internal.flags & SY_SVC_F_CLUSTER_IP) !== 0) return 'ClusterIP';
  if (nodeAddresses.has(svc.frontend.addr)) return 'NodePort';
  if ((svc.internal.flags & SY_SVC_F_SRC_RANGES) !== 0 || svc.sourceRanges.length > 0) return 'LoadBalancer';
  return 'External';
}

/** externalTrafficPolicy Cluster masquerades external clients; Local keeps their address, or drops them without a local backend. */
function trafficPolicy(external: ScopeStatus): 'Cluster' | 'Local' | null {
  if (external.action === 'DNAT') return external.masquerade ? 'Cluster' : 'Local';
  return external.action === 'DROP' ? 'Local' : null;
}

function scopeBackends(
  sc: ProgrammedScope,
  fam: FamilyBackends,
  svc: ProgrammedService,
  counters: RawCounters | undefined,
  problem: (text: string) => void,
): BackendStatus[] {
  const out: BackendStatus[] = [];
  sc.backendIds.forEach((id, i) => {
    const b = id === 0 ? undefined : fam.byId.get(id);
    if (id === 0) problem(`slot ${i + 1} is missing`);
    else if (b === undefined)
      problem(`slot ${i + 1} names backend id ${id}, which ${svc.family === 'IPv4' ? MAPS.backend4.name : MAPS.backend6.name} does not hold`);
    if (b === undefined) return;
    out.push({
      address: b.backend.addr,
      port: b.backend.port,
      local: (b.backend.flags & SY_BE_F_LOCAL) !== 0,
      weight: null, // random choice among the slots: no weights
      terminating: null, // the maps do not record it (terminating endpoints are programmed only when none serve)
      counters: countOf(counters, counters?.backends[svc.family].get(id)),
    });
  });
  return out;
}

/**
 * A counter as status shows it: packets and bytes both ways (to the backend
 * and the replies), connections; null when the map has no entry for the id.
 * A backend's counters are the backend's, whichever Service sent the traffic.
 */
/** null without counter maps (no column); an id without an entry has had no packet yet (the datapath creates it on the first). */
function countOf(raw: RawCounters | undefined, t: Traffic | undefined): TrafficCount | null {
  if (raw === undefined) return null;
  if (t === undefined) return { packets: 0, bytes: 0, connections: 0 };
  return { packets: Number(t.packets + t.replyPackets), bytes: Number(t.bytes + t.replyBytes), connections: Number(t.conns) };
}

/** Our tc filters (TC_FILTERS: handle and priority) on each interface, with the program's kernel name. */
function readAttachments(native: NativeBinding, links: readonly Link[]): AttachmentStatus[] {
  const out: AttachmentStatus[] = [];
  for (const link of links) {
    for (const filter of TC_FILTERS) {
      let progId: number | undefined;
      try {
        progId = native.tcQuery(link.ifindex, filter)?.progId;
      } catch (err) {
        if (isNativeError(err) && err.code === 'ENODEV') break; // the link went away meanwhile
        throw isNativeError(err) ? DataplaneError.kernel('bpf', `query tc ${filter.direction} on ${link.name}`, err) : err;
      }
      if (progId === undefined) continue;
      let program: string | null = null;
      try {
        program = native.progInfo(progId).name;
      } catch {
        // Unloaded meanwhile, or no right to read program info: the id still says something is there.
      }
      out.push({ interface: link.name, hook: filter.direction, program, programId: progId });
    }
  }
  return out;
}
