// binding.ts: loads native/build/Release/switchyard_native.node and states the
// exact shape of what it exports (native/src/*.cc). Everything else in the
// project reaches the addon through this interface, so a fake can stand in.
//
// Keys and values cross as Uint8Arrays holding `count` fixed-size records
// back to back. For per-CPU maps one value record is `valueStride` bytes
// (roundup(valueSize, 8) * numPossibleCpus()), for other maps `valueSize`.
// Every failure is an Error with errno/code/syscall (see errors.ts).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { SwitchyardError } from '../util/errors.ts';
import type { NativeError } from './errors.ts';

export type TcDirection = 'ingress' | 'egress';

export interface NativeMapDesc {
  name: string;
  fd: number;
  type: number; // enum bpf_map_type
  keySize: number;
  valueSize: number;
  valueStride: number;
  maxEntries: number;
  pinPath: string | null; // set for maps declared with LIBBPF_PIN_BY_NAME
}

export interface NativeProgramDesc {
  name: string;
  section: string;
  fd: number;
  type: number; // enum bpf_prog_type
}

// A loaded BPF object. Its fds are valid until close(); pins stay.
export interface NativeObject {
  maps(): NativeMapDesc[];
  programs(): NativeProgramDesc[];
  close(): void;
}

export interface NativeProgramInfo {
  id: number;
  name: string;
  type: number; // enum bpf_prog_type
}

export interface NativeMapInfo {
  id: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  valueStride: number;
  maxEntries: number;
  flags: number;
}

export interface MapLookupResult {
  values: Buffer; // count * valueStride bytes; zeros where not found
  found: Uint8Array; // 1 where the key was present
}

export interface MapDumpResult {
  keys: Buffer;
  values: Buffer;
  count: number;
}

export interface TcFilter {
  direction: TcDirection;
  handle: number; // 1..2^32-1
  priority: number; // 1..65535
}

export interface TcAttachOptions extends TcFilter {
  replace?: boolean; // default true (BPF_TC_F_REPLACE)
}

export interface TcAttachResult {
  progId: number;
  handle: number;
  priority: number;
}

export interface TestRunOptions {
  repeat?: number; // runs averaged into durationNs; default 1
  ctx?: Uint8Array; // struct __sk_buff in (tc programs); the kernel accepts only some fields
  dataSizeOut?: number; // room for the output packet; default 64 KiB + 14 (ENOSPC when it is short)
}

export interface TestRunResult {
  retval: number; // the program's return value (a tc verdict: TC_ACT_*)
  data: Buffer; // the packet as the program left it
  ctx?: Buffer; // struct __sk_buff out, when ctx was given: as long as the kernel's own (184 bytes before 5.16)
  durationNs: number; // average per run
}

/** IF_OPER_* (uapi linux/if.h, RFC 2863 ifOperStatus). */
export type LinkOperState = 'unknown' | 'notpresent' | 'down' | 'lowerlayerdown' | 'testing' | 'dormant' | 'up';

/**
 * One rtnetlink link event (links.cc). 'new': RTM_NEWLINK, a link appeared
 * or its name, flags or operstate changed; 'del': RTM_DELLINK, it went (or
 * left the namespace). 'overrun': the socket's buffer overflowed and events
 * were lost (relist the links). 'error': reading failed; no events follow.
 */
export type LinkEvent =
  | {
      type: 'new' | 'del';
      ifindex: number;
      name: string; // IFLA_IFNAME ('' if the message had none)
      up: boolean; // IFF_UP
      lowerUp: boolean; // IFF_LOWER_UP (carrier)
      operstate: LinkOperState | null; // IFLA_OPERSTATE, null if absent
    }
  | { type: 'overrun' }
  | { type: 'error'; error: Error };

/** A subscription to link events; close() is idempotent. An unclosed handle stops when collected. */
export interface NativeLinkWatch {
  close(): void;
}

export interface LinkWatchOptions {
  rcvbuf?: number; // the socket's receive buffer in bytes; default 4 MiB
}

/**
 * One message's outcome in NativeNetlink.request(): the reply messages that
 * carried its sequence number (whole nlmsghdr-framed messages back to back,
 * the terminating ACK or NLMSG_DONE left out; empty for a plain ACK), and
 * null or the kernel's error for it (errno, code, syscall 'netlink'; the
 * kernel's extended-ack text in the message when it gave one).
 */
export interface NetlinkResult {
  replies: Buffer;
  error: NativeError | null;
}

/** A request/reply netlink socket (netlink.cc); close() is idempotent. */
export interface NativeNetlink {
  /** The socket's netlink port id (nl_pid), null once closed. */
  readonly portId: number | null;
  /** The receive buffer the kernel granted (SO_RCVBUF), null once closed. */
  readonly rcvbuf: number | null;
  /**
   * Sends each message of `messages` (whole messages back to back, each
   * padded to 4 bytes) with its own sequence number and NLM_F_ACK unless it
   * is a dump, and resolves once every one has ended: one result per message,
   * in order. labels[i] names message i in its error. Rejects only when the
   * socket itself fails (sendmsg, recvmsg, no answer in 60 s) or was closed.
   */
  request(messages: Uint8Array, labels?: readonly string[]): Promise<NetlinkResult[]>;
  close(): void;
}

export interface NetlinkOpenOptions {
  rcvbuf?: number; // the socket's receive buffer in bytes; default 4 MiB
}

export interface NativeBinding {
  // Opens and loads an ELF object; LIBBPF_PIN_BY_NAME maps are reused from
  // or pinned in pinRoot, which ensureBpffs() prepares first. maxEntries
  // (map name -> max_entries) overrides the object's capacities before load.
  openObject(path: string, opts: { pinRoot: string; maxEntries?: Readonly<Record<string, number>> }): Promise<NativeObject>;
  // mkdir -p path, mounting a bpffs there unless it is already on one. True when it mounted.
  ensureBpffs(path: string): boolean;
  // Removes a pin (unlink); the object lives on while fds or programs hold it.
  // False when nothing was pinned there; EINVAL for a path outside a bpffs.
  unpin(path: string): boolean;
  progIdFromFd(fd: number): number;
  // A loaded program by id (tcQuery's progId): its kernel name (15 characters
  // at most) and type. ENOENT bpf_prog_get_fd_by_id when there is none.
  progInfo(id: number): NativeProgramInfo;

  mapUpdate(fd: number, keys: Uint8Array, values: Uint8Array, keySize: number, valueSize: number, flags?: number): Promise<void>;
  mapDelete(fd: number, keys: Uint8Array, keySize: number): Promise<void>; // absent keys are not an error
  mapLookup(fd: number, keys: Uint8Array, keySize: number, valueSize: number): Promise<MapLookupResult>;
  mapDump(fd: number, keySize: number, valueSize: number): Promise<MapDumpResult>;
  mapInfo(fd: number): NativeMapInfo;
  mapOpenPinned(path: string): number; // the caller owns the fd: closeFd() it
  closeFd(fd: number): void;
  numPossibleCpus(): number;

  tcAttach(ifindex: number, progFd: number, opts: TcAttachOptions): TcAttachResult;
  tcDetach(ifindex: number, filter: TcFilter): boolean; // false: nothing was attached there
  tcQuery(ifindex: number, filter: TcFilter): { progId: number } | null;
  // 'both' (default) removes the clsact qdisc; one direction flushes its filters. False: nothing there.
  tcHookDestroy(ifindex: number, direction?: TcDirection | 'both'): boolean;

  ifNameToIndex(name: string): number;
  ifIndexToName(index: number): string;

  // links.cc: rtnetlink link events of the network namespace the process
  // runs in, delivered in batches (one array per read of the socket) on the
  // main thread until close(). Does not keep the process alive.
  linkWatch(onEvents: (events: LinkEvent[]) => void, opts?: LinkWatchOptions): NativeLinkWatch;

  // netlink.cc: a netlink socket of `protocol` (NETLINK_ROUTE 0,
  // NETLINK_GENERIC 16, ...) in the network namespace the process runs in.
  netlinkOpen(protocol: number, opts?: NetlinkOpenOptions): NativeNetlink;

  // BPF_PROG_TEST_RUN: runs the program once (or `repeat` times) on a copy of
  // data (at least 14 bytes for tc programs); map updates it makes are real.
  progTestRun(progFd: number, data: Uint8Array, opts?: TestRunOptions): Promise<TestRunResult>;

  // lock.cc: a non-blocking exclusive flock(2) on the directory path (it must
  // exist); the returned fd holds it until closeFd() or exit. Held by another
  // open file (another daemon, or another lockDir() in this process):
  // EWOULDBLOCK, which Linux names EAGAIN (code 'EAGAIN', syscall 'flock').
  lockDir(path: string): number;
  // Pids holding a flock on the directory path, from /proc/locks (holders in
  // another PID namespace are left out): for the message while waiting.
  lockHolders(path: string): number[];

  // cgroup.cc: cgroup v2 programs through pinned bpf_links (5.7+). Attach
  // pins a link at pinPath; a link already pinned there for the same cgroup
  // and attach type gets the new program in place (bpf_link_update, no gap).
  cgroupLinkAttach(cgroupPath: string, progFd: number, attachType: CgroupAttachType, pinPath: string): { linkId: number; replaced: boolean };
  // Detaches and unpins the link pinned at pinPath; false when none was.
  cgroupLinkDetach(pinPath: string): boolean;
  // Ids of the programs attached to the cgroup at that attach type (bpf_prog_query).
  cgroupQuery(cgroupPath: string, attachType: CgroupAttachType): number[];
  // SO_NETNS_COOKIE of the calling thread's network namespace (5.14+; ENOPROTOOPT before).
  netnsCookie(): bigint;

  // sockdiag.cc: destroys (SOCK_DESTROY over NETLINK_SOCK_DIAG) the TCP or
  // UDP sockets of this network namespace whose peer is addr:port (4 or 16
  // bytes) and whose cookie is listed; returns how many. EOPNOTSUPP without
  // CONFIG_INET_DIAG_DESTROY.
  sockDestroy(family: 'IPv4' | 'IPv6', proto: 'TCP' | 'UDP', addr: Uint8Array, port: number, cookies: readonly bigint[]): number;
}

/** The cgroup socket-address hooks the addon attaches (BPF_CGROUP_INET*_CONNECT, UDP*_SENDMSG/RECVMSG, INET*_GETPEERNAME). */
export type CgroupAttachType = 'connect4' | 'connect6' | 'sendmsg4' | 'sendmsg6' | 'recvmsg4' | 'recvmsg6' | 'getpeername4' | 'getpeername6';

// BPF_ANY / BPF_NOEXIST / BPF_EXIST for mapUpdate's flags (uapi linux/bpf.h).
export const UpdateFlags = { any: 0, noExist: 1, exist: 2 } as const;

const bindingFunctions: ReadonlyArray<keyof NativeBinding> = [
  'openObject',
  'ensureBpffs',
  'unpin',
  'progIdFromFd',
  'progInfo',
  'mapUpdate',
  'mapDelete',
  'mapLookup',
  'mapDump',
  'mapInfo',
  'mapOpenPinned',
  'closeFd',
  'numPossibleCpus',
  'tcAttach',
  'tcDetach',
  'tcQuery',
  'tcHookDestroy',
  'ifNameToIndex',
  'ifIndexToName',
  'linkWatch',
  'netlinkOpen',
  'progTestRun',
  'lockDir',
  'lockHolders',
  'cgroupLinkAttach',
  'cgroupLinkDetach',
  'cgroupQuery',
  'netnsCookie',
  'sockDestroy',
];

// The build output, relative to this file: src/native/ -> repo root.
export const defaultBindingPath = new URL('../../native/build/Release/switchyard_native.node', import.meta.url);

// Loads the addon (Node caches it per process) and checks that it exports
// every function declared above, so a stale build fails here by name.
export function loadBinding(file: URL | string = defaultBindingPath): NativeBinding {
  const require = createRequire(import.meta.url);
  const path = typeof file === 'string' ? file : fileURLToPath(file);
  let loaded: unknown;
  try {
    loaded = require(path);
  } catch (e) {
    throw new SwitchyardError('ERR_SY_NATIVE_ADDON', `cannot load the native addon ${path} (build it with npm run build:native)`, { cause: e });
  }
  const missing = bindingFunctions.filter((name) => typeof (loaded as Record<string, unknown>)[name] !== 'function');
  if (missing.length > 0) {
    throw new SwitchyardError('ERR_SY_NATIVE_ADDON', `native addon ${path} lacks ${missing.join(', ')}: rebuild it with npm run build:native`);
  }
  return loaded as NativeBinding;
}
