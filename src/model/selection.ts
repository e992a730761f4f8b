// The endpoint sets of one ServicePort: runs kube-proxy's endpoint
// categorization (topology.ts) once per IP family, with that family's
// reachability (kube-proxy runs one proxier per family), and joins the
// results into ServicePortInfo's fields. Also completes ServicePortInfos
// made by hand (without those fields) so every reader sees one shape.

import { familyOf } from '../util/ip.ts';
import { categorizeEndpoints, type Categorized, type NodeContext, type PolicyUse } from './topology.ts';
import type {
  CompleteServicePortInfo,
  DerivedServicePortKey,
  EndpointInfo,
  IPFamily,
  PerFamily,
  ServicePortInfo,
  ServicePortSpec,
  TopologyMode,
} from './types.ts';

/** The parts of a ServicePort that decide which endpoint sets it uses. */
export interface PortPolicy {
  readonly internalPolicyLocal: boolean;
  /** Already false when the Service is not reachable from outside (kube-proxy's ExternalPolicyLocal). */
  readonly externalPolicyLocal: boolean;
  readonly nodePort: number | null;
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
}

export type EndpointSets = Pick<
  CompleteServicePortInfo,
  | 'clusterEndpoints'
  | 'clusterPolicyEndpoints'
  | 'localEndpoints'
  | 'externalEndpoints'
  | 'allEndpoints'
  | 'hasAnyEndpoints'
  | 'usesClusterEndpoints'
  | 'usesLocalEndpoints'
  | 'topologyMode'
>;

/** kube-proxy's ServicePort.ExternallyAccessible, for one family's proxier. */
export function externallyAccessible(policy: PortPolicy, family: IPFamily): boolean {
  return policy.nodePort !== null || policy.externalIPs.some((ip) => familyOf(ip) === family) || policy.loadBalancerIPs.some((ip) => familyOf(ip) === family);
}

/** kube-proxy's UsesClusterEndpoints / UsesLocalEndpoints for one family. */
export function policyUse(policy: PortPolicy, family: IPFamily): PolicyUse {
  const accessible = externallyAccessible(policy, family);
  return {
    cluster: !policy.internalPolicyLocal || accessible,
    local: policy.internalPolicyLocal || (policy.externalPolicyLocal && accessible),
  };
}

/** `endpoints` sorted by ip then port, of any families. */
export function selectEndpointSets(endpoints: readonly EndpointInfo[], policy: PortPolicy, node: NodeContext): EndpointSets {
  const [v4, v6] = splitFamilies(endpoints);
  const a = familySets(v4, policy, 'IPv4', node);
  const b = familySets(v6, policy, 'IPv6', node);
  return {
    clusterEndpoints: concat(a.internal, b.internal),
    clusterPolicyEndpoints: concat(a.c.clusterPolicy, b.c.clusterPolicy),
    localEndpoints: concat(a.c.local, b.c.local),
    externalEndpoints: concat(a.external, b.external),
    allEndpoints: concat(a.c.allReachable, b.c.allReachable),
    hasAnyEndpoints: perFamilyBool(a.c.hasAny, b.c.hasAny),
    usesClusterEndpoints: a.use.cluster || b.use.cluster,
    usesLocalEndpoints: a.use.local || b.use.local,
    topologyMode: perFamilyMode(a.c.topologyMode, b.c.topologyMode),
  };
}

interface FamilySets {
  readonly c: Categorized;
  readonly use: PolicyUse;
  /** Where ClusterIP traffic goes. */
  readonly internal: readonly EndpointInfo[];
  /** Where traffic from outside the cluster to an external frontend goes. */
  readonly external: readonly EndpointInfo[];
}

function familySets(endpoints: readonly EndpointInfo[], policy: PortPolicy, family: IPFamily, node: NodeContext): FamilySets {
  const use = policyUse(policy, family);
  const c = categorizeEndpoints(endpoints, use, node);
  const internal = policy.internalPolicyLocal ? c.local : c.clusterPolicy;
  let external: readonly EndpointInfo[] = NONE;
  if (externallyAccessible(policy, family)) external = policy.externalPolicyLocal ? c.local : c.clusterPolicy;
  return { c, use, internal, external };
}

/**
 * Fills the fields a hand-made ServicePortInfo may lack with what the model
 * would derive: a ClusterIP port with Cluster policies and no affinity,
 * endpoint sets computed from `endpoints` for `node`. Fields present are
 * kept. A ServicePortInfo from the SnapshotBuilder is returned as is.
 */
export function completeServicePort(sp: ServicePortSpec, node: NodeContext): CompleteServicePortInfo {
  if (isComplete(sp)) return sp;
  const policy: PortPolicy = {
    internalPolicyLocal: sp.internalPolicyLocal ?? false,
    externalPolicyLocal: sp.externalPolicyLocal ?? false,
    nodePort: sp.nodePort ?? null,
    externalIPs: sp.externalIPs ?? NO_IPS,
    loadBalancerIPs: sp.loadBalancerIPs ?? NO_IPS,
  };
  const sets = selectEndpointSets(sp.endpoints, policy, node);
  return {
    ...policy,
    sessionAffinity: null,
    lbAlgorithm: null,
    healthCheckNodePort: null,
    loadBalancerSourceRanges: NO_IPS,
    trafficDistribution: null,
    ...sets,
    ...definedFields(sp),
  } as CompleteServicePortInfo;
}

const REQUIRED_KEYS = [
  'clusterEndpoints',
  'nodePort',
  'externalIPs',
  'loadBalancerIPs',
  'sessionAffinity',
  'lbAlgorithm',
  'externalPolicyLocal',
  'internalPolicyLocal',
  'healthCheckNodePort',
  'loadBalancerSourceRanges',
  'trafficDistribution',
  'clusterPolicyEndpoints',
  'localEndpoints',
  'externalEndpoints',
  'allEndpoints',
  'hasAnyEndpoints',
  'usesClusterEndpoints',
  'usesLocalEndpoints',
  'topologyMode',
] as const satisfies readonly DerivedServicePortKey[];

function isComplete(sp: ServicePortSpec): sp is CompleteServicePortInfo {
  return REQUIRED_KEYS.every((k) => sp[k] !== undefined);
}

function definedFields(sp: ServicePortSpec): Partial<ServicePortInfo> {
  return Object.fromEntries(Object.entries(sp).filter(([, v]) => v !== undefined));
}

// ---------------------------------------------------------------------------
// Small helpers. Shared constants keep unchanged results cheap to compare.

const NONE: readonly EndpointInfo[] = [];
const NO_IPS: readonly string[] = [];

/** Splits without copying when everything is of one family (the usual case). */
function splitFamilies(endpoints: readonly EndpointInfo[]): [readonly EndpointInfo[], readonly EndpointInfo[]] {
  let v6 = 0;
  for (const ep of endpoints) if (familyOf(ep.ip) === 'IPv6') v6++;
  if (v6 === 0) return [endpoints, NONE];
  if (v6 === endpoints.length) return [NONE, endpoints];
  return [endpoints.filter((ep) => familyOf(ep.ip) === 'IPv4'), endpoints.filter((ep) => familyOf(ep.ip) === 'IPv6')];
}

function concat(a: readonly EndpointInfo[], b: readonly EndpointInfo[]): readonly EndpointInfo[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  return [...a, ...b];
}

const BOOLS: readonly PerFamily<boolean>[] = [
  Object.freeze({ IPv4: false, IPv6: false }),
  Object.freeze({ IPv4: true, IPv6: false }),
  Object.freeze({ IPv4: false, IPv6: true }),
  Object.freeze({ IPv4: true, IPv6: true }),
];

function perFamilyBool(v4: boolean, v6: boolean): PerFamily<boolean> {
  return BOOLS[(v4 ? 1 : 0) + (v6 ? 2 : 0)]!;
}

const NO_TOPOLOGY: PerFamily<TopologyMode> = Object.freeze({ IPv4: '', IPv6: '' });

function perFamilyMode(v4: TopologyMode, v6: TopologyMode): PerFamily<TopologyMode> {
  return v4 === '' && v6 === '' ? NO_TOPOLOGY : { IPv4: v4, IPv6: v6 };
}
