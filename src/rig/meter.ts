// Rig traffic meter: runs in one client namespace for the length of an event
// (a daemon restart, an upgrade) and counts what the event cost the traffic
// going through Services from there.
//
//   node src/rig/meter.ts --plan JSON
//
// The plan (MeterPlan, meter-core.ts) names three kinds of traffic, each
// against rig backends (backend.ts) through Service frontends:
// - churn: new TCP connections at a fixed rate to the backends' one-line TCP
//   port, each a request/response and close;
// - long-lived TCP connections to their --echo port, a line every interval;
// - UDP flows to their UDP port, one source port each, a datagram every
//   interval.
// It first opens the long-lived connections and UDP flows and prints `ready`
// once each has had its first answer, then starts the churn. On SIGTERM (or
// SIGINT) it stops starting anything, waits for what is in flight (a drain:
// churn up to its timeout, outstanding lines and datagrams up to DRAIN_MS),
// prints one JSON document (MeterReport) and exits 0. What counts as failed,
// broken, moved or stalled is defined in meter-core.ts.

import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { parseArgs } from 'node:util';
import { SwitchyardError } from '../util/errors.ts';
import { unmapIPv4 } from '../util/ip.ts';
import { type ChurnFailure, LineStream, type MeterPlan, type MeterReport, SLOW_MS, UdpFlowBook } from './meter-core.ts';
import { formatEndpoint, parseBackendLine, type Endpoint } from './protocol.ts';

/** How long the stop waits for outstanding lines and datagrams. */
const DRAIN_MS = 3000;
const CHURN_TIMEOUT_MS = 5000;
/** Churn failures kept with their details (the rest are counted). */
const MAX_FAILURES = 50;

function errorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return err instanceof Error ? err.message : String(err);
}

/** Two spellings of one address (IPv6 has several). */
function sameAddress(a: string, b: string): boolean {
  return (
    a === b ||
    (net.isIPv6(a) &&
      net.isIPv6(b) &&
      new net.SocketAddress({ address: a, family: 'ipv6' }).address === new net.SocketAddress({ address: b, family: 'ipv6' }).address)
  );
}

function nameOf(text: string): string | null {
  return parseBackendLine(text)?.name ?? null;
}

class Churn {
  attempted = 0;
  succeeded = 0;
  failed = 0;
  slow = 0;
  maxMs = 0;
  masqueraded = 0;
  readonly errors: Record<string, number> = {};
  readonly backends: Record<string, number> = {};
  readonly failures: ChurnFailure[] = [];
  #inFlight = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | null = null;
  #next = 0;
  readonly #targets: readonly Endpoint[];
  readonly #timeoutMs: number;
  readonly #rate: number;

  constructor(plan: NonNullable<MeterPlan['churn']>) {
    this.#targets = plan.targets;
    this.#rate = plan.rate;
    this.#timeoutMs = plan.timeoutMs ?? CHURN_TIMEOUT_MS;
  }

  start(): void {
    if (this.#targets.length === 0 || this.#rate <= 0) return;
    // One connection per tick; a tick delayed by a busy event loop is not made up for.
    this.#timer = setInterval(() => this.#one(), 1000 / this.#rate);
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await Promise.all([...this.#inFlight]);
  }

  #one(): void {
    const target = this.#targets[this.#next++ % this.#targets.length] as Endpoint;
    const p = this.#connect(target).finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  #connect(target: Endpoint): Promise<void> {
    this.attempted++;
    const at = Date.now();
    const start = performance.now();
    return new Promise((resolve) => {
      let data = '';
      let done = false;
      const sock = net.connect({ host: target.ip, port: target.port });
      const finish = (error: string | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        const ms = Math.round(performance.now() - start);
        const line = error === null ? parseBackendLine(data) : undefined;
        const name = line?.name ?? null;
        if (error === null && name === null) error = 'bad-reply';
        if (error !== null || name === null) {
          this.failed++;
          const e = error ?? 'bad-reply';
          this.errors[e] = (this.errors[e] ?? 0) + 1;
          if (this.failures.length < MAX_FAILURES) this.failures.push({ target: formatEndpoint(target), error: e, at });
        } else {
          this.succeeded++;
          this.backends[name] = (this.backends[name] ?? 0) + 1;
          if (ms > SLOW_MS) this.slow++;
          if (line && !sameAddress(line.client.ip, local)) this.masqueraded++;
          this.maxMs = Math.max(this.maxMs, ms);
        }
        resolve();
      };
      const timer = setTimeout(() => finish('timeout'), this.#timeoutMs);
      let local = '';
      sock.setEncoding('utf8');
      sock.on('connect', () => (local = unmapIPv4(sock.localAddress ?? '')));
      sock.on('data', (chunk: string) => (data += chunk));
      sock.on('end', () => finish(null));
      sock.on('error', (err) => finish(errorCode(err)));
    });
  }
}

/** One long-lived connection: a LineStream over a socket. */
class LongLived {
  readonly book: LineStream;
  #sock: net.Socket | null = null;
  #timer: NodeJS.Timeout | null = null;
  #buf = '';
  readonly #target: Endpoint;
  readonly #intervalMs: number;
  #firstAnswer: (() => void) | null = null;
  readonly firstAnswer: Promise<void>;

  constructor(target: Endpoint, intervalMs: number) {
    this.book = new LineStream(target);
    this.#target = target;
    this.#intervalMs = intervalMs;
    this.firstAnswer = new Promise((resolve) => (this.#firstAnswer = resolve));
  }

  open(): void {
    const sock = net.connect({ host: this.#target.ip, port: this.#target.port });
    this.#sock = sock;
    sock.on('error', (e) => this.#broke(errorCode(e)));
    sock.on('close', () => this.#broke('closed by peer'));
    sock.on('data', (chunk: Buffer) => {
      this.#buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = this.#buf.indexOf('\n')) >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        if (this.book.answer(nameOf(line), Date.now()) !== null) {
          this.#end();
          return;
        }
        this.#firstAnswer?.();
        this.#firstAnswer = null;
      }
    });
    sock.once('connect', () => {
      this.#send();
      this.#timer = setInterval(() => this.#send(), this.#intervalMs);
    });
  }

  #send(): void {
    if (this.book.send(Date.now()) !== null) this.#end();
    else this.#sock?.write('ping\n');
  }

  #broke(reason: string): void {
    this.book.fail(reason, Date.now());
    this.#end();
  }

  /** Stops sending (a broken connection, or the meter stopping). */
  stopSending(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #end(): void {
    this.stopSending();
    const sock = this.#sock;
    this.#sock = null;
    if (sock) {
      sock.removeAllListeners('close');
      sock.destroy();
    }
  }

  get settled(): boolean {
    return this.book.broken !== null || this.book.answered >= this.book.sent;
  }

  close(): void {
    this.#end();
  }
}

class UdpFlow {
  readonly book: UdpFlowBook;
  readonly #sock: dgram.Socket;
  readonly #target: Endpoint;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #firstAnswer: (() => void) | null = null;
  readonly firstAnswer: Promise<void>;

  constructor(target: Endpoint, intervalMs: number) {
    this.book = new UdpFlowBook(target);
    this.#target = target;
    this.#intervalMs = intervalMs;
    this.#sock = dgram.createSocket(target.ip.includes(':') ? 'udp6' : 'udp4');
    this.firstAnswer = new Promise((resolve) => (this.#firstAnswer = resolve));
    this.#sock.on('error', () => {}); // ICMP errors of an unconnected socket: the missing answer is what counts
    this.#sock.on('message', (msg) => {
      this.book.answer(nameOf(msg.toString('utf8')), Date.now());
      this.#firstAnswer?.();
      this.#firstAnswer = null;
    });
  }

  async open(): Promise<void> {
    await new Promise<void>((resolve) => this.#sock.bind(0, () => resolve()));
    this.book.localPort = this.#sock.address().port;
    this.#send();
    this.#timer = setInterval(() => this.#send(), this.#intervalMs);
  }

  #send(): void {
    this.book.send();
    this.#sock.send('ping\n', this.#target.port, this.#target.ip);
  }

  stopSending(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  get settled(): boolean {
    return this.book.answered >= this.book.sent;
  }

  close(): void {
    this.stopSending();
    this.#sock.close();
  }
}

async function until(done: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { plan: { type: 'string' } }, strict: true });
  let plan: MeterPlan;
  try {
    plan = JSON.parse(values.plan ?? '') as MeterPlan;
  } catch {
    throw new SwitchyardError('ERR_SY_USAGE', '--plan JSON (a MeterPlan) is required');
  }
  const startedAt = Date.now();
  let stopRequested: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stopRequested = resolve));
  process.on('SIGTERM', () => stopRequested());
  process.on('SIGINT', () => stopRequested());

  const longs: LongLived[] = [];
  for (const t of plan.long?.targets ?? []) for (let i = 0; i < plan.long!.perTarget; i++) longs.push(new LongLived(t, plan.long!.intervalMs ?? 100));
  const flows: UdpFlow[] = [];
  for (const t of plan.udp?.targets ?? []) for (let i = 0; i < plan.udp!.perTarget; i++) flows.push(new UdpFlow(t, plan.udp!.intervalMs ?? 100));
  for (const l of longs) l.open();
  await Promise.all(flows.map((f) => f.open()));
  // A connection that breaks before its first answer never resolves firstAnswer; the stop still reports it.
  await Promise.race([Promise.all([...longs.map((l) => l.firstAnswer), ...flows.map((f) => f.firstAnswer)]), stopped]);
  const churn = new Churn(plan.churn ?? { targets: [], rate: 0 });
  churn.start();
  process.stdout.write('ready\n');

  await stopped;
  for (const l of longs) l.stopSending();
  for (const f of flows) f.stopSending();
  await Promise.all([churn.stop(), until(() => longs.every((l) => l.settled) && flows.every((f) => f.settled), DRAIN_MS)]);
  const endedAt = Date.now();
  const report: MeterReport = {
    startedAt,
    endedAt,
    churn: {
      attempted: churn.attempted,
      succeeded: churn.succeeded,
      failed: churn.failed,
      slow: churn.slow,
      maxMs: churn.maxMs,
      masqueraded: churn.masqueraded,
      errors: churn.errors,
      backends: churn.backends,
      failures: churn.failures,
    },
    long: longs.map((l) => l.book.report(endedAt)),
    udp: flows.map((f) => f.book.report()),
  };
  for (const l of longs) l.close();
  for (const f of flows) f.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`meter: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
