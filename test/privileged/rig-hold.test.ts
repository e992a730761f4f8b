// The rig's long-lived connections (backend --echo, holder.ts), checked
// directly pod to pod with no dataplane involved.

import { describe, expect, test } from 'vitest';
import { withCluster } from '../../src/rig/cluster.ts';
import { needs } from '../support/requirements.ts';

const skip = needs('the rig hold test', ['root', 'ip']);

describe.skipIf(skip)('held connections on the rig', () => {
  test('a held connection gets every line answered by the one backend it reached; a dead target fails it', async () => {
    await withCluster({ nodes: 1, podsPerNode: 2 }, async (c) => {
      const server = c.pod(1, 1);
      const backend = await c.startBackend(server, { echo: [7000] });
      const hold = await c.hold(c.pod(1, 0), { ip: server.ip, port: 7000, durationMs: 1000, intervalMs: 50 });
      const out = await hold.result;
      expect(out.error).toBe(undefined);
      expect(out.sent, `sent ${out.sent} lines`).toBeGreaterThanOrEqual(10);
      expect(out.answered).toBe(out.sent);
      expect(out.backends).toStrictEqual([server.name]);

      const doomed = await c.hold(c.pod(1, 0), { ip: server.ip, port: 7000, durationMs: 5000, intervalMs: 50 });
      await backend.stop();
      const cut = await doomed.result;
      expect(cut.error, 'the connection broke when the backend went away').toBeTruthy();
      expect(cut.answered < cut.sent || cut.error === 'closed by peer').toBe(true);
    });
  });
});
