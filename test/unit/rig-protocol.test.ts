// The rig's wire format and manifest builders, without root: endpoints of
// both families round-trip, the SCTP helper's output becomes RequestResults,
// and every Service and EndpointSlice the end-to-end tests write is accepted
// by Switchyard's own object parser with the fields they mean to set.

import { describe, expect, test } from 'vitest';
import { formatEndpoint, parseBackendLine, parseEndpoint } from '../../src/rig/protocol.ts';
import { parseSctpClientOutput } from '../../src/rig/sctp.ts';
import { serviceDoc, sliceDocs } from '../../src/rig/switchyard.ts';
import { parseObject } from '../../src/sources/objects.ts';

describe('endpoints', () => {
  test('IPv4 and IPv6 round-trip; junk is refused', () => {
    for (const e of [
      { ip: '10.96.0.10', port: 80 },
      { ip: 'fd00:10:96::10', port: 53 },
      { ip: '::', port: 1 },
    ]) {
      expect(parseEndpoint(formatEndpoint(e))).toStrictEqual(e);
    }
    expect(formatEndpoint({ ip: 'fd00::1', port: 8080 })).toBe('[fd00::1]:8080');
    for (const bad of ['fd00::1:80', '10.0.0.1', '[10.0.0.1]:80x', '10.0.0.1:70000', '']) expect(parseEndpoint(bad), bad).toBe(undefined);
  });

  test('a backend line with IPv6 addresses parses', () => {
    expect(parseBackendLine('pod-1-1 [fd00:10:244:1::10]:40000 [fd00:10:244:1::11]:8080\n')).toStrictEqual({
      name: 'pod-1-1',
      client: { ip: 'fd00:10:244:1::10', port: 40000 },
      local: { ip: 'fd00:10:244:1::11', port: 8080 },
    });
  });
});

test('the SCTP client output becomes RequestResults', () => {
  const out = parseSctpClientOutput(
    'ok\t3\t10.96.4.10:80\t10.244.1.10:40000\tpod-1-1 10.244.1.10:40000 10.244.1.11:9999\nerr\t2\tECONNREFUSED\nok\t1\t10.96.4.10:80\t10.244.1.10:40001\tgarbage\n',
  );
  expect(out).toStrictEqual([
    {
      ok: true,
      ms: 3,
      reply: { ip: '10.96.4.10', port: 80 },
      local: { ip: '10.244.1.10', port: 40000 },
      backend: 'pod-1-1',
      seenClient: { ip: '10.244.1.10', port: 40000 },
      seenLocal: { ip: '10.244.1.11', port: 9999 },
    },
    { ok: false, ms: 2, error: 'ECONNREFUSED' },
    { ok: false, ms: 1, reply: { ip: '10.96.4.10', port: 80 }, local: { ip: '10.244.1.10', port: 40001 }, error: 'bad-reply' },
  ]);
});

describe('manifest builders', () => {
  test('a dual-stack LoadBalancer with ranges, ipMode and NodePorts is read as meant', () => {
    const r = parseObject(
      serviceDoc({
        name: 'lbr',
        type: 'LoadBalancer',
        clusterIPs: ['10.96.3.13', 'fd00:10:96::313'],
        ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30082 }],
        loadBalancerIPs: ['198.19.0.30', 'fd00:198:18::2:30'],
        ipMode: 'VIP',
        loadBalancerSourceRanges: ['198.18.1.100/32'],
        externalTrafficPolicy: 'Local',
      }),
    );
    if (r.status !== 'valid' || r.object.kind !== 'Service') expect.unreachable(JSON.stringify(r));
    const svc = r.object;
    expect(svc.type).toBe('LoadBalancer');
    expect(svc.externalTrafficPolicy).toBe('Local');
    expect(svc.loadBalancerSourceRanges).toStrictEqual(['198.18.1.100/32']);
    expect(svc.loadBalancerIngress.map((i) => [i.ip, i.ipMode])).toStrictEqual([
      ['198.19.0.30', 'VIP'],
      ['fd00:198:18::2:30', 'VIP'],
    ]);
  });

  test('EndpointSlices: one per family, none but an empty IPv4 one without endpoints', () => {
    const docs = sliceDocs(
      'web',
      [
        { ip: '10.244.1.11', node: 'node-1' },
        { ip: 'fd00:10:244:1::11', node: 'node-1' },
      ],
      [{ name: 'http', port: 8080, protocol: 'TCP' }],
    );
    expect(docs.map((d) => d['addressType'])).toStrictEqual(['IPv4', 'IPv6']);
    for (const d of docs) expect(parseObject(d).status).toBe('valid');
    const empty = sliceDocs('empty', [], [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(empty.length).toBe(1);
    expect(parseObject(empty[0]).status).toBe('valid');
  });
});
