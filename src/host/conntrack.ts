// The kernel's connection tracking table as /proc/net/nf_conntrack shows it
// (CONFIG_NF_CONNTRACK_PROCFS, this network namespace's view): each flow's
// original and reply tuples. Read-only; nothing here deletes or flushes.
//
//   ipv4     2 tcp      6 431999 ESTABLISHED src=10.244.1.10 dst=10.96.0.60 sport=40000 dport=7000
//            src=10.244.2.11 dst=10.244.1.10 sport=7070 dport=40000 [ASSURED] mark=0 zone=0 use=2
//
// A flow whose reply source differs from its original destination was
// destination-NATed by the kernel (kube-proxy's DNAT rules, or IPVS).

import { readFileSync } from 'node:fs';

export interface Tuple {
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
}

export interface ConntrackEntry {
  readonly family: 'IPv4' | 'IPv6';
  /** tcp, udp, sctp, icmp, ... */
  readonly proto: string;
  /** TCP (and SCTP) state as printed (ESTABLISHED, TIME_WAIT, ...); '' for others. */
  readonly state: string;
  readonly original: Tuple;
  readonly reply: Tuple;
}

function tupleAt(fields: readonly string[], from: number): { tuple: Tuple; next: number } | null {
  const kv = new Map<string, string>();
  let i = from;
  for (; i < fields.length && kv.size < 4; i++) {
    const m = /^(src|dst|sport|dport)=(.*)$/.exec(fields[i] as string);
    if (m === null) continue;
    if (kv.has(m[1] as string)) break;
    kv.set(m[1] as string, m[2] as string);
  }
  const [src, dst, sport, dport] = ['src', 'dst', 'sport', 'dport'].map((k) => kv.get(k));
  if (!src || !dst || !sport || !dport) return null;
  return { tuple: { src, dst, sport: Number(sport), dport: Number(dport) }, next: i };
}

/** Entries with ports (TCP, UDP, SCTP, ...), from the text of /proc/net/nf_conntrack; other lines are skipped. */
export function parseConntrack(text: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || (f[0] !== 'ipv4' && f[0] !== 'ipv6')) continue;
    const proto = f[2] as string;
    const state = /^[A-Z_]+$/.test(f[5] ?? '') ? (f[5] as string) : '';
    const orig = tupleAt(f, 5);
    if (orig === null) continue;
    const reply = tupleAt(f, orig.next);
    if (reply === null) continue;
    out.push({ family: f[0] === 'ipv4' ? 'IPv4' : 'IPv6', proto, state, original: orig.tuple, reply: reply.tuple });
  }
  return out;
}

/** This namespace's conntrack table; [] when the kernel does not show it. */
export function readConntrack(path = '/proc/net/nf_conntrack'): ConntrackEntry[] {
  try {
    return parseConntrack(readFileSync(path, 'utf8'));
  } catch {
    return [];
  }
}
