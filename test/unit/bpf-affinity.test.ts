// Session affinity in the control plane: what diff writes to sy_aff_be_v2
// (and when, relative to the masters), what adopt mends there, and which
// affinity entries the daemon deletes after a sync (affinity.ts).

import { expect, test } from 'vitest';
import type { ServicePortInfo } from '../../src/model/types.ts';
import { programmedFromDump } from '../../src/dataplane/bpf/adopt.ts';
import { compile, compileOptions } from '../../src/dataplane/bpf/compile.ts';
import { diff, formatOp, planOps } from '../../src/dataplane/bpf/diff.ts';
import { allMembers, lostMembers, staleAffinityKeys } from '../../src/dataplane/bpf/affinity.ts';
import { type AffKey, type AffValue, encode, MAPS, type Op } from '../../src/dataplane/bpf/layout.ts';
import { emptyProgrammedState, PHASE_NAMES, type Plan, type ProgrammedState } from '../../src/dataplane/bpf/state.ts';
import { FakeMapStore, storeDumps } from '../support/fake-maps.ts';
import { endpoint, servicePortInfo, snapshot, TEST_NODE } from '../support/snapshots.ts';

const OFF = compileOptions();

function sp(eps: string[], timeoutSeconds: number | null, name = 'web', vip = '10.96.0.1'): ServicePortInfo {
  return servicePortInfo({
    name,
    clusterIPs: [vip],
    port: 80,
    endpoints: eps.map((e) => endpoint(e)),
    protocol: 'TCP',
    sessionAffinity: timeoutSeconds === null ? null : { timeoutSeconds },
  });
}

function plan(ports: ServicePortInfo[], current: ProgrammedState = emptyProgrammedState()): Plan {
  return diff(compile(snapshot(ports), OFF), current, 'all');
}

/** The ops of a plan touching the masters and the membership, with their phase. */
function affinityOps(p: Plan): string[] {
  const out: string[] = [];
  p.phases.forEach((ops, i) => {
    for (const op of ops) if (op.map === 'affbe' || (op.map === 'svc4' && op.key.slot === 0)) out.push(`${PHASE_NAMES[i]}: ${formatOp(op)}`);
  });
  return out;
}

test('a new affinity frontend: its members are written with the slots, before the master that names the timeout', () => {
  const p = plan([sp(['10.244.1.1:8080', '10.244.1.2:8080'], 30)]);
  expect(affinityOps(p)).toStrictEqual([
    'slot-update: update affbe svc 1 int backend 1',
    'slot-update: update affbe svc 1 int backend 2',
    'master-update: update svc4 10.96.0.1:80/TCP int master = forward count 2 gen 0 flags 0x50 svc 1 affinity 30s',
  ]);
  expect(p.next.entries.affbe).toBe(2);
  expect(
    plan([sp(['10.244.1.1:8080'], null)])
      .phases.flat()
      .some((op) => op.map === 'affbe'),
    'no affinity: no members',
  ).toBe(false);
});

test('a backend leaves: its member goes after the master flipped; one joins: written before; the timeout alone rewrites the master', () => {
  const p1 = plan([sp(['10.244.1.1:8080', '10.244.1.2:8080'], 30)]);
  const p2 = plan([sp(['10.244.1.2:8080', '10.244.1.3:8080'], 30)], p1.next);
  expect(affinityOps(p2)).toStrictEqual([
    'slot-update: update affbe svc 1 int backend 3',
    'master-update: update svc4 10.96.0.1:80/TCP int master = forward count 2 gen 1 flags 0x50 svc 1 affinity 30s',
    'svc-delete: delete affbe svc 1 int backend 1',
  ]);
  expect(p2.next.entries.affbe).toBe(2);
  const p3 = plan([sp(['10.244.1.2:8080', '10.244.1.3:8080'], 60)], p2.next);
  expect(planOps(p3).map(formatOp)).toStrictEqual(['update svc4 10.96.0.1:80/TCP int master = forward count 2 gen 1 flags 0x50 svc 1 affinity 60s']);
});

test('affinity turned on, then off, then the frontend removed: members follow, on the safe side of the master', () => {
  const p0 = plan([sp(['10.244.1.1:8080'], null)]);
  const on = plan([sp(['10.244.1.1:8080'], 10800)], p0.next);
  expect(affinityOps(on)).toStrictEqual([
    'slot-update: update affbe svc 1 int backend 1',
    'master-update: update svc4 10.96.0.1:80/TCP int master = forward count 1 gen 0 flags 0x50 svc 1 affinity 10800s',
  ]);
  const off = plan([sp(['10.244.1.1:8080'], null)], on.next);
  expect(affinityOps(off)).toStrictEqual([
    'master-update: update svc4 10.96.0.1:80/TCP int master = forward count 1 gen 0 flags 0x40 svc 1',
    'svc-delete: delete affbe svc 1 int backend 1',
  ]);
  expect(off.next.entries.affbe).toBe(0);
  const again = plan([sp(['10.244.1.1:8080'], 5)], off.next);
  const gone = plan([], again.next);
  expect(affinityOps(gone)).toStrictEqual(['svc-delete: delete svc4 10.96.0.1:80/TCP int master', 'svc-delete: delete affbe svc 1 int backend 1']);
  expect(gone.next.entries.affbe).toBe(0);
});

test('an external scope with other backends (externalTrafficPolicy Local) has members of its own', () => {
  const local = endpoint('10.244.1.1:8080', TEST_NODE);
  const remote = endpoint('10.244.2.1:8080', 'node-b');
  const port = servicePortInfo({
    name: 'web',
    clusterIPs: ['10.96.0.1'],
    port: 80,
    protocol: 'TCP',
    endpoints: [local, remote],
    nodePort: 30080,
    externalPolicyLocal: true,
    sessionAffinity: { timeoutSeconds: 30 },
  });
  const p = diff(compile(snapshot([port]), compileOptions({ nodeIPs: ['198.18.0.1'], localCIDRs: ['10.244.0.0/16'] })), emptyProgrammedState(), 'all');
  const members = planOps(p)
    .filter((op) => op.map === 'affbe')
    .map(formatOp);
  expect(members).toContain('update affbe svc 2 ext backend 1');
  expect(members.filter((m) => m.includes(' ext ')).length, 'external clients: the local backend only').toBe(1);
  expect(members.filter((m) => m.includes('svc 2 int ')).length, 'internal clients: both').toBe(2);
});

test('adopt: members missing for a live affinity scope are written back, members of nothing are deleted', async () => {
  const store = new FakeMapStore();
  const p = plan([sp(['10.244.1.1:8080', '10.244.1.2:8080'], 30)]);
  store.applyPlan(p);
  const aff = store.of('affbe');
  aff.delete(encode(MAPS.affbe.keyCodec, { svcId: 1, backendId: 2, scope: 0 }));
  aff.update(encode(MAPS.affbe.keyCodec, { svcId: 9, backendId: 1, scope: 0 }), encode(MAPS.affbe.valueCodec, { flags: 0 }));
  const adopted = programmedFromDump(storeDumps(store));
  expect(adopted.orphans.filter((op: Op) => op.map === 'affbe').map(formatOp)).toStrictEqual([
    'delete affbe svc 9 int backend 1',
    'update affbe svc 1 int backend 2',
  ]);
  expect(adopted.state.entries.affbe).toBe(2);
  expect(adopted.state.services.get('10.96.0.1:80/TCP')?.internal.affinityTimeoutS).toBe(30);
});

test('the affinity entries a sync made useless: those naming a backend their frontend lost, or of a frontend without affinity now', () => {
  const other = sp(['10.244.1.1:8080'], 30, 'other', '10.96.0.2');
  const p1 = plan([sp(['10.244.1.1:8080', '10.244.1.2:8080'], 30), other]);
  const p2 = plan([sp(['10.244.1.2:8080'], 30), other], p1.next);
  const lost = lostMembers(p2.touched, p1.next, p2.next);
  expect(lost, 'only the frontend that lost a backend; it keeps backend 2').toStrictEqual(new Map([[1, new Set([2])]]));
  expect(lostMembers(p2.touched, p2.next, p2.next), 'nothing lost: no pass').toBeNull();
  const p3 = plan([sp(['10.244.1.2:8080'], null)], p2.next);
  expect(lostMembers(p3.touched, p2.next, p3.next), 'affinity off, other frontend gone: nothing may be named').toStrictEqual(
    new Map([
      [1, new Set()],
      [2, new Set()],
    ]),
  );

  const e = (svcId: number, addr: string, backendId: number): [AffKey, AffValue] => [
    { svcId, addr },
    { backendId, lastUsedNs: 5n },
  ];
  const entries = [e(1, '10.244.9.1', 1), e(1, '10.244.9.2', 2), e(2, '10.244.9.1', 1), e(7, '10.244.9.1', 3)];
  expect(staleAffinityKeys(entries, new Map([[1, new Set([2])]]), false), 'a partial pass checks only the frontends named').toStrictEqual([
    { svcId: 1, addr: '10.244.9.1' },
  ]);
  expect(staleAffinityKeys(entries, allMembers(p2.next), true), 'a full pass: svc 7 has no live affinity frontend').toStrictEqual([
    { svcId: 1, addr: '10.244.9.1' },
    { svcId: 7, addr: '10.244.9.1' },
  ]);
});
