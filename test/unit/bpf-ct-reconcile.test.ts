// The conntrack reconciler in BpfDataplane.sync on the fake native binding:
// which CT flows a sync that changes endpoints flushes (the serving set per
// frontend built from the snapshot), and what it reports for metrics; and a
// GC pass through BpfDataplane.collectConntrack (the CT fill in mapUsage).

import { expect, test } from 'vitest';
import { ctTimeouts, fwdKey, revKey } from '../../src/dataplane/bpf/ct-gc.ts';
import { BpfDataplane } from '../../src/dataplane/bpf/dataplane.ts';
import { type CtKey, type CtValue, decodeEntries, encode, MAPS } from '../../src/dataplane/bpf/layout.ts';
import type { ServicePortInfo } from '../../src/model/types.ts';
import { createLogger } from '../../src/util/log.ts';
import { dataplaneOptions } from '../support/dataplane-options.ts';
import { FakeNativeBinding } from '../support/fake-native.ts';
import { endpoint, servicePortInfo, snapshot } from '../support/snapshots.ts';

const PIN = '/sys/fs/bpf/switchyard';
const [X, Y] = ['10.244.1.5', '10.244.2.6'];

function udp(name: string, vip: string, eps: ReturnType<typeof endpoint>[]): ServicePortInfo {
  return servicePortInfo({ name, clusterIPs: [vip], port: 53, endpoints: eps, protocol: 'UDP' });
}

function flow(svcId: number, backend: string, clientPort: number, frontAddr: string): CtValue {
  return {
    clientAddr: '10.244.1.9',
    frontAddr,
    backendAddr: backend,
    natAddr: '0.0.0.0',
    clientPort,
    frontPort: 53,
    backendPort: 5353,
    natPort: 0,
    backendId: 1,
    svcId,
    flags: 0,
    tcpState: 0,
    finMask: 0,
    createdNs: 1n,
    lastSeenNs: 1n,
  };
}

test('a sync that removes a backend from Service a flushes its UDP flows of a only; a terminating endpoint keeps its flows', async () => {
  const fake = new FakeNativeBinding();
  fake.addLink('eth0');
  const reconciled: Array<[string, number]> = [];
  const dp = new BpfDataplane(
    dataplaneOptions(fake, {
      log: createLogger('bpf', { level: 'info', write: () => undefined }),
      pinPath: PIN,
      node: { ipv4: '198.18.0.10', ipv6: null },
      nodeInterface: 'eth0',
      podInterfaces: 'veth*',
      links: fake.linkSource(),
      onConntrackReconciled: (family, _s, deleted) => reconciled.push([family, deleted]),
    }),
  );
  await dp.start(new AbortController().signal);
  const a = udp('a', '10.96.0.40', [endpoint(`${X}:5353`), endpoint(`${Y}:5353`)]);
  const b = udp('b', '10.96.0.41', [endpoint(`${X}:5353`)]);
  const c = udp('c', '10.96.0.42', [endpoint(`${X}:5353`), endpoint(`${Y}:5353`)]);
  await dp.sync(snapshot([a, b, c]));
  const svc = fake.pinnedMap(`${PIN}/${MAPS.svc4.name}`);
  const ids = new Map(
    decodeEntries('svc4', svc.dump())
      .filter(([k]) => k.slot === 0)
      .map(([k, v]) => [k.addr, v.svcId]),
  );
  const ct = fake.pinnedMap(`${PIN}/${MAPS.ct4.name}`);
  const flows = [
    flow(ids.get('10.96.0.40') as number, X, 40001, '10.96.0.40'), // a -> X: X leaves a: flushed
    flow(ids.get('10.96.0.40') as number, Y, 40002, '10.96.0.40'), // a -> Y: stays
    flow(ids.get('10.96.0.41') as number, X, 40003, '10.96.0.41'), // b -> X: b unchanged, stays
    flow(ids.get('10.96.0.42') as number, X, 40004, '10.96.0.42'), // c -> X: X terminating (serving) in c: stays
  ];
  for (const v of flows) {
    for (const k of [fwdKey(v, 'UDP'), revKey(v, 'UDP')]) ct.update(encode(MAPS.ct4.keyCodec, k), encode(MAPS.ct4.valueCodec, v));
  }
  reconciled.length = 0;

  const terminating = { ...endpoint(`${X}:5353`), ready: false, serving: true, terminating: true };
  const a2 = udp('a', '10.96.0.40', [endpoint(`${Y}:5353`)]);
  const c2 = udp('c', '10.96.0.42', [terminating, endpoint(`${Y}:5353`)]);
  expect(
    c2.clusterEndpoints.map((e) => e.ip),
    'the terminating endpoint is no longer a backend of c',
  ).toEqual([Y]);
  await dp.sync(snapshot([a2, b, c2], new Set([a2.id, c2.id])));

  const left = decodeEntries('ct4', ct.dump()) as Array<[CtKey, CtValue]>;
  expect(left.map(([k, v]) => `${v.clientPort} ${k.dir}`).sort(), 'both halves of a -> X gone; a -> Y, b -> X and c -> X (terminating) kept').toEqual([
    '40002 0',
    '40002 1',
    '40003 0',
    '40003 1',
    '40004 0',
    '40004 1',
  ]);
  expect(reconciled).toEqual([
    ['IPv4', 2],
    ['IPv6', 0],
  ]);
  await dp.stop();
});

test('collectConntrack: an idle flow goes, a fresh one stays; mapUsage then counts the CT maps', async () => {
  const fake = new FakeNativeBinding();
  fake.addLink('eth0');
  const passes: number[] = [];
  const dp = new BpfDataplane(
    dataplaneOptions(fake, {
      log: createLogger('bpf', { level: 'info', write: () => undefined }),
      pinPath: PIN,
      node: { ipv4: '198.18.0.10', ipv6: null },
      nodeInterface: 'eth0',
      podInterfaces: 'veth*',
      links: fake.linkSource(),
      conntrackTimeouts: ctTimeouts({ tcpEstablishedTimeout: 0, tcpCloseWaitTimeout: 0, udpTimeout: 30_000, udpStreamTimeout: 0 }),
      conntrackGcIntervalMs: 3_600_000, // no timer pass during the test
      onConntrackGc: (r) => passes.push(r.deleted),
    }),
  );
  await dp.start(new AbortController().signal);
  await dp.sync(snapshot([udp('a', '10.96.0.40', [endpoint(`${X}:5353`)])]));
  expect(
    dp.mapUsage().map((u) => u.map),
    'no CT fill before a pass',
  ).not.toContain(MAPS.ct4.name);
  const ct = fake.pinnedMap(`${PIN}/${MAPS.ct4.name}`);
  const now = process.hrtime.bigint();
  const idle = { ...flow(1, X, 40001, '10.96.0.40'), createdNs: now - 60_000_000_000n, lastSeenNs: now - 60_000_000_000n };
  const fresh = { ...flow(1, X, 40002, '10.96.0.40'), createdNs: now, lastSeenNs: now };
  for (const v of [idle, fresh]) {
    for (const k of [fwdKey(v, 'UDP'), revKey(v, 'UDP')]) ct.update(encode(MAPS.ct4.keyCodec, k), encode(MAPS.ct4.valueCodec, v));
  }
  const r = await dp.collectConntrack();
  expect(r).toMatchObject({ scanned: 4, deleted: 2, entries: { ct4: 2, ct6: 0 } });
  expect(passes).toEqual([2]);
  expect((decodeEntries('ct4', ct.dump()) as Array<[CtKey, CtValue]>).map(([, v]) => v.clientPort)).toEqual([40002, 40002]);
  expect(dp.mapUsage().find((u) => u.map === MAPS.ct4.name)).toMatchObject({ entries: 2, capacity: ct.maxEntries });
  await dp.stop();
  expect(await dp.collectConntrack(), 'nothing after stop').toBeNull();
});
