// The fake native binding (test/support/fake-native.ts) against the real
// addon and kernel, so the fake cannot drift: the same calls go to both and
// the results must be equal. Object shape (maps, programs, map info); raw
// map operations and their errors (errno, code, syscall, done, message);
// pinned-map reuse and a mismatched pin; the BpfDataplane driven through
// the same syncs on both, comparing sorted dumps of every map after each
// step and the errors where both fail (a map that fills up part way through
// a batch, then the re-adopt); and a tc transcript from a throwaway network
// namespace. The maps live in a bpffs mounted for this test under /run.

import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BpfDataplane } from '../../src/dataplane/bpf/dataplane.ts';
import { backend4Codec, encodeMany, MAPS, u32Codec } from '../../src/dataplane/bpf/layout.ts';
import { dataplaneOptions } from '../support/dataplane-options.ts';

const encodeBackendIds = (ids: readonly number[]): Buffer => encodeMany(u32Codec, ids);
const encodeBackends = (bs: ReadonlyArray<{ addr: string; port: number; proto: 'TCP' | 'UDP' | 'SCTP' }>): Buffer =>
  encodeMany(
    backend4Codec,
    bs.map((b) => ({ ...b, flags: 0 })),
  );
import { DataplaneError } from '../../src/dataplane/types.ts';
import type { LinkSource } from '../../src/host/links.ts';
import type { ProxySnapshot } from '../../src/model/types.ts';
import { loadBinding, type NativeBinding, type NativeError } from '../../src/native/index.ts';
import { resolveFrontends } from '../support/fake-maps.ts';
import { FakeNativeBinding, switchyardObject } from '../support/fake-native.ts';
import { dumpPinned } from '../support/pinned-dump.ts';
import { thrownBy } from '../support/thrown.ts';
import { BPF_OBJECT, needs, REPO } from '../support/requirements.ts';
import { servicePort, snapshot } from '../support/snapshots.ts';
import { SCENARIO_LINK, type Step, tcScenario } from '../support/tc-scenario.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';

const skip = needs('fake vs kernel', ['root', 'bpf-object', 'native-addon', 'ip', 'bpftool']);

const ROOT = `/run/sy-fake-vs-kernel-${process.pid}`;
const NETNS = `sy-fvk-${process.pid}`;

type Outcome =
  | { ok: unknown }
  | { error: { code: unknown; errno: unknown; syscall: unknown; done: unknown; message: string } | { type: string; message: string } };

/** A call's result or its error, with fd numbers (which differ between the two) blanked. */
async function outcome(f: () => unknown): Promise<Outcome> {
  try {
    return { ok: plain(await f()) };
  } catch (thrown) {
    // A dataplane wraps the kernel's refusal in a DataplaneError: compare the native error behind it.
    const e = thrown instanceof DataplaneError && thrown.cause !== undefined ? thrown.cause : thrown;
    const err = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown; done?: unknown };
    const message = err.message.replace(/fd \d+/g, 'fd N');
    if (err.code === undefined) return { error: { type: err.name, message } };
    return { error: { code: err.code, errno: err.errno, syscall: err.syscall, done: err.done, message } };
  }
}

function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** Every map pinned under pinRoot, entry by entry, sorted. */
async function rawDump(native: NativeBinding, pinRoot: string): Promise<string[]> {
  const out: string[] = [];
  for (const [name, entries] of await dumpPinned(native, pinRoot)) for (const [k, v] of entries) out.push(`${name} ${k.toString('hex')}=${v.toString('hex')}`);
  return out.sort();
}

function pinnedNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.startsWith('sy_'))
    .sort();
}

const noLinks: LinkSource = { list: () => [], watch: () => ({ stop() {} }) };

describe.skipIf(skip)('the fake binding behaves like the addon on this kernel', () => {
  let real: NativeBinding;
  const fakeBinding = (): FakeNativeBinding => new FakeNativeBinding({ cpus: real.numPossibleCpus(), objects: { [BPF_OBJECT]: switchyardObject() } });

  beforeAll(() => {
    real = loadBinding();
    expect(real.ensureBpffs(ROOT)).toBe(true);
  });

  afterAll(() => {
    spawnSync('ip', ['netns', 'del', NETNS], { stdio: 'ignore' });
    while (spawnSync('umount', [ROOT], { stdio: 'ignore' }).status === 0);
    rmSync(ROOT, { recursive: true, force: true });
  });

  test('the object: maps, programs, map info', async () => {
    const fake = fakeBinding();
    const shape = async (native: NativeBinding) => {
      const obj = await native.openObject(BPF_OBJECT, { pinRoot: `${ROOT}/shape` });
      try {
        return {
          maps: obj.maps().map(({ fd, ...m }) => ({ ...m, info: (({ id, ...i }) => i)(native.mapInfo(fd)) })),
          // progInfo by the id of each program: its kernel name and type (what status prints).
          programs: obj.programs().map(({ fd, ...p }) => ({ ...p, info: (({ id, ...i }) => i)(native.progInfo(native.progIdFromFd(fd))) })),
          unknownProgram: (({ code, syscall }) => ({ code, syscall }))(thrownBy(() => native.progInfo(0x7ffffff0), Error) as NativeError),
          pins: [] as string[],
        };
      } finally {
        obj.close();
      }
    };
    const want = await shape(real);
    want.pins = pinnedNames(`${ROOT}/shape`);
    const got = await shape(fake);
    got.pins = fake.pins(`${ROOT}/shape`).map((p) => p.slice(`${ROOT}/shape/`.length));
    expect(got).toEqual(want);
    expect(want.maps.map((m) => m.name).filter((n) => n.startsWith('sy_'))).toEqual(Object.values(MAPS).map((m) => m.name));
  });

  test('map operations and their errors', async () => {
    const scenario = async (native: NativeBinding): Promise<Array<[string, Outcome]>> => {
      const pinRoot = `${ROOT}/maps`;
      const obj = await native.openObject(BPF_OBJECT, { pinRoot });
      const fd = (name: string): number => obj.maps().find((m) => m.name === name)?.fd ?? -1;
      const be = fd(MAPS.backend4.name);
      const cfg = fd(MAPS.config.name);
      const stats = fd(MAPS.stats.name);
      const stride = native.mapInfo(stats).valueStride;
      const ids = (...n: number[]) => encodeBackendIds(n);
      const addrs = (...n: number[]) => encodeBackends(n.map((i) => ({ addr: `10.244.0.${i}`, port: 80, proto: 'TCP' as const })));
      const steps: Array<[string, () => unknown]> = [
        ['update 3', () => native.mapUpdate(be, ids(1, 2, 3), addrs(1, 2, 3), 4, 8)],
        ['later record wins', () => native.mapUpdate(be, ids(4, 4), addrs(4, 5), 4, 8)],
        ['lookup with absent keys', () => native.mapLookup(be, ids(1, 9, 4), 4, 8)],
        ['NOEXIST, an existing key second', () => native.mapUpdate(be, ids(5, 1, 6), addrs(5, 1, 6), 4, 8, 1)],
        ['EXIST on a missing key', () => native.mapUpdate(be, ids(7), addrs(7), 4, 8, 2)],
        ['EXIST on present keys', () => native.mapUpdate(be, ids(1, 2), addrs(11, 12), 4, 8, 2)],
        ['flags 3', () => native.mapUpdate(be, ids(7), addrs(7), 4, 8, 3)],
        ['BPF_F_LOCK', () => native.mapUpdate(be, ids(7), addrs(7), 4, 8, 4)],
        ['delete with absent keys first, between, last', () => native.mapDelete(be, ids(90, 1, 91, 2, 92), 4)],
        ['delete nothing', () => native.mapDelete(be, ids(), 4)],
        ['update nothing', () => native.mapUpdate(be, ids(), addrs(), 4, 8)],
        ['dump', async () => sortDump(await native.mapDump(be, 4, 8), 4, 8)],
        ['key size', () => native.mapUpdate(be, Buffer.alloc(12), addrs(1), 12, 8)],
        ['value size', () => native.mapUpdate(be, ids(1), Buffer.alloc(12), 4, 12)],
        ['value bytes', () => native.mapUpdate(be, ids(1), Buffer.alloc(12), 4, 8)],
        ['key bytes', () => native.mapDelete(be, Buffer.alloc(6), 4)],
        ['key size 0', () => native.mapDelete(be, Buffer.alloc(0), 0)],
        ['lookup value size', () => native.mapLookup(be, ids(1), 4, 9)],
        ['dump key size', () => native.mapDump(be, 8, 8)],
        ['array: update past the end', () => native.mapUpdate(cfg, ids(0, 1), Buffer.alloc(16, 1), 4, 8)],
        ['array: lookup in and past the end', () => native.mapLookup(cfg, ids(0, 1, 5), 4, 8)],
        ['array: NOEXIST', () => native.mapUpdate(cfg, ids(0), Buffer.alloc(8), 4, 8, 1)],
        ['array: EXIST', () => native.mapUpdate(cfg, ids(0), Buffer.alloc(8, 2), 4, 8, 2)],
        ['array: delete', () => native.mapDelete(cfg, ids(0), 4)],
        ['array: dump', () => native.mapDump(cfg, 4, 8)],
        ['per-CPU: update', () => native.mapUpdate(stats, ids(3), Buffer.alloc(stride, 7), 4, 8)],
        ['per-CPU: one CPU only', () => native.mapUpdate(stats, ids(3), Buffer.alloc(8), 4, 8)],
        ['per-CPU: dump', () => native.mapDump(stats, 4, 8)],
        ['open a missing pin', () => native.mapOpenPinned(`${pinRoot}/nope`)],
        ['open a directory', () => native.mapOpenPinned(pinRoot)],
        ['info of a bad fd', () => native.mapInfo(1_000_000)],
        ['update a bad fd', () => native.mapUpdate(1_000_000, ids(1), addrs(1), 4, 8)],
        ['close a bad fd', () => native.closeFd(1_000_000)],
        ['program id of a bad fd', () => native.progIdFromFd(1_000_000)],
        ['ensureBpffs inside the bpffs', () => native.ensureBpffs(`${pinRoot}/sub`)],
        ['ensureBpffs of nothing', () => native.ensureBpffs('')],
        ['keys not bytes', () => native.mapUpdate(be, 'x' as unknown as Uint8Array, addrs(1), 4, 8)],
        ['fd not a number', () => native.mapInfo('3' as unknown as number)],
      ];
      const out: Array<[string, Outcome]> = [];
      for (const [what, f] of steps) out.push([what, await outcome(f)]);
      const pinned = native.mapOpenPinned(`${pinRoot}/${MAPS.backend4.name}`);
      out.push(['pinned map dump', await outcome(async () => sortDump(await native.mapDump(pinned, 4, 8), 4, 8))]);
      native.closeFd(pinned);
      out.push(['info of a closed fd', await outcome(() => native.mapInfo(pinned))]);
      obj.close();
      out.push(['maps() of a closed object', await outcome(() => obj.maps())]);
      return out;
    };
    const want = await scenario(real);
    const got = await scenario(fakeBinding());
    expect(got).toEqual(want);
    // The scenario did exercise failures (not two empty transcripts).
    expect(want.filter(([, o]) => 'error' in o).length).toBeGreaterThan(15);
  });

  test('pinned-map reuse: a mismatched pin fails the load and the load unpins what it pinned; a compatible pin is reused under its own name', async () => {
    const fake = fakeBinding();
    const dir = `${ROOT}/reuse`;
    real.ensureBpffs(dir);
    fake.ensureBpffs(dir);
    execFileSync('bpftool', [
      'map',
      'create',
      `${dir}/${MAPS.backend4.name}`,
      'type',
      'hash',
      'key',
      '4',
      'value',
      '8',
      'entries',
      '16',
      'name',
      MAPS.backend4.name,
      'flags',
      '1',
    ]);
    fake.pinMap(`${dir}/${MAPS.backend4.name}`, { ...MAPS.backend4, maxEntries: 16 });
    const load = (native: NativeBinding) => outcome(async () => (await native.openObject(BPF_OBJECT, { pinRoot: dir })).maps());
    const want = await load(real);
    expect(await load(fake)).toEqual(want);
    expect('error' in want && want.error.message).toMatch(/parameter mismatch/);
    expect(fake.pins(dir).map((p) => p.slice(dir.length + 1))).toEqual(pinnedNames(dir));

    rmSync(`${dir}/${MAPS.backend4.name}`);
    fake.unpin(`${dir}/${MAPS.backend4.name}`);
    execFileSync('bpftool', [
      'map',
      'create',
      `${dir}/${MAPS.backend4.name}`,
      'type',
      'hash',
      'key',
      '4',
      'value',
      '8',
      'entries',
      '131072',
      'name',
      'other_name',
      'flags',
      '1',
    ]);
    fake.pinMap(`${dir}/${MAPS.backend4.name}`, MAPS.backend4, { name: 'other_name' });
    const names = async (native: NativeBinding) => {
      const obj = await native.openObject(BPF_OBJECT, { pinRoot: dir });
      const n = obj.maps().map((m) => m.name);
      obj.close();
      return n;
    };
    const realNames = await names(real);
    expect(await names(fake)).toEqual(realNames);
    expect(realNames).toContain('other_name');
  });

  describe('the dataplane, synced through the same snapshots', () => {
    const A = servicePort('a', '10.96.0.1', 80, ['10.244.1.1:8080', '10.244.1.2:8080']);
    const B = servicePort('b', '10.96.0.2', 53, ['10.244.1.3:53', '10.244.2.3:53'], 'UDP');
    const A2 = servicePort('a', '10.96.0.1', 80, ['10.244.1.2:8080', '10.244.1.4:8080']);
    const C = servicePort('c', '10.96.0.3', 443, ['10.244.1.4:8080', '10.244.1.2:8080']); // backends shared with a
    const D = servicePort('d', '10.96.0.4', 8080, ['10.244.1.4:8080']);
    const BAD = servicePort('bad', '10.96.0.300', 80, ['10.244.9.9:80']);

    async function both(pinRoot: string) {
      const fake = fakeBinding();
      const make = (native: NativeBinding) =>
        new BpfDataplane(
          dataplaneOptions(native, { objectPath: BPF_OBJECT, pinPath: pinRoot, node: { ipv4: '198.18.0.10', ipv6: null }, podInterfaces: '', links: noLinks }),
        );
      const dps = { real: make(real), fake: make(fake) };
      await dps.real.start(new AbortController().signal);
      await dps.fake.start(new AbortController().signal);
      const compare = async (): Promise<string[]> => {
        const want = await rawDump(real, pinRoot);
        expect(await rawDump(fake, pinRoot)).toEqual(want);
        return want;
      };
      const sync = async (s: ProxySnapshot): Promise<unknown> => {
        const r = await outcome(async () => {
          const { durationMs, ...rest } = await dps.real.sync(s);
          return rest;
        });
        const f = await outcome(async () => {
          const { durationMs, ...rest } = await dps.fake.sync(s);
          return rest;
        });
        expect(f).toEqual(r);
        await compare();
        return r;
      };
      return { fake, dps, compare, sync };
    }

    test('adds, endpoint changes, shared backends, removals, bad input, a full resync, everything gone', async () => {
      const pinRoot = `${ROOT}/dataplane`;
      const { dps, compare, sync } = await both(pinRoot);
      expect((await compare()).filter((l) => l.startsWith(MAPS.config.name))).toHaveLength(1);
      await sync(snapshot([A, B]));
      const d = await dumpPinned(real, pinRoot);
      expect(resolveFrontends(d)).toEqual({
        '10.96.0.1:80/TCP int': ['10.244.1.1:8080/TCP', '10.244.1.2:8080/TCP'],
        '10.96.0.2:53/UDP int': ['10.244.1.3:53/UDP', '10.244.2.3:53/UDP'],
      });
      await sync(snapshot([A2, B], new Set([A2.id])));
      await sync(snapshot([A2, B, C, D], new Set([C.id, D.id])));
      await sync(snapshot([A2, C, D], new Set([B.id])));
      expect(await sync(snapshot([A2, C, D, BAD], new Set([BAD.id])))).toMatchObject({ ok: { problems: [{ owner: BAD.id }] } });
      expect(await sync(snapshot([A2, C, D]))).toMatchObject({ ok: { frontendsChanged: 0, operations: 0 } });
      await sync(snapshot([]));
      expect((await compare()).filter((l) => l.startsWith(MAPS.svc4.name) || l.startsWith(MAPS.backend4.name))).toEqual([]);
      await dps.real.stop();
      await dps.fake.stop();
    });

    test('a map that fills up part way through a batch: the same error, the same read-back, the same recovery', async () => {
      const pinRoot = `${ROOT}/full`;
      const { fake, dps, sync } = await both(pinRoot);
      await sync(snapshot([A, B])); // 4 backends
      // Fill the backend map but for two entries, with ids no plan uses.
      const free = 2;
      const fill = MAPS.backend4.maxEntries - 4 - free;
      const junkIds = Array.from({ length: fill }, (_, i) => 1_000_000 + i);
      const keys = encodeBackendIds(junkIds);
      const values = encodeBackends(junkIds.map(() => ({ addr: '10.244.250.250', port: 1, proto: 'TCP' as const })));
      const raw = async (native: NativeBinding): Promise<Outcome[]> => {
        const fd = native.mapOpenPinned(`${pinRoot}/${MAPS.backend4.name}`);
        const one = (id: number) => encodeBackendIds([id]);
        const addr = encodeBackends([{ addr: '10.244.251.1', port: 2, proto: 'TCP' }]);
        const out = [
          await outcome(() => native.mapUpdate(fd, keys, values, 4, 8)),
          // Full: replacing a key needs no room, a new key does not fit; BPF_NOEXIST says EEXIST before E2BIG.
          await outcome(() => native.mapUpdate(fd, encodeBackendIds([2_000_000, 2_000_001]), Buffer.concat([addr, addr]), 4, 8)),
          await outcome(() => native.mapUpdate(fd, one(1_000_000), addr, 4, 8)),
          await outcome(() => native.mapUpdate(fd, one(3_000_000), addr, 4, 8)),
          await outcome(() => native.mapUpdate(fd, one(1_000_001), addr, 4, 8, 1)),
          await outcome(() => native.mapDelete(fd, encodeBackendIds([2_000_000, 2_000_001]), 4)),
        ];
        native.closeFd(fd);
        return out;
      };
      const want = await raw(real);
      expect(await raw(fake)).toEqual(want);
      expect(want.map((o) => ('error' in o && 'code' in o.error ? o.error.code : 'ok'))).toEqual(['ok', 'ok', 'ok', 'E2BIG', 'EEXIST', 'ok']);
      // Three new backends, room for two.
      const E = servicePort('e', '10.96.0.5', 80, ['10.244.5.1:80', '10.244.5.2:80', '10.244.5.3:80']);
      const failed = await sync(snapshot([A, B, E], new Set([E.id])));
      expect(failed).toMatchObject({ error: { code: 'E2BIG', errno: 7, syscall: 'bpf_map_update_batch', done: 2 } });
      expect((failed as { error: { message: string } }).error.message).toMatch(/\(record 2 of 3\)$/);
      // The re-adopt removed the junk (no slot points at it) and the two backends written.
      const d = await dumpPinned(real, pinRoot);
      expect(d.get(MAPS.backend4.name)).toHaveLength(4);
      expect(fake.store(pinRoot).of('backend4').size).toBe(4);
      expect(await sync(snapshot([A, B, E], new Set()))).toMatchObject({ ok: { frontendsChanged: 1 } });
      await dps.real.stop();
      await dps.fake.stop();
    });
  });

  test('tc: the same transcript from a network namespace and from the fake', async () => {
    execFileSync('ip', ['netns', 'add', NETNS]);
    execFileSync('ip', ['-n', NETNS, 'link', 'add', SCENARIO_LINK, 'type', 'veth', 'peer', 'name', `${SCENARIO_LINK}p`]);
    const r = spawnSync('ip', ['netns', 'exec', NETNS, ...NODE_CMD, `${REPO}test/support/tc-scenario-main.ts`, BPF_OBJECT, `${ROOT}/tc`], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const want = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '[]') as Step[];
    const [what, first] = want[0] ?? [];
    expect(what).toBe('index of the link');
    const ifindex = (first as { ok: number }).ok;
    const fake = fakeBinding();
    fake.addLink(SCENARIO_LINK, ifindex);
    expect(await tcScenario(fake, BPF_OBJECT, `${ROOT}/tc`)).toEqual(want);
    expect(want.length).toBeGreaterThan(30);
  });
});

function sortDump(d: { keys: Buffer; values: Buffer; count: number }, keySize: number, valueSize: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < d.count; i++) {
    out.push(`${d.keys.subarray(i * keySize, (i + 1) * keySize).toString('hex')}=${d.values.subarray(i * valueSize, (i + 1) * valueSize).toString('hex')}`);
  }
  return out.sort();
}
