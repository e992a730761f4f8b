// A kube-proxy ruleset for the migration test: the iptables-restore input
// kube-proxy's iptables mode (kubernetes/kubernetes pkg/proxy/iptables,
// 1.28 and later) writes for ClusterIP Services, with its chain names
// computed as kube-proxy computes them (the first 16 characters of the base32
// of a SHA-256), plus what kubelet installs beside it (KUBE-FIREWALL,
// KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT: not kube-proxy's, left alone by its
// cleanup) and one rule of the node's own. Written by hand from kube-proxy's
// generator and its test fixtures; kube-proxy's code is not copied.

import { createHash } from 'node:crypto';

export interface KpPort {
  /** The Service port's name. */
  readonly name: string;
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP';
  /** Endpoints as `IP:PORT` (IPv6: `[IP]:PORT`). */
  readonly endpoints: readonly string[];
}

export interface KpService {
  readonly namespace: string;
  readonly name: string;
  readonly clusterIP: string;
  readonly ports: readonly KpPort[];
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(buf: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

function hash16(s: string): string {
  return base32(createHash('sha256').update(s).digest()).slice(0, 16);
}

/** kube-proxy's chain names: KUBE-SVC-<hash(port name + protocol)>, KUBE-SEP-<hash(... + endpoint)>. */
export function svcChain(svcPortName: string, protocol: string): string {
  return `KUBE-SVC-${hash16(svcPortName + protocol.toLowerCase())}`;
}
export function sepChain(svcPortName: string, protocol: string, endpoint: string): string {
  return `KUBE-SEP-${hash16(svcPortName + protocol.toLowerCase() + endpoint)}`;
}

/** The comment marking the node's own rule, which every cleanup must leave. */
export const USER_RULE_COMMENT = 'node firewall: not kube-proxy';

/**
 * kube-proxy's large-cluster mode: above this many endpoints in all (its
 * largeClusterEndpointsThreshold) it leaves the comments off the KUBE-SVC
 * and KUBE-SEP rules, to keep the restore input small.
 */
export const LARGE_CLUSTER_ENDPOINTS = 1000;

/** The Service port's name as kube-proxy prints it: `namespace/name:port`. */
export const servicePortName = (s: KpService, p: KpPort): string => `${s.namespace}/${s.name}:${p.name}`;

interface NatLines {
  /** `:CHAIN - [0:0]` lines (declaring a chain in a restore input flushes it). */
  readonly chains: string[];
  readonly rules: string[];
}

/** The endpoint's address without the port (and without the brackets of an IPv6 one). */
function endpointIP(ep: string): string {
  return ep.slice(0, ep.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}

/** The KUBE-SERVICES rule of one ClusterIP Service port (written at every sync, partial or not). */
function servicesRule(s: KpService, p: KpPort, v6: boolean): string {
  const proto = p.protocol.toLowerCase();
  const spn = servicePortName(s, p);
  return `-A KUBE-SERVICES -d ${s.clusterIP}${v6 ? '/128' : '/32'} -p ${proto} -m comment --comment "${spn} cluster IP" -m ${proto} --dport ${p.port} -j ${svcChain(spn, proto)}`;
}

/** One Service port's KUBE-SVC chain and its KUBE-SEP chains, as kube-proxy's iptables mode writes them. */
function serviceChains(s: KpService, p: KpPort, clusterCIDR: string, v6: boolean, comments: boolean, out: NatLines): void {
  const host = v6 ? '/128' : '/32';
  const spn = servicePortName(s, p);
  const proto = p.protocol.toLowerCase();
  const svc = svcChain(spn, proto);
  out.chains.push(`:${svc} - [0:0]`);
  out.rules.push(
    `-A ${svc} ! -s ${clusterCIDR} -d ${s.clusterIP}${host} -p ${proto} -m comment --comment "${spn} cluster IP" -m ${proto} --dport ${p.port} -j KUBE-MARK-MASQ`,
  );
  p.endpoints.forEach((ep, i) => {
    const left = p.endpoints.length - i;
    const comment = comments ? ` -m comment --comment "${spn} -> ${ep}"` : '';
    const prob = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : '';
    out.rules.push(`-A ${svc}${comment}${prob} -j ${sepChain(spn, proto, ep)}`);
  });
  for (const ep of p.endpoints) {
    const sep = sepChain(spn, proto, ep);
    const comment = comments ? ` -m comment --comment "${spn}"` : '';
    out.chains.push(`:${sep} - [0:0]`);
    out.rules.push(`-A ${sep} -s ${endpointIP(ep)}${host}${comment} -j KUBE-MARK-MASQ`);
    out.rules.push(`-A ${sep} -p ${proto}${comment} -m ${proto} -j DNAT --to-destination ${ep}`);
  }
}

/** Whether kube-proxy would be in its large-cluster mode (no comments on KUBE-SVC/KUBE-SEP rules) for these Services. */
function largeCluster(services: readonly KpService[]): boolean {
  let n = 0;
  for (const s of services) for (const p of s.ports) n += p.endpoints.length;
  return n > LARGE_CLUSTER_ENDPOINTS;
}

export interface RestoreOptions {
  /** kube-proxy's --cluster-cidr (traffic from outside it to a ClusterIP is masqueraded). */
  readonly clusterCIDR: string;
  readonly v6: boolean;
  /**
   * A partial sync (kube-proxy 1.28 and later, for a change that needs no
   * full sync): only these Services (`namespace/name`) get their KUBE-SVC and
   * KUBE-SEP chains written; the others are left out of the input and so
   * left alone by `--noflush`. KUBE-SERVICES and the other top-level chains
   * are written in full either way. Absent: a full sync.
   */
  readonly changed?: ReadonlySet<string>;
}

/**
 * The iptables-restore input kube-proxy's iptables mode writes at a sync
 * (`iptables-restore --noflush --counters`): the filter and nat tables'
 * kube-proxy chains, without the jumps from the built-in chains (kube-proxy
 * makes those with `iptables -I` before a full sync; see `kubeProxyJumps`).
 * ClusterIP Services only. Stale KUBE-SEP chains are not deleted (kube-proxy
 * skips that in large-cluster mode except once per --iptables-sync-period).
 */
export function kubeProxyRestoreInput(services: readonly KpService[], o: RestoreOptions): string {
  const comments = !largeCluster(services);
  const nat: NatLines = { chains: [], rules: [] };
  const svcRules: string[] = [];
  for (const s of services) {
    const write = o.changed === undefined || o.changed.has(`${s.namespace}/${s.name}`);
    for (const p of s.ports) {
      svcRules.push(servicesRule(s, p, o.v6));
      if (write) serviceChains(s, p, o.clusterCIDR, o.v6, comments, nat);
    }
  }
  const localnet = o.v6
    ? []
    : [
        '-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
      ];
  return [
    '*filter',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-EXTERNAL-SERVICES - [0:0]',
    ':KUBE-FORWARD - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-PROXY-FIREWALL - [0:0]',
    ...(o.v6 ? [] : [':KUBE-FIREWALL - [0:0]']),
    ...localnet,
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT',
    '*nat',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    ...nat.chains,
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    ...svcRules,
    ...nat.rules,
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    'COMMIT',
    '',
  ].join('\n');
}

/**
 * The jumps from the built-in chains to kube-proxy's, which kube-proxy
 * makes with `iptables -N`/`-I` (not in the restore input) before a full
 * sync, as a restore input of their own for a fresh network namespace.
 */
export function kubeProxyJumps(): string {
  return [
    '*filter',
    ':KUBE-EXTERNAL-SERVICES - [0:0]',
    ':KUBE-FORWARD - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-PROXY-FIREWALL - [0:0]',
    ':KUBE-SERVICES - [0:0]',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    'COMMIT',
    '*nat',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    'COMMIT',
    '',
  ].join('\n');
}

/**
 * The whole iptables-restore input (filter, nat, mangle) for one family, as
 * a node run by kube-proxy holds it, for the migration test.
 * `clusterCIDR` is kube-proxy's --cluster-cidr (the local-traffic detector:
 * traffic from outside it to a ClusterIP is masqueraded).
 */
export function kubeProxyRuleset(services: readonly KpService[], clusterCIDR: string, v6: boolean): string {
  const localnet = v6
    ? []
    : [
        '-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
      ];
  const comments = !largeCluster(services);
  const nat: NatLines = { chains: [], rules: [] };
  const svcRules: string[] = [];
  for (const s of services) {
    for (const p of s.ports) {
      svcRules.push(servicesRule(s, p, v6));
      serviceChains(s, p, clusterCIDR, v6, comments, nat);
    }
  }
  const natChains = nat.chains;
  const natRules = nat.rules;
  return [
    '*mangle',
    ':KUBE-IPTABLES-HINT - [0:0]',
    ':KUBE-KUBELET-CANARY - [0:0]',
    ':KUBE-PROXY-CANARY - [0:0]',
    'COMMIT',
    '*filter',
    ':KUBE-EXTERNAL-SERVICES - [0:0]',
    ':KUBE-FIREWALL - [0:0]',
    ':KUBE-FORWARD - [0:0]',
    ':KUBE-KUBELET-CANARY - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-PROXY-CANARY - [0:0]',
    ':KUBE-PROXY-FIREWALL - [0:0]',
    ':KUBE-SERVICES - [0:0]',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A INPUT -j KUBE-FIREWALL',
    `-A INPUT -s ${v6 ? 'fd00:198:18::3:0/112' : '198.18.3.0/24'} -p tcp -m comment --comment "${USER_RULE_COMMENT}" -j DROP`,
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -j KUBE-FIREWALL',
    ...localnet,
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT',
    '*nat',
    ':KUBE-KUBELET-CANARY - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':KUBE-PROXY-CANARY - [0:0]',
    ':KUBE-SERVICES - [0:0]',
    ...natChains,
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ...svcRules,
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    ...natRules,
    'COMMIT',
    '',
  ].join('\n');
}
