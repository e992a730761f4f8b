// End to end, real kernel, real traffic: the daemon's lifecycle (DESIGN §1
// "never loses traffic it already carries", §4 pinned maps adopted on
// restart, §6 `switchyard cleanup`). One two-node cluster for the file; each
// node runs its daemon through the CLI contract with its own pin directory on
// a bpffs under /run (§7), so pins survive a daemon's exit. The tests run in
// order and share the cluster: an established connection across a stop and
// restart, SIGTERM, restart (adopt, then reconcile), restart after a change
// made while down, cleanup.

import { existsSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import type { ExitStatus, RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import { findLog, klogLines, logField } from '../../src/rig/switchyard.ts';
import { needs } from '../support/requirements.ts';
import {
  type Backend,
  countBy,
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
  SWITCHYARD,
  until,
  untilServed,
  WEB_PORTS,
  WEB_SLICE_PORTS,
} from './fixtures.ts';

const skip = needs('the lifecycle end-to-end suite', ['root', 'ip', 'bpf-object', 'native-addon']);

const VIP = '10.96.0.20';
const GONE_VIP = '10.96.0.21';
/** A Service in front of the backends' echo port, for long-lived connections. */
const HOLD_VIP = '10.96.0.22';
const HOLD_PORT = 7000;
const ECHO_PORT = 7070;
/** web (TCP 80, UDP 53), hold (TCP 7000) and gone (TCP 80): what each node's maps hold before the restarts. */
const FRONTENDS = 4;
/** How long a daemon may take to exit after SIGTERM before it counts as hung ("a few seconds"). */
const STOP_MS = Number(process.env['SY_E2E_STOP_MS'] ?? scaled(10_000));
/** For one-shot CLI commands (node starts slowly under TCG). */
const EXEC_TIMEOUT_MS = scaled(60_000);
/** Requests per protocol and node in each round while the daemons restart (spread over time: concurrency 5). */
const ROUND = 60;

/** The rig and what the tests share: the daemons (replaced on restart) and the endpoints of `web` (updated when a test changes them). */
interface Scenario extends RigFixtures {
  daemons: RigProcess[];
  backends: Backend[];
}

function webYaml(eps: readonly Backend[]): string {
  return `${serviceYaml('web', VIP, WEB_PORTS)}---\n${sliceYaml('web', [...eps], WEB_SLICE_PORTS)}`;
}

function goneYaml(s: Scenario): string {
  const gone = s.backends[0]!;
  return (
    serviceYaml('gone', GONE_VIP, [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }]) +
    '---\n' +
    sliceYaml('gone', [{ ip: gone.ip, node: gone.node }], [{ name: 'http', port: 8080, protocol: 'TCP' }])
  );
}

function holdYaml(s: Scenario): string {
  return (
    serviceYaml('hold', HOLD_VIP, [{ name: 'echo', port: HOLD_PORT, targetPort: ECHO_PORT, protocol: 'TCP' }]) +
    '---\n' +
    sliceYaml('hold', s.backends, [{ name: 'echo', port: ECHO_PORT, protocol: 'TCP' }])
  );
}

function web(s: Scenario, fromNode: number, proto: 'tcp' | 'udp', count: number, ip = VIP, concurrency = 10): Promise<RequestResult[]> {
  return requestService(s.cluster, fromNode, proto, ip, count, { concurrency });
}

/** `count` requests per protocol from a pod on each node, concurrently. */
async function webEverywhere(s: Scenario, count: number, concurrency = 10): Promise<{ what: string; results: RequestResult[] }[]> {
  const runs = [1, 2].flatMap((n) =>
    (['tcp', 'udp'] as const).map(async (proto) => ({ what: `${proto} from node ${n}`, results: await web(s, n, proto, count, VIP, concurrency) })),
  );
  return Promise.all(runs);
}

/** Every request answered, each by one of `expected` (all of them when `all`). */
function expectServed(runs: { what: string; results: RequestResult[] }[], expected: readonly string[], all: boolean): void {
  for (const { what, results } of runs) {
    expect(
      failures(results).map((r) => r.error),
      `${what}: every request answered`,
    ).toStrictEqual([]);
    const counts = countBy(results);
    for (const name of counts.keys()) expect(expected, `${what}: answered by ${name}, expected one of ${expected.join(', ')}`).toContain(name);
    if (all) expect([...counts.keys()].sort(), `${what}: every backend answered (${JSON.stringify([...counts])})`).toStrictEqual([...expected].sort());
  }
}

/** True when none of a few requests to `ip` from each node is answered. */
async function silent(s: Scenario, ip: string, protos: readonly ('tcp' | 'udp')[]): Promise<boolean> {
  const runs = await Promise.all([1, 2].flatMap((n) => protos.map((p) => web(s, n, p, 3, ip))));
  return runs.every((rs) => rs.every((r) => !r.ok));
}

function start(s: Scenario): RigProcess[] {
  return s.cluster.nodes.map((n) => startDaemon(s.cluster, n, s.manifests, s.pins));
}

/** SIGTERM every daemon; each must exit on its own, code 0, within STOP_MS. */
async function stopAll(s: Scenario): Promise<void> {
  const t0 = Date.now();
  const stopped: [RigProcess, ExitStatus, number][] = await Promise.all(
    s.daemons.map(async (d) => {
      const status = await d.stop(STOP_MS); // SIGKILL after STOP_MS: then signal is SIGKILL, not a clean exit
      return [d, status, Date.now() - t0] as [RigProcess, ExitStatus, number];
    }),
  );
  for (const [d, status, ms] of stopped) {
    expect(status, `${d.ns}: exits 0 on SIGTERM within ${STOP_MS} ms (took ${ms} ms)\n${d.stderr.slice(-2000)}`).toStrictEqual({ code: 0, signal: null });
    expect(d.stderr, `${d.ns}: logs its orderly stop`).toMatch(/stopping; the program stays attached and maps stay pinned/);
    const errors = klogLines(d.stderr).filter((l) => l.severity === 'E' || l.severity === 'F');
    expect(errors, `${d.ns}: no error in its life`).toStrictEqual([]);
  }
  console.log(`# daemons exited after SIGTERM in ${stopped.map(([, , ms]) => `${ms} ms`).join(', ')}`);
}

function running(d: RigProcess): boolean {
  return findLog(d.stderr, 'switchyard', 'running') !== undefined;
}

/** Wall time (ms) of the first `component` line of `d` saying `msg` with these fields (the daemon logs klog lines). */
function logTime(d: RigProcess, component: string, msg: string, fields: Readonly<Record<string, string>> = {}): number | null {
  const line = klogLines(d.stderr).find((l) => l.component === component && l.msg === msg && Object.entries(fields).every(([k, v]) => logField(l, k) === v));
  return line?.time ?? null;
}

/** frontends=N of the first "programmed" line (a sync that changed something), or null before one. */
function firstProgrammed(d: RigProcess): number | null {
  const line = findLog(d.stderr, 'switchyard', 'programmed');
  const n = line === undefined ? undefined : logField(line, 'frontends');
  return n === undefined ? null : Number(n);
}

function adoptedFrontends(d: RigProcess): number | null {
  const line = findLog(d.stderr, 'bpf', 'adopted pinned maps');
  const n = line === undefined ? undefined : logField(line, 'frontends');
  return n === undefined ? null : Number(n);
}

/** Names of `sy_*` pins left in a node's pin directory ([] when the directory is gone). */
function pinsOf(s: Scenario, nodeIndex: number): string[] {
  const dir = s.pins.dirFor(s.cluster.node(nodeIndex));
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => n.startsWith('sy_'))
        .sort()
    : [];
}

/** `tc filter show dev IF ingress` in a node's namespace, for eth0 and every pod interface. */
/** `tc filter show` of both directions of eth0 and every pod interface, by "dev direction". */
async function ingressFilters(s: Scenario, nodeIndex: number): Promise<Map<string, string>> {
  const node = s.cluster.node(nodeIndex);
  const out = new Map<string, string>();
  for (const dev of ['eth0', ...node.pods.map((p) => p.hostIf)]) {
    for (const dir of ['ingress', 'egress']) {
      const r = await s.cluster.exec(node, ['tc', 'filter', 'show', 'dev', dev, dir], { check: true });
      out.set(`${dev} ${dir}`, r.stdout);
    }
  }
  return out;
}

/** The program layout 2 attaches to a device in a direction (DATAPATH-v2.md). */
function programFor(devDir: string): RegExp {
  const [dev, dir] = devDir.split(' ');
  const where = dev === 'eth0' ? 'net' : 'pod';
  return new RegExp(dir === 'ingress' ? `sy_from_${where}` : `sy_to_${where}`);
}

/** Backends (with an echo port) behind `web`, `gone` and `hold`, a daemon per node, `web` and `gone` served from both nodes. */
const test = e2eTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster, pins, manifests }, use) => {
      const s: Scenario = { cluster, pins, manifests, daemons: [], backends: [] };
      try {
        s.backends = await startBackends(cluster, { tcp: [8080], udp: [5353], echo: [ECHO_PORT] });
        manifests.write('web.yaml', webYaml(s.backends));
        manifests.write('gone.yaml', goneYaml(s));
        manifests.write('hold.yaml', holdYaml(s));
        s.daemons = start(s);
        for (const n of [1, 2]) {
          await untilServed(cluster, n, 'tcp', VIP, s.daemons);
          await untilServed(cluster, n, 'udp', VIP, s.daemons);
          await untilServed(cluster, n, 'tcp', GONE_VIP, s.daemons);
        }
        await use(s);
      } finally {
        await Promise.all(s.daemons.map((d) => d.stop()));
      }
    },
    { scope: 'file', auto: true },
  ],
});

describe.skipIf(skip)('the daemon lifecycle', () => {
  test('an established TCP connection keeps working while the daemons stop, stay down and restart', async ({ scenario: s }) => {
    // One held connection from a pod on each node, through the Service, to
    // whichever backend it reached (on either node). A holder sends a line
    // every interval and exits, printing why, as soon as one goes unanswered or
    // the connection breaks: while it runs, the connection is intact.
    const c = s.cluster;
    const intervalMs = scaled(100);
    const holds = await Promise.all([1, 2].map((n) => c.hold(c.pod(n, 0), { ip: HOLD_VIP, port: HOLD_PORT, durationMs: 20 * SETTLE_MS, intervalMs })));
    for (const h of holds) h.result.catch(() => {}); // stopped below, before it prints a result
    const expectIntact = (when: string): void => {
      for (const h of holds) expect(h.proc.running, `${h.proc.ns}: the held connection is intact ${when}: ${h.proc.stdout}${h.proc.stderr}`).toBe(true);
    };
    try {
      await sleep(10 * intervalMs);
      expectIntact('with the daemons running');
      await stopAll(s);
      await sleep(10 * intervalMs);
      expectIntact('with the daemons down');
      s.daemons = start(s);
      await until('the restarted daemons are running', async () => s.daemons.every(running), s.daemons);
      await sleep(10 * intervalMs); // the first sync runs right after "running"
      expectIntact('after the restart');
    } finally {
      await Promise.all(holds.map((h) => h.proc.stop()));
    }
  });

  test('SIGTERM: every daemon exits 0 promptly; the Service keeps serving new TCP and UDP connections with no daemon running', async ({ scenario: s }) => {
    await stopAll(s);
    for (const n of [1, 2]) {
      expect(pinsOf(s, n).length > 0, `node ${n}: maps still pinned`).toBe(true);
      for (const [dev, filters] of await ingressFilters(s, n)) {
        expect(filters, `node ${n} ${dev}: the program is still attached`).toMatch(programFor(dev));
      }
    }
    const [runs, gone] = await Promise.all([webEverywhere(s, 60), Promise.all([1, 2].map((n) => web(s, n, 'tcp', 10, GONE_VIP)))]);
    expectServed(
      runs,
      s.backends.map((b) => b.name),
      true,
    );
    for (const rs of gone)
      expect(
        failures(rs).map((r) => r.error),
        `${GONE_VIP} keeps serving too`,
      ).toStrictEqual([]);
  });

  test('restart: new daemons adopt the pinned maps, serve without interruption, then apply an EndpointSlice change', async ({ scenario: s }) => {
    // Requests start right away and run in rounds until both daemons are
    // running (manifests read, first sync requested) and one round after:
    // the first rounds overlap the load, adopt and re-attach of the program,
    // before any sync can have happened. Every request must be answered.
    const t0 = Date.now();
    s.daemons = start(s);
    const windows: [number, number][] = [];
    let roundsBeforeRunning = 0;
    for (;;) {
      const wasRunning = s.daemons.every(running);
      const started = Date.now();
      const runs = await webEverywhere(s, ROUND, 5);
      windows.push([started, Date.now()]);
      if (!wasRunning) roundsBeforeRunning++;
      expectServed(
        runs,
        s.backends.map((b) => b.name),
        false,
      );
      for (const d of s.daemons) expect(d.running, `${d.ns}: daemon still running\n${d.stderr.slice(-2000)}`).toBe(true);
      if (wasRunning) break;
      expect(Date.now() - t0, `daemons running within ${SETTLE_MS} ms\n${s.daemons.map((d) => d.stderr.slice(-2000)).join('\n')}`).toBeLessThan(SETTLE_MS);
    }
    const attachedAt = s.daemons.map((d) => logTime(d, 'bpf', 'attached', { interface: 'eth0' }));
    const covered = attachedAt.filter((t) => t !== null && windows.some(([a, b]) => a <= t && t <= b)).length;
    console.log(
      `# restart: ${windows.length} rounds of ${4 * ROUND} requests, ${roundsBeforeRunning} started before both daemons were running, ` +
        `all answered; the program was re-attached during a round on ${covered} of ${s.daemons.length} nodes`,
    );
    expect(roundsBeforeRunning, 'at least one round ran while the daemons were starting').toBeGreaterThanOrEqual(1);
    for (const d of s.daemons) {
      expect(adoptedFrontends(d), `${d.ns}: logs "adopted pinned maps frontends=${FRONTENDS}"\n${d.stderr.slice(-2000)}`).toBe(FRONTENDS);
    }

    // A change made after the restart is applied: the adopted state is live.
    const removed = s.backends[3]!;
    const kept = s.backends.slice(0, 3);
    const t1 = Date.now();
    s.manifests.write('web.yaml', webYaml(kept));
    await until(
      `${removed.name} gets no new connections`,
      async () => {
        const runs = await webEverywhere(s, 20);
        return runs.every(({ results }) => failures(results).length === 0 && !countBy(results).has(removed.name));
      },
      s.daemons,
      scaled(1000) + SETTLE_MS,
    );
    console.log(`# restart: endpoint removal applied within ${Date.now() - t1} ms`);
    for (const d of s.daemons) {
      // Adoption matched the kernel exactly: the first sync that changed anything is this one, for web's 2 frontends only.
      expect(firstProgrammed(d), `${d.ns}: the first change after the restart rewrites web's 2 frontends only\n${d.stderr.slice(-2000)}`).toBe(2);
    }
    expectServed(
      await webEverywhere(s, 60),
      kept.map((b) => b.name),
      true,
    );
    s.backends = kept;
  });

  test('restart after a change made while down: the stale frontend is removed by the first sync after adoption', async ({ scenario: s }) => {
    await stopAll(s);
    s.manifests.remove('gone.yaml');
    // Nothing runs to notice: the pinned state still serves the removed Service.
    const stale = await web(s, 1, 'tcp', 5, GONE_VIP);
    expect(
      failures(stale).map((r) => r.error),
      `${GONE_VIP} still served while no daemon runs`,
    ).toStrictEqual([]);

    const t0 = Date.now();
    s.daemons = start(s);
    await until('daemons adopted the pinned maps', async () => s.daemons.every((d) => adoptedFrontends(d) !== null), s.daemons);
    for (const d of s.daemons) expect(adoptedFrontends(d), `${d.ns}: adopted ${FRONTENDS} frontends, the stale one included`).toBe(FRONTENDS);
    await until('the first sync after adoption', async () => s.daemons.every((d) => firstProgrammed(d) !== null), s.daemons);
    for (const d of s.daemons) {
      expect(firstProgrammed(d), `${d.ns}: the first sync changes exactly the stale frontend\n${d.stderr.slice(-2000)}`).toBe(1);
    }
    const removedAt = Math.max(...s.daemons.map((d) => logTime(d, 'switchyard', 'programmed') ?? NaN));
    console.log(`# stale frontend removed by the first sync, ${removedAt - t0} ms after the daemons were started`);
    await until(`${GONE_VIP} stops answering`, () => silent(s, GONE_VIP, ['tcp']), s.daemons);
    expectServed(
      await webEverywhere(s, 40),
      s.backends.map((b) => b.name),
      true,
    );
  });

  test('cleanup removes the tc filters and the pinned maps; traffic is no longer translated; a second cleanup is a no-op', async ({ scenario: s }) => {
    await stopAll(s);
    const cleanupOn = (n: number) => {
      const node = s.cluster.node(n);
      return s.cluster.exec(node, [SWITCHYARD, 'cleanup', `--bpf-pin-path=${s.pins.dirFor(node)}`], { timeoutMs: EXEC_TIMEOUT_MS });
    };
    const first = await Promise.all([1, 2].map(cleanupOn));
    for (const n of [1, 2]) {
      const r = first[n - 1]!;
      expect(r.code, `node ${n}: cleanup exits 0\n${r.stderr}`).toBe(0);
      for (const [dev, filters] of await ingressFilters(s, n)) {
        expect(filters, `node ${n} ${dev}: no sy_ filter left:\n${filters}`).not.toMatch(/sy_(from|to)_/);
      }
      expect(pinsOf(s, n), `node ${n}: no sy_* pins left`).toStrictEqual([]);
    }
    const [again, quiet] = await Promise.all([Promise.all([1, 2].map(cleanupOn)), silent(s, VIP, ['tcp', 'udp'])]);
    expect(quiet, `nothing answers on ${VIP} any more`).toBe(true);
    again.forEach((r, i) => expect(r.code, `node ${i + 1}: a second cleanup exits 0 too\n${r.stderr}`).toBe(0));
  });
});
