// Per-Service health checks for load balancers, kube-proxy's
// ServiceHealthServer (pkg/proxy/healthcheck/service_health.go): every
// LoadBalancer Service with externalTrafficPolicy Local has a
// healthCheckNodePort, and on that port each node answers whether it has a
// ready endpoint of the Service, so the cloud load balancer sends external
// traffic only to nodes that can serve it without a second hop.
//
// Answer, on any path: 200 when the node has local ready endpoints and the
// proxy itself is healthy, else 503; headers Content-Type application/json,
// X-Content-Type-Options nosniff and X-Load-Balancing-Endpoint-Weight (the
// count, for load balancers that weigh nodes); body kube-proxy's
// tab-indented JSON:
//
//   {
//   	"service": {
//   		"namespace": "ns",
//   		"name": "web"
//   	},
//   	"localEndpoints": 2,
//   	"serviceProxyHealthy": true
//   }
//
// syncServices() opens a listener per new Service (on each listen address)
// and closes those of Services gone or whose port changed; a port that
// cannot be bound is reported (log and Event) and tried again next sync.
// syncEndpoints() sets the counts. fromSnapshot() derives both from a model
// snapshot as kube-proxy does: local ready endpoints, distinct IPs per
// Service across its ports.

import type { ProxySnapshot } from '../model/types.ts';
import { SwitchyardError } from '../util/errors.ts';
import { cidrContains, parseCidr, parseIP } from '../util/ip.ts';
import { nullLogger, type Logger } from '../util/log.ts';
import { joinHostPort, listenHttp, type Handler, type Listen, type Listening } from './http.ts';

export interface ServiceHealthOptions {
  /** Where each check listens; kube-proxy: every address ("0.0.0.0"), or the --nodeport-addresses IPs. */
  readonly addresses?: readonly string[];
  /** The proxy's health (ProxyHealth): a check never passes while the proxy is unhealthy. */
  readonly proxyHealthy: () => boolean;
  readonly log?: Logger;
  /** Told when a port cannot be opened (an Event on the Service in the daemon). */
  readonly onListenError?: (service: string, port: number, error: Error) => void;
  readonly listen?: Listen;
}

interface Instance {
  readonly port: number;
  endpoints: number;
  readonly servers: Listening[];
}

export class ServiceHealthServer {
  readonly #addresses: readonly string[];
  readonly #proxyHealthy: () => boolean;
  readonly #log: Logger;
  readonly #onListenError: (service: string, port: number, error: Error) => void;
  readonly #listen: Listen;
  readonly #services = new Map<string, Instance>();
  /** Serialises syncs: listeners open and close asynchronously. */
  #queue: Promise<void> = Promise.resolve();
  /** Counts given before a Service's listener opened, applied when it opens. */
  #pendingCounts: ReadonlyMap<string, number> = new Map();

  constructor(options: ServiceHealthOptions) {
    this.#addresses = options.addresses ?? ['0.0.0.0'];
    this.#proxyHealthy = options.proxyHealthy;
    this.#log = options.log ?? nullLogger();
    this.#onListenError = options.onListenError ?? (() => {});
    this.#listen = options.listen ?? listenHttp;
  }

  /** Services with an open check, "namespace/name" -> port. */
  get ports(): ReadonlyMap<string, number> {
    return new Map([...this.#services].map(([k, v]) => [k, v.port]));
  }

  /** Makes `wanted` ("namespace/name" -> healthCheckNodePort) the set of open checks. */
  syncServices(wanted: ReadonlyMap<string, number>): Promise<void> {
    this.#queue = this.#queue.then(() => this.#syncServices(wanted));
    return this.#queue;
  }

  /** Local ready endpoint counts per Service; Services not named get 0. */
  syncEndpoints(counts: ReadonlyMap<string, number>): void {
    for (const [name, inst] of this.#services) inst.endpoints = counts.get(name) ?? 0;
    this.#pendingCounts = counts;
  }

  /** Both syncs from a snapshot, as the daemon calls it after every successful sync. */
  async fromSnapshot(snapshot: ProxySnapshot): Promise<void> {
    const { ports, counts } = healthChecksOf(snapshot);
    await this.syncServices(ports);
    this.syncEndpoints(counts);
  }

  async close(): Promise<void> {
    await this.syncServices(new Map());
  }

  async #syncServices(wanted: ReadonlyMap<string, number>): Promise<void> {
    for (const [name, inst] of [...this.#services]) {
      if (wanted.get(name) === inst.port) continue;
      this.#log.verbose('closing healthcheck', { service: name, port: inst.port });
      this.#services.delete(name);
      await Promise.all(inst.servers.map((s) => s.close()));
    }
    for (const [name, port] of wanted) {
      if (this.#services.has(name)) continue;
      this.#log.verbose('opening healthcheck', { service: name, port });
      const servers: Listening[] = [];
      try {
        for (const host of this.#addresses) servers.push(await this.#listen(host, port, this.#handler(name)));
      } catch (err) {
        await Promise.all(servers.map((s) => s.close()));
        const error = err instanceof Error ? err : new SwitchyardError('ERR_SY_BIND', String(err));
        this.#log.error('failed to start healthcheck', { service: name, port, address: this.#addresses.map((h) => joinHostPort(h, port)).join(','), error });
        this.#onListenError(name, port, error);
        continue;
      }
      this.#services.set(name, { port, endpoints: this.#pendingCounts.get(name) ?? 0, servers });
    }
  }

  #handler(name: string): Handler {
    const slash = name.indexOf('/');
    const namespace = name.slice(0, slash);
    const svcName = name.slice(slash + 1);
    return (_req, res) => {
      const inst = this.#services.get(name);
      if (!inst) {
        // Closed between accept and answer: Go's handler writes nothing (200, empty).
        res.end();
        return;
      }
      const count = inst.endpoints;
      const healthy = this.#proxyHealthy();
      res.writeHead(count !== 0 && healthy ? 200 : 503, {
        'Content-Type': 'application/json',
        'X-Content-Type-Options': 'nosniff',
        'X-Load-Balancing-Endpoint-Weight': String(count),
      });
      res.end(serviceHealthBody(namespace, svcName, count, healthy));
    };
  }
}

/** kube-proxy's body, byte for byte: tab-indented, no trailing newline. */
export function serviceHealthBody(namespace: string, name: string, localEndpoints: number, serviceProxyHealthy: boolean): string {
  return [
    '{',
    '\t"service": {',
    `\t\t"namespace": ${JSON.stringify(namespace)},`,
    `\t\t"name": ${JSON.stringify(name)}`,
    '\t},',
    `\t"localEndpoints": ${localEndpoints},`,
    `\t"serviceProxyHealthy": ${serviceProxyHealthy}`,
    '}',
  ].join('\n');
}

/**
 * healthCheckNodePort per Service and its local ready endpoints (distinct
 * IPs over all its ports and families), kube-proxy's LocalReadyEndpoints.
 */
export function healthChecksOf(snapshot: ProxySnapshot): { ports: Map<string, number>; counts: Map<string, number> } {
  const ports = new Map<string, number>();
  const ips = new Map<string, Set<string>>();
  for (const sp of snapshot.servicePorts.values()) {
    const name = `${sp.namespace}/${sp.name}`;
    if (sp.healthCheckNodePort) ports.set(name, sp.healthCheckNodePort);
    for (const ep of sp.endpoints) {
      if (!ep.isLocal || !ep.ready) continue;
      let set = ips.get(name);
      if (!set) ips.set(name, (set = new Set()));
      set.add(ep.ip);
    }
  }
  const counts = new Map<string, number>();
  for (const [name, set] of ips) counts.set(name, set.size);
  return { ports, counts };
}

/**
 * Where the checks listen, kube-proxy's rule: every address ("0.0.0.0",
 * both families) unless --nodeport-addresses narrows NodePorts, then this
 * node's addresses inside those CIDRs ("primary": the node's address);
 * every address again when none matches (kube-proxy logs that and does so).
 */
export function healthCheckAddresses(nodePortAddresses: readonly string[], localIPs: readonly string[], primary: string): string[] {
  if (nodePortAddresses.length === 0) return ['0.0.0.0'];
  if (nodePortAddresses.includes('primary')) return [primary];
  const cidrs = nodePortAddresses.map((c) => parseCidr(c.trim(), 'decimal')).filter((c) => c !== null);
  const matched = localIPs.filter((ip) => {
    const addr = parseIP(ip, 'decimal');
    return addr !== null && cidrs.some((c) => cidrContains(c, addr));
  });
  return matched.length > 0 ? matched : ['0.0.0.0'];
}
