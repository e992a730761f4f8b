// One Service (plus its slices) -> its ServicePortInfos: one per spec port,
// id "namespace/name:portName/PROTOCOL", endpoints merged across slices and
// the cluster endpoints selected per IP family. Pure: same input, same output.
// Any Service that reached the cache has a ClusterIP (headless, ExternalName
// and proxy-name-labelled Services are ignored by validation), so every
// type (ClusterIP, NodePort, LoadBalancer) yields its ClusterIP ports here.

import type { EndpointSlice, Service, ServicePortSpec } from '../sources/objects.ts';
import { familyOf } from '../sources/objects.ts';
import { mergeEndpoints, type MergeContext } from './endpoints.ts';
import { selectClusterEndpoints, type NodeContext } from './topology.ts';
import type { EndpointInfo, Protocol, ServicePortInfo } from './types.ts';

export interface BuildContext extends MergeContext {
  readonly node: NodeContext;
}

export function servicePortId(namespace: string, name: string, portName: string, protocol: Protocol): string {
  return `${namespace}/${name}:${portName}/${protocol}`;
}

export function buildServicePorts(
  svc: Service,
  slices: readonly EndpointSlice[],
  ctx: BuildContext,
): ServicePortInfo[] {
  return svc.ports.map((port) => buildServicePort(svc, port, slices, ctx));
}

function buildServicePort(
  svc: Service,
  port: ServicePortSpec,
  slices: readonly EndpointSlice[],
  ctx: BuildContext,
): ServicePortInfo {
  const endpoints = mergeEndpoints(slices, port.name, port.protocol, ctx);
  return {
    id: servicePortId(svc.namespace, svc.name, port.name, port.protocol),
    namespace: svc.namespace,
    name: svc.name,
    portName: port.name,
    protocol: port.protocol,
    clusterIPs: svc.clusterIPs,
    port: port.port,
    endpoints,
    clusterEndpoints: selectPerFamily(endpoints, ctx),
  };
}

/** Runs endpoint selection separately for each family present (see topology.ts). */
function selectPerFamily(endpoints: readonly EndpointInfo[], ctx: BuildContext): readonly EndpointInfo[] {
  if (ctx.families.size === 1) return selectClusterEndpoints(endpoints, ctx.node);
  const v4 = endpoints.filter((ep) => familyOf(ep.ip) === 'IPv4');
  const v6 = endpoints.filter((ep) => familyOf(ep.ip) === 'IPv6');
  return [...selectClusterEndpoints(v4, ctx.node), ...selectClusterEndpoints(v6, ctx.node)];
}
