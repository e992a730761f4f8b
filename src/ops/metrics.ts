// Prometheus metrics, served on --metrics-bind-address (default
// 127.0.0.1:10249) with kube-proxy's paths: /metrics, /proxyMode (the mode's
// name as text) and /healthz ("ok").
//
// kube-proxy's metrics keep their names, types, help, labels and buckets
// (pkg/proxy/metrics), so a dashboard or alert written for kube-proxy reads
// Switchyard unchanged. One exception, on purpose:
// kubeproxy_sync_proxy_rules_no_local_endpoints_total is a gauge in
// kube-proxy, and `promtool check metrics` rejects a gauge whose name ends
// in _total; it is exposed as untyped (same name, labels and values; queries
// do not see the difference).
//
// Switchyard's own are switchyard_*: sync failures, the dataplane in use and
// whether it is started, and, through the DataplaneStats interface a
// dataplane may implement, BPF program attach state, map fill and capacity,
// and per-Service and per-backend traffic counters. Nothing is reported that
// no dataplane measured: a collector without a source exports no series.
//
// A Registry per instance (no prom-client global), plus prom-client's
// process_* and nodejs_* default metrics in it (less three nodejs_*_total
// gauges that promtool rejects).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { HealthFamily, HealthObserver } from './health.ts';
import { listenHttp, notFound, parseBindAddress, pathOf, type Listen, type Listening } from './http.ts';
import type { BackendTraffic, ServiceTraffic, TrafficReport } from '../dataplane/types.ts';

export type { BackendTraffic, ServiceTraffic, TrafficReport } from '../dataplane/types.ts';

/** prometheus.ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

function linearBuckets(start: number, width: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + width * i);
}

/** kube-proxy's sync latency buckets: 1 ms doubling 15 times (up to ~16 s). */
export const SYNC_BUCKETS: readonly number[] = exponentialBuckets(0.001, 2, 15);
/** kube-proxy's network programming buckets: 0, 0.25, 0.5, 1..59 s, 60..115 s by 5, 120..300 s by 30. */
export const NETWORK_PROGRAMMING_BUCKETS: readonly number[] = [
  0,
  ...linearBuckets(0.25, 0.25, 2),
  ...linearBuckets(1, 1, 59),
  ...linearBuckets(60, 5, 12),
  ...linearBuckets(120, 30, 7),
];

/** A map's fill as a dataplane reads it. */
export interface MapUsage {
  readonly map: string;
  readonly entries: number;
  readonly capacity: number;
}

/** One program attachment (or the wish for one) as a dataplane knows it. */
export interface ProgramAttachment {
  readonly program: string;
  /** Interface name, or "cgroup" for a cgroup hook. */
  readonly attachPoint: string;
  /** "ingress", "egress", "connect4", ... */
  readonly hook: string;
  readonly attached: boolean;
}

/**
 * What a dataplane may report for metrics. Every method is optional; each
 * may read the kernel (they run once per scrape).
 */
export interface DataplaneStats {
  mapUsage?(): readonly MapUsage[] | Promise<readonly MapUsage[]>;
  programAttachments?(): readonly ProgramAttachment[] | Promise<readonly ProgramAttachment[]>;
  trafficCounters?(): TrafficReport | Promise<TrafficReport>;
  /** The datapath's event counters by name (BPF: sy_stats_v2), null before start. */
  datapathEvents?(): Promise<Readonly<Record<string, bigint>> | null>;
}

/** The DataplaneStats methods an object (a dataplane) has, or undefined if it has none. */
export function dataplaneStatsOf(dataplane: object): DataplaneStats | undefined {
  const d = dataplane as Record<string, unknown>;
  const names = ['mapUsage', 'programAttachments', 'trafficCounters', 'datapathEvents'] as const;
  const present = names.filter((n) => typeof d[n] === 'function');
  if (present.length === 0) return undefined;
  const stats: Record<string, unknown> = {};
  for (const n of present) stats[n] = (d[n] as () => unknown).bind(dataplane);
  return stats as DataplaneStats;
}

/** Pending and cumulative Service and EndpointSlice changes (the change tracker's). */
export interface ChangeCounts {
  readonly servicesPending: number;
  readonly endpointsPending: number;
}

export interface ProxyMetricsOptions {
  /** The families the proxy programs; each labels its own series. */
  readonly families: readonly HealthFamily[];
  /** What /proxyMode answers: "bpf" or "ipvs". */
  readonly proxyMode: string;
  /** Wall clock, epoch ms. */
  readonly now?: () => number;
  /** prom-client's process_* and nodejs_* metrics; default true. */
  readonly defaultMetrics?: boolean;
  readonly pending?: () => ChangeCounts;
}

/** A gauge exposed with TYPE untyped (see the header). */
class UntypedGauge<T extends string> extends Gauge<T> {
  override async get(): Promise<MetricObjectWithValues<MetricValue<T>>> {
    const m = await super.get();
    return { ...m, type: 'untyped' as unknown as MetricObjectWithValues<MetricValue<T>>['type'] };
  }
}

export class ProxyMetrics implements HealthObserver {
  readonly registry = new Registry();
  readonly proxyMode: string;
  readonly #families: readonly HealthFamily[];
  readonly #now: () => number;
  #stats: DataplaneStats | undefined;

  readonly #syncDuration: Histogram<'ip_family'>;
  readonly #syncFull: Histogram<'ip_family'>;
  readonly #syncPartial: Histogram<'ip_family'>;
  readonly #networkProgramming: Histogram<'ip_family'>;
  readonly #lastSync: Gauge<'ip_family'>;
  readonly #lastQueued: Gauge<'ip_family'>;
  readonly #endpointChangesTotal: Counter;
  readonly #serviceChangesTotal: Counter;
  readonly #noLocal: Gauge<'ip_family' | 'traffic_policy'>;
  readonly #healthz: Counter<'code'>;
  readonly #livez: Counter<'code'>;
  readonly #conntrackDuration: Histogram<'ip_family'>;
  readonly #conntrackDeleted: Counter<'ip_family'>;
  readonly #syncFailures: Counter<'full'>;
  readonly #ctGcPasses: Counter;
  readonly #ctGcScanned: Counter;
  readonly #ctGcDeleted: Counter;
  readonly #ctGcDuration: Gauge;
  readonly #dataplaneStarted: Gauge<'mode'>;

  constructor(options: ProxyMetricsOptions) {
    const registers = [this.registry];
    this.proxyMode = options.proxyMode;
    this.#families = options.families;
    this.#now = options.now ?? Date.now;
    const fam = ['ip_family'] as const;
    const hist = (name: string, help: string, buckets: readonly number[]) => new Histogram({ name, help, labelNames: fam, buckets: [...buckets], registers });

    this.#syncDuration = hist('kubeproxy_sync_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds', SYNC_BUCKETS);
    this.#syncFull = hist('kubeproxy_sync_full_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for full resyncs', SYNC_BUCKETS);
    this.#syncPartial = hist('kubeproxy_sync_partial_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for partial resyncs', SYNC_BUCKETS);
    this.#networkProgramming = hist(
      'kubeproxy_network_programming_duration_seconds',
      'In Cluster Network Programming Latency in seconds',
      NETWORK_PROGRAMMING_BUCKETS,
    );
    this.#lastSync = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      help: 'The last time proxy rules were successfully synced',
      labelNames: fam,
      registers,
    });
    this.#lastQueued = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
      help: 'The last time a sync of proxy rules was queued',
      labelNames: fam,
      registers,
    });
    const pending = options.pending;
    new Gauge({
      name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
      help: 'Pending proxy rules Endpoint changes',
      registers,
      collect() {
        if (pending) this.set(pending().endpointsPending);
      },
    });
    this.#endpointChangesTotal = new Counter({
      name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total',
      help: 'Cumulative proxy rules Endpoint changes',
      registers,
    });
    new Gauge({
      name: 'kubeproxy_sync_proxy_rules_service_changes_pending',
      help: 'Pending proxy rules Service changes',
      registers,
      collect() {
        if (pending) this.set(pending().servicesPending);
      },
    });
    this.#serviceChangesTotal = new Counter({
      name: 'kubeproxy_sync_proxy_rules_service_changes_total',
      help: 'Cumulative proxy rules Service changes',
      registers,
    });
    this.#noLocal = new UntypedGauge({
      name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
      help: 'Number of services with a Local traffic policy and no endpoints',
      labelNames: ['ip_family', 'traffic_policy'],
      registers,
    });
    this.#healthz = new Counter({ name: 'kubeproxy_proxy_healthz_total', help: 'Cumulative proxy healthz HTTP status', labelNames: ['code'], registers });
    this.#livez = new Counter({ name: 'kubeproxy_proxy_livez_total', help: 'Cumulative proxy livez HTTP status', labelNames: ['code'], registers });
    this.#conntrackDuration = hist('kubeproxy_conntrack_reconciler_sync_duration_seconds', 'ReconcileConntrackFlowsLatency latency in seconds', SYNC_BUCKETS);
    this.#conntrackDeleted = new Counter({
      name: 'kubeproxy_conntrack_reconciler_deleted_entries_total',
      help: 'Cumulative conntrack flows deleted by conntrack reconciler',
      labelNames: fam,
      registers,
    });

    this.#ctGcPasses = new Counter({
      name: 'switchyard_conntrack_gc_passes_total',
      help: 'Conntrack garbage collection passes over the BPF CT maps',
      registers,
    });
    this.#ctGcScanned = new Counter({
      name: 'switchyard_conntrack_gc_entries_scanned_total',
      help: 'BPF CT map entries the conntrack garbage collector read',
      registers,
    });
    this.#ctGcDeleted = new Counter({
      name: 'switchyard_conntrack_gc_entries_deleted_total',
      help: 'BPF CT map entries the conntrack garbage collector deleted (both halves of idle flows)',
      registers,
    });
    this.#ctGcDuration = new Gauge({
      name: 'switchyard_conntrack_gc_last_pass_duration_seconds',
      help: 'How long the last conntrack garbage collection pass took',
      registers,
    });

    this.#syncFailures = new Counter({
      name: 'switchyard_sync_failures_total',
      help: 'Syncs the dataplane failed (each is retried with backoff), by whether it was a full resync',
      labelNames: ['full'],
      registers,
    });
    this.#dataplaneStarted = new Gauge({
      name: 'switchyard_dataplane_started',
      help: '1 once the dataplane opened or adopted its kernel state (BPF object loaded, maps pinned), by mode',
      labelNames: ['mode'],
      registers,
    });
    this.#registerDataplaneCollectors(registers);
    if (options.defaultMetrics !== false) this.#defaultMetrics();
  }

  /**
   * prom-client's process_* and nodejs_* metrics, less the nodejs_*_total
   * gauges (active handles, requests, resources) that promtool rejects.
   */
  #defaultMetrics(): void {
    const before = new Set(this.registry.getMetricsAsArray().map((m) => m.name));
    collectDefaultMetrics({ register: this.registry });
    for (const m of this.registry.getMetricsAsArray()) {
      if (!before.has(m.name) && m.name.endsWith('_total') && !(m instanceof Counter)) this.registry.removeSingleMetric(m.name);
    }
  }

  /** A dataplane's own numbers (see DataplaneStats); replaces any previous source. */
  setDataplaneStats(stats: DataplaneStats | undefined): void {
    this.#stats = stats;
  }

  dataplaneStarted(started: boolean): void {
    this.#dataplaneStarted.set({ mode: this.proxyMode }, started ? 1 : 0);
  }

  /** A Service or EndpointSlice change reached the caches. */
  changeSeen(kind: 'Service' | 'EndpointSlice'): void {
    if (kind === 'Service') this.#serviceChangesTotal.inc();
    else this.#endpointChangesTotal.inc();
  }

  /** A sync was asked for (kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds). */
  queued(): void {
    for (const f of this.#families) this.#lastQueued.set({ ip_family: f }, this.#now() / 1000);
  }

  /** One sync attempt: its duration goes into the histograms whatever the outcome, as in kube-proxy. */
  syncAttempt(attempt: { readonly full: boolean; readonly seconds: number; readonly ok: boolean }): void {
    for (const f of this.#families) {
      const l = { ip_family: f };
      this.#syncDuration.observe(l, attempt.seconds);
      (attempt.full ? this.#syncFull : this.#syncPartial).observe(l, attempt.seconds);
      if (attempt.ok) this.#lastSync.set(l, this.#now() / 1000);
    }
    if (!attempt.ok) this.#syncFailures.inc({ full: String(attempt.full) });
  }

  /** From an EndpointSlice's last-change-trigger-time to programmed. */
  networkProgrammed(family: HealthFamily, seconds: number): void {
    this.#networkProgramming.observe({ ip_family: family }, seconds);
  }

  /** Service ports whose Local policy has no local endpoint (while others exist), per family. */
  noLocalEndpoints(family: HealthFamily, internal: number, external: number): void {
    this.#noLocal.set({ ip_family: family, traffic_policy: 'internal' }, internal);
    this.#noLocal.set({ ip_family: family, traffic_policy: 'external' }, external);
  }

  /** For a dataplane's stale-flow cleanup (kube-proxy's conntrack reconciler). */
  conntrackReconciled(family: HealthFamily, seconds: number, deleted: number): void {
    this.#conntrackDuration.observe({ ip_family: family }, seconds);
    this.#conntrackDeleted.inc({ ip_family: family }, deleted);
  }

  /** The cost of one conntrack GC pass over the BPF CT maps (dataplane/bpf/ct-gc.ts). */
  conntrackGc(scanned: number, deleted: number, seconds: number): void {
    this.#ctGcPasses.inc();
    this.#ctGcScanned.inc(scanned);
    this.#ctGcDeleted.inc(deleted);
    this.#ctGcDuration.set(seconds);
  }

  healthz(code: number): void {
    this.#healthz.inc({ code: String(code) });
  }

  livez(code: number): void {
    this.#livez.inc({ code: String(code) });
  }

  /** The exposition text, as /metrics serves it. */
  async scrape(): Promise<string> {
    return this.registry.metrics();
  }

  handler(): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      const path = pathOf(req);
      const plain = { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' };
      if (path === '/proxyMode') {
        res.writeHead(200, plain);
        res.end(this.proxyMode);
      } else if (path === '/healthz') {
        res.writeHead(200, plain);
        res.end('ok');
      } else if (path === '/metrics') {
        this.scrape().then(
          (text) => {
            res.writeHead(200, { 'Content-Type': this.registry.contentType });
            res.end(text);
          },
          (err: unknown) => {
            res.writeHead(500, plain);
            res.end(`error gathering metrics: ${err instanceof Error ? err.message : String(err)}\n`);
          },
        );
      } else {
        notFound(res);
      }
    };
  }

  async serve(bindAddress: string, listen: Listen = listenHttp): Promise<Listening> {
    const { host, port } = parseBindAddress(bindAddress);
    return listen(host, port, this.handler());
  }

  #registerDataplaneCollectors(registers: Registry[]): void {
    const stats = (): DataplaneStats | undefined => this.#stats;
    new Gauge({
      name: 'switchyard_bpf_map_entries',
      help: 'Entries in a BPF map, as read from the kernel',
      labelNames: ['map'],
      registers,
      async collect() {
        this.reset();
        for (const m of (await stats()?.mapUsage?.()) ?? []) this.set({ map: m.map }, m.entries);
      },
    });
    new Gauge({
      name: 'switchyard_bpf_map_capacity',
      help: 'Maximum entries of a BPF map (max_entries)',
      labelNames: ['map'],
      registers,
      async collect() {
        this.reset();
        for (const m of (await stats()?.mapUsage?.()) ?? []) this.set({ map: m.map }, m.capacity);
      },
    });
    new Gauge({
      name: 'switchyard_bpf_program_attached',
      help: '1 when a BPF program is attached at a hook, 0 when it should be and is not',
      labelNames: ['program', 'attach_point', 'hook'],
      registers,
      async collect() {
        this.reset();
        for (const p of (await stats()?.programAttachments?.()) ?? []) {
          this.set({ program: p.program, attach_point: p.attachPoint, hook: p.hook }, p.attached ? 1 : 0);
        }
      },
    });
    new Counter({
      name: 'switchyard_bpf_datapath_events_total',
      help: 'Packets and events the BPF programs counted, by event (sy_stats_v2: svc_hit, ct_new, reject, drop_no_port, ct_midstream, ...; bpf/README.md)',
      labelNames: ['event'],
      registers,
      async collect() {
        this.reset();
        const events = await Promise.resolve()
          .then(() => stats()?.datapathEvents?.())
          .catch(() => null);
        for (const [event, n] of Object.entries(events ?? {})) this.inc({ event: event.toLowerCase() }, Number(n));
      },
    });
    // Traffic counters: read once per scrape (six metrics, one dump of the counter maps).
    let pending: Promise<TrafficReport | undefined> | null = null;
    const report = (): Promise<TrafficReport | undefined> => {
      if (pending === null) {
        // A failed read (the counter maps could not be dumped) leaves these
        // six out of this scrape rather than failing the whole of /metrics.
        pending = Promise.resolve()
          .then(() => stats()?.trafficCounters?.())
          .catch(() => undefined);
        const clear = (): void => {
          pending = null;
        };
        // Cleared after this scrape's collectors have run (they run back to back).
        void pending.then(() => setImmediate(clear));
      }
      return pending;
    };
    type Row = ServiceTraffic | BackendTraffic;
    const traffic = (scope: 'service' | 'backend', what: 'packets' | 'bytes' | 'connections', help: string) => {
      const base = scope === 'service' ? ['namespace', 'service', 'port_name', 'protocol', 'frontend', 'ip_family'] : ['endpoint', 'protocol'];
      const directed = what !== 'connections';
      new Counter({
        name: `switchyard_${scope}_${what}_total`,
        help,
        labelNames: directed ? [...base, 'direction'] : base,
        registers,
        async collect() {
          this.reset();
          const r = await report();
          const rows: readonly Row[] = (scope === 'service' ? r?.services : r?.backends) ?? [];
          for (const row of rows) {
            const l: Record<string, string> =
              'endpoint' in row
                ? { endpoint: row.endpoint, protocol: row.protocol }
                : {
                    namespace: row.namespace,
                    service: row.service,
                    port_name: row.portName,
                    protocol: row.protocol,
                    frontend: row.frontend,
                    ip_family: row.ipFamily,
                  };
            if (what === 'connections') this.inc(l, row.connections);
            else {
              this.inc({ ...l, direction: 'original' }, what === 'packets' ? row.packets : row.bytes);
              this.inc({ ...l, direction: 'reply' }, what === 'packets' ? row.replyPackets : row.replyBytes);
            }
          }
        },
      });
    };
    traffic(
      'service',
      'packets',
      'Packets the datapath translated for a Service port, by frontend kind, family and direction (original: client to Service; reply)',
    );
    traffic(
      'service',
      'bytes',
      'IP bytes the datapath translated for a Service port, by frontend kind, family and direction (original: client to Service; reply)',
    );
    traffic('service', 'connections', 'Connections (flows) the datapath created to a Service port, by frontend kind and family');
    traffic('backend', 'packets', 'Packets the datapath translated to or from an endpoint, over every Service port using it, by direction');
    traffic('backend', 'bytes', 'IP bytes the datapath translated to or from an endpoint, over every Service port using it, by direction');
    traffic('backend', 'connections', 'Connections (flows) the datapath sent to an endpoint, over every Service port using it');
  }
}
