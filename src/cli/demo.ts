// `switchyard demo`: a two-node mini-cluster out of network namespaces on
// this machine, a Switchyard daemon per node, one ClusterIP Service with a
// TCP and a UDP port and four backends spread over both nodes; real traffic
// from a pod on each node; a report of which backend answered how often and
// which client address each backend saw; then everything is torn down.
// Exits non-zero when any request failed or a backend got no traffic.

import { createCluster, type Cluster } from '../rig/cluster.ts';
import { SwitchyardError } from '../util/errors.ts';
import type { RigProcess } from '../rig/proc.ts';
import type { RequestResult } from '../rig/protocol.ts';
import { PinRoot, Manifests, startDaemon, serviceYaml, sliceYaml } from '../rig/switchyard.ts';

const VIP = '10.96.0.10';
const REQUESTS = 200;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function waitReady(c: Cluster, daemons: RigProcess[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (const n of [1, 2]) {
    for (;;) {
      const [r] = await c.request(c.pod(n, 0), { proto: 'tcp', ip: VIP, port: 80, count: 1, timeoutMs: 1000 });
      if (r?.ok) break;
      if (Date.now() > deadline) {
        for (const d of daemons) say(`--- daemon in ${d.ns} ---\n${d.stderr.slice(-2000)}`);
        throw new SwitchyardError('ERR_SY_DEMO_FAILED', `the Service never answered from node ${n}`);
      }
      await new Promise((res) => setTimeout(res, 200));
    }
  }
}

function report(title: string, results: readonly RequestResult[], backends: readonly string[]): boolean {
  const counts = new Map<string, number>();
  const seen = new Map<string, Set<string>>();
  for (const r of results) {
    if (!r.ok || !r.backend) continue;
    counts.set(r.backend, (counts.get(r.backend) ?? 0) + 1);
    const s = seen.get(r.backend) ?? new Set<string>();
    s.add(r.seenClient?.ip ?? '?');
    seen.set(r.backend, s);
  }
  const failed = results.filter((r) => !r.ok);
  const replies = new Set(results.filter((r) => r.ok).map((r) => `${r.reply?.ip}:${r.reply?.port}`));
  say(`\n${title}: ${results.length - failed.length}/${results.length} answered, replies came from ${[...replies].join(', ') || '-'}`);
  for (const b of backends) {
    say(`  ${b.padEnd(10)} ${String(counts.get(b) ?? 0).padStart(4)} requests   saw client ${[...(seen.get(b) ?? [])].join(', ') || '-'}`);
  }
  if (failed.length > 0) say(`  failures: ${[...new Set(failed.map((r) => r.error))].join(', ')}`);
  return failed.length === 0 && backends.every((b) => (counts.get(b) ?? 0) > 0);
}

export async function demo(): Promise<number> {
  say('switchyard demo: 2 nodes x 3 pods in network namespaces, one ClusterIP Service, real TCP and UDP traffic');
  const c = await createCluster({ nodes: 2, podsPerNode: 3 });
  const pins = new PinRoot('demo');
  const manifests = new Manifests();
  let ok = true;
  try {
    pins.mount();
    const backends: { name: string; ip: string; node: string }[] = [];
    for (const n of [1, 2]) {
      for (const k of [1, 2]) {
        const pod = c.pod(n, k);
        await c.startBackend(pod, { tcp: [8080], udp: [5353] });
        backends.push({ name: pod.name, ip: pod.ip, node: c.node(n).name });
      }
    }
    manifests.write(
      'web.yaml',
      serviceYaml('web', VIP, [
        { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
        { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' },
      ]) +
        '---\n' +
        sliceYaml(
          'web',
          backends.map((b) => ({ ip: b.ip, node: b.node })),
          [
            { name: 'http', port: 8080, protocol: 'TCP' },
            { name: 'dns', port: 5353, protocol: 'UDP' },
          ],
        ),
    );
    for (const n of c.nodes) say(`  ${n.name}: ${n.addr}, pods ${n.pods.map((p) => `${p.name}=${p.ip}`).join(' ')}`);
    say(`  Service default/web: ClusterIP ${VIP} tcp/80 -> 8080, udp/53 -> 5353; endpoints ${backends.map((b) => b.name).join(', ')}`);
    const daemons = c.nodes.map((n) => startDaemon(c, n, manifests, pins));
    await waitReady(c, daemons);
    const names = backends.map((b) => b.name);
    for (const n of [1, 2]) {
      const client = c.pod(n, 0);
      for (const proto of ['tcp', 'udp'] as const) {
        const results = await c.request(client, { proto, ip: VIP, port: proto === 'tcp' ? 80 : 53, count: REQUESTS, timeoutMs: 2000 });
        ok = report(`${proto.toUpperCase()} from ${client.name} (${client.ip}) on ${c.node(n).name} to ${VIP}`, results, names) && ok;
      }
    }
  } catch (err) {
    say(`demo failed: ${(err as Error).message}`);
    ok = false;
  } finally {
    await c.destroy();
    pins.unmount();
    manifests.destroy();
  }
  say(ok ? '\ndemo: OK, every request answered and every backend used' : '\ndemo: FAILED');
  return ok ? 0 : 1;
}
