// Shared harness of the model-semantics-* tables (no tests of its own).
// A case names a Service, its EndpointSlices and this node in the terms of
// the Kubernetes objects (they go through parseObject, the ClusterCache and
// the SnapshotBuilder, as in the daemon), then reads the result back as
// compact strings:
//   endpoint sets:  "10.244.1.1:8080 10.244.2.1:8080" ("" when empty)
//   verdicts:       "dnat <endpoints>", "masq <endpoints>" (DNAT and
//                   masquerade), "reject", "drop" (no local endpoint),
//                   "drop:source" (outside loadBalancerSourceRanges)
//   frontends:      "clusterIP 10.96.0.10:80/TCP", "nodePort *:30080/TCP",
//                   "externalIP 192.0.2.10:80/TCP", "loadBalancer 198.51.100.1:80/TCP",
//                   IPv6 in brackets ("nodePort [*]:30080/TCP")
// Addresses follow DESIGN.md §7: this node node-a 198.18.0.1, pods
// 10.244.0.0/16, Services 10.96.0.0/12; external clients 203.0.113.0/24,
// ExternalIPs 192.0.2.0/24, LoadBalancer IPs 198.51.100.0/24.

import { expect } from 'vitest';
import { ClusterCache } from '../../src/sources/cache.ts';
import { parseObject, type KubeObject } from '../../src/sources/objects.ts';
import { SnapshotBuilder } from '../../src/model/snapshot.ts';
import { decide, frontendsOf, verdicts, type Frontend, type Verdict, type VerdictOptions } from '../../src/model/verdict.ts';
import type { EndpointInfo, IPFamily, PerFamily, ServicePortInfo, TopologyMode } from '../../src/model/types.ts';

export const NODE = 'node-a';
export const NODE_IP = '198.18.0.1';
export const POD_CIDRS = ['10.244.0.0/16', 'fd00:10:244::/48'];

// ---------------------------------------------------------------------------
// Fixtures

export interface SvcSpec {
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
  clusterIPs?: string[];
  /** Defaults to one port "http" 80/TCP (nodePort 30080 for NodePort and LoadBalancer). */
  ports?: Record<string, unknown>[];
  externalIPs?: string[];
  etp?: 'Cluster' | 'Local';
  itp?: 'Cluster' | 'Local';
  /** status.loadBalancer.ingress entries: an IP, or "IP/Proxy" for ipMode Proxy. */
  lb?: string[];
  sourceRanges?: string[];
  affinity?: number | 'default';
  healthCheckNodePort?: number;
  trafficDistribution?: string;
  clusterIP?: string;
  labels?: Record<string, string>;
}

export function service(spec: SvcSpec = {}, name = 'web'): Record<string, unknown> {
  const external = spec.type === 'NodePort' || spec.type === 'LoadBalancer';
  const s: Record<string, unknown> = {
    type: spec.type ?? 'ClusterIP',
    ports: spec.ports ?? [{ name: 'http', port: 80, ...(external ? { nodePort: 30080 } : {}) }],
  };
  if (spec.clusterIP !== undefined) s['clusterIP'] = spec.clusterIP;
  else s['clusterIPs'] = spec.clusterIPs ?? ['10.96.0.10'];
  if (spec.externalIPs) s['externalIPs'] = spec.externalIPs;
  if (spec.etp) s['externalTrafficPolicy'] = spec.etp;
  if (spec.itp) s['internalTrafficPolicy'] = spec.itp;
  if (spec.sourceRanges) s['loadBalancerSourceRanges'] = spec.sourceRanges;
  if (spec.healthCheckNodePort) s['healthCheckNodePort'] = spec.healthCheckNodePort;
  if (spec.trafficDistribution) s['trafficDistribution'] = spec.trafficDistribution;
  if (spec.affinity !== undefined) {
    s['sessionAffinity'] = 'ClientIP';
    if (spec.affinity !== 'default') s['sessionAffinityConfig'] = { clientIP: { timeoutSeconds: spec.affinity } };
  }
  const ingress = (spec.lb ?? []).map((e) => (e.endsWith('/Proxy') ? { ip: e.slice(0, -6), ipMode: 'Proxy' } : { ip: e }));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', labels: spec.labels ?? {} },
    spec: s,
    status: { loadBalancer: { ingress } },
  };
}

export interface EpSpec {
  node?: string;
  zone?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  /** hints.forZones */
  zones?: string[];
  /** hints.forNodes */
  nodes?: string[];
}

/** One endpoint: "10.244.1.1" plus conditions, placement and hints. */
export function ep(ip: string, spec: EpSpec = {}): Record<string, unknown> {
  const e: Record<string, unknown> = { addresses: [ip] };
  if (spec.node) e['nodeName'] = spec.node;
  if (spec.zone) e['zone'] = spec.zone;
  const conditions: Record<string, boolean> = {};
  if (spec.ready !== undefined) conditions['ready'] = spec.ready;
  if (spec.serving !== undefined) conditions['serving'] = spec.serving;
  if (spec.terminating !== undefined) conditions['terminating'] = spec.terminating;
  e['conditions'] = conditions;
  if (spec.zones || spec.nodes) {
    e['hints'] = {
      ...(spec.zones ? { forZones: spec.zones.map((name) => ({ name })) } : {}),
      ...(spec.nodes ? { forNodes: spec.nodes.map((name) => ({ name })) } : {}),
    };
  }
  return e;
}

/** Ready and serving but terminating: the fallback kind. */
export const TERMINATING: EpSpec = { ready: false, serving: true, terminating: true };

/** An EndpointSlice of Service "web", port "http" 8080/TCP unless given. */
export function slice(
  name: string,
  endpoints: Record<string, unknown>[],
  opts: { service?: string; ports?: Record<string, unknown>[]; addressType?: IPFamily } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': opts.service ?? 'web' } },
    addressType: opts.addressType ?? 'IPv4',
    ports: opts.ports ?? [{ name: 'http', port: 8080 }],
    endpoints,
  };
}

export function node(zone?: string, name = NODE): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: zone === undefined ? {} : { 'topology.kubernetes.io/zone': zone } } };
}

// ---------------------------------------------------------------------------
// Building

export interface World {
  readonly objects: readonly Record<string, unknown>[];
  /** Families whose slices are used; IPv4 by default. */
  readonly families?: readonly IPFamily[];
}

export function parse(raw: Record<string, unknown>): KubeObject {
  const r = parseObject(raw);
  if (r.status !== 'valid') throw new Error(`fixture not valid: ${JSON.stringify(r)}`);
  return r.object;
}

/** The ServicePortInfos the model builds for this world, by id. */
export function build(world: World): ReadonlyMap<string, ServicePortInfo> {
  const cache = new ClusterCache();
  for (const raw of world.objects) {
    const r = parseObject(raw);
    if (r.status === 'valid') cache.apply(r.object);
    else if (r.status !== 'ignored') throw new Error(`fixture not valid: ${JSON.stringify(r)}`);
  }
  const builder = new SnapshotBuilder({ cache, nodeName: NODE, endpointFamilies: world.families ?? ['IPv4'] });
  return builder.build('all').servicePorts;
}

/** The only ServicePort of the world (or the one with this id). */
export function onlyPort(world: World, id?: string): ServicePortInfo {
  const ports = build(world);
  if (id !== undefined) {
    const sp = ports.get(id);
    expect(sp, `no ServicePort ${id}; have ${[...ports.keys()].join(', ')}`).toBeDefined();
    return sp!;
  }
  expect(ports.size, `expected one ServicePort, got ${[...ports.keys()].join(', ')}`).toBe(1);
  return [...ports.values()][0]!;
}

export function options(over: Partial<VerdictOptions> = {}): VerdictOptions {
  return { masqueradeAll: false, clusterCIDRs: POD_CIDRS, nodeName: NODE, nodeZone: null, nodeIPs: [NODE_IP], ...over };
}

// ---------------------------------------------------------------------------
// Reading results back as strings

export const eps = (list: readonly EndpointInfo[] | undefined): string =>
  (list ?? []).map((e) => (e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`)).join(' ');

export function showFrontend(f: Frontend): string {
  const ip = f.ip ?? '*';
  const addr = f.family === 'IPv6' ? `[${ip}]` : ip;
  return `${f.kind} ${addr}:${f.port}/${f.protocol}`;
}

export function showVerdict(v: Verdict): string {
  if (v.action === 'reject') return 'reject';
  if (v.action === 'drop') return v.reason === 'sourceRange' ? 'drop:source' : 'drop';
  return `${v.masquerade ? 'masq' : 'dnat'} ${eps(v.endpoints)}`;
}

/** Expected verdicts of one frontend: every source kind, plus "external@IP"-style keys for sources with an address. */
export type SourceTable = { pod: string; node: string; external: string } & Record<string, string>;

/** frontend -> source -> verdict, for every frontend; address-keyed sources only where `want` names them. */
export function verdictTable(
  sp: ServicePortInfo,
  opts: VerdictOptions,
  want: Readonly<Record<string, Readonly<Record<string, string>>>> = {},
): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const fv of verdicts(sp, opts)) {
    const label = showFrontend(fv.frontend);
    const row: Record<string, string> = { pod: showVerdict(fv.pod), node: showVerdict(fv.node), external: showVerdict(fv.external) };
    for (const key of Object.keys(want[label] ?? {})) {
      const at = key.indexOf('@');
      if (at < 0) continue;
      const kind = key.slice(0, at) as 'pod' | 'node' | 'external';
      row[key] = showVerdict(decide(sp, fv.frontend, { kind, ip: key.slice(at + 1) }, opts));
    }
    out[label] = row;
  }
  return out;
}

export function frontendLabels(sp: ServicePortInfo): string[] {
  return frontendsOf(sp).map(showFrontend);
}

/** The endpoint sets of a ServicePort as strings. */
export function endpointSets(sp: ServicePortInfo): Record<string, string> {
  return {
    cluster: eps(sp.clusterEndpoints),
    clusterPolicy: eps(sp.clusterPolicyEndpoints),
    local: eps(sp.localEndpoints),
    external: eps(sp.externalEndpoints),
    all: eps(sp.allEndpoints),
  };
}

// ---------------------------------------------------------------------------
// One table row

export interface Sets {
  cluster: string;
  clusterPolicy: string;
  local: string;
  external: string;
  all: string;
  /** hasAnyEndpoints: a boolean checks IPv4, a record every family. */
  hasAny: boolean | PerFamily<boolean>;
  /** topologyMode of IPv4; '' when omitted. */
  topology?: TopologyMode;
}

export interface Case {
  name: string;
  /** Where in kube-proxy the rule comes from (file, function or test table). */
  from: string;
  objects: Record<string, unknown>[];
  families?: IPFamily[];
  opts?: Partial<VerdictOptions>;
  /** ServicePort id, when the world has several. */
  port?: string;
  sets?: Sets;
  /** Every frontend, every source kind: the whole table is compared. */
  verdicts: Record<string, SourceTable>;
}

export function runCase(c: Case): void {
  const sp = onlyPort({ objects: c.objects, families: c.families }, c.port);
  if (c.sets) {
    const { hasAny, topology, ...lists } = c.sets;
    expect(endpointSets(sp), 'endpoint sets').toStrictEqual(lists);
    if (typeof hasAny === 'boolean') expect(sp.hasAnyEndpoints?.IPv4, 'hasAnyEndpoints.IPv4').toBe(hasAny);
    else expect(sp.hasAnyEndpoints, 'hasAnyEndpoints').toStrictEqual(hasAny);
    expect(sp.topologyMode?.IPv4, 'topologyMode.IPv4').toBe(topology ?? '');
  }
  expect(verdictTable(sp, options(c.opts), c.verdicts), 'verdicts').toStrictEqual(c.verdicts);
}

/** The same verdict for pod, node and external sources. */
export function every(v: string): SourceTable {
  return { pod: v, node: v, external: v };
}
