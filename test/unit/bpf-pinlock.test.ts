// The pin directory lock (src/dataplane/bpf/pinlock.ts) on the fake binding:
// the fake's lockDir/lockHolders as the addon's lock.cc behaves (EAGAIN when
// held, released by closeFd), acquirePinLock waiting for a holder with one
// log line naming it, failing after the timeout with ERR_SY_DATAPLANE_PIN_LOCKED
// naming the directory, stopping on abort, and BpfDataplane taking the lock
// before it loads anything and releasing it in stop().

import { describe, expect, test } from 'vitest';
import { BpfDataplane } from '../../src/dataplane/bpf/dataplane.ts';
import { acquirePinLock, holdPinLockNow, type PinLock } from '../../src/dataplane/bpf/pinlock.ts';
import { DataplaneError } from '../../src/dataplane/types.ts';
import { isLockHeld, isNativeError } from '../../src/native/index.ts';
import { FakeClock } from '../../src/sync/clock.ts';
import { createLogger, type Logger } from '../../src/util/log.ts';
import { FAKE_OBJECT_PATH, FakeNativeBinding } from '../support/fake-native.ts';
import { thrownBy } from '../support/thrown.ts';
import { MAPS } from '../../src/dataplane/bpf/layout-v1.ts';

const thrown = (f: () => unknown): Error => thrownBy(f, Error);

const PIN = '/sys/fs/bpf/switchyard';

function logger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('bpf', { level: 'debug', write: (l) => lines.push(l) }), lines };
}

function fakeWithPin(): FakeNativeBinding {
  const fake = new FakeNativeBinding();
  fake.ensureBpffs(PIN);
  return fake;
}

describe('fake binding: lockDir / lockHolders', () => {
  test('a second lock on the directory is EAGAIN (EWOULDBLOCK) until the first fd is closed', () => {
    const fake = fakeWithPin();
    const fd = fake.lockDir(PIN);
    const e = thrown(() => fake.lockDir(`${PIN}/`));
    expect(isLockHeld(e), String(e)).toBe(true);
    expect(e).toMatchObject({ code: 'EAGAIN', errno: 11, syscall: 'flock' });
    expect(fake.lockHolders(PIN)).toEqual([process.pid]);
    fake.closeFd(fd);
    expect(fake.lockHolders(PIN)).toEqual([]);
    const again = fake.lockDir(PIN);
    expect(fake.openFds()).toBe(1);
    fake.closeFd(again);
    expect(fake.openFds()).toBe(0);
  });

  test('a missing directory is ENOENT, a pinned map ENOTDIR, both from open', () => {
    const fake = fakeWithPin();
    expect(thrown(() => fake.lockDir(`${PIN}/nope`))).toMatchObject({ code: 'ENOENT', syscall: 'open' });
    fake.pinMap(`${PIN}/m`, MAPS.config);
    expect(thrown(() => fake.lockDir(`${PIN}/m`))).toMatchObject({ code: 'ENOTDIR', syscall: 'open' });
    expect(fake.openFds()).toBe(0);
  });
});

describe('acquirePinLock', () => {
  test('waits for the holder, logs once who it is, and takes the lock when it is released', async () => {
    const fake = fakeWithPin();
    const clock = new FakeClock();
    const first = await acquirePinLock({ native: fake, log: logger().log, pinPath: PIN, clock });
    expect(first).not.toBeNull();
    const { log, lines } = logger();
    let second: PinLock | null | undefined;
    const p = acquirePinLock({ native: fake, log, pinPath: PIN, clock, timeoutMs: 10_000, retryMs: 100 }).then((l) => {
      second = l;
      return l;
    });
    await clock.advance(1_000);
    expect(second).toBeUndefined();
    expect(lines.filter((l) => l.includes('locked by another daemon'))).toHaveLength(1);
    expect(lines[0]).toContain(PIN);
    expect(lines[0]).toContain(`pid ${process.pid}`);
    first?.release();
    await clock.advance(100);
    expect(await p).not.toBeNull();
    expect(lines.at(-1)).toContain('pin directory lock taken');
    expect(fake.lockHolders(PIN)).toEqual([process.pid]);
    second?.release();
    second?.release(); // twice is harmless
    expect(fake.openFds()).toBe(0);
  });

  test('fails after the timeout with ERR_SY_DATAPLANE_PIN_LOCKED naming the directory and the holder', async () => {
    const fake = fakeWithPin();
    const clock = new FakeClock();
    const held = fake.lockDir(PIN);
    const p = acquirePinLock({ native: fake, log: logger().log, pinPath: PIN, clock, timeoutMs: 2_000, retryMs: 250 });
    const settled = p.then(
      () => expect.unreachable('expected a rejection'),
      (e: unknown) => e,
    );
    await clock.advance(2_000);
    const e = await settled;
    expect(e).toBeInstanceOf(DataplaneError);
    expect(e).toMatchObject({ code: 'ERR_SY_DATAPLANE_PIN_LOCKED', operation: `lock pin directory ${PIN}` });
    expect((e as Error).message).toContain(`pid ${process.pid}`);
    expect(fake.openFds()).toBe(1); // only the holder's fd
    fake.closeFd(held);
  });

  test('timeout 0 fails at once without waiting', async () => {
    const fake = fakeWithPin();
    fake.lockDir(PIN);
    const clock = new FakeClock();
    await expect(acquirePinLock({ native: fake, log: logger().log, pinPath: PIN, clock, timeoutMs: 0 })).rejects.toMatchObject({
      code: 'ERR_SY_DATAPLANE_PIN_LOCKED',
    });
    expect(clock.pending).toBe(0);
  });

  test('an abort while waiting resolves null and leaves no timer and no lock behind', async () => {
    const fake = fakeWithPin();
    const held = fake.lockDir(PIN);
    const clock = new FakeClock();
    const ac = new AbortController();
    const p = acquirePinLock({ native: fake, log: logger().log, pinPath: PIN, clock, signal: ac.signal });
    await clock.advance(500);
    ac.abort();
    expect(await p).toBeNull();
    expect(clock.pending).toBe(0);
    expect(fake.openFds()).toBe(1);
    fake.closeFd(held);
  });

  test('a directory that cannot be opened is a kernel error with the native error as cause, not a wait', async () => {
    const fake = new FakeNativeBinding();
    const e = await acquirePinLock({ native: fake, log: logger().log, pinPath: '/sys/fs/bpf/missing', clock: new FakeClock() }).then(
      () => expect.unreachable('expected a rejection'),
      (err: unknown) => err,
    );
    expect(e).toMatchObject({ code: 'ERR_SY_DATAPLANE_KERNEL' });
    const cause = (e as Error).cause;
    expect(isNativeError(cause) && cause.code).toBe('ENOENT');
  });
});

describe('holdPinLockNow (switchyard cleanup)', () => {
  test('refuses at once while a daemon holds the directory, naming it; takes and releases it otherwise', () => {
    const fake = fakeWithPin();
    const daemon = fake.lockDir(PIN);
    const e = thrownBy(() => holdPinLockNow(fake, PIN, 'cleanup'), DataplaneError);
    expect(e).toMatchObject({ code: 'ERR_SY_DATAPLANE_PIN_LOCKED', operation: `cleanup ${PIN}` });
    expect(e.message).toContain(`pid ${process.pid}`);
    expect(isLockHeld(e.cause)).toBe(true);
    fake.closeFd(daemon);
    const lock = holdPinLockNow(fake, PIN, 'cleanup');
    expect(fake.lockHolders(PIN)).toEqual([process.pid]);
    lock.release();
    expect(fake.openFds()).toBe(0);
  });
});

describe('BpfDataplane and the pin lock', () => {
  function dataplane(fake: FakeNativeBinding, clock: FakeClock, log: Logger, timeoutMs?: number): BpfDataplane {
    return new BpfDataplane({
      native: fake,
      log,
      objectPath: FAKE_OBJECT_PATH,
      pinPath: PIN,
      node: { ipv4: '198.18.0.10', ipv6: null },
      nodeInterface: 'eth0',
      podInterfaces: 'veth*',
      masqueradeAll: false,
      detectLocal: { mode: 'ClusterCIDR', cidrs: ['10.244.0.0/16'] },
      nodePortAddresses: [],
      snatPorts: { min: 61000, max: 65535 },
      capacities: {},
      links: fake.linkSource(),
      pinLockTimeoutMs: timeoutMs,
      clock,
    });
  }

  test('a second daemon on the same pin path loads nothing until the first stops, then starts', async () => {
    const fake = new FakeNativeBinding();
    fake.addLink('eth0');
    const clock = new FakeClock();
    const a = dataplane(fake, clock, logger().log);
    await a.start(new AbortController().signal);
    const callsAfterA = fake.calls.length;
    const fdsAfterA = fake.openFds();
    const { log, lines } = logger();
    const b = dataplane(fake, clock, log);
    let bStarted = false;
    const p = b.start(new AbortController().signal).then(() => {
      bStarted = true;
    });
    await clock.advance(5_000);
    expect(bStarted).toBe(false);
    expect(fake.calls.length).toBe(callsAfterA); // b touched no map
    expect(fake.openFds()).toBe(fdsAfterA);
    expect(lines.some((l) => l.includes('locked by another daemon') && l.includes(PIN))).toBe(true);
    await a.stop();
    await clock.advance(250);
    await p;
    expect(bStarted).toBe(true);
    expect(lines.some((l) => l.includes('adopted pinned maps'))).toBe(true);
    await b.stop();
    expect(fake.openFds()).toBe(0);
  });

  test('the second daemon fails after its timeout with a clear error, and stop() after that is harmless', async () => {
    const fake = new FakeNativeBinding();
    const clock = new FakeClock();
    const a = dataplane(fake, clock, logger().log);
    await a.start(new AbortController().signal);
    const b = dataplane(fake, clock, logger().log, 1_000);
    const settled = b.start(new AbortController().signal).then(
      () => expect.unreachable('expected a rejection'),
      (e: unknown) => e,
    );
    await clock.advance(1_000);
    const e = await settled;
    expect(e).toMatchObject({ code: 'ERR_SY_DATAPLANE_PIN_LOCKED' });
    expect((e as Error).message).toContain(PIN);
    await b.stop();
    await a.stop();
    expect(fake.openFds()).toBe(0);
  });

  test('a stop signal while waiting returns from start() without loading; sync() then says not started', async () => {
    const fake = new FakeNativeBinding();
    const clock = new FakeClock();
    const a = dataplane(fake, clock, logger().log);
    await a.start(new AbortController().signal);
    const b = dataplane(fake, clock, logger().log);
    const ac = new AbortController();
    const p = b.start(ac.signal);
    await clock.advance(300);
    ac.abort();
    await p;
    await expect(b.sync({} as never)).rejects.toMatchObject({ code: 'ERR_SY_DATAPLANE_NOT_STARTED' });
    await a.stop();
    expect(fake.openFds()).toBe(0);
  });

  test('a start that fails after taking the lock releases it', async () => {
    const fake = new FakeNativeBinding({ objects: {} });
    const clock = new FakeClock();
    const a = dataplane(fake, clock, logger().log);
    await expect(a.start(new AbortController().signal)).rejects.toMatchObject({ code: 'ERR_SY_DATAPLANE_KERNEL' });
    expect(fake.lockHolders(PIN)).toEqual([]);
    expect(fake.openFds()).toBe(0);
  });
});
