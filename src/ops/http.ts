// The small HTTP plumbing the operator endpoints share (health, metrics,
// per-Service health checks): listening on a kube-proxy style "host:port",
// closing a server together with its kept-alive connections, and Go's
// time.Time JSON text, which kube-proxy's health bodies carry.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { splitHostPort } from '../util/ip.ts';
import { SwitchyardError } from '../util/errors.ts';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A server that is listening; close() ends it and every open connection. */
export interface Listening {
  /** The address actually bound ("127.0.0.1:34567", "[::]:10256"). */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Opens a listener; injected where tests need to make binding fail. */
export type Listen = (host: string, port: number, handler: Handler) => Promise<Listening>;

/** "host:port" (IPv6 in brackets) as kube-proxy's --healthz-bind-address takes it. */
export function parseBindAddress(text: string): { host: string; port: number } {
  const hp = splitHostPort(text);
  const port = hp.ok ? Number(hp.port) : Number.NaN;
  if (!hp.ok || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new SwitchyardError('ERR_SY_BIND_ADDRESS', `bind address ${JSON.stringify(text)}: ${hp.ok ? 'invalid port' : hp.reason}`);
  }
  return { host: hp.host === '' ? '0.0.0.0' : hp.host, port };
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Binds with node:http; rejects with the listen error (EADDRINUSE, EACCES,
 * EADDRNOTAVAIL). "0.0.0.0" and "::" mean every address of both families,
 * as they do for Go's listener (kube-proxy's): a dual-stack socket on "::",
 * or IPv4 only where the host has no IPv6.
 */
export const listenHttp: Listen = async (host, port, handler) => {
  if (host === '0.0.0.0' || host === '::') {
    try {
      return await listenOn('::', port, handler);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
      return listenOn('0.0.0.0', port, handler);
    }
  }
  return listenOn(host, port, handler);
};

function listenOn(host: string, port: number, handler: Handler): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer({ keepAliveTimeout: 5000 }, handler);
    server.once('error', reject);
    server.listen({ host, port, exclusive: true, ipv6Only: false }, () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      resolve({
        address: joinHostPort(a.address, a.port),
        port: a.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** Go's 404 from an http.ServeMux with no matching pattern. */
export function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  res.end('404 page not found\n');
}

/** The path of a request without its query ("/healthz?x=1" -> "/healthz"). */
export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * A wall-clock time (epoch ms; a double at that scale is good to about a
 * microsecond, so the fraction is rounded to microseconds) as Go's
 * json.Marshal writes a time.Time in UTC: RFC 3339 with the fraction's
 * trailing zeros dropped ("2025-01-02T03:04:05.12Z"); null is Go's zero time.
 */
export function goTime(epochMs: number | null): string {
  if (epochMs === null) return '0001-01-01T00:00:00Z';
  const wholeMs = Math.floor(epochMs);
  const base = new Date(wholeMs).toISOString().slice(0, 19);
  const nanos = Math.round((epochMs - Math.floor(epochMs / 1000) * 1000) * 1e3) * 1e3;
  const frac = nanos === 0 ? '' : `.${String(Math.min(nanos, 999_999_999)).padStart(9, '0').replace(/0+$/, '')}`;
  return `${base}${frac}Z`;
}
