// The proxy's own health, kube-proxy's contract (pkg/proxy/healthcheck,
// ProxyHealthServer), served on --healthz-bind-address (default
// 0.0.0.0:10256):
//
//   /healthz  200 or 503, JSON {"lastUpdated","currentTime","nodeEligible",
//             "healthy","status":{"IPv4":{"lastUpdated","healthy"},...}}
//   /livez    the same without "nodeEligible"
//
// Each IP family the proxy programs is healthy unless a change was queued
// (queuedUpdate) and no successful sync (updated) followed within the health
// timeout, which kube-proxy sets to 2 x syncPeriod. /healthz also fails when
// this node is not eligible for traffic: its Node is being deleted, was
// deleted, or carries the cluster autoscaler's ToBeDeletedByClusterAutoscaler
// taint. A healthy answer reports lastUpdated = now, as kube-proxy does for
// compatibility with older releases. Headers: Content-Type application/json
// and X-Content-Type-Options nosniff. Anything else answers Go's 404.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { goTime, listenHttp, notFound, parseBindAddress, pathOf, type Listen, type Listening } from './http.ts';

export type HealthFamily = 'IPv4' | 'IPv6';

/** The cluster autoscaler's taint on a node it is about to delete. */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/** What eligibility needs of a Node (src/sources/objects.ts Node satisfies it). */
export interface NodeState {
  /** metadata.deletionTimestamp is set. */
  readonly deleting?: boolean;
  /** spec.taints[].key */
  readonly taintKeys?: readonly string[];
}

export interface FamilyHealth {
  readonly lastUpdated: string;
  readonly healthy: boolean;
}

/** kube-proxy's ProxyHealth JSON, field order as Go writes it. */
export interface ProxyHealthBody {
  lastUpdated: string;
  currentTime: string;
  nodeEligible?: boolean;
  healthy: boolean;
  status?: Record<string, FamilyHealth>;
}

/** Called with the status code of every /healthz and /livez answer (kubeproxy_proxy_healthz_total, _livez_total). */
export interface HealthObserver {
  healthz(code: number): void;
  livez(code: number): void;
}

export interface ProxyHealthOptions {
  /** kube-proxy: 2 x syncPeriod. */
  readonly healthTimeoutMs: number;
  /** Wall clock, epoch ms. */
  readonly now?: () => number;
  /** This node's Node as last seen; undefined when unknown. */
  readonly node?: () => NodeState | undefined;
}

export class ProxyHealth {
  readonly #timeout: number;
  readonly #now: () => number;
  readonly #node: () => NodeState | undefined;
  readonly #lastUpdated = new Map<HealthFamily, number>();
  readonly #oldestQueued = new Map<HealthFamily, number>();
  #nodeSeen = false;

  constructor(options: ProxyHealthOptions) {
    this.#timeout = options.healthTimeoutMs;
    this.#now = options.now ?? Date.now;
    this.#node = options.node ?? (() => undefined);
  }

  /** A change that needs programming arrived for these families; the oldest unprogrammed one is kept. */
  queuedUpdate(families: readonly HealthFamily[]): void {
    const now = this.#now();
    for (const f of families) if (!this.#oldestQueued.has(f)) this.#oldestQueued.set(f, now);
  }

  /** A sync of these families succeeded: everything queued so far is programmed. */
  updated(families: readonly HealthFamily[]): void {
    const now = this.#now();
    for (const f of families) {
      this.#oldestQueued.delete(f);
      this.#lastUpdated.set(f, now);
    }
  }

  /** The proxy's health, ignoring the node: what /livez and the per-Service checks use. */
  health(): ProxyHealthBody {
    const now = this.#now();
    let latest: number | null = null;
    let healthy = true;
    const status: Record<string, FamilyHealth> = {};
    // Families report only once they synced at least once, as kube-proxy's;
    // Go writes map keys sorted.
    for (const family of [...this.#lastUpdated.keys()].sort()) {
      const last = this.#lastUpdated.get(family) ?? 0;
      if (latest === null || last > latest) latest = last;
      const queued = this.#oldestQueued.get(family);
      const ok = queued === undefined || now - queued < this.#timeout;
      if (!ok) healthy = false;
      status[family] = { lastUpdated: goTime(last), healthy: ok };
    }
    const body: ProxyHealthBody = { lastUpdated: goTime(latest), currentTime: goTime(now), healthy };
    if (Object.keys(status).length > 0) body.status = status;
    return body;
  }

  get healthy(): boolean {
    return this.health().healthy;
  }

  /**
   * Not being deleted and not tainted for deletion. Eligible while the Node
   * has not been seen yet (a manifests directory may have none); a Node
   * that was seen and is gone is not.
   */
  nodeEligible(): boolean {
    const node = this.#node();
    if (node === undefined) return !this.#nodeSeen;
    this.#nodeSeen = true;
    if (node.deleting) return false;
    return !(node.taintKeys ?? []).includes(TO_BE_DELETED_TAINT);
  }

  /** The /healthz and /livez handler. */
  handler(observer?: HealthObserver): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      const path = pathOf(req);
      if (path !== '/healthz' && path !== '/livez') return notFound(res);
      const body = this.health();
      let healthy = body.healthy;
      // Field order: nodeEligible sits between currentTime and healthy.
      let out: ProxyHealthBody = body;
      if (path === '/healthz') {
        const eligible = this.nodeEligible();
        healthy = healthy && eligible;
        out = { lastUpdated: body.lastUpdated, currentTime: body.currentTime, nodeEligible: eligible, healthy: body.healthy };
        if (body.status) out.status = body.status;
      }
      const code = healthy ? 200 : 503;
      if (path === '/healthz') observer?.healthz(code);
      else observer?.livez(code);
      if (healthy) out.lastUpdated = goTime(this.#now());
      res.writeHead(code, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' });
      res.end(JSON.stringify(out));
    };
  }

  /** Serves /healthz and /livez on a kube-proxy bind address ("0.0.0.0:10256"). */
  async serve(bindAddress: string, observer?: HealthObserver, listen: Listen = listenHttp): Promise<Listening> {
    const { host, port } = parseBindAddress(bindAddress);
    return listen(host, port, this.handler(observer));
  }
}
