// `switchyard run`: the daemon. Builds the pipeline from its flags by passing
// dependencies in (sources -> cache -> model -> sync runner -> dataplane),
// starts it, and on SIGTERM/SIGINT stops it, leaving the program attached and
// the maps pinned so traffic keeps flowing until the next daemon adopts them.
// Before anything touches the kernel's networking it runs the pre-flight
// checks (cli/preflight.ts: privileges, kernel, bpffs, API server) and opens
// the health and metrics servers (src/ops), so an expected failure ends it
// with one line; --init-only stops after the privileged part of that.

import { readFileSync } from 'node:fs';
import { availableParallelism, hostname, networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import type { SwitchyardConfig } from '../config/index.ts';
import { cidrContains, familyOf, isUnspecifiedIP, parseCidr, parseIP } from '../util/ip.ts';
import { parsePortRange, rangesOverlap } from '../config/validate.ts';
import { createLogger, type LogFormat, type Logger, type LogLevel } from '../util/log.ts';
import { defaultBindingPath, loadBinding, type NativeBinding } from '../native/binding.ts';
import { ClusterCache } from '../sources/cache.ts';
import { ManifestsSource } from '../sources/manifests.ts';
import { loadKubeConfig, serverOf } from '../sources/kube-config.ts';
import { SnapshotBuilder } from '../model/snapshot.ts';
import { SyncRunner } from '../sync/runner.ts';
import { createSnapshotSync } from '../sync/pipeline.ts';
import { systemClock } from '../sync/clock.ts';
import { ProgrammingLatency } from '../sync/latency.ts';
import { BpfDataplane, CT_GC_INTERVAL_MS, effectiveCapacities, type LocalDetector } from '../dataplane/bpf/dataplane.ts';
import { type CtTimeouts, ctTimeouts } from '../dataplane/bpf/ct-gc.ts';
import { findCgroup2Mount, sockObjectPath } from '../dataplane/bpf/socklb.ts';
import type { Capacities } from '../dataplane/bpf/layout.ts';
import { BPF_GAPS, IPVS_GAPS, gapSummary } from '../dataplane/capabilities.ts';
import type { Dataplane, SyncResult } from '../dataplane/types.ts';
import { IpvsDataplane } from '../dataplane/ipvs/dataplane.ts';
import { IpvsClient } from '../host/ipvs/client.ts';
import { ServiceAddressDevice } from '../host/service-device.ts';
import { detectNodeAddresses, type NodeAddresses } from '../host/node-address.ts';
import { hostLinks } from '../host/links.ts';
import { readConntrack } from '../host/conntrack.ts';
import { ProblemLog } from '../util/problems.ts';
import { EventRecorder, type EventSink } from '../ops/events.ts';
import { ProxyHealth } from '../ops/health.ts';
import { ProxyMetrics, dataplaneStatsOf } from '../ops/metrics.ts';
import { Operations } from '../ops/operations.ts';
import { ServiceHealthServer, healthCheckAddresses } from '../ops/service-health.ts';
import { PreflightError, checkAddon, checkBpffs, checkKernel, checkPrivileges, host, waitForApiServer } from './preflight.ts';

interface RunConfig {
  /** The dataplane: bpf (auto runs bpf for now) or ipvs. */
  readonly mode: 'bpf' | 'ipvs';
  /** The IPVS dataplane's options (kube-proxy's --ipvs-* flags); timeouts in seconds. */
  readonly ipvs: {
    readonly scheduler: string;
    readonly excludeCIDRs: readonly string[];
    readonly strictARP: boolean;
    readonly timeouts: { readonly tcp: number; readonly tcpFin: number; readonly udp: number };
  };
  /** Read objects from this directory; null = from the Kubernetes API. */
  readonly manifests: string | null;
  readonly kubeconfig: string | undefined;
  readonly master: string | undefined;
  readonly nodeName: string;
  readonly bindAddress: string | undefined;
  readonly masqueradeAll: boolean;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  readonly pinPath: string;
  readonly objectPath: string;
  /** --cgroup2-path: "" = the cgroup2 mount, "none" = no socket hooks. */
  readonly cgroup2Path: string;
  readonly podInterfaces: string;
  readonly detectLocal: LocalDetector;
  /** --nodeport-addresses: CIDRs, ["primary"], or [] (every address); also where healthCheckNodePorts listen. */
  readonly nodePortAddresses: readonly string[];
  readonly snatPorts: { readonly min: number; readonly max: number };
  /** --iptables-localhost-nodeports: NodePorts on 127.0.0.1 where --nodeport-addresses allows it. */
  readonly localhostNodePorts: boolean;
  readonly capacities: Capacities;
  readonly lbAlgorithm: 'random' | 'maglev';
  readonly maglevTableSize: number;
  /** The CT garbage collector's timeouts, from the --conntrack-* flags. */
  readonly conntrackTimeouts: CtTimeouts;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly healthzBindAddress: string;
  readonly metricsBindAddress: string;
  readonly bindAddressHardFail: boolean;
  readonly initOnly: boolean;
  /** How long to wait for the API server to answer at start before giving up. */
  readonly apiWaitMs: number;
}

/** The bounded wait for the API server at start; the kubelet restarts the pod after it (with backoff). */
export const API_WAIT_MS = 30_000;

/**
 * How often the links are relisted whatever the link events say. Events
 * (and a relist when the kernel reports it dropped some) attach new pod
 * interfaces at once; this only bounds how long a lost one could go unseen.
 */
export const LINK_RESCAN_MS = 10_000;

/**
 * Time between CT GC passes: CT_GC_INTERVAL_MS, or SY_CT_GC_INTERVAL_MS from
 * the environment (tests; not a flag: kube-proxy has none).
 */
function ctGcIntervalMs(): number {
  const v = Number(process.env.SY_CT_GC_INTERVAL_MS);
  return Number.isInteger(v) && v > 0 ? v : CT_GC_INTERVAL_MS;
}

/** kube-proxy's conntrack sizing (max(maxPerCore x CPUs, min); maxPerCore 0: leave it) as BPF CT entries: two per flow. */
export function conntrackEntries(maxPerCore: number, min: number, cpus: number): number | null {
  if (maxPerCore <= 0) return null;
  return 2 * Math.max(maxPerCore * cpus, min);
}

function localDetector(c: SwitchyardConfig): LocalDetector {
  switch (c.detectLocalMode) {
    case 'NodeCIDR':
      return { mode: 'NodeCIDR' };
    case 'BridgeInterface':
      return { mode: 'BridgeInterface', bridge: c.detectLocal.bridgeInterface };
    case 'InterfaceNamePrefix':
      return { mode: 'InterfaceNamePrefix', prefix: c.detectLocal.interfaceNamePrefix };
    default:
      return { mode: 'ClusterCIDR', cidrs: c.clusterCIDRs };
  }
}

/** What `run` needs from the validated configuration; refuses what this build cannot do yet. */
export function runConfig(c: SwitchyardConfig): RunConfig {
  const seconds = (ms: number): number => Math.round(ms / 1000);
  return {
    mode: c.dataplane === 'ipvs' ? 'ipvs' : 'bpf',
    ipvs: {
      scheduler: c.ipvs.scheduler || 'rr',
      excludeCIDRs: c.ipvs.excludeCIDRs,
      strictARP: c.ipvs.strictARP,
      timeouts: { tcp: seconds(c.ipvs.tcpTimeout), tcpFin: seconds(c.ipvs.tcpFinTimeout), udp: seconds(c.ipvs.udpTimeout) },
    },
    manifests: c.switchyard.manifests || null,
    kubeconfig: c.clientConnection.kubeconfig || undefined,
    master: c.command.master || undefined,
    nodeName: c.hostnameOverride || hostname(),
    bindAddress: isUnspecifiedIP(c.bindAddress) ? undefined : c.bindAddress,
    masqueradeAll: c.masqueradeAll,
    minSyncPeriodMs: c.minSyncPeriod,
    syncPeriodMs: c.syncPeriod,
    pinPath: c.switchyard.bpf.pinPath,
    objectPath: c.switchyard.bpf.object,
    cgroup2Path: c.switchyard.bpf.cgroup2Path,
    podInterfaces: c.switchyard.bpf.podInterfaces.join(','),
    detectLocal: localDetector(c),
    nodePortAddresses: c.nodePortAddresses,
    snatPorts: parsePortRange(c.switchyard.bpf.snatPortRange) ?? { min: 61000, max: 65535 },
    localhostNodePorts: c.iptables.localhostNodePorts,
    capacities: capacitiesOf(c),
    lbAlgorithm: c.switchyard.bpf.lbAlgorithm,
    maglevTableSize: c.switchyard.bpf.maglevTableSize,
    conntrackTimeouts: ctTimeouts(c.conntrack),
    logLevel: c.logging.verbosity >= 4 ? 'debug' : c.logging.verbosity >= 2 ? 'verbose' : 'info',
    logFormat: c.logging.format === 'json' ? 'json' : 'klog',
    healthzBindAddress: c.healthzBindAddress,
    metricsBindAddress: c.metricsBindAddress,
    bindAddressHardFail: c.bindAddressHardFail,
    initOnly: c.command.initOnly,
    apiWaitMs: API_WAIT_MS,
  };
}

function logResult(log: Logger, problems: ProblemLog, r: SyncResult): void {
  problems.report(r.problems);
  if (r.frontendsChanged > 0) {
    log.info('programmed', { frontends: r.frontendsChanged, operations: r.operations, ms: Math.round(r.durationMs * 10) / 10 });
  }
}

function capacitiesOf(c: SwitchyardConfig): Capacities {
  const ct = conntrackEntries(c.conntrack.maxPerCore, c.conntrack.min, availableParallelism());
  const b = c.switchyard.bpf;
  return {
    svc4: b.servicesMax,
    svc6: b.servicesMax,
    backend4: b.backendsMax,
    backend6: b.backendsMax,
    // Traffic counters: one entry per live svc_id (both families share the id space) or backend id.
    svccnt: 2 * b.servicesMax,
    becnt4: b.backendsMax,
    becnt6: b.backendsMax,
    // Session affinity: clients (LRU) per family; members: one per backend slot of an affinity frontend, both families.
    aff4: b.affinityMax,
    aff6: b.affinityMax,
    affbe: 2 * b.servicesMax,
    ...(ct === null ? {} : { ct4: ct, ct6: ct }),
  };
}

/**
 * The node's ephemeral port range (net.ipv4.ip_local_port_range): the
 * masquerade range must not overlap it, or a masqueraded flow and a local
 * socket could share a source port. null when it cannot be read.
 */
export function localPortRange(path = '/proc/sys/net/ipv4/ip_local_port_range'): { min: number; max: number } | null {
  try {
    const [min, max] = readFileSync(path, 'utf8').trim().split(/\s+/).map(Number);
    return min !== undefined && max !== undefined && min <= max ? { min, max } : null;
  } catch {
    return null;
  }
}

/** --nodeport-addresses with "primary" resolved to the node's own addresses. */
function nodePortCidrs(list: readonly string[], node: { ipv4: string | null; ipv6: string | null }): string[] {
  if (list.length === 1 && list[0] === 'primary') {
    return [node.ipv4, node.ipv6].filter((a) => a !== null).map((a) => `${a}/${familyOf(a) === 'IPv4' ? 32 : 128}`);
  }
  return [...list];
}

/** kube-proxy's rule for localhost NodePorts: --nodeport-addresses empty (every address) or including 127.0.0.1. */
function allowsLocalhost(cidrs: readonly string[]): boolean {
  if (cidrs.length === 0) return true;
  const lo = parseIP('127.0.0.1', 'decimal');
  return (
    lo !== null &&
    cidrs.some((c) => {
      const p = parseCidr(c, 'decimal');
      return p !== null && cidrContains(p, lo);
    })
  );
}

interface Source {
  start(signal: AbortSignal): Promise<void>;
  stop(): void | Promise<void>;
  readonly isSynced: boolean;
}

/** The manifests directory when given, else the Kubernetes API (kubeconfig, master, or in-cluster). */
async function makeSource(cfg: RunConfig, kc: KubeConfig | null, cache: ClusterCache, onChange: () => void, logger: (c: string) => Logger): Promise<Source> {
  if (cfg.manifests || !kc) return new ManifestsSource({ dir: cfg.manifests ?? '', cache, onChange, logger: logger('manifests') });
  // Loaded on demand: the client library takes about a second to import.
  const { KubeApiSource } = await import('../sources/kube-api.ts');
  return new KubeApiSource({ kubeConfig: kc, nodeName: cfg.nodeName, cache, onChange, logger: logger('kube-api') });
}

/**
 * The pre-flight checks (cli/preflight.ts) in order; returns the API
 * server's KubeConfig (null with --manifests) and where Events go. Throws a
 * PreflightError, KubeConfigError or ConfigError naming the fix.
 */
async function preflight(
  cfg: RunConfig,
  log: Logger,
  stop: AbortSignal,
): Promise<{ kc: KubeConfig | null; sink: EventSink | null; node: NodeAddresses | null }> {
  const api = cfg.initOnly || cfg.manifests ? null : loadKubeConfig({ kubeconfigPath: cfg.kubeconfig, master: cfg.master });
  checkPrivileges(host.status());
  if (cfg.mode === 'bpf') checkKernel(host.release(), { addon: fileURLToPath(defaultBindingPath), object: cfg.objectPath });
  else checkAddon(fileURLToPath(defaultBindingPath));
  let sink: EventSink | null = null;
  if (api) {
    const { apiProbe, apiEventSink } = await import('./kube-ops.ts');
    await waitForApiServer({ probe: apiProbe(api, cfg.nodeName), server: serverOf(api), timeoutMs: cfg.apiWaitMs, signal: stop });
    sink = apiEventSink(api);
  }
  const ephemeral = localPortRange();
  if (cfg.mode === 'bpf' && ephemeral !== null && rangesOverlap(cfg.snatPorts, ephemeral)) {
    throw new PreflightError(
      'snat-port-range',
      `--bpf-snat-port-range ${cfg.snatPorts.min}-${cfg.snatPorts.max} overlaps the node's ephemeral ports net.ipv4.ip_local_port_range ${ephemeral.min}-${ephemeral.max}: a masqueraded flow could collide with a local socket; choose a range outside it`,
    );
  }
  const node = cfg.initOnly ? null : detectNodeAddresses(cfg.bindAddress);
  if (!cfg.initOnly && !node) {
    throw new PreflightError(
      'node-address',
      cfg.bindAddress
        ? `node address: --bind-address ${cfg.bindAddress} is not an address of this host; give one of its addresses, or 0.0.0.0 to detect it`
        : "node address: no address found on this host's interfaces; give the node's address with --bind-address",
    );
  }
  if (cfg.mode === 'ipvs') return { kc: api, sink, node };
  // Last: the only check with an effect (it may mount a bpffs).
  const { mounted } = checkBpffs(cfg.pinPath, (p) => loadBinding().ensureBpffs(p));
  if (mounted) log.info('mounted a bpffs at the pin path', { pinPath: cfg.pinPath });
  return { kc: api, sink, node };
}

/** Where the socket hooks go (--cgroup2-path), or null with the reason logged. */
function hostSockets(cfg: RunConfig, log: Logger): { objectPath: string; cgroupPath: string } | null {
  if (cfg.cgroup2Path === 'none') {
    log.info('socket hooks off (--cgroup2-path=none): host-network clients do not reach Services');
    return null;
  }
  const cgroupPath = cfg.cgroup2Path || findCgroup2Mount();
  if (cgroupPath === null) {
    log.warn('no cgroup2 mount in /proc/mounts: host-network clients do not reach Services (mount cgroup2 or give --cgroup2-path)');
    return null;
  }
  return { objectPath: sockObjectPath(cfg.objectPath), cgroupPath };
}

/** Runs until `stop` aborts (SIGTERM/SIGINT, turned into a signal by the entry point). */
export async function run(cfg: RunConfig, stop: AbortSignal): Promise<number> {
  const logger = (component: string) => createLogger(component, { level: cfg.logLevel, format: cfg.logFormat });
  const log = logger('switchyard');
  const { kc, sink, node } = await preflight(cfg, log, stop);
  if (cfg.initOnly || !node) {
    log.info(
      cfg.mode === 'bpf'
        ? 'initialisation done (--init-only): privileges, kernel, masquerade ports and bpffs checked; exiting'
        : 'initialisation done (--init-only): privileges and the native addon checked; exiting',
    );
    return 0;
  }
  log.info('starting', {
    mode: cfg.mode,
    node: cfg.nodeName,
    ipv4: node.ipv4 ?? '-',
    ipv6: node.ipv6 ?? '-',
    interface: node.interface,
    pinPath: cfg.pinPath,
    detectLocal: cfg.detectLocal.mode,
  });
  if (cfg.mode === 'bpf') {
    log.info('map capacities', effectiveCapacities(cfg.capacities));
    log.info(`not programmed by the bpf dataplane yet: ${gapSummary(BPF_GAPS)} (each affected Service is named when seen)`);
  } else {
    log.info(`not programmed by the ipvs dataplane yet: ${gapSummary(IPVS_GAPS)}`, { scheduler: cfg.ipvs.scheduler });
  }
  const problems = new ProblemLog(log);

  const controller = new AbortController();
  const { signal } = controller;
  // A stop during start-up is an orderly stop (exit 0) like one in steady state.
  const stopped = new Promise<void>((resolve) => {
    const onStop = (): void => {
      log.info(cfg.mode === 'bpf' ? 'stopping; the program stays attached and maps stay pinned' : 'stopping; the IPVS table and kube-ipvs0 stay', {
        signal: String(stop.reason),
      });
      controller.abort();
      resolve();
    };
    if (stop.aborted) onStop();
    else stop.addEventListener('abort', onStop, { once: true });
  });
  const clock = systemClock();
  const cache: ClusterCache = new ClusterCache({ now: () => clock.now(), onChanged: (kind) => ops.changeSeen(kind) });
  const primary = node.ipv4 ?? node.ipv6 ?? '0.0.0.0';
  const addresses = healthCheckAddresses(cfg.nodePortAddresses, localIPs(), primary);
  const { ops, metrics } = operations(cfg, sink, cache, addresses, logger);
  await ops.start(); // before the kernel: --bind-address-hard-fail ends the daemon here
  // Everything below is undone on a failure, so that the process can exit
  // (open servers and watches would keep it alive) with the one-line error.
  let source: Source | null = null;
  let runner: SyncRunner | null = null;
  let dataplane: Dataplane | null = null;
  try {
    // Both families: the v2 dataplane programs IPv6 frontends and backends too.
    const builder = new SnapshotBuilder({ cache, nodeName: cfg.nodeName, endpointFamilies: PROGRAMMED_FAMILIES });
    const native = loadBinding();
    dataplane = cfg.mode === 'ipvs' ? ipvsDataplane(cfg, native, node, logger) : bpfDataplane(cfg, native, node, logger, metrics);
    metrics.setDataplaneStats(dataplaneStatsOf(dataplane));
    const latency = new ProgrammingLatency({ onSample: (sample) => ops.latency(sample) });
    runner = new SyncRunner({
      sync: createSnapshotSync<SyncResult>({
        changes: cache.changes,
        builder,
        sink: dataplane,
        latency,
        clock,
        logger: logger('sync'),
        onSynced: (result, snapshot) => {
          logResult(log, problems, result);
          ops.programmed(snapshot);
        },
      }),
      minSyncPeriodMs: cfg.minSyncPeriodMs,
      syncPeriodMs: cfg.syncPeriodMs,
      clock,
      logger: logger('sync'),
      onResult: (result) => ops.attempt(result),
    });
    source = await makeSource(
      cfg,
      kc,
      cache,
      () => {
        ops.queued();
        runner?.run();
      },
      logger,
    );
    if (signal.aborted) return shutdown(); // asked to stop before anything was touched
    await dataplane.start(signal);
    metrics.dataplaneStarted(true);
    if (signal.aborted) return shutdown();
    runner.start(signal);
    await source.start(signal);
    if (!source.isSynced || signal.aborted) return shutdown(); // stopped before the first list completed
    runner.run();
    log.info('running', { source: cfg.manifests ? `manifests ${cfg.manifests}` : 'kubernetes api' });
    await stopped;
    return shutdown();
  } catch (err) {
    await shutdown().catch(() => 0);
    throw err;
  }

  async function shutdown(): Promise<number> {
    await source?.stop();
    await runner?.stop();
    await dataplane?.stop();
    await ops.stop();
    return 0;
  }
}

function bpfDataplane(cfg: RunConfig, native: NativeBinding, node: NodeAddresses, logger: (c: string) => Logger, metrics: ProxyMetrics): BpfDataplane {
  return new BpfDataplane({
    native,
    log: logger('bpf'),
    objectPath: cfg.objectPath,
    pinPath: cfg.pinPath,
    node,
    nodeInterface: node.interface,
    podInterfaces: cfg.podInterfaces,
    masqueradeAll: cfg.masqueradeAll,
    detectLocal: cfg.detectLocal,
    nodePortAddresses: nodePortCidrs(cfg.nodePortAddresses, node),
    localhostNodePorts: cfg.localhostNodePorts && allowsLocalhost(nodePortCidrs(cfg.nodePortAddresses, node)),
    snatPorts: cfg.snatPorts,
    capacities: cfg.capacities,
    lbAlgorithm: cfg.lbAlgorithm,
    maglevTableSize: cfg.maglevTableSize,
    links: hostLinks({ native, rescanMs: LINK_RESCAN_MS, log: logger('links') }),
    hostSockets: hostSockets(cfg, logger('switchyard')),
    kernelConntrack: () => readConntrack(),
    conntrackTimeouts: cfg.conntrackTimeouts,
    conntrackGcIntervalMs: ctGcIntervalMs(),
    onConntrackGc: (r) => metrics.conntrackGc(r.scanned, r.deleted, r.durationMs / 1000),
    onConntrackReconciled: (family, seconds, deleted) => metrics.conntrackReconciled(family, seconds, deleted),
  });
}

/** The IPVS dataplane on this node's IPVS table and kube-ipvs0 (sockets opened here, no kernel change until start). */
function ipvsDataplane(cfg: RunConfig, native: NativeBinding, node: NodeAddresses, logger: (c: string) => Logger): IpvsDataplane {
  return new IpvsDataplane({
    ipvs: IpvsClient.open(native),
    device: ServiceAddressDevice.open(native),
    log: logger('ipvs'),
    node,
    scheduler: cfg.ipvs.scheduler,
    masqueradeAll: cfg.masqueradeAll,
    detectLocal: cfg.detectLocal,
    nodePortAddresses: nodePortCidrs(cfg.nodePortAddresses, node),
    excludeCIDRs: cfg.ipvs.excludeCIDRs,
    strictARP: cfg.ipvs.strictARP,
    timeouts: cfg.ipvs.timeouts,
  });
}

/**
 * The families the bpf dataplane (layout 2) programs: the snapshot carries
 * EndpointSlices of both and the maps are per family (a family without a
 * node address has no masquerade source). Health and metrics report the
 * same families.
 */
const PROGRAMMED_FAMILIES = ['IPv4', 'IPv6'] as const;

/**
 * What the daemon reports (src/ops): health with the Node's eligibility,
 * per-Service health checks, metrics and Events, wired in one Operations.
 */
function operations(
  cfg: RunConfig,
  sink: EventSink | null,
  cache: ClusterCache,
  healthCheckAddresses: readonly string[],
  logger: (c: string) => Logger,
): { ops: Operations; metrics: ProxyMetrics } {
  const families = PROGRAMMED_FAMILIES;
  const events = new EventRecorder({ sink, nodeName: cfg.nodeName, log: logger('events') });
  const metrics = new ProxyMetrics({ families, proxyMode: cfg.mode, pending: () => pendingCounts(cache) });
  const health = new ProxyHealth({ healthTimeoutMs: 2 * cfg.syncPeriodMs, node: () => cache.nodes.get(cfg.nodeName) });
  const serviceHealth = new ServiceHealthServer({
    addresses: healthCheckAddresses,
    proxyHealthy: () => health.healthy,
    log: logger('healthcheck'),
    onListenError: (service, port, error) => {
      const [namespace = '', name = ''] = service.split('/');
      events.record({
        type: 'Warning',
        reason: 'FailedToStartServiceHealthcheck',
        action: 'Listen',
        note: `node ${cfg.nodeName} failed to start healthcheck "${service}" on port ${port}: ${error.message}`,
        regarding: { kind: 'Service', namespace, name, apiVersion: 'v1' },
      });
    },
  });
  const ops = new Operations({
    families,
    health,
    metrics,
    serviceHealth,
    events,
    healthzBindAddress: cfg.healthzBindAddress,
    metricsBindAddress: cfg.metricsBindAddress,
    bindAddressHardFail: cfg.bindAddressHardFail,
    log: logger('ops'),
  });
  return { ops, metrics };
}

/** This host's addresses (both families), for --nodeport-addresses. */
function localIPs(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address));
}

function pendingCounts(cache: ClusterCache): { servicesPending: number; endpointsPending: number } {
  const p = cache.changes.pendingCounts();
  return { servicesPending: p.services, endpointsPending: p.endpoints };
}
