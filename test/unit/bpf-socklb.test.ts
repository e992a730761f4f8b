// socklb.ts without a kernel: the cgroup2 mount found in /proc/mounts, and
// attach/detach of the socket hooks against the fake addon (pinned links
// per hook, swapped in place by a second attach, gone after detach).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { attachSocketLb, detachSocketLb, findCgroup2Mount, SOCK_ATTACH_TYPES, SOCK_PROGRAMS, sockLinkPin } from '../../src/dataplane/bpf/socklb.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';
import { tempDir } from '../support/temp-dir.ts';

test('findCgroup2Mount: the first cgroup2 line of /proc/mounts, null without one', () => {
  const hybrid = [
    'tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0',
    'cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0',
    'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
    'none /run/other cgroup2 rw 0 0',
  ].join('\n');
  expect(findCgroup2Mount(hybrid)).toBe('/sys/fs/cgroup/unified');
  expect(findCgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n')).toBe('/sys/fs/cgroup');
  expect(findCgroup2Mount('cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n')).toBe(null);
});

test('SOCK_PROGRAMS names each hook within the kernel name limit (15 characters)', () => {
  expect(SOCK_ATTACH_TYPES).toHaveLength(8);
  for (const name of Object.values(SOCK_PROGRAMS)) expect(name.length, name).toBeLessThanOrEqual(15);
});

test('detachSocketLb: nothing pinned, nothing detached', () => {
  const dir = tempDir('sy-socklb-');
  expect(detachSocketLb(new FakeNativeBinding(), dir)).toStrictEqual([]);
  expect(detachSocketLb(new FakeNativeBinding(), join(dir, 'missing'))).toStrictEqual([]);
});

test('attachSocketLb fails naming the step when the object is not there', async () => {
  const native = new FakeNativeBinding();
  const pinPath = tempDir('sy-socklb-');
  mkdirSync(join(pinPath, 'x'), { recursive: true });
  const log = { info: () => undefined, warn: () => undefined, debug: () => undefined, error: () => undefined, verbose: () => undefined };
  await expect(
    attachSocketLb({ native, log: log as never, objectPath: '/nonexistent/sock.bpf.o', pinPath, cgroupPath: '/sys/fs/cgroup', maxEntries: {} }),
  ).rejects.toThrow(/load \/nonexistent\/sock\.bpf\.o/);
  expect(native.cgroupLinks.size).toBe(0);
  expect(sockLinkPin('/sys/fs/bpf/switchyard', 'connect4')).toBe('/sys/fs/bpf/switchyard/sy_link_connect4_v2');
});
