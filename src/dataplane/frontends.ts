// The frontends a dataplane programs for one ServicePort, with the model's
// verdicts (src/model/verdict.ts): shared by the bpf and ipvs compiles so
// that both serve exactly the same addresses. Pure.
//
// Per frontend the model lists (both families): each ClusterIP, the NodePort
// on every node address of the family that --nodeport-addresses allows
// (and on 127.0.0.1 with localhostNodePorts), each ExternalIP, each
// LoadBalancer IP; addresses canonical. Headless ("None") and unset
// ClusterIPs have no frontends. Input the kernel cannot take (an unknown
// protocol, a port outside 1..65535, an address that does not parse) is
// reported through `bad` and left out.

import type { IPFamily, ServicePortInfo } from '../model/types.ts';
import { type FrontendVerdicts, type VerdictOptions, verdicts } from '../model/verdict.ts';
import { canonicalIP, cidrContains, familyOf, parseCidr, parseIP } from '../util/ip.ts';

/** The options both compiles take to enumerate frontends and their verdicts. */
export interface FrontendOptions {
  /** kube-proxy's masqueradeAll: masquerade every connection to a ClusterIP. */
  readonly masqueradeAll: boolean;
  /** Local-traffic detector by CIDR: --cluster-cidr (ClusterCIDR) or the Node's podCIDRs (NodeCIDR); empty: none. */
  readonly localCIDRs: readonly string[];
  /** Local-traffic detector by interface (BridgeInterface, InterfaceNamePrefix): pods in both families. */
  readonly localByInterface: boolean;
  readonly nodeName: string;
  readonly nodeZone: string | null;
  /** This node's addresses, both families: NodePort frontends, and the source-range exception. */
  readonly nodeIPs: readonly string[];
  /** --nodeport-addresses as CIDRs; empty: every node address. */
  readonly nodePortAddresses: readonly string[];
}

/** The model's verdict options from a compile's options. */
export function verdictOptions(o: FrontendOptions): VerdictOptions {
  return {
    masqueradeAll: o.masqueradeAll,
    clusterCIDRs: o.localCIDRs,
    localByInterface: o.localByInterface,
    nodeName: o.nodeName,
    nodeZone: o.nodeZone,
    nodeIPs: o.nodeIPs,
  };
}

/** kube-proxy's localhost NodePort address (IPv4 only, as kube-proxy's iptables mode). */
export const LOCALHOST4 = '127.0.0.1';

/** Node addresses NodePorts listen on, per family, canonical. */
export type NodePortIPs = Readonly<Record<IPFamily, readonly string[]>>;

/**
 * The node addresses NodePorts are served on: `nodeIPs` inside
 * `nodePortAddresses` (CIDRs; empty: every one), plus 127.0.0.1 when
 * `localhostNodePorts`.
 */
export function nodePortIPs(nodeIPs: readonly string[], nodePortAddresses: readonly string[], localhostNodePorts: boolean): NodePortIPs {
  const allowed = nodePortAddresses.map((c) => parseCidr(c, 'decimal')).filter((c) => c !== null);
  const ips: Record<IPFamily, string[]> = { IPv4: [], IPv6: [] };
  for (const text of nodeIPs) {
    const ip = parseIP(text, 'decimal');
    if (ip === null) continue;
    if (nodePortAddresses.length > 0 && !allowed.some((c) => cidrContains(c, ip))) continue;
    const canon = canonicalIP(text, 'decimal') as string;
    if (!ips[ip.family].includes(canon)) ips[ip.family].push(canon);
  }
  if (localhostNodePorts && !ips.IPv4.includes(LOCALHOST4)) ips.IPv4.push(LOCALHOST4);
  return ips;
}

/** One frontend of the model and the canonical addresses it is served on (several for a NodePort). */
export interface ServicePortFrontend {
  readonly verdicts: FrontendVerdicts;
  readonly addresses: readonly string[];
}

export type Bad = (field: string, message: string) => void;

const PROTOCOLS: ReadonlySet<string> = new Set(['TCP', 'UDP', 'SCTP']);
const FIELD_OF_KIND = { clusterIP: 'clusterIPs', nodePort: 'nodePort', externalIP: 'externalIPs', loadBalancer: 'loadBalancerIPs' } as const;

/**
 * The frontends of `sp` with at least one address, in the model's order;
 * null when the ServicePort as a whole cannot be programmed (protocol or
 * port), with the reason passed to `bad`.
 */
export function servicePortFrontends(sp: ServicePortInfo, opts: VerdictOptions, npIPs: NodePortIPs, bad: Bad): ServicePortFrontend[] | null {
  if (!PROTOCOLS.has(sp.protocol)) {
    bad('protocol', `unsupported protocol ${JSON.stringify(sp.protocol)}`);
    return null;
  }
  if (!isPort(sp.port)) {
    bad('port', `port ${sp.port} is not in 1..65535`);
    return null;
  }
  const valid = sp.clusterIPs.filter((ip) => ip !== '' && ip !== 'None');
  if (valid.length === 0) return [];
  sp.clusterIPs.forEach((ip, i) => {
    if (ip !== '' && ip !== 'None' && canonicalIP(ip, 'decimal') === null) bad(`clusterIPs[${i}]`, `not an IP address: ${JSON.stringify(ip)}`);
  });
  const target = valid.length === sp.clusterIPs.length ? sp : { ...sp, clusterIPs: valid };
  const out: ServicePortFrontend[] = [];
  for (const fv of verdicts(target, opts)) {
    const addresses = frontendAddresses(fv, npIPs, bad);
    if (addresses.length > 0) out.push({ verdicts: fv, addresses });
  }
  return out;
}

/** The canonical addresses of a frontend: the NodePort's node addresses, or its own IP. */
function frontendAddresses(fv: FrontendVerdicts, npIPs: NodePortIPs, bad: Bad): readonly string[] {
  const f = fv.frontend;
  if (f.kind === 'nodePort') {
    if (!isPort(f.port)) {
      bad('nodePort', `nodePort ${f.port} is not in 1..65535`);
      return [];
    }
    return npIPs[f.family];
  }
  const ip = f.ip === null ? null : canonicalIP(f.ip, 'decimal');
  if (ip === null || familyOf(ip) !== f.family) {
    if (f.kind !== 'clusterIP') bad(FIELD_OF_KIND[f.kind], `not an ${f.family} address: ${JSON.stringify(f.ip)}`);
    return [];
  }
  return [ip];
}

export function isPort(p: number): boolean {
  return Number.isInteger(p) && p >= 1 && p <= 65535;
}
