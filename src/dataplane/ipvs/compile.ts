// compile: ProxySnapshot -> IpvsDesired, the virtual services, real servers
// and kube-ipvs0 addresses the IPVS dataplane should hold. Pure: no I/O, no
// clock, no input mutation; bad input becomes a Problem for its ServicePort.
//
// The frontends and verdicts are the bpf compile's (../frontends.ts over
// src/model/verdict.ts). Per frontend address, one virtual service
// (protocol, address, port), as kube-proxy's IPVS proxier makes them:
//   scheduler: --ipvs-scheduler (kube-proxy's default rr);
//   persistence: sessionAffinity ClientIP, its timeout, one client address
//     (netmask /32, /128);
//   real servers: the endpoints of the verdict (the pod verdict for a
//     ClusterIP, the external one for NodePort, ExternalIP and LoadBalancer
//     IP), weight 1, masquerading forward (IPVS's DNAT); a REJECT or DROP
//     verdict leaves the virtual service without real servers (IPVS then
//     answers ICMP port unreachable, see README).
// kube-ipvs0 holds every ClusterIP, ExternalIP and LoadBalancer IP that has
// a virtual service (IPVS sees only packets routed to a local address);
// NodePorts are served on the node's own addresses.
// Two ServicePorts claiming one virtual service: the lower id (string
// order) wins, the other gets a Problem (as bpf).
//
// Incremental: compile(snapshot, opts, prev) reuses prev's result for every
// ServicePort object it saw before (an unchanged ServicePort is the same
// object from one snapshot to the next) when the options are the same.

import type { DestinationSpec, ServiceSpec } from '../../host/ipvs/codec.ts';
import type { EndpointInfo, ProxySnapshot, ServicePortInfo } from '../../model/types.ts';
import type { Verdict, VerdictOptions } from '../../model/verdict.ts';
import { canonicalIP, familyOf } from '../../util/ip.ts';
import { gapProblems, IPVS_GAPS } from '../capabilities.ts';
import { type FrontendOptions, isPort, nodePortIPs, servicePortFrontends, type NodePortIPs, verdictOptions } from '../frontends.ts';
import type { Problem } from '../types.ts';
import { type DesiredVirtual, realKey, type RealKey, type VirtualKey, virtualKey } from './state.ts';

export interface IpvsCompileOptions extends FrontendOptions {
  /** --ipvs-scheduler; kube-proxy's default is rr. */
  readonly scheduler: string;
}

export function ipvsCompileOptions(o: Partial<IpvsCompileOptions> = {}): IpvsCompileOptions {
  return {
    scheduler: 'rr',
    masqueradeAll: false,
    localCIDRs: [],
    localByInterface: false,
    nodeName: 'node-a',
    nodeZone: null,
    nodeIPs: [],
    nodePortAddresses: [],
    ...o,
  };
}

/** What one ServicePort compiles to. */
export interface CompiledServicePort {
  readonly virtuals: readonly DesiredVirtual[];
  readonly problems: readonly Problem[];
}

export interface IpvsDesired {
  /** The winning virtual service of every key. */
  readonly virtuals: ReadonlyMap<VirtualKey, DesiredVirtual>;
  /** Addresses for kube-ipvs0, canonical. */
  readonly addresses: ReadonlySet<string>;
  readonly problems: readonly Problem[];
  /** Per ServicePort: the object compiled and its result (for reuse and for diff scopes). */
  readonly byServicePort: ReadonlyMap<string, { readonly sp: ServicePortInfo; readonly compiled: CompiledServicePort }>;
  readonly optionsKey: string;
}

export const EMPTY_DESIRED: IpvsDesired = {
  virtuals: new Map(),
  addresses: new Set(),
  problems: [],
  byServicePort: new Map(),
  optionsKey: '',
};

/** Compiles the snapshot, reusing prev's result for ServicePorts that are the same object. */
export function compile(snapshot: ProxySnapshot, opts: IpvsCompileOptions, prev: IpvsDesired = EMPTY_DESIRED): IpvsDesired {
  const ctx = context(opts);
  const reuse = prev.optionsKey === ctx.key;
  const byServicePort = new Map<string, { sp: ServicePortInfo; compiled: CompiledServicePort }>();
  const virtuals = new Map<VirtualKey, DesiredVirtual>();
  const losers: Array<{ owner: string; key: VirtualKey }> = [];
  const problems: Problem[] = [];
  const ids = [...snapshot.servicePorts.keys()].sort();
  for (const id of ids) {
    const sp = snapshot.servicePorts.get(id) as ServicePortInfo;
    const old = reuse ? prev.byServicePort.get(id) : undefined;
    const compiled = old !== undefined && old.sp === sp ? old.compiled : compileServicePort(sp, ctx);
    byServicePort.set(id, { sp, compiled });
    problems.push(...compiled.problems);
    for (const v of compiled.virtuals) {
      // ids in order: the first claimant has the lowest id.
      if (virtuals.has(v.key)) losers.push({ owner: id, key: v.key });
      else virtuals.set(v.key, v);
    }
  }
  for (const { owner, key } of losers) {
    problems.push({
      owner,
      field: 'frontend',
      message: `virtual service ${key} is also claimed by another ServicePort with a lower id; that one is programmed, this one is not`,
    });
  }
  const addresses = new Set<string>();
  for (const v of virtuals.values()) if (v.kind !== 'nodePort') addresses.add(v.service.address);
  return { virtuals, addresses, problems: problems.sort(byProblem), byServicePort, optionsKey: ctx.key };
}

/**
 * The virtual services a change from `prev` to `next` may touch: those of
 * every ServicePort in `changed`, before and after (all of them for 'all'
 * or changed options). diff() looks at nothing else.
 */
export function changedScope(prev: IpvsDesired, next: IpvsDesired, changed: ReadonlySet<string> | 'all'): ReadonlySet<VirtualKey> | 'all' {
  if (changed === 'all' || prev.optionsKey !== next.optionsKey) return 'all';
  const scope = new Set<VirtualKey>();
  for (const id of changed) {
    for (const v of prev.byServicePort.get(id)?.compiled.virtuals ?? []) scope.add(v.key);
    for (const v of next.byServicePort.get(id)?.compiled.virtuals ?? []) scope.add(v.key);
  }
  return scope;
}

// ---------------------------------------------------------------------------

interface Context {
  readonly key: string;
  readonly scheduler: string;
  readonly verdict: VerdictOptions;
  readonly nodePortIPs: NodePortIPs;
}

function context(o: IpvsCompileOptions): Context {
  return {
    key: JSON.stringify([o.scheduler, o.masqueradeAll, o.localCIDRs, o.localByInterface, o.nodeName, o.nodeZone, o.nodeIPs, o.nodePortAddresses]),
    scheduler: o.scheduler,
    verdict: verdictOptions(o),
    // kube-proxy's IPVS mode has no localhost NodePorts.
    nodePortIPs: nodePortIPs(o.nodeIPs, o.nodePortAddresses, false),
  };
}

function compileServicePort(sp: ServicePortInfo, ctx: Context): CompiledServicePort {
  const problems: Problem[] = [];
  const bad = (field: string, message: string): void => {
    if (!problems.some((p) => p.field === field && p.message === message)) problems.push({ owner: sp.id, field, message });
  };
  const frontends = servicePortFrontends(sp, ctx.verdict, ctx.nodePortIPs, bad);
  if (frontends === null) return { virtuals: [], problems };
  for (const p of gapProblems(IPVS_GAPS, sp)) bad(p.field, p.message);
  const virtuals: DesiredVirtual[] = [];
  const seen = new Set<VirtualKey>();
  for (const { verdicts: fv, addresses } of frontends) {
    const f = fv.frontend;
    const verdict = f.kind === 'clusterIP' ? fv.pod : fv.external;
    const reals = realsOf(verdict, bad);
    for (const address of addresses) {
      const service: ServiceSpec = {
        protocol: f.protocol,
        address,
        port: f.port,
        scheduler: ctx.scheduler,
        ...(sp.sessionAffinity ? { persistence: { timeout: sp.sessionAffinity.timeoutSeconds, prefix: f.family === 'IPv4' ? 32 : 128 } } : {}),
      };
      const key = virtualKey(service);
      if (seen.has(key)) continue;
      seen.add(key);
      virtuals.push({ key, owner: sp.id, kind: f.kind, service, reals });
    }
  }
  return { virtuals, problems };
}

const NO_REALS: ReadonlyMap<RealKey, DestinationSpec> = new Map();

/** The real servers of a verdict: its endpoints, weight 1, sorted by key; none for REJECT or DROP. */
function realsOf(v: Verdict, bad: (field: string, message: string) => void): ReadonlyMap<RealKey, DestinationSpec> {
  if (v.action !== 'dnat') return NO_REALS;
  const list: DestinationSpec[] = [];
  for (const ep of v.endpoints as readonly EndpointInfo[]) {
    const address = canonicalIP(ep.ip, 'decimal');
    if (address === null) {
      bad('endpoints', `endpoint ${JSON.stringify(ep.ip)} is not an IP address`);
      continue;
    }
    if (!isPort(ep.port)) {
      bad('endpoints', `endpoint ${ep.ip} port ${ep.port} is not in 1..65535`);
      continue;
    }
    list.push({ address, port: ep.port, weight: 1 });
  }
  const out = new Map<RealKey, DestinationSpec>();
  for (const d of list.sort((a, b) => cmp(familyOf(a.address), familyOf(b.address)) || cmp(realKey(a), realKey(b)))) out.set(realKey(d), d);
  return out;
}

function byProblem(a: Problem, b: Problem): number {
  return cmp(a.owner, b.owner) || cmp(a.field, b.field) || cmp(a.message, b.message);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
