// Connection tracking garbage collection: the programs create and refresh
// sy_ct4_v2 / sy_ct6_v2 entries (created_ns, last_seen_ns from
// bpf_ktime_get_ns, CLOCK_MONOTONIC, which process.hrtime.bigint() reads
// too) but never expire them; the LRU only evicts when a map is full. A pass
// dumps each map, groups the two halves of every flow (FWD keyed on what the
// client sent, REV on what the reply carries: the nat addr:port when the flow
// was masqueraded, so deleting it frees the SNAT port) and deletes both halves
// of the flows idle past their timeout. The timeouts follow kube-proxy's
// --conntrack-* flags (ctTimeouts; a 0 flag means the kernel's own default).
// Everything here but runPass is pure, for unit tests.

import { type CtKey, type CtValue, encode, HEADER_DEFINES, MAPS, SY_CT_DIR_FWD, SY_CT_DIR_REV, SY_CT_F_KERNEL, SY_CT_F_SNAT } from './layout.ts';

/** Milliseconds (config/types.ts Millis; not imported: config is a layer above). */
type Millis = number;

const SEC = 1_000_000_000n;
const { SY_TCP_SYN_SENT, SY_TCP_ESTABLISHED, SY_TCP_CLOSING, SY_TCP_CLOSED } = HEADER_DEFINES;

/** Idle timeouts per protocol and state, in ns of CLOCK_MONOTONIC. */
export interface CtTimeouts {
  readonly tcpSynSent: bigint;
  readonly tcpEstablished: bigint;
  /** FIN seen one way (the kernel's FIN_WAIT / CLOSE_WAIT). */
  readonly tcpClosing: bigint;
  /** RST, or FIN both ways. */
  readonly tcpClosed: bigint;
  /** UDP without a reply (seen by the GC): the kernel's "unreplied". */
  readonly udp: bigint;
  /** UDP with replies: the kernel's "stream". */
  readonly udpStream: bigint;
  readonly sctpEstablished: bigint;
  readonly sctpUnreplied: bigint;
}

/** The kube-proxy flags that set conntrack timeouts (config/types.ts ConntrackConfig), in ms; 0 = the kernel's default. */
export interface CtTimeoutFlags {
  readonly tcpEstablishedTimeout: Millis;
  readonly tcpCloseWaitTimeout: Millis;
  readonly udpTimeout: Millis;
  readonly udpStreamTimeout: Millis;
}

/** The kernel's defaults (nf_conntrack_proto_{tcp,udp,sctp}.c), used where a flag is 0. */
export const KERNEL_DEFAULTS = {
  tcpSynSent: 120n * SEC,
  tcpEstablished: 5n * 24n * 3600n * SEC,
  tcpCloseWait: 60n * SEC,
  tcpClose: 10n * SEC,
  udp: 30n * SEC,
  udpStream: 120n * SEC,
  sctpEstablished: 5n * 24n * 3600n * SEC,
  sctpUnreplied: 3n * SEC,
} as const;

const ms = (v: Millis, kernel: bigint): bigint => (v > 0 ? BigInt(Math.round(v)) * 1_000_000n : kernel);

/** Our timeouts from kube-proxy's flags (README "Connection tracking"). */
export function ctTimeouts(f: CtTimeoutFlags): CtTimeouts {
  const k = KERNEL_DEFAULTS;
  return {
    tcpSynSent: k.tcpSynSent,
    tcpEstablished: ms(f.tcpEstablishedTimeout, k.tcpEstablished),
    tcpClosing: ms(f.tcpCloseWaitTimeout, k.tcpCloseWait),
    tcpClosed: k.tcpClose,
    udp: ms(f.udpTimeout, k.udp),
    udpStream: ms(f.udpStreamTimeout, k.udpStream),
    sctpEstablished: k.sctpEstablished,
    // SCTP carries no state in the CT value: a flow without a reply yet gets UDP's unreplied timeout,
    // not the kernel's 3 s of COOKIE_WAIT (which the GC, a pass every few seconds, could not honour anyway).
    sctpUnreplied: ms(f.udpTimeout, k.udp),
  };
}

/** One flow: its halves as found in a dump (either may be missing: evicted by the LRU). */
export interface CtFlow {
  readonly fwd?: CtValue;
  readonly rev?: CtValue;
}

/**
 * Whether the flow saw a reply, as far as the GC can tell: the REV half is
 * refreshed only by replies, at most once a second, so a reply is visible
 * once one came a second or more after the flow was created.
 */
export function sawReply(flow: CtFlow): boolean {
  return flow.rev !== undefined && flow.rev.lastSeenNs > flow.rev.createdNs;
}

/** The idle timeout of a flow (proto from its key, state from its values). */
export function flowTimeout(proto: CtKey['proto'], flow: CtFlow, t: CtTimeouts): bigint {
  const v = (flow.fwd ?? flow.rev) as CtValue;
  if (proto === 'TCP') {
    // The halves may disagree for a moment (one written before the other): the more advanced state counts.
    const state = Math.max(flow.fwd?.tcpState ?? 0, flow.rev?.tcpState ?? 0, v.tcpState);
    if (state === SY_TCP_SYN_SENT) return t.tcpSynSent;
    if (state === SY_TCP_CLOSING) return t.tcpClosing;
    if (state === SY_TCP_CLOSED) return t.tcpClosed;
    if (state === SY_TCP_ESTABLISHED) return t.tcpEstablished;
    return t.tcpEstablished; // SY_TCP_NONE on TCP: not written by the programs; keep it as long as an established one
  }
  if (proto === 'UDP') return sawReply(flow) ? t.udpStream : t.udp;
  return sawReply(flow) ? t.sctpEstablished : t.sctpUnreplied;
}

/** The flow's last activity: the later last_seen of its halves. */
export function lastSeen(flow: CtFlow): bigint {
  const a = flow.fwd?.lastSeenNs ?? 0n;
  const b = flow.rev?.lastSeenNs ?? 0n;
  return a > b ? a : b;
}

/** Whether the flow is idle past its timeout at `nowNs`. */
export function flowExpired(proto: CtKey['proto'], flow: CtFlow, nowNs: bigint, t: CtTimeouts): boolean {
  return lastSeen(flow) + flowTimeout(proto, flow, t) < nowNs;
}

/** The FWD key of a flow (ct.h flow_fwd_key). */
export function fwdKey(v: CtValue, proto: CtKey['proto']): CtKey {
  return { saddr: v.clientAddr, daddr: v.frontAddr, sport: v.clientPort, dport: v.frontPort, proto, dir: SY_CT_DIR_FWD };
}

/** The REV key of a flow (ct.h flow_rev_key): on the nat addr:port when masqueraded. */
export function revKey(v: CtValue, proto: CtKey['proto']): CtKey {
  const snat = (v.flags & SY_CT_F_SNAT) !== 0;
  return {
    saddr: v.backendAddr,
    daddr: snat ? v.natAddr : v.clientAddr,
    sport: v.backendPort,
    dport: snat ? v.natPort : v.clientPort,
    proto,
    dir: SY_CT_DIR_REV,
  };
}

const keyText = (k: CtKey): string => `${k.proto} ${k.saddr} ${k.sport} ${k.daddr} ${k.dport} ${k.dir}`;

/** One flow found in a dump, with the keys of both its halves (present or not). */
export interface GroupedFlow extends CtFlow {
  readonly proto: CtKey['proto'];
  readonly keys: readonly [CtKey, CtKey];
}

/**
 * Groups decoded CT entries into flows. Each half names its partner (both
 * carry the whole flow), so a flow is keyed by its FWD key; a half whose
 * partner is gone is a flow of one.
 */
export function groupFlows(entries: Iterable<readonly [CtKey, CtValue]>): GroupedFlow[] {
  const flows = new Map<string, { proto: CtKey['proto']; keys: [CtKey, CtKey]; fwd?: CtValue; rev?: CtValue }>();
  for (const [k, v] of entries) {
    const fwd = k.dir === SY_CT_DIR_FWD ? k : fwdKey(v, k.proto);
    const rev = k.dir === SY_CT_DIR_REV ? k : revKey(v, k.proto);
    const id = keyText(fwd);
    let f = flows.get(id);
    if (f === undefined) {
      f = { proto: k.proto, keys: [fwd, rev] };
      flows.set(id, f);
    }
    if (k.dir === SY_CT_DIR_FWD) f.fwd = v;
    else f.rev = v;
  }
  return [...flows.values()];
}

/**
 * The keys of both halves of every expired flow, to delete. A flow handed
 * over from the kernel's conntrack (SY_CT_F_KERNEL: kube-proxy's, at the
 * first sync) is never expired: the programs leave its packets to the kernel
 * without refreshing it, so its last_seen says nothing, and deleting it under
 * a live connection would have the program translate that connection anew.
 * Those entries are bounded (one per connection at the handover) and left
 * to the LRU.
 */
export function expiredKeys(entries: Iterable<readonly [CtKey, CtValue]>, nowNs: bigint, t: CtTimeouts): CtKey[] {
  const out: CtKey[] = [];
  for (const f of groupFlows(entries)) {
    if ((((f.fwd ?? f.rev) as CtValue).flags & SY_CT_F_KERNEL) !== 0) continue;
    if (flowExpired(f.proto, f, nowNs, t)) out.push(...f.keys);
  }
  return out;
}

/** The maps a pass needs: dump and delete by raw keys (BpfMap, or a fake). */
export interface CtMapAccess {
  dump(): Promise<ReadonlyArray<readonly [Buffer, Buffer]>>;
  delete(keys: ReadonlyArray<Uint8Array>): Promise<void>;
}

export interface CtPassResult {
  /** Entries dumped, both maps. */
  readonly scanned: number;
  /** Entries deleted (both halves of expired flows; a half already gone is counted too). */
  readonly deleted: number;
  /** deleted, per map. */
  readonly deletedBy: { readonly ct4: number; readonly ct6: number };
  /** Entries per map after the pass (scanned minus the deleted ones that were there). */
  readonly entries: { readonly ct4: number; readonly ct6: number };
  /** Entries that did not decode (left alone). */
  readonly undecodable: number;
  readonly durationMs: number;
}

/** Keys deleted per syscall. */
export const DELETE_CHUNK = 4096;

/**
 * kube-proxy's conntrack reconciler (pkg/proxy/conntrack/cleanup.go) on our
 * CT maps: `serving` maps the svc_id of a UDP or SCTP frontend to the
 * addresses of its Service port's serving endpoints (terminating ones
 * included: their flows stay); a flow of such a frontend to any other
 * backend address is stale, both halves. A frontend without a serving
 * endpoint is absent from `serving`: its flows are left alone, as
 * kube-proxy leaves them.
 */
export function staleFlowKeys(entries: Iterable<readonly [CtKey, CtValue]>, serving: ReadonlyMap<number, ReadonlySet<string>>): CtKey[] {
  const out: CtKey[] = [];
  for (const f of groupFlows(entries)) {
    if (f.proto !== 'UDP' && f.proto !== 'SCTP') continue;
    const v = (f.fwd ?? f.rev) as CtValue;
    const addrs = serving.get(v.svcId);
    if (addrs !== undefined && !addrs.has(v.backendAddr)) out.push(...f.keys);
  }
  return out;
}

/** One GC pass over both CT maps at `nowNs`. */
export function gcPass(maps: { readonly ct4: CtMapAccess; readonly ct6: CtMapAccess }, nowNs: bigint, t: CtTimeouts): Promise<CtPassResult> {
  return sweep(maps, (decoded) => expiredKeys(decoded, nowNs, t));
}

/** One reconciler pass: deletes the stale UDP/SCTP flows (staleFlowKeys). */
export function flushPass(
  maps: { readonly ct4: CtMapAccess; readonly ct6: CtMapAccess },
  serving: ReadonlyMap<number, ReadonlySet<string>>,
): Promise<CtPassResult> {
  return sweep(maps, (decoded) => staleFlowKeys(decoded, serving));
}

/** Dumps both maps and deletes the keys `select` picks (per map: deleted counts per map too). */
async function sweep(
  maps: { readonly ct4: CtMapAccess; readonly ct6: CtMapAccess },
  select: (decoded: Array<[CtKey, CtValue]>) => CtKey[],
): Promise<CtPassResult> {
  const started = performance.now();
  let scanned = 0;
  let undecodable = 0;
  const entries = { ct4: 0, ct6: 0 };
  const deletedBy = { ct4: 0, ct6: 0 };
  for (const m of ['ct4', 'ct6'] as const) {
    const def = MAPS[m];
    const raw = await maps[m].dump();
    scanned += raw.length;
    const decoded: Array<[CtKey, CtValue]> = [];
    const present = new Set<string>();
    for (const [k, v] of raw) {
      try {
        decoded.push([def.keyCodec.decode(k), def.valueCodec.decode(v)]);
        present.add(k.toString('hex'));
      } catch {
        undecodable++;
      }
    }
    const keys = select(decoded).map((k) => encode(def.keyCodec, k));
    for (let i = 0; i < keys.length; i += DELETE_CHUNK) await maps[m].delete(keys.slice(i, i + DELETE_CHUNK));
    deletedBy[m] = keys.length;
    const gone = keys.filter((k) => present.has(k.toString('hex'))).length;
    entries[m] = raw.length - gone;
  }
  return { scanned, deleted: deletedBy.ct4 + deletedBy.ct6, deletedBy, entries, undecodable, durationMs: performance.now() - started };
}

/** A CT map is reported nearly full from this fill up, and as having room again below ROOM_AGAIN. */
export const NEARLY_FULL = 0.9;
export const ROOM_AGAIN = 0.8;

/** What the daemon knows of the CT tables after a GC pass. */
export interface CtTableReading {
  readonly entries: { readonly ct4: number; readonly ct6: number };
  readonly capacity: { readonly ct4: number; readonly ct6: number };
  /** The datapath's CT_FULL and CT_MIDSTREAM counters (sy_stats_v2), summed over CPUs. */
  readonly ctFull: bigint;
  readonly midstream: bigint;
}

/** What the last reading left: which tables were reported nearly full, and the counters then. */
export interface CtPressureState {
  readonly nearlyFull: ReadonlySet<'ct4' | 'ct6'>;
  readonly ctFull: bigint;
  readonly midstream: bigint;
}

export interface CtPressureNote {
  readonly level: 'warn' | 'info';
  readonly msg: string;
  readonly fields: Readonly<Record<string, string | number>>;
}

/**
 * The log lines a reading calls for, against the previous one (null: the
 * first, whose counters are the baseline). The CT maps are LRU: a full one
 * never refuses a flow, it evicts the least recently used one, and that
 * flow's next TCP segment finds no entry (CT_MIDSTREAM: a backend is picked
 * again, and unless it is the same one the connection is reset). So: a table that reaches NEARLY_FULL is
 * reported once (with the flags that size it) until it is below
 * ROOM_AGAIN; flows picked up mid-stream and failed inserts are reported
 * whenever their counters moved.
 */
export function ctPressure(prev: CtPressureState | null, now: CtTableReading): { notes: CtPressureNote[]; next: CtPressureState } {
  const notes: CtPressureNote[] = [];
  const nearlyFull = new Set<'ct4' | 'ct6'>();
  for (const m of ['ct4', 'ct6'] as const) {
    const cap = now.capacity[m];
    const fill = cap > 0 ? now.entries[m] / cap : 0;
    const was = prev?.nearlyFull.has(m) ?? false;
    const fields = { map: MAPS[m].name, entries: now.entries[m], capacity: cap, fill: `${Math.round(fill * 100)}%` };
    if (fill >= NEARLY_FULL || (was && fill >= ROOM_AGAIN)) {
      nearlyFull.add(m);
      if (!was)
        notes.push({
          level: 'warn',
          msg: 'conntrack table nearly full: the least recently used flows are evicted, and their connections reset; raise --conntrack-max-per-core or --conntrack-min',
          fields,
        });
    } else if (was) {
      notes.push({ level: 'info', msg: 'conntrack table has room again', fields });
    }
  }
  if (prev !== null) {
    const midstream = now.midstream - prev.midstream;
    const full = now.ctFull - prev.ctFull;
    if (midstream > 0n) {
      notes.push({
        level: 'warn',
        msg: 'TCP segments without a flow picked a backend again (their flows were evicted from a full table, or expired): a connection sent to another backend is reset',
        fields: { packets: Number(midstream), counter: 'CT_MIDSTREAM' },
      });
    }
    if (full > 0n) notes.push({ level: 'warn', msg: 'conntrack inserts failed', fields: { inserts: Number(full), counter: 'CT_FULL' } });
  }
  return { notes, next: { nearlyFull, ctFull: now.ctFull, midstream: now.midstream } };
}
