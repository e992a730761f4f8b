// An in-memory stand-in for the pinned BPF maps, for unit tests without
// root: byte keys and values of the sizes in layout.ts's MAPS, kernel-like
// errors, Plans applied op by op through the same batch encoder apply uses,
// a canonical text dump for golden files (formatDump, also for maps dumped
// through a binding), resolveFrontends(), and checkConsistent(), the
// invariant a packet relies on (every live slot of every master exists and
// points at an existing backend).
//
// checkConsistent also holds the traffic counters to the ids: every live
// master's svc_id and every backend a live slot points at has its counter
// entry (written before anything names the id).
//
// Kernel behaviour modelled (bpf(2), kernel/bpf/hashtab.c, arraymap.c):
// - hash update of a new key in a full map: E2BIG (an LRU hash evicts the
//   least recently used entry instead);
// - key or value of the wrong size: EINVAL (the syscall copies exactly
//   key_size/value_size bytes; libbpf's batch API takes counts, not sizes,
//   so the addon must check lengths itself: we do it here);
// - BPF_NOEXIST on an existing key: EEXIST; BPF_EXIST on a missing key: ENOENT;
//   unknown flags, or BPF_F_LOCK on a value without a bpf_spin_lock: EINVAL;
// - array maps: every index < max_entries exists (zeroed), update past the
//   end is E2BIG, delete is EINVAL;
// - batch update/delete run in order and stop at the first error, reporting
//   how many records were done (generic_map_{update,delete}_batch).
// - per-CPU maps, when constructed with { cpus }: a value record is
//   roundup(value_size, 8) bytes per possible CPU, as the syscall copies it
//   (without { cpus }: one value of value_size per slot).
// Delete of a missing hash key: the kernel returns ENOENT (and a batch stops
// there); this fake treats it as a no-op by default, which is what apply
// must make of it (a missing key is already deleted). Construct with
// { deleteMissing: 'enoent' } to get the kernel's answer (FakeNativeBinding,
// fake-native.ts, does, and layers the addon's handling on top).

import { constants } from 'node:os';
import { formatBackend, formatSvcKey, formatSvcValue, formatTraffic } from '../../src/dataplane/bpf/diff.ts';
import {
  COUNTER_MAPS,
  decodeEntries,
  encode,
  encodeOpBatch,
  isPerCpu,
  MAPS,
  type MapName,
  type MapSpec,
  type Op,
  type OpBatch,
  affBeKeyCodec,
  SY_SCOPE_EXTERNAL,
  SY_SVC_F_AFFINITY,
  SY_SVC_F_EXT_SCOPE,
  SY_SVC_F_MAGLEV,
  maglevKeyCodec,
  maglevValueCodec,
  type SvcKey,
  svc4KeyCodec,
  svc6KeyCodec,
  svcValueCodec,
  trafficCodec,
  u32Codec,
} from '../../src/dataplane/bpf/layout.ts';
import { l4Key, PHASE_NAMES } from '../../src/dataplane/bpf/state.ts';
import { phaseRuns } from '../../src/dataplane/bpf/apply.ts';
import type { Plan } from '../../src/dataplane/bpf/state.ts';

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

const BPF_F_LOCK = 4;

type Errno = 'E2BIG' | 'EINVAL' | 'EEXIST' | 'ENOENT';

/** Shaped like the native addon's errors: errno, code, syscall; plus the map and how far a batch got. */
export class FakeMapError extends Error {
  readonly errno: number;
  readonly code: Errno;
  readonly syscall: string;
  readonly map: string;
  /** Records of a batch applied before the failing one. */
  readonly done: number;
  constructor(code: Errno, syscall: string, map: string, message: string, done = 0) {
    super(`${syscall} ${map}: ${code}: ${message}`);
    this.name = 'FakeMapError';
    this.errno = constants.errno[code];
    this.code = code;
    this.syscall = syscall;
    this.map = map;
    this.done = done;
  }
}

export interface FakeMapOptions {
  /** Capacity override (tests of E2BIG); default spec.maxEntries. */
  readonly maxEntries?: number;
  readonly deleteMissing?: 'noop' | 'enoent';
  /** Possible CPUs, for per-CPU map types: each value record then holds one value per CPU. */
  readonly cpus?: number;
}

export class FakeMap {
  readonly spec: MapSpec;
  readonly maxEntries: number;
  /** Bytes of one value record: value.size, or roundup(value.size, 8) * cpus for a per-CPU map given { cpus }. */
  readonly valueBytes: number;
  private readonly deleteMissing: 'noop' | 'enoent';
  /** hex(key) -> [key, value]; insertion order doubles as LRU order. */
  private readonly entries = new Map<string, [Buffer, Buffer]>();

  constructor(spec: MapSpec, opts: FakeMapOptions = {}) {
    this.spec = spec;
    this.maxEntries = opts.maxEntries ?? spec.maxEntries;
    this.deleteMissing = opts.deleteMissing ?? 'noop';
    const perCpu = isPerCpu(spec.type);
    this.valueBytes = perCpu && opts.cpus !== undefined ? Math.ceil(spec.value.size / 8) * 8 * opts.cpus : spec.value.size;
  }

  get name(): string {
    return this.spec.name;
  }

  get size(): number {
    return this.isArray() ? this.maxEntries : this.entries.size;
  }

  lookup(key: Buffer): Buffer | undefined {
    this.checkKey('bpf_map_lookup_elem', key);
    const hex = key.toString('hex');
    const e = this.entries.get(hex);
    if (e !== undefined && this.spec.type === 'lru_hash') {
      this.entries.delete(hex);
      this.entries.set(hex, e);
    }
    if (e === undefined && this.isArray() && this.arrayIndex(key) < this.maxEntries) return Buffer.alloc(this.valueBytes);
    return e === undefined ? undefined : Buffer.from(e[1]);
  }

  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    const call = 'bpf_map_update_elem';
    this.checkKey(call, key);
    if (value.length !== this.valueBytes) throw this.err('EINVAL', call, `value is ${value.length} bytes, the map's value records are ${this.valueBytes}`);
    if ((flags & ~BPF_F_LOCK) > BPF_EXIST) throw this.err('EINVAL', call, `unknown flags 0x${flags.toString(16)}`);
    if ((flags & BPF_F_LOCK) !== 0) throw this.err('EINVAL', call, 'BPF_F_LOCK: the value has no bpf_spin_lock');
    if (this.spec.type === 'lpm_trie' && key.readUInt32LE(0) > (this.spec.key.size - 4) * 8) {
      throw this.err('EINVAL', call, `prefixlen ${key.readUInt32LE(0)} > ${(this.spec.key.size - 4) * 8}`);
    }
    const hex = key.toString('hex');
    if (this.isArray()) {
      if (this.arrayIndex(key) >= this.maxEntries) throw this.err('E2BIG', call, `index ${this.arrayIndex(key)} >= max_entries ${this.maxEntries}`);
      if (flags === BPF_NOEXIST) throw this.err('EEXIST', call, 'array elements always exist');
      this.entries.set(hex, [Buffer.from(key), Buffer.from(value)]);
      return;
    }
    const exists = this.entries.has(hex);
    if (flags === BPF_NOEXIST && exists) throw this.err('EEXIST', call, 'key exists (BPF_NOEXIST)');
    if (flags === BPF_EXIST && !exists) throw this.err('ENOENT', call, 'key missing (BPF_EXIST)');
    if (!exists && this.entries.size >= this.maxEntries) {
      if (this.spec.type !== 'lru_hash') throw this.err('E2BIG', call, `map full (${this.maxEntries} entries)`);
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.delete(hex); // re-insert: most recently used
    this.entries.set(hex, [Buffer.from(key), Buffer.from(value)]);
  }

  /** True if the key existed. */
  delete(key: Buffer): boolean {
    const call = 'bpf_map_delete_elem';
    this.checkKey(call, key);
    if (this.isArray()) throw this.err('EINVAL', call, 'array elements cannot be deleted');
    const existed = this.entries.delete(key.toString('hex'));
    if (!existed && this.deleteMissing === 'enoent') throw this.err('ENOENT', call, 'no such key');
    return existed;
  }

  /** BPF_MAP_UPDATE_BATCH: in order, stops at the first error (its `done` says how many succeeded). */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags = BPF_ANY): void {
    const ks = this.spec.key.size;
    const vs = this.valueBytes;
    if (keys.length !== ks * count || values.length !== vs * count) {
      throw this.err('EINVAL', 'bpf_map_update_batch', `buffers of ${keys.length}/${values.length} bytes for ${count} records`);
    }
    for (let i = 0; i < count; i++) {
      try {
        this.update(keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs), flags);
      } catch (e) {
        throw this.batchErr(e, 'bpf_map_update_batch', i);
      }
    }
  }

  /** BPF_MAP_DELETE_BATCH: in order, stops at the first error. */
  deleteBatch(keys: Buffer, count: number): void {
    const ks = this.spec.key.size;
    if (keys.length !== ks * count) throw this.err('EINVAL', 'bpf_map_delete_batch', `buffer of ${keys.length} bytes for ${count} records`);
    for (let i = 0; i < count; i++) {
      try {
        this.delete(keys.subarray(i * ks, (i + 1) * ks));
      } catch (e) {
        throw this.batchErr(e, 'bpf_map_delete_batch', i);
      }
    }
  }

  /** Every entry (copies), as a map dump returns them. */
  dump(): Array<[Buffer, Buffer]> {
    return [...this.entries.values()].map(([k, v]) => [Buffer.from(k), Buffer.from(v)]);
  }

  private isArray(): boolean {
    return this.spec.type === 'array' || this.spec.type === 'percpu_array';
  }

  private arrayIndex(key: Buffer): number {
    return key.readUInt32LE(0);
  }

  private checkKey(call: string, key: Buffer): void {
    if (key.length !== this.spec.key.size) throw this.err('EINVAL', call, `key is ${key.length} bytes, map key_size is ${this.spec.key.size}`);
  }

  private err(code: Errno, call: string, message: string, done = 0): FakeMapError {
    return new FakeMapError(code, call, this.spec.name, message, done);
  }

  private batchErr(e: unknown, call: string, done: number): unknown {
    return e instanceof FakeMapError ? new FakeMapError(e.code, call, e.map, `record ${done}: ${e.message}`, done) : e;
  }
}

export class FakeMapStore {
  readonly maps: ReadonlyMap<string, FakeMap>;

  /** New maps from specs, or a view over existing maps (a FakeNativeBinding's pinned ones). */
  constructor(specs: readonly (MapSpec | FakeMap)[] = Object.values(MAPS), opts: Readonly<Record<string, FakeMapOptions>> = {}) {
    this.maps = new Map(specs.map((s) => (s instanceof FakeMap ? [s.name, s] : [s.name, new FakeMap(s, opts[s.name] ?? {})])));
  }

  map(name: string): FakeMap {
    const m = this.maps.get(name);
    if (m === undefined) throw new FakeMapError('ENOENT', 'bpf_obj_get', name, 'no such pinned map');
    return m;
  }

  /** The map of MAPS[m]. */
  of(m: MapName): FakeMap {
    return this.map(MAPS[m].name);
  }

  /** Applies one encoded batch, as apply does with the addon. */
  applyBatch(batch: OpBatch): void {
    const m = this.map(batch.map);
    if (batch.action === 'update') m.updateBatch(batch.keys, batch.values ?? Buffer.alloc(0), batch.count);
    else m.deleteBatch(batch.keys, batch.count);
  }

  /** Applies ops one at a time (each as a batch of one), calling `after` after each. */
  applyOps(ops: readonly Op[], after?: (op: Op, index: number) => void): void {
    ops.forEach((op, i) => {
      const batch = encodeOpBatch([op]);
      if (batch !== null) this.applyBatch(batch);
      after?.(op, i);
    });
  }

  /**
   * Applies a plan phase by phase, one batch per map and action, as apply does. `afterOp`, when
   * given, switches to one op at a time and runs after every op (to check
   * invariants at every point the kernel could be observed); `afterPhase`
   * runs after each phase.
   */
  applyPlan(plan: Plan, hooks: { afterOp?: (op: Op, phase: string) => void; afterPhase?: (phase: string) => void } = {}): void {
    plan.phases.forEach((ops, i) => {
      const phase = PHASE_NAMES[i] ?? String(i);
      const afterOp = hooks.afterOp;
      if (afterOp !== undefined) {
        this.applyOps(ops, (op) => afterOp(op, phase));
      } else {
        for (const run of phaseRuns(ops)) {
          const batch = encodeOpBatch(run);
          if (batch !== null) this.applyBatch(batch);
        }
      }
      hooks.afterPhase?.(phase);
    });
  }

  /** Sorted, decoded dump of every non-empty map, one entry per line (formatDump). */
  dumpCanonical(): string {
    return formatDump(storeDumps(this));
  }
}

/**
 * A store whose maps answer a delete of a missing key with ENOENT, as the
 * kernel does, so that no plan may issue one; except the counter maps,
 * whose entries the datapath creates on first use: a plan deletes a freed
 * id's entry whether or not traffic made one (the addon skips absent keys).
 */
export function strictStore(caps: Partial<Record<MapName, number>> = {}): FakeMapStore {
  const opts: Record<string, FakeMapOptions> = {};
  for (const [m, d] of Object.entries(MAPS) as Array<[MapName, (typeof MAPS)[MapName]]>) {
    const counter = (COUNTER_MAPS as readonly MapName[]).includes(m);
    opts[d.name] = { deleteMissing: counter ? 'noop' : 'enoent', ...(caps[m] ? { maxEntries: caps[m] } : {}) };
  }
  return new FakeMapStore(undefined, opts);
}

type Entries = ReadonlyArray<readonly [Buffer, Buffer]>;

const FAMILY_MAPS = [
  { svc: 'svc4', backend: 'backend4', vip: 'vip4', srcrange: 'srcrange4', becnt: 'becnt4', svcKey: svc4KeyCodec },
  { svc: 'svc6', backend: 'backend6', vip: 'vip6', srcrange: 'srcrange6', becnt: 'becnt6', svcKey: svc6KeyCodec },
] as const;

/** A counter map's entries as "id = counters" lines (one CPU's value: the fakes hold zeroed entries). */
function counterLines(entries: Entries): string[] {
  return entries
    .map(([k, v]) => [u32Codec.decode(k), formatTraffic(trafficCodec.decode(v))] as const)
    .sort((a, b) => a[0] - b[0])
    .map(([id, t]) => `  ${id} = ${t}`);
}

/** Frontend address bytes, port, protocol, scope, master before slots, gen, slot. */
function compareSvcKeys(a: SvcKey, b: SvcKey, ra: Buffer, rb: Buffer): number {
  const addrBytes = ra.length === 12 ? 4 : 16;
  return (
    Buffer.compare(ra.subarray(0, addrBytes), rb.subarray(0, addrBytes)) ||
    a.port - b.port ||
    (a.proto < b.proto ? -1 : a.proto > b.proto ? 1 : 0) ||
    a.scope - b.scope ||
    Math.min(a.slot, 1) - Math.min(b.slot, 1) ||
    a.gen - b.gen ||
    a.slot - b.slot
  );
}

/**
 * Map dumps (by map name) as sorted, decoded text, one entry per line: the
 * maps the control plane writes (backend, svc, vip, srcrange of each family)
 * always, decoded; other hash maps in hex when not empty; arrays left out.
 * The same text for a FakeMapStore and for maps dumped through a binding
 * (real or fake), so the two can be compared.
 */
export function formatDump(dumps: ReadonlyMap<string, Entries>): string {
  const lines: string[] = [];
  const known = new Set<string>();
  for (const fm of FAMILY_MAPS) {
    const get = (m: MapName): Entries => {
      known.add(MAPS[m].name);
      return dumps.get(MAPS[m].name) ?? [];
    };
    const backends = decodeEntries(fm.backend, get(fm.backend)).sort((a, b) => a[0] - b[0]);
    lines.push(`${MAPS[fm.backend].name} (${backends.length}):`);
    for (const [id, b] of backends) lines.push(`  ${id} = ${formatBackend(b)}`);
    const svc = get(fm.svc).map(([k, v]) => ({ key: fm.svcKey.decode(k), raw: k, v: svcValueCodec.decode(v) }));
    svc.sort((a, b) => compareSvcKeys(a.key, b.key, a.raw, b.raw));
    lines.push(`${MAPS[fm.svc].name} (${svc.length}):`);
    for (const { key, v } of svc) lines.push(`  ${formatSvcKey(key)} = ${formatSvcValue(key, v)}`);
    const vips = decodeEntries(fm.vip, get(fm.vip)).map(([k, v]) => `  ${k.addr} = flags 0x${v.flags.toString(16)}`);
    if (vips.length > 0) lines.push(`${MAPS[fm.vip].name} (${vips.length}):`, ...vips.sort());
    const ranges = decodeEntries(fm.srcrange, get(fm.srcrange)).map(([k]) => `  svc ${k.svcId} ${k.addr}/${k.prefixlen - 32}`);
    if (ranges.length > 0) lines.push(`${MAPS[fm.srcrange].name} (${ranges.length}):`, ...ranges.sort());
    const becnt = counterLines(get(fm.becnt));
    if (becnt.length > 0) lines.push(`${MAPS[fm.becnt].name} (${becnt.length}):`, ...becnt);
  }
  known.add(MAPS.svccnt.name);
  const svccnt = counterLines(dumps.get(MAPS.svccnt.name) ?? []);
  if (svccnt.length > 0) lines.push(`${MAPS.svccnt.name} (${svccnt.length}):`, ...svccnt);
  const arrays = new Set<string>(Object.values(MAPS).flatMap((m) => (m.type === 'array' || m.type === 'percpu_array' ? [m.name] : [])));
  for (const [name, entries] of [...dumps].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (known.has(name) || arrays.has(name) || entries.length === 0) continue;
    const text = entries.map(([k, v]) => `  ${k.toString('hex')} = ${v.toString('hex')}`).sort();
    lines.push(`${name} (${text.length}):`, ...text);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * What each frontend resolves to, per scope: for every master (slot 0, key
 * gen 0), the backends of its live generation's slots, sorted
 * ("addr:port/PROTO", or "missing slot N" / "missing backend ID"), under
 * "frontend int" / "frontend ext", with the action when not forward.
 * Independent of ids and generations, so two histories that should program
 * the same Services compare equal.
 */
export function resolveFrontends(dumps: ReadonlyMap<string, Entries>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const fm of FAMILY_MAPS) {
    const svcEntries = dumps.get(MAPS[fm.svc].name) ?? [];
    const backends = new Map(decodeEntries(fm.backend, dumps.get(MAPS[fm.backend].name) ?? []).map(([id, b]) => [id, l4Key(b)]));
    const slots = new Map(svcEntries.map(([k, v]) => [k.toString('hex'), v]));
    for (const [k, v] of svcEntries) {
      const key = fm.svcKey.decode(k);
      if (key.slot !== 0 || key.gen !== 0) continue;
      const master = svcValueCodec.decode(v);
      const list: string[] = [];
      for (let slot = 1; slot <= master.count; slot++) {
        const sv = slots.get(encode(fm.svcKey, { ...key, gen: master.gen, slot }).toString('hex'));
        const id = sv === undefined ? undefined : svcValueCodec.decode(sv).backendId;
        list.push(id === undefined ? `missing slot ${slot}` : (backends.get(id) ?? `missing backend ${id}`));
      }
      list.sort();
      if (master.action !== 0) list.unshift(master.action === 1 ? 'REJECT' : 'DROP');
      out[`${l4Key(key)} ${key.scope === SY_SCOPE_EXTERNAL ? 'ext' : 'int'}`] = list;
    }
  }
  return out;
}

/** Dumps of every map of a store, by name. */
export function storeDumps(store: FakeMapStore): Map<string, Array<[Buffer, Buffer]>> {
  return new Map([...store.maps].map(([name, m]) => [name, m.dump()]));
}

/**
 * The invariant a packet relies on: every master (slot 0, key gen 0) has
 * its live generation's slots 1..count, each pointing at an existing
 * backend; an internal master with SY_SVC_F_EXT_SCOPE has an external
 * master; a master with SY_SVC_F_AFFINITY has a sy_aff_be_v2 entry for the
 * backend of each of those slots; a master with SY_SVC_F_MAGLEV and
 * backends has every entry of its generation's table, each naming one of
 * those backends. Returns the violations (empty when consistent). Entries no packet
 * can reach (dead generations, slots beyond count) are not checked: adopt
 * finds those.
 */
export function checkConsistent(store: FakeMapStore): string[] {
  const problems: string[] = [];
  for (const fm of FAMILY_MAPS) {
    const svc = store.of(fm.svc);
    const backends = store.of(fm.backend);
    for (const [k, v] of svc.dump()) {
      const key = fm.svcKey.decode(k);
      if (key.slot !== 0 || key.gen !== 0) continue; // {slot 0, gen 1} is never looked up: garbage for adopt, not a master
      const name = `${l4Key(key)} ${key.scope === SY_SCOPE_EXTERNAL ? 'ext' : 'int'}`;
      const master = svcValueCodec.decode(v);
      if ((master.flags & SY_SVC_F_EXT_SCOPE) !== 0 && svc.lookup(encode(fm.svcKey, { ...key, scope: SY_SCOPE_EXTERNAL })) === undefined) {
        problems.push(`${name}: EXT_SCOPE without an external master`);
      }
      for (let slot = 1; slot <= master.count; slot++) {
        const sv = svc.lookup(encode(fm.svcKey, { ...key, gen: master.gen, slot }));
        if (sv === undefined) {
          problems.push(`${name}: gen ${master.gen} slot ${slot} of ${master.count} missing`);
          continue;
        }
        const id = svcValueCodec.decode(sv).backendId;
        if (backends.lookup(encode(u32Codec, id)) === undefined) problems.push(`${name}: gen ${master.gen} slot ${slot} points at missing backend ${id}`);
        if (
          (master.flags & SY_SVC_F_AFFINITY) !== 0 &&
          store.of('affbe').lookup(encode(affBeKeyCodec, { svcId: master.svcId, backendId: id, scope: key.scope })) === undefined
        )
          problems.push(`${name}: affinity master without the membership of backend ${id}`);
      }
      if ((master.flags & SY_SVC_F_MAGLEV) !== 0 && master.count > 0) {
        const live = new Set<number>();
        for (let slot = 1; slot <= master.count; slot++) {
          const sv = svc.lookup(encode(fm.svcKey, { ...key, gen: master.gen, slot }));
          if (sv !== undefined) live.add(svcValueCodec.decode(sv).backendId);
        }
        for (let index = 0; index < master.maglevM; index++) {
          const e = store.of('maglev').lookup(encode(maglevKeyCodec, { svcId: master.svcId, scope: key.scope, gen: master.gen, index }));
          if (e === undefined) problems.push(`${name}: Maglev entry ${index} of gen ${master.gen} missing`);
          else if (!live.has(maglevValueCodec.decode(e).backendId)) problems.push(`${name}: Maglev entry ${index} names a backend not in the slots`);
        }
      }
    }
  }
  return problems.sort();
}
