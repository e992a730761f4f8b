// Endpoints of one ServicePort merged across all of its Service's
// EndpointSlices, as kube-proxy's endpointslicecache.go does:
// - a slice port serves the ServicePort when name AND protocol are equal;
//   the endpoint's port is that slice port's number (slice ports without a
//   number are skipped);
// - an endpoint uses its first address;
// - the same ip:port appearing in several slices (an endpoint moving between
//   slices, or a pod IP reused while the old pod terminates) is kept once,
//   preferring a copy that is not terminating (kube-proxy's addEndpoints,
//   v1.31+): the first non-terminating copy, else the first copy. Slices
//   are visited in slice-name order so the outcome does not depend on the
//   order they arrived in (kube-proxy's is map order: any non-terminating
//   copy may win there).
// - zone and node hints are carried along for topology.ts.
// Validation (src/sources/objects.ts) already dropped endpoints without a
// valid address of the slice's family.

import type { EndpointSlice } from '../sources/objects.ts';
import type { EndpointInfo, IPFamily, Protocol } from './types.ts';

export interface MergeContext {
  readonly nodeName: string;
  /** Address families whose slices are used (IPv4 only for now). */
  readonly families: ReadonlySet<IPFamily>;
  /** Reuses EndpointInfo lists of slices that did not change; optional. */
  readonly memo?: SliceEndpointsMemo;
}

/** `slices` must be sorted by name (see sortSlices). Result sorted by ip, then port. */
export function mergeEndpoints(slices: readonly EndpointSlice[], portName: string, protocol: Protocol, ctx: MergeContext): readonly EndpointInfo[] {
  const sources: (readonly EndpointInfo[])[] = [];
  for (const slice of slices) {
    if (!ctx.families.has(slice.addressType)) continue;
    for (const sp of slice.ports) {
      if (sp.port === null || sp.name !== portName || sp.protocol !== protocol) continue;
      sources.push(ctx.memo ? ctx.memo.get(slice, sp.port) : sliceEndpointInfos(slice, sp.port, ctx.nodeName));
    }
  }
  if (sources.length === 0) return [];
  // Slice endpoints are sorted by address at validation, so one source is
  // already in order (and is returned as is when it has no duplicates).
  // Array.prototype.sort is stable: duplicates stay in the order seen.
  if (sources.length === 1) return dropDuplicates(sources[0]!);
  return dropDuplicates(sources.flat().sort(compareEndpoints));
}

/** EndpointInfos of one slice for one port number, in the slice's (address) order. */
export function sliceEndpointInfos(slice: EndpointSlice, port: number, nodeName: string): EndpointInfo[] {
  const out: EndpointInfo[] = [];
  for (const ep of slice.endpoints) {
    const ip = ep.addresses[0];
    if (ip === undefined) continue;
    out.push({
      ip,
      port,
      nodeName: ep.nodeName,
      zone: ep.zone,
      ready: ep.ready,
      serving: ep.serving,
      terminating: ep.terminating,
      isLocal: nodeName !== '' && ep.nodeName === nodeName,
      zoneHints: ep.zoneHints,
      nodeHints: ep.nodeHints,
    });
  }
  return out;
}

/**
 * Caches sliceEndpointInfos per (slice object, port) for one node. Cached
 * slices are immutable and replaced on change, so an unchanged slice keeps
 * its EndpointInfo objects across builds: a full rebuild then allocates
 * almost nothing per endpoint, and equality checks hit `a === b`.
 */
export class SliceEndpointsMemo {
  readonly #nodeName: string;
  readonly #bySlice = new WeakMap<EndpointSlice, Map<number, readonly EndpointInfo[]>>();

  constructor(nodeName: string) {
    this.#nodeName = nodeName;
  }

  get(slice: EndpointSlice, port: number): readonly EndpointInfo[] {
    let byPort = this.#bySlice.get(slice);
    if (!byPort) this.#bySlice.set(slice, (byPort = new Map()));
    let infos = byPort.get(port);
    if (!infos) byPort.set(port, (infos = sliceEndpointInfos(slice, port, this.#nodeName)));
    return infos;
  }
}

/**
 * Keeps one entry per ip:port in a sorted list: the first one that is not
 * terminating, else the first one.
 */
function dropDuplicates(sorted: readonly EndpointInfo[]): readonly EndpointInfo[] {
  let out: EndpointInfo[] | null = null;
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (prev.ip !== cur.ip || prev.port !== cur.port) {
      out?.push(cur);
      continue;
    }
    out ??= sorted.slice(0, i);
    if (out[out.length - 1]!.terminating && !cur.terminating) out[out.length - 1] = cur;
  }
  return out ?? sorted;
}

export function compareEndpoints(a: EndpointInfo, b: EndpointInfo): number {
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  return a.port - b.port;
}

/** A Service's slices in name order (the order duplicates are resolved in). */
export function sortSlices(slices: ReadonlyMap<string, EndpointSlice> | undefined): readonly EndpointSlice[] {
  if (!slices || slices.size === 0) return [];
  const list = [...slices.values()];
  if (list.length > 1) list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return list;
}
