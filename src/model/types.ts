// The service model: what the control plane has decided, per ServicePort,
// independent of any dataplane. Sources fill caches, the model turns caches
// into a ProxySnapshot, and each dataplane compiles that snapshot.
// Nothing here imports a dataplane.

import type { Protocol } from '../sources/objects.ts';
import type { IPFamily } from '../util/ip.ts';

export type { Protocol } from '../sources/objects.ts';
export type { IPFamily } from '../util/ip.ts';

/**
 * Which hints the cluster-policy endpoints were filtered by (kube-proxy's
 * topologyModeFromHints): '' none, or only endpoints hinted for this node /
 * this node's zone.
 */
export type TopologyMode = '' | 'PreferSameZone' | 'PreferSameNode';

/** sessionAffinity ClientIP: a client IP sticks to one endpoint for this long after its last packet. */
export interface SessionAffinity {
  readonly timeoutSeconds: number;
}

/** One value per IP family (a family the builder does not use for endpoints reads as empty). */
export type PerFamily<T> = Readonly<Record<IPFamily, T>>;

/** One endpoint of one ServicePort, merged across the Service's EndpointSlices. */
export interface EndpointInfo {
  readonly ip: string;
  readonly port: number;
  readonly nodeName: string | null;
  readonly zone: string | null;
  /** EndpointSlice conditions with kube-proxy's nil handling applied. */
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  /** nodeName equals this node's name. */
  readonly isLocal: boolean;
  /** hints.forZones names; absent or empty: no zone hint. */
  readonly zoneHints?: readonly string[];
  /** hints.forNodes names; absent or empty: no node hint. */
  readonly nodeHints?: readonly string[];
}

/**
 * One port of one Service, the unit every dataplane programs. Immutable; an
 * unchanged ServicePort is the same object from one snapshot to the next.
 */
export interface ServicePortInfo {
  /** "namespace/name:portName/PROTOCOL" (portName may be empty). */
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  readonly protocol: Protocol;
  /** spec.clusterIPs (or clusterIP), both families, in spec order. */
  readonly clusterIPs: readonly string[];
  readonly port: number;
  /**
   * Every endpoint of this port whatever its conditions, merged across the
   * Service's slices, sorted by ip (string order) then port, one per ip:port. Only families the SnapshotBuilder is configured
   * for (IPv4 by default): with dual-stack on, pair endpoints with
   * clusterIPs of the same family.
   */
  readonly endpoints: readonly EndpointInfo[];
  /**
   * The endpoints internal traffic (to a ClusterIP) is sent to, decided per
   * family: with internalTrafficPolicy Cluster kube-proxy's cluster-policy
   * endpoints (clusterPolicyEndpoints: topology-aware, serving-terminating
   * fallback), with Local the localEndpoints. Empty: see hasAnyEndpoints
   * for whether that means REJECT or DROP (src/model/verdict.ts).
   */
  readonly clusterEndpoints: readonly EndpointInfo[];

  // -------------------------------------------------------------------------
  // Set by the SnapshotBuilder from the Service and its EndpointSlices.
  // Tests build them with servicePortInfo() (test/support/snapshots.ts),
  // which derives the endpoint sets as the model does (completeServicePort
  // in src/model/selection.ts).

  /** spec.ports[].nodePort; null: no NodePort. */
  readonly nodePort: number | null;
  /** spec.externalIPs of the families the Service has a ClusterIP of, in spec order. */
  readonly externalIPs: readonly string[];
  /** VIP-mode status.loadBalancer.ingress IPs (ipMode Proxy skipped), families with a ClusterIP only. */
  readonly loadBalancerIPs: readonly string[];
  readonly sessionAffinity: SessionAffinity | null;
  /** The service.switchyard.dev/lb-algorithm annotation: 'random' or 'maglev'; null: the dataplane's default (--bpf-lb-algorithm). */
  readonly lbAlgorithm: 'random' | 'maglev' | null;
  /** externalTrafficPolicy Local on a Service reachable from outside (NodePort, LoadBalancer, or ExternalIPs). */
  readonly externalPolicyLocal: boolean;
  /** internalTrafficPolicy Local. */
  readonly internalPolicyLocal: boolean;
  /** Set only for LoadBalancer Services with externalTrafficPolicy Local. */
  readonly healthCheckNodePort: number | null;
  /** Trimmed CIDRs, both families (a frontend uses those of its own family). */
  readonly loadBalancerSourceRanges: readonly string[];
  /** spec.trafficDistribution, informational (selection follows the hints). */
  readonly trafficDistribution: string | null;

  /**
   * kube-proxy's CategorizeEndpoints results, computed per family and
   * concatenated (IPv4 first), each family sorted by ip then port:
   * clusterPolicyEndpoints: endpoints for Cluster policy (topology hints
   *   applied, serving-terminating fallback); empty when the port never
   *   uses Cluster policy (internalTrafficPolicy Local and not externally
   *   reachable).
   * localEndpoints: this node's ready endpoints, else its serving-
   *   terminating ones (no topology); empty when no Local policy is in use.
   * externalEndpoints: what traffic from outside the cluster to a NodePort,
   *   ExternalIP or LoadBalancer IP reaches: localEndpoints with
   *   externalTrafficPolicy Local, clusterPolicyEndpoints otherwise; empty
   *   when the port is not externally reachable.
   * allEndpoints: every endpoint reachable from this node under the port's
   *   policies (union of the cluster-policy and local sets).
   */
  readonly clusterPolicyEndpoints: readonly EndpointInfo[];
  readonly localEndpoints: readonly EndpointInfo[];
  readonly externalEndpoints: readonly EndpointInfo[];
  readonly allEndpoints: readonly EndpointInfo[];
  /** Some usable endpoint exists anywhere in the cluster, per family: false means REJECT. */
  readonly hasAnyEndpoints: PerFamily<boolean>;
  /** kube-proxy's UsesClusterEndpoints / UsesLocalEndpoints (true if so in any family). */
  readonly usesClusterEndpoints: boolean;
  readonly usesLocalEndpoints: boolean;
  /** The hint filter applied to clusterPolicyEndpoints, per family. */
  readonly topologyMode: PerFamily<TopologyMode>;
}

/** A ServicePortInfo as the SnapshotBuilder makes it (every field is required now; kept as a name). */
export type CompleteServicePortInfo = ServicePortInfo;

/** The fields the model derives: what a hand-made ServicePortSpec may leave out. */
export type DerivedServicePortKey =
  | 'clusterEndpoints'
  | 'nodePort'
  | 'externalIPs'
  | 'loadBalancerIPs'
  | 'sessionAffinity'
  | 'lbAlgorithm'
  | 'externalPolicyLocal'
  | 'internalPolicyLocal'
  | 'healthCheckNodePort'
  | 'loadBalancerSourceRanges'
  | 'trafficDistribution'
  | 'clusterPolicyEndpoints'
  | 'localEndpoints'
  | 'externalEndpoints'
  | 'allEndpoints'
  | 'hasAnyEndpoints'
  | 'usesClusterEndpoints'
  | 'usesLocalEndpoints'
  | 'topologyMode';

/**
 * A ServicePort described by hand (tests, tools): the derived fields may be
 * left out; completeServicePort() fills them in as the model would (a
 * ClusterIP port with Cluster policies and no affinity).
 */
export type ServicePortSpec = Omit<ServicePortInfo, DerivedServicePortKey> & Partial<Pick<ServicePortInfo, DerivedServicePortKey>>;

/** What one sync programs: every ServicePort, and which of them changed since the last sync. */
export interface ProxySnapshot {
  readonly nodeName: string;
  /** This node's Node spec.podCIDRs (detect-local-mode NodeCIDR); absent or empty when unknown. */
  readonly nodePodCIDRs?: readonly string[];
  readonly servicePorts: ReadonlyMap<string, ServicePortInfo>;
  /**
   * ids of ServicePorts added, changed or removed since the previous
   * snapshot the dataplane accepted (SnapshotBuilder.commit, after a
   * successful sync); 'all' for a full resync.
   */
  readonly changed: ReadonlySet<string> | 'all';
}
