// Session affinity clean-up: the programs write sy_aff4_v2 / sy_aff6_v2
// (svc_id, client address -> backend id, last use) and ignore an entry whose
// backend is no longer one of the frontend's (sy_aff_be_v2) or whose timeout
// passed; the LRU evicts the rest only when a map is full. After a sync the
// daemon deletes the entries that can never be used again: those naming a
// backend their frontend lost, and those of frontends that lost affinity or
// went away (their svc_id may be handed to another frontend later). Expired
// entries are left to the LRU: a client that comes back replaces its own.
// Everything here but affinityPass is pure, for unit tests.

import { type AffKey, type AffValue, encode, MAPS } from './layout.ts';
import { affinityMembers, type FrontendKey, type ProgrammedService, type ProgrammedState } from './state.ts';
import { type CtMapAccess, DELETE_CHUNK } from './ct-gc.ts';

/** svc_id -> the backend ids its affinity entries may name (both scopes); an empty set: none may. */
export type AffinityMembers = ReadonlyMap<number, ReadonlySet<number>>;

/** The backend ids a frontend's affinity entries may name: its affinity scopes' backends (empty without affinity). */
export function serviceMembers(svc: ProgrammedService): Set<number> {
  return new Set([...affinityMembers(svc.internal), ...affinityMembers(svc.external)]);
}

/**
 * What a plan changed for affinity: the svc_ids of `touched` frontends that
 * had affinity members before, mapped to the members they keep (an empty
 * set when the frontend lost affinity, or went, or its svc_id changed).
 * Only frontends that lost a member are listed; null when none did.
 */
export function lostMembers(touched: readonly FrontendKey[], before: ProgrammedState, after: ProgrammedState): Map<number, Set<number>> | null {
  let out: Map<number, Set<number>> | null = null;
  for (const key of touched) {
    const old = before.services.get(key);
    if (old === undefined) continue;
    const had = serviceMembers(old);
    if (had.size === 0) continue;
    const cur = after.services.get(key);
    const keep = cur === undefined || cur.svcId !== old.svcId ? new Set<number>() : serviceMembers(cur);
    if ([...had].every((id) => keep.has(id))) continue;
    out ??= new Map();
    out.set(old.svcId, keep);
  }
  return out;
}

/** Every live frontend with affinity and its members: for a full pass (the first sync after a start). */
export function allMembers(state: ProgrammedState): Map<number, Set<number>> {
  const out = new Map<number, Set<number>>();
  state.services.forEach((svc) => {
    const m = serviceMembers(svc);
    if (m.size > 0) out.set(svc.svcId, m);
  });
  return out;
}

/**
 * The affinity entries to delete. members lists the frontends checked: an
 * entry of one of them naming a backend outside its set goes. With `all`, an
 * entry of a svc_id not listed goes too (no live frontend with affinity has
 * that id); without, it is left alone.
 */
export function staleAffinityKeys(entries: Iterable<readonly [AffKey, AffValue]>, members: AffinityMembers, all: boolean): AffKey[] {
  const out: AffKey[] = [];
  for (const [k, v] of entries) {
    const m = members.get(k.svcId);
    if (m === undefined ? all : !m.has(v.backendId)) out.push(k);
  }
  return out;
}

export interface AffinityPassResult {
  /** Entries dumped, both maps. */
  readonly scanned: number;
  readonly deleted: number;
  readonly durationMs: number;
}

/** Dumps both affinity maps and deletes the stale entries (staleAffinityKeys); undecodable entries are left alone. */
export async function affinityPass(
  maps: { readonly aff4: CtMapAccess; readonly aff6: CtMapAccess },
  members: AffinityMembers,
  all: boolean,
): Promise<AffinityPassResult> {
  const started = performance.now();
  let scanned = 0;
  let deleted = 0;
  for (const m of ['aff4', 'aff6'] as const) {
    const def = MAPS[m];
    const raw = await maps[m].dump();
    scanned += raw.length;
    const decoded: Array<[AffKey, AffValue]> = [];
    for (const [k, v] of raw) {
      try {
        decoded.push([def.keyCodec.decode(k), def.valueCodec.decode(v)]);
      } catch {
        // not ours to judge
      }
    }
    const keys = staleAffinityKeys(decoded, members, all).map((k) => encode(def.keyCodec, k));
    for (let i = 0; i < keys.length; i += DELETE_CHUNK) await maps[m].delete(keys.slice(i, i + DELETE_CHUNK));
    deleted += keys.length;
  }
  return { scanned, deleted, durationMs: performance.now() - started };
}
