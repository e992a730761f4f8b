// layout.ts codecs: exact bytes for every struct (network order for *_be,
// little-endian host order for the rest, padding zeroed), round trips, the
// batch encoders, and errors that name the struct and field.

import { expect, test } from 'vitest';
import {
  backendCodec,
  configCodec,
  ctKeyCodec,
  ctValueCodec,
  decodeMany,
  decodePerCpuCounters,
  encode,
  encodeBackendIds,
  encodeBackends,
  encodeMany,
  encodeOpBatch,
  encodeSvcKeys,
  encodeSvcValues,
  LayoutError,
  MAPS,
  rnatValueCodec,
  STRUCTS,
  sumCounters,
  svcKeyCodec,
  svcValueCodec,
  u32Codec,
} from '../../src/dataplane/bpf/layout.ts';
import type { Codec } from '../../src/dataplane/bpf/layout.ts';
import type { Op, SvcKey, SvcValue } from '../../src/dataplane/bpf/state.ts';
import { backendKeyOf, formatBackendKey } from '../../src/dataplane/bpf/state.ts';
import { thrownBy } from '../support/thrown.ts';

const hex = (b: Buffer): string => b.toString('hex');

/** Encodes into a buffer full of 0xff, to prove every byte (padding too) is written. */
function encodeDirty<T>(codec: Codec<T>, v: T): Buffer {
  const b = Buffer.alloc(codec.spec.size, 0xff);
  codec.encodeInto(v, b, 0);
  return b;
}

test('sy_svc_key bytes: addr/port network order, slot host order, pad zero', () => {
  const k: SvcKey = { addr: '10.96.0.10', port: 80, proto: 'TCP', gen: 1, slot: 3 };
  expect(hex(encodeDirty(svcKeyCodec, k))).toBe('0a60000a' + '0050' + '06' + '01' + '0300' + '0000');
  expect(svcKeyCodec.decode(encode(svcKeyCodec, k))).toStrictEqual(k);
  const sctp: SvcKey = { addr: '255.255.255.255', port: 65535, proto: 'SCTP', gen: 0, slot: 65535 };
  expect(hex(encode(svcKeyCodec, sctp))).toBe('ffffffff' + 'ffff' + '84' + '00' + 'ffff' + '0000');
});

test('sy_svc_value bytes', () => {
  const v: SvcValue = { backendId: 0x01020304, count: 2, gen: 1, flags: 1, svcId: 7 };
  expect(hex(encodeDirty(svcValueCodec, v))).toBe('04030201' + '0200' + '01' + '01' + '07000000' + '00000000');
  expect(svcValueCodec.decode(encode(svcValueCodec, v))).toStrictEqual(v);
});

test('sy_backend bytes and the backend id key', () => {
  const b = { addr: '10.244.1.5', port: 53, proto: 'UDP' as const };
  expect(hex(encodeDirty(backendCodec, b))).toBe('0af40105' + '0035' + '11' + '00');
  expect(backendCodec.decode(encode(backendCodec, b))).toStrictEqual(b);
  expect(hex(encode(u32Codec, 5))).toBe('05000000');
  expect(u32Codec.decode(Buffer.from('ffffffff', 'hex'))).toBe(0xffffffff);
});

test('sy_ct_key, sy_ct_value (padding zeroed), sy_rnat_value, sy_config', () => {
  const ck = { saddr: '10.0.0.1', daddr: '10.96.0.10', sport: 40000, dport: 80, proto: 'TCP' as const };
  expect(hex(encodeDirty(ctKeyCodec, ck))).toBe('0a000001' + '0a60000a' + '9c40' + '0050' + '06' + '000000');
  expect(ctKeyCodec.decode(encode(ctKeyCodec, ck))).toStrictEqual(ck);

  const cv = { backendId: 9, backendAddr: '10.244.1.5', backendPort: 8080, natAddr: '198.18.0.1', natPort: 32768, flags: 3, lastSeenNs: 0x0102030405060708n };
  expect(hex(encodeDirty(ctValueCodec, cv))).toBe('09000000' + '0af40105' + 'c6120001' + '1f90' + '8000' + '03000000' + '00000000' + '0807060504030201');
  expect(ctValueCodec.decode(encode(ctValueCodec, cv))).toStrictEqual(cv);

  const rv = { frontAddr: '10.96.0.10', frontPort: 80, clientAddr: '10.244.2.9', clientPort: 51000, flags: 1, lastSeenNs: 2n ** 63n };
  expect(hex(encodeDirty(rnatValueCodec, rv))).toBe('0a60000a' + '0af40209' + '0050' + 'c738' + '01000000' + '0000000000000080');
  expect(rnatValueCodec.decode(encode(rnatValueCodec, rv))).toStrictEqual(rv);

  expect(hex(encode(configCodec, { nodeAddr: '198.18.0.1', flags: 2 }))).toBe('c6120001' + '02000000');
  expect(configCodec.decode(Buffer.alloc(8))).toStrictEqual({ nodeAddr: null, flags: 0 });
  expect(hex(encode(configCodec, { nodeAddr: null, flags: 0 }))).toBe('0000000000000000');
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
    addr: `10.96.0.${i}`,
    port: 80 + i,
    proto: i % 2 ? 'UDP' : 'TCP',
    gen: (i % 2) as 0 | 1,
    slot: i,
  }));
  const values: SvcValue[] = keys.map((_, i) => ({ backendId: i, count: i, gen: 0, flags: 0, svcId: i * 3 }));
  const kb = encodeSvcKeys(keys);
  expect(kb).toHaveLength(50 * 12);
  expect(kb).toStrictEqual(Buffer.concat(keys.map((k) => encode(svcKeyCodec, k))));
  expect(decodeMany(svcKeyCodec, kb)).toStrictEqual(keys);
  expect(decodeMany(svcValueCodec, encodeSvcValues(values))).toStrictEqual(values);
  expect(decodeMany(u32Codec, encodeBackendIds([1, 2, 3]))).toStrictEqual([1, 2, 3]);
  const backends = [{ addr: '10.244.0.1', port: 1, proto: 'SCTP' as const }];
  expect(decodeMany(backendCodec, encodeBackends(backends))).toStrictEqual(backends);
  expect(encodeMany(svcKeyCodec, [])).toStrictEqual(Buffer.alloc(0));
  expect(() => decodeMany(svcKeyCodec, Buffer.alloc(13))).toThrow(LayoutError);
});

test('encodeOpBatch: one phase -> one batch; refuses mixed kinds', () => {
  const key: SvcKey = { addr: '10.96.0.1', port: 443, proto: 'TCP', gen: 0, slot: 0 };
  const ops: Op[] = [
    { kind: 'svc-update', key, value: { backendId: 0, count: 1, gen: 0, flags: 0, svcId: 1 } },
    { kind: 'svc-update', key: { ...key, slot: 1 }, value: { backendId: 4, count: 0, gen: 0, flags: 0, svcId: 0 } },
  ];
  const b = encodeOpBatch(ops);
  expect(b).not.toBeNull();
  expect(b!.map).toBe(MAPS.svc.name);
  expect(b!.action).toBe('update');
  expect(b!.count).toBe(2);
  expect(b!.keys).toStrictEqual(encodeSvcKeys(ops.map((o) => (o.kind === 'svc-update' ? o.key : key))));
  expect(b!.values?.length).toBe(32);
  const del = encodeOpBatch([
    { kind: 'backend-delete', id: 3 },
    { kind: 'backend-delete', id: 4 },
  ]);
  expect(del?.map).toBe(MAPS.backend.name);
  expect(del?.values).toBe(null);
  expect(hex(del?.keys ?? Buffer.alloc(0))).toBe('0300000004000000');
  expect(encodeOpBatch([])).toBe(null);
  expect(() => encodeOpBatch([ops[0] as Op, { kind: 'backend-delete', id: 1 }])).toThrow(/op 1 is backend-delete in a batch of svc-update/);
});

test('errors name the struct and the field', () => {
  const bad = (f: () => unknown, struct: string, field: string): void => {
    expect(thrownBy(f, LayoutError)).toMatchObject({ code: 'ERR_SY_LAYOUT', struct, field });
  };
  bad(() => encode(svcKeyCodec, { addr: '10.96.0', port: 80, proto: 'TCP', gen: 0, slot: 0 }), 'sy_svc_key', 'addr_be');
  bad(() => encode(svcKeyCodec, { addr: '10.96.0.1', port: 70000, proto: 'TCP', gen: 0, slot: 0 }), 'sy_svc_key', 'port_be');
  bad(() => encode(svcKeyCodec, { addr: '10.96.0.1', port: 80, proto: 'TCP', gen: 0, slot: 65536 }), 'sy_svc_key', 'slot');
  bad(() => encode(backendCodec, { addr: 'fd00::1', port: 80, proto: 'TCP' }), 'sy_backend', 'addr_be');
  bad(() => encode(svcValueCodec, { backendId: -1, count: 0, gen: 0, flags: 0, svcId: 0 }), 'sy_svc_value', 'backend_id');
  bad(() => backendCodec.decode(Buffer.from('0a000001005001' + '00', 'hex')), 'sy_backend', 'proto');
  bad(() => svcKeyCodec.decode(Buffer.from('0a000001' + '0050' + '06' + '02' + '0000' + '0000', 'hex')), 'sy_svc_key', 'gen');
});

test('BackendKey: exact, ordered by address then port then protocol, printable', () => {
  const a = backendKeyOf({ addr: '10.0.0.9', port: 80, proto: 'TCP' });
  const b = backendKeyOf({ addr: '10.0.0.10', port: 80, proto: 'TCP' });
  const c = backendKeyOf({ addr: '10.0.0.10', port: 80, proto: 'UDP' });
  const d = backendKeyOf({ addr: '255.255.255.255', port: 65535, proto: 'SCTP' });
  expect(a).toBeLessThan(b);
  expect(b).toBeLessThan(c);
  expect(c).toBeLessThan(d);
  expect(Number.isSafeInteger(d)).toBe(true);
  expect(formatBackendKey(d)).toBe('255.255.255.255:65535/SCTP');
  expect(formatBackendKey(c)).toBe('10.0.0.10:80/UDP');
});

test('STRUCTS tables cover every byte of every struct', () => {
  for (const s of STRUCTS) {
    const covered = s.fields.reduce((n, f) => n + f.size, 0);
    expect(covered, s.name).toBe(s.size);
  }
});
