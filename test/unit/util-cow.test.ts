// The copy-on-write containers (src/util/cow.ts): a new version never changes
// the one it was edited from, ids are allocated lowest-unused, iteration
// follows the orders the dataplane relies on, sizes well past one shard,
// chunk or bitmap word work, and an editor is single use.

import { expect, test } from 'vitest';
import { CowEditorDoneError, CowMap, CowVec, IdSet } from '../../src/util/cow.ts';

// ---------------------------------------------------------------------------
// Sharing: the previous version is unchanged

test('a CowMap edit leaves the version it came from unchanged', () => {
  const v1 = CowMap.from<string, number>([
    ['a', 1],
    ['b', 2],
  ]);
  const e = v1.edit();
  e.set('a', 10);
  e.set('c', 3);
  expect(e.delete('b')).toBe(true);
  expect(e.delete('zz')).toBe(false);
  const v2 = e.done();
  expect(Object.fromEntries(v1)).toEqual({ a: 1, b: 2 });
  expect(v1.size).toBe(2);
  expect(Object.fromEntries(v2)).toEqual({ a: 10, c: 3 });
  expect(v2.size).toBe(2);
  expect(v2.has('b')).toBe(false);
  expect(v2.get('b')).toBeUndefined();
});

test('two editors of one CowMap do not see each other', () => {
  const v1 = CowMap.from<number, string>([[1, 'one']]);
  const a = v1.edit();
  const b = v1.edit();
  a.set(2, 'a');
  b.set(2, 'b');
  b.delete(1);
  expect(Object.fromEntries(a.done())).toEqual({ 1: 'one', 2: 'a' });
  expect(Object.fromEntries(b.done())).toEqual({ 2: 'b' });
  expect(Object.fromEntries(v1)).toEqual({ 1: 'one' });
});

test('a CowMap edit copies only the shards it writes to', () => {
  const v1 = CowMap.from(Array.from({ length: 20_000 }, (_, i) => [`key-${i}`, i] as const));
  const e = v1.edit();
  e.set('key-7', -7);
  const v2 = e.done();
  // Internal structure, checked because it is the point of the container.
  const shards = (m: CowMap<string, number>) => (m as unknown as { shards: readonly (Map<string, number> | undefined)[] }).shards;
  const copied = shards(v2).filter((s, i) => s !== shards(v1)[i]);
  expect(copied).toHaveLength(1);
  expect(copied[0]?.get('key-7')).toBe(-7);
  expect(v1.get('key-7')).toBe(7);
});

test('a CowVec edit leaves the version it came from unchanged', () => {
  const e1 = CowVec.empty<string>().edit();
  e1.set(1, 'one').set(5000, 'five thousand');
  const v1 = e1.done();
  const e2 = v1.edit();
  e2.set(1, 'uno');
  e2.set(2, 'two');
  expect(e2.delete(5000)).toBe(true);
  expect(e2.delete(5001)).toBe(false);
  const v2 = e2.done();
  expect([...v1]).toEqual([
    [1, 'one'],
    [5000, 'five thousand'],
  ]);
  expect([...v2]).toEqual([
    [1, 'uno'],
    [2, 'two'],
  ]);
  expect(v1.size).toBe(2);
  expect(v2.size).toBe(2);
});

test('an IdSet edit leaves the version it came from unchanged', () => {
  const v1 = IdSet.of([1, 2, 3]);
  const e = v1.edit();
  e.delete(2);
  e.add(9);
  expect(e.allocate()).toBe(2);
  const v2 = e.done();
  expect(v1.toArray()).toEqual([1, 2, 3]);
  expect(v2.toArray()).toEqual([1, 2, 3, 9]);
  expect(v1.has(9)).toBe(false);
});

// ---------------------------------------------------------------------------
// Ids: lowest unused, delete

test('IdSet.allocate() returns the lowest unused id, from 1, reusing deleted ones', () => {
  const e = IdSet.empty().edit();
  expect([e.allocate(), e.allocate(), e.allocate()]).toEqual([1, 2, 3]);
  e.add(5);
  expect(e.allocate()).toBe(4);
  expect(e.allocate()).toBe(6);
  e.delete(2);
  e.delete(5);
  expect(e.has(2)).toBe(false);
  expect(e.allocate()).toBe(2);
  expect(e.allocate()).toBe(5);
  expect(e.allocate()).toBe(7);
  const s = e.done();
  expect(s.toArray()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  expect(s.size).toBe(7);
});

test('IdSet: adding an id twice or deleting an absent one changes nothing; 0 is never an id', () => {
  const e = IdSet.of([3]).edit();
  e.add(3);
  e.delete(4);
  expect(e.has(0)).toBe(false);
  const s = e.done();
  expect(s.size).toBe(1);
  expect(s.has(0)).toBe(false);
  expect(s.toArray()).toEqual([3]);
});

test('IdSet refuses ids outside 1..MAX_ID', () => {
  const e = IdSet.empty().edit();
  for (const bad of [0, -1, 1.5, IdSet.MAX_ID + 1, Number.NaN]) expect(() => e.add(bad), String(bad)).toThrow(RangeError);
  e.add(IdSet.MAX_ID);
  expect(e.done().toArray()).toEqual([IdSet.MAX_ID]);
});

test('CowVec refuses keys that are not ids', () => {
  const e = CowVec.empty<number>().edit();
  for (const bad of [-1, 0.5, 2 ** 32]) expect(() => e.set(bad, 1), String(bad)).toThrow(RangeError);
  expect(e.size).toBe(0);
});

// ---------------------------------------------------------------------------
// Iteration order

test('CowMap iteration is the same for the same history, and sortedKeys() sorts strings and numbers', () => {
  const keys = ['zeta', 'alpha', '10.96.0.10:80/TCP', '10.96.0.2:80/TCP', 'mid'];
  const a = CowMap.from(keys.map((k, i) => [k, i] as const));
  const b = CowMap.from(keys.map((k, i) => [k, i] as const));
  expect([...a.keys()]).toEqual([...b.keys()]);
  expect(a.keysArray()).toEqual([...a.keys()]);
  expect([...a.values()]).toEqual([...a.keys()].map((k) => a.get(k)));
  expect([...a.entries()]).toEqual([...a]);
  const seen: string[] = [];
  a.forEach((_v, k) => seen.push(k));
  expect(seen).toEqual([...a.keys()]);
  expect(a.sortedKeys()).toEqual([...keys].sort());

  // BackendKeys reach 2^50: numeric, not string, order.
  const nums = [2 ** 49 + 3, 7, 2 ** 33, 1024, 5, 2 ** 49];
  const n = CowMap.from(nums.map((k) => [k, k] as const));
  expect(n.sortedKeys()).toEqual([5, 7, 1024, 2 ** 33, 2 ** 49, 2 ** 49 + 3]);
  expect(CowMap.empty<number, number>().sortedKeys()).toEqual([]);
});

test('overwriting a CowMap key keeps one entry and its place', () => {
  const v1 = CowMap.from<string, number>([
    ['x', 1],
    ['y', 2],
  ]);
  const e = v1.edit();
  e.set('x', 3);
  const v2 = e.done();
  expect(v2.size).toBe(2);
  expect(v2.keysArray()).toEqual(v1.keysArray());
  expect(v2.get('x')).toBe(3);
});

test('CowVec and IdSet iterate in ascending id order whatever the insertion order', () => {
  const ids = [3000, 2, 1025, 1024, 1023, 0, 70_000];
  const e = CowVec.empty<string>().edit();
  for (const id of ids) e.set(id, `v${id}`);
  const v = e.done();
  const sorted = [...ids].sort((a, b) => a - b);
  expect([...v.keys()]).toEqual(sorted);
  expect(v.keysArray()).toEqual(sorted);
  expect(v.sortedKeys()).toEqual(sorted);
  expect([...v.values()]).toEqual(sorted.map((id) => `v${id}`));
  const seen: number[] = [];
  v.forEach((_x, k) => seen.push(k));
  expect(seen).toEqual(sorted);

  const s = IdSet.of([900, 31, 32, 1, 64, 33]);
  expect(s.toArray()).toEqual([1, 31, 32, 33, 64, 900]);
});

// ---------------------------------------------------------------------------
// Sizes past one shard, chunk or bitmap word

test('a CowMap of 50,000 entries, string and numeric keys, edited in part', () => {
  const N = 50_000;
  const strings = CowMap.from(Array.from({ length: N }, (_, i) => [`10.${i >> 8}.${i & 255}.1:80/TCP`, i] as const));
  const backendKeys = CowMap.from(Array.from({ length: N }, (_, i) => [(0x0af40000 + i) * 262144 + 8080 * 4, i] as const));
  for (const m of [strings, backendKeys] as CowMap<string | number, number>[]) {
    expect(m.size).toBe(N);
    expect(new Set(m.keysArray()).size).toBe(N);
    const e = m.edit();
    let removed = 0;
    for (const k of m.keys()) if ((m.get(k) as number) % 3 === 0 && e.delete(k)) removed++;
    const next = e.done();
    expect(next.size).toBe(N - removed);
    expect(m.size).toBe(N);
    expect([...next.values()].filter((v) => v % 3 === 0)).toEqual([]);
  }
  const sorted = backendKeys.sortedKeys();
  expect(sorted.every((k, i) => i === 0 || (sorted[i - 1] as number) < k)).toBe(true);
});

test('a CowVec across many chunks: set, delete, holes', () => {
  const e = CowVec.empty<number>().edit();
  for (let id = 0; id < 10_000; id += 7) e.set(id, id * 2);
  const v1 = e.done();
  expect(v1.size).toBe(Math.ceil(10_000 / 7));
  expect(v1.get(7 * 300)).toBe(7 * 600);
  expect(v1.has(8)).toBe(false);
  const e2 = v1.edit();
  for (let id = 0; id < 10_000; id += 14) e2.delete(id);
  const v2 = e2.done();
  expect(v2.keysArray().every((k) => k % 14 === 7)).toBe(true);
  expect(v2.size).toBe(v1.size - Math.ceil(10_000 / 14));
  expect(v1.has(14)).toBe(true);
});

test('an IdSet grows past its first bitmap and keeps allocating lowest-unused', () => {
  const e = IdSet.empty().edit();
  const first = Array.from({ length: 100_000 }, () => e.allocate());
  expect(first.every((id, i) => id === i + 1)).toBe(true);
  e.delete(2047);
  e.delete(2048);
  e.delete(65_537);
  expect(e.allocate()).toBe(2047);
  expect(e.allocate()).toBe(2048);
  expect(e.allocate()).toBe(65_537);
  expect(e.allocate()).toBe(100_001);
  const s = e.done();
  expect(s.size).toBe(100_001);
  expect(s.has(100_001)).toBe(true);
  expect(s.has(100_002)).toBe(false);
  const arr = s.toArray();
  expect(arr.length).toBe(100_001);
  expect(arr[arr.length - 1]).toBe(100_001);
  expect(IdSet.of([5_000_000]).toArray()).toEqual([5_000_000]);
});

// ---------------------------------------------------------------------------
// An editor is single use

function expectDone(f: () => unknown, editor: string): void {
  let caught: unknown;
  try {
    f();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CowEditorDoneError);
  expect(caught).toMatchObject({ code: 'ERR_SY_COW_EDITOR_DONE', editor });
  expect((caught as Error).message).toMatch(new RegExp(`^${editor} used after done\\(\\)`));
}

test('an IdSet editor used after done() throws, and the sealed set is unchanged', () => {
  const e = IdSet.of([1, 2, 3]).edit();
  e.add(40);
  const sealed = e.done();
  expectDone(() => e.add(7), 'IdSetEditor');
  expectDone(() => e.add(100_000), 'IdSetEditor');
  expectDone(() => e.delete(2), 'IdSetEditor');
  expectDone(() => e.allocate(), 'IdSetEditor');
  expectDone(() => e.has(1), 'IdSetEditor');
  expectDone(() => e.done(), 'IdSetEditor');
  expect(sealed.toArray()).toEqual([1, 2, 3, 40]);
  expect(sealed.size).toBe(4);
});

test('an IdSet editor that never wrote is sealed too', () => {
  const base = IdSet.of([5]);
  const e = base.edit();
  const sealed = e.done();
  expectDone(() => e.add(6), 'IdSetEditor');
  expect(sealed.toArray()).toEqual([5]);
  expect(base.toArray()).toEqual([5]);
});

test('a CowMap editor used after done() throws, and the sealed map is unchanged', () => {
  const e = CowMap.from<string, number>([['a', 1]]).edit();
  e.set('b', 2);
  const sealed = e.done();
  expectDone(() => e.set('c', 3), 'CowMapEditor');
  expectDone(() => e.set('a', 9), 'CowMapEditor');
  expectDone(() => e.delete('a'), 'CowMapEditor');
  expectDone(() => e.get('a'), 'CowMapEditor');
  expectDone(() => e.has('a'), 'CowMapEditor');
  expectDone(() => e.size, 'CowMapEditor');
  expectDone(() => e.done(), 'CowMapEditor');
  expect([...sealed]).toEqual([
    ['a', 1],
    ['b', 2],
  ]);
});

test('a CowVec editor used after done() throws, and the sealed vector is unchanged', () => {
  const e = CowVec.empty<string>().edit();
  e.set(1, 'one');
  const sealed = e.done();
  expectDone(() => e.set(2, 'two'), 'CowVecEditor');
  expectDone(() => e.set(1, 'uno'), 'CowVecEditor');
  expectDone(() => e.delete(1), 'CowVecEditor');
  expectDone(() => e.get(1), 'CowVecEditor');
  expectDone(() => e.has(1), 'CowVecEditor');
  expectDone(() => e.size, 'CowVecEditor');
  expectDone(() => e.done(), 'CowVecEditor');
  expect([...sealed]).toEqual([[1, 'one']]);
});
