// Which IPv4 address is this node's own: the one on the interface that holds
// the default route (as kube-proxy falls back to when no --bind-address and
// no Node address is known), else the first non-loopback IPv4 address.

import { readFileSync } from 'node:fs';
import { ipv4Addresses } from './links.ts';

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

export interface NodeAddress {
  readonly address: string;
  readonly interface: string;
}

/** The node address and its interface; `wanted` forces a specific address. */
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
