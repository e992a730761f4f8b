// `switchyard run`: the daemon. Builds the pipeline from its flags by passing
// dependencies in (sources -> cache -> model -> sync runner -> dataplane),
// starts it, and on SIGTERM/SIGINT stops it, leaving the program attached and
// the maps pinned so traffic keeps flowing until the next daemon adopts them.

import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { ConfigError, type SwitchyardConfig } from '../config/index.ts';
import { familyOf, isUnspecifiedIP } from '../util/ip.ts';
import { parsePortRange, rangesOverlap } from '../config/validate.ts';
import { createLogger, type Logger } from '../util/log.ts';
import { loadBinding } from '../native/binding.ts';
import { ClusterCache } from '../sources/cache.ts';
import { ManifestsSource } from '../sources/manifests.ts';
import { SnapshotBuilder } from '../model/snapshot.ts';
import { SyncRunner } from '../sync/runner.ts';
import { createSnapshotSync } from '../sync/pipeline.ts';
import { systemClock } from '../sync/clock.ts';
import { ProgrammingLatency } from '../sync/latency.ts';
import { BpfDataplane, effectiveCapacities, type LocalDetector } from '../dataplane/bpf/dataplane.ts';
import type { Capacities } from '../dataplane/bpf/layout.ts';
import { BPF_GAPS, gapSummary } from '../dataplane/capabilities.ts';
import type { SyncResult } from '../dataplane/types.ts';
import { detectNodeAddresses } from '../host/node-address.ts';
import { hostLinks } from '../host/links.ts';
import { ProblemLog } from '../util/problems.ts';

interface RunConfig {
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
  readonly podInterfaces: string;
  readonly detectLocal: LocalDetector;
  /** --nodeport-addresses: CIDRs, ["primary"], or [] (every address). */
  readonly nodePortAddresses: readonly string[];
  readonly snatPorts: { readonly min: number; readonly max: number };
  readonly capacities: Capacities;
  readonly logLevel: 'info' | 'debug';
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
  if (c.dataplane === 'ipvs') {
    throw new ConfigError([{ field: 'mode', message: 'mode: "ipvs": the IPVS dataplane is not implemented yet in this build; use bpf or auto' }]);
  }
  return {
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
    podInterfaces: c.switchyard.bpf.podInterfaces.join(','),
    detectLocal: localDetector(c),
    nodePortAddresses: c.nodePortAddresses,
    snatPorts: parsePortRange(c.switchyard.bpf.snatPortRange) ?? { min: 61000, max: 65535 },
    capacities: capacitiesOf(c),
    logLevel: c.logging.verbosity >= 4 ? 'debug' : 'info',
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

interface Source {
  start(signal: AbortSignal): Promise<void>;
  stop(): void | Promise<void>;
  readonly isSynced: boolean;
}

/** The manifests directory when given, else the Kubernetes API (kubeconfig, master, or in-cluster). */
async function makeSource(cfg: RunConfig, cache: ClusterCache, onChange: () => void, level: 'info' | 'debug'): Promise<Source> {
  if (cfg.manifests) return new ManifestsSource({ dir: cfg.manifests, cache, onChange, logger: createLogger('manifests', { level }) });
  // Loaded on demand: the client library takes about a second to import.
  const { KubeApiSource } = await import('../sources/kube-api.ts');
  return new KubeApiSource({
    kubeConfig: { kubeconfigPath: cfg.kubeconfig, master: cfg.master },
    nodeName: cfg.nodeName,
    cache,
    onChange,
    logger: createLogger('kube-api', { level }),
  });
}

/** Runs until `stop` aborts (SIGTERM/SIGINT, turned into a signal by the entry point). */
export async function run(cfg: RunConfig, stop: AbortSignal): Promise<number> {
  const level = cfg.logLevel;
  const log = createLogger('switchyard', { level });
  const node = detectNodeAddresses(cfg.bindAddress);
  if (!node) {
    log.error(cfg.bindAddress ? `--bind-address ${cfg.bindAddress} is not an address of this host` : 'no address found for this node');
    return 1;
  }
  const ephemeral = localPortRange();
  if (ephemeral !== null && rangesOverlap(cfg.snatPorts, ephemeral)) {
    log.error(
      `--bpf-snat-port-range ${cfg.snatPorts.min}-${cfg.snatPorts.max} overlaps the node's ephemeral ports net.ipv4.ip_local_port_range ${ephemeral.min}-${ephemeral.max}: a masqueraded flow could collide with a local socket; choose a range outside it`,
    );
    return 1;
  }
  log.info('starting', {
    mode: 'bpf',
    node: cfg.nodeName,
    ipv4: node.ipv4 ?? '-',
    ipv6: node.ipv6 ?? '-',
    interface: node.interface,
    pinPath: cfg.pinPath,
    detectLocal: cfg.detectLocal.mode,
  });
  log.info('map capacities', effectiveCapacities(cfg.capacities));
  log.info(`not programmed by the bpf dataplane yet: ${gapSummary(BPF_GAPS)} (each affected Service is named when seen)`);
  const problems = new ProblemLog(log);

  const controller = new AbortController();
  const { signal } = controller;
  // A stop during start-up is an orderly stop (exit 0) like one in steady state.
  const stopped = new Promise<void>((resolve) => {
    const onStop = (): void => {
      log.info('stopping; the program stays attached and maps stay pinned', { signal: String(stop.reason) });
      controller.abort();
      resolve();
    };
    if (stop.aborted) onStop();
    else stop.addEventListener('abort', onStop, { once: true });
  });
  const clock = systemClock();
  const cache = new ClusterCache({ now: () => clock.now() });
  const builder = new SnapshotBuilder({ cache, nodeName: cfg.nodeName });
  const dataplane = new BpfDataplane({
    native: loadBinding(),
    log: createLogger('bpf', { level }),
    objectPath: cfg.objectPath,
    pinPath: cfg.pinPath,
    node,
    nodeInterface: node.interface,
    podInterfaces: cfg.podInterfaces,
    masqueradeAll: cfg.masqueradeAll,
    detectLocal: cfg.detectLocal,
    nodePortAddresses: nodePortCidrs(cfg.nodePortAddresses, node),
    snatPorts: cfg.snatPorts,
    capacities: cfg.capacities,
    links: hostLinks({ rescanMs: 2000 }),
  });
  const latency = new ProgrammingLatency();
  const runner = new SyncRunner({
    sync: createSnapshotSync<SyncResult>({
      changes: cache.changes,
      builder,
      sink: dataplane,
      latency,
      clock,
      logger: createLogger('sync', { level }),
      onSynced: (result) => logResult(log, problems, result),
    }),
    minSyncPeriodMs: cfg.minSyncPeriodMs,
    syncPeriodMs: cfg.syncPeriodMs,
    clock,
    logger: createLogger('sync', { level }),
  });
  const source = await makeSource(cfg, cache, () => runner.run(), level);
  if (signal.aborted) return 0; // asked to stop before anything was touched
  await dataplane.start(signal);
  if (signal.aborted) return shutdown();
  runner.start(signal);
  await source.start(signal);
  if (!source.isSynced || signal.aborted) return shutdown(); // stopped before the first list completed
  runner.run();
  log.info('running', { source: cfg.manifests ? `manifests ${cfg.manifests}` : 'kubernetes api' });
  await stopped;
  return shutdown();

  async function shutdown(): Promise<number> {
    await source.stop();
    await runner.stop();
    await dataplane.stop();
    return 0;
  }
}
