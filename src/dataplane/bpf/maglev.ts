// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4): the lookup table
// of a frontend's scope, `m` entries (a prime), each naming one backend.
// Each backend has a permutation of 0..m-1 (offset and skip from two hashes
// of its identity); backends take turns claiming their next unclaimed entry
// until the table is full, so each gets about m/N entries and removing one
// of N moves about 1/N of the entries (those it held, and few others).
// Pure and deterministic from the identities alone (address, port,
// protocol: never ids or the local flag), so every node computes the same
// table for the same backends and sends a flow to the same backend.
// The programs hash a new connection's 5-tuple to an entry (bpf/lib/lb.h).

import { createHash } from 'node:crypto';

/** The default table size (Cilium's too): a prime well above 100 × a Service's usual backend count. */
export const MAGLEV_DEFAULT_M = 16381;
/** The largest table size accepted (entries per table; memory is about 64 bytes per entry). */
export const MAGLEV_MAX_M = 131071;

/** offset in 0..m-1 and skip in 1..m-1 of a backend, from SHA-256 of its identity. */
export function permutation(identity: string, m: number): { offset: number; skip: number } {
  const h = createHash('sha256').update(identity).digest();
  return { offset: h.readUInt32BE(0) % m, skip: (h.readUInt32BE(4) % (m - 1)) + 1 };
}

/**
 * The lookup table: entry -> index into `identities` (which must be
 * unique). Empty without identities. Each identity's permutation is
 * offset, offset + skip, offset + 2 skip, ... (mod m); with m prime every
 * skip walks all entries. Backends take their turns in the string order of
 * their identities, whatever the order given, so the table depends on the
 * set alone.
 */
export function maglevTable(identities: readonly string[], m: number): Int32Array {
  if (!isPrime(m)) throw new RangeError(`Maglev table size ${m} is not a prime`);
  const n = identities.length;
  const table = new Int32Array(n === 0 ? 0 : m).fill(-1);
  if (n === 0) return table;
  const order = identities.map((_, i) => i).sort((a, b) => ((identities[a] as string) < (identities[b] as string) ? -1 : 1));
  const perms = order.map((i) => permutation(identities[i] as string, m));
  const next = perms.map((p) => p.offset); // the entry each backend tries next
  let filled = 0;
  for (;;) {
    for (let k = 0; k < n; k++) {
      const p = perms[k] as { offset: number; skip: number };
      let c = next[k] as number;
      while (table[c] !== -1) c = (c + p.skip) % m;
      table[c] = order[k] as number;
      next[k] = (c + p.skip) % m;
      if (++filled === m) return table;
    }
  }
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}
