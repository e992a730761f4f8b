// The BPF dataplane's state in plain data: what compile() wants programmed
// (DesiredState), what is programmed now (ProgrammedState, read back from the
// pinned maps at start and kept up to date by apply), and the ordered
// operations diff() produces to go from one to the other (Plan).
// Field meanings follow bpf/include/sy_maps.h.
//
// Both states live in copy-on-write containers (CowMap: sharded by key hash;
// CowVec: chunked by id; IdSet: a bitmap) so that a plan that touches one
// Service copies a few small shards, not 100k-entry maps: the previous state
// stays valid and shares everything it did not change. They are defined at
// the end of this file.

import type { Protocol } from '../../model/types.ts';
import { SwitchyardError } from '../../util/errors.ts';
import type { Problem } from '../types.ts';

export type { Problem } from '../types.ts';

/** "10.96.0.10:80/TCP" */
export type FrontendKey = string;
/**
 * A backend address as one number: IPv4 * 2^18 + port * 4 + protocol index
 * (TCP 0, UDP 1, SCTP 2). Exact (< 2^50), cheap to build, hash and compare,
 * and numeric order is (address, port, protocol) order. formatBackendKey()
 * gives "10.244.1.10:8080/TCP".
 */
export type BackendKey = number;

export interface L4Addr {
  readonly addr: string; // dotted IPv4
  readonly port: number;
  readonly proto: Protocol;
}

/** "10.96.0.10:80/TCP": a FrontendKey, or any address in text. */
export function l4Key(a: L4Addr): string {
  return `${a.addr}:${a.port}/${a.proto}`;
}

export const PROTO_INDEX: Readonly<Record<Protocol, number>> = { TCP: 0, UDP: 1, SCTP: 2 };
const PROTO_BY_INDEX: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** BackendKey from a parsed address (see parseIPv4 in layout.ts). */
export function backendKey(addr: number, port: number, proto: Protocol): BackendKey {
  return addr * 262144 + port * 4 + PROTO_INDEX[proto];
}

export function backendKeyOf(a: L4Addr): BackendKey {
  const p = a.addr.split('.');
  const addr = ((Number(p[0]) * 256 + Number(p[1])) * 256 + Number(p[2])) * 256 + Number(p[3]);
  if (p.length !== 4 || !Number.isInteger(addr) || addr < 0 || addr > 0xffffffff) throw new RangeError(`not a dotted IPv4 address: ${a.addr}`);
  return backendKey(addr, a.port, a.proto);
}

export function formatBackendKey(k: BackendKey): string {
  const addr = Math.floor(k / 262144);
  const rest = k - addr * 262144;
  const ip = `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
  return `${ip}:${rest >>> 2}/${PROTO_BY_INDEX[rest & 3] ?? '?'}`;
}

export interface DesiredService {
  readonly key: FrontendKey;
  readonly frontend: L4Addr;
  /** Sorted by BackendKey, no duplicates. */
  readonly backends: readonly L4Addr[];
  /** backends[i]'s BackendKey, computed once by compile so diff need not. */
  readonly backendKeys: readonly BackendKey[];
  /** SY_SVC_F_* */
  readonly flags: number;
  /** ServicePortInfo.id that produced this frontend, for messages and status. */
  readonly owner: string;
}

export interface DesiredState {
  readonly services: CowMap<FrontendKey, DesiredService>;
  /**
   * Frontends that may differ from the DesiredState this one was compiled
   * from: 'all' after a full compile, else the frontends of the changed
   * ServicePorts. Pass it to diff() as its scope.
   */
  readonly changed: ReadonlySet<FrontendKey> | 'all';
  /** Bad input, one entry per bad field; the rest of the snapshot compiled. Sorted by owner, field. */
  readonly problems: readonly Problem[];
  readonly masqueradeAll: boolean;
  /** Indexes for compileChanged(); treat as opaque. */
  readonly index: CompileIndex;
}

export interface CompileIndex {
  /** ServicePort id -> every frontend it claims, won or lost. */
  readonly claims: CowMap<string, readonly FrontendKey[]>;
  /** Contested frontends -> the ServicePort ids that lost them, in id order. Usually empty. */
  readonly losers: ReadonlyMap<FrontendKey, readonly string[]>;
  /** ServicePort id -> its input problems (not conflicts). Sparse. */
  readonly inputProblems: CowMap<string, readonly Problem[]>;
}

export interface ProgrammedService {
  readonly frontend: L4Addr;
  readonly svcId: number;
  readonly gen: 0 | 1;
  readonly flags: number;
  /**
   * backend id per slot, slot 1 first. After adopting a damaged map an entry
   * may be 0 (slot missing) or an id with no backend.
   */
  readonly backendIds: readonly number[];
  /**
   * The address of each slot's backend, parallel to backendIds, so diff()
   * can tell "unchanged" by comparing arrays. -1 where the slot is damaged
   * or its backend is not the one `backends` holds for that address (a
   * duplicate found by adopt): such a Service is never unchanged, so the
   * next full sync rewrites it.
   */
  readonly backendKeys: readonly BackendKey[];
}

export interface ProgrammedBackend {
  readonly id: number;
  readonly key: BackendKey;
  readonly backend: L4Addr;
  /** Live slots pointing at this backend, across all frontends. Always >= 1 in a state. */
  readonly refs: number;
}

export interface ProgrammedState {
  readonly services: CowMap<FrontendKey, ProgrammedService>;
  /** One backend per address: the id new slots for that address use. */
  readonly backends: CowMap<BackendKey, ProgrammedBackend>;
  /** Every programmed backend by id (sy_backend4_v1's key); a superset of `backends` only after adopting duplicates. */
  readonly backendsById: CowVec<ProgrammedBackend>;
  /** Backend ids in use, and the ids in danglingRefs, for lowest-unused allocation. */
  readonly backendIds: IdSet;
  /**
   * Ids that live slots point at but no backend has (damage found by
   * adopt) -> how many slots: reserved in backendIds until the last such
   * slot is rewritten, so a new backend never appears in a damaged slot.
   * Empty unless adopt found damage.
   */
  readonly danglingRefs: ReadonlyMap<number, number>;
  /** svc_ids in use. */
  readonly svcIds: IdSet;
}

export function emptyProgrammedState(): ProgrammedState {
  return {
    services: CowMap.empty(),
    backends: CowMap.empty(),
    backendsById: CowVec.empty(),
    backendIds: IdSet.empty(),
    svcIds: IdSet.empty(),
    danglingRefs: new Map(),
  };
}

/**
 * Builds a ProgrammedState (indexes, refcounts) from services and backends
 * given by id. Backends with no live slot (or an id above IdSet.MAX_ID) are
 * dropped; slots pointing at unknown ids are kept as they are (see
 * ProgrammedService.backendIds).
 */
export function programmedState(
  services: Iterable<readonly [FrontendKey, Omit<ProgrammedService, 'backendKeys'>]>,
  backendsById: Iterable<readonly [number, L4Addr]>,
): ProgrammedState {
  const svcList = [...services];
  const refs = new Map<number, number>();
  for (const [, svc] of svcList) for (const id of svc.backendIds) refs.set(id, (refs.get(id) ?? 0) + 1);

  const byId = CowVec.empty<ProgrammedBackend>().edit();
  const byKey = CowMap.empty<BackendKey, ProgrammedBackend>().edit();
  const ids = IdSet.empty().edit();
  const sorted = [...backendsById].sort((a, b) => a[0] - b[0]);
  for (const [id, backend] of sorted) {
    const n = refs.get(id);
    if (n === undefined || id < 1 || id > IdSet.MAX_ID) continue;
    const key = backendKeyOf(backend);
    const b: ProgrammedBackend = { id, key, backend, refs: n };
    byId.set(id, b);
    ids.add(id);
    if (!byKey.has(key)) byKey.set(key, b); // lowest id wins
  }

  // Ids live slots point at with no backend behind them stay reserved (see danglingRefs).
  const danglingRefs = new Map<number, number>();
  for (const [id, n] of refs) {
    if (id < 1 || id > IdSet.MAX_ID || byId.has(id)) continue;
    ids.add(id);
    danglingRefs.set(id, n);
  }

  const svcs = CowMap.empty<FrontendKey, ProgrammedService>().edit();
  const svcIds = IdSet.empty().edit();
  for (const [key, svc] of svcList) {
    const backendKeys = svc.backendIds.map((id) => {
      const b = byId.get(id);
      return b !== undefined && byKey.get(b.key)?.id === id ? b.key : -1;
    });
    svcs.set(key, { ...svc, backendKeys });
    if (svc.svcId >= 1 && svc.svcId <= IdSet.MAX_ID) svcIds.add(svc.svcId);
  }
  return {
    services: svcs.done(),
    backends: byKey.done(),
    backendsById: byId.done(),
    backendIds: ids.done(),
    svcIds: svcIds.done(),
    danglingRefs,
  };
}

/** Key of sy_svc4_v1 in plain data. */
export interface SvcKey {
  readonly addr: string;
  readonly port: number;
  readonly proto: Protocol;
  readonly gen: 0 | 1;
  readonly slot: number;
}

/** Value of sy_svc4_v1 in plain data. */
export interface SvcValue {
  readonly backendId: number;
  readonly count: number;
  readonly gen: 0 | 1;
  readonly flags: number;
  readonly svcId: number;
}

export type Op =
  | { readonly kind: 'backend-update'; readonly id: number; readonly backend: L4Addr }
  | { readonly kind: 'backend-delete'; readonly id: number }
  | { readonly kind: 'svc-update'; readonly key: SvcKey; readonly value: SvcValue }
  | { readonly kind: 'svc-delete'; readonly key: SvcKey };

/** Indexes into Plan.phases. */
export const PHASE_BACKEND_UPDATE = 0;
export const PHASE_SLOT_UPDATE = 1;
export const PHASE_MASTER_UPDATE = 2;
export const PHASE_SVC_DELETE = 3;
export const PHASE_BACKEND_DELETE = 4;
export const PHASE_NAMES = ['backend-update', 'slot-update', 'master-update', 'svc-delete', 'backend-delete'] as const;

/**
 * Operations in the order they must reach the kernel. Each phase is one
 * batch per map; phases run one after the other:
 *   1. backend-update   (backends exist before any slot points at them)
 *   2. svc-update slots (the new generation, invisible until its master flips)
 *   3. svc-update masters (flip: the Service now uses the new generation)
 *   4. svc-delete       (old generation's slots; masters of removed Services,
 *                        each removed master before its own slots)
 *   5. backend-delete   (backends no slot points at any more)
 * `phases` always has exactly these 5 entries (PHASE_*), empty ones included,
 * so phases[PHASE_SVC_DELETE] always means the same thing. Within a phase the
 * order matters too (a batch is applied in order; kernel batch ops stop at
 * the first error), and every prefix of the op sequence leaves the maps
 * consistent: a packet never sees a half-written Service.
 */
export interface Plan {
  readonly phases: readonly (readonly Op[])[];
  /** The programmed state once every phase has been applied. */
  readonly next: ProgrammedState;
  /** Frontends this plan touches, for logs and tests. Sorted. */
  readonly touched: readonly FrontendKey[];
}

// ---------------------------------------------------------------------------
// CowMap: a ReadonlyMap split into SHARDS native Maps by key hash. edit()
// returns an editor that copies each shard the first time it writes to it,
// and done() seals the result; the original is never modified. Iteration
// order is by shard, then insertion: deterministic for a given history, but
// not sorted (sort where order matters).

const SHARD_BITS = 10;
const SHARDS = 1 << SHARD_BITS;
const SHARD_MASK = SHARDS - 1;

function shardOf(key: string | number): number {
  if (typeof key === 'number') {
    if ((key | 0) === key) return key & SHARD_MASK; // small ints: ids, dense and sequential
    const lo = key >>> 0; // BackendKeys (< 2^50): mix both halves
    const hi = (key / 4294967296) >>> 0;
    return Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> (32 - SHARD_BITS);
  }
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h ^ (h >>> 16)) & SHARD_MASK;
}

type Shards<K, V> = (Map<K, V> | undefined)[];

/**
 * An editor (CowMapEditor, CowVecEditor, IdSetEditor) was used after its
 * done(): it is single use, and the state done() returned shares its
 * storage, so every later call is refused rather than allowed to change that
 * state.
 */
export class CowEditorDoneError extends SwitchyardError {
  declare readonly code: 'ERR_SY_COW_EDITOR_DONE';
  /** "CowMapEditor", "CowVecEditor" or "IdSetEditor". */
  readonly editor: string;

  constructor(editor: string) {
    super('ERR_SY_COW_EDITOR_DONE', `${editor} used after done(): an editor is single use; edit() the state done() returned`);
    this.editor = editor;
  }
}

export class CowMap<K extends string | number, V> implements ReadonlyMap<K, V> {
  // Plain (not #private) so node:assert's deepStrictEqual compares contents.
  private readonly shards: readonly (Map<K, V> | undefined)[];
  private readonly count: number;

  /** Internal: use CowMap.empty(), CowMap.from() or edit(). */
  constructor(shards: readonly (Map<K, V> | undefined)[], count: number) {
    this.shards = shards;
    this.count = count;
  }

  static empty<K extends string | number, V>(): CowMap<K, V> {
    return new CowMap<K, V>(new Array<Map<K, V> | undefined>(SHARDS).fill(undefined), 0);
  }

  static from<K extends string | number, V>(entries: Iterable<readonly [K, V]>): CowMap<K, V> {
    const e = CowMap.empty<K, V>().edit();
    for (const [k, v] of entries) e.set(k, v);
    return e.done();
  }

  get size(): number {
    return this.count;
  }

  get(key: K): V | undefined {
    return this.shards[shardOf(key)]?.get(key);
  }

  has(key: K): boolean {
    return this.shards[shardOf(key)]?.has(key) ?? false;
  }

  forEach(cb: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const shard of this.shards) {
      if (shard === undefined) continue;
      for (const [k, v] of shard) cb.call(thisArg, v, k, this);
    }
  }

  entries(): MapIterator<[K, V]> {
    return this.iterate((k, v): [K, V] => [k, v]);
  }

  keys(): MapIterator<K> {
    return this.iterate((k) => k);
  }

  values(): MapIterator<V> {
    return this.iterate((_k, v) => v);
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  /** The keys, in iteration order, as an array (cheaper than spreading keys()). */
  keysArray(): K[] {
    const out: K[] = [];
    for (const shard of this.shards) if (shard !== undefined) for (const k of shard.keys()) out.push(k);
    return out;
  }

  /** Keys in sorted order (string or numeric). */
  sortedKeys(): K[] {
    const keys = this.keysArray();
    if (typeof keys[0] === 'number') return keys.sort((a, b) => (a as number) - (b as number));
    return keys.sort();
  }

  edit(): CowMapEditor<K, V> {
    return new CowMapEditor<K, V>(this.shards, this.count);
  }

  private iterate<T>(pick: (k: K, v: V) => T): MapIterator<T> {
    const shards = this.shards;
    function* gen(): Generator<T, undefined, unknown> {
      for (const shard of shards) {
        if (shard === undefined) continue;
        for (const [k, v] of shard) yield pick(k, v);
      }
      return undefined;
    }
    return gen() as MapIterator<T>;
  }
}

/** A batch of writes on top of a CowMap. Single use: done() seals it. */
export class CowMapEditor<K extends string | number, V> {
  private shards: Shards<K, V>;
  private readonly owned = new Uint8Array(SHARDS);
  private count: number;
  private sealed = false;

  constructor(shards: readonly (Map<K, V> | undefined)[], count: number) {
    this.shards = shards.slice();
    this.count = count;
  }

  get size(): number {
    this.live();
    return this.count;
  }

  get(key: K): V | undefined {
    this.live();
    return this.shards[shardOf(key)]?.get(key);
  }

  has(key: K): boolean {
    this.live();
    return this.shards[shardOf(key)]?.has(key) ?? false;
  }

  set(key: K, value: V): this {
    this.live();
    const shard = this.writable(shardOf(key));
    const before = shard.size;
    shard.set(key, value);
    this.count += shard.size - before;
    return this;
  }

  delete(key: K): boolean {
    this.live();
    const i = shardOf(key);
    if (!(this.shards[i]?.has(key) ?? false)) return false;
    this.writable(i).delete(key);
    this.count--;
    return true;
  }

  done(): CowMap<K, V> {
    this.live();
    this.sealed = true;
    return new CowMap<K, V>(this.shards, this.count);
  }

  private live(): void {
    if (this.sealed) throw new CowEditorDoneError('CowMapEditor');
  }

  private writable(i: number): Map<K, V> {
    if (this.owned[i] === 0) {
      this.owned[i] = 1;
      this.shards[i] = new Map(this.shards[i]);
    }
    return this.shards[i] as Map<K, V>;
  }
}

// ---------------------------------------------------------------------------
// CowVec: a ReadonlyMap from small non-negative integers (ids) to values, as
// chunks of CHUNK slots; an editor copies each chunk the first time it
// writes to it. Iterates in ascending key order.

const CHUNK_BITS = 10;
const CHUNK = 1 << CHUNK_BITS;

export class CowVec<V> implements ReadonlyMap<number, V> {
  private readonly chunks: readonly ((V | undefined)[] | undefined)[];
  private readonly count: number;

  /** Internal: use CowVec.empty() or edit(). */
  constructor(chunks: readonly ((V | undefined)[] | undefined)[], count: number) {
    this.chunks = chunks;
    this.count = count;
  }

  static empty<V>(): CowVec<V> {
    return new CowVec<V>([], 0);
  }

  get size(): number {
    return this.count;
  }

  get(key: number): V | undefined {
    return this.chunks[key >>> CHUNK_BITS]?.[key & (CHUNK - 1)];
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  forEach(cb: (value: V, key: number, map: ReadonlyMap<number, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this);
  }

  entries(): MapIterator<[number, V]> {
    const chunks = this.chunks;
    function* gen(): Generator<[number, V], undefined, unknown> {
      for (let c = 0; c < chunks.length; c++) {
        const chunk = chunks[c];
        if (chunk === undefined) continue;
        for (let i = 0; i < chunk.length; i++) {
          const v = chunk[i];
          if (v !== undefined) yield [c * CHUNK + i, v];
        }
      }
      return undefined;
    }
    return gen() as MapIterator<[number, V]>;
  }

  keys(): MapIterator<number> {
    return this.keysArray().values() as MapIterator<number>;
  }

  values(): MapIterator<V> {
    return [...this.entries()].map(([, v]) => v).values() as MapIterator<V>;
  }

  [Symbol.iterator](): MapIterator<[number, V]> {
    return this.entries();
  }

  keysArray(): number[] {
    return [...this.entries()].map(([k]) => k);
  }

  /** Keys in ascending order (the iteration order). */
  sortedKeys(): number[] {
    return this.keysArray();
  }

  edit(): CowVecEditor<V> {
    return new CowVecEditor<V>(this.chunks, this.count);
  }
}

export class CowVecEditor<V> {
  private readonly chunks: ((V | undefined)[] | undefined)[];
  private readonly owned: boolean[] = [];
  private count: number;
  private sealed = false;

  constructor(chunks: readonly ((V | undefined)[] | undefined)[], count: number) {
    this.chunks = chunks.slice();
    this.count = count;
  }

  get size(): number {
    this.live();
    return this.count;
  }

  get(key: number): V | undefined {
    this.live();
    return this.chunks[key >>> CHUNK_BITS]?.[key & (CHUNK - 1)];
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  set(key: number, value: V): this {
    this.live();
    if (!Number.isInteger(key) || key < 0 || key > 0xffffffff) throw new RangeError(`CowVec: bad key ${key}`);
    const chunk = this.writable(key >>> CHUNK_BITS);
    const i = key & (CHUNK - 1);
    if (chunk[i] === undefined) this.count++;
    chunk[i] = value;
    return this;
  }

  delete(key: number): boolean {
    if (!this.has(key)) return false;
    this.writable(key >>> CHUNK_BITS)[key & (CHUNK - 1)] = undefined;
    this.count--;
    return true;
  }

  done(): CowVec<V> {
    this.live();
    this.sealed = true;
    return new CowVec<V>(this.chunks, this.count);
  }

  private live(): void {
    if (this.sealed) throw new CowEditorDoneError('CowVecEditor');
  }

  private writable(c: number): (V | undefined)[] {
    if (this.owned[c] !== true) {
      this.owned[c] = true;
      const old = this.chunks[c];
      this.chunks[c] = old === undefined ? new Array<V | undefined>(CHUNK).fill(undefined) : old.slice();
    }
    return this.chunks[c] as (V | undefined)[];
  }
}

// ---------------------------------------------------------------------------
// IdSet: ids in use (>= 1) as a bitmap, for "lowest unused id >= 1". An
// editor copies the bitmap once, on its first write.

export class IdSet {
  /** Largest id kept (a 2 MiB bitmap); the maps hold far fewer entries, so a larger id read back is damage. */
  static readonly MAX_ID = (1 << 24) - 1;
  private readonly words: Uint32Array; // bit 0 of word 0 (id 0) is always set: never allocated
  private readonly count: number;

  /** Internal: use IdSet.empty() or edit(). */
  constructor(words: Uint32Array, count: number) {
    this.words = words;
    this.count = count;
  }

  static empty(): IdSet {
    const w = new Uint32Array(64);
    w[0] = 1;
    return new IdSet(w, 0);
  }

  static of(ids: Iterable<number>): IdSet {
    const e = IdSet.empty().edit();
    for (const id of ids) e.add(id);
    return e.done();
  }

  get size(): number {
    return this.count;
  }

  has(id: number): boolean {
    return id >= 1 && ((this.words[id >>> 5] ?? 0) & (1 << (id & 31))) !== 0;
  }

  /** Ids in ascending order. */
  toArray(): number[] {
    const out: number[] = [];
    for (let w = 0; w < this.words.length; w++) {
      const word = this.words[w] as number;
      if (word === 0) continue;
      for (let b = 0; b < 32; b++) if ((word & (1 << b)) !== 0 && (w | b) !== 0) out.push(w * 32 + b);
    }
    return out;
  }

  edit(): IdSetEditor {
    return new IdSetEditor(this.words, this.count);
  }
}

export class IdSetEditor {
  private words: Uint32Array;
  private copied = false;
  private count: number;
  private firstFreeWord = 0; // no free id below this word
  private sealed = false;

  constructor(words: Uint32Array, count: number) {
    this.words = words;
    this.count = count;
  }

  has(id: number): boolean {
    this.live();
    return id >= 1 && ((this.words[id >>> 5] ?? 0) & (1 << (id & 31))) !== 0;
  }

  add(id: number): void {
    this.live();
    if (!Number.isInteger(id) || id < 1 || id > IdSet.MAX_ID) throw new RangeError(`IdSet: id ${id} is not in 1..${IdSet.MAX_ID}`);
    if (this.has(id)) return;
    this.writable(id >>> 5);
    const w = id >>> 5;
    this.words[w] = ((this.words[w] as number) | (1 << (id & 31))) >>> 0;
    this.count++;
  }

  delete(id: number): void {
    if (!this.has(id)) return;
    this.writable(id >>> 5);
    const w = id >>> 5;
    this.words[w] = ((this.words[w] as number) & ~(1 << (id & 31))) >>> 0;
    this.count--;
    if (w < this.firstFreeWord) this.firstFreeWord = w;
  }

  /** Marks and returns the lowest unused id >= 1. */
  allocate(): number {
    this.live();
    let w = this.firstFreeWord;
    while (w < this.words.length && this.words[w] === 0xffffffff) w++;
    this.firstFreeWord = w;
    const word = this.words[w] ?? 0;
    const bit = 31 - Math.clz32(~word & (word + 1)); // lowest zero bit
    const id = w * 32 + bit;
    this.add(id);
    return id;
  }

  /** Seals the editor: the IdSet returned shares its bitmap, so every later call throws. */
  done(): IdSet {
    this.live();
    this.sealed = true;
    return new IdSet(this.words, this.count);
  }

  private live(): void {
    if (this.sealed) throw new CowEditorDoneError('IdSetEditor');
  }

  private writable(word: number): void {
    if (!this.copied || word >= this.words.length) {
      let len = Math.max(this.words.length, 1);
      while (len <= word) len *= 2;
      const w = new Uint32Array(Math.max(len, 1));
      w.set(this.words);
      this.words = w;
      this.copied = true;
    }
  }
}

/** A ProgrammedState as plain sorted data: for deep comparison in tests and readable dumps. */
export function programmedToPlain(s: ProgrammedState): unknown {
  return {
    services: s.services.sortedKeys().map((k) => [k, s.services.get(k)]),
    backends: s.backends.sortedKeys().map((k) => [formatBackendKey(k), s.backends.get(k)]),
    backendsById: s.backendsById.sortedKeys().map((k) => [k, s.backendsById.get(k)]),
    backendIds: s.backendIds.toArray(),
    svcIds: s.svcIds.toArray(),
    danglingRefs: [...s.danglingRefs].sort((a, b) => a[0] - b[0]),
  };
}
