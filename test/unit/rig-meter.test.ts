// The traffic meter's definitions (src/rig/meter-core.ts): when a long-lived
// connection counts as broken, when a UDP flow counts as moved or stalled,
// and how reports are summed and told in one line.

import { describe, expect, test } from 'vitest';
import {
  describeLosses,
  formatSummary,
  LINE_STALL,
  LineStream,
  type MeterReport,
  summarize,
  UDP_STALL,
  UdpFlowBook,
  udpMoved,
  udpStalled,
} from '../../src/rig/meter-core.ts';

const T = { ip: '10.96.0.50', port: 7000 };
const T6 = { ip: 'fd00:10:96::50', port: 53 };

describe('LineStream (a long-lived TCP connection)', () => {
  test('every line answered by one backend: intact', () => {
    const l = new LineStream(T);
    for (let i = 0; i < 50; i++) {
      expect(l.send(i)).toBeNull();
      expect(l.answer('pod-1-1', i)).toBeNull();
    }
    expect(l.report(99)).toStrictEqual({ target: '10.96.0.50:7000', sent: 50, answered: 50, backends: ['pod-1-1'] });
  });

  test('answers lagging behind (a retransmission, a busy machine) are not a break until LINE_STALL lines went unanswered', () => {
    const l = new LineStream(T);
    for (let i = 0; i < LINE_STALL; i++) expect(l.send(i)).toBeNull();
    for (let i = 0; i < LINE_STALL; i++) expect(l.answer('b', 100)).toBeNull();
    for (let i = 0; i < LINE_STALL; i++) expect(l.send(200 + i)).toBeNull();
    expect(l.send(300)).toMatch(/^no answer while 20 lines were sent \(20 outstanding\)$/);
    expect(l.report(400)).toMatchObject({ sent: 40, answered: 20, broken: expect.stringMatching(/^no answer/), at: 300 });
  });

  test('an answer from another backend breaks it; the first reason stays', () => {
    const l = new LineStream(T);
    l.send(1);
    l.answer('a', 1);
    l.send(2);
    expect(l.answer('b', 2)).toBe('answered by b after a');
    expect(l.fail('ECONNRESET', 3)).toBe('answered by b after a');
    expect(l.report(4)).toMatchObject({ backends: ['a', 'b'], broken: 'answered by b after a', at: 2 });
  });

  test('an error, a bad line, an answer to nothing, lines unanswered at the end: broken', () => {
    const reset = new LineStream(T);
    reset.fail('ECONNRESET', 5);
    expect(reset.report(9)).toMatchObject({ broken: 'ECONNRESET', at: 5 });
    const bad = new LineStream(T);
    bad.send(1);
    expect(bad.answer(null, 1)).toBe('bad reply');
    const extra = new LineStream(T);
    expect(extra.answer('a', 1)).toBe('an answer to a line never sent');
    const tail = new LineStream(T);
    tail.send(1);
    tail.send(2);
    tail.answer('a', 2);
    expect(tail.report(7)).toMatchObject({ broken: '1 lines unanswered at the end', at: 7 });
  });
});

describe('UdpFlowBook (a UDP flow)', () => {
  test('every datagram answered by one backend: neither moved nor stalled', () => {
    const u = new UdpFlowBook(T6);
    u.localPort = 40000;
    for (let i = 0; i < 30; i++) {
      u.send();
      u.answer('pod-2-1', i);
    }
    const r = u.report();
    expect(r).toStrictEqual({ target: '[fd00:10:96::50]:53', localPort: 40000, sent: 30, answered: 30, backends: ['pod-2-1'], movedAnswers: 0, maxSilence: 0 });
    expect([udpMoved(r), udpStalled(r)]).toStrictEqual([false, false]);
  });

  test('single lost datagrams are counted, not a stall; UDP_STALL in a row are', () => {
    const u = new UdpFlowBook(T6);
    for (let i = 0; i < 20; i++) {
      u.send();
      if (i % 3 !== 0) u.answer('a', i);
    }
    const scattered = u.report();
    expect(scattered.sent - scattered.answered).toBe(7);
    expect(scattered.maxSilence).toBe(1);
    expect(udpStalled(scattered)).toBe(false);
    for (let i = 0; i < UDP_STALL; i++) u.send();
    u.send();
    u.answer('a', 100);
    expect(u.report().maxSilence).toBe(UDP_STALL);
    expect(udpStalled(u.report())).toBe(true);
  });

  test('datagrams unanswered at the end, or no answer at all: stalled', () => {
    const end = new UdpFlowBook(T6);
    end.send();
    end.answer('a', 1);
    for (let i = 0; i < UDP_STALL; i++) end.send();
    expect(udpStalled(end.report())).toBe(true);
    const none = new UdpFlowBook(T6);
    none.send();
    expect(udpStalled(none.report())).toBe(true);
  });

  test('an answer from another backend than the first: moved (with when), also when the first answers again', () => {
    const u = new UdpFlowBook(T6);
    u.send();
    u.answer('a', 1);
    u.send();
    u.answer('b', 2);
    u.send();
    u.answer('a', 3);
    u.answer(null, 4); // not a backend line: ignored
    const r = u.report();
    expect(r).toMatchObject({ backends: ['a', 'b'], movedAnswers: 1, movedAt: 2, answered: 3 });
    expect(udpMoved(r)).toBe(true);
  });
});

function report(over: Partial<MeterReport> = {}): MeterReport {
  return {
    startedAt: 0,
    endedAt: 1000,
    churn: { attempted: 10, succeeded: 10, failed: 0, slow: 1, maxMs: 950, masqueraded: 10, errors: {}, backends: { a: 10 }, failures: [] },
    long: [{ target: '10.96.0.50:7000', sent: 10, answered: 10, backends: ['a'] }],
    udp: [{ target: '10.96.0.50:53', localPort: 4000, sent: 10, answered: 9, backends: ['a'], movedAnswers: 0, maxSilence: 1 }],
    ...over,
  };
}

describe('summaries', () => {
  test('nothing lost: one line of counts, no loss described', () => {
    const s = summarize([report(), report()]);
    expect(formatSummary('restart kill-9', s)).toBe(
      'restart kill-9: churn 20/20 ok (0 failed, 2 slow, max 950 ms, 20 masqueraded), long-lived 2/2 intact, udp 2 flows 0 moved 0 stalled, 2/20 datagrams lost',
    );
    expect(describeLosses([{ from: 'ext', report: report() }])).toStrictEqual([]);
  });

  test('losses of each kind are summed and described one per line', () => {
    const lossy = report({
      churn: {
        attempted: 10,
        succeeded: 9,
        failed: 1,
        slow: 0,
        maxMs: 50,
        masqueraded: 0,
        errors: { ECONNRESET: 1 },
        backends: { a: 9 },
        failures: [{ target: '10.96.0.50:80', error: 'ECONNRESET', at: 0 }],
      },
      long: [{ target: '10.96.0.50:7000', sent: 10, answered: 4, backends: ['a'], broken: 'ECONNRESET', at: 0 }],
      udp: [{ target: '10.96.0.50:53', localPort: 4000, sent: 10, answered: 10, backends: ['a', 'b'], movedAnswers: 5, maxSilence: 0, movedAt: 0 }],
    });
    const s = summarize([lossy, report()]);
    expect(s.churn).toMatchObject({ attempted: 20, failed: 1 });
    expect(s.long).toStrictEqual({ connections: 2, intact: 1, broken: 1 });
    expect(s.udp).toMatchObject({ flows: 2, moved: 1, stalled: 0 });
    const lines = describeLosses([{ from: 'pod-1-0', report: lossy }]);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^pod-1-0: churn 10\.96\.0\.50:80 ECONNRESET at 1970-01-01T00:00:00\.000Z$/);
    expect(lines[1]).toMatch(/^pod-1-0: long-lived 10\.96\.0\.50:7000 broken at .*: ECONNRESET \(4\/10, a\)$/);
    expect(lines[2]).toMatch(/^pod-1-0: udp 10\.96\.0\.50:53 from port 4000: backends a,b, 5 moved answers/);
  });
});
