// Maglev's lookup table (src/dataplane/bpf/maglev.ts) and what diff writes
// of it: balance, the disruption of removing a backend, determinism from
// identities alone, and the table ops around the master.

import { expect, test } from 'vitest';
import { isPrime, MAGLEV_DEFAULT_M, maglevTable, permutation } from '../../src/dataplane/bpf/maglev.ts';
import { compile, compileOptions } from '../../src/dataplane/bpf/compile.ts';
import { diff, formatOp } from '../../src/dataplane/bpf/diff.ts';
import { programmedFromDump } from '../../src/dataplane/bpf/adopt.ts';
import { SY_SVC_F_MAGLEV } from '../../src/dataplane/bpf/layout.ts';
import { emptyProgrammedState, PHASE_NAMES } from '../../src/dataplane/bpf/state.ts';
import { FakeMapStore, storeDumps } from '../support/fake-maps.ts';
import { endpoint, servicePortInfo, snapshot } from '../support/snapshots.ts';

const ids = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `10.244.${(from + i) >> 8}.${(from + i) & 255}:8080/TCP`);

test('every entry names a backend, and each backend gets about m/N of them', () => {
  const names = ids(10);
  const t = maglevTable(names, MAGLEV_DEFAULT_M);
  expect(t.length).toBe(MAGLEV_DEFAULT_M);
  const count = new Array<number>(names.length).fill(0);
  for (const i of t) count[i] = (count[i] ?? 0) + 1;
  const fair = MAGLEV_DEFAULT_M / names.length;
  for (const c of count) expect(Math.abs(c - fair) / fair, `${count}`).toBeLessThan(0.02);
  expect(maglevTable([], 7).length, 'no backends: no table').toBe(0);
  expect(() => maglevTable(names, 16384)).toThrow(/not a prime/);
});

test('removing one of N backends moves about 1/N of the entries, and only a few beyond those it held', () => {
  for (const n of [3, 5, 10, 40]) {
    const names = ids(n);
    const before = maglevTable(names, MAGLEV_DEFAULT_M);
    const gone = names[1] as string;
    const rest = names.filter((x) => x !== gone);
    const after = maglevTable(rest, MAGLEV_DEFAULT_M);
    let moved = 0;
    let movedElsewhere = 0; // entries of a backend that stayed, moved anyway
    for (let e = 0; e < before.length; e++) {
      const was = names[before[e] as number];
      const now = rest[after[e] as number];
      if (was === now) continue;
      moved++;
      if (was !== gone) movedElsewhere++;
    }
    const frac = moved / before.length;
    expect(frac, `N=${n}: moved ${frac}`).toBeGreaterThan((1 / n) * 0.9);
    expect(frac, `N=${n}: moved ${frac}`).toBeLessThan((1 / n) * 1.5);
    expect(movedElsewhere / before.length, `N=${n}: entries of staying backends that moved`).toBeLessThan(0.5 / n);
  }
});

test('deterministic from identities alone: their order does not matter, every call gives the same table', () => {
  const names = ids(6);
  const a = maglevTable(names, 251);
  const shuffled = [names[3], names[0], names[5], names[1], names[4], names[2]] as string[];
  const b = maglevTable(shuffled, 251);
  expect([...a].map((i) => names[i])).toStrictEqual([...b].map((i) => shuffled[i]));
  expect(maglevTable(names, 251)).toStrictEqual(a);
  const p = permutation('10.244.0.1:8080/TCP', 251);
  expect(p.offset).toBeLessThan(251);
  expect(p.skip).toBeGreaterThanOrEqual(1);
  expect(p.skip).toBeLessThan(251);
  expect([2, 3, 251, 16381, 65521].every(isPrime)).toBe(true);
  expect([0, 1, 4, 16383, 65536].some(isPrime)).toBe(false);
});

test('diff: a Maglev frontend gets its table with the slots (before the master), the old table goes with the old slots', () => {
  const opts = compileOptions({ lbAlgorithm: 'maglev', maglevTableSize: 7 });
  const sp = (eps: string[], ann: 'random' | 'maglev' | null = null) =>
    servicePortInfo({ name: 'web', clusterIPs: ['10.96.0.1'], port: 80, endpoints: eps.map((e) => endpoint(e)), lbAlgorithm: ann });
  const phaseOps = (p: ReturnType<typeof diff>, map: string) =>
    p.phases.flatMap((ops, i) =>
      ops.filter((op) => op.map === map || (op.map === 'svc4' && op.key.slot === 0)).map((op) => `${PHASE_NAMES[i]}: ${formatOp(op)}`),
    );
  const p1 = diff(compile(snapshot([sp(['10.244.0.1:8080', '10.244.0.2:8080'])]), opts), emptyProgrammedState(), 'all');
  const ops1 = phaseOps(p1, 'maglev');
  expect(ops1.length).toBe(8);
  expect(ops1.slice(0, 7).every((o) => o.startsWith('slot-update: update maglev svc 1 int gen 0 ['))).toBe(true);
  expect(ops1[7]).toBe(
    `master-update: update svc4 10.96.0.1:80/TCP int master = forward count 2 gen 0 flags 0x${(0x40 | SY_SVC_F_MAGLEV).toString(16)} svc 1 maglev 7`,
  );
  expect(new Set(ops1.slice(0, 7).map((o) => o.replace(/.*= /, ''))), 'both backends in the table').toStrictEqual(new Set(['backend 1', 'backend 2']));
  expect(p1.next.entries.maglev).toBe(7);

  const p2 = diff(compile(snapshot([sp(['10.244.0.2:8080'])]), opts), p1.next, 'all');
  const ops2 = phaseOps(p2, 'maglev');
  expect(ops2.filter((o) => o.startsWith('slot-update: update maglev svc 1 int gen 1 [')).length).toBe(7);
  expect(ops2.filter((o) => o.startsWith('svc-delete: delete maglev svc 1 int gen 0 [')).length).toBe(7);
  expect(p2.next.entries.maglev).toBe(7);

  // The annotation wins over the flag; a frontend back to random loses its table.
  const p3 = diff(compile(snapshot([sp(['10.244.0.2:8080'], 'random')]), opts), p2.next, 'all');
  expect(
    phaseOps(p3, 'maglev')
      .filter((o) => o.includes('maglev svc'))
      .every((o) => o.startsWith('svc-delete: delete maglev svc 1 int gen 1')),
  ).toBe(true);
  expect(p3.next.entries.maglev).toBe(0);

  // adopt reads the table back and keeps it; an incomplete one is rewritten.
  const store = new FakeMapStore();
  store.applyPlan(p1);
  expect(programmedFromDump(storeDumps(store)).orphans).toStrictEqual([]);
  store.of('maglev').delete(store.of('maglev').dump()[0]?.[0] as Buffer);
  const damaged = programmedFromDump(storeDumps(store));
  expect(damaged.orphans.filter((op) => op.map === 'maglev').length, 'the 6 left are deleted').toBe(6);
  expect(damaged.state.services.get('10.96.0.1:80/TCP')?.internal.maglevM, 'damaged: rewritten by the next sync').toBe(0);
});
