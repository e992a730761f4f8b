// The contract between the sync runner and a dataplane (bpf, ipvs): hand it
// a ProxySnapshot, it programs the kernel and says what it did, or throws a
// DataplaneError. Nothing here knows which dataplane is behind it.

import type { ProxySnapshot } from '../model/types.ts';
import { SwitchyardError } from '../util/errors.ts';

/** One bad input field; the rest of the snapshot is still programmed. */
export interface Problem {
  /** ServicePortInfo.id the field belongs to. */
  readonly owner: string;
  /** Path of the field within that ServicePortInfo, e.g. "clusterEndpoints[2].ip". */
  readonly field: string;
  readonly message: string;
}

export interface SyncResult {
  /** Frontends whose kernel state this sync changed. */
  readonly frontendsChanged: number;
  /** Kernel operations (map updates/deletes, IPVS commands) issued. */
  readonly operations: number;
  /** Input problems: objects skipped or partly programmed. */
  readonly problems: readonly Problem[];
  readonly durationMs: number;
}

export interface Dataplane {
  /** "bpf" or "ipvs", for logs and metrics. */
  readonly name: string;
  /**
   * Programs the snapshot. Rejects with a DataplaneError only when it could
   * not (the kernel refused, or it was not started); bad input is reported
   * in `problems`.
   */
  sync(snapshot: ProxySnapshot): Promise<SyncResult>;
  /** Opens or adopts kernel state. Does no traffic-affecting change before the first sync. */
  start(signal: AbortSignal): Promise<void>;
  /** Releases handles; leaves programmed state in place (restart keeps traffic). */
  stop(): Promise<void>;
}

export type DataplaneErrorCode =
  /** sync() (or a kernel write) before start() succeeded. */
  | 'ERR_SY_DATAPLANE_NOT_STARTED'
  /** An option the dataplane cannot use, e.g. a node address of a family it does not program. */
  | 'ERR_SY_DATAPLANE_OPTION'
  /** The kernel refused an operation; `cause` is the native error (errno, code, syscall). */
  | 'ERR_SY_DATAPLANE_KERNEL'
  /** Another daemon held the pin directory's lock past the timeout (bpf/pinlock.ts). */
  | 'ERR_SY_DATAPLANE_PIN_LOCKED'
  /** A map of the previous layout could not be read or carried over (bpf/migrate.ts). */
  | 'ERR_SY_DATAPLANE_MIGRATION';

/** What a dataplane throws: which dataplane, what it was doing, and why ("bpf dataplane: update sy_svc4_v1 (3 entries): ..."). */
export class DataplaneError extends SwitchyardError {
  declare readonly code: DataplaneErrorCode;
  /** "bpf" or "ipvs". */
  readonly dataplane: string;
  /** What was being done: "sync", "load <object>", "update sy_svc4_v1 (3 entries)", "dump sy_backend4_v1". */
  readonly operation: string;

  constructor(code: DataplaneErrorCode, dataplane: string, operation: string, detail: string, options?: ErrorOptions) {
    super(code, `${dataplane} dataplane: ${operation}: ${detail}`, options);
    this.dataplane = dataplane;
    this.operation = operation;
  }

  /** The kernel refused `operation`: keeps the native error as `cause`, so its errno, code and syscall stay reachable. */
  static kernel(dataplane: string, operation: string, cause: Error): DataplaneError {
    return new DataplaneError('ERR_SY_DATAPLANE_KERNEL', dataplane, operation, cause.message, { cause });
  }
}

// ---------------------------------------------------------------------------
// Traffic counters as a dataplane reports them for metrics (ops/metrics.ts).

/**
 * Cumulative traffic of one Service port through one kind of frontend in
 * one family (the datapath counts per frontend address; addresses of one
 * kind are summed here), as the datapath counts it.
 */
export interface ServiceTraffic {
  readonly namespace: string;
  readonly service: string;
  /** The Service port's name ("" for an unnamed port). */
  readonly portName: string;
  readonly protocol: string;
  /** Frontend kind: clusterIP, nodePort, externalIP, loadBalancer. */
  readonly frontend: string;
  readonly ipFamily: string;
  /** Client -> Service (original direction). */
  readonly packets: number;
  readonly bytes: number;
  /** Backend -> client (reply direction). */
  readonly replyPackets: number;
  readonly replyBytes: number;
  readonly connections: number;
}

/** Cumulative traffic of one endpoint (address:port, protocol), summed over every Service port that uses it. */
export interface BackendTraffic {
  /** "10.244.1.5:8080", "[fd00:10:244::5]:8080". */
  readonly endpoint: string;
  readonly protocol: string;
  readonly packets: number;
  readonly bytes: number;
  readonly replyPackets: number;
  readonly replyBytes: number;
  readonly connections: number;
}

export interface TrafficReport {
  readonly services: readonly ServiceTraffic[];
  readonly backends: readonly BackendTraffic[];
}
