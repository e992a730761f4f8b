// The nft transactions kube-proxy's nftables mode (kubernetes/kubernetes
// pkg/proxy/nftables, 1.31 and later) runs for ClusterIP Services, in its
// structure: `table ip kube-proxy` with base chains per hook, the
// `service-ips` verdict map (ClusterIP . protocol . port : goto service
// chain), one `service-<hash>-ns/name/proto/port` chain per Service port
// choosing an endpoint with `numgen random mod N vmap`, and one
// `endpoint-<hash>-.../ip/port` chain per endpoint doing the DNAT. Chain
// names are computed as kube-proxy computes them (the first 8 characters of
// the base32 of a SHA-256 of the name, a dash, the name). Written by hand
// from kube-proxy's proxier.go; its code is not copied.
//
// Two transactions: the first sync (`kubeProxyNftFull`: the table set up,
// every map flushed and filled, every chain added and flushed), and a
// partial sync (`kubeProxyNftPartial`: kube-proxy does not set the table
// up again and rewrites only the chains of the Services that changed;
// map elements whose value did not change are not touched; chains no
// longer used are flushed, and deleted by a later transaction once they
// have been stale for a second, `nftDeleteChains`).

import { createHash } from 'node:crypto';
import type { KpPort, KpService } from './kube-proxy-ruleset.ts';

export const NFT_TABLE = 'kube-proxy';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function hash8(s: string): string {
  const buf = createHash('sha256').update(s).digest();
  let out = '';
  // 8 base32 characters are the first 40 bits.
  let value = 0n;
  for (let i = 0; i < 5; i++) value = (value << 8n) | BigInt(buf[i] ?? 0);
  for (let i = 7; i >= 0; i--) out += B32[Number((value >> BigInt(i * 5)) & 31n)];
  return out;
}

/** `HASH-name`, kube-proxy's hashAndTruncate (our names never reach its 240-character limit). */
function hashed(name: string): string {
  return `${hash8(name)}-${name}`;
}

/** `ns/name/proto/port`: the part of a Service port's chain names after the hash. */
function portBase(s: KpService, p: KpPort): string {
  return `${s.namespace}/${s.name}/${p.protocol.toLowerCase()}/${p.name}`;
}

/** The Service port's cluster-policy chain: `service-HASH-ns/name/tcp/port`. */
export function nftServiceChain(s: KpService, p: KpPort): string {
  return `service-${hashed(portBase(s, p))}`;
}

/** An endpoint's chain: `endpoint-HASH-ns/name/tcp/port__IP/PORT` (an IPv6 address with dots for colons). */
export function nftEndpointChain(s: KpService, p: KpPort, endpoint: string): string {
  const i = endpoint.lastIndexOf(':');
  const ip = endpoint
    .slice(0, i)
    .replace(/^\[|\]$/g, '')
    .replaceAll(':', '.');
  return `endpoint-${hashed(`${portBase(s, p)}__${ip}/${endpoint.slice(i + 1)}`)}`;
}

export interface NftOptions {
  /** kube-proxy's --cluster-cidr: traffic from outside it to a ClusterIP is masqueraded. */
  readonly clusterCIDR: string;
  /** The ServiceCIDRs: traffic to an unallocated ClusterIP in them is dropped. */
  readonly serviceCIDR: string;
  readonly v6: boolean;
}

/** kube-proxy's --masquerade-bit 14, printed as it prints it (`%#08x`). */
const MASQ_MARK = '0x004000';

interface Family {
  readonly fam: 'ip' | 'ip6';
  readonly addr: 'ipv4_addr' | 'ipv6_addr';
  readonly noLocalhost: string;
}

const family = (v6: boolean): Family =>
  v6 ? { fam: 'ip6', addr: 'ipv6_addr', noLocalhost: 'ip6 daddr != ::1' } : { fam: 'ip', addr: 'ipv4_addr', noLocalhost: 'ip daddr != 127.0.0.0/8' };

/** Base chains: name, type, hook, priority (dstnat is -100, srcnat 100). */
const BASE_CHAINS: readonly (readonly [string, string, string, number])[] = [
  ['filter-prerouting', 'filter', 'prerouting', -110],
  ['filter-input', 'filter', 'input', -110],
  ['filter-forward', 'filter', 'forward', -110],
  ['filter-output', 'filter', 'output', -110],
  ['filter-output-post-dnat', 'filter', 'output', -90],
  ['nat-prerouting', 'nat', 'prerouting', -100],
  ['nat-output', 'nat', 'output', -100],
  ['nat-postrouting', 'nat', 'postrouting', 100],
];

/** Regular chains jumped to from a base chain: destination, source, match. */
const JUMP_CHAINS: readonly (readonly [string, string, string])[] = [
  ['nodeport-endpoints-check', 'filter-input', 'ct state new '],
  ['service-endpoints-check', 'filter-input', 'ct state new '],
  ['service-endpoints-check', 'filter-forward', 'ct state new '],
  ['service-endpoints-check', 'filter-output', 'ct state new '],
  ['firewall-check', 'filter-prerouting', 'ct state new '],
  ['firewall-check', 'filter-output', 'ct state new '],
  ['services', 'nat-output', ''],
  ['services', 'nat-prerouting', ''],
  ['masquerading', 'nat-postrouting', ''],
  ['cluster-ips-check', 'filter-forward', 'ct state new '],
  ['cluster-ips-check', 'filter-output-post-dnat', 'ct state new '],
];

/** Lines of one transaction, with the `add ... ip kube-proxy` prefixes. */
class Tx {
  readonly lines: string[] = [];
  readonly #t: string;
  readonly #made = new Set<string>();

  constructor(fam: string) {
    this.#t = `${fam} ${NFT_TABLE}`;
  }

  op(verb: string, what: string, rest: string): void {
    this.lines.push(`${verb} ${what} ${this.#t} ${rest}`);
  }

  /** kube-proxy's ensureChain: add and flush, once per transaction. */
  ensureChain(name: string): void {
    if (this.#made.has(name)) return;
    this.#made.add(name);
    this.op('add', 'chain', name);
    this.op('flush', 'chain', name);
  }

  rule(chain: string, rule: string): void {
    this.op('add', 'rule', `${chain} ${rule}`);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** What setupNFTables adds at a full sync: the table, base chains, jumps, sets and maps (flushed). */
function setup(tx: Tx, f: Family, o: NftOptions): void {
  tx.op('add', 'table', '{ comment "rules for kube-proxy" ; }');
  // The first sync deletes the base chains once, so that their properties can change.
  for (const [name] of BASE_CHAINS) {
    tx.op('add', 'chain', name);
    tx.op('delete', 'chain', name);
  }
  for (const [name, type, hook, prio] of BASE_CHAINS) {
    tx.op('add', 'chain', `${name} { type ${type} hook ${hook} priority ${prio} ; }`);
    tx.op('flush', 'chain', name);
  }
  for (const [dst, src, match] of JUMP_CHAINS) {
    tx.ensureChain(dst);
    tx.rule(src, `${match}jump ${dst}`);
  }
  for (const c of ['services', 'cluster-ips-check', 'masquerading', 'mark-for-masquerade']) tx.ensureChain(c);
  tx.rule('mark-for-masquerade', `mark set mark or ${MASQ_MARK}`);
  tx.rule('masquerading', `mark and ${MASQ_MARK} == 0 return`);
  tx.rule('masquerading', `mark set mark xor ${MASQ_MARK}`);
  tx.rule('masquerading', 'masquerade fully-random');
  tx.op('add', 'set', `cluster-ips { type ${f.addr} ; comment "Active ClusterIPs" ; }`);
  tx.rule('cluster-ips-check', `${f.fam} daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`);
  tx.rule('cluster-ips-check', `${f.fam} daddr { ${o.serviceCIDR} } drop comment "Drop traffic to unallocated ClusterIPs"`);
  // --nodeport-addresses unset: NodePorts on every local address, no nodeport-ips set.
  tx.op('add', 'set', `nodeport-ips { type ${f.addr} ; comment "IPs that accept NodePort traffic" ; }`);
  tx.op('delete', 'set', 'nodeport-ips');
  const vmap = (name: string, key: string, comment: string): void => tx.op('add', 'map', `${name} { type ${key} : verdict ; comment "${comment}" ; }`);
  vmap('no-endpoint-services', `${f.addr} . inet_proto . inet_service`, 'vmap to drop or reject packets to services with no endpoints');
  vmap('no-endpoint-nodeports', 'inet_proto . inet_service', 'vmap to drop or reject packets to service nodeports with no endpoints');
  tx.op('add', 'chain', 'reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }');
  tx.op('flush', 'chain', 'reject-chain');
  tx.rule('reject-chain', 'reject');
  tx.rule('service-endpoints-check', `${f.fam} daddr . meta l4proto . th dport vmap @no-endpoint-services`);
  tx.rule('nodeport-endpoints-check', `${f.noLocalhost} meta l4proto . th dport vmap @no-endpoint-nodeports`);
  vmap('firewall-ips', `${f.addr} . inet_proto . inet_service`, 'destinations that are subject to LoadBalancerSourceRanges');
  tx.ensureChain('firewall-check');
  tx.rule('firewall-check', `${f.fam} daddr . meta l4proto . th dport vmap @firewall-ips`);
  vmap('service-ips', `${f.addr} . inet_proto . inet_service`, 'ClusterIP, ExternalIP and LoadBalancer IP traffic');
  vmap('service-nodeports', 'inet_proto . inet_service', 'NodePort traffic');
  tx.rule('services', `${f.fam} daddr . meta l4proto . th dport vmap @service-ips`);
  tx.rule('services', `fib daddr type local ${f.noLocalhost} meta l4proto . th dport vmap @service-nodeports`);
  tx.op('flush', 'set', 'cluster-ips');
  for (const m of ['service-ips', 'firewall-ips', 'no-endpoint-services', 'no-endpoint-nodeports', 'service-nodeports']) tx.op('flush', 'map', m);
}

/** The map elements of one Service port (ClusterIP with endpoints). */
function elements(tx: Tx, s: KpService, p: KpPort): void {
  tx.op('add', 'element', `cluster-ips { ${s.clusterIP} }`);
  tx.op('add', 'element', `service-ips { ${s.clusterIP} . ${p.protocol.toLowerCase()} . ${p.port} : goto ${nftServiceChain(s, p)} }`);
}

/** One Service port's chains: its endpoint chains and its service chain, added, flushed and filled. */
function chains(tx: Tx, f: Family, s: KpService, p: KpPort, o: NftOptions): void {
  const proto = p.protocol.toLowerCase();
  const svc = nftServiceChain(s, p);
  const eps = p.endpoints.map((ep) => ({ ep, chain: nftEndpointChain(s, p, ep) }));
  for (const e of eps) tx.ensureChain(e.chain);
  tx.ensureChain(svc);
  tx.rule(svc, `${f.fam} daddr ${s.clusterIP} ${proto} dport ${p.port} ${f.fam} saddr != ${o.clusterCIDR} jump mark-for-masquerade`);
  tx.rule(svc, `numgen random mod ${eps.length} vmap { ${eps.map((e, i) => `${i} : goto ${e.chain}`).join(' , ')} }`);
  for (const e of eps) {
    const ip = e.ep.slice(0, e.ep.lastIndexOf(':')).replace(/^\[|\]$/g, '');
    tx.rule(e.chain, `${f.fam} saddr ${ip} jump mark-for-masquerade`);
    tx.rule(e.chain, `meta l4proto ${proto} dnat to ${e.ep}`);
  }
}

/** The transaction of kube-proxy's first sync of these Services (ClusterIP, every one with endpoints). */
export function kubeProxyNftFull(services: readonly KpService[], o: NftOptions): string {
  const f = family(o.v6);
  const tx = new Tx(f.fam);
  setup(tx, f, o);
  for (const s of services) {
    for (const p of s.ports) {
      if (p.endpoints.length === 0) throw new RangeError(`${s.namespace}/${s.name}:${p.name} has no endpoints (not generated here)`);
      // kube-proxy notes the chains first (ensureChain), then the elements, then the rules; one Service port at a time.
      chains(tx, f, s, p, o);
      elements(tx, s, p);
    }
  }
  return tx.text();
}

/**
 * The transaction of a partial sync after `changed` Services changed their
 * endpoints (the ClusterIP and port unchanged, so no map element changes):
 * their chains rewritten, and `stale` chains (endpoints gone) flushed.
 */
export function kubeProxyNftPartial(changed: readonly KpService[], stale: readonly string[], o: NftOptions): string {
  const f = family(o.v6);
  const tx = new Tx(f.fam);
  for (const s of changed) for (const p of s.ports) chains(tx, f, s, p, o);
  for (const c of stale) tx.op('flush', 'chain', c);
  return tx.text();
}

/** The later transaction that deletes chains stale for over a second. */
export function nftDeleteChains(names: readonly string[], v6: boolean): string {
  const tx = new Tx(family(v6).fam);
  for (const c of names) tx.op('delete', 'chain', c);
  return tx.text();
}

/** The endpoint chains of `before` that `after` no longer has (the stale chains of a change). */
export function staleEndpointChains(before: KpService, after: KpService): string[] {
  const out: string[] = [];
  for (const p of before.ports) {
    const q = after.ports.find((x) => x.name === p.name && x.protocol === p.protocol);
    for (const ep of p.endpoints) if (q === undefined || !q.endpoints.includes(ep)) out.push(nftEndpointChain(before, p, ep));
  }
  return out;
}
