// Netlink message framing (uapi linux/netlink.h): struct nlmsghdr and the
// walk over a buffer of messages. Owns the byte layout only; the socket that
// sends and receives is the addon's (native/src/netlink.cc), which stamps the
// sequence number and port id, so encoders here leave both 0.
//
//   struct nlmsghdr { u32 nlmsg_len; u16 nlmsg_type; u16 nlmsg_flags; u32 nlmsg_seq; u32 nlmsg_pid; }
//
// Header fields are in host byte order (little-endian on every host
// Switchyard runs on: src/dataplane/bpf/layout.ts refuses a big-endian one);
// each message is padded to 4 bytes (NLMSG_ALIGN).

import { SwitchyardError } from '../../util/errors.ts';

export const NLMSG_HDRLEN = 16;

/** Control message types below NLMSG_MIN_TYPE (0x10). */
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

/** nlmsg_flags. */
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
export const NLM_F_DUMP_INTR = 0x10;
/** GET requests. */
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
/** NEW requests. */
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;

export const align4 = (n: number): number => (n + 3) & ~3;

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** The bytes after the header, nlmsg_len - 16 of them (padding excluded). */
  readonly payload: Buffer;
}

/** A malformed message from the kernel (or a fixture): the offset and what was wrong. */
export class NetlinkDecodeError extends SwitchyardError {
  constructor(message: string) {
    super('ERR_SY_NETLINK_DECODE', message);
    this.name = 'NetlinkDecodeError';
  }
}

/** One message: header (seq and pid 0 unless given) and payload, padded to 4 bytes. */
export function encodeMessage(type: number, flags: number, payload: Uint8Array, seq = 0, pid = 0): Buffer {
  const len = NLMSG_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(seq >>> 0, 8);
  out.writeUInt32LE(pid >>> 0, 12);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

/** Every message in buf, in order. Throws NetlinkDecodeError on a header that does not fit. */
export function parseMessages(buf: Uint8Array): NetlinkMessage[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off < b.length) {
    if (b.length - off < NLMSG_HDRLEN) throw new NetlinkDecodeError(`netlink: ${b.length - off} stray bytes at offset ${off}, shorter than a header`);
    const len = b.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > b.length)
      throw new NetlinkDecodeError(`netlink: nlmsg_len ${len} at offset ${off} does not fit in ${b.length} bytes`);
    out.push({
      type: b.readUInt16LE(off + 4),
      flags: b.readUInt16LE(off + 6),
      seq: b.readUInt32LE(off + 8),
      pid: b.readUInt32LE(off + 12),
      payload: b.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** The errno of an NLMSG_ERROR payload (struct nlmsgerr: int error, then the request's header); 0 is an ACK. */
export function nlmsgerrErrno(payload: Buffer): number {
  if (payload.length < 4) throw new NetlinkDecodeError(`netlink: NLMSG_ERROR payload of ${payload.length} bytes`);
  const e = payload.readInt32LE(0);
  return e === 0 ? 0 : -e;
}
