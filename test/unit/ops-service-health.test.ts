// Per-Service healthCheckNodePort servers (kube-proxy's ServiceHealthServer):
// opened and closed as Services come and go, kube-proxy's tab-indented body
// and headers, 503 without local ready endpoints or with an unhealthy proxy,
// a port that cannot be bound reported and retried.

import { createServer } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import type { EndpointInfo, ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';
import { ServiceHealthServer, healthCheckAddresses, healthChecksOf, serviceHealthBody } from '../../src/ops/service-health.ts';
import { servicePortInfo } from '../support/snapshots.ts';

const servers: ServiceHealthServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A free port on 127.0.0.1 (bound and released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function make(healthy = () => true) {
  const errors: string[] = [];
  const s = new ServiceHealthServer({
    addresses: ['127.0.0.1'],
    proxyHealthy: healthy,
    onListenError: (svc, port, err) => errors.push(`${svc}:${port}:${(err as NodeJS.ErrnoException).code}`),
  });
  servers.push(s);
  return { s, errors };
}

async function get(port: number, path = '/') {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, headers: r.headers, text: await r.text() };
}

test("kube-proxy's body, byte for byte", () => {
  expect(serviceHealthBody('ns', 'web', 2, true)).toBe(
    '{\n\t"service": {\n\t\t"namespace": "ns",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}',
  );
});

describe('ServiceHealthServer', () => {
  test('answers 200 with local endpoints, 503 without, weight header = count, any path', async () => {
    const { s } = make();
    const port = await freePort();
    await s.syncServices(new Map([['ns/web', port]]));
    s.syncEndpoints(new Map([['ns/web', 3]]));
    const r = await get(port, '/anything');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('x-load-balancing-endpoint-weight')).toBe('3');
    expect(r.text).toBe(serviceHealthBody('ns', 'web', 3, true));
    s.syncEndpoints(new Map()); // not named: 0
    const none = await get(port);
    expect(none.status).toBe(503);
    expect(none.headers.get('x-load-balancing-endpoint-weight')).toBe('0');
    expect(JSON.parse(none.text)).toEqual({ service: { namespace: 'ns', name: 'web' }, localEndpoints: 0, serviceProxyHealthy: true });
  });

  test('an unhealthy proxy fails every check even with endpoints', async () => {
    let healthy = true;
    const { s } = make(() => healthy);
    const port = await freePort();
    await s.syncServices(new Map([['ns/web', port]]));
    s.syncEndpoints(new Map([['ns/web', 1]]));
    healthy = false;
    const r = await get(port);
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text)).toMatchObject({ localEndpoints: 1, serviceProxyHealthy: false });
  });

  test('closes a Service that is gone and moves one whose port changed', async () => {
    const { s } = make();
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    await s.syncServices(
      new Map([
        ['ns/a', p1],
        ['ns/b', p2],
      ]),
    );
    expect((await get(p1)).status).toBe(503);
    await s.syncServices(new Map([['ns/b', p3]]));
    expect([...s.ports]).toEqual([['ns/b', p3]]);
    await expect(fetch(`http://127.0.0.1:${p1}/`)).rejects.toThrow();
    await expect(fetch(`http://127.0.0.1:${p2}/`)).rejects.toThrow();
    expect(JSON.parse((await get(p3)).text).service).toEqual({ namespace: 'ns', name: 'b' });
  });

  test('a port in use is reported, skipped, and opened on a later sync once free', async () => {
    const { s, errors } = make();
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    await s.syncServices(new Map([['ns/web', port]]));
    expect(errors).toEqual([`ns/web:${port}:EADDRINUSE`]);
    expect(s.ports.size).toBe(0);
    await new Promise<void>((r) => blocker.close(() => r()));
    await s.syncServices(new Map([['ns/web', port]]));
    expect(s.ports.get('ns/web')).toBe(port);
  });
});

function ep(ip: string, isLocal: boolean, ready = true): EndpointInfo {
  return { ip, port: 80, nodeName: isLocal ? 'me' : 'other', zone: null, ready, serving: ready, terminating: !ready, isLocal };
}

function sp(ns: string, name: string, portName: string, hc: number | null, endpoints: EndpointInfo[]): ServicePortInfo {
  return {
    // The fields these tests do not look at, as the model completes them.
    ...servicePortInfo({ namespace: ns, name, portName, clusterIPs: ['10.96.0.10'], port: 80 }),
    endpoints,
    clusterEndpoints: endpoints,
    healthCheckNodePort: hc,
  };
}

test('healthChecksOf: ports of Services with a healthCheckNodePort, distinct local ready IPs across ports', () => {
  const ports = [
    sp('ns', 'lb', 'http', 30001, [ep('10.244.1.2', true), ep('10.244.1.3', true), ep('10.244.1.4', true, false), ep('10.244.2.2', false)]),
    sp('ns', 'lb', 'https', 30001, [ep('10.244.1.2', true), ep('10.244.1.5', true)]),
    sp('ns', 'plain', '', null, [ep('10.244.1.9', true)]),
  ];
  const snapshot: ProxySnapshot = { nodeName: 'me', servicePorts: new Map(ports.map((p) => [p.id, p])), changed: 'all' };
  const { ports: hc, counts } = healthChecksOf(snapshot);
  expect([...hc]).toEqual([['ns/lb', 30001]]);
  expect(counts.get('ns/lb')).toBe(3);
  expect(counts.get('ns/plain')).toBe(1);
});

test('healthCheckAddresses: every address unless --nodeport-addresses narrows it (kube-proxy)', () => {
  const local = ['127.0.0.1', '198.18.0.10', '10.0.0.5', 'fd00:198:18::10'];
  expect(healthCheckAddresses([], local, '198.18.0.10')).toEqual(['0.0.0.0']);
  expect(healthCheckAddresses(['198.18.0.0/15', 'fd00:198:18::/64'], local, '198.18.0.10')).toEqual(['198.18.0.10', 'fd00:198:18::10']);
  expect(healthCheckAddresses(['primary'], local, '198.18.0.10')).toEqual(['198.18.0.10']);
  expect(healthCheckAddresses(['192.0.2.0/24'], local, '198.18.0.10')).toEqual(['0.0.0.0']);
});
