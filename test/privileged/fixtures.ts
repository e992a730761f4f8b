// Vitest fixtures and helpers for the privileged end-to-end tests (DESIGN §7),
// on top of src/rig.
//
// `e2eTest` gives a file its shared rig: a two-node cluster of namespaces
// (three pods per node), a bpffs under /run for the daemons' pins and a
// manifests directory. Each is file-scoped: set up when the file's first test
// needs it, torn down when the file ends, also when a test or the set-up
// failed. A file adds its own file-scoped, auto fixture on top (backends,
// Services, daemons started and settled), whose teardown stops the daemons
// before the pins go. `apiTest` adds the fake API server (the API source on
// the rig: test/fake-apiserver/main.ts in the fabric namespace, where every
// node reaches it through its default route), with the object builders for it.
//
// Waiting is `until` (vi.waitUntil): its failure names what it waited for and
// carries the stderr tail of the daemons, which is how a failure is diagnosed.

import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, vi } from 'vitest';
import { createCluster, FABRIC_GATEWAY, NODE_NFT_TABLE, type BackendOptions, type Cluster, type ClusterNode, type Pod } from '../../src/rig/cluster.ts';
import type { RigProcess } from '../../src/rig/proc.ts';
import type { Proto, RequestResult } from '../../src/rig/protocol.ts';
import { findLog, hostSocketsFlag, Manifests, PinRoot, SWITCHYARD } from '../../src/rig/switchyard.ts';
import { scaled } from '../../src/rig/timing.ts';
import type { ControlOp } from '../fake-apiserver/main.ts';
import { STAT_NAMES } from '../support/bpf-harness.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';

export * from '../../src/rig/switchyard.ts';
export { scaled, TIME_SCALE } from '../../src/rig/timing.ts';

/** How long a daemon may take to program a change; SY_E2E_SETTLE_MS overrides. */
export const SETTLE_MS = Number(process.env['SY_E2E_SETTLE_MS'] ?? scaled(30_000));
/** Per request (c.request scales it inside the VMs); a request not answered in this time counts as unanswered. */
export const REQ_TIMEOUT_MS = 2000;

export interface RigFixtures {
  cluster: Cluster;
  pins: PinRoot;
  manifests: Manifests;
}

/** The shared rig of an end-to-end file (see the top of this file). */
export const e2eTest = test.extend<{ $file: RigFixtures }>({
  cluster: [
    // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
    async ({}, use) => {
      const c = await createCluster({ nodes: 2, podsPerNode: 3 });
      try {
        await use(c);
      } finally {
        await c.destroy();
      }
    },
    { scope: 'file' },
  ],
  pins: [
    // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
    async ({}, use) => {
      const pins = new PinRoot('e2e');
      try {
        pins.mount();
        await use(pins);
      } finally {
        pins.unmount();
      }
    },
    { scope: 'file' },
  ],
  manifests: [
    // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
    async ({}, use) => {
      const manifests = new Manifests();
      try {
        await use(manifests);
      } finally {
        manifests.destroy();
      }
    },
    { scope: 'file' },
  ],
});

/** `e2eTest` plus the fake API server in the cluster's fabric namespace. */
export const apiTest = e2eTest.extend<{ $file: { api: FakeApiProcess } }>({
  api: [
    async ({ cluster }, use) => {
      const api = await FakeApiProcess.start(cluster);
      try {
        await use(api);
      } finally {
        await api.stop();
      }
    },
    { scope: 'file' },
  ],
});

/** The last 3000 characters of each process's stderr, for failure messages. */
export function stderrTails(procs: readonly RigProcess[]): string {
  return procs.map((p) => `--- ${p.ns} stderr ---\n${p.stderr.slice(-3000)}`).join('\n');
}

/**
 * Polls `probe` every 200 ms until it returns true (vi.waitUntil). Fails when
 * `timeoutMs` pass first, or at once when the probe throws, naming `what`,
 * with the stderr tails of `logs` as they are at that moment.
 */
export async function until(what: string, probe: () => Promise<boolean>, logs: readonly RigProcess[], timeoutMs = SETTLE_MS): Promise<void> {
  try {
    await vi.waitUntil(probe, { timeout: timeoutMs, interval: 200 });
  } catch (err) {
    // err: vitest's "Timed out in waitUntil!", or what the probe threw.
    throw new Error(`waiting up to ${timeoutMs} ms for ${what}: ${err instanceof Error ? err.message : String(err)}\n${stderrTails(logs)}`, { cause: err });
  }
}

/** An endpoint of a Service: a pod with a backend. */
export interface Backend {
  name: string;
  ip: string;
  node: string;
}

/** Pods 1 and 2 of each node: the endpoints of the Services in the end-to-end files (pod 0 is the client). */
export function endpointPods(c: Cluster): Pod[] {
  return [1, 2].flatMap((n) => [c.pod(n, 1), c.pod(n, 2)]);
}

/** Starts a backend on every endpoint pod; resolves with them as endpoints, in endpointPods order. */
export async function startBackends(c: Cluster, ports: BackendOptions): Promise<Backend[]> {
  const pods = endpointPods(c);
  await Promise.all(pods.map((pod) => c.startBackend(pod, ports)));
  return pods.map((pod) => ({ name: pod.name, ip: pod.ip, node: c.nodeOf(pod).name }));
}

/** The `web` Service's ports: HTTP 80 to 8080 over TCP, DNS 53 to 5353 over UDP. */
export const WEB_PORTS = [
  { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' as const },
];
/** The ports of `web`'s EndpointSlice. */
export const WEB_SLICE_PORTS = [
  { name: 'http', port: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 5353, protocol: 'UDP' as const },
];

/** The frontend port of every Service in these tests: 80 for TCP, 53 for UDP. */
export function servicePort(proto: Proto): number {
  return proto === 'tcp' ? 80 : 53;
}

/** `count` requests from pod 0 of node `fromNode` to the Service frontend `ip` (port 80 for TCP, 53 for UDP). */
export function requestService(
  c: Cluster,
  fromNode: number,
  proto: Proto,
  ip: string,
  count: number,
  opts: { concurrency?: number; timeoutMs?: number } = {},
): Promise<RequestResult[]> {
  return c.request(c.pod(fromNode, 0), {
    proto,
    ip,
    port: servicePort(proto),
    count,
    concurrency: opts.concurrency ?? 10,
    timeoutMs: opts.timeoutMs ?? REQ_TIMEOUT_MS,
  });
}

/** Waits until one request from pod 0 of node `fromNode` to the frontend `ip` is answered. */
export function untilServed(
  c: Cluster,
  fromNode: number,
  proto: Proto,
  ip: string,
  logs: readonly RigProcess[],
  requestTimeoutMs = REQ_TIMEOUT_MS,
): Promise<void> {
  return until(
    `ClusterIP ${ip}:${servicePort(proto)}/${proto} from node ${fromNode}`,
    async () => (await requestService(c, fromNode, proto, ip, 1, { timeoutMs: requestTimeoutMs }))[0]?.ok === true,
    logs,
  );
}

// ---------------------------------------------------------------------------
// The API source on the rig: the fake API server as a process in the fabric
// namespace, and daemons started with --master instead of --manifests.

const FAKE_APISERVER_MAIN = fileURLToPath(new URL('../fake-apiserver/main.ts', import.meta.url));

/** What GET on the control socket reports. */
export interface FakeApiStatus {
  resourceVersion: string;
  openWatches: Record<'services' | 'endpointslices' | 'nodes', number>;
  requests: { lists: Record<string, number>; watches: Record<string, number> };
}

/**
 * The fake API server running in the cluster's fabric namespace on the
 * gateway address (198.18.0.254), controlled over a Unix socket (reachable
 * from the test's namespace; a TCP port in the fabric is not).
 */
export class FakeApiProcess {
  readonly proc: RigProcess;
  /** The API server URL the daemons get as --master. */
  readonly url: string;
  readonly #dir: string;
  readonly #socket: string;

  private constructor(proc: RigProcess, url: string, dir: string, socket: string) {
    this.proc = proc;
    this.url = url;
    this.#dir = dir;
    this.#socket = socket;
  }

  static async start(c: Cluster, host: string = FABRIC_GATEWAY): Promise<FakeApiProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'sy-apiserver-'));
    const socket = join(dir, 'control.sock');
    const proc = c.spawn(c.fabric.ns, [...NODE_CMD, FAKE_APISERVER_MAIN, '--host', host, '--port', '0', '--control', socket]);
    try {
      const line = await proc.waitForLine(/^listening /, scaled(60_000));
      return new FakeApiProcess(proc, line.slice('listening '.length).trim(), dir, socket);
    } catch (err) {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Creates or replaces objects, in order; resolves with the resourceVersion after the last. */
  async apply(...objects: Record<string, unknown>[]): Promise<string> {
    return (await this.#post(objects.map((object) => ({ op: 'apply', object })))).resourceVersion;
  }

  /** Deletes one object; rejects when it does not exist. */
  async delete(kind: string, name: string, namespace = 'default'): Promise<string> {
    return (await this.#post([{ op: 'delete', kind, namespace, name }])).resourceVersion;
  }

  async status(): Promise<FakeApiStatus> {
    return (await this.#call('GET')) as FakeApiStatus;
  }

  async #post(ops: ControlOp[]): Promise<{ resourceVersion: string }> {
    return (await this.#call('POST', JSON.stringify(ops))) as { resourceVersion: string };
  }

  #call(method: 'GET' | 'POST', body?: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ socketPath: this.#socket, path: '/', method, timeout: scaled(10_000) }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          if (res.statusCode === 200) resolve(JSON.parse(text));
          else reject(new Error(`fake apiserver control ${method}: HTTP ${res.statusCode}: ${text}`));
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`fake apiserver control ${method}: timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Stops the server and removes its socket directory. Idempotent. */
  async stop(): Promise<void> {
    await this.proc.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** startDaemon for the API source: `switchyard run --master=URL`, no --manifests. */
export function startApiDaemon(c: Cluster, node: ClusterNode, master: string, pins: PinRoot, extra: string[] = []): RigProcess {
  return c.spawn(node.ns, [
    SWITCHYARD,
    'run',
    '--proxy-mode=bpf',
    `--master=${master}`,
    `--hostname-override=${node.name}`,
    `--bpf-pin-path=${pins.dirFor(node)}`,
    ...hostSocketsFlag(extra),
    ...extra,
  ]);
}

export interface ApiServicePort {
  name: string;
  port: number;
  targetPort: number;
  protocol: 'TCP' | 'UDP';
}
export interface ApiSlicePort {
  name: string;
  port: number;
  protocol: 'TCP' | 'UDP';
}

/** A v1 Service (ClusterIP) as the API serves it; `spec` adds or overrides fields. */
export function serviceObject(name: string, clusterIP: string, ports: ApiServicePort[], spec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { type: 'ClusterIP', clusterIP, clusterIPs: [clusterIP], ipFamilies: ['IPv4'], ports, ...spec },
  };
}

/** A discovery.k8s.io/v1 EndpointSlice for `service` with ready endpoints. */
export function sliceObject(
  service: string,
  endpoints: { ip: string; node: string }[],
  ports: ApiSlicePort[],
  sliceName = `${service}-abc`,
): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: sliceName, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: e.node,
    })),
    ports,
  };
}

/** A v1 Node with its InternalIP. */
export function nodeObject(name: string, internalIP: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    status: {
      addresses: [
        { type: 'InternalIP', address: internalIP },
        { type: 'Hostname', address: name },
      ],
    },
  };
}

// ---------------------------------------------------------------------------
// Real-node rig helpers: waiting for the daemons to program, and the
// packet-level evidence a failure message carries (the nodes' conntrack
// INVALID drop counters and the dataplane's own counters).

/** Throws when one of `procs` has exited: for probes that wait on processes that must keep running. */
export function assertRunning(procs: readonly RigProcess[]): void {
  for (const p of procs) if (p.status) throw new Error(`${p.describe()} exited (${JSON.stringify(p.status)})`);
}

/** Waits until every daemon logged that it is running and has programmed its first change; fails at once if one exits. */
export async function untilProgrammed(daemons: readonly RigProcess[]): Promise<void> {
  await until(
    'every daemon running and programmed',
    async () => {
      assertRunning(daemons);
      return daemons.every((d) => findLog(d.stderr, 'switchyard', 'running') !== undefined && findLog(d.stderr, 'switchyard', 'programmed') !== undefined);
    },
    daemons,
  );
}

/** sy_stats_v2 names in index order (bpf/include/sy_maps.h), shared with the packet harness. */
const STATS_V2 = STAT_NAMES;
const STATS_V1 = ['SVC_HIT', 'CT_NEW', 'NO_BACKEND', 'RNAT', 'SNAT_FAIL'];

function u64le(bytes: readonly string[]): number {
  let v = 0;
  for (let i = Math.min(bytes.length, 8) - 1; i >= 0; i--) v = v * 256 + Number.parseInt(bytes[i] ?? '0', 16);
  return v;
}

/** A pinned per-CPU stats map (bpftool -j), summed over CPUs, by counter name; null when not pinned. */
async function statsOf(c: Cluster, path: string, names: readonly string[]): Promise<Map<string, number> | null> {
  const r = await c.exec(c.fabric, ['bpftool', '-j', 'map', 'dump', 'pinned', path]);
  if (r.code !== 0) return null;
  const rows = JSON.parse(r.stdout) as { key: number | string[]; values: { value: number | string[] }[] }[];
  const out = new Map<string, number>();
  for (const row of rows) {
    const key = typeof row.key === 'number' ? row.key : u64le(row.key);
    const sum = row.values.reduce((a, v) => a + (typeof v.value === 'number' ? v.value : u64le(v.value)), 0);
    out.set(names[key] ?? String(key), sum);
  }
  return out;
}

function formatStats(m: Map<string, number>): string {
  return (
    [...m]
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') || 'all zero'
  );
}

/** The v2 dataplane's counters on a node (sy_stats_v2), by name (SVC_HIT, DROP_NO_PORT, ...). */
export async function nodeStats(c: Cluster, pins: PinRoot, node: ClusterNode): Promise<Map<string, number>> {
  const m = await statsOf(c, `${pins.dirFor(node)}/sy_stats_v2`, STATS_V2);
  if (!m) throw new Error(`${node.name}: ${pins.dirFor(node)}/sy_stats_v2 is not pinned (not the v2 datapath?)`);
  return m;
}

/**
 * What the nodes saw, for failure messages: per node, the nft ct-INVALID
 * drop counter and the dataplane's counters (sy_stats_v2, else sy_stats_v1).
 */
export async function evidence(c: Cluster, pins: PinRoot): Promise<string> {
  const lines: string[] = [];
  for (const n of c.nodes) {
    const nft = await c.exec(n, ['nft', 'list', 'table', 'inet', NODE_NFT_TABLE]);
    const counter = /ct state invalid counter packets (\d+) bytes (\d+)/.exec(nft.stdout);
    const dir = pins.dirFor(n);
    const v2 = await statsOf(c, `${dir}/sy_stats_v2`, STATS_V2);
    const v1 = v2 ? null : await statsOf(c, `${dir}/sy_stats_v1`, STATS_V1);
    const stats = v2 ? `sy_stats_v2: ${formatStats(v2)}` : v1 ? `sy_stats_v1: ${formatStats(v1)}` : 'no stats map pinned';
    lines.push(`${n.name}: nft ct-invalid drops ${counter ? `${counter[1]} packets` : '(rule missing!)'}; ${stats}`);
  }
  return lines.join('\n');
}

/** Names of results that failed, with their errors, for messages. */
export function describeFailures(results: readonly RequestResult[]): string {
  const by = new Map<string, number>();
  for (const r of results) if (!r.ok) by.set(r.error ?? '?', (by.get(r.error ?? '?') ?? 0) + 1);
  return [...by].map(([e, n]) => `${n}x ${e}`).join(', ');
}
