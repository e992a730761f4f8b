import { expect, test } from 'vitest';
import { ProblemLog } from '../../src/util/problems.ts';
import { createLogger } from '../../src/util/log.ts';

test('a persisting problem is logged once; it is logged again after it went away and came back', () => {
  const lines: string[] = [];
  const log = new ProblemLog(createLogger('t', { write: (l) => lines.push(l) }));
  const a = { owner: 'default/web:http/TCP', field: 'nodePort', message: 'NodePort 30080 is not programmed' };
  const b = { owner: 'default/db:pg/TCP', field: 'sessionAffinity', message: 'affinity is not programmed' };
  expect(log.report([a])).toBe(1);
  expect(log.report([a])).toBe(0);
  expect(log.report([a, b])).toBe(1);
  expect(log.report([b])).toBe(0);
  expect(log.report([a, b]), 'a came back').toBe(1);
  expect(lines).toHaveLength(3);
  expect(lines[0] ?? '').toMatch(/warn t not programmed servicePort=default\/web:http\/TCP field=nodePort/);
});
