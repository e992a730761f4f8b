// diff: (DesiredState, ProgrammedState) -> Plan, the ordered map operations
// that take the kernel from what is programmed to what is desired, and the
// ProgrammedState that results. Pure and deterministic: frontends are
// visited in sorted key order, backends in slot order, ids are the lowest
// unused, so the same inputs give the same ops in the same order.
//
// Per frontend (see sy_maps.h for the generation scheme):
//   unchanged (same backend ids in the same slots, same flags): no ops;
//   only flags changed: rewrite the master alone (same gen, same slots);
//   new or backends changed: new backends, slots of the other generation,
//     the master flip, then the old generation's slots;
//   removed: the master first, then its slots.
// Backends are refcounted by live slots across all frontends and deleted
// last, once nothing points at them. Ids freed by a plan are reused only by
// later plans, never within the same one (the old slots still point at them
// until phase 4).

import { l4Key, PHASE_BACKEND_DELETE, PHASE_BACKEND_UPDATE, PHASE_MASTER_UPDATE, PHASE_NAMES, PHASE_SLOT_UPDATE, PHASE_SVC_DELETE } from './state.ts';
import type { CowMapEditor, CowVecEditor, IdSetEditor } from '../../util/cow.ts';
import type {
  BackendKey,
  DesiredService,
  DesiredState,
  FrontendKey,
  L4Addr,
  Op,
  Plan,
  ProgrammedBackend,
  ProgrammedService,
  ProgrammedState,
  SvcKey,
} from './state.ts';

/**
 * Plans the changes for the frontends in `scope` ('all' or undefined: every
 * frontend desired or programmed, so programmed-but-not-desired ones are
 * removed). Frontends outside the scope are left as they are even if they
 * differ; backends are still refcounted across all frontends.
 */
export function diff(desired: DesiredState, current: ProgrammedState, scope: ReadonlySet<FrontendKey> | 'all' = 'all'): Plan {
  // Only frontends that need ops allocate ids, so only they need a fixed
  // (sorted) order: a resync where little changed sorts little.
  const dirty: FrontendKey[] = [];
  const visit = (key: FrontendKey): void => {
    const want = desired.services.get(key);
    const have = current.services.get(key);
    if (want === undefined ? have !== undefined : have === undefined || !sameSlots(want, have) || want.flags !== have.flags) dirty.push(key);
  };
  if (scope === 'all') {
    desired.services.forEach((_v, key) => visit(key));
    current.services.forEach((_v, key) => {
      if (!desired.services.has(key)) visit(key);
    });
  } else {
    scope.forEach(visit);
  }
  dirty.sort();

  const plan = new PlanBuilder(current);
  for (const key of dirty) {
    const want = desired.services.get(key);
    const have = current.services.get(key);
    if (want === undefined) plan.remove(key, have as ProgrammedService);
    else if (have === undefined || !sameSlots(want, have)) plan.write(key, want, have);
    else plan.reflag(key, want, have);
  }
  return plan.finish();
}

/** Whether the programmed slots already hold exactly the desired backends, in order. */
function sameSlots(want: DesiredService, have: ProgrammedService): boolean {
  const a = want.backendKeys;
  const b = have.backendKeys;
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function masterKey(f: L4Addr): SvcKey {
  return { addr: f.addr, port: f.port, proto: f.proto, gen: 0, slot: 0 };
}

class PlanBuilder {
  private readonly current: ProgrammedState;
  private readonly phases: Op[][] = PHASE_NAMES.map(() => []);
  private readonly touched: FrontendKey[] = [];
  private readonly services: CowMapEditor<FrontendKey, ProgrammedService>;
  private readonly backendIds: IdSetEditor;
  private readonly svcIds: IdSetEditor;
  /** The next state's backends. Those this plan creates count their refs in place (nothing else holds them yet). */
  private readonly byKey: CowMapEditor<BackendKey, ProgrammedBackend>;
  private readonly byId: CowVecEditor<ProgrammedBackend>;
  /** Net change of live-slot references per backend id. */
  private readonly refDelta = new Map<number, number>();
  private readonly freedSvcIds: number[] = [];

  constructor(current: ProgrammedState) {
    this.current = current;
    this.services = current.services.edit();
    this.byKey = current.backends.edit();
    this.byId = current.backendsById.edit();
    this.backendIds = current.backendIds.edit();
    this.svcIds = current.svcIds.edit();
  }

  /** New frontend, or changed backends: write the other generation and flip. */
  write(key: FrontendKey, want: DesiredService, have: ProgrammedService | undefined): void {
    const f = want.frontend;
    const gen: 0 | 1 = have === undefined ? 0 : have.gen === 0 ? 1 : 0;
    const svcId = have?.svcId ?? this.svcIds.allocate();
    const ids: number[] = new Array<number>(want.backends.length);
    const slots = this.phases[PHASE_SLOT_UPDATE] as Op[];
    for (let i = 0; i < ids.length; i++) {
      const id = this.refBackend(want.backendKeys[i] as BackendKey, want.backends[i] as L4Addr);
      ids[i] = id;
      slots.push({
        kind: 'svc-update',
        key: { addr: f.addr, port: f.port, proto: f.proto, gen, slot: i + 1 },
        value: { backendId: id, count: 0, gen: 0, flags: 0, svcId: 0 },
      });
    }
    (this.phases[PHASE_MASTER_UPDATE] as Op[]).push({
      kind: 'svc-update',
      key: masterKey(f),
      value: { backendId: 0, count: ids.length, gen, flags: want.flags, svcId },
    });
    if (have !== undefined) this.dropSlots(have);
    this.services.set(key, { frontend: f, svcId, gen, flags: want.flags, backendIds: ids, backendKeys: want.backendKeys });
    this.touched.push(key);
  }

  /** Same slots, new flags: the master alone changes, atomically. */
  reflag(key: FrontendKey, want: DesiredService, have: ProgrammedService): void {
    (this.phases[PHASE_MASTER_UPDATE] as Op[]).push({
      kind: 'svc-update',
      key: masterKey(have.frontend),
      value: { backendId: 0, count: have.backendIds.length, gen: have.gen, flags: want.flags, svcId: have.svcId },
    });
    this.services.set(key, { ...have, flags: want.flags });
    this.touched.push(key);
  }

  /** Removed frontend: master first (packets stop using it), then its slots. */
  remove(key: FrontendKey, have: ProgrammedService): void {
    (this.phases[PHASE_SVC_DELETE] as Op[]).push({ kind: 'svc-delete', key: masterKey(have.frontend) });
    this.dropSlots(have);
    this.services.delete(key);
    this.freedSvcIds.push(have.svcId);
    this.touched.push(key);
  }

  finish(): Plan {
    const byId = this.byId;
    const byKey = this.byKey;
    const dead: ProgrammedBackend[] = [];
    let dangling: Map<number, number> | undefined; // copied on first change
    for (const [id, delta] of this.refDelta) {
      const b = this.current.backendsById.get(id);
      if (delta === 0) continue;
      if (b === undefined) {
        // A damaged slot (found by adopt) pointed at a missing backend: release the id with the last one.
        const n = (this.current.danglingRefs.get(id) ?? 0) + delta;
        dangling ??= new Map(this.current.danglingRefs);
        if (n > 0) dangling.set(id, n);
        else if (dangling.delete(id)) this.backendIds.delete(id);
        continue;
      }
      if (b.refs + delta > 0) {
        const nb: ProgrammedBackend = { id, key: b.key, backend: b.backend, refs: b.refs + delta };
        byId.set(id, nb);
        if (byKey.get(b.key)?.id === id) byKey.set(b.key, nb);
      } else {
        dead.push(b);
      }
    }
    dead.sort((a, b) => a.id - b.id);
    const deletes = this.phases[PHASE_BACKEND_DELETE] as Op[];
    for (const b of dead) {
      deletes.push({ kind: 'backend-delete', id: b.id });
      byId.delete(b.id);
      if (byKey.get(b.key)?.id === b.id) byKey.delete(b.key);
      this.backendIds.delete(b.id);
    }
    for (const id of this.freedSvcIds) this.svcIds.delete(id);
    return {
      phases: this.phases,
      touched: this.touched,
      next: {
        services: this.services.done(),
        backends: byKey.done(),
        backendsById: byId.done(),
        backendIds: this.backendIds.done(),
        svcIds: this.svcIds.done(),
        danglingRefs: dangling ?? this.current.danglingRefs,
      },
    };
  }

  /**
   * Takes a reference on the backend for an address and returns its id: the
   * programmed one, one created earlier in this plan, or a new one.
   */
  private refBackend(key: BackendKey, addr: L4Addr): number {
    const old = this.current.backends.size === 0 ? undefined : this.current.backends.get(key);
    if (old !== undefined) {
      this.ref(old.id, 1);
      return old.id;
    }
    // Not programmed before: in the editor only if this plan created it.
    const made = this.byKey.get(key) as { id: number; refs: number } | undefined;
    if (made !== undefined) {
      made.refs++;
      return made.id;
    }
    const id = this.backendIds.allocate();
    const b: ProgrammedBackend = { id, key, backend: addr, refs: 1 };
    this.byKey.set(key, b);
    this.byId.set(id, b);
    (this.phases[PHASE_BACKEND_UPDATE] as Op[]).push({ kind: 'backend-update', id, backend: addr });
    return id;
  }

  private ref(id: number, delta: number): void {
    this.refDelta.set(id, (this.refDelta.get(id) ?? 0) + delta);
  }

  /**
   * Deletes a programmed generation's slots and drops their references.
   * Slots adopt found missing (id 0) are not deleted: the kernel answers
   * ENOENT, and a batch delete stops at the first error.
   */
  private dropSlots(have: ProgrammedService): void {
    const f = have.frontend;
    const deletes = this.phases[PHASE_SVC_DELETE] as Op[];
    for (let i = 0; i < have.backendIds.length; i++) {
      const id = have.backendIds[i] as number;
      if (id === 0) continue;
      deletes.push({ kind: 'svc-delete', key: { addr: f.addr, port: f.port, proto: f.proto, gen: have.gen, slot: i + 1 } });
      this.ref(id, -1);
    }
  }
}

// ---------------------------------------------------------------------------
// Text forms, for logs and golden files.

export function formatSvcKey(k: SvcKey): string {
  const f = `${k.addr}:${k.port}/${k.proto}`;
  return k.slot === 0 ? `${f} master${k.gen === 0 ? '' : ` (gen ${k.gen}!)`}` : `${f} gen ${k.gen} slot ${k.slot}`;
}

export function formatOp(op: Op): string {
  switch (op.kind) {
    case 'backend-update':
      return `backend-update ${op.id} = ${l4Key(op.backend)}`;
    case 'backend-delete':
      return `backend-delete ${op.id}`;
    case 'svc-update': {
      const v = op.value;
      const what =
        op.key.slot === 0 ? `count ${v.count} gen ${v.gen} flags 0x${v.flags.toString(16).padStart(2, '0')} svc ${v.svcId}` : `backend ${v.backendId}`;
      return `svc-update ${formatSvcKey(op.key)} = ${what}`;
    }
    case 'svc-delete':
      return `svc-delete ${formatSvcKey(op.key)}`;
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
  return `${lines.join('\n')}\n`;
}

/** Every op of a plan, in the order they reach the kernel. */
export function planOps(plan: Plan): Op[] {
  return plan.phases.flat();
}
