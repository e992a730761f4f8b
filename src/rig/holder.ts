// Rig holder: one long-lived TCP connection, for tests of what happens to an
// established connection while something else changes (a daemon restart).
//
//   node src/rig/holder.ts --target IP:PORT --duration-ms D [--interval-ms I]
//
// Connects once to a backend's --echo port (usually through a Service),
// prints `connected` on stdout, then sends a line every interval and expects
// one protocol line back for each (a second of silence, or an error, is a
// broken connection); at the end (or at the first
// failure) prints one JSON document, HolderOutput, and exits.

import * as net from 'node:net';
import { parseArgs } from 'node:util';
import { SwitchyardError } from '../util/errors.ts';
import { parseBackendLine, parseEndpoint } from './protocol.ts';

export interface HolderOutput {
  readonly sent: number;
  readonly answered: number;
  /** Backend names that answered, in order of first appearance (one for a connection that stayed put). */
  readonly backends: string[];
  readonly error?: string;
}

function finish(out: HolderOutput): never {
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { target: { type: 'string' }, 'duration-ms': { type: 'string' }, 'interval-ms': { type: 'string' } },
    strict: true,
  });
  const target = parseEndpoint(values.target ?? '');
  if (!target) throw new SwitchyardError('ERR_SY_USAGE', '--target IP:PORT is required');
  const duration = Number(values['duration-ms'] ?? '5000');
  const interval = Number(values['interval-ms'] ?? '100');
  /** Unanswered lines tolerated: at 100 ms, 1 s of silence ends the hold. */
  const LAG_LINES = Math.max(2, Math.ceil(1000 / interval));
  let sent = 0;
  let answered = 0;
  const backends: string[] = [];
  let buf = '';
  const sock = net.connect({ host: target.ip, port: target.port });
  const fail = (error: string): never => finish({ sent, answered, backends, error });
  sock.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
  sock.on('close', () => fail('closed by peer'));
  sock.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = parseBackendLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (!line) fail('bad-reply');
      else {
        answered++;
        if (!backends.includes(line.name)) backends.push(line.name);
      }
    }
  });
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  process.stdout.write('connected\n');
  const end = Date.now() + duration;
  while (Date.now() < end) {
    // A broken connection errors or closes (above). A line may be late by a
    // retransmission (Linux's minimum RTO is 200 ms) or a busy CPU: only
    // LAG_LINES lines without an answer count as the connection being dead.
    if (sent - answered >= LAG_LINES) fail(`no answer to line ${answered + 1} within ${LAG_LINES * interval} ms`);
    sock.write('ping\n');
    sent++;
    await new Promise((r) => setTimeout(r, interval));
  }
  await new Promise((r) => setTimeout(r, interval));
  sock.removeAllListeners('close');
  sock.destroy();
  finish({ sent, answered, backends, ...(sent === answered ? {} : { error: `${sent - answered} lines unanswered` }) });
}

main().catch((err: unknown) => {
  process.stderr.write(`holder: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
