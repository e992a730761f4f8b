// Node addresses of both families (src/host/node-address.ts), the IPv6
// default route table, the CT sizing kube-proxy's conntrack flags give
// (src/cli/run.ts), and sy_config_v2 from the dataplane options.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { conntrackEntries, localPortRange } from '../../src/cli/run.ts';
import { nodeConfig } from '../../src/dataplane/bpf/dataplane.ts';
import { SY_CFG_DETECT_CIDR, SY_CFG_DETECT_IFACE } from '../../src/dataplane/bpf/layout.ts';
import { defaultRouteInterfaces6, detectNodeAddresses } from '../../src/host/node-address.ts';
import { tempDir } from '../support/temp-dir.ts';

const IFS = new Map([
  ['eth0', { v4: ['198.18.0.1'], v6: ['fd00:198:18:0:0:0:0:1'] }],
  ['cbr0', { v4: ['10.244.1.1'], v6: [] }],
  ['v6only', { v4: [], v6: ['fd00:198:19::5'] }],
]);

test('both families from the default-route interface; every address is a NodePort address', () => {
  const n = detectNodeAddresses(undefined, IFS, ['eth0']);
  expect(n).toStrictEqual({
    interface: 'eth0',
    ipv4: '198.18.0.1',
    ipv6: 'fd00:198:18::1',
    all: ['198.18.0.1', 'fd00:198:18::1', '10.244.1.1', 'fd00:198:19::5'],
  });
  expect(detectNodeAddresses(undefined, IFS, ['v6only'])).toMatchObject({ interface: 'v6only', ipv4: null, ipv6: 'fd00:198:19::5' });
  expect(detectNodeAddresses(undefined, IFS, []), 'no default route: the first interface with an address').toMatchObject({ interface: 'eth0' });
});

test('--bind-address picks the interface and that address for its family', () => {
  expect(detectNodeAddresses('fd00:198:18::1', IFS, [])).toMatchObject({ interface: 'eth0', ipv4: '198.18.0.1', ipv6: 'fd00:198:18::1' });
  expect(detectNodeAddresses('10.244.1.1', IFS, ['eth0'])).toMatchObject({ interface: 'cbr0', ipv4: '10.244.1.1', ipv6: null });
  expect(detectNodeAddresses('192.0.2.1', IFS, ['eth0'])).toBe(null);
  expect(detectNodeAddresses(undefined, new Map(), [])).toBe(null);
});

test('IPv6 default routes from /proc/net/ipv6_route', () => {
  const dir = tempDir('sy-route6-');
  const table = join(dir, 'ipv6_route');
  writeFileSync(
    table,
    [
      '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd001981800000000000000000000001 00000400 00000001 00000000 00000003     eth0',
      'fd001981800000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
      '00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo',
    ].join('\n'),
  );
  expect(defaultRouteInterfaces6(table)).toStrictEqual(['eth0']);
  expect(defaultRouteInterfaces6(join(dir, 'missing'))).toStrictEqual([]);
});

test('CT entries: 2 per flow, max(maxPerCore x CPUs, min); maxPerCore 0 leaves the object default', () => {
  expect(conntrackEntries(32768, 131072, 2)).toBe(2 * 131072);
  expect(conntrackEntries(32768, 131072, 16)).toBe(2 * 32768 * 16);
  expect(conntrackEntries(0, 131072, 16)).toBe(null);
});

test('the node ephemeral port range is read from procfs', () => {
  const dir = tempDir('sy-ports-');
  writeFileSync(join(dir, 'range'), '32768\t60999\n');
  expect(localPortRange(join(dir, 'range'))).toStrictEqual({ min: 32768, max: 60999 });
  expect(localPortRange(join(dir, 'missing'))).toBe(null);
});

test('sy_config_v2 from the options: detector by CIDR (first of each family) or by interface', () => {
  const base = { node: { ipv4: '198.18.0.1', ipv6: null }, snatPorts: { min: 61000, max: 65535 } };
  expect(nodeConfig({ ...base, detectLocal: { mode: 'ClusterCIDR', cidrs: ['fd00:10:244::/56', '10.244.0.0/16'] } }, [])).toStrictEqual({
    nodeAddr4: '198.18.0.1',
    nodeAddr6: null,
    podCidr4: '10.244.0.0/16',
    podCidr6: 'fd00:10:244::/56',
    snatPortMin: 61000,
    snatPortMax: 65535,
    flags: SY_CFG_DETECT_CIDR,
  });
  expect(nodeConfig({ ...base, detectLocal: { mode: 'NodeCIDR' } }, ['10.244.3.0/24'])).toMatchObject({ podCidr4: '10.244.3.0/24', podCidr6: null });
  expect(nodeConfig({ ...base, detectLocal: { mode: 'InterfaceNamePrefix', prefix: 'veth' } }, ['10.244.3.0/24'])).toMatchObject({
    podCidr4: null,
    flags: SY_CFG_DETECT_IFACE,
  });
});
