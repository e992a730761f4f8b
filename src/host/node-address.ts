// Which addresses are this node's own: the interface that holds the default
// route (IPv4, else IPv6; as kube-proxy falls back to when no --bind-address
// and no Node address is known), else the first interface with an address;
// its first IPv4 and first global IPv6 address are the node addresses (the
// masquerade sources), and every address of every interface is a NodePort
// address unless --nodeport-addresses narrows them.

import { readFileSync } from 'node:fs';
import { ipAddresses, ipv4Addresses } from './links.ts';
import { canonicalIP } from '../util/ip.ts';

/** Interface names of IPv4 default routes, from /proc/net/route (hex destination 00000000). */
export function defaultRouteInterfaces(routeTable = '/proc/net/route'): string[] {
  let text: string;
  try {
    text = readFileSync(routeTable, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === '00000000' && f[7] === '00000000' && f[0])
    .map((f) => f[0] as string);
}

/** Interface names of IPv6 default routes (::/0), from /proc/net/ipv6_route. */
export function defaultRouteInterfaces6(routeTable = '/proc/net/ipv6_route'): string[] {
  let text: string;
  try {
    text = readFileSync(routeTable, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 10 && /^0+$/.test(f[0] as string) && f[1] === '00' && f[9] !== 'lo')
    .map((f) => f[9] as string);
}

export interface NodeAddress {
  readonly address: string;
  readonly interface: string;
}

/** The node's IPv4 address and its interface; `wanted` forces a specific address. */
export function detectNodeAddress(wanted?: string): NodeAddress | null {
  const byIf = ipv4Addresses();
  if (wanted) {
    for (const [name, addrs] of byIf) if (addrs.includes(wanted)) return { address: wanted, interface: name };
    return null;
  }
  for (const name of defaultRouteInterfaces()) {
    const a = byIf.get(name)?.[0];
    if (a) return { address: a, interface: name };
  }
  for (const [name, addrs] of byIf) if (addrs[0]) return { address: addrs[0], interface: name };
  return null;
}

export interface NodeAddresses {
  /** The interface holding the node addresses. */
  readonly interface: string;
  readonly ipv4: string | null;
  readonly ipv6: string | null;
  /** Every address of every interface, canonical (NodePort addresses before --nodeport-addresses). */
  readonly all: readonly string[];
}

/**
 * The node's addresses of both families; `wanted` (--bind-address) forces
 * the interface that holds it and that address for its family. null when
 * there is no address at all, or `wanted` is not one of this host's.
 */
export function detectNodeAddresses(
  wanted?: string,
  byIf: Map<string, { readonly v4: readonly string[]; readonly v6: readonly string[] }> = ipAddresses(),
  defaults: readonly string[] = [...defaultRouteInterfaces(), ...defaultRouteInterfaces6()],
): NodeAddresses | null {
  const all = [...byIf.values()].flatMap((a) => [...a.v4, ...a.v6]).map((a) => canonicalIP(a, 'decimal') ?? a);
  const at = (name: string, pin?: string): NodeAddresses | null => {
    const a = byIf.get(name);
    if (a === undefined) return null;
    const isV6 = pin?.includes(':') === true;
    const canon = (x: string | undefined): string | null => (x === undefined ? null : (canonicalIP(x, 'decimal') ?? x));
    return {
      interface: name,
      ipv4: canon(pin !== undefined && !isV6 ? pin : a.v4[0]),
      ipv6: canon(pin !== undefined && isV6 ? pin : a.v6[0]),
      all: [...new Set(all)],
    };
  };
  if (wanted) {
    const w = canonicalIP(wanted, 'decimal');
    for (const [name, a] of byIf) if ([...a.v4, ...a.v6].some((x) => canonicalIP(x, 'decimal') === w)) return at(name, w ?? wanted);
    return null;
  }
  for (const name of defaults) {
    const r = at(name);
    if (r !== null && (r.ipv4 !== null || r.ipv6 !== null)) return r;
  }
  for (const name of byIf.keys()) {
    const r = at(name);
    if (r !== null && (r.ipv4 !== null || r.ipv6 !== null)) return r;
  }
  return null;
}
