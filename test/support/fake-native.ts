// FakeNativeBinding: the native addon (src/native/binding.ts, native/src/*.cc)
// and the kernel behind it, in memory, for unit tests without root. One
// instance is one kernel and one network namespace: BPF objects whose maps
// come from layout.ts's MAPS, a bpffs of pinned maps, fds, tc clsact hooks
// and filters per interface, and the interfaces themselves (with a LinkSource
// for BpfDataplane). Errors are NativeErrors shaped as the addon makes them:
// errno, code, syscall, the same message format, `done` on batches.
//
// Modelled, and compared with kernel 6.18 + libbpf 1.1 by test/privileged/
// fake-vs-kernel.test.ts (the same calls on both, results and errors equal)
// except where marked (by hand): checked once with a probe script, not
// comparable automatically.
// - maps (kernel level, in FakeMap, fake-maps.ts): full hash map E2BIG on a
//   new key, replacing a key of a full map works; BPF_NOEXIST/BPF_EXIST give
//   EEXIST/ENOENT; flags > BPF_EXIST or BPF_F_LOCK give EINVAL; array index
//   past the end E2BIG, array NOEXIST EEXIST, array delete EINVAL; hash
//   delete of a missing key ENOENT; per-CPU values roundup(size, 8) * CPUs.
// - the addon's batches (maps.cc): sizes checked against the map first
//   (EINVAL, syscall 'mapUpdate'/'mapDelete'/..., no `done`); updates with
//   flags 0 go as one kernel batch that stops at the failing record and
//   reports it (syscall bpf_map_update_batch, done = records applied), other
//   flags one by one (bpf_map_update_elem); a batch the kernel rejects as a
//   command (EINVAL with nothing applied, ENOTSUPP: arrays have no delete
//   batch) falls back to one by one; deletes skip absent keys.
// - dumps: a hash map in bucket order (here: by a hash of the key, never
//   insertion order), an array every index; lookups of absent keys or
//   indexes past an array's end are "not found".
// - objects (object.cc, libbpf): an unknown path ENOENT bpf_object__open_file;
//   maps pinned by name under the pin root are reused when type, key/value
//   size, max_entries and flags match (the reused map keeps its kernel
//   name), else EINVAL bpf_object__load "parameter mismatch", and the maps
//   this load pinned are unpinned again; each load is a new program (new
//   id); close() closes the fds, pins stay, attached programs stay attached.
// - bpffs (bpffs.cc): ensureBpffs mounts unless the path is inside a bpffs;
//   bpf_obj_get ENOENT on no pin, EACCES on a directory.
// - programs: progInfo of an id never loaded ENOENT bpf_prog_get_fd_by_id
//   (by hand; the fake keeps every program: the kernel frees one that no fd
//   or hook holds).
// - fds: lowest free number reused; a closed fd EBADF (bpf_obj_get_info_by_fd
//   for map calls, close for closeFd); progIdFromFd of a map fd gives the
//   map's id (by hand: the kernel fills in whatever object the fd is).
// - tc (tc.cc): attach to a missing ifindex ENODEV bpf_tc_hook_create; the
//   clsact hook is created before the program is checked (a bad fd EBADF,
//   a map fd EINVAL, bpf_tc_attach, the hook stays); replace: false on an
//   occupied (direction, handle, priority) EEXIST with the kernel's extended
//   ack; query/detach of nothing null/false, on a missing ifindex ENODEV
//   bpf_tc_query; hook destroy 'both' drops the qdisc, one direction flushes
//   its filters (true whenever the qdisc exists); removing a link drops its
//   hook (not compared: a deleted netdev takes its qdiscs along). Argument
//   errors are TypeErrors with the addon's messages.
// - interfaces: if_nametoindex ENODEV, if_indextoname ENXIO.
// - link events (links.cc, by hand: test/privileged/links.test.ts shows the
//   kernel's): addLink/removeLink reach every open linkWatch() as new/del
//   with name and ifindex (a new veth end: down, no carrier, operstate
//   down), batched and delivered on a later turn of the event loop;
//   overrunLinkWatches() drops what was not delivered for an overrun event,
//   breakLinkWatches() ends each watch with an error event (recvmsg), and
//   refuseLinkWatch() makes linkWatch() throw (socket). Argument errors are
//   the addon's TypeErrors.
// - the pin directory lock (lock.cc): lockDir of a directory that does not
//   exist ENOENT open, of a pin ENOTDIR open; held by another fd EAGAIN
//   (EWOULDBLOCK) flock; closeFd releases it. lockHolders: this process's pid
//   once per holding fd (by hand: the kernel lists each flock in /proc/locks).
// - netlink sockets (netlink.cc): netlinkOpen() gives a socket on `netlink`,
//   a FakeNetlinkKernel (fake-netlink.ts): generic netlink with its
//   controller, and the families a test installs there (FakeIpvs,
//   fake-ipvs.ts). Other protocols EPROTONOSUPPORT socket.
// Not modelled: LRU eviction order beyond "least recently written or looked
// up" (the kernel's is approximate and per CPU), program verification,
// cgroup hooks beyond a table of pinned links (cgroupLinkAttach: a program
// fd that is not one EBADF; a pin of the same cgroup and type swaps the
// program; cgroupQuery lists the programs linked there; netnsCookie is a
// constant), a program fd passed where a map fd is expected (EBADF here).
//
// Fault injection (failMap): fail the Nth matching map call, at record k of
// its batch (records before k applied, as the kernel leaves them), with any
// errno; with `times` for failures that persist. A map that fills up: give
// switchyardObject() a smaller max_entries for it.

import { constants } from 'node:os';
import { posix } from 'node:path';
import type { Link, LinkSource } from '../../src/host/links.ts';
import { MAPS, type MapSpec, type MapType } from '../../src/dataplane/bpf/layout.ts';
import { struct, U32 } from '../../src/dataplane/bpf/struct.ts';
import type {
  CgroupAttachType,
  NativeNetlink,
  NetlinkOpenOptions,
  LinkEvent,
  LinkWatchOptions,
  MapDumpResult,
  MapLookupResult,
  NativeBinding,
  NativeMapDesc,
  NativeLinkWatch,
  NativeMapInfo,
  NativeObject,
  NativeProgramDesc,
  NativeProgramInfo,
  TcAttachOptions,
  TcAttachResult,
  TcDirection,
  TcFilter,
  TestRunResult,
} from '../../src/native/binding.ts';
import type { NativeError } from '../../src/native/errors.ts';
import { FakeMap, FakeMapError, FakeMapStore } from './fake-maps.ts';
import { FakeNetlinkKernel } from './fake-netlink.ts';

/** glibc's strerror() text, as the addon's messages carry it. */
const ERRNO_TEXT = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EINTR: 'Interrupted system call',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  EINVAL: 'Invalid argument',
  ENOSPC: 'No space left on device',
  EOPNOTSUPP: 'Operation not supported',
  ENOTSUPP: 'Operation not supported (kernel ENOTSUPP)',
  ENOTDIR: 'Not a directory',
  ESRCH: 'No such process',
  ERANGE: 'Numerical result out of range',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EPROTONOSUPPORT: 'Protocol not supported',
  ENOBUFS: 'No buffer space available',
} as const;

export type Errno = keyof typeof ERRNO_TEXT;

/** The kernel-internal ENOTSUPP that bpf() lets escape (include/linux/errno.h); Node does not know it. */
const ENOTSUPP = 524;

function errnoOf(code: Errno): number {
  return code === 'ENOTSUPP' ? ENOTSUPP : constants.errno[code];
}

/** An error as native/src/errors.cc's SysError makes it. */
export function sysError(code: Errno, syscall: string, object: string, detail = '', done?: number): NativeError {
  const e = Object.assign(new Error(`${syscall} on ${object}: ${ERRNO_TEXT[code]}${detail}`), { errno: errnoOf(code), code, syscall });
  return done === undefined ? e : Object.assign(e, { done });
}

/** SysError::Invalid: a caller's mistake found before any syscall. */
function invalid(op: string, object: string, reason: string): NativeError {
  return Object.assign(new Error(`${op} on ${object}: ${reason}`), { errno: constants.errno.EINVAL, code: 'EINVAL', syscall: op });
}

function recordNote(i: number, count: number): string {
  return ` (record ${i} of ${count})`;
}

// enum bpf_map_type / bpf_prog_type values (uapi linux/bpf.h).
export const BPF_MAP_TYPE: Readonly<Record<MapType, number>> = { hash: 1, array: 2, percpu_hash: 5, percpu_array: 6, lru_hash: 9, lpm_trie: 11 };
export const BPF_PROG_TYPE_SCHED_CLS = 3;
const BPF_F_LOCK = 4;

export interface FakeProgramSpec {
  readonly name: string;
  readonly section: string;
  readonly type: number;
}

/** What openObject() finds in an ELF file. */
export interface FakeObjectSpec {
  /** In the object's order; every one declared LIBBPF_PIN_BY_NAME unless listed in `unpinned`. */
  readonly maps: readonly MapSpec[];
  readonly unpinned?: readonly string[];
  readonly programs: readonly FakeProgramSpec[];
}

/** Where unit tests find the fake object (any path works if registered in the constructor's `objects`). */
export const FAKE_OBJECT_PATH = '/fake/bpf/build/switchyard.bpf.o';

/**
 * bpf/build/switchyard.bpf.o as libbpf loads it: layout.ts's MAPS in the
 * object's order, all pinned by name, and the four tc programs of layout 2.
 * `maxEntries` stands for a build with a smaller limit (SY_BACKEND_MAX...),
 * so that a map fills up after a few entries.
 */
export function switchyardObject(opts: { readonly maxEntries?: Readonly<Record<string, number>> } = {}): FakeObjectSpec {
  const maps = Object.values(MAPS).map((m): MapSpec => ({ ...m, maxEntries: opts.maxEntries?.[m.name] ?? m.maxEntries }));
  return {
    maps: [...maps, RODATA],
    unpinned: [RODATA.name],
    programs: PROGRAM_NAMES_V2.map((name) => ({ name, section: 'tc', type: BPF_PROG_TYPE_SCHED_CLS })),
  };
}

/**
 * The object's .rodata (the zeroed struct sy_traffic a counter entry starts
 * from, bpf/lib/maps.h) as libbpf loads it: an internal, unpinned
 * one-element array named after the object ("switchya" + ".rodata",
 * BPF_OBJ_NAME_LEN), frozen (BPF_F_RDONLY_PROG).
 */
const RODATA: MapSpec = {
  name: 'switchya.rodata',
  type: 'array',
  key: U32,
  value: struct('.rodata', 40, [['data', 0, 'u8[]', 40]], 'scalar'),
  maxEntries: 1,
  flags: 0x80,
};

/** The programs of the layout 2 object (DATAPATH-v2.md), in the order the object declares them. */
export const PROGRAM_NAMES_V2 = ['sy_from_pod', 'sy_from_net', 'sy_to_pod', 'sy_to_net'] as const;

export type MapOp = 'update' | 'delete' | 'lookup' | 'dump';

/** A failure to inject into map calls. */
export interface MapFault {
  readonly op: MapOp;
  /** The map's name; any map when absent. */
  readonly map?: string;
  /** Matching calls that go through first: 0 fails the next matching call, 2 the third. */
  readonly skip?: number;
  /**
   * update/delete/lookup: the failing record; the records before it are
   * applied (the kernel stops a batch there). Only calls with more records
   * than this match. Default 0.
   */
  readonly after?: number;
  /** Default ENOMEM (a BPF_F_NO_PREALLOC hash allocates each element). */
  readonly code?: Errno;
  /** How many calls fail; default 1, Infinity until clearFaults(). */
  readonly times?: number;
}

/** One map call as the fake saw it (for tests of batching and order). */
export interface MapCall {
  readonly op: MapOp;
  readonly map: string;
  readonly count: number;
  readonly flags?: number;
}

interface KernelMap {
  readonly id: number;
  /** The kernel's name (BPF_OBJ_NAME_LEN: 15 characters). */
  readonly name: string;
  readonly type: number;
  readonly spec: MapSpec;
  readonly flags: number;
  readonly store: FakeMap;
}

interface KernelProg {
  readonly id: number;
  readonly name: string;
  readonly type: number;
}

type FdEntry =
  | { readonly kind: 'map'; readonly map: KernelMap }
  | { readonly kind: 'prog'; readonly prog: KernelProg }
  | { readonly kind: 'lock'; readonly path: string };

export interface FakeFilter extends TcFilter {
  readonly progId: number;
}

interface ArmedFault {
  readonly fault: MapFault;
  skip: number;
  times: number;
}

export interface FakeNativeOptions {
  /** ELF objects by path; default { [FAKE_OBJECT_PATH]: switchyardObject() }. */
  readonly objects?: Readonly<Record<string, FakeObjectSpec>>;
  /** numPossibleCpus(); default 2. */
  readonly cpus?: number;
}

export class FakeNativeBinding implements NativeBinding {
  readonly #objects: Readonly<Record<string, FakeObjectSpec>>;
  readonly #cpus: number;
  readonly #fds = new Map<number, FdEntry>();
  #nextMapId = 1;
  #nextProgId = 1;
  readonly #mounts = new Set<string>();
  readonly #dirs = new Set<string>();
  readonly #pins = new Map<string, KernelMap>();
  readonly #links = new Map<number, string>([[1, 'lo']]);
  /** The kernel hands out ifindexes from a counter: a new link never takes a recently freed one. */
  #lastIfindex = 1;
  /** ifindex -> filters by "direction/handle/priority"; present = the clsact qdisc exists. */
  readonly #hooks = new Map<number, Map<string, FakeFilter>>();
  readonly #watchers = new Set<{ readonly onChange: () => void }>();
  readonly #linkWatches = new Set<FakeLinkWatch>();
  /** linkWatch() fails with this until cleared (refuseLinkWatch). */
  #linkWatchRefusal: Errno | null = null;
  #faults: ArmedFault[] = [];
  /** Every program ever loaded, by id (the kernel keeps an attached program after its fds close). */
  readonly #progNames = new Map<number, string>();
  /** Every map call that reached a map, in order. */
  readonly calls: MapCall[] = [];
  /** The netlink side of this kernel: install families (FakeIpvs) here. */
  readonly netlink = new FakeNetlinkKernel();

  constructor(opts: FakeNativeOptions = {}) {
    this.#objects = opts.objects ?? { [FAKE_OBJECT_PATH]: switchyardObject() };
    this.#cpus = opts.cpus ?? 2;
  }

  // -------------------------------------------------------------------------
  // Test controls and views.

  failMap(fault: MapFault): void {
    this.#faults.push({ fault, skip: fault.skip ?? 0, times: fault.times ?? 1 });
  }

  clearFaults(): void {
    this.#faults = [];
  }

  /** Pinned paths (under a directory when given), sorted. */
  pins(under?: string): string[] {
    const prefix = under === undefined ? '' : `${clean(under)}/`;
    return [...this.#pins.keys()].filter((p) => p.startsWith(prefix)).sort();
  }

  /** rm of a pin (also the binding's unpin): the map lives on while fds hold it. */
  unpin(path: string): boolean {
    argString(path, 'path');
    const p = clean(path);
    if (!this.#inBpffs(posix.dirname(p))) throw invalid('unpin', path, 'not inside a bpffs');
    return this.#pins.delete(p);
  }

  /** The map pinned at path, to read or seed directly. */
  pinnedMap(path: string): FakeMap {
    const m = this.#pins.get(clean(path));
    if (m === undefined) throw new Error(`fake bpffs: nothing pinned at ${path}`);
    return m.store;
  }

  /**
   * Creates a map and pins it at path, as `bpftool map create PATH type ...
   * name ...` does: to leave a map that does not match the object.
   */
  pinMap(path: string, spec: MapSpec, overrides: { readonly name?: string; readonly flags?: number } = {}): void {
    const p = clean(path);
    if (!this.#inBpffs(posix.dirname(p))) throw new Error(`fake bpffs: ${posix.dirname(p)} is not in a bpffs`);
    if (this.#pins.has(p)) throw sysError('EEXIST', 'bpf_obj_pin', p);
    this.#pins.set(p, this.#createMap({ ...spec, name: overrides.name ?? spec.name, flags: overrides.flags ?? spec.flags }));
  }

  /** The maps of layout.ts's MAPS pinned under pinRoot, as a FakeMapStore (dumpCanonical, checkConsistent). */
  store(pinRoot: string): FakeMapStore {
    return new FakeMapStore(Object.values(MAPS).map((m) => this.pinnedMap(`${pinRoot}/${m.name}`)));
  }

  /** The name of a loaded program by id (what bpftool prog show prints), or undefined. */
  programName(id: number | undefined): string | undefined {
    return id === undefined ? undefined : this.#progNames.get(id);
  }

  /** Open fds (maps and programs); 0 when every handle was released. */
  openFds(): number {
    return this.#fds.size;
  }

  addLink(name: string, ifindex?: number): number {
    if ([...this.#links.values()].includes(name)) throw new Error(`fake links: ${name} exists`);
    const index = ifindex ?? this.#lastIfindex + 1;
    if (this.#links.has(index)) throw new Error(`fake links: ifindex ${index} is taken`);
    this.#lastIfindex = Math.max(this.#lastIfindex, index);
    this.#links.set(index, name);
    this.#notify();
    this.#linkEvent({ type: 'new', ifindex: index, name, up: false, lowerUp: false, operstate: 'down' });
    return index;
  }

  /** The link goes away, and with it its clsact hook and filters. */
  removeLink(name: string): void {
    const index = this.#ifindexOf(name);
    if (index === undefined) throw new Error(`fake links: no ${name}`);
    this.#links.delete(index);
    this.#hooks.delete(index);
    this.#notify();
    this.#linkEvent({ type: 'del', ifindex: index, name, up: false, lowerUp: false, operstate: 'down' });
  }

  /** Link watches open now (linkWatch() minus close()). */
  openLinkWatches(): number {
    return this.#linkWatches.size;
  }

  /** The kernel drops the events not read yet: each open watch gets an overrun instead. */
  overrunLinkWatches(): void {
    for (const w of this.#linkWatches) w.overrun();
  }

  /** Reading fails: each open watch gets an error event and stops (as recvmsg failing). */
  breakLinkWatches(code: Errno): void {
    for (const w of [...this.#linkWatches]) w.fail(sysError(code, 'recvmsg', 'rtnetlink socket'));
  }

  /** linkWatch() throws code (as socket(2) failing) until called with null. */
  refuseLinkWatch(code: Errno | null): void {
    this.#linkWatchRefusal = code;
  }

  links(): Link[] {
    return [...this.#links].map(([ifindex, name]) => ({ name, ifindex })).sort((a, b) => a.ifindex - b.ifindex);
  }

  /** The links of this fake namespace, with change events on addLink/removeLink. */
  linkSource(): LinkSource {
    return {
      list: () => this.links(),
      watch: (onChange, signal) => {
        const w = { onChange };
        this.#watchers.add(w);
        const stop = (): void => {
          this.#watchers.delete(w);
        };
        signal.addEventListener('abort', stop, { once: true });
        return { stop };
      },
    };
  }

  /** Filters on an interface, or null when it has no clsact hook. */
  filters(ifindex: number): FakeFilter[] | null {
    const hook = this.#hooks.get(ifindex);
    return hook === undefined ? null : [...hook.values()];
  }

  // -------------------------------------------------------------------------
  // NativeBinding: objects and bpffs.

  openObject(path: string, opts: { pinRoot: string; maxEntries?: Readonly<Record<string, number>> }): Promise<NativeObject> {
    argString(path, 'path');
    argObject(opts, 'opts');
    if (typeof opts.pinRoot !== 'string') throw new TypeError('opts.pinRoot must be a string');
    const pinRoot = opts.pinRoot;
    const maxEntries = opts.maxEntries ?? {};
    for (const [name, n] of Object.entries(maxEntries)) {
      if (!(Number.isInteger(n) && n >= 1 && n <= 0xffffffff)) throw new TypeError(`opts.maxEntries.${name} must be an integer from 1 to 2^32-1`);
    }
    return later(() => {
      this.ensureBpffs(pinRoot);
      const spec = this.#objects[path];
      if (spec === undefined) throw sysError('ENOENT', 'bpf_object__open_file', path);
      // bpf_map__set_max_entries between open and load, as object.cc does.
      for (const name of Object.keys(maxEntries)) {
        if (!spec.maps.some((m) => m.name === name)) throw sysError('ENOENT', 'bpf_map__set_max_entries', `${path} map ${name}`);
      }
      const maps = spec.maps.map((m) => (maxEntries[m.name] === undefined ? m : { ...m, maxEntries: maxEntries[m.name] as number }));
      return this.#load(path, pinRoot, { ...spec, maps });
    });
  }

  ensureBpffs(path: string): boolean {
    argString(path, 'path');
    if (path === '') throw invalid('ensureBpffs', '""', 'path is empty');
    const p = clean(path);
    const on = this.#inBpffs(p);
    if (!on) this.#mounts.add(p);
    for (let d = p; d !== '/' && d !== '.'; d = posix.dirname(d)) this.#dirs.add(d);
    return !on;
  }

  progIdFromFd(fd: number): number {
    argFd(fd, 'fd');
    const e = this.#fds.get(fd);
    if (e === undefined || e.kind === 'lock') throw sysError('EBADF', 'bpf_obj_get_info_by_fd', `program fd ${fd}`);
    return e.kind === 'prog' ? e.prog.id : e.map.id;
  }

  /** A program ever loaded here (the fake never unloads one), else ENOENT as the kernel's bpf_prog_get_fd_by_id. */
  progInfo(id: number): NativeProgramInfo {
    argU32(id, 'id');
    const name = this.#progNames.get(id);
    if (name === undefined) throw sysError('ENOENT', 'bpf_prog_get_fd_by_id', `program id ${id}`);
    return { id, name, type: BPF_PROG_TYPE_SCHED_CLS };
  }

  /**
   * The fake cannot execute BPF: it checks the fd as the kernel would, then
   * refuses with EOPNOTSUPP. Packet behaviour is tested against the real
   * program (test/privileged/packets.test.ts).
   */
  async progTestRun(progFd: number, data: Uint8Array): Promise<TestRunResult> {
    argFd(progFd, 'progFd');
    const e = this.#fds.get(progFd);
    if (e === undefined || e.kind !== 'prog') throw sysError('EBADF', 'bpf_prog_test_run_opts', `program fd ${progFd}`);
    throw sysError('EOPNOTSUPP', 'bpf_prog_test_run_opts', `program fd ${progFd} (${data.length} bytes in)`, ': the fake binding does not execute BPF');
  }

  // -------------------------------------------------------------------------
  // NativeBinding: the pin directory's lock (lock.cc).

  lockDir(path: string): number {
    argString(path, 'path');
    const p = clean(path);
    if (this.#pins.has(p)) throw sysError('ENOTDIR', 'open', path);
    if (!this.#dirs.has(p)) throw sysError('ENOENT', 'open', path);
    if (this.#lockFds(p).length > 0) throw sysError('EAGAIN', 'flock', path);
    return this.#openFd({ kind: 'lock', path: p });
  }

  /** Every holder is this process (one fake kernel per test process). */
  /** Pinned cgroup links: pin path -> {cgroup, attach type, program id}. */
  readonly cgroupLinks = new Map<string, { cgroup: string; type: CgroupAttachType; progId: number }>();

  cgroupLinkAttach(cgroupPath: string, progFd: number, attachType: CgroupAttachType, pinPath: string): { linkId: number; replaced: boolean } {
    const e = this.#fds.get(progFd);
    if (e === undefined || e.kind !== 'prog') throw sysError('EBADF', 'bpf_link_create', `cgroup ${cgroupPath} ${attachType} (prog fd ${progFd})`);
    const had = this.cgroupLinks.get(pinPath);
    const replaced = had !== undefined && had.cgroup === cgroupPath && had.type === attachType;
    this.cgroupLinks.set(pinPath, { cgroup: cgroupPath, type: attachType, progId: e.prog.id });
    return { linkId: 1, replaced };
  }

  cgroupLinkDetach(pinPath: string): boolean {
    return this.cgroupLinks.delete(pinPath);
  }

  cgroupQuery(cgroupPath: string, attachType: CgroupAttachType): number[] {
    return [...this.cgroupLinks.values()].filter((l) => l.cgroup === cgroupPath && l.type === attachType).map((l) => l.progId);
  }

  netnsCookie(): bigint {
    return 4096n;
  }

  /** Calls of sockDestroy, in order; it destroys nothing (no sockets here) and returns 0. */
  readonly sockDestroys: { family: 'IPv4' | 'IPv6'; proto: 'TCP' | 'UDP'; addr: Uint8Array; port: number; cookies: readonly bigint[] }[] = [];

  sockDestroy(family: 'IPv4' | 'IPv6', proto: 'TCP' | 'UDP', addr: Uint8Array, port: number, cookies: readonly bigint[]): number {
    this.sockDestroys.push({ family, proto, addr, port, cookies });
    return 0;
  }

  lockHolders(path: string): number[] {
    argString(path, 'path');
    const p = clean(path);
    if (!this.#dirs.has(p) && !this.#pins.has(p)) throw sysError('ENOENT', 'stat', path);
    return this.#lockFds(p).map(() => process.pid);
  }

  #lockFds(path: string): number[] {
    return [...this.#fds].filter(([, e]) => e.kind === 'lock' && e.path === path).map(([fd]) => fd);
  }

  // -------------------------------------------------------------------------
  // NativeBinding: maps.

  mapUpdate(fd: number, keys: Uint8Array, values: Uint8Array, keySize: number, valueSize: number, flags?: number): Promise<void> {
    argFd(fd, 'fd');
    const k = argBytes(keys, 'keys');
    const v = argBytes(values, 'values');
    argU32(keySize, 'keySize');
    argU32(valueSize, 'valueSize');
    const f = flags === undefined ? 0 : argNumber(flags, 'flags', 0, 0xffffffff);
    return later(() => this.#update(fd, k, v, keySize, valueSize, f));
  }

  mapDelete(fd: number, keys: Uint8Array, keySize: number): Promise<void> {
    argFd(fd, 'fd');
    const k = argBytes(keys, 'keys');
    argU32(keySize, 'keySize');
    return later(() => this.#delete(fd, k, keySize));
  }

  mapLookup(fd: number, keys: Uint8Array, keySize: number, valueSize: number): Promise<MapLookupResult> {
    argFd(fd, 'fd');
    const k = argBytes(keys, 'keys');
    argU32(keySize, 'keySize');
    argU32(valueSize, 'valueSize');
    return later(() => this.#lookup(fd, k, keySize, valueSize));
  }

  mapDump(fd: number, keySize: number, valueSize: number): Promise<MapDumpResult> {
    argFd(fd, 'fd');
    argU32(keySize, 'keySize');
    argU32(valueSize, 'valueSize');
    return later(() => this.#dump(fd, keySize, valueSize));
  }

  mapInfo(fd: number): NativeMapInfo {
    argFd(fd, 'fd');
    const m = this.#mapByFd(fd);
    return {
      id: m.id,
      name: m.name,
      type: m.type,
      keySize: m.spec.key.size,
      valueSize: m.spec.value.size,
      maxEntries: m.spec.maxEntries,
      valueStride: m.store.valueBytes,
      flags: m.flags,
    };
  }

  mapOpenPinned(path: string): number {
    argString(path, 'path');
    const p = clean(path);
    const m = this.#pins.get(p);
    if (m !== undefined) return this.#openFd({ kind: 'map', map: m });
    if (this.#dirs.has(p)) throw sysError('EACCES', 'bpf_obj_get', path);
    throw sysError('ENOENT', 'bpf_obj_get', path);
  }

  closeFd(fd: number): void {
    argFd(fd, 'fd');
    if (!this.#fds.delete(fd)) throw sysError('EBADF', 'close', `fd ${fd}`);
  }

  numPossibleCpus(): number {
    return this.#cpus;
  }

  // -------------------------------------------------------------------------
  // NativeBinding: tc and interfaces.

  tcAttach(ifindex: number, progFd: number, opts: TcAttachOptions): TcAttachResult {
    const ifx = argIfindex(ifindex);
    argFd(progFd, 'progFd');
    const f = argFilter(opts);
    const replace = opts.replace === undefined || Boolean(opts.replace);
    if (!this.#links.has(ifx)) throw sysError('ENODEV', 'bpf_tc_hook_create', this.#hookObject(ifx, f.direction));
    let hook = this.#hooks.get(ifx);
    if (hook === undefined) {
      hook = new Map();
      this.#hooks.set(ifx, hook);
    }
    const what = `${this.#filterObject(ifx, f)} (prog fd ${progFd})`;
    const e = this.#fds.get(progFd);
    if (e === undefined) throw sysError('EBADF', 'bpf_tc_attach', what);
    if (e.kind !== 'prog') throw sysError('EINVAL', 'bpf_tc_attach', what);
    const key = filterKey(f);
    if (hook.has(key) && !replace) throw sysError('EEXIST', 'bpf_tc_attach', what, '\nlibbpf: Kernel error message: Filter already exists');
    hook.set(key, { direction: f.direction, handle: f.handle, priority: f.priority, progId: e.prog.id });
    return { progId: e.prog.id, handle: f.handle, priority: f.priority };
  }

  tcDetach(ifindex: number, filter: TcFilter): boolean {
    const ifx = argIfindex(ifindex);
    const f = argFilter(filter);
    const hook = this.#queryHook(ifx, f);
    return hook?.delete(filterKey(f)) ?? false;
  }

  tcQuery(ifindex: number, filter: TcFilter): { progId: number } | null {
    const ifx = argIfindex(ifindex);
    const f = argFilter(filter);
    const found = this.#queryHook(ifx, f)?.get(filterKey(f));
    return found === undefined ? null : { progId: found.progId };
  }

  tcHookDestroy(ifindex: number, direction?: TcDirection | 'both'): boolean {
    const ifx = argIfindex(ifindex);
    const d = direction ?? 'both';
    if (d !== 'ingress' && d !== 'egress' && d !== 'both') throw new TypeError("direction must be 'ingress', 'egress' or 'both'");
    if (!this.#links.has(ifx)) throw sysError('ENODEV', 'bpf_tc_hook_destroy', this.#hookObject(ifx, d));
    const hook = this.#hooks.get(ifx);
    if (hook === undefined) return false;
    if (d === 'both') this.#hooks.delete(ifx);
    else for (const [key, f] of hook) if (f.direction === d) hook.delete(key);
    return true;
  }

  ifNameToIndex(name: string): number {
    argString(name, 'name');
    const index = this.#ifindexOf(name);
    if (index === undefined) throw sysError('ENODEV', 'if_nametoindex', `interface ${name}`);
    return index;
  }

  netlinkOpen(protocol: number, opts?: NetlinkOpenOptions): NativeNetlink {
    if (!Number.isInteger(protocol) || protocol < 0 || protocol > 31) throw new TypeError('protocol must be an integer in [0, 31]');
    return this.netlink.open(protocol, opts);
  }

  linkWatch(onEvents: (events: LinkEvent[]) => void, opts?: LinkWatchOptions): NativeLinkWatch {
    if (typeof onEvents !== 'function') throw new TypeError('onEvents must be a function');
    if (opts !== undefined) {
      argObject(opts, 'opts');
      const r = opts.rcvbuf;
      if (r !== undefined && !(typeof r === 'number' && Number.isInteger(r) && r >= 1 && r <= 0x3fffffff))
        throw new TypeError(typeof r === 'number' ? 'opts.rcvbuf must be an integer in [1, 1073741823]' : 'opts.rcvbuf must be a number');
    }
    if (this.#linkWatchRefusal !== null) throw sysError(this.#linkWatchRefusal, 'socket', 'rtnetlink (NETLINK_ROUTE)');
    const w = new FakeLinkWatch(onEvents, () => this.#linkWatches.delete(w));
    this.#linkWatches.add(w);
    return w;
  }

  ifIndexToName(index: number): string {
    const ifx = argIfindex(index);
    const name = this.#links.get(ifx);
    if (name === undefined) throw sysError('ENXIO', 'if_indextoname', `ifindex ${ifx}`);
    return name;
  }

  // -------------------------------------------------------------------------
  // Objects.

  #load(path: string, pinRoot: string, spec: FakeObjectSpec): NativeObject {
    const root = clean(pinRoot);
    const mapDescs: NativeMapDesc[] = [];
    const pinnedHere: string[] = [];
    const opened: number[] = [];
    for (const ms of spec.maps) {
      const pinned = !(spec.unpinned ?? []).includes(ms.name);
      const pinPath = pinned ? `${pinRoot}/${ms.name}` : null;
      const key = `${root}/${ms.name}`;
      let km = pinned ? this.#pins.get(key) : undefined;
      let name = ms.name;
      if (km !== undefined) {
        if (!reuseCompatible(km, ms)) {
          for (const p of pinnedHere) this.#pins.delete(p);
          for (const fd of opened) this.#fds.delete(fd);
          throw sysError(
            'EINVAL',
            'bpf_object__load',
            `${path} (pin root ${pinRoot})`,
            `\nlibbpf: couldn't reuse pinned map at '${pinPath}': parameter mismatch\nlibbpf: map '${ms.name}': error reusing pinned map\n` +
              `libbpf: map '${ms.name}': failed to create: Invalid argument(-22)\nlibbpf: failed to load object '${path}'`,
          );
        }
        name = km.name; // libbpf takes the reused map's name
      } else {
        km = this.#createMap(ms);
        if (pinned) {
          this.#pins.set(key, km);
          pinnedHere.push(key);
        }
      }
      const fd = this.#openFd({ kind: 'map', map: km });
      opened.push(fd);
      mapDescs.push({
        name,
        fd,
        type: km.type,
        keySize: km.spec.key.size,
        valueSize: km.spec.value.size,
        valueStride: km.store.valueBytes,
        maxEntries: km.spec.maxEntries,
        pinPath,
      });
    }
    const progDescs: NativeProgramDesc[] = spec.programs.map((p) => {
      const prog: KernelProg = { id: this.#nextProgId++, name: p.name, type: p.type };
      this.#progNames.set(prog.id, p.name);
      const fd = this.#openFd({ kind: 'prog', prog });
      opened.push(fd);
      return { name: p.name, section: p.section, fd, type: p.type };
    });
    return new FakeObject(this.#fds, path, mapDescs, progDescs);
  }

  #createMap(spec: MapSpec): KernelMap {
    const store = new FakeMap(spec, { maxEntries: spec.maxEntries, deleteMissing: 'enoent', cpus: this.#cpus });
    return { id: this.#nextMapId++, name: spec.name.slice(0, 15), type: BPF_MAP_TYPE[spec.type], spec, flags: spec.flags, store };
  }

  #openFd(entry: FdEntry): number {
    let fd = 3;
    while (this.#fds.has(fd)) fd++;
    this.#fds.set(fd, entry);
    return fd;
  }

  #inBpffs(path: string): boolean {
    for (let d = path; ; d = posix.dirname(d)) {
      if (this.#mounts.has(d)) return true;
      if (d === '/' || d === '.') return false;
    }
  }

  // -------------------------------------------------------------------------
  // Maps: the addon's workers (maps.cc) over the kernel's per-element ops.

  #mapByFd(fd: number): KernelMap {
    const e = this.#fds.get(fd);
    if (e?.kind !== 'map') throw sysError('EBADF', 'bpf_obj_get_info_by_fd', `map fd ${fd}`);
    return e.map;
  }

  /** CheckLayout + CountRecords: the caller's sizes against the map's. */
  #layout(op: string, fd: number, keys: Buffer, keySize: number, valueSize: number, withValues: boolean): { m: KernelMap; count: number } {
    const m = this.#mapByFd(fd);
    const what = `map fd ${fd} (${m.name})`;
    if (keySize === 0 || keySize !== m.spec.key.size) throw invalid(op, what, `key size ${keySize} does not match the map's ${m.spec.key.size}`);
    if (withValues && valueSize !== m.spec.value.size) throw invalid(op, what, `value size ${valueSize} does not match the map's ${m.spec.value.size}`);
    if (keys.length % keySize !== 0) throw invalid(op, `map fd ${fd}`, `keys hold ${keys.length} bytes, not a multiple of the key size ${keySize}`);
    return { m, count: keys.length / keySize };
  }

  #update(fd: number, keys: Buffer, values: Buffer, keySize: number, valueSize: number, flags: number): void {
    const { m, count } = this.#layout('mapUpdate', fd, keys, keySize, valueSize, true);
    const stride = m.store.valueBytes;
    if (values.length !== count * stride) throw invalid('mapUpdate', `map fd ${fd}`, `${count} keys need ${count * stride} value bytes, got ${values.length}`);
    this.calls.push({ op: 'update', map: m.name, count, flags });
    const fault = this.#takeFault('update', m.name, count);
    const elem = (i: number): void => {
      fault.at(i);
      m.store.update(keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * stride, (i + 1) * stride), flags);
    };
    let done = 0;
    // The kernel's batch update takes no per-element flag but BPF_F_LOCK.
    if (count > 0 && (flags & ~BPF_F_LOCK) === 0) {
      // generic_map_update_batch refuses BPF_F_LOCK on a value without a spin lock before it starts (count untouched).
      const r = (flags & BPF_F_LOCK) !== 0 ? { code: 'EINVAL' as Errno, n: count } : runBatch(0, count, elem);
      if (r === null) return;
      done = r.n < count ? r.n : 0;
      if (!batchUnsupported(r.code)) throw sysError(r.code, 'bpf_map_update_batch', `map fd ${fd}`, recordNote(done, count), done);
    }
    for (let i = done; i < count; i++) {
      try {
        elem(i);
      } catch (e) {
        throw sysError(codeOf(e), 'bpf_map_update_elem', `map fd ${fd}`, recordNote(i, count), i);
      }
    }
  }

  #delete(fd: number, keys: Buffer, keySize: number): void {
    const { m, count } = this.#layout('mapDelete', fd, keys, keySize, 0, false);
    this.calls.push({ op: 'delete', map: m.name, count });
    const fault = this.#takeFault('delete', m.name, count);
    const elem = (i: number): void => {
      fault.at(i);
      m.store.delete(keys.subarray(i * keySize, (i + 1) * keySize));
    };
    // Hash maps have a delete batch; arrays do not (the kernel says ENOTSUPP, count untouched).
    const hasBatch = m.spec.type === 'hash' || m.spec.type === 'lru_hash' || m.spec.type === 'percpu_hash';
    let done = 0;
    while (done < count) {
      const r = hasBatch ? runBatch(done, count, elem) : { code: 'ENOTSUPP' as Errno, n: count - done };
      if (r === null) return;
      const reported = r.n < count - done;
      if (r.code === 'ENOENT' && reported) {
        done += r.n + 1; // the batch stopped at a missing key: skip it, go on after it
        continue;
      }
      if (!batchUnsupported(r.code) && r.code !== 'ENOENT') {
        const at = done + (reported ? r.n : 0);
        throw sysError(r.code, 'bpf_map_delete_batch', `map fd ${fd}`, recordNote(at, count), at);
      }
      if (reported) done += r.n;
      break;
    }
    for (let i = done; i < count; i++) {
      try {
        elem(i);
      } catch (e) {
        const code = codeOf(e);
        if (code !== 'ENOENT') throw sysError(code, 'bpf_map_delete_elem', `map fd ${fd}`, recordNote(i, count), i);
      }
    }
  }

  #lookup(fd: number, keys: Buffer, keySize: number, valueSize: number): MapLookupResult {
    const { m, count } = this.#layout('mapLookup', fd, keys, keySize, valueSize, true);
    this.calls.push({ op: 'lookup', map: m.name, count });
    const fault = this.#takeFault('lookup', m.name, count);
    const stride = m.store.valueBytes;
    const values = Buffer.alloc(count * stride);
    const found = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      let v: Buffer | undefined;
      try {
        fault.at(i);
        v = m.store.lookup(keys.subarray(i * keySize, (i + 1) * keySize));
      } catch (e) {
        throw sysError(codeOf(e), 'bpf_map_lookup_elem', `map fd ${fd}`, recordNote(i, count));
      }
      if (v === undefined) continue;
      v.copy(values, i * stride);
      found[i] = 1;
    }
    return { values, found };
  }

  #dump(fd: number, keySize: number, valueSize: number): MapDumpResult {
    const { m } = this.#layout('mapDump', fd, Buffer.alloc(0), keySize, valueSize, true);
    this.calls.push({ op: 'dump', map: m.name, count: 0 });
    try {
      this.#takeFault('dump', m.name, 1).at(0);
    } catch (e) {
      throw sysError(codeOf(e), 'bpf_map_get_next_key', `map fd ${fd}`);
    }
    let entries: Array<[Buffer, Buffer]>;
    if (m.spec.type === 'array' || m.spec.type === 'percpu_array') {
      entries = [];
      for (let i = 0; i < m.spec.maxEntries; i++) {
        const k = Buffer.alloc(4);
        k.writeUInt32LE(i);
        entries.push([k, m.store.lookup(k) as Buffer]);
      }
    } else {
      entries = m.store
        .dump()
        .map((e) => ({ e, h: fnv1a(e[0]) }))
        .sort((a, b) => a.h - b.h || Buffer.compare(a.e[0], b.e[0]))
        .map(({ e }) => e);
    }
    return { keys: Buffer.concat(entries.map((e) => e[0])), values: Buffer.concat(entries.map((e) => e[1])), count: entries.length };
  }

  /** The fault for this call, if one is due: at(i) throws at its record. */
  #takeFault(op: MapOp, map: string, count: number): { at(i: number): void } {
    const none = { at(): void {} };
    const armed = this.#faults.find((a) => a.fault.op === op && (a.fault.map === undefined || a.fault.map === map) && count > (a.fault.after ?? 0));
    if (armed === undefined) return none;
    if (armed.skip > 0) {
      armed.skip--;
      return none;
    }
    if (--armed.times <= 0) this.#faults = this.#faults.filter((a) => a !== armed);
    const after = armed.fault.after ?? 0;
    const code = armed.fault.code ?? 'ENOMEM';
    let fired = false;
    return {
      at(i: number): void {
        if (i !== after || fired) return;
        fired = true; // one failure per call: a retry of the record (the addon's fallback) goes through
        throw new InjectedFault(code, `injected ${code} at record ${i} of ${op} on ${map}`);
      },
    };
  }

  // -------------------------------------------------------------------------
  // tc.

  #ifindexOf(name: string): number | undefined {
    for (const [i, n] of this.#links) if (n === name) return i;
    return undefined;
  }

  /** QueryFilter: the hook a filter would be on; null when there is no qdisc. */
  #queryHook(ifx: number, f: TcFilter): Map<string, FakeFilter> | null {
    if (!this.#links.has(ifx)) throw sysError('ENODEV', 'bpf_tc_query', this.#filterObject(ifx, f));
    return this.#hooks.get(ifx) ?? null;
  }

  #hookObject(ifx: number, point: TcDirection | 'both'): string {
    const name = this.#links.get(ifx);
    const dev = name === undefined ? '(ifindex ' : `${name} (ifindex `;
    return `${dev}${ifx}) ${point === 'both' ? 'ingress+egress' : point}`;
  }

  #filterObject(ifx: number, f: TcFilter): string {
    return `${this.#hookObject(ifx, f.direction)} handle ${f.handle} priority ${f.priority}`;
  }

  #notify(): void {
    for (const w of [...this.#watchers]) w.onChange();
  }

  #linkEvent(e: LinkEvent): void {
    for (const w of this.#linkWatches) w.push(e);
  }
}

/**
 * An open linkWatch(): events queue up as the kernel's socket buffer does
 * and are delivered in one batch on a later turn of the event loop (the
 * addon's reader thread hands each read to the main thread). close() drops
 * what was not delivered.
 */
class FakeLinkWatch implements NativeLinkWatch {
  readonly #onEvents: (events: LinkEvent[]) => void;
  readonly #onClose: () => void;
  #queue: LinkEvent[] = [];
  #scheduled: NodeJS.Immediate | null = null;
  #closed = false;

  constructor(onEvents: (events: LinkEvent[]) => void, onClose: () => void) {
    this.#onEvents = onEvents;
    this.#onClose = onClose;
  }

  push(e: LinkEvent): void {
    this.#queue.push(e);
    this.#scheduled ??= setImmediate(() => {
      this.#scheduled = null;
      const batch = this.#queue;
      this.#queue = [];
      if (!this.#closed && batch.length > 0) this.#onEvents(batch);
    });
  }

  overrun(): void {
    this.#queue = [];
    this.push({ type: 'overrun' });
  }

  fail(error: Error): void {
    this.push({ type: 'error', error });
    this.#onClose(); // no events after the error; the handle stays to be closed
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = null;
    this.#onClose();
  }
}

/** A loaded object: its fds, until close(). */
class FakeObject implements NativeObject {
  readonly #fds: Map<number, FdEntry>;
  readonly #path: string;
  readonly #maps: NativeMapDesc[];
  readonly #programs: NativeProgramDesc[];
  readonly #owned: Array<[number, FdEntry]>;
  #closed = false;

  constructor(fds: Map<number, FdEntry>, path: string, maps: NativeMapDesc[], programs: NativeProgramDesc[]) {
    this.#fds = fds;
    this.#path = path;
    this.#maps = maps;
    this.#programs = programs;
    this.#owned = [...maps, ...programs].map((d) => [d.fd, fds.get(d.fd) as FdEntry]);
  }

  maps(): NativeMapDesc[] {
    this.#loaded('maps');
    return this.#maps.map((m) => ({ ...m }));
  }

  programs(): NativeProgramDesc[] {
    this.#loaded('programs');
    return this.#programs.map((p) => ({ ...p }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [fd, entry] of this.#owned) if (this.#fds.get(fd) === entry) this.#fds.delete(fd);
  }

  #loaded(method: string): void {
    if (this.#closed) throw sysError('EBADF', method, `closed BPF object ${this.#path}`);
  }
}

/** A failure the test asked for, raised where the kernel's element op would fail. */
class InjectedFault extends Error {
  readonly code: Errno;
  constructor(code: Errno, message: string) {
    super(message);
    this.code = code;
  }
}

/** Kernel batch: records from `from` in order, stopping at the first error; n = records done. Null when all went through. */
function runBatch(from: number, count: number, elem: (i: number) => void): { code: Errno; n: number } | null {
  for (let i = from; i < count; i++) {
    try {
      elem(i);
    } catch (e) {
      return { code: codeOf(e), n: i - from };
    }
  }
  return null;
}

function codeOf(e: unknown): Errno {
  if (e instanceof FakeMapError || e instanceof InjectedFault) return e.code;
  throw e;
}

/** The kernel has no batch op for the map (ENOTSUPP/EOPNOTSUPP) or rejected the command itself (EINVAL). */
function batchUnsupported(code: Errno): boolean {
  return code === 'EINVAL' || code === 'ENOTSUPP' || code === 'EOPNOTSUPP';
}

/** libbpf's map_is_reuse_compat. */
function reuseCompatible(m: KernelMap, spec: MapSpec): boolean {
  return (
    m.type === BPF_MAP_TYPE[spec.type] &&
    m.spec.key.size === spec.key.size &&
    m.spec.value.size === spec.value.size &&
    m.spec.maxEntries === spec.maxEntries &&
    m.flags === spec.flags
  );
}

function filterKey(f: TcFilter): string {
  return `${f.direction}/${f.handle}/${f.priority}`;
}

function fnv1a(b: Buffer): number {
  let h = 0x811c9dc5;
  for (const byte of b) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

/** A path as bpffs sees it: no duplicate or trailing slashes. */
function clean(path: string): string {
  const p = posix.normalize(path);
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/** Runs f on a later turn, as the addon's worker threads settle their promises. */
function later<T>(f: () => T): Promise<T> {
  return new Promise((resolve, reject) => {
    setImmediate(() => {
      try {
        resolve(f());
      } catch (e) {
        reject(e);
      }
    });
  });
}

// The addon's argument checks (args.h, tc.cc): a wrong type is the caller's bug, a TypeError.

function argNumber(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number`);
  if (!Number.isInteger(v) || v < min || v > max) throw new TypeError(`${name} must be an integer in [${min}, ${max}]`);
  return v;
}

function argFd(v: unknown, name: string): number {
  return argNumber(v, name, 0, 0x7fffffff);
}

function argU32(v: unknown, name: string): number {
  return argNumber(v, name, 0, 0xffffffff);
}

function argIfindex(v: unknown): number {
  return argNumber(v, 'ifindex', 1, 0x7fffffff);
}

function argString(v: unknown, name: string): void {
  if (typeof v !== 'string') throw new TypeError(`${name} must be a string`);
}

function argObject(v: unknown, name: string): void {
  if (typeof v !== 'object' || v === null) throw new TypeError(`${name} must be an object`);
}

/** Copies the bytes, as the addon does before handing them to a worker. */
function argBytes(v: unknown, name: string): Buffer {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${name} must be a Buffer or Uint8Array`);
  return Buffer.from(v);
}

function argFilter(o: unknown): TcFilter {
  argObject(o, 'opts');
  const { direction, handle, priority } = o as Record<string, unknown>;
  if (direction !== 'ingress' && direction !== 'egress') throw new TypeError("direction must be 'ingress' or 'egress'");
  const u = (v: unknown, name: string, max: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new TypeError(`${name} must be an integer in [1, ${max}]`);
    return v;
  };
  return { direction, handle: u(handle, 'handle', 0xffffffff), priority: u(priority, 'priority', 0xffff) };
}
