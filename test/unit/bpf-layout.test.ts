// layout.ts codecs (layout 2): exact bytes for every struct (network order
// for *_be, little-endian host order for the rest, padding zeroed), round
// trips, the state word, source-range keys, the generic op batches, and
// errors that name the struct and field. layout-v1.ts keeps its own bytes.

import { expect, test } from 'vitest';
import {
  backend4Codec,
  backend6Codec,
  type Codec,
  configCodec,
  ct4KeyCodec,
  ct4ValueCodec,
  ct6KeyCodec,
  ct6ValueCodec,
  type CtValue,
  decodeEntries,
  decodeMany,
  decodePerCpuCounters,
  encode,
  encodeMany,
  encodeOpBatch,
  frag4KeyCodec,
  fragValueCodec,
  LayoutError,
  MAPS,
  type Op,
  SY_ACT_DROP,
  SY_ACT_REJECT,
  SY_SVC_F_CLUSTER_IP,
  SY_SVC_F_MASQ,
  srcRange4KeyCodec,
  srcRange6KeyCodec,
  srcRangeKey,
  STRUCTS,
  stateAction,
  stateCount,
  stateGen,
  sumCounters,
  type SvcKey,
  type SvcValue,
  svc4KeyCodec,
  svc6KeyCodec,
  svcState,
  svcValueCodec,
  u32Codec,
  vip4KeyCodec,
  vip6KeyCodec,
  vipValueCodec,
} from '../../src/dataplane/bpf/layout.ts';
import * as v1 from '../../src/dataplane/bpf/layout-v1.ts';
import { thrownBy } from '../support/thrown.ts';

const hex = (b: Buffer): string => b.toString('hex');

/** Encodes into a buffer full of 0xff, to prove every byte (padding too) is written. */
function encodeDirty<T>(codec: Codec<T>, v: T): Buffer {
  const b = Buffer.alloc(codec.spec.size, 0xff);
  codec.encodeInto(v, b, 0);
  return b;
}

function roundTrip<T>(codec: Codec<T>, v: T): void {
  expect(codec.decode(encodeDirty(codec, v))).toStrictEqual(v);
}

const V6 = 'fd00:10:96::a';
const V6_HEX = `${'fd000010009600000000000000000000'.slice(0, 30)}0a`;

test('sy_svc4_key / sy_svc6_key bytes: addr/port network order, slot host order, scope and gen bytes, pad zero', () => {
  const k: SvcKey = { addr: '10.96.0.10', port: 80, proto: 'TCP', scope: 1, slot: 3, gen: 1 };
  expect(hex(encodeDirty(svc4KeyCodec, k))).toBe('0a60000a' + '0050' + '06' + '01' + '0300' + '01' + '00');
  roundTrip(svc4KeyCodec, k);
  const k6: SvcKey = { addr: V6, port: 443, proto: 'SCTP', scope: 0, slot: 0x102, gen: 0 };
  expect(V6_HEX).toHaveLength(32);
  expect(hex(encodeDirty(svc6KeyCodec, k6))).toBe(`${V6_HEX}01bb840002010000`);
  roundTrip(svc6KeyCodec, k6);
});

test('sy_svc_value: state = count | gen << 16 | action << 24 as one host-order word', () => {
  expect(svcState(3, 1, SY_ACT_REJECT)).toBe(0x01010003);
  expect(stateCount(0x02010005)).toBe(5);
  expect(stateGen(0x02010005)).toBe(1);
  expect(stateAction(0x02010005)).toBe(SY_ACT_DROP);
  const v: SvcValue = {
    count: 2,
    gen: 1,
    action: 0,
    backendId: 0,
    svcId: 7,
    flags: SY_SVC_F_MASQ | SY_SVC_F_CLUSTER_IP,
    affinityTimeoutS: 10800,
    maglevM: 16381,
  };
  expect(hex(encodeDirty(svcValueCodec, v))).toBe('02000100' + '00000000' + '07000000' + '4100' + '0000' + '302a0000' + 'fd3f0000');
  roundTrip(svcValueCodec, v);
  const slot: SvcValue = { count: 0, gen: 0, action: 0, backendId: 0x01020304, svcId: 0, flags: 0, affinityTimeoutS: 0, maglevM: 0 };
  expect(hex(encode(svcValueCodec, slot))).toBe(`0000000004030201${'0'.repeat(32)}`);
});

test('sy_backend4 / sy_backend6 (flags carried) and the backend id key', () => {
  const b = { addr: '10.244.1.5', port: 53, proto: 'UDP' as const, flags: 1 };
  expect(hex(encodeDirty(backend4Codec, b))).toBe('0af40105' + '0035' + '11' + '01');
  roundTrip(backend4Codec, b);
  const b6 = { addr: 'fd00:10:244:1::5', port: 8080, proto: 'TCP' as const, flags: 0 };
  expect(hex(encode(backend6Codec, b6))).toBe('fd000010024400010000000000000005' + '1f90' + '06' + '00');
  roundTrip(backend6Codec, b6);
  expect(hex(encode(u32Codec, 5))).toBe('05000000');
});

test('vip keys and value', () => {
  expect(hex(encode(vip4KeyCodec, { addr: '10.96.0.1' }))).toBe('0a600001');
  expect(hex(encode(vip6KeyCodec, { addr: '::1' }))).toBe(`${'0'.repeat(30)}01`);
  roundTrip(vip6KeyCodec, { addr: V6 });
  expect(hex(encode(vipValueCodec, { flags: 1 }))).toBe('01000000');
});

test('source-range keys: prefixlen host order, svc_id network order, network address', () => {
  const k = srcRangeKey(0x0102, '203.0.113.77/24');
  expect(k).toStrictEqual({ prefixlen: 56, svcId: 0x0102, addr: '203.0.113.0' });
  expect(hex(encodeDirty(srcRange4KeyCodec, k!))).toBe('38000000' + '00000102' + 'cb007100');
  roundTrip(srcRange4KeyCodec, k!);
  const k6 = srcRangeKey(9, '2001:db8:ffff::1/33');
  expect(k6).toStrictEqual({ prefixlen: 65, svcId: 9, addr: '2001:db8:8000::' });
  expect(hex(encode(srcRange6KeyCodec, k6!))).toBe('41000000' + '00000009' + '20010db8800000000000000000000000');
  expect(srcRangeKey(1, '0.0.0.0/0')).toStrictEqual({ prefixlen: 32, svcId: 1, addr: '0.0.0.0' });
  expect(srcRangeKey(1, 'nope')).toBe(null);
  expect(thrownBy(() => encode(srcRange4KeyCodec, { prefixlen: 65, svcId: 1, addr: '1.2.3.4' }), LayoutError)).toMatchObject({
    struct: 'sy_srcrange4_key',
    field: 'prefixlen',
  });
});

test('sy_ct4_key / sy_ct6_key: dir byte, padding zeroed', () => {
  const ck = { saddr: '10.0.0.1', daddr: '10.96.0.10', sport: 40000, dport: 80, proto: 'TCP' as const, dir: 1 as const };
  expect(hex(encodeDirty(ct4KeyCodec, ck))).toBe('0a000001' + '0a60000a' + '9c40' + '0050' + '06' + '01' + '0000');
  roundTrip(ct4KeyCodec, ck);
  const ck6 = { saddr: 'fd00:10:244::9', daddr: V6, sport: 1, dport: 2, proto: 'UDP' as const, dir: 0 as const };
  expect(hex(encodeDirty(ct6KeyCodec, ck6))).toBe(`fd000010024400000000000000000009${V6_HEX}0001000211000000`);
  roundTrip(ct6KeyCodec, ck6);
  expect(thrownBy(() => ct4KeyCodec.decode(Buffer.from('0a0000010a60000a9c400050' + '06' + '02' + '0000', 'hex')), LayoutError)).toMatchObject({
    field: 'dir',
  });
});

test('sy_ct4_value / sy_ct6_value: the whole flow, explicit pad zeroed', () => {
  const v: CtValue = {
    clientAddr: '10.244.2.9',
    frontAddr: '10.96.0.10',
    backendAddr: '10.244.1.5',
    natAddr: '198.18.0.1',
    clientPort: 51000,
    frontPort: 80,
    backendPort: 8080,
    natPort: 61000,
    backendId: 9,
    svcId: 3,
    flags: 5,
    tcpState: 2,
    finMask: 1,
    createdNs: 0x0102030405060708n,
    lastSeenNs: 2n ** 63n,
  };
  expect(hex(encodeDirty(ct4ValueCodec, v))).toBe(
    '0af40209' +
      '0a60000a' +
      '0af40105' +
      'c6120001' +
      'c738' +
      '0050' +
      '1f90' +
      'ee48' +
      '09000000' +
      '03000000' +
      '0500' +
      '02' +
      '01' +
      '00000000' +
      '0807060504030201' +
      '0000000000000080',
  );
  roundTrip(ct4ValueCodec, v);
  const v6: CtValue = { ...v, clientAddr: 'fd00:10:244:2::9', frontAddr: V6, backendAddr: 'fd00:10:244:1::5', natAddr: '::' };
  const b6 = encodeDirty(ct6ValueCodec, v6);
  expect(b6).toHaveLength(104);
  expect(hex(b6.subarray(48, 64))).toBe('0'.repeat(32));
  expect(hex(b6.subarray(84, 88))).toBe('00000000');
  roundTrip(ct6ValueCodec, v6);
});

test('sy_frag4_key and sy_frag_value', () => {
  const k = { saddr: '10.0.0.1', daddr: '10.96.0.10', id: 0xbeef, proto: 'UDP' as const };
  expect(hex(encodeDirty(frag4KeyCodec, k))).toBe('0a000001' + '0a60000a' + 'beef' + '11' + '00');
  roundTrip(frag4KeyCodec, k);
  const v = { sport: 53, dport: 5353, createdNs: 1n };
  expect(hex(encodeDirty(fragValueCodec, v))).toBe('0035' + '14e9' + '00000000' + '0100000000000000');
  roundTrip(fragValueCodec, v);
});

test('sy_config_v2: both node addresses, detector CIDRs (host bits cleared), SNAT range, flags', () => {
  const c = {
    nodeAddr4: '198.18.0.1',
    nodeAddr6: 'fd00:198:18::1',
    podCidr4: '10.244.0.0/16',
    podCidr6: 'fd00:10:244::/56',
    snatPortMin: 61000,
    snatPortMax: 65535,
    flags: 1,
  };
  expect(hex(encodeDirty(configCodec, c))).toBe(
    'c6120001' +
      'fd000198001800000000000000000001' +
      '0af40000' +
      'fd000010024400000000000000000000' +
      '10' +
      '38' +
      '48ee' +
      'ffff' +
      '0000' +
      '01000000' +
      '00000000',
  );
  roundTrip(configCodec, c);
  expect(configCodec.decode(encode(configCodec, { ...c, podCidr4: '10.244.7.9/16' })).podCidr4).toBe('10.244.0.0/16');
  const none = { nodeAddr4: null, nodeAddr6: null, podCidr4: null, podCidr6: null, snatPortMin: 0, snatPortMax: 0, flags: 0 };
  expect(hex(encodeDirty(configCodec, none))).toBe('0'.repeat(112));
  roundTrip(configCodec, none);
  expect(thrownBy(() => encode(configCodec, { ...none, podCidr4: 'fd00::/8' }), LayoutError)).toMatchObject({ field: 'pod_cidr4_be' });
});

test('per-CPU counters: one 8-byte slot per CPU', () => {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(5n, 0);
  b.writeBigUInt64LE(7n, 16);
  expect(decodePerCpuCounters(b, 3)).toStrictEqual([5n, 0n, 7n]);
  expect(sumCounters(decodePerCpuCounters(b, 3))).toBe(12n);
  expect(() => decodePerCpuCounters(b, 2)).toThrow(LayoutError);
});

test('batch encoders: one buffer, records back to back, same bytes as one by one', () => {
  const keys: SvcKey[] = Array.from({ length: 50 }, (_, i) => ({
    addr: i % 3 ? `10.96.0.${i}` : '10.96.0.1',
    port: 80 + i,
    proto: i % 2 ? 'UDP' : 'TCP',
    scope: (i % 2) as 0 | 1,
    gen: (i % 2) as 0 | 1,
    slot: i,
  }));
  const kb = encodeMany(svc4KeyCodec, keys);
  expect(kb).toHaveLength(50 * 12);
  expect(kb).toStrictEqual(Buffer.concat(keys.map((k) => encode(svc4KeyCodec, k))));
  expect(decodeMany(svc4KeyCodec, kb)).toStrictEqual(keys);
  expect(encodeMany(svc4KeyCodec, [])).toStrictEqual(Buffer.alloc(0));
  expect(() => decodeMany(svc4KeyCodec, Buffer.alloc(13))).toThrow(LayoutError);
});

test('encodeOpBatch: generic over MAPS; one run -> one batch; refuses mixed runs', () => {
  const key: SvcKey = { addr: V6, port: 443, proto: 'TCP', scope: 0, gen: 0, slot: 0 };
  const master: SvcValue = { count: 1, gen: 0, action: 0, backendId: 0, svcId: 1, flags: 0, affinityTimeoutS: 0, maglevM: 0 };
  const ops: Op[] = [
    { map: 'svc6', action: 'update', key, value: master },
    { map: 'svc6', action: 'update', key: { ...key, slot: 1 }, value: { ...master, count: 0, backendId: 4, svcId: 0 } },
  ];
  const b = encodeOpBatch(ops);
  expect(b).toMatchObject({ map: 'sy_svc6_v2', action: 'update', count: 2 });
  expect(b!.keys).toStrictEqual(Buffer.concat([encode(svc6KeyCodec, key), encode(svc6KeyCodec, { ...key, slot: 1 })]));
  expect(b!.values?.length).toBe(48);
  const del = encodeOpBatch([
    { map: 'backend4', action: 'delete', key: 3 },
    { map: 'backend4', action: 'delete', key: 4 },
  ]);
  expect(del?.map).toBe(MAPS.backend4.name);
  expect(del?.values).toBe(null);
  expect(hex(del?.keys ?? Buffer.alloc(0))).toBe('0300000004000000');
  const lpm = encodeOpBatch([{ map: 'srcrange4', action: 'update', key: { prefixlen: 40, svcId: 2, addr: '1.0.0.0' }, value: { flags: 0 } }]);
  expect(hex(lpm!.keys)).toBe('28000000' + '00000002' + '01000000');
  expect(encodeOpBatch([])).toBe(null);
  expect(() => encodeOpBatch([ops[0] as Op, { map: 'backend4', action: 'delete', key: 1 }])).toThrow(/op 1 is delete backend4 in a batch of update svc6/);
  expect(() => encodeOpBatch([ops[0] as Op, { map: 'svc6', action: 'delete', key }])).toThrow(/op 1 is delete svc6/);
});

test('decodeEntries decodes a dump with the map codecs', () => {
  const entries: Array<[Buffer, Buffer]> = [[encode(u32Codec, 7), encode(backend6Codec, { addr: 'fd00::7', port: 1, proto: 'UDP', flags: 1 })]];
  expect(decodeEntries('backend6', entries)).toStrictEqual([[7, { addr: 'fd00::7', port: 1, proto: 'UDP', flags: 1 }]]);
});

test('errors name the struct and the field', () => {
  const bad = (f: () => unknown, struct: string, field: string): void => {
    expect(thrownBy(f, LayoutError)).toMatchObject({ code: 'ERR_SY_LAYOUT', struct, field });
  };
  const k: SvcKey = { addr: '10.96.0.1', port: 80, proto: 'TCP', scope: 0, gen: 0, slot: 0 };
  bad(() => encode(svc4KeyCodec, { ...k, addr: '10.96.0' }), 'sy_svc4_key', 'addr_be');
  bad(() => encode(svc4KeyCodec, { ...k, addr: V6 }), 'sy_svc4_key', 'addr_be');
  bad(() => encode(svc6KeyCodec, k), 'sy_svc6_key', 'addr_be');
  bad(() => encode(svc4KeyCodec, { ...k, port: 70000 }), 'sy_svc4_key', 'port_be');
  bad(() => encode(svc4KeyCodec, { ...k, slot: 65536 }), 'sy_svc4_key', 'slot');
  bad(() => svc4KeyCodec.decode(Buffer.from('0a000001' + '0050' + '06' + '02' + '0000' + '00' + '00', 'hex')), 'sy_svc4_key', 'scope');
  bad(() => svc4KeyCodec.decode(Buffer.from('0a000001' + '0050' + '06' + '00' + '0000' + '02' + '00', 'hex')), 'sy_svc4_key', 'gen');
  const v: SvcValue = { count: 0, gen: 0, action: 0, backendId: -1, svcId: 0, flags: 0, affinityTimeoutS: 0, maglevM: 0 };
  bad(() => encode(svcValueCodec, v), 'sy_svc_value', 'backend_id');
  bad(() => encode(svcValueCodec, { ...v, backendId: 0, count: 65536 }), 'sy_svc_value', 'state');
  bad(() => svcValueCodec.decode(Buffer.from(`00000003${'0'.repeat(40)}`, 'hex')), 'sy_svc_value', 'state');
  bad(() => backend4Codec.decode(Buffer.from('0a000001005001' + '00', 'hex')), 'sy_backend4', 'proto');
});

test('STRUCTS tables cover every byte of every struct, both layouts', () => {
  for (const s of [...STRUCTS, ...v1.STRUCTS]) {
    const covered = s.fields.reduce((n, f) => n + f.size, 0);
    expect(covered, s.name).toBe(s.size);
  }
});

test('layout-v1.ts still reads and writes layout 1 bytes (what the migration reads)', () => {
  const k = { addr: '10.96.0.10', port: 80, proto: 'TCP' as const, gen: 1 as const, slot: 3 };
  expect(hex(encode(v1.svcKeyCodec, k))).toBe('0a60000a' + '0050' + '06' + '01' + '0300' + '0000');
  const cv = { backendId: 9, backendAddr: '10.244.1.5', backendPort: 8080, natAddr: '198.18.0.1', natPort: 32768, flags: 3, lastSeenNs: 0x0102030405060708n };
  expect(hex(encode(v1.ctValueCodec, cv))).toBe('09000000' + '0af40105' + 'c6120001' + '1f90' + '8000' + '03000000' + '00000000' + '0807060504030201');
  expect(v1.MAPS.svc.name).toBe('sy_svc4_v1');
});
