// The BPF dataplane: owns the loaded tc program and its pinned maps on this
// node. start() loads the object (adopting pinned maps a previous daemon
// left), reads back what is programmed, and attaches the program to the
// node's interface and to every pod interface as they come and go.
// sync() runs the pipeline compile -> diff -> apply for one snapshot; only
// apply touches the kernel. A sync that fails reads the maps back (adopt)
// and rejects with the apply error; the next sync reconciles everything.
// stop() releases handles and leaves the program attached and the maps
// pinned, so traffic keeps flowing across restarts. start() first takes the
// pin directory's lock (pinlock.ts), waiting for a daemon that still holds
// it; stop() releases it. Failures are
// DataplaneErrors naming the operation ("update sy_svc4_v1 (3 entries)");
// a kernel refusal keeps the native error as the cause.

import type { ProxySnapshot } from '../../model/types.ts';
import { DataplaneError, type Dataplane, type SyncResult } from '../types.ts';
import type { Logger } from '../../util/log.ts';
import type { NativeBinding } from '../../native/binding.ts';
import { BpfObject, isNativeError, Tc } from '../../native/index.ts';
import { globMatcher, type Link, type LinkSource } from '../../host/links.ts';
import { compile, compileChanged } from './compile.ts';
import { diff } from './diff.ts';
import { programmedFromDump } from './adopt.ts';
import { applyOps, applyPlan, type MapWriter } from './apply.ts';
import { parseIPv4 } from '../../util/ip.ts';
import { MAPS, configCodec, encode, u32Codec, type OpBatch } from './layout-v1.ts';
import type { DesiredState, ProgrammedState } from './state.ts';
import { acquirePinLock, type PinLock } from './pinlock.ts';
import type { Clock } from '../../sync/clock.ts';

/** Runs a kernel operation; a native error becomes a DataplaneError naming the operation, with the native error as its cause. */
async function kernel<T>(operation: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    throw isNativeError(err) ? DataplaneError.kernel('bpf', operation, err) : err;
  }
}

/** Where our tc filter sits on every interface (handle 0x5359 = "SY"). */
export const TC_FILTER = { direction: 'ingress', handle: 0x5359, priority: 0x2000 } as const;
export const PROGRAM_NAME = 'sy_ingress';

export interface BpfDataplaneOptions {
  readonly native: NativeBinding;
  readonly log: Logger;
  readonly objectPath: string;
  readonly pinPath: string;
  /** Masquerade source for hairpin traffic. */
  readonly nodeAddress: string;
  /** The interface holding the node address (external traffic, replies from remote backends). */
  readonly nodeInterface: string | null;
  /** Comma-separated globs naming the host side of pod interfaces. */
  readonly podInterfaces: string;
  readonly masqueradeAll: boolean;
  /** The links to attach to and their changes: hostLinks() in the daemon. */
  readonly links: LinkSource;
  /** How long start() waits for another daemon to release the pin directory; default PIN_LOCK_TIMEOUT_MS. */
  readonly pinLockTimeoutMs?: number;
  /** Time for the pin lock's waits; default the system clock. */
  readonly clock?: Clock;
}

/**
 * What a failed sync rejects with: the apply error itself. If reading the
 * maps back after it failed too, that failure rides along as adoptError
 * (and the next sync reads them back before anything else).
 */
export type SyncFailure = Error & { adoptError?: unknown };

export class BpfDataplane implements Dataplane {
  readonly name = 'bpf';
  #o: BpfDataplaneOptions;
  #obj: BpfObject | null = null;
  #progFd = -1;
  #tc: Tc;
  #programmed: ProgrammedState | null = null;
  #desired: DesiredState | null = null;
  #attached = new Map<number, string>();
  #watcher: { stop(): void } | null = null;
  #isPodLink: (name: string) => boolean;
  #lock: PinLock | null = null;

  constructor(o: BpfDataplaneOptions) {
    this.#o = o;
    this.#tc = new Tc(o.native);
    this.#isPodLink = globMatcher(o.podInterfaces);
  }

  async start(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    // One daemon per pin directory: wait for one that is still terminating.
    await kernel(`prepare pin directory ${o.pinPath}`, async () => o.native.ensureBpffs(o.pinPath));
    const lock = await acquirePinLock({ native: o.native, log: o.log, pinPath: o.pinPath, timeoutMs: o.pinLockTimeoutMs, clock: o.clock, signal });
    if (lock === null) return; // stopped while waiting: nothing was touched
    this.#lock = lock;
    try {
      await this.#load(signal);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async #load(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const obj = await kernel(`load ${o.objectPath}`, () => BpfObject.open(o.objectPath, o.pinPath, o.native));
    this.#obj = obj;
    this.#progFd = obj.program(PROGRAM_NAME).fd;
    await this.#writeConfig();
    await this.#adopt();
    this.#attachLinks();
    this.#watcher = o.links.watch(() => this.#attachLinks(), signal);
  }

  async sync(snapshot: ProxySnapshot): Promise<SyncResult> {
    const started = performance.now();
    const opts = { masqueradeAll: this.#o.masqueradeAll };
    if (!this.#obj) throw new DataplaneError('ERR_SY_DATAPLANE_NOT_STARTED', 'bpf', 'sync', 'not started: call start() first');
    // Unknown after a failed sync whose read-back failed too: read the maps now.
    const programmed = this.#programmed ?? (await this.#adopt());
    const desired = this.#desired ? compileChanged(this.#desired, snapshot, opts) : compile(snapshot, opts);
    const scope = this.#desired ? desired.changed : 'all';
    const plan = diff(desired, programmed, scope);
    try {
      const stats = await applyPlan(plan, this.#writer());
      this.#programmed = plan.next;
      this.#desired = desired;
      return {
        frontendsChanged: plan.touched.length,
        operations: stats.updates + stats.deletes,
        problems: desired.problems,
        durationMs: performance.now() - started,
      };
    } catch (err) {
      // Part of the plan may have landed: read back what the kernel holds
      // and reconcile everything on the next sync. The caller must learn
      // why the plan failed, so a read-back failure does not replace it.
      this.#desired = null;
      this.#programmed = null;
      try {
        await this.#adopt();
      } catch (adoptErr) {
        this.#o.log.error('reading the maps back after a failed sync failed; the next sync retries', { error: adoptErr });
        if (err instanceof Error && Object.isExtensible(err)) (err as SyncFailure).adoptError = adoptErr;
      }
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.#watcher?.stop();
    this.#watcher = null;
    this.#obj?.close();
    this.#obj = null;
    this.#lock?.release();
    this.#lock = null;
  }

  /** Interfaces the program is attached to now, by ifindex. */
  get attached(): ReadonlyMap<number, string> {
    return this.#attached;
  }

  #writer(): MapWriter {
    const obj = this.#obj;
    if (!obj) throw new DataplaneError('ERR_SY_DATAPLANE_NOT_STARTED', 'bpf', 'write', 'not started: call start() first');
    return objectMapWriter(obj, this.#o.native);
  }

  async #writeConfig(): Promise<void> {
    if (this.#obj) await writeNodeConfig(this.#obj, this.#o.nodeAddress);
  }

  async #adopt(): Promise<ProgrammedState> {
    const obj = this.#obj;
    if (!obj) throw new DataplaneError('ERR_SY_DATAPLANE_NOT_STARTED', 'bpf', 'adopt', 'not started: call start() first');
    const svc = await kernel(`dump ${MAPS.svc.name}`, () => obj.map(MAPS.svc.name).dump());
    const backends = await kernel(`dump ${MAPS.backend.name}`, () => obj.map(MAPS.backend.name).dump());
    const adopted = programmedFromDump(svc, backends);
    if (adopted.orphans.length > 0) {
      this.#o.log.info('removing inconsistent entries left in pinned maps', { ops: adopted.orphans.length });
      await applyOps([adopted.orphans], this.#writer());
    }
    this.#programmed = adopted.state;
    this.#o.log.info('adopted pinned maps', { frontends: adopted.state.services.size, backends: adopted.state.backends.size });
    return adopted.state;
  }

  #wanted(link: Link): boolean {
    return link.name === this.#o.nodeInterface || this.#isPodLink(link.name);
  }

  /** Attaches to every wanted interface not attached yet; forgets ones that are gone. */
  #attachLinks(): void {
    if (this.#progFd < 0) return;
    const present = new Set<number>();
    for (const link of this.#o.links.list()) {
      if (!this.#wanted(link)) continue;
      present.add(link.ifindex);
      if (this.#attached.get(link.ifindex) === link.name) continue;
      try {
        this.#tc.attach(link.ifindex, this.#progFd, { ...TC_FILTER, replace: true });
        this.#attached.set(link.ifindex, link.name);
        this.#o.log.info('attached', { interface: link.name, ifindex: link.ifindex });
      } catch (err) {
        // A link can vanish between listing and attaching; the next event retries others.
        this.#o.log.warn('attach failed', { interface: link.name, error: (err as Error).message });
      }
    }
    for (const ifindex of [...this.#attached.keys()]) if (!present.has(ifindex)) this.#attached.delete(ifindex);
  }
}

/** apply's MapWriter over a loaded object's maps: one batch syscall per OpBatch. */
export function objectMapWriter(obj: BpfObject, native: NativeBinding): MapWriter {
  return {
    async write(b: OpBatch): Promise<void> {
      const m = obj.map(b.map);
      await kernel(`${b.action} ${b.map} (${b.count} ${b.count === 1 ? 'entry' : 'entries'})`, async () => {
        if (b.action === 'update') await native.mapUpdate(m.fd, b.keys, b.values ?? Buffer.alloc(0), m.keySize, m.valueSize);
        else await native.mapDelete(m.fd, b.keys, m.keySize);
      });
    },
  };
}

/** Writes sy_config_v1: the node address hairpin traffic is masqueraded to. */
export async function writeNodeConfig(obj: BpfObject, nodeAddress: string): Promise<void> {
  if (parseIPv4(nodeAddress, 'decimal') < 0)
    throw new DataplaneError('ERR_SY_DATAPLANE_OPTION', 'bpf', 'start', `node address "${nodeAddress}" is not an IPv4 address`);
  const m = obj.map(MAPS.config.name);
  await kernel(`update ${m.name}`, () => m.update([[encode(u32Codec, 0), encode(configCodec, { nodeAddr: nodeAddress, flags: 0 })]]));
}
