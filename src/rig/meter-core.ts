// What the traffic meter (meter.ts) counts, and how it is summed and told:
// the bookkeeping of one long-lived TCP connection and of one UDP flow
// (pure: events in, a verdict out, no sockets), the meter's plan and report
// formats, and the one-line summary a test prints. Kept apart from the
// process so that the definitions below are unit-tested on their own.
//
// Definitions (the thresholds count sends, not wall time, so a meter whose
// event loop is starved by a busy machine does not report a loss it caused):
// - churn connection: connect, read the backend's line up to its FIN, close.
//   Failed: an error (reset, refused, unreachable), no complete answer within
//   the plan's timeout (default 5 s: a SYN retransmitted twice, 1 s + 2 s,
//   still fits), or a reply that is not a backend line. Slow (reported, not
//   a failure): answered after SLOW_MS, i.e. some packet had to be resent.
//   Masqueraded (reported; a test decides what it expects): the backend saw
//   another client address than the connection's own.
// - long-lived TCP connection: one line every interval, one backend line
//   back for each. Broken: an error or close, LINE_STALL lines sent since the
//   last answer while lines were outstanding (2 s at 100 ms: TCP recovers a
//   lost segment in a few hundred ms), an answer from another backend than
//   the first, or, at the end, lines still unanswered after the drain.
// - UDP flow: one socket (one source port: one tracked flow), a datagram
//   every interval. Moved: any answer from another backend than the first.
//   Stalled: UDP_STALL datagrams in a row unanswered (1 s at 100 ms). Lost datagrams (sent - answered after the drain) are
//   counted too: a single lost datagram is neither a moved nor a stalled flow.

import { formatEndpoint, type Endpoint } from './protocol.ts';

/** A connection slower than this (ms) had a packet resent (Linux's first SYN retransmission is at 1 s). */
export const SLOW_MS = 900;
/** Lines sent since the last answer, with lines outstanding, that make a long-lived connection broken. */
export const LINE_STALL = 20;
/** Datagrams sent in a row without an answer in between that make a UDP flow stalled. */
export const UDP_STALL = 10;

/** What a meter process runs (meter.ts --plan JSON). */
export interface MeterPlan {
  /** New TCP connections, `rate` per second in total, round-robin over `targets` (the backends' one-line TCP port). */
  readonly churn?: { readonly targets: readonly Endpoint[]; readonly rate: number; readonly timeoutMs?: number };
  /** `perTarget` long-lived connections to each target (a backend's --echo port), a line every `intervalMs` (default 100). */
  readonly long?: { readonly targets: readonly Endpoint[]; readonly perTarget: number; readonly intervalMs?: number };
  /** `perTarget` UDP flows to each target, a datagram every `intervalMs` (default 100). */
  readonly udp?: { readonly targets: readonly Endpoint[]; readonly perTarget: number; readonly intervalMs?: number };
}

export interface ChurnFailure {
  readonly target: string;
  readonly error: string;
  /** Epoch ms the connection was started. */
  readonly at: number;
}

export interface ChurnReport {
  readonly attempted: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly slow: number;
  readonly maxMs: number;
  /** Answered connections whose backend saw another client address than the connection's own (masqueraded). */
  readonly masqueraded: number;
  /** Failures by error code. */
  readonly errors: Record<string, number>;
  /** Answers by backend name. */
  readonly backends: Record<string, number>;
  /** The first failures, with when they started. */
  readonly failures: readonly ChurnFailure[];
}

export interface LongReport {
  readonly target: string;
  readonly sent: number;
  readonly answered: number;
  /** Backends that answered, in order of first appearance. */
  readonly backends: readonly string[];
  /** Why it counts as broken; absent when intact. */
  readonly broken?: string;
  /** Epoch ms it broke. */
  readonly at?: number;
}

export interface UdpReport {
  readonly target: string;
  readonly localPort: number;
  readonly sent: number;
  readonly answered: number;
  readonly backends: readonly string[];
  /** Answers from another backend than the first. */
  readonly movedAnswers: number;
  /** Most datagrams in a row that went unanswered (0 for a flow that lost nothing). */
  readonly maxSilence: number;
  /** Epoch ms of the first answer from another backend. */
  readonly movedAt?: number;
}

/** What a meter prints when stopped: one JSON document. */
export interface MeterReport {
  readonly startedAt: number;
  readonly endedAt: number;
  readonly churn: ChurnReport;
  readonly long: readonly LongReport[];
  readonly udp: readonly UdpReport[];
}

/** Bookkeeping of one long-lived connection; each method returns why it broke, or null. */
export class LineStream {
  readonly target: string;
  sent = 0;
  answered = 0;
  readonly backends: string[] = [];
  broken: string | null = null;
  brokenAt: number | null = null;
  #sinceAnswer = 0;

  constructor(target: Endpoint) {
    this.target = formatEndpoint(target);
  }

  /** A line is about to be sent. */
  send(now: number): string | null {
    if (this.broken) return this.broken;
    if (this.sent > this.answered && this.#sinceAnswer >= LINE_STALL) {
      return this.fail(`no answer while ${this.#sinceAnswer} lines were sent (${this.sent - this.answered} outstanding)`, now);
    }
    this.sent++;
    this.#sinceAnswer++;
    return null;
  }

  /** A backend line came back (null: a line that is not one). TCP keeps order: it answers the oldest outstanding line. */
  answer(name: string | null, now: number): string | null {
    if (this.broken) return this.broken;
    if (name === null) return this.fail('bad reply', now);
    if (this.answered >= this.sent) return this.fail('an answer to a line never sent', now);
    this.answered++;
    this.#sinceAnswer = 0;
    const first = this.backends[0];
    if (!this.backends.includes(name)) this.backends.push(name);
    if (first !== undefined && name !== first) return this.fail(`answered by ${name} after ${first}`, now);
    return null;
  }

  /** The socket errored or closed. */
  fail(reason: string, now: number): string {
    if (!this.broken) {
      this.broken = reason;
      this.brokenAt = now;
    }
    return this.broken;
  }

  /** At the end, after the drain. */
  report(now: number): LongReport {
    if (!this.broken && this.answered < this.sent) this.fail(`${this.sent - this.answered} lines unanswered at the end`, now);
    return {
      target: this.target,
      sent: this.sent,
      answered: this.answered,
      backends: [...this.backends],
      ...(this.broken ? { broken: this.broken, at: this.brokenAt ?? now } : {}),
    };
  }
}

/** Bookkeeping of one UDP flow. */
export class UdpFlowBook {
  readonly target: string;
  localPort = 0;
  sent = 0;
  answered = 0;
  readonly backends: string[] = [];
  movedAnswers = 0;
  movedAt: number | null = null;
  maxSilence = 0;
  #sinceAnswer = 0;

  constructor(target: Endpoint) {
    this.target = formatEndpoint(target);
  }

  send(): void {
    this.sent++;
    this.#sinceAnswer++;
  }

  /** An answer (null: not a backend line; ignored). */
  answer(name: string | null, now: number): void {
    if (name === null) return;
    this.answered++;
    // Answers come in order: the datagrams sent before the one answered, since the last answer, went unanswered.
    this.maxSilence = Math.max(this.maxSilence, this.#sinceAnswer - 1);
    this.#sinceAnswer = 0;
    const first = this.backends[0];
    if (!this.backends.includes(name)) this.backends.push(name);
    if (first !== undefined && name !== first) {
      this.movedAnswers++;
      this.movedAt ??= now;
    }
  }

  report(): UdpReport {
    return {
      target: this.target,
      localPort: this.localPort,
      sent: this.sent,
      answered: this.answered,
      backends: [...this.backends],
      movedAnswers: this.movedAnswers,
      // After the drain, datagrams still unanswered at the end are a silence too.
      maxSilence: Math.max(this.maxSilence, this.#sinceAnswer),
      ...(this.movedAt !== null ? { movedAt: this.movedAt } : {}),
    };
  }
}

/** Several meters' reports summed. */
export interface MeterSummary {
  readonly churn: {
    readonly attempted: number;
    readonly succeeded: number;
    readonly failed: number;
    readonly slow: number;
    readonly maxMs: number;
    readonly masqueraded: number;
  };
  readonly long: { readonly connections: number; readonly intact: number; readonly broken: number };
  readonly udp: { readonly flows: number; readonly moved: number; readonly stalled: number; readonly sent: number; readonly lost: number };
}

export function udpMoved(u: UdpReport): boolean {
  return u.movedAnswers > 0;
}

export function udpStalled(u: UdpReport): boolean {
  return u.maxSilence >= UDP_STALL || u.answered === 0;
}

export function summarize(reports: readonly MeterReport[]): MeterSummary {
  const churn = { attempted: 0, succeeded: 0, failed: 0, slow: 0, maxMs: 0, masqueraded: 0 };
  const long = { connections: 0, intact: 0, broken: 0 };
  const udp = { flows: 0, moved: 0, stalled: 0, sent: 0, lost: 0 };
  for (const r of reports) {
    churn.attempted += r.churn.attempted;
    churn.succeeded += r.churn.succeeded;
    churn.failed += r.churn.failed;
    churn.slow += r.churn.slow;
    churn.masqueraded += r.churn.masqueraded;
    churn.maxMs = Math.max(churn.maxMs, r.churn.maxMs);
    for (const l of r.long) {
      long.connections++;
      if (l.broken === undefined) long.intact++;
      else long.broken++;
    }
    for (const u of r.udp) {
      udp.flows++;
      if (udpMoved(u)) udp.moved++;
      if (udpStalled(u)) udp.stalled++;
      udp.sent += u.sent;
      udp.lost += Math.max(0, u.sent - u.answered);
    }
  }
  return { churn, long, udp };
}

/**
 * `LABEL: churn 812/812 ok (0 failed, 3 slow, max 1040 ms, 406 masqueraded), long-lived 16/16 intact,
 * udp 16 flows 0 moved 0 stalled, 0/2400 datagrams lost` (one line).
 */
export function formatSummary(label: string, s: MeterSummary): string {
  const c = s.churn;
  return (
    `${label}: churn ${c.succeeded}/${c.attempted} ok (${c.failed} failed, ${c.slow} slow, max ${c.maxMs} ms, ${c.masqueraded} masqueraded), ` +
    `long-lived ${s.long.intact}/${s.long.connections} intact, ` +
    `udp ${s.udp.flows} flows ${s.udp.moved} moved ${s.udp.stalled} stalled, ${s.udp.lost}/${s.udp.sent} datagrams lost`
  );
}

/** Every loss in a set of reports, one line each (for failure messages); `[]` when there is none. */
export function describeLosses(reports: readonly { readonly from: string; readonly report: MeterReport }[]): string[] {
  const out: string[] = [];
  for (const { from, report } of reports) {
    for (const f of report.churn.failures) out.push(`${from}: churn ${f.target} ${f.error} at ${new Date(f.at).toISOString()}`);
    if (report.churn.failed > report.churn.failures.length) out.push(`${from}: churn: ${report.churn.failed - report.churn.failures.length} more failures`);
    for (const l of report.long) {
      if (l.broken !== undefined)
        out.push(
          `${from}: long-lived ${l.target} broken at ${new Date(l.at ?? 0).toISOString()}: ${l.broken} (${l.answered}/${l.sent}, ${l.backends.join(',')})`,
        );
    }
    for (const u of report.udp) {
      if (udpMoved(u) || udpStalled(u))
        out.push(
          `${from}: udp ${u.target} from port ${u.localPort}: backends ${u.backends.join(',') || '(none)'}, ${u.movedAnswers} moved answers` +
            `${u.movedAt ? ` from ${new Date(u.movedAt).toISOString()}` : ''}, longest silence ${u.maxSilence} datagrams, ${u.answered}/${u.sent} answered`,
        );
    }
  }
  return out;
}
