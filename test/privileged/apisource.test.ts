// End to end, real kernel, real traffic, with the Kubernetes API source: a
// Switchyard daemon per node started with --master (no --manifests), listing
// and watching a fake API server (test/fake-apiserver/main.ts) that runs in
// the rig's fabric namespace on the gateway address every node reaches. It
// serves a ClusterIP Service over TCP and UDP, an internalTrafficPolicy Local
// Service that only reaches endpoints on the client's node, and follows an
// EndpointSlice update and a Service deletion made through the API.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCluster, type Cluster } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import {
  isRoot,
  PinRoot,
  eventually,
  countBy,
  failures,
  SETTLE_MS,
  FakeApiProcess,
  startApiDaemon,
  serviceObject,
  sliceObject,
  nodeObject,
  type ApiServicePort,
  type ApiSlicePort,
} from './harness.ts';

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

const root = isRoot();
if (!root) console.log('# skipping API source end-to-end tests: they need root (network namespaces, BPF, tc)');

interface Backend {
  name: string;
  ip: string;
  node: string;
}

let c: Cluster;
let pins: PinRoot;
let api: FakeApiProcess;
let daemons: RigProcess[] = [];
/** Pods 1 and 2 of each node: endpoints of both Services. */
let backends: Backend[] = [];

/** Processes whose logs a timeout shows. */
function watched(): RigProcess[] {
  return api ? [...daemons, api.proc] : daemons;
}

function request(fromNode: number, proto: 'tcp' | 'udp', vip: string, count: number, timeoutMs = 2000): Promise<RequestResult[]> {
  return c.request(c.pod(fromNode, 0), { proto, ip: vip, port: proto === 'tcp' ? 80 : 53, count, concurrency: 10, timeoutMs });
}

function web(fromNode: number, proto: 'tcp' | 'udp', count: number, timeoutMs?: number): Promise<RequestResult[]> {
  return request(fromNode, proto, WEB_VIP, count, timeoutMs);
}

function webSlice(eps: readonly Backend[]): Record<string, unknown> {
  return sliceObject(
    'web',
    eps.map((e) => ({ ip: e.ip, node: e.node })),
    WEB_SLICE_PORTS,
  );
}

function names(bs: readonly Backend[]): string[] {
  return bs.map((b) => b.name).sort();
}

function describe(results: readonly RequestResult[]): string {
  return JSON.stringify(results.map((r) => r.backend ?? r.error));
}

before(async () => {
  if (!root) return;
  c = await createCluster({ nodes: 2, podsPerNode: 3 });
  pins = new PinRoot('api');
  pins.mount();
  api = await FakeApiProcess.start(c);
  const pods = [1, 2].flatMap((n) => [c.pod(n, 1), c.pod(n, 2)]);
  backends = pods.map((pod) => ({ name: pod.name, ip: pod.ip, node: c.nodeOf(pod).name }));
  await api.apply(
    ...c.nodes.map((n) => nodeObject(n.name, n.addr)),
    serviceObject('web', WEB_VIP, WEB_PORTS),
    webSlice(backends),
    serviceObject('local', LOCAL_VIP, LOCAL_PORTS, { internalTrafficPolicy: 'Local' }),
    sliceObject(
      'local',
      backends.map((b) => ({ ip: b.ip, node: b.node })),
      LOCAL_SLICE_PORTS,
    ),
  );
  daemons = c.nodes.map((n) => startApiDaemon(c, n, api.url, pins));
  // While the daemons start, and all at once: node starts slowly in the qemu VMs.
  await Promise.all(pods.map((pod) => c.startBackend(pod, { tcp: [8080], udp: [5353] })));
  for (const n of [1, 2]) {
    await eventually(`ClusterIP ${WEB_VIP}:80 from node ${n}`, SETTLE_MS, async () => (await web(n, 'tcp', 1, 1000))[0]?.ok === true, watched());
    await eventually(
      `ClusterIP ${LOCAL_VIP}:80 from node ${n}`,
      SETTLE_MS,
      async () => (await request(n, 'tcp', LOCAL_VIP, 1, 1000))[0]?.ok === true,
      watched(),
    );
  }
});

after(async () => {
  if (!root) return;
  await c?.destroy();
  await api?.stop();
  pins?.unmount();
});

test('the daemons program from the API server: each lists and watches Services, EndpointSlices and its Node', { skip: !root }, async () => {
  for (const d of daemons) {
    assert.ok(d.running, `${d.describe()} is running`);
    assert.match(d.stderr + d.stdout, /kubernetes api/, `${d.ns}: the daemon runs from the Kubernetes API source`);
  }
  const s = await api.status();
  assert.ok(s.openWatches.services >= 2, `a Service watch per daemon (${JSON.stringify(s)})`);
  assert.ok(s.openWatches.endpointslices >= 2, `an EndpointSlice watch per daemon (${JSON.stringify(s)})`);
  assert.ok(s.openWatches.nodes >= 2, `a Node watch per daemon (${JSON.stringify(s)})`);
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
      assert.deepEqual([...counts.keys()].sort(), names(backends), `node ${n}: all backends answered (${JSON.stringify([...counts])})`);
      const client = c.pod(n, 0).ip;
      for (const r of results) {
        assert.equal(r.seenClient?.ip, client, 'the backend sees the client pod address');
        assert.deepEqual(r.reply, { ip: WEB_VIP, port: proto === 'tcp' ? 80 : 53 }, 'the reply comes from ClusterIP:port');
        assert.equal(r.seenLocal?.port, proto === 'tcp' ? 8080 : 5353, 'the backend was reached on its targetPort');
      }
    }
  });
}

test('internalTrafficPolicy Local: a pod reaches only the endpoints on its own node, all of them', { skip: !root }, async () => {
  for (const n of [1, 2]) {
    const node = c.node(n).name;
    const local = backends.filter((b) => b.node === node);
    const results = await request(n, 'tcp', LOCAL_VIP, 60);
    assert.deepEqual(
      failures(results).map((r) => r.error),
      [],
      `node ${n}: every request answered`,
    );
    const counts = countBy(results);
    const nodeOf = new Map(backends.map((b) => [b.name, b.node]));
    for (const name of counts.keys())
      assert.equal(nodeOf.get(name), node, `node ${n}: ${name} answered, but it is not on ${node} (${JSON.stringify([...counts])})`);
    assert.deepEqual([...counts.keys()].sort(), names(local), `node ${n}: both local endpoints used (${JSON.stringify([...counts])})`);
    const client = c.pod(n, 0).ip;
    for (const r of results) {
      assert.equal(r.seenClient?.ip, client, 'the backend sees the client pod address');
      assert.deepEqual(r.reply, { ip: LOCAL_VIP, port: 80 }, 'the reply comes from ClusterIP:port');
    }
  }
});

test('an EndpointSlice update through the API stops new connections to the removed endpoint; the others keep working', { skip: !root }, async () => {
  const removed = backends[3]!;
  const kept = backends.filter((b) => b !== removed);
  await api.apply(webSlice(kept));
  const stale = async (): Promise<boolean> => {
    const all = await Promise.all(EVERY_CLIENT.map(([proto, n]) => web(n, proto, 20, 1000)));
    return all.every((results) => failures(results).length === 0 && !countBy(results).has(removed.name));
  };
  await eventually(`${removed.name} out of ${WEB_VIP} on both nodes`, SETTLE_MS, stale, watched());
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
      assert.deepEqual([...counts.keys()].sort(), names(kept), `${proto} node ${n}: the remaining endpoints all answer`);
    }
  }
});

test('deleting the Service through the API stops its translation; the other Service keeps working', { skip: !root }, async () => {
  await api.delete('Service', 'web');
  // Once untranslated, a request to the ClusterIP goes out the default route
  // and finds nothing: each probe waits out its timeouts, so it stays short.
  let last: RequestResult[][] = [];
  const gone = async (): Promise<boolean> => {
    last = await Promise.all(EVERY_CLIENT.map(([proto, n]) => web(n, proto, 5, 1000)));
    return last.every((results) => !results.some((r) => r.ok));
  };
  await eventually(`${WEB_VIP} untranslated on both nodes`, SETTLE_MS, gone, watched()).catch((err: Error) => {
    err.message += `\nlast answers per client (${EVERY_CLIENT.join(' ')}): ${last.map(describe).join(' ')}`;
    throw err;
  });
  for (const n of [1, 2]) {
    const results = await request(n, 'tcp', LOCAL_VIP, 10);
    assert.deepEqual(
      failures(results).map((r) => r.error),
      [],
      `node ${n}: ${LOCAL_VIP} still answers`,
    );
    const node = c.node(n).name;
    for (const r of results) assert.equal(backends.find((b) => b.name === r.backend)?.node, node, `node ${n}: still only local endpoints`);
  }
});
