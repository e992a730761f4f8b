// The bounded-frequency sync runner, after kube-proxy's
// pkg/proxy/runner/bounded_frequency_runner.go:
// - run() asks for a sync; requests arriving while one is waiting or in
//   progress coalesce into one sync;
// - at least minSyncPeriod passes between the end of one sync and the start
//   of the next;
// - a full sync (`{ full: true }`) happens first and then at least every
//   syncPeriod, whether or not anything asked for it;
// - a sync that throws or rejects is retried after a backoff (doubling from
//   retryMin up to retryMax); a run() request in the meantime retries sooner,
//   as in kube-proxy, still no sooner than minSyncPeriod. A failed full sync
//   is retried as a full sync.
// The runner never holds changes itself: the sync function reads them when it
// runs and commits them only on success (see pipeline.ts), so a failed sync
// loses nothing. Nothing runs before the first run() (call it once the
// sources are synced), then timers keep it going until stop().

import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import { SwitchyardError } from '../util/errors.ts';
import { createLogger, type Logger } from '../util/log.ts';

export type SyncReason = 'requested' | 'periodic' | 'retry';

export interface SyncRequest {
  /** Rebuild and reprogram everything, not only what changed. */
  readonly full: boolean;
  readonly reason: SyncReason;
}

export type SyncFunction = (request: SyncRequest) => Promise<void> | void;

export interface SyncResult {
  readonly request: SyncRequest;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly error: unknown;
  /** Consecutive failures including this one (0 on success). */
  readonly failures: number;
}

export interface SyncRunnerOptions {
  readonly sync: SyncFunction;
  /** kube-proxy --iptables-min-sync-period / minSyncPeriod; default 1000 ms. */
  readonly minSyncPeriodMs?: number;
  /** kube-proxy --iptables-sync-period / syncPeriod; default 30000 ms. */
  readonly syncPeriodMs?: number;
  /** First retry delay after a failure; default max(minSyncPeriod, 1000 ms). */
  readonly retryMinMs?: number;
  /** Longest retry delay; default syncPeriod. */
  readonly retryMaxMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Called after every attempt, for metrics. */
  readonly onResult?: (result: SyncResult) => void;
}

export class SyncRunner {
  readonly #sync: SyncFunction;
  readonly #minPeriod: number;
  readonly #period: number;
  readonly #retryMin: number;
  readonly #retryMax: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #onResult: (result: SyncResult) => void;

  #started = false;
  #stopped = false;
  #requested = false;
  #needFull = true;
  #inFlight: Promise<void> | null = null;
  #timer: TimerHandle | null = null;
  #lastEnd: number | null = null;
  #lastFullStart: number | null = null;
  #retryAt: number | null = null;
  #failures = 0;

  constructor(options: SyncRunnerOptions) {
    this.#sync = options.sync;
    this.#minPeriod = options.minSyncPeriodMs ?? 1000;
    this.#period = options.syncPeriodMs ?? 30_000;
    if (this.#period < this.#minPeriod) throw new RangeError('SyncRunner: syncPeriod must be >= minSyncPeriod');
    this.#retryMin = options.retryMinMs ?? Math.max(this.#minPeriod, 1000);
    this.#retryMax = Math.max(this.#retryMin, options.retryMaxMs ?? this.#period);
    this.#clock = options.clock ?? systemClock();
    this.#log = options.logger ?? createLogger('sync');
    this.#onResult = options.onResult ?? (() => {});
  }

  /** Consecutive failed attempts so far (0 after a success). */
  get failures(): number {
    return this.#failures;
  }

  start(signal?: AbortSignal): void {
    if (this.#started) throw new SwitchyardError('ERR_SY_ALREADY_STARTED', 'SyncRunner already started');
    this.#started = true;
    if (signal?.aborted) {
      void this.stop();
      return;
    }
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
    this.#schedule();
  }

  /** Requests a sync as soon as minSyncPeriod allows; cheap to call often. */
  run(): void {
    if (this.#stopped) return;
    this.#requested = true;
    this.#schedule();
  }

  /** Stops timers; resolves when a sync in progress has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clearTimer();
    await this.#inFlight;
  }

  #schedule(): void {
    if (!this.#started || this.#stopped || this.#inFlight) return;
    this.#clearTimer();
    const due = this.#nextDue();
    if (due === null) return;
    this.#timer = this.#clock.setTimeout(() => this.#fire(), due - this.#clock.now());
  }

  /** When the next sync should start, or null if nothing is due. */
  #nextDue(): number | null {
    const now = this.#clock.now();
    const candidates: number[] = [];
    if (this.#requested) candidates.push(now);
    if (this.#retryAt !== null) candidates.push(this.#retryAt);
    if (this.#lastFullStart !== null) candidates.push(this.#lastFullStart + this.#period);
    if (candidates.length === 0) return null;
    const earliest = this.#lastEnd === null ? now : this.#lastEnd + this.#minPeriod;
    return Math.max(Math.min(...candidates), earliest);
  }

  #fire(): void {
    this.#timer = null;
    if (this.#stopped || this.#inFlight) return;
    const request = this.#nextRequest();
    this.#requested = false;
    this.#retryAt = null;
    this.#inFlight = this.#attempt(request).finally(() => {
      this.#inFlight = null;
      this.#schedule();
    });
  }

  #nextRequest(): SyncRequest {
    const now = this.#clock.now();
    const periodic = this.#lastFullStart !== null && now >= this.#lastFullStart + this.#period;
    const full = this.#needFull || periodic;
    const reason: SyncReason = this.#requested ? 'requested' : this.#retryAt !== null ? 'retry' : 'periodic';
    return { full, reason };
  }

  async #attempt(request: SyncRequest): Promise<void> {
    const startedAt = this.#clock.now();
    let error: unknown = null;
    try {
      await this.#sync(request);
    } catch (err) {
      error = err ?? new SwitchyardError('ERR_SY_SYNC_FAILED', 'sync failed without an error');
    }
    const endedAt = this.#clock.now();
    this.#lastEnd = endedAt;
    if (error === null) this.#succeeded(request, startedAt);
    else this.#failed(request, endedAt, error);
    this.#onResult({ request, startedAt, endedAt, error, failures: this.#failures });
  }

  #succeeded(request: SyncRequest, startedAt: number): void {
    this.#failures = 0;
    if (request.full) {
      this.#needFull = false;
      this.#lastFullStart = startedAt;
    }
  }

  #failed(request: SyncRequest, endedAt: number, error: unknown): void {
    this.#failures++;
    if (request.full) this.#needFull = true;
    const delay = Math.min(this.#retryMin * 2 ** (this.#failures - 1), this.#retryMax);
    this.#retryAt = endedAt + delay;
    this.#log.error('sync failed; will retry', { full: request.full, failures: this.#failures, retryInMs: delay, error });
  }

  #clearTimer(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
  }
}
