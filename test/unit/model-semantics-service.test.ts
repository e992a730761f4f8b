// Service fields, table-driven: what a ServicePortInfo carries for each
// Service type and field kube-proxy honours (pkg/proxy/serviceport.go
// newBaseServiceInfo, servicechangetracker.go serviceToServiceMap), the
// frontends that follow, and the Services kube-proxy ignores. Notation:
// model-semantics-fixtures.ts.

import { expect, test } from 'vitest';
import { ClusterCache } from '../../src/sources/cache.ts';
import { SnapshotBuilder } from '../../src/model/snapshot.ts';
import { servicePortEqual } from '../../src/model/equal.ts';
import { build, ep, frontendLabels, parse, service, slice, type SvcSpec } from './model-semantics-fixtures.ts';
import type { ServicePortInfo } from '../../src/model/types.ts';

interface Row {
  name: string;
  from: string;
  svc: SvcSpec;
  /** Fields of the (only) ServicePortInfo; omitted fields take the ClusterIP defaults below. */
  want: Partial<Fields>;
  frontends: string[];
}

type Fields = Pick<
  Required<ServicePortInfo>,
  | 'nodePort'
  | 'externalIPs'
  | 'loadBalancerIPs'
  | 'sessionAffinity'
  | 'externalPolicyLocal'
  | 'internalPolicyLocal'
  | 'healthCheckNodePort'
  | 'loadBalancerSourceRanges'
  | 'trafficDistribution'
  | 'usesClusterEndpoints'
  | 'usesLocalEndpoints'
>;

const DEFAULTS: Fields = {
  nodePort: null,
  externalIPs: [],
  loadBalancerIPs: [],
  sessionAffinity: null,
  externalPolicyLocal: false,
  internalPolicyLocal: false,
  healthCheckNodePort: null,
  loadBalancerSourceRanges: [],
  trafficDistribution: null,
  usesClusterEndpoints: true,
  usesLocalEndpoints: false,
};

const CIP = 'clusterIP 10.96.0.10:80/TCP';
const NP = 'nodePort *:30080/TCP';

const rows: Row[] = [
  {
    name: 'ClusterIP: one frontend, Cluster policies, no affinity',
    from: 'serviceport.go newBaseServiceInfo',
    svc: {},
    want: {},
    frontends: [CIP],
  },
  {
    name: 'NodePort: the nodePort on any node address',
    from: 'serviceport.go NodePort()',
    svc: { type: 'NodePort' },
    want: { nodePort: 30080 },
    frontends: [CIP, NP],
  },
  {
    name: 'NodePort without a nodePort in the manifest: no NodePort frontend',
    from: 'serviceport.go (NodePort() 0 means none)',
    svc: { type: 'NodePort', ports: [{ name: 'http', port: 80 }] },
    want: {},
    frontends: [CIP],
  },
  {
    name: 'LoadBalancer: VIP ingress IPs in status order, ipMode Proxy skipped',
    from: 'serviceport.go newBaseServiceInfo (IsVIPMode)',
    svc: { type: 'LoadBalancer', lb: ['198.51.100.2', '198.51.100.3/Proxy', '198.51.100.1'] },
    want: { nodePort: 30080, loadBalancerIPs: ['198.51.100.2', '198.51.100.1'] },
    frontends: [CIP, NP, 'loadBalancer 198.51.100.2:80/TCP', 'loadBalancer 198.51.100.1:80/TCP'],
  },
  {
    name: 'LoadBalancer without node ports (allocateLoadBalancerNodePorts false)',
    from: 'serviceport.go NodePort()',
    svc: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80 }], lb: ['198.51.100.1'] },
    want: { loadBalancerIPs: ['198.51.100.1'] },
    frontends: [CIP, 'loadBalancer 198.51.100.1:80/TCP'],
  },
  {
    name: "ExternalIPs of the Service's family only",
    from: 'serviceport.go newBaseServiceInfo (MapIPsByIPFamily)',
    svc: { externalIPs: ['192.0.2.10', '2001:db8::10', '192.0.2.11'] },
    want: { externalIPs: ['192.0.2.10', '192.0.2.11'] },
    frontends: [CIP, 'externalIP 192.0.2.10:80/TCP', 'externalIP 192.0.2.11:80/TCP'],
  },
  {
    name: 'dual-stack: frontends for each family, in clusterIPs order',
    from: 'servicechangetracker.go serviceToServiceMap (one map per family)',
    svc: {
      type: 'LoadBalancer',
      clusterIPs: ['fd00:10:96::a', '10.96.0.10'],
      externalIPs: ['192.0.2.10', '2001:db8::10'],
      lb: ['198.51.100.1', '2001:db8:1::1'],
    },
    want: { nodePort: 30080, externalIPs: ['192.0.2.10', '2001:db8::10'], loadBalancerIPs: ['198.51.100.1', '2001:db8:1::1'] },
    frontends: [
      'clusterIP [fd00:10:96::a]:80/TCP',
      'nodePort [*]:30080/TCP',
      'externalIP [2001:db8::10]:80/TCP',
      'loadBalancer [2001:db8:1::1]:80/TCP',
      CIP,
      NP,
      'externalIP 192.0.2.10:80/TCP',
      'loadBalancer 198.51.100.1:80/TCP',
    ],
  },
  {
    name: 'sessionAffinity ClientIP with the default timeout of 10800 s',
    from: 'serviceport.go StickyMaxAgeSeconds (API default 10800)',
    svc: { affinity: 'default' },
    want: { sessionAffinity: { timeoutSeconds: 10800 } },
    frontends: [CIP],
  },
  {
    name: 'sessionAffinity ClientIP with its own timeout',
    from: 'serviceport.go StickyMaxAgeSeconds',
    svc: { type: 'NodePort', affinity: 30 },
    want: { nodePort: 30080, sessionAffinity: { timeoutSeconds: 30 } },
    frontends: [CIP, NP],
  },
  {
    name: 'externalTrafficPolicy Local on a LoadBalancer, with its healthCheckNodePort',
    from: 'pkg/api/v1/service ExternalPolicyLocal, NeedsHealthCheck; serviceport.go UsesLocalEndpoints',
    svc: { type: 'LoadBalancer', etp: 'Local', lb: ['198.51.100.1'], healthCheckNodePort: 31000 },
    want: { nodePort: 30080, loadBalancerIPs: ['198.51.100.1'], externalPolicyLocal: true, healthCheckNodePort: 31000, usesLocalEndpoints: true },
    frontends: [CIP, NP, 'loadBalancer 198.51.100.1:80/TCP'],
  },
  {
    name: 'externalTrafficPolicy Local on a NodePort: no health check node port',
    from: 'pkg/api/v1/service NeedsHealthCheck (LoadBalancer only)',
    svc: { type: 'NodePort', etp: 'Local', healthCheckNodePort: 31000 },
    want: { nodePort: 30080, externalPolicyLocal: true, usesLocalEndpoints: true },
    frontends: [CIP, NP],
  },
  {
    name: 'externalTrafficPolicy Local on a ClusterIP Service without ExternalIPs means nothing',
    from: 'pkg/api/v1/service ExternalPolicyLocal (ExternallyAccessible false)',
    svc: { etp: 'Local' },
    want: {},
    frontends: [CIP],
  },
  {
    name: 'internalTrafficPolicy Local on an internal-only Service uses no cluster endpoints',
    from: 'serviceport.go UsesClusterEndpoints / UsesLocalEndpoints',
    svc: { itp: 'Local' },
    want: { internalPolicyLocal: true, usesClusterEndpoints: false, usesLocalEndpoints: true },
    frontends: [CIP],
  },
  {
    name: 'internalTrafficPolicy Local on a NodePort still needs cluster endpoints for external traffic',
    from: 'serviceport.go UsesClusterEndpoints ("or if it accepts external traffic at all")',
    svc: { type: 'NodePort', itp: 'Local' },
    want: { nodePort: 30080, internalPolicyLocal: true, usesLocalEndpoints: true },
    frontends: [CIP, NP],
  },
  {
    name: 'loadBalancerSourceRanges: whitespace trimmed, both families kept',
    from: 'serviceport.go newBaseServiceInfo (strings.TrimSpace); nftables proxier_test TestLoadBalancer',
    svc: { type: 'LoadBalancer', lb: ['198.51.100.1'], sourceRanges: [' 203.0.113.0/25', '198.18.0.0/15 ', '2001:db8::/32'] },
    want: { nodePort: 30080, loadBalancerIPs: ['198.51.100.1'], loadBalancerSourceRanges: ['203.0.113.0/25', '198.18.0.0/15', '2001:db8::/32'] },
    frontends: [CIP, NP, 'loadBalancer 198.51.100.1:80/TCP'],
  },
  {
    name: 'trafficDistribution is carried for information',
    from: 'kube-proxy reads the hints the EndpointSlice controller derives from it (topology.go)',
    svc: { trafficDistribution: 'PreferSameZone' },
    want: { trafficDistribution: 'PreferSameZone' },
    frontends: [CIP],
  },
];

for (const r of rows) {
  test(`${r.name} [${r.from}]`, () => {
    const ports = build({ objects: [service(r.svc), slice('web-1', [ep('10.244.1.1', { node: 'node-a' })])] });
    expect(ports.size).toBe(1);
    const sp = [...ports.values()][0]!;
    const got = Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, sp[k as keyof Fields]]));
    expect(got).toStrictEqual({ ...DEFAULTS, ...r.want });
    expect(frontendLabels(sp)).toStrictEqual(r.frontends);
  });
}

const ignored: [string, Record<string, unknown>][] = [
  ['headless (clusterIP None)', service({ clusterIP: 'None' })],
  ['ExternalName', { ...service({ type: 'ExternalName' }), spec: { type: 'ExternalName', externalName: 'db.example.com' } }],
  ['labelled service.kubernetes.io/service-proxy-name', service({ labels: { 'service.kubernetes.io/service-proxy-name': 'other-proxy' } })],
  ['labelled service.kubernetes.io/headless', service({ labels: { 'service.kubernetes.io/headless': '' } })],
];

for (const [what, raw] of ignored) {
  test(`a Service ${what} has no ServicePorts, whatever its slices [servicechangetracker.go ShouldSkipService]`, () => {
    expect(build({ objects: [raw, slice('web-1', [ep('10.244.1.1', { node: 'node-a' })])] }).size).toBe(0);
  });
}

test('each port of a Service is its own ServicePort with its own nodePort and endpoints', () => {
  const ports = build({
    objects: [
      service({
        type: 'NodePort',
        ports: [
          { name: 'http', port: 80, nodePort: 30080 },
          { name: 'https', port: 443, nodePort: 30443 },
        ],
      }),
      slice('web-1', [ep('10.244.1.1')], {
        ports: [
          { name: 'http', port: 8080 },
          { name: 'https', port: 8443 },
        ],
      }),
    ],
  });
  const http = ports.get('default/web:http/TCP')!;
  const https = ports.get('default/web:https/TCP')!;
  expect([http.nodePort, https.nodePort]).toStrictEqual([30080, 30443]);
  expect(frontendLabels(https)).toStrictEqual(['clusterIP 10.96.0.10:443/TCP', 'nodePort *:30443/TCP']);
  expect([http.clusterEndpoints[0]?.port, https.clusterEndpoints[0]?.port]).toStrictEqual([8080, 8443]);
});

test('every new field takes part in change detection: a changed field is reported, an unchanged rebuild is not', () => {
  const base: SvcSpec = {
    type: 'LoadBalancer',
    etp: 'Local',
    lb: ['198.51.100.1'],
    sourceRanges: ['203.0.113.0/25'],
    affinity: 60,
    healthCheckNodePort: 31000,
  };
  const cache = new ClusterCache();
  cache.apply(parse(service(base)));
  cache.apply(parse(slice('web-1', [ep('10.244.1.1', { node: 'node-a', zones: ['z1'] }), ep('10.244.2.1', { node: 'node-b', zones: ['z1'] })])));
  const builder = new SnapshotBuilder({ cache, nodeName: 'node-a' });
  builder.commit(builder.build('all'));
  const variants: SvcSpec[] = [
    { ...base, sourceRanges: ['203.0.113.0/26'] },
    { ...base, affinity: 61 },
    { ...base, affinity: undefined },
    { ...base, lb: ['198.51.100.2'] },
    { ...base, lb: ['198.51.100.1/Proxy'] },
    { ...base, etp: 'Cluster' },
    { ...base, itp: 'Local' },
    { ...base, healthCheckNodePort: 31001 },
    { ...base, externalIPs: ['192.0.2.10'] },
    { ...base, trafficDistribution: 'PreferClose' },
    { ...base, ports: [{ name: 'http', port: 80, nodePort: 30081 }] },
  ];
  for (const v of [...variants, base]) {
    cache.apply(parse(service(v)));
    const snap = builder.build(new Set(['default/web']));
    expect(snap.changed, JSON.stringify(v)).toStrictEqual(new Set(['default/web:http/TCP']));
    builder.commit(snap);
    const again = builder.build(new Set(['default/web']));
    expect(again.changed, `rebuilt unchanged: ${JSON.stringify(v)}`).toStrictEqual(new Set());
    expect(servicePortEqual(again.servicePorts.get('default/web:http/TCP')!, snap.servicePorts.get('default/web:http/TCP')!)).toBeTruthy();
  }
});
