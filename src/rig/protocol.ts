// Wire format shared by the rig's backend server (backend.ts), its load
// client (client.ts) and the in-process wrapper (cluster.ts).
//
// A backend answers every TCP connection and every UDP datagram with one line:
//   NAME CLIENTIP:CLIENTPORT LOCALIP:LOCALPORT\n
// where CLIENT is the peer address the backend saw (so a test can tell whether
// the source was preserved or masqueraded) and LOCAL the address it was
// reached on (so a test can tell that the destination was translated).
// IPv6 endpoints are written `[ADDR]:PORT`. The client prints one JSON
// document, `ClientOutput`.

import { SwitchyardError } from '../util/errors.ts';

export interface Endpoint {
  ip: string;
  port: number;
}

export type Proto = 'tcp' | 'udp' | 'sctp';

export interface RequestResult {
  ok: boolean;
  /** The NAME the backend reported. */
  backend?: string;
  /** The client address the backend saw. */
  seenClient?: Endpoint;
  /** The address the backend saw the request arrive on (UDP: 0.0.0.0 when not one of its own addresses, e.g. a VIP). */
  seenLocal?: Endpoint;
  /** TCP: the connected peer (socket.remoteAddress). UDP: rinfo of the reply. */
  reply?: Endpoint;
  /** Connected UDP: the socket's peer after connect (getpeername). */
  peer?: Endpoint;
  /** The client's own source address for this request. */
  local?: Endpoint;
  /** Error code (ECONNREFUSED, EHOSTUNREACH, ...) or 'timeout' or 'bad-reply'. */
  error?: string;
  /** Bulk transfers: bytes that came back. */
  bytes?: number;
  /** Wall time of this request in milliseconds. */
  ms: number;
}

export interface ClientOutput {
  proto: Proto;
  target: Endpoint;
  results: RequestResult[];
}

/** One request set of a client --plan. */
export interface PlanRun {
  proto: Proto;
  ip: string;
  port: number;
  count?: number;
  timeoutMs?: number;
  concurrency?: number;
  bulkBytes?: number;
  udpConnected?: boolean;
}

/** What client --plan prints: the results of each PlanRun, in order. */
export interface PlanOutput {
  runs: RequestResult[][];
}

export interface BackendLine {
  name: string;
  client: Endpoint;
  local: Endpoint;
}

export function formatEndpoint(e: Endpoint): string {
  return e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

/** Parses `A.B.C.D:PORT` or `[IPV6]:PORT`. */
export function parseEndpoint(s: string): Endpoint | undefined {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9a-fA-F:.]+)\]):(\d{1,5})$/.exec(s);
  if (!m || m[3] === undefined) return undefined;
  const ip = m[1] ?? m[2];
  if (ip === undefined) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { ip, port };
}

export function formatBackendLine(l: BackendLine): string {
  return `${l.name} ${formatEndpoint(l.client)} ${formatEndpoint(l.local)}\n`;
}

export function parseBackendLine(s: string): BackendLine | undefined {
  const parts = s.trim().split(' ');
  if (parts.length !== 3 || parts[0] === undefined || parts[0] === '') return undefined;
  const client = parseEndpoint(parts[1] ?? '');
  const local = parseEndpoint(parts[2] ?? '');
  if (!client || !local) return undefined;
  return { name: parts[0], client, local };
}

/** Parses a comma-separated port list (`80,8080`); empty or missing is []. */
export function parsePorts(s: string | undefined, flag: string): number[] {
  if (s === undefined || s === '') return [];
  return s.split(',').map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw new SwitchyardError('ERR_SY_USAGE', `${flag}: bad port ${JSON.stringify(p)}`);
    }
    return n;
  });
}
