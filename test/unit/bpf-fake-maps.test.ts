// The fake map store errs where the kernel errs: full hash maps (E2BIG),
// wrong sizes (EINVAL), BPF_NOEXIST/BPF_EXIST, array maps, batches that stop
// at the first failure; LRU maps evict. And a plan that fails half way
// through a phase still leaves no Service half-written.

import { expect, test } from 'vitest';
import type { ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';
import { compile, compileOptions } from '../../src/dataplane/bpf/compile.ts';
import { diff } from '../../src/dataplane/bpf/diff.ts';
import { BPF_EXIST, BPF_NOEXIST, checkConsistent, FakeMap, FakeMapError, FakeMapStore } from '../support/fake-maps.ts';
import { encode, encodeOpBatch, MAPS, u32Codec } from '../../src/dataplane/bpf/layout.ts';
import { phaseRuns } from '../../src/dataplane/bpf/apply.ts';
import { endpoint, servicePortInfo } from '../support/snapshots.ts';
import { emptyProgrammedState } from '../../src/dataplane/bpf/state.ts';
import { thrownBy } from '../support/thrown.ts';

const id = (n: number): Buffer => encode(u32Codec, n);
const v8 = (n: number): Buffer => Buffer.alloc(8, n);

function errCode(f: () => unknown, code: string, done?: number): void {
  const e = thrownBy(f, FakeMapError);
  expect(e.code).toBe(code);
  expect(e.errno).toBeGreaterThan(0);
  expect(e.syscall).toMatch(/^bpf_/);
  if (done !== undefined) expect(e.done).toBe(done);
}

test('hash map: E2BIG when full, updates of existing keys still fine', () => {
  const m = new FakeMap(MAPS.backend4, { maxEntries: 2 });
  m.update(id(1), v8(1));
  m.update(id(2), v8(2));
  errCode(() => m.update(id(3), v8(3)), 'E2BIG');
  m.update(id(2), v8(9));
  expect(m.lookup(id(2))).toStrictEqual(v8(9));
  expect(m.size).toBe(2);
});

test('sizes are checked: EINVAL', () => {
  const m = new FakeMap(MAPS.backend4);
  errCode(() => m.update(Buffer.alloc(3), v8(1)), 'EINVAL');
  errCode(() => m.update(id(1), Buffer.alloc(9)), 'EINVAL');
  errCode(() => m.lookup(Buffer.alloc(12)), 'EINVAL');
  errCode(() => m.delete(Buffer.alloc(8)), 'EINVAL');
});

test('update flags: BPF_NOEXIST and BPF_EXIST', () => {
  const m = new FakeMap(MAPS.backend4);
  m.update(id(1), v8(1), BPF_NOEXIST);
  errCode(() => m.update(id(1), v8(1), BPF_NOEXIST), 'EEXIST');
  errCode(() => m.update(id(2), v8(1), BPF_EXIST), 'ENOENT');
});

test('delete of a missing key: a no-op (or ENOENT, as the kernel answers, on request)', () => {
  const m = new FakeMap(MAPS.backend4);
  expect(m.delete(id(1))).toBe(false);
  const strict = new FakeMap(MAPS.backend4, { deleteMissing: 'enoent' });
  errCode(() => strict.delete(id(1)), 'ENOENT');
  strict.update(id(1), v8(1));
  strict.update(id(3), v8(3));
  // The kernel's batch delete stops at the first missing key.
  errCode(() => strict.deleteBatch(Buffer.concat([id(1), id(2), id(3)]), 3), 'ENOENT', 1);
  expect(strict.lookup(id(1))).toBe(undefined);
  expect(strict.lookup(id(3))).toStrictEqual(v8(3));
});

test('batch update stops at the first error and says how far it got', () => {
  const m = new FakeMap(MAPS.backend4, { maxEntries: 2 });
  errCode(() => m.updateBatch(Buffer.concat([id(1), id(2), id(3)]), Buffer.concat([v8(1), v8(2), v8(3)]), 3), 'E2BIG', 2);
  expect(m.size).toBe(2);
  errCode(() => m.updateBatch(id(1), v8(1), 2), 'EINVAL');
});

test('LRU hash maps evict the least recently used entry instead of failing', () => {
  const m = new FakeMap(MAPS.ct4, { maxEntries: 2 });
  const k = (n: number): Buffer => Buffer.alloc(16, n);
  const v = Buffer.alloc(56);
  m.update(k(1), v);
  m.update(k(2), v);
  m.lookup(k(1)); // 2 is now the oldest
  m.update(k(3), v);
  expect(m.lookup(k(2))).toBe(undefined);
  expect(m.lookup(k(1))).toBeDefined();
  expect(m.lookup(k(3))).toBeDefined();
});

test('array maps: every index exists, E2BIG past the end, no deletes', () => {
  const m = new FakeMap(MAPS.config);
  const v56 = (n: number): Buffer => Buffer.alloc(56, n);
  expect(m.lookup(id(0))).toStrictEqual(Buffer.alloc(56));
  expect(m.lookup(id(1))).toBe(undefined);
  m.update(id(0), v56(7));
  expect(m.lookup(id(0))).toStrictEqual(v56(7));
  errCode(() => m.update(id(1), v56(7)), 'E2BIG');
  errCode(() => m.update(id(0), v56(7), BPF_NOEXIST), 'EEXIST');
  errCode(() => m.delete(id(0)), 'EINVAL');
});

test('LPM trie: a prefixlen longer than the key holds is EINVAL, as the kernel answers', () => {
  const m = new FakeMap(MAPS.srcrange4);
  const key = (len: number): Buffer => Buffer.concat([encode(u32Codec, len), Buffer.alloc(8)]);
  m.update(key(64), Buffer.alloc(4));
  errCode(() => m.update(key(65), Buffer.alloc(4)), 'EINVAL');
});

test('unknown map: ENOENT', () => {
  errCode(() => new FakeMapStore().map('sy_nope_v1'), 'ENOENT');
});

function bigSnapshot(services: number, endpoints: number): ProxySnapshot {
  const m = new Map<string, ServicePortInfo>();
  for (let s = 0; s < services; s++) {
    const eps = Array.from({ length: endpoints }, (_, e) => endpoint(`10.244.${s}.${e + 1}:8080`));
    const sp: ServicePortInfo = servicePortInfo({ name: `s${s}`, clusterIPs: [`10.96.0.${s + 1}`], port: 80, endpoints: eps });
    m.set(sp.id, sp);
  }
  return { nodeName: 'n', servicePorts: m, changed: 'all' };
}

test('a plan that hits E2BIG half way through leaves every Service whole', () => {
  // Room for 2 Services' masters and slots, not 3: phase 2 (slots) fails part way.
  // (The plan is made without capacities, as if the control plane did not know them.)
  const store = new FakeMapStore(undefined, { [MAPS.svc4.name]: { maxEntries: 8 } });
  const plan = diff(compile(bigSnapshot(3, 3), compileOptions()), emptyProgrammedState());
  let failed: FakeMapError | undefined;
  outer: for (const ops of plan.phases) {
    for (const run of phaseRuns(ops)) {
      const batch = encodeOpBatch(run);
      if (batch === null) continue;
      try {
        store.applyBatch(batch);
      } catch (e) {
        failed = e as FakeMapError;
        break outer; // apply stops the plan at the failed batch
      }
      expect(checkConsistent(store)).toStrictEqual([]);
    }
  }
  expect(failed?.code).toBe('E2BIG');
  expect(failed?.done).toBe(8);
  expect(checkConsistent(store), 'no master was written, so no packet sees the partial slots').toStrictEqual([]);
  expect(store.dumpCanonical()).toMatch(/sy_svc4_v2 \(8\):/);
});

test('dumpCanonical sorts addresses numerically and shows masters before slots', () => {
  const store = new FakeMapStore();
  const snap = bigSnapshot(10, 1);
  const plan = diff(compile(snap, compileOptions()), emptyProgrammedState());
  store.applyPlan(plan);
  const svcLines = store
    .dumpCanonical()
    .split('\n')
    .filter((l) => l.includes(':80/TCP'));
  expect(svcLines[0] ?? '').toMatch(/^ {2}10\.96\.0\.1:80\/TCP int master/);
  expect(svcLines[1] ?? '').toMatch(/^ {2}10\.96\.0\.1:80\/TCP int gen 0 slot 1/);
  expect(svcLines[svcLines.length - 1] ?? '').toMatch(/^ {2}10\.96\.0\.10:80\/TCP int gen 0 slot 1/);
});
