// IpvsClient: the kernel's IPVS table of this network namespace over generic
// netlink (family "IPVS"), the way ipvsadm drives it: virtual services and
// their destinations (add, edit, delete, get, dump), connection timeouts
// (SET_CONFIG/GET_CONFIG), version, flush. Encoding is codec.ts; the socket
// is the addon's (GenericNetlink). Errors are the kernel's, as the addon
// makes them (errno, code, syscall 'netlink'), their message naming the
// command and the service or destination, e.g.
//   netlink on IPVS NEW_SERVICE TCP 10.96.0.1:80: File exists
// What the kernel answers (net/netfilter/ipvs/ip_vs_ctl.c, ip_vs_genl_set_cmd):
//   EEXIST  a service or destination that is already there
//   ESRCH   any command on a service that is not there (GET_SERVICE too)
//   ENOENT  an unknown scheduler (after trying to load ip_vs_<name>); editing or
//           deleting a destination that is not there; no IPVS family (ip_vs not loaded)
//   EINVAL  a missing attribute; an IPv6 persistence prefix outside 1..128; a
//           destination address that is not unicast (0.0.0.0, multicast, broadcast;
//           IPv6 link-local unless local); a timeout above INT_MAX/HZ
//   ERANGE  a weight above 2^31-1 or a lower threshold above the upper one
//   EAFNOSUPPORT an address family the kernel does not have (IPv6 disabled)
//   EPERM   without CAP_NET_ADMIN
// A destination dump of a service that is not there is empty, not an error.

import type { NativeBinding, NetlinkOpenOptions } from '../../native/binding.ts';
import type { NativeError } from '../../native/errors.ts';
import { NetlinkDecodeError } from '../netlink/message.ts';
import type { GenlFamily } from '../netlink/genl.ts';
import { GenericNetlink } from '../netlink/socket.ts';
import {
  decodeDestination,
  decodeInfo,
  decodeService,
  decodeTimeouts,
  destinationLabel,
  encode,
  serviceLabel,
  type Destination,
  type DestinationKey,
  type DestinationSpec,
  type IpvsInfo,
  type Service,
  type ServiceKey,
  type ServiceSpec,
  type Timeouts,
} from './codec.ts';
import { IPVS_GENL_NAME } from './uapi.ts';
import { familyOf } from '../../util/ip.ts';

/** One change for batch(): applied in order, each with its own outcome. */
export type IpvsOp =
  | { readonly op: 'add-service' | 'edit-service'; readonly service: ServiceSpec }
  | { readonly op: 'delete-service'; readonly service: ServiceKey }
  | { readonly op: 'add-destination' | 'edit-destination'; readonly service: ServiceKey; readonly destination: DestinationSpec }
  | { readonly op: 'delete-destination'; readonly service: ServiceKey; readonly destination: DestinationKey };

export class IpvsClient {
  readonly #genl: GenericNetlink;
  #family: GenlFamily | null = null;

  constructor(genl: GenericNetlink) {
    this.#genl = genl;
  }

  /** A client on a new NETLINK_GENERIC socket; the family is resolved on first use. */
  static open(binding: Pick<NativeBinding, 'netlinkOpen'>, opts?: NetlinkOpenOptions): IpvsClient {
    return new IpvsClient(GenericNetlink.open(binding, opts));
  }

  /** The IPVS family's id; the kernel's ENOENT when IPVS is not loaded. */
  async familyId(): Promise<number> {
    if (this.#family === null) this.#family = await this.#genl.family(IPVS_GENL_NAME);
    return this.#family.id;
  }

  async #request(make: (family: number) => Buffer, label: string) {
    const family = await this.familyId();
    return this.#genl.request(make(family), `IPVS ${label}`);
  }

  async info(): Promise<IpvsInfo> {
    const [r] = await this.#request(encode.getInfo, 'GET_INFO');
    if (r === undefined) throw new NetlinkDecodeError('IPVS GET_INFO: no reply');
    return decodeInfo(r.attrs);
  }

  async addService(s: ServiceSpec): Promise<void> {
    await this.#request((f) => encode.newService(f, s), `NEW_SERVICE ${serviceLabel(s)}`);
  }

  /** Scheduler, flags, persistence of an existing service (ESRCH when there is none). */
  async editService(s: ServiceSpec): Promise<void> {
    await this.#request((f) => encode.setService(f, s), `SET_SERVICE ${serviceLabel(s)}`);
  }

  /** Deletes the service and its destinations. */
  async deleteService(k: ServiceKey): Promise<void> {
    await this.#request((f) => encode.delService(f, k), `DEL_SERVICE ${serviceLabel(k)}`);
  }

  /** One service; the kernel's ESRCH when it is not there. */
  async getService(k: ServiceKey): Promise<Service> {
    const [r] = await this.#request((f) => encode.getService(f, k), `GET_SERVICE ${serviceLabel(k)}`);
    const s = r === undefined ? null : decodeService(r.attrs);
    if (s === null) throw new NetlinkDecodeError(`IPVS GET_SERVICE ${serviceLabel(k)}: no service in the reply`);
    return s;
  }

  /** Every service (fwmark services left out), in the kernel's order. */
  async services(): Promise<Service[]> {
    const replies = await this.#request(encode.dumpServices, 'GET_SERVICE dump');
    return replies.map((r) => decodeService(r.attrs)).filter((s): s is Service => s !== null);
  }

  async addDestination(k: ServiceKey, d: DestinationSpec): Promise<void> {
    await this.#request((f) => encode.newDest(f, k, d), `NEW_DEST ${serviceLabel(k)} -> ${destinationLabel(d)}`);
  }

  async editDestination(k: ServiceKey, d: DestinationSpec): Promise<void> {
    await this.#request((f) => encode.setDest(f, k, d), `SET_DEST ${serviceLabel(k)} -> ${destinationLabel(d)}`);
  }

  async deleteDestination(k: ServiceKey, d: DestinationKey): Promise<void> {
    await this.#request((f) => encode.delDest(f, k, d), `DEL_DEST ${serviceLabel(k)} -> ${destinationLabel(d)}`);
  }

  /** The service's destinations; empty when the service is not there. */
  async destinations(k: ServiceKey): Promise<Destination[]> {
    const replies = await this.#request((f) => encode.dumpDests(f, k), `GET_DEST dump ${serviceLabel(k)}`);
    return replies.map((r) => decodeDestination(r.attrs, familyOf(k.address)));
  }

  async timeouts(): Promise<Timeouts> {
    const [r] = await this.#request(encode.getConfig, 'GET_CONFIG');
    if (r === undefined) throw new NetlinkDecodeError('IPVS GET_CONFIG: no reply');
    return decodeTimeouts(r.attrs);
  }

  /** Sets the given timeouts (seconds); 0 or absent leaves one unchanged, as ipvsadm --set does. */
  async setTimeouts(t: Partial<Timeouts>): Promise<void> {
    await this.#request((f) => encode.setConfig(f, t), `SET_CONFIG tcp ${t.tcp ?? 0} tcpfin ${t.tcpFin ?? 0} udp ${t.udp ?? 0}`);
  }

  /** Deletes every service of this network namespace. */
  async flush(): Promise<void> {
    await this.#request(encode.flush, 'FLUSH');
  }

  /** Zeroes every counter. */
  async zero(): Promise<void> {
    await this.#request(encode.zero, 'ZERO');
  }

  /**
   * Many changes in as few round trips as fit (native/src/netlink.cc): each
   * applied in order, each with its own outcome (null, or the kernel's error
   * for it; a failed one does not stop the rest).
   */
  async batch(ops: readonly IpvsOp[]): Promise<Array<NativeError | null>> {
    if (ops.length === 0) return [];
    const f = await this.familyId();
    const messages: Buffer[] = [];
    const labels: string[] = [];
    for (const o of ops) {
      const [m, label] = encodeOp(f, o);
      messages.push(m);
      labels.push(`IPVS ${label}`);
    }
    const out = await this.#genl.socket.batch(messages, labels);
    return out.map((o) => o.error);
  }

  close(): void {
    this.#genl.close();
  }
}

function encodeOp(f: number, o: IpvsOp): [Buffer, string] {
  switch (o.op) {
    case 'add-service':
      return [encode.newService(f, o.service), `NEW_SERVICE ${serviceLabel(o.service)}`];
    case 'edit-service':
      return [encode.setService(f, o.service), `SET_SERVICE ${serviceLabel(o.service)}`];
    case 'delete-service':
      return [encode.delService(f, o.service), `DEL_SERVICE ${serviceLabel(o.service)}`];
    case 'add-destination':
      return [encode.newDest(f, o.service, o.destination), `NEW_DEST ${serviceLabel(o.service)} -> ${destinationLabel(o.destination)}`];
    case 'edit-destination':
      return [encode.setDest(f, o.service, o.destination), `SET_DEST ${serviceLabel(o.service)} -> ${destinationLabel(o.destination)}`];
    case 'delete-destination':
      return [encode.delDest(f, o.service, o.destination), `DEL_DEST ${serviceLabel(o.service)} -> ${destinationLabel(o.destination)}`];
  }
}
