// compile: ProxySnapshot -> DesiredState, the frontends and backends the BPF
// maps should hold. Pure: no I/O, no clock, no input mutation. Bad input
// becomes a Problem for its ServicePort and never stops the rest.
//
// One frontend per (IPv4 clusterIP, port, protocol) of each ServicePort;
// IPv6 addresses belong to the v6 maps (not written yet) and are skipped
// without a problem. Two ServicePorts claiming one frontend: the lower id
// (string order) wins, the other gets a Problem.

import type { EndpointInfo, ProxySnapshot, ServicePortInfo } from '../../model/types.ts';
import type { Problem } from '../types.ts';
import { canonicalIPv4, familyOf, formatIPv4, hasLeadingZero, parseIPv4 } from '../../util/ip.ts';
import { SY_MAX_SLOTS, SY_SVC_F_MASQ_ALL } from './layout-v1.ts';
import { CowMap } from '../../util/cow.ts';
import { backendKey } from './state.ts';
import type { BackendKey, CompileIndex, DesiredService, DesiredState, FrontendKey, L4Addr } from './state.ts';

export interface CompileOptions {
  /** kube-proxy's masqueradeAll: SNAT every connection to a Service. */
  readonly masqueradeAll: boolean;
}

/** Compiles the whole snapshot (snapshot.changed is ignored). */
export function compile(snapshot: ProxySnapshot, opts: CompileOptions): DesiredState {
  const services = CowMap.empty<FrontendKey, DesiredService>().edit();
  const claims = CowMap.empty<string, readonly FrontendKey[]>().edit();
  const inputProblems = CowMap.empty<string, readonly Problem[]>().edit();
  const losers = new Map<FrontendKey, string[]>();
  for (const sp of snapshot.servicePorts.values()) {
    const c = compileServicePort(sp, opts);
    if (c.keys.length > 0) claims.set(sp.id, c.keys);
    if (c.problems.length > 0) inputProblems.set(sp.id, c.problems);
    for (const svc of c.services) {
      const cur = services.get(svc.key);
      if (cur === undefined) {
        services.set(svc.key, svc);
      } else if (svc.owner < cur.owner) {
        services.set(svc.key, svc);
        addTo(losers, svc.key, cur.owner);
      } else {
        addTo(losers, svc.key, svc.owner);
      }
    }
  }
  for (const list of losers.values()) list.sort();
  const index: CompileIndex = { claims: claims.done(), losers, inputProblems: inputProblems.done() };
  return { services: services.done(), changed: 'all', problems: allProblems(index), masqueradeAll: opts.masqueradeAll, index };
}

/**
 * Recompiles only the ServicePorts in snapshot.changed on top of `prev`
 * (a full compile when changed is 'all' or the options changed). The result
 * equals compile(snapshot) and its `changed` names the frontends that may
 * differ from prev: pass it to diff() as the scope.
 */
export function compileChanged(prev: DesiredState, snapshot: ProxySnapshot, opts?: CompileOptions): DesiredState {
  const o = opts ?? { masqueradeAll: prev.masqueradeAll };
  if (snapshot.changed === 'all' || o.masqueradeAll !== prev.masqueradeAll) return compile(snapshot, o);
  const changedIds = snapshot.changed;
  const claims = prev.index.claims.edit();
  const inputProblems = prev.index.inputProblems.edit();
  const affected = new Set<FrontendKey>();
  const fresh = new Map<FrontendKey, DesiredService[]>();
  for (const id of changedIds) {
    for (const key of prev.index.claims.get(id) ?? []) affected.add(key);
    const sp = snapshot.servicePorts.get(id);
    const c = sp === undefined ? undefined : compileServicePort(sp, o);
    if (c !== undefined && c.keys.length > 0) claims.set(id, c.keys);
    else claims.delete(id);
    if (c !== undefined && c.problems.length > 0) inputProblems.set(id, c.problems);
    else inputProblems.delete(id);
    for (const svc of c?.services ?? []) {
      affected.add(svc.key);
      const list = fresh.get(svc.key);
      if (list === undefined) fresh.set(svc.key, [svc]);
      else list.push(svc);
    }
  }

  const services = prev.services.edit();
  let losers: Map<FrontendKey, readonly string[]> | undefined; // copied on first change
  for (const key of affected) {
    const candidates = candidatesFor(key, prev, changedIds, fresh.get(key) ?? []);
    const owners = [...candidates.keys()].sort();
    let svc: DesiredService | undefined;
    let lost: string[] = [];
    for (const [i, owner] of owners.entries()) {
      svc = resolve(candidates.get(owner), owner, key, snapshot, o);
      if (svc === undefined) continue; // gone from the snapshot without being in changed: not a claimant
      lost = owners.slice(i + 1);
      break;
    }
    if (svc === undefined) services.delete(key);
    else services.set(key, svc);
    const had = prev.index.losers.get(key);
    if (lost.length === 0 && had === undefined) continue;
    losers ??= new Map(prev.index.losers);
    if (lost.length === 0) losers.delete(key);
    else losers.set(key, lost);
  }
  const index: CompileIndex = { claims: claims.done(), losers: losers ?? prev.index.losers, inputProblems: inputProblems.done() };
  return { services: services.done(), changed: affected, problems: allProblems(index), masqueradeAll: o.masqueradeAll, index };
}

/**
 * Every ServicePort that claims `key` after the change: owner -> its compiled
 * service, or null when it is an unchanged loser not compiled yet.
 */
function candidatesFor(
  key: FrontendKey,
  prev: DesiredState,
  changedIds: ReadonlySet<string>,
  fresh: readonly DesiredService[],
): Map<string, DesiredService | null> {
  const out = new Map<string, DesiredService | null>();
  const cur = prev.services.get(key);
  if (cur !== undefined && !changedIds.has(cur.owner)) out.set(cur.owner, cur);
  for (const owner of prev.index.losers.get(key) ?? []) if (!changedIds.has(owner)) out.set(owner, null);
  for (const svc of fresh) out.set(svc.owner, svc);
  return out;
}

/** An unchanged loser that now wins: compile its ServicePort and take the frontend. */
function resolve(
  c: DesiredService | null | undefined,
  owner: string,
  key: FrontendKey,
  snapshot: ProxySnapshot,
  opts: CompileOptions,
): DesiredService | undefined {
  if (c !== null) return c;
  const sp = snapshot.servicePorts.get(owner);
  return sp === undefined ? undefined : compileServicePort(sp, opts).services.find((s) => s.key === key);
}

function addTo(m: Map<string, string[]>, key: string, v: string): void {
  const list = m.get(key);
  if (list === undefined) m.set(key, [v]);
  else if (!list.includes(v)) list.push(v);
}

function allProblems(index: CompileIndex): Problem[] {
  const out: Problem[] = [];
  for (const list of index.inputProblems.values()) out.push(...list);
  for (const [key, owners] of index.losers) {
    for (const owner of owners) {
      out.push({
        owner,
        field: 'clusterIPs',
        message: `frontend ${key} is also claimed by another ServicePort with a lower id; that one is programmed, this one is not`,
      });
    }
  }
  return out.sort((a, b) => cmp(a.owner, b.owner) || cmp(a.field, b.field) || cmp(a.message, b.message));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------
// One ServicePort.

interface Compiled {
  /** Frontend keys claimed, deduplicated, in clusterIPs order. */
  readonly keys: readonly FrontendKey[];
  readonly services: readonly DesiredService[];
  readonly problems: readonly Problem[];
}

const PROTOCOLS: ReadonlySet<string> = new Set(['TCP', 'UDP', 'SCTP']);

function compileServicePort(sp: ServicePortInfo, opts: CompileOptions): Compiled {
  const problems: Problem[] = [];
  const bad = (field: string, message: string): void => void problems.push({ owner: sp.id, field, message });
  if (!PROTOCOLS.has(sp.protocol)) {
    bad('protocol', `unsupported protocol ${JSON.stringify(sp.protocol)}`);
    return { keys: [], services: [], problems };
  }
  if (!isPort(sp.port)) {
    bad('port', `port ${sp.port} is not in 1..65535`);
    return { keys: [], services: [], problems };
  }
  notProgrammedYet(sp, bad);
  const keys: FrontendKey[] = [];
  const frontends: L4Addr[] = [];
  sp.clusterIPs.forEach((ip, i) => {
    if (familyOf(ip) === 'IPv6' || ip === '' || ip === 'None') return; // IPv6 (other maps), headless
    const addr = canonicalIPv4(ip);
    if (addr === null) return bad(`clusterIPs[${i}]`, `not an IP address: ${JSON.stringify(ip)}`);
    const key = `${addr}:${sp.port}/${sp.protocol}`;
    if (keys.includes(key)) return;
    keys.push(key);
    frontends.push({ addr, port: sp.port, proto: sp.protocol });
  });
  if (frontends.length === 0) return { keys, services: [], problems };

  const { backends, backendKeys } = compileBackends(sp, bad);
  const flags = opts.masqueradeAll ? SY_SVC_F_MASQ_ALL : 0;
  const services = frontends.map(
    (frontend, i): DesiredService => ({
      key: keys[i] as FrontendKey,
      frontend,
      backends,
      backendKeys,
      flags,
      owner: sp.id,
    }),
  );
  return { keys, services, problems };
}

/**
 * What the model decided for this ServicePort that the BPF datapath does not
 * carry out yet: reported as problems so nothing is silently ignored. The
 * ClusterIP frontends are still programmed.
 */
function notProgrammedYet(sp: ServicePortInfo, bad: (field: string, message: string) => void): void {
  const later = 'is not programmed by the bpf dataplane yet';
  if (sp.protocol === 'SCTP') bad('protocol', `SCTP ${later} (the program translates TCP and UDP)`);
  if (sp.nodePort) bad('nodePort', `NodePort ${sp.nodePort} ${later}`);
  if (sp.externalIPs && sp.externalIPs.length > 0) bad('externalIPs', `externalIPs ${sp.externalIPs.join(',')} ${later}`);
  if (sp.loadBalancerIPs && sp.loadBalancerIPs.length > 0) bad('loadBalancerIPs', `LoadBalancer IPs ${sp.loadBalancerIPs.join(',')} ${later}`);
  if (sp.sessionAffinity) bad('sessionAffinity', `ClientIP affinity (${sp.sessionAffinity.timeoutSeconds}s) ${later}; connections are balanced without it`);
  if (sp.hasAnyEndpoints && !sp.hasAnyEndpoints.IPv4 && sp.clusterIPs.some((ip) => familyOf(ip) === 'IPv4')) {
    bad('endpoints', `no usable endpoints: kube-proxy REJECTs; the bpf dataplane drops until REJECT is programmed`);
  }
}

function compileBackends(
  sp: ServicePortInfo,
  bad: (field: string, message: string) => void,
): { backends: readonly L4Addr[]; backendKeys: readonly BackendKey[] } {
  let backends: L4Addr[] = [];
  let keys: BackendKey[] = [];
  let sorted = true;
  const proto = sp.protocol;
  const eps: readonly EndpointInfo[] = sp.clusterEndpoints;
  for (let i = 0; i < eps.length; i++) {
    const ep = eps[i] as EndpointInfo;
    const n = parseIPv4(ep.ip, 'decimal');
    if (n < 0) {
      if (familyOf(ep.ip) === 'IPv4') bad(`clusterEndpoints[${i}].ip`, `not an IP address: ${JSON.stringify(ep.ip)}`);
      continue; // else an IPv6 endpoint of a dual-stack Service: the v6 maps' business
    }
    if (!isPort(ep.port)) {
      bad(`clusterEndpoints[${i}].port`, `port ${ep.port} is not in 1..65535`);
      continue;
    }
    const key = backendKey(n, ep.port, proto);
    if (sorted && keys.length > 0 && !((keys[keys.length - 1] as number) < key)) sorted = false;
    keys.push(key);
    backends.push({ addr: hasLeadingZero(ep.ip) ? formatIPv4(n) : ep.ip, port: ep.port, proto });
  }
  if (!sorted) [backends, keys] = sortUnique(backends, keys);
  if (keys.length > SY_MAX_SLOTS) {
    bad('clusterEndpoints', `${keys.length} endpoints; a frontend holds at most ${SY_MAX_SLOTS}, the rest are not programmed`);
    backends.length = SY_MAX_SLOTS;
    keys.length = SY_MAX_SLOTS;
  }
  return { backends, backendKeys: keys };
}

/** Sorts the backends by key and drops duplicates. */
function sortUnique(backends: readonly L4Addr[], keys: readonly BackendKey[]): [L4Addr[], BackendKey[]] {
  const order = keys.map((_k, i) => i).sort((a, b) => (keys[a] as number) - (keys[b] as number));
  const outB: L4Addr[] = [];
  const outK: BackendKey[] = [];
  for (const i of order) {
    const k = keys[i] as number;
    if (outK.length > 0 && outK[outK.length - 1] === k) continue;
    outK.push(k);
    outB.push(backends[i] as L4Addr);
  }
  return [outB, outK];
}

function isPort(p: number): boolean {
  return Number.isInteger(p) && p >= 1 && p <= 65535;
}
