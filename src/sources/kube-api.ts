// The Kubernetes API source: Services, EndpointSlices (discovery.k8s.io/v1)
// and this node's Node, listed and watched through @kubernetes/client-node
// and written into the object caches, with kube-proxy's selection:
// - Services and EndpointSlices with the label selector kube-proxy's
//   informer factory uses (cmd/kube-proxy/app/server.go):
//   `!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name`
//   (the server filters; an object that gains one of the labels arrives as
//   DELETED). parseObject applies the same rule again, and drops what
//   kube-proxy ignores (ExternalName, headless, FQDN slices).
// - The Node through the field selector `metadata.name=<node>`, as
//   kube-proxy's node informer does.
// Each resource runs its own list+watch loop (kube-reflector.ts: bookmarks,
// 410 Gone relists, reconnects with backoff). `synced` resolves, and onChange
// is first called, once Services and EndpointSlices have both completed their
// first list; nothing is programmed from a half-listed cluster. The Node does
// not gate this (a missing Node must not block Service programming).
//
// Objects reach the cache as the manifests source hands them over: converted
// to plain manifest-shaped JSON, validated by parseObject. An object that
// fails validation is logged (object, field) and skipped; a version of it
// that was good before stays in the cache until it is fixed or deleted. One
// that becomes ignored is deleted, as kube-proxy stops proxying it too.
//
// Why not the client's ListWatch/makeInformer (client-node 2.0.1, cache.js):
// it stops for good on any error other than 410 Gone (a dropped connection or
// a failed list only calls the 'error' handlers; the caller must restart it,
// with no backoff); it never asks for bookmarks (no allowWatchBookmarks, no
// way to add it); it reports no "listed" moment to gate syncing on; it keeps
// a second full copy of every object; and its list items (typed models, Date
// objects, no kind) differ in shape from its watch objects (raw JSON). The
// client's pieces are still used: KubeConfig for connection and credentials,
// CoreV1Api/DiscoveryV1Api for LIST, Watch for the watch stream.

import { CoreV1Api, DiscoveryV1Api, KubeConfig, Observable, Watch, type ConfigurationOptions, type ObservableMiddleware } from '@kubernetes/client-node';
// Not re-exported from the package root; the typed list results are turned
// back into plain JSON (ISO date strings, JSON field names) with it.
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { SwitchyardError } from '../util/errors.ts';
import { createLogger, type Logger } from '../util/log.ts';
import type { ObjectSink } from './manifests.ts';
import { LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME, parseObject, type ObjectKind, type ObjectRef } from './objects.ts';
import { loadKubeConfig, serverOf, type KubeConfigOptions } from './kube-config.ts';
import { Reflector, type BackoffOptions, type ListFunction, type ListPage, type RawObject, type ReflectorSink, type WatchFunction } from './kube-reflector.ts';

export type { KubeConfigOptions } from './kube-config.ts';
export type { BackoffOptions } from './kube-reflector.ts';

/** kube-proxy's label selector for Services and EndpointSlices (labels.Selector.String() sorts by key). */
export const PROXY_LABEL_SELECTOR = `!${LABEL_HEADLESS},!${LABEL_SERVICE_PROXY_NAME}`;

export interface KubeApiSourceOptions {
  /** A ready KubeConfig, or the flags to build one from (--kubeconfig, --master, in-cluster); built in start(). */
  readonly kubeConfig: KubeConfig | KubeConfigOptions;
  /** This node's name (--hostname-override or the hostname): only this Node is watched. */
  readonly nodeName: string;
  readonly cache: ObjectSink;
  /** Called after the first sync and after every later change of the cache. */
  readonly onChange?: () => void;
  readonly logger?: Logger;
  /** Reconnect/relist backoff; default 1 s doubling to 30 s, 20% jitter. */
  readonly backoff?: BackoffOptions;
  /** LIST page size; default 500. */
  readonly pageSize?: number;
  /** Server-side timeout of each watch request; default a random 300..600 s. */
  readonly watchTimeoutSeconds?: number;
  /** Abandon one LIST request after this long; default 60 s. */
  readonly listTimeoutMs?: number;
}

/** The client aborts a watch that receives nothing for this long past its timeoutSeconds. */
const WATCH_IDLE_GRACE_S = 30;

interface ResourceSpec {
  readonly kind: ObjectKind;
  readonly apiVersion: string;
  /** Plural resource name, for logs. */
  readonly resource: string;
  readonly path: string;
  /** client-node model name for ObjectSerializer. */
  readonly model: string;
}

const SERVICES: ResourceSpec = { kind: 'Service', apiVersion: 'v1', resource: 'services', path: '/api/v1/services', model: 'V1Service' };
const SLICES: ResourceSpec = {
  kind: 'EndpointSlice',
  apiVersion: 'discovery.k8s.io/v1',
  resource: 'endpointslices',
  path: '/apis/discovery.k8s.io/v1/endpointslices',
  model: 'V1EndpointSlice',
};
const NODES: ResourceSpec = { kind: 'Node', apiVersion: 'v1', resource: 'nodes', path: '/api/v1/nodes', model: 'V1Node' };

export class KubeApiSource {
  readonly #options: KubeApiSourceOptions;
  readonly #cache: ObjectSink;
  readonly #onChange: () => void;
  readonly #log: Logger;
  readonly #controller = new AbortController();
  /** "Kind/key" of the objects this source put in the cache. */
  readonly #owned = new Set<string>();
  readonly #listed = new Set<ObjectKind>();
  readonly #reflectors = new Map<ObjectKind, Reflector>();
  #running: Promise<unknown> | null = null;
  #started = false;
  #isSynced = false;
  #markSynced: () => void = () => {};
  #markStopped: () => void = () => {};
  readonly #stopped: Promise<void>;
  readonly synced: Promise<void>;

  constructor(options: KubeApiSourceOptions) {
    this.#options = options;
    this.#cache = options.cache;
    this.#onChange = options.onChange ?? (() => {});
    this.#log = options.logger ?? createLogger('kube-api');
    this.synced = new Promise((resolve) => (this.#markSynced = resolve));
    this.#stopped = new Promise((resolve) => (this.#markStopped = resolve));
  }

  /** True once Services and EndpointSlices have both completed their first list. */
  get isSynced(): boolean {
    return this.#isSynced;
  }

  /** The resume point of each resource's watch, for status and tests. */
  resourceVersions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [kind, r] of this.#reflectors) out[kind] = r.resourceVersion;
    return out;
  }

  /**
   * Builds the client (rejecting on a bad kubeconfig), starts the list+watch
   * loops, and resolves once synced, or once stopped (stop(), `signal`) before
   * that. An unreachable or failing API server is retried with backoff, not
   * reported as a rejection: kube-proxy waits for its caches the same way.
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.#started) throw new SwitchyardError('ERR_SY_ALREADY_STARTED', 'KubeApiSource already started');
    this.#started = true;
    if (signal?.aborted) return this.stop();
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
    const kc = this.#options.kubeConfig instanceof KubeConfig ? this.#options.kubeConfig : loadKubeConfig(this.#options.kubeConfig);
    this.#log.info('watching the API server', { server: serverOf(kc), node: this.#options.nodeName, labelSelector: PROXY_LABEL_SELECTOR });
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const watch = watchFunction(kc);
    const node = `metadata.name=${this.#options.nodeName}`;
    this.#addReflector(
      SERVICES,
      watch,
      (req, sig) => core.listServiceForAllNamespaces(listParams(req), abortable(sig)).then((l) => toPage(l, SERVICES)),
      PROXY_LABEL_SELECTOR,
    );
    this.#addReflector(
      SLICES,
      watch,
      (req, sig) => discovery.listEndpointSliceForAllNamespaces(listParams(req), abortable(sig)).then((l) => toPage(l, SLICES)),
      PROXY_LABEL_SELECTOR,
    );
    this.#addReflector(NODES, watch, (req, sig) => core.listNode(listParams(req), abortable(sig)).then((l) => toPage(l, NODES)), undefined, node);
    const stopSignal = this.#controller.signal;
    this.#running = Promise.all([...this.#reflectors.values()].map((r) => r.run(stopSignal)));
    await Promise.race([this.synced, this.#stopped]);
  }

  /** Stops the loops and aborts requests in flight; resolves when they have ended. */
  async stop(): Promise<void> {
    this.#controller.abort();
    this.#markStopped();
    await this.#running;
  }

  #addReflector(spec: ResourceSpec, watch: WatchFunction, list: ListFunction, labelSelector?: string, fieldSelector?: string): void {
    const o = this.#options;
    this.#reflectors.set(
      spec.kind,
      new Reflector({
        resource: spec.resource,
        path: spec.path,
        list,
        watch,
        labelSelector,
        fieldSelector,
        sink: this.#sink(spec),
        logger: this.#log,
        backoff: o.backoff,
        pageSize: o.pageSize,
        listTimeoutMs: o.listTimeoutMs,
        watchTimeoutSeconds: o.watchTimeoutSeconds === undefined ? undefined : () => o.watchTimeoutSeconds!,
      }),
    );
  }

  // -------------------------------------------------------------------------
  // From API objects to the cache

  #sink(spec: ResourceSpec): ReflectorSink {
    return {
      upsert: (key, raw) => this.#upsert(spec, key, raw),
      remove: (key) => this.#remove({ kind: spec.kind, key }, 'deleted'),
      changed: () => this.#changed(),
      listed: (changed) => this.#onListed(spec.kind, changed),
    };
  }

  #upsert(spec: ResourceSpec, key: string, raw: RawObject): boolean {
    const r = parseObject({ ...raw, apiVersion: raw['apiVersion'] ?? spec.apiVersion, kind: raw['kind'] ?? spec.kind });
    const ref: ObjectRef = { kind: spec.kind, key };
    const id = refId(ref);
    switch (r.status) {
      case 'valid':
        for (const w of r.warnings) this.#log.warn('ignoring part of object', { object: w.object, field: w.field, error: w.detail });
        if (r.object.key !== key) {
          this.#log.warn('skipping object whose key does not match the API', { object: refLabel(ref), parsed: r.object.key });
          return false;
        }
        this.#owned.add(id);
        return this.#cache.apply(r.object);
      case 'ignored':
        if (this.#owned.has(id)) this.#log.info('object deleted: now ignored', { object: refLabel(ref), reason: r.reason });
        else this.#log.debug('ignoring object', { object: refLabel(ref), reason: r.reason });
        return this.#remove(ref, 'now ignored');
      case 'invalid': {
        const e = r.error;
        const kept = this.#owned.has(id) ? refLabel(ref) : undefined;
        this.#log.warn('skipping invalid object', { object: e.object, field: e.field, error: e.detail, kept });
        return false;
      }
      case 'unsupported':
        this.#log.warn('skipping object of an unexpected kind', { object: refLabel(ref), kind: r.kind });
        return false;
    }
  }

  #remove(ref: ObjectRef, why: string): boolean {
    if (!this.#owned.delete(refId(ref))) return false;
    const changed = this.#cache.delete(ref);
    if (changed) this.#log.debug(`object deleted: ${why}`, { object: refLabel(ref) });
    return changed;
  }

  #changed(): void {
    if (this.#isSynced && !this.#controller.signal.aborted) this.#onChange();
  }

  #onListed(kind: ObjectKind, changed: boolean): void {
    this.#listed.add(kind);
    if (!this.#isSynced && this.#listed.has('Service') && this.#listed.has('EndpointSlice')) {
      this.#isSynced = true;
      this.#log.info('synced', {
        services: this.#reflectors.get('Service')?.size,
        endpointSlices: this.#reflectors.get('EndpointSlice')?.size,
        node: this.#reflectors.get('Node')?.size === 1 ? this.#options.nodeName : undefined,
      });
      this.#markSynced();
      if (!this.#controller.signal.aborted) this.#onChange();
      return;
    }
    if (changed) this.#changed();
  }
}

// ---------------------------------------------------------------------------
// client-node glue

interface ListParams {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  _continue?: string;
}

function listParams(req: Parameters<ListFunction>[0]): ListParams {
  const p: ListParams = {};
  if (req.labelSelector !== undefined) p.labelSelector = req.labelSelector;
  if (req.fieldSelector !== undefined) p.fieldSelector = req.fieldSelector;
  if (req.limit !== undefined) p.limit = req.limit;
  if (req.continueToken !== undefined) p._continue = req.continueToken;
  return p;
}

/** Per-call options that attach `signal` to the request, so stop() and the list timeout abort it. */
export function abortable(signal: AbortSignal): ConfigurationOptions {
  // The Object API hands these straight to the Observable API (no promise
  // wrapping, whatever the `Middleware` export suggests), like the client's
  // own setHeaderMiddleware. 'append' keeps its User-Agent middleware.
  const middleware: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(signal);
      return new Observable(Promise.resolve(ctx));
    },
    post: (ctx) => new Observable(Promise.resolve(ctx)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

interface TypedList {
  readonly metadata?: { readonly resourceVersion?: string; readonly _continue?: string };
  readonly items: readonly object[];
}

/** Typed list items (Date objects, JS names, no kind) back to the plain JSON a manifest would hold. */
function toPage(list: TypedList, spec: ResourceSpec): ListPage {
  const items = list.items.map((item) => {
    const plain = toPlain(item, spec.model);
    return { ...plain, apiVersion: plain['apiVersion'] ?? spec.apiVersion, kind: plain['kind'] ?? spec.kind };
  });
  const continueToken = list.metadata?._continue || undefined;
  return continueToken === undefined
    ? { items, resourceVersion: list.metadata?.resourceVersion ?? '' }
    : { items, resourceVersion: list.metadata?.resourceVersion ?? '', continueToken };
}

function toPlain(item: object, model: string): RawObject {
  try {
    return ObjectSerializer.serialize(item, model) as RawObject;
  } catch {
    // serialize() throws on an invalid Date (a malformed timestamp). The
    // fields read here have the same names in JSON and in the models, so a
    // JSON round trip is a faithful fallback; validation judges the rest.
    return JSON.parse(JSON.stringify(item)) as RawObject;
  }
}

function watchFunction(kc: KubeConfig): WatchFunction {
  return (path, query, onEvent, onDone) => {
    const watch = new Watch(kc);
    // Watch aborts a stream that has received nothing for requestTimeoutMs
    // (30 s; private in the typings). The server may stay quiet longer than
    // that between bookmarks (about one a minute), so allow up to the
    // request's own timeoutSeconds plus a grace period instead.
    const timeout = Number(query['timeoutSeconds'] ?? 0);
    if (timeout > 0) (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = (timeout + WATCH_IDLE_GRACE_S) * 1000;
    return watch.watch(path, query, onEvent, onDone);
  };
}

function refId(ref: ObjectRef): string {
  return `${ref.kind}/${ref.key}`;
}

function refLabel(ref: ObjectRef): string {
  return `${ref.kind} ${ref.key}`;
}
