// apply: carries out an IpvsPlan (diff.ts) through the IPVS client and the
// kube-ipvs0 device, and keeps the mirror of what the kernel holds in step
// with each command that succeeded. The only step of the ipvs pipeline with
// side effects.

import type { IpvsOp } from '../../host/ipvs/client.ts';
import type { DestinationSpec, ServiceSpec } from '../../host/ipvs/codec.ts';
import type { NativeError } from '../../native/errors.ts';
import type { ServiceAddresses } from '../../host/service-device.ts';
import type { IpvsPlan } from './diff.ts';
import { realKey, type RealKey, type VirtualKey, virtualKey } from './state.ts';

/** What the dataplane needs of IpvsClient (host/ipvs/client.ts). */
export interface IpvsKernel {
  batch(ops: readonly IpvsOp[]): Promise<Array<NativeError | null>>;
}

/** The kernel's table as the dataplane last saw it: virtual services and their real servers. */
export type Mirror = Map<VirtualKey, { service: ServiceSpec; reals: Map<RealKey, DestinationSpec> }>;

export interface ApplyResult {
  /** IPVS commands and address changes issued. */
  readonly operations: number;
  /** The first command the kernel refused, with its label; null when all landed. */
  readonly failed: { readonly what: string; readonly error: Error } | null;
}

export async function applyPlan(plan: IpvsPlan, kernel: IpvsKernel, device: ServiceAddresses, mirror: Mirror, addresses: Set<string>): Promise<ApplyResult> {
  let failed: ApplyResult['failed'] = null;
  if (plan.addAddresses.length > 0) {
    try {
      await device.add(plan.addAddresses);
      for (const a of plan.addAddresses) addresses.add(a);
    } catch (err) {
      return { operations: plan.addAddresses.length, failed: { what: `add ${plan.addAddresses.length} addresses to the Service device`, error: err as Error } };
    }
  }
  const results = await kernel.batch(plan.ops);
  plan.ops.forEach((op, i) => {
    const err = results[i] ?? null;
    if (err === null) record(mirror, op);
    else failed ??= { what: label(op), error: err };
  });
  if (plan.deleteAddresses.length > 0 && failed === null) {
    try {
      await device.delete(plan.deleteAddresses);
      for (const a of plan.deleteAddresses) addresses.delete(a);
    } catch (err) {
      failed = { what: `delete ${plan.deleteAddresses.length} addresses from the Service device`, error: err as Error };
    }
  }
  return { operations: plan.addAddresses.length + plan.ops.length + plan.deleteAddresses.length, failed };
}

/** The mirror after `op` landed. */
export function record(mirror: Mirror, op: IpvsOp): void {
  const key = virtualKey(op.service);
  switch (op.op) {
    case 'add-service':
      mirror.set(key, { service: op.service, reals: new Map() });
      return;
    case 'edit-service': {
      const v = mirror.get(key);
      if (v !== undefined) v.service = op.service;
      return;
    }
    case 'delete-service':
      mirror.delete(key);
      return;
    case 'add-destination':
    case 'edit-destination':
      mirror.get(key)?.reals.set(realKey(op.destination), op.destination);
      return;
    case 'delete-destination':
      mirror.get(key)?.reals.delete(realKey(op.destination));
      return;
  }
}

function label(op: IpvsOp): string {
  const svc = `${op.service.protocol} ${realKey(op.service)}`;
  return 'destination' in op ? `${op.op} ${svc} -> ${realKey(op.destination)}` : `${op.op} ${svc}`;
}
