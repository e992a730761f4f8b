// Address syntax as kube-proxy checks it: IPs and CIDRs parsed the way
// k8s.io/utils/net's "sloppy" parsers do (IPv4 octets may have leading zeros,
// no IPv6 zones), host:port split as Go's net.SplitHostPort does.

import { isIPv6 } from 'node:net';

export type IPFamily = 4 | 6;

/** 4 or 6 for a valid IP, null otherwise. */
export function ipFamily(text: string): IPFamily | null {
  const v4 = text.split('.');
  if (v4.length === 4 && v4.every((o) => /^\d{1,10}$/.test(o) && Number(o) <= 255)) return 4;
  if (text.includes(':') && !text.includes('%') && isIPv6(text)) return 6;
  return null;
}

/** True for 0.0.0.0 and ::, the addresses that mean "any" (and, for bindAddress, "detect"). */
export function isUnspecifiedIP(text: string): boolean {
  const family = ipFamily(text);
  if (family === 4) return text.split('.').every((o) => Number(o) === 0);
  if (family === 6) return /^[0:]+$/.test(text);
  return false;
}

export interface Cidr {
  readonly family: IPFamily;
  readonly ip: string;
  readonly prefix: number;
}

export function parseCidr(text: string): Cidr | null {
  const slash = text.lastIndexOf('/');
  if (slash < 0) return null;
  const ip = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  const family = ipFamily(ip);
  if (family === null || !/^\d{1,3}$/.test(bits)) return null;
  const prefix = Number(bits);
  if (prefix > (family === 4 ? 32 : 128)) return null;
  return { family, ip, prefix };
}

export type HostPort = { readonly ok: true; readonly host: string; readonly port: string } | { readonly ok: false; readonly reason: string };

/** Go's net.SplitHostPort: "host:port" or "[v6]:port". */
export function splitHostPort(text: string): HostPort {
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) return { ok: false, reason: 'missing "]" in address' };
    if (text[end + 1] !== ':') return { ok: false, reason: end + 1 === text.length ? 'missing port in address' : 'unexpected text after "]"' };
    const host = text.slice(1, end);
    if (host.includes('[') || host.includes(']')) return { ok: false, reason: 'unexpected "[" in address' };
    return { ok: true, host, port: text.slice(end + 2) };
  }
  const colon = text.lastIndexOf(':');
  if (colon < 0) return { ok: false, reason: 'missing port in address' };
  const host = text.slice(0, colon);
  if (host.includes(':')) return { ok: false, reason: 'too many colons in address' };
  if (host.includes('[') || host.includes(']')) return { ok: false, reason: 'unexpected "[" or "]" in address' };
  return { ok: true, host, port: text.slice(colon + 1) };
}

/** kube-proxy's AppendPortIfNeeded: a bare IP gets the port; anything else is returned as is. */
export function appendPortIfNeeded(addr: string, port: number): string {
  if (splitHostPort(addr).ok) return addr;
  const family = ipFamily(addr);
  if (family === 4) return `${addr}:${port}`;
  if (family === 6) return `[${addr}]:${port}`;
  return addr;
}

/** Why `text` is not a valid IP:port, or null when it is. */
export function hostPortProblem(text: string): string | null {
  const hp = splitHostPort(text);
  if (!hp.ok) return `must be IP:port (${hp.reason})`;
  if (ipFamily(hp.host) === null) return `must be IP:port, and ${JSON.stringify(hp.host)} is not an IP address`;
  if (!/^\d{1,5}$/.test(hp.port) || Number(hp.port) < 1 || Number(hp.port) > 65535) {
    return `must be IP:port, and ${JSON.stringify(hp.port)} is not a port from 1 to 65535`;
  }
  return null;
}
