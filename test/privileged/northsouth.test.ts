// End to end, north-south (issue 7, items 3-6 and 9): NodePorts,
// ExternalIPs, LoadBalancer IPs with source ranges, REJECT and DROP, the
// short-circuits of pod traffic to NodePorts and LoadBalancer IPs, hairpin,
// --masquerade-all and --detect-local-mode, on IPv4 and IPv6, with real
// traffic from the external clients (ext, ext2: routed to the nodes by the
// gateway) and from pods, on real-node settings (strict rp_filter, conntrack
// INVALID dropped). Each node runs its daemon through the CLI contract.
// Expected behaviour is kube-proxy's.
//
// Addresses: Services 10.96.3.x / fd00:10:96::3xx; LoadBalancer and external
// IPs 198.19.0.x / fd00:198:18::2:x, which the gateway routes to node 1
// (except 198.19.0.31, which it drops: reachable only by a short-circuit).

import { describe, expect } from 'vitest';
import type { Cluster, ClusterNode, Host, Pod } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { Proto, RequestResult } from '../../src/rig/protocol.ts';
import { needs } from '../support/requirements.ts';
import {
  assertRunning,
  describeFailures,
  e2eTest,
  evidence,
  type Manifests,
  manifestText,
  nodeDoc,
  nodeStats,
  type PinRoot,
  REQ_TIMEOUT_MS,
  type ServiceSpec,
  scaled,
  serviceManifest,
  startDaemon,
  until,
  untilProgrammed,
} from './fixtures.ts';

const skip = needs('the north-south end-to-end suite', ['root', 'ip', 'nft', 'bpf-object', 'native-addon']);

type Family = 'IPv4' | 'IPv6';
const FAMILIES: Family[] = ['IPv4', 'IPv6'];
const CLUSTER_CIDRS = '10.244.0.0/16,fd00:10:244::/56';
/** Every daemon's flags unless a test says otherwise. */
const BASE_FLAGS = [`--cluster-cidr=${CLUSTER_CIDRS}`];
/** A request that must not be answered waits this long (scaled in the VMs). */
const SILENCE_MS = 1000;

const HTTP = 8080;
const DNS = 5353;

interface Addrs {
  IPv4: string;
  IPv6: string;
}
const a = (v4: string, v6: string): Addrs => ({ IPv4: v4, IPv6: v6 });

/** NodePort, externalTrafficPolicy Cluster; endpoint pod-2-1. */
const NPC = { vip: a('10.96.3.10', 'fd00:10:96::310'), tcp: 30080, udp: 30053 };
/** NodePort, externalTrafficPolicy Local; endpoint pod-1-1 (none on node 2). */
const NPL = { vip: a('10.96.3.11', 'fd00:10:96::311'), tcp: 30081, udp: 30054 };
/** ClusterIP with an external IP; endpoint pod-2-2. */
const EIP = { vip: a('10.96.3.12', 'fd00:10:96::312'), ext: a('198.19.0.20', 'fd00:198:18::2:20') };
/** LoadBalancer (ipMode VIP) with loadBalancerSourceRanges = ext only; endpoint pod-1-2. */
const LBR = { vip: a('10.96.3.13', 'fd00:10:96::313'), lb: a('198.19.0.30', 'fd00:198:18::2:30'), tcp: 30082, udp: 30055 };
/** LoadBalancer without ranges, its IP dropped by the gateway; endpoint pod-2-1. */
const LBO = { vip: a('10.96.3.14', 'fd00:10:96::314'), lb: a('198.19.0.31', 'fd00:198:18::2:31'), tcp: 30083, udp: 30056 };
/** NodePort without endpoints: REJECT. */
const EMPTY = { vip: a('10.96.3.15', 'fd00:10:96::315'), tcp: 30084, udp: 30057 };
/** ClusterIP whose only endpoint is pod-1-1 (hairpin). */
const SELF = { vip: a('10.96.3.16', 'fd00:10:96::316') };
/** ClusterIP the gateway routes to node 1 (traffic from outside the pod network); endpoint pod-2-2. */
const DL = { vip: a('10.96.3.17', 'fd00:10:96::317') };

function ports(tcpNodePort?: number, udpNodePort?: number): ServiceSpec['ports'] {
  return [
    { name: 'http', port: 80, targetPort: HTTP, protocol: 'TCP', ...(tcpNodePort ? { nodePort: tcpNodePort } : {}) },
    { name: 'dns', port: 53, targetPort: DNS, protocol: 'UDP', ...(udpNodePort ? { nodePort: udpNodePort } : {}) },
  ];
}

function both(x: Pod, c: Cluster): { ip: string; node: string }[] {
  return [
    { ip: x.ip, node: c.nodeOf(x).name },
    { ip: x.ip6, node: c.nodeOf(x).name },
  ];
}

function writeServices(c: Cluster, m: Manifests): void {
  const dual = (x: Addrs): string[] => [x.IPv4, x.IPv6];
  m.write('nodes.yaml', manifestText(c.nodes.map(nodeDoc)));
  m.write('npc.yaml', serviceManifest({ name: 'npc', type: 'NodePort', clusterIPs: dual(NPC.vip), ports: ports(NPC.tcp, NPC.udp) }, both(c.pod(2, 1), c)));
  m.write(
    'npl.yaml',
    serviceManifest(
      { name: 'npl', type: 'NodePort', externalTrafficPolicy: 'Local', clusterIPs: dual(NPL.vip), ports: ports(NPL.tcp, NPL.udp) },
      both(c.pod(1, 1), c),
    ),
  );
  m.write('eip.yaml', serviceManifest({ name: 'eip', clusterIPs: dual(EIP.vip), externalIPs: dual(EIP.ext), ports: ports() }, both(c.pod(2, 2), c)));
  m.write(
    'lbr.yaml',
    serviceManifest(
      {
        name: 'lbr',
        type: 'LoadBalancer',
        clusterIPs: dual(LBR.vip),
        ports: ports(LBR.tcp, LBR.udp),
        loadBalancerIPs: dual(LBR.lb),
        ipMode: 'VIP',
        loadBalancerSourceRanges: [`${c.ext.addr}/32`, `${c.ext.addr6}/128`],
      },
      both(c.pod(1, 2), c),
    ),
  );
  m.write(
    'lbo.yaml',
    serviceManifest(
      { name: 'lbo', type: 'LoadBalancer', clusterIPs: dual(LBO.vip), ports: ports(LBO.tcp, LBO.udp), loadBalancerIPs: dual(LBO.lb), ipMode: 'VIP' },
      both(c.pod(2, 1), c),
    ),
  );
  m.write('empty.yaml', serviceManifest({ name: 'empty', type: 'NodePort', clusterIPs: dual(EMPTY.vip), ports: ports(EMPTY.tcp, EMPTY.udp) }, []));
  m.write('self.yaml', serviceManifest({ name: 'self', clusterIPs: dual(SELF.vip), ports: ports() }, both(c.pod(1, 1), c)));
  m.write('dl.yaml', serviceManifest({ name: 'dl', clusterIPs: dual(DL.vip), ports: ports() }, both(c.pod(2, 2), c)));
}

interface Scenario {
  daemons: RigProcess[];
}

const test = e2eTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster: c, pins, manifests }, use) => {
      const s: Scenario = { daemons: [] };
      try {
        const backends = [c.pod(1, 1), c.pod(1, 2), c.pod(2, 1), c.pod(2, 2)];
        await Promise.all(backends.map((p) => c.startBackend(p, { tcp: [HTTP], udp: [DNS] })));
        // The gateway: 198.19.0.31 is not announced (dropped there); the `dl`
        // ClusterIP is routed to node 1, as a router with a route to the
        // Service range would.
        await c.exec(c.fabric, ['ip', '-batch', '-'], {
          check: true,
          input: [
            `route add blackhole ${LBO.lb.IPv4}/32`,
            `route add blackhole ${LBO.lb.IPv6}/128`,
            `route add ${DL.vip.IPv4}/32 via ${c.node(1).addr}`,
            `route add ${DL.vip.IPv6}/128 via ${c.node(1).addr6}`,
          ].join('\n'),
        });
        writeServices(c, manifests);
        s.daemons = c.nodes.map((n) => startDaemon(c, n, manifests, pins, BASE_FLAGS));
        await untilProgrammed(s.daemons);
        await use(s);
      } finally {
        await Promise.all(s.daemons.map((d) => d.stop()));
      }
    },
    { scope: 'file', auto: true },
  ],
});

type Client = Pod | Host;

function addr(x: Pod | Host | ClusterNode, f: Family): string {
  if ('ip' in x) return f === 'IPv4' ? x.ip : x.ip6;
  return f === 'IPv4' ? x.addr : x.addr6;
}

/** One request set: `count` requests (all at once) to ip:port. */
interface Req {
  proto: Proto;
  ip: string;
  port: number;
  count?: number;
  timeoutMs?: number;
  udpConnected?: boolean;
}

/** Every set from `from` at once, in one client process (starting node is slow in the VMs). */
function send(c: Cluster, from: Client, sets: Req[]): Promise<RequestResult[][]> {
  return c.requestMany(
    from,
    sets.map((x) => ({ ...x, count: x.count ?? 6, concurrency: x.count ?? 6, timeoutMs: x.timeoutMs ?? REQ_TIMEOUT_MS })),
  );
}

/** A set that must get no reply at all. */
const silent = (proto: Proto, ip: string, port: number): Req => ({ proto, ip, port, count: 2, timeoutMs: SILENCE_MS });

interface Expect {
  backend: string;
  /** The client address the backend must see. */
  seen: string;
  reply: { ip: string; port: number };
}

async function expectServed(c: Cluster, pins: PinRoot, what: string, results: RequestResult[] | undefined, e: Expect): Promise<void> {
  const rs = results ?? [];
  const failed = rs.filter((r) => !r.ok);
  if (rs.length === 0 || failed.length > 0)
    expect.fail(`${what}: ${failed.length}/${rs.length} not answered: ${describeFailures(rs)}\n${await evidence(c, pins)}`);
  for (const r of rs) {
    expect(r.backend, `${what}: answered by`).toBe(e.backend);
    expect(r.seenClient?.ip, `${what}: the client address the backend saw`).toBe(e.seen);
    expect(r.reply, `${what}: the reply comes from`).toStrictEqual(e.reply);
  }
}

async function expectSilent(c: Cluster, pins: PinRoot, what: string, results: RequestResult[] | undefined): Promise<void> {
  const rs = results ?? [];
  const answered = rs.filter((r) => r.ok || r.error !== 'timeout');
  if (rs.length === 0 || answered.length > 0) {
    expect.fail(`${what}: expected no reply at all (dropped), got ${JSON.stringify(answered.map((r) => r.backend ?? r.error))}\n${await evidence(c, pins)}`);
  }
}

/** Runs `fn` and returns how much the named counter grew on `node` meanwhile. */
async function counted<T>(c: Cluster, pins: PinRoot, node: ClusterNode, stat: string, fn: () => Promise<T>): Promise<[T, number]> {
  const before = (await nodeStats(c, pins, node)).get(stat) ?? 0;
  const out = await fn();
  const after = (await nodeStats(c, pins, node)).get(stat) ?? 0;
  return [out, after - before];
}

const PROTOS = ['tcp', 'udp'] as const;
const np = (s: { tcp: number; udp: number }, proto: Proto): number => (proto === 'tcp' ? s.tcp : s.udp);
const svcPort = (proto: Proto): number => (proto === 'tcp' ? 80 : 53);

describe.skipIf(skip)('north-south traffic through a daemon per node', () => {
  for (const f of FAMILIES) {
    describe(f, () => {
      test('NodePort, externalTrafficPolicy Cluster: ext reaches the backend on node 2 through either node, masqueraded to the node it entered', async ({
        cluster: c,
        pins,
      }) => {
        const cases = PROTOS.flatMap((proto) => c.nodes.map((node) => ({ proto, ip: addr(node, f), port: np(NPC, proto) })));
        const runs = await send(c, c.ext, cases);
        for (const [i, k] of cases.entries()) {
          await expectServed(c, pins, `${k.proto} ext -> ${k.ip}:${k.port}`, runs[i], {
            backend: c.pod(2, 1).name,
            seen: k.ip,
            reply: { ip: k.ip, port: k.port },
          });
        }
      });

      test('NodePort, externalTrafficPolicy Local: the client address is kept; a node without a local endpoint drops', async ({ cluster: c, pins }) => {
        const ip1 = addr(c.node(1), f);
        const ip2 = addr(c.node(2), f);
        const [runs, drops] = await counted(c, pins, c.node(2), 'DROP_NO_LOCAL', () =>
          send(c, c.ext, [...PROTOS.map((proto) => ({ proto, ip: ip1, port: np(NPL, proto) })), ...PROTOS.map((proto) => silent(proto, ip2, np(NPL, proto)))]),
        );
        for (const [i, proto] of PROTOS.entries()) {
          const port = np(NPL, proto);
          await expectServed(c, pins, `${proto} ext -> node-1 ${ip1}:${port}`, runs[i], {
            backend: c.pod(1, 1).name,
            seen: addr(c.ext, f),
            reply: { ip: ip1, port },
          });
          await expectSilent(c, pins, `${proto} ext -> node-2 ${ip2}:${port} (no local endpoint)`, runs[PROTOS.length + i]);
        }
        expect(drops, 'node-2 counted the drops (DROP_NO_LOCAL)').toBeGreaterThan(0);
      });

      test('ExternalIP: ext reaches the backend on node 2 through node 1, masqueraded (policy Cluster), reply from the external IP', async ({
        cluster: c,
        pins,
      }) => {
        const ip = EIP.ext[f];
        const runs = await send(
          c,
          c.ext,
          PROTOS.map((proto) => ({ proto, ip, port: svcPort(proto) })),
        );
        for (const [i, proto] of PROTOS.entries()) {
          await expectServed(c, pins, `${proto} ext -> ${ip}`, runs[i], {
            backend: c.pod(2, 2).name,
            seen: addr(c.node(1), f),
            reply: { ip, port: svcPort(proto) },
          });
        }
      });

      test('LoadBalancer IP with loadBalancerSourceRanges: the allowed client is served, another is dropped, the NodePort of the same Service is not filtered', async ({
        cluster: c,
        pins,
      }) => {
        const ip = LBR.lb[f];
        const nip = addr(c.node(1), f);
        const [[allowed, ext2], drops] = await counted(c, pins, c.node(1), 'DROP_SRC_RANGE', () =>
          Promise.all([
            send(
              c,
              c.ext,
              PROTOS.map((proto) => ({ proto, ip, port: svcPort(proto) })),
            ),
            send(c, c.ext2, [
              ...PROTOS.map((proto) => silent(proto, ip, svcPort(proto))),
              ...PROTOS.map((proto) => ({ proto, ip: nip, port: np(LBR, proto) })),
            ]),
          ]),
        );
        for (const [i, proto] of PROTOS.entries()) {
          const port = svcPort(proto);
          await expectServed(c, pins, `${proto} ext (allowed) -> ${ip}`, allowed[i], { backend: c.pod(1, 2).name, seen: nip, reply: { ip, port } });
          await expectSilent(c, pins, `${proto} ext2 (not in the ranges) -> ${ip}`, ext2[i]);
          await expectServed(c, pins, `${proto} ext2 -> the NodePort ${nip}:${np(LBR, proto)}`, ext2[PROTOS.length + i], {
            backend: c.pod(1, 2).name,
            seen: nip,
            reply: { ip: nip, port: np(LBR, proto) },
          });
        }
        expect(drops, 'node-1 counted the drops (DROP_SRC_RANGE)').toBeGreaterThan(0);
      });

      test('REJECT: a Service without endpoints refuses at once, TCP with a reset and UDP with ICMP port unreachable, from a pod and from outside', async ({
        cluster: c,
        pins,
      }) => {
        const targets: [Client, string, (p: Proto) => number][] = [
          [c.pod(1, 0), EMPTY.vip[f], svcPort],
          [c.ext, addr(c.node(1), f), (p) => np(EMPTY, p)],
        ];
        for (const [from, ip, portOf] of targets) {
          const runs = await send(
            c,
            from,
            PROTOS.map((proto) => ({ proto, ip, port: portOf(proto), count: 3, udpConnected: true })),
          );
          for (const [i, proto] of PROTOS.entries()) {
            expect(
              (runs[i] ?? []).map((r) => r.error ?? `answered by ${r.backend}`),
              `${proto} ${from.name} -> ${ip}:${portOf(proto)}: refused (RST / ICMP unreachable), not a timeout\n${await evidence(c, pins)}`,
            ).toStrictEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
          }
        }
      });

      test('a ClusterIP on a port no Service uses is dropped by the node (no reply; counted)', async ({ cluster: c, pins }) => {
        const [runs, drops] = await counted(c, pins, c.node(1), 'DROP_NO_PORT', () =>
          send(
            c,
            c.pod(1, 0),
            PROTOS.map((proto) => silent(proto, NPC.vip[f], 81)),
          ),
        );
        for (const [i, proto] of PROTOS.entries()) await expectSilent(c, pins, `${proto} pod-1-0 -> ${NPC.vip[f]}:81`, runs[i]);
        expect(drops, 'node-1 counted the drops (DROP_NO_PORT)').toBeGreaterThan(0);
      });

      test('a pod reaches a NodePort on either node and a LoadBalancer IP the network does not route (short-circuit)', async ({ cluster: c, pins }) => {
        const cases = PROTOS.flatMap((proto) => [
          { proto, ip: addr(c.node(1), f), port: np(LBO, proto) },
          { proto, ip: addr(c.node(2), f), port: np(LBO, proto) },
          { proto, ip: LBO.lb[f], port: svcPort(proto) },
        ]);
        const runs = await send(c, c.pod(1, 0), cases);
        for (const [i, k] of cases.entries()) {
          const rs = runs[i] ?? [];
          if (rs.length === 0 || rs.some((r) => !r.ok))
            expect.fail(`${k.proto} pod-1-0 -> ${k.ip}:${k.port}: ${describeFailures(rs)}\n${await evidence(c, pins)}`);
          for (const r of rs) {
            expect(r.backend).toBe(c.pod(2, 1).name);
            expect(r.reply, 'the reply comes from the address the pod dialled').toStrictEqual({ ip: k.ip, port: k.port });
          }
        }
      });

      test('hairpin: a pod reaches itself through its Service, masqueraded to its node', async ({ cluster: c, pins }) => {
        const self = c.pod(1, 1);
        const runs = await send(
          c,
          self,
          PROTOS.map((proto) => ({ proto, ip: SELF.vip[f], port: svcPort(proto) })),
        );
        for (const [i, proto] of PROTOS.entries()) {
          await expectServed(c, pins, `${proto} pod-1-1 -> ${SELF.vip[f]} -> itself`, runs[i], {
            backend: self.name,
            seen: addr(c.node(1), f),
            reply: { ip: SELF.vip[f], port: svcPort(proto) },
          });
        }
      });
    });
  }

  describe('--masquerade-all and --detect-local-mode on node 1 (daemon restarted with each)', () => {
    /** What the backend of `dl` sees for a pod client and for ext (routed to node 1), both families. */
    async function seenBy(c: Cluster): Promise<{ pod: string[]; ext: string[] }> {
      const sets = FAMILIES.map((f) => ({ proto: 'tcp' as const, ip: DL.vip[f], port: 80, count: 1 }));
      const [pod, ext] = await Promise.all([send(c, c.pod(1, 0), sets), send(c, c.ext, sets)]);
      const show = (runs: RequestResult[][]): string[] => runs.map(([r]) => (r?.ok ? (r.seenClient?.ip ?? '?') : (r?.error ?? '?')));
      return { pod: show(pod), ext: show(ext) };
    }

    async function restartNode1(s: Scenario, c: Cluster, m: Manifests, pins: PinRoot, flags: string[]): Promise<void> {
      const old = s.daemons[0];
      if (old) await old.stop();
      const d = startDaemon(c, c.node(1), m, pins, flags);
      s.daemons[0] = d;
      await until('the restarted daemon on node 1 running', async () => {
        assertRunning([d]);
        return / switchyard\] "running"/.test(d.stderr);
      }, [d]);
    }

    const masq = (c: Cluster): string[] => FAMILIES.map((f) => addr(c.node(1), f));
    const pod = (c: Cluster): string[] => FAMILIES.map((f) => addr(c.pod(1, 0), f));

    // Each step flips what the pod's traffic looks like, so waiting for the
    // expected picture cannot pass on the previous daemon's state.
    const steps: { name: string; flags: string[]; pod: 'kept' | 'masqueraded' }[] = [
      { name: 'ClusterCIDR (the pods\u2019 range): pods kept, outside masqueraded', flags: BASE_FLAGS, pod: 'kept' },
      { name: '--masquerade-all: pods masqueraded too', flags: [...BASE_FLAGS, '--masquerade-all'], pod: 'masqueraded' },
      {
        name: 'InterfaceNamePrefix veth: pods kept, outside masqueraded',
        flags: ['--detect-local-mode=InterfaceNamePrefix', '--pod-interface-name-prefix=veth'],
        pod: 'kept',
      },
      {
        name: 'ClusterCIDR that does not hold the pods: pods masqueraded',
        flags: ['--detect-local-mode=ClusterCIDR', '--cluster-cidr=10.245.0.0/16,fd00:10:245::/56'],
        pod: 'masqueraded',
      },
      { name: 'NodeCIDR (the Node\u2019s podCIDRs): pods kept, outside masqueraded', flags: ['--detect-local-mode=NodeCIDR'], pod: 'kept' },
    ];
    steps.forEach((step, i) => {
      test(step.name, async ({ cluster: c, pins, manifests, scenario }) => {
        if (i > 0) await restartNode1(scenario, c, manifests, pins, step.flags);
        const want = { pod: step.pod === 'kept' ? pod(c) : masq(c), ext: masq(c) };
        let last = { pod: [] as string[], ext: [] as string[] };
        try {
          await until(
            `the ${JSON.stringify(want)} picture`,
            async () => {
              last = await seenBy(c);
              return JSON.stringify(last) === JSON.stringify(want);
            },
            scenario.daemons,
            scaled(20_000),
          );
        } catch {
          expect.fail(
            `${step.name}: backend saw ${JSON.stringify(last)}, want ${JSON.stringify(want)} (flags ${step.flags.join(' ')})\n${await evidence(c, pins)}\n${scenario.daemons[0]?.stderr.slice(-2000)}`,
          );
        }
        expect(last).toStrictEqual(want);
      });
    });
  });
});
