// Generic netlink (uapi linux/genetlink.h): the 4-byte genlmsghdr after the
// nlmsghdr, and the controller family "nlctrl" (GENL_ID_CTRL) that maps a
// family's name to the message type it was given at registration (dynamic:
// IPVS's id differs between boots and kernels, so it is always resolved).
//
//   struct genlmsghdr { u8 cmd; u8 version; u16 reserved; }   then attributes

import { AttrWriter, Attrs } from './attributes.ts';
import { NetlinkDecodeError, NLM_F_REQUEST, encodeMessage, type NetlinkMessage } from './message.ts';

export const GENL_HDRLEN = 4;
export const GENL_ID_CTRL = 0x10;

export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;

export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_HDRSIZE = 4;
export const CTRL_ATTR_MAXATTR = 5;
export const CTRL_ATTR_OPS = 6;
export const CTRL_ATTR_MCAST_GROUPS = 7;

export const CTRL_ATTR_OP_ID = 1;
export const CTRL_ATTR_OP_FLAGS = 2;
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
export const CTRL_ATTR_MCAST_GRP_ID = 2;

/** A generic netlink message: the family's id is the nlmsg_type. */
export interface GenlMessage {
  readonly family: number;
  readonly flags: number;
  readonly cmd: number;
  readonly version: number;
  readonly attrs: Attrs;
}

/** What the controller says about one family. */
export interface GenlFamily {
  readonly id: number;
  readonly name: string;
  readonly version: number;
  readonly hdrsize: number;
  readonly maxattr: number;
  /** Commands the family accepts, with their GENL_* flags (GENL_ADMIN_PERM 0x1, GENL_CMD_CAP_DO 0x2, _DUMP 0x4, _HASPOL 0x8). */
  readonly ops: ReadonlyArray<{ readonly id: number; readonly flags: number }>;
  readonly mcastGroups: ReadonlyArray<{ readonly name: string; readonly id: number }>;
}

/** A request to `family`: NLM_F_REQUEST plus `flags` (NLM_F_DUMP, ...); attributes from `attrs`. */
export function encodeGenl(family: number, cmd: number, version: number, attrs: AttrWriter | null, flags = 0): Buffer {
  const body = attrs?.toBuffer() ?? Buffer.alloc(0);
  const payload = Buffer.alloc(GENL_HDRLEN + body.length);
  payload.writeUInt8(cmd, 0);
  payload.writeUInt8(version, 1);
  payload.set(body, GENL_HDRLEN);
  return encodeMessage(family, NLM_F_REQUEST | flags, payload);
}

export function decodeGenl(m: NetlinkMessage, what: string): GenlMessage {
  if (m.payload.length < GENL_HDRLEN) throw new NetlinkDecodeError(`${what}: ${m.payload.length} bytes, shorter than genlmsghdr`);
  return {
    family: m.type,
    flags: m.flags,
    cmd: m.payload.readUInt8(0),
    version: m.payload.readUInt8(1),
    attrs: new Attrs(what, m.payload.subarray(GENL_HDRLEN)),
  };
}

/** CTRL_CMD_GETFAMILY for one name (a doit: one reply, or ENOENT when no such family is registered). */
export function encodeGetFamily(name: string): Buffer {
  return encodeGenl(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, new AttrWriter().string(CTRL_ATTR_FAMILY_NAME, name));
}

/** The controller's CTRL_CMD_NEWFAMILY reply. */
export function decodeFamily(m: NetlinkMessage): GenlFamily {
  const g = decodeGenl(m, 'nlctrl reply');
  if (g.family !== GENL_ID_CTRL || g.cmd !== CTRL_CMD_NEWFAMILY) {
    throw new NetlinkDecodeError(`nlctrl reply: type ${g.family} cmd ${g.cmd}, expected ${GENL_ID_CTRL} cmd ${CTRL_CMD_NEWFAMILY}`);
  }
  const a = g.attrs;
  const list = <T>(type: number, each: (e: Attrs) => T): T[] => {
    const outer = a.nested(type, `nlctrl attribute ${type}`);
    if (outer === undefined) return [];
    return outer.types().map((i) => each(outer.nested(i, `nlctrl attribute ${type}/${i}`)!));
  };
  return {
    id: a.need(CTRL_ATTR_FAMILY_ID, a.u16, 'CTRL_ATTR_FAMILY_ID'),
    name: a.need(CTRL_ATTR_FAMILY_NAME, a.string, 'CTRL_ATTR_FAMILY_NAME'),
    version: a.u32(CTRL_ATTR_VERSION) ?? 0,
    hdrsize: a.u32(CTRL_ATTR_HDRSIZE) ?? 0,
    maxattr: a.u32(CTRL_ATTR_MAXATTR) ?? 0,
    ops: list(CTRL_ATTR_OPS, (e) => ({ id: e.u32(CTRL_ATTR_OP_ID) ?? 0, flags: e.u32(CTRL_ATTR_OP_FLAGS) ?? 0 })),
    mcastGroups: list(CTRL_ATTR_MCAST_GROUPS, (e) => ({ name: e.string(CTRL_ATTR_MCAST_GRP_NAME) ?? '', id: e.u32(CTRL_ATTR_MCAST_GRP_ID) ?? 0 })),
  };
}
