// What `switchyard status` reports, in plain data and independent of the
// dataplane: frontends (address, port, protocol) with what each kind of
// client gets (action, backends, masquerade), the dataplane's tables and how
// full they are, and where its programs are attached. A dataplane's reader
// fills it from the kernel, never from a daemon's memory: the BPF one from
// the pinned maps and tc (bpf/status.ts); the IPVS one, when it exists, from
// its virtual and real servers (weights, quiescent servers as terminating)
// and its nftables table. The CLI prints it as a table or as the JSON
// document STATUS_SCHEMA names (README "switchyard status"): keep its field
// names and meanings stable; add fields, do not rename them.

import type { IPFamily, Protocol } from '../model/types.ts';
import { parseIP } from '../util/ip.ts';

/** The `schema` field of the JSON document. Bump only for an incompatible change. */
export const STATUS_SCHEMA = 'switchyard.status/v1';

/**
 * What a frontend is, as far as the dataplane's tables tell. "External" is an
 * ExternalIP or a LoadBalancer ingress IP that the tables do not tell apart
 * (BPF: only one with loadBalancerSourceRanges is known to be LoadBalancer).
 */
export type FrontendKind = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'External';

/** What a new connection gets: translated to a backend, refused (TCP reset / ICMP unreachable), or dropped. */
export type StatusAction = 'DNAT' | 'REJECT' | 'DROP';

/** Per-Service or per-backend traffic counters, where the dataplane keeps them; null elsewhere. */
export interface TrafficCount {
  readonly packets: number;
  readonly bytes: number;
  readonly connections: number;
}

export interface BackendStatus {
  readonly address: string;
  readonly port: number;
  /** The backend runs on this node; null when the dataplane does not record it. */
  readonly local: boolean | null;
  /** Scheduler weight (IPVS); null: every backend is equally likely (BPF). */
  readonly weight: number | null;
  /** A terminating endpoint (IPVS: weight 0 while connections drain); null when the dataplane does not record it. */
  readonly terminating: boolean | null;
  readonly counters: TrafficCount | null;
}

/** What one kind of client gets at a frontend. */
export interface ScopeStatus {
  readonly action: StatusAction;
  /** Connections are masqueraded (SNAT to the node address). */
  readonly masquerade: boolean;
  /** In the dataplane's order (BPF: slot order). Empty unless action is DNAT. */
  readonly backends: readonly BackendStatus[];
}

export interface FrontendStatus {
  readonly family: IPFamily;
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly kind: FrontendKind;
  /** The dataplane's id of the frontend (BPF svc_id); null when it has none. */
  readonly id: number | null;
  /**
   * Clients in pods on this node (`internal`) and everything else
   * (`external`: other nodes, outside the cluster). `sharedScope`: both use
   * one entry (the backends are the same; only masquerade may differ).
   */
  readonly internal: ScopeStatus;
  readonly external: ScopeStatus;
  readonly sharedScope: boolean;
  /** Derived: "Local" when external clients keep their address or are dropped for want of a local backend; null for ClusterIPs and when it cannot tell (REJECT). */
  readonly externalTrafficPolicy: 'Cluster' | 'Local' | null;
  /** loadBalancerSourceRanges as programmed (network/bits, sorted); empty: no filter. */
  readonly sourceRanges: readonly string[];
  /** sessionAffinity ClientIP as programmed (the master's timeout); null: none. */
  readonly affinity: { readonly timeoutSeconds: number } | null;
  readonly counters: TrafficCount | null;
  /** Damage found while reading it back (a slot missing, a backend id with no backend). */
  readonly problems: readonly string[];
}

export interface TableUsage {
  /** The table's name (BPF: the pinned map). */
  readonly name: string;
  readonly entries: number;
  readonly capacity: number;
}

export interface AttachmentStatus {
  readonly interface: string;
  readonly hook: 'ingress' | 'egress';
  /** The program's kernel name; null when it could not be read. */
  readonly program: string | null;
  readonly programId: number;
}

export interface DataplaneStatus {
  readonly schema: typeof STATUS_SCHEMA;
  readonly dataplane: 'bpf' | 'ipvs';
  /** Where the state was read from (BPF: the pin directory). */
  readonly source: string;
  /** The table layout version read (BPF: 2). */
  readonly layout: number;
  /** Pids of running daemons using `source` (BPF: holders of the pin directory's lock, as this PID namespace sees them). */
  readonly daemonPids: readonly number[];
  /** Sorted: ClusterIP, NodePort, LoadBalancer, External; then family, address, port, protocol. */
  readonly frontends: readonly FrontendStatus[];
  readonly tables: readonly TableUsage[];
  readonly attachments: readonly AttachmentStatus[];
  /** BPF: the cgroup socket hooks (host-network clients) whose link is pinned, by attach type (connect4, ...); empty: none. */
  readonly socketHooks: readonly string[];
  /** One line each: what looks wrong or unfinished (left-over entries, an unfinished migration, a missing table). */
  readonly notes: readonly string[];
}

const KIND_ORDER: Readonly<Record<FrontendKind, number>> = { ClusterIP: 0, NodePort: 1, LoadBalancer: 2, External: 3 };

/** The order of DataplaneStatus.frontends. */
export function compareFrontends(a: FrontendStatus, b: FrontendStatus): number {
  return (
    KIND_ORDER[a.kind] - KIND_ORDER[b.kind] ||
    (a.family === b.family ? 0 : a.family === 'IPv4' ? -1 : 1) ||
    compareAddresses(a.address, b.address) ||
    a.port - b.port ||
    compareText(a.protocol, b.protocol)
  );
}

/** Numeric order within a family (10.96.0.9 before 10.96.0.10). */
function compareAddresses(a: string, b: string): number {
  const x = parseIP(a, 'decimal')?.bytes;
  const y = parseIP(b, 'decimal')?.bytes;
  if (x === undefined || y === undefined || x.length !== y.length) return compareText(a, b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  return 0;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
