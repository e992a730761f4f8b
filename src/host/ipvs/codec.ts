// IPVS messages as plain data: virtual services, destinations (real servers),
// timeouts, statistics, and their generic netlink encoding (uapi.ts). Pure:
// the family id comes in as an argument, nothing here does I/O.
//
// Byte order, as the kernel reads and writes them (net/netfilter/ipvs/
// ip_vs_ctl.c, ip_vs_genl_parse_service/_dest and _fill_service/_dest):
// - addresses: union nf_inet_addr, 16 bytes (an IPv4 address in the first 4,
//   network order), for both families, as ipvsadm sends them;
// - ports: network order (nla_get_be16);
// - AF, protocol: u16 host order; weight, thresholds, timeouts: u32 host order;
// - flags: struct ip_vs_flags {u32 flags; u32 mask}, host order; the kernel
//   keeps the bits outside `mask` from the existing service, and reports
//   HASHED (0x2) on every service it holds;
// - netmask (persistence granularity): IPv4 a mask in network order
//   (255.255.255.255 = one client address); IPv6 a prefix length (1..128) in
//   host order, read by the kernel from the same __be32 field unconverted.
// Scheduler flags share three bits: sh-fallback and mh-fallback are SCHED1,
// sh-port and mh-port SCHED2 (ipvsadm prints flag-1/2/3 for others).

import { AttrWriter, type Attrs } from '../netlink/attributes.ts';
import { encodeGenl } from '../netlink/genl.ts';
import { NetlinkDecodeError, NLM_F_DUMP } from '../netlink/message.ts';
import type { IPFamily } from '../../util/ip.ts';
import { formatIP, parseIP } from '../../util/ip.ts';
import {
  AF_INET,
  AF_INET6,
  IP_VS_CONN_F,
  IP_VS_CONN_F_FWD_MASK,
  IP_VS_SCHEDNAME_MAXLEN,
  IP_VS_SVC_F,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPVS_CMD,
  IPVS_CMD_ATTR,
  IPVS_DEST_ATTR,
  IPVS_GENL_VERSION,
  IPVS_INFO_ATTR,
  IPVS_STATS_ATTR,
  IPVS_SVC_ATTR,
} from './uapi.ts';

export type IpvsProtocol = 'TCP' | 'UDP' | 'SCTP';

/** Scheduler flags by name (IP_VS_SVC_F_SCHED1..3), as ipvsadm --sched-flags spells them. */
export type SchedFlag = 'sh-fallback' | 'sh-port' | 'mh-fallback' | 'mh-port' | 'flag-1' | 'flag-2' | 'flag-3';

/** The schedulers of a stock kernel (ip_vs_<name>.ko); twos since 6.4. */
export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'] as const;

export type ForwardMethod = 'masq' | 'local' | 'tunnel' | 'route' | 'bypass';

/** What identifies a virtual service: protocol, address, port. */
export interface ServiceKey {
  readonly protocol: IpvsProtocol;
  /** Canonical text (formatIP); the family follows from it. */
  readonly address: string;
  readonly port: number;
}

export interface ServiceSpec extends ServiceKey {
  readonly scheduler: string;
  readonly schedFlags?: readonly SchedFlag[];
  /** ClientIP affinity: IP_VS_SVC_F_PERSISTENT with this timeout in seconds (1 or more). */
  readonly persistence?: { readonly timeout: number; readonly prefix?: number };
  /** IP_VS_SVC_F_ONEPACKET (UDP: schedule every datagram). */
  readonly onePacket?: boolean;
}

export interface Stats {
  readonly conns: number;
  readonly inPackets: number;
  readonly outPackets: number;
  readonly inBytes: number;
  readonly outBytes: number;
  readonly cps: number;
  readonly inPps: number;
  readonly outPps: number;
  readonly inBps: number;
  readonly outBps: number;
}

/** A virtual service as the kernel reports it. */
export interface Service extends ServiceKey {
  readonly family: IPFamily;
  readonly scheduler: string;
  /** Flags without HASHED. */
  readonly flags: number;
  readonly schedFlags: readonly SchedFlag[];
  /** Persistence timeout in seconds; 0 unless PERSISTENT. */
  readonly timeout: number;
  readonly persistent: boolean;
  readonly onePacket: boolean;
  /** Persistence granularity as a prefix length. */
  readonly prefix: number;
  readonly peName: string | null;
  readonly stats: Stats;
}

export interface DestinationKey {
  readonly address: string;
  readonly port: number;
}

export interface DestinationSpec extends DestinationKey {
  readonly weight: number;
  readonly forward?: ForwardMethod; // default masq (what kube-proxy uses)
  readonly upperThreshold?: number; // 0: none
  readonly lowerThreshold?: number;
}

export interface Destination extends DestinationKey {
  readonly family: IPFamily;
  readonly weight: number;
  readonly forward: ForwardMethod;
  readonly upperThreshold: number;
  readonly lowerThreshold: number;
  readonly activeConns: number;
  readonly inactiveConns: number;
  readonly persistentConns: number;
  readonly stats: Stats;
}

/** Connection timeouts in seconds; 0 in a SET_CONFIG leaves that one unchanged. */
export interface Timeouts {
  readonly tcp: number;
  readonly tcpFin: number;
  readonly udp: number;
}

export interface IpvsInfo {
  /** "1.2.1" */
  readonly version: string;
  readonly connTableSize: number;
}

const PROTOCOLS: Record<IpvsProtocol, number> = { TCP: IPPROTO_TCP, UDP: IPPROTO_UDP, SCTP: IPPROTO_SCTP };
const FORWARD: Record<ForwardMethod, number> = {
  masq: IP_VS_CONN_F.MASQ,
  local: IP_VS_CONN_F.LOCALNODE,
  tunnel: IP_VS_CONN_F.TUNNEL,
  route: IP_VS_CONN_F.DROUTE,
  bypass: IP_VS_CONN_F.BYPASS,
};
const SCHED_FLAG_BITS: Record<SchedFlag, number> = {
  'sh-fallback': IP_VS_SVC_F.SCHED1,
  'sh-port': IP_VS_SVC_F.SCHED2,
  'mh-fallback': IP_VS_SVC_F.SCHED1,
  'mh-port': IP_VS_SVC_F.SCHED2,
  'flag-1': IP_VS_SVC_F.SCHED1,
  'flag-2': IP_VS_SVC_F.SCHED2,
  'flag-3': IP_VS_SVC_F.SCHED3,
};
/** Every flag a ServiceSpec decides (the mask sent): all but HASHED. */
const SPEC_FLAGS_MASK = IP_VS_SVC_F.PERSISTENT | IP_VS_SVC_F.ONEPACKET | IP_VS_SVC_F.SCHED1 | IP_VS_SVC_F.SCHED2 | IP_VS_SVC_F.SCHED3;

/** The address as 16 bytes (nf_inet_addr) and its AF_*; RangeError when it is not an address. */
export function encodeAddress(address: string): { af: number; bytes: Buffer; family: IPFamily } {
  const ip = parseIP(address, 'decimal');
  if (ip === null) throw new RangeError(`IPVS: '${address}' is not an IP address`);
  const bytes = Buffer.alloc(16);
  bytes.set(ip.bytes, 0);
  return { af: ip.family === 'IPv4' ? AF_INET : AF_INET6, bytes, family: ip.family };
}

function decodeAddress(af: number, bytes: Buffer, what: string): { family: IPFamily; address: string } {
  if (af === AF_INET && bytes.length >= 4) return { family: 'IPv4', address: formatIP({ family: 'IPv4', bytes: bytes.subarray(0, 4) }) };
  if (af === AF_INET6 && bytes.length >= 16) return { family: 'IPv6', address: formatIP({ family: 'IPv6', bytes: bytes.subarray(0, 16) }) };
  throw new NetlinkDecodeError(`${what}: address of ${bytes.length} bytes for address family ${af}`);
}

function checkPort(port: number, what: string): number {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`${what}: port ${port} is not in 0..65535`);
  return port;
}

/** The flag bits a spec asks for. */
export function specFlags(spec: ServiceSpec): number {
  let f = 0;
  if (spec.persistence) f |= IP_VS_SVC_F.PERSISTENT;
  if (spec.onePacket) f |= IP_VS_SVC_F.ONEPACKET;
  for (const s of spec.schedFlags ?? []) f |= SCHED_FLAG_BITS[s];
  return f;
}

/** Scheduler flag names for the bits, spelled for the scheduler (sh-*, mh-*, else flag-N). */
export function schedFlagNames(scheduler: string, flags: number): SchedFlag[] {
  const out: SchedFlag[] = [];
  const bit = (b: number, sh: SchedFlag, mh: SchedFlag, other: SchedFlag): void => {
    if ((flags & b) !== 0) out.push(scheduler === 'sh' ? sh : scheduler === 'mh' ? mh : other);
  };
  bit(IP_VS_SVC_F.SCHED1, 'sh-fallback', 'mh-fallback', 'flag-1');
  bit(IP_VS_SVC_F.SCHED2, 'sh-port', 'mh-port', 'flag-2');
  bit(IP_VS_SVC_F.SCHED3, 'flag-3', 'flag-3', 'flag-3');
  return out;
}

/** A label for errors and logs: "TCP 10.96.0.1:80", "UDP [fd00::1]:53". */
export function serviceLabel(k: ServiceKey): string {
  return `${k.protocol} ${k.address.includes(':') ? `[${k.address}]` : k.address}:${k.port}`;
}

export function destinationLabel(k: DestinationKey): string {
  return `${k.address.includes(':') ? `[${k.address}]` : k.address}:${k.port}`;
}

function serviceKeyAttrs(w: AttrWriter, k: ServiceKey): { family: IPFamily } {
  const a = encodeAddress(k.address);
  const proto = PROTOCOLS[k.protocol];
  if (proto === undefined) throw new RangeError(`IPVS service ${k.address}: protocol '${k.protocol}' is not TCP, UDP or SCTP`);
  w.u16(IPVS_SVC_ATTR.AF, a.af);
  w.u16(IPVS_SVC_ATTR.PROTOCOL, proto);
  w.bytes(IPVS_SVC_ATTR.ADDR, a.bytes);
  w.be16(IPVS_SVC_ATTR.PORT, checkPort(k.port, `IPVS service ${k.address}`));
  return { family: a.family };
}

function serviceAttrs(spec: ServiceSpec, full: boolean): AttrWriter {
  return new AttrWriter().nest(IPVS_CMD_ATTR.SERVICE, (w) => {
    const { family } = serviceKeyAttrs(w, spec);
    if (!full) return;
    if (spec.scheduler.length === 0 || spec.scheduler.length >= IP_VS_SCHEDNAME_MAXLEN) {
      throw new RangeError(`IPVS service ${serviceLabel(spec)}: scheduler '${spec.scheduler}' must have 1 to ${IP_VS_SCHEDNAME_MAXLEN - 1} characters`);
    }
    const timeout = spec.persistence?.timeout ?? 0;
    if (spec.persistence && (!Number.isInteger(timeout) || timeout < 1 || timeout > 0xffffffff)) {
      throw new RangeError(`IPVS service ${serviceLabel(spec)}: persistence timeout ${timeout} is not a positive number of seconds`);
    }
    const flags = Buffer.alloc(8);
    flags.writeUInt32LE(specFlags(spec), 0);
    flags.writeUInt32LE(SPEC_FLAGS_MASK, 4);
    w.string(IPVS_SVC_ATTR.SCHED_NAME, spec.scheduler);
    w.bytes(IPVS_SVC_ATTR.FLAGS, flags);
    w.u32(IPVS_SVC_ATTR.TIMEOUT, timeout);
    const prefix = spec.persistence?.prefix ?? (family === 'IPv4' ? 32 : 128);
    if (family === 'IPv4') {
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`IPVS service ${serviceLabel(spec)}: prefix ${prefix} is not in 0..32`);
      w.be32(IPVS_SVC_ATTR.NETMASK, prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
    } else {
      if (!Number.isInteger(prefix) || prefix < 1 || prefix > 128)
        throw new RangeError(`IPVS service ${serviceLabel(spec)}: prefix ${prefix} is not in 1..128`);
      w.u32(IPVS_SVC_ATTR.NETMASK, prefix);
    }
  });
}

function destAttrs(w: AttrWriter, d: DestinationSpec | DestinationKey, full: boolean): void {
  w.nest(IPVS_CMD_ATTR.DEST, (n) => {
    const a = encodeAddress(d.address);
    n.bytes(IPVS_DEST_ATTR.ADDR, a.bytes);
    n.be16(IPVS_DEST_ATTR.PORT, checkPort(d.port, `IPVS destination ${d.address}`));
    n.u16(IPVS_DEST_ATTR.ADDR_FAMILY, a.af);
    if (!full) return;
    const s = d as DestinationSpec;
    const fwd = FORWARD[s.forward ?? 'masq'];
    if (fwd === undefined) throw new RangeError(`IPVS destination ${destinationLabel(d)}: forwarding method '${s.forward}' is unknown`);
    n.u32(IPVS_DEST_ATTR.FWD_METHOD, fwd);
    n.u32(IPVS_DEST_ATTR.WEIGHT, s.weight);
    n.u32(IPVS_DEST_ATTR.U_THRESH, s.upperThreshold ?? 0);
    n.u32(IPVS_DEST_ATTR.L_THRESH, s.lowerThreshold ?? 0);
  });
}

// --- requests (family: the IPVS family's id from nlctrl) -------------------

const req = (family: number, cmd: number, attrs: AttrWriter | null, flags = 0): Buffer => encodeGenl(family, cmd, IPVS_GENL_VERSION, attrs, flags);

export const encode = {
  newService: (family: number, s: ServiceSpec) => req(family, IPVS_CMD.NEW_SERVICE, serviceAttrs(s, true)),
  setService: (family: number, s: ServiceSpec) => req(family, IPVS_CMD.SET_SERVICE, serviceAttrs(s, true)),
  delService: (family: number, k: ServiceKey) => req(family, IPVS_CMD.DEL_SERVICE, serviceAttrs({ ...k, scheduler: '' }, false)),
  getService: (family: number, k: ServiceKey) => req(family, IPVS_CMD.GET_SERVICE, serviceAttrs({ ...k, scheduler: '' }, false)),
  dumpServices: (family: number) => req(family, IPVS_CMD.GET_SERVICE, null, NLM_F_DUMP),
  newDest: (family: number, k: ServiceKey, d: DestinationSpec) => {
    const w = serviceAttrs({ ...k, scheduler: '' }, false);
    destAttrs(w, d, true);
    return req(family, IPVS_CMD.NEW_DEST, w);
  },
  setDest: (family: number, k: ServiceKey, d: DestinationSpec) => {
    const w = serviceAttrs({ ...k, scheduler: '' }, false);
    destAttrs(w, d, true);
    return req(family, IPVS_CMD.SET_DEST, w);
  },
  delDest: (family: number, k: ServiceKey, d: DestinationKey) => {
    const w = serviceAttrs({ ...k, scheduler: '' }, false);
    destAttrs(w, d, false);
    return req(family, IPVS_CMD.DEL_DEST, w);
  },
  dumpDests: (family: number, k: ServiceKey) => req(family, IPVS_CMD.GET_DEST, serviceAttrs({ ...k, scheduler: '' }, false), NLM_F_DUMP),
  setConfig: (family: number, t: Partial<Timeouts>) => {
    const w = new AttrWriter();
    if (t.tcp !== undefined) w.u32(IPVS_CMD_ATTR.TIMEOUT_TCP, t.tcp);
    if (t.tcpFin !== undefined) w.u32(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN, t.tcpFin);
    if (t.udp !== undefined) w.u32(IPVS_CMD_ATTR.TIMEOUT_UDP, t.udp);
    return req(family, IPVS_CMD.SET_CONFIG, w);
  },
  getConfig: (family: number) => req(family, IPVS_CMD.GET_CONFIG, null),
  getInfo: (family: number) => req(family, IPVS_CMD.GET_INFO, null),
  flush: (family: number) => req(family, IPVS_CMD.FLUSH, null),
  zero: (family: number) => req(family, IPVS_CMD.ZERO, null),
};

// --- replies ----------------------------------------------------------------

const ZERO_STATS: Stats = { conns: 0, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0, cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

/** STATS64 (every counter u64, kernels since 4.1) when present, else STATS (u32 counters, u64 bytes). */
export function decodeStats(parent: Attrs, stats64Type: number, statsType: number): Stats {
  const s64 = parent.nested(stats64Type, `${parent.what} stats64`);
  const s = s64 ?? parent.nested(statsType, `${parent.what} stats`);
  if (s === undefined) return ZERO_STATS;
  const n = (t: number): number => {
    if (s64) return Number(s.u64(t) ?? 0n);
    return t === IPVS_STATS_ATTR.INBYTES || t === IPVS_STATS_ATTR.OUTBYTES ? Number(s.u64(t) ?? 0n) : (s.u32(t) ?? 0);
  };
  return {
    conns: n(IPVS_STATS_ATTR.CONNS),
    inPackets: n(IPVS_STATS_ATTR.INPKTS),
    outPackets: n(IPVS_STATS_ATTR.OUTPKTS),
    inBytes: n(IPVS_STATS_ATTR.INBYTES),
    outBytes: n(IPVS_STATS_ATTR.OUTBYTES),
    cps: n(IPVS_STATS_ATTR.CPS),
    inPps: n(IPVS_STATS_ATTR.INPPS),
    outPps: n(IPVS_STATS_ATTR.OUTPPS),
    inBps: n(IPVS_STATS_ATTR.INBPS),
    outBps: n(IPVS_STATS_ATTR.OUTBPS),
  };
}

const PROTOCOL_NAMES = new Map<number, IpvsProtocol>([
  [IPPROTO_TCP, 'TCP'],
  [IPPROTO_UDP, 'UDP'],
  [IPPROTO_SCTP, 'SCTP'],
]);

function bitCount(n: number): number {
  let c = 0;
  for (let v = n >>> 0; v !== 0; v >>>= 1) c += v & 1;
  return c;
}

/** The IPVS_CMD_ATTR_SERVICE of a NEW_SERVICE reply (GET_SERVICE, its dump). Fwmark services are not ours: null. */
export function decodeService(top: Attrs): Service | null {
  const a = top.nested(IPVS_CMD_ATTR.SERVICE, 'IPVS service');
  if (a === undefined) throw new NetlinkDecodeError('IPVS reply: no IPVS_CMD_ATTR_SERVICE');
  if (a.has(IPVS_SVC_ATTR.FWMARK) && !a.has(IPVS_SVC_ATTR.ADDR)) return null;
  const af = a.need(IPVS_SVC_ATTR.AF, a.u16, 'IPVS_SVC_ATTR_AF');
  const protoNum = a.need(IPVS_SVC_ATTR.PROTOCOL, a.u16, 'IPVS_SVC_ATTR_PROTOCOL');
  const protocol = PROTOCOL_NAMES.get(protoNum);
  if (protocol === undefined) throw new NetlinkDecodeError(`IPVS service: protocol ${protoNum} is not TCP, UDP or SCTP`);
  const { family, address } = decodeAddress(af, a.need(IPVS_SVC_ATTR.ADDR, a.get, 'IPVS_SVC_ATTR_ADDR'), 'IPVS service');
  const flagsRaw = a.get(IPVS_SVC_ATTR.FLAGS);
  const flags = (flagsRaw && flagsRaw.length >= 4 ? flagsRaw.readUInt32LE(0) : 0) & ~IP_VS_SVC_F.HASHED;
  const scheduler = a.string(IPVS_SVC_ATTR.SCHED_NAME) ?? 'none';
  const netmaskRaw = a.get(IPVS_SVC_ATTR.NETMASK);
  let prefix = family === 'IPv4' ? 32 : 128;
  if (netmaskRaw && netmaskRaw.length >= 4) prefix = family === 'IPv4' ? bitCount(netmaskRaw.readUInt32BE(0)) : netmaskRaw.readUInt32LE(0);
  return {
    protocol,
    address,
    family,
    port: a.need(IPVS_SVC_ATTR.PORT, a.be16, 'IPVS_SVC_ATTR_PORT'),
    scheduler,
    flags,
    schedFlags: schedFlagNames(scheduler, flags),
    timeout: a.u32(IPVS_SVC_ATTR.TIMEOUT) ?? 0,
    persistent: (flags & IP_VS_SVC_F.PERSISTENT) !== 0,
    onePacket: (flags & IP_VS_SVC_F.ONEPACKET) !== 0,
    prefix,
    peName: a.string(IPVS_SVC_ATTR.PE_NAME) ?? null,
    stats: decodeStats(a, IPVS_SVC_ATTR.STATS64, IPVS_SVC_ATTR.STATS),
  };
}

const FORWARD_NAMES: ForwardMethod[] = ['masq', 'local', 'tunnel', 'route', 'bypass'];

/** The IPVS_CMD_ATTR_DEST of a NEW_DEST reply (GET_DEST dump). svcFamily: for kernels that send no ADDR_FAMILY. */
export function decodeDestination(top: Attrs, svcFamily: IPFamily): Destination {
  const a = top.nested(IPVS_CMD_ATTR.DEST, 'IPVS destination');
  if (a === undefined) throw new NetlinkDecodeError('IPVS reply: no IPVS_CMD_ATTR_DEST');
  const af = a.u16(IPVS_DEST_ATTR.ADDR_FAMILY) ?? (svcFamily === 'IPv4' ? AF_INET : AF_INET6);
  const { family, address } = decodeAddress(af, a.need(IPVS_DEST_ATTR.ADDR, a.get, 'IPVS_DEST_ATTR_ADDR'), 'IPVS destination');
  const fwd = (a.u32(IPVS_DEST_ATTR.FWD_METHOD) ?? 0) & IP_VS_CONN_F_FWD_MASK;
  return {
    address,
    family,
    port: a.need(IPVS_DEST_ATTR.PORT, a.be16, 'IPVS_DEST_ATTR_PORT'),
    weight: a.u32(IPVS_DEST_ATTR.WEIGHT) ?? 0,
    forward: FORWARD_NAMES[fwd] ?? 'masq',
    upperThreshold: a.u32(IPVS_DEST_ATTR.U_THRESH) ?? 0,
    lowerThreshold: a.u32(IPVS_DEST_ATTR.L_THRESH) ?? 0,
    activeConns: a.u32(IPVS_DEST_ATTR.ACTIVE_CONNS) ?? 0,
    inactiveConns: a.u32(IPVS_DEST_ATTR.INACT_CONNS) ?? 0,
    persistentConns: a.u32(IPVS_DEST_ATTR.PERSIST_CONNS) ?? 0,
    stats: decodeStats(a, IPVS_DEST_ATTR.STATS64, IPVS_DEST_ATTR.STATS),
  };
}

export function decodeTimeouts(a: Attrs): Timeouts {
  return { tcp: a.u32(IPVS_CMD_ATTR.TIMEOUT_TCP) ?? 0, tcpFin: a.u32(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN) ?? 0, udp: a.u32(IPVS_CMD_ATTR.TIMEOUT_UDP) ?? 0 };
}

export function decodeInfo(a: Attrs): IpvsInfo {
  const v = a.need(IPVS_INFO_ATTR.VERSION, a.u32, 'IPVS_INFO_ATTR_VERSION');
  return { version: `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`, connTableSize: a.u32(IPVS_INFO_ATTR.CONN_TAB_SIZE) ?? 0 };
}
