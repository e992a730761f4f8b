// What happens to a new connection to one frontend of a ServicePort, by
// traffic source, as kube-proxy's nftables and iptables proxiers decide it
// (pkg/proxy/nftables/proxier.go syncProxyRules, iptables/proxier.go).
// Pure: a dataplane compiles these decisions into its own tables.
//
// Frontends, per family the Service has a ClusterIP of: the ClusterIP, the
// NodePort (ip null: any node address), each ExternalIP, each LoadBalancer IP.
//
// Internal traffic (ClusterIP):
//   no usable endpoint anywhere                       -> REJECT
//   internalTrafficPolicy Local, none on this node    -> DROP
//   otherwise DNAT to clusterEndpoints, masquerading when masqueradeAll, or
//   when the source is not a pod (local-traffic detector: clusterCIDRs of
//   the family; without one nothing is masqueraded)
// External traffic (NodePort, ExternalIP, LoadBalancer IP):
//   LoadBalancer IP with loadBalancerSourceRanges of the frontend's family,
//   source outside them                               -> DROP (checked first:
//   kube-proxy filters before DNAT; NodePorts are not filtered)
//   no usable endpoint anywhere                       -> REJECT
//   externalTrafficPolicy Cluster                     -> DNAT to the cluster-
//     policy endpoints, always masqueraded (the reply may cross nodes)
//   externalTrafficPolicy Local:
//     from a pod (detector present)                   -> cluster-policy
//       endpoints, not masqueraded ("short-circuit": as if it had gone out
//       to the load balancer and come back)
//     from this node                                  -> cluster-policy
//       endpoints, masqueraded (the source is a node address)
//     from outside                                    -> local endpoints,
//       source kept; DROP when this node has none
// Hairpin (a pod reaching itself through the Service) is masqueraded on top
// of this, per endpoint: see masqueradeFor.

import { cidrContains, familyOf, parseCidr, parseIP } from '../util/ip.ts';
import { completeServicePort } from './selection.ts';
import type { CompleteServicePortInfo, EndpointInfo, IPFamily, Protocol, ServicePortSpec } from './types.ts';

export type FrontendKind = 'clusterIP' | 'nodePort' | 'externalIP' | 'loadBalancer';

export interface Frontend {
  readonly kind: FrontendKind;
  readonly family: IPFamily;
  /** null for a NodePort: every node address of the family that --nodeport-addresses allows. */
  readonly ip: string | null;
  /** The nodePort for kind nodePort, the Service port otherwise. */
  readonly port: number;
  readonly protocol: Protocol;
}

/** A pod (matched by the local-traffic detector), a process on this node, or a client outside the cluster. */
export type TrafficSource = 'pod' | 'node' | 'external';

/** A source with its address, when it is known: lets LoadBalancer source ranges be applied. */
export interface SourceAddress {
  readonly kind: TrafficSource;
  readonly ip: string;
}

export type Verdict =
  | { readonly action: 'dnat'; readonly endpoints: readonly EndpointInfo[]; readonly masquerade: boolean }
  | { readonly action: 'reject' }
  | { readonly action: 'drop'; readonly reason: 'noLocalEndpoints' | 'sourceRange' };

export interface VerdictOptions {
  /** kube-proxy's masqueradeAll: masquerade all ClusterIP traffic. */
  readonly masqueradeAll: boolean;
  /** The local-traffic detector by CIDR (detect-local-mode ClusterCIDR or NodeCIDR): a family without a CIDR has none. */
  readonly clusterCIDRs: readonly string[];
  /** The local-traffic detector by interface (BridgeInterface, InterfaceNamePrefix): present in every family. */
  readonly localByInterface?: boolean;
  /** This node; used to select endpoints of ServicePortInfos not built by the model. */
  readonly nodeName: string;
  readonly nodeZone: string | null;
  /**
   * This node's addresses. When a loadBalancerSourceRanges entry contains
   * one, the LoadBalancer IPs are allowed as sources too (a node reaching
   * its own VIP is often SNATed to it).
   */
  readonly nodeIPs?: readonly string[];
}

export interface FrontendVerdicts {
  readonly frontend: Frontend;
  /** Sources allowed (CIDRs) for a LoadBalancer frontend with source ranges; null: no filter. */
  readonly allowedSources: readonly string[] | null;
  readonly pod: Verdict;
  readonly node: Verdict;
  readonly external: Verdict;
}

/** Every frontend of the ServicePort, family by family in clusterIPs order. */
export function frontendsOf(sp: ServicePortSpec): Frontend[] {
  const out: Frontend[] = [];
  for (const clusterIP of sp.clusterIPs) {
    const family = familyOf(clusterIP);
    const at = (kind: FrontendKind, ip: string | null, port = sp.port): Frontend => ({ kind, family, ip, port, protocol: sp.protocol });
    out.push(at('clusterIP', clusterIP));
    if (sp.nodePort != null) out.push(at('nodePort', null, sp.nodePort));
    for (const ip of sp.externalIPs ?? []) if (familyOf(ip) === family) out.push(at('externalIP', ip));
    for (const ip of sp.loadBalancerIPs ?? []) if (familyOf(ip) === family) out.push(at('loadBalancer', ip));
  }
  return out;
}

/** The verdict for every frontend and every kind of source. */
export function verdicts(sp: ServicePortSpec, opts: VerdictOptions): FrontendVerdicts[] {
  const full = complete(sp, opts);
  return frontendsOf(full).map((frontend) => ({
    frontend,
    allowedSources: allowedSources(full, frontend, opts),
    pod: decide(full, frontend, 'pod', opts),
    node: decide(full, frontend, 'node', opts),
    external: decide(full, frontend, 'external', opts),
  }));
}

/**
 * The verdict for one frontend and source. With a bare source kind the
 * source is assumed allowed by loadBalancerSourceRanges (see
 * allowedSources); with an address the ranges are applied.
 */
export function decide(sp: ServicePortSpec, frontend: Frontend, source: TrafficSource | SourceAddress, opts: VerdictOptions): Verdict {
  const full = complete(sp, opts);
  const kind = typeof source === 'string' ? source : source.kind;
  if (typeof source !== 'string' && !sourceAllowed(full, frontend, source.ip, opts)) return DROP_SOURCE;
  if (!full.hasAnyEndpoints[frontend.family]) return REJECT;
  if (frontend.kind === 'clusterIP') return internalVerdict(full, frontend.family, kind, opts);
  return externalVerdict(full, frontend.family, kind, opts);
}

/** Whether `endpoint`, picked under a DNAT verdict, is masqueraded for `sourceIP` (hairpin included). */
export function masqueradeFor(verdict: Verdict & { action: 'dnat' }, endpoint: EndpointInfo, sourceIP: string): boolean {
  return verdict.masquerade || endpoint.ip === sourceIP;
}

/**
 * The source CIDRs a LoadBalancer frontend accepts (kube-proxy's firewall
 * chain): the Service's ranges of the frontend's family, plus the
 * LoadBalancer IPs when a range contains a node address. null when there is
 * no filter: another kind of frontend, or no range of that family.
 */
export function allowedSources(sp: ServicePortSpec, frontend: Frontend, opts: VerdictOptions): readonly string[] | null {
  if (frontend.kind !== 'loadBalancer') return null;
  const ranges = (sp.loadBalancerSourceRanges ?? []).filter((r) => familyOf(r) === frontend.family);
  if (ranges.length === 0) return null;
  const nodeIPs = (opts.nodeIPs ?? []).filter((ip) => familyOf(ip) === frontend.family);
  if (!nodeIPs.some((ip) => inRanges(ip, ranges))) return ranges;
  const hostBits = frontend.family === 'IPv4' ? 32 : 128;
  const vips = (sp.loadBalancerIPs ?? []).filter((ip) => familyOf(ip) === frontend.family).map((ip) => `${ip}/${hostBits}`);
  return [...ranges, ...vips];
}

function sourceAllowed(sp: ServicePortSpec, frontend: Frontend, ip: string, opts: VerdictOptions): boolean {
  const allowed = allowedSources(sp, frontend, opts);
  return allowed === null || inRanges(ip, allowed);
}

function internalVerdict(sp: CompleteServicePortInfo, family: IPFamily, source: TrafficSource, opts: VerdictOptions): Verdict {
  const endpoints = ofFamily(sp.clusterEndpoints, family);
  if (endpoints.length === 0) return DROP_NO_LOCAL; // internalTrafficPolicy Local: nothing on this node
  const masquerade = opts.masqueradeAll || (detectsPods(opts, family) && source !== 'pod');
  return { action: 'dnat', endpoints, masquerade };
}

function externalVerdict(sp: CompleteServicePortInfo, family: IPFamily, source: TrafficSource, opts: VerdictOptions): Verdict {
  const cluster = ofFamily(sp.clusterPolicyEndpoints, family);
  if (!sp.externalPolicyLocal) return { action: 'dnat', endpoints: cluster, masquerade: true };
  if (source === 'pod' && detectsPods(opts, family)) return { action: 'dnat', endpoints: cluster, masquerade: false };
  if (source === 'node') return { action: 'dnat', endpoints: cluster, masquerade: true };
  const local = ofFamily(sp.localEndpoints, family);
  if (local.length === 0) return DROP_NO_LOCAL;
  return { action: 'dnat', endpoints: local, masquerade: false };
}

// ---------------------------------------------------------------------------
// Helpers

const REJECT: Verdict = Object.freeze({ action: 'reject' });
const DROP_NO_LOCAL: Verdict = Object.freeze({ action: 'drop', reason: 'noLocalEndpoints' });
const DROP_SOURCE: Verdict = Object.freeze({ action: 'drop', reason: 'sourceRange' });

function complete(sp: ServicePortSpec, opts: VerdictOptions): CompleteServicePortInfo {
  return completeServicePort(sp, { name: opts.nodeName, zone: opts.nodeZone });
}

/** kube-proxy's local-traffic detector is per family: by CIDR only with a CIDR of that family; by interface in both. */
function detectsPods(opts: VerdictOptions, family: IPFamily): boolean {
  return opts.localByInterface === true || opts.clusterCIDRs.some((cidr) => familyOf(cidr) === family);
}

function ofFamily(endpoints: readonly EndpointInfo[], family: IPFamily): readonly EndpointInfo[] {
  if (endpoints.every((ep) => familyOf(ep.ip) === family)) return endpoints;
  return endpoints.filter((ep) => familyOf(ep.ip) === family);
}

/** Whether `ip` is in one of `cidrs` (of its family; text that does not parse matches nothing). */
function inRanges(ip: string, cidrs: readonly string[]): boolean {
  const addr = parseIP(ip, 'decimal');
  if (addr === null) return false;
  return cidrs.some((text) => {
    const cidr = parseCidr(text, 'decimal');
    return cidr !== null && cidrContains(cidr, addr);
  });
}
