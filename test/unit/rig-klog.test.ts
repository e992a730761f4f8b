// The rig's reader of daemon klog lines (src/rig/switchyard.ts): what the
// privileged tests parse out of a daemon's stderr, checked against the
// logger's own klog formatter so that the two cannot drift apart.

import { describe, expect, test } from 'vitest';
import { findLog, klogLines, logField } from '../../src/rig/switchyard.ts';
import { formatKlogLine } from '../../src/util/log.ts';

describe('klog lines of a daemon', () => {
  const at = new Date(Date.UTC(2026, 11, 3, 6, 13, 0, 123));
  const stderr = [
    formatKlogLine(at, 4242, 'info', 'bpf', 'adopted pinned maps', { frontends: 12, backends4: 3 }),
    'switchyard run: privileges: missing CAP_NET_ADMIN',
    formatKlogLine(at, 4242, 'warn', 'manifests', 'skipping object', { file: 'a b.yaml', why: 'got "http"' }),
    formatKlogLine(at, 4242, 'error', 'ops', 'listen failed', { error: new Error('EADDRINUSE') }),
  ].join('\n');

  test('parses severity, time, component, message and fields; skips other lines', () => {
    const lines = klogLines(stderr, 2026);
    expect(lines.map((l) => [l.severity, l.component, l.msg])).toStrictEqual([
      ['I', 'bpf', 'adopted pinned maps'],
      ['W', 'manifests', 'skipping object'],
      ['E', 'ops', 'listen failed'],
    ]);
    expect(lines[0]?.time).toBe(at.getTime());
  });

  test('reads bare and quoted field values', () => {
    const adopted = findLog(stderr, 'bpf', 'adopted pinned maps');
    expect(adopted && logField(adopted, 'frontends')).toBe('12');
    expect(adopted && logField(adopted, 'backends')).toBeUndefined();
    const skipped = findLog(stderr, 'manifests', 'skipping object');
    expect(skipped && logField(skipped, 'file')).toBe('a b.yaml');
    expect(skipped && logField(skipped, 'why')).toBe('got "http"');
    expect(findLog(stderr, 'bpf', 'running')).toBeUndefined();
  });
});
