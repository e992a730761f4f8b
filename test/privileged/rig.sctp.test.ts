// Self-test of the rig's SCTP helper (src/rig/sctp.c), no dataplane: pod to
// pod on both families, the answer names the backend and the addresses it
// saw, and a port nobody listens on is refused. Runs where the kernel has
// SCTP (vitest.config.ts; always in the kernel-matrix VMs).

import { describe, expect, test } from 'vitest';
import { withCluster } from '../../src/rig/cluster.ts';
import { needs } from '../support/requirements.ts';

const skip = needs('the rig SCTP self-test', ['root', 'ip', 'cc', 'sctp']);

describe.skipIf(skip)('the rig speaks SCTP', () => {
  test('pod to pod on both families, and a closed port refused', async () => {
    await withCluster({ nodes: 1, podsPerNode: 2 }, async (c) => {
      const [client, server] = [c.pod(1, 0), c.pod(1, 1)];
      await c.startBackend(server, { sctp: [9999] });
      for (const [src, dst] of [
        [client.ip, server.ip],
        [client.ip6, server.ip6],
      ] as const) {
        const results = await c.request(client, { proto: 'sctp', ip: dst, port: 9999, count: 2, timeoutMs: 2000 });
        expect(results.map((r) => r.error ?? 'ok')).toStrictEqual(['ok', 'ok']);
        for (const r of results) {
          expect(r.backend).toBe(server.name);
          expect(r.seenClient).toStrictEqual({ ip: src, port: r.local?.port });
          expect(r.seenLocal).toStrictEqual({ ip: dst, port: 9999 });
          expect(r.reply).toStrictEqual({ ip: dst, port: 9999 });
        }
        const [closed] = await c.request(client, { proto: 'sctp', ip: dst, port: 9998, count: 1, timeoutMs: 2000 });
        expect(closed?.error).toBe('ECONNREFUSED');
      }
    });
  });
});
