// Hand-made ServicePortInfos and ProxySnapshots for dataplane tests, as
// compact as a test wants to write them: servicePortInfo() takes the fields
// a test cares about and derives the rest as the model does
// (completeServicePort: endpoint sets for this node, Cluster policies, no
// affinity unless given), so every ServicePortInfo a test makes has every
// field, as the SnapshotBuilder's do.

import { completeServicePort } from '../../src/model/selection.ts';
import type { EndpointInfo, Protocol, ProxySnapshot, ServicePortInfo, ServicePortSpec } from '../../src/model/types.ts';

/** The node tests run as (endpoints with this nodeName are local). */
export const TEST_NODE = 'node-a';

/** A ready endpoint "ip:port" or "[ipv6]:port"; local when `node` is TEST_NODE. */
export function endpoint(addr: string, node: string | null = null): EndpointInfo {
  const m = /^\[(.*)\]:(\d+)$/.exec(addr);
  const [ip = '', port = '0'] = m ? [m[1], m[2]] : addr.split(':');
  return { ip, port: Number(port), nodeName: node, zone: null, ready: true, serving: true, terminating: false, isLocal: node === TEST_NODE };
}

export type ServicePortInput = Partial<ServicePortSpec> & { readonly name: string };

/**
 * A ServicePortInfo: ns/name, port name empty, TCP, port 80, no ClusterIP
 * unless given; clusterEndpoints default to the cluster-policy endpoints
 * of `endpoints` (as the model computes them for TEST_NODE).
 */
export function servicePortInfo(i: ServicePortInput): ServicePortInfo {
  const namespace = i.namespace ?? 'ns';
  const protocol: Protocol = i.protocol ?? 'TCP';
  const portName = i.portName ?? '';
  const endpoints = i.endpoints ?? [];
  const spec: ServicePortSpec = {
    id: i.id ?? `${namespace}/${i.name}:${portName}/${protocol}`,
    namespace,
    portName,
    protocol,
    clusterIPs: i.clusterIPs ?? [],
    port: i.port ?? 80,
    endpoints,
    ...i,
  };
  return completeServicePort(spec, { name: TEST_NODE, zone: null });
}

/** ServicePort ns/name (port name empty) on clusterIP:port with ready endpoints "ip:port". */
export function servicePort(name: string, clusterIP: string, port: number, endpoints: readonly string[], protocol: Protocol = 'TCP'): ServicePortInfo {
  return servicePortInfo({ name, clusterIPs: [clusterIP], port, endpoints: endpoints.map((e) => endpoint(e)), protocol });
}

/** A snapshot of these ServicePorts; `changed` names ServicePort ids (or 'all'). */
export function snapshot(sps: readonly ServicePortInfo[], changed: ReadonlySet<string> | 'all' = 'all'): ProxySnapshot {
  return { nodeName: TEST_NODE, servicePorts: new Map(sps.map((s) => [s.id, s])), changed };
}
