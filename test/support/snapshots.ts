// Hand-made ProxySnapshots for dataplane tests: ClusterIP ServicePorts with
// ready endpoints, as compact as a test wants to write them.

import type { EndpointInfo, Protocol, ProxySnapshot, ServicePortInfo } from '../../src/model/types.ts';

/** A ready, non-local endpoint "ip:port". */
export function endpoint(addr: string): EndpointInfo {
  const [ip = '', port = '0'] = addr.split(':');
  return { ip, port: Number(port), nodeName: null, zone: null, ready: true, serving: true, terminating: false, isLocal: false };
}

/** ServicePort ns/name (port name empty) on clusterIP:port with endpoints "ip:port". */
export function servicePort(name: string, clusterIP: string, port: number, endpoints: readonly string[], protocol: Protocol = 'TCP'): ServicePortInfo {
  const eps = endpoints.map(endpoint);
  return { id: `ns/${name}:/${protocol}`, namespace: 'ns', name, portName: '', protocol, clusterIPs: [clusterIP], port, endpoints: eps, clusterEndpoints: eps };
}

/** A snapshot of these ServicePorts; `changed` names ServicePort ids (or 'all'). */
export function snapshot(sps: readonly ServicePortInfo[], changed: ReadonlySet<string> | 'all' = 'all'): ProxySnapshot {
  return { nodeName: 'node-a', servicePorts: new Map(sps.map((s) => [s.id, s])), changed };
}
