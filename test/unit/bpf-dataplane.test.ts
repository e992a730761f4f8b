// BpfDataplane on the fake native binding (test/support/fake-native.ts):
// start with and without pinned state (adoption, orphan cleanup), full and
// incremental syncs, a sync that fails half way and the re-adopt after it
// (the original error reaches the caller, even when the re-adopt fails too),
// the next sync reconciling everything, a map that fills up, stop() leaving
// pins and filters in place, tc attach of the four programs (ingress and
// egress) as links come and go, and capacities given at load time.

import { describe, expect, test } from 'vitest';
import { programmedFromDump } from '../../src/dataplane/bpf/adopt.ts';
import { hasTraffic } from '../../src/dataplane/bpf/counters.ts';
import { TC_FILTER, BpfDataplane, type BpfDataplaneOptions } from '../../src/dataplane/bpf/dataplane.ts';
import {
  backend4Codec,
  configCodec,
  encode,
  HEADER_DEFINES,
  MAPS,
  SY_CFG_DETECT_CIDR,
  SY_CFG_DETECT_IFACE,
  svc4KeyCodec,
  svcValueCodec,
  type Traffic,
  trafficCodec,
  u32Codec,
  ZERO_TRAFFIC,
} from '../../src/dataplane/bpf/layout.ts';
import type { LinkSource } from '../../src/host/links.ts';
import { BpfMap, isNativeError, type NativeError } from '../../src/native/index.ts';
import { DataplaneError } from '../../src/dataplane/types.ts';
import { createLogger } from '../../src/util/log.ts';
import { checkConsistent, formatDump, resolveFrontends } from '../support/fake-maps.ts';
import { dataplaneOptions } from '../support/dataplane-options.ts';
import { FAKE_OBJECT_PATH, FakeNativeBinding, switchyardObject } from '../support/fake-native.ts';
import { dumpPinned } from '../support/pinned-dump.ts';
import { servicePort, snapshot } from '../support/snapshots.ts';

const PIN = '/sys/fs/bpf/switchyard';
const NODE = '198.18.0.10';

interface Setup {
  readonly fake: FakeNativeBinding;
  readonly dp: BpfDataplane;
  readonly logs: string[];
}

const INGRESS = { direction: 'ingress', ...TC_FILTER } as const;
const EGRESS = { direction: 'egress', ...TC_FILTER } as const;

function dataplane(fake: FakeNativeBinding, opts: Partial<BpfDataplaneOptions> = {}): Setup {
  const logs: string[] = [];
  const dp = new BpfDataplane(
    dataplaneOptions(fake, {
      log: createLogger('bpf', { level: 'debug', write: (l) => logs.push(l) }),
      pinPath: PIN,
      node: { ipv4: NODE, ipv6: 'fd00:198:18::10' },
      nodeInterface: 'eth0',
      podInterfaces: 'veth*,cali*',
      links: fake.linkSource(),
      ...opts,
    }),
  );
  return { fake, dp, logs };
}

/** A fake node: lo, eth0 (the node's), two pod interfaces and one that is neither. */
function node(fake = new FakeNativeBinding()): FakeNativeBinding {
  for (const name of ['eth0', 'veth1', 'cali2', 'docker0']) fake.addLink(name);
  return fake;
}

async function started(fake = node(), opts: Parameters<typeof dataplane>[1] = {}): Promise<Setup> {
  const s = dataplane(fake, opts);
  await s.dp.start(new AbortController().signal);
  return s;
}

/** What every frontend resolves to, read back through the binding. */
async function programmed(fake: FakeNativeBinding): Promise<Record<string, string[]>> {
  return resolveFrontends(await dumpPinned(fake, PIN));
}

/** The maps hold no orphans and every master is whole. */
async function expectClean(fake: FakeNativeBinding): Promise<void> {
  const d = await dumpPinned(fake, PIN);
  expect(programmedFromDump(d).orphans).toEqual([]);
  expect(checkConsistent(fake.store(PIN))).toEqual([]);
}

/** The kernel's refusal: a DataplaneError (ERR_SY_DATAPLANE_KERNEL) whose cause is the native error, returned. */
async function rejection(p: Promise<unknown>): Promise<NativeError & { readonly outer: DataplaneError }> {
  const e = await p.then(
    () => expect.unreachable('expected a rejection'),
    (err: unknown) => err,
  );
  expect(e, String(e)).toBeInstanceOf(DataplaneError);
  const outer = e as DataplaneError;
  expect(outer.code).toBe('ERR_SY_DATAPLANE_KERNEL');
  expect(isNativeError(outer.cause), String(outer.cause)).toBe(true);
  return Object.assign(outer.cause as NativeError, { outer });
}

/** The native error behind a DataplaneError, or the value itself. */
function nativeCause(e: unknown): unknown {
  return e instanceof DataplaneError ? e.cause : e;
}

const A = servicePort('a', '10.96.0.1', 80, ['10.244.1.1:8080', '10.244.1.2:8080']);
const B = servicePort('b', '10.96.0.2', 53, ['10.244.1.3:53', '10.244.2.3:53'], 'UDP');
const S1 = snapshot([A, B]);
const S1_PROGRAMMED = {
  '10.96.0.1:80/TCP int': ['10.244.1.1:8080/TCP', '10.244.1.2:8080/TCP'],
  '10.96.0.2:53/UDP int': ['10.244.1.3:53/UDP', '10.244.2.3:53/UDP'],
};
// a gains a backend (shared with c), b goes, c comes.
const A2 = servicePort('a', '10.96.0.1', 80, ['10.244.1.1:8080', '10.244.1.2:8080', '10.244.3.1:8080']);
const C = servicePort('c', '10.96.0.3', 443, ['10.244.3.1:8080']);
const S2 = snapshot([A2, C]);
const S2_PROGRAMMED = {
  '10.96.0.1:80/TCP int': ['10.244.1.1:8080/TCP', '10.244.1.2:8080/TCP', '10.244.3.1:8080/TCP'],
  '10.96.0.3:443/TCP int': ['10.244.3.1:8080/TCP'],
};

describe('start', () => {
  test('without pinned state: loads and pins the maps, writes the node config, attaches the four programs to the node and pod interfaces', async () => {
    const { fake, dp, logs } = await started();
    expect(fake.pins(PIN)).toEqual(
      Object.values(MAPS)
        .map((m) => `${PIN}/${m.name}`)
        .sort(),
    );
    const config = (await dumpPinned(fake, PIN)).get(MAPS.config.name);
    expect(config).toEqual([
      [
        encode(u32Codec, 0),
        encode(configCodec, {
          nodeAddr4: NODE,
          nodeAddr6: 'fd00:198:18::10',
          podCidr4: null,
          podCidr6: null,
          snatPortMin: 61000,
          snatPortMax: 65535,
          flags: SY_CFG_DETECT_CIDR,
        }),
      ],
    ]);
    expect(await programmed(fake)).toEqual({});
    expect([...dp.attached.values()].sort()).toEqual(['cali2 pod', 'eth0 net', 'veth1 pod']);
    const progName = (id: number | undefined) => fake.programName(id);
    const at = (name: string, f: typeof INGRESS | typeof EGRESS) => progName(fake.tcQuery(fake.ifNameToIndex(name), f)?.progId);
    expect([at('eth0', INGRESS), at('eth0', EGRESS)]).toEqual(['sy_from_net', 'sy_to_net']);
    for (const name of ['veth1', 'cali2']) expect([at(name, INGRESS), at(name, EGRESS)]).toEqual(['sy_from_pod', 'sy_to_pod']);
    for (const name of ['lo', 'docker0']) expect(fake.filters(fake.ifNameToIndex(name))).toBeNull();
    expect(logs.some((l) => /adopted pinned maps frontends=0 backends4=0 backends6=0/.test(l))).toBe(true);
    await dp.stop();
  });

  test('with pinned state from a previous daemon: adopts it, so the same snapshot needs no operation', async () => {
    const fake = node();
    const first = await started(fake);
    await first.dp.sync(S1);
    const progBefore = fake.tcQuery(fake.ifNameToIndex('eth0'), INGRESS)?.progId;
    await first.dp.stop();

    const second = await started(fake);
    expect(second.logs.some((l) => /adopted pinned maps frontends=2 backends4=4/.test(l))).toBe(true);
    expect(second.logs.some((l) => /removing inconsistent entries/.test(l))).toBe(false);
    const before = formatDump(await dumpPinned(fake, PIN));
    const calls = fake.calls.length;
    const r = await second.dp.sync(S1);
    expect({ frontendsChanged: r.frontendsChanged, operations: r.operations }).toEqual({ frontendsChanged: 0, operations: 0 });
    expect(fake.calls.slice(calls).filter((c) => c.op === 'update' || c.op === 'delete')).toEqual([]);
    expect(formatDump(await dumpPinned(fake, PIN))).toBe(before);
    // The new daemon's program replaced the old one's in the same filter.
    const progAfter = fake.tcQuery(fake.ifNameToIndex('eth0'), INGRESS)?.progId;
    expect(progAfter).toBeDefined();
    expect(progAfter).not.toBe(progBefore);
    await second.dp.stop();
  });

  test('with inconsistent pinned state: removes the orphans before anything else, keeps what is live', async () => {
    const fake = node();
    const first = await started(fake);
    await first.dp.sync(S1);
    await first.dp.stop();
    // What a daemon killed part way through a plan can leave: a slot of the
    // other generation, a slot beyond count, a master key with gen 1, a
    // slot with no master, a backend no slot points at.
    const svc = fake.pinnedMap(`${PIN}/${MAPS.svc4.name}`);
    const key = { addr: '10.96.0.1', port: 80, proto: 'TCP' as const, scope: 0 as const };
    const slot = (backendId: number) => encode(svcValueCodec, { backendId, count: 0, gen: 0, action: 0, flags: 0, svcId: 0, affinityTimeoutS: 0, maglevM: 0 });
    svc.update(encode(svc4KeyCodec, { ...key, gen: 1, slot: 1 }), slot(1));
    svc.update(encode(svc4KeyCodec, { ...key, gen: 0, slot: 7 }), slot(1));
    svc.update(encode(svc4KeyCodec, { ...key, gen: 1, slot: 0 }), slot(0));
    svc.update(encode(svc4KeyCodec, { addr: '10.96.9.9', port: 9, proto: 'TCP', scope: 0, gen: 0, slot: 1 }), slot(1));
    fake.pinnedMap(`${PIN}/${MAPS.backend4.name}`).update(encode(u32Codec, 99), encode(backend4Codec, { addr: '10.244.9.9', port: 9, proto: 'TCP', flags: 0 }));

    const second = await started(fake);
    expect(second.logs.some((l) => /removing inconsistent entries left in pinned maps ops=5/.test(l))).toBe(true);
    await expectClean(fake);
    expect(await programmed(fake)).toEqual(S1_PROGRAMMED);
    expect((await second.dp.sync(S1)).operations).toBe(0);
    await second.dp.stop();
  });

  test('a pinned map that does not match the object: start fails with the loader error', async () => {
    const fake = node();
    fake.ensureBpffs(PIN);
    fake.pinMap(`${PIN}/${MAPS.backend4.name}`, MAPS.backend4, { flags: 0 }); // preallocated: not the object's map
    const e = await rejection(dataplane(fake).dp.start(new AbortController().signal));
    expect([e.code, e.syscall]).toEqual(['EINVAL', 'bpf_object__load']);
    expect(e.message).toContain('parameter mismatch');
  });

  test('a node address of the wrong family fails start', async () => {
    await expect(dataplane(node(), { node: { ipv4: 'fd00::1', ipv6: null } }).dp.start(new AbortController().signal)).rejects.toThrow(
      /node address "fd00::1" is not an IPv4 address/,
    );
    await expect(dataplane(node(), { node: { ipv4: null, ipv6: '198.18.0.1' } }).dp.start(new AbortController().signal)).rejects.toThrow(/not an IPv6 address/);
  });

  test('capacities are given to the loader per map, and the pinned maps get them', async () => {
    const fake = node();
    const { dp } = await started(fake, { capacities: { svc4: 100, ct4: 64, ct6: 64 } });
    expect(fake.pinnedMap(`${PIN}/${MAPS.svc4.name}`).maxEntries).toBe(100);
    expect(fake.pinnedMap(`${PIN}/${MAPS.ct6.name}`).maxEntries).toBe(64);
    expect(fake.pinnedMap(`${PIN}/${MAPS.svc6.name}`).maxEntries).toBe(MAPS.svc6.maxEntries);
    await dp.stop();
  });

  test('metrics: mapUsage counts the programmed entries against the loaded max_entries; programAttachments names every tc hook', async () => {
    const fake = node();
    const { dp } = dataplane(fake, { capacities: { svc4: 100 } });
    expect(dp.mapUsage(), 'nothing before start').toStrictEqual([]);
    await dp.start(new AbortController().signal);
    await dp.sync(snapshot([servicePort('web', '10.96.0.10', 80, ['10.244.1.5:8080', '10.244.2.6:8080'])]));
    const usage = new Map(dp.mapUsage().map((u) => [u.map, u]));
    const dump = await dumpPinned(fake, PIN);
    for (const m of ['svc4', 'backend4', 'vip4', 'svc6'] as const) {
      expect(usage.get(MAPS[m].name)?.entries, `${m}: as many entries as the pinned map holds`).toBe((dump.get(MAPS[m].name) ?? []).length);
    }
    expect(usage.get(MAPS.backend4.name)?.entries).toBe(2);
    expect(usage.get(MAPS.svc4.name)?.capacity).toBe(100);
    expect(usage.get(MAPS.backend4.name)?.capacity).toBe(fake.pinnedMap(`${PIN}/${MAPS.backend4.name}`).maxEntries);
    expect(usage.has(MAPS.ct4.name), 'conntrack is not counted').toBe(false);
    const hooks = dp.programAttachments().map((a) => `${a.attachPoint} ${a.hook} ${a.program} ${a.attached}`);
    expect(hooks.sort()).toStrictEqual(
      [
        'cali2 egress sy_to_pod true',
        'cali2 ingress sy_from_pod true',
        'eth0 egress sy_to_net true',
        'eth0 ingress sy_from_net true',
        'veth1 egress sy_to_pod true',
        'veth1 ingress sy_from_pod true',
      ].sort(),
    );
    await dp.stop();
    expect(dp.mapUsage(), 'nothing after stop').toStrictEqual([]);
  });

  test('a capacity changed between runs: the pinned maps keep their size (and entries), the log names map, pinned and configured sizes, the plan uses the pinned size', async () => {
    const fake = node();
    const first = await started(fake, { capacities: { backend4: 2 } });
    await first.dp.sync(snapshot([A]));
    await first.dp.stop();
    const before = await programmed(fake);
    const second = await started(fake, { capacities: { backend4: 1000, ct4: 64 } });
    expect(fake.pinnedMap(`${PIN}/${MAPS.backend4.name}`).maxEntries, 'kept: recreating it would lose its entries').toBe(2);
    const warning = second.logs.find((l) => l.includes('a pinned map keeps its size'));
    expect(warning).toContain(MAPS.backend4.name);
    expect(warning).toMatch(/pinned=2\b.*configured=1000\b/);
    expect(
      second.logs.some((l) => l.includes('keeps its size') && l.includes(MAPS.ct4.name)),
      'ct4 was pinned at its default size',
    ).toBe(true);
    expect(await programmed(fake), 'nothing programmed was lost').toEqual(before);
    const r = await second.dp.sync(snapshot([A, B]));
    expect(
      r.problems.some((p) => /capacity|does not fit|full/i.test(p.message)),
      'B does not fit in the pinned 2-entry backend map: reported, not a kernel error',
    ).toBe(true);
    await second.dp.stop();
  });

  test('detect-local-mode: ClusterCIDR and NodeCIDR write the CIDRs, the interface modes the flag and attach to those interfaces', async () => {
    const fake = node();
    fake.addLink('cbr0');
    fake.addLink('tap5');
    const config = async () => configCodec.decode(((await dumpPinned(fake, PIN)).get(MAPS.config.name) ?? [])[0]?.[1] ?? Buffer.alloc(56));
    const c1 = await started(fake, { detectLocal: { mode: 'ClusterCIDR', cidrs: ['10.244.0.0/16', 'fd00:10:244::/56'] } });
    expect(await config()).toMatchObject({ podCidr4: '10.244.0.0/16', podCidr6: 'fd00:10:244::/56', flags: SY_CFG_DETECT_CIDR });
    await c1.dp.stop();
    const c2 = await started(fake, { detectLocal: { mode: 'NodeCIDR' } });
    expect(await config(), 'until its first sync, the pod CIDRs the daemon before wrote').toMatchObject({
      podCidr4: '10.244.0.0/16',
      podCidr6: 'fd00:10:244::/56',
      flags: SY_CFG_DETECT_CIDR,
    });
    await c2.dp.sync({ ...snapshot([A]), nodePodCIDRs: ['10.244.7.0/24'] });
    expect(await config(), 'the Node podCIDRs arrive with the snapshot').toMatchObject({ podCidr4: '10.244.7.0/24', flags: SY_CFG_DETECT_CIDR });
    await c2.dp.sync({ ...snapshot([A]), nodePodCIDRs: [] });
    expect(await config(), 'a Node without podCIDRs: none').toMatchObject({ podCidr4: null, podCidr6: null, flags: SY_CFG_DETECT_CIDR });
    await c2.dp.stop();
    const c3 = await started(fake, { detectLocal: { mode: 'BridgeInterface', bridge: 'cbr0' } });
    expect(await config()).toMatchObject({ podCidr4: null, flags: SY_CFG_DETECT_IFACE });
    expect([...c3.dp.attached.values()]).toContain('cbr0 pod');
    await c3.dp.stop();
    const c4 = await started(fake, { detectLocal: { mode: 'InterfaceNamePrefix', prefix: 'tap' } });
    expect([...c4.dp.attached.values()]).toContain('tap5 pod');
    await c4.dp.stop();
  });
});

test('NodeCIDR restart: the pod CIDRs pinned by the daemon before are kept from start to the first sync (pods stay pods)', async () => {
  const fake = node();
  const config = async () => configCodec.decode(((await dumpPinned(fake, PIN)).get(MAPS.config.name) ?? [])[0]?.[1] ?? Buffer.alloc(56));
  const fresh = await started(fake, { detectLocal: { mode: 'NodeCIDR' } });
  expect(await config(), 'a first start knows none').toMatchObject({ podCidr4: null, podCidr6: null });
  await fresh.dp.sync({ ...snapshot([A]), nodePodCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] });
  await fresh.dp.stop();
  const again = await started(fake, { detectLocal: { mode: 'NodeCIDR' } });
  expect(await config()).toMatchObject({ podCidr4: '10.244.1.0/24', podCidr6: 'fd00:10:244:1::/64', flags: SY_CFG_DETECT_CIDR });
  await again.dp.sync({ ...snapshot([A]), nodePodCIDRs: ['10.244.2.0/24'] });
  expect(await config(), "the first sync writes the Node's").toMatchObject({ podCidr4: '10.244.2.0/24', podCidr6: null });
  await again.dp.stop();
  // From an interface mode (no CIDR pinned): nothing to keep.
  const iface = await started(fake, { detectLocal: { mode: 'InterfaceNamePrefix', prefix: 'veth' } });
  await iface.dp.stop();
  await started(fake, { detectLocal: { mode: 'NodeCIDR' } });
  expect(await config()).toMatchObject({ podCidr4: null, podCidr6: null, flags: SY_CFG_DETECT_CIDR });
});

describe('sync', () => {
  test('before start it refuses', async () => {
    await expect(dataplane(node()).dp.sync(S1)).rejects.toThrow(/not started/);
  });

  test('a snapshot: programs every frontend, reports what it did and the bad input', async () => {
    const { fake, dp } = await started();
    const bad = servicePort('bad', '10.96.0.300', 80, ['10.244.1.9:80']);
    const r = await dp.sync(snapshot([A, B, bad]));
    expect(r.frontendsChanged).toBe(2);
    expect(r.operations).toBe(4 + 2 + 4 + 2); // backends, VIPs, slots, masters (fresh ids: the datapath makes their counter entries)
    expect(r.problems.map((p) => p.owner)).toEqual([bad.id]);
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
    expect(await programmed(fake)).toEqual(S1_PROGRAMMED);
    await expectClean(fake);
    await dp.stop();
  });

  test('an incremental sync touching one Service writes only that Service', async () => {
    const { fake, dp } = await started();
    await dp.sync(S1);
    const bEntries = async () =>
      (await dumpPinned(fake, PIN))
        .get(MAPS.svc4.name)
        ?.filter(([k]) => svc4KeyCodec.decode(k).addr === '10.96.0.2')
        .map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`)
        .sort();
    const bBefore = await bEntries();
    const calls = fake.calls.length;
    const a = servicePort('a', '10.96.0.1', 80, ['10.244.1.2:8080']);
    const r = await dp.sync(snapshot([a, B], new Set([a.id])));
    expect(r.frontendsChanged).toBe(1);
    // one new slot and its master flip (one batch), the two old slots, the dropped backend and its counters.
    expect(fake.calls.slice(calls).map((c) => `${c.op} ${c.map} ${c.count}`)).toEqual([
      'update sy_svc4_v2 2',
      'delete sy_svc4_v2 2',
      'delete sy_backend4_v2 1',
      'delete sy_be_cnt4_v2 1',
    ]);
    expect(r.operations).toBe(6);
    expect(await bEntries()).toEqual(bBefore);
    expect(await programmed(fake)).toEqual({ ...S1_PROGRAMMED, '10.96.0.1:80/TCP int': ['10.244.1.2:8080/TCP'] });
    await dp.stop();
  });

  test('a sync that fails half way: the original error reaches the caller, the maps are read back, the next sync reconciles everything', async () => {
    const { fake, dp } = await started();
    await dp.sync(S1);
    // Phase 2 (the new slots) fails after two records.
    fake.failMap({ op: 'update', map: MAPS.svc4.name, after: 2, code: 'ENOMEM' });
    const calls = fake.calls.length;
    const e = await rejection(dp.sync(snapshot([A2, B, C], new Set([A2.id, C.id]))));
    expect({ code: e.code, syscall: e.syscall, done: e.done }).toEqual({ code: 'ENOMEM', syscall: 'bpf_map_update_batch', done: 2 });
    expect(e).not.toHaveProperty('adoptError');
    // Re-adopted: dumped the maps, then removed what the plan had written
    // (two slots of the new generation and the new backend; the new ids
    // are fresh, so no counter entries; the new VIP comes after the
    // masters, so it was never written): S1 is back.
    expect(fake.calls.slice(calls).map((c) => `${c.op} ${c.map}`)).toEqual([
      'update sy_backend4_v2',
      'update sy_svc4_v2',
      ...['svc4', 'svc6', 'backend4', 'backend6', 'vip4', 'vip6', 'srcrange4', 'srcrange6', 'aff_be', 'maglev', 'svc_cnt', 'be_cnt4', 'be_cnt6'].map(
        (m) => `dump sy_${m}_v2`,
      ),
      'delete sy_svc4_v2',
      'delete sy_backend4_v2',
    ]);
    expect(await programmed(fake)).toEqual(S1_PROGRAMMED);
    await expectClean(fake);
    // Nothing marked changed: the dataplane must still reconcile the whole snapshot.
    const r = await dp.sync(snapshot([A2, C], new Set()));
    expect(r.frontendsChanged).toBe(3);
    expect(await programmed(fake)).toEqual(S2_PROGRAMMED);
    await expectClean(fake);
    await dp.stop();
  });

  test('a sync that fails and whose re-adopt fails too: the original error still reaches the caller, the next sync reads the maps back first', async () => {
    const { fake, dp, logs } = await started();
    await dp.sync(S1);
    fake.failMap({ op: 'update', map: MAPS.svc4.name, after: 1, code: 'ENOMEM' });
    fake.failMap({ op: 'dump', map: MAPS.svc4.name, code: 'EAGAIN' });
    const e = await rejection(dp.sync(S2));
    expect({ code: e.code, syscall: e.syscall, done: e.done }).toEqual({ code: 'ENOMEM', syscall: 'bpf_map_update_batch', done: 1 });
    const adoptError = nativeCause((e.outer as DataplaneError & { adoptError?: unknown }).adoptError);
    expect(isNativeError(adoptError) && { code: adoptError.code, syscall: adoptError.syscall }).toEqual({ code: 'EAGAIN', syscall: 'bpf_map_get_next_key' });
    expect(logs.some((l) => / error bpf reading the maps back after a failed sync failed; .*Resource temporarily unavailable/.test(l))).toBe(true);

    const calls = fake.calls.length;
    const r = await dp.sync(snapshot([A2, C], new Set()));
    expect(fake.calls[calls]).toEqual({ op: 'dump', map: MAPS.svc4.name, count: 0 });
    expect(r.frontendsChanged).toBe(3);
    expect(await programmed(fake)).toEqual(S2_PROGRAMMED);
    await expectClean(fake);
    await dp.stop();
  });

  test('a map that fills up: E2BIG as a native error naming the record, the partial write undone, smaller snapshots still sync', async () => {
    const fake = node(new FakeNativeBinding({ objects: { [FAKE_OBJECT_PATH]: switchyardObject({ maxEntries: { [MAPS.backend4.name]: 3 } }) } }));
    const { dp } = await started(fake);
    const e = await rejection(dp.sync(S1)); // four backends
    expect({ errno: e.errno, code: e.code, syscall: e.syscall, done: e.done }).toEqual({ errno: 7, code: 'E2BIG', syscall: 'bpf_map_update_batch', done: 3 });
    expect(e.message).toMatch(/Argument list too long \(record 3 of 4\)$/);
    expect(await programmed(fake)).toEqual({});
    expect((await dumpPinned(fake, PIN)).get(MAPS.backend4.name)).toEqual([]);
    await dp.sync(snapshot([A]));
    expect(await programmed(fake)).toEqual({ '10.96.0.1:80/TCP int': S1_PROGRAMMED['10.96.0.1:80/TCP int'] });
    await expectClean(fake);
    await dp.stop();
  });

  test('capacities known to the control plane: what does not fit is reported by name, what fits is programmed, nothing is emptied', async () => {
    const { fake, dp } = await started(node(), { capacities: { backend4: 3 } });
    const r = await dp.sync(S1); // four backends: b's second one does not fit, so b is left out
    expect(r.problems.map((p) => [p.owner, p.message])).toEqual([
      [B.id, '10.96.0.2:53/UDP not programmed: map full: backend4 holds 2 of 3 entries, this frontend needs 2 more'],
    ]);
    expect(await programmed(fake)).toEqual({ '10.96.0.1:80/TCP int': S1_PROGRAMMED['10.96.0.1:80/TCP int'] });
    await expectClean(fake);
    // a loses a backend: now b fits (retried without being in the changed set).
    const a = servicePort('a', '10.96.0.1', 80, ['10.244.1.1:8080']);
    const r2 = await dp.sync(snapshot([a, B], new Set([a.id])));
    expect(
      r2.problems.map((p) => p.owner),
      'the freed id is quarantined: b still does not fit',
    ).toEqual([B.id]);
    expect(await programmed(fake)).toEqual({ '10.96.0.1:80/TCP int': ['10.244.1.1:8080/TCP'] });
    await expectClean(fake);
    await dp.stop();
  });
});

describe('stop', () => {
  test('leaves the maps pinned and the program attached, releases every fd, stops following links', async () => {
    const { fake, dp } = await started();
    await dp.sync(S1);
    const eth0 = fake.ifNameToIndex('eth0');
    const prog = fake.tcQuery(eth0, INGRESS);
    await dp.stop();
    expect(fake.openFds()).toBe(0);
    expect(fake.pins(PIN)).toHaveLength(Object.keys(MAPS).length);
    expect(await programmed(fake)).toEqual(S1_PROGRAMMED);
    expect(fake.tcQuery(eth0, INGRESS)).toEqual(prog);
    const veth = fake.addLink('veth7');
    expect(fake.filters(veth)).toBeNull();
    expect(dp.attached.has(veth)).toBe(false);
    await expect(dp.sync(S1)).rejects.toThrow();
  });
});

describe('links', () => {
  test('attaches to pod interfaces as they appear, forgets them as they go', async () => {
    const { fake, dp, logs } = await started(node(), { nodeInterface: null });
    expect([...dp.attached.values()].sort()).toEqual(['cali2 pod', 'veth1 pod']);
    const veth = fake.addLink('veth3');
    expect(dp.attached.get(veth)).toBe('veth3 pod');
    expect(fake.tcQuery(veth, INGRESS)?.progId).toBe(fake.tcQuery(fake.ifNameToIndex('veth1'), INGRESS)?.progId);
    expect(fake.tcQuery(veth, EGRESS)?.progId).toBe(fake.tcQuery(fake.ifNameToIndex('veth1'), EGRESS)?.progId);
    fake.addLink('wlan0'); // neither the node interface nor a pod interface
    expect(dp.attached.size).toBe(3);
    fake.removeLink('veth3');
    expect(dp.attached.has(veth)).toBe(false);
    expect(logs.filter((l) => / info bpf forgot interface /.test(l))).toEqual([expect.stringContaining(`interface=veth3 ifindex=${veth}`)]);
    // The same name back with a new index: attached again.
    const again = fake.addLink('veth3');
    expect(again).not.toBe(veth);
    expect(dp.attached.get(again)).toBe('veth3 pod');
    expect(fake.filters(again)?.map((f) => `${f.direction} ${f.handle} ${f.priority}`)).toEqual([
      `egress ${TC_FILTER.handle} ${TC_FILTER.priority}`,
      `ingress ${TC_FILTER.handle} ${TC_FILTER.priority}`,
    ]);
    await dp.stop();
  });

  test('egress programs go on every interface before any ingress program (replacing layout 1, which reversed replies at ingress)', async () => {
    const fake = node();
    const order: string[] = [];
    const attach = fake.tcAttach.bind(fake);
    fake.tcAttach = (ifindex, fd, opts) => {
      order.push(`${fake.ifIndexToName(ifindex)} ${opts.direction}`);
      return attach(ifindex, fd, opts);
    };
    const { dp } = await started(fake);
    const lastEgress = order.findLastIndex((o) => o.endsWith(' egress'));
    const firstIngress = order.findIndex((o) => o.endsWith(' ingress'));
    expect(order.toSorted()).toEqual(['cali2 egress', 'cali2 ingress', 'eth0 egress', 'eth0 ingress', 'veth1 egress', 'veth1 ingress']);
    expect(lastEgress, order.join(', ')).toBeLessThan(firstIngress);
    await dp.stop();
  });

  test('a link that is gone by the time of the attach is logged and skipped, the others are attached', async () => {
    const fake = node();
    const real = fake.linkSource();
    const links: LinkSource = { list: () => [...real.list(), { name: 'veth9', ifindex: 999 }], watch: real.watch };
    const { dp, logs } = await started(fake, { links });
    expect([...dp.attached.values()].sort()).toEqual(['cali2 pod', 'eth0 net', 'veth1 pod']);
    expect(logs.some((l) => /warn bpf attach failed interface=veth9 .*No such device/.test(l))).toBe(true);
    await dp.stop();
  });
});

describe("handover of kube-proxy's connections (kernel-flows.ts)", () => {
  const KERNEL_FLOW = {
    family: 'IPv4' as const,
    proto: 'tcp',
    state: 'ESTABLISHED',
    original: { src: '10.244.1.9', dst: '10.96.0.1', sport: 40000, dport: 80 },
    reply: { src: '10.244.1.2', dst: '10.244.1.9', sport: 8080, dport: 40000 },
  };

  test('the first sync lands with SY_CFG_KERNEL_HANDOVER set, writes SY_CT_F_KERNEL entries for kernel-DNATed TCP flows to its frontends, then clears the flag; later syncs do not look', async () => {
    let reads = 0;
    const { fake, dp, logs } = await started(node(), {
      kernelConntrack: () => {
        reads++;
        return [KERNEL_FLOW, { ...KERNEL_FLOW, original: { ...KERNEL_FLOW.original, dst: '10.96.0.99' } }];
      },
    });
    await dp.sync(S1);
    const ct = ((await dumpPinned(fake, PIN)).get(MAPS.ct4.name) ?? []).map(([k, v]) => ({
      key: MAPS.ct4.keyCodec.decode(k),
      value: MAPS.ct4.valueCodec.decode(v),
    }));
    expect(ct.map((e) => e.key)).toStrictEqual([{ saddr: '10.244.1.9', daddr: '10.96.0.1', sport: 40000, dport: 80, proto: 'TCP', dir: 0 }]);
    expect(ct[0]?.value).toMatchObject({ flags: HEADER_DEFINES.SY_CT_F_KERNEL, backendAddr: '10.244.1.2', backendPort: 8080 });
    const configFlags = logs.filter((l) => l.includes('node config')).map((l) => Number(/flags=(\d+)/.exec(l)?.[1]));
    const handover = HEADER_DEFINES.SY_CFG_KERNEL_HANDOVER;
    expect(configFlags.map((f) => (f & handover) !== 0)).toStrictEqual([false, true, false]);
    expect(logs.some((l) => /connections the kernel translated \(kube-proxy\) stay with the kernel until they end.*flows=1/.test(l))).toBe(true);
    const [config] = (await dumpPinned(fake, PIN)).get(MAPS.config.name) ?? [];
    expect((configCodec.decode(config?.[1] as Buffer).flags & handover) === 0, 'the flag is cleared in the map').toBe(true);
    await dp.sync(snapshot([A]));
    expect(reads, 'incremental syncs do not read the conntrack table').toBe(1);
    await dp.stop();
  });
});

describe('traffic counters', () => {
  /** Per-CPU struct sy_traffic values (one per fake CPU) written into a pinned counter map. */
  async function count(fake: FakeNativeBinding, map: 'svccnt' | 'becnt4', id: number, perCpu: Traffic[]): Promise<void> {
    const m = BpfMap.openPinned(`${PIN}/${MAPS[map].name}`, fake);
    try {
      const v = Buffer.alloc(m.valueStride);
      perCpu.forEach((t, cpu) => trafficCodec.encodeInto(t, v, cpu * 40));
      await m.update([[encode(u32Codec, id), v]]);
    } finally {
      m.close();
    }
  }
  const t = (packets: number, conns: number): Traffic => ({
    packets: BigInt(packets),
    bytes: BigInt(packets * 100),
    replyPackets: BigInt(packets),
    replyBytes: BigInt(packets * 50),
    conns: BigInt(conns),
  });

  test('counters(): summed over CPUs, one row per programmed frontend and backend; trafficCounters(): per Service port and kind, busy endpoints only', async () => {
    const { fake, dp } = await started();
    expect(await dp.counters()).toEqual({ frontends: expect.any(Array), backends: [] });
    await dp.sync(S1);
    const c0 = await dp.counters();
    const a = c0.frontends.find((f) => f.key === '10.96.0.1:80/TCP');
    const be = c0.backends.find((b) => b.backend.addr === '10.244.1.2' && b.backend.port === 8080);
    expect(a?.traffic).toEqual(ZERO_TRAFFIC);
    expect(c0.backends.map((b) => b.traffic)).toEqual(c0.backends.map(() => ZERO_TRAFFIC));
    await count(fake, 'svccnt', a?.svcId as number, [t(3, 1), t(4, 2)]);
    await count(fake, 'becnt4', be?.id as number, [t(0, 0), t(7, 3)]);
    const c1 = await dp.counters();
    expect(c1.frontends.find((f) => f.key === '10.96.0.1:80/TCP')).toMatchObject({ kind: 'clusterIP', owner: A.id, traffic: t(7, 3) });
    expect(c1.backends.find((b) => b.id === be?.id)?.traffic).toEqual(t(7, 3));
    const report = await dp.trafficCounters();
    expect(report.services.find((r) => r.service === 'a')).toEqual({
      namespace: A.namespace,
      service: 'a',
      portName: A.portName,
      protocol: 'TCP',
      frontend: 'clusterIP',
      ipFamily: 'IPv4',
      packets: 7,
      bytes: 700,
      replyPackets: 7,
      replyBytes: 350,
      connections: 3,
    });
    expect(report.services.map((r) => r.service).sort()).toEqual(['a', 'b']);
    expect(report.backends).toEqual([
      { endpoint: '10.244.1.2:8080', protocol: 'TCP', packets: 7, bytes: 700, replyPackets: 7, replyBytes: 350, connections: 3 },
    ]);
    await dp.stop();
  });

  test('maps pinned by a version without counters: the adopt at start writes nothing, every live id counts from zero, a new id reused after the restart gets a zeroed entry', async () => {
    const fake = node();
    const first = await started(fake);
    await first.dp.sync(S1);
    await first.dp.stop();
    // The counter maps are new next to the older daemon's maps: empty.
    for (const m of ['svccnt', 'becnt4'] as const) {
      const map = BpfMap.openPinned(`${PIN}/${MAPS[m].name}`, fake);
      await map.delete((await map.dump()).map(([k]) => k));
      map.close();
    }
    const second = await started(fake);
    const d = await dumpPinned(fake, PIN);
    expect([d.get(MAPS.svccnt.name)?.length, d.get(MAPS.becnt4.name)?.length], 'the datapath makes them on the first packet').toEqual([0, 0]);
    const c = await second.dp.counters();
    expect(c.frontends.length + c.backends.length).toBe(2 + 4);
    expect([...c.frontends, ...c.backends].every((x) => !hasTraffic(x.traffic))).toBe(true);
    await expectClean(fake);
    // After a restart no id is known to be fresh: a flow of an id freed before it may have left an entry.
    await second.dp.sync(snapshot([A, B, C]));
    const after = await dumpPinned(fake, PIN);
    expect([after.get(MAPS.svccnt.name)?.length, after.get(MAPS.becnt4.name)?.length], "C's frontend and backend, zeroed").toEqual([1, 1]);
    await second.dp.stop();
  });
});
