// diff(): targeted cases (ids, refcounts, scope, purity, determinism) and a
// seeded random walk over snapshots with conflicts, shared backends, bad
// input, removals and full resyncs. At every step of the walk:
//   - compileChanged(prev) equals compile() and names every frontend that changed;
//   - the scoped plan, applied op by op to the fake maps, keeps checkConsistent()
//     true and shows each frontend only its old or its new backends;
//   - the maps then hold exactly the desired state, adopt() reads back plan.next,
//     a full reconcile finds nothing left to do, and new ids are the lowest unused.

import { expect, test } from 'vitest';
import type { EndpointInfo, Protocol, ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';
import { programmedFromDump } from '../../src/dataplane/bpf/adopt.ts';
import { compile, compileChanged } from '../../src/dataplane/bpf/compile.ts';
import { diff, formatOp, formatPlan, planOps } from '../../src/dataplane/bpf/diff.ts';
import { checkConsistent, FakeMapStore } from '../support/fake-maps.ts';
import { backendCodec, MAPS, svcKeyCodec, svcValueCodec, u32Codec } from '../../src/dataplane/bpf/layout-v1.ts';
import { emptyProgrammedState, l4Key } from '../../src/dataplane/bpf/state.ts';
import { CowMap } from '../../src/util/cow.ts';
import { programmedToPlain } from '../support/plain-state.ts';
import type { DesiredState, FrontendKey, Plan, ProgrammedState } from '../../src/dataplane/bpf/state.ts';

/** Maps that answer a delete of a missing key with ENOENT, as the kernel does: no plan may issue one. */
function strictStore(): FakeMapStore {
  return new FakeMapStore(undefined, { [MAPS.svc.name]: { deleteMissing: 'enoent' }, [MAPS.backend.name]: { deleteMissing: 'enoent' } });
}

function ep(ip: string, port: number): EndpointInfo {
  return { ip, port, nodeName: null, zone: null, ready: true, serving: true, terminating: false, isLocal: false };
}

function sp(name: string, clusterIPs: string[], port: number, eps: Array<[string, number]>, protocol: Protocol = 'TCP'): ServicePortInfo {
  const endpoints = eps.map(([ip, p]) => ep(ip, p));
  return { id: `ns/${name}:/${protocol}`, namespace: 'ns', name, portName: '', protocol, clusterIPs, port, endpoints, clusterEndpoints: endpoints };
}

function snap(sps: ServicePortInfo[], changed: ReadonlySet<string> | 'all' = 'all'): ProxySnapshot {
  return { nodeName: 'n', servicePorts: new Map(sps.map((s) => [s.id, s])), changed };
}

const OFF = { masqueradeAll: false };

const plainState = programmedToPlain;

function plainDesired(d: DesiredState): unknown {
  return {
    services: d.services.sortedKeys().map((k) => {
      const s = d.services.get(k);
      return [k, s?.owner, s?.flags, s?.backends.map(l4Key), s?.backendKeys];
    }),
    problems: d.problems,
  };
}

// ---------------------------------------------------------------------------
// Targeted cases.

test('ids freed by a plan are not reused within it; the next plan reuses the lowest', () => {
  const p1 = diff(compile(snap([sp('a', ['10.96.0.1'], 80, [['10.244.0.1', 80]])]), OFF), emptyProgrammedState());
  const p2 = diff(compile(snap([sp('a', ['10.96.0.1'], 80, [['10.244.0.2', 80]])]), OFF), p1.next);
  expect(planOps(p2).map(formatOp)).toStrictEqual([
    'backend-update 2 = 10.244.0.2:80/TCP',
    'svc-update 10.96.0.1:80/TCP gen 1 slot 1 = backend 2',
    'svc-update 10.96.0.1:80/TCP master = count 1 gen 1 flags 0x00 svc 1',
    'svc-delete 10.96.0.1:80/TCP gen 0 slot 1',
    'backend-delete 1',
  ]);
  const p3 = diff(
    compile(
      snap([
        sp('a', ['10.96.0.1'], 80, [
          ['10.244.0.2', 80],
          ['10.244.0.3', 80],
        ]),
      ]),
      OFF,
    ),
    p2.next,
  );
  expect(p3.phases[0]?.map(formatOp)).toStrictEqual(['backend-update 1 = 10.244.0.3:80/TCP']);
});

test('a backend moving from one Service to another in one plan is neither deleted nor re-created', () => {
  const before = snap([sp('a', ['10.96.0.1'], 80, [['10.244.0.1', 80]]), sp('b', ['10.96.0.2'], 80, [])]);
  const after = snap([sp('a', ['10.96.0.1'], 80, []), sp('b', ['10.96.0.2'], 80, [['10.244.0.1', 80]])]);
  const p1 = diff(compile(before, OFF), emptyProgrammedState());
  const p2 = diff(compile(after, OFF), p1.next);
  expect(p2.phases[0]).toStrictEqual([]);
  expect(p2.phases[4]).toStrictEqual([]);
  expect(p2.next.backendsById.get(1)?.refs).toBe(1);
});

test('svc ids: stable per frontend, lowest unused for new ones', () => {
  const three = ['a', 'b', 'c'].map((n, i) => sp(n, [`10.96.0.${i + 1}`], 80, []));
  const p1 = diff(compile(snap(three), OFF), emptyProgrammedState());
  expect(p1.next.services.sortedKeys().map((k) => p1.next.services.get(k)?.svcId)).toStrictEqual([1, 2, 3]);
  const p2 = diff(compile(snap([three[0], three[2]] as ServicePortInfo[]), OFF), p1.next);
  const p3 = diff(compile(snap([...three.slice(0, 1), three[2] as ServicePortInfo, sp('d', ['10.96.0.9'], 80, [])]), OFF), p2.next);
  expect(p3.next.services.get('10.96.0.9:80/TCP')?.svcId).toBe(2);
  expect(p3.next.services.get('10.96.0.3:80/TCP')?.svcId).toBe(3);
});

test('diff is pure: current is not modified, and the same inputs give the same plan', () => {
  const d1 = compile(snap([sp('a', ['10.96.0.1'], 80, [['10.244.0.1', 80]]), sp('b', ['10.96.0.2'], 80, [['10.244.0.1', 80]])]), OFF);
  const p1 = diff(d1, emptyProgrammedState());
  const frozen = JSON.stringify(plainState(p1.next));
  const d2 = compile(snap([sp('b', ['10.96.0.2'], 80, [['10.244.0.2', 80]])]), OFF);
  const a = diff(d2, p1.next);
  const b = diff(d2, p1.next);
  expect(JSON.stringify(plainState(p1.next))).toBe(frozen);
  expect(a.phases).toStrictEqual(b.phases);
  expect(plainState(a.next)).toStrictEqual(plainState(b.next));
  // Insertion order of the desired map does not matter.
  const reversed: DesiredState = { ...d2, services: CowMap.from([...d2.services].reverse()) };
  expect(diff(reversed, p1.next).phases).toStrictEqual(a.phases);
});

test('scope: out-of-scope frontends are untouched, in-scope removals happen, unknown keys are ignored', () => {
  const p1 = diff(
    compile(snap([sp('a', ['10.96.0.1'], 80, [['10.244.0.1', 80]]), sp('b', ['10.96.0.2'], 80, [['10.244.0.2', 80]])]), OFF),
    emptyProgrammedState(),
  );
  const none = compile(snap([]), OFF);
  const p2 = diff(none, p1.next, new Set(['10.96.0.2:80/TCP', '10.99.9.9:1/TCP']));
  expect(p2.touched).toStrictEqual(['10.96.0.2:80/TCP']);
  expect(p2.next.services.sortedKeys()).toStrictEqual(['10.96.0.1:80/TCP']);
  expect(p2.phases[4]?.map(formatOp)).toStrictEqual(['backend-delete 2']);
  const p3 = diff(none, p2.next, new Set());
  expect(planOps(p3).length).toBe(0);
  expect(diff(none, p2.next).touched.length, 'full reconcile removes the rest').toBe(1);
});

test('plans always have the five phases, in order', () => {
  const p = diff(compile(snap([]), OFF), emptyProgrammedState());
  expect(p.phases.length).toBe(5);
  expect(formatPlan(p)).toMatch(/\(no ops\)/);
});

// ---------------------------------------------------------------------------
// The random walk.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FRONT_IPS = ['10.96.0.1', '10.96.0.2', '10.96.0.3', '10.96.0.10', 'fd00::1', '10.96.0.x'];
const BACK_IPS = ['10.244.0.1', '10.244.0.2', '10.244.0.3', '10.244.1.1', '10.244.1.20', 'fd00::2', '10.244.0.01'];

function randomServicePort(r: () => number, i: number): ServicePortInfo {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const proto: Protocol = i % 4 === 0 ? 'UDP' : 'TCP';
  const ips = [pick(FRONT_IPS)];
  if (r() < 0.2) ips.push(pick(FRONT_IPS));
  const eps: Array<[string, number]> = [];
  const n = Math.floor(r() * 6);
  for (let e = 0; e < n; e++) eps.push([pick(BACK_IPS), r() < 0.8 ? 8080 : 8081]);
  return sp(`s${i}`, ips, r() < 0.7 ? 80 : 443, eps, proto);
}

/** What a packet can see: frontend -> "flags [backends...]", from the maps alone. */
function packetView(store: FakeMapStore): Map<FrontendKey, string> {
  const backends = new Map(store.backends.dump().map(([k, v]) => [u32Codec.decode(k), l4Key(backendCodec.decode(v))]));
  const slots = new Map<string, number>();
  const masters: Array<[FrontendKey, number, number, number]> = [];
  for (const [k, v] of store.svc.dump()) {
    const key = svcKeyCodec.decode(k);
    const val = svcValueCodec.decode(v);
    if (key.slot === 0 && key.gen === 0) masters.push([l4Key(key), val.gen, val.count, val.flags]);
    else slots.set(`${l4Key(key)} ${key.gen} ${key.slot}`, val.backendId);
  }
  const view = new Map<FrontendKey, string>();
  for (const [fk, gen, count, flags] of masters) {
    const seen: string[] = [];
    for (let s = 1; s <= count; s++) {
      const id = slots.get(`${fk} ${gen} ${s}`);
      seen.push(id === undefined ? 'MISSING-SLOT' : (backends.get(id) ?? 'MISSING-BACKEND'));
    }
    view.set(fk, `${flags} [${seen.join(', ')}]`);
  }
  return view;
}

function desiredView(d: DesiredState): Map<FrontendKey, string> {
  const view = new Map<FrontendKey, string>();
  for (const [k, s] of d.services) view.set(k, `${s.flags} [${s.backends.map(l4Key).join(', ')}]`);
  return view;
}

function applyChecked(store: FakeMapStore, plan: Plan, ctx: string): void {
  const before = packetView(store);
  const seen: Array<[string, Map<FrontendKey, string>]> = [];
  store.applyPlan(plan, {
    afterOp: (op, phase) => {
      expect(checkConsistent(store), `${ctx}: after ${phase} ${formatOp(op)}`).toStrictEqual([]);
      seen.push([`${phase} ${formatOp(op)}`, packetView(store)]);
    },
  });
  const after = packetView(store);
  for (const [where, view] of seen) {
    for (const fk of new Set([...before.keys(), ...after.keys(), ...view.keys()])) {
      const v = view.get(fk);
      expect(v === before.get(fk) || v === after.get(fk), `${ctx}: ${fk} after ${where} sees ${v}`).toBeTruthy();
    }
  }
}

/** The ids allocated by a plan are, in order, the lowest ids free in `current`. */
function assertLowestIds(plan: Plan, current: ProgrammedState, ctx: string): void {
  const allocated = (plan.phases[0] ?? []).map((op) => (op.kind === 'backend-update' ? op.id : -1));
  const expected: number[] = [];
  for (let id = 1; expected.length < allocated.length; id++) if (!current.backendIds.has(id)) expected.push(id);
  expect(allocated, `${ctx}: backend ids`).toStrictEqual(expected);
}

test('random walk: incremental compile + scoped diff + apply stays correct at every op', () => {
  const SEEDS = 25;
  const STEPS = 40;
  const seen = { conflicts: 0, problems: 0, flips: 0, removals: 0, backendDeletes: 0, shared: 0, flagsOnly: 0, emptyPlans: 0 };
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = mulberry32(seed);
    const ports = new Map<string, ServicePortInfo>();
    const store = strictStore();
    let programmed = emptyProgrammedState();
    let desired: DesiredState | undefined;
    let masqueradeAll = false;
    for (let step = 0; step < STEPS; step++) {
      const ctx = `seed ${seed} step ${step}`;
      const changed = new Set<string>();
      for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
        const i = Math.floor(r() * 10);
        const next = randomServicePort(r, i);
        if (r() < 0.25) ports.delete(next.id);
        else ports.set(next.id, next);
        changed.add(next.id);
      }
      if (r() < 0.05) masqueradeAll = !masqueradeAll;
      const full = step % 10 === 9;
      const snapshot: ProxySnapshot = { nodeName: 'n', servicePorts: new Map(ports), changed: full ? 'all' : changed };
      const opts: { masqueradeAll: boolean } = { masqueradeAll };

      const next: DesiredState = desired === undefined ? compile(snapshot, opts) : compileChanged(desired, snapshot, opts);
      const reference = compile(snapshot, opts);
      expect(plainDesired(next), `${ctx}: compileChanged == compile`).toStrictEqual(plainDesired(reference));
      if (desired !== undefined && next.changed !== 'all') {
        for (const k of new Set([...desired.services.keys(), ...next.services.keys()])) {
          const same = JSON.stringify(desired.services.get(k)) === JSON.stringify(next.services.get(k));
          expect(same || next.changed.has(k), `${ctx}: ${k} changed but is not in desired.changed`).toBeTruthy();
        }
      }

      const plan = diff(next, programmed, next.changed);
      expect(plan.phases, `${ctx}: deterministic`).toStrictEqual(diff(next, programmed, next.changed).phases);
      assertLowestIds(plan, programmed, ctx);
      applyChecked(store, plan, ctx);

      expect(packetView(store), `${ctx}: maps hold the desired state`).toStrictEqual(desiredView(next));
      const adopted = programmedFromDump(store.svc.dump(), store.backends.dump());
      expect(adopted.orphans, `${ctx}: no orphans`).toStrictEqual([]);
      expect(plainState(adopted.state), `${ctx}: adopt == plan.next`).toStrictEqual(plainState(plan.next));
      expect(planOps(diff(next, plan.next)).length, `${ctx}: nothing left for a full reconcile`).toBe(0);
      for (const b of plan.next.backendsById.values()) expect(b.refs, `${ctx}: backend ${b.id} unreferenced`).toBeGreaterThanOrEqual(1);

      seen.conflicts += next.problems.filter((p) => p.field === 'clusterIPs').length;
      seen.problems += next.problems.length;
      seen.removals += (plan.phases[3] ?? []).filter((op) => op.kind === 'svc-delete' && op.key.slot === 0).length;
      seen.backendDeletes += (plan.phases[4] ?? []).length;
      seen.shared += [...plan.next.backendsById.values()].filter((b) => b.refs > 1).length;
      seen.emptyPlans += planOps(plan).length === 0 ? 1 : 0;
      for (const k of plan.touched) {
        const was = programmed.services.get(k);
        const now = plan.next.services.get(k);
        if (was !== undefined && now !== undefined) {
          if (was.gen !== now.gen) seen.flips++;
          else seen.flagsOnly++;
        }
      }
      programmed = plan.next;
      desired = next;
    }
  }
  // The walk must have exercised every interesting case, not just passed vacuously.
  for (const [what, n] of Object.entries(seen)) expect(n, `random walk never saw: ${what}`).toBeGreaterThan(0);
  console.log(`# random walk: ${JSON.stringify(seen)}`);
});
