// A fake Kubernetes API server for the API source's tests: an in-memory store
// of Services, EndpointSlices and Nodes behind the list/watch protocol, on
// 127.0.0.1 (or a given host) and a port the OS picks; main.ts runs it as a
// process of its own for the end-to-end tests. It speaks just enough of the
// real thing to drive @kubernetes/client-node:
// - one global resourceVersion counter; every write bumps it and is recorded
//   in an event log that watches replay from their resourceVersion;
// - LIST (`limit`/`continue` paging, labelSelector, fieldSelector) returns a
//   *List whose items carry no kind/apiVersion, as the real server's do;
// - WATCH (`?watch=true&resourceVersion=N`) streams newline-delimited JSON
//   events over a chunked response: ADDED/MODIFIED/DELETED, BOOKMARK (only
//   when allowWatchBookmarks=true), and ERROR with a 410 Status when N is
//   older than the log keeps. Selector transitions are translated as the
//   apiserver's cacher does: an object that stops matching comes as DELETED
//   (previous content, new resourceVersion), one that starts as ADDED;
// - `timeoutSeconds` ends a watch cleanly, as the server does.
// Test controls: write objects, send bookmarks, expire watches (ERROR 410 or
// a plain HTTP 410), compact the log, hold list responses, fail the next
// watches, drop every connection, and a log of every request.
// Events (POST /apis/events.k8s.io/v1/namespaces/NS/events) are recorded in
// `events` as posted and answered 201 with the stored object.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Resource = 'services' | 'endpointslices' | 'nodes';
type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

const KINDS: Readonly<Record<Resource, { kind: string; apiVersion: string; path: string; namespaced: boolean }>> = {
  services: { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services', namespaced: true },
  endpointslices: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', path: '/apis/discovery.k8s.io/v1/endpointslices', namespaced: true },
  nodes: { kind: 'Node', apiVersion: 'v1', path: '/api/v1/nodes', namespaced: false },
};

export interface RecordedRequest {
  readonly resource: Resource;
  readonly watch: boolean;
  readonly query: Readonly<Record<string, string>>;
  /** performance.now() when it arrived. */
  readonly at: number;
}

interface LogEntry {
  readonly rv: number;
  readonly resource: Resource;
  readonly type: EventType;
  readonly object: Obj;
  /** The stored object before a MODIFIED. */
  readonly previous: Obj | null;
}

interface OpenWatch {
  readonly resource: Resource;
  readonly res: ServerResponse;
  readonly matches: (o: Obj) => boolean;
  readonly bookmarks: boolean;
  timer: NodeJS.Timeout | null;
}

export type WatchFailure = 'drop' | 'http-500' | 'http-410';

export class FakeApiServer {
  readonly #server: Server;
  readonly #store: Record<Resource, Map<string, Obj>> = { services: new Map(), endpointslices: new Map(), nodes: new Map() };
  readonly #log: LogEntry[] = [];
  readonly #watches = new Set<OpenWatch>();
  readonly #held = new Map<Resource, Promise<void>>();
  readonly #failWatches = new Map<Resource, WatchFailure[]>();
  readonly #continues = new Map<string, Obj[]>();
  #rv = 1;
  /** Watches from a resourceVersion below this get 410 Gone. */
  #oldestRv = 1;
  /** Answer a too-old watch with HTTP 410 instead of a 200 + ERROR event. */
  goneAsHttpStatus = false;
  readonly requests: RecordedRequest[] = [];
  /** Every Event posted, in order, as the client sent it. */
  readonly events: Record<string, unknown>[] = [];
  /** Called on every LIST request before it is answered (e.g. to expire continue tokens). */
  beforeList: ((resource: Resource, query: Readonly<Record<string, string>>) => void) | null = null;
  url = '';

  private constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  /** Listens on `host` (default 127.0.0.1) and `port` (default 0: the OS picks). */
  static async start(options: { host?: string; port?: number } = {}): Promise<FakeApiServer> {
    const host = options.host ?? '127.0.0.1';
    const fake = new FakeApiServer();
    await new Promise<void>((resolve, reject) => {
      fake.#server.once('error', reject);
      fake.#server.listen(options.port ?? 0, host, () => resolve());
    });
    const hostPart = host.includes(':') ? `[${host}]` : host;
    fake.url = `http://${hostPart}:${(fake.#server.address() as AddressInfo).port}`;
    return fake;
  }

  async close(): Promise<void> {
    for (const w of this.#watches) this.#endWatch(w);
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  // -------------------------------------------------------------------------
  // Writes

  /** Creates or replaces an object (kind decides the resource); returns its new resourceVersion. */
  put(object: Record<string, unknown>): string {
    const resource = resourceOfKind(object['kind']);
    const meta = { ...(object['metadata'] as Record<string, unknown>) };
    const key = this.#key(resource, meta);
    const previous = this.#store[resource].get(key) ?? null;
    const rv = ++this.#rv;
    meta['resourceVersion'] = String(rv);
    meta['uid'] ??= previous?.metadata['uid'] ?? `uid-${rv}`;
    meta['creationTimestamp'] ??= previous?.metadata['creationTimestamp'] ?? '2024-05-01T12:00:00Z';
    const stored: Obj = { ...object, metadata: meta };
    this.#store[resource].set(key, stored);
    this.#record({ rv, resource, type: previous ? 'MODIFIED' : 'ADDED', object: stored, previous });
    return String(rv);
  }

  /** Deletes an object by kind and "namespace/name" (or name); returns false when absent. */
  remove(kind: string, key: string): boolean {
    const resource = resourceOfKind(kind);
    const old = this.#store[resource].get(key);
    if (!old) return false;
    this.#store[resource].delete(key);
    const rv = ++this.#rv;
    const object: Obj = { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } };
    this.#record({ rv, resource, type: 'DELETED', object, previous: old });
    return true;
  }

  /** Bumps the resourceVersion without touching objects (another resource changed). */
  tick(): string {
    return String(++this.#rv);
  }

  // -------------------------------------------------------------------------
  // Controls

  /** Sends a BOOKMARK at the current resourceVersion to the open watches that asked for bookmarks. */
  bookmark(resource?: Resource): number {
    let sent = 0;
    for (const w of this.#watches) {
      if ((resource && w.resource !== resource) || !w.bookmarks) continue;
      const { kind, apiVersion } = KINDS[w.resource];
      this.#send(w, { type: 'BOOKMARK', object: { kind, apiVersion, metadata: { resourceVersion: String(this.#rv) } } });
      sent++;
    }
    return sent;
  }

  /** Forgets the event log: a watch from any earlier resourceVersion gets 410 Gone. */
  compact(): void {
    this.#log.length = 0;
    this.#oldestRv = this.#rv;
  }

  /** Ends the open watches with an ERROR event carrying a 410 Expired Status (after compact(), resuming fails too). */
  expireWatches(resource?: Resource): number {
    return this.errorWatches(resource, goneStatus('too old resource version'));
  }

  /** Ends the open watches with an ERROR event carrying `statusObject` (default: 500 InternalError). */
  errorWatches(resource?: Resource, statusObject: Record<string, unknown> = status(500, 'InternalError', 'injected watch error')): number {
    let n = 0;
    for (const w of [...this.#watches]) {
      if (resource && w.resource !== resource) continue;
      this.#send(w, { type: 'ERROR', object: statusObject });
      this.#endWatch(w);
      n++;
    }
    return n;
  }

  /** Forgets all continue tokens: the next page request of a paged list gets 410. */
  expireContinueTokens(): void {
    this.#continues.clear();
  }

  /** Destroys every open connection (watches and idle keep-alive sockets) without a proper end. */
  dropConnections(): void {
    for (const w of [...this.#watches]) {
      this.#watches.delete(w);
      if (w.timer) clearTimeout(w.timer);
      w.res.socket?.destroy();
    }
    this.#server.closeAllConnections();
  }

  /** Holds LIST responses of a resource until the returned function is called. */
  holdLists(resource: Resource): () => void {
    let release!: () => void;
    this.#held.set(resource, new Promise<void>((r) => (release = r)));
    return () => {
      this.#held.delete(resource);
      release();
    };
  }

  /** The next watch requests of a resource fail, in order: dropped at once, HTTP 500, or HTTP 410. */
  failNextWatches(resource: Resource, ...failures: WatchFailure[]): void {
    this.#failWatches.set(resource, [...(this.#failWatches.get(resource) ?? []), ...failures]);
  }

  openWatches(resource?: Resource): number {
    let n = 0;
    for (const w of this.#watches) if (!resource || w.resource === resource) n++;
    return n;
  }

  requestsFor(resource: Resource, watch: boolean): RecordedRequest[] {
    return this.requests.filter((r) => r.resource === resource && r.watch === watch);
  }

  // -------------------------------------------------------------------------
  // HTTP

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const eventPost = /^\/apis\/events\.k8s\.io\/v1\/namespaces\/([^/]+)\/events$/.exec(url.pathname);
    if (req.method === 'POST' && eventPost) {
      this.#recordEvent(req, res, eventPost[1] ?? '');
      return;
    }
    const resource = (Object.keys(KINDS) as Resource[]).find((r) => KINDS[r].path === url.pathname);
    if (req.method !== 'GET' || !resource) {
      sendJson(res, 404, status(404, 'NotFound', `${req.method} ${url.pathname} not found`));
      return;
    }
    const query = Object.fromEntries(url.searchParams);
    const watch = query['watch'] === 'true' || query['watch'] === '1';
    this.requests.push({ resource, watch, query, at: performance.now() });
    let matches: (o: Obj) => boolean;
    try {
      matches = selectorMatcher(query['labelSelector'], query['fieldSelector']);
    } catch (err) {
      sendJson(res, 400, status(400, 'BadRequest', (err as Error).message));
      return;
    }
    if (watch) this.#watch(resource, query, matches, res);
    else void this.#list(resource, query, matches, res);
  }

  #recordEvent(req: IncomingMessage, res: ServerResponse, namespace: string): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch (err) {
        sendJson(res, 400, status(400, 'BadRequest', (err as Error).message));
        return;
      }
      this.events.push(body);
      const meta = { ...(body['metadata'] as Record<string, unknown>), namespace, resourceVersion: String(++this.#rv), uid: `uid-${this.#rv}` };
      sendJson(res, 201, { ...body, metadata: meta });
    });
  }

  async #list(resource: Resource, query: Record<string, string>, matches: (o: Obj) => boolean, res: ServerResponse): Promise<void> {
    const held = this.#held.get(resource);
    if (held) await held;
    this.beforeList?.(resource, query);
    const { kind, apiVersion } = KINDS[resource];
    let items: Obj[];
    let rv: string;
    const token = query['continue'];
    if (token) {
      const rest = this.#continues.get(token);
      if (!rest) {
        sendJson(res, 410, status(410, 'Expired', 'The provided continue parameter is too old'));
        return;
      }
      this.#continues.delete(token);
      items = rest;
      rv = token.split(':')[0]!;
    } else {
      items = [...this.#store[resource].values()].filter(matches).sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
      rv = String(this.#rv);
    }
    const limit = Number(query['limit'] ?? 0);
    const metadata: Record<string, unknown> = { resourceVersion: rv };
    if (limit > 0 && items.length > limit) {
      const next = `${rv}:${this.#continues.size}:${Math.random().toString(36).slice(2)}`;
      this.#continues.set(next, items.slice(limit));
      items = items.slice(0, limit);
      metadata['continue'] = next;
      metadata['remainingItemCount'] = this.#continues.get(next)!.length;
    }
    // Items of a typed list carry no kind/apiVersion.
    const bare = items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
    sendJson(res, 200, { kind: `${kind}List`, apiVersion, metadata, items: bare });
  }

  #watch(resource: Resource, query: Record<string, string>, matches: (o: Obj) => boolean, res: ServerResponse): void {
    const failure = this.#failWatches.get(resource)?.shift();
    if (failure === 'drop') {
      res.socket?.destroy();
      return;
    }
    if (failure === 'http-500') {
      sendJson(res, 500, status(500, 'InternalError', 'injected failure'));
      return;
    }
    const from = query['resourceVersion'];
    const tooOld = failure === 'http-410' || (from !== undefined && from !== '' && from !== '0' && Number(from) < this.#oldestRv);
    if (tooOld && (this.goneAsHttpStatus || failure === 'http-410')) {
      sendJson(res, 410, goneStatus(`too old resource version: ${from} (${this.#oldestRv})`));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const w: OpenWatch = { resource, res, matches, bookmarks: query['allowWatchBookmarks'] === 'true', timer: null };
    if (tooOld) {
      this.#send(w, { type: 'ERROR', object: goneStatus(`too old resource version: ${from} (${this.#oldestRv})`) });
      res.end();
      return;
    }
    this.#watches.add(w);
    res.on('close', () => this.#endWatch(w));
    const timeout = Number(query['timeoutSeconds'] ?? 0);
    if (timeout > 0) w.timer = setTimeout(() => this.#endWatch(w), timeout * 1000);
    if (from === undefined || from === '' || from === '0') {
      // No resourceVersion: synthetic ADDED for everything that exists now.
      for (const o of this.#store[resource].values()) if (matches(o)) this.#send(w, { type: 'ADDED', object: o });
      return;
    }
    for (const e of this.#log) if (e.rv > Number(from)) this.#deliver(w, e);
  }

  #record(entry: LogEntry): void {
    this.#log.push(entry);
    for (const w of this.#watches) this.#deliver(w, entry);
  }

  /** Sends one log entry to one watch, translated for the watch's selector. */
  #deliver(w: OpenWatch, e: LogEntry): void {
    if (e.resource !== w.resource) return;
    const now = e.type !== 'DELETED' && w.matches(e.object);
    const before = e.previous !== null && w.matches(e.previous);
    if (e.type === 'DELETED') {
      if (before) this.#send(w, { type: 'DELETED', object: e.object });
    } else if (now && before) {
      this.#send(w, { type: 'MODIFIED', object: e.object });
    } else if (now) {
      this.#send(w, { type: 'ADDED', object: e.object });
    } else if (before) {
      const prev = e.previous!;
      this.#send(w, { type: 'DELETED', object: { ...prev, metadata: { ...prev.metadata, resourceVersion: String(e.rv) } } });
    }
  }

  #send(w: OpenWatch, event: { type: string; object: unknown }): void {
    if (!w.res.writableEnded && !w.res.destroyed) w.res.write(`${JSON.stringify(event)}\n`);
  }

  #endWatch(w: OpenWatch): void {
    if (!this.#watches.delete(w)) return;
    if (w.timer) clearTimeout(w.timer);
    if (!w.res.writableEnded) w.res.end();
  }

  #key(resource: Resource, meta: Record<string, unknown>): string {
    const name = String(meta['name']);
    return KINDS[resource].namespaced ? `${String(meta['namespace'] ?? 'default')}/${name}` : name;
  }
}

// ---------------------------------------------------------------------------
// Helpers

function resourceOfKind(kind: unknown): Resource {
  const r = (Object.keys(KINDS) as Resource[]).find((k) => KINDS[k].kind === kind);
  if (!r) throw new Error(`fake apiserver: unsupported kind ${String(kind)}`);
  return r;
}

function keyOf(o: Obj): string {
  return `${String(o.metadata['namespace'] ?? '')}/${String(o.metadata['name'])}`;
}

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function goneStatus(message: string): Record<string, unknown> {
  return status(410, 'Expired', message);
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Label selector terms `k`, `!k`, `k=v`, `k==v`, `k!=v` (comma = and) and
 * field selector terms `metadata.name=x`, `metadata.namespace=x`.
 */
export function selectorMatcher(labelSelector: string | undefined, fieldSelector: string | undefined): (o: Obj) => boolean {
  const tests: ((o: Obj) => boolean)[] = [];
  const labels = (o: Obj) => (o.metadata['labels'] ?? {}) as Record<string, string>;
  for (const term of splitTerms(labelSelector)) {
    let m: RegExpMatchArray | null;
    if ((m = term.match(/^!([^=!]+)$/))) {
      const k = m[1]!;
      tests.push((o) => !(k in labels(o)));
    } else if ((m = term.match(/^([^=!]+)!=(.*)$/))) {
      const [k, v] = [m[1]!, m[2]!];
      tests.push((o) => labels(o)[k] !== v);
    } else if ((m = term.match(/^([^=!]+)==?(.*)$/))) {
      const [k, v] = [m[1]!, m[2]!];
      tests.push((o) => labels(o)[k] === v);
    } else if ((m = term.match(/^([^=!]+)$/))) {
      const k = m[1]!;
      tests.push((o) => k in labels(o));
    } else {
      throw new Error(`unsupported label selector term ${JSON.stringify(term)}`);
    }
  }
  for (const term of splitTerms(fieldSelector)) {
    const m = term.match(/^metadata\.(name|namespace)==?(.*)$/);
    if (!m) throw new Error(`unsupported field selector term ${JSON.stringify(term)}`);
    const [field, v] = [m[1]!, m[2]!];
    tests.push((o) => o.metadata[field] === v);
  }
  return (o) => tests.every((t) => t(o));
}

function splitTerms(s: string | undefined): string[] {
  return (s ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
}
