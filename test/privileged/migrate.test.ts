// The upgrade from map layout 1 to layout 2 on the rig (issue 7 item 2): a
// daemon built from the previous main (commit 9ef8560, the last of layout 1;
// test/support/v1-daemon.ts builds it once into .cache/) runs on every node
// with Services, long-lived TCP connections (src/rig/holder.ts: one through a
// Service, one hairpinned back to the client pod itself, so masqueraded) and
// UDP flows (test/support/udp-flow.ts) going through it. It is stopped with
// SIGTERM (programs stay attached, maps pinned) and a daemon of this checkout
// starts on the same pin directories. The held connections must keep
// exchanging data with the same backend throughout, new connections must
// work, and afterwards no layout 1 map is pinned and no layout 1 program is
// attached. The nodes are set up as layout 1 needed (RELAX_NODE_FOR_V1 in test/support/v1-daemon.ts).
// Also here: the addon's unpin() on a real bpffs (the migration's last step).

import { mkdirSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect } from 'vitest';
import { BpfObject, loadBinding } from '../../src/native/index.ts';
import type { HolderOutput } from '../../src/rig/holder.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { UdpFlowOutput } from '../support/udp-flow.ts';
import { BPF_OBJECT, needs } from '../support/requirements.ts';
import { thrownBy } from '../support/thrown.ts';
import { RELAX_NODE_FOR_V1, v1Daemon } from '../support/v1-daemon.ts';
import {
  type Backend,
  e2eTest,
  failures,
  type RigFixtures,
  requestService,
  SETTLE_MS,
  scaled,
  serviceYaml,
  sliceYaml,
  startBackends,
  startDaemon,
  until,
  untilServed,
} from './fixtures.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';

const skip = needs('the layout 1 -> 2 upgrade suite', ['root', 'ip', 'bpf-object', 'native-addon', 'clang']);

const VIP = '10.96.0.40';
const HOLD_VIP = '10.96.0.41';
const SELF_VIP = '10.96.0.42';
const HOLD_PORT = 7000;
const ECHO_PORT = 7070;
const V1_MAP_NAMES = ['sy_backend4_v1', 'sy_config_v1', 'sy_ct4_v1', 'sy_rnat4_v1', 'sy_stats_v1', 'sy_svc4_v1'];
/** How long the held flows run: through the stop, the new daemon's start, first sync and migration. */
const HOLD_MS = scaled(45_000);
/**
 * A held connection sends a line this often and fails when the answer takes
 * longer: long enough for a TCP retransmission and for a busy 2-core machine
 * (a lost packet is not a lost connection), short enough to see a reset.
 */
const HOLD_INTERVAL_MS = 1000;
/** Held TCP connections and UDP flows per node (besides the hairpin one). */
const FLOWS_PER_NODE = 3;
const UDP_FLOW = fileURLToPath(new URL('../support/udp-flow.ts', import.meta.url));

function manifests(backends: readonly Backend[], self: Backend): string {
  const eps = backends.map((b) => ({ ip: b.ip, node: b.node }));
  return [
    serviceYaml('web', VIP, [
      { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
      { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' },
    ]),
    sliceYaml('web', eps, [
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'dns', port: 5353, protocol: 'UDP' },
    ]),
    serviceYaml('hold', HOLD_VIP, [{ name: 'echo', port: HOLD_PORT, targetPort: ECHO_PORT, protocol: 'TCP' }]),
    sliceYaml('hold', eps, [{ name: 'echo', port: ECHO_PORT, protocol: 'TCP' }]),
    serviceYaml('self', SELF_VIP, [{ name: 'echo', port: HOLD_PORT, targetPort: ECHO_PORT, protocol: 'TCP' }]),
    sliceYaml('self', [{ ip: self.ip, node: self.node }], [{ name: 'echo', port: ECHO_PORT, protocol: 'TCP' }]),
  ].join('---\n');
}

function pinsOf(f: RigFixtures, node: number): string[] {
  return readdirSync(f.pins.dirFor(f.cluster.node(node)))
    .filter((n) => n.startsWith('sy_'))
    .sort();
}

/** A long-lived UDP flow from a pod; resolves once the first answer came back. */
async function udpFlow(f: RigFixtures, from: { ns: string }, ip: string, port: number): Promise<{ proc: RigProcess; result: Promise<UdpFlowOutput> }> {
  const proc = f.cluster.spawn(from.ns, [...NODE_CMD, UDP_FLOW, '--target', `${ip}:${port}`, '--duration-ms', String(HOLD_MS), '--interval-ms', '200']);
  await proc.waitForLine('connected', scaled(30_000));
  return { proc, result: proc.waitForLine(/^\{/, HOLD_MS + scaled(60_000)).then((l) => JSON.parse(l) as UdpFlowOutput) };
}

describe.skipIf(skip)('upgrade from layout 1', () => {
  e2eTest('unpin() removes a pin on a bpffs, says false for none, refuses a path outside a bpffs', async ({ pins }) => {
    const native = loadBinding();
    const dir = `${pins.path}/unpin`;
    mkdirSync(dir, { recursive: true });
    const obj = await BpfObject.open(BPF_OBJECT, dir, native);
    const [first] = obj.maps();
    obj.close();
    const path = first?.pinPath as string;
    expect(path.startsWith(dir)).toBe(true);
    expect(native.unpin(path)).toBe(true);
    expect(thrownBy(() => native.mapOpenPinned(path), Error)).toMatchObject({ code: 'ENOENT' });
    expect(native.unpin(path)).toBe(false);
    expect(thrownBy(() => native.unpin('/tmp/not-bpffs-file'), Error)).toMatchObject({ code: 'EINVAL', syscall: 'unpin' });
  });

  e2eTest(
    'a layout 1 daemon replaced by this one: held TCP (also masqueraded) and UDP flows keep their backend, new connections work, layout 1 is gone',
    async ({ cluster, pins, manifests: m }) => {
      const f: RigFixtures = { cluster, pins, manifests: m };
      const v1 = v1Daemon((l) => console.log(`# ${l}`));
      for (const n of cluster.nodes) await cluster.exec(n, ['sh', '-c', RELAX_NODE_FOR_V1], { check: true });
      const backends = await startBackends(cluster, { tcp: [8080], udp: [5353], echo: [ECHO_PORT] });
      const self = backends.find((b) => b.ip === cluster.pod(1, 1).ip) as Backend; // pod 1 is a backend; pod 0 the client
      f.manifests.write('svc.yaml', manifests(backends, self));
      const startV1 = (switchyard: string): RigProcess[] =>
        cluster.nodes.map((n) =>
          cluster.spawn(n.ns, [
            switchyard,
            'run',
            '--proxy-mode=bpf',
            `--manifests=${f.manifests.dir}`,
            `--hostname-override=${n.name}`,
            `--bpf-pin-path=${pins.dirFor(n)}`,
          ]),
        );
      let daemons = startV1(v1.switchyard);
      const holds: Array<{ what: string; result: Promise<HolderOutput> }> = [];
      const flows: Array<{ what: string; result: Promise<UdpFlowOutput> }> = [];
      try {
        for (const n of [1, 2]) {
          await untilServed(cluster, n, 'tcp', VIP, daemons);
          await untilServed(cluster, n, 'udp', VIP, daemons);
        }
        expect(pinsOf(f, 1), 'the layout 1 daemon pinned its maps').toEqual(V1_MAP_NAMES);
        // Several flows of each kind: a flow that lost its tracking is re-balanced to a random one of
        // four backends, so it could keep its backend by chance; all of them together cannot.
        for (const n of [1, 2]) {
          for (let i = 0; i < FLOWS_PER_NODE; i++) {
            const h = await cluster.hold(cluster.pod(n, 0), { ip: HOLD_VIP, port: HOLD_PORT, durationMs: HOLD_MS, intervalMs: HOLD_INTERVAL_MS });
            holds.push({ what: `TCP #${i} via ${HOLD_VIP} from node ${n}`, result: h.result });
            const u = await udpFlow(f, cluster.pod(n, 0), VIP, 53);
            flows.push({ what: `UDP #${i} via ${VIP} from node ${n}`, result: u.result });
          }
        }
        const hp = await cluster.hold(cluster.pod(1, 1), { ip: SELF_VIP, port: HOLD_PORT, durationMs: HOLD_MS, intervalMs: HOLD_INTERVAL_MS });
        holds.push({ what: `TCP hairpin via ${SELF_VIP} (masqueraded)`, result: hp.result });

        // The upgrade: SIGTERM leaves programs and maps; the new daemon takes the same pins.
        for (const d of daemons) expect(await d.stop(scaled(10_000)), `${d.ns}: the layout 1 daemon exits 0`).toStrictEqual({ code: 0, signal: null });
        daemons = cluster.nodes.map((n) => startDaemon(cluster, n, f.manifests, pins));
        for (const [i, d] of daemons.entries()) {
          await until(`node ${i + 1}: layout 1 maps removed`, async () => /"layout 1 maps removed"/.test(d.stderr), daemons, SETTLE_MS);
        }
        for (const n of [1, 2]) {
          const fresh = await requestService(cluster, n, 'tcp', VIP, 20);
          expect(
            failures(fresh).map((r) => r.error),
            `new TCP connections from node ${n}`,
          ).toStrictEqual([]);
          const freshUdp = await requestService(cluster, n, 'udp', VIP, 20);
          expect(
            failures(freshUdp).map((r) => r.error),
            `new UDP requests from node ${n}`,
          ).toStrictEqual([]);
          expect(
            pinsOf(f, n).filter((p) => p.endsWith('_v1')),
            `node ${n}: no layout 1 map pinned`,
          ).toStrictEqual([]);
          for (const dev of ['eth0', ...cluster.node(n).pods.map((p) => p.hostIf)]) {
            const shown = await cluster.exec(cluster.node(n), ['tc', 'filter', 'show', 'dev', dev, 'ingress'], { check: true });
            expect(shown.stdout, `node ${n} ${dev}: the layout 1 program is no longer attached`).not.toContain('sy_ingress');
          }
        }
        for (const h of holds) {
          const r = await h.result;
          expect(r.error, `${h.what}: no error (${JSON.stringify(r)})`).toBeUndefined();
          expect(r.answered, `${h.what}: every line answered`).toBe(r.sent);
          expect(r.backends, `${h.what}: one backend throughout`).toHaveLength(1);
        }
        for (const u of flows) {
          const r = await u.result;
          expect(r.backends, `${u.what}: one backend throughout (${JSON.stringify(r)})`).toHaveLength(1);
          expect(r.sent - r.answered, `${u.what}: datagrams lost (${JSON.stringify(r)})`).toBeLessThanOrEqual(2);
        }
        const carried = daemons.map((d) => /"layout 1 connection tracking carried to layout 2"(.*)/.exec(d.stderr)?.[1] ?? '(not logged)');
        console.log(`# migration: ${carried.join(' | ')}`);
      } finally {
        await Promise.all(daemons.map((d) => d.stop()));
      }
    },
    scaled(240_000),
  );
});
