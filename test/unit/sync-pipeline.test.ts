import { expect, test } from 'vitest';
import { ClusterCache } from '../../src/sources/cache.ts';
import { parseObject, type KubeObject } from '../../src/sources/objects.ts';
import { SnapshotBuilder } from '../../src/model/snapshot.ts';
import type { ProxySnapshot } from '../../src/model/types.ts';
import { FakeClock } from '../../src/sync/clock.ts';
import { ProgrammingLatency, type LatencySample } from '../../src/sync/latency.ts';
import { createSnapshotSync } from '../../src/sync/pipeline.ts';
import { SyncRunner } from '../../src/sync/runner.ts';
import { nullLogger } from '../../src/util/log.ts';

function service(name: string, port = 80): KubeObject {
  const r = parseObject({ apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'http', port }] } });
  if (r.status !== 'valid') throw new Error('bad fixture');
  return r.object;
}

function setup() {
  const clock = new FakeClock(1_000);
  const cache = new ClusterCache({ now: () => clock.now() });
  const builder = new SnapshotBuilder({ cache, nodeName: 'n1' });
  const received: ProxySnapshot[] = [];
  const samples: LatencySample[] = [];
  let failing = false;
  const sink = {
    sync: async (s: ProxySnapshot) => {
      received.push(s);
      if (failing) throw new Error('map update failed: ENOSPC');
    },
  };
  const latency = new ProgrammingLatency({ onSample: (s) => samples.push(s) });
  const sync = createSnapshotSync({ changes: cache.changes, builder, sink, latency, clock, logger: nullLogger() });
  const runner = new SyncRunner({ sync, clock, logger: nullLogger(), minSyncPeriodMs: 1000, syncPeriodMs: 60_000, retryMinMs: 5000 });
  return { clock, cache, builder, received, samples, latency, runner, setFailing: (f: boolean) => (failing = f) };
}

const changedIds = (s: ProxySnapshot) => (s.changed === 'all' ? 'all' : [...s.changed].sort());

test('source -> cache -> model -> runner -> sink: a failed sync loses no change', async () => {
  const h = setup();
  h.runner.start();
  h.cache.apply(service('a'));
  h.runner.run();
  await h.clock.advance(0);
  expect(h.received.length).toBe(1);
  expect(changedIds(h.received[0]!)).toBe('all');

  await h.clock.advance(2000);
  h.setFailing(true);
  h.cache.apply(service('a', 81));
  h.runner.run();
  await h.clock.advance(0);
  expect(changedIds(h.received[1]!)).toStrictEqual(['default/a:http/TCP']);
  expect(h.cache.changes.size, 'changes not committed after the failure').toBe(1);
  expect(h.builder.committed, 'baseline not moved').toBe(h.received[0]);

  h.cache.apply(service('b'));
  h.setFailing(false);
  await h.clock.advance(5000); // retry
  const retry = h.received[2]!;
  expect(changedIds(retry), 'the retry carries the failed changes and the new ones').toStrictEqual(['default/a:http/TCP', 'default/b:http/TCP']);
  expect(retry.servicePorts.get('default/a:http/TCP')!.port).toBe(81);
  expect(h.cache.changes.size).toBe(0);
  expect(h.builder.committed).toBe(retry);
  await h.runner.stop();
});

test('latency is recorded per Service from first seen to programmed, only on success', async () => {
  const h = setup();
  h.runner.start();
  h.runner.run(); // initial full sync of an empty cache at t=1000
  await h.clock.advance(3000); // t=4000
  h.cache.apply(service('a')); // seen at 4000
  h.setFailing(true);
  h.runner.run();
  await h.clock.advance(0); // fails at t=4000
  expect(h.samples).toStrictEqual([]);
  await h.clock.advance(1000);
  h.cache.apply(service('a', 82)); // changed again at 5000: first-seen stays 4000
  h.setFailing(false);
  await h.clock.advance(5000); // retry at 9000
  expect(h.samples).toStrictEqual([{ service: 'default/a', seenAt: 4000, programmedAt: 9000, ms: 5000 }]);
  expect(h.latency.last('default/a')).toStrictEqual(h.samples[0]);
  await h.runner.stop();
});

test('an incremental request with nothing pending does not call the dataplane', async () => {
  const h = setup();
  h.runner.start();
  h.runner.run();
  await h.clock.advance(2000);
  h.runner.run();
  await h.clock.advance(2000);
  expect(h.received.length).toBe(1);
  await h.runner.stop();
});

test("network programming latency starts at the EndpointSlice's last-change-trigger-time (earliest pending)", async () => {
  const h = setup();
  h.runner.start();
  h.runner.run();
  await h.clock.advance(2000);
  const slice = (name: string, trigger: string): KubeObject => {
    const r = parseObject({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name,
        namespace: 'default',
        labels: { 'kubernetes.io/service-name': 'a' },
        annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': trigger },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.244.1.5'] }],
      ports: [{ name: 'http', port: 8080 }],
    });
    if (r.status !== 'valid') throw new Error(`fixture: ${r.status}`);
    return r.object;
  };
  const wallBefore = Date.now();
  h.cache.apply(service('a'));
  h.cache.apply(slice('a-1', new Date(wallBefore - 3000).toISOString()));
  h.cache.apply(slice('a-2', new Date(wallBefore - 1000).toISOString())); // later trigger: the earliest one counts
  h.runner.run();
  await h.clock.advance(1000);
  const latency = h.samples.find((x) => x.service === 'default/a')?.networkProgrammingMs;
  expect(latency, 'a sample with network programming latency').toBeDefined();
  expect(latency, 'latency from the earliest trigger').toBeGreaterThanOrEqual(3000);
  expect(latency, 'latency from the earliest trigger').toBeLessThan(3000 + (Date.now() - wallBefore) + 5);
  await h.runner.stop();
});
