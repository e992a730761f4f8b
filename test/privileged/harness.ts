// Test-only helpers on top of src/rig: root detection and polling.

import type { RigProcess } from '../../src/rig/proc.ts';

export * from '../../src/rig/switchyard.ts';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Retries `probe` until it returns true or the deadline passes. */
export async function eventually(what: string, timeoutMs: number, probe: () => Promise<boolean>, daemons: RigProcess[] = []): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await sleep(200);
  }
  const logs = daemons.map((d) => `--- ${d.ns} stderr ---\n${d.stderr.slice(-3000)}`).join('\n');
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${logs}`);
}

export { scaled, TIME_SCALE } from '../../src/rig/timing.ts';
import { scaled as scaleMs } from '../../src/rig/timing.ts';
/** How long a daemon may take to program a change; SY_E2E_SETTLE_MS overrides. */
export const SETTLE_MS = Number(process.env['SY_E2E_SETTLE_MS'] ?? scaleMs(30_000));

// ---------------------------------------------------------------------------
// The API source on the rig: the fake API server (test/fake-apiserver/main.ts)
// as a process in the fabric namespace, where every node reaches it through
// its default route, and daemons started with --master instead of --manifests.

import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FABRIC_GATEWAY, type Cluster, type ClusterNode } from '../../src/rig/cluster.ts';
import { SWITCHYARD, type PinRoot } from '../../src/rig/switchyard.ts';
import type { ControlOp } from '../fake-apiserver/main.ts';

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
    const proc = c.spawn(c.fabric.ns, [process.execPath, FAKE_APISERVER_MAIN, '--host', host, '--port', '0', '--control', socket]);
    try {
      const line = await proc.waitForLine(/^listening /, scaleMs(60_000));
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
      const req = httpRequest({ socketPath: this.#socket, path: '/', method, timeout: scaleMs(10_000) }, (res) => {
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
