// The IPVS dataplane: owns this node's IPVS virtual services (over generic
// netlink, host/ipvs/client.ts) and the Service addresses on the dummy link
// kube-ipvs0 (over rtnetlink, host/service-device.ts).
//
// start() sets the sysctls the IPVS datapath needs (ipvsSysctls), makes
// sure kube-ipvs0 exists, and reads back what the kernel holds: every
// virtual service whose address is on kube-ipvs0 or is a NodePort address of
// this node (outside --ipvs-exclude-cidrs) is Switchyard's, with its real
// servers; nothing else is ever touched. Nothing changes before the first
// sync, which compares the whole desired table with that and fixes only what
// differs: a restart keeps every service and real server that matches, so
// established connections (IPVS's own connection table) stay.
// sync() runs compile -> diff -> apply; after the first, diff looks only at
// the virtual services of the ServicePorts that changed. A refused command
// makes the next sync read everything back and compare everything.
// stop() closes the sockets and leaves the table in place.

import { release } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import type { IpvsClient } from '../../host/ipvs/client.ts';
import type { ServiceAddresses } from '../../host/service-device.ts';
import type { ProxySnapshot } from '../../model/types.ts';
import { cidrContains, parseCidr, parseIP } from '../../util/ip.ts';
import type { Logger } from '../../util/log.ts';
import type { LocalDetector, NodeAddresses } from '../bpf/dataplane.ts';
import { DataplaneError, type Dataplane, type SyncResult } from '../types.ts';
import { applyPlan, type Mirror } from './apply.ts';
import { changedScope, compile, EMPTY_DESIRED, type IpvsCompileOptions, type IpvsDesired } from './compile.ts';
import { diff } from './diff.ts';
import { realKey, specOf, virtualKey } from './state.ts';

/** The part of IpvsClient the dataplane uses (FakeIpvs behind a fake socket in unit tests). */
export type IpvsTable = Pick<IpvsClient, 'services' | 'destinations' | 'batch' | 'setTimeouts' | 'familyId' | 'close'>;

export interface Sysctl {
  read(name: string): string | null;
  write(name: string, value: string): void;
}

/** /proc/sys of this network namespace ("net/ipv4/vs/conntrack"). */
export const procSysctl: Sysctl = {
  read(name) {
    try {
      return readFileSync(`/proc/sys/${name}`, 'utf8').trim();
    } catch {
      return null;
    }
  },
  write(name, value) {
    writeFileSync(`/proc/sys/${name}`, `${value}\n`);
  },
};

export interface IpvsDataplaneOptions {
  readonly ipvs: IpvsTable;
  readonly device: ServiceAddresses;
  readonly log: Logger;
  readonly node: NodeAddresses;
  /** --ipvs-scheduler ('' = rr). */
  readonly scheduler: string;
  readonly masqueradeAll: boolean;
  readonly detectLocal: LocalDetector;
  /** --nodeport-addresses CIDRs; empty: every node address. */
  readonly nodePortAddresses: readonly string[];
  /** --ipvs-exclude-cidrs: virtual services there are never deleted. */
  readonly excludeCIDRs: readonly string[];
  /** --ipvs-strict-arp. */
  readonly strictARP: boolean;
  /** --ipvs-tcp-timeout etc. in seconds; 0 leaves the kernel's. */
  readonly timeouts: { readonly tcp: number; readonly tcpFin: number; readonly udp: number };
  readonly sysctl?: Sysctl;
  /** uname -r, for conn_reuse_mode; default os.release(). */
  readonly kernelRelease?: string;
}

/**
 * The sysctls kube-proxy's IPVS mode sets (pkg/proxy/ipvs/proxier.go),
 * name -> value:
 * - net/ipv4/vs/conntrack 1: IPVS keeps the netfilter conntrack entry of
 *   each connection up to date, so that its packets are not INVALID (nodes
 *   drop INVALID) and NAT/masquerade rules can see them;
 * - net/ipv4/vs/conn_reuse_mode 0 on kernels 4.1 to 5.8: with 1 a reused
 *   source port waited a second for the old connection on those kernels
 *   (fixed in 5.9, where kube-proxy leaves it alone);
 * - net/ipv4/vs/expire_nodest_conn 1: a connection to a deleted real server
 *   is dropped at its next packet instead of blackholing it;
 * - net/ipv4/vs/expire_quiescent_template 1: persistence (ClientIP affinity)
 *   templates to a weight-0 real server expire;
 * - net/ipv4/ip_forward 1;
 * - with --ipvs-strict-arp: net/ipv4/conf/all/arp_ignore 1 and
 *   arp_announce 2, so the node does not answer ARP for kube-ipvs0's
 *   addresses.
 */
export function ipvsSysctls(kernelRelease: string, strictARP: boolean): Array<[string, string]> {
  const out: Array<[string, string]> = [['net/ipv4/vs/conntrack', '1']];
  const [major = 0, minor = 0] = kernelRelease.split(/[.-]/).map(Number);
  const v = major * 1000 + minor;
  if (v >= 4001 && v < 5009) out.push(['net/ipv4/vs/conn_reuse_mode', '0']);
  out.push(['net/ipv4/vs/expire_nodest_conn', '1'], ['net/ipv4/vs/expire_quiescent_template', '1'], ['net/ipv4/ip_forward', '1']);
  if (strictARP) out.push(['net/ipv4/conf/all/arp_ignore', '1'], ['net/ipv4/conf/all/arp_announce', '2']);
  return out;
}

export class IpvsDataplane implements Dataplane {
  readonly name = 'ipvs';
  readonly #o: IpvsDataplaneOptions;
  #started = false;
  /** What the kernel holds of Switchyard's; null: read it back before the next sync. */
  #mirror: Mirror | null = null;
  #addresses = new Set<string>();
  /** The last desired table applied in full; null: the next sync compares everything. */
  #desired: IpvsDesired | null = null;
  #nodeIPs: readonly string[] = [];

  constructor(o: IpvsDataplaneOptions) {
    this.#o = o;
  }

  async start(_signal: AbortSignal): Promise<void> {
    const o = this.#o;
    try {
      await o.ipvs.familyId();
    } catch (err) {
      throw DataplaneError.kernel('ipvs', 'resolve the IPVS generic netlink family (is the ip_vs module loaded?)', err as Error);
    }
    this.#setSysctls();
    if (o.timeouts.tcp > 0 || o.timeouts.tcpFin > 0 || o.timeouts.udp > 0) {
      await this.#kernel('set IPVS timeouts', () => o.ipvs.setTimeouts(o.timeouts));
    }
    const created = await this.#kernel('create the Service device', () => o.device.ensure());
    if (created) o.log.info('created the Service address device', { device: 'kube-ipvs0' });
    const onDevice = await this.#kernel('list the Service device addresses', () => o.device.list());
    // Addresses on kube-ipvs0 are Service addresses, never NodePort addresses.
    this.#nodeIPs = (o.node.all ?? [o.node.ipv4, o.node.ipv6].filter((a) => a !== null)).filter((a) => !onDevice.has(a));
    await this.#adopt(onDevice);
    this.#started = true;
  }

  async sync(snapshot: ProxySnapshot): Promise<SyncResult> {
    const started = performance.now();
    if (!this.#started) throw new DataplaneError('ERR_SY_DATAPLANE_NOT_STARTED', 'ipvs', 'sync', 'not started: call start() first');
    if (this.#mirror === null) await this.#adopt(await this.#kernel('list the Service device addresses', () => this.#o.device.list()));
    const mirror = this.#mirror as Mirror;
    const prev = this.#desired;
    const desired = compile(snapshot, this.#compileOptions(snapshot), prev ?? EMPTY_DESIRED);
    const scope = prev === null ? 'all' : changedScope(prev, desired, snapshot.changed);
    const plan = diff(desired, { virtuals: mirror, addresses: this.#addresses }, scope);
    const r = await applyPlan(plan, this.#o.ipvs, this.#o.device, mirror, this.#addresses);
    if (r.failed !== null) {
      // Part of the plan may have landed: read back and compare everything next time.
      this.#desired = null;
      this.#mirror = null;
      throw DataplaneError.kernel('ipvs', r.failed.what, r.failed.error);
    }
    this.#desired = desired;
    return { frontendsChanged: plan.touched.length, operations: r.operations, problems: desired.problems, durationMs: performance.now() - started };
  }

  async stop(): Promise<void> {
    this.#started = false;
    this.#o.ipvs.close();
    this.#o.device.close();
  }

  /** What the kernel holds of Switchyard's (see the top of the file), as the mirror. */
  async #adopt(onDevice: ReadonlySet<string>): Promise<void> {
    const o = this.#o;
    const ours = new Set([...onDevice, ...this.#nodeIPs]);
    const excluded = o.excludeCIDRs.map((c) => parseCidr(c, 'decimal')).filter((c) => c !== null);
    const mirror: Mirror = new Map();
    const services = await this.#kernel('dump IPVS services', () => o.ipvs.services());
    for (const s of services) {
      if (!ours.has(s.address)) continue;
      const ip = parseIP(s.address, 'decimal');
      if (ip !== null && excluded.some((c) => cidrContains(c, ip))) continue;
      const dests = await this.#kernel(`dump IPVS destinations of ${s.protocol} ${realKey(s)}`, () => o.ipvs.destinations(s));
      const reals = new Map(
        dests.map((d) => [
          realKey(d),
          { address: d.address, port: d.port, weight: d.weight, forward: d.forward, upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold },
        ]),
      );
      mirror.set(virtualKey(s), { service: specOf(s), reals });
    }
    this.#mirror = mirror;
    this.#addresses = new Set(onDevice);
    o.log.info('read back the IPVS table', { virtualServices: mirror.size, addresses: onDevice.size, otherServices: services.length - mirror.size });
  }

  #compileOptions(snapshot: ProxySnapshot): IpvsCompileOptions {
    const o = this.#o;
    const d = o.detectLocal;
    return {
      scheduler: o.scheduler === '' ? 'rr' : o.scheduler,
      masqueradeAll: o.masqueradeAll,
      localCIDRs: d.mode === 'ClusterCIDR' ? d.cidrs : d.mode === 'NodeCIDR' ? (snapshot.nodePodCIDRs ?? []) : [],
      localByInterface: d.mode === 'BridgeInterface' || d.mode === 'InterfaceNamePrefix',
      nodeName: snapshot.nodeName,
      nodeZone: null,
      nodeIPs: this.#nodeIPs,
      nodePortAddresses: o.nodePortAddresses,
    };
  }

  #setSysctls(): void {
    const o = this.#o;
    const sysctl = o.sysctl ?? procSysctl;
    for (const [name, value] of ipvsSysctls(o.kernelRelease ?? release(), o.strictARP)) {
      if (sysctl.read(name) === value) continue;
      try {
        sysctl.write(name, value);
      } catch (err) {
        throw DataplaneError.kernel('ipvs', `set sysctl ${name.replaceAll('/', '.')}=${value}`, err as Error);
      }
      o.log.info('set sysctl', { name: name.replaceAll('/', '.'), value });
    }
  }

  async #kernel<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw DataplaneError.kernel('ipvs', what, err as Error);
    }
  }
}
