// Switchyard on the rig: a daemon per node, started exactly as an operator
// would (`bin/switchyard run` inside the node's namespace), a manifests
// directory to edit, and one bpffs mounted under /run whose per-node
// directories hold the pinned maps (so pins survive a daemon restart,
// DESIGN §7). Used by `switchyard demo` and the end-to-end tests.

import { mkdtempSync, mkdirSync, rmSync, writeFileSync, unlinkSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import type { Cluster, ClusterNode } from './cluster.ts';
import type { RigProcess } from './proc.ts';
import type { RequestResult } from './protocol.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const SWITCHYARD = join(ROOT, 'bin', 'switchyard');

/** A bpffs mounted at a fresh directory under /run; per-node subdirectories hold pins. */
export class PinRoot {
  readonly path: string;
  constructor(tag: string) {
    this.path = `/run/sy-${tag}-${process.pid}`;
  }
  mount(): void {
    mkdirSync(this.path, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', this.path]);
  }
  dirFor(node: ClusterNode): string {
    return join(this.path, node.name);
  }
  unmount(): void {
    try {
      execFileSync('umount', ['-l', this.path]);
    } catch {
      /* not mounted */
    }
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** The manifests directory a test writes Services and EndpointSlices into. */
export class Manifests {
  readonly dir: string;
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'sy-manifests-'));
  }
  write(file: string, yaml: string): void {
    // Write then rename, as kubectl-like tools do, so the daemon never reads half a file.
    const tmp = join(this.dir, `.${file}.tmp`);
    writeFileSync(tmp, yaml);
    renameSync(tmp, join(this.dir, file));
  }
  remove(file: string): void {
    unlinkSync(join(this.dir, file));
  }
  destroy(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function startDaemon(c: Cluster, node: ClusterNode, manifests: Manifests, pins: PinRoot, extra: string[] = []): RigProcess {
  return c.spawn(node.ns, [
    SWITCHYARD,
    'run',
    '--proxy-mode=bpf',
    `--manifests=${manifests.dir}`,
    `--hostname-override=${node.name}`,
    `--bpf-pin-path=${pins.dirFor(node)}`,
    ...extra,
  ]);
}

export function countBy(results: readonly RequestResult[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of results) if (r.ok && r.backend) m.set(r.backend, (m.get(r.backend) ?? 0) + 1);
  return m;
}

export function failures(results: readonly RequestResult[]): RequestResult[] {
  return results.filter((r) => !r.ok);
}

/** A Service manifest (ClusterIP) in YAML. */
export function serviceYaml(name: string, clusterIP: string, ports: { name: string; port: number; targetPort: number; protocol: 'TCP' | 'UDP' }[]): string {
  const p = ports.map((x) => `    - name: ${x.name}\n      port: ${x.port}\n      targetPort: ${x.targetPort}\n      protocol: ${x.protocol}`).join('\n');
  return `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: default\nspec:\n  type: ClusterIP\n  clusterIP: ${clusterIP}\n  clusterIPs: [${clusterIP}]\n  ports:\n${p}\n`;
}

/** An EndpointSlice for `service` with ready endpoints. */
export function sliceYaml(
  service: string,
  endpoints: { ip: string; node: string }[],
  ports: { name: string; port: number; protocol: 'TCP' | 'UDP' }[],
  sliceName = `${service}-abc`,
): string {
  const eps = endpoints
    .map((e) => `  - addresses: [${e.ip}]\n    conditions: {ready: true, serving: true, terminating: false}\n    nodeName: ${e.node}`)
    .join('\n');
  const p = ports.map((x) => `  - name: ${x.name}\n    port: ${x.port}\n    protocol: ${x.protocol}`).join('\n');
  return `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ${sliceName}\n  namespace: default\n  labels:\n    kubernetes.io/service-name: ${service}\naddressType: IPv4\nendpoints:\n${eps.length ? eps : '  []'}\nports:\n${p}\n`;
}
