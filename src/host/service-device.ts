// ServiceAddressDevice: the dummy link (kube-ipvs0) that holds the IPVS
// dataplane's Service addresses, so that packets to them are routed to the
// local stack where IPVS takes them (NF_INET_LOCAL_IN). Over rtnetlink
// (NETLINK_ROUTE on the addon's netlink socket; no `ip` subprocess):
// created when missing and left down, as kube-proxy leaves it (an IPv4
// address still gets its local route; IPv6 ones are added without DAD);
// host addresses (/32, /128) listed, added and deleted. Constructors do no
// I/O; open() makes the socket.

import type { NativeBinding } from '../native/binding.ts';
import { NetlinkDecodeError } from './netlink/message.ts';
import { NetlinkSocket, NETLINK_ROUTE } from './netlink/socket.ts';
import { decodeAddr, decodeLink, encodeDelAddr, encodeGetAddrs, encodeGetLink, encodeNewAddr, encodeNewDummy } from './netlink/rtnl.ts';

/** kube-proxy's name for it; tools and runbooks look for this one. */
export const IPVS_DEVICE = 'kube-ipvs0';

/** What the IPVS dataplane needs from the device (a fake in unit tests). */
export interface ServiceAddresses {
  /** Creates the link when missing; returns whether it did. */
  ensure(): Promise<boolean>;
  /** Its host addresses, canonical. */
  list(): Promise<Set<string>>;
  /** Adds host addresses (one already there is not an error). */
  add(addresses: readonly string[]): Promise<void>;
  /** Deletes host addresses (one not there is not an error). */
  delete(addresses: readonly string[]): Promise<void>;
  close(): void;
}

function errnoCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

export class ServiceAddressDevice implements ServiceAddresses {
  readonly name: string;
  readonly #socket: NetlinkSocket;
  #index = 0;

  constructor(socket: NetlinkSocket, name = IPVS_DEVICE) {
    this.#socket = socket;
    this.name = name;
  }

  static open(binding: Pick<NativeBinding, 'netlinkOpen'>, name = IPVS_DEVICE): ServiceAddressDevice {
    return new ServiceAddressDevice(NetlinkSocket.open(binding, NETLINK_ROUTE), name);
  }

  async #lookup(): Promise<number | null> {
    try {
      const [m] = await this.#socket.request(encodeGetLink(this.name), `RTM_GETLINK ${this.name}`);
      return m === undefined ? null : decodeLink(m).index;
    } catch (err) {
      if (errnoCode(err) === 'ENODEV') return null;
      throw err;
    }
  }

  async ensure(): Promise<boolean> {
    let index = await this.#lookup();
    let created = false;
    if (index === null) {
      try {
        await this.#socket.request(encodeNewDummy(this.name), `RTM_NEWLINK ${this.name} type dummy`);
        created = true;
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err; // made by someone else meanwhile
      }
      index = await this.#lookup();
      if (index === null) throw new NetlinkDecodeError(`rtnetlink: RTM_GETLINK ${this.name}: no link after it was created`);
    }
    this.#index = index;
    return created;
  }

  /** The link's index, looked up when ensure() has not run (a link that is not there: NetlinkDecodeError). */
  async #need(): Promise<number> {
    if (this.#index !== 0) return this.#index;
    const index = await this.#lookup();
    if (index === null) throw new NetlinkDecodeError(`rtnetlink: RTM_GETLINK ${this.name}: no such link`);
    this.#index = index;
    return index;
  }

  async list(): Promise<Set<string>> {
    const index = await this.#need();
    const out = new Set<string>();
    for (const m of await this.#socket.request(encodeGetAddrs(), 'RTM_GETADDR dump')) {
      const a = decodeAddr(m);
      if (a !== null && a.index === index) out.add(a.address);
    }
    return out;
  }

  async add(addresses: readonly string[]): Promise<void> {
    const index = await this.#need();
    await this.#batch(
      addresses.map((a) => encodeNewAddr(index, a)),
      addresses.map((a) => `RTM_NEWADDR ${a} dev ${this.name}`),
      'EEXIST',
    );
  }

  async delete(addresses: readonly string[]): Promise<void> {
    const index = await this.#need();
    await this.#batch(
      addresses.map((a) => encodeDelAddr(index, a)),
      addresses.map((a) => `RTM_DELADDR ${a} dev ${this.name}`),
      'EADDRNOTAVAIL',
    );
  }

  /** Every message sent (one round trip for many); the first error other than `ignored` thrown after. */
  async #batch(messages: Buffer[], labels: string[], ignored: string): Promise<void> {
    const out = await this.#socket.batch(messages, labels);
    const failed = out.find((o) => o.error !== null && errnoCode(o.error) !== ignored);
    if (failed?.error) throw failed.error;
  }

  close(): void {
    this.#socket.close();
  }
}
