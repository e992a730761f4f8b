import { test } from 'node:test';
import assert from 'node:assert/strict';
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
  assert.equal(h.received.length, 1);
  assert.equal(changedIds(h.received[0]!), 'all');

  await h.clock.advance(2000);
  h.setFailing(true);
  h.cache.apply(service('a', 81));
  h.runner.run();
  await h.clock.advance(0);
  assert.deepEqual(changedIds(h.received[1]!), ['default/a:http/TCP']);
  assert.equal(h.cache.changes.size, 1, 'changes not committed after the failure');
  assert.equal(h.builder.committed, h.received[0], 'baseline not moved');

  h.cache.apply(service('b'));
  h.setFailing(false);
  await h.clock.advance(5000); // retry
  const retry = h.received[2]!;
  assert.deepEqual(changedIds(retry), ['default/a:http/TCP', 'default/b:http/TCP'], 'the retry carries the failed changes and the new ones');
  assert.equal(retry.servicePorts.get('default/a:http/TCP')!.port, 81);
  assert.equal(h.cache.changes.size, 0);
  assert.equal(h.builder.committed, retry);
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
  assert.deepEqual(h.samples, []);
  await h.clock.advance(1000);
  h.cache.apply(service('a', 82)); // changed again at 5000: first-seen stays 4000
  h.setFailing(false);
  await h.clock.advance(5000); // retry at 9000
  assert.deepEqual(h.samples, [{ service: 'default/a', seenAt: 4000, programmedAt: 9000, ms: 5000 }]);
  assert.deepEqual(h.latency.last('default/a'), h.samples[0]);
  await h.runner.stop();
});

test('an incremental request with nothing pending does not call the dataplane', async () => {
  const h = setup();
  h.runner.start();
  h.runner.run();
  await h.clock.advance(2000);
  h.runner.run();
  await h.clock.advance(2000);
  assert.equal(h.received.length, 1);
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
  const s = h.samples.find((x) => x.service === 'default/a');
  assert.ok(s?.networkProgrammingMs !== undefined, 'a sample with network programming latency');
  assert.ok(
    s.networkProgrammingMs >= 3000 && s.networkProgrammingMs < 3000 + (Date.now() - wallBefore) + 5,
    `latency ${s.networkProgrammingMs} ms from the earliest trigger`,
  );
  await h.runner.stop();
});
