// compile(): frontends per IPv4 clusterIP, backends sorted and deduplicated,
// bad input reported per field without stopping the rest, conflicts won by
// the lowest id; compileChanged() equal to a full compile.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EndpointInfo, Protocol, ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';
import { compile, compileChanged } from '../../src/dataplane/bpf/compile.ts';
import { SY_SVC_F_MASQ_ALL } from '../../src/dataplane/bpf/layout.ts';
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
  assert.deepEqual(d.services.keysArray(), ['10.96.0.10:80/TCP']);
  const s = d.services.get('10.96.0.10:80/TCP');
  assert.deepEqual(s?.backends.map(l4Key), ['10.244.0.9:8079/TCP', '10.244.0.9:8080/TCP', '10.244.0.10:8080/TCP']);
  assert.equal(s?.owner, 'ns/web:http/TCP');
  assert.equal(s?.flags, 0);
  assert.deepEqual(d.problems, []);
  assert.equal(d.changed, 'all');
});

test('masqueradeAll sets SY_SVC_F_MASQ_ALL', () => {
  const d = compile(snap([sp('ns/a:', ['10.96.0.1'], 80, [])]), { masqueradeAll: true });
  assert.equal(d.services.get('10.96.0.1:80/TCP')?.flags, SY_SVC_F_MASQ_ALL);
  assert.deepEqual(d.services.get('10.96.0.1:80/TCP')?.backends, [], 'no endpoints: a frontend with count 0 (the datapath rejects)');
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
  assert.deepEqual(d.services.sortedKeys(), ['10.96.0.2:80/TCP', '10.96.0.5:53/UDP']);
  assert.deepEqual(d.services.get('10.96.0.2:80/TCP')?.backends.map(l4Key), ['10.244.0.1:8080/TCP']);
  assert.deepEqual(d.services.get('10.96.0.5:53/UDP')?.backends.map(l4Key), ['10.244.0.5:53/UDP'], 'leading zeros read as decimal, as kube-proxy does');
  assert.deepEqual(
    d.problems.map((p) => `${p.owner} ${p.field}: ${p.message}`),
    [
      'ns/bad:ip/TCP clusterEndpoints[1].ip: not an IP address: "not-an-ip"',
      'ns/bad:ip/TCP clusterEndpoints[2].port: port 0 is not in 1..65535',
      'ns/bad:ip/TCP clusterIPs[0]: not an IP address: "10.96.0.300"',
      'ns/bad:port/TCP port: port 0 is not in 1..65535',
      'ns/bad:proto/TCP protocol: unsupported protocol "ICMP"',
    ],
  );
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
    assert.equal(d.services.get('10.96.0.1:80/TCP')?.owner, 'ns/a:/TCP');
    assert.deepEqual(
      d.problems.map((p) => [p.owner, p.field]),
      [
        ['ns/b:/TCP', 'clusterIPs'],
        ['ns/c:/TCP', 'clusterIPs'],
      ],
    );
    assert.match(d.problems[0]?.message ?? '', /frontend 10\.96\.0\.1:80\/TCP is also claimed/);
  }

  // Incrementally: the winner goes away, the next lowest id takes over the frontend.
  const d0 = compile(snap([a, b, c]), OFF);
  const d1 = compileChanged(d0, snap([b, c], new Set([a.id])));
  assert.equal(d1.services.get('10.96.0.1:80/TCP')?.owner, 'ns/b:/TCP');
  assert.deepEqual([...(d1.changed as Set<string>)].sort(), ['10.96.0.1:80/TCP', '10.96.0.9:80/TCP']);
  assert.deepEqual(plain(d1), plain(compile(snap([b, c]), OFF)));
  // ...and comes back: it wins again.
  const d2 = compileChanged(d1, snap([a, b, c], new Set([a.id])));
  assert.deepEqual(plain(d2), plain(d0));
  // A loser changing does not disturb the winner.
  const c2 = sp('ns/c:', ['10.96.0.1', '10.96.0.7'], 80, [['10.244.0.4', 80]]);
  const d3 = compileChanged(d2, snap([a, b, c2], new Set([c.id])));
  assert.deepEqual(plain(d3), plain(compile(snap([a, b, c2]), OFF)));
  assert.equal(d3.services.get('10.96.0.1:80/TCP'), d2.services.get('10.96.0.1:80/TCP'), 'same object: untouched');
});

test('compileChanged recompiles only the changed ids and names their frontends', () => {
  const a = sp('ns/a:', ['10.96.0.1'], 80, [['10.244.0.1', 80]]);
  const b = sp('ns/b:', ['10.96.0.2'], 80, [['10.244.0.2', 80]]);
  const d0 = compile(snap([a, b]), OFF);
  const a2 = sp('ns/a:', ['10.96.0.11'], 80, [['10.244.0.1', 80]]);
  const d1 = compileChanged(d0, snap([a2, b], new Set([a.id])));
  assert.deepEqual([...(d1.changed as Set<string>)].sort(), ['10.96.0.11:80/TCP', '10.96.0.1:80/TCP']);
  assert.equal(d1.services.get('10.96.0.2:80/TCP'), d0.services.get('10.96.0.2:80/TCP'));
  assert.deepEqual(plain(d1), plain(compile(snap([a2, b]), OFF)));
  // d0 is untouched (structural sharing, no mutation).
  assert.deepEqual(d0.services.sortedKeys(), ['10.96.0.1:80/TCP', '10.96.0.2:80/TCP']);
  // 'all', or other options: a full compile.
  assert.equal(compileChanged(d0, snap([a2, b])).changed, 'all');
  assert.equal(compileChanged(d0, snap([a2, b], new Set()), { masqueradeAll: true }).changed, 'all');
  // An id that is in no snapshot and no state: nothing changes.
  const d2 = compileChanged(d0, snap([a, b], new Set(['ns/ghost:/TCP'])));
  assert.deepEqual([...(d2.changed as Set<string>)], []);
});

test('problems follow incremental changes', () => {
  const bad = sp('ns/a:', ['10.96.0.x'], 80, []);
  const good = sp('ns/a:', ['10.96.0.1'], 80, []);
  const d0 = compile(snap([bad]), OFF);
  assert.equal(d0.problems.length, 1);
  const d1 = compileChanged(d0, snap([good], new Set([good.id])));
  assert.deepEqual(d1.problems, []);
  const d2 = compileChanged(d1, snap([], new Set([good.id])));
  assert.equal(d2.services.size, 0);
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
  assert.deepEqual(
    d.problems.map((p) => [p.owner, p.field]),
    [
      ['default/web:http/TCP', 'externalIPs'],
      ['default/web:http/TCP', 'loadBalancerIPs'],
      ['default/web:http/TCP', 'nodePort'],
      ['default/web:http/TCP', 'sessionAffinity'],
    ],
  );
  assert.match(d.problems.find((p) => p.field === 'nodePort')?.message ?? '', /NodePort 30080 is not programmed by the bpf dataplane yet/);
  assert.deepEqual([...d.services.keys()], ['10.96.0.10:80/TCP']);

  const plainClusterIP = compile(snap([base]), OFF);
  assert.deepEqual(plainClusterIP.problems, [], 'a plain ClusterIP Service raises nothing');
  const sctp = compile(snap([sp('default/s:x', ['10.96.0.11'], 9, [['10.244.1.5', 9]], 'SCTP')]), OFF);
  assert.deepEqual(
    sctp.problems.map((p) => p.field),
    ['protocol'],
  );
});
