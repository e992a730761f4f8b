// End to end, real kernel, real traffic: bad input affects only the object
// that is bad (DESIGN §1). With a daemon per node serving a good ClusterIP
// Service, malformed manifests are written next to it and into its own file;
// the daemon names the object and field, keeps serving, keeps the last good
// version of a Service whose file broke, and applies the fix. Also the CLI's
// flag errors (exit 2, naming the flag), which need no namespace and no root.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCluster, type Cluster } from '../../src/rig/cluster.ts';
import { run, type ExecResult, type RigProcess } from '../../src/rig/proc.ts';
import type { RequestResult } from '../../src/rig/protocol.ts';
import { isRoot, PinRoot, Manifests, startDaemon, eventually, countBy, failures, serviceYaml, sliceYaml, SWITCHYARD, SETTLE_MS, scaled } from './harness.ts';

const VIP = '10.96.0.30';
const BROKEN_VIP = '10.96.0.31';
const EXTRA_VIP = '10.96.0.32';
const WEB_PORTS = [
  { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' as const },
];
const SLICE_PORTS = [
  { name: 'http', port: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 5353, protocol: 'UDP' as const },
];
/** How long to keep checking that a broken file changes nothing: past the daemon's 1 s minSyncPeriod. */
const HOLD_MS = scaled(1500);
/** Per request (c.request scales it inside the VMs). */
const REQ_TIMEOUT_MS = 2000;
/** For one-shot CLI commands (node starts slowly under TCG). */
const EXEC_TIMEOUT_MS = scaled(60_000);

const root = isRoot();
if (!root) console.log('# skipping malformed-input end-to-end tests: they need root (network namespaces, BPF, tc)');

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

async function request(fromNode: number, proto: 'tcp' | 'udp', count: number, ip = VIP): Promise<RequestResult[]> {
  return c.request(c.pod(fromNode, 0), { proto, ip, port: proto === 'tcp' ? 80 : 53, count, concurrency: 10, timeoutMs: REQ_TIMEOUT_MS });
}

/** `count` requests per protocol to the web Service from a pod on each node, concurrently. */
async function webEverywhere(count: number): Promise<{ what: string; results: RequestResult[] }[]> {
  return Promise.all(
    [1, 2].flatMap((n) => (['tcp', 'udp'] as const).map(async (proto) => ({ what: `${proto} from node ${n}`, results: await request(n, proto, count) }))),
  );
}

/** Every request answered, by the `expected` backends and all of them. */
function assertServed(runs: { what: string; results: RequestResult[] }[], expected: readonly string[]): void {
  for (const { what, results } of runs) {
    assert.deepEqual(
      failures(results).map((r) => r.error),
      [],
      `${what}: every request answered`,
    );
    assert.deepEqual([...countBy(results).keys()].sort(), [...expected].sort(), `${what}: answered by exactly the expected backends`);
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
async function logged(parts: readonly string[], from: readonly number[] = []): Promise<string[]> {
  await eventually(
    `every daemon logs ${JSON.stringify(parts)}`,
    SETTLE_MS,
    async () => daemons.every((d, i) => logLine(d, parts, from[i] ?? 0) !== undefined),
    daemons,
  );
  return daemons.map((d, i) => logLine(d, parts, from[i] ?? 0)!);
}

/** Serves the web Service, with every backend answering, for HOLD_MS and more. */
async function assertKeepsServing(expected: readonly string[]): Promise<void> {
  const until = Date.now() + HOLD_MS;
  do assertServed(await webEverywhere(40), expected);
  while (Date.now() < until);
}

// The daemons' tests share one cluster; the CLI tests below need neither it nor root.
describe('a daemon per node fed malformed manifests', { skip: !root }, () => {
  before(async () => {
    c = await createCluster({ nodes: 2, podsPerNode: 3 });
    pins = new PinRoot('mf');
    pins.mount();
    manifests = new Manifests();
    for (const n of [1, 2]) {
      for (const k of [1, 2]) {
        const pod = c.pod(n, k);
        await c.startBackend(pod, { tcp: [8080], udp: [5353] });
        backendPods.push({ name: pod.name, ip: pod.ip, node: c.node(n).name });
      }
    }
    manifests.write('web.yaml', `${serviceYaml('web', VIP, WEB_PORTS)}---\n${webSlice(backendPods)}`);
    daemons = c.nodes.map((n) => startDaemon(c, n, manifests, pins));
    for (const n of [1, 2]) {
      for (const proto of ['tcp', 'udp'] as const) {
        await eventually(`ClusterIP ${VIP} ${proto} from node ${n}`, SETTLE_MS, async () => (await request(n, proto, 1))[0]?.ok === true, daemons);
      }
    }
  });

  after(async () => {
    await c?.destroy();
    pins?.unmount();
    manifests?.destroy();
  });

  test('a malformed Service and a bad endpoint address in another file: named in the log, skipped alone; the good Service keeps working', async () => {
    const extraBackend = backendPods[2]!; // pod-2-1
    const broken = serviceYaml('broken', BROKEN_VIP, [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }]).replace('port: 80\n', 'port: "http"\n');
    assert.match(broken, /port: "http"/);
    const extraSlice = sliceYaml(
      'extra',
      [
        { ip: '10.244.1.300', node: c.node(1).name },
        { ip: extraBackend.ip, node: extraBackend.node },
      ],
      [{ name: 'http', port: 8080, protocol: 'TCP' }],
    );
    manifests.write(
      'more.yaml',
      [broken, serviceYaml('extra', EXTRA_VIP, [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }]), extraSlice].join('---\n'),
    );

    for (const line of await logged(['Service default/broken', 'spec.ports[0].port'])) {
      assert.match(line, / warn /, line);
      assert.match(line, /file=more\.yaml/, `names the file: ${line}`);
      assert.match(line, /got \\?"http\\?"/, `shows the bad value: ${line}`);
    }
    for (const line of await logged(['EndpointSlice default/extra-abc', 'endpoints[0].addresses[0]'])) {
      assert.match(line, /10\.244\.1\.300/, `shows the bad address: ${line}`);
    }

    // The rest of the file loads: `extra` is served by its one good endpoint.
    for (const n of [1, 2]) {
      await eventually(`ClusterIP ${EXTRA_VIP} from node ${n}`, SETTLE_MS, async () => (await request(n, 'tcp', 1, EXTRA_VIP))[0]?.ok === true, daemons);
      const results = await request(n, 'tcp', 20, EXTRA_VIP);
      assert.deepEqual(
        failures(results).map((r) => r.error),
        [],
        `${EXTRA_VIP} from node ${n}`,
      );
      assert.deepEqual([...countBy(results).keys()], [extraBackend.name], `${EXTRA_VIP}: only the valid endpoint is used`);
    }
    const [brokenResults, runs] = await Promise.all([Promise.all([1, 2].map((n) => request(n, 'tcp', 2, BROKEN_VIP))), webEverywhere(60)]);
    assert.equal(brokenResults.flat().filter((r) => r.ok).length, 0, `nothing answers on the malformed Service's ${BROKEN_VIP}`);
    assertServed(
      runs,
      backendPods.map((b) => b.name),
    );
    for (const d of daemons) assert.equal(d.running, true, `${d.ns}: daemon still running`);
  });

  test("breaking the good Service's own file keeps its last good version programmed", async () => {
    const names = backendPods.map((b) => b.name);
    const good = serviceYaml('web', VIP, WEB_PORTS);

    // An invalid port: the object is named, the last good version kept.
    let from = daemons.map((d) => d.stderr.length);
    manifests.write('web.yaml', `${good.replace('port: 80\n', 'port: 70000\n')}---\n${webSlice(backendPods)}`);
    for (const line of await logged(['Service default/web', 'spec.ports[0].port'], from)) {
      assert.match(line, /got 70000/, `shows the bad value: ${line}`);
      assert.match(line, /kept=/, `says the last good version is kept: ${line}`);
    }
    await assertKeepsServing(names);

    // Not even YAML any more: same, the document is matched to the Service it was.
    from = daemons.map((d) => d.stderr.length);
    manifests.write('web.yaml', `${good.replace('  ports:\n', '  ports: [\n')}---\n${webSlice(backendPods)}`);
    for (const line of await logged(['unparsable', 'file=web.yaml'], from)) {
      assert.match(line, /Service default\/web/, `says which object is kept: ${line}`);
    }
    await assertKeepsServing(names);
    for (const d of daemons) assert.equal(d.running, true, `${d.ns}: daemon still running`);
  });

  test('fixing the file and changing its endpoints is applied', async () => {
    const removed = backendPods[1]!;
    const kept = backendPods.filter((b) => b !== removed);
    const t0 = Date.now();
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
    console.log(`# endpoint change after the fix applied within ${Date.now() - t0} ms`);
    assertServed(
      await webEverywhere(60),
      kept.map((b) => b.name),
    );
    backendPods = kept;
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
  return run(root ? ['unshare', '--net', ...argv] : argv, { timeoutMs: EXEC_TIMEOUT_MS });
}

test('run --bogus-flag exits 2 naming the flag', async () => {
  const r = await runCli(['--bogus-flag']);
  assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /--bogus-flag/, r.stderr);
  assert.match(r.stderr, /unknown flag/, r.stderr);
});

test('run --proxy-mode=foo exits 2 naming the allowed values', async () => {
  const r = await runCli(['--proxy-mode=foo']);
  assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /--proxy-mode/, r.stderr);
  assert.match(r.stderr, /"foo"/, r.stderr);
  for (const mode of ['bpf', 'ipvs', 'auto']) assert.match(r.stderr, new RegExp(`\\b${mode}\\b`), `names ${mode}: ${r.stderr}`);
});
