// The IPVS table as plain data, desired (compile.ts) or held by the kernel
// (read back by the dataplane): virtual services keyed by protocol, address
// and port, each with its scheduler, persistence and real servers. Both
// sides use the same shape so that diff.ts compares like with like.

import type { DestinationSpec, IpvsProtocol, Service, ServiceKey, ServiceSpec } from '../../host/ipvs/codec.ts';
import type { FrontendKind } from '../../model/verdict.ts';
import { IP_VS_SVC_F } from '../../host/ipvs/uapi.ts';

/** "TCP/10.96.0.10:80", "UDP/[fd00:10:96::a]:53": one virtual service. */
export type VirtualKey = string;

/** A real server: "10.244.1.5:8080", "[fd00:10:244::5]:8080". */
export type RealKey = string;

export interface Virtual {
  readonly service: ServiceSpec;
  /** Real servers by RealKey (weight and forwarding method: masq). */
  readonly reals: ReadonlyMap<RealKey, DestinationSpec>;
}

/** A virtual service compile wants, with the ServicePort it belongs to. */
export interface DesiredVirtual extends Virtual {
  readonly key: VirtualKey;
  /** ServicePortInfo.id. */
  readonly owner: string;
  readonly kind: FrontendKind;
}

export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function virtualKey(k: ServiceKey): VirtualKey {
  return `${k.protocol}/${hostPort(k.address, k.port)}`;
}

export function realKey(d: { readonly address: string; readonly port: number }): RealKey {
  return hostPort(d.address, d.port);
}

/** The ServiceSpec a kernel's service amounts to, in the fields Switchyard sets (flags it does not set are kept so they differ). */
export function specOf(s: Service): ServiceSpec {
  const spec: { -readonly [K in keyof ServiceSpec]: ServiceSpec[K] } = { protocol: s.protocol, address: s.address, port: s.port, scheduler: s.scheduler };
  if (s.persistent) spec.persistence = { timeout: s.timeout, prefix: s.prefix };
  if (s.onePacket) spec.onePacket = true;
  if (s.schedFlags.length > 0) spec.schedFlags = [...s.schedFlags];
  // A flag outside the ones a ServiceSpec names (none today) makes the service differ from any desired one.
  if ((s.flags & ~(IP_VS_SVC_F.PERSISTENT | IP_VS_SVC_F.ONEPACKET | IP_VS_SVC_F.SCHED1 | IP_VS_SVC_F.SCHED2 | IP_VS_SVC_F.SCHED3)) !== 0) {
    spec.scheduler = `${s.scheduler}+flags${s.flags}`;
  }
  return spec;
}

/** Whether two specs program the same service (same key assumed). */
export function sameSpec(a: ServiceSpec, b: ServiceSpec): boolean {
  if (a.scheduler !== b.scheduler || (a.onePacket === true) !== (b.onePacket === true)) return false;
  if ((a.schedFlags ?? []).join(',') !== (b.schedFlags ?? []).join(',')) return false;
  if ((a.persistence === undefined) !== (b.persistence === undefined)) return false;
  if (a.persistence === undefined || b.persistence === undefined) return true;
  const full = a.address.includes(':') ? 128 : 32;
  return a.persistence.timeout === b.persistence.timeout && (a.persistence.prefix ?? full) === (b.persistence.prefix ?? full);
}

/** Whether two real servers are programmed alike (same key assumed). */
export function sameReal(a: DestinationSpec, b: DestinationSpec): boolean {
  return (
    a.weight === b.weight &&
    (a.forward ?? 'masq') === (b.forward ?? 'masq') &&
    (a.upperThreshold ?? 0) === (b.upperThreshold ?? 0) &&
    (a.lowerThreshold ?? 0) === (b.lowerThreshold ?? 0)
  );
}

export type { IpvsProtocol };
