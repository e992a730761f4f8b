// rtnetlink messages for links and addresses (uapi linux/rtnetlink.h,
// if_link.h, if_addr.h), as much as the IPVS dataplane's dummy device needs:
// get a link by name, create a dummy link, dump, add and delete addresses.
// Pure encoding and decoding; the socket is NetlinkSocket(NETLINK_ROUTE).
//
//   struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; }   16 bytes
//   struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index; }          8 bytes
// Addresses (IFA_ADDRESS, IFA_LOCAL) are byte strings in network order; the
// rest host order.

import { AttrWriter, Attrs } from './attributes.ts';
import { encodeMessage, NetlinkDecodeError, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, type NetlinkMessage } from './message.ts';
import { formatIP, parseIP } from '../../util/ip.ts';

export const RTM_NEWLINK = 16;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;

export const IFLA_IFNAME = 3;
export const IFLA_LINKINFO = 18;
export const IFLA_INFO_KIND = 1;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_FLAGS = 8;
/** No duplicate address detection (IPv6): the address is usable at once. */
export const IFA_F_NODAD = 0x02;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
const IFINFOMSG_LEN = 16;
const IFADDRMSG_LEN = 8;
/** RT_SCOPE_UNIVERSE: a global address. */
const RT_SCOPE_UNIVERSE = 0;

export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  /** IFF_* (IFF_UP 0x1). */
  readonly flags: number;
}

export interface AddressInfo {
  readonly index: number;
  readonly address: string;
  readonly prefixLength: number;
}

function ifinfomsg(index: number): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeInt32LE(index, 4);
  return b;
}

/** RTM_GETLINK of one link by name; the kernel answers ENODEV when there is none. */
export function encodeGetLink(name: string): Buffer {
  return encodeMessage(RTM_GETLINK, NLM_F_REQUEST, Buffer.concat([ifinfomsg(0), new AttrWriter().string(IFLA_IFNAME, name).toBuffer()]));
}

/** RTM_NEWLINK creating a dummy link (EEXIST when one has the name). */
export function encodeNewDummy(name: string): Buffer {
  const attrs = new AttrWriter().string(IFLA_IFNAME, name).nest(IFLA_LINKINFO, (w) => w.string(IFLA_INFO_KIND, 'dummy'));
  return encodeMessage(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifinfomsg(0), attrs.toBuffer()]));
}

export function decodeLink(m: NetlinkMessage): LinkInfo {
  if (m.type !== RTM_NEWLINK || m.payload.length < IFINFOMSG_LEN)
    throw new NetlinkDecodeError(`rtnetlink: not a link message (type ${m.type}, ${m.payload.length} bytes)`);
  const attrs = new Attrs('rtnetlink link', m.payload.subarray(IFINFOMSG_LEN));
  return { index: m.payload.readInt32LE(4), flags: m.payload.readUInt32LE(8), name: attrs.string(IFLA_IFNAME) ?? '' };
}

/** RTM_GETADDR dump of every address of both families (filtered by the caller: older kernels ignore the index). */
export function encodeGetAddrs(): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(AF_UNSPEC, 0);
  return encodeMessage(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, b);
}

export function decodeAddr(m: NetlinkMessage): AddressInfo | null {
  if (m.type !== RTM_NEWADDR || m.payload.length < IFADDRMSG_LEN) return null;
  const family = m.payload.readUInt8(0);
  const attrs = new Attrs('rtnetlink address', m.payload.subarray(IFADDRMSG_LEN));
  // IPv4: IFA_LOCAL is the address (IFA_ADDRESS the peer on point-to-point links); IPv6: IFA_ADDRESS.
  const raw = family === AF_INET ? (attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS)) : attrs.get(IFA_ADDRESS);
  if (raw === undefined) return null;
  let address: string;
  if (family === AF_INET && raw.length === 4) address = formatIP({ family: 'IPv4', bytes: raw });
  else if (family === AF_INET6 && raw.length === 16) address = formatIP({ family: 'IPv6', bytes: raw });
  else return null;
  return { index: m.payload.readUInt32LE(4), address, prefixLength: m.payload.readUInt8(1) };
}

function addrMessage(type: number, flags: number, index: number, address: string): Buffer {
  const ip = parseIP(address, 'decimal');
  if (ip === null) throw new RangeError(`rtnetlink: '${address}' is not an IP address`);
  const v4 = ip.family === 'IPv4';
  const hdr = Buffer.alloc(IFADDRMSG_LEN);
  hdr.writeUInt8(v4 ? AF_INET : AF_INET6, 0);
  hdr.writeUInt8(v4 ? 32 : 128, 1);
  hdr.writeUInt8(v4 ? 0 : IFA_F_NODAD, 2);
  hdr.writeUInt8(RT_SCOPE_UNIVERSE, 3);
  hdr.writeUInt32LE(index, 4);
  const attrs = new AttrWriter();
  if (v4) attrs.bytes(IFA_LOCAL, ip.bytes);
  attrs.bytes(IFA_ADDRESS, ip.bytes);
  if (!v4) attrs.u32(IFA_FLAGS, IFA_F_NODAD);
  return encodeMessage(type, flags, Buffer.concat([hdr, attrs.toBuffer()]));
}

/** RTM_NEWADDR of a host address (/32, /128; IPv6 without DAD); EEXIST when it is there. */
export function encodeNewAddr(index: number, address: string): Buffer {
  return addrMessage(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, index, address);
}

/** RTM_DELADDR of a host address; EADDRNOTAVAIL when it is not there. */
export function encodeDelAddr(index: number, address: string): Buffer {
  return addrMessage(RTM_DELADDR, NLM_F_REQUEST, index, address);
}
