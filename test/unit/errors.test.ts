// One error convention (src/util/errors.ts): every error Switchyard throws is
// a SwitchyardError with an ERR_SY_* code, named after its class; the
// dataplane's errors say which operation failed and keep the kernel's error
// (errno, code, syscall) as their cause. The source scan keeps it that way.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.ts';
import { BpfDataplane } from '../../src/dataplane/bpf/dataplane.ts';
import { encode, LayoutError, MAPS, u32Codec } from '../../src/dataplane/bpf/layout.ts';
import { DataplaneError } from '../../src/dataplane/types.ts';
import type { NativeBinding, NativeMapDesc, NativeObject } from '../../src/native/binding.ts';
import { isNativeError } from '../../src/native/errors.ts';
import { KubeConfigError, loadKubeConfig } from '../../src/sources/kube-config.ts';
import { WatchStatusError } from '../../src/sources/kube-reflector.ts';
import { parseObject, ValidationError } from '../../src/sources/objects.ts';
import { CowEditorDoneError, IdSet } from '../../src/util/cow.ts';
import { SwitchyardError } from '../../src/util/errors.ts';
import { dataplaneOptions } from '../support/dataplane-options.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('nothing was thrown');
}

describe('each kind of error carries its code and class name', () => {
  test.each<[string, () => unknown, string]>([
    ['ConfigError', () => thrown(() => loadConfig(['--proxy-mode=fastest'])), 'ERR_SY_INVALID_CONFIG'],
    [
      'ValidationError',
      () => {
        const r = parseObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'Bad_Name' }, spec: { ports: [{ port: 80 }] } });
        return r.status === 'invalid' ? r.error : r;
      },
      'ERR_SY_INVALID_OBJECT',
    ],
    ['KubeConfigError', () => thrown(() => loadKubeConfig({ inCluster: false })), 'ERR_SY_INVALID_KUBECONFIG'],
    ['WatchStatusError', () => new WatchStatusError({ code: 500, reason: 'InternalError', message: 'etcd' }), 'ERR_SY_WATCH_ERROR'],
    ['LayoutError', () => thrown(() => encode(u32Codec, -1)), 'ERR_SY_LAYOUT'],
    [
      'CowEditorDoneError',
      () => {
        const e = IdSet.empty().edit();
        e.done();
        return thrown(() => e.allocate());
      },
      'ERR_SY_COW_EDITOR_DONE',
    ],
  ])('%s', (name, make, code) => {
    const err = make();
    expect(err).toBeInstanceOf(SwitchyardError);
    expect(err).toMatchObject({ name, code });
  });

  test('the subclasses are the ones callers test for', () => {
    expect(thrown(() => loadConfig(['--bogus']))).toBeInstanceOf(ConfigError);
    expect(thrown(() => loadKubeConfig({ inCluster: false }))).toBeInstanceOf(KubeConfigError);
    expect(thrown(() => encode(u32Codec, -1))).toBeInstanceOf(LayoutError);
    const e = IdSet.empty().edit();
    e.done();
    expect(thrown(() => e.done())).toBeInstanceOf(CowEditorDoneError);
    const r = parseObject({ apiVersion: 'v1', kind: 'Node', metadata: {} });
    expect(r.status === 'invalid' && r.error).toBeInstanceOf(ValidationError);
  });
});

// ---------------------------------------------------------------------------
// The dataplane. The fake addon implements the few calls start() makes and
// fails them as the addon does: an Error with errno, code and syscall, the
// message "syscall on object: strerror".

function nativeError(errno: number, code: string, syscall: string, object: string, text: string): Error {
  return Object.assign(new Error(`${syscall} on ${object}: ${text}`), { errno, code, syscall });
}

const CONFIG_MAP: NativeMapDesc = {
  name: MAPS.config.name,
  fd: 11,
  type: 2, // BPF_MAP_TYPE_ARRAY
  keySize: MAPS.config.key.size,
  valueSize: MAPS.config.value.size,
  valueStride: MAPS.config.value.size,
  maxEntries: 1,
  pinPath: null,
};

interface FakeAddon {
  readonly native: NativeBinding;
  readonly updates: number[];
}

function fakeAddon(fail: { open?: Error; update?: Error }): FakeAddon {
  const updates: number[] = [];
  const object: NativeObject = {
    maps: () => [CONFIG_MAP],
    programs: () => ['sy_from_pod', 'sy_to_pod', 'sy_from_net', 'sy_to_net'].map((name, i) => ({ name, section: 'tc', fd: 12 + i, type: 3 })),
    close: () => {},
  };
  const native: Partial<NativeBinding> = {
    openObject: async () => {
      if (fail.open) throw fail.open;
      return object;
    },
    mapUpdate: async (fd) => {
      updates.push(fd);
      if (fail.update) throw fail.update;
    },
    // The pin directory's lock (pinlock.ts) and the layout 1 check (migrate.ts): free, and nothing pinned.
    ensureBpffs: () => false,
    lockDir: () => 20,
    lockHolders: () => [],
    closeFd: () => {},
    mapOpenPinned: (path) => {
      throw nativeError(2, 'ENOENT', 'bpf_obj_get', path, 'No such file or directory');
    },
  };
  return { native: native as NativeBinding, updates };
}

function dataplane(addon: FakeAddon, nodeAddress = '198.18.0.1'): BpfDataplane {
  return new BpfDataplane(
    dataplaneOptions(addon.native, { objectPath: '/opt/sy/switchyard.bpf.o', node: { ipv4: nodeAddress, ipv6: null }, podInterfaces: 'sy-no-such-link-*' }),
  );
}

async function rejection(p: Promise<unknown>): Promise<DataplaneError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataplaneError);
  return err as DataplaneError;
}

describe('DataplaneError', () => {
  test('sync before start', async () => {
    const addon = fakeAddon({});
    const err = await rejection(dataplane(addon).sync({ nodeName: 'n1', servicePorts: new Map(), changed: 'all' }));
    expect(err).toMatchObject({ code: 'ERR_SY_DATAPLANE_NOT_STARTED', dataplane: 'bpf', operation: 'sync', name: 'DataplaneError' });
    expect(err.message).toBe('bpf dataplane: sync: not started: call start() first');
    expect(addon.updates).toEqual([]);
  });

  test('the kernel refusing to load the object: the operation names it, the native error is the cause', async () => {
    const enoent = nativeError(2, 'ENOENT', 'bpf_object__open_file', '/opt/sy/switchyard.bpf.o', 'No such file or directory');
    const err = await rejection(dataplane(fakeAddon({ open: enoent })).start(new AbortController().signal));
    expect(err).toMatchObject({ code: 'ERR_SY_DATAPLANE_KERNEL', operation: 'load /opt/sy/switchyard.bpf.o' });
    expect(err.message).toBe('bpf dataplane: load /opt/sy/switchyard.bpf.o: bpf_object__open_file on /opt/sy/switchyard.bpf.o: No such file or directory');
    expect(err.cause).toBe(enoent);
    expect(isNativeError(err.cause)).toBe(true);
    expect(err.cause).toMatchObject({ errno: 2, code: 'ENOENT', syscall: 'bpf_object__open_file' });
  });

  test('the kernel refusing a map write: which map and operation, with errno, code and syscall reachable', async () => {
    const eperm = nativeError(1, 'EPERM', 'bpf_map_update_elem', MAPS.config.name, 'Operation not permitted');
    const addon = fakeAddon({ update: eperm });
    const dp = dataplane(addon);
    const err = await rejection(dp.start(new AbortController().signal));
    await dp.stop();
    expect(err).toMatchObject({ code: 'ERR_SY_DATAPLANE_KERNEL', dataplane: 'bpf', operation: `update ${MAPS.config.name}` });
    expect(err.message).toBe(`bpf dataplane: update sy_config_v2: bpf_map_update_elem on sy_config_v2: Operation not permitted`);
    expect(err.cause).toMatchObject({ errno: 1, code: 'EPERM', syscall: 'bpf_map_update_elem' });
    expect(addon.updates).toEqual([CONFIG_MAP.fd]);
  });

  test('a node address the bpf dataplane cannot program is refused before any write', async () => {
    const addon = fakeAddon({});
    const dp = dataplane(addon, 'fd00:198:18::1');
    const err = await rejection(dp.start(new AbortController().signal));
    await dp.stop();
    expect(err).toMatchObject({ code: 'ERR_SY_DATAPLANE_OPTION', operation: 'start' });
    expect(err.message).toBe('bpf dataplane: start: node address "fd00:198:18::1" is not an IPv4 address');
    expect(addon.updates).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// The convention, checked over the source.

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

const SOURCES = sourceFiles(SRC).map((path) => ({ path: relative(ROOT, path), text: readFileSync(path, 'utf8') }));

/** Error classes that imitate the kernel's errors (errno, code, syscall) rather than the project's. */
const NATIVE_SHAPED = new Set(['FakeMapError']);

test('every error class derives from SwitchyardError, and everything thrown is one (or a RangeError)', () => {
  const parents = new Map<string, string>();
  for (const { text } of SOURCES) for (const m of text.matchAll(/class (\w+) extends (\w+)/g)) parents.set(m[1] as string, m[2] as string);
  const isProjectError = (name: string): boolean => {
    for (let n: string | undefined = name, depth = 0; n !== undefined && depth < 10; n = parents.get(n), depth++) if (n === 'SwitchyardError') return true;
    return false;
  };
  const bad: string[] = [];
  for (const { path, text } of SOURCES) {
    for (const m of text.matchAll(/class (\w+) extends Error\b/g)) {
      if (m[1] !== 'SwitchyardError' && !NATIVE_SHAPED.has(m[1] as string)) bad.push(`${path}: class ${m[1]} extends Error`);
    }
    for (const m of text.matchAll(/new (\w*Error)\(/g)) {
      const name = m[1] as string;
      if (name !== 'RangeError' && !isProjectError(name) && !NATIVE_SHAPED.has(name)) bad.push(`${path}: new ${name}(`);
    }
  }
  expect(bad).toEqual([]);
  // The scan sees what it checks.
  expect(isProjectError('DataplaneError') && isProjectError('ConfigError') && isProjectError('CommandError')).toBe(true);
});

test('every ERR_SY_* code thrown is listed in src/util/errors.ts', () => {
  const table = readFileSync(join(SRC, 'util/errors.ts'), 'utf8');
  const listed = [...table.matchAll(/^\/\/ {3}(ERR_SY_[A-Z_*]+(?:, ERR_SY_[A-Z_]+)*)/gm)].flatMap((m) => (m[1] as string).split(', '));
  const covered = (code: string) => listed.some((l) => (l.endsWith('*') ? code.startsWith(l.slice(0, -1)) : code === l));
  const used = new Set<string>();
  for (const { path, text } of SOURCES) if (path !== 'src/util/errors.ts') for (const m of text.matchAll(/'(ERR_SY_[A-Z_]+)'/g)) used.add(m[1] as string);
  expect(used.size).toBeGreaterThan(10);
  expect([...used].filter((c) => !covered(c))).toEqual([]);
});
