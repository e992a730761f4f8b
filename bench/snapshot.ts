// Synthetic ProxySnapshots for the sync benchmark: N ClusterIP ServicePorts
// (TCP port 80, ClusterIP 10.96.x.y) with E endpoints each on port 8080.
// Pod addresses are numbered across the whole cluster and taken from
// 10.244.0.0 up (10.244.0.0/14 holds 10,000 Services x 10 pods, 100,000, more
// than one /16; 50,000 x 10 reaches 10.251.x.y, inside 10.240.0.0/12). Every pod backs one Service, so the
// backends are all distinct, as with real Deployments.
//
// Endpoints are sorted by ip in string order, as the model's SnapshotBuilder
// hands them over (ServicePortInfo.endpoints), so compile does the numeric
// sort it does in production.

import type { EndpointInfo, ProxySnapshot, ServicePortInfo } from '../src/model/types.ts';

const NODE = 'bench-node';
/** Addresses from 10.244.0.0 to 10.251.255.255 (50,000 Services x 10 pods is 500,000). */
const MAX_PODS = 1 << 19;
/** ClusterIPs 10.96.0.0 .. 10.96.255.255. */
const MAX_SERVICES = 1 << 16;

function podIP(n: number): string {
  return `10.${244 + (n >>> 16)}.${(n >>> 8) & 255}.${n & 255}`;
}

function endpoint(ip: string): EndpointInfo {
  return { ip, port: 8080, nodeName: NODE, zone: null, ready: true, serving: true, terminating: false, isLocal: false };
}

function byIP(a: EndpointInfo, b: EndpointInfo): number {
  return a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0;
}

/** What one endpoint change did: the ServicePort, and the frontend it programs. */
export interface EndpointChange {
  readonly snapshot: ProxySnapshot;
  readonly id: string;
  readonly frontend: string;
}

/**
 * A cluster of `services` ServicePorts that can change one Service's
 * endpoints at a time. Owns its servicePorts map and replaces entries in
 * it (ServicePortInfo objects themselves stay immutable, as in the model).
 */
export class SyntheticCluster {
  readonly services: number;
  readonly endpointsPerService: number;
  readonly #ports = new Map<string, ServicePortInfo>();
  readonly #ids: string[] = [];
  #nextPod: number;

  constructor(services: number, endpointsPerService: number) {
    if (services > MAX_SERVICES) throw new RangeError(`at most ${MAX_SERVICES} Services fit in 10.96.0.0/16`);
    this.services = services;
    this.endpointsPerService = endpointsPerService;
    this.#nextPod = services * endpointsPerService;
    if (this.#nextPod > MAX_PODS) throw new RangeError(`${this.#nextPod} pods do not fit in 10.244.0.0 to 10.251.255.255`);
    for (let s = 0; s < services; s++) {
      const eps: EndpointInfo[] = [];
      for (let e = 0; e < endpointsPerService; e++) eps.push(endpoint(podIP(s * endpointsPerService + e)));
      const sp = servicePort(s, eps.sort(byIP));
      this.#ports.set(sp.id, sp);
      this.#ids.push(sp.id);
    }
  }

  /** The whole cluster, for a full sync. */
  full(): ProxySnapshot {
    return { nodeName: NODE, servicePorts: this.#ports, changed: 'all' };
  }

  /** Distinct backend addresses in the cluster (every pod backs one Service). */
  get uniqueBackends(): number {
    return this.services * this.endpointsPerService;
  }

  /**
   * Service number s loses its first endpoint and gains a new pod: the
   * scale-down/scale-up churn of a rolling update.
   */
  replaceOneEndpoint(s: number): EndpointChange {
    const id = this.#ids[s];
    const old = id === undefined ? undefined : this.#ports.get(id);
    if (id === undefined || old === undefined) throw new RangeError(`no Service ${s}`);
    if (this.#nextPod >= MAX_PODS) throw new RangeError('out of pod addresses');
    const eps = [...old.clusterEndpoints.slice(1), endpoint(podIP(this.#nextPod++))].sort(byIP);
    this.#ports.set(id, { ...old, endpoints: eps, clusterEndpoints: eps, clusterPolicyEndpoints: eps, allEndpoints: eps });
    return {
      snapshot: { nodeName: NODE, servicePorts: this.#ports, changed: new Set([id]) },
      id,
      frontend: `${old.clusterIPs[0] ?? ''}:${old.port}/${old.protocol}`,
    };
  }
}

function servicePort(s: number, eps: readonly EndpointInfo[]): ServicePortInfo {
  const namespace = `ns${s % 100}`;
  const name = `svc-${s}`;
  return {
    id: `${namespace}/${name}:http/TCP`,
    namespace,
    name,
    portName: 'http',
    protocol: 'TCP',
    clusterIPs: [`10.96.${s >>> 8}.${s & 255}`],
    port: 80,
    endpoints: eps,
    clusterEndpoints: eps,
    ...CLUSTER_IP_DEFAULTS,
    clusterPolicyEndpoints: eps,
    externalEndpoints: [],
    allEndpoints: eps,
  };
}

/** The derived fields of a ClusterIP ServicePort with Cluster policies and ready, remote endpoints (as the model makes it). */
const CLUSTER_IP_DEFAULTS = {
  nodePort: null,
  externalIPs: [],
  loadBalancerIPs: [],
  sessionAffinity: null,
  lbAlgorithm: null,
  externalPolicyLocal: false,
  internalPolicyLocal: false,
  healthCheckNodePort: null,
  loadBalancerSourceRanges: [],
  trafficDistribution: null,
  localEndpoints: [],
  hasAnyEndpoints: { IPv4: true, IPv6: false },
  usesClusterEndpoints: true,
  usesLocalEndpoints: false,
  topologyMode: { IPv4: '', IPv6: '' },
} as const;
