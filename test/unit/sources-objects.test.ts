import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseObject, ValidationError, type EndpointSlice, type ParseResult, type Service } from '../../src/sources/objects.ts';

function svc(spec: Record<string, unknown>, meta: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default', ...meta }, spec };
}

function slice(body: Record<string, unknown>, labels: Record<string, unknown> = { 'kubernetes.io/service-name': 'web' }) {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'web-abc', namespace: 'default', labels },
    addressType: 'IPv4', ...body,
  };
}

function errorOf(r: ParseResult): ValidationError {
  assert.equal(r.status, 'invalid', `expected invalid, got ${JSON.stringify(r)}`);
  if (r.status !== 'invalid') throw new Error('unreachable');
  assert.ok(r.error instanceof ValidationError);
  return r.error;
}

function validService(r: ParseResult): Service {
  assert.equal(r.status, 'valid', JSON.stringify(r));
  if (r.status !== 'valid' || r.object.kind !== 'Service') throw new Error('not a valid Service');
  return r.object;
}

function validSlice(r: ParseResult): EndpointSlice {
  assert.equal(r.status, 'valid', JSON.stringify(r));
  if (r.status !== 'valid' || r.object.kind !== 'EndpointSlice') throw new Error('not a valid EndpointSlice');
  return r.object;
}

test('a valid Service gets API defaults: type, protocol, targetPort', () => {
  const s = validService(parseObject(svc({ clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] }, { namespace: undefined })));
  assert.deepEqual(s, {
    kind: 'Service', namespace: 'default', name: 'web', key: 'default/web', type: 'ClusterIP',
    clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 80 }],
  });
});

test('a bad port names the object and the field path', () => {
  const e = errorOf(parseObject(svc({ clusterIP: '10.96.0.10', ports: [{ name: 'a', port: 80 }, { name: 'b', port: 'http' }] })));
  assert.equal(e.message, 'Service default/web: spec.ports[1].port: must be an integer 1-65535, got "http"');
  assert.equal(e.object, 'Service default/web');
  assert.equal(e.field, 'spec.ports[1].port');
  assert.equal(e.code, 'INVALID_OBJECT');
});

test('validation messages for other Service fields', () => {
  const cases: [Record<string, unknown>, string][] = [
    [svc({ clusterIP: '10.96.0.300', ports: [{ port: 80 }] }), 'Service default/web: spec.clusterIP: must be a valid IP address, got "10.96.0.300"'],
    [svc({ clusterIPs: ['10.96.0.1', 'fd00::zz'], ports: [{ port: 80 }] }), 'Service default/web: spec.clusterIPs[1]: must be a valid IP address, got "fd00::zz"'],
    [svc({ clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.2'], ports: [{ port: 80 }] }), 'Service default/web: spec.clusterIPs[0]: must equal spec.clusterIP "10.96.0.1", got "10.96.0.2"'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80, protocol: 'ICMP' }] }), 'Service default/web: spec.ports[0].protocol: must be TCP, UDP or SCTP, got "ICMP"'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 70000 }] }), 'Service default/web: spec.ports[0].port: must be an integer 1-65535, got 70000'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }, { port: 81 }] }), 'Service default/web: spec.ports[1].name: must be unique, "" is also used by spec.ports[0]'],
    [svc({ clusterIP: '10.96.0.1', ports: [] }), 'Service default/web: spec.ports: must have at least one port'],
    [svc({ clusterIP: '10.96.0.1', ports: {} }), 'Service default/web: spec.ports: must be a list, got a mapping'],
    [svc({ type: 'Magic', clusterIP: '10.96.0.1', ports: [{ port: 80 }] }), 'Service default/web: spec.type: must be one of ClusterIP, NodePort, LoadBalancer, ExternalName, got "Magic"'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { name: 'Web' }), 'Service default/Web: metadata.name: must be a DNS-1035 label (lowercase letters, digits, \'-\', starting with a letter), got "Web"'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { name: undefined }), 'Service default/<unnamed>: metadata.name: required'],
    [{ ...svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }), apiVersion: 'v2' }, 'Service default/web: apiVersion: must be "v1", got "v2"'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { labels: { app: 5 } }), 'Service default/web: metadata.labels["app"]: must be a string, got 5'],
  ];
  for (const [raw, message] of cases) assert.equal(errorOf(parseObject(raw)).message, message);
});

test('an invalid object still names its cache key when metadata allows it', () => {
  const r = parseObject(svc({ clusterIP: 'bad', ports: [{ port: 80 }] }, { namespace: 'prod' }));
  assert.equal(r.status, 'invalid');
  assert.deepEqual(r.status === 'invalid' && r.ref, { kind: 'Service', key: 'prod/web' });
  const unnamed = parseObject(svc({}, { name: undefined }));
  assert.equal(unnamed.status === 'invalid' && unnamed.ref, null);
});

test('headless, ExternalName, unset clusterIP and proxy-name/headless labels are ignored, not errors', () => {
  const cases: [Record<string, unknown>, string][] = [
    [svc({ clusterIP: 'None', ports: [{ port: 80 }] }), 'headless (clusterIP None)'],
    [svc({ clusterIPs: ['None'] }), 'headless (clusterIP None)'],
    [svc({ type: 'ExternalName', externalName: 'example.com', clusterIP: '10.96.0.1' }), 'type ExternalName'],
    [svc({ ports: [{ port: 80 }] }), 'no clusterIP set'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { labels: { 'service.kubernetes.io/service-proxy-name': 'other' } }),
      'labelled service.kubernetes.io/service-proxy-name'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { labels: { 'service.kubernetes.io/headless': '' } }),
      'labelled service.kubernetes.io/headless'],
    [svc({ clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, { labels: { 'service.kubernetes.io/headless': null } }),
      'labelled service.kubernetes.io/headless'],
  ];
  for (const [raw, reason] of cases) {
    const r = parseObject(raw);
    assert.equal(r.status, 'ignored', JSON.stringify(r));
    assert.equal(r.status === 'ignored' && r.reason, reason);
    assert.deepEqual(r.status === 'ignored' && r.ref, { kind: 'Service', key: 'default/web' });
  }
});

test('clusterIP alone (or with an empty clusterIPs) is the single ClusterIP', () => {
  assert.deepEqual(validService(parseObject(svc({ clusterIP: '10.96.0.7', clusterIPs: [], ports: [{ port: 80 }] }))).clusterIPs, ['10.96.0.7']);
  assert.deepEqual(validService(parseObject(svc({ clusterIP: '10.96.0.7', clusterIPs: ['10.96.0.7', 'fd00::7'], ports: [{ port: 80 }] }))).clusterIPs, ['10.96.0.7', 'fd00::7']);
  assert.equal(errorOf(parseObject(svc({ clusterIPs: ['10.96.0.7', '10.96.0.8'], ports: [{ port: 80 }] }))).message,
    'Service default/web: spec.clusterIPs[1]: must be of the other IP family than "10.96.0.7", got "10.96.0.8"');
});

test('NodePort and LoadBalancer Services keep their ClusterIP; dual-stack clusterIPs are kept in order', () => {
  const s = validService(parseObject(svc({ type: 'NodePort', clusterIPs: ['fd00::10', '10.96.0.10'], ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 'dns-udp' }] })));
  assert.equal(s.type, 'NodePort');
  assert.deepEqual(s.clusterIPs, ['fd00::10', '10.96.0.10']);
  assert.deepEqual(s.ports[0], { name: 'dns', protocol: 'UDP', port: 53, targetPort: 'dns-udp' });
});

test('EndpointSlice conditions follow the nil rules: ready nil=true, serving nil=true (as in kube-proxy), terminating nil=false', () => {
  const s = validSlice(parseObject(slice({
    endpoints: [
      { addresses: ['10.0.0.1'] },
      { addresses: ['10.0.0.2'], conditions: { ready: false } },
      { addresses: ['10.0.0.3'], conditions: { ready: false, serving: true, terminating: true } },
      { addresses: ['10.0.0.4'], conditions: { ready: null, serving: null, terminating: null } },
    ],
    ports: [{ name: 'http', port: 8080 }],
  })));
  const conds = s.endpoints.map((e) => [e.addresses[0], e.ready, e.serving, e.terminating]);
  assert.deepEqual(conds, [
    ['10.0.0.1', true, true, false],
    ['10.0.0.2', false, true, false],
    ['10.0.0.3', false, true, true],
    ['10.0.0.4', true, true, false],
  ]);
  assert.equal(s.serviceKey, 'default/web');
  assert.deepEqual(s.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
});

test('EndpointSlice: unnamed and portless ports are kept as "" and null; endpoints sorted by address', () => {
  const s = validSlice(parseObject(slice({
    endpoints: [{ addresses: ['10.0.0.9'], nodeName: 'n1', zone: 'z1' }, { addresses: ['10.0.0.10'] }],
    ports: [{ port: 80 }, { name: 'x' }],
  })));
  assert.deepEqual(s.ports, [{ name: '', port: 80, protocol: 'TCP' }, { name: 'x', port: null, protocol: 'TCP' }]);
  assert.deepEqual(s.endpoints.map((e) => e.addresses[0]), ['10.0.0.10', '10.0.0.9']);
  assert.equal(s.endpoints[1]!.nodeName, 'n1');
  assert.equal(s.endpoints[1]!.zone, 'z1');
});

test('EndpointSlice: endpoints with a bad or wrong-family address are dropped with a warning', () => {
  const r = parseObject(slice({
    endpoints: [{ addresses: ['10.0.0.1'] }, { addresses: ['fd00::1'] }, { addresses: [] }, { addresses: ['10.0.0.256'] }],
  }));
  assert.equal(r.status, 'valid');
  if (r.status !== 'valid' || r.object.kind !== 'EndpointSlice') return;
  assert.deepEqual(r.object.endpoints.map((e) => e.addresses[0]), ['10.0.0.1']);
  assert.deepEqual(r.warnings.map((w) => w.message), [
    'EndpointSlice default/web-abc: endpoints[1].addresses[0]: must be a valid IPv4 address, got "fd00::1"; endpoint ignored',
    'EndpointSlice default/web-abc: endpoints[2].addresses: must have at least one address; endpoint ignored',
    'EndpointSlice default/web-abc: endpoints[3].addresses[0]: must be a valid IPv4 address, got "10.0.0.256"; endpoint ignored',
  ]);
});

test('EndpointSlice validation errors and ignored cases', () => {
  assert.equal(errorOf(parseObject(slice({}, {}))).message,
    'EndpointSlice default/web-abc: metadata.labels["kubernetes.io/service-name"]: required: names the Service this slice belongs to');
  assert.equal(errorOf(parseObject(slice({ addressType: 'IPv5' }))).message,
    'EndpointSlice default/web-abc: addressType: must be IPv4, IPv6 or FQDN, got "IPv5"');
  assert.equal(errorOf(parseObject(slice({ endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: 'yes' } }] }))).message,
    'EndpointSlice default/web-abc: endpoints[0].conditions.ready: must be true or false, got "yes"');
  assert.equal(errorOf(parseObject(slice({ ports: [{ name: 'http', port: 0 }] }))).message,
    'EndpointSlice default/web-abc: ports[0].port: must be an integer 1-65535, got 0');
  const fqdn = parseObject(slice({ addressType: 'FQDN' }));
  assert.equal(fqdn.status === 'ignored' && fqdn.reason, 'addressType FQDN');
  const proxied = parseObject(slice({}, { 'kubernetes.io/service-name': 'web', 'service.kubernetes.io/service-proxy-name': 'x' }));
  assert.equal(proxied.status, 'ignored');
});

test('Nodes, unsupported kinds and non-objects', () => {
  const n = parseObject({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1', labels: { 'topology.kubernetes.io/zone': 'a' } } });
  assert.equal(n.status, 'valid');
  assert.deepEqual(n.status === 'valid' && n.object, { kind: 'Node', name: 'node-1', key: 'node-1', labels: { 'topology.kubernetes.io/zone': 'a' } });
  assert.deepEqual(parseObject({ apiVersion: 'apps/v1', kind: 'Deployment' }), { status: 'unsupported', kind: 'Deployment' });
  assert.equal(errorOf(parseObject([1, 2])).message, '<object>: (document): must be a mapping, got a list');
  assert.equal(errorOf(parseObject({ metadata: {} })).message, '<object>: kind: must be a non-empty string, got nothing');
});
