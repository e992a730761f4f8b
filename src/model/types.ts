// The service model: what the control plane has decided, per ServicePort,
// independent of any dataplane. Sources fill caches, the model turns caches
// into a ProxySnapshot, and each dataplane compiles that snapshot.
// Nothing here imports a dataplane.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type IPFamily = 'IPv4' | 'IPv6';

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
   * Every usable endpoint for this port, sorted by ip (string order) then
   * port, one per ip:port. Only families the SnapshotBuilder is configured
   * for (IPv4 by default): with dual-stack on, pair endpoints with
   * clusterIPs of the same family.
   */
  readonly endpoints: readonly EndpointInfo[];
  /**
   * The endpoints cluster traffic to a ClusterIP is sent to (kube-proxy's
   * endpoint selection, src/model/topology.ts): the ready ones, or, when
   * none is ready, the serving-and-terminating ones; decided per family.
   */
  readonly clusterEndpoints: readonly EndpointInfo[];
}

/** What one sync programs: every ServicePort, and which of them changed since the last sync. */
export interface ProxySnapshot {
  readonly nodeName: string;
  readonly servicePorts: ReadonlyMap<string, ServicePortInfo>;
  /**
   * ids of ServicePorts added, changed or removed since the previous
   * snapshot the dataplane accepted (SnapshotBuilder.commit, after a
   * successful sync); 'all' for a full resync.
   */
  readonly changed: ReadonlySet<string> | 'all';
}
