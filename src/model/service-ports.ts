// One Service (plus its slices) -> its ServicePortInfos: one per spec port,
// id "namespace/name:portName/PROTOCOL", endpoints merged across slices and
// the endpoint sets selected per IP family (selection.ts). Pure: same input,
// same output. Any Service that reached the cache has a ClusterIP (headless,
// ExternalName and proxy-name-labelled Services are ignored by validation),
// so every type (ClusterIP, NodePort, LoadBalancer) yields its ClusterIP
// ports here. As in kube-proxy's newBaseServiceInfo (serviceport.go),
// ExternalIPs and LoadBalancer IPs count only in a family the Service has a
// ClusterIP of, and LoadBalancer ingress with ipMode Proxy is not ours.

import type { EndpointSlice, Service, ServicePortSpec } from '../sources/objects.ts';
import { familyOf } from '../util/ip.ts';
import { mergeEndpoints, type MergeContext } from './endpoints.ts';
import { selectEndpointSets, type PortPolicy } from './selection.ts';
import type { NodeContext } from './topology.ts';
import type { IPFamily, Protocol, ServicePortInfo } from './types.ts';

export interface BuildContext extends MergeContext {
  readonly node: NodeContext;
}

export function servicePortId(namespace: string, name: string, portName: string, protocol: Protocol): string {
  return `${namespace}/${name}:${portName}/${protocol}`;
}

export function buildServicePorts(svc: Service, slices: readonly EndpointSlice[], ctx: BuildContext): ServicePortInfo[] {
  const shared = serviceLevel(svc);
  return svc.ports.map((port) => buildServicePort(svc, shared, port, slices, ctx));
}

/** What every port of the Service shares. */
interface ServiceLevel {
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
  readonly externalPolicyLocal: boolean;
  readonly internalPolicyLocal: boolean;
}

function buildServicePort(svc: Service, shared: ServiceLevel, port: ServicePortSpec, slices: readonly EndpointSlice[], ctx: BuildContext): ServicePortInfo {
  const endpoints = mergeEndpoints(slices, port.name, port.protocol, ctx);
  const policy: PortPolicy = {
    internalPolicyLocal: shared.internalPolicyLocal,
    externalPolicyLocal: shared.externalPolicyLocal,
    nodePort: port.nodePort,
    externalIPs: shared.externalIPs,
    loadBalancerIPs: shared.loadBalancerIPs,
  };
  const sets = selectEndpointSets(endpoints, policy, ctx.node);
  // Spelled out rather than spread: one object shape for every ServicePortInfo.
  return {
    id: servicePortId(svc.namespace, svc.name, port.name, port.protocol),
    namespace: svc.namespace,
    name: svc.name,
    portName: port.name,
    protocol: port.protocol,
    clusterIPs: svc.clusterIPs,
    port: port.port,
    endpoints,
    clusterEndpoints: sets.clusterEndpoints,
    nodePort: port.nodePort,
    externalIPs: shared.externalIPs,
    loadBalancerIPs: shared.loadBalancerIPs,
    sessionAffinity: svc.sessionAffinity,
    lbAlgorithm: svc.lbAlgorithm,
    externalPolicyLocal: shared.externalPolicyLocal,
    internalPolicyLocal: shared.internalPolicyLocal,
    healthCheckNodePort: svc.healthCheckNodePort,
    loadBalancerSourceRanges: svc.loadBalancerSourceRanges,
    trafficDistribution: svc.trafficDistribution,
    clusterPolicyEndpoints: sets.clusterPolicyEndpoints,
    localEndpoints: sets.localEndpoints,
    externalEndpoints: sets.externalEndpoints,
    allEndpoints: sets.allEndpoints,
    hasAnyEndpoints: sets.hasAnyEndpoints,
    usesClusterEndpoints: sets.usesClusterEndpoints,
    usesLocalEndpoints: sets.usesLocalEndpoints,
    topologyMode: sets.topologyMode,
  };
}

function serviceLevel(svc: Service): ServiceLevel {
  const externalPolicyLocal = svc.externalTrafficPolicy === 'Local' && reachableFromOutside(svc);
  const internalPolicyLocal = svc.internalTrafficPolicy === 'Local';
  if (svc.externalIPs.length === 0 && svc.loadBalancerIngress.length === 0) {
    return { externalIPs: NO_IPS, loadBalancerIPs: NO_IPS, externalPolicyLocal, internalPolicyLocal };
  }
  const families = new Set<IPFamily>(svc.clusterIPs.map(familyOf));
  const vips = svc.loadBalancerIngress.filter((ing) => ing.ipMode === 'VIP').map((ing) => ing.ip);
  return {
    externalIPs: ofFamilies(svc.externalIPs, families),
    loadBalancerIPs: ofFamilies(vips, families),
    externalPolicyLocal,
    internalPolicyLocal,
  };
}

const NO_IPS: readonly string[] = [];

/** The API's ExternallyAccessible (pkg/api/v1/service/util.go): decides whether externalTrafficPolicy applies. */
function reachableFromOutside(svc: Service): boolean {
  return svc.type === 'LoadBalancer' || svc.type === 'NodePort' || (svc.type === 'ClusterIP' && svc.externalIPs.length > 0);
}

function ofFamilies(ips: readonly string[], families: ReadonlySet<IPFamily>): readonly string[] {
  if (ips.length === 0 || ips.every((ip) => families.has(familyOf(ip)))) return ips;
  return ips.filter((ip) => families.has(familyOf(ip)));
}

/** The parts of a servicePortId(); null when `id` is not one. */
export function parseServicePortId(id: string): { namespace: string; name: string; portName: string; protocol: string } | null {
  const m = /^([^/]*)\/([^:/]*):([^/]*)\/([A-Z]+)$/.exec(id);
  if (m === null) return null;
  return { namespace: m[1] as string, name: m[2] as string, portName: m[3] as string, protocol: m[4] as string };
}
