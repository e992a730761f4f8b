// The migration guide (README "Migrating from kube-proxy and back"), followed
// step by step on the rig (issue 10 item 4). Every node starts as a node run
// by kube-proxy's iptables mode: the ruleset kube-proxy writes for the
// Services (test/support/kube-proxy-ruleset.ts: KUBE-SERVICES, KUBE-SVC-*,
// KUBE-SEP-* with their DNAT, KUBE-MARK-MASQ, KUBE-POSTROUTING, KUBE-FORWARD
// ...) for both families through iptables-nft, with kubelet's chains beside
// it and a rule of the node's own; node 1 also has leftovers of kube-proxy's
// other modes (iptables-legacy chains, `table ip kube-proxy`, KUBE-* ipsets,
// a kube-ipvs0 device). Traffic runs all the way: new TCP connections and
// UDP requests in a loop (churn) from a pod of each node, one long-lived TCP
// connection and one UDP flow.
//
// There: traffic flows through kube-proxy's rules; Switchyard starts and
// programs; `switchyard cleanup --kube-proxy` removes every KUBE-* chain,
// table, set and device (a second run finds nothing) and leaves kubelet's
// chains, the node's own rule and the rig's nftables ct-invalid rule; no
// request of the churn failed, the long-lived connection and the UDP flow
// kept their backend throughout.
// Back: Switchyard is stopped (programs stay attached, traffic flows),
// kube-proxy's ruleset is installed again (no request fails meanwhile),
// `switchyard cleanup` removes Switchyard (no tc filter, no pin left); new
// connections after it go through kube-proxy's rules. A TCP connection open
// at the cleanup is reset (its translation was in Switchyard's maps only);
// the UDP flow goes on.

import { fileURLToPath } from 'node:url';
import { describe, expect } from 'vitest';
import type { Cluster, ClusterNode } from '../../src/rig/cluster.ts';
import type { HolderOutput } from '../../src/rig/holder.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import { type KpService, kubeProxyRuleset, USER_RULE_COMMENT } from '../support/kube-proxy-ruleset.ts';
import { needs } from '../support/requirements.ts';
import type { UdpFlowOutput } from '../support/udp-flow.ts';
import {
  type Backend,
  describeFailures,
  e2eTest,
  evidence,
  type RigFixtures,
  requestService,
  SWITCHYARD,
  scaled,
  serviceManifest,
  startBackends,
  startDaemon,
  untilProgrammed,
} from './fixtures.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';

const skip = needs('the kube-proxy migration suite', ['root', 'ip', 'nft', 'iptables', 'ipset', 'bpf-object', 'native-addon']);

const VIP = '10.96.0.60';
const VIP6 = 'fd00:10:96::60';
const CLUSTER_CIDR = '10.244.0.0/16';
const CLUSTER_CIDR6 = 'fd00:10:244::/56';
const ECHO_PORT = 7070;
const HOLD_PORT = 7000;
const PORTS = [
  { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' as const },
  { name: 'echo', port: HOLD_PORT, targetPort: ECHO_PORT, protocol: 'TCP' as const },
];
/** Long enough for Switchyard's start, first sync and the cleanup of both nodes. */
const HOLD_MS = scaled(60_000);
const HOLD_INTERVAL_MS = 500;
const UDP_FLOW = fileURLToPath(new URL('../support/udp-flow.ts', import.meta.url));

function kpServices(backends: readonly Backend[], c: Cluster, v6: boolean): KpService[] {
  const ip = (b: Backend): string => {
    const pod = c.nodes.flatMap((n) => n.pods).find((p) => p.name === b.name);
    return v6 ? `[${pod?.ip6}]` : (pod?.ip as string);
  };
  return [
    {
      namespace: 'default',
      name: 'web',
      clusterIP: v6 ? VIP6 : VIP,
      ports: PORTS.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol, endpoints: backends.map((b) => `${ip(b)}:${p.targetPort}`) })),
    },
  ];
}

async function installKubeProxy(c: Cluster, n: ClusterNode, backends: readonly Backend[]): Promise<void> {
  await c.exec(n, ['iptables-nft-restore', '--noflush'], { input: kubeProxyRuleset(kpServices(backends, c, false), CLUSTER_CIDR, false), check: true });
  await c.exec(n, ['ip6tables-nft-restore', '--noflush'], { input: kubeProxyRuleset(kpServices(backends, c, true), CLUSTER_CIDR6, true), check: true });
}

/** Leftovers of kube-proxy's other modes and backends (a node that changed mode or iptables backend). */
const OTHER_LEFTOVERS = [
  'iptables-legacy -t nat -N KUBE-SERVICES',
  'iptables-legacy -t nat -N KUBE-SVC-ABCDEFGHIJKLMNOP',
  'iptables-legacy -t nat -A KUBE-SERVICES -d 10.96.0.99/32 -p tcp --dport 80 -j KUBE-SVC-ABCDEFGHIJKLMNOP',
  'iptables-legacy -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  `iptables-legacy -t filter -A INPUT -s 198.18.3.0/24 -m comment --comment "${USER_RULE_COMMENT}" -j DROP`,
  'nft add table ip kube-proxy',
  "nft 'add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100; }'",
  'nft add table ip6 kube-proxy',
  'ipset create KUBE-CLUSTER-IP hash:ip,port',
  'ipset create KUBE-6-CLUSTER-IP hash:ip,port family inet6',
  'ipset create node-allow hash:ip',
  // This kernel has no dummy devices (CONFIG_DUMMY): kube-proxy's kube-ipvs0 is stood in for by a bridge of that name.
  'ip link add kube-ipvs0 type dummy 2>/dev/null || ip link add kube-ipvs0 type bridge',
].join(' && ');

/** kube-proxy's names in an iptables-save output (kubelet's are not). */
const KUBE_PROXY_CHAIN = /KUBE-(SERVICES|NODEPORTS|POSTROUTING|MARK-MASQ|PROXY-CANARY|EXTERNAL-SERVICES|FORWARD|PROXY-FIREWALL|SVC-|SEP-|EXT-|FW-)/;

async function sh(c: Cluster, n: ClusterNode, script: string): Promise<string> {
  return (await c.exec(n, ['sh', '-c', script], { check: true })).stdout;
}

/** Every table the node's iptables backends show, both families. */
async function iptablesView(c: Cluster, n: ClusterNode): Promise<string> {
  return sh(c, n, 'iptables-nft-save; ip6tables-nft-save; iptables-legacy-save; ip6tables-legacy-save');
}

function runCli(c: Cluster, n: ClusterNode, args: string[]) {
  return c.exec(n, [SWITCHYARD, ...args]);
}

/** A churn request's result, with what it was and when its batch ended (for the failure message). */
type ChurnResult = RequestResult & { readonly proto: 'tcp' | 'udp'; readonly node: number; readonly doneAt: number };

/** New connections and requests in a loop from pod 0 of `node` until stop(): churn. */
function churn(c: Cluster, node: number): { stop: () => Promise<ChurnResult[]> } {
  const results: ChurnResult[] = [];
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      const [tcp = [], udp = []] = await c.requestMany(c.pod(node, 0), [
        { proto: 'tcp', ip: VIP, port: 80, count: 10, concurrency: 5, timeoutMs: 3000 },
        { proto: 'udp', ip: VIP, port: 53, count: 10, concurrency: 5, timeoutMs: 3000 },
      ]);
      const doneAt = Date.now();
      results.push(...tcp.map((r) => ({ ...r, proto: 'tcp' as const, node, doneAt })), ...udp.map((r) => ({ ...r, proto: 'udp' as const, node, doneAt })));
    }
  })();
  return {
    stop: async () => {
      stopping = true;
      await loop;
      return results;
    },
  };
}

interface Flows {
  hold: Promise<HolderOutput>;
  udp: Promise<UdpFlowOutput>;
}

async function startFlows(c: Cluster): Promise<Flows> {
  const h = await c.hold(c.pod(1, 0), { ip: VIP, port: HOLD_PORT, durationMs: HOLD_MS, intervalMs: HOLD_INTERVAL_MS });
  const u = c.spawn(c.pod(2, 0), [...NODE_CMD, UDP_FLOW, '--target', `${VIP}:53`, '--duration-ms', String(HOLD_MS), '--interval-ms', '200']);
  await u.waitForLine('connected', scaled(30_000));
  const udp = u.waitForLine(/^\{/, HOLD_MS + scaled(60_000)).then((l) => JSON.parse(l) as UdpFlowOutput);
  // Awaited after the steps; a step that fails first ends the test, and these then reject unheard.
  h.result.catch(() => undefined);
  udp.catch(() => undefined);
  return { hold: h.result, udp };
}

const daemons: RigProcess[] = [];
/** The endpoints of `web`, set by the first test. */
let endpoints: Backend[] = [];

describe.skipIf(skip)('migrating from kube-proxy to Switchyard and back (README guide)', () => {
  e2eTest('there: kube-proxy -> Switchyard -> cleanup --kube-proxy, with traffic running throughout', async ({ cluster: c, pins, manifests }) => {
    const f: RigFixtures = { cluster: c, pins, manifests };
    const backends = await startBackends(c, { tcp: [8080], udp: [5353], echo: [ECHO_PORT] });
    endpoints = backends;
    for (const n of c.nodes) await installKubeProxy(c, n, backends);
    await sh(c, c.node(1), OTHER_LEFTOVERS);

    // Step 0: kube-proxy carries the Services (the gateway drops the Service range: nothing else could).
    for (const n of [1, 2]) {
      for (const [proto, ip] of [
        ['tcp', VIP],
        ['udp', VIP],
        ['tcp', VIP6],
      ] as const) {
        const r = await requestService(c, n, proto, ip, 10);
        expect(describeFailures(r), `node ${n}: ${proto} to ${ip} through kube-proxy's rules`).toBe('');
      }
    }
    const dnat = await sh(c, c.node(1), 'iptables-nft -t nat -L KUBE-SERVICES -v -x -n');
    expect(Number(/^\s*(\d+)\s+\d+\s+KUBE-SVC-/m.exec(dnat)?.[1] ?? 0), 'kube-proxy KUBE-SERVICES rules matched packets').toBeGreaterThan(0);

    const churns = [churn(c, 1), churn(c, 2)];
    const t0 = Date.now();
    const steps: string[] = [];
    const step = (what: string): void => void steps.push(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const flows = await startFlows(c);
    let ok = false;
    try {
      // Step 1: cleanup --kube-proxy refuses before Switchyard is programmed (one line, exit 1, nothing touched).
      const early = await runCli(c, c.node(1), ['cleanup', '--kube-proxy', `--bpf-pin-path=${pins.dirFor(c.node(1))}`]);
      expect(early.code, early.stderr).toBe(1);
      expect(early.stderr.trim().split('\n')).toHaveLength(1);
      expect(early.stderr).toMatch(/refusing to remove kube-proxy's rules: no Switchyard maps pinned at .* or give --force/);
      expect(await iptablesView(c, c.node(1)), 'nothing touched').toMatch(/KUBE-SVC-/);

      // Step 2: Switchyard starts on every node (the DaemonSet) and programs the same Services.
      manifests.write(
        'web.yaml',
        serviceManifest(
          { name: 'web', clusterIPs: [VIP, VIP6], ports: PORTS },
          backends.flatMap((b) => [{ ip: b.ip, node: b.node }]),
        ),
      );
      step('Switchyard started');
      daemons.push(...c.nodes.map((n) => startDaemon(c, n, manifests, pins, [`--cluster-cidr=${CLUSTER_CIDR},${CLUSTER_CIDR6}`])));
      await untilProgrammed(daemons);
      step('programmed');

      // Step 3: on every node, cleanup --kube-proxy.
      for (const n of c.nodes) {
        const r = await runCli(c, n, ['cleanup', '--kube-proxy', `--bpf-pin-path=${pins.dirFor(n)}`]);
        expect(r.code, `${n.name}: cleanup --kube-proxy\n${r.stderr}`).toBe(0);
        expect(r.stderr).toMatch(/"kube-proxy cleanup done"|kube-proxy cleanup done/);
        step(`${n.name} cleaned up`);
      }
      await new Promise((r) => setTimeout(r, scaled(5000))); // traffic keeps running without kube-proxy's rules
      ok = true;
    } finally {
      const churned = (await Promise.all(churns.map((x) => x.stop()))).flat();
      if (ok) {
        expect(churned.length, 'the churn ran').toBeGreaterThan(40);
        const failed = churned
          .filter((r) => !r.ok)
          .map(
            (r) =>
              `node ${r.node} ${r.proto} from port ${r.local?.port ?? '?'}: ${r.error} (batch ended ${((r.doneAt - t0) / 1000).toFixed(1)} s in; ${steps.join(', ')})`,
          );
        expect(describeFailures(churned), `no new connection or request failed\n${failed.join('\n')}\n${await evidence(c, pins)}`).toBe('');
      }
    }
    const hold = await flows.hold;
    expect(hold.error, `the long-lived TCP connection: ${JSON.stringify(hold)}`).toBeUndefined();
    expect(hold.answered).toBe(hold.sent);
    expect(hold.backends, 'one backend throughout').toHaveLength(1);
    // Why it held: the first sync handed kube-proxy's connections (the held one among them) to the kernel.
    const handed = /"connections the kernel translated \(kube-proxy\) stay with the kernel until they end" flows=(\d+)/.exec(daemons[0]?.stderr ?? '');
    expect(Number(handed ? handed[1] : 0), `node 1 handed kube-proxy's TCP flows to the kernel\n${daemons[0]?.stderr.slice(-3000)}`).toBeGreaterThanOrEqual(1);
    const udp = await flows.udp;
    console.log(`# UDP flow across the migration: ${JSON.stringify(udp)}`);
    expect(udp.sent - udp.answered, `the UDP flow lost at most 2 datagrams: ${JSON.stringify(udp)}`).toBeLessThanOrEqual(2);

    // What is gone and what stays.
    for (const n of c.nodes) {
      const view = await iptablesView(c, n);
      expect(
        view.split('\n').filter((l) => KUBE_PROXY_CHAIN.test(l)),
        `${n.name}: no kube-proxy chain or jump left`,
      ).toStrictEqual([]);
      expect(view, `${n.name}: kubelet's chains stay`).toMatch(/:KUBE-KUBELET-CANARY/);
      expect(view, `${n.name}: kubelet's KUBE-FIREWALL stays`).toMatch(/-A INPUT -j KUBE-FIREWALL/);
      expect(view, `${n.name}: the node's own rule stays`).toContain(`--comment "${USER_RULE_COMMENT}" -j DROP`);
      const nft = await sh(c, n, 'nft list tables; nft list table inet sy_rig');
      expect(nft, `${n.name}: the rig's ct-invalid drop rule stays`).toMatch(/ct state invalid counter packets \d+ bytes \d+ drop/);
      expect(nft, `${n.name}: iptables-nft's tables stay`).toMatch(/table ip nat/);
      expect(nft).not.toMatch(/table ip6? kube-proxy/);
    }
    const node1 = c.node(1);
    expect(await sh(c, node1, 'ipset list -n'), 'only the non-KUBE ipset stays').toBe('node-allow\n');
    expect(await sh(c, node1, 'ip -o link show'), 'kube-ipvs0 is gone').not.toContain('kube-ipvs0');
    expect(await iptablesView(c, node1), 'the legacy backend was cleaned too, its own rule kept').toMatch(/iptables-save v[\d.]+ on[\s\S]*node firewall/);

    // Idempotent: a second run finds nothing.
    const again = await runCli(c, node1, ['cleanup', '--kube-proxy', `--bpf-pin-path=${pins.dirFor(node1)}`]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(
      /kube-proxy cleanup done" iptables=0 nftTables="-" ipvsServices=0 ipvsDevice=false ipsets=0 errors=0|kube-proxy cleanup done iptables=0 nftTables=- ipvsServices=0 ipvsDevice=false ipsets=0 errors=0/,
    );
    expect(again.stderr, 'IPVS absent from this kernel: said, and skipped').toMatch(/IPVS is not in this kernel/);
    void f;
  });

  e2eTest('back: Switchyard -> kube-proxy; connections open at the cleanup are reset, new ones work before and after', async ({ cluster: c, pins }) => {
    expect(daemons, 'the first test left Switchyard running').toHaveLength(2);
    const churns = [churn(c, 1), churn(c, 2)];
    const flows = await startFlows(c);
    let ok = false;
    try {
      // Step 1: stop Switchyard (the DaemonSet deleted): programs stay attached, maps pinned, traffic flows.
      for (const d of daemons.splice(0))
        expect(await d.stop(scaled(10_000)), `${d.ns}: the daemon exits 0 on SIGTERM`).toStrictEqual({ code: 0, signal: null });
      // Step 2: kube-proxy is back (its DaemonSet) and writes its rules: Switchyard's programs still translate first.
      for (const n of c.nodes) await installKubeProxy(c, n, endpoints);
      await new Promise((r) => setTimeout(r, scaled(3000)));
      ok = true;
    } finally {
      const churned = (await Promise.all(churns.map((x) => x.stop()))).flat();
      if (ok) {
        expect(churned.length, 'the churn ran').toBeGreaterThan(20);
        expect(describeFailures(churned), 'no connection or request failed while Switchyard was stopped and kube-proxy came back').toBe('');
      }
    }
    // Step 3: `switchyard cleanup` on every node: from now on kube-proxy's rules carry the Services.
    for (const n of c.nodes) {
      const r = await runCli(c, n, ['cleanup', `--bpf-pin-path=${pins.dirFor(n)}`]);
      expect(r.code, `${n.name}: cleanup\n${r.stderr}`).toBe(0);
    }
    // Nothing of Switchyard's is left: no tc filter of ours in either direction, no pin.
    for (const n of c.nodes) {
      for (const dev of ['eth0', ...n.pods.map((p) => p.hostIf)]) {
        for (const dir of ['ingress', 'egress']) {
          const shown = await sh(c, n, `tc filter show dev ${dev} ${dir}`);
          expect(shown, `${n.name} ${dev} ${dir}: no Switchyard program`).not.toMatch(/sy_(from|to)_(pod|net)|handle 0x5359/);
        }
      }
      const pinned = await sh(c, n, `ls -A ${pins.dirFor(n)} 2>/dev/null || true`);
      expect(pinned.trim(), `${n.name}: nothing pinned`).toBe('');
    }
    // New connections go through kube-proxy's DNAT again.
    const before = await sh(c, c.node(1), 'iptables-nft -t nat -L KUBE-SERVICES -v -x -n');
    const fresh = await requestService(c, 1, 'tcp', VIP, 10);
    expect(describeFailures(fresh), 'new TCP connections after the cleanup').toBe('');
    for (const n of [1, 2]) {
      const [tcp = [], udp = []] = await c.requestMany(c.pod(n, 0), [
        { proto: 'tcp', ip: VIP, port: 80, count: 20, concurrency: 5, timeoutMs: 3000 },
        { proto: 'udp', ip: VIP, port: 53, count: 20, concurrency: 5, timeoutMs: 3000 },
      ]);
      expect(describeFailures([...tcp, ...udp]), `node ${n}: new TCP connections and UDP requests after the cleanup`).toBe('');
    }
    const after = await sh(c, c.node(1), 'iptables-nft -t nat -L KUBE-SERVICES -v -x -n');
    const hits = (t: string): number => Number(/^\s*(\d+)\s+\d+\s+KUBE-SVC-/m.exec(t)?.[1] ?? 0);
    expect(hits(after), "kube-proxy's KUBE-SERVICES rule matched the new connections").toBeGreaterThanOrEqual(hits(before) + 10);
    // What survives: a TCP connection Switchyard translated has no NAT in the kernel's conntrack, so
    // once the program is gone its next packet is a new flow to kube-proxy's rules (another backend,
    // or the same one under a remapped port): it is reset. A UDP flow goes on (a new NAT binding).
    const hold = await flows.hold;
    expect(hold.error, `the long-lived TCP connection opened under Switchyard ends with the cleanup: ${JSON.stringify(hold)}`).toBeDefined();
    const udp = await flows.udp;
    console.log(`# UDP flow across the way back: ${JSON.stringify(udp)}`);
    expect(udp.sent - udp.answered, `the UDP flow lost at most 2 datagrams: ${JSON.stringify(udp)}`).toBeLessThanOrEqual(2);

    // `switchyard run --cleanup` (kube-proxy's flag): every proxy's state goes, kube-proxy's included, no refusal.
    const node2 = c.node(2);
    const rc = await runCli(c, node2, ['run', '--cleanup', `--bpf-pin-path=${pins.dirFor(node2)}`]);
    expect(rc.code, rc.stderr).toBe(0);
    expect((await iptablesView(c, node2)).split('\n').filter((l) => KUBE_PROXY_CHAIN.test(l))).toStrictEqual([]);
  });
});
