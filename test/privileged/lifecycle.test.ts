// End to end, real kernel, real traffic: the daemon's lifecycle (DESIGN §1
// "never loses traffic it already carries", §4 pinned maps adopted on
// restart, §6 `switchyard cleanup`). One two-node cluster for the file; each
// node runs its daemon through the CLI contract with its own pin directory on
// a bpffs under /run (§7), so pins survive a daemon's exit. The tests run in
// order and share the cluster: an established connection across a stop and
// restart, SIGTERM, restart (adopt, then reconcile), restart after a change
// made while down, cleanup.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { createCluster, type Cluster } from '../../src/rig/cluster.ts';
import type { ExitStatus, RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import {
  isRoot,
  PinRoot,
  Manifests,
  startDaemon,
  eventually,
  countBy,
  failures,
  sleep,
  serviceYaml,
  sliceYaml,
  SWITCHYARD,
  SETTLE_MS,
  scaled,
} from './harness.ts';

const VIP = '10.96.0.20';
const GONE_VIP = '10.96.0.21';
/** A Service in front of the backends' echo port, for long-lived connections. */
const HOLD_VIP = '10.96.0.22';
const HOLD_PORT = 7000;
const ECHO_PORT = 7070;
const WEB_PORTS = [
  { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' as const },
];
const SLICE_PORTS = [
  { name: 'http', port: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 5353, protocol: 'UDP' as const },
];
/** web (TCP 80, UDP 53), hold (TCP 7000) and gone (TCP 80): what each node's maps hold before the restarts. */
const FRONTENDS = 4;
/** How long a daemon may take to exit after SIGTERM before it counts as hung ("a few seconds"). */
const STOP_MS = Number(process.env['SY_E2E_STOP_MS'] ?? scaled(10_000));
/** For one-shot CLI commands (node starts slowly under TCG). */
const EXEC_TIMEOUT_MS = scaled(60_000);
/** Requests per protocol and node in each round while the daemons restart (spread over time: concurrency 5). */
const ROUND = 60;
/** Per request (c.request scales it inside the VMs); a request not answered in this time counts as unanswered. */
const REQ_TIMEOUT_MS = 2000;

const root = isRoot();
if (!root) console.log('# skipping lifecycle end-to-end tests: they need root (network namespaces, BPF, tc)');

let c: Cluster;
let pins: PinRoot;
let manifests: Manifests;
let daemons: RigProcess[] = [];
let backendPods: { name: string; ip: string; node: string }[] = [];

function webSlice(eps: typeof backendPods): string {
  return sliceYaml(
    'web',
    eps.map((e) => ({ ip: e.ip, node: e.node })),
    SLICE_PORTS,
  );
}

function goneYaml(): string {
  const gone = backendPods[0]!;
  return (
    serviceYaml('gone', GONE_VIP, [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }]) +
    '---\n' +
    sliceYaml('gone', [{ ip: gone.ip, node: gone.node }], [{ name: 'http', port: 8080, protocol: 'TCP' }])
  );
}

function holdYaml(): string {
  return (
    serviceYaml('hold', HOLD_VIP, [{ name: 'echo', port: HOLD_PORT, targetPort: ECHO_PORT, protocol: 'TCP' }]) +
    '---\n' +
    sliceYaml(
      'hold',
      backendPods.map((e) => ({ ip: e.ip, node: e.node })),
      [{ name: 'echo', port: ECHO_PORT, protocol: 'TCP' }],
    )
  );
}

async function web(fromNode: number, proto: 'tcp' | 'udp', count: number, ip = VIP, concurrency = 10): Promise<RequestResult[]> {
  return c.request(c.pod(fromNode, 0), { proto, ip, port: proto === 'tcp' ? 80 : 53, count, concurrency, timeoutMs: REQ_TIMEOUT_MS });
}

/** `count` requests per protocol from a pod on each node, concurrently. */
async function webEverywhere(count: number, concurrency = 10): Promise<{ what: string; results: RequestResult[] }[]> {
  const runs = [1, 2].flatMap((n) =>
    (['tcp', 'udp'] as const).map(async (proto) => ({ what: `${proto} from node ${n}`, results: await web(n, proto, count, VIP, concurrency) })),
  );
  return Promise.all(runs);
}

/** Every request answered, each by one of `expected` (all of them when `all`). */
function assertServed(runs: { what: string; results: RequestResult[] }[], expected: readonly string[], all: boolean): void {
  for (const { what, results } of runs) {
    assert.deepEqual(
      failures(results).map((r) => r.error),
      [],
      `${what}: every request answered`,
    );
    const counts = countBy(results);
    for (const name of counts.keys()) assert.ok(expected.includes(name), `${what}: answered by ${name}, expected one of ${expected.join(', ')}`);
    if (all) assert.deepEqual([...counts.keys()].sort(), [...expected].sort(), `${what}: every backend answered (${JSON.stringify([...counts])})`);
  }
}

/** True when none of a few requests to `ip` from each node is answered. */
async function silent(ip: string, protos: readonly ('tcp' | 'udp')[]): Promise<boolean> {
  const runs = await Promise.all([1, 2].flatMap((n) => protos.map((p) => web(n, p, 3, ip))));
  return runs.every((rs) => rs.every((r) => !r.ok));
}

function start(): RigProcess[] {
  return c.nodes.map((n) => startDaemon(c, n, manifests, pins));
}

/** SIGTERM every daemon; each must exit on its own, code 0, within STOP_MS. */
async function stopAll(): Promise<void> {
  const t0 = Date.now();
  const stopped: [RigProcess, ExitStatus, number][] = await Promise.all(
    daemons.map(async (d) => {
      const status = await d.stop(STOP_MS); // SIGKILL after STOP_MS: then signal is SIGKILL, not a clean exit
      return [d, status, Date.now() - t0] as [RigProcess, ExitStatus, number];
    }),
  );
  for (const [d, status, ms] of stopped) {
    assert.deepEqual(status, { code: 0, signal: null }, `${d.ns}: exits 0 on SIGTERM within ${STOP_MS} ms (took ${ms} ms)\n${d.stderr.slice(-2000)}`);
    assert.match(d.stderr, /stopping; the program stays attached and maps stay pinned/, `${d.ns}: logs its orderly stop`);
    const errors = d.stderr.split('\n').filter((l) => /^\S+ error /.test(l));
    assert.deepEqual(errors, [], `${d.ns}: no error in its life`);
  }
  console.log(`# daemons exited after SIGTERM in ${stopped.map(([, , ms]) => `${ms} ms`).join(', ')}`);
}

function running(d: RigProcess): boolean {
  return / info switchyard running /.test(d.stderr);
}

/** Wall time (ms) of the first log line of `d` matching `re`; the daemon logs ISO timestamps. */
function logTime(d: RigProcess, re: RegExp): number | null {
  const line = d.stderr.split('\n').find((l) => re.test(l));
  return line === undefined ? null : Date.parse(line.split(' ')[0] ?? '');
}

/** frontends=N of the first "programmed" line (a sync that changed something), or null before one. */
function firstProgrammed(d: RigProcess): number | null {
  const m = / info switchyard programmed frontends=(\d+) /.exec(d.stderr);
  return m ? Number(m[1]) : null;
}

function adoptedFrontends(d: RigProcess): number | null {
  const m = /adopted pinned maps frontends=(\d+) backends=(\d+)/.exec(d.stderr);
  return m ? Number(m[1]) : null;
}

/** Names of `sy_*` pins left in a node's pin directory ([] when the directory is gone). */
function pinsOf(nodeIndex: number): string[] {
  const dir = pins.dirFor(c.node(nodeIndex));
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => n.startsWith('sy_'))
        .sort()
    : [];
}

/** `tc filter show dev IF ingress` in a node's namespace, for eth0 and every pod interface. */
async function ingressFilters(nodeIndex: number): Promise<Map<string, string>> {
  const node = c.node(nodeIndex);
  const out = new Map<string, string>();
  for (const dev of ['eth0', ...node.pods.map((p) => p.hostIf)]) {
    const r = await c.exec(node, ['tc', 'filter', 'show', 'dev', dev, 'ingress'], { check: true });
    out.set(dev, r.stdout);
  }
  return out;
}

before(async () => {
  if (!root) return;
  c = await createCluster({ nodes: 2, podsPerNode: 3 });
  pins = new PinRoot('lc');
  pins.mount();
  manifests = new Manifests();
  for (const n of [1, 2]) {
    for (const k of [1, 2]) {
      const pod = c.pod(n, k);
      await c.startBackend(pod, { tcp: [8080], udp: [5353], echo: [ECHO_PORT] });
      backendPods.push({ name: pod.name, ip: pod.ip, node: c.node(n).name });
    }
  }
  manifests.write('web.yaml', `${serviceYaml('web', VIP, WEB_PORTS)}---\n${webSlice(backendPods)}`);
  manifests.write('gone.yaml', goneYaml());
  manifests.write('hold.yaml', holdYaml());
  daemons = start();
  for (const n of [1, 2]) {
    await eventually(`ClusterIP ${VIP}:80 from node ${n}`, SETTLE_MS, async () => (await web(n, 'tcp', 1))[0]?.ok === true, daemons);
    await eventually(`ClusterIP ${VIP}:53/udp from node ${n}`, SETTLE_MS, async () => (await web(n, 'udp', 1))[0]?.ok === true, daemons);
    await eventually(`ClusterIP ${GONE_VIP}:80 from node ${n}`, SETTLE_MS, async () => (await web(n, 'tcp', 1, GONE_VIP))[0]?.ok === true, daemons);
  }
});

after(async () => {
  if (!root) return;
  await c?.destroy();
  pins?.unmount();
  manifests?.destroy();
});

test('an established TCP connection keeps working while the daemons stop, stay down and restart', { skip: !root }, async () => {
  // One held connection from a pod on each node, through the Service, to
  // whichever backend it reached (on either node). A holder sends a line
  // every interval and exits, printing why, as soon as one goes unanswered or
  // the connection breaks: while it runs, the connection is intact.
  const intervalMs = scaled(100);
  const holds = await Promise.all([1, 2].map((n) => c.hold(c.pod(n, 0), { ip: HOLD_VIP, port: HOLD_PORT, durationMs: 20 * SETTLE_MS, intervalMs })));
  for (const h of holds) h.result.catch(() => {}); // stopped below, before it prints a result
  const assertIntact = (when: string): void => {
    for (const h of holds) assert.equal(h.proc.running, true, `${h.proc.ns}: the held connection is intact ${when}: ${h.proc.stdout}${h.proc.stderr}`);
  };
  try {
    await sleep(10 * intervalMs);
    assertIntact('with the daemons running');
    await stopAll();
    await sleep(10 * intervalMs);
    assertIntact('with the daemons down');
    daemons = start();
    await eventually('the restarted daemons are running', SETTLE_MS, async () => daemons.every(running), daemons);
    await sleep(10 * intervalMs); // the first sync runs right after "running"
    assertIntact('after the restart');
  } finally {
    await Promise.all(holds.map((h) => h.proc.stop()));
  }
});

test('SIGTERM: every daemon exits 0 promptly; the Service keeps serving new TCP and UDP connections with no daemon running', { skip: !root }, async () => {
  await stopAll();
  for (const n of [1, 2]) {
    assert.equal(pinsOf(n).length > 0, true, `node ${n}: maps still pinned`);
    for (const [dev, filters] of await ingressFilters(n)) {
      assert.match(filters, /sy_ingress/, `node ${n} ${dev}: the program is still attached`);
    }
  }
  const [runs, gone] = await Promise.all([webEverywhere(60), Promise.all([1, 2].map((n) => web(n, 'tcp', 10, GONE_VIP)))]);
  assertServed(
    runs,
    backendPods.map((b) => b.name),
    true,
  );
  for (const rs of gone)
    assert.deepEqual(
      failures(rs).map((r) => r.error),
      [],
      `${GONE_VIP} keeps serving too`,
    );
});

test('restart: new daemons adopt the pinned maps, serve without interruption, then apply an EndpointSlice change', { skip: !root }, async () => {
  // Requests start right away and run in rounds until both daemons are
  // running (manifests read, first sync requested) and one round after:
  // the first rounds overlap the load, adopt and re-attach of the program,
  // before any sync can have happened. Every request must be answered.
  const t0 = Date.now();
  daemons = start();
  const windows: [number, number][] = [];
  let roundsBeforeRunning = 0;
  for (;;) {
    const wasRunning = daemons.every(running);
    const started = Date.now();
    const runs = await webEverywhere(ROUND, 5);
    windows.push([started, Date.now()]);
    if (!wasRunning) roundsBeforeRunning++;
    assertServed(
      runs,
      backendPods.map((b) => b.name),
      false,
    );
    for (const d of daemons) assert.equal(d.running, true, `${d.ns}: daemon still running\n${d.stderr.slice(-2000)}`);
    if (wasRunning) break;
    assert.ok(Date.now() - t0 < SETTLE_MS, `daemons running within ${SETTLE_MS} ms\n${daemons.map((d) => d.stderr.slice(-2000)).join('\n')}`);
  }
  const attachedAt = daemons.map((d) => logTime(d, /info bpf attached interface=eth0 /));
  const covered = attachedAt.filter((t) => t !== null && windows.some(([a, b]) => a <= t && t <= b)).length;
  console.log(
    `# restart: ${windows.length} rounds of ${4 * ROUND} requests, ${roundsBeforeRunning} started before both daemons were running, ` +
      `all answered; the program was re-attached during a round on ${covered} of ${daemons.length} nodes`,
  );
  assert.ok(roundsBeforeRunning >= 1, 'at least one round ran while the daemons were starting');
  for (const d of daemons) {
    assert.equal(adoptedFrontends(d), FRONTENDS, `${d.ns}: logs "adopted pinned maps frontends=${FRONTENDS}"\n${d.stderr.slice(-2000)}`);
  }

  // A change made after the restart is applied: the adopted state is live.
  const removed = backendPods[3]!;
  const kept = backendPods.slice(0, 3);
  const t1 = Date.now();
  manifests.write('web.yaml', `${serviceYaml('web', VIP, WEB_PORTS)}---\n${webSlice(kept)}`);
  await eventually(
    `${removed.name} gets no new connections`,
    scaled(1000) + SETTLE_MS,
    async () => {
      const runs = await webEverywhere(20);
      return runs.every(({ results }) => failures(results).length === 0 && !countBy(results).has(removed.name));
    },
    daemons,
  );
  console.log(`# restart: endpoint removal applied within ${Date.now() - t1} ms`);
  for (const d of daemons) {
    // Adoption matched the kernel exactly: the first sync that changed anything is this one, for web's 2 frontends only.
    assert.equal(firstProgrammed(d), 2, `${d.ns}: the first change after the restart rewrites web's 2 frontends only\n${d.stderr.slice(-2000)}`);
  }
  assertServed(
    await webEverywhere(60),
    kept.map((b) => b.name),
    true,
  );
  backendPods = kept;
});

test('restart after a change made while down: the stale frontend is removed by the first sync after adoption', { skip: !root }, async () => {
  await stopAll();
  manifests.remove('gone.yaml');
  // Nothing runs to notice: the pinned state still serves the removed Service.
  const stale = await web(1, 'tcp', 5, GONE_VIP);
  assert.deepEqual(
    failures(stale).map((r) => r.error),
    [],
    `${GONE_VIP} still served while no daemon runs`,
  );

  const t0 = Date.now();
  daemons = start();
  await eventually('daemons adopted the pinned maps', SETTLE_MS, async () => daemons.every((d) => adoptedFrontends(d) !== null), daemons);
  for (const d of daemons) assert.equal(adoptedFrontends(d), FRONTENDS, `${d.ns}: adopted ${FRONTENDS} frontends, the stale one included`);
  await eventually('the first sync after adoption', SETTLE_MS, async () => daemons.every((d) => firstProgrammed(d) !== null), daemons);
  for (const d of daemons) {
    assert.equal(firstProgrammed(d), 1, `${d.ns}: the first sync changes exactly the stale frontend\n${d.stderr.slice(-2000)}`);
  }
  const removedAt = Math.max(...daemons.map((d) => logTime(d, / info switchyard programmed /) ?? NaN));
  console.log(`# stale frontend removed by the first sync, ${removedAt - t0} ms after the daemons were started`);
  await eventually(`${GONE_VIP} stops answering`, SETTLE_MS, () => silent(GONE_VIP, ['tcp']), daemons);
  assertServed(
    await webEverywhere(40),
    backendPods.map((b) => b.name),
    true,
  );
});

test('cleanup removes the tc filters and the pinned maps; traffic is no longer translated; a second cleanup is a no-op', { skip: !root }, async () => {
  await stopAll();
  const cleanupOn = (n: number) => {
    const node = c.node(n);
    return c.exec(node, [SWITCHYARD, 'cleanup', `--bpf-pin-path=${pins.dirFor(node)}`], { timeoutMs: EXEC_TIMEOUT_MS });
  };
  const first = await Promise.all([1, 2].map(cleanupOn));
  for (const n of [1, 2]) {
    const r = first[n - 1]!;
    assert.equal(r.code, 0, `node ${n}: cleanup exits 0\n${r.stderr}`);
    for (const [dev, filters] of await ingressFilters(n)) {
      assert.doesNotMatch(filters, /sy_ingress/, `node ${n} ${dev}: no sy_ingress filter left:\n${filters}`);
    }
    assert.deepEqual(pinsOf(n), [], `node ${n}: no sy_* pins left`);
  }
  const [again, quiet] = await Promise.all([Promise.all([1, 2].map(cleanupOn)), silent(VIP, ['tcp', 'udp'])]);
  assert.equal(quiet, true, `nothing answers on ${VIP} any more`);
  again.forEach((r, i) => assert.equal(r.code, 0, `node ${i + 1}: a second cleanup exits 0 too\n${r.stderr}`));
});
