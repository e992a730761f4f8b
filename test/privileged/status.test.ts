// `switchyard status` on the real kernel: a one-node rig runs the daemon
// (through the CLI contract, --manifests) with a dual-stack
// ClusterIP, a NodePort with externalTrafficPolicy Local, a LoadBalancer
// with loadBalancerSourceRanges and a Service without endpoints;
// `switchyard status --json` inside the node's namespace must report those
// frontends, backends, actions and source ranges, map fill equal to what
// bpftool counts in each pinned map, and the tc programs on eth0 and the pod
// veths. Then the daemon stops (SIGTERM: maps stay pinned) and status reports
// the same, with no daemon holding the pin directory. Remote endpoints sit
// on a node that does not exist here: status only reads, no traffic is sent.

import { describe, expect, test as base } from 'vitest';
import { type Cluster, type ClusterNode, createCluster } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { DataplaneStatus, FrontendStatus } from '../../src/dataplane/status.ts';
import { MAPS } from '../../src/dataplane/bpf/layout.ts';
import { needs } from '../support/requirements.ts';
import {
  Manifests,
  manifestText,
  nodeDoc,
  PinRoot,
  type SliceEndpoint,
  SWITCHYARD,
  serviceManifest,
  startDaemon,
  stderrTails,
  untilProgrammed,
} from './fixtures.ts';

const skip = needs('the status end-to-end test', ['root', 'ip', 'bpf-object', 'native-addon']);

const HTTP = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const }];
const withNodePort = (nodePort: number) => [{ ...HTTP[0]!, nodePort }];
/** Endpoints on a node that does not exist in this rig: remote backends, never reached here. */
const REMOTE4 = '10.244.2.50';
const REMOTE6 = 'fd00:10:244:2::50';
const WEB = ['10.96.5.10', 'fd00:10:96::510'];
const NPL = { vip: '10.96.5.11', nodePort: 30091 };
const LBR = { vip: '10.96.5.12', nodePort: 30092, lb: '198.19.0.40', range: '198.18.1.100/32' };
const EMPTY = '10.96.5.13';

/** One line per frontend: what the test compares. */
function brief(f: FrontendStatus): string {
  const scope = (s: FrontendStatus['internal']) =>
    `${s.action}${s.masquerade ? '+masq' : ''} [${s.backends
      .map((b) => `${b.address}:${b.port}${b.local ? ' local' : ''}`)
      .sort()
      .join(', ')}]`;
  const ranges = f.sourceRanges.length > 0 ? ` ranges=${f.sourceRanges.join(',')}` : '';
  return `${f.protocol} ${f.address}:${f.port} ${f.kind} etp=${f.externalTrafficPolicy} | ${scope(f.internal)} | ${f.sharedScope ? 'shared' : scope(f.external)}${ranges}`;
}

interface Scenario {
  readonly cluster: Cluster;
  readonly pins: PinRoot;
  readonly daemon: RigProcess;
  readonly node: ClusterNode;
}

/** The smallest rig that shows it all: one node with two pods, its daemon, the Services above. */
const test = base.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
    async ({}, use) => {
      const c = await createCluster({ nodes: 1, podsPerNode: 2 });
      const pins = new PinRoot('status');
      const manifests = new Manifests();
      let daemon: RigProcess | undefined;
      try {
        pins.mount();
        const node = c.node(1);
        const local = c.pod(1, 1);
        const here = (remote: boolean): SliceEndpoint[] => [
          { ip: local.ip, node: node.name },
          { ip: local.ip6, node: node.name },
          ...(remote ? [{ ip: REMOTE4, node: 'elsewhere' }] : []),
        ];
        manifests.write('nodes.yaml', manifestText([nodeDoc(node)]));
        manifests.write('web.yaml', serviceManifest({ name: 'web', clusterIPs: WEB, ports: HTTP }, [...here(true), { ip: REMOTE6, node: 'elsewhere' }]));
        manifests.write(
          'npl.yaml',
          serviceManifest(
            { name: 'npl', type: 'NodePort', externalTrafficPolicy: 'Local', clusterIPs: [NPL.vip], ports: withNodePort(NPL.nodePort) },
            here(true),
          ),
        );
        manifests.write(
          'lbr.yaml',
          serviceManifest(
            {
              name: 'lbr',
              type: 'LoadBalancer',
              clusterIPs: [LBR.vip],
              ports: withNodePort(LBR.nodePort),
              loadBalancerIPs: [LBR.lb],
              loadBalancerSourceRanges: [LBR.range],
            },
            [{ ip: REMOTE4, node: 'elsewhere' }],
          ),
        );
        manifests.write('empty.yaml', serviceManifest({ name: 'empty', clusterIPs: [EMPTY], ports: HTTP }, []));
        daemon = startDaemon(c, node, manifests, pins, ['--cluster-cidr=10.244.0.0/16,fd00:10:244::/56']);
        await untilProgrammed([daemon]);
        await use({ cluster: c, pins, daemon, node });
      } finally {
        await daemon?.stop();
        await c.destroy();
        pins.unmount();
        manifests.destroy();
      }
    },
    { scope: 'file' },
  ],
});

describe.skipIf(skip)('switchyard status reads back what the daemon programmed', () => {
  test('while the daemon runs and after it stopped: frontends, backends, actions, ranges, map fill, tc programs', async ({
    scenario: { cluster: c, pins, daemon, node },
  }) => {
    const dir = pins.dirFor(node);
    const statusJson = async (): Promise<DataplaneStatus> => {
      const r = await c.exec(node, [SWITCHYARD, 'status', '--json', `--bpf-pin-path=${dir}`]);
      expect(r.code, `status --json: ${r.stderr}\n${stderrTails([daemon])}`).toBe(0);
      return JSON.parse(r.stdout) as DataplaneStatus;
    };
    const local = c.pod(1, 1);
    const expected = [
      `TCP ${WEB[0]}:80 ClusterIP etp=null | DNAT [${local.ip}:8080 local, ${REMOTE4}:8080] | shared`,
      `TCP ${NPL.vip}:80 ClusterIP etp=null | DNAT [${local.ip}:8080 local, ${REMOTE4}:8080] | shared`,
      `TCP ${LBR.vip}:80 ClusterIP etp=null | DNAT [${REMOTE4}:8080] | shared`,
      `TCP ${EMPTY}:80 ClusterIP etp=null | REJECT [] | shared`,
      `TCP ${WEB[1]}:80 ClusterIP etp=null | DNAT [${local.ip6}:8080 local, ${REMOTE6}:8080] | shared`,
      `TCP ${node.addr}:${NPL.nodePort} NodePort etp=Local | DNAT [${local.ip}:8080 local, ${REMOTE4}:8080] | DNAT [${local.ip}:8080 local]`,
      `TCP ${node.addr}:${LBR.nodePort} NodePort etp=Cluster | DNAT+masq [${REMOTE4}:8080] | shared`,
      `TCP ${LBR.lb}:80 LoadBalancer etp=Cluster | DNAT+masq [${REMOTE4}:8080] | shared ranges=${LBR.range}`,
    ];

    const running = await statusJson();
    expect(running.schema).toBe('switchyard.status/v1');
    expect(running.frontends.map(brief)).toStrictEqual(expected);
    expect(running.daemonPids.length, 'the running daemon holds the pin directory').toBe(1);
    expect(running.notes).toStrictEqual([]);

    // Map fill: what bpftool counts in each pinned map.
    for (const t of running.tables) {
      const r = await c.exec(c.fabric, ['bpftool', '-j', 'map', 'dump', 'pinned', `${dir}/${t.name}`]);
      expect(r.code, r.stderr).toBe(0);
      if (t.name === MAPS.ct4.name || t.name === MAPS.ct6.name || t.name === MAPS.frag4.name) continue; // no traffic here, but not ours to count
      expect(t.entries, `${t.name}: entries as bpftool counts them`).toBe((JSON.parse(r.stdout) as unknown[]).length);
    }
    const fill = Object.fromEntries(running.tables.map((t) => [t.name, t.entries]));
    expect(fill[MAPS.srcrange4.name], 'one source range').toBe(1);
    expect(fill[MAPS.backend6.name], 'two IPv6 backends').toBe(2);
    expect(running.tables.every((t) => t.capacity > 0)).toBe(true);

    const hooks = running.attachments.map((a) => `${a.interface} ${a.hook} ${a.program}`);
    expect(hooks).toContain('eth0 ingress sy_from_net');
    expect(hooks).toContain('eth0 egress sy_to_net');
    expect(hooks).toContain(`${local.hostIf} ingress sy_from_pod`);
    expect(hooks).toContain(`${local.hostIf} egress sy_to_pod`);

    const text = await c.exec(node, [SWITCHYARD, 'status', `--bpf-pin-path=${dir}`]);
    expect(text.code, text.stderr).toBe(0);
    for (const a of [...WEB.map((w) => (w.includes(':') ? `[${w}]:80` : `${w}:80`)), `${node.addr}:${NPL.nodePort}`, `${LBR.lb}:80`, `${EMPTY}:80`, LBR.range])
      expect(text.stdout, a).toContain(a);

    await daemon.stop(); // SIGTERM: maps stay pinned, programs attached
    const stopped = await statusJson();
    expect(stopped.daemonPids, 'no daemon holds the pin directory').toStrictEqual([]);
    expect({ ...stopped, daemonPids: running.daemonPids }).toStrictEqual(running);

    const none = await c.exec(node, [SWITCHYARD, 'status', `--bpf-pin-path=${dir}-none`]);
    expect(none.code, 'nothing pinned: exit 3').toBe(3);
    expect(none.stderr).toMatch(/^switchyard status: nothing is pinned under .*\n$/);
  });
});
