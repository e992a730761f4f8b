// The fake native binding (test/support/fake-native.ts) where its behaviour
// is not obvious: how batches fail part way and what `done` says, absent
// keys in deletes, injected faults, pinned-map reuse and its mismatch,
// fds, dump order, tc hooks. Each expectation here was seen on the real
// kernel (see the header of fake-native.ts and test/privileged/fake-vs-kernel.test.ts).

import { describe, expect, test } from 'vitest';
import { encode, MAPS, u32Codec } from '../../src/dataplane/bpf/layout.ts';
import { BpfMap, BpfObject, isNativeError, type NativeError } from '../../src/native/index.ts';
import { FAKE_OBJECT_PATH, FakeNativeBinding, switchyardObject } from '../support/fake-native.ts';

const ROOT = '/sys/fs/bpf/test';
const id = (n: number): Buffer => encode(u32Codec, n);
const v8 = (n: number): Buffer => Buffer.alloc(8, n);

async function rejection(p: Promise<unknown>): Promise<NativeError> {
  const e = await p.then(
    () => expect.unreachable('expected a rejection'),
    (err: unknown) => err,
  );
  expect(isNativeError(e), String(e)).toBe(true);
  return e as NativeError;
}

function thrown(f: () => unknown): NativeError {
  try {
    f();
  } catch (e) {
    expect(isNativeError(e), String(e)).toBe(true);
    return e as NativeError;
  }
  return expect.unreachable('expected an exception');
}

const brief = (e: NativeError) => ({ code: e.code, errno: e.errno, syscall: e.syscall, done: e.done });

async function open(fake: FakeNativeBinding, root = ROOT): Promise<BpfObject> {
  return BpfObject.open(FAKE_OBJECT_PATH, root, fake);
}

describe('maps through the addon', () => {
  test('a batch update into a full hash map stops at the first record that does not fit', async () => {
    const fake = new FakeNativeBinding({ objects: { [FAKE_OBJECT_PATH]: switchyardObject({ maxEntries: { [MAPS.backend4.name]: 3 } }) } });
    const be = (await open(fake)).map(MAPS.backend4.name);
    await be.update([[id(1), v8(1)]]);
    const e = await rejection(be.update([2, 3, 4, 5].map((n) => [id(n), v8(n)])));
    expect(brief(e)).toEqual({ code: 'E2BIG', errno: 7, syscall: 'bpf_map_update_batch', done: 2 });
    expect(e.message).toMatch(/^bpf_map_update_batch on map fd \d+: Argument list too long \(record 2 of 4\)$/);
    expect((await be.dump()).length).toBe(3);
    await be.update([[id(3), v8(9)]]); // replacing a key of a full map needs no room
    expect(await be.lookup([id(3)])).toEqual([v8(9)]);
  });

  test('BPF_NOEXIST/BPF_EXIST go one by one: bpf_map_update_elem, done = records applied', async () => {
    const be = (await open(new FakeNativeBinding())).map(MAPS.backend4.name);
    await be.update([[id(1), v8(1)]]);
    const exists = await rejection(
      be.update(
        [
          [id(7), v8(7)],
          [id(1), v8(1)],
        ],
        1,
      ),
    );
    expect(brief(exists)).toEqual({ code: 'EEXIST', errno: 17, syscall: 'bpf_map_update_elem', done: 1 });
    expect(await be.lookup([id(7)])).toEqual([v8(7)]);
    expect(brief(await rejection(be.update([[id(8), v8(8)]], 2)))).toEqual({ code: 'ENOENT', errno: 2, syscall: 'bpf_map_update_elem', done: 0 });
    expect(brief(await rejection(be.update([[id(8), v8(8)]], 3)))).toEqual({ code: 'EINVAL', errno: 22, syscall: 'bpf_map_update_elem', done: 0 });
    expect(brief(await rejection(be.update([[id(8), v8(8)]], 4)))).toEqual({ code: 'EINVAL', errno: 22, syscall: 'bpf_map_update_elem', done: 0 });
  });

  test('deletes skip absent keys anywhere in the batch; arrays refuse deletes', async () => {
    const fake = new FakeNativeBinding();
    const obj = await open(fake);
    const be = obj.map(MAPS.backend4.name);
    await be.update([1, 2, 3, 4].map((n) => [id(n), v8(n)]));
    await be.delete([id(9), id(1), id(10), id(3), id(11)]);
    expect((await be.dump()).map(([k]) => k.readUInt32LE(0)).sort()).toEqual([2, 4]);
    const e = await rejection(obj.map(MAPS.config.name).delete([id(0)]));
    expect(brief(e)).toEqual({ code: 'EINVAL', errno: 22, syscall: 'bpf_map_delete_elem', done: 0 });
  });

  test("sizes that do not match the map: EINVAL from the addon's own check, no done", async () => {
    const fake = new FakeNativeBinding();
    const be = (await open(fake)).map(MAPS.backend4.name);
    const key = await rejection(fake.mapUpdate(be.fd, Buffer.alloc(12), v8(1), 12, 8));
    expect(brief(key)).toEqual({ code: 'EINVAL', errno: 22, syscall: 'mapUpdate', done: undefined });
    expect(key.message).toBe(`mapUpdate on map fd ${be.fd} (sy_backend4_v2): key size 12 does not match the map's 4`);
    const values = await rejection(fake.mapUpdate(be.fd, id(1), Buffer.alloc(12), 4, 8));
    expect(values.message).toBe(`mapUpdate on map fd ${be.fd}: 1 keys need 8 value bytes, got 12`);
    expect((await rejection(fake.mapDelete(be.fd, Buffer.alloc(6), 4))).message).toMatch(/keys hold 6 bytes, not a multiple of the key size 4/);
    expect(brief(await rejection(fake.mapLookup(be.fd, id(1), 4, 9))).syscall).toBe('mapLookup');
    expect(() => fake.mapUpdate(be.fd, 'x' as unknown as Uint8Array, v8(1), 4, 8)).toThrow(TypeError);
  });

  test('arrays: every index exists and dumps, past the end is E2BIG / not found; per-CPU records are per CPU', async () => {
    const fake = new FakeNativeBinding({ cpus: 3 });
    const obj = await open(fake);
    const cfg = obj.map(MAPS.config.name);
    const v56 = (n: number): Buffer => Buffer.alloc(56, n);
    expect(await cfg.dump()).toEqual([[id(0), Buffer.alloc(56)]]);
    const past = await rejection(
      cfg.update([
        [id(0), v56(1)],
        [id(1), v56(1)],
      ]),
    );
    expect(brief(past)).toEqual({ code: 'E2BIG', errno: 7, syscall: 'bpf_map_update_batch', done: 1 });
    expect(await cfg.lookup([id(0), id(1)])).toEqual([v56(1), undefined]);
    expect(brief(await rejection(cfg.update([[id(0), v56(2)]], 1))).code).toBe('EEXIST');
    const stats = obj.map(MAPS.stats.name);
    expect(stats.valueStride).toBe(24);
    expect(fake.mapInfo(stats.fd).valueStride).toBe(24);
    const v = Buffer.alloc(24, 5);
    await stats.update([[id(7), v]]);
    const dumped = await stats.dump();
    expect(dumped.length).toBe(MAPS.stats.maxEntries);
    expect(dumped[7]).toEqual([id(7), v]);
    expect(brief(await rejection(fake.mapUpdate(stats.fd, id(1), v56(1), 4, 8))).syscall).toBe('mapUpdate');
  });

  test('a hash map dumps in bucket order, not in the order keys were written', async () => {
    const be = (await open(new FakeNativeBinding())).map(MAPS.backend4.name);
    const written = Array.from({ length: 50 }, (_, i) => i + 1);
    await be.update(written.map((n) => [id(n), v8(n)]));
    const dumped = (await be.dump()).map(([k]) => k.readUInt32LE(0));
    expect(dumped).not.toEqual(written);
    expect([...dumped].sort((a, b) => a - b)).toEqual(written);
  });
});

describe('fault injection', () => {
  test('fail the Nth matching call half way: records before the failing one are applied', async () => {
    const fake = new FakeNativeBinding();
    const be = (await open(fake)).map(MAPS.backend4.name);
    fake.failMap({ op: 'update', map: MAPS.backend4.name, skip: 1, after: 2, code: 'ENOMEM' });
    await be.update([[id(1), v8(1)]]); // too short to match: not counted
    await be.update([10, 11, 12].map((n) => [id(n), v8(n)])); // the first match, skipped
    const e = await rejection(be.update([20, 21, 22, 23].map((n) => [id(n), v8(n)])));
    expect(brief(e)).toEqual({ code: 'ENOMEM', errno: 12, syscall: 'bpf_map_update_batch', done: 2 });
    expect((await be.lookup([id(20), id(21), id(22), id(23)])).map((x) => x !== undefined)).toEqual([true, true, false, false]);
    await be.update([[id(22), v8(22)]]); // spent
  });

  test('a fault in a delete batch; a persistent dump fault; an EINVAL in a batch is retried one by one', async () => {
    const fake = new FakeNativeBinding();
    const be = (await open(fake)).map(MAPS.backend4.name);
    await be.update([1, 2, 3].map((n) => [id(n), v8(n)]));
    fake.failMap({ op: 'delete', after: 1, code: 'EINTR' });
    expect(brief(await rejection(be.delete([id(9), id(1), id(2)])))).toEqual({ code: 'EINTR', errno: 4, syscall: 'bpf_map_delete_batch', done: 1 });
    fake.failMap({ op: 'dump', map: MAPS.backend4.name, code: 'EAGAIN', times: Number.POSITIVE_INFINITY });
    for (let i = 0; i < 3; i++) expect(brief(await rejection(be.dump())).syscall).toBe('bpf_map_get_next_key');
    fake.clearFaults();
    expect((await be.dump()).length).toBe(3); // record 1 failed: nothing was deleted
    // The addon takes an EINVAL from a batch for "no batch op here" and goes on one by one from that record.
    fake.failMap({ op: 'update', after: 1, code: 'EINVAL' });
    await be.update([5, 6, 7].map((n) => [id(n), v8(n)]));
    expect((await be.dump()).length).toBe(6);
    expect(fake.calls.filter((c) => c.op === 'update').map((c) => c.count)).toEqual([3, 3]);
  });
});

describe('objects, pins and fds', () => {
  test('a second load on the same pin root reuses the pinned maps and their contents; pins outlive close()', async () => {
    const fake = new FakeNativeBinding();
    const a = await open(fake);
    await a.map(MAPS.svc4.name).update([[Buffer.alloc(12, 1), Buffer.alloc(24, 2)]]);
    const progA = fake.progIdFromFd(a.program('sy_from_pod').fd);
    a.close();
    a.close();
    expect(fake.openFds()).toBe(0);
    expect(fake.pins(ROOT)).toEqual(
      Object.values(MAPS)
        .map((m) => `${ROOT}/${m.name}`)
        .sort(),
    );
    const b = await open(fake);
    expect(await b.map(MAPS.svc4.name).dump()).toEqual([[Buffer.alloc(12, 1), Buffer.alloc(24, 2)]]);
    expect(fake.progIdFromFd(b.program('sy_from_pod').fd)).not.toBe(progA);
    expect(b.maps().map((m) => m.pinPath)).toEqual([...Object.values(MAPS).map((m) => `${ROOT}/${m.name}`), null]); // .rodata is not pinned
    const other = await open(fake, '/sys/fs/bpf/other');
    expect(await other.map(MAPS.svc4.name).dump()).toEqual([]);
    const pinned = BpfMap.openPinned(`${ROOT}//${MAPS.svc4.name}`, fake);
    expect(pinned.maxEntries).toBe(MAPS.svc4.maxEntries);
    expect(fake.mapInfo(pinned.fd).flags).toBe(1);
    pinned.close();
    b.close();
    other.close();
    expect(thrown(() => b.maps()).message).toBe(`maps on closed BPF object ${FAKE_OBJECT_PATH}: Bad file descriptor`);
    expect(brief(thrown(() => fake.mapInfo(pinned.fd)))).toMatchObject({ code: 'EBADF', syscall: 'bpf_obj_get_info_by_fd' });
    expect(brief(thrown(() => fake.closeFd(pinned.fd)))).toMatchObject({ code: 'EBADF', syscall: 'close' });
  });

  test('a pinned map that does not match the object fails the load, and the load unpins what it pinned', async () => {
    const fake = new FakeNativeBinding();
    expect(fake.ensureBpffs(ROOT)).toBe(true);
    expect(fake.ensureBpffs(`${ROOT}/`)).toBe(false);
    fake.pinMap(`${ROOT}/${MAPS.ct4.name}`, { ...MAPS.ct4, maxEntries: 16 });
    const e = await rejection(open(fake));
    expect(brief(e)).toEqual({ code: 'EINVAL', errno: 22, syscall: 'bpf_object__load', done: undefined });
    expect(e.message).toContain(`couldn't reuse pinned map at '${ROOT}/${MAPS.ct4.name}': parameter mismatch`);
    expect(fake.pins()).toEqual([`${ROOT}/${MAPS.ct4.name}`]);
    expect(fake.openFds()).toBe(0);
    fake.unpin(`${ROOT}/${MAPS.ct4.name}`);
    fake.pinMap(`${ROOT}/${MAPS.ct4.name}`, MAPS.ct4, { name: 'other_name' });
    const obj = await open(fake);
    expect(obj.maps().map((m) => m.name)).toContain('other_name'); // libbpf takes the reused map's name
    obj.close();
  });

  test('open and pin errors', async () => {
    const fake = new FakeNativeBinding();
    expect(brief(await rejection(BpfObject.open('/nope.o', ROOT, fake)))).toEqual({
      code: 'ENOENT',
      errno: 2,
      syscall: 'bpf_object__open_file',
      done: undefined,
    });
    expect(brief(thrown(() => fake.mapOpenPinned(`${ROOT}/nope`)))).toMatchObject({ code: 'ENOENT', syscall: 'bpf_obj_get' });
    expect(brief(thrown(() => fake.mapOpenPinned(ROOT)))).toMatchObject({ code: 'EACCES', syscall: 'bpf_obj_get' });
    expect(brief(thrown(() => fake.ensureBpffs('')))).toMatchObject({ code: 'EINVAL', syscall: 'ensureBpffs' });
    expect(brief(thrown(() => fake.progIdFromFd(99)))).toMatchObject({ code: 'EBADF', syscall: 'bpf_obj_get_info_by_fd' });
    expect(() => fake.openObject(FAKE_OBJECT_PATH, {} as { pinRoot: string })).toThrow(TypeError);
  });
});

describe('tc and links', () => {
  const F = { direction: 'ingress', handle: 1, priority: 1 } as const;

  test('attach, replace, no-replace, query, detach, destroy', async () => {
    const fake = new FakeNativeBinding();
    const a = await open(fake);
    const b = await open(fake);
    const progA = a.program('sy_from_pod');
    const progB = b.program('sy_from_pod');
    const idA = fake.progIdFromFd(progA.fd);
    const idB = fake.progIdFromFd(progB.fd);
    expect(fake.tcQuery(1, F)).toBeNull();
    expect(fake.tcHookDestroy(1, 'ingress')).toBe(false);
    expect(brief(thrown(() => fake.tcAttach(1, a.map(MAPS.svc4.name).fd, F)))).toMatchObject({ code: 'EINVAL', syscall: 'bpf_tc_attach' });
    expect(fake.filters(1)).toEqual([]); // the hook was created before the program was checked
    expect(fake.tcAttach(1, progA.fd, F)).toEqual({ progId: idA, handle: 1, priority: 1 });
    fake.tcAttach(1, progA.fd, { ...F, direction: 'egress' });
    const noReplace = thrown(() => fake.tcAttach(1, progB.fd, { ...F, replace: false }));
    expect(noReplace.code).toBe('EEXIST');
    expect(noReplace.message).toMatch(
      /^bpf_tc_attach on lo \(ifindex 1\) ingress handle 1 priority 1 \(prog fd \d+\): File exists\nlibbpf: Kernel error message: Filter already exists$/,
    );
    fake.tcAttach(1, progB.fd, F);
    expect(fake.tcQuery(1, F)).toEqual({ progId: idB });
    expect(fake.tcQuery(1, { ...F, priority: 2 })).toBeNull();
    expect(fake.tcDetach(1, F)).toBe(true);
    expect(fake.tcDetach(1, F)).toBe(false);
    expect(fake.tcQuery(1, { ...F, direction: 'egress' })).toEqual({ progId: idA });
    expect(fake.tcHookDestroy(1, 'egress')).toBe(true);
    expect(fake.tcHookDestroy(1, 'egress')).toBe(true); // the qdisc is still there
    expect(fake.tcHookDestroy(1)).toBe(true);
    expect(fake.tcHookDestroy(1)).toBe(false);
    a.close();
    expect(brief(thrown(() => fake.tcAttach(1, progA.fd, F)))).toMatchObject({ code: 'EBADF', syscall: 'bpf_tc_attach' });
    expect(() => fake.tcAttach(1, progB.fd, { ...F, priority: 70000 })).toThrow('priority must be an integer in [1, 65535]');
    expect(() => fake.tcQuery(0, F)).toThrow(TypeError);
    b.close();
  });

  test('a missing interface: ENODEV from the hook, the query, the name lookup; ENXIO from the index lookup', async () => {
    const fake = new FakeNativeBinding();
    const obj = await open(fake);
    const prog = obj.program('sy_from_pod').fd;
    expect(brief(thrown(() => fake.tcAttach(42, prog, F)))).toMatchObject({ code: 'ENODEV', syscall: 'bpf_tc_hook_create' });
    expect(brief(thrown(() => fake.tcQuery(42, F)))).toMatchObject({ code: 'ENODEV', syscall: 'bpf_tc_query' });
    expect(brief(thrown(() => fake.tcDetach(42, F)))).toMatchObject({ code: 'ENODEV', syscall: 'bpf_tc_query' });
    expect(brief(thrown(() => fake.tcHookDestroy(42)))).toMatchObject({ code: 'ENODEV', syscall: 'bpf_tc_hook_destroy' });
    expect(brief(thrown(() => fake.ifNameToIndex('veth0')))).toMatchObject({ code: 'ENODEV', syscall: 'if_nametoindex' });
    expect(brief(thrown(() => fake.ifIndexToName(42)))).toMatchObject({ code: 'ENXIO', syscall: 'if_indextoname' });
    const veth = fake.addLink('veth0');
    expect(fake.ifNameToIndex('veth0')).toBe(veth);
    fake.tcAttach(veth, prog, F);
    fake.removeLink('veth0');
    expect(fake.addLink('veth1')).toBe(veth + 1); // ifindexes are not reused at once
    fake.addLink('veth0', veth);
    expect(fake.tcQuery(veth, F)).toBeNull(); // the old link's hook went with it
    obj.close();
  });

  test('the link source lists links and reports changes until stopped or aborted', () => {
    const fake = new FakeNativeBinding();
    const src = fake.linkSource();
    let events = 0;
    const ac = new AbortController();
    const w = src.watch(() => events++, ac.signal);
    fake.addLink('veth1');
    expect(src.list().map((l) => l.name)).toEqual(['lo', 'veth1']);
    ac.abort();
    fake.removeLink('veth1');
    expect(events).toBe(1);
    w.stop();
  });
});
