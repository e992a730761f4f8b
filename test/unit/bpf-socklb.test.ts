// socklb.ts without a kernel: the cgroup2 mount found in /proc/mounts, and
// attach/detach of the socket hooks against the fake addon (pinned links
// per hook, swapped in place by a second attach, gone after detach).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import {
  attachSocketLb,
  detachSocketLb,
  findCgroup2Mount,
  SOCK_ATTACH_TYPES,
  SOCK_PROGRAMS,
  sockLinkPin,
  staleSockets,
} from '../../src/dataplane/bpf/socklb.ts';
import { FakeNativeBinding, type FakeObjectSpec } from '../support/fake-native.ts';
import { MAPS, SOCK_MAPS } from '../../src/dataplane/bpf/layout.ts';
import type { CgroupAttachType } from '../../src/native/binding.ts';
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

test('staleSockets: entries whose backend left their frontend, grouped by backend; other frontends, empty ones and SCTP left alone', () => {
  const fe = (addr: string, port: number) => ({ addr, port });
  const key = (cookie: bigint, addr: string, port: number, proto: 'TCP' | 'UDP' | 'SCTP') => ({ cookie, addr, port, proto });
  const entries = [
    [key(1n, '10.244.2.11', 5353, 'UDP'), fe('10.96.0.10', 53)],
    [key(2n, '10.244.2.11', 5353, 'UDP'), fe('10.96.0.10', 53)],
    [key(3n, '10.244.2.12', 5353, 'UDP'), fe('10.96.0.10', 53)], // still serving
    [key(4n, '10.244.2.11', 8080, 'TCP'), fe('10.96.0.10', 80)],
    [key(5n, '10.244.2.11', 5353, 'UDP'), fe('10.96.0.11', 53)], // another Service keeps the backend
    [key(6n, '10.244.2.11', 5353, 'UDP'), fe('10.96.0.12', 53)], // its Service has no serving endpoint
    [key(7n, '10.244.2.11', 9999, 'SCTP'), fe('10.96.0.10', 9)],
  ] as const;
  const serving = new Map([
    ['10.96.0.10:53/UDP', new Set(['10.244.2.12'])],
    ['10.96.0.10:80/TCP', new Set(['10.244.2.12'])],
    ['10.96.0.11:53/UDP', new Set(['10.244.2.11'])],
    ['10.96.0.12:53/UDP', new Set<string>()],
    ['10.96.0.10:9/SCTP', new Set(['10.244.2.12'])],
  ]);
  expect(staleSockets('IPv4', entries, serving)).toStrictEqual([
    { family: 'IPv4', proto: 'UDP', addr: '10.244.2.11', port: 5353, cookies: [1n, 2n], keys: [entries[0][0], entries[1][0]] },
    { family: 'IPv4', proto: 'TCP', addr: '10.244.2.11', port: 8080, cookies: [4n], keys: [entries[3][0]] },
  ]);
});

/** bpf/build/sock.bpf.o as the fake loads it: every map of the tc object plus its own, the eight hooks. */
function sockObject(): FakeObjectSpec {
  return {
    maps: [...Object.values(MAPS), ...Object.values(SOCK_MAPS)],
    programs: Object.values(SOCK_PROGRAMS).map((name) => ({ name, section: 'cgroup/sock_addr', type: 18 /* BPF_PROG_TYPE_CGROUP_SOCK_ADDR */ })),
  };
}

const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined, error: () => undefined, verbose: () => undefined } as never;

test('attachSocketLb writes the netns cookie, pins one link per hook, and swaps programs into them on the next start', async () => {
  const native = new FakeNativeBinding({ objects: { '/fake/sock.bpf.o': sockObject() } });
  native.ensureBpffs('/fake/pins');
  const o = { native, log: quiet, objectPath: '/fake/sock.bpf.o', pinPath: '/fake/pins', cgroupPath: '/sys/fs/cgroup', maxEntries: {} };
  expect(await attachSocketLb(o)).toStrictEqual({ cookie: 4096n, replaced: 0 });
  expect([...native.cgroupLinks.keys()].sort()).toStrictEqual(SOCK_ATTACH_TYPES.map((t) => sockLinkPin('/fake/pins', t)).sort());
  const cfg = native.pinnedMap(`/fake/pins/${SOCK_MAPS.sockcfg.name}`);
  expect(SOCK_MAPS.sockcfg.valueCodec.decode(cfg.dump()[0]![1])).toStrictEqual({ netnsCookie: 4096n });
  expect(await attachSocketLb(o), 'a restarted daemon').toStrictEqual({ cookie: 4096n, replaced: 8 });
  expect(native.cgroupLinks.size).toBe(8);
});

test('attachSocketLb: a hook that fails takes back the links this attempt created, and names the hook', async () => {
  class Failing extends FakeNativeBinding {
    override cgroupLinkAttach(cgroupPath: string, progFd: number, attachType: CgroupAttachType, pinPath: string): { linkId: number; replaced: boolean } {
      if (attachType === 'recvmsg4') throw new Error('refused');
      return super.cgroupLinkAttach(cgroupPath, progFd, attachType, pinPath);
    }
  }
  const native = new Failing({ objects: { '/fake/sock.bpf.o': sockObject() } });
  native.ensureBpffs('/fake/pins');
  await expect(
    attachSocketLb({ native, log: quiet, objectPath: '/fake/sock.bpf.o', pinPath: '/fake/pins', cgroupPath: '/sys/fs/cgroup', maxEntries: {} }),
  ).rejects.toThrow('refused');
  expect(native.cgroupLinks.size, 'connect4/6 and sendmsg4/6 detached again').toBe(0);
});
