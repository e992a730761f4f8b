import { expect, test } from 'vitest';
import { ClusterCache } from '../../src/sources/cache.ts';
import { parseObject, type KubeObject } from '../../src/sources/objects.ts';
import { SnapshotBuilder } from '../../src/model/snapshot.ts';
import { selectClusterEndpoints } from '../../src/model/topology.ts';
import type { EndpointInfo, ProxySnapshot } from '../../src/model/types.ts';

function obj(raw: Record<string, unknown>): KubeObject {
  const r = parseObject(raw);
  if (r.status !== 'valid') throw new Error(`fixture not valid: ${JSON.stringify(r)}`);
  return r.object;
}

type Port = { name?: string; port?: number; protocol?: string };

function service(name: string, ports: Port[], clusterIPs: string[] = ['10.96.0.10']): KubeObject {
  return obj({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIPs, ports } });
}

function slice(name: string, serviceName: string, ports: Port[], endpoints: Record<string, unknown>[], addressType = 'IPv4'): KubeObject {
  return obj({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': serviceName } },
    addressType,
    ports,
    endpoints,
  });
}

function setup(...objects: KubeObject[]): { cache: ClusterCache; builder: SnapshotBuilder } {
  const cache = new ClusterCache();
  for (const o of objects) cache.apply(o);
  return { cache, builder: new SnapshotBuilder({ cache, nodeName: 'node-a' }) };
}

/** Builds from pending changes and commits, like a successful sync. */
function sync(cache: ClusterCache, builder: SnapshotBuilder, full = false): ProxySnapshot {
  const token = cache.changes.peek();
  const snap = builder.build(full ? 'all' : token.services);
  builder.commit(snap);
  cache.changes.commit(token);
  return snap;
}

const addrs = (eps: readonly EndpointInfo[]) => eps.map((e) => `${e.ip}:${e.port}`);

test('one ServicePortInfo per spec port with id namespace/name:portName/PROTO', () => {
  const { cache, builder } = setup(
    service(
      'dns',
      [
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53 },
      ],
      ['10.96.0.10', 'fd00::a'],
    ),
  );
  const snap = sync(cache, builder, true);
  expect([...snap.servicePorts.keys()].sort()).toStrictEqual(['default/dns:dns-tcp/TCP', 'default/dns:dns/UDP']);
  const sp = snap.servicePorts.get('default/dns:dns/UDP')!;
  expect({ ns: sp.namespace, name: sp.name, portName: sp.portName, proto: sp.protocol, port: sp.port, ips: sp.clusterIPs }).toStrictEqual({
    ns: 'default',
    name: 'dns',
    portName: 'dns',
    proto: 'UDP',
    port: 53,
    ips: ['10.96.0.10', 'fd00::a'],
  });
  expect(snap.changed).toBe('all');
  expect(snap.nodeName).toBe('node-a');
});

test('slice ports match ServicePorts by name and protocol, across two slices', () => {
  const { cache, builder } = setup(
    service('web', [
      { name: 'http', port: 80 },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ]),
    slice(
      'web-1',
      'web',
      [
        { name: 'http', port: 8080 },
        { name: 'dns', port: 5353, protocol: 'TCP' },
      ],
      [{ addresses: ['10.0.0.1'] }],
    ),
    slice(
      'web-2',
      'web',
      [
        { name: 'http', port: 9090 },
        { name: 'dns', port: 5353, protocol: 'UDP' },
        { name: 'other', port: 1 },
      ],
      [{ addresses: ['10.0.0.2'] }],
    ),
  );
  const snap = sync(cache, builder, true);
  expect(addrs(snap.servicePorts.get('default/web:http/TCP')!.endpoints)).toStrictEqual(['10.0.0.1:8080', '10.0.0.2:9090']);
  // dns/TCP in web-1 does not serve the UDP ServicePort
  expect(addrs(snap.servicePorts.get('default/web:dns/UDP')!.endpoints)).toStrictEqual(['10.0.0.2:5353']);
});

test('a slice port without a number is skipped; other families are not used for endpoints', () => {
  const { cache, builder } = setup(
    service('web', [{ name: 'http', port: 80 }]),
    slice('web-1', 'web', [{ name: 'http' }], [{ addresses: ['10.0.0.1'] }]),
    slice('web-6', 'web', [{ name: 'http', port: 80 }], [{ addresses: ['fd00::1'] }], 'IPv6'),
  );
  expect(sync(cache, builder, true).servicePorts.get('default/web:http/TCP')!.endpoints).toStrictEqual([]);
});

test('an endpoint present in two slices is counted once: a non-terminating copy wins, else the first by slice name', () => {
  const { cache, builder } = setup(
    service('web', [{ name: 'http', port: 80 }]),
    slice(
      'web-1',
      'web',
      [{ name: 'http', port: 8080 }],
      [
        { addresses: ['10.0.0.1'], nodeName: 'node-b', conditions: { ready: false, serving: true, terminating: true } },
        { addresses: ['10.0.0.2'], nodeName: 'node-b', zone: 'z1' },
        { addresses: ['10.0.0.3'], nodeName: 'node-b', conditions: { ready: false, terminating: true } },
      ],
    ),
    slice(
      'web-2',
      'web',
      [{ name: 'http', port: 8080 }],
      [
        { addresses: ['10.0.0.1'], nodeName: 'node-a' },
        { addresses: ['10.0.0.2'], nodeName: 'node-a', zone: 'z2' },
        { addresses: ['10.0.0.3'], nodeName: 'node-c', conditions: { ready: false, terminating: true } },
      ],
    ),
  );
  const eps = sync(cache, builder, true).servicePorts.get('default/web:http/TCP')!.endpoints;
  expect(addrs(eps)).toStrictEqual(['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
  expect([eps[0]!.nodeName, eps[0]!.terminating, eps[0]!.isLocal], 'the running copy replaces a terminating one (reused pod IP)').toStrictEqual([
    'node-a',
    false,
    true,
  ]);
  expect(eps[1]!.zone, 'both running: the first slice (by name) wins, even over a local copy').toBe('z1');
  expect(eps[2]!.nodeName, 'both terminating: the first slice wins').toBe('node-b');
});

test('the same address with two different port numbers is two endpoints', () => {
  const { cache, builder } = setup(
    service('web', [{ name: 'http', port: 80 }]),
    slice('web-1', 'web', [{ name: 'http', port: 8080 }], [{ addresses: ['10.0.0.1'] }]),
    slice('web-2', 'web', [{ name: 'http', port: 8081 }], [{ addresses: ['10.0.0.1'] }]),
  );
  expect(addrs(sync(cache, builder, true).servicePorts.get('default/web:http/TCP')!.endpoints)).toStrictEqual(['10.0.0.1:8080', '10.0.0.1:8081']);
});

test('endpoints are sorted by ip then port and carry nil-defaulted conditions', () => {
  const { cache, builder } = setup(
    service('web', [{ name: 'http', port: 80 }]),
    slice('b', 'web', [{ name: 'http', port: 80 }], [{ addresses: ['10.0.0.3'] }, { addresses: ['10.0.0.1'], conditions: { ready: false } }]),
    slice('a', 'web', [{ name: 'http', port: 80 }], [{ addresses: ['10.0.0.2'], conditions: { ready: false, serving: true, terminating: true } }]),
  );
  const sp = sync(cache, builder, true).servicePorts.get('default/web:http/TCP')!;
  expect(sp.endpoints.map((e) => [e.ip, e.ready, e.serving, e.terminating])).toStrictEqual([
    ['10.0.0.1', false, true, false],
    ['10.0.0.2', false, true, true],
    ['10.0.0.3', true, true, false],
  ]);
  expect(addrs(sp.clusterEndpoints), 'not-ready endpoints are excluded').toStrictEqual(['10.0.0.3:80']);
});

test('with no ready endpoint, cluster traffic falls back to serving+terminating ones', () => {
  const { cache, builder } = setup(
    service('web', [{ name: 'http', port: 80 }]),
    slice(
      's',
      'web',
      [{ name: 'http', port: 80 }],
      [
        { addresses: ['10.0.0.1'], conditions: { ready: false, serving: true, terminating: true } },
        { addresses: ['10.0.0.2'], conditions: { ready: false, serving: false, terminating: true } },
        { addresses: ['10.0.0.3'], conditions: { ready: false } },
      ],
    ),
  );
  expect(addrs(sync(cache, builder, true).servicePorts.get('default/web:http/TCP')!.clusterEndpoints)).toStrictEqual(['10.0.0.1:80']);
});

test('selectClusterEndpoints: ready first, fallback only when nothing is ready, empty otherwise', () => {
  const ep = (ip: string, ready: boolean, serving: boolean, terminating: boolean): EndpointInfo => ({
    ip,
    port: 80,
    nodeName: null,
    zone: null,
    ready,
    serving,
    terminating,
    isLocal: false,
  });
  const node = { name: 'n', zone: null };
  expect(addrs(selectClusterEndpoints([ep('1.1.1.1', true, true, false), ep('1.1.1.2', false, true, true)], node))).toStrictEqual(['1.1.1.1:80']);
  expect(addrs(selectClusterEndpoints([ep('1.1.1.2', false, true, true)], node))).toStrictEqual(['1.1.1.2:80']);
  expect(selectClusterEndpoints([ep('1.1.1.3', false, false, false)], node)).toStrictEqual([]);
});

test('incremental build: only the changed Service is rebuilt and listed; others keep their objects', () => {
  const { cache, builder } = setup(
    service('a', [{ name: 'http', port: 80 }]),
    service('b', [
      { name: 'http', port: 80 },
      { name: 'https', port: 443 },
    ]),
    slice(
      'b-1',
      'b',
      [
        { name: 'http', port: 8080 },
        { name: 'https', port: 8443 },
      ],
      [{ addresses: ['10.0.0.1'] }],
    ),
  );
  const first = sync(cache, builder);
  expect(first.changed).toStrictEqual(new Set(['default/a:http/TCP', 'default/b:http/TCP', 'default/b:https/TCP']));

  cache.apply(
    slice(
      'b-1',
      'b',
      [
        { name: 'http', port: 8080 },
        { name: 'https', port: 8443 },
      ],
      [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.2'] }],
    ),
  );
  const second = sync(cache, builder);
  expect(second.changed).toStrictEqual(new Set(['default/b:http/TCP', 'default/b:https/TCP']));
  expect(second.servicePorts.get('default/a:http/TCP'), 'unchanged Service: same object').toBe(first.servicePorts.get('default/a:http/TCP'));
  expect(addrs(second.servicePorts.get('default/b:https/TCP')!.endpoints)).toStrictEqual(['10.0.0.1:8443', '10.0.0.2:8443']);
  expect(addrs(first.servicePorts.get('default/b:https/TCP')!.endpoints), 'earlier snapshots are not mutated').toStrictEqual(['10.0.0.1:8443']);
});

test('a change that rebuilds to the same ports is not reported, and keeps the same objects', () => {
  const { cache, builder } = setup(service('a', [{ name: 'http', port: 80 }]), slice('a-1', 'a', [{ name: 'http', port: 80 }], [{ addresses: ['10.0.0.1'] }]));
  const first = sync(cache, builder);
  // A new slice with only a port the Service does not have: the Service key changes, its ports do not.
  cache.apply(slice('a-2', 'a', [{ name: 'metrics', port: 9100 }], [{ addresses: ['10.0.0.9'] }]));
  const second = sync(cache, builder);
  expect(second.changed).toStrictEqual(new Set());
  expect(second.servicePorts.get('default/a:http/TCP')).toBe(first.servicePorts.get('default/a:http/TCP'));
});

test('removed Services and removed ports are in changed and absent from servicePorts', () => {
  const { cache, builder } = setup(
    service('a', [{ name: 'http', port: 80 }]),
    service('b', [
      { name: 'http', port: 80 },
      { name: 'admin', port: 8081 },
    ]),
  );
  sync(cache, builder);
  cache.delete({ kind: 'Service', key: 'default/a' });
  cache.apply(service('b', [{ name: 'http', port: 80 }]));
  const snap = sync(cache, builder);
  expect(snap.changed).toStrictEqual(new Set(['default/a:http/TCP', 'default/b:admin/TCP']));
  expect([...snap.servicePorts.keys()]).toStrictEqual(['default/b:http/TCP']);
  // a Service that becomes headless is deleted from the cache by its source: same outcome
});

test('changed is relative to the last committed snapshot: an uncommitted build is reported again', () => {
  const { cache, builder } = setup(service('a', [{ name: 'http', port: 80 }]));
  sync(cache, builder);
  cache.apply(service('a', [{ name: 'http', port: 81 }]));
  const token = cache.changes.peek();
  const failed = builder.build(token.services); // dataplane fails: no commit
  expect(failed.changed).toStrictEqual(new Set(['default/a:http/TCP']));
  cache.apply(service('b', [{ name: 'http', port: 80 }]));
  const retry = sync(cache, builder);
  expect(retry.changed).toStrictEqual(new Set(['default/a:http/TCP', 'default/b:http/TCP']));
  expect(retry.servicePorts.get('default/a:http/TCP')!.port).toBe(81);
});

test('commit rejects snapshots it did not build or built from an older baseline', () => {
  const { builder } = setup(service('a', [{ name: 'http', port: 80 }]));
  const a = builder.build(new Set(['default/a']));
  const b = builder.build(new Set(['default/a']));
  builder.commit(a);
  expect(() => builder.commit(b)).toThrow(/older baseline/);
  expect(() => builder.commit({ nodeName: 'x', servicePorts: new Map(), changed: 'all' })).toThrow(/not built by this builder/);
  expect(builder.committed).toBe(a);
});

test('isLocal follows this node name', () => {
  const { cache, builder } = setup(
    service('web', [{ name: 'http', port: 80 }]),
    slice(
      's',
      'web',
      [{ name: 'http', port: 80 }],
      [{ addresses: ['10.0.0.1'], nodeName: 'node-a' }, { addresses: ['10.0.0.2'], nodeName: 'node-b' }, { addresses: ['10.0.0.3'] }],
    ),
  );
  const eps = sync(cache, builder, true).servicePorts.get('default/web:http/TCP')!.endpoints;
  expect(eps.map((e) => e.isLocal)).toStrictEqual([true, false, false]);
  expect(eps.map((e) => e.nodeName)).toStrictEqual(['node-a', 'node-b', null]);
});
