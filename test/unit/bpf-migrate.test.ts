// The layout 1 -> 2 migration (src/dataplane/bpf/migrate.ts): flowsFromV1
// joining v1 forward and reverse entries into v2 halves for every path (a
// whole flow, masqueraded, hairpin, forward or reverse entry alone, UDP, a
// backend or frontend the first v2 sync did not program, two flows sharing a
// reverse tuple, external clients, undecodable entries), and V1Migration on
// the fake binding: detection, carrying into a target without overwriting
// what is there (idempotent), an interrupted run finishing, the unpinning of
// every v1 map, and the removal of a v1 program left on an interface.

import { describe, expect, test } from 'vitest';
import {
  completeMigration,
  decodeV1,
  emptyCounts,
  type FlowEntry,
  type FlowKey,
  type FlowTarget,
  type FlowValue,
  flowsFromV1,
  LayoutUpgrade,
  NO_BACKEND_ID,
  V1_MAPS,
  type UpgradeSteps,
  V1Migration,
  type V2Ids,
  v2IdsFromDumps,
} from '../../src/dataplane/bpf/migrate.ts';
import {
  type CtKey as V1CtKey,
  type CtValue as V1CtValue,
  ctKeyCodec,
  ctValueCodec,
  encode,
  MAPS as V1,
  type RnatValue as V1RnatValue,
  rnatValueCodec,
} from '../../src/dataplane/bpf/layout-v1.ts';
import {
  configCodec,
  HEADER_DEFINES,
  MAPS,
  SY_CT_DIR_FWD as CT_DIR_FWD,
  SY_CT_DIR_REV as CT_DIR_REV,
  SY_CT_F_EXT as CT_F_EXT,
  SY_CT_F_HAIRPIN as CT_F_HAIRPIN,
  SY_CT_F_SNAT as CT_F_SNAT,
  u32Codec,
} from '../../src/dataplane/bpf/layout.ts';
import { BpfObject, Tc } from '../../src/native/index.ts';
import { BpfDataplane } from '../../src/dataplane/bpf/dataplane.ts';
import { servicePort, snapshot } from '../support/snapshots.ts';
import type { Protocol } from '../../src/model/types.ts';
import { createLogger } from '../../src/util/log.ts';
import { FAKE_OBJECT_PATH, FakeNativeBinding, switchyardObject } from '../support/fake-native.ts';

const TCP_NONE = HEADER_DEFINES.SY_TCP_NONE;
const TCP_ESTABLISHED = HEADER_DEFINES.SY_TCP_ESTABLISHED;
const PIN = '/sys/fs/bpf/switchyard';
const NODE = '198.18.0.10';
const CLIENT = '10.244.1.5';
const FRONT = '10.96.0.10';
const B1 = '10.244.2.7';
const B2 = '10.244.2.8';

/** The first v2 sync's ids: B1:8080/TCP is 41, B1:5353/UDP 42, B2:8080/TCP 43; FRONT:80/TCP svc 7, FRONT:53/UDP svc 8. */
const BACKEND_IDS: Readonly<Record<string, number>> = { [`${B1}:8080/TCP`]: 41, [`${B1}:5353/UDP`]: 42, [`${B2}:8080/TCP`]: 43 };
const SVC_IDS: Readonly<Record<string, number>> = { [`${FRONT}:80/TCP`]: 7, [`${FRONT}:53/UDP`]: 8 };
const IDS: V2Ids = {
  backendId: (addr, port, proto) => BACKEND_IDS[`${addr}:${port}/${proto}`],
  svcId: (addr, port, proto) => SVC_IDS[`${addr}:${port}/${proto}`],
};

function fwd(o: {
  client?: string;
  cport?: number;
  front?: string;
  fport?: number;
  proto?: Protocol;
  backend?: string;
  bport?: number;
  id?: number;
  nat?: [string, number];
  flags?: number;
  ns?: bigint;
}): [V1CtKey, V1CtValue] {
  return [
    { saddr: o.client ?? CLIENT, sport: o.cport ?? 40000, daddr: o.front ?? FRONT, dport: o.fport ?? 80, proto: o.proto ?? 'TCP' },
    {
      backendId: o.id ?? 3,
      backendAddr: o.backend ?? B1,
      backendPort: o.bport ?? 8080,
      natAddr: o.nat?.[0] ?? '0.0.0.0',
      natPort: o.nat?.[1] ?? 0,
      flags: o.flags ?? 0,
      lastSeenNs: o.ns ?? 1000n,
    },
  ];
}

function rev(o: {
  client?: string;
  cport?: number;
  front?: string;
  fport?: number;
  proto?: Protocol;
  backend?: string;
  bport?: number;
  nat?: [string, number];
  flags?: number;
  ns?: bigint;
}): [V1CtKey, V1RnatValue] {
  const snat = o.nat !== undefined;
  return [
    {
      saddr: o.backend ?? B1,
      sport: o.bport ?? 8080,
      daddr: snat ? (o.nat?.[0] as string) : (o.client ?? CLIENT),
      dport: snat ? (o.nat?.[1] as number) : (o.cport ?? 40000),
      proto: o.proto ?? 'TCP',
    },
    {
      frontAddr: o.front ?? FRONT,
      frontPort: o.fport ?? 80,
      clientAddr: o.client ?? CLIENT,
      clientPort: o.cport ?? 40000,
      flags: o.flags ?? 0,
      lastSeenNs: o.ns ?? 1000n,
    },
  ];
}

const key = (saddr: string, sport: number, daddr: string, dport: number, dir: 0 | 1, proto: Protocol = 'TCP'): FlowKey => ({
  saddr,
  sport,
  daddr,
  dport,
  proto,
  dir,
});

function byKey(entries: readonly FlowEntry[]): Map<string, FlowValue> {
  const m = new Map<string, FlowValue>();
  for (const [k, v] of entries) {
    const s = `${k.dir === CT_DIR_FWD ? 'FWD' : 'REV'} ${k.saddr}:${k.sport}>${k.daddr}:${k.dport}/${k.proto}`;
    expect(m.has(s), `one entry per key: ${s}`).toBe(false);
    m.set(s, v);
  }
  return m;
}

describe('flowsFromV1', () => {
  test('a whole flow: both halves hold it, with the v2 backend id (not the v1 one), the svc_id, ESTABLISHED, first and last times', () => {
    const { entries, counts } = flowsFromV1([fwd({ id: 3, ns: 500n })], [rev({ ns: 900n })], IDS);
    expect(entries).toHaveLength(2);
    const flow: FlowValue = {
      clientAddr: CLIENT,
      frontAddr: FRONT,
      backendAddr: B1,
      natAddr: '0.0.0.0',
      clientPort: 40000,
      frontPort: 80,
      backendPort: 8080,
      natPort: 0,
      backendId: 41,
      svcId: 7,
      flags: 0,
      tcpState: TCP_ESTABLISHED,
      finMask: 0,
      createdNs: 500n,
      lastSeenNs: 900n,
    };
    expect(entries).toEqual([
      [key(CLIENT, 40000, FRONT, 80, CT_DIR_FWD), flow],
      [key(B1, 8080, CLIENT, 40000, CT_DIR_REV), flow],
    ]);
    expect(counts).toMatchObject({ flows: 1, whole: 1, forwardOnly: 0, reverseOnly: 0, backendGone: 0, frontendGone: 0 });
  });

  test('a masqueraded flow: the REV half is keyed by backend -> masquerade address:port, flagged SNAT', () => {
    const nat: [string, number] = [NODE, 61234];
    const { entries, counts } = flowsFromV1([fwd({ flags: 0x01, nat })], [rev({ flags: 0x01, nat })], IDS);
    const m = byKey(entries);
    expect([...m.keys()]).toEqual([`FWD ${CLIENT}:40000>${FRONT}:80/TCP`, `REV ${B1}:8080>${NODE}:61234/TCP`]);
    for (const v of m.values()) expect(v).toMatchObject({ flags: CT_F_SNAT, natAddr: NODE, natPort: 61234, backendId: 41 });
    expect(counts).toMatchObject({ flows: 1, whole: 1, snat: 1, hairpin: 0 });
  });

  test('hairpin (the backend is the client): SNAT and HAIRPIN, replies keyed to the node address', () => {
    const nat: [string, number] = [NODE, 50001];
    const { entries, counts } = flowsFromV1([fwd({ client: B1, flags: 0x03, nat })], [rev({ client: B1, flags: 0x03, nat })], IDS);
    const m = byKey(entries);
    expect([...m.keys()]).toEqual([`FWD ${B1}:40000>${FRONT}:80/TCP`, `REV ${B1}:8080>${NODE}:50001/TCP`]);
    for (const v of m.values()) expect(v).toMatchObject({ flags: CT_F_SNAT | CT_F_HAIRPIN, clientAddr: B1, backendAddr: B1 });
    expect(counts).toMatchObject({ snat: 1, hairpin: 1 });
  });

  test('the forward entry alone (reverse evicted) gives both halves', () => {
    const { entries, counts } = flowsFromV1([fwd({ flags: 0x01, nat: [NODE, 61000] })], [], IDS);
    const m = byKey(entries);
    expect([...m.keys()]).toEqual([`FWD ${CLIENT}:40000>${FRONT}:80/TCP`, `REV ${B1}:8080>${NODE}:61000/TCP`]);
    expect(m.get(`REV ${B1}:8080>${NODE}:61000/TCP`)).toMatchObject({
      clientAddr: CLIENT,
      clientPort: 40000,
      frontAddr: FRONT,
      backendId: 41,
      flags: CT_F_SNAT,
    });
    expect(counts).toMatchObject({ flows: 1, forwardOnly: 1, whole: 0 });
  });

  test('the reverse entry alone (forward evicted) gives both halves, the backend taken from its key', () => {
    const { entries, counts } = flowsFromV1([], [rev({ backend: B2, cport: 41000 })], IDS);
    const m = byKey(entries);
    expect([...m.keys()]).toEqual([`FWD ${CLIENT}:41000>${FRONT}:80/TCP`, `REV ${B2}:8080>${CLIENT}:41000/TCP`]);
    for (const v of m.values()) expect(v).toMatchObject({ backendAddr: B2, backendPort: 8080, backendId: 43, svcId: 7, natAddr: '0.0.0.0' });
    expect(counts).toMatchObject({ flows: 1, reverseOnly: 1 });
  });

  test('a flow whose backend no longer exists is carried with NO_BACKEND_ID (re-balanced on its next packet); a gone frontend has svc_id 0', () => {
    const gone = '10.244.9.9';
    const { entries, counts } = flowsFromV1([fwd({ backend: gone }), fwd({ cport: 40001, front: '10.96.0.99' })], [rev({ backend: gone })], IDS);
    const m = byKey(entries);
    expect(m.get(`FWD ${CLIENT}:40000>${FRONT}:80/TCP`)).toMatchObject({ backendAddr: gone, backendId: NO_BACKEND_ID, svcId: 7 });
    expect(m.get(`REV ${gone}:8080>${CLIENT}:40000/TCP`)).toMatchObject({ backendId: NO_BACKEND_ID });
    expect(m.get(`FWD ${CLIENT}:40001>10.96.0.99:80/TCP`)).toMatchObject({ backendId: 41, svcId: 0 });
    expect(NO_BACKEND_ID).toBe(0);
    expect(counts).toMatchObject({ flows: 2, backendGone: 1, frontendGone: 1 });
  });

  test('UDP and SCTP flows carry no TCP state', () => {
    const { entries } = flowsFromV1([fwd({ proto: 'UDP', fport: 53, bport: 5353 })], [rev({ proto: 'UDP', fport: 53, bport: 5353 })], IDS);
    expect(entries.map(([k, v]) => [k.proto, v.tcpState, v.backendId, v.svcId])).toEqual([
      ['UDP', TCP_NONE, 42, 8],
      ['UDP', TCP_NONE, 42, 8],
    ]);
  });

  test('two flows sharing a reverse tuple (one client port to two frontends of one backend): each half keeps its own flow', () => {
    const other = '10.96.0.11';
    // v1 kept the reverse entry of the later flow (to `other`).
    const { entries, counts } = flowsFromV1([fwd({}), fwd({ front: other })], [rev({ front: other })], IDS);
    const m = byKey(entries);
    expect(m.get(`FWD ${CLIENT}:40000>${FRONT}:80/TCP`)).toMatchObject({ frontAddr: FRONT, backendId: 41 });
    expect(m.get(`FWD ${CLIENT}:40000>${other}:80/TCP`)).toMatchObject({ frontAddr: other });
    expect(m.get(`REV ${B1}:8080>${CLIENT}:40000/TCP`)).toMatchObject({ frontAddr: other });
    expect(m.size).toBe(3);
    expect(counts).toMatchObject({ flows: 2, whole: 1, conflicting: 1 });
  });

  test('a reverse entry of an older flow whose forward tuple now names another backend keeps its REV half only', () => {
    const { entries, counts } = flowsFromV1([fwd({ backend: B2 })], [rev({ backend: B2 }), rev({ backend: B1 })], IDS);
    const m = byKey(entries);
    expect(m.get(`FWD ${CLIENT}:40000>${FRONT}:80/TCP`)).toMatchObject({ backendAddr: B2, backendId: 43 });
    expect(m.get(`REV ${B2}:8080>${CLIENT}:40000/TCP`)).toMatchObject({ backendAddr: B2 });
    expect(m.get(`REV ${B1}:8080>${CLIENT}:40000/TCP`)).toMatchObject({ backendAddr: B1, backendId: 41 });
    expect(m.size).toBe(3);
    expect(counts).toMatchObject({ flows: 2, whole: 1, conflicting: 1 });
  });

  test('clients the local-traffic detector calls external are flagged EXT', () => {
    const ids: V2Ids = { ...IDS, external: (a) => !a.startsWith('10.244.') };
    const { entries } = flowsFromV1([fwd({ client: '198.18.0.200' }), fwd({ cport: 40001 })], [], ids);
    const m = byKey(entries);
    expect(m.get(`FWD 198.18.0.200:40000>${FRONT}:80/TCP`)?.flags).toBe(CT_F_EXT);
    expect(m.get(`FWD ${CLIENT}:40001>${FRONT}:80/TCP`)?.flags).toBe(0);
  });

  test('decodeV1 leaves out and counts entries it cannot decode (an unknown protocol number)', () => {
    const [k, v] = fwd({});
    const good = encode(ctKeyCodec, k);
    const bad = Buffer.from(good);
    bad[12] = 47; // GRE
    const counts = emptyCounts();
    const out = decodeV1(
      [
        [good, encode(ctValueCodec, v)],
        [bad, encode(ctValueCodec, v)],
      ],
      ctKeyCodec,
      ctValueCodec,
      counts,
    );
    expect(out).toEqual([[k, v]]);
    expect(counts.undecodable).toBe(1);
  });
});

// ---------------------------------------------------------------------------
// V1Migration on the fake binding.

/** sy_ct4_v2 in memory: what was written, and which keys exist. */
class MemoryTarget implements FlowTarget {
  readonly entries = new Map<string, FlowValue>();
  writes = 0;
  static id(k: FlowKey): string {
    return `${k.dir} ${k.saddr}:${k.sport}>${k.daddr}:${k.dport}/${k.proto}`;
  }
  async has(keys: readonly FlowKey[]): Promise<boolean[]> {
    return keys.map((k) => this.entries.has(MemoryTarget.id(k)));
  }
  async write(entries: readonly FlowEntry[]): Promise<void> {
    this.writes++;
    for (const [k, v] of entries) this.entries.set(MemoryTarget.id(k), v);
  }
}

/** A node a layout-1 daemon left: every v1 map pinned, flows in sy_ct4_v1 / sy_rnat4_v1. */
function v1Node(flows: { fwd: Array<[V1CtKey, V1CtValue]>; rev: Array<[V1CtKey, V1RnatValue]> }): FakeNativeBinding {
  const fake = new FakeNativeBinding();
  fake.ensureBpffs(PIN);
  for (const m of Object.values(V1)) fake.pinMap(`${PIN}/${m.name}`, m);
  for (const [k, v] of flows.fwd) fake.pinnedMap(`${PIN}/${V1.ct.name}`).update(encode(ctKeyCodec, k), encode(ctValueCodec, v));
  for (const [k, v] of flows.rev) fake.pinnedMap(`${PIN}/${V1.rnat.name}`).update(encode(ctKeyCodec, k), encode(rnatValueCodec, v));
  return fake;
}

const log = createLogger('bpf', { level: 'error', write: () => {} });

describe('V1Migration', () => {
  test('detect: null without v1 pins, else the pins found', () => {
    const empty = new FakeNativeBinding();
    empty.ensureBpffs(PIN);
    expect(V1Migration.detect(empty, log, PIN)).toBeNull();
    const fake = v1Node({ fwd: [], rev: [] });
    expect(V1Migration.detect(fake, log, PIN)?.found).toEqual([...V1_MAPS]);
    expect(fake.openFds()).toBe(0);
  });

  test('carry writes both halves of every flow, and a second carry writes nothing (idempotent); finish unpins every v1 map', async () => {
    const fake = v1Node({ fwd: [fwd({}), fwd({ cport: 40001, backend: B2 })], rev: [rev({}), rev({ cport: 40002 })] });
    const m = V1Migration.detect(fake, log, PIN) as V1Migration;
    const target = new MemoryTarget();
    const first = await m.carry(target, IDS);
    expect(first).toMatchObject({ flows: 3, whole: 1, forwardOnly: 1, reverseOnly: 1, written: 6, present: 0 });
    expect(target.entries.size).toBe(6);
    const second = await m.carry(target, IDS);
    expect(second).toMatchObject({ flows: 3, written: 0, present: 6 });
    expect(m.finish()).toEqual([...V1_MAPS]);
    expect(fake.pins(PIN)).toEqual([]);
    expect(m.done).toBe(true);
    expect(fake.openFds()).toBe(0);
  });

  test('carry never overwrites a v2 entry that exists (the v2 program already tracks the flow)', async () => {
    const fake = v1Node({ fwd: [fwd({})], rev: [rev({})] });
    const m = V1Migration.detect(fake, log, PIN) as V1Migration;
    const target = new MemoryTarget();
    const own = { backendId: 43, backendAddr: B2 } as FlowValue;
    target.entries.set(MemoryTarget.id(key(CLIENT, 40000, FRONT, 80, CT_DIR_FWD)), own);
    const r = await m.carry(target, IDS);
    expect(r).toMatchObject({ written: 1, present: 1 });
    expect(target.entries.get(MemoryTarget.id(key(CLIENT, 40000, FRONT, 80, CT_DIR_FWD)))).toBe(own);
    expect(target.entries.get(MemoryTarget.id(key(B1, 8080, CLIENT, 40000, CT_DIR_REV)))).toMatchObject({ backendId: 41 });
  });

  test('flows the v1 program adds after a carry are picked up by the next one', async () => {
    const fake = v1Node({ fwd: [fwd({})], rev: [rev({})] });
    const m = V1Migration.detect(fake, log, PIN) as V1Migration;
    const target = new MemoryTarget();
    await m.carry(target, IDS);
    const [k, v] = fwd({ cport: 45000 });
    fake.pinnedMap(`${PIN}/${V1.ct.name}`).update(encode(ctKeyCodec, k), encode(ctValueCodec, v));
    expect(await m.carry(target, IDS)).toMatchObject({ written: 2, present: 2 });
    expect(target.entries.has(MemoryTarget.id(key(CLIENT, 45000, FRONT, 80, CT_DIR_FWD)))).toBe(true);
  });

  test('a run killed half way through finish(): the next daemon finds the rest, carries what is left, and finishes', async () => {
    const fake = v1Node({ fwd: [fwd({})], rev: [rev({})] });
    // The first daemon carried, then unpinned everything up to sy_rnat4_v1 and died.
    const target = new MemoryTarget();
    await (V1Migration.detect(fake, log, PIN) as V1Migration).carry(target, IDS);
    for (const name of V1_MAPS.slice(0, 5)) fake.unpin(`${PIN}/${name}`);
    const again = V1Migration.detect(fake, log, PIN) as V1Migration;
    expect(again.found).toEqual([V1.ct.name]);
    expect(await again.carry(target, IDS)).toMatchObject({ flows: 1, forwardOnly: 1, written: 0, present: 2 });
    expect(again.finish()).toEqual([V1.ct.name]);
    expect(fake.pins(PIN)).toEqual([]);
    expect(V1Migration.detect(fake, log, PIN)).toBeNull();
  });

  test('a pin named like a v1 map with other sizes is refused by name, not misread', async () => {
    const fake = new FakeNativeBinding();
    fake.ensureBpffs(PIN);
    fake.pinMap(`${PIN}/${V1.ct.name}`, { ...V1.ct, value: V1.rnat.value });
    const m = V1Migration.detect(fake, log, PIN) as V1Migration;
    await expect(m.carry(new MemoryTarget(), IDS)).rejects.toMatchObject({
      code: 'ERR_SY_DATAPLANE_MIGRATION',
      message: expect.stringContaining(`${PIN}/${V1.ct.name}`),
    });
    expect(fake.openFds()).toBe(0);
  });

  test('detachStale removes a program that is not ours from our tc position and keeps ours', async () => {
    const fake = v1Node({ fwd: [], rev: [] });
    const eth0 = fake.addLink('eth0');
    const veth9 = fake.addLink('veth9');
    const oldObj = await fake.openObject(FAKE_OBJECT_PATH, { pinRoot: '/sys/fs/bpf/old' });
    const newObj = await fake.openObject(FAKE_OBJECT_PATH, { pinRoot: '/sys/fs/bpf/new' });
    const oldFd = oldObj.programs()[0]?.fd as number;
    const newFd = newObj.programs()[0]?.fd as number;
    const filter = { direction: 'ingress', handle: 0x5359, priority: 0x2000 } as const;
    const tc = new Tc(fake);
    tc.attach(veth9, oldFd, filter);
    tc.attach(eth0, newFd, filter);
    const m = V1Migration.detect(fake, log, PIN) as V1Migration;
    const detached = m.detachStale(tc, fake.links(), new Set([fake.progIdFromFd(newFd)]), [filter, { ...filter, direction: 'egress' }]);
    expect(detached).toEqual(['veth9/ingress']);
    expect(tc.query(veth9, filter)).toBeNull();
    expect(tc.query(eth0, filter)).toBe(fake.progIdFromFd(newFd));
    oldObj.close();
    newObj.close();
  });
});

describe('v2IdsFromDumps', () => {
  const svc = (addr: string, port: number, proto: Protocol, scope: 0 | 1, slot: number, svcId: number): [Buffer, Buffer] => [
    encode(MAPS.svc4.keyCodec, { addr, port, proto, scope, slot, gen: 0 }),
    encode(MAPS.svc4.valueCodec, {
      count: slot === 0 ? 1 : 0,
      gen: 0,
      action: 0,
      backendId: slot === 0 ? 0 : 41,
      svcId: slot === 0 ? svcId : 0,
      flags: 0,
      affinityTimeoutS: 0,
      maglevM: 0,
    }),
  ];
  const be = (id: number, addr: string, port: number, proto: Protocol): [Buffer, Buffer] => [
    encode(MAPS.backend4.keyCodec, id),
    encode(MAPS.backend4.valueCodec, { addr, port, proto, flags: 0 }),
  ];
  const config = (flags: number, podCidr4: string | null) => ({
    nodeAddr4: NODE,
    nodeAddr6: null,
    podCidr4,
    podCidr6: null,
    snatPortMin: 61000,
    snatPortMax: 65535,
    flags,
  });

  test('backend ids by address and svc_ids of internal masters, from the maps the first sync wrote', () => {
    const ids = v2IdsFromDumps(
      [svc(FRONT, 80, 'TCP', 0, 0, 7), svc(FRONT, 80, 'TCP', 1, 0, 99), svc(FRONT, 80, 'TCP', 0, 1, 0), svc(FRONT, 53, 'UDP', 0, 0, 8)],
      [be(41, B1, 8080, 'TCP'), be(42, B1, 5353, 'UDP')],
      null,
    );
    expect(ids.backendId(B1, 8080, 'TCP')).toBe(41);
    expect(ids.backendId(B1, 5353, 'UDP')).toBe(42);
    expect(ids.backendId(B1, 5353, 'TCP')).toBeUndefined();
    expect(ids.svcId(FRONT, 80, 'TCP')).toBe(7);
    expect(ids.svcId(FRONT, 53, 'UDP')).toBe(8);
    expect(ids.svcId(FRONT, 81, 'TCP')).toBeUndefined();
    expect(ids.external).toBeUndefined();
  });

  test('with a CIDR detector, clients outside the pod CIDR are external; with an interface detector none is', () => {
    const cidr = v2IdsFromDumps([], [], config(0x01, '10.244.0.0/16'));
    expect(cidr.external?.('10.244.1.5')).toBe(false);
    expect(cidr.external?.('198.18.0.200')).toBe(true);
    expect(v2IdsFromDumps([], [], config(0x02, '10.244.0.0/16')).external).toBeUndefined();
  });
});

describe('completeMigration', () => {
  function steps(fake: FakeNativeBinding, target: FlowTarget, order: string[]): UpgradeSteps {
    return {
      target,
      ids: IDS,
      attach: () => order.push('attach'),
      hold: async (on) => {
        order.push(on ? 'hold' : 'release');
      },
      tc: new Tc(fake),
      links: () => fake.links(),
      ours: () => new Set<number>(),
      filters: [{ direction: 'ingress', handle: 0x5359, priority: 0x2000 }],
    };
  }

  test('carries, attaches, carries what came in between, removes the v1 maps, and logs counts', async () => {
    const fake = v1Node({ fwd: [fwd({}), fwd({ cport: 40001, flags: 0x01, nat: [NODE, 61001] })], rev: [rev({})] });
    const lines: string[] = [];
    const logger = createLogger('bpf', { write: (l) => lines.push(l) });
    const m = V1Migration.detect(fake, logger, PIN) as V1Migration;
    const order: string[] = [];
    const target = new MemoryTarget();
    const write = target.write.bind(target);
    target.write = async (e) => {
      order.push(`write ${e.length}`);
      await write(e);
    };
    expect(await completeMigration(m, steps(fake, target, order), logger)).toBe(true);
    expect(order).toEqual(['write 4', 'hold', 'attach', 'write 0', 'release']);
    expect(fake.pins(PIN)).toEqual([]);
    const carried = lines.find((l) => l.includes('layout 1 connection tracking carried to layout 2')) ?? '';
    expect(carried).toMatch(/ flows=2 whole=1 forwardOnly=1 .* snat=1 .* written=4 present=0/);
    expect(lines.some((l) => l.includes('layout 1 maps removed') && l.includes('sy_ct4_v1'))).toBe(true);
  });

  test('a carry that fails still attaches layout 2, keeps the v1 pins, and the next run completes', async () => {
    const fake = v1Node({ fwd: [fwd({})], rev: [] });
    const lines: string[] = [];
    const logger = createLogger('bpf', { write: (l) => lines.push(l) });
    const m = V1Migration.detect(fake, logger, PIN) as V1Migration;
    const order: string[] = [];
    const target = new MemoryTarget();
    const write = target.write.bind(target);
    let failures = 1;
    target.write = async (e) => {
      if (failures-- > 0) throw new Error('E2BIG');
      await write(e);
    };
    expect(await completeMigration(m, steps(fake, target, order), logger)).toBe(false);
    expect(order, 'no hold: there is no second carry to wait for').toEqual(['attach']);
    expect(fake.pins(PIN)).toHaveLength(6);
    expect(lines.some((l) => / error bpf carrying layout 1 connection tracking/.test(l))).toBe(true);
    expect(await completeMigration(m, steps(fake, target, order), logger)).toBe(true);
    expect(target.entries.size).toBe(2);
    expect(fake.pins(PIN)).toEqual([]);
  });

  test('a second carry that fails, or an attach that throws, still releases the hold', async () => {
    const fake = v1Node({ fwd: [fwd({})], rev: [] });
    const lines: string[] = [];
    const logger = createLogger('bpf', { write: (l) => lines.push(l) });
    const m = V1Migration.detect(fake, logger, PIN) as V1Migration;
    const order: string[] = [];
    const target = new MemoryTarget();
    const write = target.write.bind(target);
    let calls = 0;
    target.write = async (e) => {
      if (calls++ === 1) throw new Error('E2BIG');
      await write(e);
    };
    expect(await completeMigration(m, steps(fake, target, order), logger)).toBe(false);
    expect(order).toEqual(['hold', 'attach', 'release']);
    expect(fake.pins(PIN)).toHaveLength(6);
    expect(lines.some((l) => / error bpf carrying layout 1 connection tracking \(after the switch\) failed/.test(l))).toBe(true);

    order.length = 0;
    const throwing = {
      ...steps(fake, target, order),
      attach: () => {
        order.push('attach');
        throw new Error('tc: EPERM');
      },
    };
    await expect(completeMigration(m, throwing, logger)).rejects.toThrow('EPERM');
    expect(order).toEqual(['hold', 'attach', 'release']);
  });

  test('a hold that cannot be set is logged and the switch goes on; a release that fails is logged', async () => {
    const fake = v1Node({ fwd: [fwd({})], rev: [] });
    const lines: string[] = [];
    const logger = createLogger('bpf', { write: (l) => lines.push(l) });
    const m = V1Migration.detect(fake, logger, PIN) as V1Migration;
    const order: string[] = [];
    const s = steps(fake, new MemoryTarget(), order);
    s.hold = async (on) => {
      order.push(on ? 'hold' : 'release');
      if (on) throw new Error('EFAULT');
    };
    expect(await completeMigration(m, s, logger)).toBe(true);
    expect(order, 'never set: nothing to release').toEqual(['hold', 'attach']);
    expect(lines.some((l) => / warn bpf could not hold connections without a flow/.test(l))).toBe(true);

    const fake2 = v1Node({ fwd: [fwd({})], rev: [] });
    const m2 = V1Migration.detect(fake2, logger, PIN) as V1Migration;
    const s2 = steps(fake2, new MemoryTarget(), order);
    order.length = 0;
    s2.hold = async (on) => {
      order.push(on ? 'hold' : 'release');
      if (!on) throw new Error('EFAULT');
    };
    expect(await completeMigration(m2, s2, logger)).toBe(true);
    expect(order).toEqual(['hold', 'attach', 'release']);
    expect(lines.some((l) => / error bpf could not clear the layout 1 upgrade hold/.test(l))).toBe(true);
  });
});

describe('LayoutUpgrade (what BpfDataplane calls)', () => {
  /** The layout 2 maps the upgrade reads and writes, as an object the fake loads. */
  const V2_PATH = '/fake/bpf/build/switchyard-v2.bpf.o';
  const v2Object = {
    maps: [MAPS.svc4, MAPS.backend4, MAPS.ct4].map((m) => ({ ...m, type: m.type as 'hash' | 'lru_hash' })),
    programs: [{ name: 'sy_from_pod', section: 'tc', type: 3 }],
  };

  test('holds the attach until the first sync landed, then carries with that sync ids, attaches, and removes layout 1', async () => {
    const fake = new FakeNativeBinding({ objects: { [V2_PATH]: v2Object } });
    fake.ensureBpffs(PIN);
    for (const m of Object.values(V1)) fake.pinMap(`${PIN}/${m.name}`, m);
    const [fk, fv] = fwd({ flags: 0x01, nat: [NODE, 61500] });
    fake.pinnedMap(`${PIN}/${V1.ct.name}`).update(encode(ctKeyCodec, fk), encode(ctValueCodec, fv));
    const up = LayoutUpgrade.detect(fake, log, PIN);
    expect(up?.holdsAttach).toBe(true);
    const native = await fake.openObject(V2_PATH, { pinRoot: PIN });
    const obj = new BpfObject(fake, native, V2_PATH);
    // What the first layout 2 sync wrote: FRONT:80/TCP (svc 7) -> B1:8080 (id 5).
    await obj
      .map(MAPS.svc4.name)
      .update([
        [
          encode(MAPS.svc4.keyCodec, { addr: FRONT, port: 80, proto: 'TCP', scope: 0, slot: 0, gen: 0 }),
          encode(MAPS.svc4.valueCodec, { count: 1, gen: 0, action: 0, backendId: 0, svcId: 7, flags: 0, affinityTimeoutS: 0, maglevM: 0 }),
        ],
      ]);
    await obj
      .map(MAPS.backend4.name)
      .update([[encode(MAPS.backend4.keyCodec, 5), encode(MAPS.backend4.valueCodec, { addr: B1, port: 8080, proto: 'TCP', flags: 0 })]]);
    let attached = 0;
    const holds: boolean[] = [];
    const done = await up?.afterSync({
      obj,
      config: null,
      attach: () => attached++,
      hold: async (on: boolean) => {
        holds.push(on);
      },
      tc: new Tc(fake),
      links: () => fake.links(),
      ours: () => new Set([fake.progIdFromFd(obj.program('sy_from_pod').fd)]),
      filters: [{ direction: 'ingress', handle: 0x5359, priority: 0x2000 }],
    });
    expect(done).toBe(true);
    expect(attached).toBe(1);
    expect(holds).toEqual([true, false]);
    expect(up?.holdsAttach).toBe(false);
    const ct = (await obj.map(MAPS.ct4.name).dump()).map(([k, v]) => [MAPS.ct4.keyCodec.decode(k), MAPS.ct4.valueCodec.decode(v)] as const);
    expect(ct.map(([k, v]) => `${k.dir} ${k.saddr}:${k.sport}>${k.daddr}:${k.dport} id=${v.backendId} svc=${v.svcId} flags=${v.flags}`).sort()).toEqual([
      `0 ${CLIENT}:40000>${FRONT}:80 id=5 svc=7 flags=1`,
      `1 ${B1}:8080>${NODE}:61500 id=5 svc=7 flags=1`,
    ]);
    expect(fake.pins(PIN).filter((p) => p.endsWith('_v1'))).toEqual([]);
    obj.close();
    expect(fake.openFds()).toBe(0);
  });
});

describe('BpfDataplane upgrading a node a layout 1 daemon left', () => {
  const V1_OBJECT = '/fake/v1/switchyard.bpf.o';

  test('the layout 1 program forwards until the first sync landed; then flows are carried, layout 2 attached everywhere, layout 1 gone', async () => {
    const fake = new FakeNativeBinding({
      objects: { [FAKE_OBJECT_PATH]: switchyardObject(), [V1_OBJECT]: { maps: [], programs: [{ name: 'sy_ingress', section: 'tc', type: 3 }] } },
    });
    const eth0 = fake.addLink('eth0');
    const veth1 = fake.addLink('veth1');
    const cali9 = fake.addLink('cali9'); // a pod interface layout 1 was told about, this daemon is not
    // What the layout 1 daemon left: its maps with one flow, its program on three interfaces.
    fake.ensureBpffs(PIN);
    for (const m of Object.values(V1)) fake.pinMap(`${PIN}/${m.name}`, m);
    const [fk, fv] = fwd({});
    const [rk, rv] = rev({});
    fake.pinnedMap(`${PIN}/${V1.ct.name}`).update(encode(ctKeyCodec, fk), encode(ctValueCodec, fv));
    fake.pinnedMap(`${PIN}/${V1.rnat.name}`).update(encode(ctKeyCodec, rk), encode(rnatValueCodec, rv));
    const v1 = new BpfObject(fake, await fake.openObject(V1_OBJECT, { pinRoot: '/sys/fs/bpf/v1-object' }), V1_OBJECT);
    const v1Prog = v1.program('sy_ingress');
    const ingress = { direction: 'ingress', handle: 0x5359, priority: 0x2000 } as const;
    const tc = new Tc(fake);
    for (const ifx of [eth0, veth1, cali9]) tc.attach(ifx, v1Prog.fd, ingress);
    const v1Id = fake.progIdFromFd(v1Prog.fd);
    v1.close();

    const lines: string[] = [];
    const dp = new BpfDataplane({
      native: fake,
      log: createLogger('bpf', { level: 'debug', write: (l) => lines.push(l) }),
      objectPath: FAKE_OBJECT_PATH,
      pinPath: PIN,
      node: { ipv4: NODE, ipv6: null },
      nodeInterface: 'eth0',
      podInterfaces: 'veth*',
      masqueradeAll: false,
      detectLocal: { mode: 'ClusterCIDR', cidrs: ['10.244.0.0/16'] },
      nodePortAddresses: [],
      snatPorts: { min: 61000, max: 65535 },
      capacities: {},
      links: fake.linkSource(),
    });
    await dp.start(new AbortController().signal);
    expect(
      [eth0, veth1, cali9].map((i) => tc.query(i, ingress)),
      'nothing attached before the first sync',
    ).toEqual([v1Id, v1Id, v1Id]);
    expect(dp.attached.size).toBe(0);

    await dp.sync(snapshot([servicePort('web', FRONT, 80, [`${B1}:8080`])]));
    expect(tc.query(cali9, ingress), 'layout 1 removed where layout 2 does not go').toBeNull();
    for (const i of [eth0, veth1]) expect(tc.query(i, ingress)).not.toBe(v1Id);
    expect(dp.attached.size).toBe(2);
    expect(fake.pins(PIN).filter((p) => p.endsWith('_v1'))).toEqual([]);
    const ids = await (async () => {
      const be = new BpfObject(fake, await fake.openObject(FAKE_OBJECT_PATH, { pinRoot: PIN }), FAKE_OBJECT_PATH);
      try {
        const backends = (await be.map(MAPS.backend4.name).dump()).map(
          ([k, v]) => [MAPS.backend4.keyCodec.decode(k), MAPS.backend4.valueCodec.decode(v)] as const,
        );
        const ct = (await be.map(MAPS.ct4.name).dump()).map(([k, v]) => [MAPS.ct4.keyCodec.decode(k), MAPS.ct4.valueCodec.decode(v)] as const);
        return { backends, ct };
      } finally {
        be.close();
      }
    })();
    const b1Id = ids.backends.find(([, b]) => b.addr === B1)?.[0];
    expect(b1Id).toBeGreaterThan(0);
    expect(ids.ct.map(([k, v]) => `${k.dir} ${k.saddr}:${k.sport}>${k.daddr}:${k.dport} backend=${v.backendId}`).sort()).toEqual([
      `0 ${CLIENT}:40000>${FRONT}:80 backend=${b1Id}`,
      `1 ${B1}:8080>${CLIENT}:40000 backend=${b1Id}`,
    ]);
    expect(lines.some((l) => / info bpf layout 1 connection tracking carried to layout 2 flows=1 whole=1 /.test(l))).toBe(true);
    expect(lines.some((l) => / info bpf layout 1 program detached interfaces=cali9\/ingress/.test(l))).toBe(true);
    expect(lines.some((l) => / info bpf layout 1 maps removed /.test(l))).toBe(true);
    // SY_CFG_LAYOUT_UPGRADE (0x08) on top of the CIDR detector (0x01) while the programs were switched, then off.
    const configs = lines.filter((l) => / info bpf node config /.test(l)).map((l) => / flags=(\d+)/.exec(l)?.[1]);
    expect(configs.slice(-2)).toEqual(['9', '1']);
    const held = lines.findIndex((l) => / info bpf node config .*flags=9/.test(l));
    const released = lines.findLastIndex((l) => / info bpf node config .*flags=1/.test(l));
    const carried = lines.findIndex((l) => l.includes('layout 1 connection tracking carried'));
    expect(held).toBeLessThan(released);
    expect(released).toBeLessThan(carried);
    const cfgObj = new BpfObject(fake, await fake.openObject(FAKE_OBJECT_PATH, { pinRoot: PIN }), FAKE_OBJECT_PATH);
    try {
      const [v] = await cfgObj.map(MAPS.config.name).lookup([encode(u32Codec, 0)]);
      expect(v === undefined ? null : configCodec.decode(v).flags).toBe(HEADER_DEFINES.SY_CFG_DETECT_CIDR);
    } finally {
      cfgObj.close();
    }

    // The next sync does nothing of the upgrade again.
    const before = lines.length;
    await dp.sync(snapshot([servicePort('web', FRONT, 80, [`${B1}:8080`, `${B2}:8080`])]));
    expect(lines.slice(before).filter((l) => l.includes('layout 1'))).toEqual([]);
    await dp.stop();
    expect(fake.openFds()).toBe(0);
  });

  test('without layout 1 pins, start() attaches at once as before', async () => {
    const fake = new FakeNativeBinding();
    fake.addLink('eth0');
    const dp = new BpfDataplane({
      native: fake,
      log,
      objectPath: FAKE_OBJECT_PATH,
      pinPath: PIN,
      node: { ipv4: NODE, ipv6: null },
      nodeInterface: 'eth0',
      podInterfaces: 'veth*',
      masqueradeAll: false,
      detectLocal: { mode: 'ClusterCIDR', cidrs: ['10.244.0.0/16'] },
      nodePortAddresses: [],
      snatPorts: { min: 61000, max: 65535 },
      capacities: {},
      links: fake.linkSource(),
    });
    await dp.start(new AbortController().signal);
    expect(dp.attached.size).toBe(1);
    await dp.stop();
  });
});

describe('LayoutUpgrade failures', () => {
  test('a failure past the carry (the unpin) is logged, layout 2 is attached, and afterSync says to come back', async () => {
    const fake = new FakeNativeBinding();
    fake.ensureBpffs(PIN);
    for (const m of Object.values(V1)) fake.pinMap(`${PIN}/${m.name}`, m);
    const lines: string[] = [];
    const logger = createLogger('bpf', { write: (l) => lines.push(l) });
    const up = LayoutUpgrade.detect(fake, logger, PIN) as LayoutUpgrade;
    const obj = new BpfObject(fake, await fake.openObject(FAKE_OBJECT_PATH, { pinRoot: PIN }), FAKE_OBJECT_PATH);
    let attached = 0;
    const holds: boolean[] = [];
    const ctx = {
      obj,
      config: null,
      attach: () => attached++,
      hold: async (on: boolean) => {
        holds.push(on);
      },
      tc: new Tc(fake),
      links: () => fake.links(),
      ours: () => new Set<number>(),
      filters: [],
    };
    const unpin = fake.unpin.bind(fake);
    fake.unpin = (path: string) => {
      if (path.endsWith('_v1')) throw Object.assign(new Error(`unlink on ${path}: Device or resource busy`), { errno: 16, code: 'EBUSY', syscall: 'unlink' });
      return unpin(path);
    };
    expect(await up.afterSync(ctx)).toBe(false);
    expect(attached).toBe(1);
    expect(up.holdsAttach).toBe(false);
    expect(holds.at(-1), 'the hold is off after a failure').toBe(false);
    expect(lines.some((l) => / error bpf the upgrade from layout 1 failed/.test(l) && l.includes('Device or resource busy'))).toBe(true);
    fake.unpin = unpin;
    expect(await up.afterSync(ctx)).toBe(true);
    expect(attached).toBe(2);
    expect(fake.pins(PIN).filter((p) => p.endsWith('_v1'))).toEqual([]);
    obj.close();
  });
});
