// BpfDataplaneOptions for unit tests: the fake binding's object, a node
// with one IPv4 address and no IPv6, ClusterCIDR detection without a CIDR,
// the default SNAT range and capacities, no links unless given.

import type { BpfDataplaneOptions } from '../../src/dataplane/bpf/dataplane.ts';
import type { NativeBinding } from '../../src/native/binding.ts';
import { nullLogger } from '../../src/util/log.ts';
import { FAKE_OBJECT_PATH } from './fake-native.ts';

export function dataplaneOptions(native: NativeBinding, o: Partial<BpfDataplaneOptions> = {}): BpfDataplaneOptions {
  return {
    native,
    log: nullLogger(),
    objectPath: FAKE_OBJECT_PATH,
    pinPath: '/sys/fs/bpf/sy-test',
    node: { ipv4: '198.18.0.1', ipv6: null },
    nodeInterface: null,
    podInterfaces: 'veth*',
    masqueradeAll: false,
    detectLocal: { mode: 'ClusterCIDR', cidrs: [] },
    nodePortAddresses: [],
    snatPorts: { min: 61000, max: 65535 },
    capacities: {},
    links: { list: () => [], watch: () => ({ stop() {} }) },
    now: () => 0,
    ...o,
  };
}
