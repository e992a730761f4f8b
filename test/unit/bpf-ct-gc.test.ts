// The CT garbage collector (src/dataplane/bpf/ct-gc.ts): timeouts from
// kube-proxy's flags, the expiry decision per protocol and state, and a pass
// over fake CT maps that deletes both halves of idle flows only.

import { describe, expect, it } from 'vitest';
import {
  type CtMapAccess,
  ctPressure,
  ctTimeouts,
  expiredKeys,
  flowTimeout,
  flushPass,
  fwdKey,
  gcPass,
  KERNEL_DEFAULTS,
  revKey,
  staleFlowKeys,
} from '../../src/dataplane/bpf/ct-gc.ts';
import { type CtKey, type CtValue, encode, HEADER_DEFINES, MAPS, SY_CT_F_KERNEL, SY_CT_F_SNAT } from '../../src/dataplane/bpf/layout.ts';
import { FakeMap } from '../support/fake-maps.ts';

const S = 1_000_000_000n;
const { SY_TCP_SYN_SENT, SY_TCP_ESTABLISHED, SY_TCP_CLOSING, SY_TCP_CLOSED, SY_TCP_NONE } = HEADER_DEFINES;

const T = ctTimeouts({ tcpEstablishedTimeout: 24 * 3600_000, tcpCloseWaitTimeout: 3600_000, udpTimeout: 0, udpStreamTimeout: 0 });

function flow4(over: Partial<CtValue> = {}): CtValue {
  return {
    clientAddr: '10.244.1.5',
    frontAddr: '10.96.0.10',
    backendAddr: '10.244.2.7',
    natAddr: '0.0.0.0',
    clientPort: 40000,
    frontPort: 53,
    backendPort: 5353,
    natPort: 0,
    backendId: 3,
    svcId: 1,
    flags: 0,
    tcpState: SY_TCP_NONE,
    finMask: 0,
    createdNs: 1000n * S,
    lastSeenNs: 1000n * S,
    ...over,
  };
}

const both = (v: CtValue, proto: CtKey['proto'], rev: Partial<CtValue> = {}): Array<[CtKey, CtValue]> => [
  [fwdKey(v, proto), v],
  [revKey(v, proto), { ...v, ...rev }],
];

describe('ctTimeouts', () => {
  it('takes the flags, and the kernel defaults where a flag is 0', () => {
    expect(T.tcpEstablished).toBe(24n * 3600n * S);
    expect(T.tcpClosing).toBe(3600n * S);
    expect(T.udp).toBe(30n * S);
    expect(T.udpStream).toBe(120n * S);
    expect(T.tcpSynSent).toBe(120n * S);
    expect(T.tcpClosed).toBe(10n * S);
    const zero = ctTimeouts({ tcpEstablishedTimeout: 0, tcpCloseWaitTimeout: 0, udpTimeout: 2000, udpStreamTimeout: 5000 });
    expect(zero.tcpEstablished).toBe(KERNEL_DEFAULTS.tcpEstablished);
    expect(zero.tcpClosing).toBe(KERNEL_DEFAULTS.tcpCloseWait);
    expect(zero.udp).toBe(2n * S);
    expect(zero.udpStream).toBe(5n * S);
  });
});

describe('flowTimeout', () => {
  it('picks the TCP timeout by state, the more advanced half winning', () => {
    const v = (tcpState: number) => flow4({ tcpState });
    expect(flowTimeout('TCP', { fwd: v(SY_TCP_SYN_SENT) }, T)).toBe(T.tcpSynSent);
    expect(flowTimeout('TCP', { fwd: v(SY_TCP_ESTABLISHED), rev: v(SY_TCP_ESTABLISHED) }, T)).toBe(T.tcpEstablished);
    expect(flowTimeout('TCP', { fwd: v(SY_TCP_ESTABLISHED), rev: v(SY_TCP_CLOSING) }, T)).toBe(T.tcpClosing);
    expect(flowTimeout('TCP', { rev: v(SY_TCP_CLOSED) }, T)).toBe(T.tcpClosed);
  });
  it('gives UDP the stream timeout once the REV half shows a reply', () => {
    const v = flow4();
    expect(flowTimeout('UDP', { fwd: v, rev: v }, T)).toBe(T.udp);
    expect(flowTimeout('UDP', { fwd: v, rev: { ...v, lastSeenNs: v.createdNs + 2n * S } }, T)).toBe(T.udpStream);
    expect(flowTimeout('UDP', { fwd: { ...v, lastSeenNs: v.createdNs + 2n * S } }, T)).toBe(T.udp);
    expect(flowTimeout('SCTP', { fwd: v, rev: { ...v, lastSeenNs: v.createdNs + 2n * S } }, T)).toBe(T.sctpEstablished);
  });
});

describe('expiredKeys', () => {
  it('expires a UDP flow idle past 30 s, both halves, and keeps one seen since', () => {
    const idle = flow4();
    const fresh = flow4({ clientPort: 40001, lastSeenNs: 1020n * S });
    const now = 1040n * S;
    const keys = expiredKeys([...both(idle, 'UDP'), ...both(fresh, 'UDP')], now, T);
    expect(keys).toEqual([fwdKey(idle, 'UDP'), revKey(idle, 'UDP')]);
  });
  it('counts the later last_seen of the two halves', () => {
    const v = flow4();
    // The REV half was refreshed by a reply at 1025 s: a stream (120 s) seen at 1025 s.
    expect(expiredKeys(both(v, 'UDP', { lastSeenNs: 1025n * S }), 1140n * S, T)).toEqual([]);
    expect(expiredKeys(both(v, 'UDP', { lastSeenNs: 1025n * S }), 1146n * S, T)).toHaveLength(2);
  });
  it('keeps an established TCP flow for a day but ends a closed one after 10 s', () => {
    const est = flow4({ tcpState: SY_TCP_ESTABLISHED, frontPort: 80 });
    const closed = flow4({ tcpState: SY_TCP_CLOSED, frontPort: 81 });
    const keys = expiredKeys([...both(est, 'TCP'), ...both(closed, 'TCP')], 1000n * S + 3600n * S, T);
    expect(keys).toEqual([fwdKey(closed, 'TCP'), revKey(closed, 'TCP')]);
  });
  it('never expires a flow handed over from the kernel (SY_CT_F_KERNEL: not refreshed by the programs)', () => {
    const v = flow4({ flags: SY_CT_F_KERNEL, tcpState: SY_TCP_ESTABLISHED });
    expect(expiredKeys([[fwdKey(v, 'TCP'), v]], 1_000_000_000n * S, T)).toEqual([]);
  });
  it('deletes the REV half of a masqueraded flow under its nat addr:port, even when only the FWD half is left', () => {
    const v = flow4({ flags: SY_CT_F_SNAT, natAddr: '198.18.0.1', natPort: 61234 });
    const keys = expiredKeys([[fwdKey(v, 'UDP'), v]], 2000n * S, T);
    expect(keys[1]).toEqual({ saddr: '10.244.2.7', daddr: '198.18.0.1', sport: 5353, dport: 61234, proto: 'UDP', dir: 1 });
  });
});

describe('gcPass over fake maps', () => {
  const access = (m: FakeMap): CtMapAccess => ({
    dump: async () => m.dump(),
    delete: async (keys) => {
      for (const k of keys) m.delete(Buffer.from(k));
    },
  });

  it('deletes both halves of idle flows, counts what it scanned, and leaves the rest', async () => {
    const ct4 = new FakeMap(MAPS.ct4);
    const ct6 = new FakeMap(MAPS.ct6);
    const put = (m: FakeMap, entries: Array<[CtKey, CtValue]>, codec: 'ct4' | 'ct6') => {
      for (const [k, v] of entries) m.update(encode(MAPS[codec].keyCodec, k), encode(MAPS[codec].valueCodec, v));
    };
    const idle = flow4({ flags: SY_CT_F_SNAT, natAddr: '198.18.0.1', natPort: 61000 });
    const busy = flow4({ clientPort: 40002, tcpState: SY_TCP_ESTABLISHED, lastSeenNs: 1000n * S });
    put(ct4, [...both(idle, 'UDP'), ...both(busy, 'TCP')], 'ct4');
    const v6 = flow4({
      clientAddr: 'fd00:10:244::5',
      frontAddr: 'fd00:10:96::10',
      backendAddr: 'fd00:10:244:1::7',
      natAddr: '::',
    });
    put(ct6, both(v6, 'UDP'), 'ct6');
    const r = await gcPass({ ct4: access(ct4), ct6: access(ct6) }, 1100n * S, T);
    expect(r.scanned).toBe(6);
    expect(r.deleted).toBe(4);
    expect(r.entries).toEqual({ ct4: 2, ct6: 0 });
    const left = ct4.dump().map(([k]) => MAPS.ct4.keyCodec.decode(k));
    expect(left).toEqual([fwdKey(busy, 'TCP'), revKey(busy, 'TCP')]);
    expect(ct6.size).toBe(0);
  });

  it('leaves an entry it cannot decode alone', async () => {
    const ct4 = new FakeMap(MAPS.ct4);
    const bad = Buffer.alloc(MAPS.ct4.key.size);
    bad[12] = 17;
    bad[13] = 7; // dir 7
    ct4.update(bad, Buffer.alloc(MAPS.ct4.value.size));
    const r = await gcPass({ ct4: access(ct4), ct6: access(new FakeMap(MAPS.ct6)) }, 1_000_000n * S, T);
    expect(r).toMatchObject({ scanned: 1, deleted: 0, undecodable: 1 });
    expect(ct4.size).toBe(1);
  });
});

describe('staleFlowKeys (the conntrack reconciler)', () => {
  const a = flow4({ svcId: 1, backendAddr: '10.244.2.7' });
  const gone = flow4({ svcId: 1, backendAddr: '10.244.2.8', clientPort: 40001, flags: SY_CT_F_SNAT, natAddr: '198.18.0.1', natPort: 61001 });
  const otherSvc = flow4({ svcId: 2, backendAddr: '10.244.2.8', clientPort: 40002 });
  const tcp = flow4({ svcId: 1, backendAddr: '10.244.2.8', clientPort: 40003, tcpState: SY_TCP_ESTABLISHED });
  const entries = [...both(a, 'UDP'), ...both(gone, 'UDP'), ...both(otherSvc, 'UDP'), ...both(tcp, 'TCP')];

  it("deletes both halves of a UDP flow whose backend is no longer a serving endpoint of that frontend's port, only for that frontend", () => {
    // svc 1 lost 10.244.2.8; svc 2 (another Service) still has it; svc 2 is not in the map: not touched.
    const keys = staleFlowKeys(entries, new Map([[1, new Set(['10.244.2.7'])]]));
    expect(keys).toEqual([fwdKey(gone, 'UDP'), revKey(gone, 'UDP')]);
    expect(keys[1]).toMatchObject({ daddr: '198.18.0.1', dport: 61001 }); // the SNAT port is freed
  });
  it('keeps flows to a terminating (still serving) endpoint: the caller counts it as serving', () => {
    expect(staleFlowKeys(entries, new Map([[1, new Set(['10.244.2.7', '10.244.2.8'])]]))).toEqual([]);
  });
  it('leaves TCP alone, and SCTP is handled like UDP', () => {
    const sctp = flow4({ svcId: 1, backendAddr: '10.244.2.9', clientPort: 40004 });
    const keys = staleFlowKeys([...both(tcp, 'TCP'), ...both(sctp, 'SCTP')], new Map([[1, new Set(['10.244.2.7'])]]));
    expect(keys).toEqual([fwdKey(sctp, 'SCTP'), revKey(sctp, 'SCTP')]);
  });
  it('flushPass deletes them from the maps and counts them per map', async () => {
    const ct4 = new FakeMap(MAPS.ct4);
    for (const [k, v] of entries) ct4.update(encode(MAPS.ct4.keyCodec, k), encode(MAPS.ct4.valueCodec, v));
    const access = (m: FakeMap): CtMapAccess => ({
      dump: async () => m.dump(),
      delete: async (keys) => {
        for (const k of keys) m.delete(Buffer.from(k));
      },
    });
    const r = await flushPass({ ct4: access(ct4), ct6: access(new FakeMap(MAPS.ct6)) }, new Map([[1, new Set(['10.244.2.7'])]]));
    expect(r).toMatchObject({ scanned: 8, deleted: 2, deletedBy: { ct4: 2, ct6: 0 }, entries: { ct4: 6, ct6: 0 } });
    expect(ct4.size).toBe(6);
  });
});

describe('ctPressure (a CT table nearly full, flows evicted)', () => {
  const reading = (ct4: number, midstream = 0n, ctFull = 0n) => ({ entries: { ct4, ct6: 0 }, capacity: { ct4: 1000, ct6: 1000 }, midstream, ctFull });
  const said = (notes: ReturnType<typeof ctPressure>['notes']) => notes.map((n) => `${n.level} ${n.msg.split(':')[0]} ${JSON.stringify(n.fields)}`);

  it('warns once when a table reaches 90%, stays quiet down to 80%, says it has room again below', () => {
    let r = ctPressure(null, reading(100, 5n, 1n));
    expect(r.notes, 'the first reading is the baseline of the counters').toEqual([]);
    r = ctPressure(r.next, reading(900, 5n, 1n));
    expect(said(r.notes)).toEqual(['warn conntrack table nearly full {"map":"sy_ct4_v2","entries":900,"capacity":1000,"fill":"90%"}']);
    expect(r.notes[0]?.msg).toMatch(/--conntrack-max-per-core or --conntrack-min/);
    r = ctPressure(r.next, reading(999, 5n, 1n));
    expect(r.notes, 'already said').toEqual([]);
    r = ctPressure(r.next, reading(800, 5n, 1n));
    expect(r.notes, 'still above 80%').toEqual([]);
    r = ctPressure(r.next, reading(799, 5n, 1n));
    expect(said(r.notes)).toEqual(['info conntrack table has room again {"map":"sy_ct4_v2","entries":799,"capacity":1000,"fill":"80%"}']);
    r = ctPressure(r.next, reading(850, 5n, 1n));
    expect(r.notes, 'below 90% again: not yet').toEqual([]);
  });

  it('reports flows picked up mid-stream and failed inserts when their counters moved', () => {
    let r = ctPressure(null, reading(10, 5n, 1n));
    r = ctPressure(r.next, reading(10, 8n, 1n));
    expect(said(r.notes)).toEqual([
      'warn TCP segments without a flow picked a backend again (their flows were evicted from a full table, or expired) {"packets":3,"counter":"CT_MIDSTREAM"}',
    ]);
    r = ctPressure(r.next, reading(10, 8n, 3n));
    expect(said(r.notes)).toEqual(['warn conntrack inserts failed {"inserts":2,"counter":"CT_FULL"}']);
    expect(ctPressure(r.next, reading(10, 8n, 3n)).notes).toEqual([]);
  });
});
