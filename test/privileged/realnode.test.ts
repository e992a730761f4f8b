// End to end on nodes configured like real ones (issue 7, item 0): strict
// rp_filter, a conntrack INVALID drop rule in the forward path, IPv4 and IPv6
// forwarding, a default route (src/rig/topology.ts). A ClusterIP must carry
// TCP and UDP from a pod to a backend on the same node, on another node, and
// to a host-network backend (an endpoint that is a node's own address, like
// the API server behind `kubernetes`), on both families, and a long transfer
// both ways with FIN teardown must complete.
//
// This fails on the first datapath, which reverse-translated replies at the
// backend's first hop: the node's conntrack then sees the reply as a new,
// INVALID flow (dropped by the forward rule), strict rp_filter drops replies
// whose source became the ClusterIP on a pod interface, and replies the host
// itself sends are never translated. The failure messages carry the nodes'
// ct-INVALID drop counters and the dataplane's counters.

import { describe, expect } from 'vitest';
import type { Cluster, ClusterNode, Pod } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import { needs } from '../support/requirements.ts';
import { describeFailures, e2eTest, evidence, type PinRoot, REQ_TIMEOUT_MS, serviceManifest, startDaemon, TIME_SCALE, untilProgrammed } from './fixtures.ts';

const skip = needs('the real-node end-to-end suite', ['root', 'ip', 'nft', 'bpf-object', 'native-addon']);

const HTTP = 8080;
const DNS = 5353;
const BULK = 7080;
const PORTS = [
  { name: 'http', port: 80, targetPort: HTTP, protocol: 'TCP' as const },
  { name: 'dns', port: 53, targetPort: DNS, protocol: 'UDP' as const },
  { name: 'bulk', port: 7000, targetPort: BULK, protocol: 'TCP' as const },
];
/** Bytes each long transfer sends (and gets back): 4 MB, 2 MB under emulation (the kernel-matrix VMs). */
const BULK_BYTES = TIME_SCALE > 1 ? 2 << 20 : 4 << 20;
const BULK_TIMEOUT_MS = 20_000;

type Family = 'IPv4' | 'IPv6';
const FAMILIES: Family[] = ['IPv4', 'IPv6'];

/** Where the endpoint of each Service runs, seen from the client pod-1-0. */
type Placement = 'same node' | 'other node' | 'host network, same node' | 'host network, other node';
const PLACEMENTS: Placement[] = ['same node', 'other node', 'host network, same node', 'host network, other node'];

const VIPS: Record<Placement, Record<Family, string>> = {
  'same node': { IPv4: '10.96.1.10', IPv6: 'fd00:10:96::110' },
  'other node': { IPv4: '10.96.1.11', IPv6: 'fd00:10:96::111' },
  'host network, same node': { IPv4: '10.96.1.12', IPv6: 'fd00:10:96::112' },
  'host network, other node': { IPv4: '10.96.1.13', IPv6: 'fd00:10:96::113' },
};

function addrOf(x: Pod | ClusterNode, f: Family): string {
  if ('ip' in x) return f === 'IPv4' ? x.ip : x.ip6;
  return f === 'IPv4' ? x.addr : x.addr6;
}

/** The backend of each placement: a pod or a node (host network). */
function backendOf(c: Cluster, p: Placement): Pod | ClusterNode {
  switch (p) {
    case 'same node':
      return c.pod(1, 1);
    case 'other node':
      return c.pod(2, 1);
    case 'host network, same node':
      return c.node(1);
    case 'host network, other node':
      return c.node(2);
  }
}

interface Scenario {
  daemons: RigProcess[];
}

const test = e2eTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster: c, pins, manifests }, use) => {
      const s: Scenario = { daemons: [] };
      try {
        await Promise.all(PLACEMENTS.map((p) => c.startBackend(backendOf(c, p), { tcp: [HTTP], udp: [DNS], bulk: [BULK] })));
        PLACEMENTS.forEach((p, i) => {
          const b = backendOf(c, p);
          const node = 'ip' in b ? c.nodeOf(b).name : b.name;
          manifests.write(
            `rn${i}.yaml`,
            serviceManifest(
              { name: `rn${i}`, clusterIPs: [VIPS[p].IPv4, VIPS[p].IPv6], ports: PORTS },
              FAMILIES.map((f) => ({ ip: addrOf(b, f), node })),
            ),
          );
        });
        // As on a real cluster, the daemons know the pod range (traffic from it is not masqueraded).
        s.daemons = c.nodes.map((n) => startDaemon(c, n, manifests, pins, ['--cluster-cidr=10.244.0.0/16,fd00:10:244::/56']));
        await untilProgrammed(s.daemons);
        await use(s);
      } finally {
        await Promise.all(s.daemons.map((d) => d.stop()));
      }
    },
    { scope: 'file', auto: true },
  ],
});

async function because(c: Cluster, pins: PinRoot, results: readonly RequestResult[]): Promise<string> {
  return `${describeFailures(results)}\n${await evidence(c, pins)}`;
}

describe.skipIf(skip)('a ClusterIP on real nodes (strict rp_filter, conntrack INVALID dropped, host-network endpoints)', () => {
  for (const family of FAMILIES) {
    for (const placement of PLACEMENTS) {
      test(`${family}: pod -> ClusterIP -> backend on the ${placement}: TCP, UDP, and ${BULK_BYTES >> 20} MB both ways closed by FIN from both ends`, async ({
        cluster: c,
        pins,
      }) => {
        const client = c.pod(1, 0);
        const vip = VIPS[placement][family];
        const backend = backendOf(c, placement);
        // One client process for the three (starting node is slow in the VMs).
        const [tcp = [], udp = [], bulk = []] = await c.requestMany(client, [
          { proto: 'tcp', ip: vip, port: 80, count: 20, concurrency: 5, timeoutMs: REQ_TIMEOUT_MS },
          { proto: 'udp', ip: vip, port: 53, count: 20, concurrency: 5, timeoutMs: REQ_TIMEOUT_MS },
          { proto: 'tcp', ip: vip, port: 7000, count: 2, concurrency: 2, timeoutMs: BULK_TIMEOUT_MS, bulkBytes: BULK_BYTES },
        ]);
        for (const [proto, results] of [
          ['tcp', tcp],
          ['udp', udp],
        ] as const) {
          const port = proto === 'tcp' ? 80 : 53;
          expect(results.filter((r) => !r.ok).length, `${proto}: every request answered; ${await because(c, pins, results)}`).toBe(0);
          for (const r of results) {
            expect(r.backend, `${proto}: answered by the endpoint`).toBe(backend.name);
            expect(r.reply, `${proto}: the reply comes from ClusterIP:port`).toStrictEqual({ ip: vip, port });
            expect(r.seenClient?.ip, `${proto}: the backend sees the client pod (no masquerade)`).toBe(addrOf(client, family));
            expect(r.seenLocal, `${proto}: reached on its own address and targetPort`).toStrictEqual({
              ip: addrOf(backend, family),
              port: proto === 'tcp' ? HTTP : DNS,
            });
          }
        }
        expect(
          bulk.map((r) => r.error ?? 'ok'),
          `bulk: every byte came back, in order; ${await because(c, pins, bulk)}`,
        ).toStrictEqual(['ok', 'ok']);
        for (const r of bulk) {
          expect(r.bytes).toBe(BULK_BYTES);
          expect(r.backend).toBe(backend.name);
          expect(r.reply).toStrictEqual({ ip: vip, port: 7000 });
        }
      });
    }
  }

  test('the nodes really are strict: rp_filter=1 everywhere and the ct INVALID rule is in the forward hook', async ({ cluster: c }) => {
    for (const n of c.nodes) {
      const r = await c.exec(
        n,
        ['sh', '-c', 'cat /proc/sys/net/ipv4/conf/*/rp_filter | sort -u; cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding'],
        {
          check: true,
        },
      );
      expect(r.stdout.split('\n').filter(Boolean), `${n.name}: rp_filter values, ip_forward, IPv6 forwarding`).toStrictEqual(['1', '1', '1']);
      const nft = await c.exec(n, ['nft', 'list', 'ruleset'], { check: true });
      expect(nft.stdout).toMatch(/hook forward priority filter; policy accept;\s+ct state invalid counter packets \d+ bytes \d+ drop/);
    }
  });
});
