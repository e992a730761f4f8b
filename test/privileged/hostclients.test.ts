// End to end, host-network clients (issue 8, item 1): a process in a node's
// own network namespace reaches Services through the socket hooks
// (bpf/sock.bpf.c): ClusterIP, NodePort on the node address and on
// 127.0.0.1, ExternalIP and LoadBalancer IP, TCP, unconnected and connected
// UDP, IPv4 and IPv6. The backend sees the node's own address (no NAT), the
// client sees the Service as its peer (getpeername) and as the source of
// replies (recvmsg). No endpoints: the client is refused. Only sockets of
// the node's namespace are translated: a pod client in the same cgroup goes
// through the tc programs as before.
//
// The hooks are attached to a child cgroup this file creates in a cgroup2
// hierarchy mounted under /run (never the host's root cgroup; /run because
// `ip netns exec` remounts /sys, hiding /sys/fs/cgroup from the daemon and
// the clients); clients join it before exec (rig inCgroup).
//
// Addresses: Services 10.96.4.x / fd00:10:96::4xx (the gateway has no route
// for them: without the hooks a node process cannot reach them); the
// LoadBalancer and external IPs 198.19.0.4x / fd00:198:18::2:4x (which the
// gateway routes to node 1).
//
// The source a host client's socket gets is chosen for the backend's
// route, as with any socket-level balancer: the node address, except for an
// IPv4 pod of this node, whose route carries `src` the node's pod gateway
// address (the rig's, as a CNI bridge does).

import { execFileSync } from 'node:child_process';
import { mkdirSync, rmdirSync, rmSync } from 'node:fs';
import { describe, expect } from 'vitest';
import type { Cluster, ClusterNode, Pod } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { Proto, RequestResult } from '../../src/rig/protocol.ts';
import { needs } from '../support/requirements.ts';
import type { UdpFlowOutput } from '../support/udp-flow.ts';
import type { HolderOutput } from '../../src/rig/holder.ts';
import { inCgroup } from '../../src/rig/cluster.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';
import { formatEndpoint } from '../../src/rig/protocol.ts';
import { fileURLToPath } from 'node:url';
import { unmapIPv4 } from '../../src/util/ip.ts';
import {
  describeFailures,
  e2eTest,
  evidence,
  findLog,
  manifestText,
  nodeDoc,
  nodeStats,
  REQ_TIMEOUT_MS,
  type ServiceSpec,
  scaled,
  serviceManifest,
  startDaemon,
  SWITCHYARD,
  until,
  untilProgrammed,
} from './fixtures.ts';

const skip = needs('the host-network client suite', ['root', 'ip', 'nft', 'bpf-object', 'native-addon', 'bpftool']);

type Family = 'IPv4' | 'IPv6';
const FAMILIES: Family[] = ['IPv4', 'IPv6'];
const PROTOS = ['tcp', 'udp'] as const;
const UDP_FLOW = fileURLToPath(new URL('../support/udp-flow.ts', import.meta.url));
const HOLDER = fileURLToPath(new URL('../../src/rig/holder.ts', import.meta.url));
const HTTP = 8080;
const DNS = 5353;

interface Addrs {
  IPv4: string;
  IPv6: string;
}
const a = (v4: string, v6: string): Addrs => ({ IPv4: v4, IPv6: v6 });

/** ClusterIP; endpoint pod-2-1 (another node). */
const WEB = { vip: a('10.96.4.10', 'fd00:10:96::410') };
/** NodePort; endpoint pod-2-2. */
const NP = { vip: a('10.96.4.11', 'fd00:10:96::411'), tcp: 30180, udp: 30153 };
/** LoadBalancer (ipMode VIP); endpoint pod-1-1 (this node). */
const LB = { vip: a('10.96.4.12', 'fd00:10:96::412'), lb: a('198.19.0.40', 'fd00:198:18::2:40'), tcp: 30181, udp: 30154 };
/** ClusterIP with an external IP; endpoint pod-1-2. */
const EIP = { vip: a('10.96.4.13', 'fd00:10:96::413'), ext: a('198.19.0.41', 'fd00:198:18::2:41') };
/** No endpoints: REJECT. */
const EMPTY = { vip: a('10.96.4.14', 'fd00:10:96::414') };
/** ClusterIPs whose one endpoint is replaced (pod-2-1, then pod-2-2), one per family (item 2: sockets of removed backends). */
const MOVE = { vip: a('10.96.4.15', 'fd00:10:96::415') };
/** The backends' echo port (long-lived TCP, src/rig/holder.ts), a port of MOVE. */
const ECHO = 7070;
const movePorts = (): ServiceSpec['ports'] => [...svcPorts(), { name: 'echo', port: ECHO, targetPort: ECHO, protocol: 'TCP' }];

const svcPorts = (tcpNodePort?: number, udpNodePort?: number): ServiceSpec['ports'] => [
  { name: 'http', port: 80, targetPort: HTTP, protocol: 'TCP', ...(tcpNodePort ? { nodePort: tcpNodePort } : {}) },
  { name: 'dns', port: 53, targetPort: DNS, protocol: 'UDP', ...(udpNodePort ? { nodePort: udpNodePort } : {}) },
];
const svcPort = (proto: Proto): number => (proto === 'tcp' ? 80 : 53);

/** A cgroup2 hierarchy mounted under /run and a child cgroup in it for the hooks and the clients. */
class TestCgroup {
  readonly mount = `/run/sy-cg-${process.pid}`;
  readonly path = `${this.mount}/sy-hostclients`;
  setUp(): void {
    mkdirSync(this.mount, { recursive: true });
    execFileSync('mount', ['-t', 'cgroup2', 'none', this.mount]);
    mkdirSync(this.path);
  }
  tearDown(): void {
    try {
      rmdirSync(this.path); // empty once its clients exited; its links went with the daemon's cleanup
    } catch {
      /* not created */
    }
    try {
      execFileSync('umount', ['-l', this.mount]);
    } catch {
      /* not mounted */
    }
    rmSync(this.mount, { recursive: true, force: true });
  }
}

interface Scenario {
  daemon: RigProcess | null;
  cg: TestCgroup;
}

function both(p: Pod, node: string): { ip: string; node: string }[] {
  return [
    { ip: p.ip, node },
    { ip: p.ip6, node },
  ];
}

const test = e2eTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster: c, pins, manifests }, use) => {
      const s: Scenario = { daemon: null, cg: new TestCgroup() };
      try {
        s.cg.setUp();
        const backends = [c.pod(1, 1), c.pod(1, 2), c.pod(2, 1), c.pod(2, 2)];
        await Promise.all(backends.map((p) => c.startBackend(p, { tcp: [HTTP], udp: [DNS], echo: [ECHO] })));
        const dual = (x: Addrs): string[] => [x.IPv4, x.IPv6];
        manifests.write('nodes.yaml', manifestText(c.nodes.map(nodeDoc)));
        manifests.write('web.yaml', serviceManifest({ name: 'web', clusterIPs: dual(WEB.vip), ports: svcPorts() }, both(c.pod(2, 1), 'node-2')));
        manifests.write(
          'np.yaml',
          serviceManifest({ name: 'np', type: 'NodePort', clusterIPs: dual(NP.vip), ports: svcPorts(NP.tcp, NP.udp) }, both(c.pod(2, 2), 'node-2')),
        );
        manifests.write(
          'lb.yaml',
          serviceManifest(
            { name: 'lb', type: 'LoadBalancer', clusterIPs: dual(LB.vip), ports: svcPorts(LB.tcp, LB.udp), loadBalancerIPs: dual(LB.lb), ipMode: 'VIP' },
            both(c.pod(1, 1), 'node-1'),
          ),
        );
        manifests.write(
          'eip.yaml',
          serviceManifest({ name: 'eip', clusterIPs: dual(EIP.vip), externalIPs: dual(EIP.ext), ports: svcPorts() }, both(c.pod(1, 2), 'node-1')),
        );
        manifests.write('empty.yaml', serviceManifest({ name: 'empty', clusterIPs: dual(EMPTY.vip), ports: svcPorts() }, []));
        manifests.write('move.yaml', serviceManifest({ name: 'move', clusterIPs: dual(MOVE.vip), ports: movePorts() }, both(c.pod(2, 1), 'node-2')));
        s.daemon = startDaemon(c, c.node(1), manifests, pins, ['--cluster-cidr=10.244.0.0/16,fd00:10:244::/56', `--cgroup2-path=${s.cg.path}`]);
        await untilProgrammed([s.daemon]);
        await until(
          'the socket hooks attached',
          async () => findLog(s.daemon?.stderr ?? '', 'bpf', 'host-network clients reach Services through socket hooks') !== undefined,
          [s.daemon],
        );
        await use(s);
      } finally {
        await s.daemon?.stop();
        if (s.daemon !== null) await c.exec(c.node(1), [SWITCHYARD, 'cleanup', `--bpf-pin-path=${pins.dirFor(c.node(1))}`]);
        s.cg.tearDown();
      }
    },
    { scope: 'file', auto: true },
  ],
});

function addr(x: Pod | ClusterNode, f: Family): string {
  if ('ip' in x) return f === 'IPv4' ? x.ip : x.ip6;
  return f === 'IPv4' ? x.addr : x.addr6;
}

interface Req {
  what: string;
  proto: Proto;
  ip: string;
  port: number;
  udpConnected?: boolean;
}

function send(c: Cluster, from: Pod | ClusterNode, sets: Req[], cgroup: string): Promise<RequestResult[][]> {
  return c.requestMany(
    from,
    sets.map((x) => ({ proto: x.proto, ip: x.ip, port: x.port, count: 3, concurrency: 3, timeoutMs: REQ_TIMEOUT_MS, udpConnected: x.udpConnected })),
    { cgroup },
  );
}

/** Every frontend a host client of node 1 can use, per protocol (and connected UDP). */
function frontends(c: { node(i: number): ClusterNode }, f: Family): { req: Req; backend: string }[] {
  const out: { req: Req; backend: string }[] = [];
  const node = addr(c.node(1), f);
  for (const proto of PROTOS) {
    const np = proto === 'tcp' ? NP.tcp : NP.udp;
    const cases: [string, string, number, string][] = [
      ['ClusterIP', WEB.vip[f], svcPort(proto), 'pod-2-1'],
      ['NodePort on the node address', node, np, 'pod-2-2'],
      ['LoadBalancer IP', LB.lb[f], svcPort(proto), 'pod-1-1'],
      ['ExternalIP', EIP.ext[f], svcPort(proto), 'pod-1-2'],
    ];
    if (f === 'IPv4') {
      cases.push(['NodePort on 127.0.0.1', '127.0.0.1', np, 'pod-2-2']);
      // A dual-stack (AF_INET6) socket talking IPv4: the v6 hooks see ::ffff:a.b.c.d.
      cases.push(['ClusterIP, IPv4-mapped from an IPv6 socket', `::ffff:${WEB.vip.IPv4}`, svcPort(proto), 'pod-2-1']);
    }
    for (const [kind, ip, port, backend] of cases) {
      out.push({ req: { what: `${proto} ${kind} ${ip}:${port}`, proto, ip, port }, backend });
      if (proto === 'udp') out.push({ req: { what: `connected udp ${kind} ${ip}:${port}`, proto, ip, port, udpConnected: true }, backend });
    }
  }
  return out;
}

describe.skipIf(skip)('host-network clients through the socket hooks', () => {
  for (const f of FAMILIES) {
    describe(f, () => {
      test('every frontend kind answers a node-1 process in the cgroup, with the Service as peer and reply source, and the node address seen', async ({
        cluster: c,
        pins,
        scenario,
      }) => {
        const cases = frontends(c, f);
        const runs = await send(
          c,
          c.node(1),
          cases.map((k) => k.req),
          scenario.cg.path,
        );
        const fails: string[] = [];
        for (const [i, k] of cases.entries()) {
          const rs = runs[i] ?? [];
          if (rs.length === 0 || rs.some((r) => !r.ok)) {
            fails.push(`${k.req.what}: ${describeFailures(rs)}`);
            continue;
          }
          for (const r of rs) {
            expect(r.backend, `${k.req.what}: answered by`).toBe(k.backend);
            const local = f === 'IPv4' && k.backend.startsWith('pod-1-');
            expect(r.seenClient?.ip, `${k.req.what}: the backend sees the node's own address`).toBe(local ? c.node(1).podGateway : addr(c.node(1), f));
            const service = { ip: unmapIPv4(k.req.ip), port: k.req.port };
            expect(r.reply && { ...r.reply, ip: unmapIPv4(r.reply.ip) }, `${k.req.what}: peer / reply source`).toStrictEqual(service);
            if (k.req.udpConnected) expect(r.peer, `${k.req.what}: getpeername`).toStrictEqual(service);
          }
        }
        if (fails.length > 0) expect.fail(`not answered:\n${fails.join('\n')}\n${await evidence(c, pins)}\n${scenario.daemon?.stderr.slice(-2000)}`);
      });

      test('a Service without endpoints refuses: connect (TCP, UDP) and an unconnected send fail with ECONNREFUSED', async ({ cluster: c, scenario }) => {
        const ip = EMPTY.vip[f];
        const sets: Req[] = [
          { what: 'tcp connect', proto: 'tcp', ip, port: 80 },
          { what: 'udp connect', proto: 'udp', ip, port: 53, udpConnected: true },
          { what: 'udp sendto', proto: 'udp', ip, port: 53 },
        ];
        const runs = await send(c, c.node(1), sets, scenario.cg.path);
        for (const [i, k] of sets.entries()) {
          const errors = (runs[i] ?? []).map((r) => (r.ok ? `answered by ${r.backend}` : r.error));
          expect(errors, k.what).toStrictEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
        }
      });

      test('only the node namespace is translated at the socket: a process outside the cgroup is not, a pod client in it goes through tc', async ({
        cluster: c,
        pins,
        scenario,
      }) => {
        const before = await nodeStats(c, pins, c.node(1));
        // Outside the cgroup, a ClusterIP is not reachable from the node (the gateway has no route for it).
        const [outside] = await c.requestMany(c.node(1), [{ proto: 'tcp', ip: WEB.vip[f], port: 80, count: 1, timeoutMs: 1000 }]);
        expect(outside?.[0]?.ok, 'a node process outside the cgroup reaches the ClusterIP').toBe(false);
        // A pod of node 1 in the cgroup: the tc programs translate (the backend sees the pod).
        const [fromPod] = await send(c, c.pod(1, 0), [{ what: 'pod tcp ClusterIP', proto: 'tcp', ip: WEB.vip[f], port: 80 }], scenario.cg.path);
        for (const r of fromPod ?? []) {
          expect(r.ok, `pod client: ${r.error}`).toBe(true);
          expect(r.seenClient?.ip).toBe(addr(c.pod(1, 0), f));
        }
        const after = await nodeStats(c, pins, c.node(1));
        expect((after.get('SOCK_XLATE') ?? 0) - (before.get('SOCK_XLATE') ?? 0), 'socket translations').toBe(0);
        expect((after.get('CT_NEW') ?? 0) - (before.get('CT_NEW') ?? 0), 'flows the tc programs created').toBe(3);
      });
    });
  }

  test('host sockets whose backend is removed are closed (ECONNABORTED): a connected UDP client reconnects to the live backend, a TCP connection is aborted', async ({
    cluster: c,
    manifests,
    scenario,
  }) => {
    // IPv4, IPv6, and IPv4 from a dual-stack socket (::ffff:a.b.c.d).
    const targets = [
      ['IPv4', MOVE.vip.IPv4],
      ['IPv6', MOVE.vip.IPv6],
      ['IPv4-mapped', `::ffff:${MOVE.vip.IPv4}`],
    ] as const;
    const flows = targets.map(([, ip]) =>
      c.spawn(
        c.node(1).ns,
        inCgroup(scenario.cg.path, [
          ...NODE_CMD,
          UDP_FLOW,
          '--connected',
          '--target',
          formatEndpoint({ ip, port: 53 }),
          '--duration-ms',
          String(scaled(8000)),
          '--interval-ms',
          '200',
        ]),
      ),
    );
    // Long-lived TCP connections through the same Service (the backends' echo port).
    const holds = (['IPv4', 'IPv6'] as const).map((f) =>
      c.spawn(
        c.node(1).ns,
        inCgroup(scenario.cg.path, [
          ...NODE_CMD,
          HOLDER,
          '--target',
          formatEndpoint({ ip: MOVE.vip[f], port: ECHO }),
          '--duration-ms',
          String(scaled(8000)),
          '--interval-ms',
          '200',
        ]),
      ),
    );
    try {
      for (const p of [...flows, ...holds]) await p.waitForLine('connected', scaled(10_000));
      // pod-2-1 leaves the Service (its backend keeps running: only the Service moved), pod-2-2 joins.
      manifests.write(
        'move.yaml',
        serviceManifest({ name: 'move', clusterIPs: [MOVE.vip.IPv4, MOVE.vip.IPv6], ports: movePorts() }, both(c.pod(2, 2), 'node-2')),
      );
      for (const [i, [f]] of targets.entries()) {
        const p = flows[i] as RigProcess;
        const out = JSON.parse(await p.waitForLine(/^\{/, scaled(30_000))) as UdpFlowOutput;
        expect(out.backends, `${f}: backends in order (stderr: ${scenario.daemon?.stderr.slice(-1500)})`).toStrictEqual(['pod-2-1', 'pod-2-2']);
        expect(out.errors, `${f}: the removed backend's socket was closed`).toStrictEqual(['ECONNABORTED']);
      }
      for (const [i, f] of (['IPv4', 'IPv6'] as const).entries()) {
        const out = JSON.parse(await (holds[i] as RigProcess).waitForLine(/^\{/, scaled(30_000))) as HolderOutput;
        expect(out.backends, `${f} TCP: answered by`).toStrictEqual(['pod-2-1']);
        expect(out.error, `${f} TCP: the connection to the removed backend was aborted`).toBe('ECONNABORTED');
      }
      expect(findLog(scenario.daemon?.stderr ?? '', 'bpf', 'closed host sockets connected to removed endpoints'), 'logged').toBeDefined();
    } finally {
      await Promise.all([...flows, ...holds].map((p) => p.stop()));
    }
  });

  test('the hooks are attached once per type, stay while the daemon is down, are swapped in place by the next one, and go with cleanup', async ({
    cluster: c,
    pins,
    manifests,
    scenario,
  }) => {
    const show = (): string[] => {
      const out = execFileSync('bpftool', ['-j', 'cgroup', 'show', scenario.cg.path]).toString();
      return (JSON.parse(out.trim() || '[]') as { attach_type: string; name: string }[]).map((p) => `${p.attach_type} ${p.name}`).sort();
    };
    const expected = [
      'cgroup_inet4_connect sy_sk_connect4',
      'cgroup_inet4_getpeername sy_sk_peer4',
      'cgroup_inet6_connect sy_sk_connect6',
      'cgroup_inet6_getpeername sy_sk_peer6',
      'cgroup_udp4_recvmsg sy_sk_recvmsg4',
      'cgroup_udp4_sendmsg sy_sk_sendmsg4',
      'cgroup_udp6_recvmsg sy_sk_recvmsg6',
      'cgroup_udp6_sendmsg sy_sk_sendmsg6',
    ];
    expect(show()).toStrictEqual(expected);
    const status = await c.exec(c.node(1), [SWITCHYARD, 'status', `--bpf-pin-path=${pins.dirFor(c.node(1))}`]);
    expect(status.stdout, status.stderr).toContain(
      'socket hooks (host-network clients): connect4, connect6, sendmsg4, sendmsg6, recvmsg4, recvmsg6, getpeername4, getpeername6',
    );
    const metrics = await c.exec(c.node(1), ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:10249/metrics']);
    expect(metrics.stdout, metrics.stderr).toContain('switchyard_bpf_program_attached{program="sy_sk_connect4",attach_point="cgroup",hook="connect4"} 1');
    await scenario.daemon?.stop();
    expect(show(), 'hooks while no daemon runs').toStrictEqual(expected);
    const web = { what: 'tcp ClusterIP', proto: 'tcp' as const, ip: WEB.vip.IPv4, port: 80 };
    const [down] = await send(c, c.node(1), [web], scenario.cg.path);
    expect(describeFailures(down ?? []), 'served while no daemon runs').toBe('');

    const next = startDaemon(c, c.node(1), manifests, pins, ['--cluster-cidr=10.244.0.0/16,fd00:10:244::/56', `--cgroup2-path=${scenario.cg.path}`]);
    scenario.daemon = next;
    await until(
      'the next daemon swapped its hooks in',
      async () => findLog(next.stderr, 'bpf', 'host-network clients reach Services through socket hooks') !== undefined,
      [next],
    );
    const line = findLog(next.stderr, 'bpf', 'host-network clients reach Services through socket hooks');
    expect(line?.fields, 'every link updated in place').toContain('replaced=8');
    expect(show(), 'one program per hook after the restart').toStrictEqual(expected);
    await next.stop();

    const r = await c.exec(c.node(1), [SWITCHYARD, 'cleanup', `--bpf-pin-path=${pins.dirFor(c.node(1))}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(show(), 'hooks after cleanup').toStrictEqual([]);
    scenario.daemon = null;
  });
});
