// Endpoint selection: which of a ServicePort's endpoints traffic is sent to,
// following kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go).
// Implemented so far, for Cluster traffic policy without topology hints:
//   use the Ready endpoints; if none is Ready, fall back to the endpoints
//   that are Serving and Terminating (so connections drain to pods that are
//   shutting down but still serve rather than being rejected).
// Still to come here: internalTrafficPolicy/externalTrafficPolicy Local
// (local endpoints, with the same fallback applied separately), zone/node
// hints and trafficDistribution.

import type { EndpointInfo } from './types.ts';

/** What endpoint selection needs to know about the node it runs on. */
export interface NodeContext {
  readonly name: string;
  /** topology.kubernetes.io/zone of this node, null when unknown. */
  readonly zone: string | null;
}

/**
 * The endpoints ClusterIP traffic goes to. `endpoints` must all be of one
 * IP family: the fallback is decided per family, as kube-proxy runs one
 * proxier per family.
 */
export function selectClusterEndpoints(
  endpoints: readonly EndpointInfo[],
  _node: NodeContext,
): readonly EndpointInfo[] {
  const ready = endpoints.filter((ep) => ep.ready);
  if (ready.length > 0) return ready.length === endpoints.length ? endpoints : ready;
  return endpoints.filter((ep) => ep.serving && ep.terminating);
}
