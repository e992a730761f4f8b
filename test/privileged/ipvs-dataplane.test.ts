// End to end, real kernel, real traffic, the IPVS dataplane: a daemon per
// node started through the CLI contract with --proxy-mode=ipvs on the
// standard two-node rig (strict rp_filter, conntrack INVALID dropped), a
// dual-stack ClusterIP Service over TCP and UDP reached from a pod on
// either node, every backend used, the client's address kept; `ipvsadm -Ln`
// (a tool we did not write) in each node's namespace lists exactly the
// virtual services and real servers the Services call for, and kube-ipvs0
// holds the ClusterIPs; sessionAffinity ClientIP keeps a client on one
// backend (IPVS persistence); a pod reaches the NodePort on its own node's
// address (the reply comes back through that node: no masquerade needed);
// a restarted daemon keeps the table (the connection
// counters are not reset: nothing was recreated); removing an endpoint stops
// new connections to it; deleting a Service removes its virtual services
// and addresses and leaves the other Service alone.
//
// Not here yet (no nftables table in ipvs mode so far): a pod reaching
// itself through its Service (hairpin needs masquerade), NodePort /
// ExternalIP / LoadBalancer traffic from outside the cluster or from a pod
// on another node (the reply would not come back through the node that
// translated it).
//
// Runs only where the kernel has IPVS: the kernel-matrix VMs
//   npm run test:kernels -- --kernels 5.10 --files test/privileged/ipvs-dataplane.test.ts
// (vitest.config.ts leaves ipvs-*.test.ts out on a kernel without IPVS).

import { describe, expect } from 'vitest';
import type { Cluster, ClusterNode, Pod } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { Proto, RequestResult } from '../../src/rig/protocol.ts';
import { needs } from '../support/requirements.ts';
import {
  assertRunning,
  countBy,
  e2eTest,
  failures,
  findLog,
  type Manifests,
  REQ_TIMEOUT_MS,
  SWITCHYARD,
  manifestText,
  serviceDoc,
  serviceManifest,
  servicePort,
  sliceDocs,
  SETTLE_MS,
  until,
} from './fixtures.ts';

const skip = needs('the IPVS dataplane end-to-end suite', ['root', 'ip', 'native-addon', 'ipvs', 'ipvsadm']);

type Family = 'IPv4' | 'IPv6';
type Vips = Readonly<Record<Family, string>>;
const WEB: Vips = { IPv4: '10.96.0.10', IPv6: 'fd00:10:96::a' };
const OTHER: Vips = { IPv4: '10.96.0.11', IPv6: 'fd00:10:96::b' };
/** sessionAffinity ClientIP, STICKY_S seconds, on the web backends. */
const STICKY: Vips = { IPv4: '10.96.0.12', IPv6: 'fd00:10:96::c' };
const STICKY_S = 60;
/** A NodePort Service on the web backends. */
const NP: Vips = { IPv4: '10.96.0.13', IPv6: 'fd00:10:96::d' };
const NODE_PORTS = { tcp: 30080, udp: 30053 } as const;
const FAMILIES: readonly Family[] = ['IPv4', 'IPv6'];
const HTTP = 8080;
const DNS = 5353;

const PORTS = [
  { name: 'http', port: 80, targetPort: HTTP, protocol: 'TCP' as const },
  { name: 'dns', port: 53, targetPort: DNS, protocol: 'UDP' as const },
];

interface Scenario {
  /** The endpoint pods of `web` (a test that changes them updates this). */
  backends: Pod[];
  daemons: RigProcess[];
}

function endpointsOf(c: Cluster, pods: readonly Pod[]): { ip: string; node: string }[] {
  return pods.flatMap((p) => [
    { ip: p.ip, node: c.nodeOf(p).name },
    { ip: p.ip6, node: c.nodeOf(p).name },
  ]);
}

function writeWeb(c: Cluster, m: Manifests, pods: readonly Pod[]): void {
  m.write('web.yaml', serviceManifest({ name: 'web', clusterIPs: [WEB.IPv4, WEB.IPv6], ports: PORTS }, endpointsOf(c, pods)));
}

function writeOthers(c: Cluster, m: Manifests, webPods: readonly Pod[]): void {
  m.write('other.yaml', serviceManifest({ name: 'other', clusterIPs: [OTHER.IPv4, OTHER.IPv6], ports: PORTS }, endpointsOf(c, [c.pod(1, 0)])));
  const sticky = serviceDoc({ name: 'sticky', clusterIPs: [STICKY.IPv4, STICKY.IPv6], ports: PORTS });
  Object.assign(sticky['spec'] as Record<string, unknown>, {
    sessionAffinity: 'ClientIP',
    sessionAffinityConfig: { clientIP: { timeoutSeconds: STICKY_S } },
  });
  const slicePorts = PORTS.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol }));
  m.write('sticky.yaml', manifestText([sticky, ...sliceDocs('sticky', endpointsOf(c, webPods), slicePorts)]));
  const npPorts = PORTS.map((p) => ({ ...p, nodePort: p.protocol === 'TCP' ? NODE_PORTS.tcp : NODE_PORTS.udp }));
  m.write('np.yaml', serviceManifest({ name: 'np', type: 'NodePort', clusterIPs: [NP.IPv4, NP.IPv6], ports: npPorts }, endpointsOf(c, webPods)));
}

function startIpvsDaemon(c: Cluster, node: ClusterNode, m: Manifests): RigProcess {
  return c.spawn(node.ns, [
    SWITCHYARD,
    'run',
    '--proxy-mode=ipvs',
    `--manifests=${m.dir}`,
    `--hostname-override=${node.name}`,
    '--cluster-cidr=10.244.0.0/16,fd00:10:244::/56',
  ]);
}

function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** `ipvsadm -Ln` of a node as sorted lines "TCP 10.96.0.10:80 rr -> 10.244.1.11:8080 Masq 1, ..." (counters left out). */
async function ipvsadm(c: Cluster, node: ClusterNode): Promise<string[]> {
  const r = await c.exec(node, ['ipvsadm', '-Ln'], { check: true });
  const out: { svc: string; reals: string[] }[] = [];
  for (const line of r.stdout.split('\n')) {
    const svc = /^(TCP|UDP|SCTP)\s+(\S+)\s+(.*?)\s*$/.exec(line);
    if (svc) out.push({ svc: `${svc[1]} ${svc[2]} ${svc[3]}`, reals: [] });
    const real = /^\s+->\s+(\S+)\s+(\S+)\s+(\d+)\s+\d+\s+\d+/.exec(line);
    if (real && out.length > 0) out[out.length - 1]?.reals.push(`${real[1]} ${real[2]} ${real[3]}`);
  }
  return out.map((s) => `${s.svc} -> ${s.reals.sort().join(', ')}`).sort();
}

/** The ClusterIP virtual services of `ipvsadm -Ln` (10.96.0.0/12, fd00:10:96::/112). */
async function clusterIPTable(c: Cluster, node: ClusterNode): Promise<string[]> {
  return (await ipvsadm(c, node)).filter((l) => /^\S+ (10\.96\.|\[fd00:10:96::)/.test(l));
}

/** What `ipvsadm -Ln` must list for a Service on `ips`: a virtual service per address and port, rr (persistent with affinity), the endpoints Masq weight 1. */
function expectedLines(ips: Vips, pods: readonly Pod[], opts: { nodePorts?: boolean; persistent?: number } = {}): string[] {
  const out: string[] = [];
  for (const f of FAMILIES) {
    for (const p of PORTS) {
      const reals = pods.map((pod) => `${hostPort(f === 'IPv4' ? pod.ip : pod.ip6, p.targetPort)} Masq 1`).sort();
      const port = opts.nodePorts ? (p.protocol === 'TCP' ? NODE_PORTS.tcp : NODE_PORTS.udp) : p.port;
      const sched = opts.persistent === undefined ? 'rr' : `rr persistent ${opts.persistent}`;
      out.push(`${p.protocol} ${hostPort(ips[f], port)} ${sched} -> ${reals.join(', ')}`);
    }
  }
  return out;
}

/** The ClusterIP virtual services of every Service of this file, with `web` on `webPods` (null: deleted). */
function expectedTable(c: Cluster, webPods: readonly Pod[] | null, allWeb: readonly Pod[]): string[] {
  return [
    ...(webPods === null ? [] : expectedLines(WEB, webPods)),
    ...expectedLines(OTHER, [c.pod(1, 0)]),
    ...expectedLines(STICKY, allWeb, { persistent: STICKY_S }),
    ...expectedLines(NP, allWeb),
  ].sort();
}

/** The addresses on kube-ipvs0 of a node, sorted. */
async function deviceAddresses(c: Cluster, node: ClusterNode): Promise<string[]> {
  const r = await c.exec(node, ['ip', '-o', 'addr', 'show', 'dev', 'kube-ipvs0'], { check: true });
  return [...r.stdout.matchAll(/inet6?\s+([0-9a-f.:]+)\//g)].map((m) => m[1] as string).sort();
}

function request(c: Cluster, fromNode: number, proto: Proto, ip: string, count: number): Promise<RequestResult[]> {
  return c.request(c.pod(fromNode, 0), { proto, ip, port: servicePort(proto), count, concurrency: 10, timeoutMs: REQ_TIMEOUT_MS });
}

const test = e2eTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster: c, manifests }, use) => {
      const s: Scenario = { backends: [c.pod(1, 1), c.pod(1, 2), c.pod(2, 1), c.pod(2, 2)], daemons: [] };
      try {
        await Promise.all([...s.backends, c.pod(1, 0)].map((p) => c.startBackend(p, { tcp: [HTTP], udp: [DNS] })));
        writeWeb(c, manifests, s.backends);
        // `other`, served by pod 1-0 (reached from node 2's client pod): deleting `web` must leave it alone.
        writeOthers(c, manifests, s.backends);
        s.daemons = c.nodes.map((n) => startIpvsDaemon(c, n, manifests));
        // Twice the usual settle time: the VMs run without KVM, and beside other VMs two daemons starting at once took over 300 s.
        await until(
          'every daemon running and programmed',
          async () => {
            assertRunning(s.daemons);
            return s.daemons.every(
              (d) => findLog(d.stderr, 'switchyard', 'running') !== undefined && findLog(d.stderr, 'switchyard', 'programmed') !== undefined,
            );
          },
          s.daemons,
          2 * SETTLE_MS,
        );
        await use(s);
      } finally {
        await Promise.all(s.daemons.map((d) => d.stop()));
      }
    },
    { scope: 'file', auto: true },
  ],
});

describe.skipIf(skip)('the IPVS dataplane: ClusterIP Services through a daemon per node (--proxy-mode=ipvs)', () => {
  test('ipvsadm -Ln in each node lists exactly what the Services call for; kube-ipvs0 holds the ClusterIPs', async ({ cluster: c, scenario }) => {
    const want = expectedTable(c, scenario.backends, scenario.backends);
    for (const n of c.nodes) {
      await until(`${n.name}: ipvsadm -Ln lists every Service`, async () => (await clusterIPTable(c, n)).join('\n') === want.join('\n'), scenario.daemons);
      expect(await clusterIPTable(c, n), n.name).toStrictEqual(want);
      const all = await ipvsadm(c, n);
      const nodePorts = expectedLines({ IPv4: n.addr, IPv6: n.addr6 }, scenario.backends, { nodePorts: true });
      for (const line of nodePorts) expect(all, `${n.name}: the NodePort on the node's address`).toContain(line);
      expect(
        all.filter((l) => /:(30080|30053) /.test(l) && /10\.96\.|fd00:10:96::/.test(l)),
        `${n.name}: no NodePort on kube-ipvs0's addresses`,
      ).toStrictEqual([]);
      const vips = [WEB, OTHER, STICKY, NP].flatMap((v) => [v.IPv4, v.IPv6]);
      expect(await deviceAddresses(c, n), `${n.name}: kube-ipvs0`).toStrictEqual(vips.sort());
      const link = await c.exec(n, ['ip', '-o', '-d', 'link', 'show', 'dev', 'kube-ipvs0'], { check: true });
      expect(link.stdout, 'a dummy link').toMatch(/\bdummy\b/);
      const conntrack = await c.exec(n, ['cat', '/proc/sys/net/ipv4/vs/conntrack'], { check: true });
      expect(conntrack.stdout.trim(), 'net.ipv4.vs.conntrack').toBe('1');
    }
  });

  for (const family of FAMILIES) {
    for (const proto of ['tcp', 'udp'] as const) {
      test(`${family} ${proto}: reachable from a pod on either node, every backend used, client address kept, reply from the ClusterIP`, async ({
        cluster: c,
        scenario,
      }) => {
        const vip = WEB[family];
        for (const n of [1, 2]) {
          const results = await request(c, n, proto, vip, 120);
          expect(
            failures(results).map((r) => r.error),
            `node ${n}: every request answered`,
          ).toStrictEqual([]);
          expect([...countBy(results).keys()].sort(), `node ${n}: every backend answered`).toStrictEqual(scenario.backends.map((p) => p.name).sort());
          const client = c.pod(n, 0);
          for (const r of results) {
            expect(r.seenClient?.ip, 'the backend sees the client pod address').toBe(family === 'IPv4' ? client.ip : client.ip6);
            expect(r.reply, 'the reply comes from ClusterIP:port').toStrictEqual({ ip: vip, port: servicePort(proto) });
            expect(r.seenLocal?.port, 'the backend was reached on its targetPort').toBe(proto === 'tcp' ? HTTP : DNS);
          }
        }
      });
    }
  }

  for (const family of FAMILIES) {
    test(`${family}: sessionAffinity ClientIP keeps each client pod on one backend, TCP and UDP`, async ({ cluster: c, scenario }) => {
      for (const proto of ['tcp', 'udp'] as const) {
        for (const n of [1, 2]) {
          const results = await request(c, n, proto, STICKY[family], 30);
          expect(
            failures(results).map((r) => r.error),
            `${proto} node ${n}: every request answered`,
          ).toStrictEqual([]);
          const used = [...countBy(results).keys()];
          expect(used.length, `${proto} node ${n}: one backend for all 30 (${JSON.stringify(used)})`).toBe(1);
          expect(scenario.backends.map((p) => p.name)).toContain(used[0]);
        }
      }
    });

    test(`${family}: a pod reaches the NodePort on its own node's address, every backend used, client address kept`, async ({ cluster: c, scenario }) => {
      for (const proto of ['tcp', 'udp'] as const) {
        for (const n of [1, 2]) {
          const node = c.node(n);
          const ip = family === 'IPv4' ? node.addr : node.addr6;
          const port = NODE_PORTS[proto];
          const client = c.pod(n, 0);
          const results = await c.request(client, { proto, ip, port, count: 60, concurrency: 10, timeoutMs: REQ_TIMEOUT_MS });
          expect(
            failures(results).map((r) => r.error),
            `${proto} node ${n}: every request answered`,
          ).toStrictEqual([]);
          expect([...countBy(results).keys()].sort(), `${proto} node ${n}: every backend answered`).toStrictEqual(scenario.backends.map((p) => p.name).sort());
          for (const r of results) {
            expect(r.seenClient?.ip).toBe(family === 'IPv4' ? client.ip : client.ip6);
            expect(r.reply).toStrictEqual({ ip, port });
          }
        }
      }
    });
  }

  test('a restarted daemon adopts the table: nothing is recreated (the connection counters stay), and the Service keeps answering', async ({
    cluster: c,
    manifests,
    scenario,
  }) => {
    const node = c.node(1);
    const conns = async (): Promise<number> => {
      const r = await c.exec(node, ['ipvsadm', '-Ln', '--stats', '--exact', '-t', hostPort(WEB.IPv4, 80)], { check: true });
      const m = /^TCP\s+\S+\s+(\d+)/m.exec(r.stdout);
      if (!m) throw new Error(`no counters in:\n${r.stdout}`);
      return Number(m[1]);
    };
    const before = await conns();
    expect(before, 'the earlier tests went through this virtual service').toBeGreaterThan(0);
    const services = (await ipvsadm(c, node)).length;
    await scenario.daemons[0]?.stop();
    const restarted = startIpvsDaemon(c, node, manifests);
    scenario.daemons[0] = restarted;
    await until('the restarted daemon runs', async () => findLog(restarted.stderr, 'switchyard', 'running') !== undefined, scenario.daemons);
    const adopted = findLog(restarted.stderr, 'ipvs', 'read back the IPVS table');
    expect(adopted?.fields, `it read back all ${services} virtual services`).toMatch(new RegExp(`virtualServices=${services}\\b`));
    expect(await conns(), 'the virtual service was kept, not recreated').toBeGreaterThanOrEqual(before);
    const results = await request(c, 1, 'tcp', WEB.IPv4, 40);
    expect(failures(results).map((r) => r.error)).toStrictEqual([]);
  });

  test('removing an endpoint stops new connections to it; the others keep working', async ({ cluster: c, manifests, scenario }) => {
    const removed = scenario.backends[3] as Pod;
    const kept = scenario.backends.slice(0, 3);
    writeWeb(c, manifests, kept);
    const want = expectedTable(c, kept, scenario.backends);
    for (const n of c.nodes) {
      await until(
        `${n.name}: ${removed.name} gone from web in ipvsadm -Ln`,
        async () => (await clusterIPTable(c, n)).join('\n') === want.join('\n'),
        scenario.daemons,
      );
    }
    for (const family of FAMILIES) {
      for (const proto of ['tcp', 'udp'] as const) {
        for (const n of [1, 2]) {
          const results = await request(c, n, proto, WEB[family], 60);
          expect(
            failures(results).map((r) => r.error),
            `${family} ${proto} node ${n}: every request answered`,
          ).toStrictEqual([]);
          const counts = countBy(results);
          expect(counts.get(removed.name), `${family} ${proto} node ${n}: no new connection to ${removed.name}`).toBe(undefined);
          expect([...counts.keys()].sort()).toStrictEqual(kept.map((p) => p.name).sort());
        }
      }
    }
  });

  test('deleting a Service removes its virtual services and addresses; the other Service keeps working', async ({ cluster: c, manifests, scenario }) => {
    manifests.remove('web.yaml');
    const want = expectedTable(c, null, scenario.backends);
    for (const n of c.nodes) {
      await until(`${n.name}: web gone from ipvsadm -Ln`, async () => (await clusterIPTable(c, n)).join('\n') === want.join('\n'), scenario.daemons);
      const vips = [OTHER, STICKY, NP].flatMap((v) => [v.IPv4, v.IPv6]);
      expect(await deviceAddresses(c, n), `${n.name}: kube-ipvs0 without web's ClusterIPs`).toStrictEqual(vips.sort());
    }
    for (const family of FAMILIES) {
      for (const proto of ['tcp', 'udp'] as const) {
        const gone = await request(c, 2, proto, WEB[family], 3);
        expect(
          gone.filter((r) => r.ok).length,
          `${family} ${proto}: nothing answers on the deleted ClusterIP (${JSON.stringify(gone.map((r) => r.backend ?? r.error))})`,
        ).toBe(0);
        const other = await request(c, 2, proto, OTHER[family], 10);
        expect(
          failures(other).map((r) => r.error),
          `${family} ${proto}: the other Service keeps working`,
        ).toStrictEqual([]);
      }
    }
  });
});
