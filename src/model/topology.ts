// Endpoint selection for one IP family of one ServicePort, following
// kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go, v1.34+ with
// PreferSameTrafficDistribution on, its default):
// - Cluster policy uses the Ready endpoints, filtered by topology hints when
//   the hints allow it (topologyMode below); when that leaves none, the
//   Serving+Terminating endpoints anywhere (no topology), so connections
//   drain to pods that are shutting down rather than being rejected.
// - Local policy uses this node's Ready endpoints, else this node's
//   Serving+Terminating ones; hints never apply to it.
// - hasAny: a Ready or Serving+Terminating endpoint exists anywhere.
// - Hints: node hints win when every Ready endpoint has one and some name
//   this node; else zone hints when every Ready endpoint has one and some
//   name this node's zone. Otherwise no filtering. An unknown zone reads as
//   "" (kube-proxy reads a missing label as the empty string).

import type { EndpointInfo, TopologyMode } from './types.ts';

/** What endpoint selection needs to know about the node it runs on. */
export interface NodeContext {
  readonly name: string;
  /** topology.kubernetes.io/zone of this node, null when unknown. */
  readonly zone: string | null;
}

/** Which policies a ServicePort uses (kube-proxy's UsesClusterEndpoints / UsesLocalEndpoints). */
export interface PolicyUse {
  readonly cluster: boolean;
  readonly local: boolean;
}

export interface Categorized {
  /** Empty when Cluster policy is not used. */
  readonly clusterPolicy: readonly EndpointInfo[];
  /** Empty when Local policy is not used. */
  readonly local: readonly EndpointInfo[];
  /** Every endpoint reachable from this node under the policies in use, sorted by ip then port. */
  readonly allReachable: readonly EndpointInfo[];
  readonly hasAny: boolean;
  readonly topologyMode: TopologyMode;
}

const NONE: readonly EndpointInfo[] = [];
const EMPTY: Categorized = { clusterPolicy: NONE, local: NONE, allReachable: NONE, hasAny: false, topologyMode: '' };

/** `endpoints` must all be of one family and sorted by ip then port (as mergeEndpoints returns them). */
export function categorizeEndpoints(endpoints: readonly EndpointInfo[], use: PolicyUse, node: NodeContext): Categorized {
  if (endpoints.length === 0) return EMPTY;
  const topologyMode = use.cluster ? topologyModeFromHints(endpoints, node) : '';
  const clusterPolicy = use.cluster ? clusterPolicyEndpoints(endpoints, topologyMode, node) : NONE;
  if (!use.local) return { clusterPolicy, local: NONE, allReachable: clusterPolicy, hasAny: clusterPolicy.length > 0, topologyMode };
  const local = localEndpoints(endpoints);
  const localServingTerminating = local.length > 0 && !local[0]!.ready;
  const allReachable = reachable(use, clusterPolicy, local, topologyMode, localServingTerminating);
  return { clusterPolicy, local, allReachable, hasAny: endpoints.some(usable), topologyMode };
}

/** The endpoints ClusterIP traffic goes to under Cluster policy (kept for callers that know no more). */
export function selectClusterEndpoints(endpoints: readonly EndpointInfo[], node: NodeContext): readonly EndpointInfo[] {
  return categorizeEndpoints(endpoints, { cluster: true, local: false }, node).clusterPolicy;
}

function usable(ep: EndpointInfo): boolean {
  return ep.ready || (ep.serving && ep.terminating);
}

/** This node's Ready endpoints, or when it has none, its Serving+Terminating ones. */
function localEndpoints(endpoints: readonly EndpointInfo[]): readonly EndpointInfo[] {
  const ready = endpoints.filter((ep) => ep.isLocal && ep.ready);
  if (ready.length > 0) return ready;
  return endpoints.filter((ep) => ep.isLocal && ep.serving && ep.terminating);
}

function clusterPolicyEndpoints(endpoints: readonly EndpointInfo[], mode: TopologyMode, node: NodeContext): readonly EndpointInfo[] {
  const ready = endpoints.filter((ep) => ep.ready && availableForTopology(ep, mode, node));
  if (ready.length === endpoints.length) return endpoints;
  if (ready.length > 0) return ready;
  // No Ready endpoint for the topology means none anywhere: the mode is
  // only chosen when some Ready endpoint is hinted for this node or zone.
  return endpoints.filter((ep) => ep.serving && ep.terminating);
}

/**
 * kube-proxy's allReachableEndpoints. When no hint filtered the cluster set
 * and the local set holds only Ready endpoints, the cluster set already
 * contains it; otherwise the two are merged.
 */
function reachable(
  use: PolicyUse,
  clusterPolicy: readonly EndpointInfo[],
  local: readonly EndpointInfo[],
  mode: TopologyMode,
  localServingTerminating: boolean,
): readonly EndpointInfo[] {
  if (!use.cluster) return local;
  if (mode === '' && !localServingTerminating) return clusterPolicy;
  return union(clusterPolicy, local);
}

/** Merge of two lists sorted by ip then port, one entry per ip:port. */
function union(a: readonly EndpointInfo[], b: readonly EndpointInfo[]): readonly EndpointInfo[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const out: EndpointInfo[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    const c = x === undefined ? 1 : y === undefined ? -1 : compare(x, y);
    if (c <= 0) out.push(x!);
    else out.push(y!);
    if (c <= 0) i++;
    if (c >= 0) j++;
  }
  return out;
}

function compare(a: EndpointInfo, b: EndpointInfo): number {
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  return a.port - b.port;
}

/** kube-proxy's topologyModeFromHints, with same-node hints enabled. */
export function topologyModeFromHints(endpoints: readonly EndpointInfo[], node: NodeContext): TopologyMode {
  const zone = node.zone ?? '';
  let anyReady = false;
  let allNodeHints = true;
  let forNode = false;
  let allZoneHints = true;
  let forZone = false;
  for (const ep of endpoints) {
    if (!ep.ready) continue;
    anyReady = true;
    const nodeHints = ep.nodeHints ?? NO_HINTS;
    const zoneHints = ep.zoneHints ?? NO_HINTS;
    if (nodeHints.length === 0) allNodeHints = false;
    else if (nodeHints.includes(node.name)) forNode = true;
    if (zoneHints.length === 0) allZoneHints = false;
    else if (zoneHints.includes(zone)) forZone = true;
    if (!allNodeHints && !allZoneHints) return ''; // the usual case: no hints at all
  }
  if (!anyReady) return '';
  if (allNodeHints && forNode) return 'PreferSameNode';
  if (allZoneHints && forZone) return 'PreferSameZone';
  return '';
}

const NO_HINTS: readonly string[] = [];

function availableForTopology(ep: EndpointInfo, mode: TopologyMode, node: NodeContext): boolean {
  if (mode === 'PreferSameNode') return (ep.nodeHints ?? NO_HINTS).includes(node.name);
  if (mode === 'PreferSameZone') return (ep.zoneHints ?? NO_HINTS).includes(node.zone ?? '');
  return true;
}
