// What the ops layer reads from the rest: pending change counts by kind and
// the cache's change observer (kube-proxy's *_changes_pending/_total), the
// Node's deletion and taints (nodeEligible), and the no-local-endpoints
// count from a snapshot.

import { describe, expect, test } from 'vitest';
import type { EndpointInfo, ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';
import { ProxyHealth } from '../../src/ops/health.ts';
import { noLocalEndpoints } from '../../src/ops/operations.ts';
import { ClusterCache } from '../../src/sources/cache.ts';
import { parseObject, type Node } from '../../src/sources/objects.ts';
import { servicePortInfo } from '../support/snapshots.ts';

function valid(raw: Record<string, unknown>) {
  const r = parseObject(raw);
  if (r.status !== 'valid') throw new Error(`expected valid: ${JSON.stringify(r)}`);
  return r.object;
}

const svc = (name: string) =>
  valid({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } });
const slice = (name: string, service: string) =>
  valid({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'ns', labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.244.1.2'] }],
    ports: [{ port: 8080 }],
  });

describe('change counts', () => {
  test('pending Service keys by kind until committed; the observer sees each effective change', () => {
    const seen: string[] = [];
    const cache = new ClusterCache({ onChanged: (k) => seen.push(k) });
    cache.apply(svc('a'));
    cache.apply(svc('a')); // unchanged: nothing recorded
    cache.apply(slice('a-1', 'a'));
    cache.apply(slice('b-1', 'b'));
    expect(cache.changes.pendingCounts()).toEqual({ services: 1, endpoints: 2 });
    const token = cache.changes.peek();
    cache.delete({ kind: 'EndpointSlice', key: 'ns/b-1' });
    cache.changes.commit(token);
    // b changed again after the peek: still pending, as an endpoints change.
    expect(cache.changes.pendingCounts()).toEqual({ services: 0, endpoints: 1 });
    expect(seen).toEqual(['Service', 'EndpointSlice', 'EndpointSlice', 'EndpointSlice']);
  });
});

describe('Node eligibility inputs', () => {
  test('deletionTimestamp and taint keys are read; absent when there is nothing to say', () => {
    const plain = valid({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } }) as Node;
    expect(plain.deleting).toBeUndefined();
    expect(plain.taintKeys).toBeUndefined();
    const n = valid({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'n1', deletionTimestamp: '2026-01-02T03:04:05Z' },
      spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }, { effect: 'NoExecute' }] },
    }) as Node;
    expect(n.deleting).toBe(true);
    expect(n.taintKeys).toEqual(['ToBeDeletedByClusterAutoscaler']);
    const cache = new ClusterCache();
    const health = new ProxyHealth({ healthTimeoutMs: 1000, node: () => cache.nodes.get('n1') });
    cache.apply(plain);
    expect(health.nodeEligible()).toBe(true);
    cache.apply(n);
    expect(health.nodeEligible()).toBe(false);
  });
});

function ep(ip: string, isLocal: boolean): EndpointInfo {
  return { ip, port: 80, nodeName: isLocal ? 'me' : 'other', zone: null, ready: true, serving: true, terminating: false, isLocal };
}

function sp(name: string, o: Partial<ServicePortInfo>): ServicePortInfo {
  return {
    // The fields these tests do not look at, as the model completes them.
    ...servicePortInfo({ name, clusterIPs: ['10.96.0.10'], port: 80 }),
    endpoints: [],
    clusterEndpoints: [],
    hasAnyEndpoints: { IPv4: true, IPv6: false },
    ...o,
  };
}

test('noLocalEndpoints: Local policies with endpoints elsewhere but none here, per policy and family', () => {
  const remote = [ep('10.244.2.2', false)];
  const ports = [
    sp('internal-none', { internalPolicyLocal: true, localEndpoints: [], endpoints: remote }),
    sp('external-none', { externalPolicyLocal: true, localEndpoints: [], endpoints: remote }),
    sp('both-none', { internalPolicyLocal: true, externalPolicyLocal: true, localEndpoints: [] }),
    sp('has-local', { externalPolicyLocal: true, localEndpoints: [ep('10.244.1.2', true)] }),
    sp('no-endpoints-at-all', { externalPolicyLocal: true, localEndpoints: [], hasAnyEndpoints: { IPv4: false, IPv6: false } }),
    sp('cluster', { localEndpoints: [] }),
  ];
  const snapshot: ProxySnapshot = { nodeName: 'me', servicePorts: new Map(ports.map((p) => [p.id, p])), changed: 'all' };
  expect(noLocalEndpoints(snapshot, 'IPv4')).toEqual({ internal: 2, external: 2 });
  expect(noLocalEndpoints(snapshot, 'IPv6')).toEqual({ internal: 0, external: 0 });
});
