// Socket-level load balancing for the node's own network namespace: owns
// bpf/build/sock.bpf.o (cgroup connect/sendmsg/recvmsg/getpeername hooks,
// v4 and v6), its attachment to a cgroup v2 directory through pinned
// bpf_links, and sy_sockcfg_v2 (the node's netns cookie, the only namespace
// the hooks act for). The object shares the tc programs' maps through their
// pins, so it is opened after them, with the same capacities.
//
// After a sync, closeStaleSockets() destroys the host sockets the hooks
// pointed at a backend that is no longer a serving endpoint of the
// frontend they connected to (SOCK_DESTROY over NETLINK_SOCK_DIAG), so
// their clients reconnect to a live one; the same rule as the conntrack
// reconciler (dataplane.ts #flushStaleFlows), for TCP and UDP.
//
// A restarted daemon swaps its programs into the links the previous one
// pinned (bpf_link_update): no moment without hooks. `switchyard cleanup`
// detaches them (detachSocketLb). Kernel needs: cgroup v2, bpf_link for
// cgroups (5.7), getpeername hooks (5.8), SO_NETNS_COOKIE (5.14);
// ECONNREFUSED for a Service without endpoints needs bpf_set_retval (5.18),
// older kernels answer EPERM.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CgroupAttachType, NativeBinding } from '../../native/binding.ts';
import { BpfMap, BpfObject, isNativeError, isNotExist } from '../../native/index.ts';
import { DataplaneError } from '../types.ts';
import type { Logger } from '../../util/log.ts';
import { parseIP } from '../../util/ip.ts';
import { encode, SOCK_MAPS, type SockRnatKey, type SockRnatValue, sockConfigCodec, u32Codec } from './layout.ts';
import { l4Key } from './state.ts';

/** The program of each hook, as sock.bpf.c names them. */
export const SOCK_PROGRAMS: Readonly<Record<CgroupAttachType, string>> = {
  connect4: 'sy_sk_connect4',
  connect6: 'sy_sk_connect6',
  sendmsg4: 'sy_sk_sendmsg4',
  sendmsg6: 'sy_sk_sendmsg6',
  recvmsg4: 'sy_sk_recvmsg4',
  recvmsg6: 'sy_sk_recvmsg6',
  getpeername4: 'sy_sk_peer4',
  getpeername6: 'sy_sk_peer6',
};

export const SOCK_ATTACH_TYPES = Object.keys(SOCK_PROGRAMS) as CgroupAttachType[];

/** Where the link of one hook is pinned (cleanup's `sy_*_v2` pattern covers it). */
export function sockLinkPin(pinPath: string, type: CgroupAttachType): string {
  return join(pinPath, `sy_link_${type}_v2`);
}

/** sock.bpf.o beside the tc object. */
export function sockObjectPath(tcObjectPath: string): string {
  return join(dirname(tcObjectPath), 'sock.bpf.o');
}

/** The cgroup2 mount point of this mount namespace, from /proc/mounts (first one); null when none is mounted. */
export function findCgroup2Mount(mounts: string = readFileSync('/proc/mounts', 'utf8')): string | null {
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1] !== undefined) return f[1].replace(/\\040/g, ' ');
  }
  return null;
}

export interface SocketLbOptions {
  readonly native: NativeBinding;
  readonly log: Logger;
  /** bpf/build/sock.bpf.o */
  readonly objectPath: string;
  readonly pinPath: string;
  /** The cgroup v2 directory to attach to (the cgroup2 root in production). */
  readonly cgroupPath: string;
  /** max_entries by pinned map name, as the tc object was loaded with (pinned maps are reused only at their size). */
  readonly maxEntries: Readonly<Record<string, number>>;
}

/**
 * Loads the hooks, writes the netns cookie, attaches (or swaps into the
 * pinned links). The object's fds are closed afterwards: the links hold the
 * programs. Throws a DataplaneError naming the step.
 */
export async function attachSocketLb(o: SocketLbOptions): Promise<{ cookie: bigint; replaced: number }> {
  const step = async <T>(what: string, f: () => T | Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      throw isNativeError(err) ? DataplaneError.kernel('bpf', what, err) : err;
    }
  };
  const cookie = await step('read the netns cookie (SO_NETNS_COOKIE, Linux 5.14+)', () => o.native.netnsCookie());
  const sockMaps = new Set(Object.values(SOCK_MAPS).map((m) => m.name));
  const maxEntries = Object.fromEntries(Object.entries(o.maxEntries).filter(([name]) => !sockMaps.has(name)));
  const obj = await step(`load ${o.objectPath}`, () => BpfObject.open(o.objectPath, o.pinPath, o.native, maxEntries));
  try {
    const cfg = obj.map(SOCK_MAPS.sockcfg.name);
    await step(`update ${cfg.name}`, () => cfg.update([[encode(u32Codec, 0), encode(sockConfigCodec, { netnsCookie: cookie })]]));
    let replaced = 0;
    // Hooks work as a set (sendmsg without recvmsg would show replies from the backend):
    // when one fails, the links this attempt created go again.
    const created: string[] = [];
    try {
      for (const type of SOCK_ATTACH_TYPES) {
        const prog = obj.program(SOCK_PROGRAMS[type]);
        const pin = sockLinkPin(o.pinPath, type);
        const r = await step(`attach ${prog.name} to cgroup ${o.cgroupPath} (${type})`, () => o.native.cgroupLinkAttach(o.cgroupPath, prog.fd, type, pin));
        if (r.replaced) replaced++;
        else created.push(pin);
      }
    } catch (err) {
      for (const pin of created) {
        try {
          o.native.cgroupLinkDetach(pin);
        } catch {
          // cleanup detaches it later
        }
      }
      throw err;
    }
    o.log.info('host-network clients reach Services through socket hooks', { cgroup: o.cgroupPath, hooks: SOCK_ATTACH_TYPES.length, replaced });
    return { cookie, replaced };
  } finally {
    obj.close();
  }
}

/** Detaches and unpins every socket hook link pinned under pinPath; returns the hooks it detached. */
export function detachSocketLb(native: NativeBinding, pinPath: string): CgroupAttachType[] {
  const out: CgroupAttachType[] = [];
  let names: string[];
  try {
    names = readdirSync(pinPath);
  } catch {
    return out;
  }
  for (const type of SOCK_ATTACH_TYPES) {
    const pin = sockLinkPin(pinPath, type);
    if (!names.includes(pin.slice(pinPath.length + 1))) continue;
    if (native.cgroupLinkDetach(pin)) out.push(type);
  }
  return out;
}

/** Host sockets to one backend that are to be closed: their cookies, and their reverse-NAT keys to delete. */
export interface StaleSockets {
  readonly family: 'IPv4' | 'IPv6';
  readonly proto: 'TCP' | 'UDP';
  readonly addr: string;
  readonly port: number;
  readonly cookies: bigint[];
  readonly keys: SockRnatKey[];
}

/**
 * The reverse-NAT entries whose backend is no longer a serving endpoint of
 * their frontend, grouped by backend. `serving`: frontend key (l4Key) ->
 * the serving endpoint addresses of its Service port, for the frontends a
 * sync touched; an entry of another frontend is left alone, as is every
 * entry of a frontend with no serving endpoint (as the conntrack
 * reconciler: nothing better to move to). SCTP sockets are not closed
 * (the kernel's sock_diag cannot destroy them).
 */
export function staleSockets(
  family: 'IPv4' | 'IPv6',
  entries: Iterable<readonly [SockRnatKey, SockRnatValue]>,
  serving: ReadonlyMap<string, ReadonlySet<string>>,
): StaleSockets[] {
  const groups = new Map<string, StaleSockets>();
  for (const [k, v] of entries) {
    if (k.proto === 'SCTP') continue;
    const live = serving.get(l4Key({ addr: v.addr, port: v.port, proto: k.proto }));
    if (live === undefined || live.size === 0 || live.has(k.addr)) continue;
    const g = `${k.proto} ${k.addr} ${k.port}`;
    let s = groups.get(g);
    if (s === undefined) {
      s = { family, proto: k.proto, addr: k.addr, port: k.port, cookies: [], keys: [] };
      groups.set(g, s);
    }
    if (!s.cookies.includes(k.cookie)) s.cookies.push(k.cookie);
    s.keys.push(k);
  }
  return [...groups.values()];
}

/**
 * Destroys the host sockets of staleSockets() in this network namespace and
 * deletes their reverse-NAT entries. Returns how many sockets were closed.
 * The maps are opened by their pins (absent: the hooks never ran, nothing
 * to do).
 */
export async function closeStaleSockets(native: NativeBinding, pinPath: string, serving: ReadonlyMap<string, ReadonlySet<string>>): Promise<number> {
  let closed = 0;
  for (const [family, def] of [
    ['IPv4', SOCK_MAPS.rnat4],
    ['IPv6', SOCK_MAPS.rnat6],
  ] as const) {
    let map: BpfMap;
    try {
      map = BpfMap.openPinned(join(pinPath, def.name), native);
    } catch (err) {
      if (isNotExist(err)) continue;
      throw err;
    }
    try {
      const entries = (await map.dump()).map(([k, v]) => [def.keyCodec.decode(k), def.valueCodec.decode(v)] as const);
      for (const g of staleSockets(family, entries, serving)) {
        const addr = parseIP(g.addr, 'decimal');
        if (addr === null) continue;
        closed += native.sockDestroy(family, g.proto, addr.bytes, g.port, g.cookies);
        await map.delete(g.keys.map((k) => encode(def.keyCodec, k)));
      }
    } finally {
      map.close();
    }
  }
  return closed;
}
