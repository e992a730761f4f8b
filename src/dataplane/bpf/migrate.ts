// migrate: carries the live state a layout-1 daemon left pinned (the maps of
// bpf/include/sy_maps_v1.h: sy_svc4_v1, sy_backend4_v1, sy_ct4_v1,
// sy_rnat4_v1, sy_config_v1, sy_stats_v1) over to layout 2, so that an
// upgrade keeps established connections on their backend and keeps their
// replies translated.
//
// What carries over is connection tracking only. Frontends and backends are
// recompiled from the API by the first sync (the v2 ids differ from the v1
// ones), the node config is written from flags, and counters start at zero.
// Each v1 flow is a forward entry in sy_ct4_v1 (client -> frontend: backend,
// masquerade address) and a reverse entry in sy_rnat4_v1 (backend -> client
// or -> masquerade address: frontend, client). Layout 2 keeps one flow as two
// halves of sy_ct4_v2 that each hold all of it (SY_CT_DIR_FWD, SY_CT_DIR_REV),
// so flowsFromV1() joins the two v1 entries (or rebuilds the whole flow from
// the one the LRU left), maps the backend to the id the first v2 sync gave
// its address (a flow whose backend is gone gets id 0, which no backend has:
// the v2 program re-balances it on its next packet, as it does any flow whose
// backend went away) and names the frontend's v2 svc_id.
//
// The sequence (BpfDataplane calls LayoutUpgrade; V1Migration holds the v1
// pins; completeMigration runs step 2):
//   1. start(): detect() finds v1 pins; the v2 object is loaded and pinned
//      but NOT attached (holdsAttach), so the v1 program keeps forwarding.
//   2. after the first v2 sync has landed: carry() writes every v1 flow whose
//      keys sy_ct4_v2 does not hold yet; then SY_CFG_LAYOUT_UPGRADE is set in
//      sy_config_v2, the v2 programs are attached (replacing the v1 program on
//      every interface), carry() runs once more for flows the v1 program
//      created in between, and the flag is cleared (whatever failed); then
//      detachStale() removes the v1 program from interfaces the v2 daemon does
//      not use, and finish() unpins the v1 maps. While the flag is set, the v2
//      program drops a TCP packet without a flow that is not a bare SYN
//      (SY_STAT_UPGRADE_HOLD) instead of taking it for a new connection: a
//      connection the v1 program opened after the first carry has no v2 flow
//      until the second carry lands, and a backend picked afresh would reset
//      it; dropped, the packet is retransmitted and finds the carried flow.
// Idempotent and crash-safe: the v1 pins are the "migration pending" mark
// and go last; a daemon killed anywhere before re-runs it all, and carry()
// never overwrites a v2 entry that exists (the v2 program's own view of a
// flow wins), so running it twice writes nothing the second time. A failure
// is logged and layout 2 attached anyway (a node must not stay on layout 1);
// the pins stay and the next sync retries.

import type { Protocol } from '../../model/types.ts';
import type { BpfMap, BpfObject, NativeBinding, Tc, TcFilter } from '../../native/index.ts';
import { isNativeError } from '../../native/index.ts';
import type { Link } from '../../host/links.ts';
import type { Logger } from '../../util/log.ts';
import { cidrContains, parseCidr, parseIP } from '../../util/ip.ts';
import { DataplaneError } from '../types.ts';
import {
  type CtKey as V1CtKey,
  type CtValue as V1CtValue,
  ctKeyCodec as v1CtKeyCodec,
  ctValueCodec as v1CtValueCodec,
  MAPS as V1,
  type RnatValue as V1RnatValue,
  rnatValueCodec as v1RnatValueCodec,
  SY_CT_F_HAIRPIN as V1_HAIRPIN,
  SY_CT_F_SNAT as V1_SNAT,
} from './layout-v1.ts';
import {
  type Codec,
  type CtKey,
  type CtValue,
  encode,
  HEADER_DEFINES,
  MAPS,
  type NodeConfig,
  SY_CFG_DETECT_CIDR,
  SY_SCOPE_INTERNAL,
  SY_CT_DIR_FWD,
  SY_CT_DIR_REV,
  SY_CT_F_EXT,
  SY_CT_F_HAIRPIN,
  SY_CT_F_SNAT,
} from './layout.ts';

// ---------------------------------------------------------------------------
// Layout 2's connection tracking (sy_maps.h sy_ct4_key / sy_ct4_value).

/** No backend has id 0 (diff hands out ids from 1): a flow carrying it is re-balanced by the v2 program. */
export const NO_BACKEND_ID = 0;
const TCP_NONE = HEADER_DEFINES.SY_TCP_NONE;
const TCP_ESTABLISHED = HEADER_DEFINES.SY_TCP_ESTABLISHED;

export type FlowKey = CtKey;
export type FlowValue = CtValue;

export type FlowEntry = readonly [FlowKey, FlowValue];

/** The v1 maps, by name, in the order finish() unpins them (connection tracking last). */
export const V1_MAPS = [V1.svc.name, V1.backend.name, V1.config.name, V1.stats.name, V1.rnat.name, V1.ct.name] as const;

// ---------------------------------------------------------------------------
// Joining v1 entries into v2 flows (pure).

/** What the first v2 sync programmed, for naming ids in migrated flows. */
export interface V2Ids {
  /** The v2 backend id of an address, undefined when the first sync did not program it. */
  backendId(addr: string, port: number, proto: Protocol): number | undefined;
  /** The svc_id of the frontend's SY_SCOPE_INTERNAL master, undefined when there is none. */
  svcId(addr: string, port: number, proto: Protocol): number | undefined;
  /** Whether the local-traffic detector calls this client external (SY_CT_F_EXT); absent: no client is. */
  external?(clientAddr: string): boolean;
}

export interface MigrationCounts {
  /** Flows found (a v1 forward entry with its reverse entry counts once). */
  flows: number;
  /** Flows with both v1 entries. */
  whole: number;
  /** Flows rebuilt from the forward entry alone (the LRU had evicted the reverse one). */
  forwardOnly: number;
  /** Flows rebuilt from the reverse entry alone. */
  reverseOnly: number;
  /** A reverse entry that belongs to another flow than the forward entry naming its tuple (each half keeps its own). */
  conflicting: number;
  snat: number;
  hairpin: number;
  /** Flows whose backend the first v2 sync did not program: carried with NO_BACKEND_ID, re-balanced on their next packet. */
  backendGone: number;
  /** Flows whose frontend the first v2 sync did not program (svc_id 0). */
  frontendGone: number;
  /** v1 entries that could not be decoded (an unknown protocol number): left behind. */
  undecodable: number;
}

export function emptyCounts(): MigrationCounts {
  return { flows: 0, whole: 0, forwardOnly: 0, reverseOnly: 0, conflicting: 0, snat: 0, hairpin: 0, backendGone: 0, frontendGone: 0, undecodable: 0 };
}

/** A v1 flow as the two v1 entries describe it. */
interface V1Flow {
  readonly proto: Protocol;
  readonly clientAddr: string;
  readonly clientPort: number;
  readonly frontAddr: string;
  readonly frontPort: number;
  readonly backendAddr: string;
  readonly backendPort: number;
  readonly natAddr: string;
  readonly natPort: number;
  /** v1 SY_CT_F_* */
  readonly flags: number;
  readonly firstNs: bigint;
  readonly lastNs: bigint;
}

const tupleKey = (k: V1CtKey): string => `${k.saddr}:${k.sport}>${k.daddr}:${k.dport}/${k.proto}`;

function fromForward(k: V1CtKey, v: V1CtValue): V1Flow {
  const snat = (v.flags & V1_SNAT) !== 0;
  return {
    proto: k.proto,
    clientAddr: k.saddr,
    clientPort: k.sport,
    frontAddr: k.daddr,
    frontPort: k.dport,
    backendAddr: v.backendAddr,
    backendPort: v.backendPort,
    natAddr: snat ? v.natAddr : '0.0.0.0',
    natPort: snat ? v.natPort : 0,
    flags: v.flags,
    firstNs: v.lastSeenNs,
    lastNs: v.lastSeenNs,
  };
}

function fromReverse(k: V1CtKey, v: V1RnatValue): V1Flow {
  const snat = (v.flags & V1_SNAT) !== 0;
  return {
    proto: k.proto,
    clientAddr: v.clientAddr,
    clientPort: v.clientPort,
    frontAddr: v.frontAddr,
    frontPort: v.frontPort,
    backendAddr: k.saddr,
    backendPort: k.sport,
    natAddr: snat ? k.daddr : '0.0.0.0',
    natPort: snat ? k.dport : 0,
    flags: v.flags,
    firstNs: v.lastSeenNs,
    lastNs: v.lastSeenNs,
  };
}

/** The v1 reverse tuple of a flow: what its replies carry (backend -> client, or -> masquerade address). */
function reverseTuple(f: V1Flow): V1CtKey {
  const snat = (f.flags & V1_SNAT) !== 0;
  return {
    saddr: f.backendAddr,
    sport: f.backendPort,
    daddr: snat ? f.natAddr : f.clientAddr,
    dport: snat ? f.natPort : f.clientPort,
    proto: f.proto,
  };
}

function forwardTuple(f: V1Flow): V1CtKey {
  return { saddr: f.clientAddr, sport: f.clientPort, daddr: f.frontAddr, dport: f.frontPort, proto: f.proto };
}

function sameFlow(a: V1Flow, b: V1Flow): boolean {
  return (
    a.clientAddr === b.clientAddr &&
    a.clientPort === b.clientPort &&
    a.frontAddr === b.frontAddr &&
    a.frontPort === b.frontPort &&
    a.backendAddr === b.backendAddr &&
    a.backendPort === b.backendPort &&
    a.natAddr === b.natAddr &&
    a.natPort === b.natPort
  );
}

function merged(fwd: V1Flow, rev: V1Flow): V1Flow {
  return {
    ...fwd,
    flags: fwd.flags | rev.flags,
    firstNs: minBig(fwd.firstNs, rev.firstNs),
    lastNs: maxBig(fwd.lastNs, rev.lastNs),
  };
}

// Math.min/max do not take bigints.
function minBig(a: bigint, b: bigint): bigint {
  return b < a ? b : a;
}

function maxBig(a: bigint, b: bigint): bigint {
  return b > a ? b : a;
}

function toV2(f: V1Flow, ids: V2Ids, counts: MigrationCounts): FlowValue {
  const backendId = ids.backendId(f.backendAddr, f.backendPort, f.proto);
  const svcId = ids.svcId(f.frontAddr, f.frontPort, f.proto);
  if (backendId === undefined) counts.backendGone++;
  if (svcId === undefined) counts.frontendGone++;
  let flags = 0;
  if ((f.flags & V1_SNAT) !== 0) flags |= SY_CT_F_SNAT;
  if ((f.flags & V1_HAIRPIN) !== 0) flags |= SY_CT_F_HAIRPIN;
  if (ids.external?.(f.clientAddr) === true) flags |= SY_CT_F_EXT;
  if ((flags & SY_CT_F_SNAT) !== 0) counts.snat++;
  if ((flags & SY_CT_F_HAIRPIN) !== 0) counts.hairpin++;
  return {
    clientAddr: f.clientAddr,
    frontAddr: f.frontAddr,
    backendAddr: f.backendAddr,
    natAddr: f.natAddr,
    clientPort: f.clientPort,
    frontPort: f.frontPort,
    backendPort: f.backendPort,
    natPort: f.natPort,
    backendId: backendId ?? NO_BACKEND_ID,
    svcId: svcId ?? 0,
    flags,
    // v1 tracked no TCP state; an entry means at least a SYN went through, and
    // a live flow is established. A SYN on it keeps the backend either way.
    tcpState: f.proto === 'TCP' ? TCP_ESTABLISHED : TCP_NONE,
    finMask: 0,
    createdNs: f.firstNs,
    lastSeenNs: f.lastNs,
  };
}

function half(t: V1CtKey, dir: 0 | 1): FlowKey {
  return { saddr: t.saddr, daddr: t.daddr, sport: t.sport, dport: t.dport, proto: t.proto, dir };
}

/**
 * The v2 halves of every v1 flow: a FWD half keyed by each v1 forward tuple
 * and a REV half keyed by each v1 reverse tuple, each holding the whole flow.
 * Pure; the entries come in a stable order (forward entries first, in input
 * order, then reverse-only flows).
 */
export function flowsFromV1(
  forward: ReadonlyArray<readonly [V1CtKey, V1CtValue]>,
  reverse: ReadonlyArray<readonly [V1CtKey, V1RnatValue]>,
  ids: V2Ids,
): { entries: FlowEntry[]; counts: MigrationCounts } {
  const counts = emptyCounts();
  const entries: FlowEntry[] = [];
  const revByTuple = new Map<string, V1Flow>();
  for (const [k, v] of reverse) revByTuple.set(tupleKey(k), fromReverse(k, v));
  const fwdByTuple = new Map<string, V1Flow>();
  for (const [k, v] of forward) fwdByTuple.set(tupleKey(k), fromForward(k, v));

  for (const [k] of forward) {
    const f = fwdByTuple.get(tupleKey(k)) as V1Flow;
    const rt = reverseTuple(f);
    const r = revByTuple.get(tupleKey(rt));
    counts.flows++;
    if (r === undefined) {
      counts.forwardOnly++;
      const value = toV2(f, ids, counts);
      entries.push([half(k, SY_CT_DIR_FWD), value], [half(rt, SY_CT_DIR_REV), value]);
    } else if (sameFlow(f, r)) {
      counts.whole++;
      const value = toV2(merged(f, r), ids, counts);
      entries.push([half(k, SY_CT_DIR_FWD), value], [half(rt, SY_CT_DIR_REV), value]);
    } else {
      // Two flows share one reverse tuple (v1 kept the last writer's): each
      // half keeps the flow its own v1 entry describes; the reverse entry's
      // flow is counted (and its FWD half written) below.
      counts.conflicting++;
      entries.push([half(k, SY_CT_DIR_FWD), toV2(f, ids, counts)]);
    }
  }
  for (const [k] of reverse) {
    const r = revByTuple.get(tupleKey(k)) as V1Flow;
    const ft = forwardTuple(r);
    const f = fwdByTuple.get(tupleKey(ft));
    if (f !== undefined && sameFlow(f, r)) continue; // written whole above
    const value = toV2(r, ids, counts);
    if (f === undefined) {
      counts.flows++;
      counts.reverseOnly++;
      entries.push([half(ft, SY_CT_DIR_FWD), value], [half(k, SY_CT_DIR_REV), value]);
    } else {
      // Conflicting: the FWD tuple belongs to the forward entry's flow.
      counts.flows++;
      counts.conflicting++;
      entries.push([half(k, SY_CT_DIR_REV), value]);
    }
  }
  return { entries, counts };
}

/** Decodes a v1 map dump entry by entry; entries that do not decode are counted and left out. */
export function decodeV1<K, V>(entries: ReadonlyArray<readonly [Buffer, Buffer]>, key: Codec<K>, value: Codec<V>, counts: MigrationCounts): Array<[K, V]> {
  const out: Array<[K, V]> = [];
  for (const [k, v] of entries) {
    try {
      out.push([key.decode(k), value.decode(v)]);
    } catch {
      counts.undecodable++;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The kernel side.

/** Where carried flows go: sy_ct4_v2 (ctTarget() over a BpfMap and layout 2's codecs). */
export interface FlowTarget {
  /** For each key, whether the map holds it. */
  has(keys: readonly FlowKey[]): Promise<boolean[]>;
  /** Writes entries (BPF_ANY, one batch). */
  write(entries: readonly FlowEntry[]): Promise<void>;
}

/** A FlowTarget over a loaded map with the codecs of its key and value. */
export function ctTarget(map: BpfMap, key: Codec<FlowKey>, value: Codec<FlowValue>): FlowTarget {
  return {
    async has(keys) {
      if (keys.length === 0) return [];
      const found = await map.lookup(keys.map((k) => encode(key, k)));
      return found.map((v) => v !== undefined);
    },
    async write(entries) {
      if (entries.length === 0) return;
      await map.update(entries.map(([k, v]) => [encode(key, k), encode(value, v)] as const));
    },
  };
}

export interface CarryResult extends MigrationCounts {
  /** v2 entries written. */
  written: number;
  /** v2 entries that were there already (a re-run, or the v2 program's own). */
  present: number;
}

/** The v1 maps pinned in a pin directory, open until finish() or close(). */
export class V1Migration {
  readonly pinPath: string;
  readonly #native: NativeBinding;
  readonly #log: Logger;
  /** Pinned v1 maps found at detect(), by name. */
  readonly found: readonly string[];
  #closed = false;

  private constructor(native: NativeBinding, log: Logger, pinPath: string, found: readonly string[]) {
    this.#native = native;
    this.#log = log;
    this.pinPath = pinPath;
    this.found = found;
  }

  /** The migration pending in pinPath, or null when no v1 map is pinned there. */
  static detect(native: NativeBinding, log: Logger, pinPath: string): V1Migration | null {
    const found: string[] = [];
    for (const name of V1_MAPS) {
      let fd: number;
      try {
        fd = native.mapOpenPinned(`${pinPath}/${name}`);
      } catch (err) {
        if (isNativeError(err) && err.code === 'ENOENT') continue;
        throw wrap(`open ${pinPath}/${name}`, err);
      }
      native.closeFd(fd);
      found.push(name);
    }
    if (found.length === 0) return null;
    log.info('layout 1 maps found: their connection tracking moves to layout 2 after the first sync', { pinPath, maps: found.join(',') });
    return new V1Migration(native, log, pinPath, found);
  }

  /**
   * Writes every v1 flow whose v2 half is missing from `target`. Reads the
   * v1 maps afresh each time (the v1 program may still be adding flows).
   */
  async carry(target: FlowTarget, ids: V2Ids): Promise<CarryResult> {
    const counts = emptyCounts();
    const fwd = decodeV1(await this.#dump(V1.ct.name), v1CtKeyCodec, v1CtValueCodec, counts);
    const rev = decodeV1(await this.#dump(V1.rnat.name), v1CtKeyCodec, v1RnatValueCodec, counts);
    const undecodable = counts.undecodable;
    const flows = flowsFromV1(fwd, rev, ids);
    const result: CarryResult = { ...flows.counts, undecodable, written: 0, present: 0 };
    const present = await target.has(flows.entries.map(([k]) => k));
    const missing = flows.entries.filter((_, i) => present[i] !== true);
    result.present = flows.entries.length - missing.length;
    await target.write(missing);
    result.written = missing.length;
    return result;
  }

  /**
   * Detaches, from every link, a filter at our tc position whose program is
   * not one of ours: the v1 program left on an interface the v2 daemon does
   * not attach to (its maps would never change again). Returns the links.
   */
  detachStale(tc: Tc, links: readonly Link[], ours: ReadonlySet<number>, filters: readonly TcFilter[]): string[] {
    const detached: string[] = [];
    for (const link of links) {
      for (const f of filters) {
        let id: number | null;
        try {
          id = tc.query(link.ifindex, f);
        } catch {
          continue; // the link went away meanwhile
        }
        if (id === null || ours.has(id)) continue;
        try {
          if (tc.detach(link.ifindex, f)) detached.push(`${link.name}/${f.direction}`);
        } catch (err) {
          this.#log.warn('could not detach a layout 1 program', { interface: link.name, error: err });
        }
      }
    }
    return detached;
  }

  /** Unpins the v1 maps (connection tracking last); returns the ones it removed. */
  finish(): string[] {
    const removed: string[] = [];
    for (const name of V1_MAPS) {
      try {
        if (this.#native.unpin(`${this.pinPath}/${name}`)) removed.push(name);
      } catch (err) {
        throw wrap(`unpin ${this.pinPath}/${name}`, err);
      }
    }
    this.#closed = true;
    return removed;
  }

  get done(): boolean {
    return this.#closed;
  }

  /** An absent map (unpinned by a run that was interrupted) dumps as empty. */
  async #dump(name: string): Promise<Array<[Buffer, Buffer]>> {
    const path = `${this.pinPath}/${name}`;
    let fd: number;
    try {
      fd = this.#native.mapOpenPinned(path);
    } catch (err) {
      if (isNativeError(err) && err.code === 'ENOENT') return [];
      throw wrap(`open ${path}`, err);
    }
    try {
      const info = this.#native.mapInfo(fd);
      const spec = name === V1.ct.name ? V1.ct : V1.rnat;
      if (info.keySize !== spec.key.size || info.valueSize !== spec.value.size)
        throw new DataplaneError(
          'ERR_SY_DATAPLANE_MIGRATION',
          'bpf',
          `read ${path}`,
          `key/value sizes ${info.keySize}/${info.valueSize} are not layout 1's ${spec.key.size}/${spec.value.size}`,
        );
      const d = await this.#native.mapDump(fd, info.keySize, info.valueSize).catch((err: unknown) => {
        throw wrap(`dump ${path}`, err);
      });
      const out: Array<[Buffer, Buffer]> = [];
      for (let i = 0; i < d.count; i++) {
        out.push([d.keys.subarray(i * info.keySize, (i + 1) * info.keySize), d.values.subarray(i * info.valueStride, (i + 1) * info.valueStride)]);
      }
      return out;
    } finally {
      this.#native.closeFd(fd);
    }
  }
}

function wrap(operation: string, err: unknown): unknown {
  return isNativeError(err) ? DataplaneError.kernel('bpf', `migrate layout 1: ${operation}`, err) : err;
}

// ---------------------------------------------------------------------------
// The ids the first v2 sync gave, read back from its maps.

/**
 * V2Ids over dumps of sy_svc4_v2 (SY_SCOPE_INTERNAL masters: svc_id by
 * frontend) and sy_backend4_v2 (id by address), after the first v2 sync.
 * With a CIDR local-traffic detector in `config`, a client outside the pod
 * CIDR is external (SY_CT_F_EXT); an interface detector cannot be replayed
 * for an old flow, so then no client is.
 */
export function v2IdsFromDumps(
  svc4: ReadonlyArray<readonly [Buffer, Buffer]>,
  backend4: ReadonlyArray<readonly [Buffer, Buffer]>,
  config: NodeConfig | null,
): V2Ids {
  const backends = new Map<string, number>();
  for (const [k, v] of backend4) {
    const id = MAPS.backend4.keyCodec.decode(k);
    const b = MAPS.backend4.valueCodec.decode(v);
    const at = `${b.addr}:${b.port}/${b.proto}`;
    // Two ids for one address cannot come from one sync; keep the lowest, deterministically.
    if (!backends.has(at) || (backends.get(at) as number) > id) backends.set(at, id);
  }
  const services = new Map<string, number>();
  for (const [k, v] of svc4) {
    const key = MAPS.svc4.keyCodec.decode(k);
    if (key.slot !== 0 || key.scope !== SY_SCOPE_INTERNAL) continue;
    services.set(`${key.addr}:${key.port}/${key.proto}`, MAPS.svc4.valueCodec.decode(v).svcId);
  }
  const pods = config !== null && (config.flags & SY_CFG_DETECT_CIDR) !== 0 && config.podCidr4 !== null ? parseCidr(config.podCidr4, 'decimal') : null;
  return {
    backendId: (addr, port, proto) => backends.get(`${addr}:${port}/${proto}`),
    svcId: (addr, port, proto) => services.get(`${addr}:${port}/${proto}`),
    ...(pods === null
      ? {}
      : {
          external: (client: string): boolean => {
            const ip = parseIP(client, 'decimal');
            return ip === null || !cidrContains(pods, ip);
          },
        }),
  };
}

// ---------------------------------------------------------------------------
// The whole upgrade, once the first v2 sync has landed.

/** What completeMigration needs from the dataplane. */
export interface UpgradeSteps {
  /** sy_ct4_v2. */
  readonly target: FlowTarget;
  /** The first sync's ids (v2IdsFromDumps). */
  readonly ids: V2Ids;
  /** Attaches the v2 programs to every interface they belong on, replacing the v1 program there. */
  attach(): void;
  /** Sets (true) or clears (false) SY_CFG_LAYOUT_UPGRADE in sy_config_v2. */
  hold(on: boolean): Promise<void>;
  readonly tc: Tc;
  /** The links now (for detachStale). */
  links(): readonly Link[];
  /** Ids of the v2 programs. */
  ours(): ReadonlySet<number>;
  /** Our tc positions (handle, priority; both directions). */
  readonly filters: readonly TcFilter[];
}

/**
 * carry, hold, attach, carry again, release, detach the v1 program where it
 * is left, unpin the v1 maps; logged with counts. A failed carry is logged
 * and the v2 programs are attached anyway (a node must not stay on layout 1
 * because of, say, a full table): the v1 pins stay, and the caller runs this
 * again after its next sync. The hold (SY_CFG_LAYOUT_UPGRADE) is set only
 * around attach and the second carry, and cleared whatever happens there.
 * Resolves true when the migration is complete.
 */
export async function completeMigration(m: V1Migration, steps: UpgradeSteps, log: Logger): Promise<boolean> {
  let carried: CarryResult | null = null;
  try {
    carried = await m.carry(steps.target, steps.ids);
  } catch (err) {
    log.error(
      'carrying layout 1 connection tracking to layout 2 failed; attaching layout 2 anyway (established connections may reset); retried after the next sync',
      {
        error: err,
      },
    );
  }
  if (carried === null) {
    steps.attach();
    return false;
  }
  // Until the second carry landed, a connection the v1 program opened since the first has
  // no v2 flow: the v2 program holds (drops) its packets rather than re-balancing them.
  let held = false;
  try {
    await steps.hold(true);
    held = true;
  } catch (err) {
    log.warn('could not hold connections without a flow during the switch to layout 2 (connections opened meanwhile may reset)', { error: err });
  }
  try {
    steps.attach();
    try {
      // Flows the v1 program created between the first carry and the switch.
      const late = await m.carry(steps.target, steps.ids);
      carried.written += late.written;
    } catch (err) {
      log.error('carrying layout 1 connection tracking (after the switch) failed; retried after the next sync', { error: err });
      return false;
    }
  } finally {
    if (held) await release(steps, log);
  }
  log.info('layout 1 connection tracking carried to layout 2', { ...carried });
  const detached = m.detachStale(steps.tc, steps.links(), steps.ours(), steps.filters);
  if (detached.length > 0) log.info('layout 1 program detached', { interfaces: detached.join(',') });
  const removed = m.finish();
  log.info('layout 1 maps removed', { pinPath: m.pinPath, maps: removed.join(',') });
  return true;
}

/** Clears the hold; a failure is logged (the dataplane's next config write clears it). */
async function release(steps: UpgradeSteps, log: Logger): Promise<void> {
  try {
    await steps.hold(false);
  } catch (err) {
    log.error('could not clear the layout 1 upgrade hold; the next sync clears it', { error: err });
  }
}

// ---------------------------------------------------------------------------
// The dataplane's side: what BpfDataplane's start(), #attachLinks() and
// sync() call.

/** What a loaded layout 2 dataplane lends the upgrade after a sync. */
export interface UpgradeContext {
  readonly obj: BpfObject;
  /** sy_config_v2 as written (the local-traffic detector), or null. */
  readonly config: NodeConfig | null;
  /** Attaches the layout 2 programs (BpfDataplane's attach of every wanted link). */
  attach(): void;
  /**
   * Sets (true) or clears (false) SY_CFG_LAYOUT_UPGRADE in sy_config_v2;
   * cleared, the dataplane's config writes leave it out again.
   */
  hold(on: boolean): Promise<void>;
  readonly tc: Tc;
  links(): readonly Link[];
  /** Ids of the layout 2 programs of `obj`. */
  ours(): ReadonlySet<number>;
  readonly filters: readonly TcFilter[];
}

/**
 * A pending upgrade from layout 1. While it is pending, the layout 2
 * programs must not be attached (holdsAttach): the layout 1 program keeps
 * forwarding until the first layout 2 sync has landed. afterSync() then runs
 * completeMigration; true when the upgrade is done (drop this object).
 */
export class LayoutUpgrade {
  readonly #m: V1Migration;
  readonly #log: Logger;
  #holdAttach = true;

  private constructor(m: V1Migration, log: Logger) {
    this.#m = m;
    this.#log = log;
  }

  /** Null when no layout 1 map is pinned in pinPath. Call after taking the pin lock, before loading. */
  static detect(native: NativeBinding, log: Logger, pinPath: string): LayoutUpgrade | null {
    const m = V1Migration.detect(native, log, pinPath);
    return m === null ? null : new LayoutUpgrade(m, log);
  }

  get holdsAttach(): boolean {
    return this.#holdAttach;
  }

  /**
   * Never rejects: whatever fails is logged, layout 2 is attached anyway, and
   * false says to call again after the next sync (the v1 pins stay).
   */
  async afterSync(ctx: UpgradeContext): Promise<boolean> {
    try {
      const dump = async (name: string): Promise<Array<[Buffer, Buffer]>> => {
        try {
          return await ctx.obj.map(name).dump();
        } catch (err) {
          throw wrap(`dump ${name}`, err);
        }
      };
      const ids = v2IdsFromDumps(await dump(MAPS.svc4.name), await dump(MAPS.backend4.name), ctx.config);
      const target = ctTarget(ctx.obj.map(MAPS.ct4.name), MAPS.ct4.keyCodec, MAPS.ct4.valueCodec);
      const steps: UpgradeSteps = {
        target,
        ids,
        attach: () => this.#attach(ctx),
        hold: (on) => ctx.hold(on),
        tc: ctx.tc,
        links: ctx.links,
        ours: ctx.ours,
        filters: ctx.filters,
      };
      return await completeMigration(this.#m, steps, this.#log);
    } catch (err) {
      this.#log.error('the upgrade from layout 1 failed; layout 2 is attached, the layout 1 maps stay; retried after the next sync', { error: err });
      if (this.#holdAttach) this.#attach(ctx);
      // completeMigration releases its hold; this makes sure whatever escaped did not keep it.
      await ctx.hold(false).catch(() => undefined);
      return false;
    }
  }

  #attach(ctx: UpgradeContext): void {
    this.#holdAttach = false;
    ctx.attach();
  }
}
