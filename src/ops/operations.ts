// What the daemon reports about itself, wired to the sync pipeline in one
// place so that cli/run.ts only forwards events:
//
//   change reaches the caches  -> changeSeen(kind)   metrics: *_changes_total
//   a sync is asked for         -> queued()          health: queued update; metrics: last queued time
//   a sync attempt ends         -> attempt(result)   health: updated on success; metrics: durations,
//                                                    last sync, failures; Event on the first failure
//                                                    of a streak and on a full BPF map
//   a sync programmed snapshot  -> programmed(snap)  per-Service health checks; no-local-endpoints
//   a latency sample            -> latency(sample)   network programming duration
//
// start() opens the health and metrics servers (kube-proxy's
// --bind-address-hard-fail: a port that cannot be bound ends the daemon,
// else it is logged and retried every 5 s); stop() closes everything.

import type { ProxySnapshot } from '../model/types.ts';
import type { SyncResult as AttemptResult } from '../sync/runner.ts';
import type { LatencySample } from '../sync/latency.ts';
import { SwitchyardError } from '../util/errors.ts';
import { familyOf } from '../util/ip.ts';
import { nullLogger, type Logger } from '../util/log.ts';
import type { EventRecorder } from './events.ts';
import { isMapFull } from './events.ts';
import type { HealthFamily, ProxyHealth } from './health.ts';
import type { Listening } from './http.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { ServiceHealthServer } from './service-health.ts';

export interface OperationsOptions {
  readonly families: readonly HealthFamily[];
  readonly health: ProxyHealth;
  readonly metrics: ProxyMetrics;
  readonly serviceHealth: ServiceHealthServer;
  readonly events: EventRecorder;
  /** "" disables a server (kube-proxy: --healthz-bind-address="" / --metrics-bind-address=""). */
  readonly healthzBindAddress: string;
  readonly metricsBindAddress: string;
  readonly bindAddressHardFail: boolean;
  readonly log?: Logger;
  /** Delay between two attempts to bind a server's port; default 5 s (kube-proxy's). */
  readonly rebindMs?: number;
}

export class Operations {
  readonly #o: OperationsOptions;
  readonly #log: Logger;
  readonly #servers: Listening[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;

  constructor(options: OperationsOptions) {
    this.#o = options;
    this.#log = options.log ?? nullLogger();
  }

  /** Opens the servers; rejects (ERR_SY_BIND) only with bindAddressHardFail, having closed what it opened. */
  async start(): Promise<void> {
    const { health, metrics } = this.#o;
    try {
      await this.#serve('healthz', this.#o.healthzBindAddress, () => health.serve(this.#o.healthzBindAddress, metrics));
      await this.#serve('metrics', this.#o.metricsBindAddress, () => metrics.serve(this.#o.metricsBindAddress));
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await Promise.all(this.#servers.splice(0).map((s) => s.close()));
    await this.#o.serviceHealth.close();
    await this.#o.events.flush();
  }

  changeSeen(kind: string): void {
    if (kind === 'Service' || kind === 'EndpointSlice') this.#o.metrics.changeSeen(kind);
  }

  queued(): void {
    this.#o.health.queuedUpdate(this.#o.families);
    this.#o.metrics.queued();
  }

  attempt(r: AttemptResult): void {
    const ok = r.error === null;
    this.#o.metrics.syncAttempt({ full: r.request.full, seconds: Math.max(0, r.endedAt - r.startedAt) / 1000, ok });
    if (ok) {
      this.#o.health.updated(this.#o.families);
      this.#log.verbose('sync complete', { full: r.request.full, reason: r.request.reason, elapsedMs: Math.round(r.endedAt - r.startedAt) });
      return;
    }
    const message = r.error instanceof Error ? r.error.message : String(r.error);
    if (isMapFull(r.error)) {
      this.#o.events.record({
        type: 'Warning',
        reason: 'BPFMapFull',
        action: 'Sync',
        note: `a BPF map is full; Services stay partly programmed until it has room: ${message}`,
      });
    }
    if (r.failures === 1) {
      this.#o.events.record({ type: 'Warning', reason: 'SyncFailed', action: 'Sync', note: `programming Services failed (retrying with backoff): ${message}` });
    }
  }

  /** After a successful sync that built a snapshot. */
  programmed(snapshot: ProxySnapshot): void {
    void this.#o.serviceHealth.fromSnapshot(snapshot);
    for (const f of this.#o.families) {
      const { internal, external } = noLocalEndpoints(snapshot, f);
      this.#o.metrics.noLocalEndpoints(f, internal, external);
    }
  }

  latency(sample: LatencySample): void {
    if (sample.networkProgrammingMs === undefined) return;
    for (const f of this.#o.families) this.#o.metrics.networkProgrammed(f, sample.networkProgrammingMs / 1000);
  }

  /** The proxy runs another mode than asked for (auto, or a mode this kernel cannot run). */
  modeFallback(wanted: string, using: string, why: string): void {
    this.#o.events.record({
      type: 'Warning',
      reason: 'ProxyModeFallback',
      action: 'StartProxy',
      note: `proxy mode ${wanted} unavailable, using ${using}: ${why}`,
    });
  }

  async #serve(what: string, address: string, open: () => Promise<Listening>): Promise<void> {
    if (address === '') return;
    try {
      const s = await open();
      this.#servers.push(s);
      this.#log.info(`serving ${what}`, { address: s.address });
    } catch (err) {
      const error = err instanceof Error ? err : new SwitchyardError('ERR_SY_BIND', String(err));
      const message = `cannot serve ${what} on ${address}: ${error.message}`;
      if (this.#o.bindAddressHardFail) throw new SwitchyardError('ERR_SY_BIND', `${message} (--bind-address-hard-fail is set)`, { cause: error });
      this.#log.error(`${message}; retrying every ${(this.#o.rebindMs ?? 5000) / 1000} s`);
      this.#o.events.record({ type: 'Warning', reason: 'FailedToStartProxierHealthcheck', action: 'StartProxy', note: message });
      this.#retry(what, address, open);
    }
  }

  #retry(what: string, address: string, open: () => Promise<Listening>): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (this.#stopped) return;
      open().then(
        (s) => {
          if (this.#stopped) return void s.close();
          this.#servers.push(s);
          this.#log.info(`serving ${what}`, { address: s.address });
        },
        () => this.#retry(what, address, open),
      );
    }, this.#o.rebindMs ?? 5000);
    t.unref();
    this.#timers.add(t);
  }
}

/**
 * kube-proxy's no_local_endpoints counts for one family: Service ports with
 * a Local policy whose traffic is dropped because this node has no local
 * endpoint although endpoints exist elsewhere (none at all is a REJECT, not
 * counted).
 */
export function noLocalEndpoints(snapshot: ProxySnapshot, family: HealthFamily): { internal: number; external: number } {
  let internal = 0;
  let external = 0;
  for (const sp of snapshot.servicePorts.values()) {
    if (!sp.hasAnyEndpoints?.[family]) continue;
    if (!sp.internalPolicyLocal && !sp.externalPolicyLocal) continue;
    const local = (sp.localEndpoints ?? []).some((e) => familyOf(e.ip) === family);
    if (local) continue;
    if (sp.internalPolicyLocal) internal++;
    if (sp.externalPolicyLocal) external++;
  }
  return { internal, external };
}
