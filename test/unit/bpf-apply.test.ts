// apply.ts: a Plan reaches the maps phase by phase, one batch per map and
// action within a phase (order kept within each), phases in order; phases
// that are each one batch on the same map and action (new slots, then the
// master flip) go as one batch, in the same order; the stats count what was
// written; a failing batch stops everything after it and its error reaches
// the caller as is.
// Applied through the fake native binding, the maps end up holding plan.next.

import { describe, expect, test } from 'vitest';
import { programmedFromDump } from '../../src/dataplane/bpf/adopt.ts';
import { applyOps, applyPlan, type MapWriter } from '../../src/dataplane/bpf/apply.ts';
import { compile, compileOptions } from '../../src/dataplane/bpf/compile.ts';
import { diff } from '../../src/dataplane/bpf/diff.ts';
import { objectMapWriter } from '../../src/dataplane/bpf/dataplane.ts';
import { ADOPTED_MAPS, encodeOpBatch, MAPS, type Op, type OpBatch, svc4KeyCodec, u32Codec, vip4KeyCodec } from '../../src/dataplane/bpf/layout.ts';
import { emptyProgrammedState, ID_QUARANTINE_MS, PHASE_NAMES, type ProgrammedState } from '../../src/dataplane/bpf/state.ts';
import { BpfObject } from '../../src/native/index.ts';
import { FAKE_OBJECT_PATH, FakeNativeBinding } from '../support/fake-native.ts';
import { programmedToPlain } from '../support/plain-state.ts';
import { servicePort, snapshot } from '../support/snapshots.ts';

const OFF = compileOptions();

/** A writer that records each batch (decoded enough to read) and can fail one. */
function recorder(failAt?: { batch: number; error: unknown }): MapWriter & { batches: string[] } {
  const batches: string[] = [];
  return {
    batches,
    async write(b: OpBatch): Promise<void> {
      if (failAt !== undefined && batches.length === failAt.batch) throw failAt.error;
      batches.push(`${b.action} ${b.map} ${describeKeys(b)}`);
    },
  };
}

function describeKeys(b: OpBatch): string {
  const out: string[] = [];
  for (let i = 0; i < b.count; i++) {
    if (b.map === MAPS.backend4.name || b.map === MAPS.becnt4.name || b.map === MAPS.svccnt.name)
      out.push(String(u32Codec.decode(b.keys.subarray(i * 4, i * 4 + 4))));
    else if (b.map === MAPS.vip4.name) out.push(vip4KeyCodec.decode(b.keys.subarray(i * 4, i * 4 + 4)).addr);
    else {
      const k = svc4KeyCodec.decode(b.keys.subarray(i * 12, i * 12 + 12));
      out.push(k.slot === 0 ? `${k.addr}:${k.port}#master` : `${k.addr}:${k.port}#g${k.gen}s${k.slot}`);
    }
  }
  return out.join(',');
}

const first = snapshot([servicePort('a', '10.96.0.1', 80, ['10.244.0.1:8080', '10.244.0.2:8080']), servicePort('b', '10.96.0.2', 53, ['10.244.0.3:53'])]);
const second = snapshot([servicePort('a', '10.96.0.1', 80, ['10.244.0.2:8080', '10.244.0.4:8080'])]);

function plans(): { p1: ReturnType<typeof diff>; p2: ReturnType<typeof diff> } {
  const p1 = diff(compile(first, OFF), emptyProgrammedState());
  const p2 = diff(compile(second, OFF), p1.next);
  return { p1, p2 };
}

describe('applyPlan', () => {
  test('writes the phases in order, one batch per map and action (slots and the masters after them in one), and counts what it wrote', async () => {
    const { p1, p2 } = plans();
    const w1 = recorder();
    // No counter entries: the ids are fresh, the datapath creates their entries.
    expect(await applyPlan(p1, w1)).toEqual({ updates: 3 + 3 + 2 + 2, deletes: 0, batches: 3 });
    expect(w1.batches).toEqual([
      'update sy_backend4_v2 1,2,3',
      // phase 2 (slots) and phase 3 (masters), one batch each on sy_svc4_v2: one batch, slots first
      'update sy_svc4_v2 10.96.0.1:80#g0s1,10.96.0.1:80#g0s2,10.96.0.2:53#g0s1,10.96.0.1:80#master,10.96.0.2:53#master',
      // phase 4: the VIPs, once their masters translate
      'update sy_vip4_v2 10.96.0.1,10.96.0.2',
    ]);
    // a changes backends (new generation), b goes away: every phase has work.
    expect(p2.phases.map((ops) => ops.length > 0)).toEqual([true, true, true, true, true]);
    const w2 = recorder();
    expect(await applyPlan(p2, w2)).toEqual({ updates: 1 + 2 + 1, deletes: 1 + 4 + 1 + 2 + 2, batches: 8 });
    expect(w2.batches).toEqual([
      'update sy_backend4_v2 4',
      'update sy_svc4_v2 10.96.0.1:80#g1s1,10.96.0.1:80#g1s2',
      // phase 3: the master flip, and the VIP b no longer uses, before its master goes
      'update sy_svc4_v2 10.96.0.1:80#master',
      'delete sy_vip4_v2 10.96.0.2',
      'delete sy_svc4_v2 10.96.0.2:53#master,10.96.0.2:53#g0s1,10.96.0.1:80#g0s1,10.96.0.1:80#g0s2',
      'delete sy_svc_cnt_v2 2',
      'delete sy_backend4_v2 1,3',
      'delete sy_be_cnt4_v2 1,3',
    ]);
    expect(PHASE_NAMES).toHaveLength(5);
  });

  test('an empty plan writes nothing', async () => {
    const { p1 } = plans();
    const again = diff(compile(first, OFF), p1.next);
    const w = recorder();
    expect(await applyPlan(again, w)).toEqual({ updates: 0, deletes: 0, batches: 0 });
    expect(w.batches).toEqual([]);
  });

  test('a failing batch: the error reaches the caller unchanged, nothing after it is written', async () => {
    const { p1, p2 } = plans();
    const boom = Object.assign(new Error('bpf_map_update_batch on map fd 7: Argument list too long (record 1 of 2)'), {
      errno: 7,
      code: 'E2BIG',
      syscall: 'bpf_map_update_batch',
      done: 1,
    });
    const w = recorder({ batch: 1, error: boom });
    await expect(applyPlan(p2, w)).rejects.toBe(boom);
    expect(w.batches).toEqual(['update sy_backend4_v2 4']);
    await expect(applyPlan(p1, recorder({ batch: 0, error: boom }))).rejects.toBe(boom);
  });
});

describe('applyOps', () => {
  test('groups a phase into one run per map and action, in order of first appearance, keeping the order within each', async () => {
    const key = { addr: '10.96.0.9', port: 80, proto: 'TCP' as const, scope: 0 as const, gen: 0 as const, slot: 1 };
    const phase: Op[] = [
      { map: 'svc4', action: 'delete', key },
      { map: 'svc4', action: 'delete', key: { ...key, slot: 2 } },
      { map: 'backend4', action: 'delete', key: 7 },
      { map: 'backend4', action: 'delete', key: 8 },
      { map: 'svc4', action: 'delete', key: { ...key, slot: 3 } },
      { map: 'backend4', action: 'update', key: 9, value: { addr: '10.244.9.9', port: 80, proto: 'TCP', flags: 0 } },
    ];
    const w = recorder();
    expect(await applyOps([[], phase, []], w)).toEqual({ updates: 1, deletes: 5, batches: 3 });
    expect(w.batches).toEqual([
      'delete sy_svc4_v2 10.96.0.9:80#g0s1,10.96.0.9:80#g0s2,10.96.0.9:80#g0s3',
      'delete sy_backend4_v2 7,8',
      'update sy_backend4_v2 9',
    ]);
    // Each run is what encodeOpBatch makes of it.
    expect(encodeOpBatch(phase.slice(0, 2))?.count).toBe(2);
  });

  test('joins phases only when each is one batch on the same map and action', async () => {
    const key = (slot: number) => ({ addr: '10.96.0.9', port: 80, proto: 'TCP' as const, scope: 0 as const, gen: 0 as const, slot });
    const slot = (n: number): Op => ({
      map: 'svc4',
      action: 'update',
      key: key(n),
      value: { count: 0, gen: 0, action: 0, backendId: n, svcId: 0, flags: 0, affinityTimeoutS: 0, maglevM: 0 },
    });
    const backend: Op = { map: 'backend4', action: 'update', key: 9, value: { addr: '10.244.9.9', port: 80, proto: 'TCP', flags: 0 } };
    const del: Op = { map: 'svc4', action: 'delete', key: key(3) };
    // One batch, an empty phase, one batch of the same kind, one of another kind: the first three phases are one batch.
    const w1 = recorder();
    expect(await applyOps([[slot(1)], [], [slot(2)], [del]], w1)).toEqual({ updates: 2, deletes: 1, batches: 2 });
    expect(w1.batches).toEqual(['update sy_svc4_v2 10.96.0.9:80#g0s1,10.96.0.9:80#g0s2', 'delete sy_svc4_v2 10.96.0.9:80#g0s3']);
    // The next phase also writes another map: its svc4 batch must wait for the whole phase before, so no join.
    const w2 = recorder();
    expect(await applyOps([[slot(1)], [slot(2), backend]], w2)).toEqual({ updates: 3, deletes: 0, batches: 3 });
    expect(w2.batches).toEqual(['update sy_svc4_v2 10.96.0.9:80#g0s1', 'update sy_svc4_v2 10.96.0.9:80#g0s2', 'update sy_backend4_v2 9']);
  });

  test("through the fake native binding, with the dataplane's writer, the maps end up holding plan.next", async () => {
    const fake = new FakeNativeBinding();
    const obj = await BpfObject.open(FAKE_OBJECT_PATH, '/sys/fs/bpf/apply', fake);
    const writer = objectMapWriter(obj, fake);
    const { p1, p2 } = plans();
    const readBack = async (): Promise<ProgrammedState> => {
      const dumps = new Map<string, Array<[Buffer, Buffer]>>();
      for (const m of ADOPTED_MAPS) dumps.set(MAPS[m].name, await obj.map(MAPS[m].name).dump());
      const adopted = programmedFromDump(dumps);
      expect(adopted.orphans).toEqual([]);
      return adopted.state;
    };
    await applyPlan(p1, writer);
    expect(programmedToPlain(await readBack())).toEqual(programmedToPlain(p1.next));
    await applyPlan(p2, writer);
    const next = programmedToPlain(p2.next) as { backends: { IPv4: { ids: unknown } }; svcIds: unknown };
    const back = programmedToPlain(await readBack()) as typeof next;
    // What adopt cannot know: the quarantined ids (backend 1 and 3, svc 2) are still reserved in plan.next.
    expect(next.backends.IPv4.ids).toEqual([1, 2, 3, 4]);
    expect(back.backends.IPv4.ids).toEqual([2, 4]);
    back.backends.IPv4.ids = next.backends.IPv4.ids;
    back.svcIds = next.svcIds;
    expect(back).toEqual(next);
    expect(fake.calls.map((c) => `${c.op} ${c.map} ${c.count}`).filter((c) => !c.startsWith('dump'))).toEqual([
      'update sy_backend4_v2 3', // fresh ids: no counter entries (the datapath makes them)
      'update sy_svc4_v2 5', // 3 slots + 2 masters
      'update sy_vip4_v2 2', // after the masters
      'update sy_backend4_v2 1',
      'update sy_svc4_v2 2', // 2 slots
      'update sy_svc4_v2 1', // 1 master, beside the VIP delete: before the master of the VIP goes
      'delete sy_vip4_v2 1',
      'delete sy_svc4_v2 4',
      'delete sy_svc_cnt_v2 1',
      'delete sy_backend4_v2 2',
      'delete sy_be_cnt4_v2 2',
    ]);
    expect(await obj.map(MAPS.becnt4.name).dump()).toEqual([]);
    // Once the quarantine is over, a new backend reuses id 1: its counter entry goes in zeroed on every CPU (the writer
    // spread the value over the CPUs), before a slot names it.
    const third = snapshot([servicePort('a', '10.96.0.1', 80, ['10.244.0.2:8080', '10.244.0.4:8080', '10.244.0.5:8080'])]);
    const p3 = diff(compile(third, OFF), p2.next, 'all', { nowMs: ID_QUARANTINE_MS });
    fake.calls.length = 0;
    await applyPlan(p3, writer);
    expect(fake.calls.map((c) => `${c.op} ${c.map} ${c.count}`).slice(0, 2)).toEqual(['update sy_backend4_v2 1', 'update sy_be_cnt4_v2 1']);
    const counters = await obj.map(MAPS.becnt4.name).dump();
    expect(counters.map(([k, v]) => [u32Codec.decode(k), v.length, v.every((x) => x === 0)])).toEqual([[1, 2 * 40, true]]);
    obj.close();
  });
});
