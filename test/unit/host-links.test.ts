// The link watcher (src/host/links.ts) over the fake binding's linkWatch
// (test/support/fake-native.ts): one onChange per burst of link events, a
// relist at once when events were lost, the periodic rescan, and what it
// does when the event socket cannot be opened or fails; plus listLinks() and
// hostLinks() over a /sys/class/net lookalike. The real socket is
// test/privileged/links.test.ts's.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { afterEach, expect, test, vi } from 'vitest';
import { hostLinks, LinkWatcher, listLinks } from '../../src/host/links.ts';
import type { LinkEvent } from '../../src/native/binding.ts';
import { createLogger } from '../../src/util/log.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';
import { tempDir } from '../support/temp-dir.ts';

const HOUR = 3_600_000;

afterEach(() => {
  vi.useRealTimers();
});

function watcher(fake: FakeNativeBinding, rescanMs = HOUR): { w: LinkWatcher; changes: () => number; logs: string[]; ac: AbortController } {
  let n = 0;
  const logs: string[] = [];
  const w = new LinkWatcher({ native: fake, onChange: () => n++, rescanMs, log: createLogger('links', { level: 'debug', write: (l) => logs.push(l) }) });
  const ac = new AbortController();
  w.start(ac.signal);
  return { w, changes: () => n, logs, ac };
}

/** Lets queued immediates (the fake's delivery, then the watcher's coalesced onChange) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await turn();
}

test('a burst of link events is one onChange, on a later turn of the event loop', async () => {
  const fake = new FakeNativeBinding();
  const { changes, ac } = watcher(fake);
  expect(fake.openLinkWatches()).toBe(1);
  fake.addLink('veth1');
  fake.addLink('veth2');
  fake.removeLink('veth1');
  expect(changes(), 'nothing before the events are delivered').toBe(0);
  await settle();
  expect(changes()).toBe(1);
  fake.addLink('veth3');
  await settle();
  expect(changes()).toBe(2);
  ac.abort();
});

test('an overrun (events lost) relists at once and says so', async () => {
  const fake = new FakeNativeBinding();
  const { changes, logs, ac } = watcher(fake);
  fake.addLink('veth1');
  fake.overrunLinkWatches(); // the kernel dropped veth1's event
  await settle();
  expect(changes()).toBe(1);
  expect(logs.filter((l) => /warn links link events were lost \(socket buffer overrun\): relisting the links/.test(l))).toHaveLength(1);
  ac.abort();
});

test('the periodic rescan calls onChange without events', () => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  const fake = new FakeNativeBinding();
  const { changes, ac } = watcher(fake, 1000);
  vi.advanceTimersByTime(3500);
  expect(changes()).toBe(3);
  ac.abort();
  vi.advanceTimersByTime(5000);
  expect(changes(), 'none after the abort').toBe(3);
});

test('a failed event socket: logged once, the rescan relists and reopens it, then events flow again', async () => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  const fake = new FakeNativeBinding();
  const { changes, logs, ac } = watcher(fake, 1000);
  fake.breakLinkWatches('ENOMEM');
  await settle();
  expect(changes(), 'the failure itself relists').toBe(1);
  expect(fake.openLinkWatches()).toBe(0);
  expect(logs.filter((l) => l.includes('warn links link events stopped: relisting the links every 1000ms instead'))).toHaveLength(1);
  expect(logs.some((l) => l.includes('recvmsg on rtnetlink socket: Cannot allocate memory'))).toBe(true);
  vi.advanceTimersByTime(1000);
  expect(fake.openLinkWatches(), 'reopened by the rescan').toBe(1);
  expect(changes()).toBe(2);
  expect(logs.filter((l) => l.includes('info links link events resumed'))).toHaveLength(1);
  fake.addLink('veth1');
  await settle();
  expect(changes()).toBe(3);
  ac.abort();
});

test('no event socket at all (socket refused): start still works on the rescan alone, warning once', () => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  const fake = new FakeNativeBinding();
  fake.refuseLinkWatch('EPERM');
  const { changes, logs, ac } = watcher(fake, 1000);
  vi.advanceTimersByTime(3000);
  expect(changes()).toBe(3);
  const warnings = logs.filter((l) => l.includes('warn links cannot subscribe to link events: relisting the links every 1000ms instead'));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain('socket on rtnetlink (NETLINK_ROUTE): Operation not permitted');
  fake.refuseLinkWatch(null);
  vi.advanceTimersByTime(1000);
  expect(fake.openLinkWatches()).toBe(1);
  ac.abort();
});

test('stop() and the abort signal close the socket; events already queued are not delivered', async () => {
  const fake = new FakeNativeBinding();
  const a = watcher(fake);
  fake.addLink('veth1');
  a.w.stop();
  expect(fake.openLinkWatches()).toBe(0);
  await settle();
  expect(a.changes()).toBe(0);

  const b = watcher(fake);
  expect(fake.openLinkWatches()).toBe(1);
  b.ac.abort();
  expect(fake.openLinkWatches()).toBe(0);
  fake.addLink('veth2');
  await settle();
  expect(b.changes()).toBe(0);
});

test('a watcher started on an aborted signal opens nothing', () => {
  const fake = new FakeNativeBinding();
  const ac = new AbortController();
  ac.abort();
  new LinkWatcher({ native: fake, onChange: () => {}, rescanMs: HOUR }).start(ac.signal);
  expect(fake.openLinkWatches()).toBe(0);
});

test("the fake's linkWatch: batches of new/del events with name and ifindex; argument errors as the addon's", async () => {
  const fake = new FakeNativeBinding();
  const got: LinkEvent[][] = [];
  const h = fake.linkWatch((evs) => got.push(evs));
  const i = fake.addLink('veth7');
  fake.removeLink('veth7');
  await settle();
  expect(got).toEqual([
    [
      { type: 'new', ifindex: i, name: 'veth7', up: false, lowerUp: false, operstate: 'down' },
      { type: 'del', ifindex: i, name: 'veth7', up: false, lowerUp: false, operstate: 'down' },
    ],
  ]);
  h.close();
  h.close();
  expect(() => fake.linkWatch(42 as unknown as () => void)).toThrow(new TypeError('onEvents must be a function'));
  expect(() => fake.linkWatch(() => {}, { rcvbuf: 0 })).toThrow(new TypeError('opts.rcvbuf must be an integer in [1, 1073741823]'));
});

test('listLinks reads names and ifindexes, sorted by ifindex, skipping entries without one; hostLinks lists the same', () => {
  const dir = tempDir('sy-sysnet-');
  for (const [name, ifindex] of [
    ['veth1', '7'],
    ['lo', '1'],
    ['eth0', '2'],
  ] as const) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'ifindex'), `${ifindex}\n`);
  }
  mkdirSync(join(dir, 'gone')); // removed between readdir and read
  const want = [
    { name: 'lo', ifindex: 1 },
    { name: 'eth0', ifindex: 2 },
    { name: 'veth1', ifindex: 7 },
  ];
  expect(listLinks(dir)).toEqual(want);
  const fake = new FakeNativeBinding();
  const source = hostLinks({ native: fake, rescanMs: HOUR, sysClassNet: dir });
  expect(source.list()).toEqual(want);
  const ac = new AbortController();
  const handle = source.watch(() => {}, ac.signal);
  expect(fake.openLinkWatches()).toBe(1);
  handle.stop();
  expect(fake.openLinkWatches()).toBe(0);
});
