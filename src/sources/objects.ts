// Typed shapes of the Kubernetes objects Switchyard reads (v1 Service,
// discovery.k8s.io/v1 EndpointSlice, v1 Node), reduced to the fields the
// model uses, and the validators that turn an unknown parsed object into one
// of them. Validation applies the API server's defaulting (protocol TCP,
// namespace "default", targetPort = port) because manifests never went
// through an API server. Objects kube-proxy does not proxy come back as
// 'ignored' (not an error); malformed ones as 'invalid' with a
// ValidationError naming the object and the field path.
// Service fields are kept as kube-proxy reads them (pkg/proxy/serviceport.go):
// per-port nodePort, externalIPs, VIP-mode load-balancer ingress IPs,
// session affinity, both traffic policies, healthCheckNodePort and the
// loadBalancerSourceRanges (whitespace around a CIDR tolerated, as the API
// server lets it through). EndpointSlices keep zone and node hints, Nodes
// their zone label.

import { SwitchyardError } from '../util/errors.ts';
import { familyOf, ipFamily, parseCidr, type IPFamily } from '../util/ip.ts';

export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
/** v1.Protocol; the model and every dataplane use it as it is. */
export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type ObjectKind = 'Service' | 'EndpointSlice' | 'Node';

export const LABEL_TOPOLOGY_ZONE = 'topology.kubernetes.io/zone';

export type TrafficPolicy = 'Cluster' | 'Local';
export type TrafficDistribution = 'PreferClose' | 'PreferSameZone' | 'PreferSameNode';

export interface ServicePortSpec {
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** Port number or named container port; unused by the model so far. */
  readonly targetPort: number | string;
  /** null when unset (ClusterIP Services, or a manifest that left it to an allocator). */
  readonly nodePort: number | null;
}

/** One status.loadBalancer.ingress entry that has an IP (hostname-only entries are dropped). */
export interface LoadBalancerIngress {
  readonly ip: string;
  /** "VIP" when unset. kube-proxy programs only VIP-mode addresses. */
  readonly ipMode: 'VIP' | 'Proxy';
}

export interface Service {
  readonly kind: 'Service';
  readonly namespace: string;
  readonly name: string;
  /** "namespace/name" */
  readonly key: string;
  readonly type: ServiceType;
  /** spec.clusterIPs (or [spec.clusterIP]); never empty, never "None". */
  readonly clusterIPs: readonly string[];
  readonly ports: readonly ServicePortSpec[];
  /** spec.externalIPs, both families, in spec order. */
  readonly externalIPs: readonly string[];
  readonly loadBalancerIngress: readonly LoadBalancerIngress[];
  /** spec.sessionAffinity ClientIP with its timeout (default 10800 s); null for None. */
  readonly sessionAffinity: { readonly timeoutSeconds: number } | null;
  /** metadata.annotations["service.switchyard.dev/lb-algorithm"]: the backend choice of this Service; null: the dataplane's default. */
  readonly lbAlgorithm: LbAlgorithm | null;
  /** Defaults to Cluster. */
  readonly externalTrafficPolicy: TrafficPolicy;
  /** Defaults to Cluster. */
  readonly internalTrafficPolicy: TrafficPolicy;
  /** Only kept for type LoadBalancer with externalTrafficPolicy Local (kube-proxy's NeedsHealthCheck). */
  readonly healthCheckNodePort: number | null;
  /** CIDRs with surrounding whitespace trimmed, both families, in spec order. */
  readonly loadBalancerSourceRanges: readonly string[];
  /** Informational: kube-proxy acts on the hints the EndpointSlice controller derives from it. */
  readonly trafficDistribution: TrafficDistribution | null;
}

/** An EndpointSlice's endpoints are kept sorted by their first address. */
export interface SliceEndpoint {
  /** Valid addresses of the slice's family; kube-proxy uses the first. */
  readonly addresses: readonly string[];
  /** Conditions with nil handled: ready nil => true, serving nil => ready, terminating nil => false. */
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly nodeName: string | null;
  readonly zone: string | null;
  /** hints.forZones[].name; empty when there is no zone hint. */
  readonly zoneHints: readonly string[];
  /** hints.forNodes[].name; empty when there is no node hint. */
  readonly nodeHints: readonly string[];
}

export interface SlicePort {
  /** "" when unset (API default). */
  readonly name: string;
  /** null when unset: kube-proxy ignores such ports. */
  readonly port: number | null;
  readonly protocol: Protocol;
}

export interface EndpointSlice {
  readonly kind: 'EndpointSlice';
  readonly namespace: string;
  readonly name: string;
  /** "namespace/name" of the slice itself. */
  readonly key: string;
  /** Value of the kubernetes.io/service-name label. */
  readonly serviceName: string;
  /** "namespace/service-name": the Service this slice belongs to. */
  readonly serviceKey: string;
  readonly addressType: IPFamily;
  readonly endpoints: readonly SliceEndpoint[];
  readonly ports: readonly SlicePort[];
  /** endpoints.kubernetes.io/last-change-trigger-time (wall clock ms), when set and valid. */
  readonly triggerTime: number | null;
}

export interface Node {
  readonly kind: 'Node';
  readonly name: string;
  /** Nodes are cluster-scoped: the key is the name. */
  readonly key: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The topology.kubernetes.io/zone label; null when absent. */
  readonly zone: string | null;
  /** spec.podCIDRs (or spec.podCIDR), the valid CIDRs only: detect-local-mode NodeCIDR. */
  readonly podCIDRs?: readonly string[];
  /** metadata.deletionTimestamp is set (health: the node is not eligible for traffic). Absent means false. */
  readonly deleting?: boolean;
  /** spec.taints[].key, in order (health: ToBeDeletedByClusterAutoscaler). Absent means none. */
  readonly taintKeys?: readonly string[];
}

export type KubeObject = Service | EndpointSlice | Node;

/** Identifies an object in a cache even when its content is unusable. */
export interface ObjectRef {
  readonly kind: ObjectKind;
  readonly key: string;
}

export type ParseResult =
  | { readonly status: 'valid'; readonly object: KubeObject; readonly warnings: readonly ValidationError[] }
  | { readonly status: 'ignored'; readonly ref: ObjectRef; readonly reason: string }
  | { readonly status: 'invalid'; readonly ref: ObjectRef | null; readonly error: ValidationError }
  | { readonly status: 'unsupported'; readonly kind: string };

/** A field of an object is unusable: names the object ("Service default/web") and the path. */
export class ValidationError extends SwitchyardError {
  declare readonly code: 'ERR_SY_INVALID_OBJECT';
  readonly object: string;
  readonly field: string;
  readonly detail: string;

  constructor(object: string, field: string, detail: string) {
    super('ERR_SY_INVALID_OBJECT', `${object}: ${field}: ${detail}`);
    this.object = object;
    this.field = field;
    this.detail = detail;
  }
}

// ---------------------------------------------------------------------------
// Entry point

const API_VERSIONS: Readonly<Record<ObjectKind, string>> = {
  Service: 'v1',
  EndpointSlice: 'discovery.k8s.io/v1',
  Node: 'v1',
};

/** Validates one parsed object (a YAML document or a List item). */
export function parseObject(raw: unknown): ParseResult {
  if (!isRecord(raw)) {
    return invalid(null, new ValidationError('<object>', '(document)', `must be a mapping, got ${describeValue(raw)}`));
  }
  const kind = raw['kind'];
  if (typeof kind !== 'string' || kind === '') {
    return invalid(null, new ValidationError('<object>', 'kind', `must be a non-empty string, got ${describeValue(kind)}`));
  }
  if (kind !== 'Service' && kind !== 'EndpointSlice' && kind !== 'Node') return { status: 'unsupported', kind };
  const ctx = new Ctx(kind, raw);
  try {
    ctx.expectApiVersion(raw['apiVersion']);
    if (kind === 'Service') return readService(ctx, raw);
    if (kind === 'EndpointSlice') return readEndpointSlice(ctx, raw);
    return readNode(ctx, raw);
  } catch (err) {
    if (err instanceof ValidationError) return invalid(ctx.ref, err);
    throw err;
  }
}

function invalid(ref: ObjectRef | null, error: ValidationError): ParseResult {
  return { status: 'invalid', ref, error };
}

// ---------------------------------------------------------------------------
// Service

function readService(ctx: Ctx, raw: Record<string, unknown>): ParseResult {
  const meta = ctx.readMeta(true);
  const skipLabel = proxySkipLabel(meta.labels);
  if (skipLabel) return ctx.ignored(`labelled ${skipLabel}`);
  const spec = ctx.record(raw['spec'], 'spec');
  const type = readServiceType(ctx, spec['type']);
  if (type === 'ExternalName') return ctx.ignored('type ExternalName');
  const clusterIPs = readClusterIPs(ctx, spec);
  if (clusterIPs === 'None') return ctx.ignored('headless (clusterIP None)');
  if (clusterIPs.length === 0) return ctx.ignored('no clusterIP set');
  const ports = readServicePorts(ctx, spec['ports'], type);
  const externalTrafficPolicy = readTrafficPolicy(ctx, spec['externalTrafficPolicy'], 'spec.externalTrafficPolicy');
  const object: Service = {
    kind: 'Service',
    namespace: meta.namespace,
    name: meta.name,
    key: ctx.key,
    type,
    clusterIPs,
    ports,
    externalIPs: readIPList(ctx, spec['externalIPs'], 'spec.externalIPs'),
    loadBalancerIngress: readLoadBalancerIngress(ctx, raw['status']),
    sessionAffinity: readSessionAffinity(ctx, spec),
    lbAlgorithm: readLbAlgorithm(ctx, raw),
    externalTrafficPolicy,
    internalTrafficPolicy: readTrafficPolicy(ctx, spec['internalTrafficPolicy'], 'spec.internalTrafficPolicy'),
    healthCheckNodePort: readHealthCheckNodePort(ctx, spec['healthCheckNodePort'], type, externalTrafficPolicy),
    loadBalancerSourceRanges: readSourceRanges(ctx, spec['loadBalancerSourceRanges']),
    trafficDistribution: readTrafficDistribution(ctx, spec['trafficDistribution']),
  };
  return { status: 'valid', object, warnings: ctx.warnings };
}

/** Switchyard's own: the backend choice of one Service (`random` or `maglev`), overriding --bpf-lb-algorithm. */
export const ANNOTATION_LB_ALGORITHM = 'service.switchyard.dev/lb-algorithm';
export type LbAlgorithm = 'random' | 'maglev';

/** The lb-algorithm annotation; another value is a warning and the default applies. */
function readLbAlgorithm(ctx: Ctx, raw: Record<string, unknown>): LbAlgorithm | null {
  const meta = raw['metadata'];
  const v = isRecord(meta) && isRecord(meta['annotations']) ? meta['annotations'][ANNOTATION_LB_ALGORITHM] : undefined;
  if (v === undefined || v === null) return null;
  if (v === 'random' || v === 'maglev') return v;
  ctx.warn(`metadata.annotations["${ANNOTATION_LB_ALGORITHM}"]`, `must be random or maglev, got ${describeValue(v)}; the default (--bpf-lb-algorithm) applies`);
  return null;
}

/** kube-proxy's informers select on these labels not existing (any value). */
function proxySkipLabel(labels: Readonly<Record<string, string>>): string | null {
  if (LABEL_SERVICE_PROXY_NAME in labels) return LABEL_SERVICE_PROXY_NAME;
  if (LABEL_HEADLESS in labels) return LABEL_HEADLESS;
  return null;
}

const SERVICE_TYPES: readonly string[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

function readServiceType(ctx: Ctx, v: unknown): ServiceType {
  if (v === undefined || v === null) return 'ClusterIP';
  if (typeof v === 'string' && SERVICE_TYPES.includes(v)) return v as ServiceType;
  return ctx.fail('spec.type', `must be one of ${SERVICE_TYPES.join(', ')}, got ${describeValue(v)}`);
}

function readClusterIPs(ctx: Ctx, spec: Record<string, unknown>): string[] | 'None' {
  const single = ctx.optString(spec['clusterIP'], 'spec.clusterIP') ?? '';
  const list = spec['clusterIPs'];
  if (single === 'None') return 'None';
  if (list === undefined || list === null || (Array.isArray(list) && list.length === 0)) {
    if (single === '') return [];
    ctx.expectIP(single, 'spec.clusterIP', null);
    return [single];
  }
  const ips = ctx.array(list, 'spec.clusterIPs').map((ip, i) => ctx.string(ip, `spec.clusterIPs[${i}]`));
  if (ips[0] === 'None') return 'None';
  if (single !== '' && ips.length > 0 && ips[0] !== single) {
    ctx.fail('spec.clusterIPs[0]', `must equal spec.clusterIP ${describeValue(single)}, got ${describeValue(ips[0])}`);
  }
  if (ips.length > 2) ctx.fail('spec.clusterIPs', `must have at most 2 entries, got ${ips.length}`);
  ips.forEach((ip, i) => ctx.expectIP(ip, `spec.clusterIPs[${i}]`, null));
  if (ips.length === 2 && familyOf(ips[0]!) === familyOf(ips[1]!)) {
    ctx.fail('spec.clusterIPs[1]', `must be of the other IP family than ${describeValue(ips[0])}, got ${describeValue(ips[1])}`);
  }
  return ips;
}

function readServicePorts(ctx: Ctx, v: unknown, type: ServiceType): ServicePortSpec[] {
  const list = ctx.array(v, 'spec.ports');
  if (list.length === 0) ctx.fail('spec.ports', 'must have at least one port');
  const ports = list.map((p, i) => readServicePort(ctx, p, `spec.ports[${i}]`, type));
  expectUniquePorts(
    ctx,
    ports.map((p) => describeValue(p.name)),
    'name',
  );
  expectUniquePorts(
    ctx,
    ports.map((p) => (p.nodePort === null ? null : `${p.nodePort}/${p.protocol}`)),
    'nodePort',
  );
  return ports;
}

/** Fails on the first spec.ports[i].field value (null: skipped) an earlier port already uses. */
function expectUniquePorts(ctx: Ctx, values: readonly (string | null)[], field: string): void {
  const seen = new Map<string, number>();
  values.forEach((v, i) => {
    if (v === null) return;
    const first = seen.get(v);
    if (first !== undefined) ctx.fail(`spec.ports[${i}].${field}`, `must be unique, ${v} is also used by spec.ports[${first}]`);
    seen.set(v, i);
  });
}

function readServicePort(ctx: Ctx, v: unknown, path: string, type: ServiceType): ServicePortSpec {
  const p = ctx.record(v, path);
  const name = ctx.optString(p['name'], `${path}.name`) ?? '';
  if (name !== '' && !DNS1123_LABEL.test(name)) {
    ctx.fail(`${path}.name`, `must be a DNS label (lowercase letters, digits, '-'), got ${describeValue(name)}`);
  }
  const port = ctx.port(p['port'], `${path}.port`);
  const protocol = ctx.protocol(p['protocol'], `${path}.protocol`);
  const targetPort = readTargetPort(ctx, p['targetPort'], `${path}.targetPort`) ?? port;
  return { name, protocol, port, targetPort, nodePort: readNodePort(ctx, p['nodePort'], `${path}.nodePort`, type) };
}

/** The API server forbids a nodePort on ClusterIP Services and allocates one otherwise; manifests get no allocator. */
function readNodePort(ctx: Ctx, v: unknown, path: string, type: ServiceType): number | null {
  if (v === undefined || v === null || v === 0) {
    if (type === 'NodePort') ctx.warn(path, 'unset on a NodePort Service (manifests get no allocated nodePort); no NodePort is programmed');
    return null;
  }
  if (type === 'ClusterIP') ctx.fail(path, 'may not be set when spec.type is ClusterIP');
  return ctx.port(v, path);
}

function readIPList(ctx: Ctx, v: unknown, path: string): string[] {
  return ctx.optArray(v, path).map((ip, i) => {
    const s = ctx.string(ip, `${path}[${i}]`);
    ctx.expectIP(s, `${path}[${i}]`, null);
    return s;
  });
}

/** status.loadBalancer.ingress: entries without an ip (hostname-only) are skipped, as kube-proxy does. */
function readLoadBalancerIngress(ctx: Ctx, status: unknown): LoadBalancerIngress[] {
  if (status === undefined || status === null) return [];
  const lb = ctx.record(status, 'status')['loadBalancer'];
  if (lb === undefined || lb === null) return [];
  const list = ctx.optArray(ctx.record(lb, 'status.loadBalancer')['ingress'], 'status.loadBalancer.ingress');
  const out: LoadBalancerIngress[] = [];
  list.forEach((entry, i) => {
    const path = `status.loadBalancer.ingress[${i}]`;
    const ing = ctx.record(entry, path);
    const ip = ctx.optString(ing['ip'], `${path}.ip`) ?? '';
    const ipMode = readIPMode(ctx, ing['ipMode'], `${path}.ipMode`);
    if (ip === '') return;
    ctx.expectIP(ip, `${path}.ip`, null);
    out.push({ ip, ipMode });
  });
  return out;
}

function readIPMode(ctx: Ctx, v: unknown, path: string): 'VIP' | 'Proxy' {
  if (v === undefined || v === null) return 'VIP';
  if (v === 'VIP' || v === 'Proxy') return v;
  return ctx.fail(path, `must be VIP or Proxy, got ${describeValue(v)}`);
}

const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;
const MAX_AFFINITY_TIMEOUT_SECONDS = 86400;

function readSessionAffinity(ctx: Ctx, spec: Record<string, unknown>): { timeoutSeconds: number } | null {
  const v = spec['sessionAffinity'];
  if (v === undefined || v === null || v === 'None') return null;
  if (v !== 'ClientIP') ctx.fail('spec.sessionAffinity', `must be None or ClientIP, got ${describeValue(v)}`);
  return { timeoutSeconds: readAffinityTimeout(ctx, spec['sessionAffinityConfig']) };
}

function readAffinityTimeout(ctx: Ctx, config: unknown): number {
  const path = 'spec.sessionAffinityConfig.clientIP.timeoutSeconds';
  if (config === undefined || config === null) return DEFAULT_AFFINITY_TIMEOUT_SECONDS;
  const clientIP = ctx.record(config, 'spec.sessionAffinityConfig')['clientIP'];
  if (clientIP === undefined || clientIP === null) return DEFAULT_AFFINITY_TIMEOUT_SECONDS;
  const t = ctx.record(clientIP, 'spec.sessionAffinityConfig.clientIP')['timeoutSeconds'];
  if (t === undefined || t === null) return DEFAULT_AFFINITY_TIMEOUT_SECONDS;
  if (typeof t === 'number' && Number.isInteger(t) && t >= 1 && t <= MAX_AFFINITY_TIMEOUT_SECONDS) return t;
  return ctx.fail(path, `must be an integer 1-${MAX_AFFINITY_TIMEOUT_SECONDS}, got ${describeValue(t)}`);
}

function readTrafficPolicy(ctx: Ctx, v: unknown, path: string): TrafficPolicy {
  if (v === undefined || v === null) return 'Cluster';
  if (v === 'Cluster' || v === 'Local') return v;
  return ctx.fail(path, `must be Cluster or Local, got ${describeValue(v)}`);
}

/** Kept only where kube-proxy serves it (NeedsHealthCheck: LoadBalancer with externalTrafficPolicy Local). */
function readHealthCheckNodePort(ctx: Ctx, v: unknown, type: ServiceType, etp: TrafficPolicy): number | null {
  const path = 'spec.healthCheckNodePort';
  const needed = type === 'LoadBalancer' && etp === 'Local';
  if (v === undefined || v === null || v === 0) {
    if (needed) ctx.warn(path, 'unset on a LoadBalancer Service with externalTrafficPolicy Local; no health check is served');
    return null;
  }
  const port = ctx.port(v, path);
  if (!needed) {
    ctx.warn(path, 'only used with type LoadBalancer and externalTrafficPolicy Local; ignored');
    return null;
  }
  return port;
}

/** kube-proxy trims each range: API validation once let whitespace through and old objects keep it. */
function readSourceRanges(ctx: Ctx, v: unknown): string[] {
  return ctx.optArray(v, 'spec.loadBalancerSourceRanges').map((r, i) => {
    const path = `spec.loadBalancerSourceRanges[${i}]`;
    if (typeof r !== 'string') return ctx.fail(path, `must be a string, got ${describeValue(r)}`);
    const cidr = r.trim();
    if (parseCidr(cidr, 'reject') === null) ctx.fail(path, `${describeValue(r)} is not a CIDR`);
    return cidr;
  });
}

const TRAFFIC_DISTRIBUTIONS: readonly string[] = ['PreferClose', 'PreferSameZone', 'PreferSameNode'];

function readTrafficDistribution(ctx: Ctx, v: unknown): TrafficDistribution | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' && TRAFFIC_DISTRIBUTIONS.includes(v)) return v as TrafficDistribution;
  return ctx.fail('spec.trafficDistribution', `must be one of ${TRAFFIC_DISTRIBUTIONS.join(', ')}, got ${describeValue(v)}`);
}

function readTargetPort(ctx: Ctx, v: unknown, path: string): number | string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' && IANA_SVC_NAME.test(v) && /[a-z]/.test(v) && !v.includes('--')) return v;
  if (typeof v === 'string') return ctx.fail(path, `must be a port number or a port name, got ${describeValue(v)}`);
  return ctx.port(v, path);
}

// ---------------------------------------------------------------------------
// EndpointSlice

function readEndpointSlice(ctx: Ctx, raw: Record<string, unknown>): ParseResult {
  const meta = ctx.readMeta(true);
  const skipLabel = proxySkipLabel(meta.labels);
  if (skipLabel) return ctx.ignored(`labelled ${skipLabel}`);
  const serviceName = meta.labels[LABEL_SERVICE_NAME];
  if (serviceName === undefined || serviceName === '') {
    ctx.fail(`metadata.labels["${LABEL_SERVICE_NAME}"]`, 'required: names the Service this slice belongs to');
  }
  const addressType = raw['addressType'];
  if (addressType === 'FQDN') return ctx.ignored('addressType FQDN');
  if (addressType !== 'IPv4' && addressType !== 'IPv6') {
    ctx.fail('addressType', `must be IPv4, IPv6 or FQDN, got ${describeValue(addressType)}`);
  }
  const endpoints = readSliceEndpoints(ctx, raw['endpoints'], addressType);
  const ports = ctx.optArray(raw['ports'], 'ports').map((p, i) => readSlicePort(ctx, p, `ports[${i}]`));
  const object: EndpointSlice = {
    kind: 'EndpointSlice',
    namespace: meta.namespace,
    name: meta.name,
    key: ctx.key,
    serviceName,
    serviceKey: `${meta.namespace}/${serviceName}`,
    addressType,
    endpoints,
    ports,
    triggerTime: readTriggerTime(ctx, raw),
  };
  return { status: 'valid', object, warnings: ctx.warnings };
}

export const ANNOTATION_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

/** When the change behind this slice happened (kube-proxy's network programming latency starts there). */
function readTriggerTime(ctx: Ctx, raw: Record<string, unknown>): number | null {
  const meta = raw['metadata'];
  const ann = isRecord(meta) && isRecord(meta['annotations']) ? meta['annotations'][ANNOTATION_TRIGGER_TIME] : undefined;
  if (ann === undefined || ann === null) return null;
  const t = typeof ann === 'string' ? Date.parse(ann) : NaN;
  if (Number.isNaN(t)) {
    ctx.warn(`metadata.annotations["${ANNOTATION_TRIGGER_TIME}"]`, `not an RFC 3339 time: ${describeValue(ann)}; latency not recorded`);
    return null;
  }
  return t;
}

function readSliceEndpoints(ctx: Ctx, v: unknown, family: IPFamily): SliceEndpoint[] {
  const out: SliceEndpoint[] = [];
  ctx.optArray(v, 'endpoints').forEach((e, i) => {
    const ep = readSliceEndpoint(ctx, e, `endpoints[${i}]`, family);
    if (ep) out.push(ep);
  });
  // Sorted by first address (stable), as kube-proxy caches them: the model
  // then merges a single slice without sorting again.
  return out.sort((a, b) => (a.addresses[0]! < b.addresses[0]! ? -1 : a.addresses[0]! > b.addresses[0]! ? 1 : 0));
}

/** Returns null (with a warning) for an endpoint kube-proxy would skip: no address or a wrong one. */
function readSliceEndpoint(ctx: Ctx, v: unknown, path: string, family: IPFamily): SliceEndpoint | null {
  const e = ctx.record(v, path);
  const addresses = ctx.optArray(e['addresses'], `${path}.addresses`).map((a, i) => ctx.string(a, `${path}.addresses[${i}]`));
  const cond = e['conditions'] === undefined || e['conditions'] === null ? {} : ctx.record(e['conditions'], `${path}.conditions`);
  const ready = ctx.optBool(cond['ready'], `${path}.conditions.ready`) ?? true;
  const serving = ctx.optBool(cond['serving'], `${path}.conditions.serving`) ?? true; // kube-proxy: an unset serving condition counts as serving
  const terminating = ctx.optBool(cond['terminating'], `${path}.conditions.terminating`) ?? false;
  const nodeName = ctx.optString(e['nodeName'], `${path}.nodeName`);
  const zone = ctx.optString(e['zone'], `${path}.zone`);
  const { zoneHints, nodeHints } = readHints(ctx, e['hints'], `${path}.hints`);
  if (addresses.length === 0) {
    ctx.warn(`${path}.addresses`, 'must have at least one address; endpoint ignored');
    return null;
  }
  const bad = addresses.findIndex((a) => ipFamily(a, 'reject') !== family);
  if (bad >= 0) {
    ctx.warn(`${path}.addresses[${bad}]`, `must be a valid ${family} address, got ${describeValue(addresses[bad])}; endpoint ignored`);
    return null;
  }
  return { addresses, ready, serving, terminating, nodeName, zone, zoneHints, nodeHints };
}

const NO_HINTS: readonly string[] = [];

function readHints(ctx: Ctx, v: unknown, path: string): { zoneHints: readonly string[]; nodeHints: readonly string[] } {
  if (v === undefined || v === null) return { zoneHints: NO_HINTS, nodeHints: NO_HINTS };
  const h = ctx.record(v, path);
  return {
    zoneHints: readHintNames(ctx, h['forZones'], `${path}.forZones`),
    nodeHints: readHintNames(ctx, h['forNodes'], `${path}.forNodes`),
  };
}

/** forZones / forNodes: a list of { name }. */
function readHintNames(ctx: Ctx, v: unknown, path: string): readonly string[] {
  const list = ctx.optArray(v, path);
  if (list.length === 0) return NO_HINTS;
  return list.map((entry, i) => ctx.string(ctx.record(entry, `${path}[${i}]`)['name'], `${path}[${i}].name`));
}

function readSlicePort(ctx: Ctx, v: unknown, path: string): SlicePort {
  const p = ctx.record(v, path);
  const name = ctx.optString(p['name'], `${path}.name`) ?? '';
  const port = p['port'] === undefined || p['port'] === null ? null : ctx.port(p['port'], `${path}.port`);
  const protocol = ctx.protocol(p['protocol'], `${path}.protocol`);
  return { name, port, protocol };
}

// ---------------------------------------------------------------------------
// Node

function readNode(ctx: Ctx, raw: Record<string, unknown>): ParseResult {
  const meta = ctx.readMeta(false);
  const spec = raw['spec'];
  const s = typeof spec === 'object' && spec !== null ? (spec as Record<string, unknown>) : {};
  const list = Array.isArray(s['podCIDRs']) ? (s['podCIDRs'] as unknown[]) : typeof s['podCIDR'] === 'string' ? [s['podCIDR']] : [];
  const podCIDRs = list.filter((c): c is string => typeof c === 'string' && parseCidr(c, 'reject') !== null);
  const deleting = isRecord(raw['metadata']) && typeof raw['metadata']['deletionTimestamp'] === 'string' && raw['metadata']['deletionTimestamp'] !== '';
  const taintKeys = readTaintKeys(raw['spec']);
  const object: Node = {
    kind: 'Node',
    name: meta.name,
    key: ctx.key,
    labels: meta.labels,
    zone: meta.labels[LABEL_TOPOLOGY_ZONE] ?? null,
    podCIDRs,
    // Set only when there is something to say, so that most Nodes read as before.
    ...(deleting ? { deleting } : {}),
    ...(taintKeys.length > 0 ? { taintKeys } : {}),
  };
  return { status: 'valid', object, warnings: ctx.warnings };
}

/** spec.taints[].key; lenient: the health check is the only reader, and a malformed taint is not this proxy's business. */
function readTaintKeys(spec: unknown): string[] {
  if (!isRecord(spec) || !Array.isArray(spec['taints'])) return [];
  return spec['taints'].flatMap((t: unknown) => (isRecord(t) && typeof t['key'] === 'string' ? [t['key']] : []));
}

// ---------------------------------------------------------------------------
// Field readers: each throws a ValidationError naming the object and path.

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IANA_SVC_NAME = /^[a-z0-9](?:[-a-z0-9]{0,13}[a-z0-9])?$/;
const PROTOCOLS: readonly string[] = ['TCP', 'UDP', 'SCTP'];

interface Meta {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

class Ctx {
  readonly kind: ObjectKind;
  readonly raw: Record<string, unknown>;
  readonly warnings: ValidationError[] = [];
  /** Set once metadata names the object. */
  ref: ObjectRef | null = null;
  label: string;

  constructor(kind: ObjectKind, raw: Record<string, unknown>) {
    this.kind = kind;
    this.raw = raw;
    this.label = `${kind} ${provisionalName(kind, raw)}`;
  }

  get key(): string {
    return this.ref?.key ?? '';
  }

  fail(field: string, detail: string): never {
    throw new ValidationError(this.label, field, detail);
  }

  warn(field: string, detail: string): void {
    this.warnings.push(new ValidationError(this.label, field, detail));
  }

  ignored(reason: string): ParseResult {
    return { status: 'ignored', ref: this.ref!, reason };
  }

  expectApiVersion(v: unknown): void {
    const want = API_VERSIONS[this.kind];
    if (v !== want) this.fail('apiVersion', `must be ${describeValue(want)}, got ${describeValue(v)}`);
  }

  readMeta(namespaced: boolean): Meta {
    const m = this.record(this.raw['metadata'], 'metadata');
    const name = this.string(m['name'], 'metadata.name');
    const namespace = namespaced ? (this.optString(m['namespace'], 'metadata.namespace') ?? 'default') : '';
    this.ref = { kind: this.kind, key: namespaced ? `${namespace}/${name}` : name };
    this.label = `${this.kind} ${this.ref.key}`;
    const nameRule = this.kind === 'Service' ? DNS1035_LABEL : DNS1123_SUBDOMAIN;
    if (!nameRule.test(name)) this.fail('metadata.name', `must be a ${nameRuleText(this.kind)}, got ${describeValue(name)}`);
    if (namespaced && !DNS1123_LABEL.test(namespace)) {
      this.fail('metadata.namespace', `must be a DNS label (lowercase letters, digits, '-'), got ${describeValue(namespace)}`);
    }
    return { name, namespace, labels: this.labels(m['labels']) };
  }

  labels(v: unknown): Record<string, string> {
    if (v === undefined || v === null) return {};
    const out: Record<string, string> = {};
    // A null value decodes to "" in Go (e.g. `service.kubernetes.io/headless:`).
    for (const [k, val] of Object.entries(this.record(v, 'metadata.labels'))) {
      out[k] = this.optString(val, `metadata.labels[${JSON.stringify(k)}]`) ?? '';
    }
    return out;
  }

  record(v: unknown, path: string): Record<string, unknown> {
    if (isRecord(v)) return v;
    return this.fail(path, `must be a mapping, got ${describeValue(v)}`);
  }

  array(v: unknown, path: string): unknown[] {
    if (Array.isArray(v)) return v;
    return this.fail(path, `must be a list, got ${describeValue(v)}`);
  }

  optArray(v: unknown, path: string): unknown[] {
    return v === undefined || v === null ? [] : this.array(v, path);
  }

  string(v: unknown, path: string): string {
    if (typeof v === 'string' && v !== '') return v;
    if (v === undefined || v === null) return this.fail(path, 'required');
    return this.fail(path, `must be a non-empty string, got ${describeValue(v)}`);
  }

  optString(v: unknown, path: string): string | null {
    if (v === undefined || v === null) return null;
    if (typeof v === 'string') return v;
    return this.fail(path, `must be a string, got ${describeValue(v)}`);
  }

  optBool(v: unknown, path: string): boolean | null {
    if (v === undefined || v === null) return null;
    if (typeof v === 'boolean') return v;
    return this.fail(path, `must be true or false, got ${describeValue(v)}`);
  }

  port(v: unknown, path: string): number {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535) return v;
    return this.fail(path, `must be an integer 1-65535, got ${describeValue(v)}`);
  }

  protocol(v: unknown, path: string): Protocol {
    if (v === undefined || v === null) return 'TCP';
    if (typeof v === 'string' && PROTOCOLS.includes(v)) return v as Protocol;
    return this.fail(path, `must be TCP, UDP or SCTP, got ${describeValue(v)}`);
  }

  /** An IP as Kubernetes accepts it: no zone, no leading zeros in IPv4 octets. */
  expectIP(v: string, path: string, family: IPFamily | null): void {
    const f = ipFamily(v, 'reject');
    if (f !== null && (family === null || f === family)) return;
    this.fail(path, `must be a valid ${family ?? 'IP'} address, got ${describeValue(v)}`);
  }
}

function nameRuleText(kind: ObjectKind): string {
  return kind === 'Service' ? "DNS-1035 label (lowercase letters, digits, '-', starting with a letter)" : "DNS subdomain (lowercase letters, digits, '-', '.')";
}

/** Best-effort name for messages before metadata has been validated. */
function provisionalName(kind: ObjectKind, raw: Record<string, unknown>): string {
  const m = isRecord(raw['metadata']) ? raw['metadata'] : {};
  const name = typeof m['name'] === 'string' && m['name'] !== '' ? m['name'] : '<unnamed>';
  if (kind === 'Node') return name;
  const ns = typeof m['namespace'] === 'string' && m['namespace'] !== '' ? m['namespace'] : 'default';
  return `${ns}/${name}`;
}

// ---------------------------------------------------------------------------
// Small shared helpers

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A short description of a value for error messages: strings quoted, containers named. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v.length > 64 ? `${v.slice(0, 61)}...` : v);
  if (Array.isArray(v)) return 'a list';
  if (isRecord(v)) return 'a mapping';
  return String(v);
}
