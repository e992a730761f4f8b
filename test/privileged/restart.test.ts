// Restarts and upgrades lose nothing (issue 10 item 7, DESIGN §1 "never loses
// traffic it already carries"). A two-node rig, a daemon per node with its
// pins on a bpffs under /run, and traffic meters (src/rig/meter.ts) running
// before, during and after each event: from a pod on each node through a
// dual-stack ClusterIP, and from the external client through the NodePort of
// both nodes (masqueraded: externalTrafficPolicy Cluster), IPv4 and IPv6,
// each meter with TCP connection churn (new connections per second), long-
// lived TCP connections exchanging a line every 100 ms, and UDP flows (one
// source port each, a datagram every 100 ms). The events, in order:
//   1. kill -9 of every daemon, then start again;
//   2. SIGTERM, then start again;
//   3. the control: SIGTERM, the connection-tracking pins removed, start
//      again: the meters must see the loss (broken connections, moved flows),
//      which shows that the zeros of the other cases are measured;
//   4. an upgrade from the layout 1 daemon (test/support/v1-daemon.ts, IPv4
//      ClusterIP only: what layout 1 served) to this one.
// Each prints one line of counts and asserts zero failed churn connections,
// zero broken long-lived connections, zero moved and zero stalled UDP flows,
// and that new connections were translated as they should be (a pod's keep
// its address, the external client's are masqueraded). The daemons run with
// --detect-local-mode=NodeCIDR, whose pod CIDRs a restarted daemon learns
// only from its first sync (the pinned ones are kept until then).
// In 1, 2 and 4 Services are changed while no daemon runs (one added, one
// endpoint removed from another): the first sync after the start must program
// exactly that, within one sync period of the start (read from the daemon's
// log: its first "programmed" line comes before its first "sync complete").

import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import type { Cluster, Meter } from '../../src/rig/cluster.ts';
import { describeLosses, formatSummary, type MeterPlan, type MeterReport, summarize } from '../../src/rig/meter-core.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { Endpoint } from '../../src/rig/protocol.ts';
import { needs } from '../support/requirements.ts';
import { RELAX_NODE_FOR_V1, v1Daemon } from '../support/v1-daemon.ts';
import {
  countBy,
  e2eTest,
  failures,
  klogLines,
  logField,
  manifestText,
  nodeDoc,
  type RigFixtures,
  requestService,
  SETTLE_MS,
  type SliceEndpoint,
  scaled,
  serviceManifest,
  startBackends,
  startDaemon,
  SWITCHYARD,
  until,
  untilServed,
} from './fixtures.ts';

const skip = needs('the restart and upgrade suite', ['root', 'ip', 'nft', 'bpf-object', 'native-addon', 'clang']);

/** The metered Service: NodePort (externalTrafficPolicy Cluster), dual-stack, endpoints on both nodes. */
const SVC = { v4: '10.96.0.50', v6: 'fd00:10:96::50' };
const HTTP = { port: 80, target: 8080, nodePort: 30080 };
const ECHO = { port: 7000, target: 7070, nodePort: 30070 };
const DNS = { port: 53, target: 5353, nodePort: 30053 };
/** Changed while the daemons are down: loses an endpoint each time. */
const SHRINK_VIP = '10.96.0.51';
/** Added while the daemons are down, one per event. */
const addedVip = (i: number): string => `10.96.0.${60 + i}`;

/** The configured sync period: a change made while down must be programmed within one of it after the start. */
const SYNC_PERIOD_MS = 30_000;
/**
 * NodeCIDR: which sources are pods comes from the Node's podCIDRs, i.e.
 * from the API, not from flags, so a restarted daemon knows it only after
 * its first sync (ClusterCIDR's come from flags).
 */
const FLAGS = ['--detect-local-mode=NodeCIDR', `--iptables-sync-period=${SYNC_PERIOD_MS / 1000}s`, '--v=2'];
/** Traffic before the event, with the daemons down, and after the first sync. */
const BEFORE_MS = scaled(3000);
const DOWN_MS = scaled(2000);
const AFTER_MS = scaled(3000);
/** New connections per second, per meter. */
const CHURN_RATE = 25;
/** Long-lived connections and UDP flows per target of each meter. */
const PER_TARGET = 2;
/** How long SIGTERM may take. */
const STOP_MS = scaled(10_000);

interface Scenario extends RigFixtures {
  daemons: RigProcess[];
  /** The endpoints still behind SHRINK_VIP. */
  shrink: SliceEndpoint[];
  /** The endpoint pods, both families. */
  endpoints: SliceEndpoint[];
}

function meterYaml(endpoints: readonly SliceEndpoint[]): string {
  return serviceManifest(
    {
      name: 'meter',
      type: 'NodePort',
      clusterIPs: [SVC.v4, SVC.v6],
      externalTrafficPolicy: 'Cluster',
      ports: [
        { name: 'http', port: HTTP.port, targetPort: HTTP.target, nodePort: HTTP.nodePort, protocol: 'TCP' },
        { name: 'echo', port: ECHO.port, targetPort: ECHO.target, nodePort: ECHO.nodePort, protocol: 'TCP' },
        { name: 'dns', port: DNS.port, targetPort: DNS.target, nodePort: DNS.nodePort, protocol: 'UDP' },
      ],
    },
    endpoints,
  );
}

function httpYaml(name: string, vip: string, endpoints: readonly SliceEndpoint[]): string {
  return serviceManifest({ name, clusterIPs: [vip], ports: [{ name: 'http', port: HTTP.port, targetPort: HTTP.target, protocol: 'TCP' }] }, endpoints);
}

function v4Only(eps: readonly SliceEndpoint[]): SliceEndpoint[] {
  return eps.filter((e) => !e.ip.includes(':'));
}

/** What a pod meters: the ClusterIP of `families`. */
function podPlan(families: readonly string[], perTarget: number): MeterPlan {
  const ips = families.map((f) => (f === 'IPv6' ? SVC.v6 : SVC.v4));
  const at = (port: number): Endpoint[] => ips.map((ip) => ({ ip, port }));
  return {
    churn: { targets: at(HTTP.port), rate: CHURN_RATE },
    long: { targets: at(ECHO.port), perTarget },
    udp: { targets: at(DNS.port), perTarget },
  };
}

/** What the external client meters: the NodePort on both nodes' addresses, both families. */
function extPlan(c: Cluster): MeterPlan {
  const addrs = c.nodes.flatMap((n) => [n.addr, n.addr6]);
  const at = (port: number): Endpoint[] => addrs.map((ip) => ({ ip, port }));
  return {
    churn: { targets: at(HTTP.nodePort), rate: CHURN_RATE },
    long: { targets: at(ECHO.nodePort), perTarget: PER_TARGET },
    udp: { targets: at(DNS.nodePort), perTarget: PER_TARGET },
  };
}

interface Metering {
  /** `masqueraded`: whether the backends must see the client's address (false) or the node's (true). */
  readonly meters: { from: string; meter: Meter; masqueraded: boolean }[];
}

async function startMeters(s: Scenario, opts: { families: readonly string[]; nodePort: boolean; perTarget: number }): Promise<Metering> {
  const c = s.cluster;
  // A pod's connections to a ClusterIP keep its address; the NodePort (externalTrafficPolicy Cluster) masquerades.
  const plans: { from: string; ns: { ns: string }; plan: MeterPlan; masqueraded: boolean }[] = [1, 2].map((n) => ({
    from: c.pod(n, 0).name,
    ns: c.pod(n, 0),
    plan: podPlan(opts.families, opts.perTarget),
    masqueraded: false,
  }));
  if (opts.nodePort) plans.push({ from: 'ext', ns: c.ext, plan: extPlan(c), masqueraded: true });
  const meters: Metering['meters'] = [];
  try {
    for (const p of plans) meters.push({ from: p.from, meter: await c.meter(p.ns, p.plan), masqueraded: p.masqueraded });
  } catch (err) {
    await Promise.all(meters.map((m) => m.meter.proc.stop()));
    throw err;
  }
  return { meters };
}

interface Metered {
  readonly from: string;
  readonly report: MeterReport;
  readonly masqueraded: boolean;
}

async function stopMeters(m: Metering): Promise<Metered[]> {
  return Promise.all(m.meters.map(async ({ from, meter, masqueraded }) => ({ from, report: await meter.stop(), masqueraded })));
}

/** Prints the case's line of counts; returns the summary. */
function report(label: string, reports: readonly Metered[]): ReturnType<typeof summarize> {
  const sum = summarize(reports.map((r) => r.report));
  console.log(`# ${formatSummary(label, sum)}`);
  return sum;
}

/**
 * Zero failed churn connections, broken long-lived connections, moved or
 * stalled UDP flows; every new connection translated as it should be (the
 * client's address kept, or masqueraded); and the meters did run.
 */
function expectNothingLost(label: string, reports: readonly Metered[], daemons: readonly RigProcess[]): void {
  const sum = summarize(reports.map((r) => r.report));
  const losses = describeLosses(reports);
  const detail = `${label}: ${formatSummary(label, sum)}\n${losses.join('\n')}\n${daemons.map((d) => `--- ${d.ns}\n${d.stderr.slice(-1500)}`).join('\n')}`;
  for (const { from, report: r, masqueraded } of reports) {
    expect(r.churn.attempted, `${from}: the churn ran`).toBeGreaterThan(0);
    expect(r.long.every((l) => l.sent > 0) && r.udp.every((u) => u.sent > 0), `${from}: every connection and flow sent`).toBe(true);
    expect(r.churn.masqueraded, `${from}: new connections ${masqueraded ? 'all masqueraded' : 'keep the client address'}\n${detail}`).toBe(
      masqueraded ? r.churn.succeeded : 0,
    );
  }
  expect(losses, detail).toStrictEqual([]);
  expect([sum.churn.failed, sum.long.broken, sum.udp.moved, sum.udp.stalled], detail).toStrictEqual([0, 0, 0, 0]);
}

function start(s: Scenario): RigProcess[] {
  return s.cluster.nodes.map((n) => startDaemon(s.cluster, n, s.manifests, s.pins, FLAGS));
}

/** The first line of `component` saying `msg`, with its index among the daemon's log lines. */
function firstLog(d: RigProcess, component: string, msg: string): { index: number; time: number; frontends?: string } | null {
  const lines = klogLines(d.stderr);
  const index = lines.findIndex((l) => l.component === component && l.msg === msg);
  if (index < 0) return null;
  const l = lines[index]!;
  return { index, time: l.time, frontends: logField(l, 'frontends') };
}

async function untilFirstSync(daemons: readonly RigProcess[]): Promise<void> {
  await until('the first sync of every daemon', async () => daemons.every((d) => firstLog(d, 'ops', 'sync complete') !== null), daemons);
}

async function sigterm(daemons: readonly RigProcess[]): Promise<void> {
  const statuses = await Promise.all(daemons.map((d) => d.stop(STOP_MS)));
  statuses.forEach((st, i) => expect(st, `${daemons[i]!.ns}: exits 0 on SIGTERM\n${daemons[i]!.stderr.slice(-2000)}`).toStrictEqual({ code: 0, signal: null }));
}

/** While no daemon runs: a Service added, and SHRINK_VIP loses an endpoint. Returns the endpoint removed. */
function changeWhileDown(s: Scenario, i: number): SliceEndpoint {
  const removed = s.shrink.pop()!;
  s.manifests.write('shrink.yaml', httpYaml('shrink', SHRINK_VIP, s.shrink));
  s.manifests.write(`added-${i}.yaml`, httpYaml(`added-${i}`, addedVip(i), v4Only(s.endpoints)));
  return removed;
}

/**
 * The change made while down was programmed by the first sync after the
 * start (its "programmed" line comes before its first "sync complete";
 * `frontends` = the 2 changed frontends, when known), within one sync
 * period of the start, and traffic shows it.
 */
async function expectChangeProgrammed(s: Scenario, i: number, removed: SliceEndpoint, startedAt: number, frontends: number | null): Promise<void> {
  for (const d of s.daemons) {
    const programmed = firstLog(d, 'switchyard', 'programmed');
    const synced = firstLog(d, 'ops', 'sync complete');
    expect(programmed, `${d.ns}: a "programmed" line\n${d.stderr.slice(-2000)}`).not.toBeNull();
    expect(programmed!.index, `${d.ns}: the change is programmed by the first sync, before its "sync complete"\n${d.stderr.slice(-2000)}`).toBeLessThan(
      synced!.index,
    );
    if (frontends !== null) expect(programmed!.frontends, `${d.ns}: the first sync rewrites exactly the changed frontends`).toBe(String(frontends));
    expect(programmed!.time - startedAt, `${d.ns}: programmed within one sync period (${SYNC_PERIOD_MS} ms) of the start`).toBeLessThanOrEqual(SYNC_PERIOD_MS);
    console.log(`# ${d.ns}: the change made while down was programmed by the first sync, ${programmed!.time - startedAt} ms after the start`);
  }
  for (const n of [1, 2]) {
    const added = await requestService(s.cluster, n, 'tcp', addedVip(i), 10);
    expect(
      failures(added).map((r) => r.error),
      `node ${n}: the Service added while down answers`,
    ).toStrictEqual([]);
    const shrunk = await requestService(s.cluster, n, 'tcp', SHRINK_VIP, 20);
    expect(
      failures(shrunk).map((r) => r.error),
      `node ${n}: ${SHRINK_VIP} answers`,
    ).toStrictEqual([]);
    const removedPod = s.cluster.pods.find((p) => p.ip === removed.ip)!.name;
    expect([...countBy(shrunk).keys()], `node ${n}: ${removedPod}, removed from ${SHRINK_VIP} while down, gets no new connection`).not.toContain(removedPod);
  }
}

const test = e2eTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster, pins, manifests }, use) => {
      const endpoints: SliceEndpoint[] = [1, 2].flatMap((n) =>
        [1, 2].flatMap((k) => {
          const pod = cluster.pod(n, k);
          return [
            { ip: pod.ip, node: cluster.nodeOf(pod).name },
            { ip: pod.ip6, node: cluster.nodeOf(pod).name },
          ];
        }),
      );
      const s: Scenario = { cluster, pins, manifests, daemons: [], endpoints, shrink: v4Only(endpoints) };
      try {
        await startBackends(cluster, { tcp: [HTTP.target], udp: [DNS.target], echo: [ECHO.target] });
        manifests.write('nodes.yaml', manifestText(cluster.nodes.map(nodeDoc)));
        manifests.write('meter.yaml', meterYaml(endpoints));
        manifests.write('shrink.yaml', httpYaml('shrink', SHRINK_VIP, s.shrink));
        s.daemons = start(s);
        for (const n of [1, 2]) await untilServed(cluster, n, 'tcp', SVC.v4, s.daemons);
        await untilFirstSync(s.daemons);
        await use(s);
      } finally {
        await Promise.all(s.daemons.map((d) => d.stop()));
      }
    },
    { scope: 'file', auto: true },
  ],
});

/**
 * One restart: meters before, `stop` the daemons, change Services, wait with
 * no daemon, start them, wait for their first sync, meters after.
 */
async function restart(
  s: Scenario,
  label: string,
  stop: () => Promise<void>,
  whileDown: () => void = () => {},
): Promise<{ reports: Metered[]; startedAt: number }> {
  const metering = await startMeters(s, { families: ['IPv4', 'IPv6'], nodePort: true, perTarget: PER_TARGET });
  let startedAt = 0;
  try {
    await sleep(BEFORE_MS);
    await stop();
    whileDown();
    await sleep(DOWN_MS);
    startedAt = Date.now();
    s.daemons = start(s);
    await untilFirstSync(s.daemons);
    await sleep(AFTER_MS);
  } catch (err) {
    await Promise.all(metering.meters.map((m) => m.meter.proc.stop()));
    throw err;
  }
  const reports = await stopMeters(metering);
  report(label, reports);
  return { reports, startedAt };
}

describe.skipIf(skip)('restarts and upgrades lose nothing', () => {
  test('kill -9, then start again: no failed, broken or moved connection; the change made while down lands in the first sync', async ({ scenario: s }) => {
    let removed: SliceEndpoint | undefined;
    const { reports, startedAt } = await restart(
      s,
      'restart kill-9',
      async () => {
        for (const d of s.daemons) d.kill('SIGKILL');
        const statuses = await Promise.all(s.daemons.map((d) => d.exited));
        for (const st of statuses) expect(st.signal).toBe('SIGKILL');
      },
      () => (removed = changeWhileDown(s, 1)),
    );
    expectNothingLost('restart kill-9', reports, s.daemons);
    await expectChangeProgrammed(s, 1, removed!, startedAt, 2);
  });

  test('SIGTERM, then start again: no failed, broken or moved connection; the change made while down lands in the first sync', async ({ scenario: s }) => {
    let removed: SliceEndpoint | undefined;
    const { reports, startedAt } = await restart(
      s,
      'restart SIGTERM',
      () => sigterm(s.daemons),
      () => (removed = changeWhileDown(s, 2)),
    );
    expectNothingLost('restart SIGTERM', reports, s.daemons);
    await expectChangeProgrammed(s, 2, removed!, startedAt, 2);
  });

  test('the control: a restart that loses connection tracking is seen by the meters (broken connections, moved flows)', async ({ scenario: s }) => {
    const { reports } = await restart(s, 'control (conntrack pins removed)', async () => {
      await sigterm(s.daemons);
      for (const n of s.cluster.nodes) for (const m of ['sy_ct4_v2', 'sy_ct6_v2']) rmSync(`${s.pins.dirFor(n)}/${m}`);
    });
    const sum = summarize(reports.map((r) => r.report));
    expect(sum.long.broken, 'long-lived connections re-balanced to another backend break').toBeGreaterThan(0);
    expect(sum.udp.moved, 'UDP flows re-balanced to another backend are seen as moved').toBeGreaterThan(0);
  });

  test(
    'upgrade from layout 1: no failed, broken or moved connection; the change made while down lands in the first sync',
    async ({ scenario: s }) => {
      const c = s.cluster;
      const v1 = v1Daemon((l) => console.log(`# ${l}`));
      // From scratch on layout 1: nothing of layout 2 left, nodes as layout 1 needed them (RELAX_NODE_FOR_V1).
      await sigterm(s.daemons);
      for (const n of c.nodes) {
        const r = await c.exec(n, [SWITCHYARD, 'cleanup', `--bpf-pin-path=${s.pins.dirFor(n)}`], { timeoutMs: scaled(60_000) });
        expect(r.code, `${n.name}: cleanup\n${r.stderr}`).toBe(0);
        await c.exec(n, ['sh', '-c', RELAX_NODE_FOR_V1], { check: true });
      }
      s.daemons = c.nodes.map((n) =>
        c.spawn(n.ns, [
          v1.switchyard,
          'run',
          '--proxy-mode=bpf',
          `--manifests=${s.manifests.dir}`,
          `--hostname-override=${n.name}`,
          `--bpf-pin-path=${s.pins.dirFor(n)}`,
        ]),
      );
      for (const n of [1, 2]) {
        await untilServed(c, n, 'tcp', SVC.v4, s.daemons);
        await untilServed(c, n, 'tcp', SHRINK_VIP, s.daemons);
      }
      // Layout 1 served IPv4 ClusterIPs only: that is what there is to keep (with as many connections and flows as the restarts).
      const metering = await startMeters(s, { families: ['IPv4'], nodePort: false, perTarget: 4 * PER_TARGET });
      let startedAt = 0;
      let removed: SliceEndpoint | undefined;
      try {
        await sleep(BEFORE_MS);
        await sigterm(s.daemons);
        removed = changeWhileDown(s, 4);
        await sleep(DOWN_MS);
        startedAt = Date.now();
        s.daemons = start(s);
        await untilFirstSync(s.daemons);
        await until('layout 1 maps removed on every node', async () => s.daemons.every((d) => /"layout 1 maps removed"/.test(d.stderr)), s.daemons, SETTLE_MS);
        await sleep(AFTER_MS);
      } catch (err) {
        await Promise.all(metering.meters.map((m) => m.meter.proc.stop()));
        throw err;
      }
      const reports = await stopMeters(metering);
      report('upgrade layout 1 -> 2', reports);
      expectNothingLost('upgrade layout 1 -> 2', reports, s.daemons);
      // The first layout 2 sync programs every frontend anew (into new maps): the count is not the change's.
      await expectChangeProgrammed(s, 4, removed!, startedAt, null);
    },
    scaled(180_000),
  );
});
