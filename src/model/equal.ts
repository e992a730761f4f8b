// Equality of built ServicePortInfos, used by the incremental build to keep
// the previous object (and leave its id out of `changed`) when a rebuild
// produced the same thing.

import type { EndpointInfo, ServicePortInfo } from './types.ts';

export function servicePortEqual(a: ServicePortInfo, b: ServicePortInfo): boolean {
  return a.id === b.id
    && a.namespace === b.namespace
    && a.name === b.name
    && a.portName === b.portName
    && a.protocol === b.protocol
    && a.port === b.port
    && stringsEqual(a.clusterIPs, b.clusterIPs)
    && endpointsEqual(a.endpoints, b.endpoints)
    && endpointsEqual(a.clusterEndpoints, b.clusterEndpoints);
}

function stringsEqual(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function endpointsEqual(a: readonly EndpointInfo[], b: readonly EndpointInfo[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!endpointEqual(a[i]!, b[i]!)) return false;
  return true;
}

export function endpointEqual(a: EndpointInfo, b: EndpointInfo): boolean {
  return a.ip === b.ip
    && a.port === b.port
    && a.nodeName === b.nodeName
    && a.zone === b.zone
    && a.ready === b.ready
    && a.serving === b.serving
    && a.terminating === b.terminating
    && a.isLocal === b.isLocal;
}
