// Kubernetes Events on the Node through @kubernetes/client-node, recorded by
// the fake API server: the events.k8s.io/v1 body (regarding the Node,
// reportingController, MicroTime), rate-limiting per reason, and the
// daemon's reasons (sync failure, full map, mode fallback) from Operations.

import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { apiEventSink, apiProbe } from '../../src/cli/kube-ops.ts';
import { waitForApiServer } from '../../src/cli/preflight.ts';
import { EventRecorder, isMapFull, microTime } from '../../src/ops/events.ts';
import { ProxyHealth } from '../../src/ops/health.ts';
import { ProxyMetrics } from '../../src/ops/metrics.ts';
import { Operations } from '../../src/ops/operations.ts';
import { ServiceHealthServer } from '../../src/ops/service-health.ts';
import { DataplaneError } from '../../src/dataplane/types.ts';
import { FakeApiServer } from '../fake-apiserver/server.ts';

let api: FakeApiServer;
beforeEach(async () => {
  api = await FakeApiServer.start();
});
afterEach(async () => {
  await api.close();
});

function kubeConfig(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'fake', server, skipTLSVerify: true }, { name: 'anonymous' });
  return kc;
}

const T = Date.UTC(2026, 0, 2, 3, 4, 5, 6);

describe('EventRecorder through the API', () => {
  test("posts an events.k8s.io/v1 Event regarding this Node, as kube-proxy's recorder does", async () => {
    const rec = new EventRecorder({ sink: apiEventSink(kubeConfig(api.url)), nodeName: 'node-a', now: () => T });
    expect(rec.record({ type: 'Warning', reason: 'SyncFailed', action: 'Sync', note: 'programming Services failed: boom' })).toBe(true);
    await rec.flush();
    expect(api.events).toHaveLength(1);
    expect(api.events[0]).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { namespace: 'default' },
      eventTime: '2026-01-02T03:04:05.006000Z',
      reportingController: 'switchyard',
      reportingInstance: 'switchyard-node-a',
      action: 'Sync',
      reason: 'SyncFailed',
      type: 'Warning',
      note: 'programming Services failed: boom',
      regarding: { kind: 'Node', name: 'node-a', uid: 'node-a', apiVersion: 'v1' },
    });
    expect(String((api.events[0]?.['metadata'] as Record<string, unknown> | undefined)?.['name'])).toMatch(/^node-a\.[0-9a-f]+$/);
  });

  test('one reason per object at most once a minute; other reasons and objects pass', async () => {
    let now = T;
    const rec = new EventRecorder({ sink: apiEventSink(kubeConfig(api.url)), nodeName: 'node-a', now: () => now });
    const e = { type: 'Warning', reason: 'SyncFailed', action: 'Sync', note: 'x' } as const;
    expect(rec.record(e)).toBe(true);
    expect(rec.record(e)).toBe(false);
    expect(rec.record({ ...e, reason: 'BPFMapFull' })).toBe(true);
    expect(rec.record({ ...e, regarding: { kind: 'Service', namespace: 'ns', name: 'web' } })).toBe(true);
    now += 60_000;
    expect(rec.record(e)).toBe(true);
    await rec.flush();
    expect(api.events.map((ev) => ev['reason'])).toEqual(['SyncFailed', 'BPFMapFull', 'SyncFailed', 'SyncFailed']);
    expect(api.events[2]).toMatchObject({ metadata: { namespace: 'ns' }, regarding: { kind: 'Service', namespace: 'ns', name: 'web' } });
  });

  test('an unreachable API server loses the event without throwing', async () => {
    const url = api.url;
    await api.close();
    const rec = new EventRecorder({ sink: apiEventSink(kubeConfig(url)), nodeName: 'node-a' });
    expect(rec.record({ type: 'Normal', reason: 'Test', action: 'Sync', note: 'x' })).toBe(true);
    await expect(rec.flush()).resolves.toBeUndefined();
    api = await FakeApiServer.start(); // for afterEach
  });
});

test('microTime: six fractional digits; isMapFull: E2BIG or ENOSPC anywhere in the cause chain', () => {
  expect(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 6) + 0.5)).toBe('2026-01-02T03:04:05.006500Z');
  const e2big = Object.assign(new Error('Argument list too long'), { errno: 7, code: 'E2BIG', syscall: 'bpf_map_update_batch' });
  expect(isMapFull(DataplaneError.kernel('bpf', 'update sy_svc4_v2 (3 entries)', e2big))).toBe(true);
  expect(isMapFull(new Error('other'))).toBe(false);
});

describe('Operations: the daemon wiring', () => {
  function ops(recorded: Record<string, unknown>[]) {
    const events = new EventRecorder({ sink: { post: async (b) => void recorded.push(b) }, nodeName: 'node-a' });
    const health = new ProxyHealth({ healthTimeoutMs: 60_000 });
    const metrics = new ProxyMetrics({ families: ['IPv4'], proxyMode: 'bpf', defaultMetrics: false });
    const serviceHealth = new ServiceHealthServer({ proxyHealthy: () => health.healthy, addresses: ['127.0.0.1'] });
    const o = new Operations({
      families: ['IPv4'],
      health,
      metrics,
      serviceHealth,
      events,
      healthzBindAddress: '',
      metricsBindAddress: '',
      bindAddressHardFail: false,
    });
    return { o, health, metrics, events };
  }
  const request = { full: false, reason: 'requested' } as const;

  test('a failure streak gives one SyncFailed Event, a full map BPFMapFull; success marks health updated', async () => {
    const recorded: Record<string, unknown>[] = [];
    const { o, health, metrics, events } = ops(recorded);
    const full = DataplaneError.kernel('bpf', 'update sy_be4_v2', Object.assign(new Error('full'), { errno: 7, code: 'E2BIG', syscall: 'bpf' }));
    o.attempt({ request, startedAt: 0, endedAt: 5, error: full, failures: 1 });
    o.attempt({ request, startedAt: 10, endedAt: 15, error: new Error('again'), failures: 2 });
    o.modeFallback('bpf', 'ipvs', 'tc attach refused');
    await events.flush();
    expect(recorded.map((e) => e['reason'])).toEqual(['BPFMapFull', 'SyncFailed', 'ProxyModeFallback']);
    expect(health.health().status).toBeUndefined();
    o.attempt({ request, startedAt: 20, endedAt: 21, error: null, failures: 0 });
    expect(health.health().status?.['IPv4']?.healthy).toBe(true);
    const text = await metrics.scrape();
    expect(text).toContain('switchyard_sync_failures_total{full="false"} 2');
    expect(text).toContain('kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family="IPv4"} 3');
    await o.stop();
  });

  test('with --bind-address-hard-fail a port in use ends start() with ERR_SY_BIND; without, it is logged and retried', async () => {
    const recorded: Record<string, unknown>[] = [];
    const { health, metrics, events } = ops(recorded);
    const first = await metrics.serve('127.0.0.1:0');
    const base = { families: ['IPv4'] as const, health, metrics, events, serviceHealth: new ServiceHealthServer({ proxyHealthy: () => true }) };
    const hard = new Operations({ ...base, healthzBindAddress: `127.0.0.1:${first.port}`, metricsBindAddress: '', bindAddressHardFail: true });
    await expect(hard.start()).rejects.toMatchObject({ code: 'ERR_SY_BIND', message: expect.stringMatching(/healthz on 127\.0\.0\.1:\d+: .*EADDRINUSE/) });
    // The metrics port fails after the health port opened: that one is closed again, so the process can exit.
    const freeHealth = await metrics.serve('127.0.0.1:0');
    const healthPort = freeHealth.port;
    await freeHealth.close();
    const half = new Operations({
      ...base,
      healthzBindAddress: `127.0.0.1:${healthPort}`,
      metricsBindAddress: `127.0.0.1:${first.port}`,
      bindAddressHardFail: true,
    });
    await expect(half.start()).rejects.toMatchObject({ code: 'ERR_SY_BIND' });
    await expect(fetch(`http://127.0.0.1:${healthPort}/livez`)).rejects.toThrow();
    const soft = new Operations({ ...base, healthzBindAddress: `127.0.0.1:${first.port}`, metricsBindAddress: '', bindAddressHardFail: false, rebindMs: 20 });
    await soft.start();
    await first.close();
    // The retry binds the port once it is free: /livez answers.
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = await fetch(`http://127.0.0.1:${first.port}/livez`).then(
        (r) => r.status,
        () => 0,
      );
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(200);
    await soft.stop();
  });
});

describe('waitForApiServer with the client probe', () => {
  test('answers at once when the server is up', async () => {
    await expect(waitForApiServer({ probe: apiProbe(kubeConfig(api.url), 'node-a'), server: api.url, timeoutMs: 5000 })).resolves.toBeUndefined();
    expect(api.requestsFor('nodes', false)[0]?.query).toMatchObject({ fieldSelector: 'metadata.name=node-a', limit: '1' });
  });

  test('a server that never answers fails after the bounded wait, naming server and fix', async () => {
    const url = api.url;
    await api.close();
    const err = await waitForApiServer({ probe: apiProbe(kubeConfig(url), 'node-a'), server: url, timeoutMs: 300, intervalMs: 50 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'ERR_SY_PREFLIGHT', check: 'api-server' });
    expect((err as Error).message).toContain(`api-server: ${url} did not answer within 0 s`);
    expect((err as Error).message).toMatch(/check the kubeconfig's server address/);
    api = await FakeApiServer.start();
  });
});
