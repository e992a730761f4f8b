// End to end, real kernel, real traffic: the conntrack garbage collector
// (src/dataplane/bpf/ct-gc.ts) of a daemon started with a short UDP timeout
// (--conntrack-udp-timeout=2s, a pass every 500 ms through
// SY_CT_GC_INTERVAL_MS). An idle UDP flow's two CT entries leave the pinned
// map, and the same tuple later starts a new flow; an established TCP
// connection that keeps talking keeps its entries and its backend. A table
// that fills up is reported, and so is a TCP connection whose entries were
// evicted (CT_MIDSTREAM), in the log and in /metrics.

import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect } from 'vitest';
import { type CtKey, type CtValue, encode, MAPS, SY_CT_DIR_FWD, SY_CT_DIR_REV } from '../../src/dataplane/bpf/layout.ts';
import { BpfMap, loadBinding } from '../../src/native/index.ts';
import type { ClusterNode } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import { klogLines, logField } from '../../src/rig/switchyard.ts';
import type { UdpFlowOutput } from '../support/udp-flow.ts';
import { needs } from '../support/requirements.ts';
import {
  type Backend,
  e2eTest,
  type RigFixtures,
  scaled,
  serviceYaml,
  sliceYaml,
  startBackends,
  startDaemon,
  until,
  untilProgrammed,
  untilServed,
} from './fixtures.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';

const skip = needs('the conntrack GC end-to-end test', ['root', 'ip', 'bpf-object', 'native-addon', 'bpftool']);

const VIP = '10.96.0.30';
const HOLD_VIP = '10.96.0.31';
const HOLD_PORT = 7000;
const ECHO_PORT = 7070;
const UDP_FLOW = fileURLToPath(new URL('../support/udp-flow.ts', import.meta.url));

/** Node `node`'s conntrack entries (sy_ct4_v2), decoded. */
async function ct4(f: RigFixtures, node: ClusterNode): Promise<Array<[CtKey, CtValue]>> {
  const m = BpfMap.openPinned(`${f.pins.dirFor(node)}/${MAPS.ct4.name}`, loadBinding());
  try {
    return (await m.dump()).map(([k, v]) => [MAPS.ct4.keyCodec.decode(k), MAPS.ct4.valueCodec.decode(v)]);
  } finally {
    m.close();
  }
}

/** The entries of the flows from `client`:`port` (FWD keyed on it, REV carrying it). */
function flowOf(entries: Array<[CtKey, CtValue]>, proto: CtKey['proto'], client: string, port: number): Array<[CtKey, CtValue]> {
  return entries.filter(([k, v]) => k.proto === proto && v.clientAddr === client && v.clientPort === port);
}

const dirs = (entries: Array<[CtKey, CtValue]>): number[] => entries.map(([k]) => k.dir).sort();

/** udp-flow.ts from a pod to `target`:53; resolves with its source port once it was answered, and its result. */
async function udpFlow(f: RigFixtures, from: { ns: string }, durationMs: number, localPort = 0, target = VIP) {
  const proc = f.cluster.spawn(from.ns, [
    ...NODE_CMD,
    UDP_FLOW,
    '--target',
    `${target}:53`,
    '--duration-ms',
    String(durationMs),
    '--interval-ms',
    '100',
    '--local-port',
    String(localPort),
  ]);
  const port = Number((await proc.waitForLine(/^local-port /, scaled(30_000))).split(' ')[1]);
  await proc.waitForLine('connected', scaled(30_000));
  return { port, result: proc.waitForLine(/^\{/, durationMs + scaled(60_000)).then((l) => JSON.parse(l) as UdpFlowOutput) };
}

let backendsStarted: Promise<Backend[]> | null = null;
/** The rig's backends (pods 1 and 2 of each node), started once per file. */
function backendsOf(f: RigFixtures): Promise<Backend[]> {
  backendsStarted ??= startBackends(f.cluster, { tcp: [8080], udp: [5353], echo: [ECHO_PORT] });
  return backendsStarted;
}

describe.skipIf(skip)('conntrack garbage collection', () => {
  e2eTest(
    'an idle UDP flow is collected (both halves) and its tuple starts a new flow; a talking TCP connection keeps its entries',
    async ({ cluster, pins, manifests }) => {
      const f: RigFixtures = { cluster, pins, manifests };
      const backends = await backendsOf(f);
      const eps = backends.map((b) => ({ ip: b.ip, node: b.node }));
      manifests.write(
        'svc.yaml',
        [
          serviceYaml('dns', VIP, [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }]),
          sliceYaml('dns', eps, [{ name: 'dns', port: 5353, protocol: 'UDP' }]),
          serviceYaml('hold', HOLD_VIP, [{ name: 'echo', port: HOLD_PORT, targetPort: ECHO_PORT, protocol: 'TCP' }]),
          sliceYaml('hold', eps, [{ name: 'echo', port: ECHO_PORT, protocol: 'TCP' }]),
        ].join('---\n'),
      );
      const env = { ...process.env, SY_CT_GC_INTERVAL_MS: '500' };
      const daemons: RigProcess[] = cluster.nodes.map((n) =>
        startDaemon(cluster, n, manifests, pins, ['--conntrack-udp-timeout=2s', '--conntrack-udp-timeout-stream=2s', '-v=4'], { env }),
      );
      try {
        await untilServed(cluster, 1, 'udp', VIP, daemons);
        const node = cluster.node(1);
        const client = cluster.pod(1, 0);
        const hold = await cluster.hold(client, { ip: HOLD_VIP, port: HOLD_PORT, durationMs: scaled(20_000), intervalMs: 200 });

        // A UDP flow: both halves are in the map while it talks.
        const first = await udpFlow(f, client, 2000);
        await until('both CT halves of the UDP flow', async () => dirs(flowOf(await ct4(f, node), 'UDP', client.ip, first.port)).join() === '0,1', daemons);
        const created = (flowOf(await ct4(f, node), 'UDP', client.ip, first.port)[0] as [CtKey, CtValue])[1].createdNs;
        const out = await first.result;
        expect(out.answered, 'the UDP flow was answered').toBeGreaterThan(0);

        // Idle for the 2 s timeout: a GC pass deletes both halves.
        await until('the idle UDP flow collected', async () => flowOf(await ct4(f, node), 'UDP', client.ip, first.port).length === 0, daemons);
        const passes = klogLines(daemons[0]?.stderr ?? '').filter((l) => l.component === 'bpf' && l.msg === 'conntrack gc pass');
        expect(passes.length, 'the daemon logs its GC passes at -v=4').toBeGreaterThan(0);
        expect(
          passes.some((l) => Number(logField(l, 'deleted')) >= 2),
          'a pass deleted the flow',
        ).toBe(true);

        // The same tuple again: a new flow (new created_ns), answered.
        const again = await udpFlow(f, client, 500, first.port);
        expect(again.port).toBe(first.port);
        const renewed = flowOf(await ct4(f, node), 'UDP', client.ip, first.port);
        expect(dirs(renewed), 'the new flow has both halves').toEqual([SY_CT_DIR_FWD, SY_CT_DIR_REV]);
        expect((renewed[0] as [CtKey, CtValue])[1].createdNs > created, 'a new flow, not the old one').toBe(true);
        expect((await again.result).answered).toBeGreaterThan(0);

        // The TCP connection talked through all those passes: its entries and its backend stayed.
        const tcp = (await ct4(f, node)).filter(([k, v]) => k.proto === 'TCP' && v.clientAddr === client.ip && v.frontAddr === HOLD_VIP);
        expect(dirs(tcp), 'the held TCP connection keeps both CT halves').toEqual([SY_CT_DIR_FWD, SY_CT_DIR_REV]);
        const held = await hold.result;
        expect(held.error, 'the held TCP connection never broke').toBeUndefined();
        expect(held.backends, 'one backend throughout').toHaveLength(1);
        expect(held.answered).toBe(held.sent);
      } finally {
        await Promise.all(daemons.map((d) => d.stop()));
      }
    },
  );

  e2eTest(
    "a backend removed from a Service: that Service's UDP flow to it is flushed and re-balanced, another Service's flow to it is untouched",
    async ({ cluster, pins, manifests }) => {
      const f: RigFixtures = { cluster, pins, manifests };
      const backends = await backendsOf(f);
      const [x, y] = [cluster.pod(1, 1).ip, cluster.pod(2, 1).ip].map((ip) => backends.find((b) => b.ip === ip) as Backend);
      const A = '10.96.0.40';
      const B = '10.96.0.41';
      const write = (a: Backend[], b: Backend[]): void =>
        manifests.write(
          'svc.yaml',
          [
            serviceYaml('a', A, [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }]),
            sliceYaml('a', a, [{ name: 'dns', port: 5353, protocol: 'UDP' }]),
            ...(b.length > 0
              ? [
                  serviceYaml('b', B, [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }]),
                  sliceYaml('b', b, [{ name: 'dns', port: 5353, protocol: 'UDP' }]),
                ]
              : []),
          ].join('---\n'),
        );
      write([x as Backend, y as Backend], []);
      const daemons: RigProcess[] = cluster.nodes.map((n) => startDaemon(cluster, n, manifests, pins, ['-v=4']));
      try {
        const node = cluster.node(1);
        const client = cluster.pod(1, 0);
        await untilServed(cluster, 1, 'udp', A, daemons);
        // A flow to Service a; the backend it landed on (r) is the one removed from a, and b's only one.
        const fa = await udpFlow(f, client, scaled(20_000), 0, A);
        await until('the flow to a tracked', async () => flowOf(await ct4(f, node), 'UDP', client.ip, fa.port).length === 2, daemons);
        const r = (flowOf(await ct4(f, node), 'UDP', client.ip, fa.port)[0] as [CtKey, CtValue])[1].backendAddr;
        const [removed, kept] = r === x?.ip ? [x, y] : [y, x];
        write([x as Backend, y as Backend], [removed as Backend]);
        await untilServed(cluster, 1, 'udp', B, daemons);
        const fb = await udpFlow(f, client, scaled(20_000), 0, B);
        await until('the flow to b tracked', async () => flowOf(await ct4(f, node), 'UDP', client.ip, fb.port).length === 2, daemons);
        const bBefore = flowOf(await ct4(f, node), 'UDP', client.ip, fb.port);
        expect(bBefore.every(([, v]) => v.backendAddr === removed?.ip)).toBe(true);

        // The backend leaves a (it stays in b): a's flow is flushed, its next datagram goes to the other backend.
        write([kept as Backend], [removed as Backend]);
        await until(
          "a's flow re-balanced to the kept backend (both halves)",
          async () => {
            const e = flowOf(await ct4(f, node), 'UDP', client.ip, fa.port);
            return e.length === 2 && e.every(([, v]) => v.backendAddr === kept?.ip);
          },
          daemons,
        );
        const bAfter = flowOf(await ct4(f, node), 'UDP', client.ip, fb.port);
        expect(bAfter, "b's flow to the removed backend is untouched (same entries, same creation)").toEqual(
          bBefore.map(([k, v]) => [k, expect.objectContaining({ backendAddr: v.backendAddr, createdNs: v.createdNs })]),
        );
        const [outA, outB] = await Promise.all([fa.result, fb.result]);
        expect(outA.backends, "a's flow was answered by the removed backend, then by the kept one").toEqual([removed?.name, kept?.name]);
        expect(outB.backends, "b's flow stayed with its backend").toEqual([removed?.name]);
        const reconciled = klogLines(daemons[0]?.stderr ?? '').filter((l) => l.component === 'bpf' && l.msg === 'conntrack reconciled');
        expect(
          reconciled.some((l) => Number(logField(l, 'deleted')) >= 2),
          'the reconciler logged the flushed halves',
        ).toBe(true);
      } finally {
        await Promise.all(daemons.map((d) => d.stop()));
      }
    },
  );

  e2eTest(
    'a CT table nearly full is reported once, a TCP connection whose entries were evicted is counted (CT_MIDSTREAM) and reported, /metrics has the event counters',
    async ({ cluster, pins, manifests }) => {
      const f: RigFixtures = { cluster, pins, manifests };
      const backends = await backendsOf(f);
      const eps = backends.map((b) => ({ ip: b.ip, node: b.node }));
      manifests.write(
        'svc.yaml',
        [
          serviceYaml('hold', HOLD_VIP, [{ name: 'echo', port: HOLD_PORT, targetPort: ECHO_PORT, protocol: 'TCP' }]),
          sliceYaml('hold', eps, [{ name: 'echo', port: ECHO_PORT, protocol: 'TCP' }]),
        ].join('---\n'),
      );
      const env = { ...process.env, SY_CT_GC_INTERVAL_MS: '500' };
      // A small table, in new maps (a pinned map keeps its size): 2 x max(512 x CPUs, 16) entries. Not
      // smaller: the LRU map hands out free entries to each CPU in batches of 128 and evicts when the
      // CPU that inserts finds none left, so a table of a few hundred entries starts evicting well
      // before it is full.
      rmSync(pins.dirFor(cluster.node(1)), { recursive: true, force: true });
      const args = ['--conntrack-max-per-core=512', '--conntrack-min=16', '--metrics-bind-address=127.0.0.1:10249'];
      const daemon = startDaemon(cluster, cluster.node(1), manifests, pins, args, { env });
      try {
        await untilProgrammed([daemon]);
        const node = cluster.node(1);
        const client = cluster.pod(1, 0);
        const hold = await cluster.hold(client, { ip: HOLD_VIP, port: HOLD_PORT, durationMs: scaled(15_000), intervalMs: 200 });
        const mine = async () => (await ct4(f, node)).filter(([k, v]) => k.proto === 'TCP' && v.clientAddr === client.ip && v.frontAddr === HOLD_VIP);
        await until('both CT halves of the held connection', async () => (await mine()).length === 2, [daemon]);

        // Fill the table to 92% with other flows' entries (no packet inserts meanwhile: the held
        // connection's segments only refresh its entries).
        const m = BpfMap.openPinned(`${pins.dirFor(node)}/${MAPS.ct4.name}`, loadBinding());
        const said = (msg: string) => klogLines(daemon.stderr).filter((l) => l.msg.startsWith(msg));
        try {
          const held = await mine();
          const [k0, v0] = held[0] as [CtKey, CtValue];
          const room = Math.ceil(m.maxEntries * 0.92) - (await m.dump()).length;
          const fill = Array.from({ length: room }, (_, i) => {
            const k = { ...k0, saddr: '198.18.7.1', sport: 20000 + i, dir: SY_CT_DIR_FWD };
            const v = { ...v0, clientAddr: '198.18.7.1', clientPort: 20000 + i, lastSeenNs: process.hrtime.bigint() };
            return [encode(MAPS.ct4.keyCodec, k), encode(MAPS.ct4.valueCodec, v)] as [Buffer, Buffer];
          });
          await m.update(fill);
          await until('the daemon reports the table nearly full', async () => said('conntrack table nearly full').length > 0, [daemon]);
          // Evict the held connection's entries, as the full table would.
          await m.delete(held.map(([k]) => encode(MAPS.ct4.keyCodec, k)));
        } finally {
          m.close();
        }
        // Its next segment finds no flow and picks a backend again (the connection goes on only if that is the same one).
        await hold.result;
        await until('the daemon reports the evicted flow', async () => said('TCP segments without a flow').length > 0, [daemon]);
        const full = said('conntrack table nearly full');
        expect(
          full.map((l) => [logField(l, 'map'), logField(l, 'capacity')]),
          'once, for the IPv4 table',
        ).toEqual([[MAPS.ct4.name, String(m.maxEntries)]]);
        expect(Number(logField(said('TCP segments without a flow')[0] as never, 'packets'))).toBeGreaterThan(0);

        const r = await cluster.exec(node, ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:10249/metrics']);
        const value = (event: string): number =>
          Number(new RegExp(`^switchyard_bpf_datapath_events_total\\{event="${event}"\\} (\\d+)$`, 'm').exec(r.stdout)?.[1] ?? NaN);
        expect(value('ct_midstream')).toBeGreaterThan(0);
        expect(value('ct_new')).toBeGreaterThan(0);
        expect(value('svc_hit')).toBeGreaterThanOrEqual(value('ct_new'));
      } finally {
        await daemon.stop();
      }
    },
  );
});
