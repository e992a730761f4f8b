// Privileged test of the native addon (native/, src/native/) against the real
// kernel: bpffs mounting, object load with pinned-map reuse, batched map
// operations, per-CPU records, errors with errno/code/syscall, and tc attach /
// query / replace / detach inside a throwaway network namespace. Needs root,
// clang, ip and the built addon; skips with the reason otherwise.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { BpfMap, BpfObject, isNativeError, loadBinding, UpdateFlags, type NativeBinding, type NativeError } from '../../src/native/index.ts';
import { needs, REPO as repo } from '../support/requirements.ts';
import { NODE_CMD } from '../../src/rig/proc.ts';

const skip = needs('the native addon suite', ['root', 'clang', 'ip', 'native-addon']);

const BPF_FS_MAGIC = 0xcafe4a11;
const BPF_MAP_TYPE_HASH = 1;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
const BPF_PROG_TYPE_SCHED_CLS = 3;

// Fixture records: key {u32 id, u16 port, u16 pad}, value {u64 a, u32 b, u32 pad}.
function key(id: number): Buffer {
  const k = Buffer.alloc(8);
  k.writeUInt32LE(id, 0);
  k.writeUInt16LE(id % 65536, 4);
  return k;
}

function value(id: number): Buffer {
  const v = Buffer.alloc(16);
  v.writeBigUInt64LE(BigInt(id) * 3n, 0);
  v.writeUInt32LE(id ^ 0x5a5a, 8);
  return v;
}

function sorted(records: Array<[Buffer, Buffer]>): string[] {
  return records.map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort();
}

async function rejection(p: Promise<unknown>): Promise<NativeError> {
  try {
    await p;
  } catch (e) {
    expect(isNativeError(e), `expected a native error, got ${String(e)}`).toBe(true);
    return e as NativeError;
  }
  expect.unreachable('expected a rejection');
}

function thrown(f: () => unknown): NativeError {
  try {
    f();
  } catch (e) {
    expect(isNativeError(e), `expected a native error, got ${String(e)}`).toBe(true);
    return e as NativeError;
  }
  expect.unreachable('expected an exception');
}

function compile(source: string, out: string): void {
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-c', source, '-o', out], { stdio: 'pipe' });
}

describe.skipIf(skip)('native addon (privileged)', () => {
  const pinRoot = `/run/sy-native-test-${process.pid}`;
  const netns = `sy-nt-${process.pid}`;
  let tmp = '';
  let fixture = '';
  let bad = '';
  let native: NativeBinding;
  let obj: BpfObject | undefined;

  beforeAll(() => {
    native = loadBinding();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-native-'));
    fixture = path.join(tmp, 'fixture.bpf.o');
    bad = path.join(tmp, 'bad.bpf.o');
    compile(path.join(repo, 'native/test/fixture.bpf.c'), fixture);
    compile(path.join(repo, 'native/test/bad.bpf.c'), bad);
  });

  afterAll(() => {
    obj?.close();
    spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
    // The bpffs is mounted once at pinRoot; unmounting it drops every pin.
    while (spawnSync('umount', [pinRoot], { stdio: 'ignore' }).status === 0);
    fs.rmSync(pinRoot, { recursive: true, force: true });
    if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('ensureBpffs mounts a bpffs on a plain directory, then only mkdirs below it', () => {
    expect(native.ensureBpffs(pinRoot)).toBe(true);
    expect(fs.statfsSync(pinRoot).type).toBe(BPF_FS_MAGIC);
    expect(native.ensureBpffs(pinRoot), 'already a bpffs: no second mount').toBe(false);
    expect(native.ensureBpffs(`${pinRoot}/a/b`), 'inside a bpffs: mkdir -p only').toBe(false);
    expect(fs.statSync(`${pinRoot}/a/b`).isDirectory()).toBe(true);
    expect(fs.statfsSync(`${pinRoot}/a/b`).type).toBe(BPF_FS_MAGIC);
    fs.rmSync(`${pinRoot}/a`, { recursive: true });
  });

  test('openObject loads the object and pins the by-name map under pinRoot', async () => {
    obj = await BpfObject.open(fixture, pinRoot, native);
    const maps = new Map(obj.maps().map((m) => [m.name, m]));
    const hash = maps.get('sy_fixture_hash');
    const percpu = maps.get('sy_fixture_percpu');
    if (hash === undefined || percpu === undefined) expect.unreachable(`maps: ${[...maps.keys()].join(', ')}`);
    expect({
      type: hash.type,
      keySize: hash.keySize,
      valueSize: hash.valueSize,
      valueStride: hash.valueStride,
      maxEntries: hash.maxEntries,
      pinPath: hash.pinPath,
    }).toStrictEqual({ type: BPF_MAP_TYPE_HASH, keySize: 8, valueSize: 16, valueStride: 16, maxEntries: 4096, pinPath: `${pinRoot}/sy_fixture_hash` });
    expect(fs.existsSync(`${pinRoot}/sy_fixture_hash`), 'pinned by name').toBe(true);
    expect(percpu.type).toBe(BPF_MAP_TYPE_PERCPU_ARRAY);
    expect(percpu.pinPath).toBe(null);
    expect(fs.existsSync(`${pinRoot}/sy_fixture_percpu`), 'not pinned').toBe(false);
    const prog = obj.program('sy_fixture_pass');
    expect(prog.type).toBe(BPF_PROG_TYPE_SCHED_CLS);
    expect(native.progIdFromFd(prog.fd)).toBeGreaterThan(0);
    expect(native.progInfo(native.progIdFromFd(prog.fd)), 'progInfo by id: the kernel name and type').toStrictEqual({
      id: native.progIdFromFd(prog.fd),
      name: 'sy_fixture_pass',
      type: BPF_PROG_TYPE_SCHED_CLS,
    });
    expect(() => obj?.map('nope')).toThrow(/has no map nope \(maps: .*sy_fixture_hash/);
  });

  test('1000 records in one batch update come back from a dump', async () => {
    if (obj === undefined) expect.unreachable('the object is open (openObject loaded it)');
    const hash = obj.map('sy_fixture_hash');
    const records: Array<[Buffer, Buffer]> = Array.from({ length: 1000 }, (_, i) => [key(i), value(i)]);
    await hash.update(records);
    const dumped = await hash.dump();
    expect(dumped.length).toBe(1000);
    expect(sorted(dumped)).toStrictEqual(sorted(records));
  });

  test('a later record in the same batch wins (order is preserved)', async () => {
    if (obj === undefined) expect.unreachable('the object is open (openObject loaded it)');
    const hash = obj.map('sy_fixture_hash');
    await hash.update([
      [key(2000), value(1)],
      [key(2000), value(2)],
      [key(2000), value(3)],
    ]);
    expect(await hash.lookup([key(2000)])).toStrictEqual([value(3)]);
    await hash.delete([key(2000)]);
  });

  test('batch delete of half the keys, with absent keys mixed in, then lookup', async () => {
    if (obj === undefined) expect.unreachable('the object is open (openObject loaded it)');
    const hash = obj.map('sy_fixture_hash');
    const even = Array.from({ length: 500 }, (_, i) => key(2 * i));
    const absent = [key(90_000), key(90_001)];
    // Absent keys first, in the middle and last: the kernel's batch delete
    // stops at each one and the addon must go on after it.
    await hash.delete([absent[0]!, ...even.slice(0, 250), absent[1]!, ...even.slice(250), key(90_002)]);
    const all = Array.from({ length: 1000 }, (_, i) => key(i));
    const found = await hash.lookup(all);
    found.forEach((v, i) => {
      if (i % 2 === 0) expect(v, `key ${i} deleted`).toBe(undefined);
      else expect(v, `key ${i} kept`).toStrictEqual(value(i));
    });
    expect((await hash.dump()).length).toBe(500);
  });

  test('per-CPU maps carry roundup(valueSize, 8) bytes per possible CPU', async () => {
    if (obj === undefined) expect.unreachable('the object is open (openObject loaded it)');
    const percpu = obj.map('sy_fixture_percpu');
    const cpus = native.numPossibleCpus();
    expect(cpus).toBeGreaterThanOrEqual(1);
    expect(percpu.valueStride).toBe(8 * cpus);
    const v = Buffer.alloc(percpu.valueStride);
    for (let cpu = 0; cpu < cpus; cpu++) v.writeUInt32LE(100 + cpu, cpu * 8);
    const k = Buffer.alloc(4);
    k.writeUInt32LE(2);
    await percpu.update([[k, v]]);
    expect(await percpu.lookup([k])).toStrictEqual([v]);
    const dumped = await percpu.dump();
    expect(dumped.length, 'an array dumps every index').toBe(4);
    expect(dumped.find(([dk]) => dk.equals(k))?.[1]).toStrictEqual(v);
  });

  test('closing and reopening the object reuses the pinned map and its contents', async () => {
    if (obj === undefined) expect.unreachable('the object is open (openObject loaded it)');
    const before = sorted(await obj.map('sy_fixture_hash').dump());
    obj.close();
    obj.close(); // idempotent
    obj = await BpfObject.open(fixture, pinRoot, native);
    expect(sorted(await obj.map('sy_fixture_hash').dump())).toStrictEqual(before);
    const pinned = BpfMap.openPinned(`${pinRoot}/sy_fixture_hash`, native);
    try {
      expect(pinned.keySize).toBe(8);
      expect(pinned.valueSize).toBe(16);
      expect(sorted(await pinned.dump())).toStrictEqual(before);
    } finally {
      pinned.close();
    }
  });

  test('failures are Errors with errno, code and syscall', async () => {
    if (obj === undefined) expect.unreachable('the object is open (openObject loaded it)');
    const hash = obj.map('sy_fixture_hash');

    const badFd = await rejection(native.mapUpdate(1_000_000, key(1), value(1), 8, 16));
    expect(badFd.code).toBe('EBADF');
    expect(badFd.errno).toBe(9);
    expect(badFd.done).toBe(undefined);
    expect(typeof badFd.syscall).toBe('string');
    expect(badFd.message).toMatch(/^bpf_\w+ on map fd 1000000: Bad file descriptor/);

    // The kernel's batch update takes no BPF_NOEXIST: these go one by one.
    const exists = await rejection(
      hash.update(
        [
          [key(100_001), value(1)],
          [key(1), value(1)],
        ],
        UpdateFlags.noExist,
      ),
    );
    expect([exists.code, exists.errno, exists.syscall]).toStrictEqual(['EEXIST', 17, 'bpf_map_update_elem']);
    expect(exists.message).toMatch(/^bpf_map_update_elem on map fd \d+: File exists \(record 1 of 2\)$/);
    expect(exists.done).toBe(1);
    expect(await hash.lookup([key(100_001)]), 'records before the failing one were applied').toStrictEqual([value(1)]);
    await hash.delete([key(100_001)]);

    // A batch that overflows the map stops at the first record that does not fit.
    const present = (await hash.dump()).length;
    const overflow = Array.from({ length: 4000 }, (_, i): [Buffer, Buffer] => [key(10_000 + i), value(i)]);
    const full = await rejection(hash.update(overflow));
    expect([full.code, full.syscall]).toStrictEqual(['E2BIG', 'bpf_map_update_batch']);
    expect(full.message).toMatch(new RegExp(`: Argument list too long \\(record ${4096 - present} of 4000\\)$`));
    expect(full.done).toBe(4096 - present);
    expect((await hash.dump()).length).toBe(4096);
    await hash.delete(overflow.map(([k]) => k));
    expect((await hash.dump()).length).toBe(present);

    const size = await rejection(native.mapLookup(hash.fd, Buffer.alloc(12), 12, 16));
    expect([size.code, size.syscall]).toStrictEqual(['EINVAL', 'mapLookup']);
    expect(size.message).toMatch(/key size 12 does not match the map's 8/);

    const arrayDelete = await rejection(obj.map('sy_fixture_percpu').delete([Buffer.alloc(4)]));
    expect(arrayDelete.code, 'array elements cannot be deleted').toBe('EINVAL');

    const missing = thrown(() => native.mapOpenPinned(`${pinRoot}/no-such-map`));
    expect([missing.code, missing.errno, missing.syscall]).toStrictEqual(['ENOENT', 2, 'bpf_obj_get']);

    const closed = thrown(() => native.closeFd(1_000_000));
    expect([closed.code, closed.syscall]).toStrictEqual(['EBADF', 'close']);

    const noFile = await rejection(BpfObject.open(path.join(tmp, 'missing.o'), pinRoot, native));
    expect([noFile.code, noFile.syscall]).toStrictEqual(['ENOENT', 'bpf_object__open_file']);

    const rejected = await rejection(BpfObject.open(bad, pinRoot, native));
    expect([rejected.code, rejected.syscall]).toStrictEqual(['EACCES', 'bpf_object__load']);
    expect(rejected.message).toMatch(/BEGIN PROG LOAD LOG/);
    expect(rejected.message, 'the verifier log tail is in the message').toMatch(/invalid access to packet/);
  });

  test('tc attach, query, replace and detach on lo in a network namespace', () => {
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up']);
    const probe = spawnSync('ip', ['netns', 'exec', netns, ...NODE_CMD, path.join(repo, 'native/test/tc-probe.ts'), fixture, pinRoot], {
      encoding: 'utf8',
    });
    expect(probe.status, `tc-probe failed:\n${probe.stderr}`).toBe(0);
    const r = JSON.parse(probe.stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown> & {
      idA: number;
      idB: number;
      hitsAfterTraffic: number;
    };
    expect(r.idA > 0 && r.idB > 0 && r.idA !== r.idB, 'two program instances').toBe(true);
    expect(r.loName).toBe('lo');
    expect(r.queryBefore).toBe(null);
    expect(r.detachBefore).toBe(false);
    expect(r.attach).toStrictEqual({ progId: r.idA, handle: 1, priority: 1 });
    expect(r.queryAfterAttach, 'tcQuery reports progIdFromFd of the attached program').toBe(r.idA);
    expect(r.hitsBeforeTraffic).toBe(0);
    expect(r.hitsAfterTraffic, 'the attached program ran on lo ingress').toBeGreaterThan(0);
    expect(pick(r.noReplace)).toStrictEqual({ code: 'EEXIST', syscall: 'bpf_tc_attach' });
    expect((r.noReplace as { message: string }).message, "names the filter and carries the kernel's extended ack").toMatch(
      /^bpf_tc_attach on lo \(ifindex 1\) ingress handle 1 priority 1 \(prog fd \d+\): File exists\nlibbpf: Kernel error message: Filter already exists$/,
    );
    expect(r.queryAfterNoReplace, 'replace: false left the filter alone').toBe(r.idA);
    expect(r.replace).toStrictEqual({ progId: r.idB, handle: 1, priority: 1 });
    expect(r.queryAfterReplace).toBe(r.idB);
    expect(r.egress).toStrictEqual({ progId: r.idA, handle: 7, priority: 3 });
    expect(r.queryEgress).toBe(r.idA);
    expect(r.detach).toBe(true);
    expect(r.detachAgain, 'detaching nothing is not an error').toBe(false);
    expect(r.queryAfterDetach).toBe(null);
    expect(r.queryEgressAfterDetach, 'detach touched only its own filter').toBe(r.idA);
    expect(r.destroy).toBe(true);
    expect(r.destroyAgain, 'no clsact qdisc left: not an error').toBe(false);
    expect(r.queryEgressAfterDestroy).toBe(null);
    expect(pick(r.badIfname)).toStrictEqual({ code: 'ENODEV', syscall: 'if_nametoindex' });
    expect(pick(r.badAttach)).toStrictEqual({ code: 'EBADF', syscall: 'bpf_tc_attach' });
  });
});

function pick(e: unknown): { code: unknown; syscall: unknown } {
  const { code, syscall } = e as { code: unknown; syscall: unknown };
  return { code, syscall };
}
