// compile(): frontends per IPv4 clusterIP, backends sorted and deduplicated,
// bad input reported per field without stopping the rest, conflicts won by
// the lowest id; compileChanged() equal to a full compile.

import { expect, test } from 'vitest';
import type { EndpointInfo, Protocol, ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';
import { compile, compileChanged } from '../../src/dataplane/bpf/compile.ts';
import { SY_SVC_F_MASQ_ALL } from '../../src/dataplane/bpf/layout-v1.ts';
import { formatBackendKey, l4Key } from '../../src/dataplane/bpf/state.ts';
import type { DesiredState } from '../../src/dataplane/bpf/state.ts';

function ep(ip: string, port: number): EndpointInfo {
  return { ip, port, nodeName: null, zone: null, ready: true, serving: true, terminating: false, isLocal: false };
}

function sp(id: string, clusterIPs: string[], port: number, eps: Array<[string, number]>, protocol: Protocol = 'TCP'): ServicePortInfo {
  const [ns = '', rest = ''] = id.split('/');
  const endpoints = eps.map(([ip, p]) => ep(ip, p));
  return {
    id: `${id}/${protocol}`,
    namespace: ns,
    name: rest.split(':')[0] ?? '',
    portName: rest.split(':')[1] ?? '',
    protocol,
    clusterIPs,
    port,
    endpoints,
    clusterEndpoints: endpoints,
  };
}

function snap(sps: ServicePortInfo[], changed: ReadonlySet<string> | 'all' = 'all'): ProxySnapshot {
  return { nodeName: 'n', servicePorts: new Map(sps.map((s) => [s.id, s])), changed };
}

const OFF = { masqueradeAll: false };

/** Desired state as plain sorted data. */
function plain(d: DesiredState): unknown {
  return {
    services: d.services.sortedKeys().map((k) => {
      const s = d.services.get(k);
      return [k, s?.owner, s?.flags, s?.backends.map(l4Key), s?.backendKeys.map(formatBackendKey)];
    }),
    problems: d.problems,
  };
}

test('one frontend per IPv4 clusterIP; backends sorted by address, deduplicated; IPv6 skipped', () => {
  const d = compile(
    snap([
      sp('ns/web:http', ['10.96.0.10', 'fd00::10'], 80, [
        ['10.244.0.10', 8080],
        ['10.244.0.9', 8080],
        ['fd00:244::9', 8080],
        ['10.244.0.9', 8080],
        ['10.244.0.9', 8079],
      ]),
    ]),
    OFF,
  );
  expect(d.services.keysArray()).toStrictEqual(['10.96.0.10:80/TCP']);
  const s = d.services.get('10.96.0.10:80/TCP');
  expect(s?.backends.map(l4Key)).toStrictEqual(['10.244.0.9:8079/TCP', '10.244.0.9:8080/TCP', '10.244.0.10:8080/TCP']);
  expect(s?.owner).toBe('ns/web:http/TCP');
  expect(s?.flags).toBe(0);
  expect(d.problems).toStrictEqual([]);
  expect(d.changed).toBe('all');
});

test('masqueradeAll sets SY_SVC_F_MASQ_ALL', () => {
  const d = compile(snap([sp('ns/a:', ['10.96.0.1'], 80, [])]), { masqueradeAll: true });
  expect(d.services.get('10.96.0.1:80/TCP')?.flags).toBe(SY_SVC_F_MASQ_ALL);
  expect(d.services.get('10.96.0.1:80/TCP')?.backends, 'no endpoints: a frontend with count 0 (the datapath rejects)').toStrictEqual([]);
});

test('bad input becomes problems for its owner; the rest compiles', () => {
  const d = compile(
    snap([
      sp('ns/bad:ip', ['10.96.0.300', '10.96.0.2'], 80, [
        ['10.244.0.1', 8080],
        ['not-an-ip', 8080],
        ['10.244.0.2', 0],
      ]),
      sp('ns/bad:port', ['10.96.0.3'], 0, [['10.244.0.3', 80]]),
      { ...sp('ns/bad:proto', ['10.96.0.4'], 80, []), protocol: 'ICMP' as Protocol },
      sp('ns/good:', ['010.096.000.005', 'None'], 53, [['10.244.0.05', 53]], 'UDP'),
    ]),
    OFF,
  );
  expect(d.services.sortedKeys()).toStrictEqual(['10.96.0.2:80/TCP', '10.96.0.5:53/UDP']);
  expect(d.services.get('10.96.0.2:80/TCP')?.backends.map(l4Key)).toStrictEqual(['10.244.0.1:8080/TCP']);
  expect(d.services.get('10.96.0.5:53/UDP')?.backends.map(l4Key), 'leading zeros read as decimal, as kube-proxy does').toStrictEqual(['10.244.0.5:53/UDP']);
  expect(d.problems.map((p) => `${p.owner} ${p.field}: ${p.message}`)).toStrictEqual([
    'ns/bad:ip/TCP clusterEndpoints[1].ip: not an IP address: "not-an-ip"',
    'ns/bad:ip/TCP clusterEndpoints[2].port: port 0 is not in 1..65535',
    'ns/bad:ip/TCP clusterIPs[0]: not an IP address: "10.96.0.300"',
    'ns/bad:port/TCP port: port 0 is not in 1..65535',
    'ns/bad:proto/TCP protocol: unsupported protocol "ICMP"',
  ]);
});

test('two ServicePorts claiming one frontend: the lower id wins, the other is reported', () => {
  const b = sp('ns/b:', ['10.96.0.1'], 80, [['10.244.0.2', 80]]);
  const a = sp('ns/a:', ['10.96.0.1', '10.96.0.9'], 80, [['10.244.0.1', 80]]);
  const c = sp('ns/c:', ['10.96.0.1'], 80, [['10.244.0.3', 80]]);
  for (const order of [
    [b, a, c],
    [c, b, a],
    [a, c, b],
  ]) {
    const d = compile(snap(order), OFF);
    expect(d.services.get('10.96.0.1:80/TCP')?.owner).toBe('ns/a:/TCP');
    expect(d.problems.map((p) => [p.owner, p.field])).toStrictEqual([
      ['ns/b:/TCP', 'clusterIPs'],
      ['ns/c:/TCP', 'clusterIPs'],
    ]);
    expect(d.problems[0]?.message ?? '').toMatch(/frontend 10\.96\.0\.1:80\/TCP is also claimed/);
  }

  // Incrementally: the winner goes away, the next lowest id takes over the frontend.
  const d0 = compile(snap([a, b, c]), OFF);
  const d1 = compileChanged(d0, snap([b, c], new Set([a.id])));
  expect(d1.services.get('10.96.0.1:80/TCP')?.owner).toBe('ns/b:/TCP');
  expect([...(d1.changed as Set<string>)].sort()).toStrictEqual(['10.96.0.1:80/TCP', '10.96.0.9:80/TCP']);
  expect(plain(d1)).toStrictEqual(plain(compile(snap([b, c]), OFF)));
  // ...and comes back: it wins again.
  const d2 = compileChanged(d1, snap([a, b, c], new Set([a.id])));
  expect(plain(d2)).toStrictEqual(plain(d0));
  // A loser changing does not disturb the winner.
  const c2 = sp('ns/c:', ['10.96.0.1', '10.96.0.7'], 80, [['10.244.0.4', 80]]);
  const d3 = compileChanged(d2, snap([a, b, c2], new Set([c.id])));
  expect(plain(d3)).toStrictEqual(plain(compile(snap([a, b, c2]), OFF)));
  expect(d3.services.get('10.96.0.1:80/TCP'), 'same object: untouched').toBe(d2.services.get('10.96.0.1:80/TCP'));
});

test('compileChanged recompiles only the changed ids and names their frontends', () => {
  const a = sp('ns/a:', ['10.96.0.1'], 80, [['10.244.0.1', 80]]);
  const b = sp('ns/b:', ['10.96.0.2'], 80, [['10.244.0.2', 80]]);
  const d0 = compile(snap([a, b]), OFF);
  const a2 = sp('ns/a:', ['10.96.0.11'], 80, [['10.244.0.1', 80]]);
  const d1 = compileChanged(d0, snap([a2, b], new Set([a.id])));
  expect([...(d1.changed as Set<string>)].sort()).toStrictEqual(['10.96.0.11:80/TCP', '10.96.0.1:80/TCP']);
  expect(d1.services.get('10.96.0.2:80/TCP')).toBe(d0.services.get('10.96.0.2:80/TCP'));
  expect(plain(d1)).toStrictEqual(plain(compile(snap([a2, b]), OFF)));
  // d0 is untouched (structural sharing, no mutation).
  expect(d0.services.sortedKeys()).toStrictEqual(['10.96.0.1:80/TCP', '10.96.0.2:80/TCP']);
  // 'all', or other options: a full compile.
  expect(compileChanged(d0, snap([a2, b])).changed).toBe('all');
  expect(compileChanged(d0, snap([a2, b], new Set()), { masqueradeAll: true }).changed).toBe('all');
  // An id that is in no snapshot and no state: nothing changes.
  const d2 = compileChanged(d0, snap([a, b], new Set(['ns/ghost:/TCP'])));
  expect([...(d2.changed as Set<string>)]).toStrictEqual([]);
});

test('problems follow incremental changes', () => {
  const bad = sp('ns/a:', ['10.96.0.x'], 80, []);
  const good = sp('ns/a:', ['10.96.0.1'], 80, []);
  const d0 = compile(snap([bad]), OFF);
  expect(d0.problems.length).toBe(1);
  const d1 = compileChanged(d0, snap([good], new Set([good.id])));
  expect(d1.problems).toStrictEqual([]);
  const d2 = compileChanged(d1, snap([], new Set([good.id])));
  expect(d2.services.size).toBe(0);
});

test('what the datapath does not carry out yet is reported per ServicePort, and its ClusterIP is still programmed', () => {
  const base = sp('default/web:http', ['10.96.0.10'], 80, [['10.244.1.5', 8080]]);
  const rich: ServicePortInfo = {
    ...base,
    nodePort: 30080,
    externalIPs: ['198.18.1.10'],
    loadBalancerIPs: ['198.18.2.10'],
    sessionAffinity: { timeoutSeconds: 10800 },
  };
  const d = compile(snap([rich]), OFF);
  expect(d.problems.map((p) => [p.owner, p.field])).toStrictEqual([
    ['default/web:http/TCP', 'externalIPs'],
    ['default/web:http/TCP', 'loadBalancerIPs'],
    ['default/web:http/TCP', 'nodePort'],
    ['default/web:http/TCP', 'sessionAffinity'],
  ]);
  expect(d.problems.find((p) => p.field === 'nodePort')?.message ?? '').toMatch(/NodePort 30080 is not programmed by the bpf dataplane yet/);
  expect([...d.services.keys()]).toStrictEqual(['10.96.0.10:80/TCP']);

  const plainClusterIP = compile(snap([base]), OFF);
  expect(plainClusterIP.problems, 'a plain ClusterIP Service raises nothing').toStrictEqual([]);
  const sctp = compile(snap([sp('default/s:x', ['10.96.0.11'], 9, [['10.244.1.5', 9]], 'SCTP')]), OFF);
  expect(sctp.problems.map((p) => p.field)).toStrictEqual(['protocol']);
});
