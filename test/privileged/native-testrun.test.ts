// Privileged test of the addon's progTestRun() (native/src/testrun.cc) and
// BpfProgram.testRun() against the real kernel: the verdict, the packet and
// the struct __sk_buff the program leaves, repeat, and the kernel's errors
// (short input, small output buffer, a context field it refuses, a bad fd)
// as errors with errno/code/syscall. The program is native/test/testrun.bpf.c.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { BpfObject, isNativeError, loadBinding, type NativeBinding, type NativeError } from '../../src/native/index.ts';
import { needs, REPO } from '../support/requirements.ts';

const skip = needs('progTestRun tests', ['root', 'clang', 'native-addon']);

const TC_ACT_OK = 0;
const TC_ACT_REDIRECT = 7;
// struct __sk_buff (uapi linux/bpf.h of these headers): 192 bytes; offsets of the fields used.
const SKB_SIZE = 192;
const SKB_LEN = 0;
const SKB_MARK = 8;
const SKB_CB = 48;

function ctx(cb0: number, cb1: number): Buffer {
  const b = Buffer.alloc(SKB_SIZE);
  b.writeUInt32LE(cb0, SKB_CB);
  b.writeUInt32LE(cb1, SKB_CB + 4);
  return b;
}

// 60 bytes: distinct MACs, then a payload that must come back unchanged.
function frame(): Buffer {
  const b = Buffer.alloc(60);
  Buffer.from('020000000001', 'hex').copy(b, 0);
  Buffer.from('020000000002', 'hex').copy(b, 6);
  b.writeUInt16BE(0x88b5, 12); // IEEE local experimental EtherType
  for (let i = 14; i < b.length; i++) b[i] = i;
  return b;
}

async function rejection(p: Promise<unknown>): Promise<NativeError> {
  try {
    await p;
  } catch (e) {
    if (isNativeError(e)) return e;
    throw new Error(`expected a native error, got ${String(e)}`);
  }
  throw new Error('expected a rejection');
}

describe.skipIf(skip)('progTestRun (privileged)', () => {
  const pinRoot = `/run/sy-testrun-test-${process.pid}`;
  let tmp = '';
  let native: NativeBinding;
  let obj: BpfObject;

  beforeAll(async () => {
    native = loadBinding();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-testrun-'));
    const out = path.join(tmp, 'testrun.bpf.o');
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-c', path.join(REPO, 'native/test/testrun.bpf.c'), '-o', out], {
      stdio: 'pipe',
    });
    obj = await BpfObject.open(out, pinRoot, native);
  });

  afterAll(() => {
    obj?.close();
    while (spawnSync('umount', [pinRoot], { stdio: 'ignore' }).status === 0);
    fs.rmSync(pinRoot, { recursive: true, force: true });
    if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('returns the verdict and the packet as the program left it; no ctx unless one was given', async () => {
    const input = frame();
    const r = await obj.program('sy_testrun').testRun(input);
    const expected = Buffer.from(input);
    input.copy(expected, 0, 6, 12); // destination MAC := source MAC
    expect(r.retval).toBe(TC_ACT_OK);
    expect(r.data.toString('hex')).toBe(expected.toString('hex'));
    expect(r.ctx).toBeUndefined();
    expect(Number.isInteger(r.durationNs) && r.durationNs >= 0).toBe(true);
    expect(input.toString('hex')).toBe(frame().toString('hex')); // the input is copied, not changed
  });

  test('the context goes in and comes back out: cb in, mark and the verdict out', async () => {
    const r = await native.progTestRun(obj.program('sy_testrun').fd, frame(), { ctx: ctx(41, TC_ACT_REDIRECT) });
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    // The kernel hands back its own struct __sk_buff: 184 bytes before 5.16 added hwtstamp, 192 since.
    expect([184, SKB_SIZE]).toContain(r.ctx?.length);
    expect(r.ctx?.readUInt32LE(SKB_MARK)).toBe(42);
    expect(r.ctx?.readUInt32LE(SKB_CB)).toBe(41);
  });

  test('repeat runs the program that many times', async () => {
    const runs = obj.map('sy_testrun_runs');
    const zero = Buffer.alloc(4);
    const before = (await runs.lookup([zero]))[0]?.readBigUInt64LE(0) ?? -1n;
    await obj.program('sy_testrun').testRun(frame(), { repeat: 25 });
    const after = (await runs.lookup([zero]))[0]?.readBigUInt64LE(0) ?? -1n;
    expect(after - before).toBe(25n);
  });

  test('fewer than 14 bytes (no Ethernet header): EINVAL from the kernel', async () => {
    const e = await rejection(obj.program('sy_testrun').testRun(frame().subarray(0, 13)));
    expect({ errno: e.errno, code: e.code, syscall: e.syscall }).toEqual({ errno: 22, code: 'EINVAL', syscall: 'bpf_prog_test_run_opts' });
    expect(e.message).toMatch(/program fd \d+ with 13 bytes/);
  });

  test('exactly 14 bytes run', async () => {
    const r = await obj.program('sy_testrun').testRun(frame().subarray(0, 14));
    expect(r.data.length).toBe(14);
  });

  test('an output buffer shorter than the packet: ENOSPC naming both sizes', async () => {
    const e = await rejection(obj.program('sy_testrun').testRun(frame(), { dataSizeOut: 20 }));
    expect(e.code).toBe('ENOSPC');
    expect(e.message).toMatch(/output is 60 bytes, dataSizeOut 20/);
  });

  test('a context field the kernel does not accept (len): EINVAL', async () => {
    const c = ctx(0, 0);
    c.writeUInt32LE(60, SKB_LEN);
    const e = await rejection(obj.program('sy_testrun').testRun(frame(), { ctx: c }));
    expect(e.code).toBe('EINVAL');
  });

  test('an fd that is not open: EBADF', async () => {
    const e = await rejection(native.progTestRun(999_999, frame())); // above any fd this process opens
    expect(e.code).toBe('EBADF');
  });

  test('wrong argument types are TypeErrors before any syscall', () => {
    const fd = obj.program('sy_testrun').fd;
    expect(() => native.progTestRun(fd, [1, 2, 3] as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => native.progTestRun(fd, frame(), { repeat: 0 })).toThrow(/opts.repeat must be an integer/);
    expect(() => native.progTestRun(fd, frame(), { ctx: 'x' as unknown as Uint8Array })).toThrow(/opts.ctx must be a Buffer/);
  });
});
