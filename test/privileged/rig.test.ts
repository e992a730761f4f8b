// Self-test of the end-to-end rig (test/rig): the topology carries real
// traffic the way DESIGN.md §7 says, and teardown leaves nothing behind.
// Needs root (network namespaces); skips with the reason otherwise.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLUSTER_POD_CIDR, createCluster, createClusterFromPlan, listNamespaces, planCluster, withCluster } from '../../src/rig/cluster.ts';
import type { Cluster, Pod, RequestResult } from '../../src/rig/cluster.ts';

const notRoot = process.getuid?.() === 0 ? false : 'requires root: the rig creates network namespaces';
if (notRoot) console.log(`rig.test.ts: skipped: ${notRoot}`);

async function leftovers(prefix: string): Promise<string[]> {
  return (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
}

function assertAllOk(results: RequestResult[], count: number, what: string): void {
  assert.equal(results.length, count, what);
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(failed, [], `${what}: ${failed.length} of ${count} failed`);
}

/** Direct pod-to-pod traffic: right backend, no NAT in either direction. */
async function assertDirect(c: Cluster, from: Pod, to: Pod): Promise<void> {
  for (const [proto, port] of [
    ['tcp', 8080],
    ['udp', 5353],
  ] as const) {
    const what = `${from.name} -> ${to.name} ${proto}`;
    const results = await c.request(from, { proto, ip: to.ip, port, count: 5 });
    assertAllOk(results, 5, what);
    const ports = new Set<number>();
    for (const r of results) {
      assert.equal(r.backend, to.name, what);
      assert.deepEqual(r.reply, { ip: to.ip, port }, `${what}: reply source`);
      assert.deepEqual(r.seenLocal, { ip: to.ip, port }, `${what}: destination the backend saw`);
      assert.deepEqual(r.seenClient, { ip: from.ip, port: r.local?.port }, `${what}: client the backend saw`);
      ports.add(r.seenClient?.port ?? 0);
    }
    assert.equal(ports.size, 5, `${what}: every request has its own source port`);
  }
}

test('plan: names fit the kernel and addresses follow the plan', () => {
  const plan = planCluster({ nodes: 3, podsPerNode: 4, prefix: 'sy9999zz' });
  assert.equal(new Set(plan.namespaces).size, plan.namespaces.length, 'namespace names are unique');
  assert.equal(plan.namespaces.length, 2 + 3 + 3 * 4);
  for (const line of [...plan.fabricSetup.batch, ...plan.setup.flatMap((s) => s.batch)]) {
    for (const m of line.matchAll(/\b(?:dev|name|master|add|set) (\S+)/g)) {
      const name = m[1] ?? '';
      if (/^[a-z]/.test(name) && !/^(type|dev|default|unreachable|lo)$/.test(name)) {
        assert.ok(name.length <= 15, `interface name ${name} in "${line}" is longer than 15`);
      }
    }
  }
  const node2 = plan.nodes[1];
  assert.ok(node2);
  assert.equal(node2.addr, '198.18.0.2');
  assert.equal(node2.podCidr, '10.244.2.0/24');
  assert.deepEqual(
    node2.pods.map((p) => [p.name, p.ip, p.hostIf]),
    [
      ['pod-2-0', '10.244.2.10', 'veth0'],
      ['pod-2-1', '10.244.2.11', 'veth1'],
      ['pod-2-2', '10.244.2.12', 'veth2'],
      ['pod-2-3', '10.244.2.13', 'veth3'],
    ],
  );
  assert.ok(CLUSTER_POD_CIDR.startsWith('10.244.'));
  assert.throws(() => planCluster({ nodes: 100, podsPerNode: 1, prefix: 'sy1' }), RangeError);
  assert.throws(() => planCluster({ nodes: 1, podsPerNode: 1, prefix: 'Bad-Prefix' }), RangeError);
});

test('2 nodes x 2 pods carry real traffic and leave nothing behind', { skip: notRoot }, async (t) => {
  const t0 = performance.now();
  const c = await createCluster({ nodes: 2, podsPerNode: 2 });
  const createMs = Math.round(performance.now() - t0);
  t.diagnostic(`create: ${createMs} ms (prefix ${c.prefix})`);
  try {
    assert.deepEqual((await leftovers(c.prefix)).sort(), [...c.namespaces].sort(), 'every namespace exists');
    const t1 = performance.now();
    await Promise.all([...c.pods.map((p) => c.startBackend(p, { tcp: [8080], udp: [5353] })), c.startBackend(c.node(1), { tcp: [9090] })]);
    t.diagnostic(`backends: ${Math.round(performance.now() - t1)} ms`);

    await t.test('pod to pod on another node, by pod IP', () => assertDirect(c, c.pod(1, 0), c.pod(2, 1)));
    await t.test('pod to pod on the same node, by pod IP', () => assertDirect(c, c.pod(1, 0), c.pod(1, 1)));

    await t.test('ext reaches a host-network backend on node 1, unNATed', async () => {
      const results = await c.request(c.ext, { proto: 'tcp', ip: c.node(1).addr, port: 9090, count: 3 });
      assertAllOk(results, 3, 'ext -> node-1:9090');
      for (const r of results) {
        assert.equal(r.backend, 'node-1');
        assert.equal(r.seenClient?.ip, c.ext.addr);
      }
    });

    await t.test('a pod on node 2 reaches node 1 with its own address', async () => {
      const from = c.pod(2, 0);
      const results = await c.request(from, { proto: 'tcp', ip: c.node(1).addr, port: 9090, count: 2 });
      assertAllOk(results, 2, `${from.name} -> node-1:9090`);
      for (const r of results) assert.equal(r.seenClient?.ip, from.ip);
    });

    await t.test('one client process makes 200 connections', async () => {
      const t2 = performance.now();
      const results = await c.request(c.pod(2, 0), { proto: 'tcp', ip: c.pod(1, 1).ip, port: 8080, count: 200, concurrency: 20 });
      t.diagnostic(`200 TCP requests: ${Math.round(performance.now() - t2)} ms`);
      assertAllOk(results, 200, '200 requests');
    });

    await t.test('what is not routed fails instead of reaching anything', async () => {
      const [svc, extToPod, missingPod] = await Promise.all([
        // No dataplane: an untranslated Service IP goes to the gateway and dies there.
        c.request(c.pod(1, 0), { proto: 'tcp', ip: '10.96.0.10', port: 80, timeoutMs: 300 }),
        // The gateway has no route to pods, as outside a real cluster.
        c.request(c.ext, { proto: 'udp', ip: c.pod(1, 0).ip, port: 5353, timeoutMs: 300 }),
        // A pod IP of node 1 without a pod: unreachable on the node, at once.
        c.request(c.pod(2, 0), { proto: 'tcp', ip: '10.244.1.99', port: 8080, timeoutMs: 1000 }),
      ]);
      assert.equal(svc[0]?.ok, false);
      assert.equal(extToPod[0]?.ok, false);
      assert.equal(missingPod[0]?.ok, false);
      assert.equal(missingPod[0]?.error, 'EHOSTUNREACH');
    });
  } finally {
    await c.destroy();
  }
  assert.deepEqual(await leftovers(c.prefix), [], 'no namespace with the prefix remains');
  await c.destroy(); // idempotent
});

test('withCluster destroys the cluster when the body throws', { skip: notRoot }, async () => {
  let prefix = '';
  let backendExited: Promise<unknown> = Promise.resolve();
  await assert.rejects(
    withCluster({ nodes: 1, podsPerNode: 1 }, async (c) => {
      prefix = c.prefix;
      const backend = await c.startBackend(c.pod(1, 0), { tcp: [8080] });
      backendExited = backend.exited;
      assert.equal(backend.running, true);
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.notEqual(prefix, '');
  await backendExited;
  assert.deepEqual(await leftovers(prefix), []);
});

test('a create that fails midway deletes what it created', { skip: notRoot }, async () => {
  const plan = planCluster({ nodes: 2, podsPerNode: 1, prefix: `sy${process.pid % 10000}fx` });
  const node1 = plan.nodes[0];
  assert.ok(node1);
  const broken = {
    ...plan,
    setup: [...plan.setup, { ns: node1.ns, script: 'ip -batch -', batch: ['route add 10.244.7.0/24 dev nosuchdev'] }],
  };
  await assert.rejects(createClusterFromPlan(broken), /nosuchdev/);
  assert.deepEqual(await leftovers(plan.prefix), []);
  // A prefix that is in use is refused before anything is created.
  const c = await createClusterFromPlan(plan);
  try {
    await assert.rejects(createClusterFromPlan(plan), /already exist/);
    assert.equal((await leftovers(plan.prefix)).length, plan.namespaces.length);
  } finally {
    await c.destroy();
  }
  assert.deepEqual(await leftovers(plan.prefix), []);
});
