// diff(): targeted cases (ids, refcounts, scope, purity, determinism) and a
// seeded random walk over snapshots with conflicts, shared backends, bad
// input, removals and full resyncs. At every step of the walk:
//   - compileChanged(prev) equals compile() and names every frontend that changed;
//   - the scoped plan, applied op by op to the fake maps, keeps checkConsistent()
//     true and shows each frontend only its old or its new backends;
//   - the maps then hold exactly the desired state, adopt() reads back plan.next,
//     a full reconcile finds nothing left to do, and new ids are the lowest unused.

import { expect, test } from 'vitest';
import type { Protocol, ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';
import { programmedFromDump } from '../../src/dataplane/bpf/adopt.ts';
import { type CompileOptions, compile, compileChanged, compileOptions } from '../../src/dataplane/bpf/compile.ts';
import { diff, formatOp, formatPlan, planOps } from '../../src/dataplane/bpf/diff.ts';
import { checkConsistent, type FakeMapStore, storeDumps, strictStore } from '../support/fake-maps.ts';
import { decodeEntries, type Op } from '../../src/dataplane/bpf/layout.ts';
import { emptyProgrammedState, FAMILIES, ID_QUARANTINE_MS, l4Key } from '../../src/dataplane/bpf/state.ts';
import { CowMap } from '../../src/util/cow.ts';
import { programmedToPlain } from '../support/plain-state.ts';
import type { DesiredScope, DesiredState, FrontendKey, Plan, ProgrammedState } from '../../src/dataplane/bpf/state.ts';
import { endpoint, servicePortInfo, snapshot as snap, TEST_NODE } from '../support/snapshots.ts';

function sp(
  name: string,
  clusterIPs: string[],
  port: number,
  eps: Array<[string, number]>,
  protocol: Protocol = 'TCP',
  more: Partial<ServicePortInfo> = {},
): ServicePortInfo {
  const endpoints = eps.map(([ip, p]) => endpoint(ip.includes(':') ? `[${ip}]:${p}` : `${ip}:${p}`));
  return servicePortInfo({ name, clusterIPs, port, endpoints, protocol, ...more });
}

const OFF = compileOptions();

const plainState = programmedToPlain;

/** A ProgrammedState without what adopt cannot know (quarantined ids, deferred frontends). */
function plainAdoptable(s: ProgrammedState): unknown {
  const p = programmedToPlain(s) as { backends: Record<string, { ids: unknown }>; svcIds: unknown };
  for (const f of Object.values(p.backends)) f.ids = null;
  p.svcIds = null;
  return p;
}

function scopeText(s: DesiredScope | null | undefined): string {
  return s == null ? '-' : `${s.action} ${s.flags} [${s.backends.map(l4Key).join(', ')}]`;
}

function plainDesired(d: DesiredState): unknown {
  return {
    services: d.services.sortedKeys().map((k) => {
      const s = d.services.get(k);
      return [k, s?.owner, scopeText(s?.internal), scopeText(s?.external), s?.sourceRanges, s?.internal.backendKeys];
    }),
    problems: d.problems,
  };
}

// ---------------------------------------------------------------------------
// Targeted cases.

test('a backend id freed by a plan is quarantined: not reused until ID_QUARANTINE_MS later', () => {
  const at = (nowMs: number) => ({ nowMs });
  const p1 = diff(compile(snap([sp('a', ['10.96.0.1'], 80, [['10.244.0.1', 80]])]), OFF), emptyProgrammedState(), 'all', at(0));
  const p2 = diff(compile(snap([sp('a', ['10.96.0.1'], 80, [['10.244.0.2', 80]])]), OFF), p1.next, 'all', at(1000));
  expect(planOps(p2).map(formatOp)).toStrictEqual([
    'update backend4 2 = 10.244.0.2:80/TCP', // a fresh id: its counter entry comes from the datapath
    'update svc4 10.96.0.1:80/TCP int gen 1 slot 1 = backend 2',
    'update svc4 10.96.0.1:80/TCP int master = forward count 1 gen 1 flags 0x40 svc 1',
    'delete svc4 10.96.0.1:80/TCP int gen 0 slot 1',
    'delete backend4 1',
    'delete becnt4 1',
  ]);
  expect(p2.next.backends.IPv4.quarantine).toStrictEqual([{ id: 1, until: 1000 + ID_QUARANTINE_MS }]);
  const three = compile(
    snap([
      sp('a', ['10.96.0.1'], 80, [
        ['10.244.0.2', 80],
        ['10.244.0.3', 80],
        ['10.244.0.4', 80],
      ]),
    ]),
    OFF,
  );
  const early = diff(three, p2.next, 'all', at(1000 + ID_QUARANTINE_MS - 1));
  expect(early.phases[0]?.map(formatOp), 'id 1 still quarantined; 3 and 4 never handed out: no counter entry written').toStrictEqual([
    'update backend4 3 = 10.244.0.3:80/TCP',
    'update backend4 4 = 10.244.0.4:80/TCP',
  ]);
  const later = diff(three, p2.next, 'all', at(1000 + ID_QUARANTINE_MS));
  // The reused id gets a zeroed counter entry before any slot names it: the new backend does not inherit the old one's traffic
  // (a flow of the old one may have made an entry after the plan that freed it deleted it).
  expect(later.phases[0]?.map(formatOp), 'released: the lowest again, its counter zeroed').toStrictEqual([
    'update backend4 1 = 10.244.0.3:80/TCP',
    'update becnt4 1 = 0',
    'update backend4 3 = 10.244.0.4:80/TCP',
  ]);
  expect(later.next.counterFresh, 'ids from 4 up were never handed out').toStrictEqual({ svc: 2, IPv4: 4, IPv6: 1 });
  expect(later.next.backends.IPv4.quarantine).toStrictEqual([]);
});

test('a backend moving from one Service to another in one plan is neither deleted nor re-created', () => {
  const before = snap([sp('a', ['10.96.0.1'], 80, [['10.244.0.1', 80]]), sp('b', ['10.96.0.2'], 80, [])]);
  const after = snap([sp('a', ['10.96.0.1'], 80, []), sp('b', ['10.96.0.2'], 80, [['10.244.0.1', 80]])]);
  const p1 = diff(compile(before, OFF), emptyProgrammedState());
  const p2 = diff(compile(after, OFF), p1.next);
  expect(p2.phases[0]).toStrictEqual([]);
  expect(p2.phases[4]).toStrictEqual([]);
  expect(p2.next.backends.IPv4.byId.get(1)?.refs).toBe(1);
});

test('svc ids: stable per frontend (shared by both scopes), never reused while quarantined', () => {
  const three = ['a', 'b', 'c'].map((n, i) => sp(n, [`10.96.0.${i + 1}`], 80, []));
  const p1 = diff(compile(snap(three), OFF), emptyProgrammedState());
  expect(p1.next.services.sortedKeys().map((k) => p1.next.services.get(k)?.svcId)).toStrictEqual([1, 2, 3]);
  const p2 = diff(compile(snap([three[0], three[2]] as ServicePortInfo[]), OFF), p1.next, 'all', { nowMs: 0 });
  const d = sp('d', ['10.96.0.9'], 80, []);
  const p3 = diff(compile(snap([three[0] as ServicePortInfo, three[2] as ServicePortInfo, d]), OFF), p2.next, 'all', { nowMs: 1 });
  expect(p3.next.services.get('10.96.0.9:80/TCP')?.svcId).toBe(4);
  expect(p3.next.services.get('10.96.0.3:80/TCP')?.svcId).toBe(3);
  const p4 = diff(compile(snap([three[0] as ServicePortInfo, three[2] as ServicePortInfo, d, sp('e', ['10.96.0.8'], 80, [])]), OFF), p3.next, 'all', {
    nowMs: ID_QUARANTINE_MS,
  });
  expect(p4.next.services.get('10.96.0.8:80/TCP')?.svcId).toBe(2);
});

test('an external scope: its master is written before the internal master that points clients at it, and deleted after', () => {
  const opts = compileOptions({ nodeIPs: ['198.18.0.1'], localCIDRs: ['10.244.0.0/16'] });
  const eps = [endpoint('10.244.1.5:80', TEST_NODE), endpoint('10.244.2.5:80', 'node-b')];
  const local = servicePortInfo({ name: 'loc', clusterIPs: ['10.96.0.3'], nodePort: 30003, externalPolicyLocal: true, endpoints: eps });
  const p1 = diff(compile(snap([local]), opts), emptyProgrammedState());
  const masters = (p1.phases[2] ?? []).map(formatOp);
  expect(masters).toStrictEqual([
    'update svc4 10.96.0.3:80/TCP int master = forward count 2 gen 0 flags 0x42 svc 1',
    'update svc4 198.18.0.1:30003/TCP ext master = forward count 1 gen 0 flags 0x00 svc 2',
    'update svc4 198.18.0.1:30003/TCP int master = forward count 2 gen 0 flags 0x04 svc 2',
  ]);
  const cluster = { ...local, externalPolicyLocal: false };
  const p2 = diff(compile(snap([servicePortInfo({ ...cluster, localEndpoints: undefined, externalEndpoints: undefined })]), opts), p1.next);
  const ops = planOps(p2).map(formatOp);
  const intFlip = ops.findIndex((o) => o.startsWith('update svc4 198.18.0.1:30003/TCP int master'));
  const extGone = ops.indexOf('delete svc4 198.18.0.1:30003/TCP ext master');
  expect(intFlip).toBeGreaterThanOrEqual(0);
  expect(extGone).toBeGreaterThan(intFlip);
  const store = strictStore();
  store.applyPlan(p1);
  expect(checkConsistent(store)).toStrictEqual([]);
  store.applyPlan(p2, { afterOp: (op, phase) => expect(checkConsistent(store), `${phase} ${formatOp(op)}`).toStrictEqual([]) });
});

test('VIPs follow the ClusterIPs in use (refcounted), added after the masters and deleted before them; source ranges are added before their master and removed after', () => {
  const a = sp('a', ['10.96.0.1'], 80, [['10.244.0.1', 80]]);
  const a2 = sp('a', ['10.96.0.1'], 81, [['10.244.0.1', 80]], 'TCP', { portName: 'x', id: 'ns/a:x/TCP' });
  const p1 = diff(compile(snap([a, a2]), OFF), emptyProgrammedState());
  expect((p1.phases[3] ?? []).map(formatOp)).toContain('update vip4 10.96.0.1');
  expect(p1.next.vips.get('10.96.0.1')).toBe(2);
  const p2 = diff(compile(snap([a2]), OFF), p1.next);
  expect(
    planOps(p2)
      .map(formatOp)
      .filter((o) => o.includes('vip4')),
  ).toStrictEqual([]);
  const p3 = diff(compile(snap([]), OFF), p2.next);
  expect((p3.phases[2] ?? []).map(formatOp)).toContain('delete vip4 10.96.0.1');

  const lb = (ranges: string[]) =>
    sp('lb', ['10.96.0.2'], 443, [['10.244.0.2', 443]], 'TCP', { loadBalancerIPs: ['198.18.2.10'], loadBalancerSourceRanges: ranges });
  const q1 = diff(compile(snap([lb(['203.0.113.0/24'])]), OFF), emptyProgrammedState());
  const svcId = q1.next.services.get('198.18.2.10:443/TCP')?.svcId;
  expect((q1.phases[0] ?? []).map(formatOp)).toContain(`update srcrange4 svc ${svcId} 203.0.113.0/24`);
  const q2 = diff(compile(snap([lb(['198.51.100.0/24'])]), OFF), q1.next);
  expect((q2.phases[0] ?? []).map(formatOp)).toStrictEqual([`update srcrange4 svc ${svcId} 198.51.100.0/24`]);
  expect((q2.phases[3] ?? []).map(formatOp)).toStrictEqual([`delete srcrange4 svc ${svcId} 203.0.113.0/24`]);
  expect(q2.phases[2], 'the master does not change').toStrictEqual([]);
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
  expect(p2.phases[4]?.map(formatOp)).toStrictEqual(['delete backend4 2', 'delete becnt4 2']);
  const p3 = diff(none, p2.next, new Set());
  expect(planOps(p3).length).toBe(0);
  expect(diff(none, p2.next).touched.length, 'full reconcile removes the rest').toBe(1);
});

test('plans always have the five phases, in order', () => {
  const p = diff(compile(snap([]), OFF), emptyProgrammedState());
  expect(p.phases.length).toBe(5);
  expect(formatPlan(p)).toMatch(/\(no ops\)/);
});

test('capacity: frontends that do not fit are reported by Service and retried; what fits is programmed; nothing is emptied', () => {
  // svc4 holds 7 entries: a (1+2), b (1+2) fit; c (1+2) does not.
  const caps = { svc4: 7 };
  const a = sp('a', ['10.96.0.1'], 80, [
    ['10.244.0.1', 80],
    ['10.244.0.2', 80],
  ]);
  const b = sp('b', ['10.96.0.2'], 80, [
    ['10.244.0.3', 80],
    ['10.244.0.4', 80],
  ]);
  const c = sp('c', ['10.96.0.3'], 80, [
    ['10.244.0.5', 80],
    ['10.244.0.6', 80],
  ]);
  const store = strictStore(caps);
  const p1 = diff(compile(snap([a, b, c]), OFF), emptyProgrammedState(), 'all', { capacities: caps });
  expect(p1.problems.map((p) => [p.owner, p.message])).toStrictEqual([
    ['ns/c:/TCP', '10.96.0.3:80/TCP not programmed: map full: svc4 holds 6 of 7 entries, this frontend needs 3 more'],
  ]);
  store.applyPlan(p1);
  expect(p1.next.services.sortedKeys()).toStrictEqual(['10.96.0.1:80/TCP', '10.96.0.2:80/TCP']);
  expect(p1.next.deferred).toStrictEqual(new Set(['10.96.0.3:80/TCP']));
  expect(p1.next.entries.svc4).toBe(6);
  // A change to a: its new generation does not fit next to the old one; a keeps its old version.
  const a2 = sp('a', ['10.96.0.1'], 80, [
    ['10.244.0.1', 80],
    ['10.244.0.9', 80],
  ]);
  const p2 = diff(compile(snap([a2, b, c]), OFF), p1.next, new Set(['10.96.0.1:80/TCP']), { capacities: caps });
  expect(p2.problems.map((p) => p.owner)).toStrictEqual(['ns/a:/TCP', 'ns/c:/TCP']);
  expect(p2.problems[0]?.message).toMatch(/not updated \(the programmed version stays\)/);
  expect(planOps(p2)).toStrictEqual([]);
  store.applyPlan(p2);
  expect(checkConsistent(store)).toStrictEqual([]);
  expect(store.of('svc4').size, 'an overflow never empties the maps').toBe(6);
  // b goes away; the deferred frontends are retried by every later plan, whatever its scope, until they fit.
  let state = diff(compile(snap([a2, c]), OFF), p2.next, new Set(['10.96.0.2:80/TCP']), { capacities: caps });
  store.applyPlan(state);
  for (let i = 0; i < 3 && state.next.deferred.size > 0; i++) {
    state = diff(compile(snap([a2, c]), OFF), state.next, new Set(), { capacities: caps });
    store.applyPlan(state);
    expect(checkConsistent(store)).toStrictEqual([]);
  }
  expect(state.problems).toStrictEqual([]);
  expect(state.next.services.sortedKeys()).toStrictEqual(['10.96.0.1:80/TCP', '10.96.0.3:80/TCP']);
  expect(state.next.deferred.size).toBe(0);
  expect(store.of('svc4').size).toBe(6);
  expect(state.next.entries.svc4).toBe(6);
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

const FRONT_IPS = ['10.96.0.1', '10.96.0.2', '10.96.0.3', '10.96.0.10', 'fd00:10:96::1', 'fd00:10:96::2', '10.96.0.x'];
const BACK_IPS = ['10.244.0.1', '10.244.0.2', '10.244.0.3', '10.244.1.1', '10.244.1.20', 'fd00:10:244::2', 'fd00:10:244::3', '10.244.0.01'];
const NODES = [TEST_NODE, 'node-b', null];

function randomServicePort(r: () => number, i: number): ServicePortInfo {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const proto: Protocol = i % 4 === 0 ? 'UDP' : i % 7 === 0 ? 'SCTP' : 'TCP';
  const ips = [pick(FRONT_IPS)];
  if (r() < 0.2) ips.push(pick(FRONT_IPS));
  const eps = [];
  const n = Math.floor(r() * 6);
  for (let e = 0; e < n; e++) {
    const ip = pick(BACK_IPS);
    const port = r() < 0.8 ? 8080 : 8081;
    eps.push(endpoint(ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`, pick(NODES)));
  }
  const more: Partial<ServicePortInfo> = {};
  const m = more as { -readonly [K in keyof ServicePortInfo]?: ServicePortInfo[K] };
  if (r() < 0.3) m.nodePort = 30000 + (i % 3);
  if (r() < 0.2) m.externalIPs = [r() < 0.5 ? '198.18.1.10' : 'fd00:198:18::10'];
  if (r() < 0.25) {
    m.loadBalancerIPs = [r() < 0.5 ? '198.18.2.10' : 'fd00:198:18::20'];
    if (r() < 0.6) m.loadBalancerSourceRanges = r() < 0.5 ? ['203.0.113.0/24'] : ['198.51.100.0/24', 'fd00:1::/48'];
  }
  if (r() < 0.3) m.externalPolicyLocal = true;
  if (r() < 0.3) m.sessionAffinity = { timeoutSeconds: r() < 0.5 ? 10800 : 30 };
  if (r() < 0.3) m.lbAlgorithm = r() < 0.7 ? 'maglev' : 'random';
  return servicePortInfo({ name: `s${i}`, clusterIPs: ips, port: r() < 0.7 ? 80 : 443, endpoints: eps, protocol: proto, ...more });
}

/** What a packet can see: "frontend scope" -> "action flags [backends...]", from the maps alone. */
function packetView(store: FakeMapStore): Map<string, string> {
  const view = new Map<string, string>();
  for (const [svcMap, backendMap] of [
    ['svc4', 'backend4'],
    ['svc6', 'backend6'],
  ] as const) {
    const backends = new Map(decodeEntries(backendMap, store.of(backendMap).dump()).map(([id, b]) => [id, l4Key(b)]));
    const slots = new Map<string, number>();
    const masters: Array<[string, number, number, number, number]> = [];
    for (const [key, val] of decodeEntries(svcMap, store.of(svcMap).dump())) {
      const fk = `${l4Key(key)} ${key.scope}`;
      if (key.slot === 0 && key.gen === 0) masters.push([fk, val.gen, val.count, val.flags, val.action]);
      else slots.set(`${fk} ${key.gen} ${key.slot}`, val.backendId);
    }
    for (const [fk, gen, count, flags, action] of masters) {
      const seen: string[] = [];
      for (let s = 1; s <= count; s++) {
        const id = slots.get(`${fk} ${gen} ${s}`);
        seen.push(id === undefined ? 'MISSING-SLOT' : (backends.get(id) ?? 'MISSING-BACKEND'));
      }
      view.set(fk, `${action} ${flags} [${seen.join(', ')}]`);
    }
  }
  return view;
}

function desiredView(d: DesiredState, deferred: ReadonlySet<FrontendKey>): Map<string, string> {
  const view = new Map<string, string>();
  for (const [k, s] of d.services) {
    if (deferred.has(k)) continue;
    view.set(`${k} 0`, scopeText(s.internal));
    if (s.external !== null) view.set(`${k} 1`, scopeText(s.external));
  }
  return view;
}

/** packetView with the VIPs ("vip <addr>"), which decide what happens to a packet without a master. */
function verdictView(store: FakeMapStore): Map<string, string> {
  const view = packetView(store);
  for (const vip of ['vip4', 'vip6'] as const) for (const [k] of decodeEntries(vip, store.of(vip).dump())) view.set(`vip ${k.addr}`, 'present');
  return view;
}

function applyChecked(store: FakeMapStore, plan: Plan, ctx: string): void {
  const before = verdictView(store);
  const seen: Array<[string, Map<string, string>]> = [];
  store.applyPlan(plan, {
    afterOp: (op, phase) => {
      expect(checkConsistent(store), `${ctx}: after ${phase} ${formatOp(op)}`).toStrictEqual([]);
      seen.push([`${phase} ${formatOp(op)}`, verdictView(store)]);
    },
  });
  const after = verdictView(store);
  for (const [where, view] of seen) {
    for (const fk of new Set([...before.keys(), ...after.keys(), ...view.keys()])) {
      if (fk.startsWith('vip ')) continue;
      const v = verdict(view, fk);
      expect(v === verdict(before, fk) || v === verdict(after, fk), `${ctx}: ${fk} after ${where} sees ${v}`).toBeTruthy();
    }
  }
}

/**
 * What the program does with a packet to a frontend key (internal scope):
 * its master's translation; without one, a drop (DROP_NO_PORT) when the
 * address is a known ClusterIP, else nothing (the packet goes on, as to
 * kube-proxy's rules during a migration).
 */
function verdict(view: ReadonlyMap<string, string>, fk: string): string | undefined {
  const v = view.get(fk);
  if (v !== undefined || !fk.endsWith(' 0')) return v;
  const addr = fk.startsWith('[') ? fk.slice(1, fk.indexOf(']')) : fk.slice(0, fk.indexOf(':'));
  return view.has(`vip ${addr}`) ? 'DROP_NO_PORT' : undefined;
}

/** The ids allocated by a plan are, in order, the lowest ids neither in use nor quarantined in `current` at `now`. */
function assertLowestIds(plan: Plan, current: ProgrammedState, now: number, ctx: string): void {
  for (const family of FAMILIES) {
    const map = family === 'IPv4' ? 'backend4' : 'backend6';
    const allocated = (plan.phases[0] ?? []).flatMap((op: Op) => (op.map === map && op.action === 'update' ? [op.key] : []));
    const b = current.backends[family];
    const released = new Set(b.quarantine.filter((q) => q.until <= now).map((q) => q.id));
    const expected: number[] = [];
    for (let id = 1; expected.length < allocated.length; id++) if (!b.ids.has(id) || released.has(id)) expected.push(id);
    expect(allocated, `${ctx}: ${family} backend ids`).toStrictEqual(expected);
  }
}

test('random walk: incremental compile + scoped diff + apply stays correct at every op', () => {
  const SEEDS = 6;
  const STEPS = 40;
  const seen = {
    conflicts: 0,
    problems: 0,
    flips: 0,
    removals: 0,
    backendDeletes: 0,
    shared: 0,
    masterOnly: 0,
    emptyPlans: 0,
    ipv6: 0,
    external: 0,
    ranges: 0,
    reuse: 0,
    affinityAdds: 0,
    affinityDeletes: 0,
    maglevTables: 0,
  };
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = mulberry32(seed);
    const ports = new Map<string, ServicePortInfo>();
    const store = strictStore();
    let programmed = emptyProgrammedState();
    let desired: DesiredState | undefined;
    let masqueradeAll = false;
    let detector = false;
    let maglevAll = false;
    for (let step = 0; step < STEPS; step++) {
      const ctx = `seed ${seed} step ${step}`;
      const now = step * 30_000;
      const changed = new Set<string>();
      for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
        const i = Math.floor(r() * 10);
        const next = randomServicePort(r, i);
        if (r() < 0.25) ports.delete(next.id);
        else ports.set(next.id, next);
        changed.add(next.id);
      }
      if (r() < 0.05) masqueradeAll = !masqueradeAll;
      if (r() < 0.05) detector = !detector;
      if (r() < 0.05) maglevAll = !maglevAll;
      const full = step % 10 === 9;
      const snapshot: ProxySnapshot = { nodeName: TEST_NODE, servicePorts: new Map(ports), changed: full ? 'all' : changed };
      const opts: CompileOptions = compileOptions({
        masqueradeAll,
        localCIDRs: detector ? ['10.244.0.0/16', 'fd00:10:244::/56'] : [],
        nodeIPs: ['198.18.0.1', 'fd00:198:18::1'],
        lbAlgorithm: maglevAll ? 'maglev' : 'random',
        maglevTableSize: 7,
      });

      const next: DesiredState = desired === undefined ? compile(snapshot, opts) : compileChanged(desired, snapshot, opts);
      const reference = compile(snapshot, opts);
      expect(plainDesired(next), `${ctx}: compileChanged == compile`).toStrictEqual(plainDesired(reference));
      if (desired !== undefined && next.changed !== 'all') {
        for (const k of new Set([...desired.services.keys(), ...next.services.keys()])) {
          const same = JSON.stringify(desired.services.get(k)) === JSON.stringify(next.services.get(k));
          expect(same || next.changed.has(k), `${ctx}: ${k} changed but is not in desired.changed`).toBeTruthy();
        }
      }

      const plan = diff(next, programmed, next.changed, { nowMs: now });
      expect(plan.phases, `${ctx}: deterministic`).toStrictEqual(diff(next, programmed, next.changed, { nowMs: now }).phases);
      expect(plan.problems, `${ctx}: default capacities hold it all`).toStrictEqual([]);
      assertLowestIds(plan, programmed, now, ctx);
      applyChecked(store, plan, ctx);

      expect(packetView(store), `${ctx}: maps hold the desired state`).toStrictEqual(desiredView(next, plan.next.deferred));
      const adopted = programmedFromDump(storeDumps(store));
      expect(adopted.orphans.map(formatOp), `${ctx}: no orphans`).toStrictEqual([]);
      expect(plainAdoptable(adopted.state), `${ctx}: adopt == plan.next`).toStrictEqual(plainAdoptable(plan.next));
      expect(planOps(diff(next, plan.next, 'all', { nowMs: now })).length, `${ctx}: nothing left for a full reconcile`).toBe(0);
      for (const family of FAMILIES) {
        for (const b of plan.next.backends[family].byId.values()) expect(b.refs, `${ctx}: backend ${b.id} unreferenced`).toBeGreaterThanOrEqual(1);
      }
      const vipsInMaps = decodeEntries('vip4', store.of('vip4').dump()).length + decodeEntries('vip6', store.of('vip6').dump()).length;
      expect(vipsInMaps, `${ctx}: one VIP per ClusterIP in use`).toBe(plan.next.vips.size);

      seen.conflicts += next.problems.filter((p) => p.field === 'frontend').length;
      seen.problems += next.problems.length;
      seen.removals += (plan.phases[3] ?? []).filter((op) => op.action === 'delete' && (op.map === 'svc4' || op.map === 'svc6') && op.key.slot === 0).length;
      seen.backendDeletes += (plan.phases[4] ?? []).length;
      seen.ipv6 += planOps(plan).filter((op) => op.map === 'svc6').length;
      seen.external += planOps(plan).filter((op) => (op.map === 'svc4' || op.map === 'svc6') && op.key.scope === 1).length;
      seen.ranges += planOps(plan).filter((op) => op.map === 'srcrange4' || op.map === 'srcrange6').length;
      seen.affinityAdds += planOps(plan).filter((op) => op.map === 'affbe' && op.action === 'update').length;
      seen.affinityDeletes += planOps(plan).filter((op) => op.map === 'affbe' && op.action === 'delete').length;
      seen.maglevTables += planOps(plan).filter((op) => op.map === 'maglev' && op.action === 'update' && op.key.index === 0).length;
      seen.reuse += FAMILIES.filter((f) => programmed.backends[f].quarantine.some((q) => q.until <= now)).length;
      for (const f of FAMILIES) seen.shared += [...plan.next.backends[f].byId.values()].filter((b) => b.refs > 1).length;
      seen.emptyPlans += planOps(plan).length === 0 ? 1 : 0;
      for (const k of plan.touched) {
        const was = programmed.services.get(k);
        const now2 = plan.next.services.get(k);
        if (was !== undefined && now2 !== undefined) {
          if (was.internal.gen !== now2.internal.gen) seen.flips++;
          else seen.masterOnly++;
        }
      }
      programmed = plan.next;
      desired = next;
    }
  }
  // The walk must have exercised every interesting case, not just passed vacuously.
  for (const [what, n] of Object.entries(seen)) expect(n, `random walk never saw: ${what}`).toBeGreaterThan(0);
  console.log(`# random walk: ${JSON.stringify(seen)}`);
}, 180_000);
