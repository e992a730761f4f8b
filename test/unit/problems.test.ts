import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProblemLog } from '../../src/util/problems.ts';
import { createLogger } from '../../src/util/log.ts';

test('a persisting problem is logged once; it is logged again after it went away and came back', () => {
  const lines: string[] = [];
  const log = new ProblemLog(createLogger('t', { write: (l) => lines.push(l) }));
  const a = { owner: 'default/web:http/TCP', field: 'nodePort', message: 'NodePort 30080 is not programmed' };
  const b = { owner: 'default/db:pg/TCP', field: 'sessionAffinity', message: 'affinity is not programmed' };
  assert.equal(log.report([a]), 1);
  assert.equal(log.report([a]), 0);
  assert.equal(log.report([a, b]), 1);
  assert.equal(log.report([b]), 0);
  assert.equal(log.report([a, b]), 1, 'a came back');
  assert.equal(lines.length, 3);
  assert.match(lines[0] ?? '', /warn t not programmed servicePort=default\/web:http\/TCP field=nodePort/);
});
