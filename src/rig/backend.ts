// Rig backend: one process serving every port of one pod.
//
//   node src/rig/backend.ts --name NAME --tcp PORT[,PORT] --udp PORT[,PORT] [--echo PORT[,PORT]] [--bulk PORT[,PORT]]
//
// TCP: on each connection, write one protocol line (see protocol.ts) and end.
// Echo (TCP, long-lived): answer every line received with one protocol line,
// until the client closes; for tests of connections that outlive an event.
// Bulk (TCP): write one protocol line, then echo every byte received until
// the client closes its side, then close: a long transfer both ways, with
// FIN teardown from both ends (client.ts --bulk-bytes).
// UDP: answer each datagram with the same line, sent to the datagram's source.
// Prints `ready` on stdout once every socket listens; exits on SIGTERM.
//
// Both families: TCP listens on `::` (dual-stack, IPv4 peers reported
// unmapped); UDP has a wildcard socket per family.
// UDP and the local address: Node cannot read IP_PKTINFO, so a socket bound to
// 0.0.0.0 (or ::) does not know which address a datagram was sent to. We bind
// one socket per local address as well (SO_REUSEADDR on all of them; the
// kernel delivers to the most specific bound socket), and the wildcard socket
// reports 0.0.0.0 (or ::): "reached on an address that is not one of mine",
// e.g. an untranslated VIP. Replies leave from the bound address, as a real
// server's would. IPv6 link-local addresses are left out (they need a scope).

import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { unmapIPv4 } from '../util/ip.ts';
import { SwitchyardError } from '../util/errors.ts';
import { formatBackendLine, parsePorts } from './protocol.ts';

function localAddresses(family: 'IPv4' | 'IPv6'): string[] {
  const out: string[] = [];
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family === family && !a.address.toLowerCase().startsWith('fe80:')) out.push(a.address);
    }
  }
  return out;
}

/** The protocol line describing one TCP connection as this backend sees it. */
function lineFor(name: string, sock: net.Socket): string {
  return formatBackendLine({
    name,
    // Node reports IPv4 peers of a dual-stack socket as ::ffff:a.b.c.d.
    client: { ip: unmapIPv4(sock.remoteAddress ?? ''), port: sock.remotePort ?? 0 },
    local: { ip: unmapIPv4(sock.localAddress ?? ''), port: sock.localPort ?? 0 },
  });
}

function listen(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '::', ipv6Only: false, port, backlog: 1024 }, () => resolve());
  });
}

/** One line per connection, then close. */
function listenTcp(name: string, port: number): Promise<void> {
  return listen(
    net.createServer((sock) => {
      sock.on('error', () => {});
      sock.end(lineFor(name, sock));
    }),
    port,
  );
}

/** Long-lived: one line per line received, until the client closes. */
function listenEcho(name: string, port: number): Promise<void> {
  return listen(
    net.createServer((sock) => {
      sock.on('error', () => {});
      let buf = '';
      sock.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          buf = buf.slice(nl + 1);
          sock.write(lineFor(name, sock));
        }
      });
    }),
    port,
  );
}

/** One line, then every byte back, then FIN once the client has sent its FIN. */
function listenBulk(name: string, port: number): Promise<void> {
  return listen(
    net.createServer((sock) => {
      sock.on('error', () => {});
      sock.write(lineFor(name, sock));
      sock.pipe(sock);
    }),
    port,
  );
}

/**
 * SO_REUSEADDR would also let a second backend bind the same port and split
 * the traffic silently; a plain bind of the wildcard first fails with
 * EADDRINUSE if anything holds the port.
 */
function probeUdpPortFree(port: number, type: 'udp4' | 'udp6'): Promise<void> {
  const sock = dgram.createSocket(type === 'udp6' ? { type, ipv6Only: true } : { type });
  return new Promise((resolve, reject) => {
    sock.once('error', (err) => {
      sock.close();
      reject(err);
    });
    sock.bind({ address: type === 'udp4' ? '0.0.0.0' : '::', port }, () => sock.close(() => resolve()));
  });
}

function bindUdp(name: string, address: string, port: number): Promise<void> {
  const type = address.includes(':') ? 'udp6' : 'udp4';
  const sock = dgram.createSocket(type === 'udp6' ? { type, reuseAddr: true, ipv6Only: true } : { type, reuseAddr: true });
  sock.on('message', (_msg, rinfo) => {
    const line = formatBackendLine({ name, client: { ip: rinfo.address, port: rinfo.port }, local: { ip: address, port } });
    sock.send(line, rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address, port }, () => {
      sock.off('error', reject);
      sock.on('error', (err) => process.stderr.write(`udp ${address}:${port}: ${err.message}\n`));
      resolve();
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      name: { type: 'string' },
      tcp: { type: 'string' },
      udp: { type: 'string' },
      echo: { type: 'string' },
      bulk: { type: 'string' },
    },
    strict: true,
  });
  const name = values.name;
  if (name === undefined || name === '' || /\s/.test(name)) throw new SwitchyardError('ERR_SY_USAGE', '--name NAME (no spaces) is required');
  const tcp = parsePorts(values.tcp, '--tcp');
  const udp = parsePorts(values.udp, '--udp');
  const echo = parsePorts(values.echo, '--echo');
  const bulk = parsePorts(values.bulk, '--bulk');
  if (tcp.length + udp.length + echo.length + bulk.length === 0)
    throw new SwitchyardError('ERR_SY_USAGE', 'at least one of --tcp, --udp, --echo, --bulk is required');

  const pending: Promise<void>[] = [];
  for (const port of tcp) pending.push(listenTcp(name, port));
  for (const port of echo) pending.push(listenEcho(name, port));
  for (const port of bulk) pending.push(listenBulk(name, port));
  for (const port of udp) {
    for (const [type, wildcard, family] of [
      ['udp4', '0.0.0.0', 'IPv4'],
      ['udp6', '::', 'IPv6'],
    ] as const) {
      pending.push(
        probeUdpPortFree(port, type).then(async () => {
          await Promise.all([bindUdp(name, wildcard, port), ...localAddresses(family).map((addr) => bindUdp(name, addr, port))]);
        }),
      );
    }
  }
  await Promise.all(pending);
  process.on('SIGTERM', () => process.exit(0));
  process.stdout.write('ready\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`backend: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
