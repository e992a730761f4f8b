// The object caches every source writes into and the model reads from:
// Services and EndpointSlices keyed "namespace/name", Nodes keyed by name,
// EndpointSlices also indexed by their Service ("namespace/service-name") so
// a Service's slices are one map lookup. Every effective apply/delete records
// the affected Service keys in a ChangeTracker; applying an object equal to
// the cached one records nothing.
//
// Changes are consumed in two steps so that a failed sync loses nothing:
// peek() hands out the pending set, commit(token) removes only what that
// token covered (a key changed again after the peek stays pending).

import { deepEqual } from './equal.ts';
import type { EndpointSlice, KubeObject, Node, ObjectKind, ObjectRef, Service } from './objects.ts';

/** What changed since the last commit, as handed to one sync attempt. */
export interface PendingChanges {
  /** Service keys ("namespace/name") whose Service or slices changed. */
  readonly services: ReadonlySet<string>;
  /** When each of those keys first changed since its last commit (clock ms). */
  readonly seenAt: ReadonlyMap<string, number>;
  /** Earliest EndpointSlice last-change-trigger-time per key, where slices carried one (wall clock ms). */
  readonly triggeredAt: ReadonlyMap<string, number>;
  /** Some Node changed (topology inputs; unused by the ClusterIP model so far). */
  readonly nodes: boolean;
  /** Sequence number covering everything above; pass back to commit(). */
  readonly seq: number;
}

interface PendingEntry {
  readonly seq: number;
  readonly seenAt: number;
  readonly triggeredAt: number | null;
  /** What changed for this key since its last commit: the Service, its slices, or both. */
  readonly service: boolean;
  readonly endpoints: boolean;
}

/** Pending changes by kind, kube-proxy's *_changes_pending metrics. */
export interface PendingCounts {
  /** Service keys with a pending change of the Service itself. */
  readonly services: number;
  /** Service keys with a pending change of their EndpointSlices. */
  readonly endpoints: number;
}

export class ChangeTracker {
  readonly #now: () => number;
  readonly #services = new Map<string, PendingEntry>();
  #nodesSeq = 0;
  #seq = 0;

  constructor(now: () => number = monotonicNow) {
    this.#now = now;
  }

  /**
   * `triggeredAt`: the change's trigger time from an EndpointSlice annotation, if any (earliest kept);
   * `kind`: which object changed (for the pending counts).
   */
  recordService(serviceKey: string, triggeredAt: number | null = null, kind: 'Service' | 'EndpointSlice' = 'Service'): void {
    const seq = ++this.#seq;
    const prev = this.#services.get(serviceKey);
    const seenAt = prev?.seenAt ?? this.#now();
    const earlier = prev?.triggeredAt ?? null;
    const trig = earlier === null ? triggeredAt : triggeredAt === null ? earlier : Math.min(earlier, triggeredAt);
    const service = (prev?.service ?? false) || kind === 'Service';
    const endpoints = (prev?.endpoints ?? false) || kind === 'EndpointSlice';
    this.#services.set(serviceKey, { seq, seenAt, triggeredAt: trig, service, endpoints });
  }

  /** Pending Service keys by what changed (a key whose Service and slices both changed counts in both). */
  pendingCounts(): PendingCounts {
    let services = 0;
    let endpoints = 0;
    for (const e of this.#services.values()) {
      if (e.service) services++;
      if (e.endpoints) endpoints++;
    }
    return { services, endpoints };
  }

  recordNodes(): void {
    this.#nodesSeq = ++this.#seq;
  }

  get size(): number {
    return this.#services.size + (this.#nodesSeq > 0 ? 1 : 0);
  }

  peek(): PendingChanges {
    const seenAt = new Map<string, number>();
    const triggeredAt = new Map<string, number>();
    for (const [key, entry] of this.#services) {
      seenAt.set(key, entry.seenAt);
      if (entry.triggeredAt !== null) triggeredAt.set(key, entry.triggeredAt);
    }
    return { services: new Set(seenAt.keys()), seenAt, triggeredAt, nodes: this.#nodesSeq > 0, seq: this.#seq };
  }

  /** Forgets the changes `token` covered; later changes to the same keys stay pending. */
  commit(token: PendingChanges): void {
    for (const key of token.services) {
      const entry = this.#services.get(key);
      if (entry && entry.seq <= token.seq) this.#services.delete(key);
    }
    if (this.#nodesSeq <= token.seq) this.#nodesSeq = 0;
  }

  /** peek() + commit() in one step, for callers that cannot fail. */
  takeChanges(): Set<string> {
    const token = this.peek();
    this.commit(token);
    return new Set(token.services);
  }
}

export class ServiceCache {
  readonly #tracker: ChangeTracker;
  readonly #byKey = new Map<string, Service>();

  constructor(tracker: ChangeTracker) {
    this.#tracker = tracker;
  }

  get size(): number {
    return this.#byKey.size;
  }

  get(key: string): Service | undefined {
    return this.#byKey.get(key);
  }

  values(): IterableIterator<Service> {
    return this.#byKey.values();
  }

  /** Returns true when the cache changed. */
  apply(svc: Service): boolean {
    if (deepEqual(this.#byKey.get(svc.key), svc)) return false;
    this.#byKey.set(svc.key, svc);
    this.#tracker.recordService(svc.key);
    return true;
  }

  delete(key: string): boolean {
    if (!this.#byKey.delete(key)) return false;
    this.#tracker.recordService(key);
    return true;
  }
}

export class EndpointSliceCache {
  readonly #tracker: ChangeTracker;
  readonly #byKey = new Map<string, EndpointSlice>();
  /** serviceKey -> sliceKey -> slice */
  readonly #byService = new Map<string, Map<string, EndpointSlice>>();

  constructor(tracker: ChangeTracker) {
    this.#tracker = tracker;
  }

  get size(): number {
    return this.#byKey.size;
  }

  get(key: string): EndpointSlice | undefined {
    return this.#byKey.get(key);
  }

  /** The slices of one Service, keyed by slice key; undefined when it has none. */
  forService(serviceKey: string): ReadonlyMap<string, EndpointSlice> | undefined {
    return this.#byService.get(serviceKey);
  }

  apply(slice: EndpointSlice): boolean {
    const old = this.#byKey.get(slice.key);
    if (deepEqual(old, slice)) return false;
    if (old && old.serviceKey !== slice.serviceKey) this.#unindex(old);
    this.#byKey.set(slice.key, slice);
    this.#index(slice);
    return true;
  }

  delete(key: string): boolean {
    const old = this.#byKey.get(key);
    if (!old) return false;
    this.#byKey.delete(key);
    this.#unindex(old);
    return true;
  }

  #index(slice: EndpointSlice): void {
    let slices = this.#byService.get(slice.serviceKey);
    if (!slices) this.#byService.set(slice.serviceKey, (slices = new Map()));
    slices.set(slice.key, slice);
    this.#tracker.recordService(slice.serviceKey, slice.triggerTime, 'EndpointSlice');
  }

  #unindex(slice: EndpointSlice): void {
    const slices = this.#byService.get(slice.serviceKey);
    slices?.delete(slice.key);
    if (slices?.size === 0) this.#byService.delete(slice.serviceKey);
    this.#tracker.recordService(slice.serviceKey, null, 'EndpointSlice');
  }
}

export class NodeCache {
  readonly #tracker: ChangeTracker;
  readonly #byName = new Map<string, Node>();

  constructor(tracker: ChangeTracker) {
    this.#tracker = tracker;
  }

  get size(): number {
    return this.#byName.size;
  }

  get(name: string): Node | undefined {
    return this.#byName.get(name);
  }

  apply(node: Node): boolean {
    if (deepEqual(this.#byName.get(node.key), node)) return false;
    this.#byName.set(node.key, node);
    this.#tracker.recordNodes();
    return true;
  }

  delete(name: string): boolean {
    if (!this.#byName.delete(name)) return false;
    this.#tracker.recordNodes();
    return true;
  }
}

/** The three caches sharing one change tracker, with kind-dispatching apply/delete for sources. */
export class ClusterCache {
  readonly changes: ChangeTracker;
  readonly services: ServiceCache;
  readonly endpointSlices: EndpointSliceCache;
  readonly nodes: NodeCache;

  readonly #onChanged: (kind: ObjectKind) => void;

  /** `onChanged`: told of every effective apply or delete, by kind (metrics count them). */
  constructor(options: { readonly now?: () => number; readonly onChanged?: (kind: ObjectKind) => void } = {}) {
    this.changes = new ChangeTracker(options.now);
    this.services = new ServiceCache(this.changes);
    this.endpointSlices = new EndpointSliceCache(this.changes);
    this.nodes = new NodeCache(this.changes);
    this.#onChanged = options.onChanged ?? (() => {});
  }

  apply(obj: KubeObject): boolean {
    return this.#changed(obj.kind, this.#apply(obj));
  }

  delete(ref: ObjectRef): boolean {
    return this.#changed(ref.kind, this.#delete(ref));
  }

  #changed(kind: ObjectKind, changed: boolean): boolean {
    if (changed) this.#onChanged(kind);
    return changed;
  }

  #apply(obj: KubeObject): boolean {
    switch (obj.kind) {
      case 'Service':
        return this.services.apply(obj);
      case 'EndpointSlice':
        return this.endpointSlices.apply(obj);
      case 'Node':
        return this.nodes.apply(obj);
    }
  }

  #delete(ref: ObjectRef): boolean {
    switch (ref.kind) {
      case 'Service':
        return this.services.delete(ref.key);
      case 'EndpointSlice':
        return this.endpointSlices.delete(ref.key);
      case 'Node':
        return this.nodes.delete(ref.key);
    }
  }

  has(ref: ObjectRef): boolean {
    switch (ref.kind) {
      case 'Service':
        return this.services.get(ref.key) !== undefined;
      case 'EndpointSlice':
        return this.endpointSlices.get(ref.key) !== undefined;
      case 'Node':
        return this.nodes.get(ref.key) !== undefined;
    }
  }

  /** Convenience for callers that consume changes unconditionally (see ChangeTracker). */
  takeChanges(): Set<string> {
    return this.changes.takeChanges();
  }
}

/** Monotonic milliseconds on the epoch scale (immune to wall-clock steps). */
export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}
