// End to end, real kernel, real traffic: bad input affects only the object
// that is bad (DESIGN §1). With a daemon per node serving a good ClusterIP
// Service, malformed manifests are written next to it and into its own file;
// the daemon names the object and field, keeps serving, keeps the last good
// version of a Service whose file broke, and applies the fix. Also the CLI's
// flag errors (exit 2, naming the flag), which need no namespace and no root.

import { describe, expect, test } from 'vitest';
import { type ExecResult, type RigProcess, run } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
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

const skip = needs('the malformed-input suite (all but the CLI flag tests)', ['root', 'ip', 'bpf-object', 'native-addon']);

const VIP = '10.96.0.30';
const BROKEN_VIP = '10.96.0.31';
const EXTRA_VIP = '10.96.0.32';
/** How long to keep checking that a broken file changes nothing: past the daemon's 1 s minSyncPeriod. */
const HOLD_MS = scaled(1500);
/** For one-shot CLI commands (node starts slowly under TCG). */
const EXEC_TIMEOUT_MS = scaled(60_000);

/** The rig and what the tests share: the daemons and the endpoints of `web` (updated when a test changes them). */
interface Scenario extends RigFixtures {
  daemons: RigProcess[];
  backends: Backend[];
}

function webSlice(eps: readonly Backend[]): string {
  return sliceYaml('web', [...eps], WEB_SLICE_PORTS);
}

function request(s: Scenario, fromNode: number, proto: 'tcp' | 'udp', count: number, ip = VIP): Promise<RequestResult[]> {
  return requestService(s.cluster, fromNode, proto, ip, count);
}

/** `count` requests per protocol to the web Service from a pod on each node, concurrently. */
async function webEverywhere(s: Scenario, count: number): Promise<{ what: string; results: RequestResult[] }[]> {
  return Promise.all(
    [1, 2].flatMap((n) => (['tcp', 'udp'] as const).map(async (proto) => ({ what: `${proto} from node ${n}`, results: await request(s, n, proto, count) }))),
  );
}

/** Every request answered, by the `expected` backends and all of them. */
function expectServed(runs: { what: string; results: RequestResult[] }[], expected: readonly string[]): void {
  for (const { what, results } of runs) {
    expect(
      failures(results).map((r) => r.error),
      `${what}: every request answered`,
    ).toStrictEqual([]);
    expect([...countBy(results).keys()].sort(), `${what}: answered by exactly the expected backends`).toStrictEqual([...expected].sort());
  }
}

/** The first stderr line of `d` containing every one of `parts`, or undefined. */
function logLine(d: RigProcess, parts: readonly string[], from = 0): string | undefined {
  return d.stderr
    .slice(from)
    .split('\n')
    .find((l) => parts.every((p) => l.includes(p)));
}

/** Waits until every daemon has logged a line (after offset `from[i]`) containing all of `parts`; returns them. */
async function logged(s: Scenario, parts: readonly string[], from: readonly number[] = []): Promise<string[]> {
  await until(`every daemon logs ${JSON.stringify(parts)}`, async () => s.daemons.every((d, i) => logLine(d, parts, from[i] ?? 0) !== undefined), s.daemons);
  return s.daemons.map((d, i) => logLine(d, parts, from[i] ?? 0)!);
}

/** Serves the web Service, with every backend answering, for HOLD_MS and more. */
async function expectKeepsServing(s: Scenario, expected: readonly string[]): Promise<void> {
  const deadline = Date.now() + HOLD_MS;
  do expectServed(await webEverywhere(s, 40), expected);
  while (Date.now() < deadline);
}

/** Backends behind `web`, a daemon per node, `web` served over TCP and UDP from both nodes. */
const daemonTest = e2eTest.extend<{ $file: { scenario: Scenario } }>({
  scenario: [
    async ({ cluster, pins, manifests }, use) => {
      const s: Scenario = { cluster, pins, manifests, daemons: [], backends: [] };
      try {
        s.backends = await startBackends(cluster, { tcp: [8080], udp: [5353] });
        manifests.write('web.yaml', `${serviceYaml('web', VIP, WEB_PORTS)}---\n${webSlice(s.backends)}`);
        s.daemons = cluster.nodes.map((n) => startDaemon(cluster, n, manifests, pins));
        for (const n of [1, 2]) {
          for (const proto of ['tcp', 'udp'] as const) await untilServed(cluster, n, proto, VIP, s.daemons);
        }
        await use(s);
      } finally {
        await Promise.all(s.daemons.map((d) => d.stop()));
      }
    },
    { scope: 'file', auto: true },
  ],
});

// The daemons' tests share one cluster; the CLI tests below need neither it nor root.
describe.skipIf(skip)('a daemon per node fed malformed manifests', () => {
  daemonTest(
    'a malformed Service and a bad endpoint address in another file: named in the log, skipped alone; the good Service keeps working',
    async ({ scenario: s }) => {
      const c = s.cluster;
      const extraBackend = s.backends[2]!; // pod-2-1
      const broken = serviceYaml('broken', BROKEN_VIP, [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }]).replace('port: 80\n', 'port: "http"\n');
      expect(broken).toMatch(/port: "http"/);
      const extraSlice = sliceYaml(
        'extra',
        [
          { ip: '10.244.1.300', node: c.node(1).name },
          { ip: extraBackend.ip, node: extraBackend.node },
        ],
        [{ name: 'http', port: 8080, protocol: 'TCP' }],
      );
      s.manifests.write(
        'more.yaml',
        [broken, serviceYaml('extra', EXTRA_VIP, [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }]), extraSlice].join('---\n'),
      );

      for (const line of await logged(s, ['Service default/broken', 'spec.ports[0].port'])) {
        expect(line, `a warning (klog W): ${line}`).toMatch(/^W\d{4} /);
        expect(line, `names the file: ${line}`).toMatch(/ file="more\.yaml"/);
        expect(line, `shows the bad value: ${line}`).toMatch(/got \\?"http\\?"/);
      }
      for (const line of await logged(s, ['EndpointSlice default/extra-abc', 'endpoints[0].addresses[0]'])) {
        expect(line, `shows the bad address: ${line}`).toMatch(/10\.244\.1\.300/);
      }

      // The rest of the file loads: `extra` is served by its one good endpoint.
      for (const n of [1, 2]) {
        await untilServed(c, n, 'tcp', EXTRA_VIP, s.daemons);
        const results = await request(s, n, 'tcp', 20, EXTRA_VIP);
        expect(
          failures(results).map((r) => r.error),
          `${EXTRA_VIP} from node ${n}`,
        ).toStrictEqual([]);
        expect([...countBy(results).keys()], `${EXTRA_VIP}: only the valid endpoint is used`).toStrictEqual([extraBackend.name]);
      }
      const [brokenResults, runs] = await Promise.all([Promise.all([1, 2].map((n) => request(s, n, 'tcp', 2, BROKEN_VIP))), webEverywhere(s, 60)]);
      expect(brokenResults.flat().filter((r) => r.ok).length, `nothing answers on the malformed Service's ${BROKEN_VIP}`).toBe(0);
      expectServed(
        runs,
        s.backends.map((b) => b.name),
      );
      for (const d of s.daemons) expect(d.running, `${d.ns}: daemon still running`).toBe(true);
    },
  );

  daemonTest("breaking the good Service's own file keeps its last good version programmed", async ({ scenario: s }) => {
    const names = s.backends.map((b) => b.name);
    const good = serviceYaml('web', VIP, WEB_PORTS);

    // An invalid port: the object is named, the last good version kept.
    let from = s.daemons.map((d) => d.stderr.length);
    s.manifests.write('web.yaml', `${good.replace('port: 80\n', 'port: 70000\n')}---\n${webSlice(s.backends)}`);
    for (const line of await logged(s, ['Service default/web', 'spec.ports[0].port'], from)) {
      expect(line, `shows the bad value: ${line}`).toMatch(/got 70000/);
      expect(line, `says the last good version is kept: ${line}`).toMatch(/kept=/);
    }
    await expectKeepsServing(s, names);

    // Not even YAML any more: same, the document is matched to the Service it was.
    from = s.daemons.map((d) => d.stderr.length);
    s.manifests.write('web.yaml', `${good.replace('  ports:\n', '  ports: [\n')}---\n${webSlice(s.backends)}`);
    for (const line of await logged(s, ['unparsable', 'file="web.yaml"'], from)) {
      expect(line, `says which object is kept: ${line}`).toMatch(/Service default\/web/);
    }
    await expectKeepsServing(s, names);
    for (const d of s.daemons) expect(d.running, `${d.ns}: daemon still running`).toBe(true);
  });

  daemonTest('fixing the file and changing its endpoints is applied', async ({ scenario: s }) => {
    const removed = s.backends[1]!;
    const kept = s.backends.filter((b) => b !== removed);
    const t0 = Date.now();
    s.manifests.write('web.yaml', `${serviceYaml('web', VIP, WEB_PORTS)}---\n${webSlice(kept)}`);
    await until(
      `${removed.name} gets no new connections`,
      async () => {
        const runs = await webEverywhere(s, 20);
        return runs.every(({ results }) => failures(results).length === 0 && !countBy(results).has(removed.name));
      },
      s.daemons,
      scaled(1000) + SETTLE_MS,
    );
    console.log(`# endpoint change after the fix applied within ${Date.now() - t0} ms`);
    expectServed(
      await webEverywhere(s, 60),
      kept.map((b) => b.name),
    );
    s.backends = kept;
  });
});

/**
 * `switchyard run ARGS` as a plain child process. As root it runs in a fresh,
 * empty network namespace (`unshare --net`): were the flags wrongly accepted,
 * the daemon would find no node address there and stop, instead of
 * attaching to the host's interfaces.
 */
function runCli(args: readonly string[]): Promise<ExecResult> {
  const argv = [SWITCHYARD, 'run', ...args];
  return run(process.getuid?.() === 0 ? ['unshare', '--net', ...argv] : argv, { timeoutMs: EXEC_TIMEOUT_MS });
}

test('run --bogus-flag exits 2 naming the flag', async () => {
  const r = await runCli(['--bogus-flag']);
  expect(r.code, `exit code (stderr: ${r.stderr})`).toBe(2);
  expect(r.stderr, r.stderr).toMatch(/--bogus-flag/);
  expect(r.stderr, r.stderr).toMatch(/unknown flag/);
});

test('run --proxy-mode=foo exits 2 naming the allowed values', async () => {
  const r = await runCli(['--proxy-mode=foo']);
  expect(r.code, `exit code (stderr: ${r.stderr})`).toBe(2);
  expect(r.stderr, r.stderr).toMatch(/--proxy-mode/);
  expect(r.stderr, r.stderr).toMatch(/"foo"/);
  for (const mode of ['bpf', 'ipvs', 'auto']) expect(r.stderr, `names ${mode}: ${r.stderr}`).toMatch(new RegExp(`\\b${mode}\\b`));
});
