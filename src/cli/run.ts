// `switchyard run`: the daemon. Builds the pipeline from its flags by passing
// dependencies in (sources -> cache -> model -> sync runner -> dataplane),
// starts it, and on SIGTERM/SIGINT stops it, leaving the program attached and
// the maps pinned so traffic keeps flowing until the next daemon adopts them.

import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type FlagSpec, type FlagValues, str, num, bool, FlagError } from './flags.ts';
import { createLogger, type Logger } from '../util/log.ts';
import { loadBinding } from '../native/binding.ts';
import { ClusterCache } from '../sources/cache.ts';
import { ManifestsSource } from '../sources/manifests.ts';
import { SnapshotBuilder } from '../model/snapshot.ts';
import { SyncRunner } from '../sync/runner.ts';
import { createSnapshotSync } from '../sync/pipeline.ts';
import { systemClock } from '../sync/clock.ts';
import { ProgrammingLatency } from '../sync/latency.ts';
import { BpfDataplane } from '../dataplane/bpf/dataplane.ts';
import type { SyncResult } from '../dataplane/types.ts';
import { detectNodeAddress } from '../host/node-address.ts';

export const DEFAULT_OBJECT = fileURLToPath(new URL('../../bpf/build/switchyard.bpf.o', import.meta.url));
export const DEFAULT_PIN_PATH = '/sys/fs/bpf/switchyard';

export const RUN_FLAGS: readonly FlagSpec[] = [
  { name: 'proxy-mode', kind: 'string', default: 'bpf', choices: ['bpf', 'ipvs', 'auto'], help: 'Which dataplane programs Services: bpf (tc eBPF), ipvs, or auto (probe the kernel).' },
  { name: 'manifests', kind: 'string', help: 'Read Services, EndpointSlices and Nodes from the *.yaml files in this directory and follow their changes.' },
  { name: 'hostname-override', kind: 'string', help: "This node's name, as in Node objects and EndpointSlice nodeName (kube-proxy flag)." },
  { name: 'bind-address', kind: 'string', help: "This node's primary IPv4 address (kube-proxy flag); default: the address of the interface with the default route." },
  { name: 'masquerade-all', kind: 'bool', help: 'Masquerade all traffic sent to Service frontends (kube-proxy flag; not yet programmed by the bpf dataplane).' },
  { name: 'min-sync-period', kind: 'duration', default: '1s', help: 'Least time between two syncs; bursts of changes coalesce (kube-proxy minSyncPeriod).' },
  { name: 'sync-period', kind: 'duration', default: '30s', help: 'Longest time between two full reconciles (kube-proxy syncPeriod).' },
  { name: 'bpf-pin-path', kind: 'string', default: DEFAULT_PIN_PATH, help: 'Directory on a bpffs for pinned maps (bpffs is mounted there when missing).' },
  { name: 'bpf-object', kind: 'string', default: DEFAULT_OBJECT, help: 'The compiled tc program.' },
  { name: 'pod-interfaces', kind: 'string', default: 'veth*', help: 'Comma-separated globs naming the host side of pod interfaces; the program is attached to each as it appears.' },
  { name: 'v', kind: 'int', default: '0', help: 'Log verbosity: 0 info, 4 and up debug (kube-proxy flag).' },
];

interface RunConfig {
  readonly manifests: string;
  readonly nodeName: string;
  readonly bindAddress: string | undefined;
  readonly masqueradeAll: boolean;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  readonly pinPath: string;
  readonly objectPath: string;
  readonly podInterfaces: string;
  readonly logLevel: 'info' | 'debug';
}

export function runConfig(values: FlagValues): RunConfig {
  const mode = str(values, 'proxy-mode');
  if (mode === 'ipvs') throw new FlagError('proxy-mode', 'ipvs is not implemented yet in this build; use bpf');
  const manifests = str(values, 'manifests');
  if (!manifests) throw new FlagError('manifests', 'is required: the Kubernetes API source is not implemented yet in this build');
  return {
    manifests,
    nodeName: str(values, 'hostname-override') ?? hostname(),
    bindAddress: str(values, 'bind-address'),
    masqueradeAll: bool(values, 'masquerade-all'),
    minSyncPeriodMs: num(values, 'min-sync-period') ?? 1000,
    syncPeriodMs: num(values, 'sync-period') ?? 30_000,
    pinPath: str(values, 'bpf-pin-path') ?? DEFAULT_PIN_PATH,
    objectPath: str(values, 'bpf-object') ?? DEFAULT_OBJECT,
    podInterfaces: str(values, 'pod-interfaces') ?? 'veth*',
    logLevel: (num(values, 'v') ?? 0) >= 4 ? 'debug' : 'info',
  };
}

function logResult(log: Logger, r: SyncResult): void {
  for (const p of r.problems) log.warn('not programmed', { servicePort: p.owner, field: p.field, error: p.message });
  if (r.frontendsChanged > 0) {
    log.info('programmed', { frontends: r.frontendsChanged, operations: r.operations, ms: Math.round(r.durationMs * 10) / 10 });
  }
}

export async function run(cfg: RunConfig): Promise<number> {
  const level = cfg.logLevel;
  const log = createLogger('switchyard', { level });
  const node = detectNodeAddress(cfg.bindAddress);
  if (!node) {
    log.error(cfg.bindAddress ? `--bind-address ${cfg.bindAddress} is not an address of this host` : 'no IPv4 address found for this node');
    return 1;
  }
  log.info('starting', { mode: 'bpf', node: cfg.nodeName, address: node.address, interface: node.interface, pinPath: cfg.pinPath });
  if (cfg.masqueradeAll) log.warn('--masquerade-all is accepted but not yet programmed by the bpf dataplane');

  const controller = new AbortController();
  const { signal } = controller;
  const clock = systemClock();
  const cache = new ClusterCache({ now: () => clock.now() });
  const builder = new SnapshotBuilder({ cache, nodeName: cfg.nodeName });
  const dataplane = new BpfDataplane({
    native: loadBinding(),
    log: createLogger('bpf', { level }),
    objectPath: cfg.objectPath,
    pinPath: cfg.pinPath,
    nodeAddress: node.address,
    nodeInterface: node.interface,
    podInterfaces: cfg.podInterfaces,
    masqueradeAll: cfg.masqueradeAll,
  });
  const latency = new ProgrammingLatency();
  const runner = new SyncRunner({
    sync: createSnapshotSync<SyncResult>({
      changes: cache.changes, builder, sink: dataplane, latency, clock,
      logger: createLogger('sync', { level }),
      onSynced: (result) => logResult(log, result),
    }),
    minSyncPeriodMs: cfg.minSyncPeriodMs,
    syncPeriodMs: cfg.syncPeriodMs,
    clock,
    logger: createLogger('sync', { level }),
  });
  const source = new ManifestsSource({ dir: cfg.manifests, cache, onChange: () => runner.run(), logger: createLogger('manifests', { level }) });

  const stopped = new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info('stopping; the program stays attached and maps stay pinned', { signal: sig });
      controller.abort();
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });

  await dataplane.start(signal);
  runner.start(signal);
  await source.start(signal);
  runner.run();
  log.info('running', { manifests: cfg.manifests });
  await stopped;
  source.stop();
  await runner.stop();
  await dataplane.stop();
  return 0;
}
