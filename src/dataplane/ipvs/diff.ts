// diff: (desired, current, scope) -> the ordered IPVS commands and
// kube-ipvs0 address changes that make the kernel hold the desired table.
// Pure.
//
// Only virtual services in `scope` are looked at (compile.ts:
// changedScope): a change to one Service issues only that Service's
// commands. `current` is what the kernel holds (read back at start, then
// kept by the dataplane); services there that are not Switchyard's are
// never in it (see dataplane.ts: adopt).
//
// Order, so that no packet meets a half-made service:
//   1. addresses new on kube-ipvs0 (before their services: IPVS sees only
//      packets routed to a local address);
//   2. virtual services that go (their real servers with them);
//   3. services whose scheduler or persistence changed (SET_SERVICE:
//      existing connections stay);
//   4. new services;
//   5. per service, real servers: new ones first, then changed weights,
//      then those that left (a service whose servers are all replaced is
//      never empty in between);
//   6. addresses no service uses any more, last.

import type { IpvsOp } from '../../host/ipvs/client.ts';
import type { DesiredVirtual, Virtual, VirtualKey } from './state.ts';
import { sameReal, sameSpec } from './state.ts';

export interface IpvsPlan {
  readonly addAddresses: readonly string[];
  readonly ops: readonly IpvsOp[];
  readonly deleteAddresses: readonly string[];
  /** Virtual services this plan changes (created, edited, deleted, or their real servers changed). */
  readonly touched: readonly VirtualKey[];
}

export function diff(
  desired: { readonly virtuals: ReadonlyMap<VirtualKey, DesiredVirtual>; readonly addresses: ReadonlySet<string> },
  current: { readonly virtuals: ReadonlyMap<VirtualKey, Virtual>; readonly addresses: ReadonlySet<string> },
  scope: ReadonlySet<VirtualKey> | 'all',
): IpvsPlan {
  const keys = scope === 'all' ? union(desired.virtuals.keys(), current.virtuals.keys()) : [...scope].sort();
  const deletes: IpvsOp[] = [];
  const edits: IpvsOp[] = [];
  const adds: IpvsOp[] = [];
  const reals: IpvsOp[] = [];
  const touched: VirtualKey[] = [];
  for (const key of keys) {
    const want = desired.virtuals.get(key);
    const have = current.virtuals.get(key);
    if (want === undefined && have === undefined) continue;
    if (want === undefined) {
      deletes.push({ op: 'delete-service', service: keyOf((have as Virtual).service) });
      touched.push(key);
      continue;
    }
    let changed = false;
    if (have === undefined) {
      adds.push({ op: 'add-service', service: want.service });
      changed = true;
    } else if (!sameSpec(want.service, have.service)) {
      edits.push({ op: 'edit-service', service: want.service });
      changed = true;
    }
    const before = reals.length;
    realOps(want, have, reals);
    if (changed || reals.length > before) touched.push(key);
  }
  const addAddresses = [...desired.addresses].filter((a) => !current.addresses.has(a)).sort();
  const deleteAddresses = [...current.addresses].filter((a) => !desired.addresses.has(a)).sort();
  return { addAddresses, ops: [...deletes, ...edits, ...adds, ...reals], deleteAddresses, touched };
}

function realOps(want: DesiredVirtual, have: Virtual | undefined, out: IpvsOp[]): void {
  const service = keyOf(want.service);
  const old = have?.reals ?? new Map();
  const edits: IpvsOp[] = [];
  for (const [k, d] of want.reals) {
    const o = old.get(k);
    if (o === undefined) out.push({ op: 'add-destination', service, destination: d });
    else if (!sameReal(d, o)) edits.push({ op: 'edit-destination', service, destination: d });
  }
  out.push(...edits);
  for (const [k, o] of old) if (!want.reals.has(k)) out.push({ op: 'delete-destination', service, destination: { address: o.address, port: o.port } });
}

function keyOf(s: { readonly protocol: DesiredVirtual['service']['protocol']; readonly address: string; readonly port: number }) {
  return { protocol: s.protocol, address: s.address, port: s.port };
}

function union(a: Iterable<VirtualKey>, b: Iterable<VirtualKey>): VirtualKey[] {
  return [...new Set([...a, ...b])].sort();
}
