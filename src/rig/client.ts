// Rig load client: one process makes many requests, prints one JSON document.
//
//   node src/rig/client.ts --proto tcp|udp --target IP:PORT|[IPV6]:PORT --count N
//                           [--timeout-ms T] [--concurrency C] [--bulk-bytes B]
//
// Output (stdout): ClientOutput from protocol.ts. Each result is one request:
// TCP is one connection (`reply` = the connected peer, socket.remoteAddress);
// UDP is one datagram from a NEW socket, hence a new source port, as a new
// connection would be (`reply` = rinfo of the answer, so a test can assert the
// answer came from ClusterIP:port and not from the backend's own address).
// UDP sockets are not connected: a connected socket would silently drop an
// answer from the wrong source, which is exactly what a test wants to see.
// --udp-connected connects them instead, so that an ICMP port unreachable
// (a REJECT) is reported as ECONNREFUSED.
// --bulk-bytes (TCP, to a backend's --bulk port): each request sends B bytes
// of a pattern after the backend's line, half-closes, and expects exactly
// those bytes back before the backend's FIN (`bytes` = what came back; a
// mismatch is error 'corrupt', fewer is 'short'); the timeout then covers
// the whole transfer.
// --plan JSON runs several such request sets at once (PlanRun[], printing
// PlanOutput): one process instead of one per set, which matters in the
// kernel-matrix VMs where starting node takes seconds.
// Failures are results, not exit codes: the process exits 0 unless its
// arguments are wrong.

import * as dgram from 'node:dgram';
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { parseArgs } from 'node:util';
import { unmapIPv4 } from '../util/ip.ts';
import { SwitchyardError } from '../util/errors.ts';
import { formatEndpoint, parseBackendLine, parseEndpoint } from './protocol.ts';
import type { ClientOutput, Endpoint, PlanOutput, PlanRun, Proto, RequestResult } from './protocol.ts';

function errorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return err instanceof Error ? err.message : String(err);
}

function fillFromLine(r: RequestResult, text: string): void {
  const line = parseBackendLine(text);
  if (!line) {
    r.ok = false;
    r.error = 'bad-reply';
    return;
  }
  r.ok = true;
  r.backend = line.name;
  r.seenClient = line.client;
  r.seenLocal = line.local;
}

function tcpRequest(target: Endpoint, timeoutMs: number): Promise<RequestResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    const r: RequestResult = { ok: false, ms: 0 };
    let data = '';
    let done = false;
    const sock = net.connect({ host: target.ip, port: target.port });
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (error !== undefined) {
        r.ok = false;
        r.error = error;
      } else {
        fillFromLine(r, data);
      }
      r.ms = Math.round(performance.now() - start);
      resolve(r);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      // Node reports IPv4 peers of a dual-stack socket as ::ffff:a.b.c.d.
      r.reply = { ip: unmapIPv4(sock.remoteAddress ?? ''), port: sock.remotePort ?? 0 };
      r.local = { ip: unmapIPv4(sock.localAddress ?? ''), port: sock.localPort ?? 0 };
    });
    sock.on('data', (chunk: string) => {
      data += chunk;
    });
    sock.on('end', () => finish());
    sock.on('error', (err) => finish(errorCode(err)));
  });
}

/** B bytes of a pattern that a lost or reordered segment cannot reproduce. */
function pattern(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  let x = 0x9e3779b9;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function bulkRequest(target: Endpoint, payload: Buffer, timeoutMs: number): Promise<RequestResult> {
  const start = performance.now();
  const want = createHash('sha256').update(payload).digest('hex');
  return new Promise((resolve) => {
    const r: RequestResult = { ok: false, ms: 0 };
    let head = '';
    let gotLine = false;
    const hash = createHash('sha256');
    let bytes = 0;
    let done = false;
    const sock = net.connect({ host: target.ip, port: target.port });
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      r.bytes = bytes;
      if (error !== undefined) {
        r.ok = false;
        r.error = error;
      } else if (bytes < payload.length) {
        r.ok = false;
        r.error = `short: ${bytes} of ${payload.length} bytes came back`;
      } else if (bytes > payload.length || hash.digest('hex') !== want) {
        r.ok = false;
        r.error = 'corrupt';
      }
      r.ms = Math.round(performance.now() - start);
      resolve(r);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('connect', () => {
      r.reply = { ip: unmapIPv4(sock.remoteAddress ?? ''), port: sock.remotePort ?? 0 };
      r.local = { ip: unmapIPv4(sock.localAddress ?? ''), port: sock.localPort ?? 0 };
      sock.end(payload);
    });
    sock.on('data', (chunk: Buffer) => {
      let data = chunk;
      if (!gotLine) {
        const nl = data.indexOf(0x0a);
        if (nl < 0) {
          head += data.toString('utf8');
          return;
        }
        head += data.subarray(0, nl + 1).toString('utf8');
        data = data.subarray(nl + 1);
        gotLine = true;
        fillFromLine(r, head);
      }
      bytes += data.length;
      hash.update(data);
    });
    sock.on('end', () => (gotLine ? finish() : finish('bad-reply')));
    sock.on('error', (err) => finish(errorCode(err)));
  });
}

/**
 * The source address the kernel picks for `target`: connecting a UDP socket
 * does the route lookup without sending anything. '' when there is no route.
 */
function sourceIpFor(target: Endpoint): Promise<string> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(udpType(target));
    sock.on('error', () => {
      sock.close();
      resolve('');
    });
    sock.connect(target.port, target.ip, () => {
      const ip = sock.address().address;
      sock.close();
      resolve(ip);
    });
  });
}

function udpType(target: Endpoint): 'udp4' | 'udp6' {
  return target.ip.includes(':') ? 'udp6' : 'udp4';
}

function udpRequest(target: Endpoint, sourceIp: string, timeoutMs: number, connected: boolean): Promise<RequestResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    const r: RequestResult = { ok: false, ms: 0 };
    let done = false;
    const sock = dgram.createSocket(udpType(target));
    const finish = (error?: string, text?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      if (error !== undefined) {
        r.ok = false;
        r.error = error;
      } else {
        fillFromLine(r, text ?? '');
      }
      r.ms = Math.round(performance.now() - start);
      resolve(r);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('error', (err) => finish(errorCode(err)));
    sock.on('message', (msg, rinfo) => {
      r.reply = { ip: rinfo.address, port: rinfo.port };
      finish(undefined, msg.toString('utf8'));
    });
    sock.bind(0, () => {
      r.local = { ip: sourceIp, port: sock.address().port };
      const sent = (err: Error | null): void => {
        if (err) finish(errorCode(err));
      };
      if (connected)
        // Node passes a failed connect (ECONNREFUSED from a socket hook) to this callback.
        sock.connect(target.port, target.ip, (err?: Error) => {
          if (err) {
            finish(errorCode(err));
            return;
          }
          const peer = sock.remoteAddress();
          r.peer = { ip: unmapIPv4(peer.address), port: peer.port };
          sock.send('ping\n', sent);
        });
      else sock.send('ping\n', target.port, target.ip, sent);
    });
  });
}

async function runPool(count: number, concurrency: number, one: () => Promise<RequestResult>): Promise<RequestResult[]> {
  const results: RequestResult[] = new Array<RequestResult>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      results[i] = await one();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

function positiveInt(s: string | undefined, flag: string, dflt: number): number {
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new SwitchyardError('ERR_SY_USAGE', `${flag}: expected a positive integer, got ${JSON.stringify(s)}`);
  return n;
}

interface Run {
  proto: Proto;
  target: Endpoint;
  count: number;
  timeoutMs: number;
  concurrency: number;
  bulkBytes: number;
  udpConnected: boolean;
}

async function runOne(r: Run): Promise<RequestResult[]> {
  const { target, count, concurrency, timeoutMs } = r;
  if (r.bulkBytes > 0) {
    if (r.proto !== 'tcp') throw new SwitchyardError('ERR_SY_USAGE', '--bulk-bytes needs --proto tcp');
    const payload = pattern(r.bulkBytes);
    return runPool(count, concurrency, () => bulkRequest(target, payload, timeoutMs));
  }
  if (r.proto === 'tcp') return runPool(count, concurrency, () => tcpRequest(target, timeoutMs));
  if (r.proto !== 'udp') throw new SwitchyardError('ERR_SY_USAGE', `proto ${r.proto}: tcp or udp (SCTP: sctp.c)`);
  const sourceIp = await sourceIpFor(target);
  return runPool(count, concurrency, () => udpRequest(target, sourceIp, timeoutMs, r.udpConnected));
}

/** --plan: a JSON array of PlanRun (protocol.ts); prints PlanOutput. */
async function runPlan(text: string): Promise<void> {
  let plan: PlanRun[];
  try {
    plan = JSON.parse(text) as PlanRun[];
  } catch {
    throw new SwitchyardError('ERR_SY_USAGE', '--plan: not JSON');
  }
  const runs = plan.map((p, i): Run => {
    const target = parseEndpoint(formatEndpoint({ ip: String(p.ip), port: Number(p.port) }));
    if (!target) throw new SwitchyardError('ERR_SY_USAGE', `--plan[${i}]: bad ip/port`);
    return {
      proto: p.proto,
      target,
      count: p.count ?? 1,
      timeoutMs: p.timeoutMs ?? 1000,
      concurrency: p.concurrency ?? 10,
      bulkBytes: p.bulkBytes ?? 0,
      udpConnected: p.udpConnected === true,
    };
  });
  // Request sets run at the same time; bulk transfers after them, one at a
  // time, so that a transfer saturating a slow machine does not push
  // another set's requests past their timeouts.
  const results: RequestResult[][] = new Array<RequestResult[]>(runs.length);
  await Promise.all(
    runs.map(async (r, i) => {
      if (r.bulkBytes === 0) results[i] = await runOne(r);
    }),
  );
  for (const [i, r] of runs.entries()) if (r.bulkBytes > 0) results[i] = await runOne(r);
  const out: PlanOutput = { runs: results };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      plan: { type: 'string' },
      proto: { type: 'string' },
      target: { type: 'string' },
      count: { type: 'string' },
      'timeout-ms': { type: 'string' },
      concurrency: { type: 'string' },
      'bulk-bytes': { type: 'string' },
      'udp-connected': { type: 'boolean' },
    },
    strict: true,
  });
  if (values.plan !== undefined) return runPlan(values.plan);
  const proto = values.proto;
  if (proto !== 'tcp' && proto !== 'udp') throw new SwitchyardError('ERR_SY_USAGE', '--proto tcp|udp is required (SCTP: sctp.c)');
  const target = parseEndpoint(values.target ?? '');
  if (!target) throw new SwitchyardError('ERR_SY_USAGE', '--target IP:PORT is required');
  const count = positiveInt(values.count, '--count', 1);
  const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms', 1000);
  const concurrency = positiveInt(values.concurrency, '--concurrency', 10);

  const bulkBytes = values['bulk-bytes'] === undefined ? 0 : positiveInt(values['bulk-bytes'], '--bulk-bytes', 1);
  const results = await runOne({ proto, target, count, timeoutMs, concurrency, bulkBytes, udpConnected: values['udp-connected'] === true });
  const out: ClientOutput = { proto: proto satisfies Proto, target, results };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`client: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
