// End to end, SCTP (issue 7, item 8): associations through a ClusterIP from a
// pod (backend on the same node and on the other node) and through a
// NodePort from the external client (policy Cluster: masqueraded, backend
// on the other node), IPv4 and IPv6,
// on the real-node rig. The port changes on the way (80 -> 9999, NodePort
// 30099 -> 9999), so the program must fix the CRC32c:
// a wrong checksum is dropped by the receiver and the association never
// comes up. SCTP sockets come from the rig's C helper (src/rig/sctp.c).
// Needs a kernel with SCTP: vitest.config.ts runs this file only there
// (always in the kernel-matrix VMs).

import { describe, expect } from 'vitest';
import type { Cluster, Pod } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import { needs } from '../support/requirements.ts';
import { describeFailures, e2eTest, evidence, REQ_TIMEOUT_MS, serviceManifest, startDaemon, untilProgrammed } from './fixtures.ts';

const skip = needs('the SCTP end-to-end suite', ['root', 'ip', 'nft', 'cc', 'sctp', 'bpf-object', 'native-addon']);

const SCTP_PORT = 9999;
const NODE_PORT = 30099;
type Family = 'IPv4' | 'IPv6';
const VIPS = {
  same: { IPv4: '10.96.4.10', IPv6: 'fd00:10:96::410' },
  other: { IPv4: '10.96.4.11', IPv6: 'fd00:10:96::411' },
};

function eps(c: Cluster, p: Pod): { ip: string; node: string }[] {
  return [
    { ip: p.ip, node: c.nodeOf(p).name },
    { ip: p.ip6, node: c.nodeOf(p).name },
  ];
}

const test = e2eTest.extend<{ $file: { daemons: RigProcess[] } }>({
  daemons: [
    async ({ cluster: c, pins, manifests }, use) => {
      let daemons: RigProcess[] = [];
      try {
        await Promise.all([c.pod(1, 1), c.pod(2, 1)].map((p) => c.startBackend(p, { sctp: [SCTP_PORT] })));
        const ports = (nodePort?: number) => [{ name: 'sctp', port: 80, targetPort: SCTP_PORT, protocol: 'SCTP' as const, ...(nodePort ? { nodePort } : {}) }];
        manifests.write('same.yaml', serviceManifest({ name: 'same', clusterIPs: [VIPS.same.IPv4, VIPS.same.IPv6], ports: ports() }, eps(c, c.pod(1, 1))));
        manifests.write(
          'other.yaml',
          serviceManifest({ name: 'other', type: 'NodePort', clusterIPs: [VIPS.other.IPv4, VIPS.other.IPv6], ports: ports(NODE_PORT) }, eps(c, c.pod(2, 1))),
        );
        daemons = c.nodes.map((n) => startDaemon(c, n, manifests, pins, ['--cluster-cidr=10.244.0.0/16,fd00:10:244::/56']));
        await untilProgrammed(daemons);
        await use(daemons);
      } finally {
        await Promise.all(daemons.map((d) => d.stop()));
      }
    },
    { scope: 'file', auto: true },
  ],
});

describe.skipIf(skip)('SCTP through a daemon per node', () => {
  for (const f of ['IPv4', 'IPv6'] as Family[]) {
    const pick = (x: { ip: string; ip6: string }): string => (f === 'IPv4' ? x.ip : x.ip6);
    for (const where of ['same', 'other'] as const) {
      test(`${f}: pod -> ClusterIP -> backend on the ${where} node`, async ({ cluster: c, pins }) => {
        const client = c.pod(1, 0);
        const backend = where === 'same' ? c.pod(1, 1) : c.pod(2, 1);
        const vip = VIPS[where][f];
        const results = await c.request(client, { proto: 'sctp', ip: vip, port: 80, count: 5, timeoutMs: REQ_TIMEOUT_MS });
        if (results.some((r) => !r.ok)) expect.fail(`${describeFailures(results)}\n${await evidence(c, pins)}`);
        for (const r of results) {
          expect(r.backend).toBe(backend.name);
          expect(r.reply, 'the association is with ClusterIP:port').toStrictEqual({ ip: vip, port: 80 });
          expect(r.seenClient?.ip, 'the backend sees the pod').toBe(pick(client));
          expect(r.seenLocal).toStrictEqual({ ip: pick(backend), port: SCTP_PORT });
        }
      });
    }

    test(`${f}: ext -> NodePort on node 1 -> backend on node 2, masqueraded`, async ({ cluster: c, pins }) => {
      const node = c.node(1);
      const ip = f === 'IPv4' ? node.addr : node.addr6;
      const results = await c.request(c.ext, { proto: 'sctp', ip, port: NODE_PORT, count: 5, timeoutMs: REQ_TIMEOUT_MS });
      if (results.some((r) => !r.ok)) expect.fail(`${describeFailures(results)}\n${await evidence(c, pins)}`);
      for (const r of results) {
        expect(r.backend).toBe(c.pod(2, 1).name);
        expect(r.reply).toStrictEqual({ ip, port: NODE_PORT });
        expect(r.seenClient?.ip, 'masqueraded to node 1').toBe(ip);
      }
    });
  }
});
