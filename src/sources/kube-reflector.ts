// One resource's list+watch loop (client-go calls it a reflector): list
// everything (paged), then watch from the list's resourceVersion, forever.
// - Every ADDED/MODIFIED/DELETED event and every BOOKMARK moves the resume
//   point (resourceVersion); bookmarks (requested with allowWatchBookmarks)
//   touch nothing else. They keep the resume point recent on a quiet
//   resource, so a reconnect does not fall out of the server's watch window.
// - A watch that ends cleanly (the server's timeoutSeconds) resumes at once;
//   one that fails (connection dropped or refused, HTTP or ERROR-event
//   errors) resumes from the same resourceVersion after an exponential,
//   capped, jittered backoff. No relist: the watch replays what was missed.
// - 410 Gone (HTTP status or an ERROR event with a 410 Status: the resume
//   point has been compacted away) relists. The relist replaces the known
//   set: objects missing from it are removed (deleted while we were away),
//   objects whose resourceVersion is unchanged are not handed out again.
// - A continue token that expires during a paged list (410) restarts the list
//   unpaged, as client-go's pager does.
// The sink receives plain objects keyed "namespace/name" (or "name" for
// cluster-scoped kinds); what they mean is the sink's business.

import { setTimeout as sleepFor } from 'node:timers/promises';
import { SwitchyardError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { isRecord } from './objects.ts';

export type RawObject = Record<string, unknown>;

export interface ListRequest {
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** Page size; undefined lists everything at once. */
  readonly limit?: number;
  readonly continueToken?: string;
}

export interface ListPage {
  /** Plain objects, as in the JSON the server sent (kind/apiVersion may be missing). */
  readonly items: readonly RawObject[];
  readonly resourceVersion: string;
  readonly continueToken?: string;
}

/** One LIST request; must reject with an error carrying the HTTP status (`code` or `statusCode`) on a non-2xx answer. */
export type ListFunction = (request: ListRequest, signal: AbortSignal) => Promise<ListPage>;

/** The shape of @kubernetes/client-node's `Watch.watch`. */
export type WatchFunction = (
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  onEvent: (type: string, object: unknown) => void,
  onDone: (err: unknown) => void,
) => Promise<AbortController>;

export interface ReflectorSink {
  /** An object was added or modified (or listed); returns true when the cache changed. */
  upsert(key: string, object: RawObject): boolean;
  /** An object was deleted (or is missing from a relist); returns true when the cache changed. */
  remove(key: string): boolean;
  /** A watch event changed the cache. */
  changed(): void;
  /** A complete list (the first or a relist) has been handed out. */
  listed(changed: boolean): void;
}

export interface BackoffOptions {
  /** First delay; default 1000 ms. */
  readonly initialMs?: number;
  /** Cap; default 30000 ms. */
  readonly maxMs?: number;
  /** Growth per failure; default 2. */
  readonly factor?: number;
  /** Random extra fraction of each delay, 0..jitter; default 0.2. */
  readonly jitter?: number;
}

export interface ReflectorOptions {
  /** The resource's plural name, for logs ("services"). */
  readonly resource: string;
  /** The watch path ("/api/v1/services"). */
  readonly path: string;
  readonly list: ListFunction;
  readonly watch: WatchFunction;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly sink: ReflectorSink;
  readonly logger: Logger;
  readonly backoff?: BackoffOptions;
  /** LIST page size; default 500 (client-go's pager). */
  readonly pageSize?: number;
  /** Server-side watch timeout per request; default a random 300..600 s (client-go's minWatchTimeout..2x). */
  readonly watchTimeoutSeconds?: () => number;
  /** Abandon one LIST request after this long; default 60 s. */
  readonly listTimeoutMs?: number;
  readonly now?: () => number;
}

/** How one watch request ended. */
type WatchEnd =
  | { readonly kind: 'closed'; readonly events: number; readonly ms: number }
  | { readonly kind: 'expired'; readonly events: number; readonly ms: number; readonly detail: string }
  | { readonly kind: 'error'; readonly events: number; readonly ms: number; readonly error: unknown };

/** A watch that ends cleanly sooner than this without delivering anything is treated as a failure. */
const MIN_HEALTHY_WATCH_MS = 1000;

export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #factor: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #failures = 0;

  constructor(options: BackoffOptions = {}, random: () => number = Math.random) {
    this.#initial = options.initialMs ?? 1000;
    this.#max = options.maxMs ?? 30_000;
    this.#factor = options.factor ?? 2;
    this.#jitter = options.jitter ?? 0.2;
    this.#random = random;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const base = Math.min(this.#max, this.#initial * this.#factor ** this.#failures);
    this.#failures++;
    return Math.round(Math.min(this.#max, base * (1 + this.#jitter * this.#random())));
  }

  reset(): void {
    this.#failures = 0;
  }
}

export class Reflector {
  readonly #o: ReflectorOptions;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #now: () => number;
  /** Objects the sink holds for us: key -> resourceVersion. */
  readonly #known = new Map<string, string>();
  #resourceVersion = '';
  #lists = 0;
  #running = false;

  constructor(options: ReflectorOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#backoff = new Backoff(options.backoff);
    this.#now = options.now ?? Date.now;
  }

  /** The resume point: the resourceVersion of the last list, event or bookmark. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** Objects currently known (listed or watched, not deleted). */
  get size(): number {
    return this.#known.size;
  }

  /** Lists and watches until `signal` aborts; never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new SwitchyardError('ERR_SY_ALREADY_STARTED', `Reflector ${this.#o.resource} already running`);
    this.#running = true;
    let relist = true;
    let freshList = false;
    while (!signal.aborted) {
      if (relist) {
        if (!(await this.#listUntilDone(signal))) return;
        relist = false;
        freshList = true;
      }
      const end = await this.#watchOnce(signal);
      if (signal.aborted) return;
      if (end.events > 0) this.#backoff.reset();
      relist = end.kind === 'expired';
      const delay = this.#delayAfter(end, freshList);
      freshList = false;
      this.#logEnd(end, delay);
      if (delay > 0 && !(await sleep(delay, signal))) return;
    }
  }

  #delayAfter(end: WatchEnd, freshList: boolean): number {
    switch (end.kind) {
      case 'expired':
        // Expected after a long disconnect: relist at once. Expiring again
        // right after a list, before any event, means a server in trouble.
        return freshList && end.events === 0 ? this.#backoff.next() : 0;
      case 'closed':
        return end.events > 0 || end.ms >= MIN_HEALTHY_WATCH_MS ? 0 : this.#backoff.next();
      case 'error':
        return this.#backoff.next();
    }
  }

  #logEnd(end: WatchEnd, delay: number): void {
    const fields = { resource: this.#o.resource, resourceVersion: this.#resourceVersion, events: end.events, retryInMs: delay };
    if (end.kind === 'expired') this.#log.info('watch expired (410 Gone); relisting', { ...fields, detail: end.detail });
    else if (end.kind === 'error') this.#log.warn('watch failed; resuming', { ...fields, error: describeError(end.error) });
    else this.#log.debug('watch closed; resuming', fields);
  }

  // -------------------------------------------------------------------------
  // LIST

  /** Lists until it succeeds (retrying with backoff); false when aborted first. */
  async #listUntilDone(signal: AbortSignal): Promise<boolean> {
    for (;;) {
      try {
        await this.#list(signal);
        return !signal.aborted;
      } catch (err) {
        if (signal.aborted) return false;
        const delay = this.#backoff.next();
        this.#log.warn('list failed; retrying', { resource: this.#o.resource, error: describeError(err), retryInMs: delay });
        if (!(await sleep(delay, signal))) return false;
      }
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const items = new Map<string, RawObject>();
    let limit: number | undefined = this.#o.pageSize ?? 500;
    let continueToken: string | undefined;
    let resourceVersion = '';
    for (;;) {
      const request = { labelSelector: this.#o.labelSelector, fieldSelector: this.#o.fieldSelector, limit, continueToken };
      let page: ListPage;
      try {
        page = await this.#o.list(request, AbortSignal.any([signal, AbortSignal.timeout(this.#o.listTimeoutMs ?? 60_000)]));
      } catch (err) {
        if (continueToken === undefined || statusCodeOf(err) !== 410 || signal.aborted) throw err;
        this.#log.info('list continue token expired; listing again unpaged', { resource: this.#o.resource });
        items.clear();
        limit = continueToken = undefined;
        continue;
      }
      for (const obj of page.items) {
        const key = objectKey(obj);
        if (key === null) this.#log.warn('skipping listed object without metadata.name', { resource: this.#o.resource });
        else items.set(key, obj);
      }
      resourceVersion = page.resourceVersion;
      if (!page.continueToken) break;
      continueToken = page.continueToken;
    }
    if (signal.aborted) return;
    const changed = this.#replace(items);
    this.#resourceVersion = resourceVersion;
    this.#lists++;
    this.#log.info(this.#lists === 1 ? 'listed' : 'relisted', { resource: this.#o.resource, objects: items.size, resourceVersion });
    this.#o.sink.listed(changed);
  }

  /** Makes the sink hold exactly `items`: removes what is gone, hands out what is new or changed. */
  #replace(items: ReadonlyMap<string, RawObject>): boolean {
    let changed = false;
    for (const key of [...this.#known.keys()]) {
      if (items.has(key)) continue;
      this.#known.delete(key);
      changed = this.#o.sink.remove(key) || changed;
    }
    for (const [key, obj] of items) {
      const rv = resourceVersionOf(obj);
      if (rv !== '' && this.#known.get(key) === rv) continue;
      this.#known.set(key, rv);
      changed = this.#o.sink.upsert(key, obj) || changed;
    }
    return changed;
  }

  // -------------------------------------------------------------------------
  // WATCH

  #watchOnce(signal: AbortSignal): Promise<WatchEnd> {
    const started = this.#now();
    const query = {
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: this.#o.watchTimeoutSeconds?.() ?? 300 + Math.floor(Math.random() * 300),
      labelSelector: this.#o.labelSelector,
      fieldSelector: this.#o.fieldSelector,
    };
    return new Promise<WatchEnd>((resolve) => {
      let events = 0;
      let ended = false;
      let controller: AbortController | null = null;
      const ms = () => this.#now() - started;
      const onAbort = () => controller?.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      const finish = (end: WatchEnd) => {
        if (ended) return;
        ended = true;
        signal.removeEventListener('abort', onAbort);
        controller?.abort();
        resolve(end);
      };
      const onEvent = (type: string, object: unknown) => {
        if (ended || signal.aborted) return;
        const failure = this.#handleEvent(type, object);
        if (failure === null) events++;
        else if (failure !== 'skipped') finish({ ...failure, events, ms: ms() });
      };
      const onDone = (err: unknown) => finish(classifyEnd(err, events, ms()));
      this.#o.watch(this.#o.path, query, onEvent, onDone).then((c) => {
        controller = c;
        if (ended || signal.aborted) c.abort();
      }, onDone);
    });
  }

  /** Applies one watch event; null when it counts as progress, else why the watch must end. */
  #handleEvent(type: string, object: unknown): null | 'skipped' | { kind: 'expired'; detail: string } | { kind: 'error'; error: unknown } {
    if (!isRecord(object)) {
      this.#log.warn('skipping watch event without an object', { resource: this.#o.resource, type });
      return 'skipped';
    }
    if (type === 'ERROR') {
      const error = new WatchStatusError(object);
      return error.statusCode === 410 ? { kind: 'expired', detail: error.message } : { kind: 'error', error };
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED' && type !== 'BOOKMARK') {
      this.#log.warn('skipping watch event of unknown type', { resource: this.#o.resource, type });
      return 'skipped';
    }
    const rv = resourceVersionOf(object);
    if (type === 'BOOKMARK') {
      this.#log.debug('bookmark', { resource: this.#o.resource, resourceVersion: rv });
    } else {
      const key = objectKey(object);
      if (key === null) {
        this.#log.warn('skipping watch event for an object without metadata.name', { resource: this.#o.resource, type });
      } else if (type === 'DELETED') {
        this.#known.delete(key);
        if (this.#o.sink.remove(key)) this.#o.sink.changed();
      } else {
        this.#known.set(key, rv);
        if (this.#o.sink.upsert(key, object)) this.#o.sink.changed();
      }
    }
    if (rv !== '') this.#resourceVersion = rv;
    return null;
  }
}

// ---------------------------------------------------------------------------
// Helpers

/** An ERROR watch event: the server's Status object as an error. */
export class WatchStatusError extends SwitchyardError {
  declare readonly code: 'ERR_SY_WATCH_ERROR';
  readonly statusCode: number | undefined;
  readonly reason: string | undefined;

  constructor(status: RawObject) {
    const code = typeof status['code'] === 'number' ? status['code'] : undefined;
    const reason = typeof status['reason'] === 'string' ? status['reason'] : undefined;
    const message = typeof status['message'] === 'string' ? status['message'] : 'watch ERROR event';
    super('ERR_SY_WATCH_ERROR', `${code ?? '?'} ${reason ?? ''}: ${message}`.replace(' :', ':'));
    this.statusCode = code;
    this.reason = reason;
  }
}

function classifyEnd(err: unknown, events: number, ms: number): WatchEnd {
  if (err === null || err === undefined) return { kind: 'closed', events, ms };
  // The client's own inactivity timeout: nothing arrived for requestTimeoutMs.
  if ((err as { name?: unknown }).name === 'TimeoutError') return { kind: 'closed', events, ms };
  if (statusCodeOf(err) === 410) return { kind: 'expired', events, ms, detail: describeError(err) };
  return { kind: 'error', events, ms, error: err };
}

/** The HTTP status an error carries: client-node's ApiException (`code`) or Watch error (`statusCode`). */
export function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

/** One line for logs: HTTP status and the Status message, or the network cause. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const status = statusCodeOf(err);
  if (status !== undefined) {
    const body = (err as { body?: unknown }).body;
    const message = isRecord(body) && typeof body['message'] === 'string' ? body['message'] : err.message.split('\n')[0];
    return `HTTP ${status}: ${message}`;
  }
  const cause = err.cause;
  if (cause instanceof Error && cause.message !== err.message) return `${err.message}: ${cause.message}`;
  return err.message;
}

/** "namespace/name", or "name" for a cluster-scoped object; null without a name. */
export function objectKey(obj: RawObject): string | null {
  const meta = obj['metadata'];
  if (!isRecord(meta) || typeof meta['name'] !== 'string' || meta['name'] === '') return null;
  const ns = meta['namespace'];
  return typeof ns === 'string' && ns !== '' ? `${ns}/${meta['name']}` : meta['name'];
}

function resourceVersionOf(obj: RawObject): string {
  const meta = obj['metadata'];
  const rv = isRecord(meta) ? meta['resourceVersion'] : undefined;
  return typeof rv === 'string' ? rv : '';
}

/** Resolves true after `ms`, false as soon as `signal` aborts. */
async function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleepFor(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
