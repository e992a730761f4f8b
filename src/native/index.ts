// index.ts: the typed facade over the native addon (binding.ts). BpfObject is
// a loaded object, BpfMap a map by fd with record-level batch operations,
// BpfProgram one of its programs (with BPF_PROG_TEST_RUN), Tc the tc hook
// helpers. No policy: callers bring encoded keys and values. Constructors do
// no I/O; the binding is passed in (loadBinding() by default).
import {
  loadBinding,
  type NativeBinding,
  type NativeMapDesc,
  type NativeObject,
  type NativeProgramDesc,
  type TcAttachOptions,
  type TcAttachResult,
  type TcDirection,
  type TcFilter,
  type TestRunOptions,
  type TestRunResult,
} from './binding.ts';
import { SwitchyardError } from '../util/errors.ts';

export { loadBinding, UpdateFlags } from './binding.ts';
export type {
  CgroupAttachType,
  LinkEvent,
  LinkOperState,
  LinkWatchOptions,
  NativeBinding,
  NativeLinkWatch,
  NativeMapDesc,
  NativeNetlink,
  NativeProgramDesc,
  NativeProgramInfo,
  NetlinkOpenOptions,
  NetlinkResult,
  TcAttachOptions,
  TcAttachResult,
  TcDirection,
  TcFilter,
  TestRunOptions,
  TestRunResult,
} from './binding.ts';
export { isLockHeld, isNativeError, isNotExist, isNotSupported, isPermissionDenied, type NativeError } from './errors.ts';

export type MapRecord = [key: Buffer, value: Buffer];

export interface MapShape {
  name: string;
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  valueStride: number;
  maxEntries: number;
}

export class BpfMap {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  // Bytes per value record: valueSize, or roundup(valueSize, 8) * CPUs for per-CPU maps.
  readonly valueStride: number;
  readonly maxEntries: number;
  readonly #native: NativeBinding;
  readonly #ownsFd: boolean;

  constructor(native: NativeBinding, shape: MapShape, ownsFd = false) {
    this.#native = native;
    this.#ownsFd = ownsFd;
    this.name = shape.name;
    this.fd = shape.fd;
    this.type = shape.type;
    this.keySize = shape.keySize;
    this.valueSize = shape.valueSize;
    this.valueStride = shape.valueStride;
    this.maxEntries = shape.maxEntries;
  }

  // A map pinned in bpffs, without its object. close() releases the fd.
  static openPinned(path: string, native: NativeBinding = loadBinding()): BpfMap {
    const fd = native.mapOpenPinned(path);
    try {
      return new BpfMap(native, { ...native.mapInfo(fd), fd }, true);
    } catch (e) {
      native.closeFd(fd);
      throw e;
    }
  }

  // One batch, applied in order.
  async update(records: ReadonlyArray<readonly [Uint8Array, Uint8Array]>, flags?: number): Promise<void> {
    const keys = this.#concat(
      records.map((r) => r[0]),
      this.keySize,
      'key',
    );
    const values = this.#concat(
      records.map((r) => r[1]),
      this.valueStride,
      'value',
    );
    await this.#native.mapUpdate(this.fd, keys, values, this.keySize, this.valueSize, flags);
  }

  // Keys that are not in the map are ignored.
  async delete(keys: ReadonlyArray<Uint8Array>): Promise<void> {
    await this.#native.mapDelete(this.fd, this.#concat(keys, this.keySize, 'key'), this.keySize);
  }

  // The value of each key, undefined where the key is absent.
  async lookup(keys: ReadonlyArray<Uint8Array>): Promise<Array<Buffer | undefined>> {
    const { values, found } = await this.#native.mapLookup(this.fd, this.#concat(keys, this.keySize, 'key'), this.keySize, this.valueSize);
    return keys.map((_, i) => (found[i] === 1 ? values.subarray(i * this.valueStride, (i + 1) * this.valueStride) : undefined));
  }

  // Every entry, in the kernel's iteration order.
  async dump(): Promise<MapRecord[]> {
    const { keys, values, count } = await this.#native.mapDump(this.fd, this.keySize, this.valueSize);
    const out: MapRecord[] = [];
    for (let i = 0; i < count; i++) {
      out.push([keys.subarray(i * this.keySize, (i + 1) * this.keySize), values.subarray(i * this.valueStride, (i + 1) * this.valueStride)]);
    }
    return out;
  }

  // Only for maps from openPinned(); an object's maps close with the object.
  close(): void {
    if (this.#ownsFd) this.#native.closeFd(this.fd);
  }

  #concat(parts: ReadonlyArray<Uint8Array>, size: number, what: string): Buffer {
    parts.forEach((p, i) => {
      if (p.length !== size) throw new RangeError(`map ${this.name}: ${what} ${i} is ${p.length} bytes, the map's ${what}s are ${size}`);
    });
    return Buffer.concat(parts, parts.length * size);
  }
}

// A program of a loaded object; its fd is valid until the object is closed.
export class BpfProgram {
  readonly name: string;
  readonly fd: number;
  readonly type: number; // enum bpf_prog_type
  readonly #native: NativeBinding;

  constructor(native: NativeBinding, desc: NativeProgramDesc) {
    this.#native = native;
    this.name = desc.name;
    this.fd = desc.fd;
    this.type = desc.type;
  }

  // BPF_PROG_TEST_RUN on a copy of data: the verdict and the packet as the
  // program left it. Nothing is sent; map updates the program makes are real.
  testRun(data: Uint8Array, opts?: TestRunOptions): Promise<TestRunResult> {
    return this.#native.progTestRun(this.fd, data, opts);
  }
}

export class BpfObject {
  readonly path: string;
  readonly #native: NativeBinding;
  readonly #object: NativeObject;

  constructor(native: NativeBinding, object: NativeObject, path: string) {
    this.#native = native;
    this.#object = object;
    this.path = path;
  }

  // Opens and loads the object off the main thread; maps declared with
  // LIBBPF_PIN_BY_NAME are reused from pinRoot or pinned there.
  static async open(
    path: string,
    pinRoot: string,
    native: NativeBinding = loadBinding(),
    maxEntries: Readonly<Record<string, number>> = {},
  ): Promise<BpfObject> {
    return new BpfObject(native, await native.openObject(path, { pinRoot, maxEntries }), path);
  }

  maps(): NativeMapDesc[] {
    return this.#object.maps();
  }

  map(name: string): BpfMap {
    const all = this.#object.maps();
    const desc = all.find((m) => m.name === name);
    if (desc === undefined) throw new SwitchyardError('ERR_SY_NO_SUCH_MAP', `${this.path} has no map ${name} (maps: ${all.map((m) => m.name).join(', ')})`);
    return new BpfMap(this.#native, desc);
  }

  programs(): NativeProgramDesc[] {
    return this.#object.programs();
  }

  program(name: string): BpfProgram {
    const all = this.#object.programs();
    const p = all.find((q) => q.name === name);
    if (p === undefined)
      throw new SwitchyardError('ERR_SY_NO_SUCH_PROGRAM', `${this.path} has no program ${name} (programs: ${all.map((q) => q.name).join(', ')})`);
    return new BpfProgram(this.#native, p);
  }

  // Closes every fd of the object; pinned maps stay pinned, attached programs stay attached.
  close(): void {
    this.#object.close();
  }
}

// tc clsact hooks, in the calling process's network namespace.
export class Tc {
  readonly #native: NativeBinding;

  constructor(native: NativeBinding) {
    this.#native = native;
  }

  // Creates the clsact hook if needed; replaces the filter at (handle, priority) unless replace is false.
  attach(ifindex: number, progFd: number, opts: TcAttachOptions): TcAttachResult {
    return this.#native.tcAttach(ifindex, progFd, opts);
  }

  // False when nothing was attached there.
  detach(ifindex: number, filter: TcFilter): boolean {
    return this.#native.tcDetach(ifindex, filter);
  }

  // The id of the program attached there, or null.
  query(ifindex: number, filter: TcFilter): number | null {
    return this.#native.tcQuery(ifindex, filter)?.progId ?? null;
  }

  // Removes the clsact qdisc ('both') or flushes one direction. False when nothing was there.
  destroyHook(ifindex: number, direction: TcDirection | 'both' = 'both'): boolean {
    return this.#native.tcHookDestroy(ifindex, direction);
  }

  ifindex(name: string): number {
    return this.#native.ifNameToIndex(name);
  }

  ifname(index: number): string {
    return this.#native.ifIndexToName(index);
  }
}
