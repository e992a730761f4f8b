// IP addresses and CIDRs of both families, in one place: the family of an
// address, parsing (IPv4 to a number, either family to bytes), canonical
// text (dotted quad; RFC 5952 for IPv6), CIDR parsing and containment, and
// host:port splitting as Go's net.SplitHostPort does it.
//
// Leading zeros in IPv4 octets ("010.0.0.1") are the one syntax question the
// project answers two ways, on purpose, so every validating parser takes the
// answer as an argument:
//   'reject'  Kubernetes objects (Services, EndpointSlices): the API server
//             refuses them (StrictIPCIDRValidation), and so do we.
//   'decimal' kube-proxy's flags and config file, and the dataplane: read as
//             decimal (010 = 10), as k8s.io/utils/net's ParseIPSloppy does.
// The rule covers the IPv4 tail of an IPv6 address and a CIDR's prefix
// length too. A zone ("fe80::1%eth0") is never part of an address. An IPv6
// group has 1 to 4 hex digits; "::" stands for at least one zero group.
//
// IPv4-mapped IPv6 addresses ("::ffff:10.0.0.1") are IPv6: they are written
// in IPv6 syntax, sit in IPv6 fields and slices, and an IPv4 CIDR does not
// contain them (Go's net.IP would call them IPv4; we do not). Their RFC 5952
// text keeps the mixed notation ("::ffff:10.0.0.1"); unmapIPv4() gives the
// IPv4 address one carries, for socket addresses of a dual-stack listener.

export type IPFamily = 'IPv4' | 'IPv6';

/** How IPv4 octets with leading zeros read: see the header. */
export type LeadingZeros = 'reject' | 'decimal';

/** An address as bytes, network order: 4 for IPv4, 16 for IPv6. */
export interface IPAddress {
  readonly family: IPFamily;
  readonly bytes: Uint8Array;
}

/**
 * The family an address or CIDR is written in: IPv6 when it has a ':', else
 * IPv4. For text already validated (objects from a source, a snapshot); it
 * does not validate.
 */
export function familyOf(ipOrCidr: string): IPFamily {
  return ipOrCidr.includes(':') ? 'IPv6' : 'IPv4';
}

/** The family of a valid address, or null when `text` is not one. */
export function ipFamily(text: string, leadingZeros: LeadingZeros): IPFamily | null {
  return parseIP(text, leadingZeros)?.family ?? null;
}

// ---------------------------------------------------------------------------
// IPv4

/**
 * A dotted-quad IPv4 address as a number (host order, 0 to 2^32 - 1), or -1
 * when `text` is not one. Allocates nothing: the dataplane parses every
 * endpoint with it.
 */
export function parseIPv4(text: string, leadingZeros: LeadingZeros): number {
  let acc = 0;
  let octet = -1;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0 && leadingZeros === 'reject') return -1;
      octet = octet < 0 ? c - 48 : octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return -1;
    } else if (c === 46) {
      if (octet < 0 || dots === 3) return -1;
      acc = acc * 256 + octet;
      octet = -1;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  if (octet < 0 || dots !== 3) return -1;
  return acc * 256 + octet;
}

/** A number from parseIPv4 as a dotted quad. */
export function formatIPv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/**
 * Whether some octet of a dotted quad has a leading zero ("10.01.0.1"): the
 * only non-canonical IPv4 text parseIPv4(text, 'decimal') accepts.
 */
export function hasLeadingZero(ipv4: string): boolean {
  for (let i = 0; i < ipv4.length - 1; i++) {
    if (ipv4.charCodeAt(i) === 48 && (i === 0 || ipv4.charCodeAt(i - 1) === 46) && ipv4.charCodeAt(i + 1) !== 46) return true;
  }
  return false;
}

/**
 * The canonical text of an IPv4 address, leading zeros read as decimal (the
 * input itself when it is already canonical), or null when it is not IPv4.
 */
export function canonicalIPv4(text: string): string | null {
  const n = parseIPv4(text, 'decimal');
  if (n < 0) return null;
  return hasLeadingZero(text) ? formatIPv4(n) : text;
}

// ---------------------------------------------------------------------------
// IPv6

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** An IPv6 address as 16 bytes, or null when `text` is not one (zones refused). */
export function parseIPv6(text: string, leadingZeros: LeadingZeros): Uint8Array | null {
  const ellipsis = text.indexOf('::');
  if (ellipsis >= 0 && text.indexOf('::', ellipsis + 1) >= 0) return null;
  const head = ellipsis < 0 ? text : text.slice(0, ellipsis);
  const tail = ellipsis < 0 ? '' : text.slice(ellipsis + 2);
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === '' ? [] : tail.split(':');
  const lastParts = ellipsis < 0 ? headParts : tailParts;
  // An IPv4 tail stands for the last two groups.
  const last = lastParts[lastParts.length - 1];
  let v4 = -1;
  if (last?.includes('.')) {
    v4 = parseIPv4(last, leadingZeros);
    if (v4 < 0) return null;
    lastParts.pop();
  }
  const groups = headParts.length + tailParts.length + (v4 >= 0 ? 2 : 0);
  if (ellipsis < 0 ? groups !== 8 : groups > 7) return null;
  const out = new Uint8Array(16);
  const put = (parts: readonly string[], at: number): boolean => {
    for (const [i, part] of parts.entries()) {
      if (!HEX_GROUP.test(part)) return false;
      const g = Number.parseInt(part, 16);
      out[at + 2 * i] = g >> 8;
      out[at + 2 * i + 1] = g & 255;
    }
    return true;
  };
  const tailAt = 16 - 2 * (tailParts.length + (ellipsis >= 0 && v4 >= 0 ? 2 : 0));
  if (!put(headParts, 0) || !put(tailParts, ellipsis < 0 ? 2 * headParts.length : tailAt)) return null;
  if (v4 >= 0) {
    out[12] = v4 >>> 24;
    out[13] = (v4 >>> 16) & 255;
    out[14] = (v4 >>> 8) & 255;
    out[15] = v4 & 255;
  }
  return out;
}

/** Whether 16 bytes are an IPv4-mapped IPv6 address (::ffff:0:0/96). */
function isIPv4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/**
 * 16 bytes as RFC 5952 text: lower-case hex without leading zeros, the
 * longest run of two or more zero groups (the first of equal runs) as "::",
 * and an IPv4-mapped address in mixed notation ("::ffff:10.0.0.1", §5).
 */
export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`an IPv6 address is 16 bytes, got ${bytes.length}`);
  if (isIPv4Mapped(bytes)) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  let bestAt = -1;
  let bestLen = 1; // a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (gs: readonly number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/** The IPv4 address an IPv4-mapped IPv6 address carries ("::ffff:10.0.0.1" -> "10.0.0.1"); any other text as it is. */
export function unmapIPv4(text: string): string {
  const b = text.includes(':') ? parseIPv6(text, 'decimal') : null;
  return b !== null && isIPv4Mapped(b) ? `${b[12]}.${b[13]}.${b[14]}.${b[15]}` : text;
}

// ---------------------------------------------------------------------------
// Either family

/** An address of either family as bytes, or null when `text` is not one. */
export function parseIP(text: string, leadingZeros: LeadingZeros): IPAddress | null {
  if (text.includes(':')) {
    const bytes = parseIPv6(text, leadingZeros);
    return bytes === null ? null : { family: 'IPv6', bytes };
  }
  const n = parseIPv4(text, leadingZeros);
  if (n < 0) return null;
  return { family: 'IPv4', bytes: Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255) };
}

/** Canonical text: a dotted quad without leading zeros, or RFC 5952. */
export function formatIP(ip: IPAddress): string {
  if (ip.family === 'IPv6') return formatIPv6(ip.bytes);
  const [a, b, c, d] = ip.bytes;
  return `${a}.${b}.${c}.${d}`;
}

/** The canonical text of an address of either family, or null when `text` is not one. */
export function canonicalIP(text: string, leadingZeros: LeadingZeros): string | null {
  if (!text.includes(':')) {
    // IPv4 without the bytes object (compile canonicalizes every ClusterIP): the text itself when it is canonical.
    const n = parseIPv4(text, leadingZeros);
    return n < 0 ? null : hasLeadingZero(text) ? formatIPv4(n) : text;
  }
  const ip = parseIP(text, leadingZeros);
  return ip === null ? null : formatIP(ip);
}

/** True for 0.0.0.0 and :: (any spelling), the addresses that mean "any". */
export function isUnspecifiedIP(text: string): boolean {
  const ip = parseIP(text, 'decimal');
  return ip?.bytes.every((b) => b === 0) ?? false;
}

// ---------------------------------------------------------------------------
// CIDRs

export interface Cidr {
  readonly family: IPFamily;
  /** The address as written (host bits may be set, as Kubernetes and kube-proxy allow). */
  readonly ip: string;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** "address/prefix" with a prefix length that fits the family, or null. The leading-zero rule applies to the prefix too. */
export function parseCidr(text: string, leadingZeros: LeadingZeros): Cidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  const addr = parseIP(ip, leadingZeros);
  const syntax = leadingZeros === 'reject' ? /^(0|[1-9][0-9]{0,2})$/ : /^[0-9]{1,3}$/;
  if (addr === null || !syntax.test(bits)) return null;
  const prefix = Number(bits);
  if (prefix > addr.bytes.length * 8) return null;
  return { family: addr.family, ip, bytes: addr.bytes, prefix };
}

/** Whether `ip` is in `cidr`: same family, and the first `prefix` bits equal. */
export function cidrContains(cidr: Cidr, ip: IPAddress): boolean {
  if (cidr.family !== ip.family) return false;
  const whole = cidr.prefix >>> 3;
  for (let i = 0; i < whole; i++) if (cidr.bytes[i] !== ip.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (((cidr.bytes[whole] as number) ^ (ip.bytes[whole] as number)) & mask) === 0;
}

// ---------------------------------------------------------------------------
// host:port

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

/** kube-proxy's AppendPortIfNeeded: a bare IP (leading zeros read as decimal) gets the port; anything else is returned as is. */
export function appendPortIfNeeded(addr: string, port: number): string {
  if (splitHostPort(addr).ok) return addr;
  const family = ipFamily(addr, 'decimal');
  if (family === 'IPv4') return `${addr}:${port}`;
  if (family === 'IPv6') return `[${addr}]:${port}`;
  return addr;
}
