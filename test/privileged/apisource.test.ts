// End to end, real kernel, real traffic, with the Kubernetes API source: a
// Switchyard daemon per node started with --master (no --manifests), listing
// and watching a fake API server (test/fake-apiserver/main.ts) that runs in
// the rig's fabric namespace on the gateway address every node reaches. It
// serves a ClusterIP Service over TCP and UDP, an internalTrafficPolicy Local
// Service that only reaches endpoints on the client's node, and follows an
// EndpointSlice update and a Service deletion made through the API.

import { describe, expect } from 'vitest';
import type { Cluster } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import { needs } from '../support/requirements.ts';
import {
  type ApiServicePort,
  type ApiSlicePort,
  apiTest,
  type Backend,
  countBy,
  endpointPods,
  failures,
  nodeObject,
  requestService,
  serviceObject,
  sliceObject,
  startApiDaemon,
  until,
  untilServed,
} from './fixtures.ts';

const skip = needs('the API source end-to-end suite', ['root', 'ip', 'bpf-object', 'native-addon']);

const WEB_VIP = '10.96.0.30';
const LOCAL_VIP = '10.96.0.31';
const WEB_PORTS: ApiServicePort[] = [
  { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
  { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' },
];
const WEB_SLICE_PORTS: ApiSlicePort[] = [
  { name: 'http', port: 8080, protocol: 'TCP' },
  { name: 'dns', port: 5353, protocol: 'UDP' },
];
const LOCAL_PORTS: ApiServicePort[] = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }];
const LOCAL_SLICE_PORTS: ApiSlicePort[] = [{ name: 'http', port: 8080, protocol: 'TCP' }];
/** Every (protocol, client node) pair `web` is checked from. */
const EVERY_CLIENT = [
  ['tcp', 1],
  ['tcp', 2],
  ['udp', 1],
  ['udp', 2],
] as const;

/** What the tests share: pods 1 and 2 of each node (endpoints of both Services), and the processes whose logs a timeout shows. */
interface Scenario {
  backends: Backend[];
  daemons: RigProcess[];
  /** The daemons and the fake API server. */
  watched: RigProcess[];
}

function request(c: Cluster, fromNode: number, proto: 'tcp' | 'udp', vip: string, count: number, timeoutMs = 2000): Promise<RequestResult[]> {
  return requestService(c, fromNode, proto, vip, count, { timeoutMs });
}

function web(c: Cluster, fromNode: number, proto: 'tcp' | 'udp', count: number, timeoutMs?: number): Promise<RequestResult[]> {
  return request(c, fromNode, proto, WEB_VIP, count, timeoutMs);
}

function webSlice(eps: readonly Backend[]): Record<string, unknown> {
  return sliceObject('web', [...eps], WEB_SLICE_PORTS);
}

function names(bs: readonly Backend[]): string[] {
  return bs.map((b) => b.name).sort();
}

function answers(results: readonly RequestResult[]): string {
  return JSON.stringify(results.map((r) => r.backend ?? r.error));
}

/** Nodes, `web` and `local` in the API server, a daemon per node following it, backends, both Services served from both nodes. */
const test = apiTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster: c, pins, api }, use) => {
      const daemons: RigProcess[] = [];
      try {
        const pods = endpointPods(c);
        const backends = pods.map((pod) => ({ name: pod.name, ip: pod.ip, node: c.nodeOf(pod).name }));
        await api.apply(
          ...c.nodes.map((n) => nodeObject(n.name, n.addr)),
          serviceObject('web', WEB_VIP, WEB_PORTS),
          webSlice(backends),
          serviceObject('local', LOCAL_VIP, LOCAL_PORTS, { internalTrafficPolicy: 'Local' }),
          sliceObject('local', backends, LOCAL_SLICE_PORTS),
        );
        daemons.push(...c.nodes.map((n) => startApiDaemon(c, n, api.url, pins)));
        const watched = [...daemons, api.proc];
        // While the daemons start, and all at once: node starts slowly in the qemu VMs.
        await Promise.all(pods.map((pod) => c.startBackend(pod, { tcp: [8080], udp: [5353] })));
        for (const n of [1, 2]) {
          await untilServed(c, n, 'tcp', WEB_VIP, watched, 1000);
          await untilServed(c, n, 'tcp', LOCAL_VIP, watched, 1000);
        }
        await use({ backends, daemons, watched });
      } finally {
        await Promise.all(daemons.map((d) => d.stop()));
      }
    },
    { scope: 'file', auto: true },
  ],
});

describe.skipIf(skip)('daemons fed by the Kubernetes API', () => {
  test('the daemons program from the API server: each lists and watches Services, EndpointSlices and its Node', async ({ api, scenario }) => {
    for (const d of scenario.daemons) {
      expect(d.running, `${d.describe()} is running`).toBe(true);
      expect(d.stderr + d.stdout, `${d.ns}: the daemon runs from the Kubernetes API source`).toMatch(/kubernetes api/);
    }
    const s = await api.status();
    expect(s.openWatches.services, `a Service watch per daemon (${JSON.stringify(s)})`).toBeGreaterThanOrEqual(2);
    expect(s.openWatches.endpointslices, `an EndpointSlice watch per daemon (${JSON.stringify(s)})`).toBeGreaterThanOrEqual(2);
    expect(s.openWatches.nodes, `a Node watch per daemon (${JSON.stringify(s)})`).toBeGreaterThanOrEqual(2);
  });

  for (const proto of ['tcp', 'udp'] as const) {
    test(`${proto}: reachable from a pod on either node, every backend used, source preserved, reply from the ClusterIP`, async ({ cluster: c, scenario }) => {
      for (const n of [1, 2]) {
        const results = await web(c, n, proto, 200);
        expect(
          failures(results).map((r) => r.error),
          `node ${n}: every request answered`,
        ).toStrictEqual([]);
        const counts = countBy(results);
        expect([...counts.keys()].sort(), `node ${n}: all backends answered (${JSON.stringify([...counts])})`).toStrictEqual(names(scenario.backends));
        const client = c.pod(n, 0).ip;
        for (const r of results) {
          expect(r.seenClient?.ip, 'the backend sees the client pod address').toBe(client);
          expect(r.reply, 'the reply comes from ClusterIP:port').toStrictEqual({ ip: WEB_VIP, port: proto === 'tcp' ? 80 : 53 });
          expect(r.seenLocal?.port, 'the backend was reached on its targetPort').toBe(proto === 'tcp' ? 8080 : 5353);
        }
      }
    });
  }

  test('internalTrafficPolicy Local: a pod reaches only the endpoints on its own node, all of them', async ({ cluster: c, scenario }) => {
    const { backends } = scenario;
    for (const n of [1, 2]) {
      const node = c.node(n).name;
      const local = backends.filter((b) => b.node === node);
      const results = await request(c, n, 'tcp', LOCAL_VIP, 60);
      expect(
        failures(results).map((r) => r.error),
        `node ${n}: every request answered`,
      ).toStrictEqual([]);
      const counts = countBy(results);
      const nodeOf = new Map(backends.map((b) => [b.name, b.node]));
      for (const name of counts.keys())
        expect(nodeOf.get(name), `node ${n}: ${name} answered, but it is not on ${node} (${JSON.stringify([...counts])})`).toBe(node);
      expect([...counts.keys()].sort(), `node ${n}: both local endpoints used (${JSON.stringify([...counts])})`).toStrictEqual(names(local));
      const client = c.pod(n, 0).ip;
      for (const r of results) {
        expect(r.seenClient?.ip, 'the backend sees the client pod address').toBe(client);
        expect(r.reply, 'the reply comes from ClusterIP:port').toStrictEqual({ ip: LOCAL_VIP, port: 80 });
      }
    }
  });

  test('an EndpointSlice update through the API stops new connections to the removed endpoint; the others keep working', async ({
    cluster: c,
    api,
    scenario,
  }) => {
    const removed = scenario.backends[3]!;
    const kept = scenario.backends.filter((b) => b !== removed);
    await api.apply(webSlice(kept));
    const stale = async (): Promise<boolean> => {
      const all = await Promise.all(EVERY_CLIENT.map(([proto, n]) => web(c, n, proto, 20, 1000)));
      return all.every((results) => failures(results).length === 0 && !countBy(results).has(removed.name));
    };
    await until(`${removed.name} out of ${WEB_VIP} on both nodes`, stale, scenario.watched);
    for (const proto of ['tcp', 'udp'] as const) {
      for (const n of [1, 2]) {
        const results = await web(c, n, proto, 60);
        expect(
          failures(results).map((r) => r.error),
          `${proto} node ${n}: every request answered`,
        ).toStrictEqual([]);
        const counts = countBy(results);
        expect(counts.get(removed.name), `${proto} node ${n}: ${removed.name} got no new connection`).toBe(undefined);
        expect([...counts.keys()].sort(), `${proto} node ${n}: the remaining endpoints all answer`).toStrictEqual(names(kept));
      }
    }
  });

  test('deleting the Service through the API stops its translation; the other Service keeps working', async ({ cluster: c, api, scenario }) => {
    await api.delete('Service', 'web');
    // Once untranslated, a request to the ClusterIP goes out the default route
    // and finds nothing: each probe waits out its timeouts, so it stays short.
    let last: RequestResult[][] = [];
    const gone = async (): Promise<boolean> => {
      last = await Promise.all(EVERY_CLIENT.map(([proto, n]) => web(c, n, proto, 5, 1000)));
      return last.every((results) => !results.some((r) => r.ok));
    };
    await until(`${WEB_VIP} untranslated on both nodes`, gone, scenario.watched).catch((err: Error) => {
      err.message += `\nlast answers per client (${EVERY_CLIENT.join(' ')}): ${last.map(answers).join(' ')}`;
      throw err;
    });
    for (const n of [1, 2]) {
      const results = await request(c, n, 'tcp', LOCAL_VIP, 10);
      expect(
        failures(results).map((r) => r.error),
        `node ${n}: ${LOCAL_VIP} still answers`,
      ).toStrictEqual([]);
      const node = c.node(n).name;
      for (const r of results) expect(scenario.backends.find((b) => b.name === r.backend)?.node, `node ${n}: still only local endpoints`).toBe(node);
    }
  });
});
