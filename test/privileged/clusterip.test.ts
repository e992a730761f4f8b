// End to end, real kernel, real traffic: ClusterIP Services programmed by a
// Switchyard daemon per node (started through the CLI contract) in a
// two-node namespace cluster, for TCP and UDP.

import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import type { Cluster } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import { needs } from '../support/requirements.ts';
import {
  type Backend,
  countBy,
  e2eTest,
  failures,
  requestService,
  scaled,
  serviceYaml,
  sliceYaml,
  startBackends,
  startDaemon,
  untilServed,
  WEB_PORTS,
  WEB_SLICE_PORTS,
} from './fixtures.ts';

const skip = needs('the ClusterIP end-to-end suite', ['root', 'ip', 'bpf-object', 'native-addon']);

const VIP = '10.96.0.10';
const SELF_VIP = '10.96.0.11';

/** What the tests share: the endpoints of `web` (a test that changes them updates this) and the daemons. */
interface Scenario {
  backends: Backend[];
  daemons: RigProcess[];
}

function webYaml(eps: readonly Backend[]): string {
  return `${serviceYaml('web', VIP, WEB_PORTS)}---\n${sliceYaml('web', [...eps], WEB_SLICE_PORTS)}`;
}

function web(c: Cluster, fromNode: number, proto: 'tcp' | 'udp', count: number): Promise<RequestResult[]> {
  return requestService(c, fromNode, proto, VIP, count);
}

/** Backends on pods 1 and 2 of each node behind `web`, pod 1-0 behind `self`, a daemon per node, `web` served from both nodes. */
const test = e2eTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster: c, pins, manifests }, use) => {
      const s: Scenario = { backends: [], daemons: [] };
      try {
        s.backends = await startBackends(c, { tcp: [8080], udp: [5353] });
        const self = c.pod(1, 0);
        await c.startBackend(self, { tcp: [9090] });
        manifests.write('web.yaml', webYaml(s.backends));
        manifests.write(
          'self.yaml',
          serviceYaml('self', SELF_VIP, [{ name: 'http', port: 90, targetPort: 9090, protocol: 'TCP' }]) +
            '---\n' +
            sliceYaml('self', [{ ip: self.ip, node: c.node(1).name }], [{ name: 'http', port: 9090, protocol: 'TCP' }]),
        );
        s.daemons = c.nodes.map((n) => startDaemon(c, n, manifests, pins));
        for (const n of [1, 2]) await untilServed(c, n, 'tcp', VIP, s.daemons);
        await use(s);
      } finally {
        await Promise.all(s.daemons.map((d) => d.stop()));
      }
    },
    { scope: 'file', auto: true },
  ],
});

describe.skipIf(skip)('ClusterIP Services through a daemon per node', () => {
  for (const proto of ['tcp', 'udp'] as const) {
    test(`${proto}: reachable from a pod on either node, every backend used, source preserved, reply from the ClusterIP`, async ({ cluster: c, scenario }) => {
      for (const n of [1, 2]) {
        const results = await web(c, n, proto, 200);
        expect(
          failures(results).map((r) => r.error),
          `node ${n}: every request answered`,
        ).toStrictEqual([]);
        const counts = countBy(results);
        expect([...counts.keys()].sort(), `node ${n}: all backends answered (${JSON.stringify([...counts])})`).toStrictEqual(
          scenario.backends.map((b) => b.name).sort(),
        );
        const client = c.pod(n, 0).ip;
        for (const r of results) {
          expect(r.seenClient?.ip, 'the backend sees the client pod address').toBe(client);
          expect(r.reply, 'the reply comes from ClusterIP:port').toStrictEqual({ ip: VIP, port: proto === 'tcp' ? 80 : 53 });
          expect(r.seenLocal?.port, 'the backend was reached on its targetPort').toBe(proto === 'tcp' ? 8080 : 5353);
        }
      }
    });
  }

  test('a pod reaches itself through its own Service (hairpin, masqueraded to the node)', async ({ cluster: c }) => {
    const self = c.pod(1, 0);
    const results = await c.request(self, { proto: 'tcp', ip: SELF_VIP, port: 90, count: 20, timeoutMs: 2000 });
    expect(failures(results).map((r) => r.error)).toStrictEqual([]);
    for (const r of results) {
      expect(r.backend).toBe(self.name);
      expect(r.seenClient?.ip, 'hairpin traffic is masqueraded to the node address').toBe(c.node(1).addr);
      expect(r.reply).toStrictEqual({ ip: SELF_VIP, port: 90 });
    }
  });

  test('removing an endpoint stops new connections to it within a second; the others keep working', async ({ cluster: c, manifests, scenario }) => {
    const removed = scenario.backends[3]!;
    const kept = scenario.backends.slice(0, 3);
    manifests.write('web.yaml', webYaml(kept));
    await sleep(scaled(1000)); // "within a second" (scaled only inside the qemu VMs)
    for (const proto of ['tcp', 'udp'] as const) {
      for (const n of [1, 2]) {
        const results = await web(c, n, proto, 60);
        expect(
          failures(results).map((r) => r.error),
          `${proto} node ${n}: every request answered`,
        ).toStrictEqual([]);
        const counts = countBy(results);
        expect(counts.get(removed.name), `${proto} node ${n}: ${removed.name} got no new connection`).toBe(undefined);
        expect([...counts.keys()].sort()).toStrictEqual(kept.map((b) => b.name).sort());
      }
    }
    scenario.backends = kept;
  });

  test('deleting the Service stops its translation', async ({ cluster: c, manifests }) => {
    manifests.remove('web.yaml');
    await sleep(scaled(1000)); // "within a second" (scaled only inside the qemu VMs)
    for (const proto of ['tcp', 'udp'] as const) {
      const results = await web(c, 1, proto, 5);
      expect(
        results.filter((r) => r.ok).length,
        `${proto}: nothing answers on the deleted ClusterIP (${JSON.stringify(results.map((r) => r.backend ?? r.error))})`,
      ).toBe(0);
    }
    const self = await c.request(c.pod(2, 0), { proto: 'tcp', ip: SELF_VIP, port: 90, count: 5, timeoutMs: 2000 });
    expect(
      failures(self).map((r) => r.error),
      'the other Service keeps working',
    ).toStrictEqual([]);
  });
});
