import { expect, test } from 'vitest';
import { ClusterCache } from '../../src/sources/cache.ts';
import { parseObject, type KubeObject } from '../../src/sources/objects.ts';

function obj(raw: Record<string, unknown>): KubeObject {
  const r = parseObject(raw);
  if (r.status !== 'valid') throw new Error(`fixture not valid: ${JSON.stringify(r)}`);
  return r.object;
}

function service(name: string, ns = 'default', port = 80): KubeObject {
  return obj({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { clusterIP: '10.96.0.1', ports: [{ port }] } });
}

function slice(name: string, serviceName: string, ips: string[], ns = 'default'): KubeObject {
  return obj({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': serviceName } },
    addressType: 'IPv4',
    endpoints: ips.map((ip) => ({ addresses: [ip] })),
    ports: [{ port: 8080 }],
  });
}

test('apply and delete record the Service key; an identical re-apply records nothing', () => {
  const cache = new ClusterCache();
  expect(cache.apply(service('web'))).toBe(true);
  expect(cache.takeChanges()).toStrictEqual(new Set(['default/web']));
  expect(cache.apply(service('web')), 'same content again is a no-op').toBe(false);
  expect(cache.takeChanges()).toStrictEqual(new Set());
  expect(cache.apply(service('web', 'default', 81))).toBe(true);
  expect(cache.services.get('default/web')?.ports[0]?.port).toBe(81);
  expect(cache.delete({ kind: 'Service', key: 'default/web' })).toBe(true);
  expect(cache.delete({ kind: 'Service', key: 'default/web' })).toBe(false);
  expect(cache.takeChanges()).toStrictEqual(new Set(['default/web']));
  expect(cache.services.size).toBe(0);
});

test('EndpointSlices are indexed by Service and record the Service key, not the slice key', () => {
  const cache = new ClusterCache();
  cache.apply(slice('web-a', 'web', ['10.0.0.1']));
  cache.apply(slice('web-b', 'web', ['10.0.0.2']));
  cache.apply(slice('db-a', 'db', ['10.0.0.3'], 'prod'));
  expect([...(cache.endpointSlices.forService('default/web')?.keys() ?? [])]).toStrictEqual(['default/web-a', 'default/web-b']);
  expect(cache.takeChanges()).toStrictEqual(new Set(['default/web', 'prod/db']));
  cache.delete({ kind: 'EndpointSlice', key: 'default/web-a' });
  expect([...(cache.endpointSlices.forService('default/web')?.keys() ?? [])]).toStrictEqual(['default/web-b']);
  cache.delete({ kind: 'EndpointSlice', key: 'default/web-b' });
  expect(cache.endpointSlices.forService('default/web'), 'empty index entries are dropped').toBe(undefined);
  expect(cache.takeChanges()).toStrictEqual(new Set(['default/web']));
});

test('a slice relabelled to another Service moves in the index and changes both Services', () => {
  const cache = new ClusterCache();
  cache.apply(slice('s1', 'web', ['10.0.0.1']));
  cache.takeChanges();
  cache.apply(slice('s1', 'api', ['10.0.0.1']));
  expect(cache.endpointSlices.forService('default/web')).toBe(undefined);
  expect(cache.endpointSlices.forService('default/api')?.size).toBe(1);
  expect(cache.takeChanges()).toStrictEqual(new Set(['default/web', 'default/api']));
});

test('peek/commit: a change made after the peek survives the commit of that peek', () => {
  let now = 1000;
  const cache = new ClusterCache({ now: () => now });
  cache.apply(service('a'));
  now = 2000;
  cache.apply(service('b'));
  const token = cache.changes.peek();
  expect(token.services).toStrictEqual(new Set(['default/a', 'default/b']));
  expect(token.seenAt).toStrictEqual(
    new Map([
      ['default/a', 1000],
      ['default/b', 2000],
    ]),
  );
  now = 3000;
  cache.apply(service('b', 'default', 99)); // changed again while "syncing"
  cache.changes.commit(token);
  const next = cache.changes.peek();
  expect(next.services).toStrictEqual(new Set(['default/b']));
  expect(next.seenAt.get('default/b'), 'first-seen time is kept until programmed').toBe(2000);
});

test('a failed sync (no commit) keeps every change for the next peek', () => {
  const cache = new ClusterCache();
  cache.apply(service('a'));
  const first = cache.changes.peek();
  const second = cache.changes.peek();
  expect(second.services).toStrictEqual(first.services);
  cache.changes.commit(second);
  expect(cache.changes.size).toBe(0);
});

test('node changes are tracked separately', () => {
  const cache = new ClusterCache();
  cache.apply(obj({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } }));
  const token = cache.changes.peek();
  expect(token.nodes).toBe(true);
  expect(token.services.size).toBe(0);
  cache.changes.commit(token);
  expect(cache.changes.peek().nodes).toBe(false);
  expect(cache.nodes.get('n1')?.name).toBe('n1');
});
