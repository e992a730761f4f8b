// Golden tests of the BPF sync path: snapshot -> compile -> diff -> plan,
// applied op by op to the fake maps. Each golden file holds, per step, the
// plan and the canonical dump of the maps after it (vitest file snapshots).
// Regenerate after a deliberate change with
//   npx vitest run --project unit test/unit/bpf-golden.test.ts -u
// and review the diff of test/unit/golden/ before committing.
//
// Besides the goldens, every step checks (Rig.sync):
// - after every single op and every phase, checkConsistent() holds (or,
//   when the maps start damaged, finds nothing new), and every frontend
//   resolves to exactly its old or its new set of backends (a packet never
//   sees a half-written Service);
// - adopting the dumped maps gives back plan.next (but for quarantined ids,
//   which only the running daemon knows), with no orphans.

import { expect, test } from 'vitest';
import type { Protocol, ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';
import { programmedFromDump } from '../../src/dataplane/bpf/adopt.ts';
import { type CompileOptions, compile, compileChanged, compileOptions } from '../../src/dataplane/bpf/compile.ts';
import { diff, formatOp, formatPlan } from '../../src/dataplane/bpf/diff.ts';
import { checkConsistent, type FakeMapStore, resolveFrontends, storeDumps, strictStore } from '../support/fake-maps.ts';
import { encode, MAPS, svc4KeyCodec, svcValueCodec, trafficCodec, u32Codec, ZERO_TRAFFIC } from '../../src/dataplane/bpf/layout.ts';
import { emptyProgrammedState } from '../../src/dataplane/bpf/state.ts';
import { programmedToPlain } from '../support/plain-state.ts';
import type { DesiredState, FrontendKey, Plan, ProgrammedState } from '../../src/dataplane/bpf/state.ts';
import { endpoint, servicePortInfo, TEST_NODE } from '../support/snapshots.ts';

// ---------------------------------------------------------------------------
// Input builders.

/** A ServicePort; id "ns/name:portName/PROTO" as the model builds it; endpoints on another node. */
function sp(
  ns: string,
  name: string,
  portName: string,
  protocol: Protocol,
  clusterIPs: string[],
  port: number,
  eps: Array<[string, number]>,
  more: Partial<ServicePortInfo> = {},
): ServicePortInfo {
  const endpoints = eps.map(([ip, p]) => endpoint(ip.includes(':') ? `[${ip}]:${p}` : `${ip}:${p}`, 'node-b'));
  return servicePortInfo({ namespace: ns, name, portName, protocol, clusterIPs, port, endpoints, ...more });
}

/** The same ServicePort with other endpoints (derived sets recomputed). */
function withEndpoints(s: ServicePortInfo, eps: ServicePortInfo['endpoints']): ServicePortInfo {
  return servicePortInfo({
    ...s,
    endpoints: eps,
    clusterEndpoints: undefined,
    clusterPolicyEndpoints: undefined,
    allEndpoints: undefined,
    localEndpoints: undefined,
    externalEndpoints: undefined,
    hasAnyEndpoints: undefined,
    usesClusterEndpoints: undefined,
    usesLocalEndpoints: undefined,
    topologyMode: undefined,
  });
}

function snapshot(sps: ServicePortInfo[], changed: ReadonlySet<string> | 'all' = 'all'): ProxySnapshot {
  return { nodeName: TEST_NODE, servicePorts: new Map(sps.map((s) => [s.id, s])), changed };
}

// ---------------------------------------------------------------------------
// What a packet would see: per frontend master, the backends of its live slots.

function packetView(store: FakeMapStore): Map<string, string> {
  const flags = new Map<string, number>();
  for (const m of [store.of('svc4'), store.of('svc6')]) {
    for (const [k, v] of m.dump()) {
      const svcKey = (k.length === 12 ? MAPS.svc4 : MAPS.svc6).keyCodec.decode(k);
      if (svcKey.slot !== 0 || svcKey.gen !== 0) continue;
      const fk = `${svcKey.addr.includes(':') ? `[${svcKey.addr}]` : svcKey.addr}:${svcKey.port}/${svcKey.proto} ${svcKey.scope ? 'ext' : 'int'}`;
      flags.set(fk, svcValueCodec.decode(v).flags);
    }
  }
  const view = new Map<string, string>();
  for (const [fk, backends] of Object.entries(resolveFrontends(storeDumps(store)))) view.set(fk, `[${backends.join(', ')}] flags ${flags.get(fk)}`);
  return view;
}

/** A ProgrammedState without what adopt cannot know (quarantined ids). */
function plain(s: ProgrammedState): unknown {
  const p = programmedToPlain(s) as { backends: Record<string, { ids: unknown }>; svcIds: unknown };
  for (const f of Object.values(p.backends)) f.ids = null;
  p.svcIds = null;
  return p;
}

class Rig {
  readonly store = strictStore();
  programmed: ProgrammedState = emptyProgrammedState();
  desired: DesiredState | undefined;
  private readonly out: string[] = [];

  /**
   * One sync: compile (incrementally when snap.changed is a set and there
   * is a previous state), diff over `scope` (default: what compile says
   * changed), apply op by op with the invariants checked.
   */
  sync(title: string, snap: ProxySnapshot, opts: { scope?: ReadonlySet<FrontendKey> | 'all'; options?: Partial<CompileOptions> } = {}): Plan {
    const copts = compileOptions(opts.options);
    const desired = this.desired !== undefined && snap.changed !== 'all' ? compileChanged(this.desired, snap, copts) : compile(snap, copts);
    const plan = diff(desired, this.programmed, opts.scope ?? desired.changed);
    this.apply(plan);
    this.programmed = plan.next;
    this.desired = desired;
    const problems = desired.problems.map((p) => `  ${p.owner} ${p.field}: ${p.message}`);
    this.out.push(
      `## ${title}`,
      `touched: ${plan.touched.join(' ') || '-'}`,
      ...(problems.length > 0 ? ['problems:', ...problems] : []),
      formatPlan(plan).trimEnd(),
      this.store.dumpCanonical(),
    );
    return plan;
  }

  /** Applies a plan op by op, checking what a packet can see after each. */
  apply(plan: Plan): void {
    const before = packetView(this.store);
    const damage = new Set(checkConsistent(this.store)); // only adopt-damage tests start with any
    const views: Array<[string, Map<string, string>]> = [];
    const check = (where: string): void => {
      const fresh = checkConsistent(this.store).filter((v) => !damage.has(v));
      expect(fresh, `inconsistent ${where}`).toStrictEqual([]);
      views.push([where, packetView(this.store)]);
    };
    this.store.applyPlan(plan, { afterOp: (op, phase) => check(`after ${phase} op ${formatOp(op)}`), afterPhase: (phase) => check(`after phase ${phase}`) });
    const after = packetView(this.store);
    for (const [where, view] of views) {
      for (const fk of new Set([...view.keys(), ...before.keys(), ...after.keys()])) {
        const v = view.get(fk);
        const ok = v === before.get(fk) || v === after.get(fk);
        expect(ok, `${fk} ${where}: sees ${v}, neither before (${before.get(fk)}) nor after (${after.get(fk)})`).toBe(true);
      }
    }
    const adopted = programmedFromDump(storeDumps(this.store));
    expect(adopted.orphans, 'a finished plan leaves no orphans').toStrictEqual([]);
    expect(plain(adopted.state), 'plan.next is what the maps hold').toStrictEqual(plain(plan.next));
  }

  note(line: string): void {
    this.out.push(line);
  }

  text(): string {
    return this.out.join('\n');
  }
}

// ---------------------------------------------------------------------------
// Scenarios.

const dnsPorts = (eps: Array<[string, number]>): ServicePortInfo[] => [
  sp('kube-system', 'kube-dns', 'dns', 'UDP', ['10.96.0.10', 'fd00:10:96::a'], 53, eps),
  sp('kube-system', 'kube-dns', 'dns-tcp', 'TCP', ['10.96.0.10', 'fd00:10:96::a'], 53, eps),
  sp(
    'kube-system',
    'kube-dns',
    'metrics',
    'TCP',
    ['10.96.0.10', 'fd00:10:96::a'],
    9153,
    eps.map(([ip]) => [ip, 9153]),
  ),
];

test('golden: one Service with several ports (TCP+UDP, named ports, dual-stack)', async () => {
  const rig = new Rig();
  const eps: Array<[string, number]> = [
    ['10.244.2.7', 53],
    ['10.244.1.5', 53],
    ['fd00:10:244:1::5', 53],
  ];
  const plan = rig.sync('kube-dns: 3 ports, 2 IPv4 endpoints and 1 IPv6, a ClusterIP of each family', snapshot(dnsPorts(eps)));
  expect(plan.touched).toStrictEqual([
    '10.96.0.10:53/TCP',
    '10.96.0.10:53/UDP',
    '10.96.0.10:9153/TCP',
    '[fd00:10:96::a]:53/TCP',
    '[fd00:10:96::a]:53/UDP',
    '[fd00:10:96::a]:9153/TCP',
  ]);
  expect(plan.next.backends.IPv4.byKey.size, '(ip, port, proto) distinct: 53/UDP, 53/TCP, 9153/TCP per endpoint').toBe(6);
  expect(plan.next.backends.IPv6.byKey.size).toBe(3);
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-multiport.txt');
});

test('golden: a backend shared by two Services is one id, refcounted', async () => {
  const rig = new Rig();
  const a = sp('shop', 'front', 'http', 'TCP', ['10.96.0.20'], 80, [
    ['10.244.1.10', 8080],
    ['10.244.1.11', 8080],
  ]);
  const b = sp('shop', 'front-canary', 'http', 'TCP', ['10.96.0.21'], 80, [
    ['10.244.1.10', 8080],
    ['10.244.2.20', 8080],
  ]);
  const p1 = rig.sync('two Services share 10.244.1.10:8080', snapshot([a, b]));
  const shared = p1.next.backends.IPv4.byKey.get(p1.next.backends.IPv4.byKey.sortedKeys()[0] as number);
  expect(shared?.backend.addr).toBe('10.244.1.10');
  expect(shared?.refs).toBe(2);
  expect(p1.phases[0]?.filter((op) => op.map === 'backend4').length, 'three backends, not four').toBe(3);

  const p2 = rig.sync('front-canary removed: its master first, then its slots; the shared backend stays', snapshot([a], new Set([b.id])));
  expect(
    p2.phases[4]?.map((op) => formatOp(op)),
    'only the canary-only backend goes (with its counters)',
  ).toStrictEqual(['delete backend4 3', 'delete becnt4 3']);
  expect(p2.next.backends.IPv4.byId.get(shared?.id ?? -1)?.refs).toBe(1);
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-shared-backend.txt');
});

test('golden: an endpoint removed flips the generation, deletes old slots and the backend', async () => {
  const rig = new Rig();
  const eps: Array<[string, number]> = [
    ['10.244.1.10', 8080],
    ['10.244.1.11', 8080],
    ['10.244.2.12', 8080],
  ];
  const web = (e: Array<[string, number]>) => sp('web', 'web', '', 'TCP', ['10.96.0.30'], 80, e);
  rig.sync('web with 3 endpoints', snapshot([web(eps)]));
  const p = rig.sync('10.244.1.11 removed', snapshot([web([eps[0], eps[2]] as Array<[string, number]>)], new Set(['web/web:/TCP'])));
  expect(p.next.services.get('10.96.0.30:80/TCP')?.internal.gen).toBe(1);
  rig.sync('10.244.1.11 back: flips to gen 0, gets a new id (2 is quarantined)', snapshot([web(eps)], new Set(['web/web:/TCP'])));
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-endpoint-removed.txt');
});

test('golden: a Service removed: master deleted first, then slots, then backends', async () => {
  const rig = new Rig();
  const api = sp('api', 'api', 'grpc', 'TCP', ['10.96.0.40'], 9090, [
    ['10.244.1.20', 9090],
    ['10.244.1.21', 9090],
  ]);
  const keep = sp('api', 'other', '', 'UDP', ['10.96.0.41'], 5353, [['10.244.1.30', 5353]]);
  rig.sync('api and other', snapshot([api, keep]));
  const p = rig.sync('api removed', snapshot([keep], new Set([api.id])));
  const deletes = p.phases[3] ?? [];
  expect(formatOp(deletes[0] as never)).toBe('delete svc4 10.96.0.40:9090/TCP int master');
  expect(
    p.next.svcQuarantine.map((q) => q.id),
    'svc id 1 freed, quarantined',
  ).toStrictEqual([1]);
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-service-removed.txt');
});

test('golden: an unchanged Service produces no ops (incremental and full resync)', async () => {
  const rig = new Rig();
  const s = sp('web', 'web', 'http', 'TCP', ['10.96.0.50'], 80, [
    ['10.244.1.50', 8080],
    ['10.244.1.51', 8080],
  ]);
  rig.sync('web', snapshot([s]));
  const p1 = rig.sync('same snapshot, web listed as changed', snapshot([s], new Set([s.id])));
  const p2 = rig.sync('full resync of the same snapshot', snapshot([s]));
  const reordered = { ...s, clusterEndpoints: [...s.clusterEndpoints].reverse(), clusterPolicyEndpoints: [...s.clusterPolicyEndpoints].reverse() };
  const p3 = rig.sync('same endpoints in another order', snapshot([reordered], new Set([s.id])));
  for (const p of [p1, p2, p3]) {
    expect(p.phases.flat().length).toBe(0);
    expect(p.touched).toStrictEqual([]);
  }
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-unchanged.txt');
});

test('golden: scope limits the ops to the changed Service', async () => {
  const rig = new Rig();
  const a = (port: number) => sp('ns', 'a', '', 'TCP', ['10.96.0.60'], 80, [['10.244.1.60', port]]);
  const b = (port: number) => sp('ns', 'b', '', 'TCP', ['10.96.0.61'], 80, [['10.244.1.61', port]]);
  rig.sync('a and b', snapshot([a(8080), b(8080)]));
  // Both changed in the snapshot, only a is in scope: b's entries stay untouched.
  const p = rig.sync('a and b both change; diff scoped to a', snapshot([a(8081), b(8081)]), { scope: new Set(['10.96.0.60:80/TCP']) });
  expect(p.touched).toStrictEqual(['10.96.0.60:80/TCP']);
  for (const op of p.phases.flat())
    expect(op.map.startsWith('backend') || op.map.startsWith('becnt') || formatOp(op).includes('10.96.0.60:80/TCP'), formatOp(op)).toBe(true);
  // The incremental path: only b listed as changed, compileChanged scopes the diff itself.
  const p2 = rig.sync('b listed as changed: compileChanged scopes the diff to b', snapshot([a(8081), b(8081)], new Set(['ns/b:/TCP'])));
  expect(p2.touched).toStrictEqual(['10.96.0.61:80/TCP']);
  const p3 = rig.sync('full reconcile: nothing left to do', snapshot([a(8081), b(8081)]));
  expect(p3.phases.flat().length).toBe(0);
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-scope.txt');
});

test('golden: masqueradeAll flips flags on the master alone', async () => {
  const rig = new Rig();
  const s = sp('web', 'web', '', 'TCP', ['10.96.0.70'], 80, [['10.244.1.70', 8080]]);
  rig.sync('web', snapshot([s]));
  const p = rig.sync('masqueradeAll on: same slots, new flags', snapshot([s]), { options: { masqueradeAll: true } });
  expect(p.phases.flat().length).toBe(1);
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-flags.txt');
});

test('golden: adopt after a restart: same desired state, zero ops', async () => {
  const rig = new Rig();
  const web = sp('web', 'web', 'http', 'TCP', ['10.96.0.80'], 80, [
    ['10.244.1.80', 8080],
    ['10.244.1.81', 8080],
  ]);
  const dns = dnsPorts([['10.244.2.7', 53]]);
  rig.sync('before the restart', snapshot([web, ...dns]));
  const web2 = withEndpoints(web, web.endpoints.slice(1));
  rig.sync('web loses an endpoint: gen 1', snapshot([web2, ...dns], new Set([web.id])));

  // "Restart": a new process knows nothing but the pinned maps.
  const adopted = programmedFromDump(storeDumps(rig.store));
  expect(adopted.orphans).toStrictEqual([]);
  const desired = compile(snapshot([web2, ...dns]), compileOptions());
  const plan = diff(desired, adopted.state);
  expect(plan.phases.flat().length, formatPlan(plan)).toBe(0);
  expect(plain(adopted.state)).toStrictEqual(plain(rig.programmed));
  const st = adopted.state;
  rig.note('## restart: adopt the pinned maps, diff against the same desired state');
  rig.note(`adopted: ${st.services.size} frontends, ${st.backends.IPv4.byId.size}+${st.backends.IPv6.byId.size} backends, ${adopted.orphans.length} orphans`);
  for (const k of st.services.sortedKeys()) {
    const s = st.services.get(k);
    rig.note(`  ${k} svc ${s?.svcId} gen ${s?.internal.gen} flags ${s?.internal.flags} backends [${s?.internal.backendIds.join(', ')}]`);
  }
  rig.note(formatPlan(plan));
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-adopt.txt');
});

test('golden: adopt after a crash in the middle of a plan', async () => {
  const rig = new Rig();
  const web = (eps: Array<[string, number]>) => sp('web', 'web', '', 'TCP', ['10.96.0.90'], 80, eps);
  const gone = sp('web', 'gone', '', 'TCP', ['10.96.0.91'], 80, [['10.244.1.99', 8080]]);
  rig.sync('before', snapshot([web([['10.244.1.90', 8080]]), gone]));

  // Older damage: a slot beyond count, and a master key with gen 1 (diff never writes one).
  const v = { count: 0, gen: 0, action: 0, flags: 0, affinityTimeoutS: 0, maglevM: 0 } as const;
  rig.store.applyOps([
    { map: 'svc4', action: 'update', key: { addr: '10.96.0.90', port: 80, proto: 'TCP', scope: 0, gen: 0, slot: 5 }, value: { ...v, backendId: 1, svcId: 0 } },
    { map: 'svc4', action: 'update', key: { addr: '10.96.0.92', port: 80, proto: 'TCP', scope: 0, gen: 1, slot: 0 }, value: { ...v, backendId: 0, svcId: 9 } },
  ]);
  // The next plan dies after phase 2 (new backends and gen-1 slots written, master not flipped)...
  const next = snapshot([
    web([
      ['10.244.1.91', 8080],
      ['10.244.1.92', 8080],
    ]),
  ]);
  const plan = diff(compile(next, compileOptions()), rig.programmed);
  for (const ops of plan.phases.slice(0, 2)) rig.store.applyOps(ops, () => expect(checkConsistent(rig.store)).toStrictEqual([]));
  // ...when the removal of `gone` had got as far as its master (phase 4 is master-first).
  rig.store.applyOps([{ map: 'svc4', action: 'delete', key: { addr: '10.96.0.91', port: 80, proto: 'TCP', scope: 0, gen: 0, slot: 0 } }]);
  const crashed = rig.store.dumpCanonical();

  const adopted = programmedFromDump(storeDumps(rig.store));
  rig.note('## crashed after phase 2 of the next plan and after deleting the master of 10.96.0.91; plus a slot beyond count and a gen-1 master key');
  rig.note(crashed);
  rig.note('## orphans found by adopt');
  rig.note(`${adopted.orphans.map((op) => `  ${formatOp(op)}`).join('\n')}\n`);
  rig.store.applyOps(adopted.orphans, () => expect(checkConsistent(rig.store)).toStrictEqual([]));
  rig.programmed = adopted.state;
  rig.desired = undefined;
  rig.sync('first sync after restart (full)', next);
  expect(rig.programmed.backends.IPv4.byId.size).toBe(2);
  expect(rig.store.dumpCanonical()).toMatch(/^sy_backend4_v2 \(2\):\n {2}2 = 10\.244\.1\.91/);
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-adopt-crash.txt');
});

test('golden: adopt a damaged frontend: a missing slot and a dangling backend id are repaired', async () => {
  const rig = new Rig();
  const web = sp('web', 'web', '', 'TCP', ['10.96.0.100'], 80, [
    ['10.244.1.100', 8080],
    ['10.244.1.101', 8080],
    ['10.244.1.102', 8080],
  ]);
  rig.sync('web with 3 endpoints', snapshot([web]));
  // Traffic to each backend: the datapath made their counter entries.
  for (const id of [1, 2, 3]) rig.store.of('becnt4').update(encode(u32Codec, id), encode(trafficCodec, ZERO_TRAFFIC));
  // Damage no plan makes: slot 3 gone, and backend 1 (slot 1's) gone.
  rig.store.of('svc4').delete(encode(svc4KeyCodec, { addr: '10.96.0.100', port: 80, proto: 'TCP', scope: 0, gen: 0, slot: 3 }));
  rig.store.of('backend4').delete(encode(u32Codec, 1));
  expect(checkConsistent(rig.store)).toStrictEqual([
    '10.96.0.100:80/TCP int: gen 0 slot 1 points at missing backend 1',
    '10.96.0.100:80/TCP int: gen 0 slot 3 of 3 missing',
  ]);
  rig.note('## damaged: slot 3 deleted, backend 1 deleted');
  rig.note(rig.store.dumpCanonical());
  const adopted = programmedFromDump(storeDumps(rig.store));
  // Slot 3 was the only reference to backend 3: an orphan now, as are the counters of backends 1 and 3.
  expect(adopted.orphans.map(formatOp)).toStrictEqual(['delete backend4 3', 'delete becnt4 1', 'delete becnt4 3']);
  rig.note('## orphans found by adopt');
  rig.note(`${adopted.orphans.map((op) => `  ${formatOp(op)}`).join('\n')}\n`);
  rig.store.applyOps(adopted.orphans);
  expect(adopted.state.services.get('10.96.0.100:80/TCP')?.internal.backendIds).toStrictEqual([1, 2, 0]);
  expect(adopted.state.services.get('10.96.0.100:80/TCP')?.internal.backendKeys.map((k) => k === -1)).toStrictEqual([true, false, true]);
  rig.programmed = adopted.state;
  rig.desired = undefined;
  // The strict store answers ENOENT to a delete of a missing key: the plan must not issue one.
  const p = rig.sync('first sync after adopting: rewritten in gen 1; the missing slot is not deleted', snapshot([web]));
  expect(p.phases[3]?.map(formatOp)).toStrictEqual(['delete svc4 10.96.0.100:80/TCP int gen 0 slot 1', 'delete svc4 10.96.0.100:80/TCP int gen 0 slot 2']);
  expect(checkConsistent(rig.store), 'repaired').toStrictEqual([]);
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-adopt-damaged.txt');
});

test('golden: every frontend kind: NodePort on both families, ExternalIP, LoadBalancer IP with source ranges, externalTrafficPolicy Local', async () => {
  const rig = new Rig();
  const options: Partial<CompileOptions> = { nodeIPs: ['198.18.0.1', 'fd00:198:18::1'], localCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'] };
  const eps = [endpoint('10.244.1.5:8443', TEST_NODE), endpoint('10.244.2.5:8443', 'node-b'), endpoint('[fd00:10:244:1::5]:8443', TEST_NODE)];
  const lb = servicePortInfo({
    namespace: 'shop',
    name: 'lb',
    portName: 'https',
    clusterIPs: ['10.96.0.110', 'fd00:10:96::6e'],
    port: 443,
    nodePort: 30443,
    externalIPs: ['198.18.1.10'],
    loadBalancerIPs: ['198.18.2.10', 'fd00:198:18::20'],
    loadBalancerSourceRanges: ['203.0.113.0/24', 'fd00:1::/48'],
    endpoints: eps,
  });
  rig.sync('one LoadBalancer Service, dual-stack, externalTrafficPolicy Cluster', snapshot([lb]), { options });
  const local = servicePortInfo({
    ...lb,
    externalPolicyLocal: true,
    clusterEndpoints: undefined,
    clusterPolicyEndpoints: undefined,
    localEndpoints: undefined,
    externalEndpoints: undefined,
    allEndpoints: undefined,
    hasAnyEndpoints: undefined,
    usesClusterEndpoints: undefined,
    usesLocalEndpoints: undefined,
    topologyMode: undefined,
  });
  const p = rig.sync(
    'externalTrafficPolicy Local: external scopes with the local endpoints, written before the internal masters point at them',
    snapshot([local], new Set([lb.id])),
    { options },
  );
  expect(p.phases[2]?.some((op) => (op.map === 'svc4' || op.map === 'svc6') && op.key.scope === 1)).toBe(true);
  const noEndpoints = withEndpoints(lb, []);
  rig.sync('no endpoints: REJECT everywhere, external scopes gone', snapshot([noEndpoints], new Set([lb.id])), { options });
  rig.sync('Service removed: VIPs and source ranges go with it', snapshot([], new Set([lb.id])), { options });
  expect(rig.store.dumpCanonical()).not.toMatch(/sy_vip|sy_srcrange/);
  await expect(rig.text()).toMatchFileSnapshot('./golden/bpf-frontend-kinds.txt');
});
