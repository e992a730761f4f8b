// Privileged test of the native addon (native/, src/native/) against the real
// kernel: bpffs mounting, object load with pinned-map reuse, batched map
// operations, per-CPU records, errors with errno/code/syscall, and tc attach /
// query / replace / detach inside a throwaway network namespace. Needs root,
// clang, ip; skips with the reason otherwise.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { BpfMap, BpfObject, isNativeError, loadBinding, UpdateFlags, type NativeBinding, type NativeError } from '../../src/native/index.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const BPF_FS_MAGIC = 0xcafe4a11;
const BPF_MAP_TYPE_HASH = 1;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
const BPF_PROG_TYPE_SCHED_CLS = 3;

const skipReason = process.getuid?.() !== 0 ? 'needs root: mounts bpffs, loads BPF programs, creates a network namespace' : false;
if (skipReason) console.log(`# native.test.ts skipped: ${skipReason}`);

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
    assert.ok(isNativeError(e), `expected a native error, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a rejection');
}

function thrown(f: () => unknown): NativeError {
  try {
    f();
  } catch (e) {
    assert.ok(isNativeError(e), `expected a native error, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an exception');
}

function compile(source: string, out: string): void {
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-c', source, '-o', out], { stdio: 'pipe' });
}

describe('native addon (privileged)', { skip: skipReason, concurrency: false }, () => {
  const pinRoot = `/run/sy-native-test-${process.pid}`;
  const netns = `sy-nt-${process.pid}`;
  let tmp = '';
  let fixture = '';
  let bad = '';
  let native: NativeBinding;
  let obj: BpfObject | undefined;

  before(() => {
    native = loadBinding();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-native-'));
    fixture = path.join(tmp, 'fixture.bpf.o');
    bad = path.join(tmp, 'bad.bpf.o');
    compile(path.join(repo, 'native/test/fixture.bpf.c'), fixture);
    compile(path.join(repo, 'native/test/bad.bpf.c'), bad);
  });

  after(() => {
    obj?.close();
    spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
    // The bpffs is mounted once at pinRoot; unmounting it drops every pin.
    while (spawnSync('umount', [pinRoot], { stdio: 'ignore' }).status === 0);
    fs.rmSync(pinRoot, { recursive: true, force: true });
    if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('ensureBpffs mounts a bpffs on a plain directory, then only mkdirs below it', () => {
    assert.equal(native.ensureBpffs(pinRoot), true);
    assert.equal(fs.statfsSync(pinRoot).type, BPF_FS_MAGIC);
    assert.equal(native.ensureBpffs(pinRoot), false, 'already a bpffs: no second mount');
    assert.equal(native.ensureBpffs(`${pinRoot}/a/b`), false, 'inside a bpffs: mkdir -p only');
    assert.ok(fs.statSync(`${pinRoot}/a/b`).isDirectory());
    assert.equal(fs.statfsSync(`${pinRoot}/a/b`).type, BPF_FS_MAGIC);
    fs.rmSync(`${pinRoot}/a`, { recursive: true });
  });

  test('openObject loads the object and pins the by-name map under pinRoot', async () => {
    obj = await BpfObject.open(fixture, pinRoot, native);
    const maps = new Map(obj.maps().map((m) => [m.name, m]));
    const hash = maps.get('sy_fixture_hash');
    const percpu = maps.get('sy_fixture_percpu');
    assert.ok(hash !== undefined && percpu !== undefined, `maps: ${[...maps.keys()].join(', ')}`);
    assert.deepEqual(
      { type: hash.type, keySize: hash.keySize, valueSize: hash.valueSize, valueStride: hash.valueStride, maxEntries: hash.maxEntries, pinPath: hash.pinPath },
      { type: BPF_MAP_TYPE_HASH, keySize: 8, valueSize: 16, valueStride: 16, maxEntries: 4096, pinPath: `${pinRoot}/sy_fixture_hash` },
    );
    assert.ok(fs.existsSync(`${pinRoot}/sy_fixture_hash`), 'pinned by name');
    assert.equal(percpu.type, BPF_MAP_TYPE_PERCPU_ARRAY);
    assert.equal(percpu.pinPath, null);
    assert.ok(!fs.existsSync(`${pinRoot}/sy_fixture_percpu`), 'not pinned');
    const prog = obj.program('sy_fixture_pass');
    assert.equal(prog.type, BPF_PROG_TYPE_SCHED_CLS);
    assert.ok(native.progIdFromFd(prog.fd) > 0);
    assert.throws(() => obj?.map('nope'), /has no map nope \(maps: .*sy_fixture_hash/);
  });

  test('1000 records in one batch update come back from a dump', async () => {
    assert.ok(obj);
    const hash = obj.map('sy_fixture_hash');
    const records: Array<[Buffer, Buffer]> = Array.from({ length: 1000 }, (_, i) => [key(i), value(i)]);
    await hash.update(records);
    const dumped = await hash.dump();
    assert.equal(dumped.length, 1000);
    assert.deepEqual(sorted(dumped), sorted(records));
  });

  test('a later record in the same batch wins (order is preserved)', async () => {
    assert.ok(obj);
    const hash = obj.map('sy_fixture_hash');
    await hash.update([
      [key(2000), value(1)],
      [key(2000), value(2)],
      [key(2000), value(3)],
    ]);
    assert.deepEqual(await hash.lookup([key(2000)]), [value(3)]);
    await hash.delete([key(2000)]);
  });

  test('batch delete of half the keys, with absent keys mixed in, then lookup', async () => {
    assert.ok(obj);
    const hash = obj.map('sy_fixture_hash');
    const even = Array.from({ length: 500 }, (_, i) => key(2 * i));
    const absent = [key(90_000), key(90_001)];
    // Absent keys first, in the middle and last: the kernel's batch delete
    // stops at each one and the addon must go on after it.
    await hash.delete([absent[0]!, ...even.slice(0, 250), absent[1]!, ...even.slice(250), key(90_002)]);
    const all = Array.from({ length: 1000 }, (_, i) => key(i));
    const found = await hash.lookup(all);
    found.forEach((v, i) => {
      if (i % 2 === 0) assert.equal(v, undefined, `key ${i} deleted`);
      else assert.deepEqual(v, value(i), `key ${i} kept`);
    });
    assert.equal((await hash.dump()).length, 500);
  });

  test('per-CPU maps carry roundup(valueSize, 8) bytes per possible CPU', async () => {
    assert.ok(obj);
    const percpu = obj.map('sy_fixture_percpu');
    const cpus = native.numPossibleCpus();
    assert.ok(cpus >= 1);
    assert.equal(percpu.valueStride, 8 * cpus);
    const v = Buffer.alloc(percpu.valueStride);
    for (let cpu = 0; cpu < cpus; cpu++) v.writeUInt32LE(100 + cpu, cpu * 8);
    const k = Buffer.alloc(4);
    k.writeUInt32LE(2);
    await percpu.update([[k, v]]);
    assert.deepEqual(await percpu.lookup([k]), [v]);
    const dumped = await percpu.dump();
    assert.equal(dumped.length, 4, 'an array dumps every index');
    assert.deepEqual(dumped.find(([dk]) => dk.equals(k))?.[1], v);
  });

  test('closing and reopening the object reuses the pinned map and its contents', async () => {
    assert.ok(obj);
    const before = sorted(await obj.map('sy_fixture_hash').dump());
    obj.close();
    obj.close(); // idempotent
    obj = await BpfObject.open(fixture, pinRoot, native);
    assert.deepEqual(sorted(await obj.map('sy_fixture_hash').dump()), before);
    const pinned = BpfMap.openPinned(`${pinRoot}/sy_fixture_hash`, native);
    try {
      assert.equal(pinned.keySize, 8);
      assert.equal(pinned.valueSize, 16);
      assert.deepEqual(sorted(await pinned.dump()), before);
    } finally {
      pinned.close();
    }
  });

  test('failures are Errors with errno, code and syscall', async () => {
    assert.ok(obj);
    const hash = obj.map('sy_fixture_hash');

    const badFd = await rejection(native.mapUpdate(1_000_000, key(1), value(1), 8, 16));
    assert.equal(badFd.code, 'EBADF');
    assert.equal(badFd.errno, 9);
    assert.equal(badFd.done, undefined);
    assert.equal(typeof badFd.syscall, 'string');
    assert.match(badFd.message, /^bpf_\w+ on map fd 1000000: Bad file descriptor/);

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
    assert.deepEqual([exists.code, exists.errno, exists.syscall], ['EEXIST', 17, 'bpf_map_update_elem']);
    assert.match(exists.message, /^bpf_map_update_elem on map fd \d+: File exists \(record 1 of 2\)$/);
    assert.equal(exists.done, 1);
    assert.deepEqual(await hash.lookup([key(100_001)]), [value(1)], 'records before the failing one were applied');
    await hash.delete([key(100_001)]);

    // A batch that overflows the map stops at the first record that does not fit.
    const present = (await hash.dump()).length;
    const overflow = Array.from({ length: 4000 }, (_, i): [Buffer, Buffer] => [key(10_000 + i), value(i)]);
    const full = await rejection(hash.update(overflow));
    assert.deepEqual([full.code, full.syscall], ['E2BIG', 'bpf_map_update_batch']);
    assert.match(full.message, new RegExp(`: Argument list too long \\(record ${4096 - present} of 4000\\)$`));
    assert.equal(full.done, 4096 - present);
    assert.equal((await hash.dump()).length, 4096);
    await hash.delete(overflow.map(([k]) => k));
    assert.equal((await hash.dump()).length, present);

    const size = await rejection(native.mapLookup(hash.fd, Buffer.alloc(12), 12, 16));
    assert.deepEqual([size.code, size.syscall], ['EINVAL', 'mapLookup']);
    assert.match(size.message, /key size 12 does not match the map's 8/);

    const arrayDelete = await rejection(obj.map('sy_fixture_percpu').delete([Buffer.alloc(4)]));
    assert.equal(arrayDelete.code, 'EINVAL', 'array elements cannot be deleted');

    const missing = thrown(() => native.mapOpenPinned(`${pinRoot}/no-such-map`));
    assert.deepEqual([missing.code, missing.errno, missing.syscall], ['ENOENT', 2, 'bpf_obj_get']);

    const closed = thrown(() => native.closeFd(1_000_000));
    assert.deepEqual([closed.code, closed.syscall], ['EBADF', 'close']);

    const noFile = await rejection(BpfObject.open(path.join(tmp, 'missing.o'), pinRoot, native));
    assert.deepEqual([noFile.code, noFile.syscall], ['ENOENT', 'bpf_object__open_file']);

    const rejected = await rejection(BpfObject.open(bad, pinRoot, native));
    assert.deepEqual([rejected.code, rejected.syscall], ['EACCES', 'bpf_object__load']);
    assert.match(rejected.message, /BEGIN PROG LOAD LOG/);
    assert.match(rejected.message, /invalid access to packet/, 'the verifier log tail is in the message');
  });

  test('tc attach, query, replace and detach on lo in a network namespace', () => {
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up']);
    const probe = spawnSync('ip', ['netns', 'exec', netns, process.execPath, path.join(repo, 'native/test/tc-probe.ts'), fixture, pinRoot], {
      encoding: 'utf8',
    });
    assert.equal(probe.status, 0, `tc-probe failed:\n${probe.stderr}`);
    const r = JSON.parse(probe.stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown> & {
      idA: number;
      idB: number;
      hitsAfterTraffic: number;
    };
    assert.ok(r.idA > 0 && r.idB > 0 && r.idA !== r.idB, 'two program instances');
    assert.equal(r.loName, 'lo');
    assert.equal(r.queryBefore, null);
    assert.equal(r.detachBefore, false);
    assert.deepEqual(r.attach, { progId: r.idA, handle: 1, priority: 1 });
    assert.equal(r.queryAfterAttach, r.idA, 'tcQuery reports progIdFromFd of the attached program');
    assert.equal(r.hitsBeforeTraffic, 0);
    assert.ok(r.hitsAfterTraffic > 0, 'the attached program ran on lo ingress');
    assert.deepEqual(pick(r.noReplace), { code: 'EEXIST', syscall: 'bpf_tc_attach' });
    assert.match(
      (r.noReplace as { message: string }).message,
      /^bpf_tc_attach on lo \(ifindex 1\) ingress handle 1 priority 1 \(prog fd \d+\): File exists\nlibbpf: Kernel error message: Filter already exists$/,
      "names the filter and carries the kernel's extended ack",
    );
    assert.equal(r.queryAfterNoReplace, r.idA, 'replace: false left the filter alone');
    assert.deepEqual(r.replace, { progId: r.idB, handle: 1, priority: 1 });
    assert.equal(r.queryAfterReplace, r.idB);
    assert.deepEqual(r.egress, { progId: r.idA, handle: 7, priority: 3 });
    assert.equal(r.queryEgress, r.idA);
    assert.equal(r.detach, true);
    assert.equal(r.detachAgain, false, 'detaching nothing is not an error');
    assert.equal(r.queryAfterDetach, null);
    assert.equal(r.queryEgressAfterDetach, r.idA, 'detach touched only its own filter');
    assert.equal(r.destroy, true);
    assert.equal(r.destroyAgain, false, 'no clsact qdisc left: not an error');
    assert.equal(r.queryEgressAfterDestroy, null);
    assert.deepEqual(pick(r.badIfname), { code: 'ENODEV', syscall: 'if_nametoindex' });
    assert.deepEqual(pick(r.badAttach), { code: 'EBADF', syscall: 'bpf_tc_attach' });
  });
});

function pick(e: unknown): { code: unknown; syscall: unknown } {
  const { code, syscall } = e as { code: unknown; syscall: unknown };
  return { code, syscall };
}
