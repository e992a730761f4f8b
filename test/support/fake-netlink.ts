// FakeNetlinkKernel: the kernel's side of the addon's netlink socket
// (native/src/netlink.cc), in memory, for unit tests. It speaks the same
// bytes: requests arrive as encoded messages and replies leave as encoded
// messages, so the TypeScript codecs run exactly as against the kernel.
//
// Modelled as the kernel and netlink.cc do it (checked against kernel 6.18
// by test/privileged/netlink.test.ts where marked (kernel)):
// - the socket stamps each message's seq (from 1, one per message) and the
//   port id, and sets NLM_F_ACK unless the message is a dump;
// - NETLINK_GENERIC: the controller "nlctrl" (id 0x10) answers
//   CTRL_CMD_GETFAMILY by name with the family's id, name, version, hdrsize,
//   maxattr, ops and multicast groups (kernel), ENOENT for an unknown name
//   (kernel); a family's commands reach its handler; a message to an unknown
//   family id ENOENT, a command the family lacks EOPNOTSUPP, a dump of a
//   command without one EOPNOTSUPP (genl_family_rcv_msg);
// - each message ends on its own: the kernel goes on with the next one of a
//   batch after an error (kernel);
// - errors are NativeErrors shaped as the addon makes them: "netlink on
//   <label>: <strerror>", errno, code, syscall 'netlink' (kernel);
// - a closed socket EBADF 'netlink request'; protocols other than
//   NETLINK_GENERIC EPROTONOSUPPORT socket.
// Not modelled: extended-ack texts, multicast, permissions (GENL_ADMIN_PERM),
// receive buffer overruns.

import type { NativeNetlink, NetlinkOpenOptions, NetlinkResult } from '../../src/native/binding.ts';
import { AttrWriter, Attrs } from '../../src/host/netlink/attributes.ts';
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_ATTR_HDRSIZE,
  CTRL_ATTR_MAXATTR,
  CTRL_ATTR_MCAST_GROUPS,
  CTRL_ATTR_MCAST_GRP_ID,
  CTRL_ATTR_MCAST_GRP_NAME,
  CTRL_ATTR_OP_FLAGS,
  CTRL_ATTR_OP_ID,
  CTRL_ATTR_OPS,
  CTRL_ATTR_VERSION,
  CTRL_CMD_GETFAMILY,
  CTRL_CMD_NEWFAMILY,
  GENL_HDRLEN,
  GENL_ID_CTRL,
} from '../../src/host/netlink/genl.ts';
import { NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTI, encodeMessage, parseMessages } from '../../src/host/netlink/message.ts';
import { type Errno, sysError } from './fake-native.ts';

const NETLINK_GENERIC = 16;
/** GENL_CMD_CAP_DO, GENL_CMD_CAP_DUMP, GENL_CMD_CAP_HASPOL, GENL_ADMIN_PERM (uapi genetlink.h). */
const GENL_ADMIN_PERM = 0x1;
const GENL_CMD_CAP_DO = 0x2;
const GENL_CMD_CAP_DUMP = 0x4;
const GENL_CMD_CAP_HASPOL = 0x8;

/** What a family's handler throws for the kernel's -errno. */
export class FakeErrno extends Error {
  readonly errno: Errno;
  constructor(errno: Errno, why = '') {
    super(`${errno}${why ? `: ${why}` : ''}`);
    this.errno = errno;
  }
}

export interface FakeGenlRequest {
  readonly cmd: number;
  readonly version: number;
  readonly flags: number;
  readonly dump: boolean;
  readonly attrs: Attrs;
}

export interface FakeGenlCommand {
  readonly cmd: number;
  readonly doit?: boolean;
  readonly dumpit?: boolean;
}

export interface FakeGenlFamily {
  readonly name: string;
  readonly version: number;
  readonly maxattr: number;
  readonly commands: readonly FakeGenlCommand[];
  readonly mcastGroups?: ReadonlyArray<{ readonly name: string; readonly id: number }>;
  /** GENL_ADMIN_PERM on every command (default true, as IPVS's). */
  readonly adminPerm?: boolean;
  /** Reply bodies (genlmsghdr cmd + attributes) in order; throw FakeErrno to fail. */
  handle(req: FakeGenlRequest): Array<{ cmd: number; attrs: AttrWriter }>;
}

export class FakeNetlinkKernel {
  readonly #families = new Map<number, FakeGenlFamily>();
  #nextFamilyId = 0x20; // ids the kernel hands out start after the controller's and the static ones
  #nextPort = 1000;
  /** Every generic request that reached a family: [family name, cmd], in order. */
  readonly calls: Array<[string, number]> = [];

  /** Registers a family (genl_register_family); returns its id. */
  register(family: FakeGenlFamily): number {
    const id = this.#nextFamilyId++;
    this.#families.set(id, family);
    return id;
  }

  unregister(name: string): void {
    for (const [id, f] of this.#families) if (f.name === name) this.#families.delete(id);
  }

  open(protocol: number, _opts?: NetlinkOpenOptions): NativeNetlink {
    if (protocol !== NETLINK_GENERIC) throw sysError('EPROTONOSUPPORT', 'socket', protocol === 0 ? 'NETLINK_ROUTE socket' : 'netlink socket');
    return new FakeNetlinkSocket(this, this.#nextPort++);
  }

  /** One request message, already stamped; its reply messages and errno (0 for success). */
  exchange(req: Buffer, port: number): { replies: Buffer[]; error: Errno | null } {
    const [m] = parseMessages(req);
    if (m === undefined) return { replies: [], error: 'EINVAL' };
    const dump = (m.flags & NLM_F_DUMP) === NLM_F_DUMP;
    try {
      const bodies = this.#dispatch(m.type, m.flags, m.payload, dump);
      const replies = bodies.map(({ type, cmd, version, attrs }) => {
        const body = attrs.toBuffer();
        const payload = Buffer.alloc(GENL_HDRLEN + body.length);
        payload.writeUInt8(cmd, 0);
        payload.writeUInt8(version, 1);
        payload.set(body, GENL_HDRLEN);
        return encodeMessage(type, dump ? NLM_F_MULTI : 0, payload, m.seq, port);
      });
      return { replies, error: null };
    } catch (e) {
      if (e instanceof FakeErrno) return { replies: [], error: e.errno };
      throw e;
    }
  }

  #dispatch(type: number, flags: number, payload: Buffer, dump: boolean): Array<{ type: number; cmd: number; version: number; attrs: AttrWriter }> {
    if (payload.length < GENL_HDRLEN) throw new FakeErrno('EINVAL', 'short genlmsghdr');
    const cmd = payload.readUInt8(0);
    const version = payload.readUInt8(1);
    const attrs = new Attrs('fake genl request', payload.subarray(GENL_HDRLEN));
    if (type === GENL_ID_CTRL) return this.#ctrl(cmd, attrs, dump);
    const family = this.#families.get(type);
    if (family === undefined) throw new FakeErrno('ENOENT', `no family ${type}`);
    const op = family.commands.find((c) => c.cmd === cmd);
    if (op === undefined) throw new FakeErrno('EOPNOTSUPP', `${family.name} has no command ${cmd}`);
    if (dump ? op.dumpit !== true : op.doit !== true) throw new FakeErrno('EOPNOTSUPP', `${family.name} command ${cmd} has no ${dump ? 'dump' : 'doit'}`);
    this.calls.push([family.name, cmd]);
    return family.handle({ cmd, version, flags, dump, attrs }).map((r) => ({ type, cmd: r.cmd, version: family.version, attrs: r.attrs }));
  }

  #ctrl(cmd: number, attrs: Attrs, dump: boolean): Array<{ type: number; cmd: number; version: number; attrs: AttrWriter }> {
    if (cmd !== CTRL_CMD_GETFAMILY) throw new FakeErrno('EOPNOTSUPP');
    const all: Array<[number, FakeGenlFamily]> = [[GENL_ID_CTRL, NLCTRL], ...this.#families.entries()];
    const reply = ([id, f]: [number, FakeGenlFamily]) => ({ type: GENL_ID_CTRL, cmd: CTRL_CMD_NEWFAMILY, version: 2, attrs: familyAttrs(id, f) });
    if (dump) return all.map(reply);
    const name = attrs.string(CTRL_ATTR_FAMILY_NAME);
    const found = name === undefined ? undefined : all.find(([, f]) => f.name === name);
    if (found === undefined) throw new FakeErrno(name === undefined ? 'EINVAL' : 'ENOENT');
    return [reply(found)];
  }
}

/** The controller itself, as kernel 6.18 describes it (fixtures/netlink/nlctrl.json). */
const NLCTRL: FakeGenlFamily = {
  name: 'nlctrl',
  version: 2,
  maxattr: 0,
  commands: [
    { cmd: CTRL_CMD_GETFAMILY, doit: true, dumpit: true },
    { cmd: 10, dumpit: true }, // CTRL_CMD_GETPOLICY
  ],
  mcastGroups: [{ name: 'notify', id: GENL_ID_CTRL }],
  adminPerm: false,
  handle: () => [],
};

/** The controller's view of a family (ctrl_fill_info). */
function familyAttrs(id: number, f: FakeGenlFamily): AttrWriter {
  const w = new AttrWriter()
    .string(CTRL_ATTR_FAMILY_NAME, f.name)
    .u16(CTRL_ATTR_FAMILY_ID, id)
    .u32(CTRL_ATTR_VERSION, f.version)
    .u32(CTRL_ATTR_HDRSIZE, 0)
    .u32(CTRL_ATTR_MAXATTR, f.maxattr)
    .nest(CTRL_ATTR_OPS, (ops) => {
      f.commands.forEach((c, i) => {
        const capabilities =
          (f.adminPerm === false ? 0 : GENL_ADMIN_PERM) | GENL_CMD_CAP_HASPOL | (c.doit ? GENL_CMD_CAP_DO : 0) | (c.dumpit ? GENL_CMD_CAP_DUMP : 0);
        ops.nest(i + 1, (op) => op.u32(CTRL_ATTR_OP_ID, c.cmd).u32(CTRL_ATTR_OP_FLAGS, capabilities));
      });
    });
  if (f.mcastGroups?.length) {
    w.nest(CTRL_ATTR_MCAST_GROUPS, (gs) => {
      f.mcastGroups!.forEach((g, i) => gs.nest(i + 1, (n) => n.u32(CTRL_ATTR_MCAST_GRP_ID, g.id).string(CTRL_ATTR_MCAST_GRP_NAME, g.name)));
    });
  }
  return w;
}

class FakeNetlinkSocket implements NativeNetlink {
  readonly #kernel: FakeNetlinkKernel;
  readonly #port: number;
  #seq = 1;
  #open = true;

  constructor(kernel: FakeNetlinkKernel, port: number) {
    this.#kernel = kernel;
    this.#port = port;
  }

  get portId(): number | null {
    return this.#open ? this.#port : null;
  }

  get rcvbuf(): number | null {
    return this.#open ? 8 << 20 : null;
  }

  /** As the addon: arguments that are not messages throw; a closed socket rejects. */
  request(messages: Uint8Array, labels?: readonly string[]): Promise<NetlinkResult[]> {
    if (!(messages instanceof Uint8Array)) throw new TypeError('messages must be a Buffer or Uint8Array');
    if (messages.length === 0) throw new TypeError('messages must hold at least one message');
    let parsed: ReturnType<typeof parseMessages>;
    try {
      parsed = parseMessages(messages);
    } catch (e) {
      throw new TypeError(`messages: ${(e as Error).message}`);
    }
    if (!this.#open) return Promise.reject(sysError('EBADF', 'netlink request', 'a closed netlink socket'));
    return Promise.resolve().then(() => this.#answer(parsed, labels)); // the addon answers on a later turn
  }

  #answer(parsed: ReturnType<typeof parseMessages>, labels?: readonly string[]): NetlinkResult[] {
    return parsed.map((m, i) => {
      const seq = this.#seq++;
      const dump = (m.flags & NLM_F_DUMP) === NLM_F_DUMP;
      const stamped = encodeMessage(m.type, dump ? m.flags : m.flags | NLM_F_ACK, m.payload, seq, this.#port);
      const { replies, error } = this.#kernel.exchange(stamped, this.#port);
      const label = labels?.[i] || `NETLINK_GENERIC socket message type ${m.type}`;
      return { replies: Buffer.concat(replies), error: error === null ? null : sysError(error, 'netlink', label) };
    });
  }

  close(): void {
    this.#open = false;
  }
}
