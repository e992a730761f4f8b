// FakeIpvs: the kernel's IPVS table of one network namespace behind the
// generic netlink family "IPVS", on a FakeNetlinkKernel (fake-netlink.ts),
// for unit tests of src/host/ipvs/ without IPVS. It decodes requests and
// encodes replies byte for byte as net/netfilter/ipvs/ip_vs_ctl.c does
// (ip_vs_genl_set_cmd, _get_cmd, _dump_services, _dump_dests), and fails
// where it fails, with its errno:
// - service attribute missing, or without AF and (fwmark or protocol+addr+
//   port): EINVAL; an AF other than 2/10: EAFNOSUPPORT; NEW/SET without
//   scheduler, flags, timeout and netmask: EINVAL;
// - any command but NEW_SERVICE on a service that is not there: ESRCH
//   (GET_SERVICE too); NEW_SERVICE on one that is: EEXIST;
// - a scheduler the kernel does not have (not "none"): ENOENT (the kernel
//   tries modprobe ip_vs_<name> first); an IPv6 persistence prefix outside
//   1..128: EINVAL;
// - flags: the bits outside the request's mask are kept from the existing
//   service; every stored service reports HASHED (0x2), mask ~0;
// - destination attribute without addr and port: EINVAL; NEW/SET without
//   forwarding method, weight and both thresholds: EINVAL; no AF means the
//   service's; an AF other than 2/10 EAFNOSUPPORT; an AF other than the
//   service's without tunnel forwarding (not DEL): EINVAL;
// - weight above 2^31-1 (negative as int) or lower threshold above upper:
//   ERANGE; a new destination already there: EEXIST; a new destination
//   whose address is not unicast (IPv4 0.0.0.0/8, 255.255.255.255,
//   224.0.0.0/4; IPv6 ::, ff00::/8, fe80::/10, ::ffff:0:0/96): EINVAL;
//   SET/DEL of one that is not there: ENOENT; in a namespace without any
//   IPv4 address (noIPv4Address) every new IPv4 destination EINVAL;
// - GET_DEST dump of a service that is not there (or a bad request): an
//   empty dump, no error; destinations newest first (list_add_rcu);
// - SET_CONFIG: a timeout above INT_MAX/HZ (HZ 250, Debian's) EINVAL, 0
//   leaves it; defaults tcp 900, tcpfin 120, udp 300; GET_INFO version
//   1.2.1, connection table 4096.
// Services dump in an order of the fake's own (a hash of the key), never
// insertion order, as the kernel's hash table does. Statistics are zero
// unless a test sets them (setStats). Not modelled: fwmark services,
// persistence engines, the sync daemon, the destination trash.

import { AttrWriter, type Attrs } from '../../src/host/netlink/attributes.ts';
import { SCHEDULERS, encodeAddress } from '../../src/host/ipvs/codec.ts';
import {
  AF_INET,
  AF_INET6,
  IP_VS_CONN_F,
  IP_VS_SVC_F,
  IPVS_CMD,
  IPVS_CMD_ATTR,
  IPVS_DEST_ATTR,
  IPVS_GENL_NAME,
  IPVS_GENL_VERSION,
  IPVS_INFO_ATTR,
  IPVS_STATS_ATTR,
  IPVS_SVC_ATTR,
} from '../../src/host/ipvs/uapi.ts';
import { FakeErrno, type FakeGenlFamily, type FakeGenlRequest, type FakeNetlinkKernel } from './fake-netlink.ts';

const HZ = 250;
const INT_MAX = 0x7fffffff;

export interface FakeStats {
  conns: bigint;
  inpkts: bigint;
  outpkts: bigint;
  inbytes: bigint;
  outbytes: bigint;
  cps: bigint;
  inpps: bigint;
  outpps: bigint;
  inbps: bigint;
  outbps: bigint;
}

const zeroStats = (): FakeStats => ({ conns: 0n, inpkts: 0n, outpkts: 0n, inbytes: 0n, outbytes: 0n, cps: 0n, inpps: 0n, outpps: 0n, inbps: 0n, outbps: 0n });

interface FakeDest {
  af: number;
  addr: Buffer; // 16 bytes
  port: number;
  connFlags: number;
  weight: number;
  uThresh: number;
  lThresh: number;
  activeConns: number;
  inactConns: number;
  persistConns: number;
  stats: FakeStats;
}

interface FakeService {
  af: number;
  protocol: number;
  addr: Buffer; // 16 bytes
  port: number;
  sched: string; // 'none' for no scheduler
  flags: number;
  timeout: number;
  netmask: Buffer; // 4 raw bytes, as sent
  dests: FakeDest[];
  stats: FakeStats;
}

const keyOf = (af: number, protocol: number, addr: Buffer, port: number): string => `${af}/${protocol}/${addr.toString('hex')}/${port}`;

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** ip_vs_new_dest: inet_addr_type() must be RTN_LOCAL or RTN_UNICAST; ipv6_addr_type() unicast and not link-local. */
function unicast(af: number, addr: Buffer): boolean {
  if (af === AF_INET) {
    const a = addr[0]!;
    if (a === 0) return false; // zeronet: RTN_BROADCAST
    if (addr.readUInt32BE(0) === 0xffffffff) return false; // limited broadcast
    return a < 224 || a >= 240; // multicast
  }
  if (addr.subarray(0, 16).every((b) => b === 0)) return false; // ::
  if (addr[0] === 0xff) return false; // multicast
  if (addr[0] === 0xfe && (addr[1]! & 0xc0) === 0x80) return false; // link-local (not one of ours)
  if (addr.subarray(0, 10).every((b) => b === 0) && addr[10] === 0xff && addr[11] === 0xff) return false; // v4-mapped
  return true;
}

export interface FakeIpvsOptions {
  /** Schedulers the kernel can load; default every stock one. */
  readonly schedulers?: readonly string[];
  /** IPv6 disabled (ipv6.disable=1): AF_INET6 EAFNOSUPPORT. */
  readonly noIPv6?: boolean;
  /**
   * The namespace has no IPv4 address at all (a fresh one, lo down): it has
   * no local routing table yet, so inet_addr_type() says RTN_BROADCAST for
   * every address and every new IPv4 destination is EINVAL (seen on 5.10
   * under `unshare -n`: fixtures/netlink/ipvs-5.10.json).
   */
  readonly noIPv4Address?: boolean;
}

export class FakeIpvs implements FakeGenlFamily {
  readonly name = IPVS_GENL_NAME;
  readonly version = IPVS_GENL_VERSION;
  readonly maxattr = IPVS_CMD_ATTR.TIMEOUT_UDP;
  readonly commands = [
    { cmd: IPVS_CMD.NEW_SERVICE, doit: true },
    { cmd: IPVS_CMD.SET_SERVICE, doit: true },
    { cmd: IPVS_CMD.DEL_SERVICE, doit: true },
    { cmd: IPVS_CMD.GET_SERVICE, doit: true, dumpit: true },
    { cmd: IPVS_CMD.NEW_DEST, doit: true },
    { cmd: IPVS_CMD.SET_DEST, doit: true },
    { cmd: IPVS_CMD.DEL_DEST, doit: true },
    { cmd: IPVS_CMD.GET_DEST, dumpit: true },
    { cmd: IPVS_CMD.SET_CONFIG, doit: true },
    { cmd: IPVS_CMD.GET_CONFIG, doit: true },
    { cmd: IPVS_CMD.GET_INFO, doit: true },
    { cmd: IPVS_CMD.ZERO, doit: true },
    { cmd: IPVS_CMD.FLUSH, doit: true },
  ];
  readonly #services = new Map<string, FakeService>();
  readonly #schedulers: Set<string>;
  readonly #noIPv6: boolean;
  readonly #noIPv4Address: boolean;
  #timeouts = { tcp: 900, tcpFin: 120, udp: 300 };

  constructor(opts: FakeIpvsOptions = {}) {
    this.#schedulers = new Set(opts.schedulers ?? SCHEDULERS);
    this.#noIPv6 = opts.noIPv6 === true;
    this.#noIPv4Address = opts.noIPv4Address === true;
  }

  /** Registers the family on a fake kernel (modprobe ip_vs). */
  static install(kernel: FakeNetlinkKernel, opts?: FakeIpvsOptions): FakeIpvs {
    const f = new FakeIpvs(opts);
    kernel.register(f);
    return f;
  }

  /** How many services there are. */
  get size(): number {
    return this.#services.size;
  }

  /** Sets a service's (or, with destination, a destination's) counters, as traffic would. */
  setStats(match: { address: string; port: number }, stats: Partial<FakeStats>, destination?: { address: string; port: number }): void {
    for (const s of this.#services.values()) {
      if (s.port !== match.port || !sameAddr(s.addr, match.address)) continue;
      if (destination === undefined) Object.assign(s.stats, stats);
      for (const d of s.dests) if (destination && d.port === destination.port && sameAddr(d.addr, destination.address)) Object.assign(d.stats, stats);
    }
  }

  handle(req: FakeGenlRequest): Array<{ cmd: number; attrs: AttrWriter }> {
    switch (req.cmd) {
      case IPVS_CMD.GET_SERVICE:
        return req.dump ? this.#sortedServices().map((s) => this.#serviceReply(s)) : [this.#serviceReply(this.#getService(req.attrs))];
      case IPVS_CMD.GET_DEST:
        return this.#dumpDests(req.attrs);
      case IPVS_CMD.GET_CONFIG:
        return [
          {
            cmd: IPVS_CMD.SET_CONFIG,
            attrs: new AttrWriter()
              .u32(IPVS_CMD_ATTR.TIMEOUT_TCP, this.#timeouts.tcp)
              .u32(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN, this.#timeouts.tcpFin)
              .u32(IPVS_CMD_ATTR.TIMEOUT_UDP, this.#timeouts.udp),
          },
        ];
      case IPVS_CMD.GET_INFO:
        return [{ cmd: IPVS_CMD.SET_INFO, attrs: new AttrWriter().u32(IPVS_INFO_ATTR.VERSION, 0x010201).u32(IPVS_INFO_ATTR.CONN_TAB_SIZE, 4096) }];
      default:
        this.#set(req.cmd, req.attrs);
        return [];
    }
  }

  #sortedServices(): FakeService[] {
    return [...this.#services.entries()].sort(([a], [b]) => hash(a) - hash(b)).map(([, s]) => s);
  }

  /** ip_vs_genl_parse_service: the identifying fields, and the rest when full. */
  #parseService(top: Attrs, full: boolean): { key: string; svc: FakeService | undefined; u: FakeService } {
    const a = top.nested(IPVS_CMD_ATTR.SERVICE);
    if (a === undefined) throw new FakeErrno('EINVAL', 'no service attribute');
    const af = a.u16(IPVS_SVC_ATTR.AF);
    const hasKey = a.has(IPVS_SVC_ATTR.PROTOCOL) && a.has(IPVS_SVC_ATTR.ADDR) && a.has(IPVS_SVC_ATTR.PORT);
    if (af === undefined || !(a.has(IPVS_SVC_ATTR.FWMARK) || hasKey)) throw new FakeErrno('EINVAL', 'service without af and key');
    if (af !== AF_INET && !(af === AF_INET6 && !this.#noIPv6)) throw new FakeErrno('EAFNOSUPPORT');
    if (a.has(IPVS_SVC_ATTR.FWMARK)) throw new Error('FakeIpvs: fwmark services are not modelled');
    const addr = Buffer.alloc(16);
    a.get(IPVS_SVC_ATTR.ADDR)!.copy(addr, 0, 0, 16);
    const protocol = a.u16(IPVS_SVC_ATTR.PROTOCOL)!;
    const port = a.be16(IPVS_SVC_ATTR.PORT)!;
    const key = keyOf(af, protocol, addr, port);
    const svc = this.#services.get(key);
    const u: FakeService = { af, protocol, addr, port, sched: '', flags: 0, timeout: 0, netmask: Buffer.alloc(4), dests: [], stats: zeroStats() };
    if (full) {
      const flags = a.get(IPVS_SVC_ATTR.FLAGS);
      const sched = a.string(IPVS_SVC_ATTR.SCHED_NAME);
      const timeout = a.u32(IPVS_SVC_ATTR.TIMEOUT);
      const netmask = a.get(IPVS_SVC_ATTR.NETMASK);
      if (sched === undefined || flags === undefined || timeout === undefined || netmask === undefined)
        throw new FakeErrno('EINVAL', 'service without sched/flags/timeout/netmask');
      if (flags.length < 8 || netmask.length < 4) throw new FakeErrno('EINVAL', 'short flags or netmask');
      const f = flags.readUInt32LE(0);
      const mask = flags.readUInt32LE(4);
      u.flags = (((svc?.flags ?? 0) & ~mask) | (f & mask)) >>> 0;
      u.sched = sched;
      u.timeout = timeout;
      u.netmask = Buffer.from(netmask.subarray(0, 4));
    }
    return { key, svc, u };
  }

  #checkServiceOptions(u: FakeService): void {
    if (u.sched !== 'none' && !this.#schedulers.has(u.sched)) throw new FakeErrno('ENOENT', `no scheduler ${u.sched}`);
    if (u.af === AF_INET6) {
      const plen = u.netmask.readUInt32LE(0);
      if (plen < 1 || plen > 128) throw new FakeErrno('EINVAL', `IPv6 netmask ${plen}`);
    }
  }

  #getService(attrs: Attrs): FakeService {
    const { svc } = this.#parseService(attrs, false);
    if (svc === undefined) throw new FakeErrno('ESRCH');
    return svc;
  }

  /** ip_vs_genl_parse_dest. */
  #parseDest(top: Attrs, svc: FakeService, full: boolean, del: boolean): FakeDest {
    const a = top.nested(IPVS_CMD_ATTR.DEST);
    if (a === undefined || !a.has(IPVS_DEST_ATTR.ADDR) || !a.has(IPVS_DEST_ATTR.PORT)) throw new FakeErrno('EINVAL', 'destination without addr and port');
    const addr = Buffer.alloc(16);
    a.get(IPVS_DEST_ATTR.ADDR)!.copy(addr, 0, 0, 16);
    const d: FakeDest = {
      af: a.u16(IPVS_DEST_ATTR.ADDR_FAMILY) ?? 0,
      addr,
      port: a.be16(IPVS_DEST_ATTR.PORT)!,
      connFlags: 0,
      weight: 0,
      uThresh: 0,
      lThresh: 0,
      activeConns: 0,
      inactConns: 0,
      persistConns: 0,
      stats: zeroStats(),
    };
    if (full) {
      const fwd = a.u32(IPVS_DEST_ATTR.FWD_METHOD);
      const weight = a.u32(IPVS_DEST_ATTR.WEIGHT);
      const u = a.u32(IPVS_DEST_ATTR.U_THRESH);
      const l = a.u32(IPVS_DEST_ATTR.L_THRESH);
      if (fwd === undefined || weight === undefined || u === undefined || l === undefined)
        throw new FakeErrno('EINVAL', 'destination without fwd/weight/thresholds');
      d.connFlags = fwd & 0x7;
      d.weight = weight | 0; // int in the kernel
      d.uThresh = u;
      d.lThresh = l;
    }
    if (d.af === 0) d.af = svc.af;
    if (d.af !== AF_INET && !(d.af === AF_INET6 && !this.#noIPv6)) throw new FakeErrno('EAFNOSUPPORT');
    if (d.af !== svc.af && !del && d.connFlags !== IP_VS_CONN_F.TUNNEL) throw new FakeErrno('EINVAL', 'mixed families need tunnel forwarding');
    return d;
  }

  #set(cmd: number, attrs: Attrs): void {
    if (cmd === IPVS_CMD.FLUSH) {
      this.#services.clear();
      return;
    }
    if (cmd === IPVS_CMD.SET_CONFIG) {
      this.#setConfig(attrs);
      return;
    }
    if (cmd === IPVS_CMD.ZERO && !attrs.has(IPVS_CMD_ATTR.SERVICE)) {
      for (const s of this.#services.values()) {
        s.stats = zeroStats();
        for (const d of s.dests) d.stats = zeroStats();
      }
      return;
    }
    const full = cmd === IPVS_CMD.NEW_SERVICE || cmd === IPVS_CMD.SET_SERVICE;
    const { key, svc, u } = this.#parseService(attrs, full);
    if (cmd !== IPVS_CMD.NEW_SERVICE && svc === undefined) throw new FakeErrno('ESRCH');
    let dest: FakeDest | undefined;
    if (cmd === IPVS_CMD.NEW_DEST || cmd === IPVS_CMD.SET_DEST || cmd === IPVS_CMD.DEL_DEST) {
      dest = this.#parseDest(attrs, svc!, cmd !== IPVS_CMD.DEL_DEST, cmd === IPVS_CMD.DEL_DEST);
    }
    switch (cmd) {
      case IPVS_CMD.NEW_SERVICE:
        if (svc !== undefined) throw new FakeErrno('EEXIST');
        this.#checkServiceOptions(u);
        u.flags = (u.flags & ~IP_VS_SVC_F.HASHED) | IP_VS_SVC_F.HASHED;
        this.#services.set(key, u);
        return;
      case IPVS_CMD.SET_SERVICE:
        this.#checkServiceOptions(u);
        Object.assign(svc!, { sched: u.sched, flags: u.flags | IP_VS_SVC_F.HASHED, timeout: u.timeout, netmask: u.netmask });
        return;
      case IPVS_CMD.DEL_SERVICE:
        this.#services.delete(key);
        return;
      case IPVS_CMD.NEW_DEST:
      case IPVS_CMD.SET_DEST: {
        const d = dest!;
        if (d.weight < 0 || d.lThresh > d.uThresh) throw new FakeErrno('ERANGE');
        const i = findDest(svc!, d);
        if (cmd === IPVS_CMD.NEW_DEST) {
          if (i >= 0) throw new FakeErrno('EEXIST');
          if (!unicast(d.af, d.addr) || (d.af === AF_INET && this.#noIPv4Address)) throw new FakeErrno('EINVAL', 'not a unicast address');
          svc!.dests.unshift(d);
        } else {
          if (i < 0) throw new FakeErrno('ENOENT');
          Object.assign(svc!.dests[i]!, { connFlags: d.connFlags, weight: d.weight, uThresh: d.uThresh, lThresh: d.lThresh });
        }
        return;
      }
      case IPVS_CMD.DEL_DEST: {
        const i = findDest(svc!, dest!);
        if (i < 0) throw new FakeErrno('ENOENT');
        svc!.dests.splice(i, 1);
        return;
      }
      case IPVS_CMD.ZERO:
        svc!.stats = zeroStats();
        for (const d of svc!.dests) d.stats = zeroStats();
        return;
      default:
        throw new FakeErrno('EINVAL');
    }
  }

  #setConfig(attrs: Attrs): void {
    const t = { ...this.#timeouts };
    const read = (type: number): number | undefined => {
      const v = attrs.u32(type);
      return v === undefined ? undefined : v | 0; // int in struct ip_vs_timeout_user
    };
    const tcp = read(IPVS_CMD_ATTR.TIMEOUT_TCP);
    const fin = read(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN);
    const udp = read(IPVS_CMD_ATTR.TIMEOUT_UDP);
    for (const v of [tcp, fin, udp]) if (v !== undefined && (v < 0 || v > Math.floor(INT_MAX / HZ))) throw new FakeErrno('EINVAL', `timeout ${v}`);
    if (tcp) t.tcp = tcp;
    if (fin) t.tcpFin = fin;
    if (udp) t.udp = udp;
    this.#timeouts = t;
  }

  #dumpDests(attrs: Attrs): Array<{ cmd: number; attrs: AttrWriter }> {
    let svc: FakeService | undefined;
    try {
      svc = this.#parseService(attrs, false).svc;
    } catch (e) {
      if (e instanceof FakeErrno) return []; // out_err: an empty dump
      throw e;
    }
    return (svc?.dests ?? []).map((d) => ({ cmd: IPVS_CMD.NEW_DEST, attrs: destAttrs(d) }));
  }

  #serviceReply(s: FakeService): { cmd: number; attrs: AttrWriter } {
    const flags = Buffer.alloc(8);
    flags.writeUInt32LE(s.flags, 0);
    flags.writeUInt32LE(0xffffffff, 4);
    return {
      cmd: IPVS_CMD.NEW_SERVICE,
      attrs: new AttrWriter().nest(IPVS_CMD_ATTR.SERVICE, (w) => {
        w.u16(IPVS_SVC_ATTR.AF, s.af)
          .u16(IPVS_SVC_ATTR.PROTOCOL, s.protocol)
          .bytes(IPVS_SVC_ATTR.ADDR, s.addr)
          .be16(IPVS_SVC_ATTR.PORT, s.port)
          .string(IPVS_SVC_ATTR.SCHED_NAME, s.sched)
          .bytes(IPVS_SVC_ATTR.FLAGS, flags)
          .u32(IPVS_SVC_ATTR.TIMEOUT, s.timeout)
          .bytes(IPVS_SVC_ATTR.NETMASK, s.netmask);
        statsAttrs(w, IPVS_SVC_ATTR.STATS, IPVS_SVC_ATTR.STATS64, s.stats);
      }),
    };
  }
}

function sameAddr(addr: Buffer, text: string): boolean {
  return addr.equals(encodeAddress(text).bytes);
}

function findDest(svc: FakeService, d: FakeDest): number {
  return svc.dests.findIndex((x) => x.af === d.af && x.port === d.port && x.addr.equals(d.addr));
}

function destAttrs(d: FakeDest): AttrWriter {
  return new AttrWriter().nest(IPVS_CMD_ATTR.DEST, (w) => {
    w.bytes(IPVS_DEST_ATTR.ADDR, d.addr)
      .be16(IPVS_DEST_ATTR.PORT, d.port)
      .u32(IPVS_DEST_ATTR.FWD_METHOD, d.connFlags & 0x7)
      .u32(IPVS_DEST_ATTR.WEIGHT, d.weight >>> 0)
      .u8(IPVS_DEST_ATTR.TUN_TYPE, 0)
      .be16(IPVS_DEST_ATTR.TUN_PORT, 0)
      .u16(IPVS_DEST_ATTR.TUN_FLAGS, 0)
      .u32(IPVS_DEST_ATTR.U_THRESH, d.uThresh)
      .u32(IPVS_DEST_ATTR.L_THRESH, d.lThresh)
      .u32(IPVS_DEST_ATTR.ACTIVE_CONNS, d.activeConns)
      .u32(IPVS_DEST_ATTR.INACT_CONNS, d.inactConns)
      .u32(IPVS_DEST_ATTR.PERSIST_CONNS, d.persistConns)
      .u16(IPVS_DEST_ATTR.ADDR_FAMILY, d.af);
    statsAttrs(w, IPVS_DEST_ATTR.STATS, IPVS_DEST_ATTR.STATS64, d.stats);
  });
}

/** ip_vs_genl_fill_stats (u32 counters, u64 bytes) and ip_vs_genl_fill_stats64 (all u64). */
function statsAttrs(w: AttrWriter, statsType: number, stats64Type: number, s: FakeStats): void {
  const u32 = (v: bigint): number => Number(v & 0xffffffffn);
  w.nest(statsType, (n) => {
    n.u32(IPVS_STATS_ATTR.CONNS, u32(s.conns))
      .u32(IPVS_STATS_ATTR.INPKTS, u32(s.inpkts))
      .u32(IPVS_STATS_ATTR.OUTPKTS, u32(s.outpkts))
      .u64(IPVS_STATS_ATTR.INBYTES, s.inbytes)
      .u64(IPVS_STATS_ATTR.OUTBYTES, s.outbytes)
      .u32(IPVS_STATS_ATTR.CPS, u32(s.cps))
      .u32(IPVS_STATS_ATTR.INPPS, u32(s.inpps))
      .u32(IPVS_STATS_ATTR.OUTPPS, u32(s.outpps))
      .u32(IPVS_STATS_ATTR.INBPS, u32(s.inbps))
      .u32(IPVS_STATS_ATTR.OUTBPS, u32(s.outbps));
  });
  w.nest(stats64Type, (n) => {
    n.u64(IPVS_STATS_ATTR.CONNS, s.conns)
      .u64(IPVS_STATS_ATTR.INPKTS, s.inpkts)
      .u64(IPVS_STATS_ATTR.OUTPKTS, s.outpkts)
      .u64(IPVS_STATS_ATTR.INBYTES, s.inbytes)
      .u64(IPVS_STATS_ATTR.OUTBYTES, s.outbytes)
      .u64(IPVS_STATS_ATTR.CPS, s.cps)
      .u64(IPVS_STATS_ATTR.INPPS, s.inpps)
      .u64(IPVS_STATS_ATTR.OUTPPS, s.outpps)
      .u64(IPVS_STATS_ATTR.INBPS, s.inbps)
      .u64(IPVS_STATS_ATTR.OUTBPS, s.outbps);
  });
}
