import { expect, test } from 'vitest';
import { parseObject, ValidationError, type EndpointSlice, type ParseResult, type Service } from '../../src/sources/objects.ts';

function svc(spec: Record<string, unknown>, meta: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default', ...meta }, spec };
}

function slice(body: Record<string, unknown>, labels: Record<string, unknown> = { 'kubernetes.io/service-name': 'web' }) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-abc', namespace: 'default', labels },
    addressType: 'IPv4',
    ...body,
  };
}

function errorOf(r: ParseResult): ValidationError {
  expect(r.status, `expected invalid, got ${JSON.stringify(r)}`).toBe('invalid');
  if (r.status !== 'invalid') throw new Error('unreachable');
  expect(r.error).toBeInstanceOf(ValidationError);
  return r.error;
}

function validService(r: ParseResult): Service {
  expect(r.status, JSON.stringify(r)).toBe('valid');
  if (r.status !== 'valid' || r.object.kind !== 'Service') throw new Error('not a valid Service');
  return r.object;
}

function validSlice(r: ParseResult): EndpointSlice {
  expect(r.status, JSON.stringify(r)).toBe('valid');
  if (r.status !== 'valid' || r.object.kind !== 'EndpointSlice') throw new Error('not a valid EndpointSlice');
  return r.object;
}

test('a valid Service gets API defaults: type, protocol, targetPort', () => {
  const s = validService(parseObject(svc({ clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] }, { namespace: undefined })));
  expect(s).toStrictEqual({
    kind: 'Service',
    namespace: 'default',
    name: 'web',
    key: 'default/web',
    type: 'ClusterIP',
    clusterIPs: ['10.96.0.10'],
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 80, nodePort: null }],
    externalIPs: [],
    loadBalancerIngress: [],
    sessionAffinity: null,
    lbAlgorithm: null,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    healthCheckNodePort: null,
    loadBalancerSourceRanges: [],
    trafficDistribution: null,
  });
});

test('a bad port names the object and the field path', () => {
  const e = errorOf(
    parseObject(
      svc({
        clusterIP: '10.96.0.10',
        ports: [
          { name: 'a', port: 80 },
          { name: 'b', port: 'http' },
        ],
      }),
    ),
  );
  expect(e.message).toBe('Service default/web: spec.ports[1].port: must be an integer 1-65535, got "http"');
  expect(e.object).toBe('Service default/web');
  expect(e.field).toBe('spec.ports[1].port');
  expect(e.code).toBe('ERR_SY_INVALID_OBJECT');
});

test('validation messages for other Service fields', () => {
  const cases: [Record<string, unknown>, string][] = [
    [svc({ clusterIP: '10.96.0.300', ports: [{ port: 80 }] }), 'Service default/web: spec.clusterIP: must be a valid IP address, got "10.96.0.300"'],
    [
      svc({ clusterIPs: ['10.96.0.1', 'fd00::zz'], ports: [{ port: 80 }] }),
      'Service default/web: spec.clusterIPs[1]: must be a valid IP address, got "fd00::zz"',
    ],
    [
      svc({ clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.2'], ports: [{ port: 80 }] }),
      'Service default/web: spec.clusterIPs[0]: must equal spec.clusterIP "10.96.0.1", got "10.96.0.2"',
    ],
    [
      svc({ clusterIP: '10.96.0.1', ports: [{ port: 80, protocol: 'ICMP' }] }),
      'Service default/web: spec.ports[0].protocol: must be TCP, UDP or SCTP, got "ICMP"',
    ],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 70000 }] }), 'Service default/web: spec.ports[0].port: must be an integer 1-65535, got 70000'],
    [
      svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }, { port: 81 }] }),
      'Service default/web: spec.ports[1].name: must be unique, "" is also used by spec.ports[0]',
    ],
    [svc({ clusterIP: '10.96.0.1', ports: [] }), 'Service default/web: spec.ports: must have at least one port'],
    [svc({ clusterIP: '10.96.0.1', ports: {} }), 'Service default/web: spec.ports: must be a list, got a mapping'],
    [
      svc({ type: 'Magic', clusterIP: '10.96.0.1', ports: [{ port: 80 }] }),
      'Service default/web: spec.type: must be one of ClusterIP, NodePort, LoadBalancer, ExternalName, got "Magic"',
    ],
    [
      svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { name: 'Web' }),
      'Service default/Web: metadata.name: must be a DNS-1035 label (lowercase letters, digits, \'-\', starting with a letter), got "Web"',
    ],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { name: undefined }), 'Service default/<unnamed>: metadata.name: required'],
    [{ ...svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }), apiVersion: 'v2' }, 'Service default/web: apiVersion: must be "v1", got "v2"'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { labels: { app: 5 } }), 'Service default/web: metadata.labels["app"]: must be a string, got 5'],
  ];
  for (const [raw, message] of cases) expect(errorOf(parseObject(raw)).message).toBe(message);
});

test('an invalid object still names its cache key when metadata allows it', () => {
  const r = parseObject(svc({ clusterIP: 'bad', ports: [{ port: 80 }] }, { namespace: 'prod' }));
  expect(r.status).toBe('invalid');
  expect(r.status === 'invalid' && r.ref).toStrictEqual({ kind: 'Service', key: 'prod/web' });
  const unnamed = parseObject(svc({}, { name: undefined }));
  expect(unnamed.status === 'invalid' && unnamed.ref).toBe(null);
});

test('headless, ExternalName, unset clusterIP and proxy-name/headless labels are ignored, not errors', () => {
  const cases: [Record<string, unknown>, string][] = [
    [svc({ clusterIP: 'None', ports: [{ port: 80 }] }), 'headless (clusterIP None)'],
    [svc({ clusterIPs: ['None'] }), 'headless (clusterIP None)'],
    [svc({ type: 'ExternalName', externalName: 'example.com', clusterIP: '10.96.0.1' }), 'type ExternalName'],
    [svc({ ports: [{ port: 80 }] }), 'no clusterIP set'],
    [
      svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { labels: { 'service.kubernetes.io/service-proxy-name': 'other' } }),
      'labelled service.kubernetes.io/service-proxy-name',
    ],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { labels: { 'service.kubernetes.io/headless': '' } }), 'labelled service.kubernetes.io/headless'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { labels: { 'service.kubernetes.io/headless': null } }), 'labelled service.kubernetes.io/headless'],
  ];
  for (const [raw, reason] of cases) {
    const r = parseObject(raw);
    expect(r.status, JSON.stringify(r)).toBe('ignored');
    expect(r.status === 'ignored' && r.reason).toBe(reason);
    expect(r.status === 'ignored' && r.ref).toStrictEqual({ kind: 'Service', key: 'default/web' });
  }
});

test('clusterIP alone (or with an empty clusterIPs) is the single ClusterIP', () => {
  expect(validService(parseObject(svc({ clusterIP: '10.96.0.7', clusterIPs: [], ports: [{ port: 80 }] }))).clusterIPs).toStrictEqual(['10.96.0.7']);
  expect(validService(parseObject(svc({ clusterIP: '10.96.0.7', clusterIPs: ['10.96.0.7', 'fd00::7'], ports: [{ port: 80 }] }))).clusterIPs).toStrictEqual([
    '10.96.0.7',
    'fd00::7',
  ]);
  expect(errorOf(parseObject(svc({ clusterIPs: ['10.96.0.7', '10.96.0.8'], ports: [{ port: 80 }] }))).message).toBe(
    'Service default/web: spec.clusterIPs[1]: must be of the other IP family than "10.96.0.7", got "10.96.0.8"',
  );
});

test('NodePort and LoadBalancer Services keep their ClusterIP; dual-stack clusterIPs are kept in order', () => {
  const s = validService(
    parseObject(
      svc({
        type: 'NodePort',
        clusterIPs: ['fd00::10', '10.96.0.10'],
        ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 'dns-udp', nodePort: 30053 }],
      }),
    ),
  );
  expect(s.type).toBe('NodePort');
  expect(s.clusterIPs).toStrictEqual(['fd00::10', '10.96.0.10']);
  expect(s.ports[0]).toStrictEqual({ name: 'dns', protocol: 'UDP', port: 53, targetPort: 'dns-udp', nodePort: 30053 });
});

test('EndpointSlice conditions follow the nil rules: ready nil=true, serving nil=true (as in kube-proxy), terminating nil=false', () => {
  const s = validSlice(
    parseObject(
      slice({
        endpoints: [
          { addresses: ['10.0.0.1'] },
          { addresses: ['10.0.0.2'], conditions: { ready: false } },
          { addresses: ['10.0.0.3'], conditions: { ready: false, serving: true, terminating: true } },
          { addresses: ['10.0.0.4'], conditions: { ready: null, serving: null, terminating: null } },
        ],
        ports: [{ name: 'http', port: 8080 }],
      }),
    ),
  );
  const conds = s.endpoints.map((e) => [e.addresses[0], e.ready, e.serving, e.terminating]);
  expect(conds).toStrictEqual([
    ['10.0.0.1', true, true, false],
    ['10.0.0.2', false, true, false],
    ['10.0.0.3', false, true, true],
    ['10.0.0.4', true, true, false],
  ]);
  expect(s.serviceKey).toBe('default/web');
  expect(s.ports).toStrictEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
});

test('EndpointSlice: unnamed and portless ports are kept as "" and null; endpoints sorted by address', () => {
  const s = validSlice(
    parseObject(
      slice({
        endpoints: [{ addresses: ['10.0.0.9'], nodeName: 'n1', zone: 'z1' }, { addresses: ['10.0.0.10'] }],
        ports: [{ port: 80 }, { name: 'x' }],
      }),
    ),
  );
  expect(s.ports).toStrictEqual([
    { name: '', port: 80, protocol: 'TCP' },
    { name: 'x', port: null, protocol: 'TCP' },
  ]);
  expect(s.endpoints.map((e) => e.addresses[0])).toStrictEqual(['10.0.0.10', '10.0.0.9']);
  expect(s.endpoints[1]!.nodeName).toBe('n1');
  expect(s.endpoints[1]!.zone).toBe('z1');
});

test('EndpointSlice: endpoints with a bad or wrong-family address are dropped with a warning', () => {
  const r = parseObject(
    slice({
      endpoints: [{ addresses: ['10.0.0.1'] }, { addresses: ['fd00::1'] }, { addresses: [] }, { addresses: ['10.0.0.256'] }],
    }),
  );
  expect(r.status).toBe('valid');
  if (r.status !== 'valid' || r.object.kind !== 'EndpointSlice') return;
  expect(r.object.endpoints.map((e) => e.addresses[0])).toStrictEqual(['10.0.0.1']);
  expect(r.warnings.map((w) => w.message)).toStrictEqual([
    'EndpointSlice default/web-abc: endpoints[1].addresses[0]: must be a valid IPv4 address, got "fd00::1"; endpoint ignored',
    'EndpointSlice default/web-abc: endpoints[2].addresses: must have at least one address; endpoint ignored',
    'EndpointSlice default/web-abc: endpoints[3].addresses[0]: must be a valid IPv4 address, got "10.0.0.256"; endpoint ignored',
  ]);
});

test('EndpointSlice validation errors and ignored cases', () => {
  expect(errorOf(parseObject(slice({}, {}))).message).toBe(
    'EndpointSlice default/web-abc: metadata.labels["kubernetes.io/service-name"]: required: names the Service this slice belongs to',
  );
  expect(errorOf(parseObject(slice({ addressType: 'IPv5' }))).message).toBe(
    'EndpointSlice default/web-abc: addressType: must be IPv4, IPv6 or FQDN, got "IPv5"',
  );
  expect(errorOf(parseObject(slice({ endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: 'yes' } }] }))).message).toBe(
    'EndpointSlice default/web-abc: endpoints[0].conditions.ready: must be true or false, got "yes"',
  );
  expect(errorOf(parseObject(slice({ ports: [{ name: 'http', port: 0 }] }))).message).toBe(
    'EndpointSlice default/web-abc: ports[0].port: must be an integer 1-65535, got 0',
  );
  const fqdn = parseObject(slice({ addressType: 'FQDN' }));
  expect(fqdn.status === 'ignored' && fqdn.reason).toBe('addressType FQDN');
  const proxied = parseObject(slice({}, { 'kubernetes.io/service-name': 'web', 'service.kubernetes.io/service-proxy-name': 'x' }));
  expect(proxied.status).toBe('ignored');
});

test('Nodes, unsupported kinds and non-objects', () => {
  const n = parseObject({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1', labels: { 'topology.kubernetes.io/zone': 'a' } } });
  expect(n.status).toBe('valid');
  expect(n.status === 'valid' && n.object).toStrictEqual({
    kind: 'Node',
    name: 'node-1',
    key: 'node-1',
    labels: { 'topology.kubernetes.io/zone': 'a' },
    zone: 'a',
    podCIDRs: [],
  });
  const withCidrs = parseObject({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'n3' },
    spec: { podCIDRs: ['10.244.3.0/24', 'fd00:10:244:3::/64', 'junk'] },
  });
  expect(withCidrs.status === 'valid' && withCidrs.object.kind === 'Node' && withCidrs.object.podCIDRs, 'valid CIDRs only').toStrictEqual([
    '10.244.3.0/24',
    'fd00:10:244:3::/64',
  ]);
  const single = parseObject({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n4' }, spec: { podCIDR: '10.244.4.0/24' } });
  expect(single.status === 'valid' && single.object.kind === 'Node' && single.object.podCIDRs).toStrictEqual(['10.244.4.0/24']);
  const unzoned = parseObject({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-2' } });
  expect(unzoned.status === 'valid' && unzoned.object.kind === 'Node' && unzoned.object.zone).toBe(null);
  expect(parseObject({ apiVersion: 'apps/v1', kind: 'Deployment' })).toStrictEqual({ status: 'unsupported', kind: 'Deployment' });
  expect(errorOf(parseObject([1, 2])).message).toBe('<object>: (document): must be a mapping, got a list');
  expect(errorOf(parseObject({ metadata: {} })).message).toBe('<object>: kind: must be a non-empty string, got nothing');
});

// ---------------------------------------------------------------------------
// NodePort, ExternalIPs, LoadBalancer, affinity, traffic policies, topology

const LB = { type: 'LoadBalancer', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, nodePort: 30080 }] };

test('LoadBalancer fields kube-proxy reads are kept, with defaults', () => {
  const s = validService(
    parseObject({
      ...svc({
        ...LB,
        externalIPs: ['192.0.2.10', '2001:db8::10'],
        externalTrafficPolicy: 'Local',
        internalTrafficPolicy: 'Local',
        healthCheckNodePort: 31000,
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
        loadBalancerSourceRanges: ['203.0.113.0/25', ' 198.51.100.0/24 ', '2001:db8::/32'],
        trafficDistribution: 'PreferClose',
      }),
      status: {
        loadBalancer: {
          ingress: [{ ip: '198.51.100.7' }, { hostname: 'lb.example.com' }, { ip: '198.51.100.8', ipMode: 'Proxy' }, { ip: '198.51.100.9', ipMode: 'VIP' }],
        },
      },
    }),
  );
  expect(s.ports[0]!.nodePort).toStrictEqual(30080);
  expect(s.externalIPs).toStrictEqual(['192.0.2.10', '2001:db8::10']);
  expect(s.loadBalancerIngress).toStrictEqual([
    { ip: '198.51.100.7', ipMode: 'VIP' },
    { ip: '198.51.100.8', ipMode: 'Proxy' },
    { ip: '198.51.100.9', ipMode: 'VIP' },
  ]);
  expect(s.sessionAffinity).toStrictEqual({ timeoutSeconds: 60 });
  expect(s.externalTrafficPolicy).toBe('Local');
  expect(s.internalTrafficPolicy).toBe('Local');
  expect(s.healthCheckNodePort).toBe(31000);
  expect(s.loadBalancerSourceRanges, 'whitespace around a range is trimmed').toStrictEqual(['203.0.113.0/25', '198.51.100.0/24', '2001:db8::/32']);
  expect(s.trafficDistribution).toBe('PreferClose');
});

test('ClientIP affinity defaults its timeout to 10800 s; None is null', () => {
  const timeout = (spec: Record<string, unknown>) => validService(parseObject(svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }], ...spec }))).sessionAffinity;
  expect(timeout({ sessionAffinity: 'ClientIP' })).toStrictEqual({ timeoutSeconds: 10800 });
  expect(timeout({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: {} } })).toStrictEqual({ timeoutSeconds: 10800 });
  expect(timeout({ sessionAffinity: 'None', sessionAffinityConfig: { clientIP: { timeoutSeconds: 5 } } })).toBe(null);
  expect(timeout({})).toBe(null);
});

test('healthCheckNodePort is kept only for LoadBalancer + Local, with warnings otherwise', () => {
  const r = parseObject(svc({ ...LB, healthCheckNodePort: 31000 }));
  expect(r.status === 'valid' && r.object.kind === 'Service' && r.object.healthCheckNodePort).toBe(null);
  expect(r.status === 'valid' && r.warnings.map((w) => w.message)).toStrictEqual([
    'Service default/web: spec.healthCheckNodePort: only used with type LoadBalancer and externalTrafficPolicy Local; ignored',
  ]);
  const missing = parseObject(svc({ ...LB, externalTrafficPolicy: 'Local' }));
  expect(missing.status === 'valid' && missing.warnings.map((w) => w.field)).toStrictEqual(['spec.healthCheckNodePort']);
});

test('a NodePort Service port without nodePort warns (manifests get no allocator)', () => {
  const r = parseObject(svc({ type: 'NodePort', clusterIP: '10.96.0.1', ports: [{ port: 80 }] }));
  expect(r.status).toBe('valid');
  expect(r.status === 'valid' && r.warnings.map((w) => w.message)).toStrictEqual([
    'Service default/web: spec.ports[0].nodePort: unset on a NodePort Service (manifests get no allocated nodePort); no NodePort is programmed',
  ]);
});

test('validation messages for NodePort, LoadBalancer and policy fields', () => {
  const base = { clusterIP: '10.96.0.1', ports: [{ port: 80 }] };
  const cases: [Record<string, unknown>, string][] = [
    [
      svc({ ...LB, loadBalancerSourceRanges: ['10.0.0.0/8', '10.0.0.0/33'] }),
      'Service default/web: spec.loadBalancerSourceRanges[1]: "10.0.0.0/33" is not a CIDR',
    ],
    [svc({ ...LB, loadBalancerSourceRanges: ['10.0.0.1'] }), 'Service default/web: spec.loadBalancerSourceRanges[0]: "10.0.0.1" is not a CIDR'],
    [svc({ ...LB, loadBalancerSourceRanges: ['2001:db8::/129'] }), 'Service default/web: spec.loadBalancerSourceRanges[0]: "2001:db8::/129" is not a CIDR'],
    [svc({ ...LB, loadBalancerSourceRanges: ['10.0.0.0/08'] }), 'Service default/web: spec.loadBalancerSourceRanges[0]: "10.0.0.0/08" is not a CIDR'],
    [svc({ ...LB, loadBalancerSourceRanges: [7] }), 'Service default/web: spec.loadBalancerSourceRanges[0]: must be a string, got 7'],
    [svc({ ...base, ports: [{ port: 80, nodePort: 30080 }] }), 'Service default/web: spec.ports[0].nodePort: may not be set when spec.type is ClusterIP'],
    [svc({ ...LB, ports: [{ name: 'a', port: 80, nodePort: 70000 }] }), 'Service default/web: spec.ports[0].nodePort: must be an integer 1-65535, got 70000'],
    [
      svc({
        ...LB,
        ports: [
          { name: 'a', port: 80, nodePort: 30080 },
          { name: 'b', port: 81, nodePort: 30080 },
        ],
      }),
      'Service default/web: spec.ports[1].nodePort: must be unique, 30080/TCP is also used by spec.ports[0]',
    ],
    [svc({ ...base, externalIPs: ['192.0.2.1', 'nope'] }), 'Service default/web: spec.externalIPs[1]: must be a valid IP address, got "nope"'],
    [svc({ ...base, externalTrafficPolicy: 'Global' }), 'Service default/web: spec.externalTrafficPolicy: must be Cluster or Local, got "Global"'],
    [svc({ ...base, internalTrafficPolicy: 'local' }), 'Service default/web: spec.internalTrafficPolicy: must be Cluster or Local, got "local"'],
    [svc({ ...base, sessionAffinity: 'Cookie' }), 'Service default/web: spec.sessionAffinity: must be None or ClientIP, got "Cookie"'],
    [
      svc({ ...base, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 86401 } } }),
      'Service default/web: spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be an integer 1-86400, got 86401',
    ],
    [
      svc({ ...base, trafficDistribution: 'Nearby' }),
      'Service default/web: spec.trafficDistribution: must be one of PreferClose, PreferSameZone, PreferSameNode, got "Nearby"',
    ],
    [
      { ...svc(LB), status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { ip: '1.2.3.400' }] } } },
      'Service default/web: status.loadBalancer.ingress[1].ip: must be a valid IP address, got "1.2.3.400"',
    ],
    [
      { ...svc(LB), status: { loadBalancer: { ingress: [{ ip: '1.2.3.4', ipMode: 'Direct' }] } } },
      'Service default/web: status.loadBalancer.ingress[0].ipMode: must be VIP or Proxy, got "Direct"',
    ],
    [{ ...svc(LB), status: { loadBalancer: { ingress: {} } } }, 'Service default/web: status.loadBalancer.ingress: must be a list, got a mapping'],
  ];
  for (const [raw, message] of cases) expect(errorOf(parseObject(raw)).message).toBe(message);
});

test('EndpointSlice hints: forZones and forNodes names are kept; none is an empty list', () => {
  const s = validSlice(
    parseObject(
      slice({
        endpoints: [
          { addresses: ['10.0.0.1'], hints: { forZones: [{ name: 'z1' }, { name: 'z2' }], forNodes: [{ name: 'node-a' }] } },
          { addresses: ['10.0.0.2'], hints: {} },
          { addresses: ['10.0.0.3'] },
        ],
      }),
    ),
  );
  expect(s.endpoints.map((e) => [e.zoneHints, e.nodeHints])).toStrictEqual([
    [['z1', 'z2'], ['node-a']],
    [[], []],
    [[], []],
  ]);
  expect(errorOf(parseObject(slice({ endpoints: [{ addresses: ['10.0.0.1'], hints: { forZones: [{ name: '' }] } }] }))).message).toBe(
    'EndpointSlice default/web-abc: endpoints[0].hints.forZones[0].name: must be a non-empty string, got ""',
  );
  expect(errorOf(parseObject(slice({ endpoints: [{ addresses: ['10.0.0.1'], hints: { forNodes: ['node-a'] } }] }))).message).toBe(
    'EndpointSlice default/web-abc: endpoints[0].hints.forNodes[0]: must be a mapping, got "node-a"',
  );
});

test('the service.switchyard.dev/lb-algorithm annotation: random or maglev; another value is a warning and the default applies', () => {
  const spec = { clusterIP: '10.96.0.10', ports: [{ port: 80 }] };
  const ann = (v: unknown) => parseObject(svc(spec, { annotations: { 'service.switchyard.dev/lb-algorithm': v } }));
  expect(validService(ann('maglev')).lbAlgorithm).toBe('maglev');
  expect(validService(ann('random')).lbAlgorithm).toBe('random');
  expect(validService(parseObject(svc(spec))).lbAlgorithm).toBe(null);
  const bad = ann('consistent');
  expect(validService(bad).lbAlgorithm).toBe(null);
  expect(bad.status === 'valid' && bad.warnings.map((w) => [w.field, w.message])).toStrictEqual([
    [
      'metadata.annotations["service.switchyard.dev/lb-algorithm"]',
      expect.stringMatching(/must be random or maglev, got "consistent"; the default \(--bpf-lb-algorithm\) applies/),
    ],
  ]);
});
