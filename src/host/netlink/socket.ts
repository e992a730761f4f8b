// NetlinkSocket: typed requests over the addon's netlink socket
// (NativeBinding.netlinkOpen, native/src/netlink.cc), and GenericNetlink,
// a NETLINK_GENERIC socket that resolves family names through nlctrl (cached
// per socket: a family's id is fixed while its module stays loaded).
//
// request() is one message and its replies, throwing the kernel's error as
// the addon made it (errno, code, syscall 'netlink'); batch() is many
// messages in as few datagrams as fit, each with its own outcome (the kernel
// goes on after a failed one). Constructors do no I/O: open() makes the socket.

import type { NativeBinding, NativeNetlink, NetlinkOpenOptions } from '../../native/binding.ts';
import type { NativeError } from '../../native/errors.ts';
import { NetlinkDecodeError, parseMessages, type NetlinkMessage } from './message.ts';
import { decodeFamily, decodeGenl, encodeGetFamily, type GenlFamily, type GenlMessage } from './genl.ts';

export const NETLINK_ROUTE = 0;
export const NETLINK_GENERIC = 16;

export interface NetlinkOutcome {
  readonly messages: NetlinkMessage[];
  readonly error: NativeError | null;
}

export class NetlinkSocket {
  readonly protocol: number;
  readonly #native: NativeNetlink;

  constructor(native: NativeNetlink, protocol: number) {
    this.#native = native;
    this.protocol = protocol;
  }

  static open(binding: Pick<NativeBinding, 'netlinkOpen'>, protocol: number, opts?: NetlinkOpenOptions): NetlinkSocket {
    return new NetlinkSocket(binding.netlinkOpen(protocol, opts), protocol);
  }

  /** One message: its reply messages (none for a plain ACK); throws the kernel's error. */
  async request(message: Buffer, label?: string): Promise<NetlinkMessage[]> {
    const [r] = await this.#native.request(message, label === undefined ? undefined : [label]);
    if (r === undefined) throw new NetlinkDecodeError('netlink: the addon returned no result');
    if (r.error) throw r.error;
    return parseMessages(r.replies);
  }

  /** Many messages, sent in order; one outcome each. */
  async batch(messages: readonly Buffer[], labels?: readonly string[]): Promise<NetlinkOutcome[]> {
    if (messages.length === 0) return [];
    const results = await this.#native.request(Buffer.concat(messages), labels);
    return results.map((r) => ({ messages: parseMessages(r.replies), error: r.error }));
  }

  close(): void {
    this.#native.close();
  }
}

export class GenericNetlink {
  readonly socket: NetlinkSocket;
  readonly #families = new Map<string, Promise<GenlFamily>>();

  constructor(socket: NetlinkSocket) {
    this.socket = socket;
  }

  static open(binding: Pick<NativeBinding, 'netlinkOpen'>, opts?: NetlinkOpenOptions): GenericNetlink {
    return new GenericNetlink(NetlinkSocket.open(binding, NETLINK_GENERIC, opts));
  }

  /** The family registered as `name`; the kernel's ENOENT when there is none (its module not loaded). */
  family(name: string): Promise<GenlFamily> {
    let f = this.#families.get(name);
    if (f === undefined) {
      f = this.#resolve(name);
      this.#families.set(name, f);
      f.catch(() => this.#families.delete(name)); // a failure is not cached: the module may load later
    }
    return f;
  }

  async #resolve(name: string): Promise<GenlFamily> {
    const replies = await this.socket.request(encodeGetFamily(name), `generic netlink family ${name} (CTRL_CMD_GETFAMILY)`);
    if (replies.length !== 1) throw new NetlinkDecodeError(`nlctrl: ${replies.length} replies to GETFAMILY ${name}`);
    return decodeFamily(replies[0]!);
  }

  /** One generic netlink request; its replies decoded. */
  async request(message: Buffer, label: string): Promise<GenlMessage[]> {
    return (await this.socket.request(message, label)).map((m) => decodeGenl(m, label));
  }

  close(): void {
    this.socket.close();
  }
}
