// Endpoint selection, table-driven: which endpoints each frontend of a
// Service uses on node-a, as kube-proxy's CategorizeEndpoints decides them
// (ready endpoints, serving-terminating fallback, zone and node hints, Local
// traffic policies), with the verdict of every frontend for every source.
// Rows follow kube-proxy's pkg/proxy/topology_test.go TestCategorizeEndpoints
// and the nftables proxier's packet-flow tests, restated as Services and
// EndpointSlices. Notation: model-semantics-fixtures.ts.

import { expect, test } from 'vitest';
import { ClusterCache } from '../../src/sources/cache.ts';
import { SnapshotBuilder } from '../../src/model/snapshot.ts';
import { TERMINATING, every, ep, eps, node, parse, runCase, service, slice, type Case } from './model-semantics-fixtures.ts';

const CIP = 'clusterIP 10.96.0.10:80/TCP';
const NP = 'nodePort *:30080/TCP';
// Pods: 10.244.1.x on node-a (this node), 10.244.2.x on node-b, 10.244.3.x on node-c.
const [a1, a2, b1, c1] = ['10.244.1.1:8080', '10.244.1.2:8080', '10.244.2.1:8080', '10.244.3.1:8080'];
const A = { node: 'node-a' };
const B = { node: 'node-b' };
const C = { node: 'node-c' };

/** ClusterIP verdicts with endpoints `list` and the default pod-CIDR detector. */
const clusterIP = (list: string) => ({ pod: `dnat ${list}`, node: `masq ${list}`, external: `masq ${list}` });
/** A ClusterIP Service's sets when Cluster policy sends everything to `list`. */
const clusterOnly = (list: string, hasAny = list !== '') => ({ cluster: list, clusterPolicy: list, local: '', external: '', all: list, hasAny });

const cases: Case[] = [
  // -- Ready endpoints and the serving-terminating fallback ----------------
  {
    name: 'Cluster policy uses every ready endpoint, on any node',
    from: 'topology.go CategorizeEndpoints; topology_test "Cluster traffic policy, some endpoints are Ready"',
    objects: [service(), slice('web-1', [ep('10.244.1.1', A), ep('10.244.2.1', B)])],
    sets: clusterOnly(`${a1} ${b1}`),
    verdicts: { [CIP]: clusterIP(`${a1} ${b1}`) },
  },
  {
    name: 'endpoints that are not ready are left out',
    from: 'topology_test "Cluster traffic policy, some endpoints are Ready"',
    objects: [service(), slice('web-1', [ep('10.244.1.1', { ...A, ready: false }), ep('10.244.2.1', B)])],
    sets: clusterOnly(b1),
    verdicts: { [CIP]: clusterIP(b1) },
  },
  {
    name: 'while any endpoint is ready, terminating ones are not used',
    from: 'topology.go CategorizeEndpoints (fallback only when the ready set is empty)',
    objects: [service(), slice('web-1', [ep('10.244.1.1', A), ep('10.244.2.1', { ...B, ...TERMINATING })])],
    sets: clusterOnly(a1),
    verdicts: { [CIP]: clusterIP(a1) },
  },
  {
    name: 'with no ready endpoint, serving+terminating endpoints take the traffic',
    from: 'topology_test "Cluster traffic policy, PTE enabled, all endpoints are terminating"',
    objects: [
      service(),
      slice('web-1', [
        ep('10.244.1.1', { ...A, ...TERMINATING }),
        ep('10.244.2.1', { ...B, ready: false, serving: false, terminating: true }),
        ep('10.244.3.1', { ...C, ready: false }),
      ]),
    ],
    sets: clusterOnly(a1),
    verdicts: { [CIP]: clusterIP(a1) },
  },
  {
    name: 'no usable endpoint (not ready, not serving) rejects',
    from: 'topology_test "Cluster traffic policy, endpoints not Ready"; nftables proxier.go (no endpoints: reject-chain)',
    objects: [
      service(),
      slice('web-1', [ep('10.244.1.1', { ...A, ready: false }), ep('10.244.2.1', { ...B, ready: false, serving: false, terminating: true })]),
    ],
    sets: clusterOnly(''),
    verdicts: { [CIP]: every('reject') },
  },
  {
    name: 'a Service without EndpointSlices rejects',
    from: 'nftables proxier_test TestNoEndpointsReject',
    objects: [service()],
    sets: clusterOnly(''),
    verdicts: { [CIP]: every('reject') },
  },

  // -- Zone hints ----------------------------------------------------------
  {
    name: "zone hints: only endpoints hinted for this node's zone",
    from: 'topology_test "normal endpoint filtering"; topology.go topologyModeFromHints',
    objects: [
      node('z1'),
      service(),
      slice('web-1', [
        ep('10.244.1.1', { ...A, zones: ['z1'] }),
        ep('10.244.2.1', { ...B, zones: ['z2'] }),
        ep('10.244.3.1', { ...C, zones: ['z3'] }),
        ep('10.244.1.2', { ...A, zones: ['z1'] }),
      ]),
    ],
    sets: { ...clusterOnly(`${a1} ${a2}`), topology: 'PreferSameZone' },
    verdicts: { [CIP]: clusterIP(`${a1} ${a2}`) },
  },
  {
    name: 'zone hints are ignored when one ready endpoint has none',
    from: 'topology_test "missing hints, no filtering applied"',
    objects: [
      node('z1'),
      service(),
      slice('web-1', [ep('10.244.1.1', { ...A, zones: ['z1'] }), ep('10.244.2.1', B), ep('10.244.3.1', { ...C, zones: ['z3'] })]),
    ],
    sets: clusterOnly(`${a1} ${b1} ${c1}`),
    verdicts: { [CIP]: clusterIP(`${a1} ${b1} ${c1}`) },
  },
  {
    name: "zone hints are ignored when none names this node's zone",
    from: 'topology_test "node in different zone, no endpoint filtering"',
    objects: [node('z2'), service(), slice('web-1', [ep('10.244.1.1', { ...A, zones: ['z1'] }), ep('10.244.3.1', { ...C, zones: ['z3'] })])],
    sets: clusterOnly(`${a1} ${c1}`),
    verdicts: { [CIP]: clusterIP(`${a1} ${c1}`) },
  },
  {
    name: 'zone hints are ignored when this node has no zone label',
    from: 'topology_test "empty node labels"',
    objects: [node(), service(), slice('web-1', [ep('10.244.1.1', { ...A, zones: ['z1'] }), ep('10.244.3.1', { ...C, zones: ['z3'] })])],
    sets: clusterOnly(`${a1} ${c1}`),
    verdicts: { [CIP]: clusterIP(`${a1} ${c1}`) },
  },
  {
    name: 'zone hints are ignored when this node has no Node object yet',
    from: 'topology_test "empty node labels" (kube-proxy reads a missing label as "")',
    objects: [service(), slice('web-1', [ep('10.244.1.1', { ...A, zones: ['z1'] }), ep('10.244.3.1', { ...C, zones: ['z3'] })])],
    sets: clusterOnly(`${a1} ${c1}`),
    verdicts: { [CIP]: clusterIP(`${a1} ${c1}`) },
  },
  {
    name: 'hints of unready endpoints do not count: no ready endpoint for this zone, no filtering',
    from: 'topology_test "only unready endpoints in same zone (should not filter)"',
    objects: [
      node('z1'),
      service(),
      slice('web-1', [
        ep('10.244.1.1', { ...A, ready: false, zones: ['z1'] }),
        ep('10.244.2.1', { ...B, zones: ['z2'] }),
        ep('10.244.3.1', { ...C, zones: ['z3'] }),
      ]),
    ],
    sets: clusterOnly(`${b1} ${c1}`),
    verdicts: { [CIP]: clusterIP(`${b1} ${c1}`) },
  },
  {
    name: 'an unready endpoint without hints does not disable them',
    from: 'topology_test "unready endpoint"',
    objects: [
      node('z1'),
      service(),
      slice('web-1', [ep('10.244.1.1', { ...A, zones: ['z1'] }), ep('10.244.2.1', { ...B, zones: ['z2'] }), ep('10.244.3.1', { ...C, ready: false })]),
    ],
    sets: { ...clusterOnly(a1), topology: 'PreferSameZone' },
    verdicts: { [CIP]: clusterIP(a1) },
  },
  {
    name: 'an endpoint hinted for several zones serves each of them',
    from: 'topology_test "multiple hints per endpoint, filtering includes any endpoint with zone included"',
    objects: [
      node('z3'),
      service(),
      slice('web-1', [
        ep('10.244.1.1', { ...A, zones: ['z1', 'z2', 'z3'] }),
        ep('10.244.2.1', { ...B, zones: ['z2', 'z3'] }),
        ep('10.244.3.1', { ...C, zones: ['z2', 'z4'] }),
        ep('10.244.1.2', { ...A, zones: ['z3'] }),
      ]),
    ],
    sets: { ...clusterOnly(`${a1} ${a2} ${b1}`), topology: 'PreferSameZone' },
    verdicts: { [CIP]: clusterIP(`${a1} ${a2} ${b1}`) },
  },
  {
    name: 'hinted endpoints all terminating: no topology, fall back to every serving+terminating one',
    from: 'topology.go CategorizeEndpoints (hints only consider ready endpoints; fallback ignores topology)',
    objects: [
      node('z1'),
      service(),
      slice('web-1', [ep('10.244.1.1', { ...A, ...TERMINATING, zones: ['z1'] }), ep('10.244.2.1', { ...B, ...TERMINATING, zones: ['z2'] })]),
    ],
    sets: clusterOnly(`${a1} ${b1}`),
    verdicts: { [CIP]: clusterIP(`${a1} ${b1}`) },
  },

  // -- Node hints (trafficDistribution PreferSameNode) ---------------------
  {
    name: 'node hints: only the endpoint hinted for this node',
    from: 'topology.go topologyModeFromHints (PreferSameTrafficDistribution)',
    objects: [
      node('z1'),
      service({ trafficDistribution: 'PreferSameNode' }),
      slice('web-1', [
        ep('10.244.1.1', { ...A, nodes: ['node-a'], zones: ['z1'] }),
        ep('10.244.2.1', { ...B, nodes: ['node-b'], zones: ['z1'] }),
        ep('10.244.3.1', { ...C, nodes: ['node-c'], zones: ['z2'] }),
      ]),
    ],
    sets: { ...clusterOnly(a1), topology: 'PreferSameNode' },
    verdicts: { [CIP]: clusterIP(a1) },
  },
  {
    name: 'node hints naming other nodes only: zone hints apply',
    from: 'topology.go topologyModeFromHints ("no hints were provided for node")',
    objects: [
      node('z1'),
      service({ trafficDistribution: 'PreferSameNode' }),
      slice('web-1', [
        ep('10.244.1.1', { ...A, nodes: ['node-d'], zones: ['z1'] }),
        ep('10.244.2.1', { ...B, nodes: ['node-b'], zones: ['z1'] }),
        ep('10.244.3.1', { ...C, nodes: ['node-c'], zones: ['z2'] }),
      ]),
    ],
    sets: { ...clusterOnly(`${a1} ${b1}`), topology: 'PreferSameZone' },
    verdicts: { [CIP]: clusterIP(`${a1} ${b1}`) },
  },
  {
    name: 'a ready endpoint without a node hint: zone hints apply',
    from: 'topology.go topologyModeFromHints ("one or more endpoints is missing a node hint")',
    objects: [
      node('z1'),
      service(),
      slice('web-1', [
        ep('10.244.1.1', { ...A, nodes: ['node-a'], zones: ['z1'] }),
        ep('10.244.2.1', { ...B, zones: ['z1'] }),
        ep('10.244.3.1', { ...C, nodes: ['node-c'], zones: ['z2'] }),
      ]),
    ],
    sets: { ...clusterOnly(`${a1} ${b1}`), topology: 'PreferSameZone' },
    verdicts: { [CIP]: clusterIP(`${a1} ${b1}`) },
  },

  // -- Local traffic policies ------------------------------------------------
  {
    name: 'externalTrafficPolicy Local: hints filter the cluster set, never the local set',
    from: 'topology_test "externalTrafficPolicy: Local, topology ignored for Local endpoints", "conflicting topology and localness require merging allEndpoints"',
    objects: [
      node('z1'),
      service({ type: 'NodePort', etp: 'Local' }),
      slice('web-1', [
        ep('10.244.1.1', { ...A, zones: ['z1'] }),
        ep('10.244.1.2', { ...A, zones: ['z2'] }),
        ep('10.244.2.1', { ...B, zones: ['z3'] }),
        ep('10.244.3.1', { ...C, zones: ['z1'] }),
      ]),
    ],
    sets: {
      cluster: `${a1} ${c1}`,
      clusterPolicy: `${a1} ${c1}`,
      local: `${a1} ${a2}`,
      external: `${a1} ${a2}`,
      all: `${a1} ${a2} ${c1}`,
      hasAny: true,
      topology: 'PreferSameZone',
    },
    verdicts: {
      [CIP]: clusterIP(`${a1} ${c1}`),
      [NP]: { pod: `dnat ${a1} ${c1}`, node: `masq ${a1} ${c1}`, external: `dnat ${a1} ${a2}` },
    },
  },
  {
    name: 'internalTrafficPolicy Local: ClusterIP to local endpoints (no hints), NodePort to the cluster set',
    from: 'topology_test "internalTrafficPolicy: Local, topology ignored for Local endpoints"',
    objects: [
      node('z1'),
      service({ type: 'NodePort', itp: 'Local' }),
      slice('web-1', [
        ep('10.244.1.1', { ...A, zones: ['z1'] }),
        ep('10.244.1.2', { ...A, zones: ['z2'] }),
        ep('10.244.2.1', { ...B, zones: ['z3'] }),
        ep('10.244.3.1', { ...C, zones: ['z1'] }),
      ]),
    ],
    sets: {
      cluster: `${a1} ${a2}`,
      clusterPolicy: `${a1} ${c1}`,
      local: `${a1} ${a2}`,
      external: `${a1} ${c1}`,
      all: `${a1} ${a2} ${c1}`,
      hasAny: true,
      topology: 'PreferSameZone',
    },
    verdicts: {
      [CIP]: clusterIP(`${a1} ${a2}`),
      [NP]: every(`masq ${a1} ${c1}`),
    },
  },
  {
    name: 'internalTrafficPolicy Local on an internal-only Service: no cluster set at all',
    from: 'topology_test "no cluster endpoints for iTP:Local internal-only service"',
    objects: [service({ itp: 'Local' }), slice('web-1', [ep('10.244.2.1', B), ep('10.244.1.1', A)])],
    sets: { cluster: a1, clusterPolicy: '', local: a1, external: '', all: a1, hasAny: true },
    verdicts: { [CIP]: clusterIP(a1) },
  },
  {
    name: 'internalTrafficPolicy Local with only remote endpoints drops ClusterIP traffic',
    from: 'topology_test "internalTrafficPolicy: Local, but all endpoints are remote"; nftables proxier.go internalTrafficFilterVerdict "drop"',
    objects: [service({ itp: 'Local' }), slice('web-1', [ep('10.244.2.1', B), ep('10.244.3.1', C)])],
    sets: { cluster: '', clusterPolicy: '', local: '', external: '', all: '', hasAny: true },
    verdicts: { [CIP]: every('drop') },
  },
  {
    name: 'internalTrafficPolicy Local with no endpoints anywhere rejects, it does not drop',
    from: 'topology_test "internalTrafficPolicy: Local, with empty endpoints"; nftables proxier.go (!hasEndpoints: reject)',
    objects: [service({ itp: 'Local' }), slice('web-1', [])],
    sets: { cluster: '', clusterPolicy: '', local: '', external: '', all: '', hasAny: false },
    verdicts: { [CIP]: every('reject') },
  },
  {
    name: 'both policies Local, only remote terminating endpoints: internal drops, pods and the node short-circuit',
    from: 'topology_test "iTP: Local, eTP: Local, PTE enabled, all endpoints remote and terminating"',
    objects: [
      service({ type: 'NodePort', itp: 'Local', etp: 'Local' }),
      slice('web-1', [ep('10.244.2.1', { ...B, ...TERMINATING }), ep('10.244.3.1', { ...C, ...TERMINATING })]),
    ],
    sets: { cluster: '', clusterPolicy: `${b1} ${c1}`, local: '', external: '', all: `${b1} ${c1}`, hasAny: true },
    verdicts: {
      [CIP]: every('drop'),
      [NP]: { pod: `dnat ${b1} ${c1}`, node: `masq ${b1} ${c1}`, external: 'drop' },
    },
  },
  {
    name: "externalTrafficPolicy Local falls back to this node's serving+terminating endpoints",
    from: 'topology_test "iTP: Cluster, eTP: Local, PTE enabled, with terminating endpoints"',
    objects: [
      service({ type: 'NodePort', etp: 'Local' }),
      slice('web-1', [
        ep('10.244.2.1', B),
        ep('10.244.1.1', { ...A, ready: false, serving: false }),
        ep('10.244.1.2', { ...A, ...TERMINATING }),
        ep('10.244.3.1', { ...C, ...TERMINATING }),
      ]),
    ],
    sets: { cluster: b1, clusterPolicy: b1, local: a2, external: a2, all: `${a2} ${b1}`, hasAny: true },
    verdicts: {
      [CIP]: clusterIP(b1),
      [NP]: { pod: `dnat ${b1}`, node: `masq ${b1}`, external: `dnat ${a2}` },
    },
  },
  {
    name: 'a local endpoint that is terminating but not serving is not a fallback: external traffic drops',
    from: 'topology.go CategorizeEndpoints (IsServing && IsTerminating)',
    objects: [
      service({ type: 'NodePort', etp: 'Local' }),
      slice('web-1', [ep('10.244.2.1', B), ep('10.244.1.1', { ...A, ready: false, serving: false, terminating: true })]),
    ],
    sets: { cluster: b1, clusterPolicy: b1, local: '', external: '', all: b1, hasAny: true },
    verdicts: {
      [CIP]: clusterIP(b1),
      [NP]: { pod: `dnat ${b1}`, node: `masq ${b1}`, external: 'drop' },
    },
  },
  {
    name: 'externalTrafficPolicy is ignored on a Service nothing outside can reach',
    from: 'topology_test "externalTrafficPolicy ignored if not externally accessible"; pkg/api/v1/service ExternalPolicyLocal',
    objects: [service({ etp: 'Local' }), slice('web-1', [ep('10.244.2.1', B), ep('10.244.1.1', A)])],
    sets: clusterOnly(`${a1} ${b1}`),
    verdicts: { [CIP]: clusterIP(`${a1} ${b1}`) },
  },

  // -- Per family ------------------------------------------------------------
  {
    name: 'dual-stack: selection and fallback are decided per family',
    from: 'kube-proxy runs one proxier (and one CategorizeEndpoints) per IP family',
    families: ['IPv4', 'IPv6'],
    objects: [
      service({ clusterIPs: ['10.96.0.10', 'fd00:10:96::a'] }),
      slice('web-4', [ep('10.244.1.1', A), ep('10.244.2.1', { ...B, ...TERMINATING })]),
      slice('web-6', [ep('fd00:10:244:2::1', { ...B, ...TERMINATING }), ep('fd00:10:244:3::1', { ...C, ready: false })], { addressType: 'IPv6' }),
    ],
    sets: { ...clusterOnly(`${a1} [fd00:10:244:2::1]:8080`), hasAny: { IPv4: true, IPv6: true } },
    verdicts: {
      [CIP]: clusterIP(a1),
      'clusterIP [fd00:10:96::a]:80/TCP': clusterIP('[fd00:10:244:2::1]:8080'),
    },
  },
];

for (const c of cases) test(`${c.name} [${c.from}]`, () => runCase(c));

test('the table covers at least 25 rows', () => expect(cases.length, `${cases.length} rows`).toBeGreaterThanOrEqual(25));

test("a change of this node's zone label reselects endpoints on the next incremental build", () => {
  const cache = new ClusterCache();
  for (const raw of [node('z1'), service(), slice('web-1', [ep('10.244.1.1', { ...A, zones: ['z1'] }), ep('10.244.2.1', { ...B, zones: ['z2'] })])]) {
    cache.apply(parse(raw));
  }
  const builder = new SnapshotBuilder({ cache, nodeName: 'node-a' });
  const first = builder.build('all');
  builder.commit(first);
  expect(eps(first.servicePorts.get('default/web:http/TCP')!.clusterEndpoints)).toBe(a1);
  cache.apply(parse(node('z2')));
  const second = builder.build(new Set()); // no Service changed: only the Node did
  expect(second.changed).toStrictEqual(new Set(['default/web:http/TCP']));
  expect(eps(second.servicePorts.get('default/web:http/TCP')!.clusterEndpoints)).toBe(b1);
  builder.commit(second);
  const third = builder.build(new Set());
  expect(third.changed, 'once committed, the same zone rebuilds nothing').toStrictEqual(new Set());
});

test('a change of hints alone is a change of the ServicePort', () => {
  const cache = new ClusterCache();
  cache.apply(parse(node('z1')));
  cache.apply(parse(service()));
  cache.apply(parse(slice('web-1', [ep('10.244.1.1', { ...A, zones: ['z1'] }), ep('10.244.2.1', { ...B, zones: ['z1'] })])));
  const builder = new SnapshotBuilder({ cache, nodeName: 'node-a' });
  builder.commit(builder.build('all'));
  cache.apply(parse(slice('web-1', [ep('10.244.1.1', { ...A, zones: ['z1'] }), ep('10.244.2.1', { ...B, zones: ['z2'] })])));
  const snap = builder.build(new Set(['default/web']));
  expect(snap.changed).toStrictEqual(new Set(['default/web:http/TCP']));
  expect(eps(snap.servicePorts.get('default/web:http/TCP')!.clusterEndpoints)).toBe(a1);
});
