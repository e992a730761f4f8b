import { expect, test } from 'vitest';
import { FakeClock } from '../../src/sync/clock.ts';
import { SyncRunner, type SyncRequest, type SyncResult } from '../../src/sync/runner.ts';
import { nullLogger } from '../../src/util/log.ts';

interface Call {
  at: number;
  full: boolean;
  reason: string;
}

function setup(opts: { minSyncPeriodMs?: number; syncPeriodMs?: number; retryMinMs?: number; retryMaxMs?: number; durationMs?: number } = {}) {
  const clock = new FakeClock(0);
  const calls: Call[] = [];
  const results: SyncResult[] = [];
  let failNext = 0;
  const runner = new SyncRunner({
    clock,
    logger: nullLogger(),
    minSyncPeriodMs: opts.minSyncPeriodMs ?? 1000,
    syncPeriodMs: opts.syncPeriodMs ?? 30_000,
    retryMinMs: opts.retryMinMs ?? 2000,
    retryMaxMs: opts.retryMaxMs ?? 8000,
    onResult: (r) => results.push(r),
    sync: async (req: SyncRequest) => {
      calls.push({ at: clock.now(), full: req.full, reason: req.reason });
      if (opts.durationMs) await new Promise<void>((resolve) => clock.setTimeout(resolve, opts.durationMs!));
      if (failNext > 0) {
        failNext--;
        throw new Error('dataplane says no');
      }
    },
  });
  return { clock, calls, results, runner, fail: (n: number) => (failNext = n) };
}

test('nothing runs before the first run(); the first sync is immediate and full', async () => {
  const { clock, calls, runner } = setup();
  runner.start();
  await clock.advance(60_000);
  expect(calls).toStrictEqual([]);
  runner.run();
  await clock.advance(0);
  expect(calls).toStrictEqual([{ at: 60_000, full: true, reason: 'requested' }]);
  await runner.stop();
});

test('a burst of run() calls coalesces into one sync, no sooner than minSyncPeriod after the last', async () => {
  const { clock, calls, runner } = setup({ minSyncPeriodMs: 1000 });
  runner.start();
  runner.run();
  await clock.advance(0); // first sync at t=0
  for (let i = 0; i < 50; i++) {
    runner.run();
    await clock.advance(10);
  }
  // t=500: still inside the min period
  expect(calls.length).toBe(1);
  await clock.advance(499);
  expect(calls.length, 'not before t=1000').toBe(1);
  await clock.advance(1);
  expect(calls.length).toBe(2);
  expect(calls[1]).toStrictEqual({ at: 1000, full: false, reason: 'requested' });
  await clock.advance(5000);
  expect(calls.length, 'no further sync without a request').toBe(2);
  await runner.stop();
});

test('a request arriving during a slow sync runs once after it, minSyncPeriod after its end', async () => {
  const { clock, calls, runner } = setup({ minSyncPeriodMs: 1000, durationMs: 300 });
  runner.start();
  runner.run();
  await clock.advance(100); // in flight until t=300
  runner.run();
  runner.run();
  await clock.advance(1199); // t=1299
  expect(calls.length).toBe(1);
  await clock.advance(1); // t=1300 = end (300) + min period
  expect(calls.map((c) => c.at)).toStrictEqual([0, 1300]);
  const stopping = runner.stop(); // the second sync is still in flight until t=1600
  await clock.advance(300);
  await stopping;
});

test('a full sync happens at least every syncPeriod, even while incremental syncs keep coming', async () => {
  const { clock, calls, runner } = setup({ minSyncPeriodMs: 1000, syncPeriodMs: 10_000 });
  runner.start();
  runner.run();
  await clock.advance(0);
  for (let t = 0; t < 25_000; t += 3000) {
    await clock.advance(3000);
    runner.run();
  }
  await clock.advance(5000);
  const fulls = calls.filter((c) => c.full).map((c) => c.at);
  expect(fulls[0]).toBe(0);
  for (let i = 1; i < fulls.length; i++) expect(fulls[i]! - fulls[i - 1]!, `full syncs ${fulls.join(',')}`).toBeLessThanOrEqual(10_000);
  expect(fulls.length, `full syncs ${fulls.join(',')}`).toBeGreaterThanOrEqual(3);
  expect(
    calls.some((c) => !c.full),
    'requested syncs in between are incremental',
  ).toBeTruthy();
  await runner.stop();
});

test('idle: the periodic full sync fires on its own', async () => {
  const { clock, calls, runner } = setup({ syncPeriodMs: 10_000 });
  runner.start();
  runner.run();
  await clock.advance(35_000);
  expect(calls).toStrictEqual([
    { at: 0, full: true, reason: 'requested' },
    { at: 10_000, full: true, reason: 'periodic' },
    { at: 20_000, full: true, reason: 'periodic' },
    { at: 30_000, full: true, reason: 'periodic' },
  ]);
  await runner.stop();
});

test('a failed sync is retried with a doubling backoff, capped; success resets it', async () => {
  const { clock, calls, results, runner, fail } = setup({ minSyncPeriodMs: 1000, retryMinMs: 2000, retryMaxMs: 5000, syncPeriodMs: 60_000 });
  runner.start();
  fail(4);
  runner.run();
  await clock.advance(20_000);
  expect(calls.map((c) => c.at)).toStrictEqual([0, 2000, 6000, 11_000, 16_000]); // +2s, +4s, +5s (cap), +5s
  expect(calls.map((c) => c.reason)).toStrictEqual(['requested', 'retry', 'retry', 'retry', 'retry']);
  expect(
    calls.every((c) => c.full),
    'a failed full sync is retried as a full sync',
  ).toBeTruthy();
  expect(results.map((r) => r.failures)).toStrictEqual([1, 2, 3, 4, 0]);
  expect(runner.failures).toBe(0);
  expect(String((results[0]!.error as Error).message)).toMatch(/dataplane says no/);
  await runner.stop();
});

test('a failed incremental sync is retried incremental; a request during backoff retries sooner', async () => {
  const { clock, calls, runner, fail } = setup({ minSyncPeriodMs: 1000, retryMinMs: 10_000, syncPeriodMs: 60_000 });
  runner.start();
  runner.run();
  await clock.advance(0); // full, ok
  await clock.advance(2000);
  fail(1);
  runner.run();
  await clock.advance(0); // t=2000 fails
  await clock.advance(1500);
  runner.run(); // kube-proxy: any trigger runs sooner than the retry
  await clock.advance(0);
  expect(calls.map((c) => [c.at, c.full])).toStrictEqual([
    [0, true],
    [2000, false],
    [3500, false],
  ]);
  await clock.advance(20_000);
  expect(calls.length, 'the success cancelled the pending retry').toBe(3);
  await runner.stop();
});

test('stop() waits for the sync in flight and prevents further syncs', async () => {
  const { clock, calls, runner } = setup({ durationMs: 500, syncPeriodMs: 2000 });
  runner.start();
  runner.run();
  await clock.advance(100);
  let stopped = false;
  const stopping = runner.stop().then(() => (stopped = true));
  await clock.advance(0);
  expect(stopped, 'still syncing').toBe(false);
  await clock.advance(400);
  await stopping;
  expect(stopped).toBe(true);
  runner.run();
  await clock.advance(10_000);
  expect(calls.length).toBe(1);
  expect(clock.pending, 'no timers left behind').toBe(0);
});

test('an aborted signal stops the runner', async () => {
  const { clock, calls, runner } = setup();
  const ac = new AbortController();
  runner.start(ac.signal);
  ac.abort();
  runner.run();
  await clock.advance(5000);
  expect(calls.length).toBe(0);
  expect(clock.pending).toBe(0);
});
