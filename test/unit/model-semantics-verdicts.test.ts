// Verdicts, table-driven: for every frontend of a Service (ClusterIP,
// NodePort, ExternalIP, LoadBalancer IP) and every traffic source (a pod, a
// process on node-a, a client outside the cluster), what kube-proxy's
// nftables/iptables rules do with a new connection: DNAT to which endpoints,
// masquerade or not, REJECT, or DROP. Rows restate the packet-flow tests of
// kube-proxy's pkg/proxy/nftables/proxier_test.go (TestClusterIPGeneral,
// TestLoadBalancer, TestNodePorts, TestExternalTrafficPolicyLocal/Cluster,
// TestNoEndpointsReject, TestOverallNFTablesRules) and the decisions in
// nftables/proxier.go syncProxyRules. Notation: model-semantics-fixtures.ts.

import { expect, test } from 'vitest';
import { decide, frontendsOf, masqueradeFor, verdicts } from '../../src/model/verdict.ts';
import type { EndpointInfo, ServicePortSpec } from '../../src/model/types.ts';
import { TERMINATING, every, ep, node, options, runCase, service, showVerdict, slice, type Case } from './model-semantics-fixtures.ts';

const CIP = 'clusterIP 10.96.0.10:80/TCP';
const NP = 'nodePort *:30080/TCP';
const EIP = 'externalIP 192.0.2.10:80/TCP';
const LB1 = 'loadBalancer 198.51.100.1:80/TCP';
const LB2 = 'loadBalancer 198.51.100.2:80/TCP';
const [a1, b1, c1] = ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.3.1:8080'];
const A = { node: 'node-a' };
const B = { node: 'node-b' };
const C = { node: 'node-c' };
/** One endpoint on this node and one on node-b. */
const localAndRemote = () => slice('web-1', [ep('10.244.1.1', A), ep('10.244.2.1', B)]);
const remoteOnly = () => slice('web-1', [ep('10.244.2.1', B), ep('10.244.3.1', C)]);
const AB = `${a1} ${b1}`;
/** The Service with this status.loadBalancer.ingress. */
const withIngress = (svc: Record<string, unknown>, ingress: Record<string, unknown>[]) => ({ ...svc, status: { loadBalancer: { ingress } } });
const BC = `${b1} ${c1}`;

const cases: Case[] = [
  // -- ClusterIP -----------------------------------------------------------
  {
    name: 'ClusterIP: pods keep their source, the node and off-cluster clients are masqueraded',
    from: 'nftables proxier.go "ip saddr != <cluster CIDR> jump mark-for-masquerade"; proxier_test TestClusterIPGeneral',
    objects: [service(), localAndRemote()],
    verdicts: { [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` } },
  },
  {
    name: 'ClusterIP without a local-traffic detector (no cluster CIDR): nothing is masqueraded',
    from: 'nftables proxier.go (localDetector.IsImplemented() false: no masquerade rule)',
    objects: [service(), localAndRemote()],
    opts: { clusterCIDRs: [] },
    verdicts: { [CIP]: every(`dnat ${AB}`) },
  },
  {
    name: 'masqueradeAll masquerades every ClusterIP connection, pods included',
    from: 'nftables proxier.go (masqueradeAll: jump mark-for-masquerade on the ClusterIP)',
    objects: [service(), localAndRemote()],
    opts: { masqueradeAll: true },
    verdicts: { [CIP]: every(`masq ${AB}`) },
  },
  {
    name: 'masqueradeAll applies to internalTrafficPolicy Local too',
    from: 'nftables proxier.go (the masquerade rule sits in the internal traffic chain)',
    objects: [service({ itp: 'Local' }), localAndRemote()],
    opts: { masqueradeAll: true },
    verdicts: { [CIP]: every(`masq ${a1}`) },
  },
  {
    name: 'ClusterIP with no endpoints rejects every source',
    from: 'proxier_test TestNoEndpointsReject "pod to cluster IP with no endpoints"',
    objects: [service(), slice('web-1', [])],
    verdicts: { [CIP]: every('reject') },
  },

  // -- NodePort ------------------------------------------------------------
  {
    name: 'NodePort with externalTrafficPolicy Cluster: every source masqueraded, all endpoints',
    from: 'proxier_test TestExternalTrafficPolicyCluster, TestNodePorts "node to nodePort"',
    objects: [service({ type: 'NodePort' }), localAndRemote()],
    verdicts: { [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` }, [NP]: every(`masq ${AB}`) },
  },
  {
    name: 'NodePort with no endpoints rejects on the NodePort as on the ClusterIP',
    from: 'proxier_test TestNoEndpointsReject "external to NodePort with no endpoints"',
    objects: [service({ type: 'NodePort' })],
    verdicts: { [CIP]: every('reject'), [NP]: every('reject') },
  },
  {
    name: 'NodePort with externalTrafficPolicy Local: outside clients reach local endpoints unmasqueraded',
    from: 'proxier_test TestExternalTrafficPolicyLocal "external to NodePort hits only local endpoint, unmasqueraded"',
    objects: [service({ type: 'NodePort', etp: 'Local' }), localAndRemote()],
    verdicts: {
      [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` },
      [NP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `dnat ${a1}` },
    },
  },
  {
    name: 'externalTrafficPolicy Local with no local endpoint: outside clients dropped, pods and the node short-circuited',
    from: 'nftables proxier.go externalTrafficFilterVerdict "drop" and the "short-circuit pod/local traffic" rules',
    objects: [service({ type: 'NodePort', etp: 'Local' }), remoteOnly()],
    verdicts: {
      [CIP]: { pod: `dnat ${BC}`, node: `masq ${BC}`, external: `masq ${BC}` },
      [NP]: { pod: `dnat ${BC}`, node: `masq ${BC}`, external: 'drop' },
    },
  },
  {
    name: 'externalTrafficPolicy Local without a pod detector: pods get no short-circuit and are dropped too',
    from: 'nftables proxier.go (the pod short-circuit rule exists only with a local-traffic detector)',
    objects: [service({ type: 'NodePort', etp: 'Local' }), remoteOnly()],
    opts: { clusterCIDRs: [] },
    verdicts: {
      [CIP]: every(`dnat ${BC}`),
      [NP]: { pod: 'drop', node: `masq ${BC}`, external: 'drop' },
    },
  },
  {
    name: 'externalTrafficPolicy Local with no endpoints anywhere rejects rather than drops',
    from: 'nftables proxier.go (!hasEndpoints: both filter verdicts are the reject chain)',
    objects: [service({ type: 'NodePort', etp: 'Local' }), slice('web-1', [ep('10.244.2.1', { ...B, ready: false })])],
    verdicts: { [CIP]: every('reject'), [NP]: every('reject') },
  },
  {
    name: 'masqueradeAll does not masquerade outside clients of an externalTrafficPolicy Local NodePort',
    from: 'nftables proxier.go (masqueradeAll only touches the ClusterIP rule)',
    objects: [service({ type: 'NodePort', etp: 'Local' }), localAndRemote()],
    opts: { masqueradeAll: true },
    verdicts: { [CIP]: every(`masq ${AB}`), [NP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `dnat ${a1}` } },
  },
  {
    name: 'NodePort with only terminating endpoints sends to them, masqueraded',
    from: 'topology.go CategorizeEndpoints fallback; nftables proxier.go external chain',
    objects: [service({ type: 'NodePort' }), slice('web-1', [ep('10.244.2.1', { ...B, ...TERMINATING })])],
    verdicts: { [CIP]: { pod: `dnat ${b1}`, node: `masq ${b1}`, external: `masq ${b1}` }, [NP]: every(`masq ${b1}`) },
  },
  {
    name: 'internalTrafficPolicy Local with nothing local: ClusterIP drops, the NodePort (Cluster) still serves',
    from: 'nftables proxier.go ("traffic to the clusterIP will be dropped, but external traffic may still be accepted")',
    objects: [service({ type: 'NodePort', itp: 'Local' }), remoteOnly()],
    verdicts: { [CIP]: every('drop'), [NP]: every(`masq ${BC}`) },
  },

  // -- ExternalIPs -----------------------------------------------------------
  {
    name: 'ExternalIPs on a ClusterIP Service: external frontends, masqueraded with Cluster policy',
    from: 'proxier_test TestExternalTrafficPolicyCluster "external to external IP hits both endpoints, masqueraded"',
    objects: [service({ externalIPs: ['192.0.2.10'] }), localAndRemote()],
    verdicts: { [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` }, [EIP]: every(`masq ${AB}`) },
  },
  {
    name: 'ExternalIPs make externalTrafficPolicy Local apply to a ClusterIP Service',
    from: 'pkg/api/v1/service ExternallyAccessible (ClusterIP with ExternalIPs); TestExternalTrafficPolicyLocal "external to external IP"',
    objects: [service({ externalIPs: ['192.0.2.10'], etp: 'Local' }), localAndRemote()],
    verdicts: {
      [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` },
      [EIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `dnat ${a1}` },
    },
  },
  {
    name: 'an ExternalIP or LoadBalancer IP of a family the Service has no ClusterIP of is not a frontend',
    from: "serviceport.go newBaseServiceInfo (ExternalIPs and LB IPs filtered to the proxier's family)",
    objects: [service({ type: 'LoadBalancer', externalIPs: ['2001:db8::10', '192.0.2.10'], lb: ['2001:db8:1::1', '198.51.100.1'] }), localAndRemote()],
    verdicts: {
      [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` },
      [NP]: every(`masq ${AB}`),
      [EIP]: every(`masq ${AB}`),
      [LB1]: every(`masq ${AB}`),
    },
  },

  // -- LoadBalancer ----------------------------------------------------------
  {
    name: 'LoadBalancer with Cluster policy: ClusterIP, NodePort, ExternalIP and LB IP, external ones masqueraded',
    from: 'proxier_test TestExternalTrafficPolicyCluster',
    objects: [service({ type: 'LoadBalancer', externalIPs: ['192.0.2.10'], lb: ['198.51.100.1'] }), localAndRemote()],
    verdicts: {
      [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` },
      [NP]: every(`masq ${AB}`),
      [EIP]: every(`masq ${AB}`),
      [LB1]: every(`masq ${AB}`),
    },
  },
  {
    name: 'LoadBalancer with Local policy: outside clients to local endpoints, pods to all, the node masqueraded',
    from: 'proxier_test TestExternalTrafficPolicyLocal',
    objects: [service({ type: 'LoadBalancer', etp: 'Local', externalIPs: ['192.0.2.10'], lb: ['198.51.100.1'], healthCheckNodePort: 31000 }), localAndRemote()],
    verdicts: {
      [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` },
      [NP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `dnat ${a1}` },
      [EIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `dnat ${a1}` },
      [LB1]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `dnat ${a1}` },
    },
  },
  {
    name: 'LoadBalancer with Local policy and no local endpoint drops outside clients on every external frontend',
    from: 'proxier_test TestOverallNFTablesRules svc2 (no-endpoint-services/nodeports "drop")',
    objects: [service({ type: 'LoadBalancer', etp: 'Local', externalIPs: ['192.0.2.10'], lb: ['198.51.100.1'] }), remoteOnly()],
    verdicts: {
      [CIP]: { pod: `dnat ${BC}`, node: `masq ${BC}`, external: `masq ${BC}` },
      [NP]: { pod: `dnat ${BC}`, node: `masq ${BC}`, external: 'drop' },
      [EIP]: { pod: `dnat ${BC}`, node: `masq ${BC}`, external: 'drop' },
      [LB1]: { pod: `dnat ${BC}`, node: `masq ${BC}`, external: 'drop' },
    },
  },
  {
    name: 'LoadBalancer with no endpoints rejects on every frontend',
    from: 'proxier_test TestNoEndpointsReject',
    objects: [service({ type: 'LoadBalancer', externalIPs: ['192.0.2.10'], lb: ['198.51.100.1'] })],
    verdicts: { [CIP]: every('reject'), [NP]: every('reject'), [EIP]: every('reject'), [LB1]: every('reject') },
  },
  {
    name: 'ingress with ipMode Proxy and hostname-only ingress are not frontends',
    from: 'serviceport.go newBaseServiceInfo (IsVIPMode; ing.IP == "" skipped)',
    objects: [
      withIngress(service({ type: 'LoadBalancer' }), [{ ip: '198.51.100.1' }, { ip: '198.51.100.9', ipMode: 'Proxy' }, { hostname: 'lb.example.com' }]),
      localAndRemote(),
    ],
    verdicts: {
      [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` },
      [NP]: every(`masq ${AB}`),
      [LB1]: every(`masq ${AB}`),
    },
  },
  {
    name: 'loadBalancerSourceRanges: outside sources dropped on LB IPs (pods too), NodePort not filtered',
    from: 'proxier_test TestLoadBalancer; nftables proxier.go firewall chain',
    objects: [
      service({ type: 'LoadBalancer', lb: ['198.51.100.1', '198.51.100.2'], sourceRanges: ['198.18.0.0/15', ' 203.0.113.0/25'] }),
      slice('web-1', [ep('10.244.2.1', B)]),
    ],
    verdicts: {
      [CIP]: { pod: `dnat ${b1}`, node: `masq ${b1}`, external: `masq ${b1}` },
      [NP]: { pod: `masq ${b1}`, node: `masq ${b1}`, external: `masq ${b1}`, 'external@203.0.113.130': `masq ${b1}` },
      [LB1]: {
        pod: `masq ${b1}`,
        node: `masq ${b1}`,
        external: `masq ${b1}`,
        'external@203.0.113.2': `masq ${b1}`,
        'external@203.0.113.130': 'drop:source',
        'pod@10.244.1.9': 'drop:source',
        'node@198.18.0.1': `masq ${b1}`,
        'node@198.51.100.1': `masq ${b1}`, // the node SNATed to its own VIP: allowed because a range holds the node IP
      },
      [LB2]: { pod: `masq ${b1}`, node: `masq ${b1}`, external: `masq ${b1}`, 'external@203.0.113.130': 'drop:source', 'node@198.51.100.2': `masq ${b1}` },
    },
  },
  {
    name: "loadBalancerSourceRanges without the node's address: the node and its VIPs as sources are dropped",
    from: 'nftables proxier.go firewall chain (allowFromNode only when a range contains the node IP)',
    objects: [service({ type: 'LoadBalancer', lb: ['198.51.100.1'], sourceRanges: ['203.0.113.0/25'] }), slice('web-1', [ep('10.244.2.1', B)])],
    verdicts: {
      [CIP]: { pod: `dnat ${b1}`, node: `masq ${b1}`, external: `masq ${b1}` },
      [NP]: every(`masq ${b1}`),
      [LB1]: { pod: `masq ${b1}`, node: `masq ${b1}`, external: `masq ${b1}`, 'node@198.18.0.1': 'drop:source', 'node@198.51.100.1': 'drop:source' },
    },
  },
  {
    name: 'loadBalancerSourceRanges filter before the no-endpoints reject',
    from: 'nftables proxier.go (firewall-check runs in filter-prerouting-pre-dnat, reject in filter-input/forward)',
    objects: [service({ type: 'LoadBalancer', lb: ['198.51.100.1'], sourceRanges: ['203.0.113.0/25'] })],
    verdicts: {
      [CIP]: every('reject'),
      [NP]: every('reject'),
      [LB1]: { ...every('reject'), 'external@203.0.113.2': 'reject', 'external@203.0.113.130': 'drop:source' },
    },
  },
  {
    name: 'loadBalancerSourceRanges of the other family leave an IPv4 LB IP unfiltered',
    from: 'serviceport.go newBaseServiceInfo (MapCIDRsByIPFamily); usesFWChain needs ranges of the family',
    objects: [service({ type: 'LoadBalancer', lb: ['198.51.100.1'], sourceRanges: ['2001:db8::/32'] }), slice('web-1', [ep('10.244.2.1', B)])],
    verdicts: {
      [CIP]: { pod: `dnat ${b1}`, node: `masq ${b1}`, external: `masq ${b1}` },
      [NP]: every(`masq ${b1}`),
      [LB1]: { ...every(`masq ${b1}`), 'external@203.0.113.130': `masq ${b1}` },
    },
  },
  {
    name: 'loadBalancerSourceRanges with Local policy: allowed outside clients reach local endpoints',
    from: 'nftables proxier.go (firewall chain, then the external chain)',
    objects: [service({ type: 'LoadBalancer', etp: 'Local', lb: ['198.51.100.1'], sourceRanges: ['203.0.113.0/25'] }), localAndRemote()],
    verdicts: {
      [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` },
      [NP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `dnat ${a1}` },
      [LB1]: {
        pod: `dnat ${AB}`,
        node: `masq ${AB}`,
        external: `dnat ${a1}`,
        'external@203.0.113.2': `dnat ${a1}`,
        'external@203.0.113.200': 'drop:source',
        'pod@10.244.1.9': 'drop:source',
      },
    },
  },

  // -- Topology on external frontends -----------------------------------------
  {
    name: 'zone hints apply to external traffic under Cluster policy too',
    from: 'topology.go (clusterEndpoints are shared by the internal and external chains)',
    objects: [
      node('z1'),
      service({ type: 'NodePort' }),
      slice('web-1', [ep('10.244.2.1', { ...B, zones: ['z1'] }), ep('10.244.3.1', { ...C, zones: ['z2'] })]),
    ],
    verdicts: { [CIP]: { pod: `dnat ${b1}`, node: `masq ${b1}`, external: `masq ${b1}` }, [NP]: every(`masq ${b1}`) },
  },

  // -- Protocols and families -----------------------------------------------------
  {
    name: 'a UDP port is its own ServicePort, with UDP frontends and the UDP slice port',
    from: 'proxier_test TestClusterIPGeneral "clusterIP with TCP, UDP, and SCTP on same port"',
    port: 'default/dns:dns-udp/UDP',
    objects: [
      service(
        {
          type: 'NodePort',
          ports: [
            { name: 'dns-udp', port: 53, protocol: 'UDP', nodePort: 30053 },
            { name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: 30053 },
            { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
          ],
        },
        'dns',
      ),
      slice('dns-1', [ep('10.244.2.1', B)], {
        service: 'dns',
        ports: [
          { name: 'dns-udp', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 5353, protocol: 'TCP' },
          { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
        ],
      }),
    ],
    verdicts: {
      'clusterIP 10.96.0.10:53/UDP': { pod: 'dnat 10.244.2.1:53', node: 'masq 10.244.2.1:53', external: 'masq 10.244.2.1:53' },
      'nodePort *:30053/UDP': every('masq 10.244.2.1:53'),
    },
  },
  {
    name: 'an SCTP port without a nodePort has only its ClusterIP frontend',
    from: 'proxier_test TestClusterIPGeneral (SCTP); serviceport.go (NodePort() 0: none)',
    port: 'default/dns:dns-sctp/SCTP',
    objects: [
      service(
        {
          ports: [
            { name: 'dns-udp', port: 53, protocol: 'UDP' },
            { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
          ],
        },
        'dns',
      ),
      slice('dns-1', [ep('10.244.2.1', B)], {
        service: 'dns',
        ports: [
          { name: 'dns-udp', port: 53, protocol: 'UDP' },
          { name: 'dns-sctp', port: 5353, protocol: 'SCTP' },
        ],
      }),
    ],
    verdicts: { 'clusterIP 10.96.0.10:53/SCTP': { pod: 'dnat 10.244.2.1:5353', node: 'masq 10.244.2.1:5353', external: 'masq 10.244.2.1:5353' } },
  },
  {
    name: 'dual-stack NodePort: frontends per family, a family without endpoints rejects on its own',
    from: 'kube-proxy runs one proxier per family (hasEndpoints is per family)',
    families: ['IPv4', 'IPv6'],
    objects: [service({ type: 'NodePort', clusterIPs: ['10.96.0.10', 'fd00:10:96::a'] }), localAndRemote()],
    verdicts: {
      [CIP]: { pod: `dnat ${AB}`, node: `masq ${AB}`, external: `masq ${AB}` },
      [NP]: every(`masq ${AB}`),
      'clusterIP [fd00:10:96::a]:80/TCP': every('reject'),
      'nodePort [*]:30080/TCP': every('reject'),
    },
  },
  {
    name: 'the local-traffic detector is per family: no IPv6 cluster CIDR, no IPv6 ClusterIP masquerade or pod short-circuit',
    from: 'nftables proxier.go (one localDetector per family proxier)',
    families: ['IPv4', 'IPv6'],
    opts: { clusterCIDRs: ['10.244.0.0/16'] },
    objects: [
      service({ type: 'NodePort', etp: 'Local', clusterIPs: ['fd00:10:96::a', '10.96.0.10'] }),
      slice('web-4', [ep('10.244.2.1', B)]),
      slice('web-6', [ep('fd00:10:244:2::1', B)], { addressType: 'IPv6' }),
    ],
    verdicts: {
      'clusterIP [fd00:10:96::a]:80/TCP': every('dnat [fd00:10:244:2::1]:8080'),
      'nodePort [*]:30080/TCP': { pod: 'drop', node: 'masq [fd00:10:244:2::1]:8080', external: 'drop' },
      [CIP]: { pod: `dnat ${b1}`, node: `masq ${b1}`, external: `masq ${b1}` },
      [NP]: { pod: `dnat ${b1}`, node: `masq ${b1}`, external: 'drop' },
    },
  },
];

for (const c of cases) test(`${c.name} [${c.from}]`, () => runCase(c));

test('the table covers at least 25 rows', () => expect(cases.length, `${cases.length} rows`).toBeGreaterThanOrEqual(25));

// -- Outside the table ---------------------------------------------------------

const endpoint = (ip: string, isLocal = false): EndpointInfo => ({
  ip,
  port: 8080,
  nodeName: isLocal ? 'node-a' : 'node-b',
  zone: null,
  ready: true,
  serving: true,
  terminating: false,
  isLocal,
});

test('hairpin: a pod reaching itself through its Service is masqueraded even where the verdict is not', () => {
  const sp: ServicePortSpec = {
    id: 'default/web:http/TCP',
    namespace: 'default',
    name: 'web',
    portName: 'http',
    protocol: 'TCP',
    clusterIPs: ['10.96.0.10'],
    port: 80,
    endpoints: [endpoint('10.244.1.1', true)],
    clusterEndpoints: [endpoint('10.244.1.1', true)],
  };
  const [frontend] = frontendsOf(sp);
  const v = decide(sp, frontend!, 'pod', options());
  expect(showVerdict(v)).toBe('dnat 10.244.1.1:8080');
  if (v.action !== 'dnat') throw new Error('expected dnat');
  expect(masqueradeFor(v, v.endpoints[0]!, '10.244.1.1'), 'source is the chosen endpoint').toBe(true);
  expect(masqueradeFor(v, v.endpoints[0]!, '10.244.1.7')).toBe(false);
});

test('a hand-made ServicePortSpec (derived fields left out) reads as a ClusterIP Service with Cluster policy', () => {
  const sp: ServicePortSpec = {
    id: 'ns/s:/TCP',
    namespace: 'ns',
    name: 's',
    portName: '',
    protocol: 'TCP',
    clusterIPs: ['10.96.0.1'],
    port: 80,
    endpoints: [endpoint('10.244.1.1', true), endpoint('10.244.2.1')],
    clusterEndpoints: [endpoint('10.244.1.1', true), endpoint('10.244.2.1')],
  };
  const table = verdicts(sp, options());
  expect(table.map((r) => [r.frontend.kind, r.allowedSources, showVerdict(r.pod), showVerdict(r.node)])).toStrictEqual([
    ['clusterIP', null, 'dnat 10.244.1.1:8080 10.244.2.1:8080', 'masq 10.244.1.1:8080 10.244.2.1:8080'],
  ]);
  const empty: ServicePortSpec = { ...sp, endpoints: [], clusterEndpoints: [] };
  expect(showVerdict(decide(empty, frontendsOf(empty)[0]!, 'pod', options()))).toBe('reject');
});

test('allowedSources lists the ranges of the frontend family, plus the VIPs when a range holds a node address', () => {
  const sp = {
    id: 'default/web:http/TCP',
    namespace: 'default',
    name: 'web',
    portName: 'http',
    protocol: 'TCP' as const,
    clusterIPs: ['10.96.0.10'],
    port: 80,
    endpoints: [],
    clusterEndpoints: [],
    loadBalancerIPs: ['198.51.100.1'],
    loadBalancerSourceRanges: ['198.18.0.0/15', '2001:db8::/32'],
  };
  const [, lb] = verdicts(sp, options());
  expect(lb?.frontend.kind).toBe('loadBalancer');
  expect(lb?.allowedSources).toStrictEqual(['198.18.0.0/15', '198.51.100.1/32']);
  expect(verdicts(sp, options({ nodeIPs: ['192.168.0.2'] }))[1]?.allowedSources).toStrictEqual(['198.18.0.0/15']);
});
