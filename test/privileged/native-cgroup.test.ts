// Privileged test of the addon's cgroup links and socket destroy
// (native/src/cgroup.cc, sockdiag.cc) against the real kernel, on a child
// cgroup of a cgroup2 hierarchy mounted under /run for the test (never the
// host's root cgroup) and a throwaway bpffs: attach pins a link, a second
// attach swaps the program in place, query lists what is attached, detach
// undoes it; a directory that is not cgroup2 is refused by name; the netns
// cookie; sockDestroy's arguments and its "none of ours" answer.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, rmSync } from 'node:fs';
import * as dgram from 'node:dgram';
import { release } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BpfObject, isNativeError, loadBinding, type NativeBinding } from '../../src/native/index.ts';
import { needs, REPO } from '../support/requirements.ts';

const skip = needs('the addon cgroup suite', ['root', 'native-addon', 'bpf-object']);
const SOCK_OBJECT = join(REPO, 'bpf/build/sock.bpf.o');

describe.skipIf(skip)('addon: cgroup links and socket destroy (privileged)', () => {
  const cgMount = `/run/sy-cgn-${process.pid}`;
  const cg = join(cgMount, 'sy-native');
  const pins = `/run/sy-bpfn-${process.pid}`;
  let native: NativeBinding;
  let obj: BpfObject;

  beforeAll(async () => {
    native = loadBinding();
    mkdirSync(cgMount, { recursive: true });
    execFileSync('mount', ['-t', 'cgroup2', 'none', cgMount]);
    mkdirSync(cg);
    mkdirSync(pins, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', pins]);
    obj = await BpfObject.open(SOCK_OBJECT, pins, native);
  });

  afterAll(() => {
    obj?.close();
    for (const dir of [cg]) if (existsSync(dir)) rmdirSync(dir);
    for (const m of [cgMount, pins]) {
      try {
        execFileSync('umount', ['-l', m]);
      } catch {
        /* not mounted */
      }
      rmSync(m, { recursive: true, force: true });
    }
  });

  test('attach pins a link, a second attach swaps the program in place, detach removes it', () => {
    const prog = obj.program('sy_sk_connect4');
    const id = native.progIdFromFd(prog.fd);
    const pin = join(pins, 'sy_link_connect4_v2');
    expect(native.cgroupQuery(cg, 'connect4')).toStrictEqual([]);
    const first = native.cgroupLinkAttach(cg, prog.fd, 'connect4', pin);
    expect(first.replaced).toBe(false);
    expect(first.linkId).toBeGreaterThan(0);
    expect(existsSync(pin)).toBe(true);
    expect(native.cgroupQuery(cg, 'connect4')).toStrictEqual([id]);
    const again = native.cgroupLinkAttach(cg, prog.fd, 'connect4', pin);
    expect(again).toStrictEqual({ linkId: first.linkId, replaced: true });
    expect(native.cgroupQuery(cg, 'connect4'), 'still one program: swapped, not added').toStrictEqual([id]);
    expect(native.cgroupQuery(cg, 'connect6')).toStrictEqual([]);
    expect(native.cgroupLinkDetach(pin)).toBe(true);
    expect(existsSync(pin)).toBe(false);
    expect(native.cgroupQuery(cg, 'connect4')).toStrictEqual([]);
    expect(native.cgroupLinkDetach(pin), 'nothing pinned any more').toBe(false);
  });

  test('a directory that is not on cgroup2 is refused by name; a wrong attach type is a TypeError', () => {
    let err: unknown;
    try {
      native.cgroupQuery('/run', 'connect4');
    } catch (e) {
      err = e;
    }
    expect(isNativeError(err)).toBe(true);
    expect((err as Error).message).toBe('cgroup attach on /run: not a cgroup v2 directory (no cgroup2 file system there)');
    expect(() => native.cgroupQuery(cg, 'bind4' as never)).toThrow(TypeError);
  });

  test('netnsCookie is this namespace cookie, the same on every call (before 5.14: ENOPROTOOPT, no SO_NETNS_COOKIE)', () => {
    const [major = 0, minor = 0] = release()
      .split('.')
      .map((n) => Number.parseInt(n, 10));
    if (major < 5 || (major === 5 && minor < 14)) {
      expect(() => native.netnsCookie()).toThrow(expect.objectContaining({ code: 'ENOPROTOOPT', syscall: 'getsockopt' }));
      return;
    }
    const c = native.netnsCookie();
    expect(typeof c).toBe('bigint');
    expect(c).toBeGreaterThan(0n);
    expect(native.netnsCookie()).toBe(c);
  });

  const OTHER_COOKIE = 0xffff_ffff_ffff_fff0n;

  test('sockDestroy closes only listed cookies: a connected socket with another cookie is left alone', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
    await new Promise<void>((resolve, reject) => sock.connect(9, '127.0.0.1', (e?: Error) => (e ? reject(e) : resolve())));
    try {
      expect(native.sockDestroy('IPv4', 'UDP', Uint8Array.of(127, 0, 0, 1), 9, [])).toBe(0);
      // Not a small number: before 5.12 socket cookies count from 1 in each
      // network namespace, so in a fresh one (the kernel matrix's VM) this
      // very socket's cookie is 1.
      expect(native.sockDestroy('IPv4', 'UDP', Uint8Array.of(127, 0, 0, 1), 9, [OTHER_COOKIE])).toBe(0);
      expect(sock.remoteAddress().port, 'still connected').toBe(9);
      expect(() => native.sockDestroy('IPv4', 'UDP', Uint8Array.of(127, 0, 0), 9, [1n])).toThrow(TypeError);
      expect(() => native.sockDestroy('IPv4', 'SCTP' as never, Uint8Array.of(127, 0, 0, 1), 9, [1n])).toThrow(TypeError);
    } finally {
      sock.close();
    }
  });
});
