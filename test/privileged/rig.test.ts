// Self-test of the end-to-end rig (src/rig): the topology carries real
// traffic the way DESIGN.md §7 says, and teardown leaves nothing behind.
// Needs root (network namespaces) and ip, except the plan test; skips with
// the reason otherwise.

import { test as base, describe, expect } from 'vitest';
import { CLUSTER_POD_CIDR, createCluster, createClusterFromPlan, listNamespaces, planCluster, withCluster } from '../../src/rig/cluster.ts';
import type { Cluster, Pod, RequestResult } from '../../src/rig/cluster.ts';
import { needs } from '../support/requirements.ts';

const skip = needs('the rig suite (all but the plan test)', ['root', 'ip']);

async function leftovers(prefix: string): Promise<string[]> {
  return (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
}

function expectAllOk(results: RequestResult[], count: number, what: string): void {
  expect(results.length, what).toBe(count);
  const failed = results.filter((r) => !r.ok);
  expect(failed, `${what}: ${failed.length} of ${count} failed`).toStrictEqual([]);
}

/** Direct pod-to-pod traffic, both families: right backend, no NAT in either direction. */
async function expectDirect(c: Cluster, from: Pod, to: Pod): Promise<void> {
  for (const [proto, port, v6] of [
    ['tcp', 8080, false],
    ['udp', 5353, false],
    ['tcp', 8080, true],
    ['udp', 5353, true],
  ] as const) {
    const what = `${from.name} -> ${to.name} ${proto}${v6 ? ' IPv6' : ''}`;
    const [src, dst] = v6 ? [from.ip6, to.ip6] : [from.ip, to.ip];
    const results = await c.request(from, { proto, ip: dst, port, count: 5 });
    expectAllOk(results, 5, what);
    const ports = new Set<number>();
    for (const r of results) {
      expect(r.backend, what).toBe(to.name);
      expect(r.reply, `${what}: reply source`).toStrictEqual({ ip: dst, port });
      expect(r.seenLocal, `${what}: destination the backend saw`).toStrictEqual({ ip: dst, port });
      expect(r.seenClient, `${what}: client the backend saw`).toStrictEqual({ ip: src, port: r.local?.port });
      ports.add(r.seenClient?.port ?? 0);
    }
    expect(ports.size, `${what}: every request has its own source port`).toBe(5);
  }
}

base('plan: names fit the kernel and addresses follow the plan', () => {
  const plan = planCluster({ nodes: 3, podsPerNode: 4, prefix: 'sy9999zz' });
  expect(new Set(plan.namespaces).size, 'namespace names are unique').toBe(plan.namespaces.length);
  expect(plan.namespaces.length).toBe(3 + 3 + 3 * 4);
  for (const line of [...plan.fabricSetup.batch, ...plan.setup.flatMap((s) => s.batch)]) {
    for (const m of line.matchAll(/\b(?:dev|name|master|add|set) (\S+)/g)) {
      const name = m[1] ?? '';
      if (/^[a-z]/.test(name) && !name.includes(':') && !/^(type|dev|default|unreachable|blackhole|lo)$/.test(name)) {
        expect(name.length, `interface name ${name} in "${line}" is longer than 15`).toBeLessThanOrEqual(15);
      }
    }
  }
  const node2 = plan.nodes[1];
  if (node2 === undefined) expect.unreachable('the plan has no node 2');
  expect(node2.addr).toBe('198.18.0.2');
  expect(node2.addr6).toBe('fd00:198:18::2');
  expect(node2.podCidr).toBe('10.244.2.0/24');
  expect(node2.podCidr6).toBe('fd00:10:244:2::/64');
  expect(node2.pods.map((p) => [p.name, p.ip, p.ip6, p.hostIf])).toStrictEqual([
    ['pod-2-0', '10.244.2.10', 'fd00:10:244:2::10', 'veth0'],
    ['pod-2-1', '10.244.2.11', 'fd00:10:244:2::11', 'veth1'],
    ['pod-2-2', '10.244.2.12', 'fd00:10:244:2::12', 'veth2'],
    ['pod-2-3', '10.244.2.13', 'fd00:10:244:2::13', 'veth3'],
  ]);
  expect([plan.ext.addr, plan.ext.addr6, plan.ext2.addr, plan.ext2.addr6]).toStrictEqual([
    '198.18.1.100',
    'fd00:198:18::1:100',
    '198.18.1.101',
    'fd00:198:18::1:101',
  ]);
  expect(CLUSTER_POD_CIDR.startsWith('10.244.')).toBe(true);
  expect(() => planCluster({ nodes: 100, podsPerNode: 1, prefix: 'sy1' })).toThrow(RangeError);
  expect(() => planCluster({ nodes: 1, podsPerNode: 1, prefix: 'Bad-Prefix' })).toThrow(RangeError);
});

/** The traffic tests' cluster: 2 nodes x 2 pods, backends on every pod and a host-network one on node 1. */
const test = base.extend<{ $file: { twoByTwo: Cluster } }>({
  twoByTwo: [
    // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
    async ({}, use) => {
      const t0 = performance.now();
      const c = await createCluster({ nodes: 2, podsPerNode: 2 });
      console.log(`# create: ${Math.round(performance.now() - t0)} ms (prefix ${c.prefix})`);
      try {
        const t1 = performance.now();
        await Promise.all([...c.pods.map((p) => c.startBackend(p, { tcp: [8080], udp: [5353] })), c.startBackend(c.node(1), { tcp: [9090] })]);
        console.log(`# backends: ${Math.round(performance.now() - t1)} ms`);
        await use(c);
      } finally {
        await c.destroy();
      }
    },
    { scope: 'file' },
  ],
});

describe.skipIf(skip)('the rig as root', () => {
  describe('2 nodes x 2 pods carry real traffic and leave nothing behind', () => {
    test('pod to pod on another node, by pod IP', ({ twoByTwo: c }) => expectDirect(c, c.pod(1, 0), c.pod(2, 1)));
    test('pod to pod on the same node, by pod IP', ({ twoByTwo: c }) => expectDirect(c, c.pod(1, 0), c.pod(1, 1)));

    test('ext and ext2 reach a host-network backend on node 1 through the gateway, unNATed, on both families', async ({ twoByTwo: c }) => {
      for (const host of [c.ext, c.ext2]) {
        for (const [ip, src] of [
          [c.node(1).addr, host.addr],
          [c.node(1).addr6, host.addr6],
        ] as const) {
          const results = await c.request(host, { proto: 'tcp', ip, port: 9090, count: 3 });
          expectAllOk(results, 3, `${host.name} -> node-1 ${ip}:9090`);
          for (const r of results) {
            expect(r.backend).toBe('node-1');
            expect(r.seenClient?.ip).toBe(src);
          }
        }
      }
    });

    test('a pod on node 2 reaches node 1 with its own address', async ({ twoByTwo: c }) => {
      const from = c.pod(2, 0);
      const results = await c.request(from, { proto: 'tcp', ip: c.node(1).addr, port: 9090, count: 2 });
      expectAllOk(results, 2, `${from.name} -> node-1:9090`);
      for (const r of results) expect(r.seenClient?.ip).toBe(from.ip);
    });

    test('one client process makes 200 connections', async ({ twoByTwo: c }) => {
      const t2 = performance.now();
      const results = await c.request(c.pod(2, 0), { proto: 'tcp', ip: c.pod(1, 1).ip, port: 8080, count: 200, concurrency: 20 });
      console.log(`# 200 TCP requests: ${Math.round(performance.now() - t2)} ms`);
      expectAllOk(results, 200, '200 requests');
    });

    test('what is not routed fails instead of reaching anything', async ({ twoByTwo: c }) => {
      const [svc, extToPod, missingPod] = await Promise.all([
        // No dataplane: an untranslated Service IP goes to the gateway and dies there.
        c.request(c.pod(1, 0), { proto: 'tcp', ip: '10.96.0.10', port: 80, timeoutMs: 300 }),
        // The gateway has no route to pods, as outside a real cluster.
        c.request(c.ext, { proto: 'udp', ip: c.pod(1, 0).ip, port: 5353, timeoutMs: 300 }),
        // A pod IP of node 1 without a pod: unreachable on the node, at once.
        c.request(c.pod(2, 0), { proto: 'tcp', ip: '10.244.1.99', port: 8080, timeoutMs: 1000 }),
      ]);
      expect(svc[0]?.ok).toBe(false);
      expect(extToPod[0]?.ok).toBe(false);
      expect(missingPod[0]?.ok).toBe(false);
      expect(missingPod[0]?.error).toBe('EHOSTUNREACH');
    });

    test('every namespace exists until destroy, which leaves none behind and is idempotent', async ({ twoByTwo: c }) => {
      expect((await leftovers(c.prefix)).sort(), 'every namespace exists').toStrictEqual([...c.namespaces].sort());
      await c.destroy();
      expect(await leftovers(c.prefix), 'no namespace with the prefix remains').toStrictEqual([]);
      await c.destroy(); // idempotent
    });
  });

  test('withCluster destroys the cluster when the body throws', async () => {
    let prefix = '';
    let backendExited: Promise<unknown> = Promise.resolve();
    await expect(
      withCluster({ nodes: 1, podsPerNode: 1 }, async (c) => {
        prefix = c.prefix;
        const backend = await c.startBackend(c.pod(1, 0), { tcp: [8080] });
        backendExited = backend.exited;
        expect(backend.running).toBe(true);
        throw new Error('boom');
      }),
    ).rejects.toThrow(/boom/);
    expect(prefix).not.toBe('');
    await backendExited;
    expect(await leftovers(prefix)).toStrictEqual([]);
  });

  test('a create that fails midway deletes what it created', async () => {
    const plan = planCluster({ nodes: 2, podsPerNode: 1, prefix: `sy${process.pid % 10000}fx` });
    const node1 = plan.nodes[0];
    if (node1 === undefined) expect.unreachable('the plan has no node 1');
    const broken = {
      ...plan,
      setup: [...plan.setup, { ns: node1.ns, script: 'ip -batch -', batch: ['route add 10.244.7.0/24 dev nosuchdev'] }],
    };
    await expect(createClusterFromPlan(broken)).rejects.toThrow(/nosuchdev/);
    expect(await leftovers(plan.prefix)).toStrictEqual([]);
    // A prefix that is in use is refused before anything is created.
    const c = await createClusterFromPlan(plan);
    try {
      await expect(createClusterFromPlan(plan)).rejects.toThrow(/already exist/);
      expect((await leftovers(plan.prefix)).length).toBe(plan.namespaces.length);
    } finally {
      await c.destroy();
    }
    expect(await leftovers(plan.prefix)).toStrictEqual([]);
  });
});
