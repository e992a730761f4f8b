// End to end, real kernel, real traffic: ClusterIP Services programmed by a
// Switchyard daemon per node (started through the CLI contract) in a
// two-node namespace cluster, for TCP and UDP; and a pod whose interface
// appears after the daemon started (a new pod sandbox), then a burst of 50.

import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import type { Cluster } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import { klogLines, logField } from '../../src/rig/switchyard.ts';
import { needs } from '../support/requirements.ts';
import {
  type Backend,
  countBy,
  e2eTest,
  failures,
  requestService,
  scaled,
  serviceYaml,
  until,
  sliceYaml,
  startBackends,
  startDaemon,
  untilServed,
  WEB_PORTS,
  WEB_SLICE_PORTS,
} from './fixtures.ts';

const skip = needs('the ClusterIP end-to-end suite', ['root', 'ip', 'bpf-object', 'native-addon', 'bpftool']);

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

/** Whether the daemon logged `bpf] "msg"` with interface=name. */
function logged(d: RigProcess, msg: string, name: string): boolean {
  return klogLines(d.stderr).some((l) => l.component === 'bpf' && l.msg === msg && logField(l, 'interface') === name);
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

  test('a pod interface created after the daemon started is attached and the pod reaches the Service; a gone one is forgotten', async ({
    cluster: c,
    scenario,
  }) => {
    const pod = c.pod(2, 0);
    const daemon = scenario.daemons[1] as RigProcess;
    const old = c.hostIf(pod) as string;
    expect(logged(daemon, 'attached', old), `${old} was attached at start`).toBe(true);
    await c.unplugPod(pod);
    await until(`node 2 forgets ${old}`, async () => logged(daemon, 'forgot interface', old), scenario.daemons);
    // A new sandbox: a new veth under a name the daemon has never seen, long after its start.
    await c.plugPod(pod, 'veth77');
    await until('node 2 attaches veth77', async () => logged(daemon, 'attached', 'veth77'), scenario.daemons);
    const filters = await c.exec(c.node(2), ['tc', 'filter', 'show', 'dev', 'veth77', 'ingress'], { check: true });
    expect(filters.stdout, 'the pod program on the new interface').toMatch(/sy_from_pod/);
    for (const proto of ['tcp', 'udp'] as const) {
      const results = await web(c, 2, proto, 40);
      expect(
        failures(results).map((r) => r.error),
        `${proto}: every request from the new interface answered`,
      ).toStrictEqual([]);
      for (const r of results) {
        expect(r.seenClient?.ip).toBe(pod.ip);
        expect(r.reply).toStrictEqual({ ip: VIP, port: proto === 'tcp' ? 80 : 53 });
      }
    }
  });

  test('50 pod interfaces created at once are all attached; deleted at once, all forgotten', async ({ cluster: c, scenario }) => {
    const node = c.node(1);
    const daemon = scenario.daemons[0] as RigProcess;
    // Host sides only (the peers stay in the node, named outside the patterns): what the daemon sees of 50 new pods.
    const names = Array.from({ length: 50 }, (_, i) => `veth${100 + i}`);
    const batch = (lines: string[]) => c.exec(node, ['ip', '-batch', '-'], { input: lines.map((l) => `${l}\n`).join(''), check: true });
    await batch(names.map((n, i) => `link add ${n} type veth peer name peer${100 + i}`));
    try {
      await until('all 50 attached', async () => names.every((n) => logged(daemon, 'attached', n)), scenario.daemons);
      const shown = await c.exec(node, ['bpftool', 'net', 'show'], { check: true });
      for (const n of names) expect(shown.stdout, `${n} has the pod programs`).toMatch(new RegExp(`^${n}\\(\\d+\\) \\S+/ingress sy_from_pod`, 'm'));
    } finally {
      await batch(names.map((n) => `link del ${n}`));
    }
    await until('all 50 forgotten', async () => names.every((n) => logged(daemon, 'forgot interface', n)), scenario.daemons);
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
