// The BPF dataplane's state in plain data: what compile() wants programmed
// (DesiredState), what is programmed now (ProgrammedState, read back from the
// pinned maps at start and kept up to date by apply), and the ordered
// operations diff() produces to go from one to the other (Plan).
// Field meanings follow bpf/include/sy_maps.h.

import type { Protocol } from '../../model/types.ts';

/** "10.96.0.10:80/TCP" */
export type FrontendKey = string;
/** "10.244.1.10:8080/TCP" */
export type BackendKey = string;

export interface L4Addr {
  readonly addr: string; // dotted IPv4
  readonly port: number;
  readonly proto: Protocol;
}

export interface DesiredService {
  readonly key: FrontendKey;
  readonly frontend: L4Addr;
  /** Sorted by BackendKey, no duplicates. */
  readonly backends: readonly L4Addr[];
  /** SY_SVC_F_* */
  readonly flags: number;
  /** ServicePortInfo.id that produced this frontend, for messages and status. */
  readonly owner: string;
}

export interface DesiredState {
  readonly services: ReadonlyMap<FrontendKey, DesiredService>;
}

export interface ProgrammedService {
  readonly frontend: L4Addr;
  readonly svcId: number;
  readonly gen: 0 | 1;
  readonly flags: number;
  /** backend id per slot, slot 1 first. */
  readonly backendIds: readonly number[];
}

export interface ProgrammedBackend {
  readonly id: number;
  readonly backend: L4Addr;
}

export interface ProgrammedState {
  readonly services: ReadonlyMap<FrontendKey, ProgrammedService>;
  readonly backends: ReadonlyMap<BackendKey, ProgrammedBackend>;
}

/** Key of sy_svc4_v1 in plain data. */
export interface SvcKey {
  readonly addr: string;
  readonly port: number;
  readonly proto: Protocol;
  readonly gen: 0 | 1;
  readonly slot: number;
}

/** Value of sy_svc4_v1 in plain data. */
export interface SvcValue {
  readonly backendId: number;
  readonly count: number;
  readonly gen: 0 | 1;
  readonly flags: number;
  readonly svcId: number;
}

export type Op =
  | { readonly kind: 'backend-update'; readonly id: number; readonly backend: L4Addr }
  | { readonly kind: 'backend-delete'; readonly id: number }
  | { readonly kind: 'svc-update'; readonly key: SvcKey; readonly value: SvcValue }
  | { readonly kind: 'svc-delete'; readonly key: SvcKey };

/**
 * Operations in the order they must reach the kernel. Each phase is one
 * batch per map; phases run one after the other:
 *   1. backend-update   (backends exist before any slot points at them)
 *   2. svc-update slots (the new generation, invisible until its master flips)
 *   3. svc-update masters (flip: the Service now uses the new generation)
 *   4. svc-delete       (old generation's slots; masters of removed Services)
 *   5. backend-delete   (backends no slot points at any more)
 */
export interface Plan {
  readonly phases: readonly (readonly Op[])[];
  /** The programmed state once every phase has been applied. */
  readonly next: ProgrammedState;
  /** Frontends this plan touches, for logs and tests. */
  readonly touched: readonly FrontendKey[];
}
