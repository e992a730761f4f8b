// `switchyard demo`: a two-node mini-cluster out of network namespaces on
// this machine, configured like real nodes (strict rp_filter, conntrack
// INVALID dropped, IPv4 and IPv6), a Switchyard daemon per node, and real
// traffic through every kind of frontend: a ClusterIP on both families from
// a pod, a NodePort from the external client, a LoadBalancer IP with a
// source range (one client allowed, one refused), and a Service without
// endpoints (refused at once). Prints what happened for each, then tears
// everything down. Exits non-zero when anything did not behave as expected.

import { createCluster, type Cluster, type Host, type Pod } from '../rig/cluster.ts';
import type { RigProcess } from '../rig/proc.ts';
import type { Proto, RequestResult } from '../rig/protocol.ts';
import { Manifests, manifestText, nodeDoc, PinRoot, serviceManifest, startDaemon } from '../rig/switchyard.ts';
import { SwitchyardError } from '../util/errors.ts';

const WEB = { v4: '10.96.0.10', v6: 'fd00:10:96::10', tcpNodePort: 30080, udpNodePort: 30053 };
const LB = { vip: '10.96.0.11', vip6: 'fd00:10:96::11', ip: '198.19.0.30', tcpNodePort: 30081, udpNodePort: 30054 };
const EMPTY = { v4: '10.96.0.12', v6: 'fd00:10:96::12' };
const REQUESTS = 100;
const REFUSE_TIMEOUT_MS = 1000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function waitReady(c: Cluster, daemons: RigProcess[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (const n of [1, 2]) {
    for (;;) {
      const [r] = await c.request(c.pod(n, 0), { proto: 'tcp', ip: WEB.v4, port: 80, count: 1, timeoutMs: 1000 });
      if (r?.ok) break;
      if (Date.now() > deadline) {
        for (const d of daemons) say(`--- daemon in ${d.ns} ---\n${d.stderr.slice(-2000)}`);
        throw new SwitchyardError('ERR_SY_DEMO_FAILED', `the Service never answered from node ${n}`);
      }
      await new Promise((res) => setTimeout(res, 200));
    }
  }
}

/** Prints one scenario's results; true when every request was answered and each backend in `backends` was used. */
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
  const replies = new Set(
    results.filter((r) => r.ok).map((r) => (r.reply?.ip.includes(':') ? `[${r.reply.ip}]:${r.reply.port}` : `${r.reply?.ip}:${r.reply?.port}`)),
  );
  say(`\n${title}: ${results.length - failed.length}/${results.length} answered, replies came from ${[...replies].join(', ') || '-'}`);
  for (const b of backends) {
    say(`  ${b.padEnd(10)} ${String(counts.get(b) ?? 0).padStart(4)} requests   saw client ${[...(seen.get(b) ?? [])].join(', ') || '-'}`);
  }
  if (failed.length > 0) say(`  failures: ${[...new Set(failed.map((r) => r.error))].join(', ')}`);
  return failed.length === 0 && backends.every((b) => (counts.get(b) ?? 0) > 0);
}

/** Prints a scenario that must NOT be answered; true when every request ended with `want` (an error code or 'timeout'). */
function reportRefused(title: string, results: readonly RequestResult[], want: string): boolean {
  const errors = results.map((r) => (r.ok ? `answered by ${r.backend}` : (r.error ?? '?')));
  const ok = errors.every((e) => e === want);
  const ms = results.map((r) => r.ms);
  say(`\n${title}: ${[...new Set(errors)].join(', ')} (${Math.min(...ms)}-${Math.max(...ms)} ms)${ok ? '' : `  <- expected ${want}`}`);
  return ok;
}

function both(p: Pod, c: Cluster): { ip: string; node: string }[] {
  const node = c.nodeOf(p).name;
  return [
    { ip: p.ip, node },
    { ip: p.ip6, node },
  ];
}

export async function demo(): Promise<number> {
  say('switchyard demo: 2 nodes x 3 pods in network namespaces (strict rp_filter, conntrack INVALID dropped, IPv4 + IPv6), a daemon per node');
  const c = await createCluster({ nodes: 2, podsPerNode: 3 });
  const pins = new PinRoot('demo');
  const manifests = new Manifests();
  let ok = true;
  try {
    pins.mount();
    const pods = [c.pod(1, 1), c.pod(1, 2), c.pod(2, 1), c.pod(2, 2)];
    await Promise.all(pods.map((p) => c.startBackend(p, { tcp: [8080], udp: [5353] })));
    const endpoints = pods.flatMap((p) => both(p, c));
    const ports = (tcpNodePort?: number, udpNodePort?: number) => [
      { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const, ...(tcpNodePort ? { nodePort: tcpNodePort } : {}) },
      { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' as const, ...(udpNodePort ? { nodePort: udpNodePort } : {}) },
    ];
    manifests.write('nodes.yaml', manifestText(c.nodes.map(nodeDoc)));
    manifests.write(
      'web.yaml',
      serviceManifest({ name: 'web', type: 'NodePort', clusterIPs: [WEB.v4, WEB.v6], ports: ports(WEB.tcpNodePort, WEB.udpNodePort) }, endpoints),
    );
    manifests.write(
      'lb.yaml',
      serviceManifest(
        {
          name: 'lb',
          type: 'LoadBalancer',
          clusterIPs: [LB.vip, LB.vip6],
          ports: ports(LB.tcpNodePort, LB.udpNodePort),
          loadBalancerIPs: [LB.ip],
          ipMode: 'VIP',
          loadBalancerSourceRanges: [`${c.ext.addr}/32`],
        },
        endpoints,
      ),
    );
    manifests.write('empty.yaml', serviceManifest({ name: 'empty', clusterIPs: [EMPTY.v4, EMPTY.v6], ports: ports() }, []));
    for (const n of c.nodes) say(`  ${n.name}: ${n.addr} ${n.addr6}, pods ${n.pods.map((p) => `${p.name}=${p.ip},${p.ip6}`).join(' ')}`);
    say(`  external clients: ${c.ext.name}=${c.ext.addr},${c.ext.addr6} ${c.ext2.name}=${c.ext2.addr},${c.ext2.addr6} (routed through the gateway)`);
    say(
      `  Service web: ClusterIP ${WEB.v4} and ${WEB.v6}, NodePort tcp/${WEB.tcpNodePort} udp/${WEB.udpNodePort}; endpoints ${pods.map((p) => p.name).join(', ')}`,
    );
    say(`  Service lb: LoadBalancer IP ${LB.ip} (the gateway routes it to node-1), loadBalancerSourceRanges ${c.ext.addr}/32`);
    say(`  Service empty: ClusterIP ${EMPTY.v4} and ${EMPTY.v6}, no endpoints`);
    const daemons = c.nodes.map((n) => startDaemon(c, n, manifests, pins, ['--cluster-cidr=10.244.0.0/16,fd00:10:244::/56']));
    await waitReady(c, daemons);
    const names = pods.map((p) => p.name);
    const client = c.pod(1, 0);
    const run = (from: Pod | Host, proto: Proto, ip: string, port: number, count = REQUESTS, timeoutMs = 2000, udpConnected = false) =>
      c.request(from, { proto, ip, port, count, timeoutMs, udpConnected });

    for (const ip of [WEB.v4, WEB.v6]) {
      for (const proto of ['tcp', 'udp'] as const) {
        const title = `ClusterIP: ${proto.toUpperCase()} from ${client.name} to ${ip}:${proto === 'tcp' ? 80 : 53}`;
        ok = report(title, await run(client, proto, ip, proto === 'tcp' ? 80 : 53), names) && ok;
      }
    }
    const node1 = c.node(1);
    for (const ip of [node1.addr, node1.addr6]) {
      for (const proto of ['tcp', 'udp'] as const) {
        const port = proto === 'tcp' ? WEB.tcpNodePort : WEB.udpNodePort;
        ok =
          report(
            `NodePort: ${proto.toUpperCase()} from ${c.ext.name} (${c.ext.addr}) to ${node1.name} ${ip}:${port} (masqueraded to the node)`,
            await run(c.ext, proto, ip, port),
            names,
          ) && ok;
      }
    }
    ok =
      report(`LoadBalancer IP: TCP from ${c.ext.name} (${c.ext.addr}, inside the source range) to ${LB.ip}:80`, await run(c.ext, 'tcp', LB.ip, 80), names) &&
      ok;
    ok =
      reportRefused(
        `LoadBalancer IP: TCP from ${c.ext2.name} (${c.ext2.addr}, outside the source range) to ${LB.ip}:80, dropped`,
        await run(c.ext2, 'tcp', LB.ip, 80, 3, REFUSE_TIMEOUT_MS),
        'timeout',
      ) && ok;
    for (const ip of [EMPTY.v4, EMPTY.v6]) {
      for (const proto of ['tcp', 'udp'] as const) {
        ok =
          reportRefused(
            `No endpoints: ${proto.toUpperCase()} from ${client.name} to ${ip}:${proto === 'tcp' ? 80 : 53}, refused (${proto === 'tcp' ? 'TCP reset' : 'ICMP port unreachable'})`,
            await run(client, proto, ip, proto === 'tcp' ? 80 : 53, 3, 2000, true),
            'ECONNREFUSED',
          ) && ok;
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
  say(ok ? '\ndemo: OK, every frontend behaved as expected' : '\ndemo: FAILED');
  return ok ? 0 : 1;
}
