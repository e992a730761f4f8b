// The rig's long-lived connections (backend --echo, holder.ts), checked
// directly pod to pod with no dataplane involved.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withCluster } from '../../src/rig/cluster.ts';
import { isRoot } from './harness.ts';

const root = isRoot();
if (!root) console.log('# skipping rig hold test: it needs root (network namespaces)');

test('a held connection gets every line answered by the one backend it reached; a dead target fails it', { skip: !root }, async () => {
  await withCluster({ nodes: 1, podsPerNode: 2 }, async (c) => {
    const server = c.pod(1, 1);
    const backend = await c.startBackend(server, { echo: [7000] });
    const hold = await c.hold(c.pod(1, 0), { ip: server.ip, port: 7000, durationMs: 1000, intervalMs: 50 });
    const out = await hold.result;
    assert.equal(out.error, undefined);
    assert.ok(out.sent >= 10, `sent ${out.sent} lines`);
    assert.equal(out.answered, out.sent);
    assert.deepEqual(out.backends, [server.name]);

    const doomed = await c.hold(c.pod(1, 0), { ip: server.ip, port: 7000, durationMs: 5000, intervalMs: 50 });
    await backend.stop();
    const cut = await doomed.result;
    assert.ok(cut.error, 'the connection broke when the backend went away');
    assert.ok(cut.answered < cut.sent || cut.error === 'closed by peer');
  });
});
