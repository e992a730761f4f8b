// The contract between the sync runner and a dataplane (bpf, ipvs): hand it
// a ProxySnapshot, it programs the kernel and says what it did. Nothing here
// knows which dataplane is behind it.

import type { ProxySnapshot } from '../model/types.ts';

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
   * Programs the snapshot. Rejects (with a typed error carrying a code)
   * only when the kernel refused; bad input is reported in `problems`.
   */
  sync(snapshot: ProxySnapshot): Promise<SyncResult>;
  /** Opens or adopts kernel state. Does no traffic-affecting change before the first sync. */
  start(signal: AbortSignal): Promise<void>;
  /** Releases handles; leaves programmed state in place (restart keeps traffic). */
  stop(): Promise<void>;
}
