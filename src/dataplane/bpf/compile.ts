// compile: ProxySnapshot -> DesiredState, the frontends, verdicts and
// backends the BPF maps should hold. Pure: no I/O, no clock, no input
// mutation. Bad input becomes a Problem for its ServicePort and never stops
// the rest.
//
// The model decides (src/model/verdict.ts: verdicts()); compile only
// translates. Per ServicePort, every frontend the model lists, both
// families: each ClusterIP, the NodePort on every node address of the
// family that --nodeport-addresses allows, each ExternalIP, each
// LoadBalancer IP (ipMode VIP; the model leaves out Proxy); NodePorts also
// on 127.0.0.1 with localhostNodePorts (for the socket hooks). Per frontend:
//   internal master: the verdict for pod clients (DNAT -> FORWARD with the
//     endpoints, REJECT, DROP), SY_SVC_F_MASQ when it masquerades,
//     SY_SVC_F_CLUSTER_IP on ClusterIPs (and a VIP entry);
//   external master: the verdict for clients outside the cluster, only when
//     it differs from the internal one in action or backends (the internal
//     master then carries SY_SVC_F_EXT_SCOPE); otherwise the internal master
//     carries SY_SVC_F_MASQ_EXT when the external verdict masquerades;
//   loadBalancerSourceRanges (allowedSources) as LPM CIDRs with
//     SY_SVC_F_SRC_RANGES on both masters;
//   sessionAffinity ClientIP as SY_SVC_F_AFFINITY and its timeout on both
//     masters of every frontend (kube-proxy applies it to every frontend of
//     the Service port; each frontend keeps its own clients' backends);
//   Maglev (the service.switchyard.dev/lb-algorithm annotation, else
//     --bpf-lb-algorithm) as SY_SVC_F_MAGLEV and the table size on both
//     masters (diff writes the tables).
// Two ServicePorts claiming one frontend: the lower id (string order) wins,
// the other gets a Problem.

import type { EndpointInfo, ProxySnapshot, ServicePortInfo } from '../../model/types.ts';
import type { FrontendVerdicts, Verdict, VerdictOptions } from '../../model/verdict.ts';
import { type FrontendOptions, isPort, nodePortIPs, servicePortFrontends, type NodePortIPs, verdictOptions } from '../frontends.ts';
import type { Problem } from '../types.ts';
import { canonicalIP, formatIPv4, hasLeadingZero, parseIPv4 } from '../../util/ip.ts';
import { BPF_GAPS, gapProblems } from '../capabilities.ts';
import {
  SY_ACT_DROP,
  SY_ACT_FORWARD,
  SY_ACT_REJECT,
  SY_BE_F_LOCAL,
  SY_MAX_SLOTS,
  SY_SVC_F_AFFINITY,
  SY_SVC_F_CLUSTER_IP,
  SY_SVC_F_EXT_SCOPE,
  SY_SVC_F_MAGLEV,
  SY_SVC_F_MASQ,
  SY_SVC_F_MASQ_EXT,
  SY_SVC_F_SRC_RANGES,
  type SvcAction,
  srcRangeKey,
} from './layout.ts';
import { CowMap } from '../../util/cow.ts';
import { MAGLEV_DEFAULT_M } from './maglev.ts';
import { backendKey4, backendKeyOf, compareBackendKeys, l4Key } from './state.ts';
import type { BackendAddr, BackendKey, CompileIndex, DesiredScope, DesiredService, DesiredState, FrontendKey, L4Addr } from './state.ts';

export interface CompileOptions extends FrontendOptions {
  /** --bpf-lb-algorithm: the backend choice of Services without the lb-algorithm annotation. */
  readonly lbAlgorithm: 'random' | 'maglev';
  /** --bpf-maglev-table-size: entries of each Maglev table (a prime). */
  readonly maglevTableSize: number;
  /**
   * NodePorts also on 127.0.0.1 (kube-proxy's localhost NodePorts, IPv4
   * only): reached by host-network clients through the socket hooks. The
   * caller decides (--iptables-localhost-nodeports and --nodeport-addresses).
   */
  readonly localhostNodePorts?: boolean;
}

/** Options for tests and callers that only care about a few. */
export function compileOptions(o: Partial<CompileOptions> = {}): CompileOptions {
  return {
    masqueradeAll: false,
    localCIDRs: [],
    localByInterface: false,
    nodeName: 'node-a',
    nodeZone: null,
    nodeIPs: [],
    nodePortAddresses: [],
    lbAlgorithm: 'random',
    maglevTableSize: MAGLEV_DEFAULT_M,
    localhostNodePorts: false,
    ...o,
  };
}

function optionsKey(o: CompileOptions): string {
  return JSON.stringify([
    o.masqueradeAll,
    o.localCIDRs,
    o.localByInterface,
    o.nodeName,
    o.nodeZone,
    o.nodeIPs,
    o.nodePortAddresses,
    o.lbAlgorithm,
    o.maglevTableSize,
    o.localhostNodePorts === true,
  ]);
}

/** Compiles the whole snapshot (snapshot.changed is ignored). */
export function compile(snapshot: ProxySnapshot, opts: CompileOptions): DesiredState {
  const ctx = context(opts);
  const services = CowMap.empty<FrontendKey, DesiredService>().edit();
  const claims = CowMap.empty<string, readonly FrontendKey[]>().edit();
  const inputProblems = CowMap.empty<string, readonly Problem[]>().edit();
  const losers = new Map<FrontendKey, string[]>();
  for (const sp of snapshot.servicePorts.values()) {
    const c = compileServicePort(sp, ctx);
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
  return { services: services.done(), changed: 'all', problems: allProblems(index), optionsKey: ctx.key, index };
}

/**
 * Recompiles only the ServicePorts in snapshot.changed on top of `prev`
 * (a full compile when changed is 'all' or the options changed). The result
 * equals compile(snapshot) and its `changed` names the frontends that may
 * differ from prev: pass it to diff() as the scope.
 */
export function compileChanged(prev: DesiredState, snapshot: ProxySnapshot, opts: CompileOptions): DesiredState {
  const ctx = context(opts);
  if (snapshot.changed === 'all' || ctx.key !== prev.optionsKey) return compile(snapshot, opts);
  const changedIds = snapshot.changed;
  const claims = prev.index.claims.edit();
  const inputProblems = prev.index.inputProblems.edit();
  const affected = new Set<FrontendKey>();
  const fresh = new Map<FrontendKey, DesiredService[]>();
  for (const id of changedIds) {
    for (const key of prev.index.claims.get(id) ?? []) affected.add(key);
    const sp = snapshot.servicePorts.get(id);
    const c = sp === undefined ? undefined : compileServicePort(sp, ctx);
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
      svc = resolve(candidates.get(owner), owner, key, snapshot, ctx);
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
  return { services: services.done(), changed: affected, problems: allProblems(index), optionsKey: ctx.key, index };
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
function resolve(c: DesiredService | null | undefined, owner: string, key: FrontendKey, snapshot: ProxySnapshot, ctx: Context): DesiredService | undefined {
  if (c !== null) return c;
  const sp = snapshot.servicePorts.get(owner);
  return sp === undefined ? undefined : compileServicePort(sp, ctx).services.find((s) => s.key === key);
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
        field: 'frontend',
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

export { LOCALHOST4 } from '../frontends.ts';

interface Context {
  readonly key: string;
  readonly verdict: VerdictOptions;
  /** Node addresses NodePorts listen on, per family, canonical. */
  readonly nodePortIPs: NodePortIPs;
  readonly lbAlgorithm: 'random' | 'maglev';
  readonly maglevTableSize: number;
}

function context(o: CompileOptions): Context {
  return {
    key: optionsKey(o),
    verdict: verdictOptions(o),
    nodePortIPs: nodePortIPs(o.nodeIPs, o.nodePortAddresses, o.localhostNodePorts === true),
    lbAlgorithm: o.lbAlgorithm,
    maglevTableSize: o.maglevTableSize,
  };
}

interface Compiled {
  /** Frontend keys claimed, deduplicated, in frontend order. */
  readonly keys: readonly FrontendKey[];
  readonly services: readonly DesiredService[];
  readonly problems: readonly Problem[];
}

function compileServicePort(sp: ServicePortInfo, ctx: Context): Compiled {
  const problems: Problem[] = [];
  const bad = (field: string, message: string): void => {
    if (!problems.some((p) => p.field === field && p.message === message)) problems.push({ owner: sp.id, field, message });
  };
  const frontends = servicePortFrontends(sp, ctx.verdict, ctx.nodePortIPs, bad);
  if (frontends === null) return { keys: [], services: [], problems };
  for (const p of gapProblems(BPF_GAPS, sp)) bad(p.field, p.message);
  const backendsOf = backendMemo(sp.protocol, bad);
  const keys: FrontendKey[] = [];
  const services: DesiredService[] = [];
  for (const { verdicts: fv, addresses } of frontends) {
    const choice: Choice = {
      affinityTimeoutS: sp.sessionAffinity?.timeoutSeconds ?? 0,
      maglevM: (sp.lbAlgorithm ?? ctx.lbAlgorithm) === 'maglev' ? ctx.maglevTableSize : 0,
    };
    const shape = compileVerdicts(fv, choice, backendsOf, bad);
    for (const addr of addresses) {
      const frontend: L4Addr = { addr, port: fv.frontend.port, proto: fv.frontend.protocol };
      const key = l4Key(frontend);
      if (keys.includes(key)) continue;
      keys.push(key);
      services.push({
        key,
        family: fv.frontend.family,
        kind: fv.frontend.kind,
        frontend,
        owner: sp.id,
        internal: shape.internal,
        external: shape.external,
        sourceRanges: shape.sourceRanges,
      });
    }
  }
  return { keys, services, problems };
}

type BackendsOf = (endpoints: readonly EndpointInfo[]) => { backends: readonly BackendAddr[]; backendKeys: readonly BackendKey[] };

/** How a frontend picks backends for new connections: affinity timeout and Maglev table size, 0 = none. */
type Choice = Pick<DesiredScope, 'affinityTimeoutS' | 'maglevM'>;

function compileVerdicts(
  fv: FrontendVerdicts,
  choice: Choice,
  backendsOf: BackendsOf,
  bad: (field: string, message: string) => void,
): Pick<DesiredService, 'internal' | 'external' | 'sourceRanges'> {
  const sourceRanges = rangesOf(fv.allowedSources, bad);
  let common = fv.frontend.kind === 'clusterIP' ? SY_SVC_F_CLUSTER_IP : 0;
  if (fv.allowedSources !== null) common |= SY_SVC_F_SRC_RANGES;
  if (choice.affinityTimeoutS > 0) common |= SY_SVC_F_AFFINITY;
  if (choice.maglevM > 0) common |= SY_SVC_F_MAGLEV;
  const internal = scopeOf(fv.pod, common, choice, backendsOf);
  const external = scopeOf(fv.external, common, choice, backendsOf);
  if (internal.action !== external.action || !sameKeys(internal.backendKeys, external.backendKeys)) {
    return { internal: withFlags(internal, internal.flags | SY_SVC_F_EXT_SCOPE), external, sourceRanges };
  }
  // The datapath tells pods from everything else, so external clients and
  // this node's own (which the node verdict covers, and which the tc
  // programs do not see) share the external verdict: externalTrafficPolicy
  // Local keeps external clients' addresses.
  const masqExt = masquerades(fv.external);
  return { internal: masqExt ? withFlags(internal, internal.flags | SY_SVC_F_MASQ_EXT) : internal, external: null, sourceRanges };
}

function masquerades(v: Verdict): boolean {
  return v.action === 'dnat' && v.masquerade;
}

const ACTION: Record<Verdict['action'], SvcAction> = { dnat: SY_ACT_FORWARD, reject: SY_ACT_REJECT, drop: SY_ACT_DROP };
const NONE = { backends: [] as readonly BackendAddr[], backendKeys: [] as readonly BackendKey[] };

function scopeOf(v: Verdict, flags: number, choice: Choice, backendsOf: BackendsOf): DesiredScope {
  const { affinityTimeoutS, maglevM } = choice;
  if (v.action !== 'dnat') return { action: ACTION[v.action], flags, backends: NONE.backends, backendKeys: NONE.backendKeys, affinityTimeoutS, maglevM };
  const b = backendsOf(v.endpoints);
  return {
    action: SY_ACT_FORWARD,
    flags: v.masquerade ? flags | SY_SVC_F_MASQ : flags,
    backends: b.backends,
    backendKeys: b.backendKeys,
    affinityTimeoutS,
    maglevM,
  };
}

/** The scope with other flags (no object spread: one per frontend of a full compile). */
function withFlags(sc: DesiredScope, flags: number): DesiredScope {
  return { action: sc.action, flags, backends: sc.backends, backendKeys: sc.backendKeys, affinityTimeoutS: sc.affinityTimeoutS, maglevM: sc.maglevM };
}

function sameKeys(a: readonly BackendKey[], b: readonly BackendKey[]): boolean {
  return a === b || (a.length === b.length && a.every((k, i) => k === b[i]));
}

/** allowedSources as network CIDRs, sorted and unique; text that does not parse is a problem. */
function rangesOf(allowed: readonly string[] | null, bad: (field: string, message: string) => void): readonly string[] {
  if (allowed === null) return [];
  const out = new Set<string>();
  for (const cidr of allowed) {
    const text = cidr.includes('/') ? cidr : `${cidr}/${cidr.includes(':') ? 128 : 32}`;
    const k = srcRangeKey(0, text);
    if (k === null) bad('loadBalancerSourceRanges', `not a CIDR: ${JSON.stringify(cidr)}`);
    else out.add(`${k.addr}/${k.prefixlen - 32}`);
  }
  return [...out].sort();
}

/**
 * Backends of an endpoint list, computed once per list (the verdicts of one
 * ServicePort share their lists): sorted by BackendKey, unique, at most
 * SY_MAX_SLOTS; bad endpoints are problems.
 */
function backendMemo(proto: BackendAddr['proto'], bad: (field: string, message: string) => void): BackendsOf {
  // The verdicts of one ServicePort use one to three lists: a few slots, not a Map per ServicePort.
  const lists: (readonly EndpointInfo[])[] = [];
  const results: ReturnType<BackendsOf>[] = [];
  return (eps) => {
    const at = lists.indexOf(eps);
    if (at >= 0) return results[at] as ReturnType<BackendsOf>;
    const backends: BackendAddr[] = [];
    const keys: BackendKey[] = [];
    for (const ep of eps) {
      // IPv4 (most endpoints) parsed once, for both the canonical text and the key.
      const v4 = ep.ip.includes(':') ? -1 : parseIPv4(ep.ip, 'decimal');
      const addr = v4 >= 0 ? (hasLeadingZero(ep.ip) ? formatIPv4(v4) : ep.ip) : canonicalIP(ep.ip, 'decimal');
      if (addr === null) {
        bad('endpoints', `endpoint ${JSON.stringify(ep.ip)} is not an IP address`);
        continue;
      }
      if (!isPort(ep.port)) {
        bad('endpoints', `endpoint ${ep.ip} port ${ep.port} is not in 1..65535`);
        continue;
      }
      const flags = ep.isLocal ? SY_BE_F_LOCAL : 0;
      const b: BackendAddr = { addr, port: ep.port, proto, flags };
      backends.push(b);
      keys.push(v4 >= 0 ? backendKey4(v4, ep.port, proto, flags) : backendKeyOf(b));
    }
    const out = finishBackends(backends, keys, bad);
    lists.push(eps);
    results.push(out);
    return out;
  };
}

/** Up to this many backends are sorted in place by insertion (no comparator calls, no pairs); more go through Array.sort. */
const INSERTION_SORT_MAX = 32;

/** Sorts the backends by key (the two arrays in step), drops duplicate keys, caps at SY_MAX_SLOTS. */
function finishBackends(backends: BackendAddr[], keys: BackendKey[], bad: (field: string, message: string) => void): ReturnType<BackendsOf> {
  const n = keys.length;
  if (n <= INSERTION_SORT_MAX) {
    for (let i = 1; i < n; i++) {
      const k = keys[i] as BackendKey;
      const b = backends[i] as BackendAddr;
      let j = i - 1;
      while (j >= 0 && compareBackendKeys(keys[j] as BackendKey, k) > 0) {
        keys[j + 1] = keys[j] as BackendKey;
        backends[j + 1] = backends[j] as BackendAddr;
        j--;
      }
      keys[j + 1] = k;
      backends[j + 1] = b;
    }
  } else {
    const order = keys.map((_k, i) => i).sort((x, y) => compareBackendKeys(keys[x] as BackendKey, keys[y] as BackendKey) || x - y);
    const k2 = order.map((i) => keys[i] as BackendKey);
    const b2 = order.map((i) => backends[i] as BackendAddr);
    for (let i = 0; i < n; i++) {
      keys[i] = k2[i] as BackendKey;
      backends[i] = b2[i] as BackendAddr;
    }
  }
  // Unique by key, the first of equal keys kept (both sorts are stable).
  let w = 0;
  for (let i = 0; i < n; i++) {
    if (w > 0 && keys[w - 1] === keys[i]) continue;
    keys[w] = keys[i] as BackendKey;
    backends[w] = backends[i] as BackendAddr;
    w++;
  }
  keys.length = w;
  backends.length = w;
  if (w > SY_MAX_SLOTS) {
    bad('endpoints', `${w} endpoints; a frontend holds at most ${SY_MAX_SLOTS}, the rest are not programmed`);
    backends.length = SY_MAX_SLOTS;
    keys.length = SY_MAX_SLOTS;
  }
  return { backends, backendKeys: keys };
}
