// Equality of built ServicePortInfos, used by the incremental build to keep
// the previous object (and leave its id out of `changed`) when a rebuild
// produced the same thing. Compares every field of ServicePortInfo; the
// optional ones compare equal when both are absent.

import type { EndpointInfo, PerFamily, ServicePortInfo } from './types.ts';

export function servicePortEqual(a: ServicePortInfo, b: ServicePortInfo): boolean {
  return (
    a.id === b.id &&
    a.namespace === b.namespace &&
    a.name === b.name &&
    a.portName === b.portName &&
    a.protocol === b.protocol &&
    a.port === b.port &&
    stringsEqual(a.clusterIPs, b.clusterIPs) &&
    endpointsEqual(a.endpoints, b.endpoints) &&
    endpointsEqual(a.clusterEndpoints, b.clusterEndpoints) &&
    serviceFieldsEqual(a, b) &&
    endpointSetsEqual(a, b)
  );
}

function serviceFieldsEqual(a: ServicePortInfo, b: ServicePortInfo): boolean {
  return (
    a.nodePort === b.nodePort &&
    optional(a.externalIPs, b.externalIPs, stringsEqual) &&
    optional(a.loadBalancerIPs, b.loadBalancerIPs, stringsEqual) &&
    a.sessionAffinity?.timeoutSeconds === b.sessionAffinity?.timeoutSeconds &&
    (a.sessionAffinity === null) === (b.sessionAffinity === null) &&
    a.lbAlgorithm === b.lbAlgorithm &&
    a.externalPolicyLocal === b.externalPolicyLocal &&
    a.internalPolicyLocal === b.internalPolicyLocal &&
    a.healthCheckNodePort === b.healthCheckNodePort &&
    optional(a.loadBalancerSourceRanges, b.loadBalancerSourceRanges, stringsEqual) &&
    a.trafficDistribution === b.trafficDistribution
  );
}

function endpointSetsEqual(a: ServicePortInfo, b: ServicePortInfo): boolean {
  return (
    optional(a.clusterPolicyEndpoints, b.clusterPolicyEndpoints, endpointsEqual) &&
    optional(a.localEndpoints, b.localEndpoints, endpointsEqual) &&
    optional(a.externalEndpoints, b.externalEndpoints, endpointsEqual) &&
    optional(a.allEndpoints, b.allEndpoints, endpointsEqual) &&
    optional(a.hasAnyEndpoints, b.hasAnyEndpoints, perFamilyEqual) &&
    a.usesClusterEndpoints === b.usesClusterEndpoints &&
    a.usesLocalEndpoints === b.usesLocalEndpoints &&
    optional(a.topologyMode, b.topologyMode, perFamilyEqual)
  );
}

function optional<T>(a: T | undefined, b: T | undefined, eq: (x: T, y: T) => boolean): boolean {
  if (a === undefined || b === undefined) return a === b;
  return eq(a, b);
}

function perFamilyEqual<T>(a: PerFamily<T>, b: PerFamily<T>): boolean {
  return a === b || (a.IPv4 === b.IPv4 && a.IPv6 === b.IPv6);
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
  return (
    a === b ||
    (a.ip === b.ip &&
      a.port === b.port &&
      a.nodeName === b.nodeName &&
      a.zone === b.zone &&
      a.ready === b.ready &&
      a.serving === b.serving &&
      a.terminating === b.terminating &&
      a.isLocal === b.isLocal &&
      optional(a.zoneHints, b.zoneHints, stringsEqual) &&
      optional(a.nodeHints, b.nodeHints, stringsEqual))
  );
}
