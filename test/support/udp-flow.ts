// A long-lived UDP flow for the upgrade test, the datagram counterpart of
// src/rig/holder.ts: one socket (one source port, so one tracked flow)
// sends a datagram to a rig backend's UDP port (through a Service) every
// interval and reads the backend's one-line answers. Prints `connected`
// after the first answer, then at the end one JSON document: datagrams sent,
// answered, and the backends that answered in order of first appearance.
// Before anything it prints `local-port N`, the source port (--local-port
// fixes it: a later run continues the same tuple).
// --connected: the socket is connected (connect(2), as a DNS client or a
// metrics agent does) and, when an error ends it (ECONNABORTED: the socket
// was destroyed because its backend went away), replaced by a new connected
// socket, as a client library reconnects; the errors are in the output.
//
//   node test/support/udp-flow.ts --target IP:PORT --duration-ms D [--interval-ms I] [--local-port P] [--connected]

import * as dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import { parseBackendLine, parseEndpoint } from '../../src/rig/protocol.ts';

export interface UdpFlowOutput {
  readonly sent: number;
  readonly answered: number;
  readonly backends: string[];
  readonly localPort: number;
  /** --connected: the errors that ended a socket, in order. */
  readonly errors: string[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      'duration-ms': { type: 'string' },
      'interval-ms': { type: 'string' },
      'local-port': { type: 'string' },
      connected: { type: 'boolean' },
    },
    strict: true,
  });
  const target = parseEndpoint(values.target ?? '');
  if (!target) throw new Error('--target IP:PORT is required');
  const duration = Number(values['duration-ms'] ?? '5000');
  const interval = Number(values['interval-ms'] ?? '100');
  const connectedMode = values.connected === true;
  let sent = 0;
  let answered = 0;
  const backends: string[] = [];
  const errors: string[] = [];
  let first: (() => void) | null = null;
  const connected = new Promise<void>((resolve) => {
    first = resolve;
  });
  let ready = false;
  const open = async (port: number): Promise<dgram.Socket> => {
    const s = dgram.createSocket(target.ip.includes(':') ? 'udp6' : 'udp4');
    s.on('message', (msg) => {
      const line = parseBackendLine(msg.toString('utf8'));
      if (!line) return;
      answered++;
      if (!backends.includes(line.name)) backends.push(line.name);
      first?.();
      first = null;
    });
    await new Promise<void>((resolve) => s.bind(port, () => resolve()));
    if (connectedMode) await new Promise<void>((resolve, reject) => s.connect(target.port, target.ip, (err?: Error) => (err ? reject(err) : resolve())));
    return s;
  };
  let sock = await open(Number(values['local-port'] ?? '0'));
  const onError = (err: NodeJS.ErrnoException): void => {
    errors.push(err.code ?? err.message);
    ready = false;
    sock.close();
    void open(0).then((s) => {
      sock = s;
      sock.on('error', onError);
      ready = true;
    });
  };
  sock.on('error', onError);
  ready = true;
  process.stdout.write(`local-port ${sock.address().port}\n`);
  const send = (): void => {
    if (!ready) return;
    if (connectedMode) sock.send('ping\n');
    else sock.send('ping\n', target.port, target.ip);
    sent++;
  };
  // Until the first answer (the Service may still be programming), then for `duration`.
  const timer = setInterval(send, interval);
  send();
  await connected;
  process.stdout.write('connected\n');
  await new Promise((r) => setTimeout(r, duration));
  clearInterval(timer);
  await new Promise((r) => setTimeout(r, interval * 3));
  const out: UdpFlowOutput = { sent, answered, backends, localPort: sock.address().port, errors };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  sock.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`udp-flow: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
