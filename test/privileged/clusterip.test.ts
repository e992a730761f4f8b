// End to end, real kernel, real traffic: ClusterIP Services programmed by a
// Switchyard daemon per node (started through the CLI contract) in a
// two-node namespace cluster, for TCP and UDP.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCluster, type Cluster } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import { isRoot, PinRoot, Manifests, startDaemon, eventually, countBy, failures, sleep, serviceYaml, sliceYaml, SETTLE_MS, scaled } from './harness.ts';

const VIP = '10.96.0.10';
const SELF_VIP = '10.96.0.11';
const WEB_PORTS = [
  { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' as const },
];
const SLICE_PORTS = [
  { name: 'http', port: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 5353, protocol: 'UDP' as const },
];

const root = isRoot();
if (!root) console.log('# skipping ClusterIP end-to-end tests: they need root (network namespaces, BPF, tc)');

let c: Cluster;
let pins: PinRoot;
let manifests: Manifests;
let daemons: RigProcess[] = [];
let backendPods: { name: string; ip: string; node: string }[] = [];

function webSlice(eps: typeof backendPods): string {
  return sliceYaml(
    'web',
    eps.map((e) => ({ ip: e.ip, node: e.node })),
    SLICE_PORTS,
  );
}

async function web(fromNode: number, proto: 'tcp' | 'udp', count: number): Promise<RequestResult[]> {
  return c.request(c.pod(fromNode, 0), { proto, ip: VIP, port: proto === 'tcp' ? 80 : 53, count, concurrency: 10, timeoutMs: 2000 });
}

before(async () => {
  if (!root) return;
  c = await createCluster({ nodes: 2, podsPerNode: 3 });
  pins = new PinRoot('e2e');
  pins.mount();
  manifests = new Manifests();
  for (const n of [1, 2]) {
    for (const k of [1, 2]) {
      const pod = c.pod(n, k);
      await c.startBackend(pod, { tcp: [8080], udp: [5353] });
      backendPods.push({ name: pod.name, ip: pod.ip, node: c.node(n).name });
    }
  }
  const self = c.pod(1, 0);
  await c.startBackend(self, { tcp: [9090] });
  manifests.write('web.yaml', `${serviceYaml('web', VIP, WEB_PORTS)}---\n${webSlice(backendPods)}`);
  manifests.write(
    'self.yaml',
    serviceYaml('self', SELF_VIP, [{ name: 'http', port: 90, targetPort: 9090, protocol: 'TCP' }]) +
      '---\n' +
      sliceYaml('self', [{ ip: self.ip, node: c.node(1).name }], [{ name: 'http', port: 9090, protocol: 'TCP' }]),
  );
  daemons = c.nodes.map((n) => startDaemon(c, n, manifests, pins));
  for (const n of [1, 2]) {
    await eventually(`ClusterIP ${VIP}:80 from node ${n}`, SETTLE_MS, async () => (await web(n, 'tcp', 1))[0]?.ok === true, daemons);
  }
});

after(async () => {
  if (!root) return;
  await c?.destroy();
  pins?.unmount();
  manifests?.destroy();
});

for (const proto of ['tcp', 'udp'] as const) {
  test(`${proto}: reachable from a pod on either node, every backend used, source preserved, reply from the ClusterIP`, { skip: !root }, async () => {
    for (const n of [1, 2]) {
      const results = await web(n, proto, 200);
      assert.deepEqual(
        failures(results).map((r) => r.error),
        [],
        `node ${n}: every request answered`,
      );
      const counts = countBy(results);
      assert.deepEqual([...counts.keys()].sort(), backendPods.map((b) => b.name).sort(), `node ${n}: all backends answered (${JSON.stringify([...counts])})`);
      const client = c.pod(n, 0).ip;
      for (const r of results) {
        assert.equal(r.seenClient?.ip, client, 'the backend sees the client pod address');
        assert.deepEqual(r.reply, { ip: VIP, port: proto === 'tcp' ? 80 : 53 }, 'the reply comes from ClusterIP:port');
        assert.equal(r.seenLocal?.port, proto === 'tcp' ? 8080 : 5353, 'the backend was reached on its targetPort');
      }
    }
  });
}

test('a pod reaches itself through its own Service (hairpin, masqueraded to the node)', { skip: !root }, async () => {
  const self = c.pod(1, 0);
  const results = await c.request(self, { proto: 'tcp', ip: SELF_VIP, port: 90, count: 20, timeoutMs: 2000 });
  assert.deepEqual(
    failures(results).map((r) => r.error),
    [],
  );
  for (const r of results) {
    assert.equal(r.backend, self.name);
    assert.equal(r.seenClient?.ip, c.node(1).addr, 'hairpin traffic is masqueraded to the node address');
    assert.deepEqual(r.reply, { ip: SELF_VIP, port: 90 });
  }
});

test('removing an endpoint stops new connections to it within a second; the others keep working', { skip: !root }, async () => {
  const removed = backendPods[3]!;
  const kept = backendPods.slice(0, 3);
  manifests.write('web.yaml', `${serviceYaml('web', VIP, WEB_PORTS)}---\n${webSlice(kept)}`);
  await sleep(scaled(1000)); // "within a second" (scaled only inside the qemu VMs)
  for (const proto of ['tcp', 'udp'] as const) {
    for (const n of [1, 2]) {
      const results = await web(n, proto, 60);
      assert.deepEqual(
        failures(results).map((r) => r.error),
        [],
        `${proto} node ${n}: every request answered`,
      );
      const counts = countBy(results);
      assert.equal(counts.get(removed.name), undefined, `${proto} node ${n}: ${removed.name} got no new connection`);
      assert.deepEqual([...counts.keys()].sort(), kept.map((b) => b.name).sort());
    }
  }
  backendPods = kept;
});

test('deleting the Service stops its translation', { skip: !root }, async () => {
  manifests.remove('web.yaml');
  await sleep(scaled(1000)); // "within a second" (scaled only inside the qemu VMs)
  for (const proto of ['tcp', 'udp'] as const) {
    const results = await web(1, proto, 5);
    assert.equal(
      results.filter((r) => r.ok).length,
      0,
      `${proto}: nothing answers on the deleted ClusterIP (${JSON.stringify(results.map((r) => r.backend ?? r.error))})`,
    );
  }
  const self = await c.request(c.pod(2, 0), { proto: 'tcp', ip: SELF_VIP, port: 90, count: 5, timeoutMs: 2000 });
  assert.deepEqual(
    failures(self).map((r) => r.error),
    [],
    'the other Service keeps working',
  );
});
