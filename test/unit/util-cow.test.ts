// The copy-on-write containers: an editor is single use, and once done()
// sealed it every further call throws a typed error instead of hanging or
// writing into the state it handed out.

import { expect, test } from 'vitest';
import { CowEditorDoneError, CowMap, CowVec, IdSet } from '../../src/dataplane/bpf/state.ts';

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
