// diff: (DesiredState, ProgrammedState) -> Plan, the ordered map operations
// that take the kernel from what is programmed to what is desired, and the
// ProgrammedState that results. Pure and deterministic: frontends are
// visited in a fixed order, backends in slot order, ids are the lowest
// unused (and not quarantined), so the same inputs give the same ops.
//
// Per frontend and scope (see sy_maps.h for the generation scheme):
//   unchanged (same backend ids in the same slots, same action and flags):
//     no ops;
//   only action/flags changed: rewrite the master alone (same gen, slots);
//   new or backends changed: new backends, slots of the other generation,
//     the master flip, then the old generation's slots;
//   removed: the masters first (internal, then external), then their slots.
// An external master is written before the internal master that sends
// clients to it, and deleted after the internal master stopped doing so.
// Source ranges are added before the master and removed after it; VIPs are
// refcounted by the ClusterIP frontends using them, added after the masters
// and removed before them (finishVips).
// Backends are refcounted by live slots across all frontends of a family
// and deleted last, once nothing points at them. Freed backend ids and
// svc_ids are quarantined for ID_QUARANTINE_MS (state.ts) before reuse.
// Session affinity (SY_SVC_F_AFFINITY): every backend of such a scope has a
// sy_aff_be_v2 entry (svc_id, backend id, scope), written with the new slots
// (phase 2, before the master that uses them) and deleted with the old ones
// (phase 4), so the programs' "still one of its backends?" check never
// misses a live backend; the affinity entries of the backends a frontend
// lost are the daemon's to delete after the plan (affinity.ts).
// Maglev (SY_SVC_F_MAGLEV): a scope's table (maglev.ts, m entries of
// sy_maglev_v2 under its svc_id, scope and slot generation) is written and
// deleted with its slots: a new table comes with the other generation's
// slots (a change of backends or of m always flips), the old one goes with
// the old slots.
// Traffic counters (sy_svc_cnt_v2, sy_be_cnt*_v2) follow the ids: the
// datapath creates an id's entry on its first packet; a zeroed entry is
// written only when an id is handed out again (phase 1, before anything
// names it, so a reused id starts from zero; CounterFresh), and the entry
// is deleted with the freed id (the frontend's with its masters, the
// backend's with the backend).
//
// Capacity: a frontend whose new entries do not fit a map (counting the
// entries of the old generation that live until phase 4) is left as it is
// (or left out), reported as a problem naming its Service, and retried by
// every later diff (ProgrammedState.deferred). Everything that fits is
// programmed; an overflow never removes what is there.

import {
  capacityOf,
  type Gen,
  type MapName,
  type ProgrammedMapName,
  SY_ACT_FORWARD,
  SY_SCOPE_EXTERNAL,
  SY_SCOPE_INTERNAL,
  SY_SVC_F_AFFINITY,
  SY_SVC_F_CLUSTER_IP,
  SY_VIP_F_CLUSTER_IP,
  type Scope,
  srcRangeKey,
  type SvcKey,
  type SvcValue,
  type Traffic,
  ZERO_TRAFFIC,
} from './layout.ts';
import { CowMap, type CowMapEditor, type CowVecEditor, type IdSetEditor } from '../../util/cow.ts';
import type { IPFamily } from '../../model/types.ts';
import {
  affinityMembers,
  FAMILIES,
  maglevEntries,
  ID_QUARANTINE_MS,
  l4Key,
  PHASE_BACKEND_DELETE,
  PHASE_BACKEND_UPDATE,
  PHASE_MASTER_UPDATE,
  PHASE_NAMES,
  PHASE_SLOT_UPDATE,
  PHASE_SVC_DELETE,
} from './state.ts';
import type {
  BackendAddr,
  BackendKey,
  CounterFresh,
  DesiredScope,
  DesiredService,
  DesiredState,
  DiffOptions,
  FamilyBackends,
  FrontendKey,
  L4Addr,
  Op,
  Plan,
  Problem,
  ProgrammedBackend,
  ProgrammedScope,
  ProgrammedService,
  ProgrammedState,
  Quarantined,
} from './state.ts';
import { formatBackendKey } from './state.ts';
import { maglevTable } from './maglev.ts';

/**
 * Plans the changes for the frontends in `scope` ('all' or undefined: every
 * frontend desired or programmed, so programmed-but-not-desired ones are
 * removed), plus the frontends earlier plans deferred. Frontends outside
 * are left as they are even if they differ.
 */
export function diff(desired: DesiredState, current: ProgrammedState, scope: ReadonlySet<FrontendKey> | 'all' = 'all', opts: DiffOptions = {}): Plan {
  const removals: FrontendKey[] = [];
  const updates: FrontendKey[] = [];
  const additions: FrontendKey[] = [];
  const seen = new Set<FrontendKey>();
  const visit = (key: FrontendKey): void => {
    if (seen.has(key)) return;
    seen.add(key);
    const want = desired.services.get(key);
    const have = current.services.get(key);
    if (want === undefined) {
      if (have !== undefined) removals.push(key);
    } else if (have === undefined) additions.push(key);
    else if (!sameService(want, have)) updates.push(key);
  };
  if (scope === 'all') {
    desired.services.forEach((_v, key) => visit(key));
    current.services.forEach((_v, key) => visit(key));
  } else {
    scope.forEach(visit);
  }
  current.deferred.forEach(visit);
  removals.sort();
  updates.sort();
  additions.sort();

  const plan = new PlanBuilder(current, opts);
  for (const key of removals) plan.remove(key, current.services.get(key) as ProgrammedService);
  for (const key of [...updates, ...additions]) plan.write(key, desired.services.get(key) as DesiredService, current.services.get(key));
  return plan.finish();
}

function sameKeys(a: readonly BackendKey[], b: readonly BackendKey[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** svc map entries a scope adds: its master if new, its slots if new or changed. */
function scopeEntries(want: DesiredScope, have: ProgrammedScope | null): number {
  if (have === null) return 1 + want.backendKeys.length;
  return sameKeys(want.backendKeys, have.backendKeys) ? 0 : want.backendKeys.length;
}

/** sy_aff_be_v2 entries a scope may add: at most every backend new to the membership (an upper bound). */
function affinityNeed(want: DesiredScope, have: ProgrammedScope | null): number {
  if ((want.flags & SY_SVC_F_AFFINITY) === 0) return 0;
  return have === null || (have.flags & SY_SVC_F_AFFINITY) === 0 || !sameKeys(want.backendKeys, have.backendKeys) ? want.backendKeys.length : 0;
}

/** sy_maglev_v2 entries a scope adds: a new table when its backends or size change. */
function maglevNeed(want: DesiredScope, have: ProgrammedScope | null): number {
  if (want.maglevM === 0 || want.backendKeys.length === 0) return 0;
  return have === null || have.maglevM !== want.maglevM || !sameKeys(want.backendKeys, have.backendKeys) ? want.maglevM : 0;
}

function sameScope(want: DesiredScope | null, have: ProgrammedScope | null): boolean {
  if (want === null || have === null) return want === have;
  return (
    want.action === have.action &&
    want.flags === have.flags &&
    want.affinityTimeoutS === have.affinityTimeoutS &&
    want.maglevM === have.maglevM &&
    sameKeys(want.backendKeys, have.backendKeys)
  );
}

function sameRanges(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

function sameService(want: DesiredService, have: ProgrammedService): boolean {
  return sameScope(want.internal, have.internal) && sameScope(want.external, have.external) && sameRanges(want.sourceRanges, have.sourceRanges);
}

const SVC_MAP = { IPv4: 'svc4', IPv6: 'svc6' } as const;
const BACKEND_MAP = { IPv4: 'backend4', IPv6: 'backend6' } as const;
const VIP_MAP = { IPv4: 'vip4', IPv6: 'vip6' } as const;
const SRCRANGE_MAP = { IPv4: 'srcrange4', IPv6: 'srcrange6' } as const;
const BECNT_MAP = { IPv4: 'becnt4', IPv6: 'becnt6' } as const;

function svcKey(f: L4Addr, scope: Scope, gen: Gen, slot: number): SvcKey {
  return { addr: f.addr, port: f.port, proto: f.proto, scope, slot, gen };
}

function masterValue(
  sc: { action: ProgrammedScope['action']; flags: number; gen: Gen; affinityTimeoutS: number; maglevM: number },
  count: number,
  svcId: number,
): SvcValue {
  return { count, gen: sc.gen, action: sc.action, backendId: 0, svcId, flags: sc.flags, affinityTimeoutS: sc.affinityTimeoutS, maglevM: sc.maglevM };
}

function slotValue(backendId: number): SvcValue {
  return { count: 0, gen: 0, action: SY_ACT_FORWARD, backendId, svcId: 0, flags: 0, affinityTimeoutS: 0, maglevM: 0 };
}

/** Editors over one family's backends. */
interface FamilyEdit {
  readonly current: FamilyBackends;
  readonly byKey: CowMapEditor<BackendKey, ProgrammedBackend>;
  readonly byId: CowVecEditor<ProgrammedBackend>;
  readonly ids: IdSetEditor;
  readonly quarantine: Quarantined[];
  /** Net change of live-slot references per backend id. */
  readonly refDelta: Map<number, number>;
}

class PlanBuilder {
  private readonly current: ProgrammedState;
  private readonly phases: Op[][] = PHASE_NAMES.map(() => []);
  private readonly touched: FrontendKey[] = [];
  private readonly problems: Problem[] = [];
  private readonly services: CowMapEditor<FrontendKey, ProgrammedService>;
  private readonly svcIds: IdSetEditor;
  private readonly svcQuarantine: Quarantined[];
  private readonly counterFresh: Record<keyof CounterFresh, number>;
  private readonly fam: Record<IPFamily, FamilyEdit>;
  /** VIP refcounts, copy-on-write: a plan copies only the shards it changes, not every ClusterIP. */
  private readonly vips: CowMapEditor<string, number>;
  /** Addresses whose VIP count this plan changed, with their family. */
  private readonly vipFamily = new Map<string, IPFamily>();
  private readonly deferred: Set<FrontendKey>;
  private readonly entries: Record<ProgrammedMapName, number>;
  /** Entries this plan adds before it deletes any (phases 1-3): what must fit. */
  private readonly peak: Record<ProgrammedMapName, number>;
  private readonly freedSvcIds: number[] = [];
  private readonly now: number;
  private readonly opts: DiffOptions;
  /** Maglev tables computed by this plan, by "m identities...": frontends sharing backends share the work. */
  private readonly tables: Map<string, Int32Array>;
  /** overflow()'s lookups of the internal scope's keys (one-scope frontends), for write() to hand to writeScope. */
  private found: (ProgrammedBackend | undefined)[] | null = null;

  constructor(current: ProgrammedState, opts: DiffOptions) {
    this.current = current;
    this.opts = opts;
    this.now = opts.nowMs ?? 0;
    this.services = current.services.edit();
    this.svcIds = current.svcIds.edit();
    this.svcQuarantine = release(current.svcQuarantine, this.svcIds, this.now);
    const fam = {} as Record<IPFamily, FamilyEdit>;
    for (const family of FAMILIES) {
      const c = current.backends[family];
      const ids = c.ids.edit();
      fam[family] = {
        current: c,
        byKey: c.byKey.edit(),
        byId: c.byId.edit(),
        ids,
        quarantine: release(c.quarantine, ids, this.now),
        refDelta: new Map(),
      };
    }
    this.fam = fam;
    this.vips = (current.vips instanceof CowMap ? current.vips : CowMap.from(current.vips)).edit();
    this.deferred = new Set(current.deferred);
    this.entries = { ...current.entries };
    this.tables = new Map();
    this.peak = { ...current.entries };
    this.counterFresh = { ...current.counterFresh };
  }

  /** New frontend, or one that changed: admitted if its new entries fit. */
  write(key: FrontendKey, want: DesiredService, have: ProgrammedService | undefined): void {
    this.found = null;
    const full = this.overflow(want, have);
    const found = this.found as (ProgrammedBackend | undefined)[] | null;
    this.found = null;
    if (full !== null) {
      this.deferred.add(key);
      const what = have === undefined ? 'not programmed' : 'not updated (the programmed version stays)';
      this.problems.push({ owner: want.owner, field: 'frontend', message: `${key} ${what}: ${full}` });
      return;
    }
    this.deferred.delete(key);
    const family = want.family;
    const f = want.frontend;
    let svcId = have?.svcId;
    if (svcId === undefined) {
      svcId = this.svcIds.allocate();
      if (this.reused('svc', svcId)) (this.phases[PHASE_BACKEND_UPDATE] as Op[]).push(this.op('svccnt', 'update', svcId, ZERO_TRAFFIC));
    }
    const rangesAdded = want.sourceRanges.filter((r) => !(have?.sourceRanges ?? []).includes(r));
    const rangesGone = (have?.sourceRanges ?? []).filter((r) => !want.sourceRanges.includes(r));
    for (const r of rangesAdded) this.srcRange(family, svcId, r, 'update', PHASE_BACKEND_UPDATE);
    if (isClusterIP(want.internal.flags) && !(have !== undefined && isClusterIP(have.internal.flags))) this.vipRef(family, f.addr, 1);

    // An external master is in place before the internal master sends clients to it.
    const masters: Op[] = [];
    const external = want.external === null ? null : this.writeScope(family, f, SY_SCOPE_EXTERNAL, want.external, have?.external ?? null, svcId, masters);
    const internal = this.writeScope(family, f, SY_SCOPE_INTERNAL, want.internal, have?.internal ?? null, svcId, masters, found);
    (this.phases[PHASE_MASTER_UPDATE] as Op[]).push(...masters);
    if (have?.external && want.external === null) this.dropScope(family, f, SY_SCOPE_EXTERNAL, have.external, true, svcId);
    this.members(svcId, SY_SCOPE_INTERNAL, have?.internal ?? null, internal);
    this.members(svcId, SY_SCOPE_EXTERNAL, have?.external ?? null, external);

    for (const r of rangesGone) this.srcRange(family, svcId, r, 'delete', PHASE_SVC_DELETE);
    if (have !== undefined && isClusterIP(have.internal.flags) && !isClusterIP(want.internal.flags)) this.vipRef(family, f.addr, -1);
    this.services.set(key, { family, frontend: f, svcId, internal, external, sourceRanges: want.sourceRanges });
    this.touched.push(key);
  }

  /** Removed frontend: masters first (packets stop using it), then slots, ranges, VIP. */
  remove(key: FrontendKey, have: ProgrammedService): void {
    const family = have.family;
    const f = have.frontend;
    const del = this.phases[PHASE_SVC_DELETE] as Op[];
    del.push(this.op(SVC_MAP[family], 'delete', svcKey(f, SY_SCOPE_INTERNAL, 0, 0)));
    this.entries[SVC_MAP[family]]--;
    if (have.external !== null) this.dropScope(family, f, SY_SCOPE_EXTERNAL, have.external, true, have.svcId);
    this.dropSlots(family, f, SY_SCOPE_INTERNAL, have.internal, have.svcId);
    for (const r of have.sourceRanges) this.srcRange(family, have.svcId, r, 'delete', PHASE_SVC_DELETE);
    this.members(have.svcId, SY_SCOPE_INTERNAL, have.internal, null);
    this.members(have.svcId, SY_SCOPE_EXTERNAL, have.external, null);
    del.push(this.op('svccnt', 'delete', have.svcId));
    if (isClusterIP(have.internal.flags)) this.vipRef(family, f.addr, -1);
    this.services.delete(key);
    this.deferred.delete(key);
    this.freedSvcIds.push(have.svcId);
    this.touched.push(key);
  }

  finish(): Plan {
    this.finishVips();
    const backends = {} as Record<IPFamily, FamilyBackends>;
    for (const family of FAMILIES) backends[family] = this.finishFamily(family);
    const svcQuarantine = this.svcQuarantine;
    for (const id of this.freedSvcIds) svcQuarantine.push({ id, until: this.now + ID_QUARANTINE_MS });
    this.touched.sort();
    this.problems.sort((a, b) => (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : a.message < b.message ? -1 : 1));
    return {
      phases: this.phases,
      touched: this.touched,
      problems: this.problems,
      next: {
        services: this.services.done(),
        backends,
        svcIds: this.svcIds.done(),
        svcQuarantine,
        vips: this.vips.done(),
        deferred: this.deferred,
        entries: this.entries,
        counterFresh: this.counterFresh,
      },
    };
  }

  // -------------------------------------------------------------------------

  /**
   * null when the frontend's new entries fit every map, else why not.
   * Called once per frontend a plan writes (10k+ in a full sync): counts
   * without building objects per frontend.
   */
  private overflow(want: DesiredService, have: ProgrammedService | undefined): string | null {
    const family = want.family;
    const fe = this.fam[family];
    const hi = have?.internal ?? null;
    const he = have?.external ?? null;
    let svc = scopeEntries(want.internal, hi);
    let affbe = affinityNeed(want.internal, hi);
    let maglev = maglevNeed(want.internal, hi);
    let backends: number;
    if (want.external === null) {
      // Each key looked up once: writeScope takes these instead of looking again.
      const keys = want.internal.backendKeys;
      const found = new Array<ProgrammedBackend | undefined>(keys.length);
      backends = 0;
      for (let i = 0; i < keys.length; i++) {
        const b = fe.byKey.get(keys[i] as BackendKey);
        found[i] = b;
        if (b === undefined) backends++;
      }
      this.found = found;
    } else {
      // Both scopes: a key new to the family counts once.
      svc += scopeEntries(want.external, he);
      affbe += affinityNeed(want.external, he);
      maglev += maglevNeed(want.external, he);
      const newKeys = new Set<BackendKey>();
      for (const k of want.internal.backendKeys) if (!fe.byKey.has(k)) newKeys.add(k);
      for (const k of want.external.backendKeys) if (!fe.byKey.has(k)) newKeys.add(k);
      backends = newKeys.size;
    }
    const ranges = want.sourceRanges.length === 0 ? 0 : want.sourceRanges.filter((r) => !(have?.sourceRanges ?? []).includes(r)).length;
    const vip = isClusterIP(want.internal.flags) && !this.vips.has(want.frontend.addr) ? 1 : 0;
    if (
      !(
        this.fits(SVC_MAP[family], svc) &&
        this.fits(BACKEND_MAP[family], backends) &&
        this.fits(SRCRANGE_MAP[family], ranges) &&
        this.fits(VIP_MAP[family], vip) &&
        this.fits('affbe', affbe) &&
        this.fits('maglev', maglev)
      )
    ) {
      const full: string[] = [];
      for (const [m, n] of [
        [SVC_MAP[family], svc],
        [BACKEND_MAP[family], backends],
        [SRCRANGE_MAP[family], ranges],
        [VIP_MAP[family], vip],
        ['affbe', affbe],
        ['maglev', maglev],
      ] as const) {
        if (!this.fits(m, n)) full.push(`${m} holds ${this.peak[m]} of ${capacityOf(this.opts.capacities ?? {}, m)} entries, this frontend needs ${n} more`);
      }
      return `map full: ${full.join('; ')}`;
    }
    this.peak[SVC_MAP[family]] += svc;
    this.peak[BACKEND_MAP[family]] += backends;
    this.peak[SRCRANGE_MAP[family]] += ranges;
    this.peak[VIP_MAP[family]] += vip;
    this.peak.affbe += affbe;
    this.peak.maglev += maglev;
    return null;
  }

  /** Whether n more entries fit map m, counting what this plan adds before it deletes. */
  private fits(m: ProgrammedMapName, n: number): boolean {
    return n === 0 || this.peak[m] + n <= capacityOf(this.opts.capacities ?? {}, m);
  }

  /** Writes one scope of a frontend: a flip to new slots, or the master alone. Pushes its master to `masters`. */
  private writeScope(
    family: IPFamily,
    f: L4Addr,
    scope: Scope,
    want: DesiredScope,
    have: ProgrammedScope | null,
    svcId: number,
    masters: Op[],
    found: readonly (ProgrammedBackend | undefined)[] | null = null,
  ): ProgrammedScope {
    const svcMap = SVC_MAP[family];
    if (have !== null && sameKeys(want.backendKeys, have.backendKeys) && want.maglevM === have.maglevM) {
      const next: ProgrammedScope = { ...have, action: want.action, flags: want.flags, affinityTimeoutS: want.affinityTimeoutS };
      if (want.action !== have.action || want.flags !== have.flags || want.affinityTimeoutS !== have.affinityTimeoutS)
        masters.push(this.op(svcMap, 'update', svcKey(f, scope, 0, 0), masterValue(next, have.backendIds.length, svcId)));
      return next;
    }
    const gen: Gen = have === null ? 0 : have.gen === 0 ? 1 : 0;
    const ids = new Array<number>(want.backends.length);
    const slots = this.phases[PHASE_SLOT_UPDATE] as Op[];
    const byKey = this.fam[family].byKey;
    for (let i = 0; i < ids.length; i++) {
      const k = want.backendKeys[i] as BackendKey;
      const id = this.refBackend(family, k, want.backends[i] as BackendAddr, found !== null ? found[i] : byKey.get(k));
      ids[i] = id;
      slots.push(this.op(svcMap, 'update', svcKey(f, scope, gen, i + 1), slotValue(id)));
    }
    this.entries[svcMap] += ids.length + (have === null ? 1 : 0);
    const next: ProgrammedScope = {
      gen,
      action: want.action,
      flags: want.flags,
      affinityTimeoutS: want.affinityTimeoutS,
      maglevM: want.maglevM,
      backendIds: ids,
      backendKeys: want.backendKeys,
    };
    if (maglevEntries(next) > 0) this.writeTable(svcId, scope, gen, want.maglevM, want.backends, ids);
    masters.push(this.op(svcMap, 'update', svcKey(f, scope, 0, 0), masterValue(next, ids.length, svcId)));
    if (have !== null) this.dropSlots(family, f, scope, have, svcId);
    return next;
  }

  /** Deletes a scope's master (when `master`) and slots. */
  private dropScope(family: IPFamily, f: L4Addr, scope: Scope, have: ProgrammedScope, master: boolean, svcId: number): void {
    if (master) {
      (this.phases[PHASE_SVC_DELETE] as Op[]).push(this.op(SVC_MAP[family], 'delete', svcKey(f, scope, 0, 0)));
      this.entries[SVC_MAP[family]]--;
    }
    this.dropSlots(family, f, scope, have, svcId);
  }

  /**
   * Deletes a programmed generation's slots and drops their references.
   * Slots adopt found missing (id 0) are not deleted: the kernel answers
   * ENOENT, and a batch delete stops at the first error.
   */
  private dropSlots(family: IPFamily, f: L4Addr, scope: Scope, have: ProgrammedScope, svcId: number): void {
    const deletes = this.phases[PHASE_SVC_DELETE] as Op[];
    const m = maglevEntries(have);
    for (let index = 0; index < m; index++) deletes.push(this.op('maglev', 'delete', { svcId, scope, gen: have.gen, index }));
    this.entries.maglev -= m;
    const fe = this.fam[family];
    for (let i = 0; i < have.backendIds.length; i++) {
      const id = have.backendIds[i] as number;
      if (id === 0) continue;
      deletes.push(this.op(SVC_MAP[family], 'delete', svcKey(f, scope, have.gen, i + 1)));
      this.entries[SVC_MAP[family]]--;
      fe.refDelta.set(id, (fe.refDelta.get(id) ?? 0) - 1);
    }
  }

  /**
   * Takes a reference on the backend for a key and returns its id: `b`,
   * what byKey holds for the key (programmed, or created earlier in this
   * plan), or a new backend when there is none.
   */
  private refBackend(family: IPFamily, key: BackendKey, addr: BackendAddr, b: ProgrammedBackend | undefined): number {
    const fe = this.fam[family];
    if (b !== undefined) {
      // Programmed backends are the objects the current state holds; ones this plan made count their refs in place.
      if (fe.current.byId.get(b.id) === b) fe.refDelta.set(b.id, (fe.refDelta.get(b.id) ?? 0) + 1);
      else (b as { refs: number }).refs++;
      return b.id;
    }
    const id = fe.ids.allocate();
    const made: ProgrammedBackend = { id, key, backend: addr, refs: 1 };
    fe.byKey.set(key, made);
    fe.byId.set(id, made);
    this.entries[BACKEND_MAP[family]]++;
    const phase = this.phases[PHASE_BACKEND_UPDATE] as Op[];
    phase.push(this.op(BACKEND_MAP[family], 'update', id, addr));
    if (this.reused(family, id)) phase.push(this.op(BECNT_MAP[family], 'update', id, ZERO_TRAFFIC));
    return id;
  }

  /** Whether a newly allocated id was handed out before (its counter entry is zeroed), else it is fresh (CounterFresh). */
  private reused(space: keyof CounterFresh, id: number): boolean {
    if (id < this.counterFresh[space]) return true;
    this.counterFresh[space] = id + 1;
    return false;
  }

  private finishFamily(family: IPFamily): FamilyBackends {
    const fe = this.fam[family];
    const dead: ProgrammedBackend[] = [];
    let dangling: Map<number, number> | undefined; // copied on first change
    for (const [id, delta] of fe.refDelta) {
      if (delta === 0) continue;
      const b = fe.current.byId.get(id);
      if (b === undefined) {
        // A damaged slot (found by adopt) pointed at a missing backend: release the id with the last one.
        const n = (fe.current.danglingRefs.get(id) ?? 0) + delta;
        dangling ??= new Map(fe.current.danglingRefs);
        if (n > 0) dangling.set(id, n);
        else if (dangling.delete(id)) fe.quarantine.push({ id, until: this.now + ID_QUARANTINE_MS });
        continue;
      }
      if (b.refs + delta > 0) {
        const nb: ProgrammedBackend = { id, key: b.key, backend: b.backend, refs: b.refs + delta };
        fe.byId.set(id, nb);
        if (fe.byKey.get(b.key)?.id === id) fe.byKey.set(b.key, nb);
      } else {
        dead.push(b);
      }
    }
    dead.sort((a, b) => a.id - b.id);
    const deletes = this.phases[PHASE_BACKEND_DELETE] as Op[];
    for (const b of dead) {
      deletes.push(this.op(BACKEND_MAP[family], 'delete', b.id), this.op(BECNT_MAP[family], 'delete', b.id));
      this.entries[BACKEND_MAP[family]]--;
      fe.byId.delete(b.id);
      if (fe.byKey.get(b.key)?.id === b.id) fe.byKey.delete(b.key);
      fe.quarantine.push({ id: b.id, until: this.now + ID_QUARANTINE_MS }); // stays in ids until released
    }
    return { byKey: fe.byKey.done(), byId: fe.byId.done(), ids: fe.ids.done(), danglingRefs: dangling ?? fe.current.danglingRefs, quarantine: fe.quarantine };
  }

  /** A scope's Maglev table for generation `gen`, with the new slots (phase 2): entry -> backend id. */
  private writeTable(svcId: number, scope: Scope, gen: Gen, m: number, backends: readonly BackendAddr[], ids: readonly number[]): void {
    const identities = backends.map(l4Key); // address, port, protocol: the same on every node
    const memo = `${m} ${identities.join(' ')}`;
    let table = this.tables.get(memo);
    if (table === undefined) {
      table = maglevTable(identities, m);
      this.tables.set(memo, table);
    }
    const slots = this.phases[PHASE_SLOT_UPDATE] as Op[];
    for (let index = 0; index < m; index++)
      slots.push(this.op('maglev', 'update', { svcId, scope, gen, index }, { backendId: ids[table[index] as number] as number }));
    this.entries.maglev += m;
  }

  /**
   * sy_aff_be_v2 from one scope's programmed version to the next (null: no
   * such scope): new members with the slots (phase 2), gone ones after the
   * master stopped naming them (phase 4).
   */
  private members(svcId: number, scope: Scope, before: ProgrammedScope | null, after: ProgrammedScope | null): void {
    const had = affinityMembers(before);
    const has = affinityMembers(after);
    if (had.length === 0 && has.length === 0) return;
    const old = new Set(had);
    const now = new Set(has);
    for (const backendId of has) {
      if (old.has(backendId)) continue;
      (this.phases[PHASE_SLOT_UPDATE] as Op[]).push(this.op('affbe', 'update', { svcId, backendId, scope }, { flags: 0 }));
      this.entries.affbe++;
    }
    for (const backendId of had) {
      if (now.has(backendId)) continue;
      (this.phases[PHASE_SVC_DELETE] as Op[]).push(this.op('affbe', 'delete', { svcId, backendId, scope }));
      this.entries.affbe--;
    }
  }

  private vipRef(family: IPFamily, addr: string, delta: 1 | -1): void {
    const n = (this.vips.get(addr) ?? 0) + delta;
    if (n > 0) this.vips.set(addr, n);
    else this.vips.delete(addr);
    this.vipFamily.set(addr, family);
  }

  /**
   * VIP ops from the counts before and after the plan (one address may lose
   * a frontend and gain another in one plan). A VIP without a master for the
   * port drops the packet (DROP_NO_PORT), where before the plan it went on
   * untouched (to kube-proxy's rules, while migrating) or was translated: so
   * a new VIP is written in the phase after its masters, and a VIP no
   * frontend uses goes in the phase before its masters are deleted.
   */
  private finishVips(): void {
    for (const [addr, family] of [...this.vipFamily].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const had = this.current.vips.has(addr);
      const has = this.vips.has(addr);
      if (!had && has) {
        (this.phases[PHASE_SVC_DELETE] as Op[]).push(this.op(VIP_MAP[family], 'update', { addr }, { flags: SY_VIP_F_CLUSTER_IP }));
        this.entries[VIP_MAP[family]]++;
      } else if (had && !has) {
        (this.phases[PHASE_MASTER_UPDATE] as Op[]).push(this.op(VIP_MAP[family], 'delete', { addr }));
        this.entries[VIP_MAP[family]]--;
      }
    }
  }

  private srcRange(family: IPFamily, svcId: number, cidr: string, action: 'update' | 'delete', phase: number): void {
    const key = srcRangeKey(svcId, cidr);
    if (key === null) return; // compile only passes parsed CIDRs
    const m = SRCRANGE_MAP[family];
    (this.phases[phase] as Op[]).push(action === 'update' ? this.op(m, 'update', key, { flags: 0 }) : this.op(m, 'delete', key));
    this.entries[m] += action === 'update' ? 1 : -1;
  }

  private op(map: MapName, action: 'update' | 'delete', key: unknown, value?: unknown): Op {
    return (action === 'update' ? { map, action, key, value } : { map, action, key }) as Op;
  }
}

/** Releases quarantined ids whose time has come; returns the rest (a new array). */
function release(q: readonly Quarantined[], ids: IdSetEditor, now: number): Quarantined[] {
  const keep: Quarantined[] = [];
  for (const e of q) {
    if (e.until <= now) ids.delete(e.id);
    else keep.push(e);
  }
  return keep;
}

function isClusterIP(flags: number): boolean {
  return (flags & SY_SVC_F_CLUSTER_IP) !== 0;
}

// ---------------------------------------------------------------------------
// Text forms, for logs and golden files.

const SCOPE_NAME = ['int', 'ext'] as const;
const ACTION_NAME = ['forward', 'reject', 'drop'] as const;

export function formatSvcKey(k: SvcKey): string {
  const f = `${l4Key(k)} ${SCOPE_NAME[k.scope]}`;
  return k.slot === 0 ? `${f} master${k.gen === 0 ? '' : ` (gen ${k.gen}!)`}` : `${f} gen ${k.gen} slot ${k.slot}`;
}

export function formatSvcValue(k: SvcKey, v: SvcValue): string {
  if (k.slot !== 0) return `backend ${v.backendId}`;
  const affinity = (v.flags & SY_SVC_F_AFFINITY) !== 0 ? ` affinity ${v.affinityTimeoutS}s` : '';
  const maglev = v.maglevM > 0 ? ` maglev ${v.maglevM}` : '';
  return `${ACTION_NAME[v.action]} count ${v.count} gen ${v.gen} flags 0x${v.flags.toString(16).padStart(2, '0')} svc ${v.svcId}${affinity}${maglev}`;
}

/** "0" for zeroed counters, else "fwd 3 pkts 180 B, reply 3 pkts 180 B, 1 conns". */
export function formatTraffic(t: Traffic): string {
  if (t.packets === 0n && t.bytes === 0n && t.replyPackets === 0n && t.replyBytes === 0n && t.conns === 0n) return '0';
  return `fwd ${t.packets} pkts ${t.bytes} B, reply ${t.replyPackets} pkts ${t.replyBytes} B, ${t.conns} conns`;
}

export function formatBackend(b: BackendAddr): string {
  return `${l4Key(b)}${b.flags & 1 ? ' local' : ''}`;
}

export function formatOp(op: Op): string {
  const head = `${op.action} ${op.map}`;
  switch (op.map) {
    case 'svc4':
    case 'svc6':
      return op.action === 'update' ? `${head} ${formatSvcKey(op.key)} = ${formatSvcValue(op.key, op.value)}` : `${head} ${formatSvcKey(op.key)}`;
    case 'backend4':
    case 'backend6':
      return op.action === 'update' ? `${head} ${op.key} = ${formatBackend(op.value)}` : `${head} ${op.key}`;
    case 'vip4':
    case 'vip6':
      return `${head} ${op.key.addr}`;
    case 'srcrange4':
    case 'srcrange6':
      return `${head} svc ${op.key.svcId} ${op.key.addr}/${op.key.prefixlen - 32}`;
    case 'affbe':
      return `${head} svc ${op.key.svcId} ${SCOPE_NAME[op.key.scope]} backend ${op.key.backendId}`;
    case 'maglev':
      return op.action === 'update'
        ? `${head} svc ${op.key.svcId} ${SCOPE_NAME[op.key.scope]} gen ${op.key.gen} [${op.key.index}] = backend ${op.value.backendId}`
        : `${head} svc ${op.key.svcId} ${SCOPE_NAME[op.key.scope]} gen ${op.key.gen} [${op.key.index}]`;
    case 'svccnt':
    case 'becnt4':
    case 'becnt6':
      return op.action === 'update' ? `${head} ${op.key} = ${formatTraffic(op.value)}` : `${head} ${op.key}`;
    default:
      return `${head} ${JSON.stringify(op.key, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`;
  }
}

/** The plan as text: one line per op under a header per non-empty phase. */
export function formatPlan(plan: Plan): string {
  const lines: string[] = [];
  plan.phases.forEach((ops, i) => {
    if (ops.length === 0) return;
    lines.push(`phase ${i + 1} ${PHASE_NAMES[i] ?? '?'}:`);
    for (const op of ops) lines.push(`  ${formatOp(op)}`);
  });
  if (lines.length === 0) lines.push('(no ops)');
  for (const p of plan.problems) lines.push(`problem ${p.owner}: ${p.message}`);
  return `${lines.join('\n')}\n`;
}

/** Every op of a plan, in the order they reach the kernel. */
export function planOps(plan: Plan): Op[] {
  return plan.phases.flat();
}

export { formatBackendKey };
