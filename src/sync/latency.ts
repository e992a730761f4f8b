// Network programming latency, per Service: when a change to a Service was
// first seen by the caches and when a sync that covered it succeeded. This
// is the raw material for kube-proxy's
// network_programming_duration_seconds; the metrics layer reads samples
// through onSample (or last()) and owns histograms and naming.

export interface LatencySample {
  /** "namespace/name" */
  readonly service: string;
  readonly seenAt: number;
  readonly programmedAt: number;
  /** programmedAt - seenAt, in milliseconds. */
  readonly ms: number;
  /**
   * Wall-clock time from the EndpointSlice's last-change-trigger-time to
   * programmed: kube-proxy's network_programming_duration_seconds. Absent when
   * no changed slice of the Service carried the annotation.
   */
  readonly networkProgrammingMs?: number;
}

export interface ProgrammingLatencyOptions {
  readonly onSample?: (sample: LatencySample) => void;
  /** Services whose last sample is remembered (least recently programmed dropped first); default 50,000. */
  readonly maxServices?: number;
}

export class ProgrammingLatency {
  readonly #onSample: (sample: LatencySample) => void;
  readonly #maxServices: number;
  readonly #last = new Map<string, LatencySample>();

  constructor(options: ProgrammingLatencyOptions = {}) {
    this.#onSample = options.onSample ?? (() => {});
    this.#maxServices = options.maxServices ?? 50_000;
  }

  /**
   * Records that the changes first seen at `seenAt` (per Service) were
   * programmed at `programmedAt`; `triggered` (wall ms, from EndpointSlice
   * annotations) and `wallNow` give the network programming duration.
   */
  programmed(seenAt: ReadonlyMap<string, number>, programmedAt: number, triggered?: ReadonlyMap<string, number>, wallNow: number = Date.now()): void {
    for (const [service, seen] of seenAt) {
      const trig = triggered?.get(service);
      const sample: LatencySample = {
        service,
        seenAt: seen,
        programmedAt,
        ms: Math.max(0, programmedAt - seen),
        ...(trig === undefined ? {} : { networkProgrammingMs: Math.max(0, wallNow - trig) }),
      };
      this.#last.delete(service); // re-insert: Map order = least recently programmed first
      this.#last.set(service, sample);
      this.#onSample(sample);
    }
    for (const oldest of this.#last.keys()) {
      if (this.#last.size <= this.#maxServices) break;
      this.#last.delete(oldest);
    }
  }

  /** The latest sample for a Service. */
  last(service: string): LatencySample | undefined {
    return this.#last.get(service);
  }

  /** Drops the record of a Service that is gone. */
  forget(service: string): void {
    this.#last.delete(service);
  }
}
