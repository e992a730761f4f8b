// Builds ProxySnapshots from the object caches for one node.
//
// Incremental: build(changedServiceKeys) rebuilds only those Services'
// ServicePorts and keeps every other ServicePortInfo object of the previous
// snapshot as is; a rebuilt ServicePortInfo equal to its predecessor is also
// kept (same object) and left out of `changed`. build('all') rebuilds
// everything and reports changed = 'all'.
//
// Topology: this node's zone (its Node's topology.kubernetes.io/zone label)
// feeds endpoint selection. When it differs from the zone the committed
// snapshot was built with, an incremental build rebuilds every Service (and
// still reports only the ServicePorts that came out different).
//
// Two-phase, so a failed sync loses nothing: build() does not move the
// baseline; commit(snapshot) does, once the dataplane has programmed that
// snapshot. `changed` is therefore relative to the last committed snapshot,
// and a retry after a failure re-reports everything the failed one carried.

import type { EndpointSlice, Node, Service } from '../sources/objects.ts';
import { SwitchyardError } from '../util/errors.ts';
import { SliceEndpointsMemo, sortSlices } from './endpoints.ts';
import { servicePortEqual } from './equal.ts';
import { buildServicePorts, type BuildContext } from './service-ports.ts';
import type { IPFamily, ProxySnapshot, ServicePortInfo } from './types.ts';

export { LABEL_TOPOLOGY_ZONE } from '../sources/objects.ts';

/** The part of ClusterCache the model reads. */
export interface CacheView {
  readonly services: {
    get(key: string): Service | undefined;
    values(): Iterable<Service>;
  };
  readonly endpointSlices: {
    forService(serviceKey: string): ReadonlyMap<string, EndpointSlice> | undefined;
  };
  readonly nodes: {
    get(name: string): Node | undefined;
  };
}

export interface SnapshotBuilderOptions {
  readonly cache: CacheView;
  readonly nodeName: string;
  /** Families whose EndpointSlices are used; default IPv4 only. clusterIPs keep both families regardless. */
  readonly endpointFamilies?: readonly IPFamily[];
}

/**
 * The ServicePorts of each Service, as of the committed snapshot. Internal:
 * mutated in place by commit() (replaying the committed build's per-Service
 * results), so an incremental build copies only the snapshot's own map.
 */
type ByService = Map<string, readonly ServicePortInfo[]>;

interface Built {
  /** Generation of the committed state this build started from. */
  readonly baseGeneration: number;
  /** Full build: the complete per-Service table. Incremental: the rebuilt Services only. */
  readonly byService: ByService;
  readonly full: boolean;
  /** The node zone the build selected endpoints with. */
  readonly zone: string | null;
}

export class SnapshotBuilder {
  readonly #cache: CacheView;
  readonly #nodeName: string;
  readonly #families: ReadonlySet<IPFamily>;
  readonly #memo: SliceEndpointsMemo;
  #byService: ByService = new Map();
  #servicePorts: ReadonlyMap<string, ServicePortInfo> = new Map();
  #generation = 0;
  /** Zone of the committed build; undefined before the first commit. */
  #zone: string | null | undefined = undefined;
  #committedSnapshot: ProxySnapshot | null = null;
  readonly #built = new WeakMap<ProxySnapshot, Built>();

  constructor(options: SnapshotBuilderOptions) {
    this.#cache = options.cache;
    this.#nodeName = options.nodeName;
    this.#families = new Set(options.endpointFamilies ?? ['IPv4']);
    this.#memo = new SliceEndpointsMemo(options.nodeName);
  }

  /** The last snapshot passed to commit(), or null before the first. */
  get committed(): ProxySnapshot | null {
    return this.#committedSnapshot;
  }

  build(changes: ReadonlySet<string> | 'all'): ProxySnapshot {
    const ctx = this.#context();
    const full = changes === 'all';
    const servicePorts = new Map<string, ServicePortInfo>(full ? [] : this.#servicePorts);
    const byService: ByService = new Map();
    let changed: Set<string> | 'all' = 'all';
    if (full) this.#buildAll(ctx, servicePorts, byService);
    else changed = this.#buildChanged(this.#scope(changes, ctx), ctx, servicePorts, byService);
    const snapshot: ProxySnapshot = { nodeName: this.#nodeName, nodePodCIDRs: this.#cache.nodes.get(this.#nodeName)?.podCIDRs ?? [], servicePorts, changed };
    this.#built.set(snapshot, { baseGeneration: this.#generation, byService, full, zone: ctx.node.zone });
    return snapshot;
  }

  /**
   * Makes `snapshot` (returned by build()) the baseline of the next
   * incremental build. An incremental snapshot must have been built from the
   * current baseline (build, sync, commit: one at a time).
   */
  commit(snapshot: ProxySnapshot): void {
    const built = this.#built.get(snapshot);
    if (!built) throw new SwitchyardError('ERR_SY_SNAPSHOT_COMMIT', 'SnapshotBuilder.commit: snapshot was not built by this builder');
    if (built.full) {
      this.#byService = built.byService;
    } else {
      if (built.baseGeneration !== this.#generation) {
        throw new SwitchyardError('ERR_SY_SNAPSHOT_COMMIT', 'SnapshotBuilder.commit: snapshot was built from an older baseline; rebuild it');
      }
      for (const [key, ports] of built.byService) {
        if (ports.length > 0) this.#byService.set(key, ports);
        else this.#byService.delete(key);
      }
    }
    this.#built.delete(snapshot);
    this.#servicePorts = snapshot.servicePorts;
    this.#zone = built.zone;
    this.#generation++;
    this.#committedSnapshot = snapshot;
  }

  #context(): BuildContext {
    const zone = this.#cache.nodes.get(this.#nodeName)?.zone ?? null;
    return { nodeName: this.#nodeName, families: this.#families, memo: this.#memo, node: { name: this.#nodeName, zone } };
  }

  /** The Service keys an incremental build must rebuild: all of them when the node's zone changed. */
  #scope(changes: ReadonlySet<string>, ctx: BuildContext): ReadonlySet<string> {
    if (this.#zone === undefined || this.#zone === ctx.node.zone) return changes;
    const all = new Set(changes);
    for (const key of this.#byService.keys()) all.add(key);
    for (const svc of this.#cache.services.values()) all.add(svc.key);
    return all;
  }

  #portsOf(serviceKey: string, ctx: BuildContext): ServicePortInfo[] {
    const svc = this.#cache.services.get(serviceKey);
    if (!svc) return [];
    return buildServicePorts(svc, sortSlices(this.#cache.endpointSlices.forService(serviceKey)), ctx);
  }

  #buildAll(ctx: BuildContext, servicePorts: Map<string, ServicePortInfo>, byService: ByService): void {
    for (const svc of this.#cache.services.values()) {
      const ports = this.#portsOf(svc.key, ctx);
      byService.set(svc.key, ports);
      for (const sp of ports) servicePorts.set(sp.id, sp);
    }
  }

  #buildChanged(changes: ReadonlySet<string>, ctx: BuildContext, servicePorts: Map<string, ServicePortInfo>, byService: ByService): Set<string> {
    const changed = new Set<string>();
    for (const key of changes) {
      const previous = this.#byService.get(key) ?? [];
      byService.set(key, replaceServicePorts(previous, this.#portsOf(key, ctx), servicePorts, changed));
    }
    return changed;
  }
}

/**
 * Replaces one Service's previous ServicePorts by `next` in `servicePorts`,
 * keeping previous objects that are equal, and adds every added, changed or
 * removed id to `changed`. Returns the Service's new list. Services have a
 * handful of ports: linear search beats building a map.
 */
function replaceServicePorts(
  previous: readonly ServicePortInfo[],
  next: readonly ServicePortInfo[],
  servicePorts: Map<string, ServicePortInfo>,
  changed: Set<string>,
): readonly ServicePortInfo[] {
  const result = next.map((sp) => {
    const old = previous.find((p) => p.id === sp.id);
    if (old && servicePortEqual(old, sp)) return old;
    servicePorts.set(sp.id, sp);
    changed.add(sp.id);
    return sp;
  });
  for (const gone of previous) {
    if (next.some((sp) => sp.id === gone.id)) continue;
    servicePorts.delete(gone.id);
    changed.add(gone.id);
  }
  return result;
}
