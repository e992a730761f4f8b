// The kernel side of the sync benchmark: a private bpffs under /run with a
// fresh pin directory per run (so every full sync starts from empty maps),
// and a MapWriter that sends apply's batches to the real maps through the
// native binding, as BpfDataplane's writer does, timing the calls.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { MapWriter } from '../src/dataplane/bpf/apply.ts';
import { expandPerCpu, type OpBatch } from '../src/dataplane/bpf/layout.ts';
import { BpfObject, type NativeBinding } from '../src/native/index.ts';

/**
 * A bpffs mounted at /run/sy-bench-<pid>. Closing a BpfObject releases its
 * fds; removing its pin directory drops the last references, so the kernel
 * frees the maps. unmount() drops whatever is left.
 */
export class BenchBpffs {
  readonly path = `/run/sy-bench-${process.pid}`;
  #mounted = false;
  #runs = 0;

  mount(): void {
    mkdirSync(this.path, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', this.path], { stdio: 'pipe' });
    this.#mounted = true;
  }

  /** A new, empty pin directory on the bpffs. */
  freshPinDir(tag: string): string {
    const dir = join(this.path, `${String(++this.#runs).padStart(2, '0')}-${tag}`);
    mkdirSync(dir);
    return dir;
  }

  /** Synchronous, so it can run from a signal handler too. Idempotent. */
  unmount(): void {
    if (this.#mounted) {
      try {
        execFileSync('umount', [this.path], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', this.path], { stdio: 'pipe' }); // busy: detach now, freed when the last user goes
      }
      this.#mounted = false;
    }
    if (existsSync(this.path)) rmSync(this.path, { recursive: true, force: true });
  }
}

/** The loaded object and its pin directory, for one run. */
export class BenchMaps {
  readonly obj: BpfObject;
  readonly pinDir: string;
  #closed = false;

  private constructor(obj: BpfObject, pinDir: string) {
    this.obj = obj;
    this.pinDir = pinDir;
  }

  /** `maxEntries`: pinned map name -> max_entries, where not the object's (as the daemon loads it with its capacities). */
  static async open(objectPath: string, pinDir: string, native: NativeBinding, maxEntries: Readonly<Record<string, number>> = {}): Promise<BenchMaps> {
    return new BenchMaps(await BpfObject.open(objectPath, pinDir, native, maxEntries), pinDir);
  }

  /** Closes the fds and unpins the maps. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.obj.close();
    rmSync(this.pinDir, { recursive: true, force: true });
  }
}

export interface BatchTiming {
  /** "sy_svc4_v1 update" */
  readonly what: string;
  readonly count: number;
  readonly ms: number;
}

/**
 * Writes batches to the object's maps with mapUpdate/mapDelete and adds up
 * the time spent waiting for them: the copy into the addon, the hop to the
 * libuv thread pool, the map-info check and the batch syscall. apply has
 * the batches of one phase in flight together, so nativeMs is the time
 * during which at least one was (not the sum of their times). apply's time
 * minus this is the encoding (and grouping) done in JavaScript that did not
 * overlap a batch in flight.
 */
export class TimedWriter implements MapWriter {
  readonly #obj: BpfObject;
  readonly #native: NativeBinding;
  nativeMs = 0;
  /** Every batch written, in the order apply started them, each with its own time. */
  readonly batches: BatchTiming[] = [];
  #inFlight = 0;
  #busySince = 0;

  constructor(obj: BpfObject, native: NativeBinding) {
    this.#obj = obj;
    this.#native = native;
  }

  async write(b: OpBatch): Promise<void> {
    const m = this.#obj.map(b.map);
    const t = performance.now();
    if (this.#inFlight++ === 0) this.#busySince = t;
    const timing = { what: `${b.map} ${b.action}`, count: b.count, ms: Number.NaN };
    this.batches.push(timing);
    try {
      // The traffic counters are per-CPU: the value once per possible CPU, as the dataplane's writer sends it.
      if (b.action === 'update')
        await this.#native.mapUpdate(m.fd, b.keys, expandPerCpu(b.values ?? Buffer.alloc(0), b.count, m.valueSize, m.valueStride), m.keySize, m.valueSize);
      else await this.#native.mapDelete(m.fd, b.keys, m.keySize);
    } catch (err) {
      throw new Error(`${b.map} ${b.action} of ${b.count} entries: ${(err as Error).message}`, { cause: err });
    } finally {
      const end = performance.now();
      if (--this.#inFlight === 0) this.nativeMs += end - this.#busySince;
      timing.ms = end - t;
    }
  }
}
