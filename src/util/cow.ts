// Copy-on-write containers for state that is replaced by a new version on
// every change while the previous version stays valid (the BPF dataplane's
// DesiredState and ProgrammedState): CowMap, a ReadonlyMap sharded by key
// hash; CowVec, a ReadonlyMap from small integer ids, chunked; IdSet, the ids
// in use as a bitmap, with lowest-unused allocation. Each is changed through
// an editor (edit() ... done()) that copies a shard, chunk or bitmap the
// first time it writes to it, so a new version shares everything it did not
// change with the one it came from. An editor is single use: after done()
// every call throws CowEditorDoneError.

import { SwitchyardError } from './errors.ts';

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
  /** Largest id an IdSet holds (the bitmap is then 2 MiB); add() refuses larger ones with a RangeError. */
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
