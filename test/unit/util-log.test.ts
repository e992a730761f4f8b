// The daemon's log formats: klog text lines (kube-proxy's default) and JSON
// lines (--logging-format=json), levels and -v; the plain format stays the
// library default.

import { expect, test } from 'vitest';
import { runConfig } from '../../src/cli/run.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger, formatJsonLine, formatKlogLine } from '../../src/util/log.ts';

const AT = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));

test('klog: severity, MMDD hh:mm:ss.micro, pid padded to 7, source, quoted message, key=value with strings quoted', () => {
  expect(formatKlogLine(AT, 4242, 'info', 'sync', 'synced', { full: true, services: 3, reason: 'periodic' })).toBe(
    'I0102 03:04:05.678000    4242 sync] "synced" full=true services=3 reason="periodic"',
  );
  expect(formatKlogLine(AT, 1, 'warn', 'manifests', 'skipping "x"', { file: 'a b.yaml' })).toBe(
    'W0102 03:04:05.678000       1 manifests] "skipping \\"x\\"" file="a b.yaml"',
  );
  // An error line puts the error first, as klog's ErrorS puts err.
  expect(formatKlogLine(AT, 1, 'error', 'sync', 'sync failed', { full: false, error: new Error('EPERM') })).toBe(
    'E0102 03:04:05.678000       1 sync] "sync failed" err="EPERM" full=false',
  );
});

test('json: ts in ms, logger, msg, v (0, or 4 for debug; none on errors), fields', () => {
  expect(JSON.parse(formatJsonLine(AT, 'info', 'sync', 'synced', { services: 3 }))).toEqual({
    ts: AT.getTime(),
    logger: 'sync',
    msg: 'synced',
    v: 0,
    services: 3,
  });
  expect(JSON.parse(formatJsonLine(AT, 'debug', 'bpf', 'x', {}))).toMatchObject({ v: 4 });
  const err = JSON.parse(formatJsonLine(AT, 'error', 'sync', 'sync failed', { error: new Error('boom'), n: 1n }));
  expect(err).toEqual({ ts: AT.getTime(), logger: 'sync', msg: 'sync failed', err: 'boom', n: '1' });
});

test('createLogger: the format option picks the writer; level filters (debug only with -v=4)', () => {
  const lines: string[] = [];
  const k = createLogger('run', { format: 'klog', pid: 7, now: () => AT, write: (l) => lines.push(l) });
  k.debug('hidden');
  k.info('running', { source: 'kubernetes api' });
  const j = createLogger('run', { format: 'json', level: 'debug', now: () => AT, write: (l) => lines.push(l) });
  j.debug('shown');
  createLogger('run', { now: () => AT, write: (l) => lines.push(l) }).info('plain');
  expect(lines).toEqual([
    'I0102 03:04:05.678000       7 run] "running" source="kubernetes api"',
    `{"ts":${AT.getTime()},"logger":"run","msg":"shown","v":4}`,
    '2026-01-02T03:04:05.678Z info run plain',
  ]);
});

test('-v as kube-proxy: 0 info, 2 adds verbose (V(2)), 4 adds debug; the daemon writes klog unless --logging-format=json', () => {
  const level = (...argv: string[]) => runConfig(loadConfig(argv).config).logLevel;
  expect(level()).toBe('info');
  expect(level('-v=2')).toBe('verbose');
  expect(level('-v', '3')).toBe('verbose');
  expect(level('-v4')).toBe('debug');
  expect(runConfig(loadConfig([]).config).logFormat).toBe('klog');
  expect(runConfig(loadConfig(['--logging-format=json']).config).logFormat).toBe('json');
  const lines: string[] = [];
  const l = createLogger('ops', { level: 'verbose', format: 'json', now: () => AT, write: (x) => lines.push(x) });
  l.debug('dropped');
  l.verbose('sync complete', { full: true });
  expect(lines).toEqual([`{"ts":${AT.getTime()},"logger":"ops","msg":"sync complete","v":2,"full":true}`]);
});
