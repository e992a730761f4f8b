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
import type { RigProcess, SpawnOptions } from './proc.ts';
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

/**
 * One klog line of a daemon's log (its default --logging-format=text, as
 * kube-proxy's): `I1203 06:13:00.123456    4242 switchyard] "running" source="..."`.
 * `time` is epoch ms; klog carries no year, so the current UTC year is
 * assumed (a test spanning New Year would be off by one year).
 */
export interface KlogLine {
  readonly severity: 'I' | 'W' | 'E' | 'F';
  readonly time: number;
  readonly component: string;
  readonly msg: string;
  /** The structured fields as logged: ` key=value key="quoted"`. */
  readonly fields: string;
}

const KLOG_RE = /^([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s+\d+ ([^\]]+)\] ("(?:[^"\\]|\\.)*")(.*)$/;

/** The klog lines of a daemon's stderr (other lines, such as a one-line failure, are skipped). */
export function klogLines(stderr: string, year = new Date().getUTCFullYear()): KlogLine[] {
  const out: KlogLine[] = [];
  for (const line of stderr.split('\n')) {
    const m = KLOG_RE.exec(line);
    if (m === null) continue;
    const [, severity, mo, d, h, mi, sec, us, component, quoted, fields] = m as unknown as string[];
    out.push({
      severity: severity as KlogLine['severity'],
      time: Date.UTC(year, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), Math.floor(Number(us) / 1000)),
      component: component as string,
      msg: JSON.parse(quoted as string) as string,
      fields: fields as string,
    });
  }
  return out;
}

/** The first klog line of `component` with message `msg`, or undefined. */
export function findLog(stderr: string, component: string, msg: string): KlogLine | undefined {
  return klogLines(stderr).find((l) => l.component === component && l.msg === msg);
}

/** A field's value of a klog line (quotes removed), or undefined. */
export function logField(line: KlogLine, key: string): string | undefined {
  const m = new RegExp(` ${key}=("(?:[^"\\\\]|\\\\.)*"|\\S+)`).exec(line.fields);
  if (m === null) return undefined;
  const v = m[1] as string;
  return v.startsWith('"') ? (JSON.parse(v) as string) : v;
}

/**
 * The socket hooks' flag a rig daemon gets unless the caller names a cgroup:
 * none. Left to find the cgroup2 mount itself, a daemon would attach to the
 * root of whatever cgroup2 hierarchy its mount namespace shows (another
 * test's mount under /run included): rig daemons never attach to a root.
 */
export function hostSocketsFlag(extra: readonly string[]): string[] {
  return extra.some((a) => a.startsWith('--cgroup2-path')) ? [] : ['--cgroup2-path=none'];
}

export function startDaemon(c: Cluster, node: ClusterNode, manifests: Manifests, pins: PinRoot, extra: string[] = [], opts: SpawnOptions = {}): RigProcess {
  return c.spawn(
    node.ns,
    [
      SWITCHYARD,
      'run',
      '--proxy-mode=bpf',
      `--manifests=${manifests.dir}`,
      `--hostname-override=${node.name}`,
      `--bpf-pin-path=${pins.dirFor(node)}`,
      ...hostSocketsFlag(extra),
      ...extra,
    ],
    opts,
  );
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

// ---------------------------------------------------------------------------
// Manifests for every kind of Service the end-to-end tests and the demo use.
// Written as JSON documents (JSON is YAML) joined with `---`.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface SvcPort {
  name: string;
  port: number;
  targetPort: number;
  protocol: Protocol;
  /** NodePort and LoadBalancer Services. */
  nodePort?: number;
}

export interface ServiceSpec {
  name: string;
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  /** One per family, primary first (its family decides spec.clusterIP). */
  clusterIPs: string[];
  ports: SvcPort[];
  externalIPs?: string[];
  externalTrafficPolicy?: 'Cluster' | 'Local';
  /** status.loadBalancer.ingress IPs. */
  loadBalancerIPs?: string[];
  ipMode?: 'VIP' | 'Proxy';
  loadBalancerSourceRanges?: string[];
  /** sessionAffinity ClientIP with this timeout (seconds); absent: None. */
  affinityTimeoutSeconds?: number;
  /** metadata.annotations. */
  annotations?: Record<string, string>;
}

function familyOfAddr(ip: string): 'IPv4' | 'IPv6' {
  return ip.includes(':') ? 'IPv6' : 'IPv4';
}

/** A v1 Service object. */
export function serviceDoc(s: ServiceSpec): Record<string, unknown> {
  const type = s.type ?? 'ClusterIP';
  const spec: Record<string, unknown> = {
    type,
    clusterIP: s.clusterIPs[0],
    clusterIPs: s.clusterIPs,
    ipFamilies: s.clusterIPs.map(familyOfAddr),
    ipFamilyPolicy: s.clusterIPs.length > 1 ? 'RequireDualStack' : 'SingleStack',
    ports: s.ports.map((p) => ({
      name: p.name,
      port: p.port,
      targetPort: p.targetPort,
      protocol: p.protocol,
      ...(p.nodePort ? { nodePort: p.nodePort } : {}),
    })),
  };
  if (type !== 'ClusterIP' || s.externalTrafficPolicy) spec['externalTrafficPolicy'] = s.externalTrafficPolicy ?? 'Cluster';
  if (s.externalIPs?.length) spec['externalIPs'] = s.externalIPs;
  if (s.loadBalancerSourceRanges?.length) spec['loadBalancerSourceRanges'] = s.loadBalancerSourceRanges;
  if (s.affinityTimeoutSeconds !== undefined) {
    spec['sessionAffinity'] = 'ClientIP';
    spec['sessionAffinityConfig'] = { clientIP: { timeoutSeconds: s.affinityTimeoutSeconds } };
  }
  const metadata = { name: s.name, namespace: 'default', ...(s.annotations ? { annotations: s.annotations } : {}) };
  const doc: Record<string, unknown> = { apiVersion: 'v1', kind: 'Service', metadata, spec };
  if (s.loadBalancerIPs?.length) {
    doc['status'] = { loadBalancer: { ingress: s.loadBalancerIPs.map((ip) => ({ ip, ipMode: s.ipMode ?? 'VIP' })) } };
  }
  return doc;
}

export interface SliceEndpoint {
  ip: string;
  node: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

/** EndpointSlices of `service`, one per address family present in `endpoints` (or an empty IPv4 one when there are none). */
export function sliceDocs(
  service: string,
  endpoints: readonly SliceEndpoint[],
  ports: readonly { name: string; port: number; protocol: Protocol }[],
): Record<string, unknown>[] {
  const families = [...new Set(endpoints.map((e) => familyOfAddr(e.ip)))];
  if (families.length === 0) families.push('IPv4');
  return families.map((family) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${service}-${family === 'IPv4' ? 'v4' : 'v6'}`, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType: family,
    endpoints: endpoints
      .filter((e) => familyOfAddr(e.ip) === family)
      .map((e) => ({
        addresses: [e.ip],
        conditions: { ready: e.ready ?? true, serving: e.serving ?? true, terminating: e.terminating ?? false },
        nodeName: e.node,
      })),
    ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
  }));
}

/** A v1 Node with its addresses and pod CIDRs (for --detect-local-mode=NodeCIDR). */
export function nodeDoc(node: ClusterNode): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: node.name, labels: { 'kubernetes.io/hostname': node.name } },
    spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr, node.podCidr6] },
    status: {
      addresses: [
        { type: 'InternalIP', address: node.addr },
        { type: 'InternalIP', address: node.addr6 },
        { type: 'Hostname', address: node.name },
      ],
    },
  };
}

/** A Service and its EndpointSlices as one manifest file's text. */
export function serviceManifest(s: ServiceSpec, endpoints: readonly SliceEndpoint[]): string {
  const slicePorts = s.ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol }));
  return manifestText([serviceDoc(s), ...sliceDocs(s.name, endpoints, slicePorts)]);
}

export function manifestText(docs: readonly Record<string, unknown>[]): string {
  return `${docs.map((d) => JSON.stringify(d)).join('\n---\n')}\n`;
}
