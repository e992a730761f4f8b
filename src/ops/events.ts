// Kubernetes Events about this node, as kube-proxy records them
// (events.k8s.io/v1, regarding the Node, reportingController the proxy):
// sync failures, a fallback to another proxy mode, a full BPF map, a
// healthCheckNodePort that cannot be opened. An operator sees them with
// `kubectl describe node` / `kubectl get events`.
//
// The recorder never throws and never blocks the caller: a failed POST is
// logged at -v=4 and dropped. Repeats of one reason are rate-limited (the
// first, then at most one per `minIntervalMs`), as the API server would
// otherwise get one per retry.

import { nullLogger, type Logger } from '../util/log.ts';

export type EventType = 'Normal' | 'Warning';

export interface NodeEvent {
  readonly type: EventType;
  /** UpperCamelCase, machine-readable: "SyncFailed", "ProxyModeFallback", "BPFMapFull". */
  readonly reason: string;
  /** What the proxy was doing: "Sync", "StartProxy", "Listen". */
  readonly action: string;
  /** Human-readable, at most 1 KiB. */
  readonly note: string;
  /** Defaults to this node. */
  readonly regarding?: { readonly kind: string; readonly name: string; readonly namespace?: string; readonly apiVersion?: string };
}

/** Where events go; the daemon's posts them to the API server, tests record them. */
export interface EventSink {
  post(body: Record<string, unknown>): Promise<void>;
}

export interface EventRecorderOptions {
  readonly sink: EventSink | null;
  readonly nodeName: string;
  /** events.k8s.io reportingController; default "switchyard". */
  readonly controller?: string;
  readonly now?: () => number;
  readonly log?: Logger;
  /** Least time between two events of one reason and object; default 60 s. */
  readonly minIntervalMs?: number;
}

export class EventRecorder {
  readonly #sink: EventSink | null;
  readonly #node: string;
  readonly #controller: string;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #minInterval: number;
  readonly #last = new Map<string, number>();
  #seq = 0;
  #inFlight = new Set<Promise<void>>();

  constructor(options: EventRecorderOptions) {
    this.#sink = options.sink;
    this.#node = options.nodeName;
    this.#controller = options.controller ?? 'switchyard';
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? nullLogger();
    this.#minInterval = options.minIntervalMs ?? 60_000;
  }

  /** Records an event (fire and forget); returns whether it was sent rather than rate-limited. */
  record(e: NodeEvent): boolean {
    if (!this.#sink) return false;
    const now = this.#now();
    const regarding = e.regarding ?? { kind: 'Node', name: this.#node, apiVersion: 'v1' };
    const key = `${e.reason}\0${regarding.kind}\0${regarding.namespace ?? ''}\0${regarding.name}`;
    const last = this.#last.get(key);
    if (last !== undefined && now - last < this.#minInterval) return false;
    this.#last.set(key, now);
    const body = this.#body(e, regarding, now);
    const p = this.#sink.post(body).then(
      () => {},
      (err: unknown) => this.#log.debug('event not recorded', { reason: e.reason, error: err instanceof Error ? err.message : String(err) }),
    );
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
    return true;
  }

  /** Resolves when every event posted so far has been answered (tests, shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.#inFlight]);
  }

  #body(e: NodeEvent, regarding: NonNullable<NodeEvent['regarding']>, now: number): Record<string, unknown> {
    // Events about cluster-scoped objects live in "default", as client-go's recorder puts them.
    const namespace = regarding.namespace || 'default';
    const name = `${regarding.name}.${now.toString(16)}${(this.#seq++).toString(16).padStart(4, '0')}`;
    // The node's name doubles as its uid, as kube-proxy's nodeRef does.
    const ref: Record<string, string> = { kind: regarding.kind, name: regarding.name, uid: regarding.kind === 'Node' ? regarding.name : '' };
    if (regarding.namespace) ref['namespace'] = regarding.namespace;
    if (regarding.apiVersion) ref['apiVersion'] = regarding.apiVersion;
    return {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name, namespace },
      eventTime: microTime(now),
      reportingController: this.#controller,
      reportingInstance: `${this.#controller}-${this.#node}`,
      action: e.action,
      reason: e.reason,
      type: e.type,
      note: e.note.length > 1024 ? `${e.note.slice(0, 1021)}...` : e.note,
      regarding: ref,
    };
  }
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(epochMs: number): string {
  const iso = new Date(Math.floor(epochMs)).toISOString(); // ...SS.mmmZ
  const micros = String(Math.round((epochMs - Math.floor(epochMs)) * 1000))
    .padStart(3, '0')
    .slice(0, 3);
  return `${iso.slice(0, 23)}${micros}Z`;
}

/** Whether an error (or one it wraps) is the kernel saying a map is full: E2BIG on a hash map update, ENOSPC. */
export function isMapFull(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'E2BIG' || code === 'ENOSPC') return true;
  }
  return false;
}
